//! Login at `/` (through the API's login limiter), logout (the session ends on the
//! server), and the own-password page every account whose password must change is
//! held on until it has chosen one.

use askama::Template;
use askama_web::WebTemplate;
use axum::Form;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::session::{self, PRE_COOKIE, SESSION_COOKIE, Session};
use super::{Layout, Tab, UiResult, flash_redirect, words};
use crate::app::App;
use crate::http::auth::client_addr;
use crate::sessions;

#[derive(Template, WebTemplate)]
#[template(path = "login.html")]
struct LoginPage {
    layout: Layout,
    username: String,
}

/// The request's parts, for handlers that read cookies and the client before a
/// session exists.
pub struct Req(Parts);

impl<S: Send + Sync> FromRequestParts<S> for Req {
    type Rejection = std::convert::Infallible;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Req(parts.clone()))
    }
}

/// The login form with a fresh (or the browser's) pre-session token for its CSRF.
fn login_form(
    app: &App,
    parts: &Parts,
    status: StatusCode,
    username: String,
    error: Option<String>,
    flash: Option<String>,
) -> Response {
    let pre = session::cookie(&parts.headers, PRE_COOKIE)
        .filter(|v| v.len() == 43)
        .unwrap_or_else(sessions::new_token);
    let mut layout = Layout::anonymous("Log in", sessions::csrf_token(app, &pre));
    layout.error = error;
    layout.flash = flash;
    let mut r = (status, LoginPage { layout, username }).into_response();
    r.headers_mut().append(
        header::SET_COOKIE,
        session::set_cookie(PRE_COOKIE, &pre, Some(3600), session::is_https(parts)),
    );
    r
}

/// `GET /`: the login form, or the Packages tab for a logged-in browser.
pub async fn index(State(app): State<App>, Req(mut parts): Req) -> Response {
    match Session::from_request_parts(&mut parts, &app).await {
        Ok(_) => Redirect::to(super::HOME).into_response(),
        Err(e) if e.redirect == Some("/account/password") => e.into_response(),
        Err(_) => {
            let flash = session::cookie(&parts.headers, "ods_flash")
                .is_some()
                .then(|| "You have logged out.".to_string());
            let r = login_form(&app, &parts, StatusCode::OK, String::new(), None, flash);
            session::clear_flash_after(&parts.headers, r)
        }
    }
}

#[derive(Deserialize)]
pub struct LoginForm {
    username: String,
    password: String,
}

/// `POST /login`: checks the password exactly as the API does (limiter included),
/// then starts a session.
pub async fn login(State(app): State<App>, Req(parts): Req, Form(f): Form<LoginForm>) -> Response {
    let addr = client_addr(&parts);
    let user = match crate::users::check_password(&app, &addr, f.username.trim(), &f.password).await
    {
        Ok(u) => u,
        Err(e) => {
            let status = e.status;
            return login_form(&app, &parts, status, f.username, Some(words(&e)), None);
        }
    };
    let token = match sessions::create(&app, user.id).await {
        Ok(t) => t,
        Err(e) => {
            return login_form(&app, &parts, e.status, f.username, Some(words(&e)), None);
        }
    };
    let secure = session::is_https(&parts);
    let to = if user.must_change_password {
        "/account/password"
    } else {
        super::HOME
    };
    let mut r = Redirect::to(to).into_response();
    let h = r.headers_mut();
    h.append(
        header::SET_COOKIE,
        session::set_cookie(SESSION_COOKIE, &token, None, secure),
    );
    h.append(
        header::SET_COOKIE,
        session::clear_cookie(PRE_COOKIE, secure),
    );
    r
}

/// `POST /logout`: ends the session on the server and forgets the cookie.
pub async fn logout(State(app): State<App>, Req(parts): Req, s: Session) -> UiResult<Response> {
    sessions::end(&app, s.id).await?;
    let secure = session::is_https(&parts);
    let mut r = flash_redirect("/", "You have logged out.");
    r.headers_mut().append(
        header::SET_COOKIE,
        session::clear_cookie(SESSION_COOKIE, secure),
    );
    Ok(r)
}

#[derive(Template, WebTemplate)]
#[template(path = "password.html")]
struct PasswordPage {
    layout: Layout,
}

/// `GET /account/password`: the own-password form.
pub async fn password_page(s: Session) -> Response {
    password_form(&s, StatusCode::OK, None)
}

fn password_form(s: &Session, status: StatusCode, error: Option<String>) -> Response {
    let title = if s.who.must_change_password {
        "Choose a new password"
    } else {
        "Change your password"
    };
    let mut layout = Layout::new(s, Tab::Account, title);
    if error.is_some() {
        layout.error = error;
    }
    (status, PasswordPage { layout }).into_response()
}

#[derive(Deserialize)]
pub struct PasswordForm {
    current: String,
    new: String,
    confirm: String,
}

/// `POST /account/password`: the users service's own-password change; a refusal
/// shows the form again with the reason.
pub async fn change_password(
    State(app): State<App>,
    Req(parts): Req,
    s: Session,
    Form(f): Form<PasswordForm>,
) -> UiResult<Response> {
    if f.new != f.confirm {
        let why = "The new password and its confirmation differ.".to_string();
        return Ok(password_form(&s, StatusCode::BAD_REQUEST, Some(why)));
    }
    let user = crate::db::users::by_id(&app.db, s.who.user_id)
        .await?
        .ok_or(super::UiError::redirect("/"))?;
    let addr = client_addr(&parts);
    match crate::users::change_own_password(&app, &addr, &user, &f.current, &f.new, s.id).await {
        Ok(()) => Ok(flash_redirect(
            super::HOME,
            "Your password has been changed.",
        )),
        Err(e) => Ok(password_form(&s, e.status, Some(words(&e)))),
    }
}
