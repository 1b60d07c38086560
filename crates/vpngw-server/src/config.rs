//! The operator's configuration file (TOML). Every field has a default, so no file is needed.

use std::path::PathBuf;

use anyhow::Context;
use serde::Deserialize;
use vpngw_service::config::{Quotas, Region};

#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountConfig {
    pub name: String,
    pub access_key_id: String,
    pub access_key_secret: String,
    #[serde(default)]
    pub readonly: bool,
}

/// The secret is never printed.
impl std::fmt::Debug for AccountConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccountConfig").field("name", &self.name).field("access_key_id", &self.access_key_id).field("access_key_secret", &"<redacted>").field("readonly", &self.readonly).finish()
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub listen: String,
    pub data_dir: PathBuf,
    /// `HostId` in error bodies.
    pub host_id: String,
    /// How long a lifecycle step takes (creating, updating, deleting), in milliseconds.
    pub transition_ms: u64,
    /// Where VPN gateways' public addresses come from.
    pub public_ip_pool: String,
    /// Allowed clock skew of signed requests, in seconds (Alibaba: 15 minutes).
    pub max_clock_skew_secs: i64,
    pub accounts: Vec<AccountConfig>,
    pub regions: Vec<Region>,
    pub quotas: Quotas,
    /// How long an SSL-VPN client certificate is valid, in days.
    pub ssl_client_cert_days: f64,
    /// Where tunnels live: `mode = "none" | "host" | "lab"` and its settings.
    pub dataplane: vpngw_dataplane::config::DataPlaneConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: "127.0.0.1:8080".into(),
            data_dir: PathBuf::from("./vpngw-data"),
            host_id: "vpc.vpngw.local".into(),
            transition_ms: 300,
            public_ip_pool: "198.51.100.0/24".into(),
            max_clock_skew_secs: 900,
            accounts: Vec::new(),
            regions: vpngw_service::ServiceConfig::default_regions(),
            quotas: Quotas::default(),
            ssl_client_cert_days: vpngw_service::config::DEFAULT_SSL_CLIENT_CERT_DAYS as f64,
            dataplane: Default::default(),
        }
    }
}

impl Config {
    pub fn load(path: Option<&std::path::Path>) -> anyhow::Result<Config> {
        match path {
            None => Ok(Config::default()),
            Some(p) => {
                let text = std::fs::read_to_string(p).with_context(|| format!("read config {}", p.display()))?;
                toml::from_str(&text).with_context(|| format!("parse config {}", p.display()))
            }
        }
    }

    pub fn service_config(&self) -> anyhow::Result<vpngw_service::ServiceConfig> {
        anyhow::ensure!(!self.regions.is_empty(), "the configuration names no region");
        anyhow::ensure!(self.ssl_client_cert_days > 0.0 && self.ssl_client_cert_days < 36500.0, "ssl_client_cert_days must lie in (0, 36500)");
        std::fs::create_dir_all(&self.data_dir).with_context(|| format!("create data dir {}", self.data_dir.display()))?;
        let sealer = vpngw_service::secrets::Sealer::from_file(&self.data_dir.join("master.key"))?;
        Ok(vpngw_service::ServiceConfig {
            regions: self.regions.clone(),
            transition: std::time::Duration::from_millis(self.transition_ms),
            public_ip_pool: self.public_ip_pool.parse().with_context(|| format!("parse public_ip_pool {}", self.public_ip_pool))?,
            quotas: self.quotas.clone(),
            endpoint: self.listen.clone(),
            apply_timeout: std::time::Duration::from_millis(self.dataplane.apply_timeout_ms),
            ssl_client_cert_validity: std::time::Duration::from_secs_f64(self.ssl_client_cert_days * 86400.0),
            sealer: std::sync::Arc::new(sealer),
        })
    }
}
