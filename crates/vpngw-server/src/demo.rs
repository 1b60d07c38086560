//! `vpngw demo`: a first tunnel in one command. It starts a lab-mode vpngw on this machine (root,
//! strongSwan), creates a VPC, a gateway, a customer gateway and a connection through the API,
//! builds the customer's site in the lab from the connection's DownloadVpnConnectionConfig,
//! waits for the tunnel, pings across it, and says what it did and how to look at it. Then it
//! waits for Enter (or Ctrl-C), or with `--no-wait` goes on at once, and removes it all.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use crate::client::{Client, Scheme};
use crate::config::{AccountConfig, Config};

#[derive(clap::Args, Debug, Clone)]
pub struct DemoArgs {
    /// Remove everything right after the ping instead of waiting for Enter.
    #[arg(long)]
    pub no_wait: bool,
    /// Where the demo's API listens.
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: String,
}

const ACCOUNT: (&str, &str) = ("LTAIDEMO000000000001", "demo-secret-change-me");

fn step(what: &str) {
    println!("==> {what}");
}

async fn call(c: &Client, action: &str, params: &[(&str, &str)]) -> anyhow::Result<serde_json::Value> {
    let a = c.call(action, params).await?;
    if a.status != 200 {
        bail!("{action} answered {}: {}", a.status, a.body);
    }
    Ok(a.json())
}

