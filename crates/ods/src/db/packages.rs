//! Packages (a filename and stage on this server) and blobs (content by sha256, with
//! its 1 MiB chunk hashes and the extra digests Jamf Pro needs).

use sqlx::{AnyConnection, FromRow, Row};

use super::Db;
use crate::model::{Stage, Status, now_unix};

#[derive(Debug, Clone, FromRow)]
pub struct PackageRow {
    pub id: i64,
    pub uuid: String,
    pub filename: String,
    pub file_size: i64,
    pub sha1: String,
    pub sha256: String,
    #[sqlx(try_from = "String")]
    pub stage: Stage,
    #[sqlx(try_from = "String")]
    pub status: Status,
    pub status_reason: Option<String>,
    pub created: i64,
    pub updated: i64,
}

const COLS: &str =
    "id, uuid, filename, file_size, sha1, sha256, stage, status, status_reason, created, updated";

pub async fn list(db: &Db) -> sqlx::Result<Vec<PackageRow>> {
    let sql = format!("SELECT {COLS} FROM packages ORDER BY id");
    db.q(&sql)
        .fetch_all(db.reader())
        .await?
        .iter()
        .map(PackageRow::from_row)
        .collect()
}

/// By database id when the text is a number, else by filename (as the seed).
pub async fn find_by_id(db: &Db, id: i64) -> sqlx::Result<Option<PackageRow>> {
    let sql = format!("SELECT {COLS} FROM packages WHERE id = ?");
    db.q(&sql)
        .bind(id)
        .fetch_optional(db.reader())
        .await?
        .as_ref()
        .map(PackageRow::from_row)
        .transpose()
}

pub async fn find_by_filename<'c, E>(
    db: &Db,
    exec: E,
    filename: &str,
) -> sqlx::Result<Option<PackageRow>>
where
    E: sqlx::Executor<'c, Database = sqlx::Any>,
{
    let sql = format!("SELECT {COLS} FROM packages WHERE filename = ?");
    db.q(&sql)
        .bind(filename.to_string())
        .fetch_optional(exec)
        .await?
        .as_ref()
        .map(PackageRow::from_row)
        .transpose()
}

pub struct NewPackage<'a> {
    pub uuid: &'a str,
    pub filename: &'a str,
    pub file_size: i64,
    pub sha1: &'a str,
    pub sha256: &'a str,
    pub stage: Stage,
    pub status: Status,
    pub created: i64,
}

pub async fn insert(db: &Db, conn: &mut AnyConnection, p: &NewPackage<'_>) -> sqlx::Result<i64> {
    db.insert_id(
        &mut *conn,
        "INSERT INTO packages (uuid, filename, file_size, sha1, sha256, stage, status, status_reason, created, updated) \
         VALUES (?, ?, ?, ?, ?, ?, ?, NULL, ?, ?)",
        |q| bind_package(q, p, now_unix()),
    )
    .await
}

