//! `vpngw`: a self-hostable VPN gateway service speaking the Alibaba Cloud VPN Gateway API.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use vpngw_server::config::Config;
use vpngw_server::server;

/// glibc malloc's arena locks and consolidation were the largest cost of a request under load
/// (BENCHMARKS.md); mimalloc removes them.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "vpngw", version, about = "A VPN gateway service that speaks the Alibaba Cloud VPN Gateway API")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args, Clone)]
struct Common {
    /// Configuration file (TOML).
    #[arg(long, env = "VPNGW_CONFIG", global = true)]
    config: Option<PathBuf>,
    /// Where the embedded SQLite database lives.
    #[arg(long, env = "VPNGW_DATA_DIR", global = true)]
    data_dir: Option<PathBuf>,
    /// Where intent lives: `postgres://…` / `postgresql://…` (shared by a cluster of servers)
    /// or `sqlite://PATH`; unset: the embedded SQLite file in the data directory.
    #[arg(long, env = "VPNGW_STORE", global = true)]
    store: Option<String>,
}

impl Common {
    fn load(&self) -> anyhow::Result<Config> {
        let mut cfg = Config::load(self.config.as_deref())?;
        if let Some(d) = &self.data_dir {
            cfg.data_dir = d.clone();
        }
        if let Some(s) = self.store.as_ref().filter(|s| !s.is_empty()) {
            cfg.store = Some(s.clone());
        }
        Ok(cfg)
    }
}

#[derive(Subcommand)]
enum Command {
    /// Runs the service.
    Serve {
        #[command(flatten)]
        common: Common,
        /// Address to listen on (default 127.0.0.1:8080).
        #[arg(long, env = "VPNGW_LISTEN")]
        listen: Option<String>,
        /// HTTPS on the same port: `self-signed` makes a CA and a certificate at first start
        /// (in <data-dir>/tls/), `off` turns it off; `tls_cert`/`tls_key` in the config give your own.
        #[arg(long, env = "VPNGW_TLS")]
        tls: Option<String>,
    },
    /// Runs a gateway agent of a fleet: the data plane of the gateways placed on this host, no
    /// API (see `[agent]`; needs a PostgreSQL store).
    Agent {
        #[command(flatten)]
        common: Common,
    },
    /// Shows the fleet: its agents with their zones and leases, where each gateway side runs,
    /// and the sides no live agent can take.
    Fleet {
        #[command(flatten)]
        common: Common,
        /// As JSON.
        #[arg(long)]
        json: bool,
    },
    /// Manages accounts.
    Account {
        #[command(subcommand)]
        cmd: AccountCmd,
    },
    /// Manages AccessKeys.
    Key {
        #[command(subcommand)]
        cmd: KeyCmd,
    },
    /// Operator actions on resources.
    Admin {
        #[command(subcommand)]
        cmd: AdminCmd,
    },
    /// Lab mode: customer sites and teardown (see `[dataplane] mode = "lab"`).
    Lab {
        #[command(subcommand)]
        cmd: LabCmd,
        #[command(flatten)]
        common: Common,
    },
    /// The local certificate store (gateway certificates, AssociateVpnGatewayWithCertificate).
    Cert {
        #[command(subcommand)]
        cmd: CertCmd,
    },
    /// Prints generated reference documents.
    Docs {
        /// `error-codes` or `actions`.
        what: String,
    },
    /// Runs the benchmark and prints a table.
    Bench(vpngw_bench::api::BenchArgs),
    /// Runs the IPsec data-plane benchmark in a lab (root, strongSwan) and prints a table.
    BenchDataplane(vpngw_bench::dataplane::DataPlaneBenchArgs),
    /// Shows every gateway, its connections and each tunnel: negotiation status, SA age and
    /// bytes, health and BGP, as the running server sees them (like `swanctl --list-sas`, in the
    /// API's terms). Asks the server's operator listener (`metrics_listen`).
    Status {
        #[command(flatten)]
        common: Common,
        /// The operator listener of the server: `http://HOST:PORT` (default: the configuration's
        /// `metrics_listen`, else 127.0.0.1:9464).
        #[arg(long, env = "VPNGW_ENDPOINT")]
        endpoint: Option<String>,
        /// As JSON.
        #[arg(long)]
        json: bool,
    },
    /// A first tunnel in one command: a lab on this machine (root, strongSwan), a gateway, a
    /// customer site and a connection through the API, a ping across the tunnel; then it is all
    /// removed (after Enter, or at once with --no-wait).
    Demo(vpngw_server::demo::DemoArgs),
    /// The web console (`/console/` on the API port).
    Console {
        #[command(subcommand)]
        cmd: ConsoleCmd,
    },
    /// Prints a shell completion script: `vpngw completions bash > /etc/bash_completion.d/vpngw`.
    Completions { shell: clap_complete::Shell },
}

