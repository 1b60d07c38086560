//! SSL-VPN servers, their client certificates, and connected clients.

use serde::{Deserialize, Serialize};
use serde_json::json;

/// A certificate within this of its end is `expiring-soon` (section 8.7: one week).
pub const EXPIRING_SOON_MS: i64 = 7 * 86400 * 1000;

/// A revoked certificate: its serial (hex) and when it was revoked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revoked {
    pub serial: String,
    pub revoked_ms: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SslVpnServer {
    pub name: String,
    pub client_ip_pool: String,
    pub local_subnet: Vec<String>,
    /// `UDP` or `TCP`.
    pub proto: String,
    pub port: u16,
    /// `AES-128-CBC`, `AES-192-CBC`, `AES-256-CBC` or `none`.
    pub cipher: String,
    pub compress: bool,
    pub dns_servers: Vec<String>,
    pub enable_multi_factor_auth: bool,
    pub idaas_instance_id: String,
    pub idaas_region_id: String,
    pub idaas_application_id: String,
    pub internet_ip: String,
    pub resource_group_id: String,
    /// The server's CA certificate (PEM).
    pub ca_cert: String,
    /// The CA's private key, sealed.
    pub ca_key: crate::secret::Secret,
    pub server_cert: String,
    /// The server certificate's private key, sealed.
    pub server_key: crate::secret::Secret,
    /// Serials of deleted (revoked) client certificates.
    pub revoked: Vec<Revoked>,
}

impl SslVpnServer {
    /// What the data plane must apply (names and IDaaS fields excluded).
    pub fn intent_digest(&self) -> String {
        use sha2::{Digest, Sha256};
        let v = json!([self.client_ip_pool, self.local_subnet, self.proto, self.port, self.cipher, self.compress, self.dns_servers, self.internet_ip, self.ca_cert, self.server_cert, self.revoked]);
        hex::encode(&Sha256::digest(v.to_string().as_bytes())[..8])
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SslVpnClientCert {
    pub name: String,
    /// Upper-case hex.
    pub serial: String,
    pub cert: String,
    /// Sealed.
    pub key: crate::secret::Secret,
    pub not_after_ms: i64,
    pub resource_group_id: String,
}

impl SslVpnClientCert {
    /// `normal`, `expiring-soon` (within a week of its end) or `expired`, from the real expiry.
    pub fn status(&self, now_ms: i64) -> &'static str {
        if now_ms >= self.not_after_ms {
            "expired"
        } else if self.not_after_ms - now_ms <= EXPIRING_SOON_MS {
            "expiring-soon"
        } else {
            "normal"
        }
    }
}

/// A client connected to an SSL-VPN server, as the data plane observes it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SslClient {
    /// The certificate's common name: its SslVpnClientCertId.
    pub common_name: String,
    pub ip: String,
    pub port: u16,
    pub private_ip: String,
    pub connected_ms: i64,
    pub receive_bytes: u64,
    pub send_bytes: u64,
    /// OpenVPN's id of the client instance (what disconnecting it takes).
    pub client_id: u64,
}
