//! The task engine: applies lifecycle steps when they fall due.
//!
//! Handlers schedule steps ([`vpngw_store::Task`]) in the same commit as the change that needs
//! them, so a step is never lost and never applied twice across a crash: the engine removes a
//! step in the same commit that applies it. It wakes when a write scheduled a step and when the
//! next step falls due. Later, reconcilers finish `updating` steps when the data plane has
//! really applied a change; until then the configured transition time stands in for it.

use std::sync::Arc;
use std::time::Duration;

use vpngw_store::{Mutation, Task};

use crate::{now_ms, Service};

/// Applies every step due now. Returns how many were applied.
pub async fn apply_due(svc: &Service) -> usize {
    let due = match svc.store.due_tasks(now_ms()).await {
        Ok(d) => d,
        Err(e) => {
            tracing::warn!(error = %e, "Failed to load due tasks.");
            return 0;
        }
    };
    let mut applied = 0;
    for task in due {
        let result = svc.with_write_lock(apply_one(svc, &task)).await;
        match result {
            Ok(()) => applied += 1,
            Err(e) => tracing::warn!(task = %task.id, resource = %task.resource_id, error = %e, "Failed to apply task."),
        }
    }
    applied
}

async fn apply_one(svc: &Service, task: &Task) -> Result<(), vpngw_store::StoreError> {
    let mut muts = vec![Mutation::DeleteTask { id: task.id.clone() }];
    if let Some(mut rec) = svc.store.get_any(task.kind, &task.resource_id).await? {
        if let Some(status) = task.op.strip_prefix("status:") {
            tracing::info!(resource = %rec.id, from = %rec.status, to = %status, "Resource changed state.");
            rec.status = status.to_string();
            muts.push(Mutation::Put(rec));
        } else if task.op == "delete" {
            tracing::info!(resource = %rec.id, "Resource deleted.");
            for other in svc.store.tasks_of(&rec.id).await? {
                if other.id != task.id {
                    muts.push(Mutation::DeleteTask { id: other.id });
                }
            }
            muts.push(Mutation::Delete { kind: rec.kind, id: rec.id });
        } else {
            tracing::warn!(op = %task.op, "Unknown task op; dropping it.");
        }
    }
    svc.store.commit(muts).await
}

/// Runs until `shutdown` turns true.
pub async fn run(svc: Arc<Service>, mut shutdown: tokio::sync::watch::Receiver<bool>) {
    loop {
        apply_due(&svc).await;
        let wait = match svc.store.next_due().await {
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
