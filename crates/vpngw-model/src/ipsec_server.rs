//! IPsec servers (client-to-site).

use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::connection::{IkeCfg, IpsecCfg};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IpsecServer {
    pub name: String,
    pub local_subnet: Vec<String>,
    pub client_ip_pool: String,
    pub effect_immediately: bool,
    pub psk_enabled: bool,
    /// IKE settings; `ike.psk` is the server's PSK.
    pub ike: IkeCfg,
    pub ipsec: IpsecCfg,
    pub internet_ip: String,
    pub resource_group_id: String,
    /// Clients connected now, owned by the data plane.
    #[serde(default)]
    pub online_client_count: u32,
}

impl IpsecServer {
    /// What the data plane must apply (observed fields excluded).
    pub fn intent_digest(&self) -> String {
        use sha2::{Digest, Sha256};
        let v = json!([self.local_subnet, self.client_ip_pool, self.effect_immediately, self.ike, self.ipsec, self.internet_ip]);
        hex::encode(&Sha256::digest(v.to_string().as_bytes())[..8])
    }
}
