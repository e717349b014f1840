//! The browser side of UI sessions: the cookies (`ods_session`, the login form's
//! `ods_pre`, the one-shot `ods_flash`), the `Session` extractor every page handler
//! takes, the CSRF check `csrf_guard` runs, and the error page.

use askama::Template;
use askama_web::WebTemplate;
use axum::body::Body;
use axum::extract::{FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use percent_encoding::{NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};

use super::{Layout, Tab, UiError};
use crate::app::App;
use crate::http::auth::Principal;
use crate::http::client::ClientInfo;
use crate::model::Role;
use crate::sessions;

pub const SESSION_COOKIE: &str = "ods_session";
/// The login form's pre-session token: its CSRF token is derived from it.
pub const PRE_COOKIE: &str = "ods_pre";
const FLASH_COOKIE: &str = "ods_flash";

/// The paths an account whose password must change may still use.
const BEFORE_PASSWORD_CHANGE: &[&str] = &["/account/password", "/logout"];

/// The logged-in user of a UI request.
pub struct Session {
    pub id: i64,
    pub who: Principal,
    /// The CSRF token forms and scripts must send back.
    pub csrf: String,
    pub flash_ok: Option<String>,
    pub flash_error: Option<String>,
}

impl Session {
    /// The API's role rule: an error page (403) unless the user has at least `role`.
    pub fn require(&self, role: Role) -> Result<(), UiError> {
        self.who.require(role).map_err(UiError::from)
    }
}

/// The value of cookie `name` in the request, if sent.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim_matches('"').to_string())
}

/// Whether the browser reached us over https (directly or through a trusted proxy):
/// then cookies are `Secure`.
pub fn is_https(parts: &Parts) -> bool {
    parts
        .extensions
        .get::<ClientInfo>()
        .is_some_and(|c| c.scheme == "https")
}

/// A `Set-Cookie` value: HttpOnly, SameSite=Lax, Path=/, Secure over https.
pub fn set_cookie(name: &str, value: &str, max_age: Option<u64>, secure: bool) -> HeaderValue {
    let mut c = format!("{name}={value}; Path=/; HttpOnly; SameSite=Lax");
    if let Some(age) = max_age {
        c.push_str(&format!("; Max-Age={age}"));
    }
    if secure {
        c.push_str("; Secure");
    }
    HeaderValue::from_str(&c).expect("cookie values are base64url or hex")
}

/// A `Set-Cookie` that removes cookie `name`.
pub fn clear_cookie(name: &str, secure: bool) -> HeaderValue {
    set_cookie(name, "", Some(0), secure)
}

/// The one-shot message cookie: `ok:` or `err:` and the percent-encoded text.
pub fn flash_cookie(message: &str) -> HeaderValue {
    let v = format!("ok:{}", utf8_percent_encode(message, NON_ALPHANUMERIC));
    set_cookie(FLASH_COOKIE, &v, Some(60), false)
}

fn read_flash(headers: &HeaderMap) -> (Option<String>, Option<String>) {
    let Some(v) = cookie(headers, FLASH_COOKIE) else {
        return (None, None);
    };
    let decode = |s: &str| percent_decode_str(s).decode_utf8_lossy().into_owned();
    match v.split_once(':') {
        Some(("ok", m)) => (Some(decode(m)), None),
        Some(("err", m)) => (None, Some(decode(m))),
        _ => (None, None),
    }
}

/// Removes the flash cookie once a page (not a fragment or a redirect) showed it.
pub fn clear_flash_after(req_headers: &HeaderMap, mut resp: Response) -> Response {
    if cookie(req_headers, FLASH_COOKIE).is_some()
        && resp.status() == StatusCode::OK
        && !super::is_fragment(req_headers)
    {
        resp.headers_mut()
            .append(header::SET_COOKIE, clear_cookie(FLASH_COOKIE, false));
    }
    resp
}

impl FromRequestParts<App> for Session {
    type Rejection = UiError;

