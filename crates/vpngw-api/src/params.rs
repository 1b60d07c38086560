//! The one codec for Alibaba's RPC parameters.
//!
//! The SDKs send every parameter as a flat `name=value` pair: scalars as they are, repeated
//! scalars as `ResourceId.1`, `ResourceId.2`, lists of objects as `Tag.1.Key` / `Tag.1.Value`,
//! nested objects inside lists as `TunnelOptionsSpecification.1.TunnelIkeConfig.Psk`, and a few
//! parameters (`IkeConfig`, ...) as one JSON string. The 2022 reference also shows the JSON-array
//! spelling (`ResourceId=["vpc-1"]`, `Tag=[{"Key":"k","Value":"v"}]`); both are accepted.
//!
//! Every accessor names the parameter it reads, so a type error becomes
//! `InvalidParameter` / `MissingParameter` with that name.

use std::collections::BTreeMap;
use std::str::FromStr;

use crate::error::ApiError;

/// Decoded request parameters (common parameters already removed or not, as the caller likes).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Params {
    map: BTreeMap<String, String>,
}

impl Params {
    pub fn new() -> Self {
        Self::default()
    }

    /// Later pairs win over earlier ones with the same name.
    pub fn from_pairs<I, K, V>(pairs: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        Params { map: pairs.into_iter().map(|(k, v)| (k.into(), v.into())).collect() }
    }

    pub fn insert(&mut self, k: impl Into<String>, v: impl Into<String>) {
        self.map.insert(k.into(), v.into());
    }

