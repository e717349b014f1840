//! `/api/admin/packages` and `/api/admin/upload`: list, show, upload (streamed),
//! delete, change stage, and ask for the Jamf digests.

use axum::extract::multipart::{Field, MultipartError, MultipartRejection};
use axum::extract::{Multipart, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::app::App;
use crate::db::{self, packages::PackageRow};
use crate::error::{ApiError, ApiResult};
use crate::http::JsonBody;
use crate::http::QueryArgs;
use crate::http::auth::Principal;
use crate::http::docs::{AdminErrors, BadRequest, Conflict, JsonErrors, NotFound};
use crate::ingest::{Ingest, Received};
use crate::model::Role;
use crate::model::{Stage, Status};
use crate::packages as svc;
use crate::packages::PackageRef;
pub use crate::packages::view::Package;
pub(crate) use crate::packages::view::package;

use super::about::parse_stage;
pub(crate) use super::package_query::ListQuery;

/// One 1 MiB block of a package and its SHA-1.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChunkHash {
    pub index: usize,
    pub sha1: String,
}

/// A single package: the listed fields plus its chunks and, once computed, the
/// SHA-512 and MD5 Jamf Pro uses.
#[derive(Debug, Serialize, ToSchema)]
pub struct PackageDetail {
    pub chunks: Vec<ChunkHash>,
    #[schema(example = "2017-11-11T03:15:54")]
    pub created: String,
    pub created_ts: i64,
    pub file_size: i64,
    #[schema(example = "3.3 MB")]
    pub file_size_hr: String,
    pub filename: String,
    pub id: i64,
    /// The package's record on each Jamf Pro instance that takes its stage.
    pub jamf: Vec<super::jamf_checks::JamfRecordState>,
    /// Hex MD5, null until computed (POST .../digests).
    pub md5: Option<String>,
    #[schema(minimum = 0, maximum = 1)]
    pub progress: f64,
    pub sha1: String,
    pub sha256: String,
    /// Hex SHA-512, null until computed (POST .../digests).
    pub sha512: Option<String>,
    pub stage: Stage,
    pub status: Status,
    pub status_reason: Option<String>,
    pub uuid: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PackageList {
    pub items: Vec<Package>,
    /// How many packages match in all; only when a query parameter was given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total: Option<i64>,
}

async fn package_now(app: &App, p: &PackageRow) -> ApiResult<Package> {
    let done = svc::progress(app).await?.get(&p.uuid).copied();
    Ok(package(p, done))
}

#[utoipa::path(
    get,
    path = "/packages",
    tag = "packages",
    description = "Every package on this server, under `items`. Needs the `viewer` role. With any of the optional parameters, the packages are searched, sorted and paged in the database and `total` says how many match.",
    params(ListQuery),
    responses((status = 200, description = "The packages.", body = PackageList), BadRequest, AdminErrors)
)]
pub async fn list_packages(
    State(app): State<App>,
    who: Principal,
    QueryArgs(query): QueryArgs<ListQuery>,
) -> ApiResult<axum::Json<PackageList>> {
    who.require(Role::Viewer)?;
    let progress = svc::progress(&app).await?;
    if query.is_empty() {
        let items = db::packages::list(&app.db)
            .await?
            .iter()
            .map(|p| package(p, progress.get(&p.uuid).copied()))
            .collect();
        return Ok(axum::Json(PackageList { items, total: None }));
    }
    let (rows, total) = db::packages::list_page(&app.db, &query.page()?).await?;
    let items = rows
        .iter()
        .map(|p| package(p, progress.get(&p.uuid).copied()))
        .collect();
    Ok(axum::Json(PackageList {
        items,
        total: Some(total),
    }))
}

