//! Intent → strongSwan: one VICI connection definition per tunnel of an IPsec connection, and
//! the API's negotiation status from charon's security associations.
//!
//! A definition's name is its key (the connection id, or the tunnel id of a dual-tunnel
//! connection) and a fingerprint of everything it contains: a changed setting is a new name, so
//! the reconciler unloads the old definition (ending its SAs) and loads the new one, and after a
//! restart of vpngw it recognises definitions it already loaded without reading them back.

use std::collections::HashMap;

use sha2::{Digest, Sha256};
use vpngw_model::connection::{BgpCfg, VpnConnection};
use vpngw_model::ipsec_server::IpsecServer;
use vpngw_model::plane::status;
use vpngw_model::proposal::{child_selectors, esp_proposal, identity, ike_proposal, tunnel_priority};
use vpngw_model::route::VpnRoute;

use crate::vici::Message;

/// Names of definitions vpngw owns start with these (other definitions in a shared charon are
/// left alone).
const OWNED_PREFIXES: &[&str] = &["vco-", "tun-", "iss-"];

pub fn owned(name: &str) -> bool {
    OWNED_PREFIXES.iter().any(|p| name.starts_with(p))
}

/// The key part of a definition name (`vco-x-1a2b3c4d` → `vco-x`).
pub fn key_of(name: &str) -> &str {
    name.rsplit_once('-').map(|(k, _)| k).unwrap_or(name)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChildDef {
    pub name: String,
    pub local_ts: Vec<String>,
    pub remote_ts: Vec<String>,
    pub esp_proposal: String,
    pub lifetime: u32,
    /// Explicit, so that a dropped packet's reqid (libipsec has no acquires) names its child.
    pub reqid: u32,
}

/// One tunnel as charon runs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnDef {
    /// The API connection this belongs to.
    pub conn_id: String,
    /// The tunnel id of a dual-tunnel connection.
    pub tunnel_id: Option<String>,
    pub key: String,
    pub name: String,
    pub version: u8,
    pub aggressive: bool,
    pub local_addr: String,
    pub remote_addr: String,
    pub ike_proposal: String,
    pub ike_lifetime: u32,
    pub dpd: bool,
    pub nat_traversal: bool,
    pub local_id: String,
    pub remote_id: String,
    pub psk: vpngw_model::secret::Secret,
    pub children: Vec<ChildDef>,
    /// The CHILD_SAs of the tunnel's BGP session and of the prefixes it learned
    /// (destination-routing mode). Not part of the definition's name: a change of BGP settings
    /// or a learned or withdrawn prefix adds or closes its CHILD_SA under the running IKE_SA,
    /// and nothing else renegotiates. Not part of the tunnel's status either.
    pub learned: Vec<ChildDef>,
    /// The name of the BGP session's CHILD_SA (among `learned`), when the tunnel runs BGP.
    pub bgp_child: Option<String>,
    /// EffectImmediately: initiate now (and keep it up); otherwise wait for traffic.
    pub initiate: bool,
    pub priority: Option<u32>,
    /// An IPsec server: clients from anywhere (`remote_addr` %any), addresses from this pool
    /// (name, CIDR); it only responds.
    pub pool: Option<(String, String)>,
}

/// Why a tunnel cannot be built on this strongSwan (sm4/sm3), reported and not loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsupported {
    pub conn_id: String,
    pub key: String,
    pub reason: String,
}

fn reqid_of(child: &str) -> u32 {
    let h = Sha256::digest(child.as_bytes());
    // charon's own reqids count up from 1; ours live high above them.
    0x1000_0000 | (u32::from_be_bytes([h[0], h[1], h[2], h[3]]) & 0x0fff_ffff)
}

/// An IPsec server's definition: a responder for clients from anywhere, with a virtual-IP pool
/// and LocalSubnet as its selector (the client's side is its virtual IP).
pub fn server_definition(id: &str, s: &IpsecServer) -> Result<ConnDef, Unsupported> {
    let bad = |reason: String| Unsupported { conn_id: id.to_string(), key: id.to_string(), reason };
    let ike_p = ike_proposal(&s.ike).map_err(bad)?;
    let esp_p = esp_proposal(&s.ipsec).map_err(bad)?;
    let mut d = ConnDef {
        conn_id: id.to_string(),
        tunnel_id: None,
        key: id.to_string(),
        name: String::new(),
        version: if s.ike.ike_version == "ikev2" { 2 } else { 1 },
        aggressive: s.ike.ike_mode == "aggressive",
        local_addr: s.internet_ip.clone(),
        remote_addr: "%any".into(),
        ike_proposal: ike_p,
        ike_lifetime: s.ike.ike_lifetime,
        dpd: true,
        nat_traversal: true,
        local_id: s.ike.local_id.clone(),
        remote_id: s.ike.remote_id.clone(),
        psk: s.ike.psk.clone(),
        children: vec![ChildDef { name: String::new(), local_ts: s.local_subnet.clone(), remote_ts: Vec::new(), esp_proposal: esp_p, lifetime: s.ipsec.ipsec_lifetime, reqid: 0 }],
        learned: Vec::new(),
        bgp_child: None,
        initiate: false,
        priority: None,
        pool: Some((String::new(), s.client_ip_pool.clone())),
    };
    d.name = format!("{id}-{}", fingerprint(&d));
    d.children[0].name = format!("{}-1", d.name);
    d.pool = Some((format!("{}-pool", d.name), s.client_ip_pool.clone()));
    Ok(d)
}

