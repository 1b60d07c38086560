//! One-click gateway diagnoses (DiagnoseVpnGateway).

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The diagnosis items, in the order they are reported.
pub const PUBLIC_PROBE: &str = "VcoUserInternetIpConnectivity";
pub const PRIVATE_PROBE: &str = "VcoPrivateConnectivity";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct GatewayDiagnosis {
    pub resource_type: String,
    pub resource_id: String,
    /// The probes' addresses: this side's public address and the customer gateway's, and the
    /// private pair IPsecExtendInfo named ("" when it named none).
    pub gateway_ip: String,
    pub peer_ip: String,
    pub private_source_ip: String,
    pub private_destination_ip: String,
    pub begin_ms: i64,
    pub finish_ms: Option<i64>,
    pub items: Vec<DiagnoseItem>,
    /// The probes the data plane has yet to run.
    pub pending: Vec<String>,
    pub total: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiagnoseItem {
    pub name: String,
    /// `normal`, `warning` or `error`.
    pub level: String,
    /// A JSON object, as the SDK documents per item.
    pub description: String,
}

impl DiagnoseItem {
    pub fn new(name: &str, level: &str, description: Value) -> DiagnoseItem {
        DiagnoseItem { name: name.into(), level: level.into(), description: description.to_string() }
    }
}

impl GatewayDiagnosis {
    /// Records a probe's result; the diagnosis finishes with its last probe.
    pub fn record(&mut self, item: DiagnoseItem, now_ms: i64) -> bool {
        let Some(i) = self.pending.iter().position(|p| *p == item.name) else { return false };
        self.pending.remove(i);
        self.items.push(item);
        if self.pending.is_empty() {
            self.finish_ms = Some(now_ms);
        }
        true
    }
}
