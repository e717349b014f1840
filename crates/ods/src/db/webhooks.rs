//! The webhook tables (migration 5): subscriptions, deliveries (one message to one
//! webhook), the attempts of each delivery, and the set of events already fanned out.
//! Times in `webhooks` and `webhook_deliveries` are Unix seconds; attempts keep
//! milliseconds (`at_ms`) for the delivery log.

use sqlx::{AnyConnection, FromRow, Row};

use super::{Db, Flag};
use crate::model::now_unix;

#[derive(Debug, Clone, FromRow)]
pub struct WebhookRow {
    pub id: i64,
    pub url: String,
    /// JSON list of event names, or `["*"]`.
    pub events: String,
    pub secret_sealed: String,
    #[sqlx(try_from = "Flag")]
    pub enabled: bool,
    pub created: i64,
    pub updated: i64,
}

const HOOK_COLS: &str = "id, url, COALESCE(events, '[]') AS events, COALESCE(secret_sealed, '') AS secret_sealed, enabled, created, updated";

pub async fn list(db: &Db) -> sqlx::Result<Vec<WebhookRow>> {
    db.q(&format!("SELECT {HOOK_COLS} FROM webhooks ORDER BY id"))
        .fetch_all(db.reader())
        .await?
        .iter()
        .map(WebhookRow::from_row)
        .collect()
}

/// The enabled webhooks, read inside the fan-out's transaction.
pub async fn list_enabled_on(db: &Db, conn: &mut AnyConnection) -> sqlx::Result<Vec<WebhookRow>> {
    db.q(&format!(
        "SELECT {HOOK_COLS} FROM webhooks WHERE enabled = 1 ORDER BY id"
    ))
    .fetch_all(conn)
    .await?
    .iter()
    .map(WebhookRow::from_row)
    .collect()
}

pub async fn get(db: &Db, id: i64) -> sqlx::Result<Option<WebhookRow>> {
    db.q(&format!("SELECT {HOOK_COLS} FROM webhooks WHERE id = ?"))
        .bind(id)
        .fetch_optional(db.writer())
        .await?
        .as_ref()
        .map(WebhookRow::from_row)
        .transpose()
}

pub async fn insert(
    db: &Db,
    url: &str,
    events: &str,
    secret_sealed: &str,
    enabled: bool,
) -> sqlx::Result<i64> {
    let now = now_unix();
    db.insert_id(
        db.writer(),
        "INSERT INTO webhooks (url, events, secret_sealed, enabled, created, updated) VALUES (?, ?, ?, ?, ?, ?)",
        |q| {
            q.bind(url.to_string())
                .bind(events.to_string())
                .bind(secret_sealed.to_string())
                .bind(enabled as i64)
                .bind(now)
                .bind(now)
        },
    )
    .await
}

/// Writes every changeable field of `w` (the caller merged the patch into it).
pub async fn update(db: &Db, w: &WebhookRow) -> sqlx::Result<bool> {
    let r = db
        .q("UPDATE webhooks SET url = ?, events = ?, secret_sealed = ?, enabled = ?, updated = ? WHERE id = ?")
        .bind(w.url.clone())
        .bind(w.events.clone())
        .bind(w.secret_sealed.clone())
        .bind(w.enabled as i64)
        .bind(now_unix())
        .bind(w.id)
        .execute(db.writer())
        .await?;
    Ok(r.rows_affected() == 1)
}

/// Deletes the webhook; its pending deliveries then fail when they run (and its log
/// goes with it).
pub async fn delete(db: &Db, id: i64) -> sqlx::Result<bool> {
    let mut tx = db.begin().await?;
    let r = db
        .q("DELETE FROM webhooks WHERE id = ?")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    for sql in [
        "DELETE FROM webhook_attempts WHERE webhook_id = ?",
        "DELETE FROM webhook_deliveries WHERE webhook_id = ?",
    ] {
        db.q(sql).bind(id).execute(&mut *tx).await?;
    }
    tx.commit().await?;
    Ok(r.rows_affected() == 1)
}

#[derive(Debug, Clone, FromRow)]
pub struct DeliveryRow {
    pub id: i64,
    pub webhook_id: i64,
    pub event_id: Option<i64>,
    pub event_type: String,
    pub msg_id: String,
    pub body: String,
    /// `pending`, `delivered` or `failed`.
    pub state: String,
    pub attempts: i64,
    pub last_error: Option<String>,
    pub created: i64,
    pub updated: i64,
}

const DELIVERY_COLS: &str = "id, webhook_id, event_id, event_type, msg_id, COALESCE(body, '') AS body, state, attempts, last_error, created, updated";