/// Whether a connection is in destination-routing mode (0.0.0.0/0 on both sides): its routes,
/// not its selectors, say what it carries.
pub fn routed(c: &VpnConnection) -> bool {
    let any = |v: &[String]| v.len() == 1 && v[0] == "0.0.0.0/0";
    any(&c.local_subnet) && any(&c.remote_subnet)
}

/// Which connection carries each routed target now. For each target (a destination, or a policy
/// route's source, destination and priority) the active route (weight 100) carries it while its
/// connection is usable, else the standby (weight 0) while that one is; with neither usable the
/// target stays on the active route's connection unless a failed health check with policy
/// `revoke_route` withdrew it there.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RoutePlan {
    /// (local selector, remote selector) pairs by connection id.
    owned: HashMap<String, Vec<(String, String)>>,
    /// The same for BGP-learned prefixes, by tunnel key (the tunnel whose session learned them).
    learned: HashMap<String, Vec<(String, String)>>,
}

/// What the plan needs to know of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Health {
    /// Its IKE_SA is up (on some tunnel).
    pub established: bool,
    /// A failed health check with policy revoke_route withdraws its routes.
    pub revoked: bool,
}

impl Health {
    pub fn of(c: &VpnConnection) -> Health {
        let up = |s: &status::NegotiationStatus| *s != status::IKE_DOWN;
        let established = if c.dual() { c.tunnels.iter().any(|t| up(&t.status)) } else { up(&c.status) };
        let revoked = c.health.enable && c.health.policy == "revoke_route" && c.health_status == "failed";
        Health { established, revoked }
    }
    fn usable(self) -> bool {
        self.established && !self.revoked
    }
}

impl RoutePlan {
    pub fn new(routes: &[VpnRoute], health: &HashMap<String, Health>) -> RoutePlan {
        // (source, destination, priority) → (active route, standby route)
        type Pair<'a> = (Option<&'a VpnRoute>, Option<&'a VpnRoute>);
        let mut targets: std::collections::BTreeMap<(String, String, u32), Pair> = Default::default();
        for r in routes {
            let src = if r.policy() { r.route_source.clone() } else { "0.0.0.0/0".to_string() };
            let slot = targets.entry((src, r.route_dest.clone(), r.priority)).or_default();
            if r.weight == 100 {
                slot.0 = Some(r);
            } else {
                slot.1 = Some(r);
            }
        }
        let h = |r: &VpnRoute| health.get(r.next_hop.as_str()).copied().unwrap_or(Health { established: false, revoked: false });
        let mut owned: HashMap<String, Vec<(String, String)>> = HashMap::new();
        for ((src, dest, _), (active, standby)) in targets {
            let owner =
                [active, standby].into_iter().flatten().find(|r| h(r).usable()).or(active.filter(|r| !h(r).revoked)).or(if active.is_none() { standby.filter(|r| !h(r).revoked) } else { None });
            if let Some(r) = owner {
                owned.entry(r.next_hop.to_string()).or_default().push((src, dest));
            }
        }
        RoutePlan { owned, learned: HashMap::new() }
    }

    /// Adds the prefixes the BGP sessions of destination-routing connections learned: each is
    /// carried by the tunnel that learned it. A destination route to the same prefix takes
    /// precedence (the documented order: policy routes, then destination routes, then BGP
    /// routes); a prefix that holds one of `avoid` (the gateway's own public addresses, the
    /// customer gateways', the VPC's CIDR blocks) is not carried: it would take the tunnel's own
    /// packets, or the VPC's, into the tunnel.
    ///
    /// A learned prefix's traffic is from the VPC (`sources`, its CIDR blocks) to the prefix:
    /// those are its selectors, so that the customer's side of the tunnel routes only the VPC
    /// back into it (a 0.0.0.0/0 there would take its own IKE packets to the gateway's other
    /// tunnels into the tunnel).
    pub fn with_learned(mut self, conns: &[(String, VpnConnection)], avoid: &[ipnet::Ipv4Net], sources: &[ipnet::Ipv4Net]) -> RoutePlan {
        let statics: std::collections::HashSet<&str> = self.owned.values().flatten().filter(|(src, _)| src == "0.0.0.0/0").map(|(_, d)| d.as_str()).collect();
        let mut learned: HashMap<String, Vec<(String, String)>> = HashMap::new();
        for (_, c) in conns.iter().filter(|(_, c)| routed(c)) {
            for r in &c.bgp_routes {
                let Ok(p) = r.route.prefix.parse::<ipnet::Ipv4Net>() else { continue };
                if statics.contains(r.route.prefix.as_str()) || avoid.iter().any(|a| p.contains(a) || a.contains(&p)) {
                    continue;
                }
                let entry = learned.entry(r.tunnel.clone()).or_default();
                if sources.is_empty() {
                    entry.push(("0.0.0.0/0".into(), p.to_string()));
                }
                entry.extend(sources.iter().map(|s| (s.to_string(), p.to_string())));
            }
        }
        for v in learned.values_mut() {
            v.sort();
            v.dedup();
        }
        self.learned = learned;
        self
    }

