//! The web UI: server-rendered HTML pages (askama templates in `crates/ods/templates/`,
//! checked at compile time) over the same services as the admin API, with a session
//! cookie, CSRF protection and strict security headers. These routes are HTML, not
//! API: `routes()` is a plain axum `Router`, merged in `http::router` beside the
//! documented routes and absent from the OpenAPI document.
//!
//! # Adding a page (what every page does)
//! 1. **Template**: `templates/NAME.html` starting with `{% extends "base.html" %}`,
//!    filling `{% block content %}`. Its struct has a `layout: Layout` field (the tabs,
//!    the user, the CSRF token, the error banner and the flash message) and derives
//!    `askama::Template` + `askama_web::WebTemplate`, so it is a response.
//!    The template's module must `use super::Tab` (base.html compares `layout.tab`).
//! 2. **Handler**: in `ui/NAME.rs`, take `s: Session` (the logged-in user; without one
//!    the browser is sent to the login form), check the role first with
//!    `s.require(Role::Admin)?` (the API's `Principal::require` rules), call the
//!    service the API handler calls, and build `Layout::new(&s, Tab::Name, "Title")`.
//!    Return `UiResult<impl IntoResponse>`: `?` on an `ApiError` becomes the error
//!    page (or, for an htmx request, the error banner) with the error in words an
//!    admin understands (`words`), never JSON. Need the client address (for the
//!    login limiter) or the origin? Take `login::Req(parts)` beside the `Session`.
//!    Live parts of a page are fragments polled with htmx (`hx-get` + `hx-trigger=
//!    "every 2s"`); see `packages.rs` for one that answers 204 while unchanged.
//! 3. **Route**: add it in `routes()` below. GET pages and fragments; every change is
//!    a POST (forms post to a 2-segment path such as `/packages/stage`, so nothing
//!    can shadow the Jamf share path `/<context>/Packages/<name>`).
//! 4. **Nav entry**: the tabs are in `templates/base.html` (`Tab` says which is
//!    active); hide an entry with `layout.is_admin` / `layout.can_upload` when the
//!    role cannot use it. The server refuses the action anyway.
//! 5. **CSRF**: every POST form carries `<input type="hidden" name="csrf"
//!    value="{{ layout.csrf }}">`; htmx requests send the `X-CSRF-Token` header from
//!    `hx-headers` on `<body>`; scripts send that header too (`ods.js` reads it from
//!    `<meta name="csrf-token">`). `csrf_guard` refuses any POST (403) whose token is
//!    missing or wrong, or whose `Origin`/`Referer` is not this server; a handler
//!    need not check anything itself.
//! 6. **Error banner / success**: after a change, answer `flash_redirect(to, "Saved")`
//!    (303 to the page, which shows the message in the success slot). Errors go
//!    through `UiError` as above and land in the `role="alert"` banner.
//! 7. **Tests**: browser tests in `tests/browser/*.py` use `odsui.py` (login, first
//!    password change, screenshots); `tests/ui_browser.rs` runs them.

mod account;
mod activity;
mod admin;
mod assets;
mod jamf;
mod login;
mod network;
mod notifications;
mod packages;
mod session;
mod users;

use axum::Router;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};

use crate::app::App;
use crate::error::ApiError;
use crate::model::Role;

pub use session::Session;

/// Where a logged-in browser lands (`/` and after login).
pub const HOME: &str = "/packages";

/// The tabs of the navigation bar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tab {
    Admin,
    Packages,
    Network,
    Users,
    Jobs,
    Events,
    Notifications,
    Jamf,
    Account,
    None,
}

/// What every page's `base.html` needs.
pub struct Layout {
    pub title: String,
    pub tab: Tab,
    /// The logged-in user's name and role, or `None` on the login page.
    pub user: Option<(String, &'static str)>,
    pub is_admin: bool,
    pub can_upload: bool,
    /// The account may only change its password (the tabs are hidden).
    pub must_change: bool,
    pub csrf: String,
    pub error: Option<String>,
    pub flash: Option<String>,
    /// Query string appended to asset URLs so a new build is fetched anew.
    pub v: &'static str,
}

impl Layout {
    pub fn new(s: &Session, tab: Tab, title: &str) -> Layout {
        Layout {
            title: title.to_string(),
            tab,
            user: Some((s.who.username.clone(), s.who.role.as_str())),
            is_admin: s.who.role >= Role::Admin,
            can_upload: s.who.role >= Role::Uploader,
            must_change: s.who.must_change_password,
            csrf: s.csrf.clone(),
            error: s.flash_error.clone(),
            flash: s.flash_ok.clone(),
            v: assets::version(),
        }
    }