#[derive(Subcommand)]
enum AccountCmd {
    /// Creates an account with one AccessKey and prints the key.
    Create {
        name: String,
        #[command(flatten)]
        common: Common,
    },
    /// Lists the accounts with how many active and revoked keys each has.
    List {
        #[command(flatten)]
        common: Common,
    },
}

#[derive(Subcommand)]
enum CertCmd {
    /// Imports a certificate and its key for an account; prints the CertificateId last.
    Import {
        #[arg(long)]
        account: String,
        /// The certificate (PEM).
        #[arg(long)]
        cert: PathBuf,
        /// Its private key (PEM: PKCS#8, PKCS#1 or SEC1).
        #[arg(long)]
        key: PathBuf,
        /// Signature or Encryption.
        #[arg(long = "type", default_value = "Signature")]
        kind: String,
        #[command(flatten)]
        common: Common,
    },
}

#[derive(Subcommand)]
enum LabCmd {
    /// Customer sites: a namespace with a public address, a private subnet and its own charon.
    Site {
        #[command(subcommand)]
        cmd: SiteCmd,
    },
    /// Removes every namespace, charon and file of the lab.
    Down,
}

#[derive(Subcommand)]
enum SiteCmd {
    /// Creates a site (or updates its addresses); prints its VICI socket.
    Create {
        name: String,
        /// The site's public address (a customer gateway's IpAddress).
        #[arg(long)]
        ip: std::net::Ipv4Addr,
        /// The site's private subnet; its first address answers on the site.
        #[arg(long)]
        subnet: ipnet::Ipv4Net,
        /// A swanctl.conf to load (DownloadVpnConnectionConfig's DeviceConfig), or a whole
        /// site (DeviceType strongswan-bird: swanctl.conf and bird.conf; BIRD starts too).
        #[arg(long)]
        swanctl: Option<PathBuf>,
    },
    /// Loads a swanctl.conf into the site's charon (with strongSwan's own swanctl).
    Load {
        name: String,
        #[arg(long)]
        swanctl: PathBuf,
    },
    /// Removes a site.
    Delete { name: String },
}

#[derive(Subcommand)]
enum ConsoleCmd {
    /// Prints a one-time sign-in link to the console for an account, as the last line. The
    /// link's key is the account's (read-only with --readonly); `vpngw key revoke` ends it.
    Login {
        account: String,
        #[arg(long)]
        readonly: bool,
        /// Where the API is served: `http(s)://HOST:PORT` (default: the configuration's listen
        /// address, https when TLS is on).
        #[arg(long)]
        endpoint: Option<String>,
        /// The region the console opens in (default: the first configured).
        #[arg(long)]
        region: Option<String>,
        #[command(flatten)]
        common: Common,
    },
}

#[derive(Subcommand)]
enum KeyCmd {
    /// Creates another AccessKey for an account and prints it.
    Create {
        account: String,
        /// The key may call read actions only.
        #[arg(long)]
        readonly: bool,
        #[command(flatten)]
        common: Common,
    },
    /// Lists an account's AccessKeys (never their secrets).
    List {
        account: String,
        #[command(flatten)]
        common: Common,
    },
    /// Revokes an AccessKey for good: it is refused (InvalidAccessKeyId.Inactive) at once, after
    /// a restart, and even while the configuration still names it.
    Revoke {
        key_id: String,
        #[command(flatten)]
        common: Common,
    },
}

