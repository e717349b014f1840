//! The ODS network's protocol, as this server runs it (DESIGN.md §4): registration
//! (`register`), reading peers' catalogs and applying what they say through the
//! catalog's rules (`pull`), and the timers and long-polls that keep it going
//! (`watch`). It calls the same services as the admin API (`catalog`, `peers`); the
//! incoming side is `http::peer`.

pub mod pull;
pub mod register;
pub mod watch;

/// Peer request signing (kept at its old path for callers outside the crate).
pub use crate::mesh::sign as auth;

use crate::app::App;
use crate::jobs::Job;
use crate::peers::notify::NotifyPeer;
use pull::PullPeer;

/// How many notify or pull jobs for this peer are queued or running.
pub async fn pending_jobs(app: &App, peer_id: i64) -> sqlx::Result<i64> {
    let keys: Vec<String> = [false, true]
        .into_iter()
        .flat_map(|full| {
            [
                NotifyPeer { peer_id, full }.dedup_key(),
                PullPeer { peer_id, full }.dedup_key(),
            ]
        })
        .flatten()
        .collect();
    crate::db::jobs::count_pending(&app.db, &keys).await
}
