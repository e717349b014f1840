//! The packages service, used by the admin API: accept an
//! upload, delete, change stage, request the Jamf digests, and the package objects the
//! API shows. Each operation writes its rows and queues its follow-up jobs in one
//! transaction; the catalog's rules (`catalog`) record and announce the change. Its
//! job: `digests`.

pub mod digests;
pub mod view;

use std::time::Duration;

use crate::app::App;
use crate::catalog;
use crate::db::{self, packages::PackageRow};
use crate::error::{ApiError, ApiResult};
use crate::ingest::Received;
use crate::jobs;
use crate::model::{Stage, Status};
use crate::secrets::random_id;
use crate::storage::gc::BlobGc;
use digests::Digests;

pub fn conflict(filename: &str) -> ApiError {
    ApiError::conflict(
        "filename_exists",
        format!("a package named {filename:?} exists; send replace=true to replace it"),
    )
}

/// Stores an upload that has been received and hashed, as a Public package.
pub async fn accept_upload(
    app: &App,
    filename: &str,
    stage: Stage,
    replace: bool,
    received: Received,
) -> ApiResult<PackageRow> {
    let db = &app.db;
    if !replace
        && db::packages::find_by_filename(db, db.reader(), filename)
            .await?
            .is_some()
    {
        return Err(conflict(filename)); // `received` dropped: staging file removed
    }
    let d = received.digests.clone();
    received.commit().await?;
    let recorded = record_upload(app, filename, stage, replace, &d).await;
    if recorded.is_err() {
        // Lost a race for the filename (or the database failed): the stored content
        // may belong to nobody; the collector checks and removes it.
        let mut conn = db.writer().acquire().await?;
        jobs::enqueue(
            db,
            &mut conn,
            &BlobGc {
                sha256: d.sha256.clone(),
            },
            Duration::ZERO,
        )
        .await?;
        app.jobs_wake.notify_one();
    }
    catalog::changed(app, recorded?);
    tracing::info!(filename, sha256 = %d.sha256, size = d.size, stage = stage.as_str(), "package uploaded");
    db::packages::find_by_filename(db, db.writer(), filename)
        .await?
        .ok_or_else(|| ApiError::internal("reading the new package", "row vanished"))
}

/// Writes the rows of an upload whose content is stored: the package, its content
/// record, its catalog record and events, in one transaction. Returns the change number.
async fn record_upload(
    app: &App,
    filename: &str,
    stage: Stage,
    replace: bool,
    d: &crate::ingest::Digests,
) -> ApiResult<i64> {
    let db = &app.db;
    let mut tx = db.begin().await?;
    db::catalog::lock(db, &mut tx).await?;
    let existing = db::packages::find_by_filename(db, &mut *tx, filename).await?;
    if let Some(old) = &existing {
        if !replace {
            return Err(conflict(filename));
        }
        db::packages::delete(db, &mut tx, old.id).await?;
        catalog::local_delete(app, &mut tx, old).await?;
        if old.sha256 != d.sha256 {
            jobs::enqueue(
                db,
                &mut tx,
                &BlobGc {
                    sha256: old.sha256.clone(),
                },
                Duration::ZERO,
            )
            .await?;
        }
    }
    db::packages::insert_blob(db, &mut tx, &d.sha256, d.size as i64, &d.sha1, &d.chunks).await?;
    let uuid = random_id();
    let record = catalog::new_upload(
        app,
        &mut tx,
        &uuid,
        filename,
        d.size as i64,
        &d.sha1,
        &d.sha256,
        stage,
    )
    .await?;
    let inserted = db::packages::insert(
        db,
        &mut tx,
        &db::packages::NewPackage {
            uuid: &uuid,
            filename,
            file_size: d.size as i64,
            sha1: &d.sha1,
            sha256: &d.sha256,
            stage,
            status: Status::Public,
            created: record.created,
        },
    )
    .await;
    match inserted {
        Ok(_) => {}
        Err(e) if db::is_unique_violation(&e) => return Err(conflict(filename)),
        Err(e) => return Err(e.into()),
    }
    let seq = catalog::local_upload(app, &mut tx, &record).await?;
    tx.commit().await?;
    Ok(seq)
}

/// How an API request names a package: `/packages/id/{id}`, `/packages/name/{filename}`,
/// or the seed's `/packages/{id_or_name}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PackageRef {
    Id(i64),
    Name(String),
    IdOrName(String),
}

