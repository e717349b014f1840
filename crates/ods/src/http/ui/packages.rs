//! The Packages tab: upload (streamed multipart through the API's own upload path,
//! with the CSRF header, so files of several GB work), the table searched, sorted and
//! paged in the database, states that change live (the rows fragment is polled and
//! answers 204 while nothing changed), copyable download URLs, stage change and
//! delete (each confirmed).

use askama::Template;
use askama_web::WebTemplate;
use axum::Form;
use axum::Router;
use axum::extract::multipart::MultipartRejection;
use axum::extract::{DefaultBodyLimit, Multipart, Query, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use percent_encoding::{AsciiSet, CONTROLS, NON_ALPHANUMERIC, utf8_percent_encode};
use serde::Deserialize;

use super::login::Req;
use super::{Layout, Session, Tab, UiResult, flash_redirect};
use crate::app::App;
use crate::db::{self, packages::SortKey};
use crate::http::QueryArgs;
use crate::http::api::packages::{self as api, UploadQuery};
use crate::model::{Role, Stage, human_size, iso_seconds};
use crate::packages as svc;

/// What a filename escapes in a URL path segment.
const SEGMENT: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'/')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'`')
    .add(b'{')
    .add(b'}')
    .add(b'\\')
    .add(b'[')
    .add(b']')
    .add(b'^')
    .add(b'|');

/// Rows per page.
const PAGE_SIZE: i64 = 50;

pub fn routes() -> Router<App> {
    Router::new()
        .route("/packages", get(page))
        .route("/packages/rows", get(rows_fragment))
        .route(
            "/packages/upload",
            post(upload_file)
                .layer(DefaultBodyLimit::disable())
                .layer(axum::middleware::from_fn(crate::http::linger::linger)),
        )
        .route("/packages/stage", post(change_stage))
        .route("/packages/delete", post(delete_package))
}

/// The table's search, sort and page (the query string of `/packages`).
#[derive(Debug, Default, Deserialize, Clone)]
pub struct ListParams {
    #[serde(default)]
    q: String,
    #[serde(default)]
    sort: String,
    #[serde(default)]
    order: String,
    #[serde(default)]
    page: Option<u32>,
    /// The digest of the rows the browser shows (polling): 204 when unchanged.
    #[serde(default)]
    since: String,
}

impl ListParams {
    fn sort_key(&self) -> SortKey {
        match self.sort.as_str() {
            "filename" => SortKey::Filename,
            "size" => SortKey::Size,
            "status" => SortKey::Status,
            "stage" => SortKey::Stage,
            "id" => SortKey::Id,
            _ => SortKey::Created,
        }
    }
    fn desc(&self) -> bool {
        // Newest first unless asked otherwise.
        match self.order.as_str() {
            "asc" => false,
            "desc" => true,
            _ => self.sort.is_empty(),
        }
    }
    fn page(&self) -> i64 {
        i64::from(self.page.unwrap_or(1).max(1))
    }
    /// The query string of this list at page `page`.
    fn query(&self, page: i64) -> String {
        let enc = |s: &str| utf8_percent_encode(s, NON_ALPHANUMERIC).to_string();
        format!(
            "q={}&sort={}&order={}&page={page}",
            enc(&self.q),
            enc(&self.sort),
            enc(&self.order)
        )
    }
}

/// One table row, ready to show.
pub struct Row {
    id: i64,
    filename: String,
    size: String,
    sha1: String,
    sha256: String,
    state: &'static str,
    percent: u32,
    reason: String,
    stage: &'static str,
    created: String,
    share_url: String,
    jamf_url: String,
}

