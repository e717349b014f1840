//! ODS, the Open Distribution Server: hands installer packages to managed computers
//! and keeps a mesh of servers in sync. `launch` runs the HTTP server and the job
//! worker on a given listener until the shutdown future resolves; this root is where
//! the parts are put together (the job kinds each domain owns, the tasks that run).
//!
//! The modules form one-way layers (`tests/module_graph.rs` checks there is no cycle):
//! `http` and `sync` (the ways in) -> services (`packages`, `catalog`, `peers`,
//! `users`, `notify`, `jamf`) -> `app` (the state passed everywhere) -> (`db`, `storage`, `jobs`,
//! `auth`, `mesh`, `ingest`) -> (`model`, `secrets`, `config`, `error`, `recent`).

pub mod app;
pub mod auth;
pub mod backup;
pub mod catalog;
pub mod config;
pub mod datadir;
pub mod db;
pub mod error;
pub mod filenames;
pub mod http;
pub mod ingest;
pub mod jamf;
pub mod jobs;
pub mod mesh;
pub mod model;
pub mod node;
pub mod notify;
pub mod packages;
pub mod peers;
pub mod recent;
pub mod secrets;
pub mod sessions;
pub mod stats;
pub mod storage;
pub mod sync;
pub mod system;
pub mod users;

use std::future::Future;
use std::sync::Arc;
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
    let live = storage::sweep::live_owners(app).await?;
    let swept = app.store.sweep_staging(&live).await?;
    if swept > 0 {
        tracing::info!(swept, "removed staging files of interrupted uploads");
    }
    release_dead_jobs(app).await?;
    let mut conn = app.db.writer().acquire().await?;
    jobs::enqueue(&app.db, &mut conn, &storage::sweep::Sweep, Duration::ZERO).await?;
    Ok(())
}

/// Jobs held by a process of this node name that is gone: queued again now, not when
/// their leases run out. Another node's jobs are left to their leases (a minute, kept
/// alive while the job runs): a node whose heartbeat is only late must not have its
/// running jobs run a second time elsewhere.
async fn release_dead_jobs(app: &App) -> anyhow::Result<()> {
    let name = app.config.node_name.clone();
    let released = db::jobs::release_dead(&app.db, |w| node::gone_here(w, &name)).await?;
    if released > 0 {
        tracing::info!(released, "resumed jobs of a process that stopped");
    }
    Ok(())
}

/// Joins the site: records this node's first heartbeat, then refuses to run beside a
/// live node holding another `SECRET_KEY`, or beside any other process on a SQLite
/// database (one SQLite database serves one process). `launch` does it; call it
/// earlier to fail before announcing anything (idempotent).
pub async fn join_site(app: &App) -> anyhow::Result<()> {
    let secret_check = &node::secret_check(&app.config.secret_key.0);
    let (id, name) = (&app.worker_id, &app.config.node_name);
    db::nodes::beat(&app.db, id, name, secret_check).await?;
    let timeout = app.config.node_timeout.as_millis() as i64;
    let others: Vec<_> = db::nodes::live(&app.db, timeout)
        .await?
        .into_iter()
        .filter(|n| &n.id != id && !node::gone_here(&n.id, name))
        .collect();
    if let Some(other) = others.first()
        && app.db.dialect == db::Dialect::Sqlite
    {
        let _ = db::nodes::remove(&app.db, id).await;
        anyhow::bail!(
            "the SQLite database {} is in use by another ODS process (node {}, last seen {} ms ago); \
             one SQLite database serves one process: stop that one, or run several nodes on \
             PostgreSQL or MariaDB (DATABASE_URL)",
            app.config.database_url_redacted(),
            other.id,
            model::now_millis() - other.last_seen
        );
    }
    if let Some(other) = others.iter().find(|n| n.secret_check != *secret_check) {
        let _ = db::nodes::remove(&app.db, id).await;
        anyhow::bail!(
            "node {} of this site runs with another SECRET_KEY: every node sharing a database \
             needs the same SECRET_KEY and DATABASE_KEY",
            other.id
        );
    }
    if !others.is_empty() {
        tracing::info!(nodes = others.len() + 1, "joined a site of several nodes");
    }
    Ok(())
}

/// Writes this node's heartbeat until `stop`, prunes old login counters now and then,
/// and removes the node's row at the end.
async fn heartbeat(app: App, secret_check: String, stop: CancellationToken) {
    let every = app.config.node_timeout / 4;
    let mut beats: u64 = 0;
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tokio::time::sleep(every) => {}
        }
        beats += 1;
        if let Err(e) = db::nodes::beat(
            &app.db,
            &app.worker_id,
            &app.config.node_name,
            &secret_check,
        )
        .await
        {
            tracing::warn!(%e, "writing this node's heartbeat");
        }
        if beats.is_multiple_of(400)
            && let Err(e) = app.limiter.prune(&app.db).await
        {
            tracing::warn!(%e, "pruning login counters");
        }
    }
}