    pub fn owned(&self, conn: &str) -> &[(String, String)] {
        self.owned.get(conn).map(Vec::as_slice).unwrap_or(&[])
    }

    /// Every learned prefix some tunnel carries.
    pub fn learned_prefixes(&self) -> Vec<String> {
        let mut v: Vec<String> = self.learned.values().flatten().map(|(_, d)| d.clone()).collect();
        v.sort();
        v.dedup();
        v
    }

    /// The learned prefixes a tunnel carries.
    pub fn learned(&self, key: &str) -> &[(String, String)] {
        self.learned.get(key).map(Vec::as_slice).unwrap_or(&[])
    }
}

/// The CHILD_SAs' selectors of a connection: its subnets, or in destination-routing mode the
/// targets the plan gives it (one child each) and a child for its health probe.
fn selectors(conn_id: &str, c: &VpnConnection, ike_version: &str, plan: &RoutePlan) -> Vec<(Vec<String>, Vec<String>)> {
    let out = if !routed(c) {
        child_selectors(ike_version, &c.local_subnet, &c.remote_subnet)
    } else {
        let mut out: Vec<(Vec<String>, Vec<String>)> = plan.owned(conn_id).iter().map(|(l, r)| (vec![l.clone()], vec![r.clone()])).collect();
        if c.health.enable && !c.health.sip.is_empty() && !c.health.dip.is_empty() {
            out.push((vec![format!("{}/32", c.health.sip)], vec![format!("{}/32", c.health.dip)]));
        }
        out
    };
    out
}

/// The selectors of a tunnel's BGP session (LocalBgpIp/32, peer/32), when BGP is on and the
/// addresses are known.
pub fn bgp_selectors(b: &BgpCfg) -> Option<(String, String)> {
    let local: std::net::Ipv4Addr = b.local_bgp_ip.parse().ok()?;
    let peer: std::net::Ipv4Addr = b.peer_ip().parse().ok()?;
    b.enable.then(|| (format!("{local}/32"), format!("{peer}/32")))
}

/// The definitions of one connection. `cgw_ip` maps customer gateway ids to their addresses;
/// `plan` says which routed targets it carries (destination-routing mode).
pub fn definitions(conn_id: &str, c: &VpnConnection, cgw_ip: &HashMap<String, String>, plan: &RoutePlan) -> (Vec<ConnDef>, Vec<Unsupported>) {
    struct T<'a> {
        key: String,
        tunnel: Option<String>,
        local: &'a str,
        cgw: &'a str,
        ike: &'a vpngw_model::connection::IkeCfg,
        ipsec: &'a vpngw_model::connection::IpsecCfg,
        dpd: bool,
        nat: bool,
        role: Option<vpngw_model::connection::TunnelRole>,
        bgp: Option<&'a BgpCfg>,
    }
    let tunnels: Vec<T> = if c.dual() {
        c.tunnels
            .iter()
            .map(|t| T {
                key: t.tunnel_id.to_string(),
                tunnel: Some(t.tunnel_id.to_string()),
                local: &t.internet_ip,
                cgw: &t.customer_gateway_id,
                ike: &t.ike,
                ipsec: &t.ipsec,
                dpd: t.enable_dpd,
                nat: t.enable_nat_traversal,
                role: Some(t.role),
                bgp: c.enable_tunnels_bgp.then_some(&t.bgp),
            })
            .collect()
    } else {
        vec![T {
            key: conn_id.to_string(),
            tunnel: None,
            local: &c.internet_ip,
            cgw: &c.customer_gateway_id,
            ike: &c.ike,
            ipsec: &c.ipsec,
            dpd: c.enable_dpd,
            nat: c.enable_nat_traversal,
            role: None,
            bgp: Some(&c.bgp),
        }]
    };
    let mut defs = Vec::new();
    let mut bad = Vec::new();
    for t in tunnels {
        let (ike_p, esp_p) = match (ike_proposal(t.ike), esp_proposal(t.ipsec)) {
            (Ok(i), Ok(e)) => (i, e),
            (Err(why), _) | (_, Err(why)) => {
                bad.push(Unsupported { conn_id: conn_id.to_string(), key: t.key, reason: why });
                continue;
            }
        };
        let mut d = ConnDef {
            conn_id: conn_id.to_string(),
            tunnel_id: t.tunnel,
            key: t.key.clone(),
            name: String::new(),
            version: if t.ike.ike_version == "ikev2" { 2 } else { 1 },
            aggressive: t.ike.ike_mode == "aggressive",
            local_addr: t.local.to_string(),
            remote_addr: cgw_ip.get(t.cgw).cloned().unwrap_or_default(),
            ike_proposal: ike_p,
            ike_lifetime: t.ike.ike_lifetime,
            dpd: t.dpd,
            nat_traversal: t.nat,
            local_id: t.ike.local_id.clone(),
            remote_id: t.ike.remote_id.clone(),
            psk: t.ike.psk.clone(),
            children: selectors(conn_id, c, &t.ike.ike_version, plan)
                .into_iter()
                .map(|(l, r)| ChildDef { name: String::new(), local_ts: l, remote_ts: r, esp_proposal: esp_p.clone(), lifetime: t.ipsec.ipsec_lifetime, reqid: 0 })
                .collect(),
            learned: Vec::new(),
            bgp_child: None,
            initiate: c.effect_immediately,
            priority: tunnel_priority(t.role),
            pool: None,
        };
        let fp = fingerprint(&d);
        d.name = format!("{}-{fp}", t.key);
        for (i, ch) in d.children.iter_mut().enumerate() {
            ch.name = format!("{}-{}", d.name, i + 1);
            ch.reqid = reqid_of(&ch.name);
        }
        // The tunnel's BGP session rides a CHILD_SA of its own, from LocalBgpIp to the peer's
        // address in TunnelCidr. Like a learned prefix's, it is not part of the definition's
        // name: turning BGP on or off, or a new TunnelCidr, adds or closes that CHILD_SA under
        // the running IKE_SA.
        if let Some((l, r)) = t.bgp.and_then(bgp_selectors) {
            let name = learned_child_name(&d.name, &format!("bgp:{l}>{r}"));
            d.bgp_child = Some(name.clone());
            d.learned.push(ChildDef { reqid: reqid_of(&name), name, local_ts: vec![l], remote_ts: vec![r], esp_proposal: esp_p.clone(), lifetime: t.ipsec.ipsec_lifetime });
        }
        // Each learned prefix the tunnel carries (and no fixed child already does), named after
        // the prefix so that its name, and reqid, stay while it is learned.
        if routed(c) {
            for (l, r) in plan.learned(&t.key) {
                if d.children.iter().any(|ch| ch.local_ts == [l.clone()] && ch.remote_ts == [r.clone()]) {
                    continue;
                }
                let name = learned_child_name(&d.name, &format!("{l}>{r}"));
                d.learned.push(ChildDef { reqid: reqid_of(&name), name, local_ts: vec![l.clone()], remote_ts: vec![r.clone()], esp_proposal: esp_p.clone(), lifetime: t.ipsec.ipsec_lifetime });
            }
        }
        defs.push(d);
    }
    (defs, bad)
}

