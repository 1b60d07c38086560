//! BGP over IPsec tunnels: the sessions a gateway side runs, the BIRD 2 configuration that runs
//! them, and what BIRD's control socket says of them.
//!
//! Each BGP-enabled tunnel (a single-tunnel connection, or one tunnel of a dual-tunnel one) is
//! one session between its LocalBgpIp and the peer's address in its TunnelCidr, LocalAsn ↔ the
//! customer gateway's Asn, with the customer gateway's AuthKey as the TCP MD5 key. The session
//! rides the tunnel: the tunnel's definition carries a CHILD_SA from LocalBgpIp/32 to the peer's
//! address/32 (see `vpngw-dataplane`'s `ipsec.rs`).
//!
//! Everything here is pure: rendering and parsing, tested without a daemon.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use crate::connection::{BgpCfg, VpnConnection};

/// Hold time of every session, in seconds (keepalives every third of it): a peer that stops
/// answering loses its session, and the routes it advertised, within this.
pub const HOLD_TIME_S: u32 = 30;

/// A customer gateway's side of BGP: its AS number and TCP MD5 key ("" for none).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Peer {
    pub asn: Option<u32>,
    pub auth_key: String,
}

/// One BGP session of a gateway side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// The tunnel it runs in: the connection's id (single tunnel) or the tunnel's id.
    pub key: String,
    pub local_ip: Ipv4Addr,
    pub local_asn: u32,
    pub peer_ip: Ipv4Addr,
    pub peer_asn: u32,
    /// TCP MD5 key, "" for none.
    pub password: String,
}

impl Session {
    /// The BIRD protocol that runs it: a name BIRD accepts (letters, digits, `_`).
    pub fn protocol(&self) -> String {
        protocol_name(&self.key)
    }
}

/// BIRD's protocol name for a tunnel key.
pub fn protocol_name(key: &str) -> String {
    format!("t_{}", key.replace(|c: char| !c.is_ascii_alphanumeric(), "_"))
}

/// The session of one tunnel's BGP settings, when BGP is on and the settings are complete (a
/// /30 TunnelCidr, a LocalBgpIp in it, and the customer gateway's Asn); `None` otherwise.
pub fn session(key: &str, bgp: &BgpCfg, peer: Option<&Peer>) -> Option<Session> {
    if !bgp.enable {
        return None;
    }
    let peer = peer?;
    Some(Session {
        key: key.to_string(),
        local_ip: bgp.local_bgp_ip.parse().ok()?,
        local_asn: bgp.local_asn,
        peer_ip: bgp.peer_ip().parse().ok()?,
        peer_asn: peer.asn?,
        password: peer.auth_key.clone(),
    })
}

/// Every BGP session of a connection, with the role of its tunnel (`None`: single tunnel).
pub fn sessions(conn_id: &str, c: &VpnConnection, peers: &std::collections::HashMap<String, Peer>) -> Vec<(Option<crate::connection::TunnelRole>, Session)> {
    if c.dual() {
        if !c.enable_tunnels_bgp {
            return Vec::new();
        }
        c.tunnels.iter().filter_map(|t| Some((Some(t.role), session(&t.tunnel_id, &t.bgp, peers.get(t.customer_gateway_id.as_str()))?))).collect()
    } else {
        session(conn_id, &c.bgp, peers.get(c.customer_gateway_id.as_str())).map(|s| vec![(None, s)]).unwrap_or_default()
    }
}

/// The key of every BGP-enabled tunnel of a connection (its id for a single tunnel, else each
/// tunnel's id), with the tunnel's role: whether or not its settings are complete.
pub fn bgp_keys(conn_id: &str, c: &VpnConnection) -> Vec<(Option<crate::connection::TunnelRole>, String)> {
    if c.dual() {
        c.tunnels.iter().filter(|t| c.enable_tunnels_bgp && t.bgp.enable).map(|t| (Some(t.role), t.tunnel_id.to_string())).collect()
    } else if c.bgp.enable {
        vec![(None, conn_id.to_string())]
    } else {
        Vec::new()
    }
}

