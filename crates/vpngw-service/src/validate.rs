//! Input rules the documents give, each returning the documented code.

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use vpngw_api::{ApiError, Code, Params};

fn is_cjk(c: char) -> bool {
    matches!(c as u32, 0x4E00..=0x9FFF | 0x3400..=0x4DBF | 0xF900..=0xFAFF | 0x20000..=0x2A6DF)
}

fn starts_with_letter(s: &str) -> bool {
    s.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || is_cjk(c))
}

fn has_url(s: &str) -> bool {
    s.starts_with("http://") || s.starts_with("https://")
}

/// The VPN documents' name rule: `min..=max` characters, starting with a letter or a Chinese
/// character, then letters, Chinese, digits, `_`, `-` (and `.`, which the current pages allow).
pub fn vpn_name(v: &str, min: usize, max: usize) -> bool {
    let n = v.chars().count();
    (min..=max).contains(&n) && starts_with_letter(v) && !has_url(v) && v.chars().all(|c| c.is_ascii_alphanumeric() || is_cjk(c) || matches!(c, '_' | '-' | '.'))
}

/// The VPN documents' description rule: `2..=100` characters starting with a letter or a
/// Chinese character, and not a URL.
pub fn vpn_description(v: &str) -> bool {
    let n = v.chars().count();
    (2..=100).contains(&n) && starts_with_letter(v) && !has_url(v)
}

/// The VPC rule for names and descriptions: `1..=max` characters, not starting with a URL scheme.
pub fn vpc_text(v: &str, max: usize) -> bool {
    let n = v.chars().count();
    (1..=max).contains(&n) && !has_url(v)
}

/// An optional name parameter checked with `ok`, answered with `code` when it fails.
pub fn opt_text<'p>(p: &'p Params, name: &str, ok: impl Fn(&str) -> bool, code: Code) -> Result<Option<&'p str>, ApiError> {
    match p.get(name) {
        None => Ok(None),
        Some(v) if ok(v) => Ok(Some(v)),
        Some(_) => Err(ApiError::new(code)),
    }
}

/// `PageNumber` (≥ 1, default 1) and `PageSize` (1..=50, default 10) as (offset, limit, number, size).
pub fn paging(p: &Params) -> Result<(u64, u64, u64, u64), ApiError> {
    let number: u64 = p.opt_num("PageNumber")?.unwrap_or(1);
    let size: u64 = p.opt_num("PageSize")?.unwrap_or(10);
    if number == 0 || number > 1_000_000 {
        return Err(ApiError::invalid("PageNumber"));
    }
    if !(1..=50).contains(&size) {
        return Err(ApiError::invalid("PageSize"));
    }
    Ok(((number - 1) * size, size, number, size))
}

/// The newer `List*` paging: `NextToken` (an offset, empty or absent for the first page) and
/// `MaxResults` (1..=20, default 10), as (offset, max).
pub fn token_paging(p: &Params) -> Result<(u64, u64), ApiError> {
    let max: u64 = p.opt_num("MaxResults")?.unwrap_or(10);
    if !(1..=20).contains(&max) {
        return Err(ApiError::invalid("MaxResults"));
    }
    let offset = match p.opt("NextToken") {
        None | Some("") => 0,
        Some(t) => t.parse().map_err(|_| ApiError::invalid("NextToken"))?,
    };
    Ok((offset, max))
}

/// The `NextToken` after a page of `returned` items from `offset` out of `total` ("" at the end).
pub fn next_token(offset: u64, returned: usize, total: u64) -> String {
    let next = offset + returned as u64;
    if next < total {
        next.to_string()
    } else {
        String::new()
    }
}

/// A CIDR block written exactly (host bits zero).
pub fn cidr(v: &str) -> Option<Ipv4Net> {
    let net: Ipv4Net = v.trim().parse().ok()?;
    (net.trunc() == net).then_some(net)
}