    /// The layout of a page without a session (the login form).
    pub fn anonymous(title: &str, csrf: String) -> Layout {
        Layout {
            title: title.to_string(),
            tab: Tab::None,
            user: None,
            is_admin: false,
            can_upload: false,
            must_change: false,
            csrf,
            error: None,
            flash: None,
            v: assets::version(),
        }
    }
}

/// The web UI's routes (HTML; not in the OpenAPI document).
pub fn routes(app: &App) -> Router<App> {
    Router::new()
        .route("/", get(login::index))
        .route("/login", post(login::login))
        .route("/logout", post(login::logout))
        .route(
            "/account/password",
            get(login::password_page).post(login::change_password),
        )
        .route("/admin", get(admin::page))
        .route("/admin/system", get(admin::system_fragment))
        .route("/admin/key", get(admin::key_fragment))
        .route("/admin/settings", post(admin::save_settings))
        .route("/network", get(network::page))
        .route("/network/peers", get(network::peers_fragment))
        .route("/network/register", post(network::register))
        .route("/network/unregister", post(network::unregister))
        .route("/network/rate", post(network::set_rate))
        .route("/users", get(users::page))
        .route("/users/create", post(users::create))
        .route("/users/role", post(users::set_role))
        .route("/users/password", post(users::reset_password))
        .route("/users/delete", post(users::delete))
        .route("/account", get(account::page))
        .route("/account/tokens", post(account::create_token))
        .route("/account/revoke", post(account::revoke_token))
        .route("/jobs", get(activity::jobs_page))
        .route("/jobs/table", get(activity::jobs_fragment))
        .route("/jobs/retry", post(activity::retry))
        .route("/events", get(activity::events_page))
        .merge(packages::routes())
        .route("/notifications", get(notifications::page))
        .route("/notifications/webhook", post(notifications::create_hook))
        .route("/notifications/{id}/test", post(notifications::test_hook))
        .route(
            "/notifications/{id}/delete",
            post(notifications::delete_hook),
        )
        .route("/notifications/email", post(notifications::save_email))
        .route("/notifications/subscribe", post(notifications::subscribe))
        .route(
            "/notifications/{id}/unsubscribe",
            post(notifications::unsubscribe),
        )
        .route("/notifications/mailtest", post(notifications::mail_test))
        .route("/jamf", get(jamf::page))
        .route("/jamf/reconcile", post(jamf::reconcile))
        .route("/jamf/add", post(jamf::add))
        .route("/static/{*path}", get(assets::serve))
        .layer(axum::middleware::from_fn_with_state(
            app.clone(),
            csrf_guard,
        ))
        .layer(axum::middleware::from_fn_with_state(
            app.clone(),
            render_failures,
        ))
        .layer(axum::middleware::from_fn(security_headers))
}

pub type UiResult<T> = Result<T, UiError>;

/// A failed UI request: a redirect (to the login form, to the password change) or an
/// error shown in the page. `render_failures` turns the latter into the error page.
#[derive(Debug)]
pub struct UiError {
    status: StatusCode,
    message: String,
    redirect: Option<&'static str>,
}

impl UiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> UiError {
        UiError {
            status,
            message: message.into(),
            redirect: None,
        }
    }
    pub fn redirect(to: &'static str) -> UiError {
        UiError {
            status: StatusCode::SEE_OTHER,
            message: String::new(),
            redirect: Some(to),
        }
    }
}

impl From<sqlx::Error> for UiError {
    fn from(e: sqlx::Error) -> UiError {
        ApiError::from(e).into()
    }
}

impl From<ApiError> for UiError {
    fn from(e: ApiError) -> UiError {
        UiError::new(e.status, words(&e))
    }
}

/// The error message of a response, for `render_failures`.
#[derive(Clone)]
struct Failure(String);

