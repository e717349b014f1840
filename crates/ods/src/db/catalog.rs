//! The catalog: this server's copy of the network-wide package records (held or not,
//! live or tombstoned), each stamped with the local change counter `seq` so peers can
//! ask for "everything since N". The counter row is bumped inside the writing
//! transaction; its row lock orders commits, so a cursor never skips a change.

use serde::{Deserialize, Serialize};
use sqlx::{AnyConnection, FromRow, Row};

use super::{Db, Flag};
use crate::model::Stage;

/// One package record as exchanged between servers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, FromRow, utoipa::ToSchema)]
pub struct Record {
    pub uuid: String,
    pub filename: String,
    pub file_size: i64,
    pub sha1: String,
    pub sha256: String,
    #[sqlx(try_from = "String")]
    pub stage: Stage,
    /// Hybrid logical clock of the last change (last writer wins).
    pub version: String,
    /// Hybrid logical clock of the original upload (decides filename conflicts).
    pub created_version: String,
    pub origin_iss: String,
    pub created: i64,
    #[sqlx(try_from = "Flag")]
    pub deleted: bool,
    /// Local change counter (meaningful only on the server that sent it).
    #[serde(default)]
    pub seq: i64,
    /// Whether the sending server holds the bytes, Public.
    /// (A column only `since` selects.)
    #[serde(default)]
    #[sqlx(default, try_from = "Flag")]
    pub available: bool,
}

const COLS: &str = "c.uuid, c.filename, c.file_size, c.sha1, c.sha256, c.stage, c.version, c.created_version, \
                    c.origin_iss, c.created, c.deleted, c.seq";

/// Makes sure the change counter exists.
pub async fn ensure_counter(db: &Db) -> sqlx::Result<()> {
    let have = db
        .q("SELECT 1 FROM counters WHERE name = 'seq'")
        .fetch_optional(db.writer())
        .await?;
    if have.is_none() {
        let r = db
            .q("INSERT INTO counters (name, value) VALUES ('seq', 0)")
            .execute(db.writer())
            .await;
        if let Err(e) = r
            && !super::is_unique_violation(&e)
        {
            return Err(e);
        }
    }
    Ok(())
}

/// Serialises catalog writers: the first statement of every transaction that reads a
/// record to decide how to change it, so two writers never both act on the same old
/// version (PostgreSQL and MySQL row lock; SQLite has one writer connection already).
pub async fn lock(db: &Db, conn: &mut AnyConnection) -> sqlx::Result<()> {
    if db.dialect != super::Dialect::Sqlite {
        db.q("SELECT value FROM counters WHERE name = 'seq' FOR UPDATE")
            .fetch_one(conn)
            .await?;
    }
    Ok(())
}

/// Takes the next change number (holds the counter's row lock until commit).
pub async fn next_seq(db: &Db, conn: &mut AnyConnection) -> sqlx::Result<i64> {
    next_seqs(db, conn, 1).await
}

/// Takes `n` new local change numbers at once; returns the last (they are the `n`
/// numbers ending with it).
async fn next_seqs(db: &Db, conn: &mut AnyConnection, n: usize) -> sqlx::Result<i64> {
    db.q("UPDATE counters SET value = value + ? WHERE name = 'seq'")
        .bind(n as i64)
        .execute(&mut *conn)
        .await?;
    db.q("SELECT value FROM counters WHERE name = 'seq'")
        .fetch_one(&mut *conn)
        .await?
        .try_get(0)
}

/// The newest version recorded here (to start the clock past it after a restart).
pub async fn max_version(db: &Db) -> sqlx::Result<Option<String>> {
    db.q("SELECT MAX(version) FROM catalog")
        .fetch_one(db.reader())
        .await?
        .try_get(0)
}

pub async fn current_seq(db: &Db) -> sqlx::Result<i64> {
    db.q("SELECT value FROM counters WHERE name = 'seq'")
        .fetch_one(db.reader())
        .await?
        .try_get(0)
}

pub async fn get(db: &Db, conn: &mut AnyConnection, uuid: &str) -> sqlx::Result<Option<Record>> {
    let sql = format!("SELECT {COLS} FROM catalog c WHERE c.uuid = ?");
    db.q(&sql)
        .bind(uuid.to_string())
        .fetch_optional(conn)
        .await?
        .as_ref()
        .map(Record::from_row)
        .transpose()
}

/// The newest version of any record, live or deleted, that has carried `filename`.
pub async fn newest_version_named(
    db: &Db,
    conn: &mut AnyConnection,
    filename: &str,
) -> sqlx::Result<Option<String>> {
    db.q("SELECT MAX(version) FROM catalog WHERE filename = ?")
        .bind(filename.to_string())
        .fetch_one(conn)
        .await?
        .try_get(0)
}

/// Live records with this filename.
pub async fn live_by_filename(
    db: &Db,
    conn: &mut AnyConnection,
    filename: &str,
) -> sqlx::Result<Vec<Record>> {
    let sql = format!("SELECT {COLS} FROM catalog c WHERE c.filename = ? AND c.deleted = 0");
    db.q(&sql)
        .bind(filename.to_string())
        .fetch_all(conn)
        .await?
        .iter()
        .map(Record::from_row)
        .collect()
}

pub async fn all_live(db: &Db) -> sqlx::Result<Vec<Record>> {
    let sql = format!("SELECT {COLS} FROM catalog c WHERE c.deleted = 0");
    db.q(&sql)
        .fetch_all(db.reader())
        .await?
        .iter()
        .map(Record::from_row)
        .collect()
}

