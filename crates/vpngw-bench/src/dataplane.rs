//! `vpngw bench-dataplane`: the IPsec data plane against bare strongSwan, in a lab on this
//! machine (needs root and strongSwan). Prints a table; BENCHMARKS.md records the results.
//!
//! 1. CreateVpnConnection(EffectImmediately=true) → DescribeVpnConnection says
//!    ipsec_sa_established, beside `swanctl --load-all` of the same connection → INSTALLED.
//! 2. Pushing definitions over VICI (load-shared + load-conn), per second.
//! 3. Bringing N connections of one gateway to established after charon restarts (the
//!    reconciler reloads and initiates them all), beside `swanctl --load-all` of the same N on a
//!    fresh charon.
//! 4. VICI calls that one change costs among 10 and among N connections.
//! 5. SSL-VPN: CreateSslVpnServer → the gateway is active again (its OpenVPN serving), beside
//!    starting bare `openvpn` with the same configuration; client certificates issued through
//!    the API per second; a client's profile → its tunnel address.
//! 6. BGP (`bgp.rs`): tunnel → session Established; N sessions on one gateway and the speaker's
//!    memory; a withdrawal, beside BIRD configured by hand.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use vpngw_dataplane::config::Mode;
use vpngw_dataplane::ipsec::{ChildDef, ConnDef};
use vpngw_dataplane::lab::{swanctl_load, Lab};
use vpngw_dataplane::vici::{self, Client as Vici, Message};

use vpngw_server::client::{Client, Scheme};

#[derive(Debug, Clone, clap::Args)]
pub struct DataPlaneBenchArgs {
    /// Samples of the create-to-established latency.
    #[arg(long, default_value_t = 5)]
    pub samples: usize,
    /// Connections brought to established on one gateway.
    #[arg(long, default_value_t = 500)]
    pub established: usize,
    /// Definitions pushed over VICI.
    #[arg(long, default_value_t = 1000)]
    pub definitions: usize,
    /// The BGP part.
    #[command(flatten)]
    pub bgp: crate::bgp::BgpArgs,
    /// The fleet part (gateway agents, failover), on PostgreSQL.
    #[command(flatten)]
    pub fleet: crate::fleet::FleetArgs,
}

pub(crate) const R: &str = "cn-hangzhou";
pub(crate) const PSK: &str = "bench-psk-0123";

pub(crate) fn peer_ip(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(203, 0, (i / 250) as u8, (i % 250 + 1) as u8)
}

pub(crate) fn peer_subnet(i: usize) -> String {
    format!("172.{}.{}.0/24", 16 + i / 256, i % 256)
}

/// swanctl.conf for peers `range` talking to `gw`: responders on the site, or (`initiator`)
/// the gateway side of the same tunnels for bare strongSwan.
fn swanctl(range: std::ops::Range<usize>, gw: &str, initiator: bool) -> String {
    let mut conns = String::new();
    let mut ids = String::new();
    for i in range {
        let (me, peer, lts, rts) = if initiator {
            (gw.to_string(), peer_ip(i).to_string(), "10.1.0.0/16".to_string(), peer_subnet(i))
        } else {
            (peer_ip(i).to_string(), gw.to_string(), peer_subnet(i), "10.1.0.0/16".to_string())
        };
        let start = if initiator { "start" } else { "none" };
        conns.push_str(&format!(
            "  b{i} {{\n    version = 2\n    local_addrs = {me}\n    remote_addrs = {peer}\n    proposals = aes128-sha1-modp1024\n    local {{\n      auth = psk\n      id = {me}\n    }}\n    remote {{\n      auth = psk\n      id = {peer}\n    }}\n    children {{\n      b{i}c {{\n        local_ts = {lts}\n        remote_ts = {rts}\n        esp_proposals = aes128-sha1-modp1024\n        start_action = {start}\n      }}\n    }}\n  }}\n"
        ));
        ids.push_str(&format!("    id-{i} = {}\n", peer_ip(i)));
    }
    format!("connections {{\n{conns}}}\nsecrets {{\n  ike-all {{\n{ids}    id-gw = {gw}\n    secret = 0x{}\n  }}\n}}\n", hex::encode(PSK))
}

