//! Customer gateways: the peer side of IPsec connections.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CustomerGateway {
    pub name: String,
    pub description: String,
    pub ip_address: String,
    pub asn: Option<u32>,
    pub auth_key: crate::secret::Secret,
    pub resource_group_id: String,
}