/// Every job kind this server runs, each defined next to the domain it serves.
pub fn job_registry() -> jobs::Registry<App> {
    let mut r = jobs::Registry::new();
    r.register::<storage::sweep::Sweep>()
        .register::<storage::gc::BlobGc>()
        .register::<storage::discard::DiscardPartial>()
        .register::<packages::digests::Digests>()
        .register::<catalog::reevaluate::Reevaluate>()
        .register::<peers::notify::NotifyPeer>()
        .register::<peers::offer::Offer>()
        .register::<sync::pull::PullPeer>()
        .register::<jamf::JamfUpsert>()
        .register::<jamf::JamfReconcile>();
    r
}

/// Runs until `shutdown` resolves. With `listener`, also serves HTTP.
pub async fn launch(
    app: App,
    listener: Option<TcpListener>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    launch_with(app, listener, None, shutdown).await
}

/// [`launch`], with the plain-http listener for the Jamf path beside TLS
/// (`plain_listen`).
pub async fn launch_with(
    app: App,
    listener: Option<TcpListener>,
    plain: Option<TcpListener>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let secret_check = node::secret_check(&app.config.secret_key.0);
    join_site(&app).await?;
    start_housekeeping(&app).await?;
    let stop = CancellationToken::new();
    let beat = tokio::spawn(heartbeat(app.clone(), secret_check, stop.child_token()));
    if let Some(addr) = app.config.metrics_listen {
        let metrics = TcpListener::bind(addr)
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen on {addr} (metrics_listen): {e}"))?;
        tracing::info!(%addr, "serving /metrics");
        let (router, limits, stop) = (
            http::metrics_router(app.clone()),
            app.config.limits.clone(),
            stop.clone(),
        );
        tokio::spawn(async move {
            if let Err(e) = http::serve::serve(metrics, router, limits, None, stop).await {
                tracing::error!(%e, "the metrics listener stopped");
            }
        });
    }
    let poll = Duration::from_millis(app.config.job_poll_ms);
    let worker = tokio::spawn(jobs::runner::run(
        app.clone(),
        Arc::new(job_registry()),
        poll,
        jobs::runner::PARALLEL,
        stop.child_token(),
    ));
    // Transfers: a lane of their own with `max_transfers` slots (see `catalog::fetch`).
    let transfer_worker = tokio::spawn(jobs::runner::run(
        catalog::fetch::Lane(app.clone()),
        Arc::new(catalog::fetch::job_registry()),
        poll,
        app.config.max_transfers,
        stop.child_token(),
    ));
    // Notifications: a lane of their own (see `notify`), and the fan-out of events.
    let notify_worker = tokio::spawn(jobs::runner::run(
        notify::Lane(app.clone()),
        Arc::new(notify::job_registry()),
        poll,
        app.config.webhooks.parallel,
        stop.child_token(),
    ));
    let fanout = tokio::spawn(notify::fanout::run(app.clone(), poll, stop.child_token()));
    let watcher = tokio::spawn(sync::watch::run(app.clone(), stop.child_token()));
    let jamf_watch = tokio::spawn(jamf::watch(app.clone(), stop.child_token()));
    let cancel = stop.clone();
    tokio::spawn(async move {
        shutdown.await;
        cancel.cancel();
    });
    if let Some(listener) = listener {
        let tls = match &app.config.tls {
            Some((cert, key)) => {
                let tls = http::tls::Tls::load(cert, key)?;
                tls.clone().watch(stop.child_token());
                Some(tls)
            }
            None => None,
        };
        if let Some(plain) = plain {
            let (jamf, limits, stop) = (
                http::jamf_router(app.clone()),
                app.config.limits.clone(),
                stop.clone(),
            );
            tokio::spawn(async move {
                if let Err(e) = http::serve::serve(plain, jamf, limits, None, stop).await {
                    tracing::error!(%e, "the plain-http listener stopped");
                }
            });
        }
        let router = http::router(app.clone());
        let limits = app.config.limits.clone();
        http::serve::serve(listener, router, limits, tls, stop.clone()).await?;
    } else {
        stop.cancelled().await;
    }
    let _ = worker.await;
    let _ = transfer_worker.await;
    let _ = notify_worker.await;
    let _ = fanout.await;
    let _ = watcher.await;
    let _ = jamf_watch.await;
    let _ = beat.await;
    if let Err(e) = db::nodes::remove(&app.db, &app.worker_id).await {
        tracing::warn!(%e, "removing this node from the nodes table");
    }
    app.db.close().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_job_kind_is_registered_under_its_stored_name() {
        // The names are stored in the jobs table: a renamed kind would strand its rows.
        let mut kinds: Vec<&str> = super::job_registry().kinds().collect();
        kinds.extend(crate::catalog::fetch::job_registry().kinds());
        kinds.sort();
        assert_eq!(
            kinds,
            [
                "blob_gc",
                "digests",
                "discard_partial",
                "fetch",
                "fetch_small",
                "jamf_reconcile",
                "jamf_upsert",
                "notify_peer",
                "offer",
                "pull_peer",
                "reevaluate",
                "sweep"
            ]
        );
    }
}