/// The name of a learned prefix's CHILD_SA under a definition, from its selectors
/// (`<source>><prefix>`): `<definition>-p<8 hex digits>`.
pub fn learned_child_name(def: &str, selectors: &str) -> String {
    format!("{def}-p{}", hex::encode(&Sha256::digest(selectors.as_bytes())[..4]))
}

/// Whether a child name is a learned prefix's under this definition.
pub fn is_learned_child(def: &str, child: &str) -> bool {
    child.strip_prefix(def).and_then(|r| r.strip_prefix("-p")).is_some_and(|h| h.len() == 8 && h.bytes().all(|b| b.is_ascii_hexdigit()))
}

impl ConnDef {
    /// Every child: the fixed ones, then the learned prefixes'.
    pub fn all_children(&self) -> impl Iterator<Item = &ChildDef> {
        self.children.iter().chain(&self.learned)
    }

    /// The names of the learned children: when they change, the definition is loaded again
    /// under the same name.
    pub fn learned_names(&self) -> std::collections::BTreeSet<String> {
        self.learned.iter().map(|c| c.name.clone()).collect()
    }
}

fn fingerprint(d: &ConnDef) -> String {
    let text = format!("{:?}", Fingerprinted(d));
    hex::encode(&Sha256::digest(text.as_bytes())[..4])
}

/// What a definition's fingerprint hashes: every field, the PSK included (a new PSK is a new
/// definition), written as `ConnDef`'s derived `Debug` wrote it before secrets were redacted
/// there, so that definition names, and with them the SAs, survive an upgrade of vpngw.
struct Fingerprinted<'a>(&'a ConnDef);

impl std::fmt::Debug for Fingerprinted<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let d = self.0;
        f.debug_struct("ConnDef")
            .field("conn_id", &d.conn_id)
            .field("tunnel_id", &d.tunnel_id)
            .field("key", &d.key)
            .field("name", &d.name)
            .field("version", &d.version)
            .field("aggressive", &d.aggressive)
            .field("local_addr", &d.local_addr)
            .field("remote_addr", &d.remote_addr)
            .field("ike_proposal", &d.ike_proposal)
            .field("ike_lifetime", &d.ike_lifetime)
            .field("dpd", &d.dpd)
            .field("nat_traversal", &d.nat_traversal)
            .field("local_id", &d.local_id)
            .field("remote_id", &d.remote_id)
            .field("psk", &d.psk.expose())
            .field("children", &d.children)
            .field("initiate", &d.initiate)
            .field("priority", &d.priority)
            .field("pool", &d.pool)
            .finish()
    }
}

fn secs(n: u32) -> String {
    format!("{n}s")
}

