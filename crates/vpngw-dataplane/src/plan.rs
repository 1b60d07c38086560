//! The reconciler's decisions, as pure functions: intent and what a charon reports in, a plan
//! out. The reconciler only applies plans ([`crate::charon::Charon`]) and records what it
//! observes; everything here is tested without a charon.
//!
//! ```text
//!   defs of the gateways ─┐
//!   charon's algorithms ──┴─ desired() ──▶ Desired { defs, withheld }
//!   Desired + loaded names ─ changes() ──▶ unload stale, load missing
//!   Desired + SAs ────────── sa_actions() ▶ close orphans, initiate, refuse clients
//!   Desired + SAs ────────── observations() ▶ statuses per tunnel, clients per server
//! ```

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use vpngw_plane::{status, Observation};

use crate::capabilities::{self, Capabilities};
use crate::ipsec::{self, ConnDef, SaState, Unsupported};
use crate::reconciler::GatewayIntent;

/// What one charon must hold.
#[derive(Debug, Default)]
pub struct Desired<'a> {
    /// The definitions to hold, by name.
    pub defs: BTreeMap<&'a str, &'a ConnDef>,
    /// Tunnels withheld because this charon lacks an algorithm they need.
    pub withheld: Vec<Unsupported>,
    /// Keep loaded definitions that no readable intent names (a document cannot be read, and
    /// such a definition may be one of its tunnels).
    pub keep_unknown: bool,
}

/// The definitions a charon with `caps` must hold. A definition that needs an algorithm it
/// lacks is withheld: it would load, and then every negotiation would fail.
pub fn desired<'a>(defs: impl IntoIterator<Item = &'a ConnDef>, caps: &Capabilities, keep_unknown: bool) -> Desired<'a> {
    let mut out = Desired { keep_unknown, ..Default::default() };
    for d in defs {
        let esp: Vec<&str> = d.children.iter().map(|ch| ch.esp_proposal.as_str()).collect();
        match capabilities::why_not(caps, &d.ike_proposal, &esp) {
            Some(reason) => out.withheld.push(Unsupported { conn_id: d.conn_id.clone(), key: d.key.clone(), reason }),
            None => {
                out.defs.insert(d.name.as_str(), d);
            }
        }
    }
    out
}

impl Desired<'_> {
    /// Whether a loaded definition is to be left alone because it may belong to intent that
    /// cannot be read: it names no tunnel of the readable intent (a known tunnel whose
    /// definition changed is replaced as usual).
    pub fn unknown(&self, name: &str) -> bool {
        let key = ipsec::key_of(name);
        self.keep_unknown && !self.defs.values().any(|d| d.key == key) && !self.withheld.iter().any(|u| u.key == key)
    }

    /// The definition of a tunnel (by connection or tunnel id), if it is held.
    pub fn of_key(&self, key: &str) -> Option<&ConnDef> {
        self.defs.values().find(|d| d.key == key).copied()
    }
}

/// What to unload and load.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Changes<'a> {
    /// Stale definitions, to unload first (a changed tunnel's old definition goes before its
    /// new one is loaded).
    pub unload: Vec<String>,
    pub load: Vec<&'a ConnDef>,
    /// Loaded definitions whose learned prefixes changed: loaded again under the same name,
    /// which leaves their SAs as they are.
    pub relearn: Vec<&'a ConnDef>,
}

/// What a charon holds: each definition vpngw owns, with the learned prefixes' children it was
/// loaded with.
pub type Loaded = HashMap<String, BTreeSet<String>>;

pub fn changes<'a>(d: &Desired<'a>, loaded: &Loaded) -> Changes<'a> {
    let mut unload: Vec<String> = loaded.keys().filter(|n| !d.defs.contains_key(n.as_str()) && !d.unknown(n)).cloned().collect();
    unload.sort();
    let load = d.defs.iter().filter(|(n, _)| !loaded.contains_key(**n)).map(|(_, def)| *def).collect();
    let relearn = d.defs.iter().filter(|(n, def)| loaded.get(**n).is_some_and(|l| *l != def.learned_names())).map(|(_, def)| *def).collect();
    Changes { unload, load, relearn }
}

/// What to do to the SAs.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct SaActions {
    /// (definition, IKE_SA unique id) of IKE_SAs still named after a definition that is gone.
    pub close: Vec<(String, String)>,
    /// (definition, child) to initiate; no child: the IKE_SA alone.
    pub initiate: Vec<(String, Option<String>)>,
    /// (IPsec server id, IKE_SA unique id) of clients past the gateway's SslConnections.
    pub refuse: Vec<(String, String)>,
    /// (child name, CHILD_SA unique id) of the CHILD_SAs of prefixes no longer learned.
    pub close_children: Vec<(String, String)>,
}