/// The one package `r` names, or 404. The seed's id-or-name form never guesses: a
/// numeric string that is the id of one package and the filename of another is 409
/// `ambiguous_package` (use `/packages/id/..` or `/packages/name/..`), so no request
/// acts on a package other than the one its caller meant.
pub async fn resolve(app: &App, r: &PackageRef) -> ApiResult<PackageRow> {
    let db = &app.db;
    let found = match r {
        PackageRef::Id(id) => db::packages::find_by_id(db, *id).await?,
        PackageRef::Name(name) => find_by_name(app, name).await?,
        PackageRef::IdOrName(s) => {
            let by_name = find_by_name(app, s).await?;
            let by_id = match s.parse::<i64>() {
                Ok(id) if s.bytes().all(|b| b.is_ascii_digit()) => {
                    db::packages::find_by_id(db, id).await?
                }
                _ => None,
            };
            match (by_id, by_name) {
                (Some(a), Some(b)) if a.id != b.id => {
                    return Err(ApiError::conflict(
                        "ambiguous_package",
                        format!(
                            "{s:?} is the id of {:?} and the filename of package {}; \
                             say which with /api/admin/packages/id/{s} or /api/admin/packages/name/{s}",
                            a.filename, b.id
                        ),
                    ));
                }
                (Some(p), _) | (None, Some(p)) => Some(p),
                (None, None) => None,
            }
        }
    };
    found.ok_or_else(|| {
        ApiError::not_found(match r {
            PackageRef::Id(id) => format!("no package with id {id}"),
            PackageRef::Name(n) => format!("no package named {n:?}"),
            PackageRef::IdOrName(s) => format!("no package with id or filename {s:?}"),
        })
    })
}

/// The package stored under `name` (see `filenames::lookup_forms` for the spellings tried).
async fn find_by_name(app: &App, name: &str) -> ApiResult<Option<PackageRow>> {
    for form in crate::filenames::lookup_forms(name) {
        if let Some(p) = db::packages::find_by_filename(&app.db, app.db.reader(), &form).await? {
            return Ok(Some(p));
        }
    }
    Ok(None)
}

/// A package by its database id, or 404.
pub async fn by_id(app: &App, id: i64) -> ApiResult<PackageRow> {
    resolve(app, &PackageRef::Id(id)).await
}

pub async fn delete(app: &App, pkg: &PackageRow) -> ApiResult<()> {
    let mut tx = app.db.begin().await?;
    db::catalog::lock(&app.db, &mut tx).await?;
    if !db::packages::delete(&app.db, &mut tx, pkg.id).await? {
        return Err(ApiError::not_found(format!(
            "package {:?} is already gone",
            pkg.filename
        )));
    }
    jobs::enqueue(
        &app.db,
        &mut tx,
        &BlobGc {
            sha256: pkg.sha256.clone(),
        },
        Duration::ZERO,
    )
    .await?;
    let seq = catalog::local_delete(app, &mut tx, pkg).await?;
    tx.commit().await?;
    catalog::changed(app, seq.unwrap_or(0));
    tracing::info!(filename = %pkg.filename, "package deleted");
    Ok(())
}

pub async fn set_stage(app: &App, pkg: &PackageRow, stage: Stage) -> ApiResult<()> {
    let mut tx = app.db.begin().await?;
    db::catalog::lock(&app.db, &mut tx).await?;
    let seq = catalog::local_stage(app, &mut tx, pkg, stage).await?;
    tx.commit().await?;
    catalog::changed(app, seq.unwrap_or(0));
    tracing::info!(filename = %pkg.filename, from = pkg.stage.as_str(), to = stage.as_str(), "stage changed");
    Ok(())
}

/// Queues the SHA-512/MD5 computation unless it is done already.
pub async fn request_digests(app: &App, pkg: &PackageRow) -> ApiResult<bool> {
    let blob = db::packages::blob(&app.db, &pkg.sha256).await?;
    if blob.is_some_and(|b| b.sha512.is_some()) {
        return Ok(false);
    }
    jobs::enqueue_now(
        app,
        &Digests {
            sha256: pkg.sha256.clone(),
        },
    )
    .await?;
    Ok(true)
}

/// Verified chunk counts of incoming transfers, by package uuid.
pub async fn progress(app: &App) -> ApiResult<std::collections::HashMap<String, i64>> {
    Ok(db::transfers::counts(&app.db).await?)
}

/// Fraction (0 to 1, three decimals) of a package verified here, from its verified
/// chunk count: 1 once Public.
pub fn fraction_done(p: &PackageRow, done_chunks: Option<i64>) -> f64 {
    let total = (p.file_size.max(0) as u64)
        .div_ceil(crate::ingest::CHUNK_SIZE as u64)
        .max(1);
    let fraction = match p.status {
        Status::Public => 1.0,
        _ => (done_chunks.unwrap_or(0) as f64 / total as f64).min(1.0),
    };
    (fraction * 1000.0).round() / 1000.0
}
