//! Customer-side device configurations for DownloadVpnConnectionConfig's `DeviceType`.
//!
//! A renderer turns the customer's view of a connection (one [`PeerTunnel`] per tunnel, its
//! own address and IDs first) into a complete configuration file. strongSwan's `swanctl.conf`
//! is the first; Libreswan, VyOS and Cisco IOS renderers slot into [`render`] beside it.

use crate::handlers::{IkeCfg, IpsecCfg, PeerTunnel};

/// Renders the configuration for `device` (lower case), or says why it cannot.
pub(crate) fn render(device: &str, tunnels: &[PeerTunnel]) -> Result<String, String> {
    match device {
        "strongswan" => strongswan(tunnels),
        other => Err(format!("unknown device type {other}; supported: strongswan")),
    }
}

fn enc(alg: &str) -> Result<&'static str, String> {
    Ok(match alg {
        "aes" => "aes128",
        "aes192" => "aes192",
        "aes256" => "aes256",
        "des" => "des",
        "3des" => "3des",
        other => return Err(format!("strongSwan cannot negotiate the encryption algorithm {other}")),
    })
}

fn integ(alg: &str) -> Result<&'static str, String> {
    Ok(match alg {
        "md5" => "md5",
        "sha1" => "sha1",
        "sha256" => "sha256",
        "sha384" => "sha384",
        "sha512" => "sha512",
        other => return Err(format!("strongSwan cannot negotiate the integrity algorithm {other}")),
    })
}

fn dh(group: &str) -> Result<Option<&'static str>, String> {
    Ok(match group {
        "group1" => Some("modp768"),
        "group2" => Some("modp1024"),
        "group5" => Some("modp1536"),
        "group14" => Some("modp2048"),
        "disabled" => None,
        other => return Err(format!("unknown DH group {other}")),
    })
}

/// An identity as strongSwan reads it: an IP address as is, anything else as an FQDN.
pub fn identity(id: &str) -> String {
    if id.parse::<std::net::IpAddr>().is_ok() {
        id.to_string()
    } else {
        format!("fqdn:{id}")
    }
}

/// strongSwan's IKE proposal for these settings, or why strongSwan cannot negotiate them.
pub fn ike_proposal(ike: &IkeCfg) -> Result<String, String> {
    let group = dh(&ike.ike_pfs)?.ok_or("IKE needs a DH group")?;
    Ok(format!("{}-{}-{}", enc(&ike.ike_enc_alg)?, integ(&ike.ike_auth_alg)?, group))
}

/// strongSwan's ESP proposal for these settings (no DH group when PFS is disabled).
pub fn esp_proposal(ipsec: &IpsecCfg) -> Result<String, String> {
    Ok(match dh(&ipsec.ipsec_pfs)? {
        Some(g) => format!("{}-{}-{}", enc(&ipsec.ipsec_enc_alg)?, integ(&ipsec.ipsec_auth_alg)?, g),
        None => format!("{}-{}", enc(&ipsec.ipsec_enc_alg)?, integ(&ipsec.ipsec_auth_alg)?),
    })
}

/// The CHILD_SAs of a tunnel as (local, remote) traffic-selector lists: IKEv1 carries one
/// traffic-selector pair per CHILD_SA (strongSwan would otherwise narrow silently to the first
/// pair), so IKEv1 gets one child per (local, remote) pair and IKEv2 one child with all.
pub fn child_selectors(ike_version: &str, local: &[String], remote: &[String]) -> Vec<(Vec<String>, Vec<String>)> {
    if ike_version == "ikev2" {
        vec![(local.to_vec(), remote.to_vec())]
    } else {
        local.iter().flat_map(|l| remote.iter().map(move |r| (vec![l.clone()], vec![r.clone()]))).collect()
    }
}

/// Policy priority of a dual-tunnel connection's tunnels (lower wins): with the kernel's IPsec,
/// traffic takes the master while its SA is up and the slave otherwise. `None` for single-tunnel
/// connections. kernel-libipsec does not pass manual priorities to its policy manager: there the
/// most recently installed CHILD_SA carries the traffic, and the other takes over when it goes.
pub fn tunnel_priority(role: &str) -> Option<u32> {
    match role {
        "master" => Some(1000),
        "slave" => Some(2000),
        _ => None,
    }
}

