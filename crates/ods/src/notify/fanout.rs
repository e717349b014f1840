//! The fan-out: turns recorded events into webhook deliveries. Events are recorded by
//! whatever changed (`db::events::record`, inside the change's transaction), so this
//! needs nothing from those callers: it reads up to `BATCH` events it has not fanned
//! out yet and, in one transaction, marks each fanned out (`notify_fanned`) and
//! writes a delivery and its job per webhook that wants it, and an outbox item and
//! the recipient's digest job per email recipient that wants it. A crash anywhere loses
//! nothing and sends nothing twice from here (the mark and the jobs commit together).
//!
//! Why a set of marks and not only an id cursor: on PostgreSQL and MariaDB two
//! transactions can commit in the other order than their event ids, so an event with
//! a lower id may appear after a higher one was fanned out; a bare cursor would skip
//! it. The cursor moves only past a contiguous run of marked events older than a
//! minute (`advance_cursor`), and the marks below it are dropped, so both stay small.
//! The mark is an insert that ignores a duplicate, so two processes sharing the
//! database never fan one event out twice.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::webhook::Deliver;
use super::{email, message};
use crate::app::App;
use crate::db;
use crate::jobs;
use crate::model::now_unix;

/// Events fanned out per pass.
const BATCH: i64 = 100;
/// An event this old is committed or never will be (ODS keeps no transaction open
/// that long).
const SETTLE_SECS: i64 = 60;

/// Whether a webhook's `events` (a JSON list) include `kind`.
pub fn wants(events_json: &str, kind: &str) -> bool {
    let list: Vec<String> = serde_json::from_str(events_json).unwrap_or_default();
    list.iter().any(|e| e == "*" || e == kind)
}

/// Runs until `stop`, polling every `poll` (`ODS_JOB_POLL_MS`).
pub async fn run(app: App, poll: Duration, stop: CancellationToken) {
    if let Err(e) = db::webhooks::init_cursor(&app.db).await {
        tracing::warn!(%e, "starting the notification cursor failed; retrying later");
    }
    loop {
        let more = match pass(&app).await {
            Ok(n) => n as i64 == BATCH,
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), "fanning out events failed; retrying");
                false
            }
        };
        if more {
            continue;
        }
        tokio::select! {
            _ = tokio::time::sleep(poll) => {}
            _ = stop.cancelled() => break,
        }
    }
}

/// Fans `events` out in the caller's transaction: the webhooks and email subscriptions
/// are read once; events nothing wants are marked in one statement, the others one by
/// one with their deliveries. Returns how many deliveries and outbox items it queued.
async fn fan_out(
    app: &App,
    tx: &mut sqlx::AnyConnection,
    events: &[db::events::EventRow],
) -> anyhow::Result<usize> {
    let hooks = db::webhooks::list_enabled_on(&app.db, tx).await?;
    let subscriptions = db::email::subscriptions_on(&app.db, tx).await?;
    let wanted = |kind: &str| {
        hooks.iter().any(|h| wants(&h.events, kind))
            || subscriptions.iter().any(|s| wants(&s.events, kind))
    };
    let unwanted: Vec<i64> = events
        .iter()
        .filter(|e| !wanted(&e.kind))
        .map(|e| e.id)
        .collect();
    db::webhooks::claim_events(&app.db, tx, &unwanted).await?;
    let mut server = None;
    let mut queued = 0;
    for e in events.iter().filter(|e| wanted(&e.kind)) {
        if !db::webhooks::claim_event(&app.db, tx, e.id).await? {
            continue;
        }
        let hooks: Vec<_> = hooks.iter().filter(|h| wants(&h.events, &e.kind)).collect();
        let mut recipients: Vec<String> = subscriptions
            .iter()
            .filter(|s| wants(&s.events, &e.kind))
            .flat_map(|s| serde_json::from_str::<Vec<String>>(&s.recipients).unwrap_or_default())
            .collect();
        recipients.sort();
        recipients.dedup();
        if hooks.is_empty() && recipients.is_empty() {
            continue;
        }
        let server = match &server {
            Some(s) => s,
            None => server.insert(message::server_info(app, tx).await?),
        };
        let msg = message::for_event(app, tx, server, e).await?;
        let item = email::item(e, server, msg.data.package.as_ref().map(|p| p.id));
        let item = serde_json::to_string(&item)?;
        for to in &recipients {
            db::email::outbox_add(&app.db, tx, to, Some(e.id), &item).await?;
            let digest = email::Digest { to: to.clone() };
            jobs::enqueue(&app.db, tx, &digest, app.config.email.digest_window).await?;
            queued += 1;
        }
        let body = serde_json::to_string(&msg)?;
        for h in &hooks {
            let msg_id = format!("msg_{}", crate::secrets::random_id());
            let id = db::webhooks::insert_delivery(
                &app.db,
                tx,
                h.id,
                Some(e.id),
                &e.kind,
                &msg_id,
                &body,
            )
            .await?;
            jobs::enqueue(&app.db, tx, &Deliver { delivery: id }, Duration::ZERO).await?;
            queued += 1;
        }
    }
    Ok(queued)
}

/// One pass: the events seen (fanned out here or by another process), all in one
/// transaction.
pub async fn pass(app: &App) -> anyhow::Result<usize> {
    let Some(cursor) = db::webhooks::cursor(&app.db).await? else {
        db::webhooks::init_cursor(&app.db).await?;
        return Ok(0);
    };
    let events = db::webhooks::unfanned_events(&app.db, cursor, BATCH).await?;
    let mut queued = 0;
    if !events.is_empty() {
        let mut tx = app.db.begin().await?;
        queued = fan_out(app, &mut tx, &events).await?;
        tx.commit().await?;
    }
    if queued > 0 {
        app.notify_wake.notify_one();
    }
    db::webhooks::advance_cursor(&app.db, now_unix() - SETTLE_SECS).await?;
    Ok(events.len())
}

#[cfg(test)]
mod tests {
    #[test]
    fn filters_match_names_or_star() {
        assert!(super::wants(r#"["*"]"#, "package.public"));
        assert!(super::wants(
            r#"["package.deleted","package.public"]"#,
            "package.public"
        ));
        assert!(!super::wants(r#"["package.deleted"]"#, "package.public"));
        assert!(!super::wants("not json", "package.public"));
    }
}