/// A unicast IPv4 address a gateway can have: not unspecified, loopback, multicast or broadcast.
pub fn public_ip(v: &str) -> Option<Ipv4Addr> {
    let ip: Ipv4Addr = v.trim().parse().ok()?;
    (!ip.is_unspecified() && !ip.is_loopback() && !ip.is_multicast() && !ip.is_broadcast() && ip.octets()[0] != 0).then_some(ip)
}

/// An ASN as a number or in the `high.low` form (123.456 = 123 × 65536 + 456), 1..=4294967295.
pub fn asn(v: &str) -> Option<u32> {
    let n: u64 = match v.trim().split_once('.') {
        Some((hi, lo)) => {
            let (hi, lo): (u64, u64) = (hi.parse().ok()?, lo.parse().ok()?);
            if hi > 65535 || lo > 65535 {
                return None;
            }
            hi * 65536 + lo
        }
        None => v.trim().parse().ok()?,
    };
    (1..=u32::MAX as u64).contains(&n).then_some(n as u32)
}

/// A BGP key: 1..=64 printable ASCII characters, no space and no `?`.
pub fn auth_key(v: &str) -> bool {
    (1..=64).contains(&v.len()) && v.chars().all(|c| c.is_ascii_graphic() && c != '?')
}

/// The tag key rule: 1..=64 characters (every VPN document says 64), starting with a letter or Chinese, letters, digits, Chinese,
/// `.`, `_`, `-`, `:`, `/`, `=`, `+`, `@`, space; never `aliyun` / `acs:` prefixes or URLs.
pub fn tag_key(k: &str) -> bool {
    let n = k.chars().count();
    (1..=64).contains(&n) && !reserved(k) && starts_with_letter(k) && k.chars().all(tag_char)
}

/// The tag value rule: 0..=128 characters, the same characters, no reserved prefix or URL.
pub fn tag_value(v: &str) -> bool {
    v.chars().count() <= 128 && !reserved(v) && v.chars().all(tag_char)
}

fn tag_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || is_cjk(c) || matches!(c, '.' | '_' | '-' | ':' | '/' | '=' | '+' | '@' | ' ')
}

fn reserved(s: &str) -> bool {
    let l = s.to_ascii_lowercase();
    l.starts_with("aliyun") || l.starts_with("acs:") || l.contains("http://") || l.contains("https://")
}

/// Parses `prefix.N.Key` / `prefix.N.Value` tags: at most 20, keys present and valid, unique.
pub fn tags(p: &Params, prefix: &str) -> Result<Vec<(String, String)>, ApiError> {
    let groups = p.objects(prefix)?;
    if groups.len() > 20 {
        return Err(ApiError::new(Code::TagNumExceeded));
    }
    let mut out: Vec<(String, String)> = Vec::with_capacity(groups.len());
    for g in groups {
        let key = match g.get("Key") {
            Some(k) if !k.is_empty() => k,
            Some(_) => return Err(ApiError::new(Code::InvalidTagKey)),
            None => return Err(ApiError::new(Code::MissingTagKey)),
        };
        if !tag_key(key) {
            return Err(ApiError::new(Code::InvalidTagKey));
        }
        let value = g.get("Value").unwrap_or("");
        if !tag_value(value) {
            return Err(ApiError::new(Code::InvalidTagValue));
        }
        if out.iter().any(|(k, _)| k == key) {
            return Err(ApiError::new(Code::DuplicatedTagKey));
        }
        out.push((key.to_string(), value.to_string()));
    }
    Ok(out)
}

