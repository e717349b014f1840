//! Tells one peer that our catalog changed, so it pulls at once (push, DESIGN.md §4.3).

use std::time::Duration;

use reqwest::Method;
use serde::{Deserialize, Serialize};

use super::Job;
use crate::app::App;
use crate::db;
use crate::sync::client::{self, Link};

#[derive(Debug, Serialize, Deserialize)]
pub struct NotifyPeer {
    pub peer_id: i64,
}

impl Job for NotifyPeer {
    const KIND: &'static str = "notify_peer";
    const MAX_ATTEMPTS: i64 = 20;
    fn dedup_key(&self) -> Option<String> {
        Some(format!("notify:{}", self.peer_id))
    }
    async fn run(self, app: App) -> anyhow::Result<()> {
        let Some(peer) = db::peers::by_id(&app.db, self.peer_id).await? else {
            return Ok(());
        };
        let Some(link) = Link::of(&app, &peer)? else {
            return Ok(());
        };
        let cursor = db::catalog::current_seq(&app.db).await?;
        let body = serde_json::to_vec(&serde_json::json!({ "cursor": cursor }))?;
        let res = client::call(
            &app,
            &link,
            Method::POST,
            "/api/ods/notify",
            Some(body),
            Duration::from_secs(15),
        )
        .await;
        crate::sync::watch::contact(&app, &peer, res.as_ref().err().map(|e| e.to_string())).await;
        res?;
        Ok(())
    }
}
