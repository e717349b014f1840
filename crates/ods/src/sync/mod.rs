//! The ODS network (DESIGN.md §3-4): registration, signed peer calls, catalog
//! exchange with last-writer-wins records, chunked verified transfers, firewalled
//! long-polling. `apply` holds the rules every server applies identically, so the
//! mesh converges without a master.

pub mod apply;
pub mod auth;
pub mod client;
pub mod hlc;
pub mod limit;
pub mod register;
pub mod transfer;
pub mod watch;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use sqlx::AnyConnection;
use tokio::sync::{Semaphore, watch as tokio_watch};

use crate::app::App;
use crate::db::{self, Db};
use crate::jobs::{self, notify::NotifyPeer};

/// Sync state shared by the process.
pub struct SyncState {
    pub own_iss: String,
    pub hlc: hlc::Hlc,
    pub nonces: auth::NonceCache,
    pub http: reqwest::Client,
    /// Latest local change number known to this process (wakes long-polls).
    pub cursor: tokio_watch::Sender<i64>,
    /// Limits parallel incoming transfers on this server.
    pub transfers: Semaphore,
    pub rates: limit::RateLimits,
    pub stats: Stats,
    pub interval: Duration,
}

/// Counters for the admin API and the tests (bytes the sender really sent).
#[derive(Default)]
pub struct Stats {
    pub chunks_served: AtomicU64,
    pub chunk_bytes_served: AtomicU64,
    pub chunks_fetched: AtomicU64,
    pub chunk_bytes_fetched: AtomicU64,
    pub chunks_rejected: AtomicU64,
    /// Signed peer requests this server accepted (a firewalled server gets none).
    pub peer_requests: AtomicU64,
}

impl Stats {
    pub fn fetched(&self, bytes: u64) {
        self.chunks_fetched.fetch_add(1, Ordering::Relaxed);
        self.chunk_bytes_fetched.fetch_add(bytes, Ordering::Relaxed);
    }
    pub fn served(&self, bytes: u64) {
        self.chunks_served.fetch_add(1, Ordering::Relaxed);
        self.chunk_bytes_served.fetch_add(bytes, Ordering::Relaxed);
    }
}

impl SyncState {
    pub fn new(own_iss: &str, max_transfers: usize, interval: Duration) -> SyncState {
        SyncState {
            own_iss: own_iss.to_string(),
            hlc: hlc::Hlc::new(own_iss),
            nonces: auth::NonceCache::default(),
            http: client::http_client(),
            cursor: tokio_watch::channel(0).0,
            transfers: Semaphore::new(max_transfers.max(1)),
            rates: limit::RateLimits::default(),
            stats: Stats::default(),
            interval,
        }
    }
}

/// Queues a notification of a catalog change to every peer that can be called.
/// Call inside the transaction that made the change.
pub async fn announce(
    db: &Db,
    conn: &mut AnyConnection,
    except_iss: Option<&str>,
) -> sqlx::Result<()> {
    for p in db::peers::list_on(db, conn).await? {
        if p.firewalled || p.url.is_none() || Some(p.iss.as_str()) == except_iss {
            continue;
        }
        jobs::enqueue(
            db,
            conn,
            &NotifyPeer {
                peer_id: p.id,
                full: false,
            },
            Duration::ZERO,
        )
        .await?;
    }
    Ok(())
}

/// After a commit that changed the catalog: wake the local worker and long-polls.
pub fn changed(app: &App, seq: i64) {
    app.packages_changed();
    app.sync.cursor.send_if_modified(|c| {
        if seq > *c {
            *c = seq;
            true
        } else {
            false
        }
    });
    app.jobs_wake.notify_waiters();
    app.jobs_wake.notify_one();
}