/// Why BIRD cannot take this key, if it cannot: its configuration strings have no escapes, so
/// a double quote cannot be written in one (the API allows it in an AuthKey).
pub fn unwritable_password(password: &str) -> Option<String> {
    if password.chars().any(|c| c == '"' || c.is_control()) {
        return Some("BIRD cannot take an AuthKey with a double quote or a control character".into());
    }
    None
}

/// A BIRD 2 configuration running `sessions` and advertising `advertise` to every peer (the
/// gateway's VPC side). Sessions whose key BIRD cannot take are left out and returned with why.
/// Learned routes stay in BIRD (vpngw reads them and steers traffic by IPsec selectors), so no
/// kernel protocol is configured.
pub fn bird_conf(sessions: &[Session], advertise: &[ipnet::Ipv4Net], log: Option<&str>) -> (String, Vec<(String, String)>) {
    let mut refused = Vec::new();
    let router_id = sessions.iter().map(|s| s.local_ip).min().unwrap_or(Ipv4Addr::new(169, 254, 0, 1));
    // Its log says what the control socket does not keep: why a peer's connection was refused.
    let log = log.filter(|l| !l.contains(|c: char| c == '"' || c.is_control())).map(|l| format!("log \"{l}\" {{ info, remote, warning, error, auth, fatal, bug }};\n")).unwrap_or_default();
    let mut out = format!(
        "# Generated by vpngw: the BGP speaker of one gateway side.\n{log}router id {router_id};\n\
         protocol device {{\n  scan time 10;\n}}\n\
         # What this side advertises: its VPC's prefixes.\nprotocol static vpc {{\n  ipv4;\n"
    );
    let mut prefixes: Vec<&ipnet::Ipv4Net> = advertise.iter().collect();
    prefixes.sort();
    prefixes.dedup();
    for p in prefixes {
        out.push_str(&format!("  route {p} blackhole;\n"));
    }
    out.push_str("}\n");
    for s in sessions {
        if let Some(why) = unwritable_password(&s.password) {
            refused.push((s.key.clone(), why));
            continue;
        }
        out.push_str(&session_block(&s.protocol(), &s.key, s.local_ip, s.local_asn, s.peer_ip, s.peer_asn, &s.password, "export where proto = \"vpc\";"));
    }
    (out, refused)
}

/// One `protocol bgp` block: a session over a tunnel (multihop: the peer is behind the tunnel,
/// not on a link BIRD sees), importing everything. It connects at once when it starts (BIRD
/// would wait 5 s), and every 5 s while the peer does not answer.
#[allow(clippy::too_many_arguments)]
pub fn session_block(protocol: &str, description: &str, local_ip: Ipv4Addr, local_asn: u32, peer_ip: Ipv4Addr, peer_asn: u32, password: &str, export: &str) -> String {
    let password = if password.is_empty() { String::new() } else { format!("  password \"{password}\";\n") };
    format!(
        "protocol bgp {protocol} {{\n  description \"{description}\";\n  local {local_ip} as {local_asn};\n  neighbor {peer_ip} as {peer_asn};\n  multihop 1;\n\
         \x20 hold time {HOLD_TIME_S};\n  keepalive time {keep};\n  connect delay time 0;\n  connect retry time 5;\n  error wait time 5, 30;\n{password}\
         \x20 ipv4 {{\n    import all;\n    {export}\n  }};\n}}\n",
        keep = HOLD_TIME_S / 3,
        description = description.replace(|c: char| c == '"' || c.is_control(), "_"),
    )
}

/// What BIRD says of one protocol (`show protocols`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtocolState {
    /// `up`, `start`, `down`, ...
    pub state: String,
    /// The protocol's info column: for BGP, its state (`Established`, `Active`, `Connect`)
    /// and the last error, as BIRD words it.
    pub info: String,
}