pub(crate) async fn installed(sock: &Path) -> Result<usize> {
    let mut c = Vici::connect(sock).await?;
    c.register("list-sa").await?;
    let (events, _) = c.stream("list-sas", Some("list-sa"), Message::new().kv("noblock", "yes")).await?;
    Ok(vpngw_dataplane::ipsec::sa_states(&events).values().map(|s| s.installed.len()).sum())
}

async fn wait_installed(sock: &Path, n: usize, limit: Duration) -> Result<Duration> {
    let t0 = Instant::now();
    while t0.elapsed() < limit {
        if installed(sock).await.unwrap_or(0) >= n {
            return Ok(t0.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    bail!("{n} CHILD_SAs never installed at {}", sock.display())
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

pub(crate) struct Bench {
    pub(crate) client: Client,
    pub(crate) lab: Arc<Lab>,
    gw: String,
    gw_ip: String,
    pub(crate) dir: PathBuf,
    /// Customer gateways by peer index.
    cgws: tokio::sync::Mutex<std::collections::HashMap<usize, String>>,
}

/// Calls an action; anything but 200 is an error (with the body).
pub(crate) async fn call(client: &Client, action: &str, params: &[(&str, &str)]) -> Result<serde_json::Value> {
    let a = client.call(action, params).await?;
    if a.status != 200 {
        bail!("{action}: {}", a.body);
    }
    Ok(a.json())
}

impl Bench {
    async fn call(&self, action: &str, params: &[(&str, &str)]) -> Result<serde_json::Value> {
        call(&self.client, action, params).await
    }

    async fn wait_gateway_active(&self) -> Result<()> {
        self.wait_active(&self.gw).await
    }

    pub(crate) async fn wait_active(&self, gw: &str) -> Result<()> {
        for _ in 0..6000 {
            if self.call("DescribeVpnGateway", &[("RegionId", R), ("VpnGatewayId", gw)]).await?["Status"] == "active" {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        bail!("the gateway never became active")
    }

    fn gw_sock(&self) -> PathBuf {
        self.lab.gateway_dir(&self.gw).join("charon.vici")
    }

    /// The customer gateway of peer `i` (created once).
    async fn cgw(&self, i: usize) -> Result<String> {
        let mut cgws = self.cgws.lock().await;
        if let Some(c) = cgws.get(&i) {
            return Ok(c.clone());
        }
        let c = self.call("CreateCustomerGateway", &[("RegionId", R), ("IpAddress", &peer_ip(i).to_string())]).await?["CustomerGatewayId"].as_str().unwrap_or_default().to_string();
        cgws.insert(i, c.clone());
        Ok(c)
    }

    async fn connection(&self, i: usize, immediately: bool) -> Result<String> {
        let cgw = self.cgw(i).await?;
        let ike = format!(r#"{{"Psk":"{PSK}","IkeVersion":"ikev2","IkeEncAlg":"aes","IkeAuthAlg":"sha1","IkePfs":"group2"}}"#);
        let ipsec = r#"{"IpsecEncAlg":"aes","IpsecAuthAlg":"sha1","IpsecPfs":"group2"}"#;
        let v = self
            .call(
                "CreateVpnConnection",
                &[
                    ("RegionId", R),
                    ("VpnGatewayId", &self.gw),
                    ("CustomerGatewayId", &cgw),
                    ("LocalSubnet", "10.1.0.0/16"),
                    ("RemoteSubnet", &peer_subnet(i)),
                    ("EffectImmediately", if immediately { "true" } else { "false" }),
                    ("IkeConfig", &ike),
                    ("IpsecConfig", ipsec),
                ],
            )
            .await?;
        Ok(v["VpnConnectionId"].as_str().unwrap_or_default().to_string())
    }

    /// Kills the gateway's charon and waits for the lab to start a fresh one (and, with
    /// `settle`, for vpngw to have noticed it).
    async fn restart_charon(&self, settle: bool) -> Result<()> {
        let pid_file = self.lab.gateway_dir(&self.gw).join("charon.pid");
        let pid = std::fs::read_to_string(&pid_file)?.trim().to_string();
        tokio::process::Command::new("kill").args(["-KILL", &pid]).status().await?;
        for _ in 0..2000 {
            let now = std::fs::read_to_string(&pid_file).unwrap_or_default();
            if now.trim() != pid && !now.is_empty() && vpngw_dataplane::lab::wait_socket(&self.gw_sock(), Duration::from_millis(10)).await {
                if settle {
                    // Let vpngw notice the new charon (its event connection, a reconcile pass).
                    tokio::time::sleep(Duration::from_millis(300)).await;
                }
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        bail!("charon did not come back")
    }
}

pub async fn run(args: DataPlaneBenchArgs) -> Result<()> {
    let dir = std::env::temp_dir().join(format!("vpngw-bench-dp-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut cfg = crate::api::bench_config(&dir);
    cfg.dataplane.mode = Mode::Lab;
    cfg.dataplane.lab_name = format!("bench{}", std::process::id() % 10000);
    cfg.dataplane.reconcile_interval_ms = 1000;
    cfg.dataplane.persist = std::env::var_os("VPNGW_BENCH_KEEP").is_some();
    let store = vpngw_server::server::open_store(&cfg).await?;
    let running = vpngw_server::server::start(&cfg, store).await?;
    let client = Client::new(running.addr.to_string(), "BENCHAK", "benchsecret", Scheme::Acs3);
    let lab = Arc::new(Lab::new(&cfg.dataplane));
    let result = bench(&args, client, lab.clone(), dir.clone()).await;
    let _ = running.shutdown.send(true);
    let _ = running.done.await;
    if std::env::var_os("VPNGW_BENCH_KEEP").is_none() {
        let _ = lab.teardown().await;
        let _ = std::fs::remove_dir_all(&dir);
    }
    result?;
    if let Some(url) = &args.fleet.postgres {
        let rows = crate::fleet::rows(&args.fleet, url).await.context("the fleet part")?;
        println!("\n| fleet scenario | vpngw | bare strongSwan | result |\n|---|---|---|---|");
        for (a, o, r, x) in rows {
            println!("| {a} | {o} | {r} | {x} |");
        }
    }
    Ok(())
}

async fn bench(args: &DataPlaneBenchArgs, client: Client, lab: Arc<Lab>, dir: PathBuf) -> Result<()> {
    let (gw, vpc, vsw) = crate::api::gateway_in_vpc(&client).await?;
    let mut b = Bench { client, lab: lab.clone(), gw, gw_ip: String::new(), dir, cgws: Default::default() };
    b.wait_gateway_active().await?;
    b.gw_ip = b.call("DescribeVpnGateway", &[("RegionId", R), ("VpnGatewayId", &b.gw)]).await?["InternetIp"].as_str().unwrap_or_default().to_string();

    // The customer side: one namespace with every peer's address, one charon answering them all.
    let peers = args.established.max(args.samples * 2 + 1);
    let publics: Vec<Ipv4Addr> = (0..peers).map(peer_ip).collect();
    // Each peer's subnet has an address on the site: charon installs a tunnel's route from it.
    let subnets: Vec<ipnet::Ipv4Net> = (0..peers).map(|i| peer_subnet(i).parse().expect("valid subnet")).collect();
    let site = lab.create_site("peers", &publics, &subnets).await?;
    let site_conf = b.dir.join("site.conf");
    std::fs::write(&site_conf, swanctl(0..peers, &b.gw_ip, false))?;
    swanctl_load(&site, &site_conf).await?;
    println!("(lab ready: gateway {} at {}, {peers} customer peers)", b.gw, b.gw_ip);

    let mut rows: Vec<(String, String, String, String)> = Vec::new();

    // 1. Create → established, beside bare swanctl.
    let (mut ours, mut bare) = (Vec::new(), Vec::new());
    for s in 0..args.samples {
        let bare_i = args.samples + s;
        let f = b.dir.join(format!("bare{s}.conf"));
        std::fs::write(&f, swanctl(bare_i..bare_i + 1, &b.gw_ip, true))?;
        let t0 = Instant::now();
        swanctl_load(&b.gw_sock(), &f).await?;
        wait_installed(&b.gw_sock(), 1, Duration::from_secs(30)).await?;
        bare.push(t0.elapsed().as_secs_f64() * 1000.0);
        b.restart_charon(true).await?; // a clean charon for the next measurement

        b.cgw(s).await?; // outside the clock: the customer gateway exists beforehand
        let t0 = Instant::now();
        let vco = b.connection(s, true).await?;
        tracing::debug!(took = ?t0.elapsed(), "CreateVpnConnection answered.");
        loop {
            let st = b.call("DescribeVpnConnection", &[("RegionId", R), ("VpnConnectionId", &vco)]).await?;
            if st["Status"] == "ipsec_sa_established" {
                break;
            }
            if t0.elapsed() > Duration::from_secs(30) {
                bail!("{vco} never came up");
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        ours.push(t0.elapsed().as_secs_f64() * 1000.0);
        b.wait_gateway_active().await?;
        b.call("DeleteVpnConnection", &[("RegionId", R), ("VpnConnectionId", &vco)]).await?;
        b.wait_gateway_active().await?;
        b.restart_charon(true).await?;
    }
    let (o, r) = (median(ours), median(bare));
    rows.push(("create → ipsec_sa_established (median ms)".into(), format!("{o:.1}"), format!("{r:.1}"), format!("{:+.1} ms (target ≤ +25 ms)", o - r)));

    // 2. Definitions over VICI per second, into a scratch charon.
    let scratch = lab.create_site("scratch", &[Ipv4Addr::new(192, 0, 2, 250)], &[]).await?;
    let mut v = Vici::connect(&scratch).await?;
    let defs: Vec<ConnDef> = (0..args.definitions)
        .map(|i| ConnDef {
            conn_id: format!("vco-{i}"),
            tunnel_id: None,
            key: format!("vco-{i}"),
            name: format!("vco-{i}-00000000"),
            version: 2,
            aggressive: false,
            local_addr: "192.0.2.250".into(),
            remote_addr: peer_ip(i).to_string(),
            ike_proposal: "aes128-sha1-modp1024".into(),
            ike_lifetime: 86400,
            dpd: true,
            nat_traversal: true,
            local_id: "192.0.2.250".into(),
            remote_id: peer_ip(i).to_string(),
            psk: PSK.into(),
            children: vec![ChildDef {
                name: format!("vco-{i}-00000000-1"),
                local_ts: vec!["10.1.0.0/16".into()],
                remote_ts: vec![peer_subnet(i)],
                esp_proposal: "aes128-sha1".into(),
                lifetime: 3600,
                reqid: 0x1000_0000 + i as u32,
            }],
            learned: Vec::new(),
            bgp_child: None,
            initiate: false,
            priority: None,
            pool: None,
        })
        .collect();
    // As the reconciler loads them: pipelined batches of load-shared + load-conn.
    let t0 = Instant::now();
    for chunk in defs.chunks(64) {
        let reqs = chunk.iter().flat_map(|d| [("load-shared", d.load_shared()), ("load-conn", d.load_conn())]).collect();
        for answer in v.call_many(reqs).await? {
            answer?;
        }
    }
    let rate = args.definitions as f64 / t0.elapsed().as_secs_f64();
    rows.push((format!("push {} definitions over VICI (load-shared + load-conn, per second)", args.definitions), format!("{rate:.0}"), "-".into(), "target ≥ 2,000/s".into()));
    drop(v);
    lab.delete_site("scratch").await?;

    // 3. N connections to established after a charon restart, beside bare swanctl.
    let n = args.established;
    let f = b.dir.join("bare-all.conf");
    std::fs::write(&f, swanctl(0..n, &b.gw_ip, true))?;
    let t0 = Instant::now();
    swanctl_load(&b.gw_sock(), &f).await?;
    wait_installed(&b.gw_sock(), n, Duration::from_secs(600)).await?;
    let bare_all = t0.elapsed().as_secs_f64();
    b.restart_charon(true).await?;

    let mut calls_10 = 0;
    let t0 = Instant::now();
    let mut vcos = Vec::new();
    for i in 0..n {
        vcos.push(b.connection(i, true).await?);
        b.wait_gateway_active().await?;
        if i + 1 == 10 {
            calls_10 = change_cost(&b, &vcos[0]).await?;
        }
    }
    let api_all = t0.elapsed().as_secs_f64();
    wait_installed(&b.gw_sock(), n, Duration::from_secs(600)).await?;
    let calls_n = change_cost(&b, &vcos[1]).await?;
    wait_installed(&b.gw_sock(), n, Duration::from_secs(600)).await?;
    // From the moment the fresh charon answers (as for bare strongSwan, whose clock starts at
    // `swanctl --load-all` on a running charon): the reconciler reloads and initiates all.
    b.restart_charon(false).await?;
    let t0 = Instant::now();
    wait_installed(&b.gw_sock(), n, Duration::from_secs(600)).await?;
    let ours_all = t0.elapsed().as_secs_f64();
    rows.push((format!("{n} connections established after charon restarts (s)"), format!("{ours_all:.2}"), format!("{bare_all:.2}"), format!("{:.2}× (target ≤ 1.2×)", ours_all / bare_all)));
    rows.push((format!("{n} connections created one by one through the API, each applied (s)"), format!("{api_all:.1}"), "-".into(), "each create waits for the gateway to leave `updating`".into()));
    rows.push(("VICI calls for one change among 10 connections".into(), calls_10.to_string(), "-".into(), "constant".into()));
    rows.push((format!("VICI calls for one change among {n} connections"), calls_n.to_string(), "-".into(), "constant".into()));

    rows.extend(ssl_rows(&b, args, &vpc, &vsw).await.context("the SSL-VPN part")?);
    rows.extend(crate::bgp::rows(&b, &args.bgp, &vpc, &vsw).await.context("the BGP part")?);

    println!("| scenario | vpngw | bare strongSwan / OpenVPN | result |\n|---|---|---|---|");
    for (a, o, r, x) in rows {
        println!("| {a} | {o} | {r} | {x} |");
    }
    Ok(())
}

pub(crate) type Row = (String, String, String, String);

/// 5. SSL-VPN on a second gateway of the same VPC.
async fn ssl_rows(b: &Bench, args: &DataPlaneBenchArgs, vpc: &str, vsw: &str) -> Result<Vec<Row>> {
    let gw = b
        .call("CreateVpnGateway", &[("RegionId", R), ("VpcId", vpc), ("VSwitchId", vsw), ("Bandwidth", "5"), ("InstanceChargeType", "POSTPAY"), ("EnableSsl", "true"), ("SslConnections", "50")])
        .await?["VpnGatewayId"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    b.wait_active(&gw).await?;
    let create = [("RegionId", R), ("VpnGatewayId", gw.as_str()), ("ClientIpPool", "192.168.128.0/20"), ("LocalSubnet", "10.1.0.0/16"), ("Proto", "UDP")];
    let (mut ours, mut bare) = (Vec::new(), Vec::new());
    let mut vss = String::new();
    for s in 0..args.samples.max(1) {
        if !vss.is_empty() {
            b.call("DeleteSslVpnServer", &[("RegionId", R), ("SslVpnServerId", &vss)]).await?;
            b.wait_active(&gw).await?;
        }
        let t0 = Instant::now();
        vss = b.call("CreateSslVpnServer", &create).await?["SslVpnServerId"].as_str().unwrap_or_default().to_string();
        b.wait_active(&gw).await?;
        ours.push(t0.elapsed().as_secs_f64() * 1000.0);
        // Bare: the same configuration, another port and directory, started by hand.
        let dir = b.lab.run_dir.join("ssl").join(&vss);
        let scratch = b.dir.join(format!("bare-openvpn-{s}"));
        std::fs::create_dir_all(&scratch)?;
        for f in ["ca.crt", "server.crt", "server.key", "crl.pem"] {
            std::fs::copy(dir.join(f), scratch.join(f))?;
        }
        let conf =
            std::fs::read_to_string(dir.join("openvpn.conf"))?.replace(&dir.display().to_string(), &scratch.display().to_string()).replace("port 1194", "port 11940").replace("dev vss", "dev bvs");
        std::fs::write(scratch.join("openvpn.conf"), conf)?;
        let ns = b.lab.gateway_ns(&gw);
        let t0 = Instant::now();
        let mut child = tokio::process::Command::new("ip").args(["netns", "exec", &ns, "openvpn", "--config"]).arg(scratch.join("openvpn.conf")).arg("--log").arg(scratch.join("log")).spawn()?;
        if !vpngw_dataplane::lab::wait_socket(&scratch.join("mgmt.sock"), Duration::from_secs(10)).await {
            bail!("bare openvpn did not start: see {}", scratch.join("log").display());
        }
        bare.push(t0.elapsed().as_secs_f64() * 1000.0);
        let _ = child.kill().await;
    }
    let (o, r) = (median(ours), median(bare));
    let mut rows = vec![(
        "CreateSslVpnServer → gateway active, OpenVPN serving (median ms)".to_string(),
        format!("{o:.1}"),
        format!("{r:.1}"),
        format!("{:+.1} ms (CA, server certificate, render, start)", o - r),
    )];

    let n = 50;
    let t0 = Instant::now();
    let mut certs = Vec::new();
    for _ in 0..n {
        certs.push(b.call("CreateSslVpnClientCert", &[("RegionId", R), ("SslVpnServerId", &vss)]).await?["SslVpnClientCertId"].as_str().unwrap_or_default().to_string());
    }
    let rate = n as f64 / t0.elapsed().as_secs_f64();
    rows.push((format!("CreateSslVpnClientCert, {n} in a row (per second)"), format!("{rate:.0}"), "-".into(), "key pair, signature, sealed key, durable commit".into()));

    let site = "sslclient";
    b.lab.create_site(site, &[Ipv4Addr::new(198, 18, 0, 10)], &[]).await?;
    let profile = b.call("DescribeSslVpnClientCert", &[("RegionId", R), ("SslVpnClientCertId", &certs[0])]).await?["ClientConfig"].as_str().unwrap_or_default().to_string();
    let path = b.dir.join("client.ovpn");
    std::fs::write(&path, profile)?;
    let ns = b.lab.site_ns(site);
    let t0 = Instant::now();
    let mut client = tokio::process::Command::new("ip").args(["netns", "exec", &ns, "openvpn", "--config"]).arg(&path).arg("--log").arg(b.dir.join("client.log")).spawn()?;
    let mut connected = None;
    while t0.elapsed() < Duration::from_secs(30) {
        let out = tokio::process::Command::new("ip").args(["-n", &ns, "-4", "-o", "addr"]).output().await?;
        if String::from_utf8_lossy(&out.stdout).contains("inet 192.168.1") {
            connected = Some(t0.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let _ = client.kill().await;
    let connected = connected.context("the client never got a tunnel address")?;
    rows.push(("a client's ClientConfig → tunnel address (ms)".into(), format!("{:.0}", connected.as_secs_f64() * 1000.0), "-".into(), "OpenVPN's own TLS handshake and push".into()));
    b.lab.delete_site(site).await?;
    Ok(rows)
}

/// VICI calls from a negotiable change (the IKE lifetime) of one connection until its gateway
/// is active again: the change re-negotiates that one tunnel.
async fn change_cost(b: &Bench, vco: &str) -> Result<u64> {
    let before = vici::CALLS.load(Ordering::SeqCst);
    let ike = r#"{"IkeLifetime":3600}"#;
    b.call("ModifyVpnConnectionAttribute", &[("RegionId", R), ("VpnConnectionId", vco), ("IkeConfig", ike)]).await.context("modify")?;
    b.wait_gateway_active().await?;
    Ok(vici::CALLS.load(Ordering::SeqCst) - before)
}
