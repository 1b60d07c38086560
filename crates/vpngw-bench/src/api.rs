//! `vpngw bench`: throughput and latency of signed reads and writes beside a bare endpoint of
//! the same server, a bare SQLite insert at the same durability, and moto_server (the AWS
//! emulator) when it is installed. Prints a table; BENCHMARKS.md records the results.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;

use vpngw_server::client::{Client, Scheme, Tweak};
use vpngw_server::config::{AccountConfig, Config};

#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// Requests each read scenario sends (bare and signed reads).
    #[arg(long, default_value_t = 60_000)]
    pub reads: usize,
    /// Requests each write scenario sends (and rows the bare SQLite insert writes).
    #[arg(long, default_value_t = 6_000)]
    pub writes: usize,
    /// Connections on the large gateway of the DescribeVpnConnections scenario (0 skips it).
    #[arg(long, default_value_t = 10_000)]
    pub connections: usize,
    /// The moto_server program to compare with (skipped when not found).
    #[arg(long, default_value = "moto_server")]
    pub moto: String,
    /// A PostgreSQL (URL) to also run servers on, one and two, beside bare PostgreSQL (a
    /// database of its own is made there for the run and dropped after it).
    #[arg(long)]
    pub postgres: Option<String>,
}

pub(crate) struct Row {
    pub(crate) name: String,
    pub(crate) conns: usize,
    pub(crate) rps: f64,
    pub(crate) p50_ms: f64,
    pub(crate) p99_ms: f64,
}

pub(crate) fn pct_ms(sorted: &[Duration], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

/// Sends every prepared request once, from `conns` concurrent keep-alive connections, and
/// times them. The requests are built (and signed) before the clock starts and go on the wire
/// as prepared bytes, as a load generator such as wrk sends them; answers are read as bytes
/// ([`Wire`]). So the numbers are the server's, not the client's signing or HTTP library.
async fn measure(name: &str, conns: usize, endpoint: &str, reqs: Vec<Request>) -> anyhow::Result<Row> {
    measure_on(name, conns, &[endpoint.to_string()], reqs).await
}

/// [`measure`] against several servers: connection `k` goes to `endpoints[k % n]`, and every
/// request is prepared for each of them (so a request is the same whichever sends it).
pub(crate) async fn measure_on(name: &str, conns: usize, endpoints: &[String], reqs: Vec<Request>) -> anyhow::Result<Row> {
    let total = reqs.len();
    let mut prepared = Vec::with_capacity(total);
    for r in reqs {
        let (parts, body) = r.into_parts();
        let mut each = Vec::with_capacity(endpoints.len());
        for e in endpoints {
            each.push(wire_bytes(e, hyper::Request::from_parts(parts.clone(), body.clone())).await?);
        }
        prepared.push(std::sync::Mutex::new(Some(each)));
    }
    let reqs = Arc::new(prepared);
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for k in 0..conns {
        let (reqs, next, endpoint) = (reqs.clone(), next.clone(), endpoints[k % endpoints.len()].clone());
        let which = k % endpoints.len();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut failures = Vec::new();
            let mut conn: Option<Wire> = None;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                let Some(mut each) = reqs.get(i).and_then(|m| m.lock().ok().and_then(|mut g| g.take())) else { break };
                let req = each.swap_remove(which);
                let t = Instant::now();
                let answer = match conn.as_mut() {
                    Some(c) => c.exchange(&req).await,
                    None => match Wire::connect(&endpoint).await {
                        Ok(c) => conn.insert(c).exchange(&req).await,
                        Err(e) => Err(e),
                    },
                };
                match answer {
                    Ok((200, _, keep)) => {
                        lat.push(t.elapsed());
                        if !keep {
                            conn = None;
                        }
                    }
                    Ok((status, body, _)) => {
                        failures.push(format!("HTTP {status}: {}", String::from_utf8_lossy(&body)));
                        conn = None;
                    }
                    Err(e) => {
                        failures.push(e.to_string());
                        conn = None;
                    }
                }
            }
            (lat, failures)
        }));
    }
    let mut all = Vec::with_capacity(total);
    let mut failures = Vec::new();
    for t in tasks {
        let (l, f) = t.await?;
        all.extend(l);
        failures.extend(f);
    }
    let elapsed = started.elapsed().as_secs_f64();
    anyhow::ensure!(failures.is_empty(), "{name}: {} requests failed, first: {}", failures.len(), failures[0]);
    all.sort();
    Ok(Row { name: name.into(), conns, rps: all.len() as f64 / elapsed, p50_ms: pct_ms(&all, 0.5), p99_ms: pct_ms(&all, 0.99) })
}