impl ConnDef {
    /// The `load-conn` message.
    pub fn load_conn(&self) -> Message {
        let mut children = Message::new();
        for ch in self.all_children() {
            let responder = self.pool.is_some();
            let mut m = Message::new().list("local_ts", &ch.local_ts);
            if !ch.remote_ts.is_empty() {
                m = m.list("remote_ts", &ch.remote_ts);
            }
            m = m.list("esp_proposals", [&ch.esp_proposal]).kv("rekey_time", secs(ch.lifetime));
            if !responder {
                m = m.kv("reqid", ch.reqid.to_string());
            }
            // The reconciler initiates; charon only installs the trap or waits for the peer.
            m = m
                .kv("start_action", if self.initiate || responder { "none" } else { "trap" })
                .kv("dpd_action", if self.initiate { "restart" } else { "clear" })
                .kv("close_action", if self.initiate { "start" } else { "none" });
            if let Some(p) = self.priority {
                m = m.kv("priority", p.to_string());
            }
            children = children.section(&ch.name, m);
        }
        let mut conn = Message::new();
        if let Some((pool, _)) = &self.pool {
            conn = conn.list("pools", [pool]);
        }
        let mut conn = conn
            .kv("version", self.version.to_string())
            .kv("aggressive", if self.aggressive { "yes" } else { "no" })
            .list("local_addrs", [&self.local_addr])
            .list("remote_addrs", [&self.remote_addr])
            .list("proposals", [&self.ike_proposal])
            .kv("rekey_time", secs(self.ike_lifetime))
            // EnableNatTraversal=false: strongSwan 5 cannot turn NAT detection off; the closest
            // is never forcing encapsulation, which is also what `true` does (NAT-T when detected).
            .kv("encap", "no")
            .kv("mobike", "no")
            .kv("unique", if self.pool.is_some() { "no" } else { "replace" })
            .kv("keyingtries", "0");
        if self.dpd {
            conn = conn.kv("dpd_delay", "10s").kv("dpd_timeout", "30s");
        }
        if self.all_children().next().is_none() && self.version == 2 {
            // A routed connection that carries nothing now still keeps its IKE_SA (RFC 6023).
            conn = conn.kv("childless", "allow");
        }
        conn = conn
            .section("local", Message::new().kv("auth", "psk").kv("id", identity(&self.local_id)))
            .section("remote", Message::new().kv("auth", "psk").kv("id", if self.remote_id.is_empty() { "%any".to_string() } else { identity(&self.remote_id) }))
            .section("children", children);
        Message::new().section(&self.name, conn)
    }

    /// The `load-shared` message: the PSK for the pair of identities, under the definition's name.
    pub fn load_shared(&self) -> Message {
        let mut owners = vec![identity(&self.local_id)];
        if !self.remote_id.is_empty() {
            owners.push(identity(&self.remote_id));
        }
        Message::new().kv("id", &self.name).kv("type", "IKE").kv("data", self.psk.expose()).list("owners", owners)
    }

    /// The `load-pool` message of an IPsec server's client pool.
    pub fn load_pool(&self) -> Option<Message> {
        self.pool.as_ref().map(|(name, cidr)| Message::new().section(name, Message::new().kv("addrs", cidr)))
    }
}

/// What charon holds for one definition, from `list-sas`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SaState {
    /// Some IKE_SA exists (connecting, established, rekeying...).
    pub present: bool,
    pub ike_established: bool,
    /// Seconds since the IKE_SA was established.
    pub established_secs: u64,
    /// Established IKE_SAs under this name (an IPsec server's online clients).
    pub established_count: u32,
    /// (seconds established, unique id) of each established IKE_SA.
    pub established: Vec<(u64, String)>,
    /// Names of the children with an INSTALLED CHILD_SA.
    pub installed: Vec<String>,
    /// (child name, CHILD_SA unique id) of every CHILD_SA, in any state.
    pub child_ids: Vec<(String, String)>,
    /// The unique id of every IKE_SA under this name, in any state.
    pub ike_ids: Vec<String>,
    /// What its installed CHILD_SAs carried (bytes and packets in, out), as charon counts them:
    /// each CHILD_SA counts from its installation, so a rekey starts them again.
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub packets_in: u64,
    pub packets_out: u64,
}

/// The SAs of each loaded definition name, from `list-sas` events.
pub fn sa_states(events: &[Message]) -> HashMap<String, SaState> {
    let mut out: HashMap<String, SaState> = HashMap::new();
    for ev in events {
        for (name, ike) in ev.sections() {
            let e = out.entry(name.to_string()).or_default();
            e.present = true;
            e.ike_ids.push(ike.str("uniqueid").to_string());
            if ike.str("state") == "ESTABLISHED" {
                e.ike_established = true;
                e.established_count += 1;
                e.established.push((ike.str("established").parse().unwrap_or(0), ike.str("uniqueid").to_string()));
                e.established_secs = e.established_secs.max(ike.str("established").parse().unwrap_or(0));
            }
            if let Some(children) = ike.sec("child-sas") {
                for (_, ch) in children.sections() {
                    if ch.str("state") == "INSTALLED" {
                        e.installed.push(ch.str("name").to_string());
                        let n = |k: &str| ch.str(k).parse::<u64>().unwrap_or(0);
                        e.bytes_in += n("bytes-in");
                        e.bytes_out += n("bytes-out");
                        e.packets_in += n("packets-in");
                        e.packets_out += n("packets-out");
                    }
                    e.child_ids.push((ch.str("name").to_string(), ch.str("uniqueid").to_string()));
                }
            }
        }
    }
    out
}

