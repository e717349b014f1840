//! Users (with Argon2id password hashes) and their API tokens (kept as SHA-256 digests).

use sqlx::{AnyConnection, FromRow, Row};

use super::{Db, Flag};
use crate::model::{Role, now_unix};

#[derive(Debug, Clone, FromRow)]
pub struct UserRow {
    pub id: i64,
    pub username: String,
    pub password_hash: String,
    #[sqlx(try_from = "String")]
    pub role: Role,
    #[sqlx(try_from = "Flag")]
    pub must_change_password: bool,
    pub created: i64,
}

const COLS: &str = "id, username, password_hash, role, must_change_password, created";

pub async fn count(db: &Db) -> sqlx::Result<i64> {
    db.q("SELECT COUNT(*) FROM users")
        .fetch_one(db.writer())
        .await?
        .try_get(0)
}

pub async fn count_admins(db: &Db, conn: &mut AnyConnection) -> sqlx::Result<i64> {
    db.q("SELECT COUNT(*) FROM users WHERE role = 'admin'")
        .fetch_one(conn)
        .await?
        .try_get(0)
}

pub async fn list(db: &Db) -> sqlx::Result<Vec<UserRow>> {
    let sql = format!("SELECT {COLS} FROM users ORDER BY id");
    db.q(&sql)
        .fetch_all(db.reader())
        .await?
        .iter()
        .map(UserRow::from_row)
        .collect()
}

pub async fn by_name(db: &Db, username: &str) -> sqlx::Result<Option<UserRow>> {
    let sql = format!("SELECT {COLS} FROM users WHERE username = ?");
    db.q(&sql)
        .bind(username.to_string())
        .fetch_optional(db.reader())
        .await?
        .as_ref()
        .map(UserRow::from_row)
        .transpose()
}

pub async fn by_id(db: &Db, id: i64) -> sqlx::Result<Option<UserRow>> {
    let sql = format!("SELECT {COLS} FROM users WHERE id = ?");
    db.q(&sql)
        .bind(id)
        .fetch_optional(db.reader())
        .await?
        .as_ref()
        .map(UserRow::from_row)
        .transpose()
}

pub async fn insert(
    db: &Db,
    username: &str,
    hash: &str,
    role: Role,
    must_change: bool,
) -> sqlx::Result<i64> {
    let now = now_unix();
    db.insert_id(
        db.writer(),
        "INSERT INTO users (username, password_hash, role, must_change_password, created, updated) VALUES (?, ?, ?, ?, ?, ?)",
        |q| {
            q.bind(username.to_string())
                .bind(hash.to_string())
                .bind(role.as_str())
                .bind(i64::from(must_change))
                .bind(now)
                .bind(now)
        },
    )
    .await
}

pub async fn set_password(db: &Db, id: i64, hash: &str, must_change: bool) -> sqlx::Result<()> {
    db.q("UPDATE users SET password_hash = ?, must_change_password = ?, updated = ? WHERE id = ?")
        .bind(hash.to_string())
        .bind(i64::from(must_change))
        .bind(now_unix())
        .bind(id)
        .execute(db.writer())
        .await?;
    Ok(())
}

/// Deletes every API token of a user; returns how many there were.
pub async fn delete_tokens_of(db: &Db, user_id: i64) -> sqlx::Result<u64> {
    let r = db
        .q("DELETE FROM api_tokens WHERE user_id = ?")
        .bind(user_id)
        .execute(db.writer())
        .await?;
    Ok(r.rows_affected())
}

pub async fn set_role(db: &Db, conn: &mut AnyConnection, id: i64, role: Role) -> sqlx::Result<()> {
    db.q("UPDATE users SET role = ?, updated = ? WHERE id = ?")
        .bind(role.as_str())
        .bind(now_unix())
        .bind(id)
        .execute(conn)
        .await?;
    Ok(())
}

pub async fn delete(db: &Db, conn: &mut AnyConnection, id: i64) -> sqlx::Result<()> {
    db.q("DELETE FROM api_tokens WHERE user_id = ?")
        .bind(id)
        .execute(&mut *conn)
        .await?;
    db.q("DELETE FROM sessions WHERE user_id = ?")
        .bind(id)
        .execute(&mut *conn)
        .await?;
    db.q("DELETE FROM users WHERE id = ?")
        .bind(id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

#[derive(Debug, Clone, FromRow)]
pub struct TokenRow {
    pub id: i64,
    pub user_id: i64,
    pub username: String,
    pub name: String,
    pub created: i64,
    pub last_used: Option<i64>,
}

pub async fn insert_token(db: &Db, user_id: i64, name: &str, digest: &str) -> sqlx::Result<i64> {
    db.insert_id(
        db.writer(),
        "INSERT INTO api_tokens (user_id, name, token_hash, created, last_used) VALUES (?, ?, ?, ?, NULL)",
        |q| q.bind(user_id).bind(name.to_string()).bind(digest.to_string()).bind(now_unix()),
    )
    .await
}

/// The user a token digest belongs to.
pub async fn user_by_token(db: &Db, digest: &str) -> sqlx::Result<Option<(i64, UserRow)>> {
    let r = db
        .q("SELECT t.id AS token_id, u.id, u.username, u.password_hash, u.role, u.must_change_password, u.created \
            FROM api_tokens t JOIN users u ON u.id = t.user_id WHERE t.token_hash = ?")
        .bind(digest.to_string())
        .fetch_optional(db.reader())
        .await?;
    r.map(|r| Ok((r.try_get("token_id")?, UserRow::from_row(&r)?)))
        .transpose()
}

pub async fn touch_token(db: &Db, token_id: i64) -> sqlx::Result<()> {
    db.q("UPDATE api_tokens SET last_used = ? WHERE id = ?")
        .bind(now_unix())
        .bind(token_id)
        .execute(db.writer())
        .await?;
    Ok(())
}

pub async fn list_tokens(db: &Db, user_id: Option<i64>) -> sqlx::Result<Vec<TokenRow>> {
    let base = "SELECT t.id, t.user_id, u.username, t.name, t.created, t.last_used FROM api_tokens t \
                JOIN users u ON u.id = t.user_id";
    let q = match user_id {
        Some(uid) => db
            .q(&format!("{base} WHERE t.user_id = ? ORDER BY t.id"))
            .bind(uid),
        None => db.q(&format!("{base} ORDER BY t.id")),
    };
    q.fetch_all(db.reader())
        .await?
        .iter()
        .map(TokenRow::from_row)
        .collect()
}

pub async fn token(db: &Db, id: i64) -> sqlx::Result<Option<TokenRow>> {
    Ok(list_tokens(db, None)
        .await?
        .into_iter()
        .find(|t| t.id == id))
}

pub async fn delete_token(db: &Db, id: i64) -> sqlx::Result<bool> {
    let r = db
        .q("DELETE FROM api_tokens WHERE id = ?")
        .bind(id)
        .execute(db.writer())
        .await?;
    Ok(r.rows_affected() == 1)
}
