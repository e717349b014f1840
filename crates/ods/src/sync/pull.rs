//! Reads a peer's catalog since our cursor and applies every record (pull and
//! anti-entropy, DESIGN.md §4.3). `full` re-reads from the start, so even a change
//! missed by the cursor is caught.

use std::time::Duration;

use reqwest::Method;
use serde::{Deserialize, Serialize};

use crate::app::App;
use crate::db;
use crate::jobs::{self, Job, Run};
use crate::peers::client::{self, Link};
use crate::peers::{CatalogPage, contact, refresh_identity};

#[derive(Debug, Serialize, Deserialize)]
pub struct PullPeer {
    pub peer_id: i64,
    #[serde(default)]
    pub full: bool,
}

/// Queues a pull from a peer and wakes the local worker.
pub async fn queue(app: &App, peer_id: i64, full: bool) -> sqlx::Result<()> {
    let mut conn = app.db.writer().acquire().await?;
    jobs::enqueue(
        &app.db,
        &mut conn,
        &PullPeer { peer_id, full },
        Duration::ZERO,
    )
    .await?;
    app.jobs_wake.notify_one();
    Ok(())
}

impl Job for PullPeer {
    const KIND: &'static str = "pull_peer";
    const MAX_ATTEMPTS: i64 = 20;
    fn dedup_key(&self) -> Option<String> {
        Some(format!("pull:{}:{}", self.peer_id, self.full))
    }
}

impl Run<App> for PullPeer {
    async fn run(self, app: App) -> anyhow::Result<()> {
        let Some(peer) = db::peers::by_id(&app.db, self.peer_id).await? else {
            return Ok(());
        };
        let Some(link) = Link::of(&app, &peer)? else {
            return Ok(());
        };
        let res = pull(&app, &peer, &link, self.full).await;
        contact(&app, &peer, res.as_ref().err().map(|e| format!("{e:#}"))).await;
        res
    }
}

async fn pull(app: &App, peer: &db::peers::PeerRow, link: &Link, full: bool) -> anyhow::Result<()> {
    let mut cursor = if full { 0 } else { peer.pulled };
    loop {
        let path = format!("/api/ods/catalog?since={cursor}&limit=500");
        let resp =
            client::call(app, link, Method::GET, &path, None, Duration::from_secs(60)).await?;
        let page: CatalogPage = resp
            .json()
            .await
            .map_err(|e| anyhow::anyhow!("catalog from {}: {e}", peer.name))?;
        if page.identity.iss != peer.iss {
            anyhow::bail!(
                "the server at {} now has ISS {}, not {}: register again",
                link.url,
                page.identity.iss,
                peer.iss
            );
        }
        refresh_identity(app, peer, &page.identity).await?;
        crate::catalog::remote_many(app, &page.entries, peer).await?;
        cursor = cursor.max(page.cursor);
        if cursor > peer.pulled || full {
            db::peers::set_pulled(&app.db, peer.id, cursor.max(peer.pulled)).await?;
        }
        if !page.more {
            return Ok(());
        }
    }
}