impl IntoResponse for UiError {
    fn into_response(self) -> Response {
        if let Some(to) = self.redirect {
            return Redirect::to(to).into_response();
        }
        let mut r = self.status.into_response();
        r.extensions_mut().insert(Failure(self.message));
        r
    }
}

/// An API error in words for the person at the browser (the API's messages name
/// fields and endpoints; these name what to do in the page).
pub fn words(e: &ApiError) -> String {
    match e.code {
        "password_change_required" => "Choose a new password before doing anything else.".into(),
        "unauthorized" => "Wrong username or password.".into(),
        "too_many_attempts" => format!(
            "Too many failed logins from here or for this account. {}",
            e.message
                .split_once(';')
                .map(|(_, t)| format!("Please {}.", t.trim()))
                .unwrap_or_default()
        ),
        "forbidden" => format!("You are not allowed to do this: {}.", e.message),
        "internal_error" => "The server could not do this (see its log).".into(),
        _ => {
            let mut m = e.message.clone();
            if let Some(c) = m.get(..1) {
                let up = c.to_uppercase();
                m.replace_range(..1, &up);
            }
            if !m.ends_with('.') {
                m.push('.');
            }
            m
        }
    }
}

/// A 303 to `to` that shows `message` in the page's success slot.
pub fn flash_redirect(to: &str, message: &str) -> Response {
    let mut r = Redirect::to(to).into_response();
    r.headers_mut()
        .append(header::SET_COOKIE, session::flash_cookie(message));
    r
}

fn is_fragment(h: &HeaderMap) -> bool {
    h.contains_key("hx-request") || h.contains_key("x-ods-fragment")
}

/// Renders `UiError`s: the whole page with the banner, or for htmx and script
/// requests, the banner alone. Turns a redirect answered to htmx into `HX-Redirect`
/// (a session that ended while a page was polling sends the browser to the login).
async fn render_failures(State(app): State<App>, req: Request, next: Next) -> Response {
    let (mut parts, body) = req.into_parts();
    let headers = parts.headers.clone();
    let path = parts.uri.path().to_string();
    let req = Request::from_parts(parts.clone(), body);
    let resp = next.run(req).await;
    let fragment = is_fragment(&headers);
    if fragment && resp.status().is_redirection() {
        let to = resp
            .headers()
            .get(header::LOCATION)
            .cloned()
            .unwrap_or(HeaderValue::from_static("/"));
        let mut r = StatusCode::OK.into_response();
        r.headers_mut().insert("hx-redirect", to);
        return r;
    }
    let Some(Failure(message)) = resp.extensions().get::<Failure>().cloned() else {
        return session::clear_flash_after(&headers, resp);
    };
    let status = resp.status();
    let session = Session::from_request_parts(&mut parts, &app).await.ok();
    session::error_page(session, &path, status, message, fragment)
}

/// CSRF protection for every state-changing request (anything but GET and HEAD):
/// the `Origin` (or, without it, the `Referer`) must be this server, and the request
/// must carry the CSRF token of its cookie (`X-CSRF-Token`, or the `csrf` field of a
/// urlencoded form). Otherwise 403 and the request goes no further.
async fn csrf_guard(State(app): State<App>, req: Request, next: Next) -> Response {
    if req.method() == Method::GET || req.method() == Method::HEAD {
        return next.run(req).await;
    }
    match session::check_csrf(&app, req).await {
        Ok(req) => next.run(req).await,
        Err(why) => UiError::new(StatusCode::FORBIDDEN, why).into_response(),
    }
}

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Security headers on every UI answer; pages are never stored (assets set their own
/// long-lived `Cache-Control`).
async fn security_headers(req: Request, next: Next) -> Response {
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        h.insert(header::VARY, HeaderValue::from_static("Cookie"));
    }
    resp
}

/// Whether a request the router has no route for comes from a browser wanting a page
/// (not the API, not a download client).
pub fn wants_page(path: &str, headers: &HeaderMap) -> bool {
    !(path == "/api" || path.starts_with("/api/"))
        && headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|a| a.contains("text/html"))
}

/// The 404 page for a browser (no session needed: it names no data).
pub fn not_found_page() -> Response {
    let mut layout = Layout::anonymous("Not found", String::new());
    layout.error = Some("There is no such page on this server.".into());
    let page = session::ErrorPage { layout, back: "/" };
    let mut r = (StatusCode::NOT_FOUND, page).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    r
}