#[utoipa::path(
    get,
    path = "/packages/{id_or_name}",
    tag = "packages",
    description = "One package by database id or filename, with its chunks. Needs the `viewer` role.",
    params(IdOrName),
    responses((status = 200, description = "The package.", body = PackageDetail), NotFound, Conflict, AdminErrors)
)]
pub async fn get_package(
    State(app): State<App>,
    who: Principal,
    pkg: PackageRef,
) -> ApiResult<axum::Json<PackageDetail>> {
    who.require(Role::Viewer)?;
    let p = svc::resolve(&app, &pkg).await?;
    let l = package_now(&app, &p).await?;
    let chunks = db::packages::chunks(&app.db, &p.sha256).await?;
    let blob = db::packages::blob(&app.db, &p.sha256).await?;
    Ok(axum::Json(PackageDetail {
        chunks: chunks
            .into_iter()
            .enumerate()
            .map(|(index, sha1)| ChunkHash { index, sha1 })
            .collect(),
        created: l.created,
        created_ts: l.created_ts,
        file_size: l.file_size,
        file_size_hr: l.file_size_hr,
        filename: l.filename,
        id: l.id,
        jamf: super::jamf_checks::package_states(&app, &p).await?,
        md5: blob.as_ref().and_then(|b| b.md5.clone()),
        progress: l.progress,
        sha1: l.sha1,
        sha256: l.sha256,
        sha512: blob.as_ref().and_then(|b| b.sha512.clone()),
        stage: l.stage,
        status: l.status,
        status_reason: l.status_reason,
        uuid: l.uuid,
    }))
}

/// A package's database id or its filename.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct IdOrName {
    /// The package's numeric id or its filename.
    #[allow(dead_code)]
    id_or_name: String,
}

#[utoipa::path(
    delete,
    path = "/packages/{id_or_name}",
    tag = "packages",
    description = "Deletes a package here and, through sync, everywhere. Needs the `uploader` role.",
    params(IdOrName),
    responses((status = 204, description = "Deleted."), NotFound, Conflict, AdminErrors)
)]
pub async fn delete_package(
    State(app): State<App>,
    who: Principal,
    pkg: PackageRef,
) -> ApiResult<StatusCode> {
    who.require(Role::Uploader)?;
    let p = svc::resolve(&app, &pkg).await?;
    svc::delete(&app, &p).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A stage change: promotes or demotes the package.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PackageUpdate {
    #[schema(value_type = crate::http::docs::StageName)]
    stage: String,
}

#[utoipa::path(
    patch,
    path = "/packages/{id_or_name}",
    tag = "packages",
    description = "Changes a package's stage (promote or demote). Needs the `uploader` role.",
    params(IdOrName),
    request_body = PackageUpdate,
    responses((status = 200, description = "The package as it is now.", body = Package), NotFound, Conflict, JsonErrors, AdminErrors)
)]
pub async fn update_package(
    State(app): State<App>,
    who: Principal,
    pkg: PackageRef,
    JsonBody(body): JsonBody<PackageUpdate>,
) -> ApiResult<axum::Json<Package>> {
    who.require(Role::Uploader)?;
    let stage = parse_stage(&body.stage)?;
    let p = svc::resolve(&app, &pkg).await?;
    if p.stage != stage {
        svc::set_stage(&app, &p, stage).await?;
    }
    let p = svc::by_id(&app, p.id).await?;
    Ok(axum::Json(package_now(&app, &p).await?))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DigestsQueued {
    /// True when the digests are being computed (202); false when they are known (200).
    pub queued: bool,
}

#[utoipa::path(
    post,
    path = "/packages/{id_or_name}/digests",
    tag = "packages",
    description = "Asks for the package's SHA-512 and MD5 (Jamf Pro) to be computed. Needs the `uploader` role.",
    params(IdOrName),
    responses(
        (status = 200, description = "Already computed.", body = DigestsQueued),
        (status = 202, description = "Queued.", body = DigestsQueued),
        NotFound, Conflict,
        AdminErrors
    )
)]
pub async fn compute_digests(
    State(app): State<App>,
    who: Principal,
    pkg: PackageRef,
) -> ApiResult<(StatusCode, axum::Json<DigestsQueued>)> {
    who.require(Role::Uploader)?;
    let p = svc::resolve(&app, &pkg).await?;
    let queued = svc::request_digests(&app, &p).await?;
    let status = if queued {
        StatusCode::ACCEPTED
    } else {
        StatusCode::OK
    };
    Ok((status, axum::Json(DigestsQueued { queued })))
}