/// Takes out of `states` the SAs of names this service owns that are not desired: IKE_SAs left
/// on a definition that has been replaced or removed.
pub fn take_orphans(states: &mut HashMap<String, SaState>, desired: impl Fn(&str) -> bool) -> Vec<(String, SaState)> {
    let names: Vec<String> = states.keys().filter(|n| owned(n) && !desired(n)).cloned().collect();
    names.into_iter().filter_map(|n| states.remove_entry(&n)).collect()
}

/// How long an IKE_SA may wait for its CHILD_SAs before phase 2 counts as failed.
const PHASE2_GRACE_SECS: u64 = 5;

/// The API status of a definition from its SAs.
pub fn status_of(def: &ConnDef, sa: Option<&SaState>) -> status::NegotiationStatus {
    let Some(sa) = sa.filter(|s| s.ike_established) else { return status::IKE_DOWN };
    if def.children.iter().all(|ch| sa.installed.iter().any(|n| n == &ch.name)) {
        status::IPSEC_UP
    } else if sa.established_secs > PHASE2_GRACE_SECS {
        status::IPSEC_DOWN
    } else {
        status::IKE_UP
    }
}

/// The reqid → (definition name, child name) of definitions waiting for traffic.
pub fn trap_reqids(defs: &[&ConnDef]) -> HashMap<u32, (String, String)> {
    defs.iter().filter(|d| !d.initiate && d.pool.is_none()).flat_map(|d| d.all_children().map(|c| (c.reqid, (d.name.clone(), c.name.clone())))).collect()
}

