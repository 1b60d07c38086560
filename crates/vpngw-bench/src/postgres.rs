//! The PostgreSQL part of `vpngw bench` (`--postgres URL`): signed reads and writes against
//! `vpngw serve` processes on PostgreSQL, one server and two, beside one on SQLite, and beside
//! the bare PostgreSQL work each request needs, done through the store's own pool: for a read,
//! a point select and the nonce insert of replay protection; for a write, an insert at the same
//! durability (`synchronous_commit = on`). The servers run as processes of their own, so that
//! the CPU time each side spends per request can be read from `/proc` (the load generator's
//! is not counted); PostgreSQL's is every `postgres` process's.

use std::time::{Duration, Instant};

use anyhow::Context;
use vpngw_server::client::{Client, Scheme, Tweak};

use crate::api::{measure_on, pct_ms, Row};

/// A `vpngw serve` process of the benchmark.
struct Served {
    child: tokio::process::Child,
    endpoint: String,
}

impl Served {
    fn pid(&self) -> u32 {
        self.child.id().unwrap_or(0)
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Starts `vpngw serve` on `store` (`""`: SQLite in its data directory) with the benchmark's
/// account and no quota in the way.
async fn serve(dir: &std::path::Path, name: &str, store: &str, key: &std::path::Path) -> anyhow::Result<Served> {
    let port = free_port()?;
    let data = dir.join(name);
    std::fs::create_dir_all(&data)?;
    let store_line = if store.is_empty() { String::new() } else { format!("store = \"{store}\"\n") };
    let config = format!(
        "listen = \"127.0.0.1:{port}\"\ndata_dir = \"{}\"\n{store_line}master_key_file = \"{}\"\ntransition_ms = 0\n\
         [[accounts]]\nname = \"bench\"\naccess_key_id = \"BENCHAK\"\naccess_key_secret = \"benchsecret\"\n\
         [quotas]\ncustomer_gateways = 1000000000\nvpn_gateways = 1000000\nvpcs = 1000000\n",
        data.display(),
        key.display()
    );
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, config)?;
    let log = std::fs::File::create(dir.join(format!("{name}.log")))?;
    let child = tokio::process::Command::new(std::env::current_exe()?)
        .args(["serve", "--config"])
        .arg(&path)
        .env("VPNGW_LOG", "warn")
        .stdout(log.try_clone()?)
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .context("start vpngw serve")?;
    let endpoint = format!("127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while tokio::net::TcpStream::connect(&endpoint).await.is_err() {
        anyhow::ensure!(Instant::now() < deadline, "{name} did not start (see {}/{name}.log)", dir.display());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(Served { child, endpoint })
}

/// User plus system CPU time of a process so far.
fn cpu_of(pid: u32) -> Duration {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { return Duration::ZERO };
    // The fields after the command (which may hold spaces) close with ')'.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<u64> = rest.split_whitespace().filter_map(|x| x.parse().ok()).collect();
    // utime and stime are the 14th and 15th fields of the line: 12th and 13th after ')'
    // (the state letter does not parse as a number and drops out).
    let ticks = f.get(10).copied().unwrap_or(0) + f.get(11).copied().unwrap_or(0);
    Duration::from_secs_f64(ticks as f64 / clock_ticks())
}

fn clock_ticks() -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| std::process::Command::new("getconf").arg("CLK_TCK").output().ok().and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok()).unwrap_or(100.0))
}

/// CPU time of every `postgres` process of the machine.
fn postgres_cpu() -> Duration {
    let mut total = Duration::ZERO;
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else { continue };
        if std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "postgres") {
            total += cpu_of(pid);
        }
    }
    total
}

/// A row with the CPU each side spent on it, per request.
struct Measured {
    row: Row,
    store: &'static str,
    servers: usize,
    vpngw_us: f64,
    pg_us: f64,
}

async fn timed<F: std::future::Future<Output = anyhow::Result<Row>>>(pids: &[u32], n: usize, f: F) -> anyhow::Result<(Row, f64, f64)> {
    let cpu = |pids: &[u32]| pids.iter().map(|p| cpu_of(*p)).sum::<Duration>();
    let (v0, p0) = (cpu(pids), postgres_cpu());
    let row = f.await?;
    let (v1, p1) = (cpu(pids), postgres_cpu());
    let per = |d: Duration| d.as_secs_f64() * 1e6 / n.max(1) as f64;
    Ok((row, per(v1.saturating_sub(v0)), per(p1.saturating_sub(p0))))
}

