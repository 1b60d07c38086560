//! Where each gateway side runs in a fleet of agents: a pure function of the live agents, the
//! sides that must run and where they run now.
//!
//! A gateway has a master side (its InternetIp, every single-tunnel connection, the master
//! tunnel of each dual-tunnel connection, its IPsec and SSL-VPN servers) in the zone of its
//! VSwitch, and, with a disaster-recovery VSwitch, a slave side (DisasterRecoveryInternetIp and
//! the slave tunnels) in that VSwitch's zone. Each side is placed on a live agent of its zone;
//! a side stays where it is while its agent's lease (at the epoch it was placed for) lives, and
//! moves only when it does not: a placement is never shuffled for balance, so that no tunnel
//! goes down for it.

use std::collections::{BTreeMap, HashMap};

/// A side of a gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    Master,
    Slave,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Master => "master",
            Role::Slave => "slave",
        }
    }
}

/// The key of a gateway side: `<gateway id>/master` or `<gateway id>/slave`.
pub fn side_key(gateway: &str, role: Role) -> String {
    format!("{gateway}/{}", role.as_str())
}

/// A side key's gateway and role.
pub fn parse_side(key: &str) -> Option<(&str, Role)> {
    let (gw, role) = key.rsplit_once('/')?;
    match role {
        "master" => Some((gw, Role::Master)),
        "slave" => Some((gw, Role::Slave)),
        _ => None,
    }
}

/// The key under which a side reports the intent digest of a resource it runs: the resource id
/// for the master side, `<id>#slave` for the slave side.
pub fn converged_key(id: &str, role: Role) -> String {
    match role {
        Role::Master => id.to_string(),
        Role::Slave => format!("{id}#slave"),
    }
}

/// Which sides of a gateway a data plane holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sides {
    pub master: bool,
    pub slave: bool,
}

impl Sides {
    /// Both sides: the embedded data plane, and the leader of a cluster without agents.
    pub const BOTH: Sides = Sides { master: true, slave: true };

    pub fn holds(self, role: Role) -> bool {
        match role {
            Role::Master => self.master,
            Role::Slave => self.slave,
        }
    }

    pub fn roles(self) -> impl Iterator<Item = Role> {
        [(self.master, Role::Master), (self.slave, Role::Slave)].into_iter().filter(|(h, _)| *h).map(|(_, r)| r)
    }
}

impl Default for Sides {
    fn default() -> Self {
        Sides::BOTH
    }
}

/// An agent as placement sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Agent {
    pub name: String,
    pub zone: String,
    pub epoch: i64,
    pub alive: bool,
    /// The public addresses it can bind (any, when empty).
    pub addresses: Vec<ipnet::Ipv4Net>,
}

impl Agent {
    /// Whether it can run a side with this public address.
    pub fn can_bind(&self, address: Option<std::net::Ipv4Addr>) -> bool {
        self.addresses.is_empty() || address.is_none_or(|ip| self.addresses.iter().any(|n| n.contains(&ip)))
    }
}

/// A side that must run, in a zone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Need {
    pub side: String,
    pub zone: String,
    /// The side's public address (InternetIp, or DisasterRecoveryInternetIp for a slave side).
    pub address: Option<std::net::Ipv4Addr>,
}

/// A side that cannot run, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unplaced {
    pub side: String,
    pub zone: String,
}

/// What a placement round changes: (side, new placement or none), and the sides left without
/// an agent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Round {
    pub changes: Vec<(String, Option<(String, i64)>)>,
    pub unplaced: Vec<Unplaced>,
}

