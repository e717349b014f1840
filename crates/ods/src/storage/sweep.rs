//! Periodic housekeeping: staging files of crashed uploads (of this or any node of
//! the site whose heartbeat stopped; see `live_owners`), blobs no package uses,
//! and old finished jobs. It re-queues itself, so exactly one is always pending.

use std::collections::HashSet;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{Context, Removal};
use crate::db;
use crate::jobs::{self, Job, Run};
use crate::model::now_millis;

#[derive(Debug, Serialize, Deserialize)]
pub struct Sweep;

/// The node ids whose staging files and jobs must be left alone: this process, and
/// every node with a recent heartbeat except processes of our node name that are gone.
pub async fn live_owners<C: Context>(ctx: &C) -> sqlx::Result<HashSet<String>> {
    let timeout = ctx.node_timeout().as_millis() as i64;
    let mut live: HashSet<String> = db::nodes::live(ctx.db(), timeout)
        .await?
        .into_iter()
        .map(|n| n.id)
        .filter(|id| !crate::node::gone_here(id, ctx.node_name()))
        .collect();
    live.insert(ctx.worker_id().to_string());
    Ok(live)
}

pub const EVERY: Duration = Duration::from_secs(3600);
/// A blob younger than this may belong to an upload about to commit its row.
pub const BLOB_GRACE_SECS: u64 = 600;

impl Job for Sweep {
    const KIND: &'static str = "sweep";
    fn dedup_key(&self) -> Option<String> {
        Some("sweep".into())
    }
}

impl<C: Context> Run<C> for Sweep {
    async fn run(self, ctx: C) -> anyhow::Result<()> {
        let store = ctx.store();
        let staged = store.sweep_staging(&live_owners(&ctx).await?).await?;
        let known: std::collections::HashSet<String> = db::packages::all_blob_hashes(ctx.db())
            .await?
            .into_iter()
            .collect();
        let mut removed = 0;
        for (sha, age) in store.list().await? {
            if age >= BLOB_GRACE_SECS && !known.contains(&sha) {
                let idle = Duration::from_secs(BLOB_GRACE_SECS);
                if store.delete_if_idle(&sha, idle).await? == Removal::Deleted {
                    removed += 1;
                }
            }
        }
        let pruned = db::jobs::prune_done(ctx.db(), now_millis() - 7 * 86_400_000).await?;
        let nonces = db::nonces::prune(ctx.db(), now_millis() / 1000).await?;
        tracing::debug!(nonces, "expired peer nonces pruned");
        tracing::info!(staged, removed, pruned, "housekeeping done");
        let mut conn = ctx.db().writer().acquire().await?;
        // The running row still holds the key as 'running', so this queues the next one.
        jobs::enqueue(ctx.db(), &mut conn, &Sweep, EVERY).await?;
        Ok(())
    }
}