/// Inserts many packages in one statement (their ids are not needed).
pub async fn insert_many(
    db: &Db,
    conn: &mut AnyConnection,
    pkgs: &[NewPackage<'_>],
) -> sqlx::Result<()> {
    if pkgs.is_empty() {
        return Ok(());
    }
    let rows = super::rows("(?, ?, ?, ?, ?, ?, ?, NULL, ?, ?)", pkgs.len());
    let sql = format!(
        "INSERT INTO packages (uuid, filename, file_size, sha1, sha256, stage, status, status_reason, created, updated) \
         VALUES {rows}"
    );
    let mut q = db.q(&sql);
    let now = now_unix();
    for p in pkgs {
        q = bind_package(q, p, now);
    }
    q.execute(conn).await?;
    Ok(())
}

/// Binds a new package's row (status reason NULL; updated `now`).
fn bind_package(q: super::Q, p: &NewPackage<'_>, now: i64) -> super::Q {
    q.bind(p.uuid.to_string())
        .bind(p.filename.to_string())
        .bind(p.file_size)
        .bind(p.sha1.to_string())
        .bind(p.sha256.to_string())
        .bind(p.stage.as_str())
        .bind(p.status.as_str())
        .bind(p.created)
        .bind(now)
}

pub async fn delete(db: &Db, conn: &mut AnyConnection, id: i64) -> sqlx::Result<bool> {
    let r = db
        .q("DELETE FROM packages WHERE id = ?")
        .bind(id)
        .execute(&mut *conn)
        .await?;
    Ok(r.rows_affected() == 1)
}

pub async fn set_stage(
    db: &Db,
    conn: &mut AnyConnection,
    id: i64,
    stage: Stage,
) -> sqlx::Result<()> {
    db.q("UPDATE packages SET stage = ?, updated = ? WHERE id = ?")
        .bind(stage.as_str())
        .bind(now_unix())
        .bind(id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// How many packages use this content.
pub async fn blob_refs(db: &Db, conn: &mut AnyConnection, sha256: &str) -> sqlx::Result<i64> {
    let r = db
        .q("SELECT COUNT(*) FROM packages WHERE sha256 = ?")
        .bind(sha256.to_string())
        .fetch_one(&mut *conn)
        .await?;
    r.try_get(0)
}

#[derive(Debug, Clone, FromRow)]
pub struct BlobRow {
    pub sha256: String,
    pub file_size: i64,
    pub sha1: String,
    pub sha512: Option<String>,
    pub md5: Option<String>,
}

pub async fn blob(db: &Db, sha256: &str) -> sqlx::Result<Option<BlobRow>> {
    let r = db
        .q("SELECT sha256, file_size, sha1, sha512, md5 FROM blobs WHERE sha256 = ?")
        .bind(sha256.to_string())
        .fetch_optional(db.reader())
        .await?;
    r.as_ref().map(BlobRow::from_row).transpose()
}

/// Every content hash in use: recorded blobs and any package's content (a package
/// row may briefly exist before its blob row on some engines).
pub async fn all_blob_hashes(db: &Db) -> sqlx::Result<Vec<String>> {
    let rows = db
        .q("SELECT sha256 FROM blobs UNION SELECT sha256 FROM packages")
        .fetch_all(db.reader())
        .await?;
    rows.iter().map(|r| r.try_get(0)).collect()
}

/// Records content and its chunk hashes once; a second upload of the same bytes is a no-op.
pub async fn insert_blob(
    db: &Db,
    conn: &mut AnyConnection,
    sha256: &str,
    size: i64,
    sha1: &str,
    chunks: &[String],
) -> sqlx::Result<()> {
    let blob = NewBlob {
        sha256,
        size,
        sha1,
        chunks,
    };
    insert_blobs(db, conn, &[blob]).await
}

/// Content about to be recorded, with its chunk hashes in order.
pub struct NewBlob<'a> {
    pub sha256: &'a str,
    pub size: i64,
    pub sha1: &'a str,
    pub chunks: &'a [String],
}

/// Records many contents at once (one insert for the blobs, and the chunk lists not
/// known yet in inserts of up to `CHUNK_ROWS` rows). Insert-or-ignore: content already
/// recorded (even by a concurrent upload) is a no-op, and a known chunk list stays.
pub async fn insert_blobs(
    db: &Db,
    conn: &mut AnyConnection,
    blobs: &[NewBlob<'_>],
) -> sqlx::Result<()> {
    if blobs.is_empty() {
        return Ok(());
    }
    let rows = super::rows("(?, ?, ?, NULL, NULL, ?)", blobs.len());
    let insert = db.insert_ignore(&format!(
        "INSERT INTO blobs (sha256, file_size, sha1, sha512, md5, created) VALUES {rows}"
    ));
    let mut q = db.q(&insert);
    let now = now_unix();
    for b in blobs {
        q = q
            .bind(b.sha256.to_string())
            .bind(b.size)
            .bind(b.sha1.to_string())
            .bind(now);
    }
    q.execute(&mut *conn).await?;
    let hashes: Vec<&str> = blobs.iter().map(|b| b.sha256).collect();
    let known = with_chunk_lists(db, conn, &hashes).await?;
    let mut fresh = std::collections::HashSet::new();
    let mut rows = Vec::new();
    for b in blobs {
        if known.contains(b.sha256) || !fresh.insert(b.sha256) {
            continue;
        }
        rows.extend(
            b.chunks
                .iter()
                .enumerate()
                .map(|(i, h)| (b.sha256, i as i64, h.as_str())),
        );
    }
    insert_chunk_rows(db, conn, &rows).await
}

/// Which of `hashes` have a chunk list recorded.
async fn with_chunk_lists(
    db: &Db,
    conn: &mut AnyConnection,
    hashes: &[&str],
) -> sqlx::Result<std::collections::HashSet<String>> {
    let marks = super::marks(hashes.len());
    let sql = format!("SELECT DISTINCT sha256 FROM chunks WHERE sha256 IN ({marks})");
    let q = super::bind_texts(db.q(&sql), hashes);
    q.fetch_all(&mut *conn)
        .await?
        .iter()
        .map(|r| r.try_get(0))
        .collect()
}

/// The most chunk rows one insert carries.
const CHUNK_ROWS: usize = 200;

/// Inserts (content sha256, index, chunk sha1) rows, ignoring ones already there.
async fn insert_chunk_rows(
    db: &Db,
    conn: &mut AnyConnection,
    rows: &[(&str, i64, &str)],
) -> sqlx::Result<()> {
    for batch in rows.chunks(CHUNK_ROWS) {
        let values = super::rows("(?, ?, ?)", batch.len());
        let sql = format!("INSERT INTO chunks (sha256, idx, sha1) VALUES {values}");
        let mut q = db.q(&db.insert_ignore(&sql));
        for (sha256, idx, sha1) in batch {
            q = q.bind(sha256.to_string()).bind(*idx).bind(sha1.to_string());
        }
        q.execute(&mut *conn).await?;
    }
    Ok(())
}

/// Records the chunk hashes of some content unless they are known already (a pushed
/// manifest stores them before the content arrives).
pub async fn put_chunks(
    db: &Db,
    conn: &mut AnyConnection,
    sha256: &str,
    chunks: &[String],
) -> sqlx::Result<()> {
    if !with_chunk_lists(db, conn, &[sha256]).await?.is_empty() {
        return Ok(());
    }
    let rows: Vec<_> = chunks
        .iter()
        .enumerate()
        .map(|(i, h)| (sha256, i as i64, h.as_str()))
        .collect();
    insert_chunk_rows(db, conn, &rows).await
}

/// Removes the record of content no package uses any more; true when it was removed.
pub async fn delete_unused_blob(
    db: &Db,
    conn: &mut AnyConnection,
    sha256: &str,
) -> sqlx::Result<bool> {
    if blob_refs(db, conn, sha256).await? > 0 {
        return Ok(false);
    }
    db.q("DELETE FROM chunks WHERE sha256 = ?")
        .bind(sha256.to_string())
        .execute(&mut *conn)
        .await?;
    db.q("DELETE FROM blobs WHERE sha256 = ?")
        .bind(sha256.to_string())
        .execute(&mut *conn)
        .await?;
    Ok(true)
}

/// Whether the content is stored here (recorded as a blob).
pub async fn has_blob(db: &Db, conn: &mut AnyConnection, sha256: &str) -> sqlx::Result<bool> {
    Ok(db
        .q("SELECT 1 FROM blobs WHERE sha256 = ?")
        .bind(sha256.to_string())
        .fetch_optional(conn)
        .await?
        .is_some())
}

/// Which of `hashes` are stored here (recorded as blobs).
pub async fn blobs_present(
    db: &Db,
    conn: &mut AnyConnection,
    hashes: &[&str],
) -> sqlx::Result<std::collections::HashSet<String>> {
    if hashes.is_empty() {
        return Ok(Default::default());
    }
    let sql = format!(
        "SELECT sha256 FROM blobs WHERE sha256 IN ({})",
        super::marks(hashes.len())
    );
    super::bind_texts(db.q(&sql), hashes)
        .fetch_all(conn)
        .await?
        .iter()
        .map(|r| r.try_get(0))
        .collect()
}

/// Up to `limit` packages still arriving here (Downloading) that are larger than
/// `chunk` bytes, oldest first: those whose manifests a peer is asked for together.
pub async fn arriving_chunked(db: &Db, chunk: i64, limit: usize) -> sqlx::Result<Vec<String>> {
    db.q("SELECT uuid FROM packages WHERE status = 'Downloading' AND file_size > ? ORDER BY id LIMIT ?")
        .bind(chunk)
        .bind(limit as i64)
        .fetch_all(db.reader())
        .await?
        .iter()
        .map(|r| r.try_get(0))
        .collect()
}

/// The chunk hashes of each of `hashes` (content sha256s), in order; content without a
/// chunk list is absent.
pub async fn chunks_many(
    db: &Db,
    hashes: &[&str],
) -> sqlx::Result<std::collections::HashMap<String, Vec<String>>> {
    let mut lists: std::collections::HashMap<String, Vec<String>> = Default::default();
    if hashes.is_empty() {
        return Ok(lists);
    }
    let marks = super::marks(hashes.len());
    let sql =
        format!("SELECT sha256, sha1 FROM chunks WHERE sha256 IN ({marks}) ORDER BY sha256, idx");
    for row in super::bind_texts(db.q(&sql), hashes)
        .fetch_all(db.reader())
        .await?
    {
        lists
            .entry(row.try_get(0)?)
            .or_default()
            .push(row.try_get(1)?);
    }
    Ok(lists)
}

pub async fn chunks(db: &Db, sha256: &str) -> sqlx::Result<Vec<String>> {
    let rows = db
        .q("SELECT sha1 FROM chunks WHERE sha256 = ? ORDER BY idx")
        .bind(sha256.to_string())
        .fetch_all(db.reader())
        .await?;
    rows.iter().map(|r| r.try_get(0)).collect()
}

pub async fn set_extra_digests(db: &Db, sha256: &str, sha512: &str, md5: &str) -> sqlx::Result<()> {
    db.q("UPDATE blobs SET sha512 = ?, md5 = ? WHERE sha256 = ?")
        .bind(sha512.to_string())
        .bind(md5.to_string())
        .bind(sha256.to_string())
        .execute(db.writer())
        .await?;
    Ok(())
}

pub async fn by_uuid(
    db: &Db,
    conn: &mut AnyConnection,
    uuid: &str,
) -> sqlx::Result<Option<PackageRow>> {
    let sql = format!("SELECT {COLS} FROM packages WHERE uuid = ?");
    db.q(&sql)
        .bind(uuid.to_string())
        .fetch_optional(conn)
        .await?
        .as_ref()
        .map(PackageRow::from_row)
        .transpose()
}

pub async fn set_status(
    db: &Db,
    conn: &mut AnyConnection,
    uuid: &str,
    status: Status,
    reason: Option<&str>,
) -> sqlx::Result<()> {
    set_status_many(db, conn, &[uuid], status, reason).await
}

/// Sets the status of every package in `uuids`, in one statement.
pub async fn set_status_many(
    db: &Db,
    conn: &mut AnyConnection,
    uuids: &[&str],
    status: Status,
    reason: Option<&str>,
) -> sqlx::Result<()> {
    if uuids.is_empty() {
        return Ok(());
    }
    let marks = super::marks(uuids.len());
    let sql = format!(
        "UPDATE packages SET status = ?, status_reason = ?, updated = ? WHERE uuid IN ({marks})"
    );
    let mut q = db
        .q(&sql)
        .bind(status.as_str())
        .bind(reason.map(str::to_string))
        .bind(now_unix());
    q = super::bind_texts(q, uuids);
    q.execute(conn).await?;
    Ok(())
}

/// The packages of `uuids` held here, in no particular order.
pub async fn by_uuids(
    db: &Db,
    conn: &mut AnyConnection,
    uuids: &[&str],
) -> sqlx::Result<Vec<PackageRow>> {
    if uuids.is_empty() {
        return Ok(Vec::new());
    }
    let marks = super::marks(uuids.len());
    let sql = format!("SELECT {COLS} FROM packages WHERE uuid IN ({marks})");
    let q = super::bind_texts(db.q(&sql), uuids);
    q.fetch_all(conn)
        .await?
        .iter()
        .map(PackageRow::from_row)
        .collect()
}

/// Packages still arriving or whose transfer gave up.
pub async fn incomplete(db: &Db) -> sqlx::Result<Vec<PackageRow>> {
    let sql = format!("SELECT {COLS} FROM packages WHERE status <> 'Public'");
    db.q(&sql)
        .fetch_all(db.reader())
        .await?
        .iter()
        .map(PackageRow::from_row)
        .collect()
}

/// Forgets the chunk list of content that is not stored here (a pushed manifest that
/// may be what was wrong); the list of stored content is proven and stays.
pub async fn forget_unproven_chunks(db: &Db, sha256: &str) -> sqlx::Result<()> {
    db.q(
        "DELETE FROM chunks WHERE sha256 = ? AND NOT EXISTS (SELECT 1 FROM blobs WHERE sha256 = ?)",
    )
    .bind(sha256.to_string())
    .bind(sha256.to_string())
    .execute(db.writer())
    .await?;
    Ok(())
}

/// What a package list is sorted by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SortKey {
    Id,
    Filename,
    Size,
    Created,
    Status,
    Stage,
}

impl SortKey {
    fn column(self) -> &'static str {
        match self {
            SortKey::Id => "id",
            SortKey::Filename => "filename",
            SortKey::Size => "file_size",
            SortKey::Created => "created",
            SortKey::Status => "status",
            SortKey::Stage => "stage",
        }
    }
}

/// One page of a package list: filtered, sorted and cut in the database.
#[derive(Debug, Clone)]
pub struct PageQuery {
    /// Filename contains this text (any letter case).
    pub search: Option<String>,
    pub sort: SortKey,
    pub desc: bool,
    pub offset: i64,
    pub limit: i64,
}

/// `LOWER(filename) LIKE` pattern for "contains `text`", with `!` escaping.
fn contains_pattern(text: &str) -> String {
    let mut p = String::from("%");
    for c in text.to_lowercase().chars() {
        if matches!(c, '!' | '%' | '_') {
            p.push('!');
        }
        p.push(c);
    }
    p.push('%');
    p
}

/// The packages of one page and how many match in all.
pub async fn list_page(db: &Db, q: &PageQuery) -> sqlx::Result<(Vec<PackageRow>, i64)> {
    let filter = if q.search.is_some() {
        "WHERE LOWER(filename) LIKE ? ESCAPE '!'"
    } else {
        ""
    };
    let pattern = q.search.as_deref().map(contains_pattern);
    let count_sql = format!("SELECT COUNT(*) FROM packages {filter}");
    let mut count = db.q(&count_sql);
    if let Some(p) = &pattern {
        count = count.bind(p.clone());
    }
    let total: i64 = count.fetch_one(db.reader()).await?.try_get(0)?;
    let dir = if q.desc { "DESC" } else { "ASC" };
    let sql = format!(
        "SELECT {COLS} FROM packages {filter} ORDER BY {} {dir}, id {dir} LIMIT ? OFFSET ?",
        q.sort.column()
    );
    let mut query = db.q(&sql);
    if let Some(p) = pattern {
        query = query.bind(p);
    }
    let rows = query
        .bind(q.limit)
        .bind(q.offset)
        .fetch_all(db.reader())
        .await?
        .iter()
        .map(PackageRow::from_row)
        .collect::<sqlx::Result<_>>()?;
    Ok((rows, total))
}
