//! BGP speakers: one BIRD 2 per gateway side that has BGP-enabled tunnels, started and
//! supervised like the charons and OpenVPN servers (own process group, pid file, adopted after a
//! restart of vpngw), configured by file and reconfigured in place over its control socket, and
//! read over the same socket.
//!
//! Why BIRD: one small process per speaker with its own control socket and configuration file
//! (several run side by side, one per namespace, with no shared state), TCP MD5, and `configure`
//! that restarts only the sessions whose settings changed. Its state comes from its control
//! socket's protocol (numbered reply lines, `1002` rows of `show protocols`), which is the
//! structured form BIRD has: it has no JSON output.
//!
//! A session's transport is its tunnel: LocalBgpIp is an address of the gateway side (in the lab,
//! on the namespace's loopback) and the tunnel's CHILD_SA from LocalBgpIp/32 to the peer's /32
//! carries it (charon routes it, through table 220). BIRD installs no route: the routes it learns
//! are read from it.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use tokio::sync::Mutex;
use vpngw_model::bgp::{bird_conf, parse_last_errors, parse_protocols, parse_routes, Learned, ProtocolState, Session};

use crate::process::{alive, kill_pid_file, read_pid, spawn_detached};

/// What one speaker says of its sessions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Speaking {
    /// By tunnel key: what BIRD says of the session (absent: BIRD did not answer for it).
    pub sessions: BTreeMap<String, ProtocolState>,
    /// Sessions that could not be configured, with why (by tunnel key).
    pub refused: Vec<(String, String)>,
    /// By tunnel key: the routes the session learned (none unless it is Established).
    pub learned: BTreeMap<String, Vec<Learned>>,
}

/// The speakers of this data plane, by directory.
pub struct BgpPlane {
    bird: PathBuf,
    /// The configuration each running speaker was given (its digest), by directory.
    applied: Mutex<HashMap<PathBuf, String>>,
}

fn conf(dir: &Path) -> PathBuf {
    dir.join("bird.conf")
}
fn pid_file(dir: &Path) -> PathBuf {
    dir.join("bird.pid")
}
pub fn socket(dir: &Path) -> PathBuf {
    dir.join("bird.ctl")
}

impl BgpPlane {
    pub fn new(bird: PathBuf) -> BgpPlane {
        BgpPlane { bird, applied: Mutex::new(HashMap::new()) }
    }

    /// Makes the speaker in `dir` (running in `netns`) run exactly `sessions`, advertising
    /// `advertise`, and says what it sees. With no session, the speaker stops.
    pub async fn converge(&self, dir: &Path, netns: Option<&str>, sessions: &[Session], advertise: &[ipnet::Ipv4Net]) -> Result<Speaking> {
        if sessions.is_empty() {
            self.stop(dir).await;
            return Ok(Speaking::default());
        }
        let log = dir.join("bird.log");
        crate::logs::rotate(&log);
        let (text, refused) = bird_conf(sessions, advertise, log.to_str());
        let digest = hex::encode(&Sha256::digest(text.as_bytes())[..8]);
        let running = running(dir);
        let mut applied = self.applied.lock().await;
        if !running {
            std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
            std::fs::write(conf(dir), &text)?;
            start(&self.bird, dir, netns).await?;
            applied.insert(dir.to_path_buf(), digest);
        } else if applied.get(dir) != Some(&digest) {
            // A running speaker (perhaps adopted after a restart of vpngw): rewriting an
            // unchanged file and `configure` leaves every session as it is; a changed one
            // restarts only the sessions whose settings changed.
            let on_disk = std::fs::read_to_string(conf(dir)).unwrap_or_default();
            if on_disk != text {
                std::fs::write(conf(dir), &text)?;
                reconfigure(dir).await?;
                tracing::info!(speaker = %dir.display(), "Reconfigured a BGP speaker.");
            }
            applied.insert(dir.to_path_buf(), digest);
        }
        drop(applied);
        let protocols = parse_protocols(&ask(&socket(dir), "show protocols").await?);
        let mut routes = if protocols.values().any(ProtocolState::established) { parse_routes(&ask(&socket(dir), "show route all").await?) } else { BTreeMap::new() };
        let mut learned = BTreeMap::new();
        for s in sessions {
            let up = protocols.get(&s.protocol()).is_some_and(ProtocolState::established);
            let mut r = if up { routes.remove(&s.protocol()).unwrap_or_default() } else { Vec::new() };
            r.sort();
            r.dedup();
            learned.insert(s.key.clone(), r);
        }
        // A session that is not up: BIRD's last error says why (kept across its retries).
        let errors = if sessions.iter().any(|s| !protocols.get(&s.protocol()).is_some_and(ProtocolState::established)) {
            parse_last_errors(&ask(&socket(dir), "show protocols all").await?)
        } else {
            BTreeMap::new()
        };
        // The log says more than the control socket keeps (a refused incoming connection, the
        // peer's AS).
        // (Of the last ten minutes: its times are UTC, as its environment says.)
        let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0) - 600;
        let logged = if !errors.is_empty() || sessions.iter().any(|s| !protocols.get(&s.protocol()).is_some_and(ProtocolState::established)) {
            crate::logs::lines(&log, |l| (l.contains("<RMT>") || l.contains("<ERR>") || l.contains("<WARN>")) && vpngw_model::plane::log_line_time(l).is_some_and(|t| t >= since))
        } else {
            Vec::new()
        };
        let sessions = sessions
            .iter()
            .filter_map(|s| {
                let mut p = protocols.get(&s.protocol())?.clone();
                if p.established() {
                    return Some((s.key.clone(), p));
                }
                // The log's words first: they say more ("Bad peer AS: 65011").
                let e = vpngw_model::bgp::last_logged_error(logged.iter().map(String::as_str), &s.protocol()).or_else(|| errors.get(&s.protocol()).cloned());
                if let Some(e) = e.filter(|e| !p.info.contains(e.as_str())) {
                    p.info = format!("{} (last error: {e})", p.info);
                }
                Some((s.key.clone(), p))
            })
            .collect();
        Ok(Speaking { sessions, refused, learned })
    }

    /// Has a session that is not up try to connect now (`restart`), rather than when its
    /// connect-retry timer says; a failure is only logged.
    pub async fn kick(&self, dir: &Path, protocol: &str) {
        match ask(&socket(dir), &format!("restart {protocol}")).await {
            Ok(_) => tracing::debug!(speaker = %dir.display(), protocol, "Asked a BGP session to connect now: its tunnel came up."),
            Err(e) => tracing::debug!(speaker = %dir.display(), protocol, error = %e, "Could not restart a BGP session."),
        }
    }

    /// Stops the speaker in `dir`, if one runs.
    pub async fn stop(&self, dir: &Path) {
        if self.applied.lock().await.remove(dir).is_some() || pid_file(dir).exists() {
            kill_pid_file(&pid_file(dir)).await;
            let _ = std::fs::remove_file(socket(dir));
            let _ = std::fs::remove_file(conf(dir));
        }
    }
}

