//! Background work as durable jobs (DESIGN.md §4.8). A job kind is a serializable
//! payload with a name, an optional dedup key and a `run`; it is enqueued inside the
//! transaction that makes the change, so a crash loses neither. `runner.rs` claims and
//! runs them; one file per kind.

pub mod blob_gc;
pub mod digests;
pub mod discard;
pub mod fetch;
pub mod notify;
pub mod offer;
pub mod pull;
pub mod reevaluate;
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
    /// Not even queued while one with the same key runs (work that must not run twice
    /// at once, whichever worker process claims it).
    const EXCLUSIVE: bool = false;
    fn run(self, app: App) -> impl Future<Output = anyhow::Result<()>> + Send;
    /// Called once when the last attempt failed.
    fn gave_up(self, _app: App, _error: String) -> impl Future<Output = anyhow::Result<()>> + Send {
        async { Ok(()) }
    }
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
        exclusive: J::EXCLUSIVE,
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

/// Runs a claimed job of any known kind; `gave_up` carries the final error instead
/// when the job has no attempts left.
async fn dispatch(
    app: App,
    kind: &str,
    payload: &str,
    gave_up: Option<String>,
) -> anyhow::Result<()> {
    async fn go<J: Job>(app: App, payload: &str, gave_up: Option<String>) -> anyhow::Result<()> {
        let job: J = serde_json::from_str(payload)
            .map_err(|e| anyhow::anyhow!("job payload does not parse: {e}"))?;
        match gave_up {
            None => job.run(app).await,
            Some(error) => job.gave_up(app, error).await,
        }
    }
    match kind {
        sweep::Sweep::KIND => go::<sweep::Sweep>(app, payload, gave_up).await,
        blob_gc::BlobGc::KIND => go::<blob_gc::BlobGc>(app, payload, gave_up).await,
        digests::Digests::KIND => go::<digests::Digests>(app, payload, gave_up).await,
        discard::DiscardPartial::KIND => go::<discard::DiscardPartial>(app, payload, gave_up).await,
        fetch::Fetch::KIND => go::<fetch::Fetch>(app, payload, gave_up).await,
        notify::NotifyPeer::KIND => go::<notify::NotifyPeer>(app, payload, gave_up).await,
        offer::Offer::KIND => go::<offer::Offer>(app, payload, gave_up).await,
        pull::PullPeer::KIND => go::<pull::PullPeer>(app, payload, gave_up).await,
        reevaluate::Reevaluate::KIND => go::<reevaluate::Reevaluate>(app, payload, gave_up).await,
        other => anyhow::bail!("unknown job kind {other:?} (written by a newer ODS?)"),
    }
}
