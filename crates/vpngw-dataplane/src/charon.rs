//! What the reconciler asks of a charon, as a trait: the VICI implementation drives a real
//! charon over its socket; `fake::FakeCharon` (tests) keeps definitions and SAs in memory, so
//! that whole reconcile scenarios run in milliseconds without root.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use async_trait::async_trait;
use tokio::sync::{mpsc, Notify};

use crate::capabilities::Capabilities;
use crate::ipsec::{self, ConnDef, SaState};
use crate::vici::{Client, Message, ViciError};

/// The charon went away (restarted, killed): reconnect and converge afresh.
#[derive(Debug, thiserror::Error)]
#[error("charon disconnected: {0}")]
pub struct Disconnected(pub String);

/// Whether an error (anywhere in its chain) says the charon went away.
pub fn disconnected(e: &anyhow::Error) -> bool {
    e.chain().any(|c| c.is::<Disconnected>())
}

/// One command connection to a charon.
#[async_trait]
pub trait Charon: Send {
    /// The algorithms and plugins it has.
    async fn capabilities(&mut self) -> Result<Capabilities>;
    /// The names of the definitions vpngw owns that it holds.
    async fn loaded(&mut self) -> Result<crate::plan::Loaded>;
    /// Removes a definition, then closes its SAs and forgets its PSK (and pool). Unloading
    /// first leaves a re-initiating peer no definition to land a new IKE_SA on.
    async fn unload(&mut self, name: &str) -> Result<()>;
    /// Loads definitions with their PSKs (and pools).
    async fn load(&mut self, defs: &[&ConnDef]) -> Result<()>;
    /// Its SAs, by definition name.
    async fn sas(&mut self) -> Result<HashMap<String, SaState>>;
    /// Closes one IKE_SA (by unique id); a failure is only logged.
    async fn terminate(&mut self, ike_id: &str);
    /// Closes one CHILD_SA (by unique id), leaving its IKE_SA; a failure is only logged.
    async fn terminate_child(&mut self, child_id: &str);
    /// Starts negotiating a definition's IKE_SA, or one child under it; a failure is only
    /// logged (the next pass tries again).
    async fn initiate(&mut self, ike: &str, child: Option<&str>);
}

/// How the reconciler reaches the charons at their sockets.
#[async_trait]
pub trait Connector: Send + Sync + 'static {
    async fn connect(&self, socket: &Path) -> Result<Box<dyn Charon>>;
    /// Follows a charon's events until the connection ends: every SA change wakes `events`,
    /// and a packet that hit a trap policy sends its reqid to `traps`.
    async fn listen(&self, socket: &Path, events: &Notify, traps: &mpsc::UnboundedSender<(PathBuf, u32)>) -> Result<()>;
}

/// Real charons over VICI.
pub struct Vici;

/// Definitions loaded per pipelined batch of VICI requests.
const LOAD_BATCH: usize = 64;

fn vici(e: ViciError) -> anyhow::Error {
    match e {
        ViciError::Io(_) => anyhow::Error::new(Disconnected(e.to_string())),
        other => anyhow::Error::new(other),
    }
}

#[async_trait]
impl Connector for Vici {
    async fn connect(&self, socket: &Path) -> Result<Box<dyn Charon>> {
        // A command connection registers once for the events its streaming commands send.
        let mut c = Client::connect(socket).await.map_err(vici).with_context(|| format!("connect to {}", socket.display()))?;
        c.register("list-conn").await.map_err(vici)?;
        c.register("list-sa").await.map_err(vici)?;
        Ok(Box::new(ViciCharon(c)))
    }