pub(crate) type Request = hyper::Request<http_body_util::Full<bytes::Bytes>>;

fn get(endpoint: &str, path: &str) -> Request {
    hyper::Request::get(format!("http://{endpoint}{path}")).body(Default::default()).expect("valid request")
}

/// A prepared request as HTTP/1.1 bytes: request line, Host, its headers, Content-Length, body.
async fn wire_bytes(endpoint: &str, req: Request) -> anyhow::Result<Vec<u8>> {
    use http_body_util::BodyExt;
    let (parts, body) = req.into_parts();
    let body = body.collect().await?.to_bytes();
    let target = parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let mut out = Vec::with_capacity(256 + body.len());
    out.extend_from_slice(format!("{} {target} HTTP/1.1\r\nhost: {endpoint}\r\n", parts.method).as_bytes());
    for (k, v) in parts.headers.iter().filter(|(k, _)| *k != hyper::header::HOST && *k != hyper::header::CONTENT_LENGTH) {
        out.extend_from_slice(k.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(v.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(format!("content-length: {}\r\n\r\n", body.len()).as_bytes());
    out.extend_from_slice(&body);
    Ok(out)
}

/// One keep-alive HTTP/1.1 connection of the load generator: writes a prepared request, reads
/// the answer's status, headers and body (by Content-Length, or to the end of a closing
/// connection). Nothing else of HTTP is needed against these servers.
struct Wire {
    stream: tokio::net::TcpStream,
    buf: Vec<u8>,
}

impl Wire {
    async fn connect(endpoint: &str) -> std::io::Result<Wire> {
        let stream = tokio::net::TcpStream::connect(endpoint).await?;
        stream.set_nodelay(true)?;
        Ok(Wire { stream, buf: Vec::with_capacity(16 * 1024) })
    }

    /// The status, the body, and whether the connection stays open.
    async fn exchange(&mut self, req: &[u8]) -> std::io::Result<(u16, Vec<u8>, bool)> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let bad = |why: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, why.to_string());
        self.stream.write_all(req).await?;
        let head_end = loop {
            if let Some(i) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            if self.stream.read_buf(&mut self.buf).await? == 0 {
                return Err(bad("connection closed before the answer's headers"));
            }
        };
        let head = std::str::from_utf8(&self.buf[..head_end]).map_err(|_| bad("headers are not UTF-8"))?;
        let status: u16 = head.split(' ').nth(1).and_then(|s| s.parse().ok()).ok_or_else(|| bad("no status"))?;
        let header = |name: &str| head.split("\r\n").find_map(|l| l.split_once(':').filter(|(k, _)| k.trim().eq_ignore_ascii_case(name)).map(|(_, v)| v.trim().to_ascii_lowercase()));
        let close = header("connection").is_some_and(|v| v == "close") || head.starts_with("HTTP/1.0") && header("connection").is_none_or(|v| v != "keep-alive");
        if header("transfer-encoding").is_some() {
            return Err(bad("chunked answers are not read"));
        }
        match header("content-length").and_then(|v| v.parse::<usize>().ok()) {
            Some(n) => {
                while self.buf.len() < head_end + n {
                    if self.stream.read_buf(&mut self.buf).await? == 0 {
                        return Err(bad("connection closed inside the body"));
                    }
                }
                let body = self.buf[head_end..head_end + n].to_vec();
                self.buf.drain(..head_end + n);
                Ok((status, body, !close))
            }
            None => {
                while self.stream.read_buf(&mut self.buf).await? > 0 {}
                let body = self.buf[head_end..].to_vec();
                self.buf.clear();
                Ok((status, body, false))
            }
        }
    }
}

/// A bare SQLite insert per transaction with the store's durability (WAL, synchronous=FULL).
fn bare_sqlite(dir: &std::path::Path, rows: usize) -> anyhow::Result<Row> {
    let c = rusqlite::Connection::open(dir.join("bare.db"))?;
    c.pragma_update(None, "journal_mode", "WAL")?;
    c.pragma_update(None, "synchronous", "FULL")?;
    c.execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY, doc TEXT NOT NULL)")?;
    let started = Instant::now();
    let mut lat = Vec::new();
    for _ in 0..rows {
        let t = Instant::now();
        c.execute("INSERT INTO t (doc) VALUES (?)", [r#"{"ip_address":"11.0.0.1","name":"bench"}"#])?;
        lat.push(t.elapsed());
    }
    let elapsed = started.elapsed().as_secs_f64();
    lat.sort();
    Ok(Row { name: "bare SQLite insert (WAL, sync=FULL)".into(), conns: 1, rps: lat.len() as f64 / elapsed, p50_ms: pct_ms(&lat, 0.5), p99_ms: pct_ms(&lat, 0.99) })
}

/// A gateway with `n` connections, each to its own customer gateway (the `series`-th /16 of
/// addresses), created through the API.
async fn connections_gateway(client: &Client, vpc: &str, vsw: &str, n: usize, series: u64) -> anyhow::Result<String> {
    let r = "cn-hangzhou";
    let call = |action: &'static str, params: Vec<(&'static str, String)>| async move {
        // A write that finds the gateway busy with the previous one waits for it (not forever).
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let p: Vec<(&str, &str)> = params.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let a = client.call(action, &p).await?;
            match (a.status, a.code().as_str()) {
                (200, _) => return Ok::<serde_json::Value, anyhow::Error>(a.json()),
                (_, "VpnGateway.Configuring") if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(1)).await,
                _ => anyhow::bail!("{action} failed: {}", a.body),
            }
        }
    };
    let gw = call("CreateVpnGateway", vec![("RegionId", r.into()), ("VpcId", vpc.into()), ("VSwitchId", vsw.into()), ("Bandwidth", "5".into()), ("InstanceChargeType", "POSTPAY".into())]).await?;
    let gw = gw["VpnGatewayId"].as_str().unwrap_or_default().to_string();
    for i in 0..n as u64 {
        let cgw = call("CreateCustomerGateway", vec![("RegionId", r.into()), ("IpAddress", format!("12.{}.{}.{}", series, ((i + 1) >> 8) & 255, (i + 1) & 255)), ("Asn", "65000".into())]).await?;
        let cgw = cgw["CustomerGatewayId"].as_str().unwrap_or_default().to_string();
        call(
            "CreateVpnConnection",
            vec![
                ("RegionId", r.into()),
                ("VpnGatewayId", gw.clone()),
                ("CustomerGatewayId", cgw),
                ("LocalSubnet", "10.0.0.0/24".into()),
                ("RemoteSubnet", format!("172.{}.{}.0/24", 16 + (i >> 8), i & 255)),
                ("AutoConfigRoute", "false".into()),
            ],
        )
        .await?;
    }
    Ok(gw)
}

