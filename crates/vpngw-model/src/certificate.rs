//! Gateway certificates of the local certificate store.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Certificate {
    pub name: String,
    /// `Signature` or `Encryption`.
    pub certificate_type: String,
    pub subject: String,
    pub key_algorithm: String,
    pub not_before_ms: i64,
    pub not_after_ms: i64,
    pub cert_pem: String,
    pub key_pem: crate::secret::Secret,
}
