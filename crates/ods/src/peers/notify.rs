//! Tells one peer that our catalog changed, so it pulls at once (push, DESIGN.md §4.3).

use std::time::Duration;

use reqwest::Method;
use serde::{Deserialize, Serialize};

use super::client::{self, Link};
use crate::app::App;
use crate::db;
use crate::jobs::{self, Job, Run};

#[derive(Debug, Serialize, Deserialize)]
pub struct NotifyPeer {
    pub peer_id: i64,
    /// When pushing (firewalled mode): send the whole catalog again.
    #[serde(default)]
    pub full: bool,
}

impl Job for NotifyPeer {
    const KIND: &'static str = "notify_peer";
    const MAX_ATTEMPTS: i64 = 20;
    fn dedup_key(&self) -> Option<String> {
        Some(format!("notify:{}:{}", self.peer_id, self.full))
    }
}

impl Run<App> for NotifyPeer {
    async fn run(self, app: App) -> anyhow::Result<()> {
        let Some(peer) = db::peers::by_id(&app.db, self.peer_id).await? else {
            return Ok(());
        };
        let Some(link) = Link::of(&app, &peer)? else {
            return Ok(());
        };
        let res = if db::server::get(&app.db).await?.firewalled {
            // Nobody can pull from us: send the records and offer the bytes ourselves.
            push(&app, &peer, &link, self.full).await
        } else {
            let cursor = db::catalog::current_seq(&app.db).await?;
            let body = serde_json::to_vec(&serde_json::json!({ "cursor": cursor }))?;
            let timeout = Duration::from_secs(15);
            client::call(
                &app,
                &link,
                Method::POST,
                "/api/ods/notify",
                Some(body),
                timeout,
            )
            .await
            .map(|_| ())
            .map_err(anyhow::Error::from)
        };
        let error = res.as_ref().err().map(|e| format!("{e:#}"));
        super::contact(&app, &peer, error).await;
        res
    }
}

/// Firewalled mode: sends our catalog since what the peer has, then offers it every
/// package it is waiting for that we hold.
async fn push(app: &App, peer: &db::peers::PeerRow, link: &Link, full: bool) -> anyhow::Result<()> {
    let mut since = if full { 0 } else { peer.pushed };
    loop {
        let mut entries = db::catalog::since(&app.db, since, 501).await?;
        let more = entries.len() > 500;
        entries.truncate(500);
        let cursor = entries.last().map(|e| e.seq).unwrap_or(since);
        let page = super::CatalogPage {
            identity: super::own_identity(app).await?,
            entries,
            cursor,
            more,
        };
        client::call(
            app,
            link,
            Method::POST,
            "/api/ods/push",
            Some(serde_json::to_vec(&page)?),
            Duration::from_secs(120),
        )
        .await?;
        db::peers::set_pushed(&app.db, peer.id, cursor).await?;
        since = cursor;
        if !more {
            break;
        }
    }
    let held: Vec<String> = db::packages::list(&app.db)
        .await?
        .into_iter()
        .filter(|p| p.status == crate::model::Status::Public)
        .map(|p| p.uuid)
        .collect();
    if held.is_empty() {
        return Ok(());
    }
    let body = serde_json::to_vec(&serde_json::json!({ "uuids": held }))?;
    let resp = client::call(
        app,
        link,
        Method::POST,
        "/api/ods/wants",
        Some(body),
        Duration::from_secs(30),
    )
    .await?;
    let wanted: serde_json::Value = resp.json().await?;
    let mut conn = app.db.writer().acquire().await?;
    for uuid in wanted["wanted"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|u| u.as_str())
    {
        let offer = super::offer::Offer {
            peer_id: peer.id,
            uuid: uuid.to_string(),
        };
        jobs::enqueue(&app.db, &mut conn, &offer, Duration::ZERO).await?;
    }
    app.jobs_wake.notify_one();
    Ok(())
}