    pub fn remove(&mut self, k: &str) -> Option<String> {
        self.map.remove(k)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.map.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub fn get(&self, k: &str) -> Option<&str> {
        self.map.get(k).map(String::as_str)
    }

    /// Whether the parameter, or any flattened member of it (`k.1`, `k.1.X`), is present.
    pub fn has(&self, k: &str) -> bool {
        if self.map.contains_key(k) {
            return true;
        }
        let p = format!("{k}.");
        self.map.range(p.clone()..).next().is_some_and(|(key, _)| key.starts_with(&p))
    }

    /// A required scalar; absent or empty is `MissingParameter`.
    pub fn req(&self, k: &str) -> Result<&str, ApiError> {
        match self.get(k) {
            Some(v) if !v.is_empty() => Ok(v),
            _ => Err(ApiError::missing(k)),
        }
    }

    /// An optional scalar; an empty value counts as absent.
    pub fn opt(&self, k: &str) -> Option<&str> {
        self.get(k).filter(|v| !v.is_empty())
    }

    /// An optional scalar that keeps an empty value (`Tag.2.Value=` means the empty value).
    pub fn opt_raw(&self, k: &str) -> Option<&str> {
        self.get(k)
    }

    /// A boolean: `true`/`True`/`false`/`False` (any case).
    pub fn opt_bool(&self, k: &str) -> Result<Option<bool>, ApiError> {
        match self.opt(k) {
            None => Ok(None),
            Some(v) => parse_bool(v).map(Some).ok_or_else(|| ApiError::invalid(k)),
        }
    }

    pub fn opt_num<T: FromStr>(&self, k: &str) -> Result<Option<T>, ApiError> {
        match self.opt(k) {
            None => Ok(None),
            Some(v) => v.trim().parse().map(Some).map_err(|_| ApiError::invalid(k)),
        }
    }

    pub fn req_num<T: FromStr>(&self, k: &str) -> Result<T, ApiError> {
        self.req(k)?.trim().parse().map_err(|_| ApiError::invalid(k))
    }

    /// A repeated scalar `k.1`, `k.2`, ... in index order, or the JSON-array form `k=["a","b"]`.
    pub fn list(&self, k: &str) -> Result<Vec<String>, ApiError> {
        let mut out: Vec<(u32, String)> = Vec::new();
        let p = format!("{k}.");
        for (key, v) in self.map.range(p.clone()..) {
            let Some(rest) = key.strip_prefix(&p) else { break };
            let n: u32 = rest.parse().map_err(|_| ApiError::invalid(key))?;
            if n == 0 {
                return Err(ApiError::invalid(key));
            }
            out.push((n, v.clone()));
        }
        if out.is_empty() {
            if let Some(raw) = self.opt(k) {
                return match serde_json::from_str::<serde_json::Value>(raw) {
                    Ok(serde_json::Value::Array(items)) => items
                        .into_iter()
                        .map(|i| match i {
                            serde_json::Value::String(s) => Ok(s),
                            serde_json::Value::Number(n) => Ok(n.to_string()),
                            _ => Err(ApiError::invalid(k)),
                        })
                        .collect(),
                    // A single plain value counts as a one-element list.
                    _ => Ok(vec![raw.to_string()]),
                };
            }
        }
        out.sort_by_key(|(n, _)| *n);
        Ok(out.into_iter().map(|(_, v)| v).collect())
    }

    /// One object `k.Field...` as the `Params` below `k.` (the Tea SDKs flatten an object
    /// parameter so), or the JSON form `k={"Field":"v"}`; `None` when the request has neither.
    pub fn object(&self, k: &str) -> Result<Option<Params>, ApiError> {
        let p = format!("{k}.");
        let mut sub = Params::new();
        for (key, v) in self.map.range(p.clone()..) {
            let Some(field) = key.strip_prefix(&p) else { break };
            sub.insert(field, v.clone());
        }
        if !sub.is_empty() {
            return Ok(Some(sub));
        }
        match self.opt(k) {
            None => Ok(None),
            Some(raw) => match serde_json::from_str::<serde_json::Value>(raw) {
                Ok(o @ serde_json::Value::Object(_)) => {
                    flatten_json("", &o, &mut sub);
                    Ok(Some(sub))
                }
                _ => Err(ApiError::invalid(k)),
            },
        }
    }

    /// A list of objects `k.N.Field...`, in index order, each as the `Params` below `k.N.`;
    /// or the JSON-array form `k=[{"Field":"v"}]`.
    pub fn objects(&self, k: &str) -> Result<Vec<Params>, ApiError> {
        let mut groups: BTreeMap<u32, Params> = BTreeMap::new();
        let p = format!("{k}.");
        for (key, v) in self.map.range(p.clone()..) {
            let Some(rest) = key.strip_prefix(&p) else { break };
            let (idx, field) = rest.split_once('.').ok_or_else(|| ApiError::invalid(key))?;
            let n: u32 = idx.parse().map_err(|_| ApiError::invalid(key))?;
            if n == 0 || field.is_empty() {
                return Err(ApiError::invalid(key));
            }
            groups.entry(n).or_default().insert(field, v.clone());
        }
        if groups.is_empty() {
            if let Some(raw) = self.opt(k) {
                let Ok(serde_json::Value::Array(items)) = serde_json::from_str::<serde_json::Value>(raw) else {
                    return Err(ApiError::invalid(k));
                };
                return items
                    .into_iter()
                    .map(|item| match item {
                        serde_json::Value::Object(o) => {
                            let mut sub = Params::new();
                            flatten_json("", &serde_json::Value::Object(o), &mut sub);
                            Ok(sub)
                        }
                        _ => Err(ApiError::invalid(k)),
                    })
                    .collect();
            }
        }
        Ok(groups.into_values().collect())
    }

    /// A parameter whose value is a JSON object written as a string (`IkeConfig={"IkeVersion":"ikev2"}`).
    pub fn json_object(&self, k: &str) -> Result<Option<serde_json::Map<String, serde_json::Value>>, ApiError> {
        match self.opt(k) {
            None => Ok(None),
            Some(raw) => match serde_json::from_str::<serde_json::Value>(raw) {
                Ok(serde_json::Value::Object(o)) => Ok(Some(o)),
                _ => Err(ApiError::invalid(k)),
            },
        }
    }

    /// A stable digest input: every pair, sorted, for comparing two requests' parameters.
    pub fn canonical(&self) -> String {
        let mut s = String::new();
        for (k, v) in &self.map {
            s.push_str(k);
            s.push('\u{1}');
            s.push_str(v);
            s.push('\u{2}');
        }
        s
    }
}

fn flatten_json(prefix: &str, v: &serde_json::Value, out: &mut Params) {
    match v {
        serde_json::Value::Object(o) => {
            for (k, v) in o {
                let key = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                flatten_json(&key, v, out);
            }
        }
        serde_json::Value::Array(a) => {
            for (i, v) in a.iter().enumerate() {
                flatten_json(&format!("{prefix}.{}", i + 1), v, out);
            }
        }
        serde_json::Value::String(s) => out.insert(prefix, s.clone()),
        serde_json::Value::Null => {}
        other => out.insert(prefix, other.to_string()),
    }
}

/// `true`/`false` in any case, as the Python SDKs send `True`/`False` and Node `true`/`false`.
pub fn parse_bool(v: &str) -> Option<bool> {
    if v.eq_ignore_ascii_case("true") {
        Some(true)
    } else if v.eq_ignore_ascii_case("false") {
        Some(false)
    } else {
        None
    }
}

/// Decodes `application/x-www-form-urlencoded` (and query strings): `+` is a space, `%XX` bytes are
/// UTF-8. Invalid UTF-8 is replaced, never a panic.
pub fn decode_form(s: &str) -> Vec<(String, String)> {
    s.split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (form_unescape(k), form_unescape(v))
        })
        .collect()
}

