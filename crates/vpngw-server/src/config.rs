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
    /// HTTPS on the `listen` port: `"self-signed"` (a CA and certificate made at first start
    /// in `<data_dir>/tls/`), `"files"` (implied by `tls_cert` and `tls_key`) or `"off"`. With
    /// TLS on, plain HTTP stays open to loopback peers only.
    pub tls: Option<String>,
    /// The certificate chain (PEM) the API presents.
    pub tls_cert: Option<PathBuf>,
    /// Its private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub tls_key: Option<PathBuf>,
    pub data_dir: PathBuf,
    /// Where intent lives: unset or `sqlite://PATH` keeps the embedded SQLite file (default
    /// `<data_dir>/vpngw.db`); `postgres://…` or `postgresql://…` is a database any number of
    /// servers share. `--store` and `VPNGW_STORE` override it.
    pub store: Option<String>,
    /// The master key that seals secrets at rest: 32 bytes in this file (default
    /// `<data_dir>/master.key`, created mode 0600 when missing). `VPNGW_MASTER_KEY` (64
    /// hexadecimal digits) overrides it. Every server of a cluster needs the same key.
    pub master_key_file: Option<PathBuf>,
    /// `HostId` in error bodies.
    pub host_id: String,
    /// `text` (default) or `json`: one JSON object per log line (`VPNGW_LOG_FORMAT` overrides).
    pub log_format: String,
    /// Where `GET /metrics` (Prometheus) is served, apart from the API: unset is
    /// `127.0.0.1:9464` (a busy port there only costs the metrics, with a warning); an address
    /// given must bind; `""` or `"off"` serves none. Per-account and per-tunnel series are for
    /// the operator: keep this off the tenants' network.
    pub metrics_listen: Option<String>,
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
    /// `vpngw agent`: who this gateway host is in the fleet.
    pub agent: AgentSection,
}

/// The `[agent]` section: a gateway agent's identity (`vpngw agent`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AgentSection {
    /// The agent's name in the fleet (unique; default: the host's name).
    pub name: String,
    /// The zone it serves (a VSwitch's ZoneId): gateway sides of that zone are placed on it.
    pub zone: String,
    /// The public addresses it can bind, as addresses or CIDR blocks (empty: any): only a
    /// gateway side whose public address is among them is placed on it.
    pub addresses: Vec<String>,
    /// How long its lease lasts without renewal, in milliseconds: how soon after this host dies
    /// its gateways move (renewed every fifth of it).
    pub lease_ms: u64,
    /// Where it answers the API servers' live questions (logs, diagnoses, SSL-VPN clients);
    /// port 0 picks a free one. Requests must carry a MAC under the cluster's master key.
    pub live_listen: String,
    /// The URL the API servers reach that port at (default: `http://` and the bound address).
    pub live_url: Option<String>,
}

impl Default for AgentSection {
    fn default() -> Self {
        AgentSection {
            name: std::fs::read_to_string("/etc/hostname").map(|h| h.trim().to_string()).unwrap_or_default(),
            zone: String::new(),
            addresses: Vec::new(),
            lease_ms: 2000,
            live_listen: "127.0.0.1:0".into(),
            live_url: None,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: "127.0.0.1:8080".into(),
            tls: None,
            tls_cert: None,
            tls_key: None,
            data_dir: PathBuf::from("./vpngw-data"),
            store: None,
            master_key_file: None,
            host_id: "vpc.vpngw.local".into(),
            log_format: String::new(),
            metrics_listen: None,
            transition_ms: 300,
            public_ip_pool: "198.51.100.0/24".into(),
            max_clock_skew_secs: 900,
            accounts: Vec::new(),
            regions: vpngw_service::ServiceConfig::default_regions(),
            quotas: Quotas::default(),
            ssl_client_cert_days: vpngw_service::config::DEFAULT_SSL_CLIENT_CERT_DAYS as f64,
            dataplane: Default::default(),
            agent: Default::default(),
        }
    }
}

/// Whether `path` is a file someone may execute.
fn is_executable(path: &std::path::Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Creates `dir` if missing and makes it the owner's alone (0700).
pub fn private_dir(dir: &std::path::Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir).with_context(|| format!("create data dir {}", dir.display()))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).with_context(|| format!("make data dir {} private", dir.display()))
}

impl Config {
    /// The master key file in use.
    pub fn master_key_path(&self) -> PathBuf {
        self.master_key_file.clone().unwrap_or_else(|| self.data_dir.join("master.key"))
    }

    /// The master key: `VPNGW_MASTER_KEY`, else the key file (created when missing).
    pub fn sealer(&self) -> anyhow::Result<vpngw_service::secrets::Sealer> {
        match std::env::var("VPNGW_MASTER_KEY") {
            Ok(hex) if !hex.is_empty() => Ok(vpngw_service::secrets::Sealer::from_hex(&hex)?),
            _ => {
                let path = self.master_key_path();
                if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                    std::fs::create_dir_all(parent).with_context(|| format!("create {}", parent.display()))?;
                }
                Ok(vpngw_service::secrets::Sealer::from_file(&path)?)
            }
        }
    }

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
        private_dir(&self.data_dir)?;
        let sealer = self.sealer()?;
        Ok(vpngw_service::ServiceConfig {
            regions: self.regions.clone(),
            transition: std::time::Duration::from_millis(self.transition_ms),
            public_ip_pool: self.public_ip_pool.parse().with_context(|| format!("parse public_ip_pool {}", self.public_ip_pool))?,
            quotas: self.quotas.clone(),
            endpoint: self.listen.clone(),
            apply_timeout: std::time::Duration::from_millis(self.dataplane.apply_timeout_ms),
            ssl_client_cert_validity: std::time::Duration::from_secs_f64(self.ssl_client_cert_days * 86400.0),
            sealer: std::sync::Arc::new(sealer),
            bgp_speaker: self.dataplane.mode != vpngw_dataplane::config::Mode::None && is_executable(&self.dataplane.bird),
        })
    }
}