/// Records changed after `since`, oldest first, with whether we hold each one.
pub async fn since(db: &Db, since: i64, limit: i64) -> sqlx::Result<Vec<Record>> {
    let sql = format!(
        "SELECT {COLS}, (SELECT COUNT(*) FROM packages p WHERE p.uuid = c.uuid AND p.status = 'Public') AS available \
         FROM catalog c WHERE c.seq > ? ORDER BY c.seq LIMIT ?"
    );
    db.q(&sql)
        .bind(since)
        .bind(limit)
        .fetch_all(db.reader())
        .await?
        .iter()
        .map(Record::from_row)
        .collect()
}

/// Inserts or replaces a record, stamping it with a new local change number.
pub async fn put(db: &Db, conn: &mut AnyConnection, r: &Record) -> sqlx::Result<i64> {
    let seq = next_seq(db, conn).await?;
    let exists = db
        .q("SELECT 1 FROM catalog WHERE uuid = ?")
        .bind(r.uuid.clone())
        .fetch_optional(&mut *conn)
        .await?;
    let q = if exists.is_some() {
        db.q("UPDATE catalog SET filename = ?, file_size = ?, sha1 = ?, sha256 = ?, stage = ?, version = ?, \
              created_version = ?, origin_iss = ?, created = ?, deleted = ?, seq = ? WHERE uuid = ?")
    } else {
        db.q("INSERT INTO catalog (filename, file_size, sha1, sha256, stage, version, created_version, origin_iss, \
              created, deleted, seq, uuid) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
    };
    bind_record(q, r, seq).execute(&mut *conn).await?;
    Ok(seq)
}

/// Inserts records not known here yet, each with a new local change number of its own,
/// in one statement; returns the highest (0 for none). (The caller checked, under the catalog lock,
/// that none of them is here.)
pub async fn insert_new_many(
    db: &Db,
    conn: &mut AnyConnection,
    recs: &[&Record],
) -> sqlx::Result<i64> {
    if recs.is_empty() {
        return Ok(0);
    }
    let last = next_seqs(db, conn, recs.len()).await?;
    let first = last - recs.len() as i64 + 1;
    let rows = super::rows("(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", recs.len());
    let sql = format!(
        "INSERT INTO catalog (filename, file_size, sha1, sha256, stage, version, created_version, origin_iss, \
         created, deleted, seq, uuid) VALUES {rows}"
    );
    let mut q = db.q(&sql);
    for (i, r) in recs.iter().enumerate() {
        q = bind_record(q, r, first + i as i64);
    }
    q.execute(conn).await?;
    Ok(last)
}

/// Binds a record's columns in the order `put` and `insert_new_many` name them, with
/// local change number `seq`, the uuid last.
fn bind_record(q: super::Q, r: &Record, seq: i64) -> super::Q {
    q.bind(r.filename.clone())
        .bind(r.file_size)
        .bind(r.sha1.clone())
        .bind(r.sha256.clone())
        .bind(r.stage.as_str())
        .bind(r.version.clone())
        .bind(r.created_version.clone())
        .bind(r.origin_iss.clone())
        .bind(r.created)
        .bind(i64::from(r.deleted))
        .bind(seq)
        .bind(r.uuid.clone())
}

/// Which of `filenames` a live record carries.
pub async fn live_filenames(
    db: &Db,
    conn: &mut AnyConnection,
    filenames: &[&str],
) -> sqlx::Result<std::collections::HashSet<String>> {
    if filenames.is_empty() {
        return Ok(Default::default());
    }
    let marks = super::marks(filenames.len());
    let sql = format!("SELECT filename FROM catalog WHERE deleted = 0 AND filename IN ({marks})");
    super::bind_texts(db.q(&sql), filenames)
        .fetch_all(conn)
        .await?
        .iter()
        .map(|r| r.try_get(0))
        .collect()
}

/// Re-announces a record unchanged (for example: we now hold its bytes).
pub async fn touch(db: &Db, conn: &mut AnyConnection, uuid: &str) -> sqlx::Result<i64> {
    touch_many(db, conn, &[uuid]).await
}

/// Re-announces many records unchanged, each with a change number of its own (a page
/// of the catalog may end between any two), in one statement; returns the highest
/// (0 for none).
pub async fn touch_many(db: &Db, conn: &mut AnyConnection, uuids: &[&str]) -> sqlx::Result<i64> {
    if uuids.is_empty() {
        return Ok(0);
    }
    let last = next_seqs(db, conn, uuids.len()).await?;
    let first = last - uuids.len() as i64 + 1;
    let cases = "WHEN ? THEN ? ".repeat(uuids.len());
    let marks = super::marks(uuids.len());
    let sql = format!("UPDATE catalog SET seq = CASE uuid {cases}END WHERE uuid IN ({marks})");
    let mut q = db.q(&sql);
    for (i, u) in uuids.iter().enumerate() {
        q = q.bind(u.to_string()).bind(first + i as i64);
    }
    q = super::bind_texts(q, uuids);
    q.execute(conn).await?;
    Ok(last)
}

/// The records of `uuids` known here, in no particular order.
pub async fn get_many(
    db: &Db,
    conn: &mut AnyConnection,
    uuids: &[&str],
) -> sqlx::Result<Vec<Record>> {
    if uuids.is_empty() {
        return Ok(Vec::new());
    }
    let marks = super::marks(uuids.len());
    let sql = format!("SELECT {COLS} FROM catalog c WHERE c.uuid IN ({marks})");
    let q = super::bind_texts(db.q(&sql), uuids);
    q.fetch_all(conn)
        .await?
        .iter()
        .map(Record::from_row)
        .collect()
}