    async fn listen(&self, socket: &Path, events: &Notify, traps: &mpsc::UnboundedSender<(PathBuf, u32)>) -> Result<()> {
        let mut c = Client::connect(socket).await.map_err(vici)?;
        for e in ["ike-updown", "child-updown", "ike-rekey", "child-rekey", "log"] {
            c.register(e).await.map_err(vici)?;
        }
        events.notify_one();
        loop {
            let (name, msg) = c.next_event().await.map_err(vici)?;
            if name == "log" {
                if let Some(reqid) = ipsec::dropped_reqid(msg.str("msg")) {
                    let _ = traps.send((socket.to_path_buf(), reqid));
                }
                continue;
            }
            tracing::debug!(event = %name, "charon event.");
            events.notify_one();
        }
    }
}

struct ViciCharon(Client);

#[async_trait]
impl Charon for ViciCharon {
    async fn capabilities(&mut self) -> Result<Capabilities> {
        Capabilities::query(&mut self.0).await.map_err(vici)
    }

    async fn loaded(&mut self) -> Result<crate::plan::Loaded> {
        let (conns, _) = self.0.stream("list-conns", Some("list-conn"), Message::new()).await.map_err(vici)?;
        Ok(conns
            .iter()
            .flat_map(|m| m.sections())
            .filter(|(n, _)| ipsec::owned(n))
            .map(|(n, c)| {
                let learned = c.sec("children").map(|ch| ch.sections().map(|(child, _)| child.to_string()).filter(|child| ipsec::is_learned_child(n, child)).collect()).unwrap_or_default();
                (n.to_string(), learned)
            })
            .collect())
    }

    async fn unload(&mut self, name: &str) -> Result<()> {
        self.0.call("unload-conn", Message::new().kv("name", name)).await.map_err(vici)?;
        let _ = self.0.call("terminate", Message::new().kv("ike", name).kv("force", "yes").kv("timeout", "-1")).await;
        let _ = self.0.call("unload-shared", Message::new().kv("id", name)).await;
        if name.starts_with("iss-") {
            let _ = self.0.call("unload-pool", Message::new().kv("name", format!("{name}-pool"))).await;
        }
        Ok(())
    }

    async fn load(&mut self, defs: &[&ConnDef]) -> Result<()> {
        for chunk in defs.chunks(LOAD_BATCH) {
            let mut reqs = Vec::with_capacity(chunk.len() * 2);
            for d in chunk {
                reqs.push(("load-shared", d.load_shared()));
                if let Some(pool) = d.load_pool() {
                    reqs.push(("load-pool", pool));
                }
                reqs.push(("load-conn", d.load_conn()));
            }
            let mut answers = self.0.call_many(reqs).await.map_err(vici)?.into_iter();
            for d in chunk {
                let n = if d.pool.is_some() { 3 } else { 2 };
                for a in answers.by_ref().take(n) {
                    if let Err(e) = a {
                        anyhow::bail!("load {}: {e}", d.name);
                    }
                }
            }
        }
        Ok(())
    }

    async fn sas(&mut self) -> Result<HashMap<String, SaState>> {
        let (sas, _) = self.0.stream("list-sas", Some("list-sa"), Message::new().kv("noblock", "yes")).await.map_err(vici)?;
        Ok(ipsec::sa_states(&sas))
    }

    async fn terminate(&mut self, ike_id: &str) {
        if let Err(e) = self.0.call("terminate", Message::new().kv("ike-id", ike_id).kv("force", "yes").kv("timeout", "-1")).await {
            tracing::debug!(ike_sa = %ike_id, error = %e, "terminate");
        }
    }

    async fn terminate_child(&mut self, child_id: &str) {
        if let Err(e) = self.0.call("terminate", Message::new().kv("child-id", child_id).kv("force", "yes").kv("timeout", "-1")).await {
            tracing::debug!(child_sa = %child_id, error = %e, "terminate");
        }
    }

    async fn initiate(&mut self, ike: &str, child: Option<&str>) {
        let mut m = Message::new();
        if let Some(ch) = child {
            m = m.kv("child", ch);
        }
        if let Err(e) = self.0.call("initiate", m.kv("ike", ike).kv("timeout", "-1")).await {
            tracing::debug!(definition = %ike, error = %e, "initiate");
        }
    }
}
