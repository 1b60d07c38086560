//! Why a tunnel does not come up, read from charon's own log (DiagnoseVpnConnections).
//!
//! A tunnel's lines are those of its definitions' IKE_SAs (`<vco-x-1a2b3c4d|7>`), and those of
//! the unnamed IKE_SAs its peer started before charon found a definition for them (`<9>`, tied to
//! the peer by "203.0.113.9 is initiating"). The newest failure among them is the finding; the
//! proposals charon printed just before it are the mismatched parameters.

use std::collections::HashMap;

use vpngw_model::plane::Diagnosis;

/// One charon log line: `YYYY-MM-DD HH:MM:SS.mmm TT[GRP] <ike> text`.
struct Line<'a> {
    raw: &'a str,
    ike: &'a str,
    text: &'a str,
}

fn parse(raw: &str) -> Option<Line<'_>> {
    let rest = raw.split_once("] <")?.1;
    let (ike, text) = rest.split_once("> ")?;
    Some(Line { raw, ike, text })
}

/// The unique id of an IKE_SA (`name|7` or `7`), and its definition's name if it has one.
fn ike_id(ike: &str) -> (&str, Option<&str>) {
    match ike.split_once('|') {
        Some((name, id)) => (id, Some(name)),
        None => (ike, None),
    }
}

/// A line's time in milliseconds: its seconds, and the `.mmm` charon adds (`time_add_ms`).
fn time_ms(raw: &str, time_of: impl Fn(&str) -> Option<i64>) -> i64 {
    let ms = raw.get(19..23).and_then(|f| f.strip_prefix('.')).and_then(|f| f.parse::<i64>().ok()).unwrap_or(0);
    time_of(raw).map(|s| s * 1000 + ms).unwrap_or(0)
}

fn between<'a>(text: &'a str, start: &str, end: &str) -> Option<&'a str> {
    let rest = text.split_once(start)?.1;
    Some(rest.split_once(end).map(|(v, _)| v).unwrap_or(rest))
}

