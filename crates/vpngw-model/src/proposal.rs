//! The API's algorithm settings as strongSwan proposals, identities and traffic selectors: one
//! mapping for the gateway's charon and the customer-side configuration alike.

use crate::connection::{IkeCfg, IpsecCfg};
use crate::rules::ModelError;

/// The encryption algorithms of a gateway type, the same for IKE (phase 1) and IPsec (phase 2).
pub const NORMAL_ENCS: &[&str] = &["aes", "aes192", "aes256", "des", "3des"];
pub const NORMAL_AUTHS: &[&str] = &["md5", "sha1", "sha256", "sha384", "sha512"];
/// A NationalStandard (ShangMi) gateway's.
pub const NATIONAL_ENCS: &[&str] = &["sm4"];
pub const NATIONAL_AUTHS: &[&str] = &["sm3"];
pub const DH_GROUPS: &[&str] = &["group1", "group2", "group5", "group14"];
/// The characters a pre-shared key may have besides letters and digits.
pub const PSK_SPECIALS: &str = "~!`@#$%^&*()_-+={}[]|;:',.<>/?";

/// (encryption, integrity) algorithms of a gateway type.
pub fn algorithms(national: bool) -> (&'static [&'static str], &'static [&'static str]) {
    if national {
        (NATIONAL_ENCS, NATIONAL_AUTHS)
    } else {
        (NORMAL_ENCS, NORMAL_AUTHS)
    }
}

/// 1 to 100 characters: letters, digits and [`PSK_SPECIALS`].
pub fn psk_ok(p: &str) -> bool {
    (1..=100).contains(&p.chars().count()) && p.chars().all(|c| c.is_ascii_alphanumeric() || PSK_SPECIALS.contains(c))
}

/// IKE settings against the gateway type's sets; the refusal names the field.
pub fn check_ike(c: &IkeCfg, national: bool) -> Result<(), ModelError> {
    let (versions, modes): (&[&str], &[&str]) = if national { (&["ikev1"], &["main"]) } else { (&["ikev1", "ikev2"], &["main", "aggressive"]) };
    let (encs, auths) = algorithms(national);
    let checks: [(&'static str, bool); 8] = [
        ("Psk", psk_ok(&c.psk)),
        ("IkeVersion", versions.contains(&c.ike_version.as_str())),
        ("IkeMode", modes.contains(&c.ike_mode.as_str())),
        ("IkeEncAlg", encs.contains(&c.ike_enc_alg.as_str())),
        ("IkeAuthAlg", auths.contains(&c.ike_auth_alg.as_str())),
        ("IkePfs", DH_GROUPS.contains(&c.ike_pfs.as_str())),
        ("LocalId", c.local_id.chars().count() <= 100),
        ("RemoteId", c.remote_id.chars().count() <= 100),
    ];
    match checks.into_iter().find(|(_, ok)| !ok) {
        Some((field, _)) => Err(ModelError::InvalidSetting(field)),
        None => Ok(()),
    }
}

/// IPsec settings against the gateway type's sets.
pub fn check_ipsec(c: &IpsecCfg, national: bool) -> Result<(), ModelError> {
    let (encs, auths) = algorithms(national);
    if !encs.contains(&c.ipsec_enc_alg.as_str()) {
        return Err(ModelError::InvalidSetting("IpsecEncAlg"));
    }
    if !auths.contains(&c.ipsec_auth_alg.as_str()) {
        return Err(ModelError::IpsecAuthAlg);
    }
    if c.ipsec_pfs != "disabled" && !DH_GROUPS.contains(&c.ipsec_pfs.as_str()) {
        return Err(ModelError::IpsecPfs);
    }
    Ok(())
}

/// A new connection's IKE settings (IKEv1 main mode, group2, a day; MD5 and AES, or the
/// ShangMi pair), with a generated PSK.
pub fn default_ike(national: bool, psk: String, local_id: &str, remote_id: &str) -> IkeCfg {
    IkeCfg {
        psk: psk.into(),
        ike_version: "ikev1".into(),
        ike_mode: "main".into(),
        ike_enc_alg: if national { "sm4" } else { "aes" }.into(),
        ike_auth_alg: if national { "sm3" } else { "md5" }.into(),
        ike_pfs: "group2".into(),
        ike_lifetime: 86400,
        local_id: local_id.into(),
        remote_id: remote_id.into(),
    }
}

/// A new connection's IPsec settings.
pub fn default_ipsec(national: bool) -> IpsecCfg {
    IpsecCfg { ipsec_enc_alg: if national { "sm4" } else { "aes" }.into(), ipsec_auth_alg: if national { "sm3" } else { "md5" }.into(), ipsec_pfs: "group2".into(), ipsec_lifetime: 86400 }
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
pub fn tunnel_priority(role: Option<crate::state::TunnelRole>) -> Option<u32> {
    match role? {
        crate::state::TunnelRole::Master => Some(1000),
        crate::state::TunnelRole::Slave => Some(2000),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::ModelError;

    #[test]
    fn each_gateway_type_takes_its_own_algorithm_sets() {
        let normal = default_ike(false, "k3y".into(), "a", "b");
        assert_eq!(check_ike(&normal, false), Ok(()));
        assert_eq!(check_ike(&normal, true), Err(ModelError::InvalidSetting("IkeEncAlg")), "a ShangMi gateway takes sm4 only");
        assert_eq!(check_ike(&default_ike(true, "k3y".into(), "a", "b"), true), Ok(()));
        let bad_psk = default_ike(false, "no spaces".into(), "a", "b");
        assert_eq!(check_ike(&bad_psk, false), Err(ModelError::InvalidSetting("Psk")));
        let mut ipsec = default_ipsec(false);
        assert_eq!(check_ipsec(&ipsec, false), Ok(()));
        ipsec.ipsec_pfs = "disabled".into();
        assert_eq!(check_ipsec(&ipsec, false), Ok(()), "PFS may be off in phase 2");
        ipsec.ipsec_pfs = "group3".into();
        assert_eq!(check_ipsec(&ipsec, false), Err(ModelError::IpsecPfs));
        ipsec.ipsec_auth_alg = "sm3".into();
        assert_eq!(check_ipsec(&ipsec, false), Err(ModelError::IpsecAuthAlg));
    }
}