/// `n` operations from `conns` tasks, each on a connection of `pool` it holds throughout:
/// `setup` once on it, then `op(i)` per operation.
async fn bare<S, O>(name: &str, conns: usize, n: usize, pool: &deadpool_postgres::Pool, setup: &'static str, op: O) -> anyhow::Result<Row>
where
    O: Fn(deadpool_postgres::Object, usize) -> S + Send + Sync + Clone + 'static,
    S: std::future::Future<Output = (deadpool_postgres::Object, anyhow::Result<()>)> + Send,
{
    let next = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..conns {
        let (pool, next, op) = (pool.clone(), next.clone(), op.clone());
        tasks.push(tokio::spawn(async move {
            let mut c = pool.get().await?;
            if !setup.is_empty() {
                c.batch_execute(setup).await?;
            }
            let mut lat = Vec::new();
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= n {
                    break;
                }
                let t = Instant::now();
                let (back, r) = op(c, i).await;
                c = back;
                r?;
                lat.push(t.elapsed());
            }
            // Back to the pool as the store configures its connections.
            c.batch_execute("SET synchronous_commit = off").await?;
            Ok::<_, anyhow::Error>(lat)
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await??);
    }
    let elapsed = started.elapsed().as_secs_f64();
    all.sort();
    Ok(Row { name: name.into(), conns, rps: all.len() as f64 / elapsed, p50_ms: pct_ms(&all, 0.5), p99_ms: pct_ms(&all, 0.99) })
}

pub async fn run(url: &str, reads: usize, writes: usize) -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("vpngw-bench-pg-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let db_name = format!("vpngw_bench_{}", std::process::id());
    let db = vpngw_store::postgres::fresh_database(url, &db_name).await?;
    let key = dir.join("master.key");
    let result = async {
        let sqlite = serve(&dir, "sqlite", "", &key).await?;
        let pg1 = serve(&dir, "pg1", &db, &key).await?;
        let pg2 = serve(&dir, "pg2", &db, &key).await?;
        let none = Tweak::default();
        let r = "cn-hangzhou";
        let mut out: Vec<Measured> = Vec::new();
        let setups: [(&'static str, Vec<&Served>); 3] = [("SQLite", vec![&sqlite]), ("PostgreSQL", vec![&pg1]), ("PostgreSQL", vec![&pg1, &pg2])];
        let mut series = 0u64;
        for (store, servers) in setups {
            let endpoints: Vec<String> = servers.iter().map(|s| s.endpoint.clone()).collect();
            let pids: Vec<u32> = servers.iter().map(|s| s.pid()).collect();
            // RPC v1 signs no Host header, so one signed request serves every server.
            let client = Client::new(endpoints[0].clone(), "BENCHAK", "benchsecret", Scheme::RpcV1);
            let gw = crate::api::gateway(&client).await?;
            for conns in [1, 16] {
                let reqs = (0..reads).map(|_| client.signed("DescribeVpnGateway", &[("RegionId", r), ("VpnGatewayId", &gw)], &none)).collect::<anyhow::Result<_>>()?;
                let (row, vpngw_us, pg_us) = timed(&pids, reads, measure_on("signed DescribeVpnGateway", conns, &endpoints, reqs)).await?;
                out.push(Measured { row, store, servers: servers.len(), vpngw_us, pg_us });
                series += 1;
                let reqs = (0..writes as u64)
                    .map(|i| client.signed("CreateCustomerGateway", &[("RegionId", r), ("IpAddress", &format!("11.{}.{}.{}", series, (i >> 8) & 255, i & 255))], &none))
                    .collect::<anyhow::Result<_>>()?;
                let (row, vpngw_us, pg_us) = timed(&pids, writes, measure_on("signed CreateCustomerGateway", conns, &endpoints, reqs)).await?;
                out.push(Measured { row, store, servers: servers.len(), vpngw_us, pg_us });
            }
        }
        // The bare work, through the store's own pool.
        let store = vpngw_store::postgres::PgStore::connect(&db).await?;
        let pool = store.pool();
        {
            let c = pool.get().await?;
            c.batch_execute("CREATE TABLE bench_rows (id BIGSERIAL PRIMARY KEY, doc JSONB NOT NULL)").await?;
        }
        let gw_id = {
            let c = pool.get().await?;
            let row = c.query_one("SELECT id FROM resources WHERE kind = 'vpn_gateway' LIMIT 1", &[]).await?;
            row.get::<_, String>(0)
        };
        let me = std::process::id();
        for conns in [1, 16] {
            let gw = gw_id.clone();
            let read = move |c: deadpool_postgres::Object, i: usize| {
                let gw = gw.clone();
                async move {
                    let r = async {
                        let sel = c.prepare_cached("SELECT doc FROM resources WHERE id = $1 AND kind = $2").await?;
                        c.query_opt(&sel, &[&gw, &"vpn_gateway"]).await?;
                        let ins = c.prepare_cached("INSERT INTO nonces (key, seen_s) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET seen_s = EXCLUDED.seen_s WHERE nonces.seen_s < $3").await?;
                        c.execute(&ins, &[&format!("BARE\n{conns}-{i}"), &0i64, &-1i64]).await?;
                        Ok::<(), anyhow::Error>(())
                    }
                    .await;
                    (c, r)
                }
            };
            let (row, bench_us, pg_us) = timed(&[me], reads, bare("bare PostgreSQL read (point select + nonce insert)", conns, reads, &pool, "", read)).await?;
            out.push(Measured { row, store: "PostgreSQL", servers: 0, vpngw_us: bench_us, pg_us });
            let write = move |c: deadpool_postgres::Object, i: usize| async move {
                let r = async {
                    let ins = c.prepare_cached("INSERT INTO bench_rows (doc) VALUES ($1)").await?;
                    c.execute(&ins, &[&serde_json::json!({"ip_address": format!("12.0.{}.{}", i >> 8, i & 255), "name": "bare"})]).await?;
                    Ok::<(), anyhow::Error>(())
                }
                .await;
                (c, r)
            };
            let (row, bench_us, pg_us) = timed(&[me], writes, bare("bare PostgreSQL insert (synchronous_commit on)", conns, writes, &pool, "SET synchronous_commit = on", write)).await?;
            out.push(Measured { row, store: "PostgreSQL", servers: 0, vpngw_us: bench_us, pg_us });
        }
        drop(store);
        drop((sqlite, pg1, pg2));
        Ok::<_, anyhow::Error>(out)
    }
    .await;
    let _ = vpngw_store::postgres::drop_database(url, &db_name).await;
    let _ = std::fs::remove_dir_all(&dir);
    let out = result?;

    println!();
    println!("| scenario | store | servers | conns | req/s | p50 ms | p99 ms | vpngw CPU µs/req | PostgreSQL CPU µs/req |");
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|");
    for m in &out {
        let servers = if m.servers == 0 { "-".to_string() } else { m.servers.to_string() };
        let vpngw = if m.servers == 0 { format!("({:.0} bench)", m.vpngw_us) } else { format!("{:.0}", m.vpngw_us) };
        let pg = if m.store == "SQLite" { "-".to_string() } else { format!("{:.0}", m.pg_us) };
        println!("| {} | {} | {servers} | {} | {:.0} | {:.3} | {:.3} | {vpngw} | {pg} |", m.row.name, m.store, m.row.conns, m.row.rps, m.row.p50_ms, m.row.p99_ms);
    }
    let find = |name: &str, store: &str, servers: usize, conns: usize| {
        out.iter().find(|m| m.row.name.starts_with(name) && m.store == store && m.servers == servers && m.row.conns == conns).map(|m| m.row.rps)
    };
    println!();
    println!("| ratio | servers | 1 conn | 16 conns | target |");
    println!("|---|---:|---:|---:|---|");
    for servers in [1, 2] {
        for (signed, bare_name, what) in [
            ("signed DescribeVpnGateway", "bare PostgreSQL read", "signed read / bare PostgreSQL read"),
            ("signed CreateCustomerGateway", "bare PostgreSQL insert", "signed write / bare PostgreSQL insert"),
        ] {
            let cell = |conns| match (find(signed, "PostgreSQL", servers, conns), find(bare_name, "PostgreSQL", 0, conns)) {
                (Some(a), Some(b)) if b > 0.0 => format!("{:.2}", a / b),
                _ => "-".into(),
            };
            println!("| {what}, throughput | {servers} | {} | {} | ≥ 0.5 |", cell(1), cell(16));
        }
    }
    Ok(())
}
