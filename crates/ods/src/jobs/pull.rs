//! Reads a peer's catalog since our cursor and applies every record (pull and
//! anti-entropy, DESIGN.md §4.3). `full` re-reads from the start, so even a change
//! missed by the cursor is caught.

use std::time::Duration;

use reqwest::Method;
use serde::{Deserialize, Serialize};

use super::Job;
use crate::app::App;
use crate::db;
use crate::sync::client::{self, Link};

#[derive(Debug, Serialize, Deserialize)]
pub struct PullPeer {
    pub peer_id: i64,
    #[serde(default)]
    pub full: bool,
}

/// One page of a peer's catalog (`GET /api/ods/catalog`).
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CatalogPage {
    pub identity: Identity,
    pub entries: Vec<db::catalog::Record>,
    pub cursor: i64,
    pub more: bool,
}

pub use crate::sync::register::Hello as Identity;

/// Queues a pull from a peer and wakes the local worker.
pub async fn queue(app: &App, peer_id: i64, full: bool) -> sqlx::Result<()> {
    let mut conn = app.db.writer().acquire().await?;
    super::enqueue(
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
    async fn run(self, app: App) -> anyhow::Result<()> {
        let Some(peer) = db::peers::by_id(&app.db, self.peer_id).await? else {
            return Ok(());
        };
        let Some(link) = Link::of(&app, &peer)? else {
            return Ok(());
        };
        let res = pull(&app, &peer, &link, self.full).await;
        crate::sync::watch::contact(&app, &peer, res.as_ref().err().map(|e| format!("{e:#}")))
            .await;
        res
    }
}

/// Keeps what a peer says about itself (name, URL, stage, mode) up to date.
pub async fn refresh_identity(
    app: &App,
    peer: &db::peers::PeerRow,
    id: &Identity,
) -> sqlx::Result<()> {
    if id.name != peer.name
        || id.url != peer.url
        || id.stage != peer.stage
        || id.firewalled_mode != peer.firewalled
    {
        db::peers::update_identity(
            &app.db,
            &db::peers::Identity {
                iss: id.iss.clone(),
                name: id.name.clone(),
                url: id.url.clone(),
                stage: id.stage.clone(),
                firewalled: id.firewalled_mode,
            },
        )
        .await?;
    }
    Ok(())
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
        for r in &page.entries {
            crate::sync::apply::remote(app, r, peer).await?;
        }
        cursor = cursor.max(page.cursor);
        if cursor > peer.pulled || full {
            db::peers::set_pulled(&app.db, peer.id, cursor.max(peer.pulled)).await?;
        }
        if !page.more {
            return Ok(());
        }
    }
}