/// The spellings `replace` takes.
#[derive(Deserialize, ToSchema)]
#[allow(dead_code, non_camel_case_types)]
enum Flag {
    #[serde(rename = "true")]
    True,
    #[serde(rename = "false")]
    False,
    #[serde(rename = "1")]
    One,
    #[serde(rename = "0")]
    Zero,
    #[serde(rename = "yes")]
    Yes,
    #[serde(rename = "no")]
    No,
    #[serde(rename = "on")]
    On,
    #[serde(rename = "off")]
    Off,
}

fn parse_flag(name: &str, s: &str) -> ApiResult<bool> {
    match s {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err(ApiError::bad_request(
            "invalid_field",
            format!("{name} must be true or false"),
        )),
    }
}

fn bad_multipart(e: MultipartError) -> ApiError {
    ApiError::bad_request(
        "invalid_multipart",
        format!(
            "the multipart body is malformed or was cut off: {}",
            e.body_text()
        ),
    )
}

/// A short text field, refusing anything long (a form value, not a file).
async fn small_text(mut field: Field<'_>) -> ApiResult<String> {
    let name = field.name().unwrap_or("").to_string();
    let mut buf = Vec::new();
    while let Some(piece) = field.chunk().await.map_err(bad_multipart)? {
        buf.extend_from_slice(&piece);
        if buf.len() > 1024 {
            return Err(ApiError::bad_request(
                "invalid_field",
                format!("form field {name:?} is too long"),
            ));
        }
    }
    String::from_utf8(buf).map_err(|_| {
        ApiError::bad_request("invalid_field", format!("form field {name:?} is not UTF-8"))
    })
}

/// `replace` may come in the query, so that an existing filename is refused before
/// the body is read (the form field wins when both are sent).
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UploadQuery {
    /// `true` to replace a package of the same filename (otherwise 409).
    #[param(value_type = Flag, required = false)]
    replace: Option<String>,
}

/// The multipart form of an upload (no other fields). Only documents the form: the
/// handler reads it as a stream.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct UploadForm {
    /// The file; its filename (the part's `filename`) names the package.
    #[schema(value_type = String, format = Binary, content_media_type = "application/octet-stream")]
    file: Vec<u8>,
    #[schema(value_type = crate::http::docs::StageName)]
    stage: String,
    /// `true` to replace a package of the same filename (otherwise 409).
    #[schema(value_type = Flag, required = false)]
    replace: Option<Flag>,
}

/// What an upload answers (the seed's filename and sha1, plus the new record's fields).
#[derive(Debug, Serialize, ToSchema)]
pub struct Uploaded {
    pub file_size: i64,
    pub filename: String,
    pub id: i64,
    pub sha1: String,
    pub sha256: String,
    pub stage: Stage,
    pub status: Status,
    pub uuid: String,
}

#[utoipa::path(
    post,
    path = "/packages",
    tag = "packages",
    description = "Uploads a package (multipart `file` and `stage`, optional `replace=true`), streamed to disk while hashed. Needs the `uploader` role.",
    params(UploadQuery),
    request_body(content = UploadForm, content_type = "multipart/form-data"),
    responses(
        (status = 201, description = "Stored.", body = Uploaded),
        BadRequest,
        Conflict,
        AdminErrors
    )
)]
pub async fn create_package(
    app: State<App>,
    who: Principal,
    query: QueryArgs<UploadQuery>,
    multipart: Result<Multipart, MultipartRejection>,
) -> ApiResult<(StatusCode, axum::Json<Uploaded>)> {
    upload(app, who, query, multipart).await
}