#[derive(Subcommand)]
enum AdminCmd {
    /// Sets a VPN gateway's BusinessStatus to FinancialLocked.
    Lock {
        gateway: String,
        #[command(flatten)]
        common: Common,
    },
    /// Sets a VPN gateway's BusinessStatus back to Normal.
    Unlock {
        gateway: String,
        #[command(flatten)]
        common: Common,
    },
    /// Re-seals every secret under a new master key and puts the new key in the key file
    /// (the old one stays beside it as `<file>.previous`). Stop every server first.
    RotateMasterKey {
        #[command(flatten)]
        common: Common,
    },
}

/// The log format: `VPNGW_LOG_FORMAT`, else `log_format` of the configuration file that
/// `--config` / `VPNGW_CONFIG` names (read before anything logs), else text.
fn log_format() -> String {
    if let Ok(f) = std::env::var("VPNGW_LOG_FORMAT") {
        return f;
    }
    let args: Vec<String> = std::env::args().collect();
    let path = args
        .iter()
        .position(|a| a == "--config")
        .and_then(|i| args.get(i + 1).cloned())
        .or_else(|| args.iter().find_map(|a| a.strip_prefix("--config=").map(str::to_string)))
        .or_else(|| std::env::var("VPNGW_CONFIG").ok());
    path.and_then(|p| Config::load(Some(std::path::Path::new(&p))).ok()).map(|c| c.log_format).unwrap_or_default()
}

/// Logs go to standard error: as text (coloured only on a terminal) or, with `json`, one JSON
/// object per line for log pipelines. `VPNGW_LOG` filters them (default `info`; every request
/// is one line at `info` under the target `vpngw::request`).
fn init_logs() {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_env("VPNGW_LOG").unwrap_or_else(|_| "info".into());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if log_format().eq_ignore_ascii_case("json") {
        builder.json().flatten_event(true).with_current_span(false).init();
    } else {
        builder.with_ansi(std::io::stderr().is_terminal()).init();
    }
}