/// Starts BIRD (`bird`) on `dir`'s `bird.conf` (in `netns`), in its own process group with a
/// pid file, its times in UTC, and waits for its control socket. Any BIRD that pid file names
/// is stopped first.
pub async fn start(bird: &Path, dir: &Path, netns: Option<&str>) -> Result<u32> {
    kill_pid_file(&pid_file(dir)).await;
    let _ = std::fs::remove_file(socket(dir));
    let mut cmd = match netns {
        Some(ns) => {
            let mut c = tokio::process::Command::new("ip");
            c.args(["netns", "exec", ns]).arg(bird);
            c
        }
        None => tokio::process::Command::new(bird),
    };
    cmd.arg("-f").arg("-c").arg(conf(dir)).arg("-s").arg(socket(dir)).env("TZ", "UTC");
    let pid = spawn_detached(cmd, &dir.join("bird.out"), &pid_file(dir)).with_context(|| format!("start {}", bird.display()))?;
    if !crate::lab::wait_socket(&socket(dir), Duration::from_secs(10)).await {
        bail!("BIRD in {} did not open its control socket; see {}", dir.display(), dir.join("bird.out").display());
    }
    tracing::info!(speaker = %dir.display(), pid, "Started a BGP speaker.");
    Ok(pid)
}

/// Has the BIRD running on `dir` read its `bird.conf` again (`configure`): only the sessions
/// whose settings changed restart.
pub async fn reconfigure(dir: &Path) -> Result<()> {
    let reply = ask(&socket(dir), "configure").await?;
    if !reply.lines().any(|l| ["0003", "0004", "0019", "0020"].iter().any(|c| l.starts_with(c))) {
        bail!("BIRD in {} refused its configuration: {}", dir.display(), reply.trim());
    }
    Ok(())
}

/// Whether a BIRD runs on `dir` (its pid file names a live process).
pub fn running(dir: &Path) -> bool {
    read_pid(&pid_file(dir)).is_some_and(alive)
}

/// Sends one command to BIRD's control socket and returns its whole reply (the greeting left
/// out): lines up to and including the first whose four-digit code is followed by a space.
pub async fn ask(socket: &Path, command: &str) -> Result<String> {
    let go = async {
        let stream = UnixStream::connect(socket).await.with_context(|| format!("connect to {}", socket.display()))?;
        let (r, mut w) = stream.into_split();
        let mut lines = BufReader::new(r).lines();
        // The greeting: "0001 BIRD 2.0.12 ready."
        lines.next_line().await?.context("BIRD closed its control socket")?;
        w.write_all(format!("{command}\n").as_bytes()).await?;
        let mut out = String::new();
        while let Some(line) = lines.next_line().await? {
            let last = line.len() >= 5 && line.as_bytes()[..4].iter().all(u8::is_ascii_digit) && line.as_bytes()[4] == b' ';
            out.push_str(&line);
            out.push('\n');
            if last {
                return Ok(out);
            }
        }
        bail!("BIRD closed its control socket mid-reply")
    };
    tokio::time::timeout(Duration::from_secs(5), go).await.context("BIRD did not answer within 5 s")?
}
