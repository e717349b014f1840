//! The in-process state of this server's links with its peers, held by `App` and
//! passed to whatever talks to peers: the hybrid logical clock, the replay cache of
//! signed requests and the signing rules, per-peer rate limits, transfer counters,
//! which transfers run in this process, and the shared HTTP client. Nothing here
//! touches the database or `App`.

pub mod hlc;
pub mod limit;
pub mod sign;

use std::collections::HashSet;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::{Semaphore, watch};

/// Sync state shared by the process (`app.sync`).
pub struct MeshState {
    pub own_iss: String,
    pub hlc: hlc::Hlc,
    pub nonces: sign::NonceCache,
    pub http: reqwest::Client,
    /// Latest local change number known to this process (wakes long-polls).
    pub cursor: watch::Sender<i64>,
    /// Limits parallel incoming transfers on this server.
    pub transfers: Semaphore,
    /// The packages whose transfer runs in this process (one transfer per package).
    pub in_flight: InFlight,
    pub rates: limit::RateLimits,
    /// Manifests a peer sent ahead of their transfers, as JSON, by (peer link id,
    /// package uuid); each is taken once (`peers::manifests`).
    pub manifests_ahead: moka::sync::Cache<(i64, String), Vec<u8>>,
    /// One manifests request at a time per peer link: transfers that start together
    /// wait for the first one's answer instead of each asking for the same list.
    pub manifests_asking: moka::sync::Cache<i64, std::sync::Arc<tokio::sync::Mutex<()>>>,
    pub stats: Stats,
    pub interval: Duration,
}

impl MeshState {
    pub fn new(
        own_iss: &str,
        max_transfers: usize,
        interval: Duration,
        peer_ca: &[reqwest::Certificate],
    ) -> MeshState {
        MeshState {
            own_iss: own_iss.to_string(),
            hlc: hlc::Hlc::new(own_iss),
            nonces: sign::NonceCache::default(),
            http: http_client(peer_ca),
            cursor: watch::channel(0).0,
            transfers: Semaphore::new(max_transfers.max(1)),
            in_flight: InFlight::default(),
            rates: limit::RateLimits::default(),
            manifests_ahead: moka::sync::Cache::builder()
                .max_capacity(16 * 1024)
                .time_to_live(Duration::from_secs(60))
                .build(),
            manifests_asking: moka::sync::Cache::builder()
                .time_to_idle(Duration::from_secs(600))
                .build(),
            stats: Stats::default(),
            interval,
        }
    }
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
    /// A verified chunk of `bytes` from the peer `iss` (also in `/metrics`).
    pub fn fetched(&self, iss: &str, bytes: u64) {
        metrics::counter!("ods_peer_fetched_bytes_total", "peer" => iss.to_string())
            .increment(bytes);
        self.chunks_fetched.fetch_add(1, Ordering::Relaxed);
        self.chunk_bytes_fetched.fetch_add(bytes, Ordering::Relaxed);
    }
    /// A chunk fetch from the peer `iss` that failed or did not verify.
    pub fn transfer_error(&self, iss: &str) {
        metrics::counter!("ods_peer_transfer_errors_total", "peer" => iss.to_string()).increment(1);
    }
    /// A chunk of `bytes` sent to the peer `iss` (also in `/metrics`).
    pub fn served(&self, iss: &str, bytes: u64) {
        metrics::counter!("ods_peer_served_bytes_total", "peer" => iss.to_string())
            .increment(bytes);
        self.chunks_served.fetch_add(1, Ordering::Relaxed);
        self.chunk_bytes_served.fetch_add(bytes, Ordering::Relaxed);
    }
}

/// Package uuids with a transfer running in this process.
#[derive(Default)]
pub struct InFlight(Mutex<HashSet<String>>);

/// Held while a transfer of one package runs; dropping it lets the next one start.
pub struct Claim<'a> {
    set: &'a InFlight,
    uuid: String,
}

impl InFlight {
    /// The claim on `uuid`, unless a transfer of it runs already.
    pub fn take(&self, uuid: &str) -> Option<Claim<'_>> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(uuid.to_string())
            .then(|| Claim {
                set: self,
                uuid: uuid.to_string(),
            })
    }
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        self.set
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.uuid);
    }
}

/// The HTTP client every peer call goes through: https certificates are checked
/// against the system's roots and `peer_ca` (`peer_ca_file`), never skipped.
pub fn http_client(peer_ca: &[reqwest::Certificate]) -> reqwest::Client {
    reqwest::Client::builder()
        .tls_certs_merge(peer_ca.iter().cloned())
        .connect_timeout(Duration::from_secs(5))
        .pool_idle_timeout(Duration::from_secs(60))
        .user_agent(concat!("ods/", env!("CARGO_PKG_VERSION")))
        .build()
        .expect("building the HTTP client")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_transfer_per_package() {
        let set = InFlight::default();
        let a = set.take("a").expect("first claim");
        assert!(
            set.take("a").is_none(),
            "a second claim on a running transfer"
        );
        assert!(set.take("b").is_some());
        drop(a);
        assert!(set.take("a").is_some(), "claimable again once released");
    }
}