#[utoipa::path(
    post,
    path = "/upload",
    tag = "packages",
    description = "The seed's upload endpoint; the same as POST /api/admin/packages. Needs the `uploader` role.",
    params(UploadQuery),
    request_body(content = UploadForm, content_type = "multipart/form-data"),
    responses(
        (status = 201, description = "Stored.", body = Uploaded),
        BadRequest,
        Conflict,
        AdminErrors
    )
)]
pub async fn upload_package(
    app: State<App>,
    who: Principal,
    query: QueryArgs<UploadQuery>,
    multipart: Result<Multipart, MultipartRejection>,
) -> ApiResult<(StatusCode, axum::Json<Uploaded>)> {
    upload(app, who, query, multipart).await
}

/// Multipart `file` (streamed to staging while hashed) and `stage`, optional
/// `replace=true`. Fields may come in any order; nothing is kept unless all is valid.
pub(crate) async fn upload(
    State(app): State<App>,
    who: Principal,
    QueryArgs(query): QueryArgs<UploadQuery>,
    multipart: Result<Multipart, MultipartRejection>,
) -> ApiResult<(StatusCode, axum::Json<Uploaded>)> {
    who.require(Role::Uploader)?;
    let mut multipart = multipart.map_err(|_| {
        ApiError::bad_request(
            "invalid_multipart",
            "the upload must be multipart/form-data (Content-Type: multipart/form-data with a boundary), with the fields file and stage",
        )
    })?;
    let mut stage = None;
    let mut replace = query
        .replace
        .as_deref()
        .map(|r| parse_flag("replace", r))
        .transpose()?;
    let mut upload: Option<(String, Received)> = None;

    while let Some(mut field) = multipart.next_field().await.map_err(bad_multipart)? {
        match field.name().unwrap_or("") {
            "file" => {
                if upload.is_some() {
                    return Err(ApiError::bad_request(
                        "too_many_files",
                        "send one file per upload",
                    ));
                }
                let filename = crate::filenames::multipart_filename(
                    field
                        .headers()
                        .get("content-disposition")
                        .and_then(|v| v.to_str().ok()),
                    field.file_name(),
                )
                .map_err(|why| ApiError::bad_request("invalid_filename", why))?
                .ok_or_else(|| {
                    ApiError::bad_request("missing_filename", "the file field has no filename")
                })?;
                let filename = crate::filenames::accept(&filename)
                    .map_err(|why| ApiError::bad_request("invalid_filename", why))?;
                if replace == Some(false) || (replace.is_none() && query.replace.is_some()) {
                    // Known already that this must not replace: refuse before reading the body.
                    if db::packages::find_by_filename(&app.db, app.db.reader(), &filename)
                        .await?
                        .is_some()
                    {
                        return Err(svc::conflict(&filename));
                    }
                }
                let _uploading = crate::stats::InProgress::start(crate::stats::UPLOADS);
                let mut ingest = Ingest::start(app.store.as_ref()).await?;
                while let Some(piece) = field.chunk().await.map_err(bad_multipart)? {
                    ingest.feed(piece).await?;
                }
                upload = Some((filename, ingest.finish().await?));
            }
            "stage" => stage = Some(parse_stage(&small_text(field).await?)?),
            "replace" => replace = Some(parse_flag("replace", &small_text(field).await?)?),
            other => {
                return Err(ApiError::bad_request(
                    "unknown_field",
                    format!(
                        "the upload takes the form fields file, stage and replace, not {other:?}"
                    ),
                ));
            }
        }
    }
    let (filename, received) = upload
        .ok_or_else(|| ApiError::bad_request("missing_file", "the upload has no file field"))?;
    let stage = stage.ok_or_else(|| {
        ApiError::bad_request(
            "missing_stage",
            "the upload needs a stage: Dev, Test or Prod",
        )
    })?;
    let p = svc::accept_upload(&app, &filename, stage, replace.unwrap_or(false), received).await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(Uploaded {
            file_size: p.file_size,
            filename: p.filename,
            id: p.id,
            sha1: p.sha1,
            sha256: p.sha256,
            stage: p.stage,
            status: p.status,
            uuid: p.uuid,
        }),
    ))
}
