//! Jamf Pro tables (migration 6): the instances this server publishes package records
//! to (`jamf_instances`, credentials and the cached token sealed), the state of each
//! package's record per instance (`jamf_records`), the last drift report
//! (`jamf_drift`) and the SHA3-512 of blobs (`blob_sha3`).

use sqlx::{FromRow, Row};

use super::{Db, Flag};
use crate::model::{Stage, now_millis, now_unix};

#[derive(Debug, Clone, FromRow)]
pub struct InstanceRow {
    pub id: i64,
    pub name: String,
    pub url: String,
    /// `basic` (user + password) or `oauth` (client id + secret).
    pub auth: String,
    /// The user name or the OAuth client id.
    pub username: Option<String>,
    /// The password or the client secret, sealed.
    pub secret_sealed: Option<String>,
    #[sqlx(try_from = "String")]
    pub stage: Stage,
    pub hash_type: String,
    #[sqlx(try_from = "Flag")]
    pub wait_all: bool,
    pub package_name: String,
    #[sqlx(try_from = "Flag")]
    pub delete_records: bool,
    pub token_sealed: Option<String>,
    pub token_expires: Option<i64>,
    pub last_reconcile: Option<i64>,
    pub last_error: Option<String>,
    pub created: i64,
    pub updated: i64,
}

const COLS: &str = "id, name, url, auth, username, secret_sealed, stage, hash_type, wait_all, \
    package_name, delete_records, token_sealed, token_expires, last_reconcile, last_error, created, updated";

/// The settings an admin writes (the rest is kept by the jobs).
pub struct InstanceFields {
    pub name: String,
    pub url: String,
    pub auth: String,
    pub username: Option<String>,
    pub secret_sealed: Option<String>,
    pub stage: Stage,
    pub hash_type: String,
    pub wait_all: bool,
    pub package_name: String,
    pub delete_records: bool,
}

pub async fn list(db: &Db) -> sqlx::Result<Vec<InstanceRow>> {
    let sql = format!("SELECT {COLS} FROM jamf_instances ORDER BY id");
    db.q(&sql)
        .fetch_all(db.reader())
        .await?
        .iter()
        .map(InstanceRow::from_row)
        .collect()
}

pub async fn get(db: &Db, id: i64) -> sqlx::Result<Option<InstanceRow>> {
    let sql = format!("SELECT {COLS} FROM jamf_instances WHERE id = ?");
    db.q(&sql)
        .bind(id)
        .fetch_optional(db.writer())
        .await?
        .as_ref()
        .map(InstanceRow::from_row)
        .transpose()
}

pub async fn insert(db: &Db, f: &InstanceFields) -> sqlx::Result<i64> {
    let now = now_unix();
    db.insert_id(
        db.writer(),
        "INSERT INTO jamf_instances (name, url, auth, username, secret_sealed, stage, hash_type, \
         wait_all, package_name, delete_records, created, updated) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        |q| {
            q.bind(f.name.clone())
                .bind(f.url.clone())
                .bind(f.auth.clone())
                .bind(f.username.clone())
                .bind(f.secret_sealed.clone())
                .bind(f.stage.as_str())
                .bind(f.hash_type.clone())
                .bind(f.wait_all as i64)
                .bind(f.package_name.clone())
                .bind(f.delete_records as i64)
                .bind(now)
                .bind(now)
        },
    )
    .await
}

/// Writes the settings; a change of URL or credentials drops the cached token.
pub async fn update(db: &Db, id: i64, f: &InstanceFields, drop_token: bool) -> sqlx::Result<()> {
    let token = if drop_token {
        ", token_sealed = NULL, token_expires = NULL"
    } else {
        ""
    };
    let sql = format!(
        "UPDATE jamf_instances SET name = ?, url = ?, auth = ?, username = ?, secret_sealed = ?, \
         stage = ?, hash_type = ?, wait_all = ?, package_name = ?, delete_records = ?, updated = ?{token} WHERE id = ?"
    );
    db.q(&sql)
        .bind(f.name.clone())
        .bind(f.url.clone())
        .bind(f.auth.clone())
        .bind(f.username.clone())
        .bind(f.secret_sealed.clone())
        .bind(f.stage.as_str())
        .bind(f.hash_type.clone())
        .bind(f.wait_all as i64)
        .bind(f.package_name.clone())
        .bind(f.delete_records as i64)
        .bind(now_unix())
        .bind(id)
        .execute(db.writer())
        .await?;
    Ok(())
}

/// Removes an instance with its record states and drift report.
pub async fn delete(db: &Db, id: i64) -> sqlx::Result<bool> {
    let mut tx = db.begin().await?;
    for table in ["jamf_records", "jamf_drift"] {
        let sql = format!("DELETE FROM {table} WHERE instance_id = ?");
        db.q(&sql).bind(id).execute(&mut *tx).await?;
    }
    let gone = db
        .q("DELETE FROM jamf_instances WHERE id = ?")
        .bind(id)
        .execute(&mut *tx)
        .await?
        .rows_affected()
        == 1;
    tx.commit().await?;
    Ok(gone)
}

/// Keeps (or, with `None`, forgets) the instance's API token, sealed.
pub async fn set_token(db: &Db, id: i64, token: Option<(&str, i64)>) -> sqlx::Result<()> {
    db.q("UPDATE jamf_instances SET token_sealed = ?, token_expires = ? WHERE id = ?")
        .bind(token.map(|t| t.0.to_string()))
        .bind(token.map(|t| t.1))
        .bind(id)
        .execute(db.writer())
        .await?;
    Ok(())
}

