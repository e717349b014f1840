//! The package as the admin API shows it (`Package`), built here so that services
//! (notifications) can show the same object the API does without using `http`.

use serde::Serialize;
use utoipa::ToSchema;

use crate::db::packages::PackageRow;
use crate::model::{Stage, Status, human_size, iso_seconds};

/// A package as listed (the seed's fields, plus sha256, status_reason and progress).
#[derive(Debug, Serialize, ToSchema)]
pub struct Package {
    /// Time of the original upload, ISO 8601 without microseconds (UTC).
    #[schema(example = "2017-11-11T03:15:54")]
    pub created: String,
    /// Time of the original upload, Unix seconds.
    pub created_ts: i64,
    /// Size in bytes.
    pub file_size: i64,
    /// Size for people, e.g. `3.3 MB`.
    #[schema(example = "3.3 MB")]
    pub file_size_hr: String,
    pub filename: String,
    pub id: i64,
    /// Fraction of the file verified here, 0 to 1 (1 once Public).
    #[schema(minimum = 0, maximum = 1)]
    pub progress: f64,
    /// Hex SHA-1 of the whole file.
    pub sha1: String,
    /// Hex SHA-256 of the whole file.
    pub sha256: String,
    pub stage: Stage,
    pub status: Status,
    /// Why the package is not Public, when sync gave up on it.
    pub status_reason: Option<String>,
    /// Global identity: 32 lowercase hex characters.
    pub uuid: String,
}

/// The view of `p`, with `done_chunks` verified here (see [`super::progress`]).
pub fn package(p: &PackageRow, done_chunks: Option<i64>) -> Package {
    Package {
        created: iso_seconds(p.created),
        created_ts: p.created,
        file_size: p.file_size,
        file_size_hr: human_size(p.file_size.max(0) as u64),
        filename: p.filename.clone(),
        id: p.id,
        progress: super::fraction_done(p, done_chunks),
        sha1: p.sha1.clone(),
        sha256: p.sha256.clone(),
        stage: p.stage,
        status: p.status,
        status_reason: p.status_reason.clone(),
        uuid: p.uuid.clone(),
    }
}
