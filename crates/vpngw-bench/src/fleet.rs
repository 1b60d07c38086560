//! The fleet part of `vpngw bench-dataplane --postgres URL`: one API server (this process, no
//! data plane) and four `vpngw agent` processes (two per zone) on a fresh database, each agent a
//! lab host of its own; the customer peers in one site namespace.
//!
//! 1. `kill -9` of the agent that runs one gateway (and of its charons) → the connection is
//!    ipsec_sa_established again, through the API, on the other agent of its zone.
//! 2. The same for an agent running half of `--fleet-gateways` gateways: until every one of its
//!    connections is established again.
//! 3. `--fleet-connections` connections over four gateways, one per agent: all established after
//!    every charon restarts, beside bare strongSwan loading the same definitions into the same
//!    charons.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use vpngw_dataplane::lab::{swanctl_load, Lab};
use vpngw_server::client::{Client, Scheme};

use crate::dataplane::{installed, peer_ip, peer_subnet, PSK};

const R: &str = "cn-hangzhou";
const ZONES: [&str; 2] = ["cn-hangzhou-h", "cn-hangzhou-i"];
const AGENTS: [(&str, usize); 4] = [("a1", 0), ("a2", 0), ("b1", 1), ("b2", 1)];

#[derive(Debug, Clone, clap::Args)]
pub struct FleetArgs {
    /// Runs the fleet part on this PostgreSQL cluster (a fresh database is made and dropped).
    #[arg(long)]
    pub postgres: Option<String>,
    /// Gateways run by the fleet when an agent dies (scenario 2).
    #[arg(long, default_value_t = 100)]
    pub fleet_gateways: usize,
    /// Connections spread over four agents (scenario 3).
    #[arg(long, default_value_t = 2000)]
    pub fleet_connections: usize,
}

type Row = (String, String, String, String);

/// Keeps a row, and prints it at once (a later part that fails loses nothing measured).
fn push(rows: &mut Vec<Row>, r: Row) {
    eprintln!("(measured: {} | {} | {} | {})", r.0, r.1, r.2, r.3);
    rows.push(r);
}

struct Agent {
    name: &'static str,
    config: PathBuf,
    log: PathBuf,
    run_dir: PathBuf,
    child: Option<tokio::process::Child>,
}

impl Agent {
    async fn start(&mut self) -> Result<()> {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&self.log)?;
        let child = tokio::process::Command::new(std::env::current_exe()?)
            .args(["agent", "--config"])
            .arg(&self.config)
            .env("VPNGW_LOG", "warn")
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .context("start vpngw agent")?;
        self.child = Some(child);
        Ok(())
    }

    /// `kill -9` of the agent and of every charon it started.
    async fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.start_kill();
            let _ = c.wait().await;
        }
        // SIGKILL, not a clean stop: a charon told to stop deletes its SAs at the peer first.
        if let Ok(d) = std::fs::read_dir(self.run_dir.join("gw")) {
            for e in d.flatten() {
                if let Ok(pid) = std::fs::read_to_string(e.path().join("charon.pid")) {
                    let _ = tokio::process::Command::new("kill").args(["-KILL", pid.trim()]).status().await;
                }
            }
        }
    }

    async fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            if let Some(pid) = c.id() {
                let _ = tokio::process::Command::new("kill").args(["-TERM", &pid.to_string()]).status().await;
            }
            if tokio::time::timeout(Duration::from_secs(60), c.wait()).await.is_err() {
                let _ = c.start_kill();
            }
        }
    }

    fn sock(&self, gw: &str) -> PathBuf {
        self.run_dir.join("gw").join(gw).join("charon.vici")
    }
}

struct Fleet {
    client: Client,
    agents: Vec<Agent>,
    store: Arc<dyn vpngw_store::Store>,
    lease_ms: u64,
}

impl Fleet {
    async fn call(&self, action: &str, params: &[(&str, &str)]) -> Result<serde_json::Value> {
        crate::dataplane::call(&self.client, action, params).await
    }

