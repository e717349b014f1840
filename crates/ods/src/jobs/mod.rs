//! Background work as durable jobs (DESIGN.md §4.8). A job kind is a serializable
//! payload with a name, an optional dedup key and a `run`; it is enqueued inside the
//! transaction that makes the change, so a crash loses neither. `runner.rs` claims and
//! runs them; one file per kind.

pub mod blob_gc;
pub mod digests;
pub mod runner;
pub mod sweep;

use std::future::Future;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use sqlx::AnyConnection;

use crate::app::App;
use crate::db::{self, Db};
use crate::model::now_millis;

pub trait Job: Serialize + DeserializeOwned + Send + 'static {
    const KIND: &'static str;
    const MAX_ATTEMPTS: i64 = 12;
    /// Jobs with the same key are not queued twice.
    fn dedup_key(&self) -> Option<String> {
        None
    }
    fn run(self, app: App) -> impl Future<Output = anyhow::Result<()>> + Send;
}

/// Queues `job` on `conn` (pass the transaction that writes the change).
pub async fn enqueue<J: Job>(
    db: &Db,
    conn: &mut AnyConnection,
    job: &J,
    delay: Duration,
) -> sqlx::Result<Option<i64>> {
    let new = db::jobs::NewJob {
        kind: J::KIND,
        payload: serde_json::to_string(job).expect("job payloads serialize"),
        dedup_key: job.dedup_key(),
        max_attempts: J::MAX_ATTEMPTS,
        run_at_ms: now_millis() + delay.as_millis() as i64,
    };
    db::jobs::enqueue(db, conn, &new).await
}

/// Queues a job outside any other transaction and wakes the local worker.
pub async fn enqueue_now<J: Job>(app: &App, job: &J) -> sqlx::Result<Option<i64>> {
    let mut conn = app.db.writer().acquire().await?;
    let id = enqueue(&app.db, &mut conn, job, Duration::ZERO).await?;
    app.jobs_wake.notify_one();
    Ok(id)
}

/// Runs a claimed job of any known kind.
async fn dispatch(app: App, kind: &str, payload: &str) -> anyhow::Result<()> {
    async fn go<J: Job>(app: App, payload: &str) -> anyhow::Result<()> {
        let job: J = serde_json::from_str(payload)
            .map_err(|e| anyhow::anyhow!("job payload does not parse: {e}"))?;
        job.run(app).await
    }
    match kind {
        sweep::Sweep::KIND => go::<sweep::Sweep>(app, payload).await,
        blob_gc::BlobGc::KIND => go::<blob_gc::BlobGc>(app, payload).await,
        digests::Digests::KIND => go::<digests::Digests>(app, payload).await,
        other => anyhow::bail!("unknown job kind {other:?} (written by a newer ODS?)"),
    }
}