pub struct Rows {
    rows: Vec<Row>,
    total: i64,
    page: i64,
    pages: i64,
    prev: Option<String>,
    next: Option<String>,
    /// The query string the fragment polls with.
    query: String,
    digest: String,
    can_upload: bool,
    csrf: String,
    stages: [&'static str; 3],
    filtered: bool,
}

async fn load(app: &App, parts: &Parts, s: &Session, p: &ListParams) -> UiResult<Rows> {
    let page = p.page();
    let query = db::packages::PageQuery {
        search: Some(
            p.q.chars()
                .filter(|c| !c.is_control())
                .take(255)
                .collect::<String>()
                .trim()
                .to_string(),
        )
        .filter(|q| !q.is_empty()),
        sort: p.sort_key(),
        desc: p.desc(),
        offset: (page - 1) * PAGE_SIZE,
        limit: PAGE_SIZE,
    };
    let (found, total) = db::packages::list_page(&app.db, &query).await?;
    let progress = svc::progress(app).await?;
    let origin = super::session::own_origin(parts).unwrap_or_default();
    let context = &app.config.share_context;
    let rows: Vec<Row> = found
        .iter()
        .map(|r| {
            let name = utf8_percent_encode(&r.filename, SEGMENT).to_string();
            let fraction = svc::fraction_done(r, progress.get(&r.uuid).copied());
            Row {
                id: r.id,
                filename: r.filename.clone(),
                size: human_size(r.file_size.max(0) as u64),
                sha1: r.sha1.clone(),
                sha256: r.sha256.clone(),
                state: r.status.as_str(),
                percent: (fraction * 100.0).floor() as u32,
                reason: r.status_reason.clone().unwrap_or_default(),
                stage: r.stage.as_str(),
                created: iso_seconds(r.created).replace('T', " "),
                share_url: format!("{origin}/share/{name}"),
                jamf_url: format!("{origin}/{context}/Packages/{name}"),
            }
        })
        .collect();
    let pages = ((total + PAGE_SIZE - 1) / PAGE_SIZE).max(1);
    let digest = {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        h.update(format!("{total} {page} {}", s.who.role.as_str()));
        for r in &rows {
            h.update(format!(
                "|{} {} {} {} {} {}",
                r.id, r.filename, r.state, r.percent, r.stage, r.reason
            ));
        }
        hex::encode(&h.finalize()[..8])
    };
    Ok(Rows {
        rows,
        total,
        page,
        pages,
        prev: (page > 1).then(|| p.query(page - 1)),
        next: (page < pages).then(|| p.query(page + 1)),
        query: p.query(page),
        digest,
        can_upload: s.who.role >= Role::Uploader,
        csrf: s.csrf.clone(),
        stages: STAGES,
        filtered: query.search.is_some(),
    })
}

const STAGES: [&str; 3] = ["Dev", "Test", "Prod"];

#[derive(Template, WebTemplate)]
#[template(path = "packages.html")]
struct PackagesPage {
    layout: Layout,
    list: Rows,
    params: ListParams,
    default_stage: &'static str,
}

#[derive(Template, WebTemplate)]
#[template(path = "packages_rows.html")]
struct RowsFragment {
    list: Rows,
}

/// `GET /packages`.
pub async fn page(
    State(app): State<App>,
    Req(parts): Req,
    s: Session,
    Query(params): Query<ListParams>,
) -> UiResult<impl IntoResponse> {
    s.require(Role::Viewer)?;
    let list = load(&app, &parts, &s, &params).await?;
    let default_stage = db::server::get(&app.db).await?.stage;
    Ok(PackagesPage {
        layout: Layout::new(&s, Tab::Packages, "Packages"),
        list,
        params,
        default_stage: stage_name(default_stage),
    })
}

fn stage_name(s: Stage) -> &'static str {
    s.as_str()
}

/// `GET /packages/rows`: the table alone, polled by the page; 204 when it shows
/// what the browser has (`since`).
pub async fn rows_fragment(
    State(app): State<App>,
    Req(parts): Req,
    s: Session,
    Query(params): Query<ListParams>,
) -> UiResult<Response> {
    s.require(Role::Viewer)?;
    let list = load(&app, &parts, &s, &params).await?;
    if !params.since.is_empty() && params.since == list.digest {
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    Ok(RowsFragment { list }.into_response())
}

/// `POST /packages/upload`: the API's upload (multipart `file`, `stage`, optional
/// `replace`), sent by the page's script with the CSRF header.
pub async fn upload_file(
    State(app): State<App>,
    s: Session,
    multipart: Result<Multipart, MultipartRejection>,
) -> UiResult<Response> {
    s.require(Role::Uploader)?;
    let (_, axum::Json(up)) = api::upload(
        State(app),
        s.who.clone(),
        QueryArgs(UploadQuery::default()),
        multipart,
    )
    .await?;
    let msg = super::session::Banner {
        message: format!(
            "Uploaded {} ({}).",
            up.filename,
            human_size(up.file_size as u64)
        ),
    };
    Ok((StatusCode::CREATED, msg).into_response())
}

#[derive(Deserialize)]
pub struct StageForm {
    id: i64,
    stage: String,
}

/// `POST /packages/stage`: promote or demote (the API's `set_stage`).
pub async fn change_stage(
    State(app): State<App>,
    s: Session,
    Form(f): Form<StageForm>,
) -> UiResult<Response> {
    s.require(Role::Uploader)?;
    let stage = crate::http::api::about::parse_stage(&f.stage)?;
    let p = svc::by_id(&app, f.id).await?;
    if p.stage != stage {
        svc::set_stage(&app, &p, stage).await?;
    }
    Ok(flash_redirect(
        "/packages",
        &format!("{} is now in stage {}.", p.filename, stage.as_str()),
    ))
}

#[derive(Deserialize)]
pub struct DeleteForm {
    id: i64,
}

/// `POST /packages/delete`: deletes here and, through sync, everywhere.
pub async fn delete_package(
    State(app): State<App>,
    s: Session,
    Form(f): Form<DeleteForm>,
) -> UiResult<Response> {
    s.require(Role::Uploader)?;
    let p = svc::by_id(&app, f.id).await?;
    svc::delete(&app, &p).await?;
    Ok(flash_redirect(
        "/packages",
        &format!("{} was deleted.", p.filename),
    ))
}
