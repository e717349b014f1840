//! Client downloads: `GET`/`HEAD /share/<filename>` and the Jamf distribution point
//! layout `/<context>/Packages/<filename>`. Only Public packages; single and multiple
//! byte ranges, conditional requests, strong ETag (the sha256), `Repr-Digest`, never
//! compressed. Download auth is `none`, `basic` (any ODS user) or `jwt` (a Jamf Pro
//! download token in `?token=`, see `auth::jwt`). With S3 storage and
//! `download_redirect`, a GET that passes the preconditions is answered 307 to a
//! presigned URL of the blob (the bucket then applies Range).

use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::StreamExt;
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::App;
use crate::app::HotPackage;
use crate::error::{ApiError, ApiResult};
use crate::http::auth::basic_credentials;
use crate::http::zero_copy::ZeroCopy;
use crate::model::filename_problem;
use crate::storage::{ByteStream, SMALL_READ};
use crate::users::check_download_password;

const OCTET_STREAM: HeaderValue = HeaderValue::from_static("application/octet-stream");

/// The path the Jamf layout is documented at; served at the configured context.
const DEFAULT_CONTEXT_PATH: &str = "/CasperShare/Packages/{filename}";

pub fn routes(context: &str) -> OpenApiRouter<App> {
    let (schemas, mut paths, handler) = routes!(download_context, head_context);
    if let Some(item) = paths.paths.remove(DEFAULT_CONTEXT_PATH) {
        paths
            .paths
            .insert(format!("/{context}/Packages/{{filename}}"), item);
    }
    OpenApiRouter::new()
        .routes(routes!(download_share, head_share))
        .routes((schemas, paths, handler))
}

/// The conditional and range headers a download takes.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)]
pub struct DownloadHeaders {
    /// One or more byte ranges (`bytes=0-1023`, `bytes=0-1,5-9`, `bytes=-500`).
    #[param(rename = "Range", value_type = String, required = false)]
    range: Option<String>,
    /// Apply `Range` only if the file still has this ETag or was not modified since this date.
    #[param(rename = "If-Range", value_type = String, required = false)]
    if_range: Option<String>,
    /// Answer 412 unless the file has one of these ETags.
    #[param(rename = "If-Match", value_type = String, required = false)]
    if_match: Option<String>,
    /// Answer 304 if the file has one of these ETags.
    #[param(rename = "If-None-Match", value_type = String, required = false)]
    if_none_match: Option<String>,
    /// Answer 304 if the file was not modified since this HTTP date.
    #[param(rename = "If-Modified-Since", value_type = String, required = false)]
    if_modified_since: Option<String>,
    /// Answer 412 if the file was modified since this HTTP date.
    #[param(rename = "If-Unmodified-Since", value_type = String, required = false)]
    if_unmodified_since: Option<String>,
}

/// Wraps the download operations' documented answers.
macro_rules! download_op {
    ($method:ident, $name:ident, $path:expr, $id:literal, $what:literal) => {
        #[utoipa::path(
            $method,
            path = $path,
            tag = "downloads",
            operation_id = $id,
            description = $what,
            params(
                ("filename" = String, Path, max_length = 63, pattern = r"^(?!.*\.\.)[^/\\\t\n\u000b\u000c\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\u0000-\u001f\u007f-\u009f]([^/\\\u0000-\u001f\u007f-\u009f]*[^/\\\t\n\u000b\u000c\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\u0000-\u001f\u007f-\u009f])?$",
                    description = "The package's filename: no `/`, `\\`, `..` or control characters, no leading or trailing space."),
                DownloadHeaders
            ),
            security((), ("basicAuth" = [])),
            responses(
                (status = 200, description = "The whole file.", content_type = "application/octet-stream", body = crate::http::docs::Binary,
                    headers(("ETag" = String, description = "The sha256, quoted (strong)."),
                            ("Last-Modified" = String), ("Accept-Ranges" = String),
                            ("Repr-Digest" = String, description = "sha-256=:<base64>:"))),
                (status = 206, description = "The requested range(s); several come as multipart/byteranges.",
                    content((crate::http::docs::Binary = "application/octet-stream"), (crate::http::docs::Binary = "multipart/byteranges")),
                    headers(("Content-Range" = String), ("ETag" = String))),
                (status = 304, description = "Not modified (If-None-Match / If-Modified-Since)."),
                (status = 412, description = "Precondition failed (If-Match / If-Unmodified-Since)."),
                (status = 416, description = "No requested range is satisfiable (a Range on an empty file gets the empty 200 instead).",
                    body = crate::error::ErrorBody, headers(("Content-Range" = String, description = "bytes */<size>"))),
                crate::http::docs::BadRequest,
                crate::http::docs::NotFound,
                crate::http::docs::DownloadAuthErrors,
                crate::http::docs::Internal
            )
        )]
        async fn $name(
            app: State<App>,
            filename: Result<Path<String>, PathRejection>,
            req: Request,
        ) -> ApiResult<Response> {
            download(app, filename, req).await
        }
    };
}

