//! The task engine: applies lifecycle steps when they fall due.
//!
//! Handlers schedule steps ([`vpngw_store::Task`]) in the same commit as the change that needs
//! them, so a step is never lost and never applied twice across a crash: the engine removes a
//! step in the same commit that applies it. It wakes when a write scheduled a step and when the
//! next step falls due. Later, reconcilers finish `updating` steps when the data plane has
//! really applied a change; until then the configured transition time stands in for it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use vpngw_store::{Kind, Mutation, Task};

use crate::{now_ms, Service};
use vpngw_model::state::{Lifecycle, TaskOp};

/// How long to wait before asking the data plane again.
const RECHECK: Duration = Duration::from_millis(50);

/// Whether `task` must wait for the data plane. Waiting costs no write: the task stays due and
/// the engine asks again after [`RECHECK`] or when a reconciler reports progress.
async fn waits_for_dataplane(svc: &Service, task: &Task) -> Result<bool, vpngw_store::StoreError> {
    if TaskOp::parse(&task.op) != Some(TaskOp::Become(Lifecycle::Active)) || !matches!(task.kind, Kind::VpnGateway | Kind::VpnConnection) {
        return Ok(false);
    }
    // A data plane here, on another server, or a fleet of agents.
    let fleet = !svc.store.agents().await?.is_empty();
    if !svc.expects_dataplane() && !fleet {
        return Ok(false);
    }
    let want = svc.intent_digest(task.kind, &task.resource_id).await?;
    let mut done = want.is_none();
    if !done {
        done = true;
        // Every side of it that runs somewhere has applied it.
        for key in crate::fleet::converge_keys(svc, task.kind, &task.resource_id, fleet).await? {
            if svc.store.converged(&key).await? != want {
                done = false;
                break;
            }
        }
    }
    let postpone = {
        let mut map = svc.waiting.lock().unwrap_or_else(|e| e.into_inner());
        if done {
            map.remove(&task.id);
            false
        } else {
            let since = *map.entry(task.id.clone()).or_insert_with(Instant::now);
            if since.elapsed() >= svc.config.apply_timeout {
                tracing::warn!(resource = %task.resource_id, waited = ?since.elapsed(), "The data plane did not apply the change in time; ending the transition anyway.");
                map.remove(&task.id);
                false
            } else {
                true
            }
        }
    };
    Ok(postpone)
}

/// Applies every step due now. Returns how many were applied and how many wait for the data
/// plane.
pub async fn apply_due(svc: &Service) -> (usize, usize) {
    let due = match svc.store.due_tasks(now_ms()).await {
        Ok(d) => d,
        Err(e) => {
            tracing::warn!(error = %e, "Failed to load due tasks.");
            return (0, 0);
        }
    };
    let (mut applied, mut waiting) = (0, 0);
    for task in due {
        // A resource's later steps wait behind an earlier one that waits.
        if waits_for_dataplane(svc, &task).await.unwrap_or(true) {
            waiting += 1;
            continue;
        }
        match svc.with_write_lock(apply_one(svc, &task)).await {
            Ok(true) => applied += 1,
            Ok(false) => waiting += 1,
            Err(e) => tracing::warn!(task = %task.id, resource = %task.resource_id, error = %e, "Failed to apply task."),
        }
    }
    (applied, waiting)
}

/// Applies one step; `false` when it turned out to wait for the data plane after all.
async fn apply_one(svc: &Service, task: &Task) -> Result<bool, vpngw_store::StoreError> {
    // Under the write lock (the cluster's, on PostgreSQL): another server may have applied it
    // since this one listed it. Applied once, by whoever finds it still there.
    if !svc.store.tasks_of(&task.resource_id).await?.iter().any(|t| t.id == task.id) {
        return Ok(true);
    }
    if waits_for_dataplane(svc, task).await? {
        return Ok(false);
    }
    let mut muts = vec![Mutation::DeleteTask { id: task.id.clone() }];
    if let Some(mut rec) = svc.store.get_any(task.kind, &task.resource_id).await? {
        match TaskOp::parse(&task.op) {
            Some(TaskOp::Become(status)) => {
                tracing::info!(resource = %rec.id, from = %rec.status, to = %status, "Resource changed state.");
                rec.status = status.as_str().to_string();
                muts.push(Mutation::Put(rec));
            }
            Some(TaskOp::Delete) => {
                tracing::info!(resource = %rec.id, "Resource deleted.");
                for other in svc.store.tasks_of(&rec.id).await? {
                    if other.id != task.id {
                        muts.push(Mutation::DeleteTask { id: other.id });
                    }
                }
                muts.push(Mutation::Delete { kind: rec.kind, id: rec.id });
            }
            None => tracing::warn!(op = %task.op, "Unknown task op; dropping it."),
        }
    }
    svc.store.commit(muts).await?;
    svc.intent_changed.notify_one();
    Ok(true)
}

/// Runs until `shutdown` turns true.
pub async fn run(svc: Arc<Service>, mut shutdown: tokio::sync::watch::Receiver<bool>) {
    loop {
        let (_, waiting) = apply_due(&svc).await;
        let wait = match svc.store.next_due().await {
            _ if waiting > 0 => RECHECK,
            Ok(Some(due)) => Duration::from_millis((due - now_ms()).clamp(0, 1000) as u64),
            _ => Duration::from_secs(1),
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = svc.tasks_changed.notified() => {}
            _ = shutdown.changed() => {
                if *shutdown.borrow() { return; }
            }
        }
    }
}