/// The reqid of libipsec's "no outbound SA" message: traffic matched a trap policy.
pub fn dropped_reqid(log: &str) -> Option<u32> {
    let rest = log.split_once("could not find an outbound IPsec SA for reqid {")?.1;
    rest.split_once('}')?.0.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use vpngw_model::connection::{HealthCheck, IkeCfg, IpsecCfg, Tunnel};

    fn conn(version: &str) -> VpnConnection {
        let ike = IkeCfg {
            psk: "k".into(),
            ike_version: version.into(),
            ike_mode: "aggressive".into(),
            ike_enc_alg: "aes256".into(),
            ike_auth_alg: "sha256".into(),
            ike_pfs: "group14".into(),
            ike_lifetime: 3600,
            local_id: "198.51.100.1".into(),
            remote_id: "site.example.com".into(),
        };
        serde_json::from_value(serde_json::json!({
            "name": "n", "customer_gateway_id": "cgw-1", "cgw_ids": ["cgw-1"],
            "local_subnet": ["10.1.0.0/16", "10.2.0.0/16"], "remote_subnet": ["10.9.0.0/24"],
            "effect_immediately": true, "auto_config_route": true, "enable_dpd": true, "enable_nat_traversal": true,
            "remote_ca_certificate": "", "ike": ike,
            "ipsec": IpsecCfg { ipsec_enc_alg: "3des".into(), ipsec_auth_alg: "md5".into(), ipsec_pfs: "disabled".into(), ipsec_lifetime: 1800 },
            "bgp": {"enable": false, "local_asn": 45104, "tunnel_cidr": "", "local_bgp_ip": ""},
            "health": HealthCheck { enable: false, sip: String::new(), dip: String::new(), interval: 3, retry: 3, policy: "revoke_route".into() },
            "enable_tunnels_bgp": false, "tunnels": Vec::<Tunnel>::new(), "status": "ike_sa_not_established",
            "internet_ip": "198.51.100.1", "zone_no": "z", "resource_group_id": "rg", "negotiation_generation": 1,
        }))
        .unwrap()
    }

    fn cgws() -> HashMap<String, String> {
        [("cgw-1".to_string(), "203.0.113.9".to_string())].into()
    }

    #[test]
    fn ikev1_gets_one_child_per_selector_pair_and_ikev2_one_child() {
        let (v1, _) = definitions("vco-1", &conn("ikev1"), &cgws(), &RoutePlan::default());
        assert_eq!(v1[0].children.len(), 2);
        assert_eq!(v1[0].children[1].local_ts, ["10.2.0.0/16"]);
        let (v2, _) = definitions("vco-1", &conn("ikev2"), &cgws(), &RoutePlan::default());
        assert_eq!(v2[0].children.len(), 1);
        assert_eq!(v2[0].children[0].local_ts, ["10.1.0.0/16", "10.2.0.0/16"]);
    }

    #[test]
    fn the_message_maps_every_setting() {
        let (d, _) = definitions("vco-1", &conn("ikev1"), &cgws(), &RoutePlan::default());
        let d = &d[0];
        assert_eq!(key_of(&d.name), "vco-1");
        let m = d.load_conn();
        let c = m.sec(&d.name).unwrap();
        assert_eq!((c.str("version"), c.str("aggressive"), c.str("rekey_time")), ("1", "yes", "3600s"));
        assert_eq!(c.strs("proposals"), ["aes256-sha256-modp2048"]);
        assert_eq!(c.strs("remote_addrs"), ["203.0.113.9"]);
        assert_eq!(c.str("dpd_delay"), "10s");
        assert_eq!(c.sec("remote").unwrap().str("id"), "fqdn:site.example.com");
        let child = c.sec("children").unwrap().sec(&d.children[0].name).unwrap();
        assert_eq!(child.strs("esp_proposals"), ["3des-md5"], "PFS disabled: no DH group");
        assert_eq!((child.str("rekey_time"), child.str("start_action")), ("1800s", "none"));
        assert_eq!(d.load_shared().strs("owners"), ["198.51.100.1", "fqdn:site.example.com"]);
    }

    #[test]
    fn names_are_those_earlier_versions_loaded_and_debug_hides_the_psk() {
        // Computed by the version before PSKs were redacted in `Debug`: a restart after an
        // upgrade finds its definitions loaded under the same names and keeps their SAs.
        let name = |v| definitions("vco-1", &conn(v), &cgws(), &RoutePlan::default()).0[0].name.clone();
        assert_eq!((name("ikev1"), name("ikev2")), ("vco-1-d8c6760e".to_string(), "vco-1-038258c5".to_string()));
        let d = &definitions("vco-1", &conn("ikev2"), &cgws(), &RoutePlan::default()).0[0];
        assert!(format!("{d:?}").contains("psk: <redacted>") && format!("{:?}", Fingerprinted(d)).contains("psk: \"k\""));
    }

    #[test]
    fn a_changed_setting_is_a_new_name_and_an_unchanged_one_is_not() {
        let a = definitions("vco-1", &conn("ikev2"), &cgws(), &RoutePlan::default()).0;
        assert_eq!(a, definitions("vco-1", &conn("ikev2"), &cgws(), &RoutePlan::default()).0);
        let mut c = conn("ikev2");
        c.ike.psk = "other".into();
        assert_ne!(a[0].name, definitions("vco-1", &c, &cgws(), &RoutePlan::default()).0[0].name);
        let mut c = conn("ikev2");
        c.name = "renamed".into();
        assert_eq!(a[0].name, definitions("vco-1", &c, &cgws(), &RoutePlan::default()).0[0].name, "a rename does not re-key");
    }

    #[test]
    fn national_algorithms_are_reported_not_loaded() {
        let mut c = conn("ikev1");
        c.ike.ike_enc_alg = "sm4".into();
        let (defs, bad) = definitions("vco-1", &c, &cgws(), &RoutePlan::default());
        assert!(defs.is_empty());
        assert!(bad[0].reason.contains("sm4"), "{bad:?}");
    }

    #[test]
    fn statuses_come_from_the_sas() {
        let (d, _) = definitions("vco-1", &conn("ikev1"), &cgws(), &RoutePlan::default());
        let d = &d[0];
        assert_eq!(status_of(d, None), status::IKE_DOWN);
        let mut sa = SaState { present: true, ..Default::default() };
        assert_eq!(status_of(d, Some(&sa)), status::IKE_DOWN);
        sa.ike_established = true;
        assert_eq!(status_of(d, Some(&sa)), status::IKE_UP);
        sa.established_secs = 30;
        assert_eq!(status_of(d, Some(&sa)), status::IPSEC_DOWN);
        sa.installed = vec![d.children[0].name.clone()];
        assert_eq!(status_of(d, Some(&sa)), status::IPSEC_DOWN, "every child must be installed");
        sa.installed.push(d.children[1].name.clone());
        assert_eq!(status_of(d, Some(&sa)), status::IPSEC_UP);
    }

    #[test]
    fn list_sas_events_become_states() {
        let ev = Message::new().section(
            "vco-1-abcd",
            Message::new().kv("uniqueid", "7").kv("state", "ESTABLISHED").kv("established", "12").section(
                "child-sas",
                Message::new()
                    .section("c-7", Message::new().kv("name", "vco-1-abcd-1").kv("state", "INSTALLED").kv("bytes-in", "840").kv("packets-in", "10").kv("bytes-out", "420").kv("packets-out", "5"))
                    // A CHILD_SA being rekeyed away counts no more.
                    .section("c-6", Message::new().kv("name", "vco-1-abcd-1").kv("state", "REKEYED").kv("bytes-in", "999")),
            ),
        );
        let s = sa_states(&[ev]);
        assert_eq!(
            s["vco-1-abcd"],
            SaState {
                present: true,
                ike_established: true,
                established_secs: 12,
                established_count: 1,
                established: vec![(12, "7".into())],
                installed: vec!["vco-1-abcd-1".into()],
                child_ids: vec![("vco-1-abcd-1".into(), String::new()), ("vco-1-abcd-1".into(), String::new())],
                ike_ids: vec!["7".into()],
                bytes_in: 840,
                bytes_out: 420,
                packets_in: 10,
                packets_out: 5,
            }
        );
    }

    #[test]
    fn ike_sas_of_owned_names_no_longer_desired_are_orphans() {
        let ike = |name: &str, id: &str| Message::new().section(name, Message::new().kv("uniqueid", id).kv("state", "ESTABLISHED"));
        // vco-1's old definition still holds an IKE_SA (two, one connecting) after its replacement was loaded.
        let events = [ike("vco-1-old", "3"), ike("vco-1-old", "4"), ike("vco-1-new", "5"), ike("vco-2-abcd", "6"), ike("operator-conn", "9")];
        let mut states = sa_states(&events);
        let desired = ["vco-1-new", "vco-2-abcd"];
        let orphans = take_orphans(&mut states, |n| desired.contains(&n));
        assert_eq!(orphans.iter().map(|(n, s)| (n.as_str(), s.ike_ids.clone())).collect::<Vec<_>>(), [("vco-1-old", vec!["3".to_string(), "4".to_string()])]);
        let mut left: Vec<&str> = states.keys().map(String::as_str).collect();
        left.sort();
        assert_eq!(left, ["operator-conn", "vco-1-new", "vco-2-abcd"], "the operator's own connections are not ours to close");
    }

    #[test]
    fn traffic_for_a_waiting_tunnel_is_found_by_reqid() {
        let mut c = conn("ikev2");
        c.effect_immediately = false;
        let (d, _) = definitions("vco-1", &c, &cgws(), &RoutePlan::default());
        let map = trap_reqids(&[&d[0]]);
        let reqid = d[0].children[0].reqid;
        assert_eq!(map[&reqid].1, d[0].children[0].name);
        assert_eq!(dropped_reqid(&format!("could not find an outbound IPsec SA for reqid {{{reqid}}}, dropping packet")), Some(reqid));
        assert_eq!(dropped_reqid("something else"), None);
    }

    fn route(dest: &str, hop: &str, weight: u32) -> VpnRoute {
        VpnRoute { weight, ..VpnRoute::system("dbr", dest, "", hop) }
    }

    fn health(entries: &[(&str, bool, bool)]) -> HashMap<String, Health> {
        entries.iter().map(|(id, established, revoked)| (id.to_string(), Health { established: *established, revoked: *revoked })).collect()
    }

    #[test]
    fn the_active_route_carries_its_target_while_usable_then_the_standby() {
        let routes = [route("10.9.0.0/16", "a", 100), route("10.9.0.0/16", "b", 0), route("10.8.0.0/16", "a", 100)];
        let both_up = RoutePlan::new(&routes, &health(&[("a", true, false), ("b", true, false)]));
        assert_eq!(both_up.owned("a").len(), 2);
        assert!(both_up.owned("b").is_empty());
        let a_down = RoutePlan::new(&routes, &health(&[("a", false, false), ("b", true, false)]));
        assert_eq!(a_down.owned("b"), [("0.0.0.0/0".to_string(), "10.9.0.0/16".to_string())]);
        assert_eq!(a_down.owned("a"), [("0.0.0.0/0".to_string(), "10.8.0.0/16".to_string())], "no standby: it stays, waiting for A");
        let a_revoked = RoutePlan::new(&routes, &health(&[("a", true, true), ("b", true, false)]));
        assert!(a_revoked.owned("a").is_empty(), "revoke_route withdraws A's routes, even without a standby");
        let all_down = RoutePlan::new(&routes, &health(&[("a", false, false), ("b", false, false)]));
        assert_eq!(all_down.owned("a").len(), 2, "nothing usable: the active keeps them");
    }

    #[test]
    fn routed_connections_carry_their_plan_and_their_probe() {
        let mut c = conn("ikev2");
        c.local_subnet = vec!["0.0.0.0/0".into()];
        c.remote_subnet = vec!["0.0.0.0/0".into()];
        assert!(routed(&c));
        let (none, _) = definitions("vco-1", &c, &cgws(), &RoutePlan::default());
        assert!(none[0].children.is_empty());
        assert!(none[0].load_conn().sec(&none[0].name).unwrap().str("childless") == "allow");
        c.health = HealthCheck { enable: true, sip: "10.1.0.1".into(), dip: "10.9.0.1".into(), interval: 1, retry: 2, policy: "revoke_route".into() };
        let plan = RoutePlan::new(&[route("10.9.0.0/16", "vco-1", 100)], &health(&[("vco-1", true, false)]));
        let (d, _) = definitions("vco-1", &c, &cgws(), &plan);
        let ts: Vec<(Vec<String>, Vec<String>)> = d[0].children.iter().map(|ch| (ch.local_ts.clone(), ch.remote_ts.clone())).collect();
        assert_eq!(ts, [(vec!["0.0.0.0/0".to_string()], vec!["10.9.0.0/16".to_string()]), (vec!["10.1.0.1/32".to_string()], vec!["10.9.0.1/32".to_string()])]);
        assert_ne!(d[0].name, none[0].name, "a route change is a new definition");
    }
}