/// Decides what to do to the SAs a charon reports. `just_loaded` are definitions loaded in
/// this pass; `due(name, fresh)` says whether an initiation may go out now (it rate-limits
/// re-initiation); `servers` gives each IPsec server's id and how many clients it may keep.
/// Orphaned IKE_SAs are taken out of `states`.
pub fn sa_actions(d: &Desired, states: &mut HashMap<String, SaState>, just_loaded: &HashSet<String>, servers: &[(String, usize)], mut due: impl FnMut(&str, bool) -> bool) -> SaActions {
    let mut out = SaActions::default();
    let mut fresh: HashSet<String> = just_loaded.clone();
    // An IKE_SA still named after a definition that is gone (one that landed on it while it was
    // being replaced) is closed: charon would otherwise put the new definition's CHILD_SAs
    // under it, where no status is read. Its tunnel is negotiated afresh.
    let mut orphans = ipsec::take_orphans(states, |n| d.defs.contains_key(n) || d.unknown(n));
    orphans.sort_by(|a, b| a.0.cmp(&b.0));
    for (name, sa) in orphans {
        out.close.extend(sa.ike_ids.iter().map(|id| (name.clone(), id.clone())));
        let key = ipsec::key_of(&name);
        fresh.extend(d.defs.values().filter(|def| def.key == key).map(|def| def.name.clone()));
    }
    // Initiators: initiate what was just loaded; re-initiate a tunnel without an IKE_SA, and a
    // CHILD_SA that is missing under an established IKE_SA (a child can fail alone).
    for def in d.defs.values().filter(|def| def.initiate) {
        let state = states.get(&def.name);
        if !state.is_some_and(|s| s.present) {
            if due(&def.name, fresh.contains(&def.name)) {
                out.initiate.extend(def.all_children().map(|ch| (def.name.clone(), Some(ch.name.clone()))));
                if def.all_children().next().is_none() {
                    out.initiate.push((def.name.clone(), None));
                }
            }
        } else if let Some(sa) = state.filter(|s| s.ike_established) {
            for ch in def.all_children().filter(|ch| !sa.installed.contains(&ch.name)) {
                if due(&ch.name, false) {
                    out.initiate.push((def.name.clone(), Some(ch.name.clone())));
                }
            }
        }
    }
    // A withdrawn prefix's CHILD_SA closes (the IKE_SA and the other children stay).
    for def in d.defs.values() {
        let Some(sa) = states.get(&def.name) else { continue };
        for (child, id) in &sa.child_ids {
            if ipsec::is_learned_child(&def.name, child) && !def.learned.iter().any(|l| &l.name == child) {
                out.close_children.push((child.clone(), id.clone()));
            }
        }
    }
    // An IPsec server's clients share the gateway's SslConnections with SSL-VPN clients: the
    // newest clients past it are turned away.
    for (id, max) in servers {
        let Some(sa) = d.of_key(id).and_then(|def| states.get(&def.name)) else { continue };
        let mut clients = sa.established.clone();
        clients.sort();
        out.refuse.extend(clients.iter().take(clients.len().saturating_sub(*max)).map(|(_, unique)| (id.clone(), unique.clone())));
    }
    out
}

/// What a pass observed: (IPsec server id, clients online) and (connection id, observation).
#[derive(Debug, Default)]
pub struct Observed {
    pub servers: Vec<(String, u32)>,
    pub conns: Vec<(String, Observation)>,
    /// What charon says of each tunnel's SAs, by tunnel key (for the metrics and `/status`).
    pub sas: Vec<(String, vpngw_metrics::TunnelSa)>,
}