download_op!(
    get,
    download_share,
    "/share/{filename}",
    "download_share",
    "Downloads a Public package. Needs HTTP Basic (any ODS user) when the server's download_auth is basic."
);
download_op!(
    head,
    head_share,
    "/share/{filename}",
    "head_share",
    "The headers GET would answer, without the body."
);
download_op!(
    get,
    download_context,
    DEFAULT_CONTEXT_PATH,
    "download_context",
    "The Jamf distribution point layout (the context, `CasperShare` by default, is configurable)."
);
download_op!(
    head,
    head_context,
    DEFAULT_CONTEXT_PATH,
    "head_context",
    "The headers GET would answer, without the body."
);

/// Only the Jamf path, for the plain-http listener an admin may keep beside TLS.
pub fn jamf_routes(context: &str) -> axum::Router<App> {
    axum::Router::new().route(
        &format!("/{context}/Packages/{{filename}}"),
        axum::routing::get(download),
    )
}

async fn download(
    State(app): State<App>,
    filename: Result<Path<String>, PathRejection>,
    req: Request,
) -> ApiResult<Response> {
    // The request itself rather than the `Parts` extractor, which clones them.
    let (parts, _) = req.into_parts();
    // A path that does not decode (invalid UTF-8 after percent-decoding) is no filename.
    let Path(filename) = filename.map_err(|e| {
        ApiError::bad_request(
            "invalid_filename",
            format!(
                "the filename in the path does not decode: {}",
                e.body_text()
            ),
        )
    })?;
    if let Some(problem) = filename_problem(&filename) {
        return Err(ApiError::bad_request(
            "invalid_filename",
            format!("{problem}: {filename:?}"),
        ));
    }
    let mode = app.download_auth().await?;
    if mode == "jwt" {
        check_download_token(&app, &parts)?;
    } else if mode == "basic" {
        let addr = super::auth::client_addr(&parts);
        match basic_credentials(&parts) {
            Some(creds) => {
                let (u, p) = creds?;
                check_download_password(&app, &addr, &u, &p).await?;
            }
            None => {
                return Err(ApiError::unauthorized(
                    "downloads from this server need a username and password",
                ));
            }
        }
    }
    let pkg = app.public_package(&filename).await?.ok_or_else(|| {
        ApiError::not_found(format!("no downloadable package named {filename:?}"))
    })?;
    let zero_copy = parts.extensions.get::<ZeroCopy>();
    serve(&app, &pkg, &parts.method, &parts.headers, zero_copy).await
}

/// `download_auth` jwt: the request must carry a valid Jamf Pro token in `?token=`.
fn check_download_token(app: &App, parts: &Parts) -> ApiResult<()> {
    let refuse = |why: String| {
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", why).with_header(
            header::WWW_AUTHENTICATE,
            axum::http::HeaderValue::from_static("Bearer realm=\"ODS\""),
        )
    };
    let token = parts.uri.query().and_then(|q| {
        url::form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k == "token")
            .map(|(_, v)| v.into_owned())
    });
    let Some(token) = token.filter(|t| !t.is_empty()) else {
        return Err(refuse(
            "downloads from this server need a Jamf Pro token (?token=)".into(),
        ));
    };
    let Some(verifier) = &app.jwt else {
        return Err(refuse(
            "this server takes Jamf Pro tokens but has no public key (ODS_JAMF_JWT_PUBLIC_KEY)"
                .into(),
        ));
    };
    verifier
        .check(&token, crate::model::now_unix())
        .map_err(refuse)
}

