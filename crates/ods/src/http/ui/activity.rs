//! The Jobs and Events tabs: the durable jobs (state, attempts, last error; Retry for
//! admins, through `api::jobs::retry` as POST /api/admin/jobs/{id}/retry), filtered by
//! state and kind and refreshing themselves; the event log filtered by kind and
//! package, paged forward by event id as GET /api/admin/events (`after`, `limit`).

use askama::Template;
use askama_web::WebTemplate;
use axum::Form;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use serde::Deserialize;

use super::network::when;
use super::{Layout, Session, Tab, UiResult, flash_redirect};
use crate::app::App;
use crate::http::api::events::{self, Event, EventFilter};
use crate::http::api::jobs::{self, Job, STATES};
use crate::model::Role;

/// Events per page.
const PAGE: i64 = 50;
/// Jobs shown (newest first).
const JOBS_SHOWN: i64 = 200;

#[derive(Deserialize, Default)]
pub struct JobsQuery {
    #[serde(default)]
    state: String,
    #[serde(default)]
    kind: String,
}

impl JobsQuery {
    fn query_string(&self) -> String {
        format!(
            "state={}&kind={}",
            utf8_percent_encode(&self.state, NON_ALPHANUMERIC),
            utf8_percent_encode(&self.kind, NON_ALPHANUMERIC)
        )
    }
}

/// A job row in words.
pub struct JobView {
    j: Job,
    run_at: String,
    updated: String,
    retryable: bool,
}

#[derive(Template, WebTemplate)]
#[template(path = "jobs.html")]
struct JobsPage {
    layout: Layout,
    is_admin: bool,
    csrf: String,
    states: [&'static str; 4],
    q: JobsQuery,
    qs: String,
    jobs: Vec<JobView>,
}

#[derive(Template, WebTemplate)]
#[template(path = "jobs_table.html")]
struct JobsFragment {
    is_admin: bool,
    csrf: String,
    qs: String,
    jobs: Vec<JobView>,
}

async fn job_views(app: &App, s: &Session, q: &JobsQuery) -> UiResult<Vec<JobView>> {
    let state = Some(q.state.as_str()).filter(|v| !v.is_empty());
    let kind = Some(q.kind.trim()).filter(|v| !v.is_empty());
    Ok(jobs::list(app, &s.who, state, kind, JOBS_SHOWN)
        .await?
        .items
        .into_iter()
        .map(|j| JobView {
            run_at: when(&j.run_at),
            updated: when(&j.updated),
            retryable: j.state == "dead" || j.state == "queued",
            j,
        })
        .collect())
}

/// `GET /jobs?state=&kind=`.
pub async fn jobs_page(
    State(app): State<App>,
    s: Session,
    Query(q): Query<JobsQuery>,
) -> UiResult<impl IntoResponse> {
    let jobs = job_views(&app, &s, &q).await?;
    let layout = Layout::new(&s, Tab::Jobs, "Jobs");
    Ok(JobsPage {
        is_admin: layout.is_admin,
        csrf: layout.csrf.clone(),
        layout,
        states: STATES,
        qs: q.query_string(),
        q,
        jobs,
    })
}

/// `GET /jobs/table?state=&kind=`: the table alone (polled by the page).
pub async fn jobs_fragment(
    State(app): State<App>,
    s: Session,
    Query(q): Query<JobsQuery>,
) -> UiResult<impl IntoResponse> {
    Ok(JobsFragment {
        is_admin: s.who.role >= Role::Admin,
        csrf: s.csrf.clone(),
        jobs: job_views(&app, &s, &q).await?,
        qs: q.query_string(),
    })
}

#[derive(Deserialize)]
pub struct RetryForm {
    id: i64,
    /// The filters of the page to go back to.
    #[serde(default)]
    back: String,
}

/// `POST /jobs/retry`.
pub async fn retry(
    State(app): State<App>,
    s: Session,
    Form(f): Form<RetryForm>,
) -> UiResult<Response> {
    let j = jobs::retry(&app, &s.who, f.id).await?;
    // Only our own query string goes back into the redirect.
    let back: String = f
        .back
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || "=&%_-.".contains(*c))
        .collect();
    Ok(flash_redirect(
        &format!("/jobs?{back}"),
        &format!("Job {} ({}) queued to run now.", j.id, j.kind),
    ))
}

#[derive(Deserialize, Default)]
pub struct EventsQuery {
    #[serde(default)]
    kind: String,
    #[serde(default)]
    package: String,
    #[serde(default)]
    after: Option<i64>,
}

/// An event row in words.
pub struct EventView {
    e: Event,
    created: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "events.html")]
struct EventsPage {
    layout: Layout,
    kind: String,
    package: String,
    after: i64,
    events: Vec<EventView>,
    /// The query string of the next page, when there may be one.
    next: Option<String>,
    first: String,
}

/// `GET /events?kind=&package=&after=`.
pub async fn events_page(
    State(app): State<App>,
    s: Session,
    Query(q): Query<EventsQuery>,
) -> UiResult<impl IntoResponse> {
    let kind = q.kind.trim().to_string();
    let package = q.package.trim().to_string();
    let after = q.after.unwrap_or(0).max(0);
    let filter = EventFilter {
        after,
        kind: Some(kind.clone()).filter(|k| !k.is_empty()),
        package: Some(package.clone()).filter(|p| !p.is_empty()),
        limit: PAGE,
    };
    let items = events::list(&app, &s.who, &filter).await?.items;
    let enc = |v: &str| utf8_percent_encode(v, NON_ALPHANUMERIC).to_string();
    let base = format!("kind={}&package={}", enc(&kind), enc(&package));
    let next = (items.len() as i64 == PAGE)
        .then(|| items.last().map(|e| format!("{base}&after={}", e.id)))
        .flatten();
    let events = items
        .into_iter()
        .map(|e| EventView {
            created: when(&e.created),
            e,
        })
        .collect();
    Ok(EventsPage {
        layout: Layout::new(&s, Tab::Events, "Events"),
        kind,
        package,
        after,
        events,
        next,
        first: base,
    })
}
