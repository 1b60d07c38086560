//! Private keys at rest: sealed with the service's master key.
//!
//! The store never holds a private key in the clear. A [`Sealer`] encrypts each one with
//! ChaCha20-Poly1305 under a 256-bit master key, binding it to where it belongs (the
//! resource id and field, as associated data): a sealed value copied into another record does
//! not open. The master key lives outside the database (`<data_dir>/master.key`, mode 0600,
//! created on first start), so a copy of the SQLite file alone reveals no key.

use std::path::Path;

use base64::Engine;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use rand::RngCore;

/// The prefix of a sealed value (the format's version).
pub const SEALED_PREFIX: &str = "sealed:v1:";
const PREFIX: &str = SEALED_PREFIX;

/// The sealing context of a private key: the record it belongs to and its field.
pub fn key_context(id: &str, field: &str) -> String {
    format!("{id}/{field}")
}

pub struct Sealer {
    key: Key,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer(<master key>)")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error("not a sealed value")]
    Format,
    #[error("the value does not open with this master key (wrong key, or moved from another record)")]
    Open,
    #[error("master key file {0}: {1}")]
    KeyFile(String, String),
}

impl Sealer {
    /// A sealer with a fresh random key that lives only in memory (tests, benchmarks).
    pub fn ephemeral() -> Sealer {
        let mut k = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut k);
        Sealer { key: k.into() }
    }

    /// The master key stored at `path` (32 bytes), created there (mode 0600) when missing.
    pub fn from_file(path: &Path) -> Result<Sealer, SealError> {
        let err = |e: &dyn std::fmt::Display| SealError::KeyFile(path.display().to_string(), e.to_string());
        match std::fs::read(path) {
            Ok(bytes) if bytes.len() == 32 => Ok(Sealer { key: *Key::from_slice(&bytes) }),
            Ok(bytes) => Err(err(&format!("holds {} bytes, not 32", bytes.len()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                use std::io::Write;
                use std::os::unix::fs::OpenOptionsExt;
                let mut k = [0u8; 32];
                rand::thread_rng().fill_bytes(&mut k);
                // create_new: two processes starting at once never overwrite each other's key.
                let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path).map_err(|e| err(&e))?;
                f.write_all(&k).and_then(|_| f.sync_all()).map_err(|e| err(&e))?;
                Ok(Sealer { key: k.into() })
            }
            Err(e) => Err(err(&e)),
        }
    }

    /// The master key given as 64 hexadecimal digits (`VPNGW_MASTER_KEY`).
    pub fn from_hex(hex_key: &str) -> Result<Sealer, SealError> {
        let bytes = hex::decode(hex_key.trim()).map_err(|e| SealError::KeyFile("VPNGW_MASTER_KEY".into(), e.to_string()))?;
        if bytes.len() != 32 {
            return Err(SealError::KeyFile("VPNGW_MASTER_KEY".into(), format!("holds {} bytes, not 32 (64 hexadecimal digits)", bytes.len())));
        }
        Ok(Sealer { key: *Key::from_slice(&bytes) })
    }

    /// A new random key, and its 32 bytes (to be written where the servers read it).
    pub fn generate() -> (Sealer, [u8; 32]) {
        let mut k = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut k);
        (Sealer { key: k.into() }, k)
    }

    /// A MAC of `msg` for `purpose` under the master key (HMAC-SHA256, hexadecimal): how the
    /// processes of a cluster, which share the key, know each other.
    pub fn mac(&self, purpose: &str, msg: &[u8]) -> String {
        use hmac::Mac;
        // The key is 32 bytes: HMAC takes any length.
        let Ok(mut m) = <hmac::Hmac<sha2::Sha256> as Mac>::new_from_slice(self.key.as_slice()) else { return String::new() };
        m.update(purpose.as_bytes());
        m.update(&[0]);
        m.update(msg);
        hex::encode(m.finalize().into_bytes())
    }

    /// Whether `mac` is [`Sealer::mac`] of `msg` for `purpose` (compared in constant time).
    pub fn verify_mac(&self, purpose: &str, msg: &[u8], mac: &str) -> bool {
        use hmac::Mac;
        let (Ok(mut m), Ok(given)) = (<hmac::Hmac<sha2::Sha256> as Mac>::new_from_slice(self.key.as_slice()), hex::decode(mac)) else { return false };
        m.update(purpose.as_bytes());
        m.update(&[0]);
        m.update(msg);
        m.verify_slice(&given).is_ok()
    }

    /// Seals `plain`, bound to `context` (say `vss-…/ca_key`).
    pub fn seal(&self, context: &str, plain: &str) -> String {
        let mut nonce = [0u8; 12];
        rand::thread_rng().fill_bytes(&mut nonce);
        let cipher = ChaCha20Poly1305::new(&self.key);
        // Encryption with a valid key and nonce cannot fail.
        let ct = cipher.encrypt(Nonce::from_slice(&nonce), Payload { msg: plain.as_bytes(), aad: context.as_bytes() }).unwrap_or_default();
        let mut out = nonce.to_vec();
        out.extend(ct);
        format!("{PREFIX}{}", base64::engine::general_purpose::STANDARD.encode(out))
    }

    /// Opens a value sealed for `context`.
    pub fn open(&self, context: &str, sealed: &str) -> Result<String, SealError> {
        let b64 = sealed.strip_prefix(PREFIX).ok_or(SealError::Format)?;
        let raw = base64::engine::general_purpose::STANDARD.decode(b64).map_err(|_| SealError::Format)?;
        if raw.len() < 12 + 16 {
            return Err(SealError::Format);
        }
        let (nonce, ct) = raw.split_at(12);
        let cipher = ChaCha20Poly1305::new(&self.key);
        let plain = cipher.decrypt(Nonce::from_slice(nonce), Payload { msg: ct, aad: context.as_bytes() }).map_err(|_| SealError::Open)?;
        String::from_utf8(plain).map_err(|_| SealError::Open)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seals_and_opens_only_in_its_context_and_under_its_key() {
        let s = Sealer::ephemeral();
        let sealed = s.seal("vss-1/ca_key", "-----BEGIN PRIVATE KEY-----");
        assert!(sealed.starts_with(PREFIX) && !sealed.contains("PRIVATE"));
        assert_eq!(s.open("vss-1/ca_key", &sealed).unwrap(), "-----BEGIN PRIVATE KEY-----");
        assert!(matches!(s.open("vss-2/ca_key", &sealed), Err(SealError::Open)));
        assert!(matches!(Sealer::ephemeral().open("vss-1/ca_key", &sealed), Err(SealError::Open)));
        assert!(matches!(s.open("vss-1/ca_key", "plain"), Err(SealError::Format)));
        // Two seals of the same value differ (fresh nonce).
        assert_ne!(sealed, s.seal("vss-1/ca_key", "-----BEGIN PRIVATE KEY-----"));
    }

    #[test]
    fn the_key_file_is_created_private_and_read_back() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("vpngw-sealer-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("master.key");
        let _ = std::fs::remove_file(&path);
        let a = Sealer::from_file(&path).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        let sealed = a.seal("x", "secret");
        assert_eq!(Sealer::from_file(&path).unwrap().open("x", &sealed).unwrap(), "secret");
        std::fs::write(&path, b"short").unwrap();
        assert!(Sealer::from_file(&path).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
