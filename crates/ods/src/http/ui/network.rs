//! The Network tab: the register form (the same `registry::register_ods` as POST
//! /api/admin/register), the Registered ODSs table with link health, last contact and
//! pending transfers (refreshing itself), the sync counters, the per-link speed limit
//! (PATCH /api/admin/registered_ods/{id}) and Unregister with confirmation.

use askama::Template;
use askama_web::WebTemplate;
use axum::Form;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::{Layout, Session, Tab, UiError, UiResult, flash_redirect, words};
use crate::app::App;
use crate::http::api::registry::{self, LinkStatus, RegisteredOds, SyncStats};
use crate::model::Role;

#[derive(Template, WebTemplate)]
#[template(path = "network.html")]
struct NetworkPage {
    layout: Layout,
    is_admin: bool,
    csrf: String,
    peers: Vec<PeerView>,
    stats: SyncStats,
    url: String,
    iss: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "network_peers.html")]
struct PeersFragment {
    is_admin: bool,
    csrf: String,
    peers: Vec<PeerView>,
    stats: SyncStats,
}

/// A row of the Registered ODSs table, in words.
pub struct PeerView {
    p: RegisteredOds,
    registered: String,
    last_contact: String,
    link: &'static str,
    link_class: &'static str,
    rate: String,
}

fn view(p: RegisteredOds) -> PeerView {
    PeerView {
        registered: when(&p.registered_on),
        last_contact: p
            .last_contact
            .as_deref()
            .map(when)
            .unwrap_or_else(|| "never".into()),
        link: link_words(&p.status),
        link_class: match p.status {
            LinkStatus::Ok => "ok",
            LinkStatus::Unreachable => "bad",
            _ => "wait",
        },
        rate: rate_words(p.rate_limit),
        p,
    }
}

async fn peer_views(app: &App, s: &Session) -> UiResult<Vec<PeerView>> {
    Ok(registry::list(app, &s.who)
        .await?
        .items
        .into_iter()
        .map(view)
        .collect())
}

/// A link's health in words.
pub fn link_words(s: &LinkStatus) -> &'static str {
    match s {
        LinkStatus::Ok => "OK",
        LinkStatus::Unreachable => "Unreachable",
        LinkStatus::Pending => "Not contacted yet",
        LinkStatus::Firewalled => "Firewalled (it calls us)",
    }
}

/// `2017-11-09T22:48:00` as `2017-11-09 22:48:00 UTC`.
pub fn when(iso: &str) -> String {
    if iso.is_empty() {
        return String::new();
    }
    format!("{} UTC", iso.replace('T', " "))
}

/// Bytes per second in words (`1.5 MB/s`), or `unlimited`.
pub fn rate_words(r: Option<i64>) -> String {
    match r {
        None => "unlimited".into(),
        Some(b) if b >= 1_000_000 => format!("{:.1} MB/s", b as f64 / 1e6),
        Some(b) => format!("{:.1} kB/s", b as f64 / 1e3),
    }
}

async fn page_with(
    app: &App,
    s: &Session,
    status: StatusCode,
    error: Option<String>,
    url: String,
    iss: String,
) -> UiResult<Response> {
    let peers = peer_views(app, s).await?;
    let stats = registry::sync_stats(app, &s.who).await?;
    let mut layout = Layout::new(s, Tab::Network, "Network");
    if error.is_some() {
        layout.error = error;
    }
    let page = NetworkPage {
        is_admin: layout.is_admin,
        csrf: layout.csrf.clone(),
        layout,
        peers,
        stats,
        url,
        iss,
    };
    Ok((status, page).into_response())
}

/// `GET /network`.
pub async fn page(State(app): State<App>, s: Session) -> UiResult<Response> {
    s.require(Role::Viewer)?;
    page_with(&app, &s, StatusCode::OK, None, String::new(), String::new()).await
}

/// `GET /network/peers`: the table and counters alone (polled by the page).
pub async fn peers_fragment(State(app): State<App>, s: Session) -> UiResult<impl IntoResponse> {
    Ok(PeersFragment {
        is_admin: s.who.role >= Role::Admin,
        csrf: s.csrf.clone(),
        peers: peer_views(&app, &s).await?,
        stats: registry::sync_stats(&app, &s.who).await?,
    })
}

#[derive(Deserialize)]
pub struct RegisterForm {
    url: String,
    iss_id: String,
    key: String,
}

/// `POST /network/register`: on failure the page again, the banner saying why and the
/// URL and ISS ID kept (never the key).
pub async fn register(
    State(app): State<App>,
    s: Session,
    Form(f): Form<RegisterForm>,
) -> UiResult<Response> {
    s.require(Role::Admin)?;
    match registry::register_ods(&app, &s.who, &f.url, &f.iss_id, &f.key).await {
        Ok(peer) => Ok(flash_redirect(
            "/network",
            &format!("Registered with {}.", peer.name),
        )),
        Err(e) => {
            let why = register_words(&e);
            page_with(&app, &s, e.status, Some(why), f.url, f.iss_id).await
        }
    }
}

/// A registration failure in words: what happened and what to check.
fn register_words(e: &crate::error::ApiError) -> String {
    let detail = words(e);
    let lead = match e.code {
        "registration_refused" => "Registration refused: wrong ISS ID or key.",
        "peer_unreachable" => "The other server cannot be reached.",
        "already_registered" => "Already registered.",
        "not_an_ods" => "That URL is not an ODS.",
        "self_registration" => "That is this server.",
        "url_not_set" => "This server has no URL yet: set it on the Admin tab first.",
        "missing_field" => "Fill in URL, ISS ID and Key.",
        _ => "Registration failed.",
    };
    format!("{lead} {detail}")
}

#[derive(Deserialize)]
pub struct PeerForm {
    id: i64,
}

/// `POST /network/unregister`.
pub async fn unregister(
    State(app): State<App>,
    s: Session,
    Form(f): Form<PeerForm>,
) -> UiResult<Response> {
    let done = registry::unregister_ods(&app, &s.who, f.id).await?;
    let told = if done.peer_notified {
        "it was told"
    } else {
        "it could not be told; unregister this server there too"
    };
    Ok(flash_redirect(
        "/network",
        &format!("Unregistered ({told})."),
    ))
}

#[derive(Deserialize)]
pub struct RateForm {
    id: i64,
    /// Bytes per second; empty: no limit.
    rate_limit: String,
}

/// `POST /network/rate`: a link's speed limit.
pub async fn set_rate(
    State(app): State<App>,
    s: Session,
    Form(f): Form<RateForm>,
) -> UiResult<Response> {
    let rate = match f.rate_limit.trim() {
        "" => None,
        t => Some(t.parse::<i64>().map_err(|_| {
            UiError::new(
                StatusCode::BAD_REQUEST,
                format!("The speed limit {t:?} is not a whole number of bytes per second."),
            )
        })?),
    };
    let p = registry::set_rate_limit(&app, &s.who, f.id, rate)
        .await
        .map_err(|e| match e.code {
            "invalid_rate_limit" => UiError::new(
                e.status,
                "The speed limit must be at least 1024 bytes per second, or empty for none.",
            ),
            _ => e.into(),
        })?;
    Ok(flash_redirect(
        "/network",
        &format!("Speed limit of {}: {}.", p.name, rate_words(p.rate_limit)),
    ))
}