fn form_unescape(s: &str) -> String {
    let replaced = s.replace('+', " ");
    percent_encoding::percent_decode_str(&replaced).decode_utf8_lossy().into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Code;

    fn p(pairs: &[(&str, &str)]) -> Params {
        Params::from_pairs(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())))
    }

    #[test]
    fn flattened_lists_come_back_in_index_order() {
        let q = p(&[("ResourceId.10", "c"), ("ResourceId.2", "b"), ("ResourceId.1", "a"), ("ResourceIdX", "no")]);
        assert_eq!(q.list("ResourceId").unwrap(), vec!["a", "b", "c"]);
        assert!(q.list("Nope").unwrap().is_empty());
    }

    #[test]
    fn json_array_form_is_accepted() {
        let q = p(&[("ResourceId", r#"["vpc-1","vpc-2"]"#), ("Tag", r#"[{"Key":"k","Value":"v"}]"#)]);
        assert_eq!(q.list("ResourceId").unwrap(), vec!["vpc-1", "vpc-2"]);
        let tags = q.objects("Tag").unwrap();
        assert_eq!(tags[0].get("Key"), Some("k"));
        assert_eq!(tags[0].get("Value"), Some("v"));
    }

    #[test]
    fn objects_keep_empty_values_and_nested_fields() {
        let q = p(&[
            ("Tag.1.Key", "k1"),
            ("Tag.1.Value", "v1"),
            ("Tag.2.Key", "k2"),
            ("Tag.2.Value", ""),
            ("TunnelOptionsSpecification.1.TunnelIkeConfig.Psk", "secret"),
            ("TunnelOptionsSpecification.1.Role", "master"),
        ]);
        let tags = q.objects("Tag").unwrap();
        assert_eq!(tags.len(), 2);
        assert_eq!(tags[1].opt_raw("Value"), Some(""));
        let t = q.objects("TunnelOptionsSpecification").unwrap();
        assert_eq!(t[0].get("TunnelIkeConfig.Psk"), Some("secret"));
        assert_eq!(t[0].get("Role"), Some("master"));
    }

    #[test]
    fn one_object_flattened_or_as_json() {
        let q = p(&[("TunnelOptionsSpecification.EnableDpd", "False"), ("TunnelOptionsSpecification.TunnelIkeConfig.Psk", "k"), ("TunnelOptionsSpecificationX", "no")]);
        let o = q.object("TunnelOptionsSpecification").unwrap().unwrap();
        assert_eq!((o.get("EnableDpd"), o.get("TunnelIkeConfig.Psk"), o.iter().count()), (Some("False"), Some("k"), 2));
        let j = p(&[("Spec", r#"{"EnableDpd":false,"TunnelIkeConfig":{"Psk":"k"}}"#)]).object("Spec").unwrap().unwrap();
        assert_eq!((j.get("EnableDpd"), j.get("TunnelIkeConfig.Psk")), (Some("false"), Some("k")));
        assert!(p(&[]).object("Spec").unwrap().is_none());
        assert_eq!(p(&[("Spec", "[1]")]).object("Spec").unwrap_err().code, crate::Code::InvalidParameter);
    }

    #[test]
    fn bad_indices_are_invalid_parameters() {
        assert_eq!(p(&[("Tag.x.Key", "k")]).objects("Tag").unwrap_err().code, Code::InvalidParameter);
        assert_eq!(p(&[("Tag.0.Key", "k")]).objects("Tag").unwrap_err().code, Code::InvalidParameter);
        assert_eq!(p(&[("Tag.1", "k")]).objects("Tag").unwrap_err().code, Code::InvalidParameter);
        assert_eq!(p(&[("ResourceId.a", "k")]).list("ResourceId").unwrap_err().code, Code::InvalidParameter);
    }

    #[test]
    fn booleans_in_any_case() {
        for (v, want) in [("true", true), ("True", true), ("TRUE", true), ("false", false), ("False", false)] {
            assert_eq!(p(&[("B", v)]).opt_bool("B").unwrap(), Some(want));
        }
        let e = p(&[("B", "yes")]).opt_bool("B").unwrap_err();
        assert_eq!(e.code, Code::InvalidParameter);
        assert!(e.message.contains("\"B\""));
    }

    #[test]
    fn required_and_numbers() {
        let q = p(&[("Bandwidth", "5"), ("Empty", ""), ("Bad", "5x")]);
        assert_eq!(q.req_num::<u32>("Bandwidth").unwrap(), 5);
        assert_eq!(q.req("Empty").unwrap_err().code, Code::MissingParameter);
        assert_eq!(q.req("Absent").unwrap_err().code, Code::MissingParameter);
        assert_eq!(q.req_num::<u32>("Bad").unwrap_err().code, Code::InvalidParameter);
    }

    #[test]
    fn json_string_parameters() {
        let q = p(&[("IkeConfig", r#"{"IkeVersion": "ikev2", "IkeLifetime": 86400}"#), ("Bad", "{nope")]);
        let o = q.json_object("IkeConfig").unwrap().unwrap();
        assert_eq!(o["IkeLifetime"], 86400);
        assert_eq!(q.json_object("Bad").unwrap_err().code, Code::InvalidParameter);
    }

    #[test]
    fn form_decoding_plus_and_utf8() {
        let d = decode_form("Name=a+b&Desc=%E4%B8%AD%E6%96%87&Star=%2A&Empty=&Bare");
        assert_eq!(d, vec![("Name".into(), "a b".into()), ("Desc".into(), "中文".into()), ("Star".into(), "*".into()), ("Empty".into(), "".into()), ("Bare".into(), "".into())]);
        // Bytes that are not UTF-8 never panic.
        let _ = decode_form("X=%FF%FE");
    }

    mod prop {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn decode_never_panics(s in ".*") {
                let _ = decode_form(&s);
            }

            #[test]
            fn accessors_never_panic(k in "[A-Za-z.0-9]{0,12}", v in ".{0,20}") {
                let q = Params::from_pairs([(k.clone(), v)]);
                let _ = q.list("Tag");
                let _ = q.objects("Tag");
                let _ = q.opt_bool(&k);
                let _ = q.opt_num::<i64>(&k);
                let _ = q.json_object(&k);
            }
        }
    }
}