async fn until(what: &str, timeout: Duration, mut f: impl AsyncFnMut() -> anyhow::Result<bool>) -> anyhow::Result<()> {
    let end = Instant::now() + timeout;
    while !f().await? {
        if Instant::now() > end {
            bail!("timed out waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(())
}

pub async fn run(args: DemoArgs) -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("vpngw-demo-{}", std::process::id()));
    let lab_name = format!("demo{}", std::process::id() % 100_000);
    let mut cfg = Config { listen: args.listen.clone(), data_dir: dir.clone(), transition_ms: 200, metrics_listen: Some("127.0.0.1:0".into()), ..Config::default() };
    cfg.accounts = vec![AccountConfig { name: "demo".into(), access_key_id: ACCOUNT.0.into(), access_key_secret: ACCOUNT.1.into(), readonly: false }];
    cfg.dataplane.mode = vpngw_dataplane::config::Mode::Lab;
    cfg.dataplane.lab_name = lab_name.clone();
    cfg.dataplane.reconcile_interval_ms = 500;
    step(&format!("Starting vpngw with a lab data plane (lab {lab_name}, data in {})", dir.display()));
    let lab = std::sync::Arc::new(vpngw_dataplane::lab::Lab::new(&cfg.dataplane));
    lab.check().context("the demo's lab needs root and strongSwan (bash scripts/setup-test-env installs it)")?;
    let store = crate::server::open_store(&cfg).await?;
    let running = crate::server::start(&cfg, store.clone()).await?;
    let outcome = demo(&cfg, &running, &lab, &args).await;
    step("Removing the demo: its site, its gateway's namespace and charon, its data");
    let _ = lab.delete_site("demo-site").await;
    let _ = running.shutdown.send(true);
    let _ = running.done.await;
    let _ = std::fs::remove_dir_all(&dir);
    outcome
}

async fn demo(cfg: &Config, running: &crate::server::Running, lab: &std::sync::Arc<vpngw_dataplane::lab::Lab>, args: &DemoArgs) -> anyhow::Result<()> {
    let endpoint = running.addr.to_string();
    let c = Client::new(endpoint.clone(), ACCOUNT.0, ACCOUNT.1, Scheme::Acs3);
    let r = "cn-hangzhou";
    step("CreateVpc 10.0.0.0/8 and CreateVSwitch 10.1.0.0/16");
    let vpc = call(&c, "CreateVpc", &[("RegionId", r), ("CidrBlock", "10.0.0.0/8"), ("VpcName", "demo-vpc")]).await?["VpcId"].as_str().unwrap_or_default().to_string();
    let vsw = call(&c, "CreateVSwitch", &[("RegionId", r), ("VpcId", &vpc), ("ZoneId", "cn-hangzhou-h"), ("CidrBlock", "10.1.0.0/16")]).await?["VSwitchId"].as_str().unwrap_or_default().to_string();
    step("CreateVpnGateway");
    let gw = call(&c, "CreateVpnGateway", &[("RegionId", r), ("VpcId", &vpc), ("VSwitchId", &vsw), ("Bandwidth", "10"), ("Name", "demo-gateway")]).await?["VpnGatewayId"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let gw_status = async || -> anyhow::Result<String> { Ok(call(&c, "DescribeVpnGateway", &[("RegionId", r), ("VpnGatewayId", &gw)]).await?["Status"].as_str().unwrap_or_default().to_string()) };
    until("the gateway to be active", Duration::from_secs(60), async || Ok(gw_status().await? == "active")).await?;
    let public = call(&c, "DescribeVpnGateway", &[("RegionId", r), ("VpnGatewayId", &gw)]).await?["InternetIp"].as_str().unwrap_or_default().to_string();
    println!("    gateway {gw}, public address {public}");
    step("CreateCustomerGateway 203.0.113.77 and CreateVpnConnection 10.1.0.0/16 <-> 10.77.0.0/24");
    let cgw = call(&c, "CreateCustomerGateway", &[("RegionId", r), ("IpAddress", "203.0.113.77"), ("Name", "demo-branch")]).await?["CustomerGatewayId"].as_str().unwrap_or_default().to_string();
    let vco = call(
        &c,
        "CreateVpnConnection",
        &[
            ("RegionId", r),
            ("VpnGatewayId", &gw),
            ("CustomerGatewayId", &cgw),
            ("LocalSubnet", "10.1.0.0/16"),
            ("RemoteSubnet", "10.77.0.0/24"),
            ("EffectImmediately", "true"),
            ("Name", "demo-connection"),
            ("IkeConfig", r#"{"IkeVersion":"ikev2"}"#),
        ],
    )
    .await?["VpnConnectionId"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    until("the connection to be applied", Duration::from_secs(60), async || Ok(gw_status().await? == "active")).await?;
    step("DownloadVpnConnectionConfig (DeviceType=strongswan), and a customer site in the lab configured from it");
    let conf = call(&c, "DownloadVpnConnectionConfig", &[("RegionId", r), ("VpnConnectionId", &vco), ("DeviceType", "strongswan")]).await?["VpnConnectionConfig"]["DeviceConfig"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let public: std::net::Ipv4Addr = "203.0.113.77".parse()?;
    let subnet: ipnet::Ipv4Net = "10.77.0.0/24".parse()?;
    let sock = lab.create_site("demo-site", &[public], &[subnet]).await?;
    let file = lab.site_dir("demo-site").join("swanctl.conf");
    std::fs::write(&file, conf)?;
    vpngw_dataplane::lab::swanctl_load(&sock, &file).await?;
    step("Waiting for the tunnel");
    let started = Instant::now();
    until("the tunnel to be established", Duration::from_secs(60), async || {
        Ok(call(&c, "DescribeVpnConnection", &[("RegionId", r), ("VpnConnectionId", &vco)]).await?["Status"] == "ipsec_sa_established")
    })
    .await?;
    println!("    {vco}: ipsec_sa_established after {:.1} s", started.elapsed().as_secs_f64());
    step("Pinging the branch (10.77.0.1) from the VPC (10.1.0.1) through the tunnel");
    let ns = lab.gateway_ns(&gw);
    let mut answered = false;
    for _ in 0..10 {
        let out = tokio::process::Command::new("ip").args(["netns", "exec", &ns, "ping", "-n", "-c", "3", "-W", "2", "-I", "10.1.0.1", "10.77.0.1"]).output().await?;
        if out.status.success() {
            print!("{}", String::from_utf8_lossy(&out.stdout).lines().map(|l| format!("    {l}\n")).collect::<String>());
            answered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    if !answered {
        bail!("the branch did not answer across the tunnel");
    }
    let store = crate::server::open_store(cfg).await?;
    let account = store.account_by_name("demo").await?.context("the demo's account")?;
    let key = crate::server::create_key_with_prefix(store.as_ref(), account.id, false, crate::console::LOGIN_KEY_PREFIX).await;
    let metrics = running.metrics.map(|m| format!("http://{m}")).unwrap_or_default();
    println!();
    println!("It works: a gateway, a connection and a tunnel you can look at.");
    println!("  API:     http://{endpoint}  (AccessKey {} / {}, region {r})", ACCOUNT.0, ACCOUNT.1);
    println!("  Status:  vpngw status --endpoint {metrics}");
    println!("  Metrics: {metrics}/metrics");
    println!("  Tunnel:  swanctl --list-sas --uri unix://{}", lab.gateway_dir(&gw).join("charon.vici").display());
    if let Ok(k) = key {
        println!("  Console: http://{endpoint}/console/login?key={}&token={}&region={r}", k.access_key_id, k.secret);
    }
    if !args.no_wait {
        println!("Press Enter (or Ctrl-C) to remove it all.");
        tokio::select! {
            _ = tokio::task::spawn_blocking(|| { let mut s = String::new(); let _ = std::io::stdin().read_line(&mut s); }) => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    }
    Ok(())
}
