//! The durable job queue (DESIGN.md §4.8), generic over the context its jobs run in.
//! A job kind is a serializable payload with a name, attempts and an optional dedup key
//! (`Job`), and a way to run in a context `Ctx` (`Run<Ctx>`). It is enqueued inside the
//! transaction that makes the change, so a crash loses neither. `Registry` maps kind
//! names to their runners; `runner` claims due jobs with a lease and runs them. Each job
//! kind lives next to the domain it serves: this module knows none of them, and uses
//! nothing but `db` and `model`.

pub mod registry;
pub mod runner;

pub use registry::Registry;

use std::future::Future;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use sqlx::AnyConnection;
use tokio::sync::Notify;

use crate::db::{self, Db};
use crate::model::now_millis;

/// A kind of durable job: what is queued. The impl is the only place its dedup key
/// is made.
pub trait Job: Serialize + DeserializeOwned + Send + 'static {
    /// The kind's name in the jobs table (stored: never rename one).
    const KIND: &'static str;
    const MAX_ATTEMPTS: i64 = 12;
    /// Not even queued while one with the same key runs (work that must not run twice
    /// at once, whichever worker process claims it).
    const EXCLUSIVE: bool = false;
    /// Up to this many due jobs of the kind are claimed together and handed to one
    /// `Run::run_batch` (1: each runs alone). For work whose fixed cost per job (a
    /// round trip, an fsync, a transaction) can be shared.
    const BATCH: usize = 1;
    /// Jobs with the same key are not queued twice.
    fn dedup_key(&self) -> Option<String> {
        None
    }
}

/// How a job kind runs in the context `Ctx`.
pub trait Run<Ctx>: Job {
    fn run(self, ctx: Ctx) -> impl Future<Output = anyhow::Result<()>> + Send;
    /// Called once when the last attempt failed.
    fn gave_up(self, _ctx: Ctx, _error: String) -> impl Future<Output = anyhow::Result<()>> + Send {
        async { Ok(()) }
    }
    /// Runs jobs of this kind claimed together (`Job::BATCH`): one result per job, in
    /// their order. By default each runs alone, one after the other.
    fn run_batch(jobs: Vec<Self>, ctx: Ctx) -> impl Future<Output = Vec<anyhow::Result<()>>> + Send
    where
        Ctx: Clone + Send + 'static,
    {
        async move {
            let mut results = Vec::with_capacity(jobs.len());
            for job in jobs {
                results.push(job.run(ctx.clone()).await);
            }
            results
        }
    }
}

/// What the queue needs from the context its jobs run in.
pub trait Context: Clone + Send + Sync + 'static {
    fn db(&self) -> &Db;
    /// Woken when a job is queued to run now.
    fn wake(&self) -> &Notify;
    /// This process's worker id, under which it holds leases.
    fn worker_id(&self) -> &str;
}

/// Queues `job` on `conn` (pass the transaction that writes the change).
pub async fn enqueue<J: Job>(
    db: &Db,
    conn: &mut AnyConnection,
    job: &J,
    delay: Duration,
) -> sqlx::Result<Option<i64>> {
    db::jobs::enqueue(db, conn, &new_job(job, delay)).await
}

/// Queues many jobs of one kind on `conn` in one statement; how many were added.
pub async fn enqueue_many<J: Job>(
    db: &Db,
    conn: &mut AnyConnection,
    jobs: &[J],
    delay: Duration,
) -> sqlx::Result<u64> {
    let new: Vec<_> = jobs.iter().map(|j| new_job(j, delay)).collect();
    db::jobs::enqueue_many(db, conn, &new).await
}

fn new_job<J: Job>(job: &J, delay: Duration) -> db::jobs::NewJob {
    db::jobs::NewJob {
        kind: J::KIND,
        payload: serde_json::to_string(job).expect("job payloads serialize"),
        dedup_key: job.dedup_key(),
        max_attempts: J::MAX_ATTEMPTS,
        run_at_ms: now_millis() + delay.as_millis() as i64,
    }
}

/// Queues a job outside any other transaction and wakes the local worker.
pub async fn enqueue_now<J: Job>(ctx: &impl Context, job: &J) -> sqlx::Result<Option<i64>> {
    let mut conn = ctx.db().writer().acquire().await?;
    let id = enqueue(ctx.db(), &mut conn, job, Duration::ZERO).await?;
    ctx.wake().notify_one();
    Ok(id)
}