impl ProtocolState {
    /// A BGP session is Established when its protocol is up.
    pub fn established(&self) -> bool {
        self.state == "up" && self.info.starts_with("Established")
    }
}

/// Parses BIRD's control-socket reply to `show protocols`: reply lines `1002-<row>` (and
/// continuation rows, which start with a space), each row `name proto table state since info`,
/// where `since` is one or two words (a time, or a date and a time).
pub fn parse_protocols(reply: &str) -> BTreeMap<String, ProtocolState> {
    let mut out = BTreeMap::new();
    let mut in_table = false;
    for line in reply.lines() {
        let row = if let Some(r) = line.strip_prefix("1002-").or_else(|| line.strip_prefix("1002 ")) {
            in_table = true;
            r
        } else if in_table && line.starts_with(' ') {
            &line[1..]
        } else {
            in_table = false;
            continue;
        };
        let words: Vec<&str> = row.split_whitespace().collect();
        if words.len() < 5 {
            continue;
        }
        // The time is the first word after the state that looks like a time (has a ':'), an
        // optional date before it.
        let mut i = 4;
        if words.get(i).is_some_and(|w| !w.contains(':')) && words.get(i + 1).is_some_and(|w| w.contains(':')) {
            i += 1;
        }
        let info = words.get(i + 1..).map(|w| w.join(" ")).unwrap_or_default();
        out.insert(words[0].to_string(), ProtocolState { state: words[3].to_string(), info });
    }
    out
}

/// Parses BIRD's reply to `show protocols all`: each protocol's `Last error:` (kept by BIRD
/// across its retries, unlike the row's info), by protocol.
pub fn parse_last_errors(reply: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut current: Option<String> = None;
    for line in reply.lines() {
        if let Some(row) = line.strip_prefix("1002-").or_else(|| line.strip_prefix("1002 ")) {
            current = row.split_whitespace().next().map(str::to_string);
        } else if let Some((_, e)) = line.split_once("Last error:") {
            if let Some(p) = &current {
                out.insert(p.clone(), e.trim().to_string());
            }
        }
    }
    out
}

/// The newest thing BIRD's log says went wrong with a protocol's session (`<RMT> proto: Error:
/// Bad peer AS: 65011` → `Error: Bad peer AS: 65011`), from its lines oldest first.
pub fn last_logged_error<'a>(lines: impl Iterator<Item = &'a str>, protocol: &str) -> Option<String> {
    let tag = format!(" {protocol}: ");
    lines.filter(|l| l.contains("<RMT>") || l.contains("<ERR>") || l.contains("<WARN>")).filter_map(|l| l.split_once(&tag).map(|(_, m)| m.trim().to_string())).last()
}

/// A route a session learned from its peer.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub struct Learned {
    pub prefix: String,
    /// The AS path, comma-separated, nearest AS first (`65001,65010`).
    pub as_path: String,
    /// Communities, comma-separated (`65001:100,65001:200`).
    pub community: String,
    /// The BGP next hop (the peer's address in the tunnel).
    pub next_hop: String,
}