/// True when an `If-None-Match`/`If-Match` list names our strong ETag (or `*`).
fn etag_listed(list: &str, ours: &str, weak_ok: bool) -> bool {
    list.split(',')
        .map(str::trim)
        .any(|t| t == "*" || t == ours || (weak_ok && t.strip_prefix("W/") == Some(ours)))
}

fn header_str(h: &HeaderMap, name: header::HeaderName) -> Option<&str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

/// The answer to a download of `p`; a small body read from a file is registered
/// with the connection's `zero_copy`, if any, to be sent from the file.
async fn serve(
    app: &App,
    p: &HotPackage,
    method: &Method,
    h: &HeaderMap,
    zero_copy: Option<&ZeroCopy>,
) -> ApiResult<Response> {
    let len = p.row.file_size.max(0) as u64;
    // (as str: the ETag is `"` + hex + `"`, always visible ASCII)
    let tag = p.etag.to_str().unwrap_or_default();
    let mtime = p.modified;

    let mut base = Response::builder();
    if let Some(h) = base.headers_mut() {
        // Room for every header of the answer at once, not grown twice on the way.
        h.reserve(12);
    }
    let mut base = base
        .header(header::ETAG, p.etag.clone())
        .header(header::LAST_MODIFIED, p.last_modified.clone())
        .header(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"))
        .header("repr-digest", p.repr_digest.clone())
        .header(
            header::CACHE_CONTROL,
            super::cache::download_cache_control(app, h),
        )
        .header(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );

    // Preconditions (RFC 9110 §13.2.2 order).
    if let Some(im) = header_str(h, header::IF_MATCH) {
        if !etag_listed(im, tag, false) {
            return Ok(status_only(base, StatusCode::PRECONDITION_FAILED));
        }
    } else if let Some(ius) =
        header_str(h, header::IF_UNMODIFIED_SINCE).and_then(|v| httpdate::parse_http_date(v).ok())
        && mtime > ius
    {
        return Ok(status_only(base, StatusCode::PRECONDITION_FAILED));
    }
    if let Some(inm) = header_str(h, header::IF_NONE_MATCH) {
        if etag_listed(inm, tag, true) {
            return Ok(status_only(base, StatusCode::NOT_MODIFIED));
        }
    } else if let Some(ims) =
        header_str(h, header::IF_MODIFIED_SINCE).and_then(|v| httpdate::parse_http_date(v).ok())
        && mtime <= ims
    {
        return Ok(status_only(base, StatusCode::NOT_MODIFIED));
    }

    // Range, unless If-Range says the client's copy is stale.
    let range_applies = match header_str(h, header::IF_RANGE) {
        None => true,
        Some(v) if v.starts_with('"') => v == tag,
        Some(v) => httpdate::parse_http_date(v).is_ok_and(|d| d >= mtime && p.row.created > 0),
    };
    let ranges =
        match super::ranges::plan(header_str(h, header::RANGE).filter(|_| range_applies), len) {
            super::ranges::Plan::Whole => None,
            super::ranges::Plan::Parts(v) => Some(v),
            super::ranges::Plan::Unsatisfiable => {
                base = base.header(header::CONTENT_RANGE, format!("bytes */{len}"));
                let body = ApiError::new(
                    StatusCode::RANGE_NOT_SATISFIABLE,
                    "range_not_satisfiable",
                    format!("the file has {len} bytes"),
                );
                let mut resp = body.into_response();
                for (k, v) in base.headers_ref().into_iter().flatten() {
                    resp.headers_mut().insert(k.clone(), v.clone());
                }
                return Ok(resp);
            }
        };
    let head = method == Method::HEAD;
    // S3 with download_redirect: the bucket sends the bytes (and applies Range), unless
    // If-Range said the client's copy is stale (then the whole file comes from here).
    if !head
        && (range_applies || !h.contains_key(header::RANGE))
        && let Some(url) = app.store.download_url(&p.row.sha256).await?
    {
        return Response::builder()
            .status(StatusCode::TEMPORARY_REDIRECT)
            .header(header::LOCATION, url)
            .header(header::ETAG, p.etag.clone())
            .header(header::LAST_MODIFIED, p.last_modified.clone())
            .header(header::CACHE_CONTROL, "private, no-store")
            .body(Body::empty())
            .map_err(|e| ApiError::internal("building the download redirect", e));
    }
    // The bytes of one range: small ones read whole (one piece hyper sends with the
    // head), larger ones streamed.
    let stream = |offset: u64, n: u64| async move {
        if head || n == 0 {
            let none: ByteStream = Box::pin(futures_util::stream::empty());
            Ok::<Body, std::io::Error>(Body::from_stream(none))
        } else if n <= SMALL_READ {
            let (data, file) = app.store.read_small_file(&p.row.sha256, offset, n).await?;
            if let (Some(z), Some(file)) = (zero_copy, file) {
                z.register(&data, file, offset);
            }
            Ok(Body::from(data))
        } else {
            Ok(Body::from_stream(
                app.store.read(&p.row.sha256, offset, n).await?,
            ))
        }
    };

    let resp = match ranges.as_deref() {
        None => base
            .status(StatusCode::OK)
            .header(header::CONTENT_TYPE, OCTET_STREAM)
            .header(header::CONTENT_LENGTH, p.length.clone())
            .body(stream(0, len).await?),
        Some([one]) => {
            let (start, end) = (*one.start(), *one.end());
            base.status(StatusCode::PARTIAL_CONTENT)
                .header(header::CONTENT_TYPE, OCTET_STREAM)
                .header(header::CONTENT_RANGE, format!("bytes {start}-{end}/{len}"))
                .header(header::CONTENT_LENGTH, end - start + 1)
                .body(stream(start, end - start + 1).await?)
        }
        Some(many) => {
            let boundary = crate::secrets::random_id();
            let mut parts: Vec<(Bytes, u64, u64)> = Vec::new();
            let mut total = 0u64;
            for r in many {
                let (start, end) = (*r.start(), *r.end());
                let head = Bytes::from(format!(
                    "\r\n--{boundary}\r\nContent-Type: application/octet-stream\r\nContent-Range: bytes {start}-{end}/{len}\r\n\r\n"
                ));
                total += head.len() as u64 + (end - start + 1);
                parts.push((head, start, end - start + 1));
            }
            let tail = Bytes::from(format!("\r\n--{boundary}--\r\n"));
            total += tail.len() as u64;
            let body: ByteStream = if head {
                Box::pin(futures_util::stream::empty())
            } else {
                let store = app.store.clone();
                let sha = p.row.sha256.clone();
                Box::pin(
                    futures_util::stream::iter(parts)
                        .then(move |(h, off, n)| {
                            let store = store.clone();
                            let sha = sha.clone();
                            async move {
                                let data = store.read(&sha, off, n).await?;
                                Ok::<_, std::io::Error>(
                                    futures_util::stream::once(async { Ok(h) }).chain(data),
                                )
                            }
                        })
                        .map(|r| match r {
                            Ok(s) => s.boxed(),
                            Err(e) => futures_util::stream::once(async { Err(e) }).boxed(),
                        })
                        .flatten()
                        .chain(futures_util::stream::once(async { Ok(tail) })),
                )
            };
            base.status(StatusCode::PARTIAL_CONTENT)
                .header(
                    header::CONTENT_TYPE,
                    format!("multipart/byteranges; boundary={boundary}"),
                )
                .header(header::CONTENT_LENGTH, total)
                .body(Body::from_stream(body))
        }
    };
    resp.map_err(|e| ApiError::internal("building the download response", e))
}

fn status_only(b: axum::http::response::Builder, status: StatusCode) -> Response {
    b.status(status)
        .body(Body::empty())
        .unwrap_or_else(|_| status.into_response())
}