/// Records the end of a reconcile (with its error, if it failed).
pub async fn set_reconciled(db: &Db, id: i64, error: Option<&str>) -> sqlx::Result<()> {
    db.q("UPDATE jamf_instances SET last_reconcile = ?, last_error = ? WHERE id = ?")
        .bind(now_unix())
        .bind(error.map(str::to_string))
        .bind(id)
        .execute(db.writer())
        .await?;
    Ok(())
}

/// The state of one package's record on one instance.
#[derive(Debug, Clone, FromRow)]
pub struct RecordRow {
    pub instance_id: i64,
    pub package_uuid: String,
    pub filename: String,
    /// `pending`, `synced` or `failed`.
    pub state: String,
    pub record_id: Option<String>,
    pub hash_type: Option<String>,
    pub hash_value: Option<String>,
    pub reason: Option<String>,
    pub updated: i64,
}

const RECORD_COLS: &str =
    "instance_id, package_uuid, filename, state, record_id, hash_type, hash_value, reason, updated";

pub async fn records_of_package(db: &Db, uuid: &str) -> sqlx::Result<Vec<RecordRow>> {
    let sql = format!(
        "SELECT {RECORD_COLS} FROM jamf_records WHERE package_uuid = ? ORDER BY instance_id"
    );
    db.q(&sql)
        .bind(uuid.to_string())
        .fetch_all(db.reader())
        .await?
        .iter()
        .map(RecordRow::from_row)
        .collect()
}

pub async fn records_of_instance(db: &Db, instance_id: i64) -> sqlx::Result<Vec<RecordRow>> {
    let sql =
        format!("SELECT {RECORD_COLS} FROM jamf_records WHERE instance_id = ? ORDER BY filename");
    db.q(&sql)
        .bind(instance_id)
        .fetch_all(db.reader())
        .await?
        .iter()
        .map(RecordRow::from_row)
        .collect()
}

/// Replaces the state of a package's record on an instance.
pub async fn put_record(db: &Db, r: &RecordRow) -> sqlx::Result<()> {
    let mut tx = db.begin().await?;
    db.q("DELETE FROM jamf_records WHERE instance_id = ? AND package_uuid = ?")
        .bind(r.instance_id)
        .bind(r.package_uuid.clone())
        .execute(&mut *tx)
        .await?;
    let sql =
        format!("INSERT INTO jamf_records ({RECORD_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)");
    db.q(&sql)
        .bind(r.instance_id)
        .bind(r.package_uuid.clone())
        .bind(r.filename.clone())
        .bind(r.state.clone())
        .bind(r.record_id.clone())
        .bind(r.hash_type.clone())
        .bind(r.hash_value.clone())
        .bind(r.reason.clone())
        .bind(now_millis())
        .execute(&mut *tx)
        .await?;
    tx.commit().await
}

pub async fn delete_record(db: &Db, instance_id: i64, uuid: &str) -> sqlx::Result<()> {
    db.q("DELETE FROM jamf_records WHERE instance_id = ? AND package_uuid = ?")
        .bind(instance_id)
        .bind(uuid.to_string())
        .execute(db.writer())
        .await?;
    Ok(())
}

/// One line of a drift report.
#[derive(Debug, Clone, FromRow)]
pub struct DriftRow {
    pub record_id: String,
    pub file_name: String,
    /// `file_missing` or `hash_differs`.
    pub problem: String,
    pub detail: Option<String>,
    pub checked: i64,
}

/// Replaces the instance's drift report.
pub async fn put_drift(db: &Db, instance_id: i64, rows: &[DriftRow]) -> sqlx::Result<()> {
    let mut tx = db.begin().await?;
    db.q("DELETE FROM jamf_drift WHERE instance_id = ?")
        .bind(instance_id)
        .execute(&mut *tx)
        .await?;
    for r in rows {
        db.q(
            "INSERT INTO jamf_drift (instance_id, record_id, file_name, problem, detail, checked) \
              VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(instance_id)
        .bind(r.record_id.clone())
        .bind(r.file_name.clone())
        .bind(r.problem.clone())
        .bind(r.detail.clone())
        .bind(r.checked)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await
}

pub async fn drift(db: &Db, instance_id: i64) -> sqlx::Result<Vec<DriftRow>> {
    db.q(
        "SELECT record_id, file_name, problem, detail, checked FROM jamf_drift \
          WHERE instance_id = ? ORDER BY file_name, record_id",
    )
    .bind(instance_id)
    .fetch_all(db.reader())
    .await?
    .iter()
    .map(DriftRow::from_row)
    .collect()
}

pub async fn sha3(db: &Db, sha256: &str) -> sqlx::Result<Option<String>> {
    Ok(db
        .q("SELECT sha3_512 FROM blob_sha3 WHERE sha256 = ?")
        .bind(sha256.to_string())
        .fetch_optional(db.reader())
        .await?
        .map(|r| r.get::<String, _>(0)))
}

pub async fn set_sha3(db: &Db, sha256: &str, value: &str) -> sqlx::Result<()> {
    let sql = db.insert_ignore("INSERT INTO blob_sha3 (sha256, sha3_512) VALUES (?, ?)");
    db.q(&sql)
        .bind(sha256.to_string())
        .bind(value.to_string())
        .execute(db.writer())
        .await?;
    Ok(())
}
