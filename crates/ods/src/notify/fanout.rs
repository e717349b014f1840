//! The fan-out: turns recorded events into webhook deliveries. Events are recorded by
//! whatever changed (`db::events::record`, inside the change's transaction), so this
//! needs nothing from those callers: it reads the events it has not fanned out yet,
//! and for each one, in one transaction, marks it fanned out (`notify_fanned`) and
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

/// One pass: the events seen (fanned out here or by another process).
pub async fn pass(app: &App) -> anyhow::Result<usize> {
    let Some(cursor) = db::webhooks::cursor(&app.db).await? else {
        db::webhooks::init_cursor(&app.db).await?;
        return Ok(0);
    };
    let events = db::webhooks::unfanned_events(&app.db, cursor, BATCH).await?;
    let mut queued = 0;
    for e in &events {
        let mut tx = app.db.begin().await?;
        if !db::webhooks::claim_event(&app.db, &mut tx, e.id).await? {
            tx.rollback().await?;
            continue;
        }
        let hooks: Vec<_> = db::webhooks::list_enabled_on(&app.db, &mut tx)
            .await?
            .into_iter()
            .filter(|h| wants(&h.events, &e.kind))
            .collect();
        let mut recipients: Vec<String> = db::email::subscriptions_on(&app.db, &mut tx)
            .await?
            .into_iter()
            .filter(|s| wants(&s.events, &e.kind))
            .flat_map(|s| serde_json::from_str::<Vec<String>>(&s.recipients).unwrap_or_default())
            .collect();
        recipients.sort();
        recipients.dedup();
        if !hooks.is_empty() || !recipients.is_empty() {
            let server = message::server_info(app, &mut tx).await?;
            let msg = message::for_event(app, &mut tx, &server, e).await?;
            let item = email::item(e, &server, msg.data.package.as_ref().map(|p| p.id));
            let item = serde_json::to_string(&item)?;
            for to in &recipients {
                db::email::outbox_add(&app.db, &mut tx, to, Some(e.id), &item).await?;
                let digest = email::Digest { to: to.clone() };
                jobs::enqueue(&app.db, &mut tx, &digest, app.config.email.digest_window).await?;
                queued += 1;
            }
            let body = serde_json::to_string(&msg)?;
            for h in &hooks {
                let msg_id = format!("msg_{}", crate::secrets::random_id());
                let id = db::webhooks::insert_delivery(
                    &app.db,
                    &mut tx,
                    h.id,
                    Some(e.id),
                    &e.kind,
                    &msg_id,
                    &body,
                )
                .await?;
                jobs::enqueue(&app.db, &mut tx, &Deliver { delivery: id }, Duration::ZERO).await?;
                queued += 1;
            }
        }
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
