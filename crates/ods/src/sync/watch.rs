//! Timers and long-lived connections: anti-entropy pulls from every callable peer on an
//! interval (a full re-read every tenth round), retries of incomplete transfers, and in
//! firewalled mode one outbound long-poll per peer so changes are noticed at once.

use std::collections::HashMap;
use std::time::Duration;

use reqwest::Method;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::pull::PullPeer;
use crate::app::App;
use crate::db;
use crate::jobs;
use crate::peers::client::{self, Link};
use crate::peers::contact;
use crate::peers::notify::NotifyPeer;

/// One anti-entropy round.
pub async fn reconcile_round(app: &App, full: bool) -> anyhow::Result<()> {
    let mut conn = app.db.writer().acquire().await?;
    let firewalled = db::server::get(&app.db).await?.firewalled;
    for p in db::peers::list(&app.db).await? {
        if p.firewalled || p.url.is_none() {
            continue;
        }
        let pull = PullPeer {
            peer_id: p.id,
            full,
        };
        jobs::enqueue(&app.db, &mut conn, &pull, Duration::ZERO).await?;
        if firewalled {
            // Our changes reach others only by push: resend what they may have missed.
            let push = NotifyPeer {
                peer_id: p.id,
                full,
            };
            jobs::enqueue(&app.db, &mut conn, &push, Duration::ZERO).await?;
        }
    }
    for p in db::packages::incomplete(&app.db).await? {
        crate::catalog::fetch::queue(&app.db, &mut conn, &p.uuid, p.file_size).await?;
    }
    app.wake_jobs();
    Ok(())
}

pub async fn run(app: App, shutdown: CancellationToken) {
    let mut polls: HashMap<i64, JoinHandle<()>> = HashMap::new();
    let mut round: u64 = 0;
    let mut next_round = tokio::time::Instant::now() + app.sync.interval;
    loop {
        // Firewalled: keep exactly one long-poll per callable peer.
        let firewalled = db::server::get(&app.db)
            .await
            .map(|s| s.firewalled)
            .unwrap_or(false);
        let wanted: Vec<db::peers::PeerRow> = if firewalled {
            db::peers::list(&app.db)
                .await
                .unwrap_or_default()
                .into_iter()
                .filter(|p| !p.firewalled && p.url.is_some())
                .collect()
        } else {
            Vec::new()
        };
        polls.retain(|id, h| {
            let keep = wanted.iter().any(|p| p.id == *id) && !h.is_finished();
            if !keep {
                h.abort();
            }
            keep
        });
        for p in wanted {
            polls
                .entry(p.id)
                .or_insert_with(|| tokio::spawn(long_poll(app.clone(), p.id)));
        }
        if tokio::time::Instant::now() >= next_round {
            round += 1;
            if let Err(e) = reconcile_round(&app, round.is_multiple_of(10)).await {
                tracing::warn!(error = %format!("{e:#}"), "anti-entropy round failed");
            }
            next_round = tokio::time::Instant::now() + app.sync.interval;
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(2).min(app.sync.interval)) => {}
            _ = shutdown.cancelled() => break,
        }
    }
    for (_, h) in polls {
        h.abort();
    }
}

/// Waits on a peer's change cursor and pulls as soon as it moves.
async fn long_poll(app: App, peer_id: i64) {
    let mut seen: Option<i64> = None;
    let mut backoff = Duration::from_secs(1);
    loop {
        let Ok(Some(peer)) = db::peers::by_id(&app.db, peer_id).await else {
            return;
        };
        let link = match Link::of(&app, &peer) {
            Ok(Some(l)) => l,
            _ => return,
        };
        let since = seen.unwrap_or(-1);
        let path = format!("/api/ods/events?since={since}&wait=25");
        let res = client::call(
            &app,
            &link,
            Method::GET,
            &path,
            None,
            Duration::from_secs(40),
        )
        .await;
        let cursor = match res {
            Ok(resp) => resp
                .json::<serde_json::Value>()
                .await
                .ok()
                .and_then(|v| v["cursor"].as_i64()),
            Err(e) => {
                contact(&app, &peer, Some(e.to_string())).await;
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(60));
                continue;
            }
        };
        backoff = Duration::from_secs(1);
        if let Some(c) = cursor
            && Some(c) != seen
        {
            seen = Some(c);
            if let Err(e) = super::pull::queue(&app, peer_id, false).await {
                tracing::warn!(%e, "queueing a pull");
            }
        }
    }
}
