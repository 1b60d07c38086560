//! Response bodies: JSON by default, XML with `Format=XML`, for results and errors alike.
//!
//! A result is a JSON object (the SDK model's shape, `RequestId` added here). XML follows
//! Alibaba's layout: `<ActionResponse>` with one element per field; a list renders as the
//! element repeated, so `{"VpnGateways":{"VpnGateway":[a,b]}}` becomes
//! `<VpnGateways><VpnGateway>a</VpnGateway><VpnGateway>b</VpnGateway></VpnGateways>`.

use serde_json::{Map, Value};

use crate::error::ApiError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Xml,
}

impl Format {
    /// `XML` in any case selects XML; anything else (`JSON`, `json`, absent) is JSON.
    pub fn from_param(v: Option<&str>) -> Format {
        match v {
            Some(f) if f.eq_ignore_ascii_case("xml") => Format::Xml,
            _ => Format::Json,
        }
    }
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Json => "application/json;charset=utf-8",
            Format::Xml => "text/xml;charset=utf-8",
        }
    }
}

/// Removes every member whose value is `null`, at any depth. A field the resource does not have
/// (a customer gateway's `Asn` without BGP) is left out: the SDK models and Go clients read a
/// JSON `null` as a type error, an absent field as unset.
fn prune_nulls(map: &mut Map<String, Value>) {
    map.retain(|_, v| !v.is_null());
    for v in map.values_mut() {
        match v {
            Value::Object(m) => prune_nulls(m),
            Value::Array(items) => items.iter_mut().for_each(|i| {
                if let Value::Object(m) = i {
                    prune_nulls(m)
                }
            }),
            _ => {}
        }
    }
}

/// The body of a successful call.
pub fn render_ok(format: Format, action: &str, request_id: &str, mut body: Map<String, Value>) -> String {
    prune_nulls(&mut body);
    match format {
        // `{"RequestId":"…",` then the body's members: no second map of every member.
        Format::Json => {
            let mut out = Vec::with_capacity(256);
            out.extend_from_slice(b"{\"RequestId\":");
            let _ = serde_json::to_writer(&mut out, request_id);
            let members = out.len();
            let _ = serde_json::to_writer(&mut out, &body);
            // The body serialized as `{…}`: its `{` becomes the separator, or goes if empty.
            if body.is_empty() {
                out.truncate(members);
                out.push(b'}');
            } else {
                out[members] = b',';
            }
            String::from_utf8(out).unwrap_or_default()
        }
        Format::Xml => {
            let mut obj = Map::with_capacity(body.len() + 1);
            obj.insert("RequestId".into(), Value::String(request_id.into()));
            obj.extend(body);
            let mut s = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
            let root = format!("{action}Response");
            element(&mut s, &root, &Value::Object(obj));
            s
        }
    }
}

/// The error envelope `{RequestId, HostId, Code, Message, Recommend}`.
pub fn render_error(format: Format, request_id: &str, host_id: &str, err: &ApiError) -> String {
    let mut obj = Map::new();
    obj.insert("RequestId".into(), request_id.into());
    obj.insert("HostId".into(), host_id.into());
    obj.insert("Code".into(), err.code.wire().into());
    obj.insert("Message".into(), err.message.as_ref().into());
    obj.insert("Recommend".into(), format!("https://api.aliyun.com/troubleshoot?q={}&product=Vpc&requestId={request_id}", err.code.wire()).into());
    match format {
        Format::Json => serde_json::to_string(&Value::Object(obj)).unwrap_or_default(),
        Format::Xml => {
            let mut s = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
            element(&mut s, "Error", &Value::Object(obj));
            s
        }
    }
}

fn element(out: &mut String, name: &str, v: &Value) {
    match v {
        Value::Null => {}
        Value::Array(items) => {
            for item in items {
                element(out, name, item);
            }
        }
        Value::Object(o) => {
            out.push('<');
            out.push_str(name);
            out.push('>');
            for (k, v) in o {
                element(out, k, v);
            }
            out.push_str("</");
            out.push_str(name);
            out.push('>');
        }
        scalar => {
            let text = match scalar {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            out.push('<');
            out.push_str(name);
            out.push('>');
            out.push_str(&quick_xml::escape::escape(text.as_str()));
            out.push_str("</");
            out.push_str(name);
            out.push('>');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Code;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn json_result_snapshot() {
        let body = obj(json!({"TotalCount": 1, "VpnGateways": {"VpnGateway": [{"VpnGatewayId": "vpn-1", "Tags": {"Tag": []}}]}}));
        insta::assert_snapshot!(render_ok(Format::Json, "DescribeVpnGateways", "RID", body), @r#"{"RequestId":"RID","TotalCount":1,"VpnGateways":{"VpnGateway":[{"VpnGatewayId":"vpn-1","Tags":{"Tag":[]}}]}}"#);
    }

    #[test]
    fn no_member_is_null() {
        let body = obj(serde_json::json!({"Asn": null, "A": {"B": null, "C": [{"D": null, "E": 1}]}}));
        assert_eq!(render_ok(Format::Json, "X", "r", body), r#"{"RequestId":"r","A":{"C":[{"E":1}]}}"#);
    }

    #[test]
    fn json_result_of_only_the_request_id() {
        insta::assert_snapshot!(render_ok(Format::Json, "DeleteVpnGateway", "R\"1", Map::new()), @r#"{"RequestId":"R\"1"}"#);
    }

    #[test]
    fn xml_result_snapshot() {
        let body = obj(json!({"TotalCount": 2, "VpnGateways": {"VpnGateway": [{"Name": "a<b"}, {"Name": "c&d"}]}, "Skipped": null}));
        insta::assert_snapshot!(render_ok(Format::Xml, "DescribeVpnGateways", "RID", body), @r#"
        <?xml version="1.0" encoding="UTF-8"?>
        <DescribeVpnGatewaysResponse><RequestId>RID</RequestId><TotalCount>2</TotalCount><VpnGateways><VpnGateway><Name>a&lt;b</Name></VpnGateway><VpnGateway><Name>c&amp;d</Name></VpnGateway></VpnGateways></DescribeVpnGatewaysResponse>
        "#);
    }

    #[test]
    fn error_snapshots() {
        let e = ApiError::new(Code::InvalidVpnGatewayId);
        insta::assert_snapshot!(render_error(Format::Json, "RID", "vpngw", &e), @r#"{"RequestId":"RID","HostId":"vpngw","Code":"InvalidVpnGatewayInstanceId.NotFound","Message":"The specified vpn gateway instance id does not exist.","Recommend":"https://api.aliyun.com/troubleshoot?q=InvalidVpnGatewayInstanceId.NotFound&product=Vpc&requestId=RID"}"#);
        insta::assert_snapshot!(render_error(Format::Xml, "RID", "vpngw", &e), @r#"
        <?xml version="1.0" encoding="UTF-8"?>
        <Error><RequestId>RID</RequestId><HostId>vpngw</HostId><Code>InvalidVpnGatewayInstanceId.NotFound</Code><Message>The specified vpn gateway instance id does not exist.</Message><Recommend>https://api.aliyun.com/troubleshoot?q=InvalidVpnGatewayInstanceId.NotFound&amp;product=Vpc&amp;requestId=RID</Recommend></Error>
        "#);
    }

    #[test]
    fn format_selection() {
        assert_eq!(Format::from_param(Some("XML")), Format::Xml);
        assert_eq!(Format::from_param(Some("xml")), Format::Xml);
        assert_eq!(Format::from_param(Some("json")), Format::Json);
        assert_eq!(Format::from_param(None), Format::Json);
    }
}
