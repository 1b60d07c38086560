//! The BGP part of `vpngw bench-dataplane`: on a gateway of its own, one BGP connection (tunnel
//! established → session Established, through the API), then N BGP sessions on that gateway
//! (time to all Established, the speaker's memory), and a withdrawal (the site stops
//! advertising a prefix → DescribeVpnRouteEntries no longer lists it). The baseline is the same
//! daemon configured by hand: two BIRDs with the same session settings in two namespaces joined
//! by a veth pair, measured the same way.

use std::net::Ipv4Addr;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use vpngw_dataplane::bgp::ask;
use vpngw_dataplane::lab::swanctl_load;
use vpngw_model::bgp::{parse_protocols, parse_routes, session_block};

use crate::dataplane::{call, Bench, Row, PSK, R};

#[derive(Debug, Clone, clap::Args)]
pub struct BgpArgs {
    /// BGP sessions on one gateway (0 leaves the BGP part out).
    #[arg(long = "bgp-sessions", default_value_t = 100)]
    pub sessions: usize,
}

fn peer(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(198, 19, (i / 250) as u8, (i % 250 + 1) as u8)
}
fn subnet(i: usize) -> String {
    format!("10.{}.{}.0/24", 200 + i / 256, i % 256)
}
/// (the gateway's, the peer's) BGP address of session `i`.
fn bgp_ips(i: usize) -> (Ipv4Addr, Ipv4Addr) {
    let (a, b) = ((100 + i / 64) as u8, ((i % 64) * 4) as u8);
    (Ipv4Addr::new(169, 254, a, b + 1), Ipv4Addr::new(169, 254, a, b + 2))
}
fn cidr(i: usize) -> String {
    let (g, _) = bgp_ips(i);
    format!("{}/30", Ipv4Addr::from(u32::from(g) - 1))
}
fn asn(i: usize) -> u32 {
    65001 + i as u32
}

/// The customer side of sessions `range`: strongSwan responders (each with the session's own
/// CHILD_SA) and one BIRD.
fn site(range: std::ops::Range<usize>, gw: &str, advertise: &[usize]) -> (String, String) {
    let mut conns = String::new();
    let mut ids = String::new();
    let mut bird = format!("router id {};\nprotocol device {{\n  scan time 10;\n}}\nprotocol static site {{\n  ipv4;\n", peer(range.start));
    for i in advertise {
        bird.push_str(&format!("  route {} blackhole;\n", subnet(*i)));
    }
    bird.push_str("}\n");
    for i in range {
        let (g, p) = bgp_ips(i);
        conns.push_str(&format!(
            "  p{i} {{\n    version = 2\n    local_addrs = {me}\n    remote_addrs = {gw}\n    proposals = aes128-sha1-modp1024\n    local {{\n      auth = psk\n      id = {me}\n    }}\n    remote {{\n      auth = psk\n      id = {gw}\n    }}\n    children {{\n      p{i}a {{\n        local_ts = {s}\n        remote_ts = 10.1.0.0/16\n        esp_proposals = aes128-sha1-modp1024\n      }}\n      p{i}b {{\n        local_ts = {p}/32\n        remote_ts = {g}/32\n        esp_proposals = aes128-sha1-modp1024\n      }}\n    }}\n  }}\n",
            me = peer(i),
            s = subnet(i),
        ));
        ids.push_str(&format!("    id-{i} = {}\n", peer(i)));
        bird.push_str(&session_block(&format!("s{i}"), "bench", p, asn(i), g, 45104, "", "export where proto = \"site\";"));
    }
    (format!("connections {{\n{conns}}}\nsecrets {{\n  ike-all {{\n{ids}    id-gw = {gw}\n    secret = 0x{}\n  }}\n}}\n", hex::encode(PSK)), bird)
}

async fn established(sock: &Path) -> usize {
    ask(sock, "show protocols").await.map(|r| parse_protocols(&r).values().filter(|p| p.established()).count()).unwrap_or(0)
}