/// The newest failure of the tunnel whose definitions are named `<key>-<fingerprint>`, whose
/// peer is `peer_ip`, among `lines` (oldest first).
pub fn diagnose(lines: &[String], key: &str, peer_ip: &str, time_of: impl Fn(&str) -> Option<i64>) -> Option<Diagnosis> {
    let prefix = format!("{key}-");
    let initiating = format!("{peer_ip} is initiating");
    // Unnamed IKE_SAs this peer started, and the proposals each side last made, by phase
    // ("IKE" or "ESP"): a failure the peer reports (a notify) carries none of its own.
    let mut from_peer: Vec<&str> = Vec::new();
    let mut received: HashMap<&str, &str> = HashMap::new();
    let mut configured: HashMap<&str, &str> = HashMap::new();
    let mut peer_selectors = "";
    let mut found = None;
    for l in lines.iter().filter_map(|l| parse(l)) {
        let (id, name) = ike_id(l.ike);
        match name {
            Some(n) if !n.starts_with(&prefix) => continue,
            None if l.text.starts_with(&initiating) => from_peer.push(id),
            None if !from_peer.contains(&id) => continue,
            _ => {}
        }
        if let Some(p) = l.text.strip_prefix("received proposals: ") {
            received.insert(if p.starts_with("IKE:") { "IKE" } else { "ESP" }, p);
        } else if let Some(p) = l.text.strip_prefix("configured proposals: ") {
            configured.insert(if p.starts_with("IKE:") { "IKE" } else { "ESP" }, p);
        }
        let proposals = |ph: &str| (configured.get(ph).copied().unwrap_or_default().to_string(), received.get(ph).copied().unwrap_or_default().to_string());
        let t = l.text;
        let finding = if t.contains("received proposals unacceptable") {
            let (local, remote) = proposals("IKE");
            Some(("IkeProposalMismatch", "The IKE (phase 1) proposals of the two sides have nothing in common.", local, remote, "Critical"))
        } else if t.contains("received NO_PROPOSAL_CHOSEN notify error") {
            let (local, remote) = proposals("IKE");
            Some(("IkeProposalMismatch", "The peer accepted none of the IKE (phase 1) proposals, or has no configuration for this gateway.", local, remote, "Critical"))
        } else if t.contains("no IKE config found") {
            Some((
                "IkeConfigNotFound",
                "The peer initiated from or to an address that no connection of this gateway has.",
                String::new(),
                between(t, "found for ", ",").unwrap_or_default().to_string(),
                "Critical",
            ))
        } else if t.contains("no peer config found") {
            Some(("IdentityMismatch", "The identities (LocalId, RemoteId) the peer presented match no connection.", String::new(), String::new(), "Critical"))
        } else if t.contains("but MAC mismatched") || t.contains("received AUTHENTICATION_FAILED notify error") || t.contains("decryption failed?") {
            Some(("PskMismatch", "Authentication failed: the pre-shared keys of the two sides differ.", String::new(), String::new(), "Critical"))
        } else if t.contains("no acceptable proposal found") {
            let (local, remote) = proposals("ESP");
            Some(("IpsecProposalMismatch", "The IPsec (phase 2) proposals of the two sides have nothing in common.", local, remote, "Warn"))
        } else if t.contains("received NO_PROPOSAL_CHOSEN notify, no CHILD_SA built") {
            let (local, remote) = proposals("ESP");
            Some(("IpsecProposalMismatch", "The peer accepted none of the IPsec (phase 2) proposals.", local, remote, "Warn"))
        } else if t.starts_with("traffic selectors ") && t.ends_with(" unacceptable") {
            peer_selectors = between(t, "traffic selectors ", " unacceptable").unwrap_or_default();
            Some(("TrafficSelectorMismatch", "The peer's protected subnets do not match LocalSubnet and RemoteSubnet.", String::new(), peer_selectors.to_string(), "Warn"))
        } else if t.contains("received TS_UNACCEPTABLE notify, no CHILD_SA built") {
            Some(("TrafficSelectorMismatch", "The peer refused the protected subnets (LocalSubnet and RemoteSubnet).", String::new(), peer_selectors.to_string(), "Warn"))
        } else if t.contains("giving up after") {
            Some(("PeerNotResponding", "The peer did not answer: check its address, that UDP 500 and 4500 reach it, and that it runs.", String::new(), String::new(), "Critical"))
        } else {
            None
        };
        if let Some((code, reason, local, remote, severity)) = finding {
            found = Some(Diagnosis { code, reason: reason.into(), time_ms: time_ms(l.raw, &time_of), local, remote, severity, log: l.raw.to_string() });
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(text: &str) -> Vec<String> {
        text.lines().map(|l| l.trim().to_string()).filter(|l| !l.is_empty()).collect()
    }

    fn at(_: &str) -> Option<i64> {
        Some(1)
    }

    // Lines as charon 5.9.8 writes them in the lab (`ike_name = yes`).
    #[test]
    fn a_peer_with_other_ike_proposals_is_found_by_its_address() {
        let log = lines(
            "2026-11-22 18:19:54.410 04[IKE] <4> 203.0.113.2 is initiating an IKE_SA
             2026-11-22 18:19:54.410 04[CFG] <4> received proposals: IKE:AES_CBC_256/HMAC_MD5_96/PRF_HMAC_MD5/MODP_1024
             2026-11-22 18:19:54.410 04[CFG] <4> configured proposals: IKE:AES_CBC_128/HMAC_MD5_96/PRF_HMAC_MD5/MODP_1024
             2026-11-22 18:19:54.410 04[IKE] <4> received proposals unacceptable
             2026-11-22 18:19:54.411 04[IKE] <5> 203.0.113.3 is initiating an IKE_SA
             2026-11-22 18:19:54.412 04[IKE] <5> received proposals unacceptable",
        );
        let d = diagnose(&log, "vco-2", "203.0.113.2", at).unwrap();
        assert_eq!((d.code, d.severity), ("IkeProposalMismatch", "Critical"));
        assert_eq!(d.local, "IKE:AES_CBC_128/HMAC_MD5_96/PRF_HMAC_MD5/MODP_1024");
        assert_eq!(d.remote, "IKE:AES_CBC_256/HMAC_MD5_96/PRF_HMAC_MD5/MODP_1024");
        assert!(d.log.ends_with("<4> received proposals unacceptable"), "{}", d.log);
        assert_eq!(diagnose(&log, "vco-9", "203.0.113.9", at), None, "another peer's lines are not this tunnel's");
    }

    #[test]
    fn the_newest_failure_of_the_tunnels_definitions_wins() {
        let log = lines(
            "2026-11-22 18:19:54.751 03[IKE] <vco-1-9514e5cb|1> received AUTHENTICATION_FAILED notify error
             2026-11-22 18:19:54.800 03[IKE] <vco-10-aaaaaaaa|2> received NO_PROPOSAL_CHOSEN notify error
             2026-11-22 18:19:55.000 01[CFG] <vco-1-9514e5cb|3> received proposals: ESP:AES_CBC_256/HMAC_MD5_96/NO_EXT_SEQ
             2026-11-22 18:19:55.000 01[CFG] <vco-1-9514e5cb|3> configured proposals: ESP:AES_CBC_128/HMAC_MD5_96/MODP_1024/NO_EXT_SEQ
             2026-11-22 18:19:55.001 01[IKE] <vco-1-9514e5cb|3> no acceptable proposal found
             2026-11-22 18:19:56.001 01[IKE] <vco-1-9514e5cb|4> received NO_PROPOSAL_CHOSEN notify, no CHILD_SA built",
        );
        // The peer's refusal (a notify) carries the proposals logged before it.
        let d = diagnose(&log, "vco-1", "203.0.113.1", at).unwrap();
        assert!(d.log.ends_with("no CHILD_SA built"));
        assert_eq!((d.code, d.severity, d.remote.as_str()), ("IpsecProposalMismatch", "Warn", "ESP:AES_CBC_256/HMAC_MD5_96/NO_EXT_SEQ"));
        assert_eq!(diagnose(&log[..1], "vco-1", "203.0.113.1", at).unwrap().code, "PskMismatch");
        assert_eq!(diagnose(&log[1..2], "vco-1", "203.0.113.1", at), None, "vco-10 is not vco-1");
    }

    #[test]
    fn selectors_identities_and_silence() {
        let ts = lines(
            "2026-11-22 18:19:55.143 01[IKE] <vco-4-2b7e3147|8> traffic selectors 10.1.0.0/16 === 10.199.0.0/24 unacceptable
             2026-11-22 18:19:57.250 01[IKE] <vco-4-2b7e3147|9> received TS_UNACCEPTABLE notify, no CHILD_SA built",
        );
        let d = diagnose(&ts, "vco-4", "203.0.113.4", at).unwrap();
        assert_eq!((d.code, d.remote.as_str(), d.time_ms), ("TrafficSelectorMismatch", "10.1.0.0/16 === 10.199.0.0/24", 1250));
        let ids = lines(
            "2026-11-22 18:19:55.000 04[IKE] <7> 203.0.113.7 is initiating an IKE_SA
             2026-11-22 18:19:55.100 15[CFG] <7> looking for peer configs matching 198.51.100.1[gw.example]...203.0.113.7[site.example]
             2026-11-22 18:19:55.100 15[CFG] <7> no peer config found",
        );
        assert_eq!(diagnose(&ids, "vco-7", "203.0.113.7", at).unwrap().code, "IdentityMismatch");
        let silent = lines("2026-11-22 18:20:10.000 12[IKE] <tun-1-ab|3> giving up after 4 retransmits");
        assert_eq!(diagnose(&silent, "tun-1", "203.0.113.8", at).unwrap().code, "PeerNotResponding");
        let v1 = lines("2026-11-22 18:19:55.866 06[ENC] <vco-6-11422b55|11> invalid HASH_V1 payload length, decryption failed?");
        assert_eq!(diagnose(&v1, "vco-6", "203.0.113.6", at).unwrap().code, "PskMismatch");
    }
}