/// What the SAs say of each gateway: every IPsec server's online clients, and every
/// connection's observation (one status per tunnel, straight from the SAs; what this charon
/// cannot negotiate recorded as such, never as converged).
pub fn observations(gws: &[&GatewayIntent], d: &Desired, states: &HashMap<String, SaState>) -> Observed {
    let mut servers = Vec::new();
    let mut conns = Vec::new();
    let mut sas = Vec::new();
    for g in gws {
        for (id, _) in g.servers.iter().filter(|_| g.sides.master) {
            let online = d.of_key(id).and_then(|def| states.get(&def.name)).map(|s| s.established_count.min(g.gw.ssl_connections)).unwrap_or(0);
            servers.push((id.clone(), online));
        }
        for (id, c) in &g.conns {
            let unsupported: BTreeMap<String, String> = g.unsupported.iter().chain(&d.withheld).filter(|u| &u.conn_id == id).map(|u| (u.key.clone(), u.reason.clone())).collect();
            let plane = match unsupported.values().next() {
                Some(reason) => format!("unsupported: {reason}"),
                None => "converged".into(),
            };
            let mut o = Observation { plane: Some(plane), unsupported, ..Default::default() };
            let st = |key: &str| d.of_key(key).map(|def| ipsec::status_of(def, states.get(&def.name))).unwrap_or(status::IKE_DOWN);
            let reading = |key: &str| {
                let sa = d.of_key(key).and_then(|def| states.get(&def.name)).cloned().unwrap_or_default();
                vpngw_metrics::TunnelSa {
                    connection: id.clone(),
                    gateway: g.id.clone(),
                    status: st(key).as_str().to_string(),
                    established_secs: if sa.ike_established { sa.established_secs } else { 0 },
                    bytes_in: sa.bytes_in,
                    bytes_out: sa.bytes_out,
                    packets_in: sa.packets_in,
                    packets_out: sa.packets_out,
                }
            };
            // Only what this plane runs: the tunnels of its sides.
            if c.dual() {
                o.tunnels = c.tunnels.iter().filter(|tu| g.sides.holds(crate::reconciler::tunnel_role(c, &tu.tunnel_id))).map(|tu| (tu.tunnel_id.clone(), st(&tu.tunnel_id))).collect();
                sas.extend(o.tunnels.keys().map(|t| (t.to_string(), reading(t))));
            } else if g.sides.master {
                o.status = Some(st(id));
                sas.push((id.clone(), reading(id)));
            } else {
                continue;
            }
            conns.push((id.clone(), o));
        }
    }
    Observed { servers, conns, sas }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ipsec::{ChildDef, RoutePlan};

    fn def(key: &str, fp: &str, initiate: bool) -> ConnDef {
        let name = format!("{key}-{fp}");
        ConnDef {
            conn_id: key.into(),
            tunnel_id: None,
            key: key.into(),
            name: name.clone(),
            version: 2,
            aggressive: false,
            local_addr: "198.51.100.1".into(),
            remote_addr: "203.0.113.1".into(),
            ike_proposal: "aes128-sha1-modp1024".into(),
            ike_lifetime: 86400,
            dpd: true,
            nat_traversal: true,
            local_id: "198.51.100.1".into(),
            remote_id: "203.0.113.1".into(),
            psk: "k".into(),
            children: vec![ChildDef {
                name: format!("{name}-1"),
                local_ts: vec!["10.1.0.0/16".into()],
                remote_ts: vec!["10.2.0.0/24".into()],
                esp_proposal: "aes128-sha1".into(),
                lifetime: 3600,
                reqid: 1,
            }],
            learned: Vec::new(),
            bgp_child: None,
            initiate,
            priority: None,
            pool: None,
        }
    }

    fn names(v: &[&str]) -> Loaded {
        v.iter().map(|n| (n.to_string(), BTreeSet::new())).collect()
    }

    fn all() -> Capabilities {
        crate::fake::full_capabilities()
    }

    fn up(name: &str, id: &str) -> SaState {
        SaState {
            present: true,
            ike_established: true,
            established_secs: 10,
            established_count: 1,
            established: vec![(10, id.into())],
            installed: vec![format!("{name}-1")],
            child_ids: vec![],
            ike_ids: vec![id.into()],
            ..Default::default()
        }
    }

    #[test]
    fn a_changed_definition_is_unloaded_before_its_new_one_is_loaded() {
        let (a, b) = (def("vco-a", "11111111", true), def("vco-b", "22222222", true));
        let d = desired([&a, &b], &all(), false);
        let loaded = names(&["vco-a-11111111", "vco-b-00000000", "vco-gone-33333333"]);
        let c = changes(&d, &loaded);
        assert_eq!(c.unload, ["vco-b-00000000", "vco-gone-33333333"]);
        assert_eq!(c.load.iter().map(|d| d.name.as_str()).collect::<Vec<_>>(), ["vco-b-22222222"]);
        assert_eq!(changes(&d, &names(&["vco-a-11111111", "vco-b-22222222"])), Changes::default(), "nothing to do");
        // A learned prefix more: the same definition, loaded again.
        let mut a2 = a.clone();
        a2.learned.push(ChildDef {
            name: "vco-a-11111111-p0a0b0c0d".into(),
            local_ts: vec!["0.0.0.0/0".into()],
            remote_ts: vec!["10.9.0.0/24".into()],
            esp_proposal: "aes128-sha1".into(),
            lifetime: 3600,
            reqid: 9,
        });
        let d2 = desired([&a2, &b], &all(), false);
        let c = changes(&d2, &names(&["vco-a-11111111", "vco-b-22222222"]));
        assert_eq!((c.load.len(), c.unload.len(), c.relearn.iter().map(|d| d.name.as_str()).collect::<Vec<_>>()), (0, 0, vec!["vco-a-11111111"]));
    }

    #[test]
    fn with_unreadable_intent_only_known_tunnels_are_replaced() {
        let a = def("vco-a", "11111111", true);
        let d = desired([&a], &all(), true);
        let loaded = names(&["vco-a-00000000", "vco-unknown-33333333"]);
        assert_eq!(changes(&d, &loaded).unload, ["vco-a-00000000"], "the unknown one may be an unreadable connection's");
        let mut states: HashMap<String, SaState> = [("vco-unknown-33333333".to_string(), up("vco-unknown-33333333", "7"))].into();
        assert!(sa_actions(&d, &mut states, &HashSet::new(), &[], |_, _| true).close.is_empty());
    }

    #[test]
    fn a_definition_that_needs_a_missing_algorithm_is_withheld() {
        let mut des = def("vco-d", "11111111", true);
        des.ike_proposal = "des-md5-modp1024".into();
        let caps = crate::fake::capabilities_without(&["DES_CBC"]);
        let d = desired([&des], &caps, false);
        assert!(d.defs.is_empty());
        assert_eq!(d.withheld.len(), 1);
        assert!(d.withheld[0].reason.contains("DES_CBC"));
        // And a loaded one is unloaded: its key is known.
        assert_eq!(changes(&d, &names(&["vco-d-11111111"])).unload, ["vco-d-11111111"]);
    }

    #[test]
    fn initiators_start_fresh_tunnels_and_missing_children_and_orphans_are_closed() {
        let (a, b, r) = (def("vco-a", "11111111", true), def("vco-b", "22222222", true), def("vco-r", "33333333", false));
        let d = desired([&a, &b, &r], &all(), false);
        let mut b_up = up("vco-b-22222222", "2");
        b_up.installed.clear();
        let mut states: HashMap<String, SaState> = [("vco-b-22222222".to_string(), b_up), ("vco-a-00000000".to_string(), up("vco-a-00000000", "9"))].into();
        let acts = sa_actions(&d, &mut states, &HashSet::new(), &[], |_, _| true);
        assert_eq!(acts.close, [("vco-a-00000000".to_string(), "9".to_string())]);
        assert_eq!(
            acts.initiate,
            [("vco-a-11111111".to_string(), Some("vco-a-11111111-1".to_string())), ("vco-b-22222222".to_string(), Some("vco-b-22222222-1".to_string()))],
            "a: no IKE_SA; b: its child is missing; r: a responder"
        );
        assert!(!states.contains_key("vco-a-00000000"), "the orphan is taken out");
        // Rate limiting: a re-initiation that is not due waits; a fresh one goes at once.
        let mut states = HashMap::new();
        let acts = sa_actions(&d, &mut states, &["vco-a-11111111".to_string()].into(), &[], |_, fresh| fresh);
        assert_eq!(acts.initiate.len(), 1);
    }

    #[test]
    fn clients_past_the_limit_are_refused_newest_first() {
        let mut s = def("iss-1", "11111111", false);
        s.pool = Some(("iss-1-11111111-pool".into(), "192.168.0.0/24".into()));
        let d = desired([&s], &all(), false);
        let mut sa = up("iss-1-11111111", "1");
        sa.established = vec![(100, "1".into()), (5, "3".into()), (50, "2".into())];
        sa.established_count = 3;
        let mut states: HashMap<String, SaState> = [("iss-1-11111111".to_string(), sa)].into();
        let acts = sa_actions(&d, &mut states, &HashSet::new(), &[("iss-1".to_string(), 1)], |_, _| true);
        assert_eq!(acts.refuse, [("iss-1".to_string(), "3".to_string()), ("iss-1".to_string(), "2".to_string())], "established the shortest time first");
    }

    #[test]
    fn observations_read_statuses_from_the_sas() {
        let g = crate::fake::gateway("vpn-1", vec![crate::fake::connection("vco-a", "cgw-a", true)]);
        let cgws = [("cgw-a".to_string(), "203.0.113.1".to_string())].into();
        let (defs, _) = ipsec::definitions("vco-a", &g.conns[0].1, &cgws, &RoutePlan::default());
        let d = desired(&defs, &all(), false);
        let obs = observations(&[&g], &d, &HashMap::new()).conns;
        assert_eq!((obs[0].1.status, obs[0].1.plane.as_deref()), (Some(status::IKE_DOWN), Some("converged")));
        let name = defs[0].name.clone();
        let states = [(name.clone(), up(&name, "1"))].into();
        let obs = observations(&[&g], &d, &states).conns;
        assert_eq!(obs[0].1.status, Some(status::IPSEC_UP));
        let d = desired(&defs, &crate::fake::capabilities_without(&["AES_CBC"]), false);
        let obs = observations(&[&g], &d, &states).conns;
        assert_eq!(obs[0].1.status, Some(status::IKE_DOWN), "withheld: never claimed up");
        assert!(obs[0].1.plane.as_deref().unwrap().starts_with("unsupported: this charon lacks the encryption algorithm AES_CBC"));
    }
}