fn rss_kib(pid_file: &Path) -> u64 {
    let pid = std::fs::read_to_string(pid_file).unwrap_or_default();
    let status = std::fs::read_to_string(format!("/proc/{}/status", pid.trim())).unwrap_or_default();
    status.lines().find_map(|l| l.strip_prefix("VmRSS:")).and_then(|v| v.split_whitespace().next()?.parse().ok()).unwrap_or(0)
}

/// Starts BIRD with `conf` in `ns`, files in `dir`.
async fn bird(ns: &str, dir: &Path, conf: &str) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join("bird.conf"), conf)?;
    vpngw_dataplane::bgp::start(Path::new("/usr/sbin/bird"), dir, Some(ns)).await.map(|_| ())
}

async fn wait<F: std::future::Future<Output = bool>>(limit: Duration, mut f: impl FnMut() -> F) -> Result<Duration> {
    let t0 = Instant::now();
    while t0.elapsed() < limit {
        if f().await {
            return Ok(t0.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    bail!("not within {limit:?}")
}

/// The same daemon by hand: two BIRDs, `n` sessions over a veth pair, the same settings.
/// Returns (time to all Established, the gateway-side BIRD's RSS in KiB, withdrawal → gone).
async fn bare(b: &Bench, n: usize) -> Result<(Duration, u64, Duration)> {
    let (x, y) = (format!("{}-bgpx", b.lab.name), format!("{}-bgpy", b.lab.name));
    let dir = b.dir.join("bare-bgp");
    let run = |a: &[&str]| {
        let a: Vec<String> = a.iter().map(|s| s.to_string()).collect();
        async move { vpngw_dataplane::lab::ip(&a.iter().map(String::as_str).collect::<Vec<_>>()).await }
    };
    for ns in [&x, &y] {
        let _ = run(&["netns", "del", ns]).await;
        run(&["netns", "add", ns]).await?;
        run(&["-n", ns, "link", "set", "lo", "up"]).await?;
    }
    run(&["link", "add", "bgpx0", "netns", &x, "type", "veth", "peer", "name", "bgpy0", "netns", &y]).await?;
    run(&["-n", &x, "addr", "add", "192.0.2.1/30", "dev", "bgpx0"]).await?;
    run(&["-n", &y, "addr", "add", "192.0.2.2/30", "dev", "bgpy0"]).await?;
    run(&["-n", &x, "link", "set", "bgpx0", "up"]).await?;
    run(&["-n", &y, "link", "set", "bgpy0", "up"]).await?;
    let mut gw_conf = "router id 169.254.100.1;\nprotocol device {\n  scan time 10;\n}\nprotocol static vpc {\n  ipv4;\n  route 10.1.0.0/16 blackhole;\n}\n".to_string();
    for i in 0..n {
        let (g, p) = bgp_ips(i);
        run(&["-n", &x, "addr", "add", &format!("{g}/32"), "dev", "lo"]).await?;
        run(&["-n", &y, "addr", "add", &format!("{p}/32"), "dev", "lo"]).await?;
        run(&["-n", &x, "route", "add", &format!("{p}/32"), "via", "192.0.2.2", "src", &g.to_string()]).await?;
        run(&["-n", &y, "route", "add", &format!("{g}/32"), "via", "192.0.2.1", "src", &p.to_string()]).await?;
        gw_conf.push_str(&session_block(&format!("s{i}"), "bench", g, 45104, p, asn(i), "", "export where proto = \"vpc\";"));
    }
    let (_, site_conf) = site(0..n, "192.0.2.1", &(0..n).collect::<Vec<_>>());
    let result = async {
        bird(&y, &dir.join("y"), &site_conf).await?;
        let t0 = Instant::now();
        bird(&x, &dir.join("x"), &gw_conf).await?;
        let sock = dir.join("x").join("bird.ctl");
        wait(Duration::from_secs(300), || async { established(&sock).await >= n }).await.map_err(|e| e.context("bare BIRD sessions"))?;
        let up = t0.elapsed();
        let rss = rss_kib(&dir.join("x").join("bird.pid"));
        // Withdraw peer 0's prefix.
        let (_, fewer) = site(0..n, "192.0.2.1", &(1..n).collect::<Vec<_>>());
        std::fs::write(dir.join("y").join("bird.conf"), fewer)?;
        let t0 = Instant::now();
        vpngw_dataplane::bgp::reconfigure(&dir.join("y")).await?;
        let gone = wait(Duration::from_secs(60), || async { ask(&sock, "show route all").await.map(|r| !parse_routes(&r).values().flatten().any(|l| l.prefix == subnet(0))).unwrap_or(false) }).await?;
        let _ = t0;
        Ok::<_, anyhow::Error>((up, rss, gone))
    }
    .await;
    for d in ["x", "y"] {
        vpngw_dataplane::process::kill_pid_file(&dir.join(d).join("bird.pid")).await;
    }
    for ns in [&x, &y] {
        let _ = run(&["netns", "del", ns]).await;
    }
    result
}

pub(crate) async fn rows(b: &Bench, args: &BgpArgs, vpc: &str, vsw: &str) -> Result<Vec<Row>> {
    let n = args.sessions;
    if n == 0 {
        return Ok(Vec::new());
    }
    let gw = call(&b.client, "CreateVpnGateway", &[("RegionId", R), ("VpcId", vpc), ("VSwitchId", vsw), ("Bandwidth", "5"), ("InstanceChargeType", "POSTPAY")]).await?["VpnGatewayId"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    b.wait_active(&gw).await?;
    let gw_ip = call(&b.client, "DescribeVpnGateway", &[("RegionId", R), ("VpnGatewayId", &gw)]).await?["InternetIp"].as_str().unwrap_or_default().to_string();
    let publics: Vec<Ipv4Addr> = (0..n).map(peer).collect();
    let mut subnets: Vec<ipnet::Ipv4Net> = (0..n).map(|i| subnet(i).parse().expect("a subnet")).collect();
    subnets.extend((0..n).map(|i| ipnet::Ipv4Net::from(bgp_ips(i).1)));
    let sock = b.lab.create_site("bgppeers", &publics, &subnets).await?;
    let (swanctl, bird_conf) = site(0..n, &gw_ip, &(0..n).collect::<Vec<_>>());
    let conf = b.dir.join("bgp-site.conf");
    std::fs::write(&conf, swanctl)?;
    swanctl_load(&sock, &conf).await?;
    let site_dir = b.lab.site_dir("bgppeers");
    b.lab.site_bird("bgppeers", Path::new("/usr/sbin/bird"), &bird_conf).await?;

    let connection = |i: usize| {
        let gw = gw.clone();
        async move {
            let cgw = call(&b.client, "CreateCustomerGateway", &[("RegionId", R), ("IpAddress", &peer(i).to_string()), ("Asn", &asn(i).to_string())]).await?["CustomerGatewayId"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let ike = format!(r#"{{"Psk":"{PSK}","IkeVersion":"ikev2","IkeEncAlg":"aes","IkeAuthAlg":"sha1","IkePfs":"group2"}}"#);
            let bgp = format!(r#"{{"EnableBgp":"true","TunnelCidr":"{}","LocalAsn":"45104"}}"#, cidr(i));
            let v = call(
                &b.client,
                "CreateVpnConnection",
                &[
                    ("RegionId", R),
                    ("VpnGatewayId", &gw),
                    ("CustomerGatewayId", &cgw),
                    ("LocalSubnet", "10.1.0.0/16"),
                    ("RemoteSubnet", &subnet(i)),
                    ("EffectImmediately", "true"),
                    ("IkeConfig", &ike),
                    ("IpsecConfig", r#"{"IpsecEncAlg":"aes","IpsecAuthAlg":"sha1","IpsecPfs":"group2"}"#),
                    ("BgpConfig", &bgp),
                ],
            )
            .await?;
            b.wait_active(&gw).await?;
            Ok::<_, anyhow::Error>(v["VpnConnectionId"].as_str().unwrap_or_default().to_string())
        }
    };
    let describe = |vco: String| async move { call(&b.client, "DescribeVpnConnection", &[("RegionId", R), ("VpnConnectionId", &vco)]).await.unwrap_or_default() };

    // 1. One connection: its tunnel established → its session Established, both read through the API.
    let first = connection(0).await?;
    wait(Duration::from_secs(60), || {
        let f = first.clone();
        async move { describe(f).await["Status"] == "ipsec_sa_established" }
    })
    .await
    .context("the first BGP connection's tunnel")?;
    let to_bgp = wait(Duration::from_secs(120), || {
        let f = first.clone();
        async move { describe(f).await["VpnBgpConfig"]["Status"] == "success" }
    })
    .await
    .context("the first BGP session")?;

    // 2. The rest: created, then the clock runs until every session is Established (read from the
    //    gateway's BIRD, then confirmed through the API).
    let mut vcos = vec![first];
    let t0 = Instant::now();
    for i in 1..n {
        vcos.push(connection(i).await?);
    }
    let gw_sock = b.lab.gateway_dir(&gw).join("bird.ctl");
    let created = t0.elapsed();
    wait(Duration::from_secs(600), || async { established(&gw_sock).await >= n }).await.context("every BGP session")?;
    let all = t0.elapsed();
    for v in &vcos {
        if describe(v.clone()).await["VpnBgpConfig"]["Status"] != "success" {
            tokio::time::sleep(Duration::from_secs(2)).await;
            if describe(v.clone()).await["VpnBgpConfig"]["Status"] != "success" {
                bail!("{v}: BIRD says Established, the API does not");
            }
        }
    }
    let rss = rss_kib(&b.lab.gateway_dir(&gw).join("bird.pid"));

    // 3. The site withdraws peer 0's prefix: gone from DescribeVpnRouteEntries.
    let listed = |gw: String| async move {
        call(&b.client, "DescribeVpnRouteEntries", &[("RegionId", R), ("VpnGatewayId", &gw), ("RouteEntryType", "bgp"), ("PageSize", "50")])
            .await
            .map(|v| v.to_string().contains(&format!("\"{}\"", subnet(0))))
            .unwrap_or(true)
    };
    wait(Duration::from_secs(60), || listed(gw.clone())).await.context("the learned route")?;
    let (_, fewer) = site(0..n, &gw_ip, &(1..n).collect::<Vec<_>>());
    std::fs::write(site_dir.join("bird.conf"), fewer)?;
    vpngw_dataplane::bgp::reconfigure(&site_dir).await?;
    let gone = wait(Duration::from_secs(60), || {
        let g = gw.clone();
        async move { !listed(g).await }
    })
    .await
    .context("the withdrawal")?;
    b.lab.delete_site("bgppeers").await?;

    let (bare_one, _, _) = bare(b, 1).await.context("bare BIRD, one session")?;
    let (bare_up, bare_rss, bare_gone) = bare(b, n).await.context("bare BIRD")?;
    let ms = |d: Duration| format!("{:.0}", d.as_secs_f64() * 1000.0);
    Ok(vec![
        (
            "BGP: tunnel established → session Established (ms; vpngw: through the API; bare: two BIRDs started by hand)".into(),
            ms(to_bgp),
            ms(bare_one),
            format!("{:+.0} ms (state read at reconcile passes)", (to_bgp.as_secs_f64() - bare_one.as_secs_f64()) * 1000.0),
        ),
        (
            format!("BGP: {n} sessions on one gateway, all Established (s; vpngw: after the last CreateVpnConnection; bare: BIRD started with all of them)"),
            format!("{:.2}", (all - created).as_secs_f64()),
            format!("{:.2}", bare_up.as_secs_f64()),
            format!("{:.2}× ({n} BGP connections created one by one, each applied, in {:.1} s)", (all - created).as_secs_f64() / bare_up.as_secs_f64().max(0.001), created.as_secs_f64()),
        ),
        (format!("BGP: the speaker's memory with {n} sessions (RSS, KiB)"), rss.to_string(), bare_rss.to_string(), "one BIRD per gateway side".into()),
        ("BGP: prefix withdrawn → gone (ms; vpngw: from DescribeVpnRouteEntries)".into(), ms(gone), ms(bare_gone), "read at each reconcile pass".into()),
    ])
}