/// A new pending delivery, written in the caller's transaction.
pub async fn insert_delivery(
    db: &Db,
    conn: &mut AnyConnection,
    webhook_id: i64,
    event_id: Option<i64>,
    event_type: &str,
    msg_id: &str,
    body: &str,
) -> sqlx::Result<i64> {
    let now = now_unix();
    db.insert_id(
        conn,
        "INSERT INTO webhook_deliveries (webhook_id, event_id, event_type, msg_id, body, state, attempts, created, updated) \
         VALUES (?, ?, ?, ?, ?, 'pending', 0, ?, ?)",
        |q| {
            q.bind(webhook_id)
                .bind(event_id)
                .bind(event_type.to_string())
                .bind(msg_id.to_string())
                .bind(body.to_string())
                .bind(now)
                .bind(now)
        },
    )
    .await
}

pub async fn delivery(db: &Db, id: i64) -> sqlx::Result<Option<DeliveryRow>> {
    db.q(&format!(
        "SELECT {DELIVERY_COLS} FROM webhook_deliveries WHERE id = ?"
    ))
    .bind(id)
    .fetch_optional(db.writer())
    .await?
    .as_ref()
    .map(DeliveryRow::from_row)
    .transpose()
}

/// The newest deliveries of a webhook first.
pub async fn deliveries(db: &Db, webhook_id: i64, limit: i64) -> sqlx::Result<Vec<DeliveryRow>> {
    db.q(&format!(
        "SELECT {DELIVERY_COLS} FROM webhook_deliveries WHERE webhook_id = ? ORDER BY id DESC LIMIT ?"
    ))
    .bind(webhook_id)
    .bind(limit)
    .fetch_all(db.reader())
    .await?
    .iter()
    .map(DeliveryRow::from_row)
    .collect()
}

/// One try of a delivery, as recorded.
#[derive(Debug, Clone, FromRow)]
pub struct AttemptRow {
    pub id: i64,
    pub delivery_id: i64,
    pub at_ms: i64,
    pub status_code: Option<i64>,
    pub duration_ms: i64,
    pub error: Option<String>,
}

pub struct NewAttempt<'a> {
    pub delivery_id: i64,
    pub webhook_id: i64,
    pub at_ms: i64,
    pub status_code: Option<i64>,
    pub duration_ms: i64,
    pub error: Option<&'a str>,
}