/// Places every needed side on a live agent of its zone that can bind its address. `current` is where sides run now:
/// side → (agent, epoch). A placement holds while its agent is alive at that epoch and serves
/// the side's zone. Otherwise the side goes to the live agent of its zone that holds the
/// fewest sides (the one that held it before, if it registered again and is live, first), not
/// the one that holds the gateway's other side when another is there; with none, it is taken
/// off and reported. Sides no longer needed are taken off.
pub fn place(agents: &[Agent], needs: &[Need], current: &BTreeMap<String, (String, i64)>) -> Round {
    let by_name: HashMap<&str, &Agent> = agents.iter().map(|a| (a.name.as_str(), a)).collect();
    let need_of: HashMap<&str, &Need> = needs.iter().map(|n| (n.side.as_str(), n)).collect();
    let holds = |side: &str, (agent, epoch): &(String, i64)| {
        by_name.get(agent.as_str()).is_some_and(|a| a.alive && a.epoch == *epoch && need_of.get(side).is_some_and(|n| n.zone == a.zone && a.can_bind(n.address)))
    };
    let mut load: HashMap<&str, usize> = HashMap::new();
    let mut placed: BTreeMap<&str, &str> = BTreeMap::new();
    for (side, at) in current {
        if holds(side, at) {
            *load.entry(at.0.as_str()).or_default() += 1;
            placed.insert(side.as_str(), at.0.as_str());
        }
    }
    let mut round = Round::default();
    for side in current.keys().filter(|s| !need_of.contains_key(s.as_str())) {
        round.changes.push((side.clone(), None));
    }
    let mut needs: Vec<&Need> = needs.iter().collect();
    needs.sort_by(|a, b| a.side.cmp(&b.side));
    for n in needs {
        if placed.contains_key(n.side.as_str()) {
            continue;
        }
        // The gateway's other side, where it runs.
        let sibling = parse_side(&n.side).and_then(|(gw, role)| {
            let other = side_key(gw, if role == Role::Master { Role::Slave } else { Role::Master });
            placed.iter().find(|(s, _)| **s == other).map(|(_, a)| *a)
        });
        let before = current.get(&n.side).map(|(a, _)| a.as_str());
        let candidates: Vec<&Agent> = agents.iter().filter(|a| a.alive && a.zone == n.zone && a.can_bind(n.address)).collect();
        let apart: Vec<&Agent> = candidates.iter().copied().filter(|a| Some(a.name.as_str()) != sibling).collect();
        let pool = if apart.is_empty() { candidates } else { apart };
        // The agent that held it before (registered again since) first: a side returns to its
        // host rather than being shuffled; otherwise the least loaded.
        let chosen = pool.into_iter().min_by_key(|a| (Some(a.name.as_str()) != before, load.get(a.name.as_str()).copied().unwrap_or(0), a.name.clone()));
        match chosen {
            Some(a) => {
                *load.entry(a.name.as_str()).or_default() += 1;
                placed.insert(n.side.as_str(), a.name.as_str());
                round.changes.push((n.side.clone(), Some((a.name.clone(), a.epoch))));
            }
            None => {
                if current.contains_key(&n.side) {
                    round.changes.push((n.side.clone(), None));
                }
                round.unplaced.push(Unplaced { side: n.side.clone(), zone: n.zone.clone() });
            }
        }
    }
    round
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agent(name: &str, zone: &str, epoch: i64, alive: bool) -> Agent {
        Agent { name: name.into(), zone: zone.into(), epoch, alive, addresses: Vec::new() }
    }
    fn need(side: &str, zone: &str) -> Need {
        Need { side: side.into(), zone: zone.into(), address: None }
    }
    fn at(pairs: &[(&str, &str, i64)]) -> BTreeMap<String, (String, i64)> {
        pairs.iter().map(|(s, a, e)| (s.to_string(), (a.to_string(), *e))).collect()
    }
    fn apply(current: &mut BTreeMap<String, (String, i64)>, r: &Round) {
        for (side, on) in &r.changes {
            match on {
                Some(p) => current.insert(side.clone(), p.clone()),
                None => current.remove(side),
            };
        }
    }

    #[test]
    fn sides_go_to_their_zones_spread_over_its_agents_and_apart() {
        let agents = [agent("a1", "za", 1, true), agent("a2", "za", 1, true), agent("b1", "zb", 1, true)];
        let needs = [need("vpn-1/master", "za"), need("vpn-1/slave", "zb"), need("vpn-2/master", "za"), need("vpn-3/master", "za"), need("vpn-4/master", "za")];
        let mut cur = BTreeMap::new();
        let r = place(&agents, &needs, &cur);
        apply(&mut cur, &r);
        assert!(r.unplaced.is_empty());
        assert_eq!(cur["vpn-1/slave"].0, "b1");
        let on_a1 = cur.values().filter(|(a, _)| a == "a1").count();
        let on_a2 = cur.values().filter(|(a, _)| a == "a2").count();
        assert_eq!((on_a1, on_a2), (2, 2), "spread over the zone: {cur:?}");
        // Placed sides stay put: a second round changes nothing.
        assert_eq!(place(&agents, &needs, &cur), Round::default());
    }

    #[test]
    fn a_dead_agents_sides_move_within_their_zone_and_a_zone_without_agents_says_so() {
        let mut agents = vec![agent("a1", "za", 1, true), agent("a2", "za", 1, true), agent("b1", "zb", 1, true)];
        let needs = [need("vpn-1/master", "za"), need("vpn-1/slave", "zb")];
        let mut cur = at(&[("vpn-1/master", "a1", 1), ("vpn-1/slave", "b1", 1)]);
        agents[0].alive = false;
        agents[2].alive = false;
        let r = place(&agents, &needs, &cur);
        apply(&mut cur, &r);
        assert_eq!(cur.get("vpn-1/master"), Some(&("a2".to_string(), 1)));
        assert_eq!(cur.get("vpn-1/slave"), None, "no live agent in zb: taken off");
        assert_eq!(r.unplaced, vec![Unplaced { side: "vpn-1/slave".into(), zone: "zb".into() }]);
        // The dead agent registers again (a new epoch): it does not take back what moved.
        agents[0] = agent("a1", "za", 2, true);
        assert!(place(&agents, &needs, &cur).changes.is_empty());
    }

    #[test]
    fn an_agent_that_registered_again_gets_its_sides_back_when_it_is_the_only_one() {
        let agents = [agent("a1", "za", 2, true)];
        let needs = [need("vpn-1/master", "za")];
        let r = place(&agents, &needs, &at(&[("vpn-1/master", "a1", 1)]));
        assert_eq!(r.changes, vec![("vpn-1/master".to_string(), Some(("a1".to_string(), 2)))]);
    }

    #[test]
    fn after_an_outage_every_side_returns_to_the_agent_that_held_it() {
        // Every lease expired (the database was away); every agent registered again.
        let agents = [agent("a1", "za", 2, true), agent("a2", "za", 2, true)];
        let needs = [need("vpn-1/master", "za"), need("vpn-2/master", "za"), need("vpn-3/master", "za")];
        let cur = at(&[("vpn-1/master", "a2", 1), ("vpn-2/master", "a2", 1), ("vpn-3/master", "a2", 1)]);
        let r = place(&agents, &needs, &cur);
        assert!(r.changes.iter().all(|(_, on)| on.as_ref().is_some_and(|(a, e)| a == "a2" && *e == 2)), "{r:?}");
    }

    #[test]
    fn a_gateways_sides_in_one_zone_go_to_two_agents_when_it_has_two() {
        let agents = [agent("a1", "za", 1, true), agent("a2", "za", 1, true)];
        let needs = [need("vpn-1/master", "za"), need("vpn-1/slave", "za")];
        let mut cur = BTreeMap::new();
        let r = place(&agents, &needs, &cur);
        apply(&mut cur, &r);
        assert_ne!(cur["vpn-1/master"].0, cur["vpn-1/slave"].0);
    }

    #[test]
    fn a_side_goes_only_to_an_agent_that_can_bind_its_address() {
        let mut a1 = agent("a1", "za", 1, true);
        a1.addresses = vec!["198.51.100.0/25".parse().unwrap()];
        let mut a2 = agent("a2", "za", 1, true);
        a2.addresses = vec!["198.51.100.128/25".parse().unwrap()];
        let n = |side: &str, ip: &str| Need { side: side.into(), zone: "za".into(), address: Some(ip.parse().unwrap()) };
        let r = place(&[a1.clone(), a2], &[n("vpn-1/master", "198.51.100.200"), n("vpn-2/master", "198.51.100.7")], &BTreeMap::new());
        assert_eq!(r.changes, vec![("vpn-1/master".to_string(), Some(("a2".to_string(), 1))), ("vpn-2/master".to_string(), Some(("a1".to_string(), 1)))]);
        let r = place(&[a1], &[n("vpn-1/master", "198.51.100.200")], &BTreeMap::new());
        assert_eq!(r.unplaced.len(), 1, "no agent can bind it");
    }

    #[test]
    fn sides_of_deleted_gateways_are_taken_off() {
        let agents = [agent("a1", "za", 1, true)];
        let r = place(&agents, &[], &at(&[("vpn-9/master", "a1", 1)]));
        assert_eq!(r.changes, vec![("vpn-9/master".to_string(), None)]);
    }

    #[test]
    fn side_keys_round_trip() {
        assert_eq!(parse_side(&side_key("vpn-1", Role::Slave)), Some(("vpn-1", Role::Slave)));
        assert_eq!(parse_side("vpn-1/other"), None);
        assert_eq!(converged_key("vco-1", Role::Slave), "vco-1#slave");
        assert_eq!(Sides { master: false, slave: true }.roles().collect::<Vec<_>>(), vec![Role::Slave]);
    }
}
