//! Health checks: real probes through the tunnel.
//!
//! One task per connection with an enabled HealthCheckConfig sends an ICMP echo from `sip` to
//! `dip` every `interval` seconds, in the namespace that holds the gateway's tunnels. A reply
//! makes the check `success`; `retry` consecutive misses make it `failed`. Verdicts are written
//! through [`Service::observe`] when they change.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use vpngw_service::dataplane::Observation;
use vpngw_service::Service;

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
    pub fn sync(&mut self, svc: &Arc<Service>, want: HashMap<String, Probe>, wake: &Arc<tokio::sync::Notify>) {
        self.running.retain(|id, (probe, task)| {
            let keep = want.get(id) == Some(probe);
            if !keep {
                task.abort();
            }
            keep
        });
        for (id, probe) in want {
            if let std::collections::hash_map::Entry::Vacant(slot) = self.running.entry(id) {
                let task = tokio::spawn(run(svc.clone(), slot.key().clone(), probe.clone(), wake.clone()));
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

/// One ICMP echo from `sip` to `dip`, waiting at most `wait`.
pub async fn ping(netns: Option<&str>, sip: &str, dip: &str, wait: Duration) -> bool {
    let secs = wait.as_secs().max(1).to_string();
    let mut cmd = match netns {
        Some(ns) => {
            let mut c = tokio::process::Command::new("ip");
            c.args(["netns", "exec", ns, "ping"]);
            c
        }
        None => tokio::process::Command::new("ping"),
    };
    cmd.args(["-n", "-q", "-c", "1", "-W", &secs, "-I", sip, dip]).stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null());
    matches!(cmd.status().await, Ok(s) if s.success())
}

async fn run(svc: Arc<Service>, conn_id: String, p: Probe, wake: Arc<tokio::sync::Notify>) {
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
            match svc.observe(&conn_id, &o).await {
                Ok(_) => wake.notify_one(),
                Err(e) => tracing::warn!(connection = %conn_id, error = %e, "Failed to record a health verdict."),
            }
            verdict = now;
        }
        tokio::time::sleep_until(started + interval).await;
    }
}