/// Records an attempt and moves the delivery to `state` (`pending` while retries
/// remain), in the caller's transaction.
pub async fn record_attempt(
    db: &Db,
    conn: &mut AnyConnection,
    a: &NewAttempt<'_>,
    state: &str,
) -> sqlx::Result<()> {
    db.q("INSERT INTO webhook_attempts (delivery_id, webhook_id, at_ms, status_code, duration_ms, error) VALUES (?, ?, ?, ?, ?, ?)")
        .bind(a.delivery_id)
        .bind(a.webhook_id)
        .bind(a.at_ms)
        .bind(a.status_code)
        .bind(a.duration_ms)
        .bind(a.error.map(str::to_string))
        .execute(&mut *conn)
        .await?;
    db.q("UPDATE webhook_deliveries SET state = ?, attempts = attempts + 1, last_error = ?, updated = ? WHERE id = ?")
        .bind(state.to_string())
        .bind(a.error.map(str::to_string))
        .bind(now_unix())
        .bind(a.delivery_id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Marks a delivery failed without an attempt (its webhook is gone or disabled, or
/// its job gave up).
pub async fn fail_delivery(db: &Db, id: i64, error: &str) -> sqlx::Result<()> {
    db.q("UPDATE webhook_deliveries SET state = 'failed', last_error = ?, updated = ? WHERE id = ? AND state = 'pending'")
        .bind(error.to_string())
        .bind(now_unix())
        .bind(id)
        .execute(db.writer())
        .await?;
    Ok(())
}

/// The attempts of these deliveries, oldest first.
pub async fn attempts(db: &Db, delivery_ids: &[i64]) -> sqlx::Result<Vec<AttemptRow>> {
    if delivery_ids.is_empty() {
        return Ok(Vec::new());
    }
    let marks = super::marks(delivery_ids.len());
    let sql = format!(
        "SELECT id, delivery_id, at_ms, status_code, duration_ms, error FROM webhook_attempts \
         WHERE delivery_id IN ({marks}) ORDER BY id"
    );
    let mut q = db.q(&sql);
    for id in delivery_ids {
        q = q.bind(*id);
    }
    q.fetch_all(db.reader())
        .await?
        .iter()
        .map(AttemptRow::from_row)
        .collect()
}

/// Events with an id above `after`, not yet fanned out, oldest first.
pub async fn unfanned_events(
    db: &Db,
    after: i64,
    limit: i64,
) -> sqlx::Result<Vec<super::events::EventRow>> {
    db.q(
        "SELECT e.id, e.kind, e.package_uuid, e.filename, e.peer_iss, e.message, e.created FROM events e \
         WHERE e.id > ? AND NOT EXISTS (SELECT 1 FROM notify_fanned f WHERE f.event_id = e.id) \
         ORDER BY e.id LIMIT ?",
    )
    .bind(after)
    .bind(limit)
    .fetch_all(db.reader())
    .await?
    .iter()
    .map(super::events::EventRow::from_row)
    .collect()
}

/// Claims an event for fan-out in the caller's transaction: false when another
/// worker already did.
pub async fn claim_event(db: &Db, conn: &mut AnyConnection, event_id: i64) -> sqlx::Result<bool> {
    let r = db
        .q(&db.insert_ignore("INSERT INTO notify_fanned (event_id) VALUES (?)"))
        .bind(event_id)
        .execute(conn)
        .await?;
    Ok(r.rows_affected() == 1)
}

/// Claims events `ids` (ascending) for fan-out in the caller's transaction, in one
/// statement, where the caller needs no answer: events nothing wants.
pub async fn claim_events(db: &Db, conn: &mut AnyConnection, ids: &[i64]) -> sqlx::Result<()> {
    if ids.is_empty() {
        return Ok(());
    }
    let rows = super::rows("(?)", ids.len());
    let sql = db.insert_ignore(&format!(
        "INSERT INTO notify_fanned (event_id) VALUES {rows}"
    ));
    let mut q = db.q(&sql);
    for id in ids {
        q = q.bind(*id);
    }
    q.execute(conn).await?;
    Ok(())
}

/// The fan-out cursor: every event at or below it is done with.
pub async fn cursor(db: &Db) -> sqlx::Result<Option<i64>> {
    let r = db
        .q("SELECT value FROM counters WHERE name = 'notify_cursor'")
        .fetch_optional(db.writer())
        .await?;
    r.map(|r| r.try_get::<i64, _>(0)).transpose()
}

/// Starts the cursor at the newest event (events from before notifications existed
/// are not sent); a no-op when it exists.
pub async fn init_cursor(db: &Db) -> sqlx::Result<()> {
    let max: Option<i64> = db
        .q("SELECT MAX(id) FROM events")
        .fetch_one(db.writer())
        .await?
        .try_get(0)?;
    db.q(&db.insert_ignore("INSERT INTO counters (name, value) VALUES ('notify_cursor', ?)"))
        .bind(max.unwrap_or(0))
        .execute(db.writer())
        .await?;
    Ok(())
}

/// Moves the cursor to the highest fanned-out event created before `settled_before`
/// (Unix seconds) and forgets the marks at or below it. An event below the cursor
/// whose transaction had not committed yet would be skipped, so only events older
/// than any transaction ODS keeps open count as settled.
pub async fn advance_cursor(db: &Db, settled_before: i64) -> sqlx::Result<()> {
    let Some(current) = cursor(db).await? else {
        return Ok(());
    };
    let top: Option<i64> = db
        .q("SELECT MAX(f.event_id) FROM notify_fanned f JOIN events e ON e.id = f.event_id WHERE e.created < ?")
        .bind(settled_before)
        .fetch_one(db.writer())
        .await?
        .try_get(0)?;
    let Some(top) = top.filter(|t| *t > current) else {
        return Ok(());
    };
    // Only past a contiguous run: an unfanned event below `top` keeps the cursor.
    let gap: Option<i64> = db
        .q(
            "SELECT MIN(e.id) FROM events e WHERE e.id > ? AND e.id <= ? \
            AND NOT EXISTS (SELECT 1 FROM notify_fanned f WHERE f.event_id = e.id)",
        )
        .bind(current)
        .bind(top)
        .fetch_one(db.writer())
        .await?
        .try_get(0)?;
    let to = match gap {
        Some(g) => g - 1,
        None => top,
    };
    if to <= current {
        return Ok(());
    }
    let mut tx = db.begin().await?;
    db.q("UPDATE counters SET value = ? WHERE name = 'notify_cursor' AND value < ?")
        .bind(to)
        .bind(to)
        .execute(&mut *tx)
        .await?;
    db.q("DELETE FROM notify_fanned WHERE event_id <= ?")
        .bind(to)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}