fn main() -> std::process::ExitCode {
    init_logs();
    let cli = Cli::parse();
    let outcome = tokio::runtime::Builder::new_multi_thread().enable_all().build().map_err(anyhow::Error::from).and_then(|rt| rt.block_on(run(cli)));
    match outcome {
        Ok(()) => std::process::ExitCode::SUCCESS,
        // One line that says what went wrong, with its causes; no backtrace for an operator.
        Err(e) => {
            eprintln!("Error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// `vpngw status` as text: a gateway per block, its connections, and a line per tunnel.
fn status_text(report: &serde_json::Value) -> String {
    use std::fmt::Write;
    fn size(n: u64) -> String {
        match n {
            n if n >= 1 << 30 => format!("{:.1} GiB", n as f64 / (1u64 << 30) as f64),
            n if n >= 1 << 20 => format!("{:.1} MiB", n as f64 / (1u64 << 20) as f64),
            n if n >= 1 << 10 => format!("{:.1} KiB", n as f64 / 1024.0),
            n => format!("{n} B"),
        }
    }
    let mut out = String::new();
    let gateways = report["gateways"].as_array().cloned().unwrap_or_default();
    if gateways.is_empty() {
        out.push_str("No gateways.\n");
    }
    let s = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_string();
    for g in gateways {
        let _ = writeln!(out, "{} ({}) account {} {}: {}, {}", s(&g["id"]), s(&g["type"]), g["account"], s(&g["region"]), s(&g["state"]), s(&g["internet_ip"]));
        for c in g["connections"].as_array().cloned().unwrap_or_default() {
            let _ = writeln!(out, "  {} {:?}: {}", s(&c["id"]), s(&c["name"]), s(&c["state"]));
            for t in c["tunnels"].as_array().cloned().unwrap_or_default() {
                let mut line = format!("    {}{}: {}", s(&t["tunnel"]), if s(&t["role"]).is_empty() { String::new() } else { format!(" ({})", s(&t["role"])) }, s(&t["status"]));
                match t["established_secs"].as_u64() {
                    Some(age) if s(&t["status"]) != "ike_sa_not_established" => {
                        let n = |k: &str| t[k].as_u64().unwrap_or(0);
                        let _ = write!(line, ", up {age}s, in {} ({} pkts), out {} ({} pkts)", size(n("bytes_in")), n("packets_in"), size(n("bytes_out")), n("packets_out"));
                    }
                    Some(_) => {}
                    None => line.push_str(", no SA reading in this process (another runs its data plane, or none does)"),
                }
                if !s(&t["health"]).is_empty() {
                    let _ = write!(line, ", health {}", s(&t["health"]));
                }
                if t["bgp"].is_string() {
                    let _ = write!(line, ", BGP {}", s(&t["bgp"]));
                }
                let _ = writeln!(out, "{line}");
            }
        }
    }
    out
}

/// What `vpngw serve` prints once it serves: where, and on a first start the new key with how
/// to connect (environment exports and a three-line SDK example).
fn banner(cfg: &Config, running: &server::Running) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let protocol = if running.tls.is_some() { "https" } else { "http" };
    let _ = writeln!(out, "vpngw listening on {protocol}://{} (data in {})", running.addr, cfg.data_dir.display());
    if let Some(ca) = &running.tls {
        let _ = writeln!(out, "Plain HTTP is served to loopback peers only.");
        if let Some(ca) = ca {
            let _ = writeln!(out, "TLS certificate is self-signed: trust its CA at {} (Python Tea: Config(..., ca=\"{}\")), or tell the client to skip verification.", ca.display(), ca.display());
        }
    }
    if let Some(m) = running.metrics {
        let _ = writeln!(out, "Metrics: http://{m}/metrics");
    }
    let region = cfg.regions.first().map(|r| r.id.as_str()).unwrap_or("cn-hangzhou");
    let Some((account, key)) = &running.created else {
        let _ = writeln!(out, "Endpoint {}, protocol {protocol}, region {region}. `vpngw key list ACCOUNT` lists the keys.", running.addr);
        return out;
    };
    let ca = running.tls.as_ref().and_then(|c| c.as_ref()).map(|c| format!(", ca=\"{}\"", c.display())).unwrap_or_default();
    let _ = writeln!(out, "Created account {account} with a new AccessKey (shown only now):");
    let _ = writeln!(out, "  AccessKeyId:     {}", key.access_key_id);
    let _ = writeln!(out, "  AccessKeySecret: {}", key.secret);
    let _ = writeln!(out, "Connect: endpoint {}, protocol {protocol}, region {region}. In a shell:", running.addr);
    let _ = writeln!(out, "  export ALIBABA_CLOUD_ACCESS_KEY_ID={} ALIBABA_CLOUD_ACCESS_KEY_SECRET={}", key.access_key_id, key.secret);
    let _ = writeln!(out, "  export VPNGW_ENDPOINT={protocol}://{} ALIBABA_CLOUD_REGION_ID={region}", running.addr);
    let _ = writeln!(out, "With the Python SDK (pip install alibabacloud_vpc20160428):");
    let _ = writeln!(out, "  from alibabacloud_tea_openapi.models import Config; from alibabacloud_vpc20160428.client import Client; from alibabacloud_vpc20160428 import models as m");
    let _ = writeln!(
        out,
        "  c = Client(Config(access_key_id=\"{}\", access_key_secret=\"{}\", endpoint=\"{}\", protocol=\"{protocol}\", region_id=\"{region}\"{ca}))",
        key.access_key_id, key.secret, running.addr
    );
    let _ = writeln!(out, "  print(c.describe_vpn_gateways(m.DescribeVpnGatewaysRequest(region_id=\"{region}\")).body)");
    out
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve { common, listen, tls } => {
            let mut cfg = common.load()?;
            if let Some(l) = listen {
                cfg.listen = l;
            }
            if let Some(t) = tls {
                cfg.tls = Some(t);
            }
            let store = server::open_store(&cfg).await?;
            let running = server::start(&cfg, store).await?;
            print!("{}", banner(&cfg, &running));
            shutdown_signal().await;
            tracing::info!("Shutting down.");
            let _ = running.shutdown.send(true);
            let _ = running.done.await;
        }
        Command::Agent { common } => {
            let cfg = common.load()?;
            let running = vpngw_server::agent::start_agent(&cfg).await?;
            println!("vpngw agent {} (zone {}) answering live questions on http://{}", cfg.agent.name, cfg.agent.zone, running.addr);
            shutdown_signal().await;
            tracing::info!("Shutting down.");
            let _ = running.shutdown.send(true);
            let _ = running.done.await;
        }
        Command::Fleet { common, json } => {
            let cfg = common.load()?;
            let store = server::open_store(&cfg).await?;
            let svc = vpngw_service::Service::new(store, cfg.service_config()?);
            let st = vpngw_service::fleet::status(&svc).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&st)?);
            } else {
                println!("{:<16} {:<16} {:>6} {:<6} {:>10} {:>6}  live", "AGENT", "ZONE", "EPOCH", "ALIVE", "LEASE MS", "SIDES");
                for a in &st.agents {
                    println!("{:<16} {:<16} {:>6} {:<6} {:>10} {:>6}  {}", a.name, a.zone, a.epoch, if a.alive { "yes" } else { "no" }, a.lease_left_ms, a.sides, a.live_url);
                }
                println!();
                for (side, agent) in &st.placements {
                    println!("{side} on {agent}");
                }
                for (side, zone) in &st.unplaced {
                    println!("{side}: no live agent in zone {zone}");
                }
            }
        }
        Command::Account { cmd: AccountCmd::Create { name, common } } => {
            let store = server::open_store(&common.load()?).await?;
            let (account, key) = server::create_account_with_key(store.as_ref(), &name).await?;
            println!("Created account {account}.");
            println!("AccessKeyId: {}", key.access_key_id);
            println!("AccessKeySecret: {}", key.secret);
        }
        Command::Key { cmd: KeyCmd::Create { account, readonly, common } } => {
            let store = server::open_store(&common.load()?).await?;
            let acc = store.account_by_name(&account).await?.with_context(|| format!("no account named {account}"))?;
            let key = server::create_key(store.as_ref(), acc.id, readonly).await?;
            println!("AccessKeyId: {}", key.access_key_id);
            println!("AccessKeySecret: {}", key.secret);
        }
        Command::Account { cmd: AccountCmd::List { common } } => {
            let store = server::open_store(&common.load()?).await?;
            let keys = store.all_keys().await?;
            println!("{:<8} {:<24} {:>6} {:>8}", "ID", "NAME", "KEYS", "REVOKED");
            for a in store.accounts().await? {
                let mine: Vec<_> = keys.iter().filter(|k| k.account_id == a.id).collect();
                let revoked = mine.iter().filter(|k| k.revoked_ms.is_some()).count();
                println!("{:<8} {:<24} {:>6} {:>8}", a.id, a.name, mine.len() - revoked, revoked);
            }
        }
        Command::Key { cmd: KeyCmd::List { account, common } } => {
            let store = server::open_store(&common.load()?).await?;
            let acc = store.account_by_name(&account).await?.with_context(|| format!("no account named {account}"))?;
            println!("{:<34} {:<10} STATE", "ACCESS KEY ID", "ACCESS");
            for k in store.all_keys().await?.into_iter().filter(|k| k.account_id == acc.id) {
                let state = match k.revoked_ms.and_then(chrono::DateTime::from_timestamp_millis) {
                    Some(t) => format!("revoked {}", t.format("%Y-%m-%dT%H:%M:%SZ")),
                    None => "active".to_string(),
                };
                println!("{:<34} {:<10} {state}", k.access_key_id, if k.readonly { "read-only" } else { "read-write" });
            }
        }
        Command::Key { cmd: KeyCmd::Revoke { key_id, common } } => {
            let cfg = common.load()?;
            let store = server::open_store(&cfg).await?;
            anyhow::ensure!(store.revoke_key(&key_id, chrono::Utc::now().timestamp_millis()).await?, "no AccessKey {key_id}");
            let told = server::signal_running_server(&cfg.data_dir);
            println!("Revoked {key_id}{}.", if told { "; the running server refuses it from now on" } else { "" });
        }
        Command::Admin { cmd: AdminCmd::RotateMasterKey { common } } => {
            let cfg = common.load()?;
            match server::rotate_master_key(&cfg).await? {
                Some(hex) => println!("Every secret is sealed under a new master key. Set VPNGW_MASTER_KEY={hex} for every server, then start them."),
                None => println!(
                    "Every secret is sealed under the new master key in {} (the old one is in {}.previous). Copy it to every server, then start them.",
                    cfg.master_key_path().display(),
                    cfg.master_key_path().display()
                ),
            }
        }
        Command::Admin { cmd } => {
            let (gateway, lock, common) = match cmd {
                AdminCmd::Lock { gateway, common } => (gateway, true, common),
                AdminCmd::Unlock { gateway, common } => (gateway, false, common),
                AdminCmd::RotateMasterKey { .. } => unreachable!("handled above"),
            };
            let cfg = common.load()?;
            let store = server::open_store(&cfg).await?;
            let svc = vpngw_service::Service::new(store, cfg.service_config()?);
            vpngw_service::handlers::set_financial_lock(&svc, &gateway, lock).await.map_err(|e| anyhow::anyhow!("{e}"))?;
            println!("{gateway}: BusinessStatus {}", if lock { "FinancialLocked" } else { "Normal" });
        }
        Command::Status { common, endpoint, json } => {
            let cfg = common.load()?;
            let base = endpoint.or_else(|| cfg.metrics_listen.clone().filter(|m| !m.is_empty() && m != "off" && !m.ends_with(":0"))).unwrap_or_else(|| "127.0.0.1:9464".into());
            let base = if base.contains("://") { base } else { format!("http://{base}") };
            let url = format!("{}/status", base.trim_end_matches('/'));
            let (code, body) =
                vpngw_server::client::get(&url).await.with_context(|| format!("no vpngw server answers at {base} (start one with `vpngw serve`, or say where with --endpoint or VPNGW_ENDPOINT)"))?;
            anyhow::ensure!(code == 200, "{url} answered {code}: {body}");
            let report: serde_json::Value = serde_json::from_str(&body).context("the server's status is not JSON")?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{}", status_text(&report));
            }
        }
        Command::Console { cmd: ConsoleCmd::Login { account, readonly, endpoint, region, common } } => {
            let cfg = common.load()?;
            let store = server::open_store(&cfg).await?;
            let acc = store.account_by_name(&account).await?.with_context(|| format!("no account named {account}"))?;
            let key = server::create_key_with_prefix(store.as_ref(), acc.id, readonly, vpngw_server::console::LOGIN_KEY_PREFIX).await?;
            let tls = cfg.tls.as_deref().is_some_and(|t| t != "off" && !t.is_empty()) || cfg.tls_cert.is_some();
            let base = endpoint.unwrap_or_else(|| format!("{}://{}", if tls { "https" } else { "http" }, cfg.listen));
            let region = region.or_else(|| cfg.regions.first().map(|r| r.id.clone())).unwrap_or_else(|| "cn-hangzhou".into());
            println!("A one-time sign-in link for account {account} (key {}{}):", key.access_key_id, if readonly { ", read-only" } else { "" });
            println!("{}/console/login?key={}&token={}&region={region}", base.trim_end_matches('/'), key.access_key_id, key.secret);
        }
        Command::Demo(args) => vpngw_server::demo::run(args).await?,
        Command::Completions { shell } => {
            use clap::CommandFactory;
            use std::io::Write;
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "vpngw", &mut script);
            // A closed pipe (`| head`) is the reader's choice, not an error.
            let _ = std::io::stdout().write_all(&script);
        }
        Command::Docs { what } => match what.as_str() {
            "error-codes" => print!("{}", vpngw_api::error::error_table_markdown()),
            "actions" => print!("{}", vpngw_api::actions::actions_markdown()),
            other => anyhow::bail!("unknown document {other}: use error-codes or actions"),
        },
        Command::Cert { cmd: CertCmd::Import { account, cert, key, kind, common } } => {
            let cfg = common.load()?;
            let store = server::open_store(&cfg).await?;
            server::sync_accounts(store.as_ref(), &cfg).await?;
            let acc = store.account_by_name(&account).await?.with_context(|| format!("no account named {account}"))?;
            let cert_pem = std::fs::read_to_string(&cert).with_context(|| format!("read {}", cert.display()))?;
            let key_pem = std::fs::read_to_string(&key).with_context(|| format!("read {}", key.display()))?;
            let c = vpngw_server::cert::check(&cert_pem, &key_pem, &kind)?;
            println!(
                "{} certificate {:?} ({}), valid until {}",
                c.certificate_type,
                c.subject,
                c.key_algorithm,
                chrono::DateTime::from_timestamp_millis(c.not_after_ms).map(|t| t.to_rfc3339()).unwrap_or_default()
            );
            let sealer = cfg.service_config()?.sealer;
            let id = vpngw_service::handlers::import_certificate(store.as_ref(), &sealer, acc.id, c).await?;
            println!("{id}");
        }
        Command::Bench(args) => vpngw_bench::api::run(args).await?,
        Command::BenchDataplane(args) => vpngw_bench::dataplane::run(args).await?,
        Command::Lab { cmd, common } => {
            let cfg = common.load()?;
            let lab = std::sync::Arc::new(vpngw_dataplane::lab::Lab::new(&cfg.dataplane));
            match cmd {
                LabCmd::Down => {
                    vpngw_dataplane::sslvpn::stop_all(&cfg.dataplane.run_dir().join("ssl")).await;
                    lab.teardown().await?
                }
                LabCmd::Site { cmd: SiteCmd::Create { name, ip, subnet, swanctl } } => {
                    lab.check()?;
                    // A whole site (DeviceType strongswan-bird) is swanctl.conf and bird.conf in
                    // one file; the site holds the addresses its BGP sessions speak from.
                    let files = match &swanctl {
                        Some(f) => vpngw_dataplane::lab::split_device_config(&std::fs::read_to_string(f).with_context(|| format!("read {}", f.display()))?),
                        None => Vec::new(),
                    };
                    let bird = files.iter().find(|(n, _)| n == "bird.conf").map(|(_, c)| c.clone());
                    let mut subnets = vec![subnet];
                    subnets.extend(bird.as_deref().map(vpngw_dataplane::lab::bird_local_addresses).unwrap_or_default().into_iter().map(ipnet::Ipv4Net::from));
                    let sock = lab.create_site(&name, &[ip], &subnets).await?;
                    if let Some((_, text)) = files.iter().find(|(n, _)| n == "swanctl.conf") {
                        let file = lab.site_dir(&name).join("swanctl.conf");
                        std::fs::write(&file, text)?;
                        vpngw_dataplane::lab::swanctl_load(&sock, &file).await?;
                    }
                    if let Some(conf) = bird {
                        let ctl = lab.site_bird(&name, &cfg.dataplane.bird, &conf).await?;
                        println!("site {name}: BIRD control socket {}", ctl.display());
                    }
                    println!("site {name}: namespace {}, VICI socket {}", lab.site_ns(&name), sock.display());
                }
                LabCmd::Site { cmd: SiteCmd::Load { name, swanctl } } => {
                    vpngw_dataplane::lab::swanctl_load(&lab.site_dir(&name).join("charon.vici"), &swanctl).await?;
                }
                LabCmd::Site { cmd: SiteCmd::Delete { name } } => lab.delete_site(&name).await?,
            }
        }
    }
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}