    async fn wait_active(&self, gw: &str) -> Result<()> {
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(120) {
            if self.call("DescribeVpnGateway", &[("RegionId", R), ("VpnGatewayId", gw)]).await?["Status"] == "active" {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        bail!("{gw} never became active")
    }

    /// The agent a gateway's master side is placed on.
    async fn owner(&self, gw: &str) -> Result<usize> {
        let side = format!("{gw}/master");
        let name = self.store.placements().await?.into_iter().find(|p| p.side == side).context("the gateway is not placed")?.agent;
        self.agents.iter().position(|a| a.name == name).context("placed on an unknown agent")
    }

    async fn established(&self, vcos: &[String]) -> Result<usize> {
        let mut n = 0;
        for v in vcos {
            if self.call("DescribeVpnConnection", &[("RegionId", R), ("VpnConnectionId", v)]).await?["Status"] == "ipsec_sa_established" {
                n += 1;
            }
        }
        Ok(n)
    }

    async fn wait_established(&self, vcos: &[String], limit: Duration) -> Result<Duration> {
        let t0 = Instant::now();
        while t0.elapsed() < limit {
            if self.established(vcos).await? == vcos.len() {
                return Ok(t0.elapsed());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        bail!("{} connections never all established", vcos.len())
    }

    /// Waits until each gateway runs on another agent than `gone` and its connection is
    /// established there (what the API says before the lease expires is the dead agent's last word).
    async fn wait_moved(&self, gone: usize, moved: &[(String, String)], limit: Duration) -> Result<Duration> {
        let t0 = Instant::now();
        let mut left: Vec<&(String, String)> = moved.iter().collect();
        while t0.elapsed() < limit {
            let mut still = Vec::new();
            for m in left {
                let here = self.owner(&m.0).await.ok().is_some_and(|o| o != gone);
                if !(here && self.established(std::slice::from_ref(&m.1)).await? == 1) {
                    still.push(m);
                }
            }
            if still.is_empty() {
                return Ok(t0.elapsed());
            }
            left = still;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        bail!("{} gateways never came back on another agent", left.len())
    }

    /// Waits until both tunnels of a dual-tunnel connection are established.
    async fn both_up(&self, vco: &str) -> Result<()> {
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(60) {
            let v = self.call("DescribeVpnConnection", &[("RegionId", R), ("VpnConnectionId", vco)]).await?;
            let up = v["TunnelOptionsSpecification"]["TunnelOptions"].as_array().map(|a| a.len() == 2 && a.iter().all(|t| t["Status"] == "ipsec_sa_established")).unwrap_or(false);
            if up {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        bail!("the dual-tunnel connection {vco} never had both tunnels up")
    }

    async fn gateway(&self, vpc: &str, vsw: &str) -> Result<(String, String)> {
        let gw = self.call("CreateVpnGateway", &[("RegionId", R), ("VpcId", vpc), ("VSwitchId", vsw), ("Bandwidth", "5"), ("InstanceChargeType", "POSTPAY")]).await?["VpnGatewayId"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        self.wait_active(&gw).await?;
        let ip = self.call("DescribeVpnGateway", &[("RegionId", R), ("VpnGatewayId", &gw)]).await?["InternetIp"].as_str().unwrap_or_default().to_string();
        Ok((gw, ip))
    }

    async fn connection(&self, gw: &str, i: usize) -> Result<String> {
        let cgw = self.call("CreateCustomerGateway", &[("RegionId", R), ("IpAddress", &peer_ip(i).to_string())]).await?["CustomerGatewayId"].as_str().unwrap_or_default().to_string();
        let ike = format!(r#"{{"Psk":"{PSK}","IkeVersion":"ikev2","IkeEncAlg":"aes","IkeAuthAlg":"sha1","IkePfs":"group2"}}"#);
        let ipsec = r#"{"IpsecEncAlg":"aes","IpsecAuthAlg":"sha1","IpsecPfs":"group2"}"#;
        let params = [
            ("RegionId", R),
            ("VpnGatewayId", gw),
            ("CustomerGatewayId", cgw.as_str()),
            ("LocalSubnet", "10.1.0.0/16"),
            ("RemoteSubnet", &peer_subnet(i)),
            ("EffectImmediately", "true"),
            ("IkeConfig", &ike),
            ("IpsecConfig", ipsec),
        ];
        let vco = self.call("CreateVpnConnection", &params).await?["VpnConnectionId"].as_str().unwrap_or_default().to_string();
        self.wait_active(gw).await?;
        Ok(vco)
    }
}

/// Brings up a dual-tunnel connection from peer `i`, makes its master the tunnel the site sends
/// through, pings every 100 ms from the site to the VPC, kills the master's agent and returns
/// the longest time without an answer.
async fn dual_loss(f: &mut Fleet, lab: &Lab, gw: &str, i: usize, site: &Path) -> Result<(f64, String)> {
    let cgw = f.call("CreateCustomerGateway", &[("RegionId", R), ("IpAddress", &peer_ip(i).to_string())]).await?["CustomerGatewayId"].as_str().unwrap_or_default().to_string();
    let mut params: Vec<(String, String)> = [("RegionId", R), ("VpnGatewayId", gw), ("LocalSubnet", "10.1.0.0/16"), ("RemoteSubnet", &peer_subnet(i)), ("EffectImmediately", "true")]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    for (n, role) in [(1, "master"), (2, "slave")] {
        let t = format!("TunnelOptionsSpecification.{n}");
        for (k, v) in [
            ("CustomerGatewayId", cgw.as_str()),
            ("Role", role),
            ("TunnelIkeConfig.Psk", PSK),
            ("TunnelIkeConfig.IkeVersion", "ikev2"),
            ("TunnelIkeConfig.IkeEncAlg", "aes"),
            ("TunnelIkeConfig.IkeAuthAlg", "sha1"),
            ("TunnelIkeConfig.IkePfs", "group2"),
            ("TunnelIpsecConfig.IpsecEncAlg", "aes"),
            ("TunnelIpsecConfig.IpsecAuthAlg", "sha1"),
            ("TunnelIpsecConfig.IpsecPfs", "group2"),
        ] {
            params.push((format!("{t}.{k}"), v.to_string()));
        }
    }
    let refs: Vec<(&str, &str)> = params.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let vco = f.call("CreateVpnConnection", &refs).await?["VpnConnectionId"].as_str().unwrap_or_default().to_string();
    f.wait_active(gw).await?;
    f.both_up(&vco).await?;
    let owner = f.owner(gw).await?;
    let master_sock = f.agents[owner].sock(gw);
    let ns = lab.site_ns("peers");
    let src = peer_subnet(i).parse::<ipnet::Ipv4Net>()?.hosts().next().context("a host")?.to_string();
    let ping = |count: &'static str| {
        let (ns, src) = (ns.clone(), src.clone());
        async move { tokio::process::Command::new("ip").args(["netns", "exec", &ns, "ping", "-n", "-q", "-c", count, "-W", "1", "-I", &src, "10.1.0.1"]).output().await }
    };
    // The site sends through its newer tunnel: close the master's on the customer side, and the
    // gateway negotiates it again.
    let packets = |sock: PathBuf| async move {
        let out = tokio::process::Command::new("swanctl").args(["--list-sas", "--raw", "--uri"]).arg(format!("unix://{}", sock.display())).output().await?;
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        Ok::<u64, anyhow::Error>(text.split("packets-in=").skip(1).filter_map(|p| p.split(|c: char| !c.is_ascii_digit()).next()?.parse::<u64>().ok()).sum())
    };
    let mut carried = false;
    for _ in 0..3 {
        let before = packets(master_sock.clone()).await?;
        ping("3").await?;
        if packets(master_sock.clone()).await? >= before + 3 {
            carried = true;
            break;
        }
        tokio::process::Command::new("swanctl").args(["--terminate", "--ike", "dual-m", "--uri"]).arg(format!("unix://{}", site.display())).output().await?;
        tokio::time::sleep(Duration::from_millis(1000)).await;
        f.both_up(&vco).await?;
    }
    anyhow::ensure!(carried, "the site never sent through the master tunnel");
    let pinger = tokio::process::Command::new("ip")
        .args(["netns", "exec", &ns, "ping", "-n", "-D", "-i", "0.1", "-W", "1", "-I", &src, "10.1.0.1"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let killed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs_f64();
    f.agents[owner].kill().await;
    f.wait_moved(owner, &[(gw.to_string(), vco.clone())], Duration::from_secs(60)).await.ok();
    f.both_up(&vco).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    if let Some(pid) = pinger.id() {
        tokio::process::Command::new("kill").args(["-INT", &pid.to_string()]).status().await?;
    }
    let out = pinger.wait_with_output().await?;
    let answered: Vec<f64> =
        String::from_utf8_lossy(&out.stdout).lines().filter(|l| l.contains("bytes from")).filter_map(|l| l.strip_prefix('[')?.split(']').next()?.parse::<f64>().ok()).filter(|t| *t > killed).collect();
    let mut last = killed;
    let mut gap: f64 = 0.0;
    for t in answered {
        gap = gap.max(t - last);
        last = t;
    }
    f.agents[owner].start().await?;
    Ok((gap, vco))
}

/// The site's side of peer `i` → gateway address `gw` (a responder), or the gateway's side of the
/// same tunnel (an initiator, for bare strongSwan).
fn pair(i: usize, gw: &str, initiator: bool) -> String {
    pair_named(&format!("b{i}"), i, gw, initiator)
}

fn pair_named(name: &str, i: usize, gw: &str, initiator: bool) -> String {
    let (me, peer, lts, rts, start) = if initiator {
        (gw.to_string(), peer_ip(i).to_string(), "10.1.0.0/16".to_string(), peer_subnet(i), "start")
    } else {
        (peer_ip(i).to_string(), gw.to_string(), peer_subnet(i), "10.1.0.0/16".to_string(), "none")
    };
    format!(
        "  {name} {{\n    version = 2\n    local_addrs = {me}\n    remote_addrs = {peer}\n    proposals = aes128-sha1-modp1024\n    local {{\n      auth = psk\n      id = {me}\n    }}\n    remote {{\n      auth = psk\n      id = {peer}\n    }}\n    children {{\n      {name}c {{\n        local_ts = {lts}\n        remote_ts = {rts}\n        esp_proposals = aes128-sha1-modp1024\n        start_action = {start}\n      }}\n    }}\n  }}\n"
    )
}

fn swanctl_pairs(pairs: &[(usize, String)], initiator: bool) -> String {
    let conf = site_conf(pairs, initiator, None);
    // Bare initiators are vpngw's definitions: they keep trying (four charons negotiating at
    // once on two cores outlast a few retransmits) and check their peers with DPD every 10 s.
    if initiator {
        conf.replace("    proposals = aes128-sha1-modp1024\n", "    proposals = aes128-sha1-modp1024\n    keyingtries = 0\n    dpd_delay = 10s\n")
    } else {
        conf
    }
}

/// Tunnels of `pairs`, and with `dual` = (peer, master address, slave address) the two tunnels of
/// a dual-tunnel connection from one peer (the customer's side).
fn site_conf(pairs: &[(usize, String)], initiator: bool, dual: Option<&(usize, String, String)>) -> String {
    let secret = hex::encode(PSK);
    let mut conns: String = pairs.iter().map(|(i, gw)| pair(*i, gw, initiator)).collect();
    let mut secrets: String = pairs.iter().map(|(i, gw)| format!("  ike-{i} {{\n    id-a = {}\n    id-b = {gw}\n    secret = 0x{secret}\n  }}\n", peer_ip(*i))).collect();
    if let Some((i, m, sl)) = dual {
        for (name, gw) in [("dual-m", m), ("dual-s", sl)] {
            conns.push_str(&pair_named(name, *i, gw, false));
            secrets.push_str(&format!("  ike-{name} {{\n    id-a = {}\n    id-b = {gw}\n    secret = 0x{secret}\n  }}\n", peer_ip(*i)));
        }
    }
    format!("connections {{\n{conns}}}\nsecrets {{\n{secrets}}}\n")
}

async fn installed_at(socks: &[PathBuf]) -> usize {
    let mut n = 0;
    for s in socks {
        n += installed(s).await.unwrap_or(0);
    }
    n
}

async fn wait_installed_at(socks: &[PathBuf], n: usize, limit: Duration) -> Result<Duration> {
    let t0 = Instant::now();
    while t0.elapsed() < limit {
        if installed_at(socks).await >= n {
            return Ok(t0.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    bail!("{n} CHILD_SAs never installed")
}

/// Kills these charons at once and waits until each has been restarted by its agent.
async fn restart_charons(socks: &[PathBuf]) -> Result<()> {
    let pids: Vec<(PathBuf, String)> = socks.iter().map(|s| s.with_file_name("charon.pid")).map(|p| (p.clone(), std::fs::read_to_string(&p).unwrap_or_default().trim().to_string())).collect();
    for (_, pid) in &pids {
        tokio::process::Command::new("kill").args(["-KILL", pid]).status().await?;
    }
    for ((file, pid), sock) in pids.iter().zip(socks) {
        let t0 = Instant::now();
        loop {
            let now = std::fs::read_to_string(file).unwrap_or_default();
            if now.trim() != pid.as_str() && !now.is_empty() && vpngw_dataplane::lab::wait_socket(sock, Duration::from_millis(10)).await {
                break;
            }
            if t0.elapsed() > Duration::from_secs(30) {
                bail!("charon at {} did not come back", sock.display());
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    Ok(())
}

pub async fn rows(args: &FleetArgs, url: &str) -> Result<Vec<Row>> {
    let dir = std::env::temp_dir().join(format!("vpngw-bench-fleet-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let db = format!("vpngw_bench_fleet_{}", std::process::id());
    let url = vpngw_store::postgres::fresh_database(url, &db).await?;
    let lab_name = format!("fl{}", std::process::id() % 10000);
    let key = dir.join("master.key");
    let mut cfg = crate::api::bench_config(&dir);
    cfg.store = Some(url.clone());
    cfg.master_key_file = Some(key.clone());
    cfg.transition_ms = 0;
    cfg.quotas.vpn_gateways = u64::MAX;
    cfg.dataplane.lab_name = lab_name.clone();
    let store = vpngw_server::server::open_store(&cfg).await?;
    let running = vpngw_server::server::start(&cfg, store.clone()).await?;
    let client = Client::new(running.addr.to_string(), "BENCHAK", "benchsecret", Scheme::Acs3);
    let lease_ms = vpngw_server::config::AgentSection::default().lease_ms;
    let mut agents = Vec::new();
    for (name, zone) in AGENTS {
        let config = dir.join(format!("{name}.toml"));
        std::fs::write(
            &config,
            format!(
                "store = \"{url}\"\nmaster_key_file = \"{}\"\ndata_dir = \"{}\"\n[dataplane]\nmode = \"lab\"\nlab_name = \"{lab_name}\"\nlab_host = \"{name}\"\nreconcile_interval_ms = 1000\n[agent]\nname = \"{name}\"\nzone = \"{}\"\n",
                key.display(),
                dir.join(name).display(),
                ZONES[zone]
            ),
        )?;
        let mut a = Agent { name, config, log: dir.join(format!("{name}.log")), run_dir: PathBuf::from(format!("/run/vpngw/{lab_name}-{name}")), child: None };
        a.start().await?;
        agents.push(a);
    }
    let lab = Arc::new(Lab::new(&cfg.dataplane));
    let mut f = Fleet { client, agents, store, lease_ms };
    let result = scenarios(args, &mut f, &lab, &dir).await;
    for a in f.agents.iter_mut() {
        a.stop().await;
    }
    let _ = running.shutdown.send(true);
    let _ = running.done.await;
    let _ = lab.teardown().await;
    drop(f);
    if let Some(base) = &args.postgres {
        let _ = vpngw_store::postgres::drop_database(base, &db).await;
    }
    if result.is_ok() {
        let _ = std::fs::remove_dir_all(&dir);
    } else {
        eprintln!("(the fleet's logs are in {})", dir.display());
    }
    result
}

async fn scenarios(args: &FleetArgs, f: &mut Fleet, lab: &Arc<Lab>, dir: &Path) -> Result<Vec<Row>> {
    // Wait for the agents to register, then one VPC with a VSwitch in each zone.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let id = |v: serde_json::Value, k: &str| v[k].as_str().unwrap_or_default().to_string();
    let vpc = id(f.call("CreateVpc", &[("RegionId", R), ("CidrBlock", "10.0.0.0/8")]).await?, "VpcId");
    let mut vsw = Vec::new();
    for (zone, cidr) in ZONES.iter().zip(["10.1.0.0/16", "10.2.0.0/16"]) {
        vsw.push(id(f.call("CreateVSwitch", &[("RegionId", R), ("VpcId", &vpc), ("ZoneId", zone), ("CidrBlock", cidr)]).await?, "VSwitchId"));
    }
    let lease = f.lease_ms as f64 / 1000.0;
    let n_gw = args.fleet_gateways.max(2);
    let n_conn = args.fleet_connections.max(4);
    // Peers of the shared site: 0 for scenario 1, 1..=n_gw for scenario 2, then the dual-tunnel
    // one; scenario 3's come after them, on sites of their own.
    let peers = 1 + n_gw + 1;
    let dual_peer = peers - 1;
    let publics: Vec<Ipv4Addr> = (0..peers).map(peer_ip).collect();
    let subnets: Vec<ipnet::Ipv4Net> = (0..peers).map(|i| peer_subnet(i).parse().expect("valid subnet")).collect();
    let site = lab.create_site("peers", &publics, &subnets).await?;
    let mut pairs: Vec<(usize, String)> = Vec::new();
    let mut dual: Option<(usize, String, String)> = None;
    let load_site = |pairs: &[(usize, String)], dual: Option<&(usize, String, String)>| {
        let path = dir.join("site.conf");
        let text = site_conf(pairs, false, dual);
        let site = site.clone();
        async move {
            std::fs::write(&path, text)?;
            swanctl_load(&site, &path).await
        }
    };
    let mut rows = Vec::new();

    // 1. One gateway.
    let (gw, ip) = f.gateway(&vpc, &vsw[0]).await?;
    pairs.push((0, ip));
    load_site(&pairs, dual.as_ref()).await?;
    let vco = f.connection(&gw, 0).await?;
    f.wait_established(std::slice::from_ref(&vco), Duration::from_secs(60)).await?;
    let owner = f.owner(&gw).await?;
    let t0 = Instant::now();
    f.agents[owner].kill().await;
    f.wait_moved(owner, &[(gw.clone(), vco.clone())], Duration::from_secs(60)).await?;
    let one = t0.elapsed().as_secs_f64();
    push(
        &mut rows,
        (
            "`kill -9` of a gateway's agent → ipsec_sa_established on the other agent of its zone, 1 gateway (s)".into(),
            format!("{one:.2}"),
            "-".into(),
            format!("{} (target ≤ lease {lease:.0} s + 3 s)", if one <= lease + 3.0 { "met" } else { "NOT met" }),
        ),
    );
    f.agents[owner].start().await?;

    // 1b. A dual-tunnel connection whose master carries the traffic: its agent dies.
    let dgw = f
        .call("CreateVpnGateway", &[("RegionId", R), ("VpcId", &vpc), ("VSwitchId", &vsw[0]), ("DisasterRecoveryVSwitchId", &vsw[1]), ("Bandwidth", "5"), ("InstanceChargeType", "POSTPAY")])
        .await?["VpnGatewayId"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    f.wait_active(&dgw).await?;
    let d = f.call("DescribeVpnGateway", &[("RegionId", R), ("VpnGatewayId", &dgw)]).await?;
    dual = Some((dual_peer, d["InternetIp"].as_str().unwrap_or_default().to_string(), d["DisasterRecoveryInternetIp"].as_str().unwrap_or_default().to_string()));
    load_site(&pairs, dual.as_ref()).await?;
    let (gap, dvco) = dual_loss(f, lab, &dgw, dual_peer, &site).await?;
    push(
        &mut rows,
        (
            "packets lost by a dual-tunnel connection while its master's agent dies (longest gap, s)".into(),
            format!("{gap:.2}"),
            "-".into(),
            format!("{} (target < 3 s)", if gap < 3.0 { "met" } else { "NOT met" }),
        ),
    );

    // 2. Many gateways in zone A: the agent holding about half of them dies.
    let mut gws: Vec<(String, String)> = Vec::new();
    for i in 1..=n_gw {
        let (gw, ip) = f.gateway(&vpc, &vsw[0]).await?;
        pairs.push((i, ip));
        gws.push((gw, String::new()));
    }
    load_site(&pairs, dual.as_ref()).await?;
    for (i, (gw, vco)) in gws.iter_mut().enumerate() {
        *vco = f.connection(gw, i + 1).await?;
    }
    let all: Vec<String> = gws.iter().map(|(_, v)| v.clone()).collect();
    f.wait_established(&all, Duration::from_secs(300)).await?;
    let mut by_owner: HashMap<usize, Vec<(String, String)>> = HashMap::new();
    for (gw, vco) in &gws {
        by_owner.entry(f.owner(gw).await?).or_default().push((gw.clone(), vco.clone()));
    }
    let (victim, moved) = by_owner.into_iter().max_by_key(|(_, v)| v.len()).context("no gateway placed")?;
    let t0 = Instant::now();
    f.agents[victim].kill().await;
    f.wait_moved(victim, &moved, Duration::from_secs(300)).await?;
    let many = t0.elapsed().as_secs_f64();
    push(
        &mut rows,
        (
            format!("the same for an agent running {} of {n_gw} gateways, until all are established again (s)", moved.len()),
            format!("{many:.2}"),
            "-".into(),
            format!("{} (target ≤ lease {lease:.0} s + 15 s for 100)", if many <= lease + 15.0 { "met" } else { "NOT met" }),
        ),
    );
    f.agents[victim].start().await?;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    // They go before the next part, which measures four charons alone.
    for (gw, vco) in &gws {
        f.call("DeleteVpnConnection", &[("RegionId", R), ("VpnConnectionId", vco)]).await?;
        f.wait_active(gw).await?;
        f.call("DeleteVpnGateway", &[("RegionId", R), ("VpnGatewayId", gw)]).await?;
    }

    // 3. Connections over four gateways, one per agent (two per zone), alone in the fleet.
    for (gw, vco) in [(&gw, &vco), (&dgw, &dvco)] {
        f.call("DeleteVpnConnection", &[("RegionId", R), ("VpnConnectionId", vco)]).await?;
        f.wait_active(gw).await?;
        f.call("DeleteVpnGateway", &[("RegionId", R), ("VpnGatewayId", gw)]).await?;
    }
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let mut four = Vec::new();
    for z in [0, 0, 1, 1] {
        four.push(f.gateway(&vpc, &vsw[z]).await?);
    }
    let base = peers;
    let conn_pairs: Vec<(usize, usize)> = (0..n_conn).map(|k| (base + k, k % 4)).collect();
    // One customer charon per gateway, as the single-gateway part has.
    for (g, (_, ip)) in four.iter().enumerate() {
        let mine: Vec<(usize, String)> = conn_pairs.iter().filter(|(_, x)| *x == g).map(|(i, _)| (*i, ip.clone())).collect();
        let publics: Vec<Ipv4Addr> = mine.iter().map(|(i, _)| peer_ip(*i)).collect();
        let subnets: Vec<ipnet::Ipv4Net> = mine.iter().map(|(i, _)| peer_subnet(*i).parse().expect("valid subnet")).collect();
        let sock = lab.create_site(&format!("p{g}"), &publics, &subnets).await?;
        let path = dir.join(format!("site-{g}.conf"));
        std::fs::write(&path, swanctl_pairs(&mine, false))?;
        swanctl_load(&sock, &path).await?;
    }
    let mut socks = Vec::new();
    for (gw, _) in &four {
        socks.push(f.agents[f.owner(gw).await?].sock(gw));
    }
    let spread: std::collections::HashSet<&PathBuf> = socks.iter().collect();
    if spread.len() < 4 {
        tracing::warn!("the four gateways share agents: placement spreads by load, and the agents were not all live");
    }
    // Bare strongSwan: the same tunnels loaded into the same four charons by swanctl.
    let mut files = Vec::new();
    for (g, (_, ip)) in four.iter().enumerate() {
        let mine: Vec<(usize, String)> = conn_pairs.iter().filter(|(_, x)| *x == g).map(|(i, _)| (*i, ip.clone())).collect();
        let path = dir.join(format!("bare-{g}.conf"));
        std::fs::write(&path, swanctl_pairs(&mine, true))?;
        files.push(path);
    }
    let t0 = Instant::now();
    for (sock, file) in socks.iter().zip(&files) {
        swanctl_load(sock, file).await?;
    }
    wait_installed_at(&socks, n_conn, Duration::from_secs(600)).await?;
    let bare = t0.elapsed().as_secs_f64();
    restart_charons(&socks).await?;
    // Through the API, four gateways in parallel.
    let made = futures_util::future::try_join_all(four.iter().enumerate().map(|(g, (gw, _))| {
        let mine: Vec<usize> = conn_pairs.iter().filter(|(_, x)| *x == g).map(|(i, _)| *i).collect();
        let f = &*f;
        async move {
            let mut v = Vec::new();
            for i in mine {
                v.push(f.connection(gw, i).await?);
            }
            Ok::<_, anyhow::Error>(v)
        }
    }))
    .await?;
    let _ = made;
    wait_installed_at(&socks, n_conn, Duration::from_secs(600)).await?;
    restart_charons(&socks).await?;
    let t0 = Instant::now();
    wait_installed_at(&socks, n_conn, Duration::from_secs(600)).await?;
    let ours = t0.elapsed().as_secs_f64();
    push(
        &mut rows,
        (format!("{n_conn} connections over 4 agents, established after every charon restarts (s)"), format!("{ours:.2}"), format!("{bare:.2}"), format!("{:.2}× (target ≤ 1.2×)", ours / bare)),
    );
    Ok(rows)
}
