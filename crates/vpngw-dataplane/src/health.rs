//! Health checks: real probes through the tunnel.
//!
//! One task per connection with an enabled HealthCheckConfig sends an ICMP echo from `sip` to
//! `dip` every `interval` seconds, in the namespace that holds the gateway's tunnels. A reply
//! makes the check `success`; `retry` consecutive misses make it `failed`. Verdicts are written
//! through the [`ObservationSink`] when they change.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use vpngw_model::plane::Observation;
use vpngw_plane::ObservationSink;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    /// The namespace to probe from (`None`: vpngw's own).
    pub netns: Option<String>,
    pub sip: String,
    pub dip: String,
    pub interval: u32,
    pub retry: u32,
}

#[derive(Default)]
pub struct HealthChecks {
    running: HashMap<String, (Probe, JoinHandle<()>)>,
}

impl HealthChecks {
    /// Runs exactly these probes (by connection id): starts new ones, restarts changed ones,
    /// stops the rest.
    /// `wake` is told when a verdict changes (routes may move).
    pub fn sync(&mut self, sink: &Arc<dyn ObservationSink>, want: HashMap<String, Probe>, wake: &Arc<tokio::sync::Notify>) {
        self.running.retain(|id, (probe, task)| {
            let keep = want.get(id) == Some(probe);
            if !keep {
                task.abort();
            }
            keep
        });
        for (id, probe) in want {
            if let std::collections::hash_map::Entry::Vacant(slot) = self.running.entry(id) {
                let task = tokio::spawn(run(sink.clone(), slot.key().clone(), probe.clone(), wake.clone()));
                slot.insert((probe, task));
            }
        }
    }

    pub fn stop_all(&mut self) {
        for (_, (_, t)) in self.running.drain() {
            t.abort();
        }
    }
}

/// `ping -n -q` in `netns` (or vpngw's own namespace), from `sip` to `dip`, with `args`.
fn ping_command(netns: Option<&str>, sip: &str, dip: &str, args: &[&str]) -> tokio::process::Command {
    let mut cmd = match netns {
        Some(ns) => {
            let mut c = tokio::process::Command::new("ip");
            c.args(["netns", "exec", ns, "ping"]);
            c
        }
        None => tokio::process::Command::new("ping"),
    };
    cmd.args(["-n", "-q"]).args(args).args(["-I", sip, dip]).stderr(std::process::Stdio::null());
    cmd
}

/// One ICMP echo from `sip` to `dip`, waiting at most `wait`.
pub async fn ping(netns: Option<&str>, sip: &str, dip: &str, wait: Duration) -> bool {
    let secs = wait.as_secs().max(1).to_string();
    let mut cmd = ping_command(netns, sip, dip, &["-c", "1", "-W", &secs]);
    matches!(cmd.stdout(std::process::Stdio::null()).status().await, Ok(s) if s.success())
}

/// `count` echoes from `sip` to `dip`, 0.2 s apart, each waiting at most a second: the share
/// lost (percent) and the mean round trip of those answered (ms).
pub async fn ping_stats(netns: Option<&str>, sip: &str, dip: &str, count: u32) -> (f64, Option<f64>) {
    let out = ping_command(netns, sip, dip, &["-c", &count.to_string(), "-i", "0.2", "-W", "1"]).output().await;
    parse_ping(&out.map(|o| String::from_utf8_lossy(&o.stdout).into_owned()).unwrap_or_default())
}

/// The loss (percent) and mean round trip (ms) of `ping -q`'s summary.
fn parse_ping(out: &str) -> (f64, Option<f64>) {
    let loss = out.split_once("% packet loss").and_then(|(before, _)| before.rsplit([' ', ',']).next()).and_then(|n| n.parse::<f64>().ok()).unwrap_or(100.0);
    let rtt = out.split_once(" = ").and_then(|(_, v)| v.split('/').nth(1)).and_then(|n| n.parse::<f64>().ok());
    (loss, rtt)
}

async fn run(sink: Arc<dyn ObservationSink>, conn_id: String, p: Probe, wake: Arc<tokio::sync::Notify>) {
    let interval = Duration::from_secs(p.interval.max(1) as u64);
    let mut misses = 0u32;
    let mut verdict = String::new();
    loop {
        let started = tokio::time::Instant::now();
        let ok = ping(p.netns.as_deref(), &p.sip, &p.dip, interval).await;
        misses = if ok { 0 } else { misses + 1 };
        let now = if ok {
            "success"
        } else if misses >= p.retry.max(1) {
            "failed"
        } else {
            verdict.as_str()
        }
        .to_string();
        if now != verdict && !now.is_empty() {
            tracing::info!(connection = %conn_id, verdict = %now, sip = %p.sip, dip = %p.dip, "Health check changed.");
            let o = Observation { health: Some(now.clone()), ..Default::default() };
            match sink.connection(&conn_id, &o).await {
                Ok(_) => wake.notify_one(),
                Err(e) => tracing::warn!(connection = %conn_id, error = %e, "Failed to record a health verdict."),
            }
            verdict = now;
        }
        tokio::time::sleep_until(started + interval).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ping_summaries_give_loss_and_mean_round_trip() {
        let ok = "--- 10.1.0.1 ping statistics ---\n4 packets transmitted, 4 received, 0% packet loss, time 603ms\nrtt min/avg/max/mdev = 0.045/0.061/0.078/0.012 ms\n";
        assert_eq!(parse_ping(ok), (0.0, Some(0.061)));
        let half = "4 packets transmitted, 2 received, 50% packet loss, time 3003ms\nrtt min/avg/max/mdev = 1.5/2.5/3.5/1 ms\n";
        assert_eq!(parse_ping(half), (50.0, Some(2.5)));
        assert_eq!(parse_ping("4 packets transmitted, 0 received, 100% packet loss, time 3060ms\n"), (100.0, None));
        assert_eq!(parse_ping(""), (100.0, None), "no answer at all counts as lost");
    }
}