/// swanctl.conf for the customer side: one connection per tunnel. The customer initiates when
/// the connection takes effect immediately; otherwise both sides wait for the first traffic.
fn strongswan(tunnels: &[PeerTunnel]) -> Result<String, String> {
    let mut conns = String::new();
    let mut secrets = String::new();
    for t in tunnels {
        let ike_proposal = ike_proposal(&t.ike)?;
        let esp = esp_proposal(&t.ipsec)?;
        let version = if t.ike.ike_version == "ikev2" { 2 } else { 1 };
        conns.push_str(&format!(
            "  {name} {{\n    version = {version}\n    aggressive = {aggr}\n    local_addrs = {local}\n    remote_addrs = {remote}\n    proposals = {ike_proposal}\n    rekey_time = {ike_life}s\n{dpd}    local {{\n      auth = psk\n      id = {lid}\n    }}\n    remote {{\n      auth = psk\n      id = {rid}\n    }}\n    children {{\n",
            name = t.name,
            aggr = if t.ike.ike_mode == "aggressive" { "yes" } else { "no" },
            local = t.local,
            remote = t.remote,
            ike_life = t.ike.ike_lifetime,
            dpd = if t.enable_dpd { "    dpd_delay = 10s\n" } else { "" },
            lid = identity(&t.ike.local_id),
            rid = identity(&t.ike.remote_id),
        ));
        let start = if t.effect_immediately { "start" } else { "trap" };
        let priority = tunnel_priority(&t.role).map(|p| format!("        priority = {p}\n")).unwrap_or_default();
        for (i, (l, r)) in child_selectors(&t.ike.ike_version, &t.local_subnet, &t.remote_subnet).iter().enumerate() {
            conns.push_str(&format!(
                "      {name}-{n} {{\n        local_ts = {l}\n        remote_ts = {r}\n        esp_proposals = {esp}\n        rekey_time = {life}s\n{priority}        start_action = {start}\n        dpd_action = restart\n        close_action = {start}\n      }}\n",
                name = t.name,
                n = i + 1,
                l = l.join(","),
                r = r.join(","),
                life = t.ipsec.ipsec_lifetime,
            ));
        }
        conns.push_str("    }\n  }\n");
        // The key in hex: no quoting rules, and never mistaken for strongSwan's 0x/0s prefixes.
        secrets.push_str(&format!(
            "  ike-{name} {{\n    id-local = {lid}\n    id-remote = {rid}\n    secret = 0x{hex}\n  }}\n",
            name = t.name,
            lid = identity(&t.ike.local_id),
            rid = identity(&t.ike.remote_id),
            hex = hex::encode(t.ike.psk.as_bytes()),
        ));
    }
    Ok(format!("# swanctl.conf for the customer gateway, generated by vpngw.\nconnections {{\n{conns}}}\n\nsecrets {{\n{secrets}}}\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tunnel(version: &str, pfs: &str) -> PeerTunnel {
        PeerTunnel {
            name: "vco-1".into(),
            tunnel_id: String::new(),
            local: "203.0.113.1".into(),
            remote: "198.51.100.1".into(),
            ike: IkeCfg {
                psk: "pre\"shared".into(),
                ike_version: version.into(),
                ike_mode: "main".into(),
                ike_enc_alg: "aes256".into(),
                ike_auth_alg: "sha256".into(),
                ike_pfs: "group14".into(),
                ike_lifetime: 86400,
                local_id: "203.0.113.1".into(),
                remote_id: "gw.example.com".into(),
            },
            ipsec: IpsecCfg { ipsec_enc_alg: "aes".into(), ipsec_auth_alg: "sha1".into(), ipsec_pfs: pfs.into(), ipsec_lifetime: 3600 },
            enable_dpd: true,
            effect_immediately: true,
            role: String::new(),
            local_subnet: vec!["192.168.0.0/24".into(), "192.168.1.0/24".into()],
            remote_subnet: vec!["10.0.0.0/24".into()],
        }
    }

    #[test]
    fn ikev1_gets_a_child_per_subnet_pair() {
        insta::assert_snapshot!(render("strongswan", &[tunnel("ikev1", "group2")]).unwrap());
    }

    #[test]
    fn ikev2_without_pfs() {
        let out = render("strongswan", &[tunnel("ikev2", "disabled")]).unwrap();
        assert!(out.contains("local_ts = 192.168.0.0/24,192.168.1.0/24"), "{out}");
        assert!(out.contains("esp_proposals = aes128-sha1\n"), "{out}");
        assert!(out.contains("version = 2"), "{out}");
    }

    #[test]
    fn what_strongswan_cannot_do_is_said() {
        let mut t = tunnel("ikev1", "group2");
        t.ike.ike_enc_alg = "sm4".into();
        assert!(render("strongswan", &[t]).unwrap_err().contains("sm4"));
        assert!(render("cisco", &[tunnel("ikev1", "group2")]).is_err());
    }
}
