//! The API's algorithm settings as strongSwan proposals, identities and traffic selectors: one
//! mapping for the gateway's charon and the customer-side configuration alike.

use crate::connection::{IkeCfg, IpsecCfg};

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
pub fn tunnel_priority(role: Option<crate::state::TunnelRole>) -> Option<u32> {
    match role? {
        crate::state::TunnelRole::Master => Some(1000),
        crate::state::TunnelRole::Slave => Some(2000),
    }
}
