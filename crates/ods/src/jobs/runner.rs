//! The worker loop: claims due jobs with a lease, keeps the lease alive while a job
//! runs, and records success, or failure with exponential backoff and jitter. Jobs
//! whose worker died are reclaimed when their lease runs out. Generic over the context
//! the jobs run in; what each kind does comes from the `Registry`.

use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use super::{Context, Registry};
use crate::db;
use crate::model::now_millis;

const LEASE_MS: i64 = 60_000;
/// Jobs of the main lane running at once in one process.
pub const PARALLEL: usize = 4;

/// Delay before attempt `attempts + 1`: 2 s doubling to one hour, +-25% jitter.
pub fn backoff_ms(attempts: i64) -> i64 {
    let base = 2_000i64
        .saturating_mul(1 << attempts.clamp(0, 20) as u32)
        .min(3_600_000);
    let jitter = rand::rng().random_range(-base / 4..=base / 4);
    base + jitter
}

/// Claims and runs jobs until `shutdown` is cancelled, polling every `poll` when idle
/// (and at once when the context's wake fires). It claims only the kinds `registry`
/// knows, at most `parallel` at once: a process runs one such lane per registry.
pub async fn run<Ctx: Context>(
    ctx: Ctx,
    registry: Arc<Registry<Ctx>>,
    poll: Duration,
    parallel: usize,
    shutdown: CancellationToken,
) {
    let slots = Arc::new(Semaphore::new(parallel));
    let mut kinds: Vec<&'static str> = registry.kinds().collect();
    kinds.sort_unstable();
    // The kinds name the lane (main, transfers, notifications) in the log.
    tracing::info!(worker = %ctx.worker_id(), kinds = %kinds.join(","), parallel, "job worker started");
    loop {
        if shutdown.is_cancelled() {
            break;
        }
        let permit = tokio::select! {
            p = slots.clone().acquire_owned() => p.expect("semaphore open"),
            _ = shutdown.cancelled() => break,
        };
        let exclusive = registry.exclusive_kinds();
        match db::jobs::claim(ctx.db(), ctx.worker_id(), LEASE_MS, &kinds, exclusive).await {
            Ok(Some(job)) => {
                let mut batch = vec![job];
                let more = registry.batch_size(&batch[0].kind).saturating_sub(1);
                if more > 0 {
                    let kind = batch[0].kind.clone();
                    match db::jobs::claim_more(
                        ctx.db(),
                        ctx.worker_id(),
                        LEASE_MS,
                        &kind,
                        exclusive,
                        more,
                    )
                    .await
                    {
                        Ok(rows) => batch.extend(rows),
                        Err(e) => tracing::warn!(%e, "claiming the rest of a batch failed"),
                    }
                }
                let ctx = ctx.clone();
                let registry = registry.clone();
                tokio::spawn(async move {
                    execute(ctx, &registry, batch).await;
                    drop(permit);
                });
                continue;
            }
            Ok(None) => drop(permit),
            Err(e) => {
                drop(permit);
                tracing::warn!(%e, "claiming jobs failed; retrying");
            }
        }
        tokio::select! {
            _ = ctx.wake().notified() => {}
            _ = tokio::time::sleep(poll) => {}
            _ = shutdown.cancelled() => break,
        }
    }
    // Let running jobs finish (their leases protect them if we are killed instead).
    let _ =
        tokio::time::timeout(Duration::from_secs(10), slots.acquire_many(parallel as u32)).await;
    tracing::info!("job worker stopped");
}