    async fn from_request_parts(parts: &mut Parts, app: &App) -> Result<Self, Self::Rejection> {
        let token = cookie(&parts.headers, SESSION_COOKIE).ok_or(UiError::redirect("/"))?;
        let (s, user) = sessions::find(app, &token)
            .await?
            .ok_or(UiError::redirect("/"))?;
        let who = Principal::from(user);
        if who.must_change_password && !BEFORE_PASSWORD_CHANGE.contains(&parts.uri.path()) {
            return Err(UiError::redirect("/account/password"));
        }
        let (flash_ok, flash_error) = read_flash(&parts.headers);
        Ok(Session {
            id: s.id,
            who,
            csrf: sessions::csrf_token(app, &token),
            flash_ok,
            flash_error,
        })
    }
}

/// The origin this server was asked at, as a browser writes it in `Origin`.
fn own_origin(parts: &Parts) -> Option<String> {
    let (scheme, host) = match parts.extensions.get::<ClientInfo>() {
        Some(c) => (c.scheme, c.host.clone()),
        None => (
            "http",
            parts
                .headers
                .get(header::HOST)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string),
        ),
    };
    Some(format!("{scheme}://{}", host?).to_ascii_lowercase())
}

/// The CSRF check of a state-changing request (see `csrf_guard`); gives the request
/// back (its body re-assembled when the token came in a form), or why it is refused.
pub async fn check_csrf(app: &App, req: Request) -> Result<Request, String> {
    let (parts, body) = req.into_parts();
    let own = own_origin(&parts).ok_or("the request names no Host")?;
    let origin = parts
        .headers
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .map(|o| o.to_ascii_lowercase());
    let same = match origin {
        Some(o) => o == own,
        None => parts
            .headers
            .get(header::REFERER)
            .and_then(|v| v.to_str().ok())
            .and_then(|r| url::Url::parse(r).ok())
            .is_some_and(|u| u.origin().ascii_serialization() == own),
    };
    if !same {
        return Err(
            "This request did not come from a page of this server, so it was refused. \
             Reload the page and try again."
                .into(),
        );
    }
    let Some(cookie_value) =
        cookie(&parts.headers, SESSION_COOKIE).or_else(|| cookie(&parts.headers, PRE_COOKIE))
    else {
        return Err("Your session has ended. Log in again.".into());
    };
    let header_token = parts
        .headers
        .get("x-csrf-token")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let (token, body) = match header_token {
        Some(t) => (Some(t), body),
        None if is_form(&parts.headers) => {
            let bytes = axum::body::to_bytes(body, 256 * 1024)
                .await
                .map_err(|_| "The form is too large.".to_string())?;
            let t = url::form_urlencoded::parse(&bytes)
                .find(|(k, _)| k == "csrf")
                .map(|(_, v)| v.into_owned());
            (t, Body::from(bytes))
        }
        None => (None, body),
    };
    match token {
        Some(t) if sessions::csrf_ok(app, &cookie_value, &t) => {
            Ok(Request::from_parts(parts, body))
        }
        _ => Err(
            "This form has expired or did not come from this server, so it was refused. \
             Reload the page and try again."
                .into(),
        ),
    }
}

fn is_form(h: &HeaderMap) -> bool {
    h.get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| c.starts_with("application/x-www-form-urlencoded"))
}

#[derive(Template, WebTemplate)]
#[template(path = "error.html")]
struct ErrorPage {
    layout: Layout,
    back: &'static str,
}

#[derive(Template, WebTemplate)]
#[template(path = "banner.html")]
pub struct Banner {
    pub message: String,
}

/// The error page of a failed request to `path`: the banner with `message` in the
/// layout of `session` (if the browser has one), or the banner alone for a fragment.
pub fn error_page(
    session: Option<Session>,
    path: &str,
    status: StatusCode,
    message: String,
    fragment: bool,
) -> Response {
    if fragment {
        return (status, Banner { message }).into_response();
    }
    let back = [
        "/admin",
        "/packages",
        "/network",
        "/users",
        "/jobs",
        "/events",
    ]
    .into_iter()
    .find(|p| path.starts_with(p))
    .unwrap_or("/");
    let mut layout = match &session {
        Some(s) => Layout::new(s, Tab::None, "Error"),
        None => Layout::anonymous("Error", String::new()),
    };
    layout.error = Some(message);
    (status, ErrorPage { layout, back }).into_response()
}