/// Tag filters `Tag.N.Key` / `Tag.N.Value` for Describe*: a key alone matches any value.
pub fn tag_filters(p: &Params) -> Result<Vec<(String, Option<String>)>, ApiError> {
    let groups = p.objects("Tag")?;
    if groups.len() > 20 {
        return Err(ApiError::new(Code::TagNumExceeded));
    }
    groups
        .into_iter()
        .map(|g| match g.get("Key") {
            Some(k) if !k.is_empty() => Ok((k.to_string(), g.get("Value").filter(|v| !v.is_empty()).map(str::to_string))),
            _ => Err(ApiError::new(Code::MissingTagKey)),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each rule with an input it accepts and one it refuses.
    #[test]
    fn rules_table() {
        assert!(vpn_name("myvpn", 2, 100) && vpn_name("网关-1_a.b", 2, 100));
        for bad in ["a", "1abc", "_abc", "http://x", "a b", &"a".repeat(101)] {
            assert!(!vpn_name(bad, 2, 100), "{bad}");
        }
        assert!(vpn_description("a test description"));
        assert!(!vpn_description("x") && !vpn_description("1x") && !vpn_description("https://x"));
        assert!(vpc_text("1", 128) && !vpc_text("", 128) && !vpc_text("http://a", 128));
        assert_eq!(asn("65530"), Some(65530));
        assert_eq!(asn("123.456"), Some(123 * 65536 + 456));
        assert_eq!(asn("4294967295"), Some(u32::MAX));
        for bad in ["0", "4294967296", "65536.1", "a", "1.2.3", "-1", ""] {
            assert_eq!(asn(bad), None, "{bad}");
        }
        assert!(auth_key("AuthKey**!1") && !auth_key("has space") && !auth_key("what?") && !auth_key("中文") && !auth_key(""));
        assert!(!auth_key(&"k".repeat(65)));
        assert_eq!(cidr("10.0.0.0/8").map(|n| n.prefix_len()), Some(8));
        assert!(cidr("10.0.0.1/8").is_none() && cidr("nope").is_none());
        assert!(public_ip("47.1.2.3").is_some() && public_ip("198.51.100.7").is_some());
        for bad in ["0.0.0.0", "127.0.0.1", "224.0.0.1", "255.255.255.255", "1.2.3", "::1"] {
            assert!(public_ip(bad).is_none(), "{bad}");
        }
        assert!(tag_key("FinanceDept") && tag_key("部门") && !tag_key("aliyun-x") && !tag_key("acs:x") && !tag_key("1abc") && !tag_key(""));
        assert!(tag_key(&"k".repeat(64)) && !tag_key(&"k".repeat(65)));
        assert!(tag_value("") && tag_value("FinanceJoshua") && !tag_value("acs:v") && !tag_value(&"v".repeat(129)));
    }

    #[test]
    fn tag_parsing_codes() {
        let p = |pairs: &[(&str, &str)]| Params::from_pairs(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        assert_eq!(tags(&p(&[("Tag.1.Value", "v")]), "Tag").unwrap_err().code, Code::MissingTagKey);
        assert_eq!(tags(&p(&[("Tag.1.Key", "aliyun")]), "Tag").unwrap_err().code, Code::InvalidTagKey);
        assert_eq!(tags(&p(&[("Tag.1.Key", "k"), ("Tag.2.Key", "k")]), "Tag").unwrap_err().code, Code::DuplicatedTagKey);
        let many: Vec<(String, String)> = (1..=21).map(|i| (format!("Tag.{i}.Key"), format!("k{i}"))).collect();
        assert_eq!(tags(&Params::from_pairs(many), "Tag").unwrap_err().code, Code::TagNumExceeded);
        assert_eq!(tags(&p(&[("Tags.1.Key", "k"), ("Tags.1.Value", "")]), "Tags").unwrap(), vec![("k".into(), "".into())]);
    }

    #[test]
    fn paging_rules() {
        let p = |pairs: &[(&str, &str)]| Params::from_pairs(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        assert_eq!(paging(&p(&[])).unwrap(), (0, 10, 1, 10));
        assert_eq!(paging(&p(&[("PageNumber", "3"), ("PageSize", "50")])).unwrap(), (100, 50, 3, 50));
        assert!(paging(&p(&[("PageSize", "51")])).is_err());
        assert!(paging(&p(&[("PageSize", "0")])).is_err());
        assert!(paging(&p(&[("PageNumber", "0")])).is_err());
    }
}