/// Parses BIRD's control-socket reply to `show route all`: by protocol, the routes it imported.
/// Route rows are `1007` lines or continuations (a row whose prefix is blank is another route to
/// the previous prefix); their attributes follow on lines that start with a tab.
pub fn parse_routes(reply: &str) -> BTreeMap<String, Vec<Learned>> {
    let mut out: BTreeMap<String, Vec<Learned>> = BTreeMap::new();
    let mut code = "";
    let mut prefix = String::new();
    let mut current: Option<(String, Learned)> = None;
    let finish = |cur: &mut Option<(String, Learned)>, out: &mut BTreeMap<String, Vec<Learned>>| {
        if let Some((proto, l)) = cur.take() {
            out.entry(proto).or_default().push(l);
        }
    };
    for line in reply.lines() {
        let content = if line.len() >= 5 && line.as_bytes()[..4].iter().all(u8::is_ascii_digit) && matches!(line.as_bytes()[4], b'-' | b' ') {
            code = &line[..4];
            &line[5..]
        } else if let Some(rest) = line.strip_prefix(' ') {
            rest
        } else {
            continue;
        };
        if let Some(attr) = content.strip_prefix('\t') {
            let Some((_, l)) = current.as_mut() else { continue };
            if let Some(v) = attr.strip_prefix("BGP.as_path:") {
                l.as_path = v.split_whitespace().collect::<Vec<_>>().join(",");
            } else if let Some(v) = attr.strip_prefix("BGP.next_hop:") {
                l.next_hop = v.split_whitespace().next().unwrap_or_default().to_string();
            } else if let Some(v) = attr.strip_prefix("BGP.community:") {
                l.community = v.split_whitespace().map(|c| c.trim_matches(|ch| ch == '(' || ch == ')').replace(',', ":")).collect::<Vec<_>>().join(",");
            }
            continue;
        }
        // A route row: a `1007` line, or a continuation of the listing (BIRD writes a code only
        // when it changes) that is neither an attribute nor a table's heading.
        if !matches!(code, "1007" | "1008" | "1012") || content.starts_with("Table ") || !content.contains(" [") {
            continue;
        }
        finish(&mut current, &mut out);
        if !content.starts_with(char::is_whitespace) {
            prefix = content.split_whitespace().next().unwrap_or_default().to_string();
        }
        let Some(proto) = content.split_once('[').and_then(|(_, r)| r.split_whitespace().next()) else { continue };
        current = Some((proto.to_string(), Learned { prefix: prefix.clone(), as_path: String::new(), community: String::new(), next_hop: String::new() }));
    }
    finish(&mut current, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(key: &str, local: &str, password: &str) -> Session {
        Session { key: key.into(), local_ip: local.parse().unwrap(), local_asn: 45104, peer_ip: "169.254.11.2".parse().unwrap(), peer_asn: 65001, password: password.into() }
    }

    #[test]
    fn a_session_per_tunnel_exporting_only_the_vpc() {
        let (conf, refused) =
            bird_conf(&[s("vco-abc", "169.254.11.1", "k3y\\x"), s("tun-2", "169.254.10.1", "")], &["10.1.0.0/16".parse().unwrap(), "10.1.0.0/16".parse().unwrap()], Some("/run/x/bird.log"));
        assert!(conf.contains("log \"/run/x/bird.log\" {"), "{conf}");
        assert!(refused.is_empty());
        assert!(conf.contains("router id 169.254.10.1;"), "{conf}");
        assert_eq!(conf.matches("route 10.1.0.0/16 blackhole;").count(), 1);
        assert!(conf.contains("protocol bgp t_vco_abc {\n  description \"vco-abc\";\n  local 169.254.11.1 as 45104;\n  neighbor 169.254.11.2 as 65001;"), "{conf}");
        assert!(conf.contains("password \"k3y\\x\";"), "a backslash is written as it is: BIRD has no escapes");
        assert_eq!(conf.matches("password").count(), 1, "no key, no password line");
        assert_eq!(conf.matches("export where proto = \"vpc\";").count(), 2);
        assert!(conf.contains(&format!("hold time {HOLD_TIME_S};")));
    }

    #[test]
    fn a_key_bird_cannot_write_is_refused_not_injected() {
        let (conf, refused) = bird_conf(&[s("vco-a", "169.254.11.1", "x\";}\nprotocol bgp evil {")], &[], None);
        assert_eq!(refused.len(), 1);
        assert!(!conf.contains("evil") && !conf.contains("t_vco_a"), "{conf}");
    }

    #[test]
    fn learned_routes_are_read_by_protocol() {
        let reply = "0001 BIRD 2.0.12 ready.\n1007-Table master4:\n 10.50.0.0/24         unreachable [t_a 18:49:28.255 from 169.254.11.2] * (100) [AS65001i]\n\
                     1008-\tType: BGP univ\n1012-\tBGP.origin: IGP\n \tBGP.as_path: 65001\n \tBGP.next_hop: 169.254.11.2\n \tBGP.local_pref: 100\n\
                     \x20                    unreachable [t_b 18:49:29.000 from 169.254.12.2] (100) [AS65002i]\n1008-\tType: BGP univ\n \tBGP.as_path: 65002 65010\n \tBGP.next_hop: 169.254.12.2\n\
                     1007-10.51.0.0/24         unreachable [t_a 19:06:02.450 from 169.254.11.2] * (100) [AS65001i]\n1008-\tType: BGP univ\n \tBGP.as_path: 65001 65001\n\
                     \x20\tBGP.next_hop: 169.254.11.2\n \tBGP.community: (65001,100) (65001,200)\n\
                     1007-10.1.0.0/16          blackhole [vpc 18:49:25.966] * (200)\n1008-\tType: static univ\n0000 \n";
        let r = parse_routes(reply);
        let l = |p: &str, a: &str, c: &str, n: &str| Learned { prefix: p.into(), as_path: a.into(), community: c.into(), next_hop: n.into() };
        assert_eq!(r["t_a"], vec![l("10.50.0.0/24", "65001", "", "169.254.11.2"), l("10.51.0.0/24", "65001,65001", "65001:100,65001:200", "169.254.11.2")]);
        assert_eq!(r["t_b"], vec![l("10.50.0.0/24", "65002,65010", "", "169.254.12.2")], "another route to the same prefix");
        assert_eq!(r["vpc"].len(), 1);
    }

    #[test]
    fn last_errors_are_read_per_protocol() {
        let reply = "0001 BIRD 2.0.12 ready.\n2002-Name       Proto      Table      State  Since         Info\n1002-device1    Device     ---        up     18:49:25.966  \n1006-\n\
                     1002-t_a        BGP        ---        start  19:23:45.162  Active\n1006-  BGP state:          Active\n     Neighbor address: 169.254.11.2\n\
                     \x20    Last error:       BGP Error: Bad peer AS\n   Channel ipv4\n     State:          DOWN\n \n\
                     1002-t_b        BGP        ---        up     19:23:45.162  Established\n1006-  BGP state:          Established\n0000 \n";
        let e = parse_last_errors(reply);
        assert_eq!(e.len(), 1);
        assert_eq!(e["t_a"], "BGP Error: Bad peer AS");
    }

    #[test]
    fn the_last_logged_error_of_a_session() {
        let log =
            "2026-12-07 19:25:07.059 <INFO> Restarting protocol t_a\n2026-12-07 19:25:11.338 <RMT> t_a: Error: Bad peer AS: 65011\n2026-12-07 19:25:12.000 <RMT> t_b: Received: Hold timer expired\n";
        assert_eq!(last_logged_error(log.lines(), "t_a").as_deref(), Some("Error: Bad peer AS: 65011"));
        assert_eq!(last_logged_error(log.lines(), "t_c"), None);
    }

    #[test]
    fn protocol_names_are_bird_symbols() {
        assert_eq!(protocol_name("tun-bp1x.2"), "t_tun_bp1x_2");
    }

    #[test]
    fn show_protocols_is_read_from_the_control_socket_reply() {
        let reply = "0001 BIRD 2.0.12 ready.\n2002-Name       Proto      Table      State  Since         Info\n\
                     1002-device1    Device     ---        up     18:49:25.966  \n\
                     \x20t_vco_a    BGP        ---        up     18:49:25.985  Established   \n\
                     \x20t_tun_b    BGP        ---        start  2026-12-06 18:49:25  Active        Received: Bad peer AS\n\
                     \x20vpc        Static     master4    up     18:49:25.966  \n0000 \n";
        let p = parse_protocols(reply);
        assert!(p["t_vco_a"].established());
        assert_eq!(p["t_tun_b"], ProtocolState { state: "start".into(), info: "Active Received: Bad peer AS".into() });
        assert!(!p["t_tun_b"].established());
        assert_eq!(p.len(), 4);
    }
}