/// A VPC, a vSwitch and a gateway through the API: (gateway, VPC, vSwitch).
pub(crate) async fn gateway_in_vpc(client: &Client) -> anyhow::Result<(String, String, String)> {
    let r = "cn-hangzhou";
    let id = |v: serde_json::Value, k: &str| v[k].as_str().unwrap_or_default().to_string();
    let vpc = id(client.call("CreateVpc", &[("RegionId", r), ("CidrBlock", "10.0.0.0/8")]).await?.json(), "VpcId");
    let vsw = id(client.call("CreateVSwitch", &[("RegionId", r), ("VpcId", &vpc), ("ZoneId", "cn-hangzhou-h"), ("CidrBlock", "10.1.0.0/16")]).await?.json(), "VSwitchId");
    let gw = id(client.call("CreateVpnGateway", &[("RegionId", r), ("VpcId", &vpc), ("VSwitchId", &vsw), ("Bandwidth", "5"), ("InstanceChargeType", "POSTPAY")]).await?.json(), "VpnGatewayId");
    anyhow::ensure!(!gw.is_empty(), "bench setup failed to create a gateway");
    Ok((gw, vpc, vsw))
}

/// A gateway (in a VPC of its own) through the API.
pub(crate) async fn gateway(client: &Client) -> anyhow::Result<String> {
    Ok(gateway_in_vpc(client).await?.0)
}

fn ip_for(n: u64) -> String {
    let n = n + 1;
    format!("11.{}.{}.{}", (n >> 16) & 255, (n >> 8) & 255, n & 255)
}