/// Runs claimed jobs (one, or a batch of one kind) and records each one's outcome,
/// keeping their leases alive meanwhile.
async fn execute<Ctx: Context>(ctx: Ctx, registry: &Registry<Ctx>, jobs: Vec<db::jobs::JobRow>) {
    let heartbeat = {
        let ctx = ctx.clone();
        let mut ids: Vec<i64> = jobs.iter().map(|j| j.id).collect();
        tokio::spawn(async move {
            while !ids.is_empty() {
                tokio::time::sleep(Duration::from_millis(LEASE_MS as u64 / 3)).await;
                let mut kept = Vec::with_capacity(ids.len());
                for id in ids {
                    match db::jobs::heartbeat(ctx.db(), id, ctx.worker_id(), LEASE_MS).await {
                        Ok(true) => kept.push(id),
                        Ok(false) => {}
                        Err(e) => {
                            tracing::warn!(%e, job = id, "heartbeat failed");
                            kept.push(id);
                        }
                    }
                }
                ids = kept;
            }
        })
    };
    // A job that panics is a failed attempt like any other (and lets go of its lease).
    let panicked = || anyhow::anyhow!("the job panicked (a bug: please report it)");
    let results: Vec<anyhow::Result<()>> = if let [job] = jobs.as_slice() {
        let run = std::panic::AssertUnwindSafe(registry.dispatch(
            ctx.clone(),
            &job.kind,
            job.payload.clone(),
            None,
        ));
        vec![
            futures_util::FutureExt::catch_unwind(run)
                .await
                .unwrap_or_else(|_| Err(panicked())),
        ]
    } else {
        let payloads = jobs.iter().map(|j| j.payload.clone()).collect();
        let run = std::panic::AssertUnwindSafe(registry.dispatch_batch(
            ctx.clone(),
            &jobs[0].kind,
            payloads,
        ));
        match futures_util::FutureExt::catch_unwind(run).await {
            Ok(r) => r,
            Err(_) => jobs.iter().map(|_| Err(panicked())).collect(),
        }
    };
    heartbeat.abort();
    // The jobs that succeeded are recorded in one statement (a batch's group commit).
    let mut done = Vec::new();
    for (job, result) in jobs.iter().zip(results) {
        match result {
            Ok(()) => done.push(job.id),
            Err(e) => record_failure(&ctx, registry, job, e).await,
        }
    }
    tracing::debug!(jobs = ?done, kind = %jobs[0].kind, "jobs done");
    if let Err(e) = db::jobs::complete_many(ctx.db(), &done, ctx.worker_id()).await {
        tracing::error!(%e, jobs = ?done, "could not record that jobs are done; their leases will expire and they rerun");
    }
}

/// Records a failed attempt: a retry time, or after the last attempt dead, once its
/// kind's `gave_up` ran.
async fn record_failure<Ctx: Context>(
    ctx: &Ctx,
    registry: &Registry<Ctx>,
    job: &db::jobs::JobRow,
    e: anyhow::Error,
) {
    let msg = format!("{e:#}");
    metrics::counter!("ods_job_failures_total", "kind" => job.kind.clone()).increment(1);
    let retry = (job.attempts < job.max_attempts).then(|| now_millis() + backoff_ms(job.attempts));
    tracing::warn!(job = job.id, kind = %job.kind, attempt = job.attempts, error = %msg, retry = retry.is_some(), "job failed");
    if retry.is_none()
        && let Err(e) = registry
            .dispatch(
                ctx.clone(),
                &job.kind,
                job.payload.clone(),
                Some(msg.clone()),
            )
            .await
    {
        tracing::error!(job = job.id, error = %e, "recording that a job gave up failed");
    }
    let recorded = db::jobs::fail(ctx.db(), job.id, ctx.worker_id(), &msg, retry).await;
    if let Err(e) = recorded {
        tracing::error!(%e, job = job.id, "could not record the job's outcome; its lease will expire and it reruns");
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn backoff_grows_and_caps() {
        for a in 0..30 {
            let d = super::backoff_ms(a);
            assert!((1_500..=4_500_000).contains(&d), "{a}: {d}");
        }
        assert!(super::backoff_ms(0) <= 2_500);
        assert!(super::backoff_ms(5) >= 48_000);
    }
}
