//! The process's Prometheus metrics (through `prometheus-client`, the Prometheus project's
//! Rust client): one registry per process, every series named `vpngw_…`, served by
//! `vpngw-server` on the operator's listener (`metrics_listen`), never on the API port.
//!
//! Counters and histograms are updated where things happen (a request answered, a reconcile
//! pass, a batch committed); gauges of what exists (resources, tunnels, BGP sessions) are set
//! from the store when scraped ([`Metrics::set_census`]). Every label's values are bounded:
//! actions by the action list (an unknown name is `unknown`), codes by the error table, accounts
//! by the accounts that exist, kinds, states and statuses by the model's enums. docs/metrics.md
//! lists the series.

use std::sync::OnceLock;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub action: String,
    pub account: String,
    pub code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ActionLabel {
    pub action: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindState {
    pub kind: String,
    pub state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StatusLabel {
    pub status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TunnelLabels {
    /// The tunnel: a single-tunnel connection's id, or a dual-tunnel connection's tunnel id.
    pub tunnel: String,
    pub connection: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TunnelDirection {
    pub tunnel: String,
    pub connection: String,
    pub direction: String,
}

/// What charon says of a tunnel's SAs, as this process's data plane read it last.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TunnelSa {
    pub connection: String,
    pub gateway: String,
    pub status: String,
    /// Seconds since its IKE_SA was established (0: none is).
    pub established_secs: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub packets_in: u64,
    pub packets_out: u64,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

fn latency() -> Histogram {
    // 0.1 ms to about 3.3 s.
    Histogram::new(exponential_buckets(0.0001, 2.0, 16))
}

/// Every series of the process.
pub struct Metrics {
    registry: Registry,
    pub requests: Family<RequestLabels, Counter>,
    pub request_seconds: HistogramFamily<ActionLabel>,
    pub resources: Family<KindState, Gauge>,
    pub tunnels: Family<StatusLabel, Gauge>,
    pub health_checks: Family<StatusLabel, Gauge>,
    pub bgp_sessions: Family<StatusLabel, Gauge>,
    pub bgp_prefixes: Gauge,
    pub ipsec_clients_online: Gauge,
    pub reconcile_passes: Counter,
    pub reconcile_errors: Counter,
    pub reconcile_seconds: Histogram,
    pub commits: Counter,
    pub commit_seconds: Histogram,
    pub commit_batch: Histogram,
    pub tunnel_bytes: Family<TunnelDirection, Gauge>,
    pub tunnel_packets: Family<TunnelDirection, Gauge>,
    pub tunnel_sa_age: Family<TunnelLabels, Gauge>,
    /// The last reading of each tunnel this process runs (for `/status` and to drop the series
    /// of tunnels that are gone).
    tunnel_sas: std::sync::Mutex<std::collections::BTreeMap<String, TunnelSa>>,
}

impl Metrics {
    fn new() -> Metrics {
        let mut registry = Registry::with_prefix("vpngw");
        let m = Metrics {
            requests: Family::default(),
            request_seconds: Family::new_with_constructor(latency),
            resources: Family::default(),
            tunnels: Family::default(),
            health_checks: Family::default(),
            bgp_sessions: Family::default(),
            bgp_prefixes: Gauge::default(),
            ipsec_clients_online: Gauge::default(),
            reconcile_passes: Counter::default(),
            reconcile_errors: Counter::default(),
            reconcile_seconds: latency(),
            commits: Counter::default(),
            commit_seconds: latency(),
            commit_batch: Histogram::new(exponential_buckets(1.0, 2.0, 10)),
            tunnel_bytes: Family::default(),
            tunnel_packets: Family::default(),
            tunnel_sa_age: Family::default(),
            tunnel_sas: Default::default(),
            registry: Registry::default(),
        };
        registry.register("requests", "API requests answered, by action, account and error code (OK when none)", m.requests.clone());
        registry.register("request_duration_seconds", "Time to answer an API request, by action", m.request_seconds.clone());
        registry.register("resources", "Resources that exist, by kind and lifecycle state", m.resources.clone());
        registry.register("tunnels", "IPsec tunnels (a single-tunnel connection, or each tunnel of a dual one) by negotiation status", m.tunnels.clone());
        registry.register("health_checks", "Enabled connection health checks by their last result (success, failed)", m.health_checks.clone());
        registry.register("bgp_sessions", "BGP sessions over the tunnels by state (established, down)", m.bgp_sessions.clone());
        registry.register("bgp_prefixes", "Prefixes the BGP sessions learned", m.bgp_prefixes.clone());
        registry.register("ipsec_server_clients_online", "Clients online on the IPsec servers", m.ipsec_clients_online.clone());
        registry.register("reconcile_passes", "Reconcile passes of this process's data plane", m.reconcile_passes.clone());
        registry.register("reconcile_errors", "Reconcile passes that failed", m.reconcile_errors.clone());
        registry.register("reconcile_pass_duration_seconds", "Time a reconcile pass took", m.reconcile_seconds.clone());
        registry.register("store_commits", "Batches committed to the store", m.commits.clone());
        registry.register("store_commit_duration_seconds", "Time from a batch's first write to its durable commit", m.commit_seconds.clone());
        registry.register("store_commit_batch_size", "Writes per committed batch (group commit)", m.commit_batch.clone());
        registry.register("tunnel_sa_bytes", "Bytes the tunnel's installed CHILD_SAs carried, by direction (in, out), as charon counts them: a rekey starts them again", m.tunnel_bytes.clone());
        registry.register("tunnel_sa_packets", "Packets the tunnel's installed CHILD_SAs carried, by direction", m.tunnel_packets.clone());
        registry.register("tunnel_sa_established_seconds", "Age of the tunnel's IKE_SA (0: none is established)", m.tunnel_sa_age.clone());
        Metrics { registry, ..m }
    }

    /// The Prometheus text exposition (OpenMetrics) of every series.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    /// Counts one answered request.
    pub fn request(&self, action: &str, account: Option<i64>, code: &str, seconds: f64) {
        let account = account.map(|a| a.to_string()).unwrap_or_default();
        self.requests.get_or_create(&RequestLabels { action: action.to_string(), account, code: code.to_string() }).inc();
        self.request_seconds.get_or_create(&ActionLabel { action: action.to_string() }).observe(seconds);
    }

    /// Records what charon said of one tunnel this process runs.
    pub fn tunnel_sa(&self, tunnel: &str, sa: TunnelSa) {
        let dir = |d: &str| TunnelDirection { tunnel: tunnel.to_string(), connection: sa.connection.clone(), direction: d.to_string() };
        self.tunnel_bytes.get_or_create(&dir("in")).set(sa.bytes_in as i64);
        self.tunnel_bytes.get_or_create(&dir("out")).set(sa.bytes_out as i64);
        self.tunnel_packets.get_or_create(&dir("in")).set(sa.packets_in as i64);
        self.tunnel_packets.get_or_create(&dir("out")).set(sa.packets_out as i64);
        self.tunnel_sa_age.get_or_create(&TunnelLabels { tunnel: tunnel.to_string(), connection: sa.connection.clone() }).set(sa.established_secs as i64);
        self.tunnel_sas.lock().unwrap_or_else(|e| e.into_inner()).insert(tunnel.to_string(), sa);
    }

    /// Drops the series of tunnels this process no longer runs.
    pub fn retain_tunnels(&self, keep: &std::collections::HashSet<String>) {
        let mut sas = self.tunnel_sas.lock().unwrap_or_else(|e| e.into_inner());
        let gone: Vec<(String, TunnelSa)> = sas.iter().filter(|(k, _)| !keep.contains(*k)).map(|(k, v)| (k.clone(), v.clone())).collect();
        for (tunnel, sa) in gone {
            for d in ["in", "out"] {
                let labels = TunnelDirection { tunnel: tunnel.clone(), connection: sa.connection.clone(), direction: d.into() };
                self.tunnel_bytes.remove(&labels);
                self.tunnel_packets.remove(&labels);
            }
            self.tunnel_sa_age.remove(&TunnelLabels { tunnel: tunnel.clone(), connection: sa.connection.clone() });
            sas.remove(&tunnel);
        }
    }

    /// The last reading of every tunnel this process runs, by tunnel.
    pub fn tunnel_sas(&self) -> std::collections::BTreeMap<String, TunnelSa> {
        self.tunnel_sas.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Sets the gauges of what exists from one reading of the store.
    pub fn set_census(&self, c: &Census) {
        fn set<L: Clone + std::hash::Hash + Eq + EncodeLabelSet + std::fmt::Debug>(family: &Family<L, Gauge>, rows: impl Iterator<Item = (L, i64)>) {
            family.clear();
            for (labels, n) in rows {
                family.get_or_create(&labels).set(n);
            }
        }
        set(&self.resources, c.resources.iter().map(|(k, s, n)| (KindState { kind: k.clone(), state: s.clone() }, *n)));
        set(&self.tunnels, c.tunnels.iter().map(|(s, n)| (StatusLabel { status: s.clone() }, *n)));
        set(&self.health_checks, c.health.iter().map(|(s, n)| (StatusLabel { status: s.clone() }, *n)));
        set(&self.bgp_sessions, c.bgp.iter().map(|(s, n)| (StatusLabel { status: s.clone() }, *n)));
        self.bgp_prefixes.set(c.bgp_prefixes);
        self.ipsec_clients_online.set(c.ipsec_clients_online);
    }
}

/// What exists, read from the store at a scrape.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Census {
    /// (kind, state, how many).
    pub resources: Vec<(String, String, i64)>,
    /// (negotiation status, how many tunnels).
    pub tunnels: Vec<(String, i64)>,
    pub health: Vec<(String, i64)>,
    pub bgp: Vec<(String, i64)>,
    pub bgp_prefixes: i64,
    pub ipsec_clients_online: i64,
}

/// The process's metrics.
pub fn get() -> &'static Metrics {
    static M: OnceLock<Metrics> = OnceLock::new();
    M.get_or_init(Metrics::new)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_are_prefixed_and_follow_what_happens() {
        let m = Metrics::new();
        m.request("DescribeVpnGateway", Some(7), "OK", 0.002);
        m.set_census(&Census { tunnels: vec![("ipsec_sa_established".into(), 2)], ..Default::default() });
        let text = m.encode();
        assert!(text.contains(r#"vpngw_requests_total{action="DescribeVpnGateway",account="7",code="OK"} 1"#), "{text}");
        assert!(text.contains(r#"vpngw_tunnels{status="ipsec_sa_established"} 2"#), "{text}");
        assert!(text.contains("vpngw_request_duration_seconds_bucket"), "{text}");
        // A census replaces the last: a status no tunnel has any more is gone.
        m.set_census(&Census { tunnels: vec![("ike_sa_not_established".into(), 1)], ..Default::default() });
        assert!(!m.encode().contains("ipsec_sa_established"));
    }
}
