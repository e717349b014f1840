//! The email tables (migration 5): the SMTP settings (one row), subscriptions, and
//! the outbox of items waiting for a recipient's next digest. Times are Unix seconds.

use sqlx::{AnyConnection, FromRow, Row};

use super::Db;
use crate::model::now_unix;

#[derive(Debug, Clone, FromRow)]
pub struct SettingsRow {
    pub host: String,
    pub port: i64,
    /// `none`, `starttls` or `tls`.
    pub security: String,
    pub username: Option<String>,
    pub password_sealed: Option<String>,
    pub from_addr: String,
    pub updated: i64,
}

pub async fn settings(db: &Db) -> sqlx::Result<Option<SettingsRow>> {
    db.q("SELECT host, port, security, username, password_sealed, from_addr, updated FROM email_settings WHERE id = 1")
        .fetch_optional(db.writer())
        .await?
        .as_ref()
        .map(SettingsRow::from_row)
        .transpose()
}

/// Replaces the settings.
pub async fn put_settings(db: &Db, s: &SettingsRow) -> sqlx::Result<()> {
    let mut tx = db.begin().await?;
    db.q("DELETE FROM email_settings WHERE id = 1")
        .execute(&mut *tx)
        .await?;
    db.q("INSERT INTO email_settings (id, host, port, security, username, password_sealed, from_addr, updated) VALUES (1, ?, ?, ?, ?, ?, ?, ?)")
        .bind(s.host.clone())
        .bind(s.port)
        .bind(s.security.clone())
        .bind(s.username.clone())
        .bind(s.password_sealed.clone())
        .bind(s.from_addr.clone())
        .bind(now_unix())
        .execute(&mut *tx)
        .await?;
    tx.commit().await
}

#[derive(Debug, Clone, FromRow)]
pub struct SubscriptionRow {
    pub id: i64,
    /// JSON list of addresses.
    pub recipients: String,
    /// JSON list of event names, or `["*"]`.
    pub events: String,
    pub created: i64,
}

const SUB_COLS: &str =
    "id, COALESCE(recipients, '[]') AS recipients, COALESCE(events, '[]') AS events, created";

pub async fn subscriptions(db: &Db) -> sqlx::Result<Vec<SubscriptionRow>> {
    db.q(&format!(
        "SELECT {SUB_COLS} FROM email_subscriptions ORDER BY id"
    ))
    .fetch_all(db.reader())
    .await?
    .iter()
    .map(SubscriptionRow::from_row)
    .collect()
}

pub async fn subscriptions_on(
    db: &Db,
    conn: &mut AnyConnection,
) -> sqlx::Result<Vec<SubscriptionRow>> {
    db.q(&format!(
        "SELECT {SUB_COLS} FROM email_subscriptions ORDER BY id"
    ))
    .fetch_all(conn)
    .await?
    .iter()
    .map(SubscriptionRow::from_row)
    .collect()
}

pub async fn subscription(db: &Db, id: i64) -> sqlx::Result<Option<SubscriptionRow>> {
    db.q(&format!(
        "SELECT {SUB_COLS} FROM email_subscriptions WHERE id = ?"
    ))
    .bind(id)
    .fetch_optional(db.writer())
    .await?
    .as_ref()
    .map(SubscriptionRow::from_row)
    .transpose()
}

pub async fn insert_subscription(db: &Db, recipients: &str, events: &str) -> sqlx::Result<i64> {
    db.insert_id(
        db.writer(),
        "INSERT INTO email_subscriptions (recipients, events, created) VALUES (?, ?, ?)",
        |q| {
            q.bind(recipients.to_string())
                .bind(events.to_string())
                .bind(now_unix())
        },
    )
    .await
}

pub async fn delete_subscription(db: &Db, id: i64) -> sqlx::Result<bool> {
    let r = db
        .q("DELETE FROM email_subscriptions WHERE id = ?")
        .bind(id)
        .execute(db.writer())
        .await?;
    Ok(r.rows_affected() == 1)
}

/// Adds an item to a recipient's outbox, in the caller's transaction.
pub async fn outbox_add(
    db: &Db,
    conn: &mut AnyConnection,
    recipient: &str,
    event_id: Option<i64>,
    item: &str,
) -> sqlx::Result<()> {
    db.q("INSERT INTO email_outbox (recipient, event_id, item, created) VALUES (?, ?, ?, ?)")
        .bind(recipient.to_string())
        .bind(event_id)
        .bind(item.to_string())
        .bind(now_unix())
        .execute(conn)
        .await?;
    Ok(())
}

/// A recipient's waiting items, oldest first: (id, item JSON).
pub async fn outbox(db: &Db, recipient: &str, limit: i64) -> sqlx::Result<Vec<(i64, String)>> {
    db.q("SELECT id, COALESCE(item, '') FROM email_outbox WHERE recipient = ? ORDER BY id LIMIT ?")
        .bind(recipient.to_string())
        .bind(limit)
        .fetch_all(db.writer())
        .await?
        .iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
        .collect()
}

/// Forgets sent items.
pub async fn outbox_done(db: &Db, ids: &[i64]) -> sqlx::Result<()> {
    if ids.is_empty() {
        return Ok(());
    }
    let marks = super::marks(ids.len());
    let sql = format!("DELETE FROM email_outbox WHERE id IN ({marks})");
    let mut q = db.q(&sql);
    for id in ids {
        q = q.bind(*id);
    }
    q.execute(db.writer()).await?;
    Ok(())
}
