//! ODS, the Open Distribution Server: hands installer packages to managed computers
//! and keeps a mesh of servers in sync. `launch` runs the HTTP server and the job
//! worker on a given listener until the shutdown future resolves.

pub mod app;
pub mod auth;
pub mod config;
pub mod datadir;
pub mod db;
pub mod error;
pub mod http;
pub mod ingest;
pub mod jobs;
pub mod model;
pub mod packages;
pub mod recent;
pub mod secrets;
pub mod storage;
pub mod sync;
pub mod system;

use std::future::Future;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use app::App;

/// What runs in this process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// HTTP server and job worker (`ods serve`).
    Serve,
    /// Job worker only (`ods worker`).
    Worker,
}

/// Housekeeping every process does at start: sweep crashed uploads, queue the sweep.
async fn start_housekeeping(app: &App) -> anyhow::Result<()> {
    let swept = app.store.sweep_staging().await?;
    if swept > 0 {
        tracing::info!(swept, "removed staging files of interrupted uploads");
    }
    // Jobs a crashed process on this host held: resume them now, not when their
    // leases run out.
    let released = db::jobs::release_dead(&app.db, app::worker_is_dead).await?;
    if released > 0 {
        tracing::info!(released, "resumed jobs of a process that stopped");
    }
    let mut conn = app.db.writer().acquire().await?;
    jobs::enqueue(&app.db, &mut conn, &jobs::sweep::Sweep, Duration::ZERO).await?;
    Ok(())
}

/// Runs until `shutdown` resolves. With `listener`, also serves HTTP.
pub async fn launch(
    app: App,
    listener: Option<TcpListener>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    start_housekeeping(&app).await?;
    let stop = CancellationToken::new();
    let worker = tokio::spawn(jobs::runner::run(app.clone(), stop.child_token()));
    let watcher = tokio::spawn(sync::watch::run(app.clone(), stop.child_token()));
    let cancel = stop.clone();
    tokio::spawn(async move {
        shutdown.await;
        cancel.cancel();
    });
    if let Some(listener) = listener {
        let router = http::router(app.clone());
        http::serve::serve(listener, router, app.config.limits.clone(), stop.clone()).await?;
    } else {
        stop.cancelled().await;
    }
    let _ = worker.await;
    let _ = watcher.await;
    app.db.close().await;
    Ok(())
}