async fn moto_rows(program: &str, n: usize) -> anyhow::Result<Vec<Row>> {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0")?;
        l.local_addr()?.port()
    };
    let mut child = tokio::process::Command::new(program)
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("start {program}"))?;
    let endpoint = format!("127.0.0.1:{port}");
    let probe = Client::new(endpoint.clone(), "", "", Scheme::RpcV1);
    let mut up = false;
    for _ in 0..100 {
        if probe.get("/moto-api/").await.is_ok() {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    anyhow::ensure!(up, "moto_server did not start");
    let ec2 = |body: String| -> Request {
        hyper::Request::post(format!("http://{endpoint}/"))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("authorization", "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20260101/us-east-1/ec2/aws4_request, SignedHeaders=host, Signature=0")
            .body(http_body_util::Full::new(bytes::Bytes::from(body)))
            .expect("valid request")
    };
    anyhow::ensure!(probe.send(ec2("Action=CreateVpnGateway&Type=ipsec.1&Version=2016-11-15".into())).await?.status == 200, "moto CreateVpnGateway failed");
    let mut rows = Vec::new();
    for conns in [1, 16] {
        let reqs = (0..n).map(|_| ec2("Action=DescribeVpnGateways&Version=2016-11-15".into())).collect();
        rows.push(measure("moto DescribeVpnGateways", conns, &endpoint, reqs).await?);
    }
    for conns in [1, 16] {
        let base = conns as u64 * 1_000_000;
        let reqs = (0..n as u64).map(|i| ec2(format!("Action=CreateCustomerGateway&Type=ipsec.1&PublicIp={}&BgpAsn=65000&Version=2016-11-15", ip_for(base + i)))).collect();
        rows.push(measure("moto CreateCustomerGateway", conns, &endpoint, reqs).await?);
    }
    let _ = child.kill().await;
    Ok(rows)
}

/// A benchmark server's configuration: data in `dir`, no transition delay, one account
/// (`BENCHAK`), no quotas in the way.
pub fn bench_config(dir: &std::path::Path) -> Config {
    let mut cfg = Config {
        listen: "127.0.0.1:0".into(),
        data_dir: dir.join("data"),
        transition_ms: 0,
        accounts: vec![AccountConfig { name: "bench".into(), access_key_id: "BENCHAK".into(), access_key_secret: "benchsecret".into(), readonly: false }],
        ..Config::default()
    };
    cfg.quotas.customer_gateways = u64::MAX;
    cfg.quotas.vpn_connections_per_gateway = u64::MAX;
    cfg.quotas.pbr_routes_per_gateway = u64::MAX;
    cfg.quotas.dbr_routes_per_gateway = u64::MAX;
    cfg.quotas.vpc_vpn_route_entries = u64::MAX;
    cfg
}

pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("vpngw-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let cfg = bench_config(&dir);
    let store = vpngw_server::server::open_store(&cfg).await?;
    let running = vpngw_server::server::start(&cfg, store).await?;
    let endpoint = running.addr.to_string();
    let client = Client::new(endpoint.clone(), "BENCHAK", "benchsecret", Scheme::Acs3);

    let r = "cn-hangzhou";
    let (gw, vpc, vsw) = gateway_in_vpc(&client).await?;

    let none = Tweak::default();
    let mut rows = Vec::new();
    for conns in [1, 16] {
        let reqs = (0..args.reads).map(|_| get(&endpoint, "/bare")).collect();
        rows.push(measure("bare GET /bare", conns, &endpoint, reqs).await?);
        let reqs = (0..args.reads).map(|_| client.signed("DescribeRegions", &[], &none)).collect::<anyhow::Result<_>>()?;
        rows.push(measure("signed DescribeRegions (no store)", conns, &endpoint, reqs).await?);
        let reqs = (0..args.reads).map(|_| client.signed("DescribeVpnGateway", &[("RegionId", r), ("VpnGatewayId", &gw)], &none)).collect::<anyhow::Result<_>>()?;
        rows.push(measure("signed DescribeVpnGateway", conns, &endpoint, reqs).await?);
        let base = conns as u64 * 1_000_000;
        let reqs = (0..args.writes as u64).map(|i| client.signed("CreateCustomerGateway", &[("RegionId", r), ("IpAddress", &ip_for(base + i))], &none)).collect::<anyhow::Result<_>>()?;
        rows.push(measure("signed CreateCustomerGateway", conns, &endpoint, reqs).await?);
    }
    if args.connections > 0 {
        let small = connections_gateway(&client, &vpc, &vsw, 10, 0).await?;
        let full_page = connections_gateway(&client, &vpc, &vsw, 50, 2).await?;
        let started = Instant::now();
        let large = connections_gateway(&client, &vpc, &vsw, args.connections, 1).await?;
        println!("(created {} connections through the API in {:.1} s)", args.connections, started.elapsed().as_secs_f64());
        for (n, gw) in [(10, small), (50, full_page), (args.connections, large)] {
            let name = format!("DescribeVpnConnections PageSize 50, {n} on the gateway");
            let reqs = (0..args.reads / 10).map(|_| client.signed("DescribeVpnConnections", &[("RegionId", r), ("VpnGatewayId", &gw), ("PageSize", "50")], &none)).collect::<anyhow::Result<_>>()?;
            rows.push(measure(&name, 1, &endpoint, reqs).await?);
        }
    }
    rows.push(
        tokio::task::spawn_blocking({
            let dir = dir.clone();
            let n = args.writes;
            move || bare_sqlite(&dir, n)
        })
        .await??,
    );
    let moto = match moto_rows(&args.moto, (args.writes / 4).max(100)).await {
        Ok(r) => r,
        Err(e) => {
            println!("(moto comparison skipped: {e:#})");
            Vec::new()
        }
    };
    rows.extend(moto);
    let _ = running.shutdown.send(true);
    let _ = running.done.await;
    let _ = std::fs::remove_dir_all(&dir);

    println!("| scenario | conns | req/s | p50 ms | p99 ms |");
    println!("|---|---:|---:|---:|---:|");
    for r in &rows {
        println!("| {} | {} | {:.0} | {:.3} | {:.3} |", r.name, r.conns, r.rps, r.p50_ms, r.p99_ms);
    }
    let find = |n: &str, c: usize| rows.iter().find(|r| r.name.starts_with(n) && r.conns == c);
    println!();
    println!("| ratio | 1 conn | 16 conns | target |");
    println!("|---|---:|---:|---|");
    let ratio = |a: &str, b: &str, f: fn(&Row) -> f64| -> Vec<String> {
        [1, 16]
            .iter()
            .map(|&c| match (find(a, c), find(b, c)) {
                (Some(x), Some(y)) if f(y) > 0.0 => format!("{:.2}", f(x) / f(y)),
                _ => "-".into(),
            })
            .collect()
    };
    let r1 = ratio("signed DescribeVpnGateway", "bare GET", |r| r.rps);
    println!("| signed read / bare, throughput | {} | {} | ≥ 0.6 |", r1[0], r1[1]);
    let r2 = ratio("signed DescribeVpnGateway", "bare GET", |r| r.p50_ms);
    println!("| signed read / bare, p50 latency | {} | {} | ≤ 1.5 at 1 conn |", r2[0], r2[1]);
    let sqlite = rows.iter().find(|r| r.name.starts_with("bare SQLite")).map(|r| r.rps).unwrap_or(0.0);
    let w: Vec<String> = [1, 16].iter().map(|&c| find("signed CreateCustomerGateway", c).map(|r| format!("{:.2}", r.rps / sqlite)).unwrap_or("-".into())).collect();
    println!("| signed write / bare SQLite insert, throughput | {} | {} | ≥ 0.5 |", w[0], w[1]);
    let m1 = ratio("signed DescribeVpnGateway", "moto DescribeVpnGateways", |r| r.rps);
    println!("| vpngw / moto, DescribeVpnGateway(s) throughput | {} | {} | ≥ 100 |", m1[0], m1[1]);
    let m2 = ratio("signed CreateCustomerGateway", "moto CreateCustomerGateway", |r| r.rps);
    println!("| vpngw / moto, CreateCustomerGateway throughput | {} | {} | ≥ 100 |", m2[0], m2[1]);
    let lists: Vec<&Row> = rows.iter().filter(|r| r.name.starts_with("DescribeVpnConnections")).collect();
    if let [small, full, large] = lists.as_slice() {
        println!("| DescribeVpnConnections p99, {} vs 10 connections (pages of 50 vs 10 items) | {:.2} | - | ≤ 1.5 |", args.connections, large.p99_ms / small.p99_ms);
        println!("| DescribeVpnConnections p99, {} vs 50 connections (full pages both) | {:.2} | - | ≤ 1.5 |", args.connections, large.p99_ms / full.p99_ms);
    }
    if let Some(url) = args.postgres.as_deref().filter(|u| !u.is_empty()) {
        crate::postgres::run(url, args.reads, args.writes).await?;
    }
    Ok(())
}
