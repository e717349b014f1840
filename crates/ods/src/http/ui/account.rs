//! The Account tab, for every user: who they are, their own password (the form posts
//! to `/account/password`, handled in `login.rs`), and their API tokens: list, create
//! (the token shown once, in the answer to the creation, never again) and revoke,
//! through the same `api::tokens` functions as /api/admin/tokens. Admins may also list
//! every user's tokens and make one for another user, as the API allows.

use askama::Template;
use askama_web::WebTemplate;
use axum::Form;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::network::when;
use super::{Layout, Session, Tab, UiResult, flash_redirect, words};
use crate::app::App;
use crate::http::api::tokens::{self, NewTokenCreated};
use crate::model::Role;

/// A token row in words.
pub struct TokenView {
    id: i64,
    name: String,
    username: String,
    created: String,
    last_used: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "account.html")]
struct AccountPage {
    layout: Layout,
    username: String,
    role: &'static str,
    all: bool,
    tokens: Vec<TokenView>,
    created: Option<NewTokenCreated>,
}

#[derive(Deserialize)]
pub struct AccountQuery {
    /// Every user's tokens (admins).
    #[serde(default)]
    all: Option<String>,
}

async fn page_with(
    app: &App,
    s: &Session,
    status: StatusCode,
    all: bool,
    error: Option<String>,
    created: Option<NewTokenCreated>,
) -> UiResult<Response> {
    let tokens = tokens::list(app, &s.who, all)
        .await?
        .items
        .into_iter()
        .map(|t| TokenView {
            id: t.id,
            created: when(&t.created),
            last_used: t
                .last_used
                .as_deref()
                .map(when)
                .unwrap_or_else(|| "never".into()),
            name: t.name,
            username: t.username,
        })
        .collect();
    let mut layout = Layout::new(s, Tab::Account, "Account");
    if error.is_some() {
        layout.error = error;
    }
    let page = AccountPage {
        layout,
        username: s.who.username.clone(),
        role: s.who.role.as_str(),
        all,
        tokens,
        created,
    };
    Ok((status, page).into_response())
}

/// `GET /account` (`?all=1`: every user's tokens, for admins).
pub async fn page(
    State(app): State<App>,
    s: Session,
    Query(q): Query<AccountQuery>,
) -> UiResult<Response> {
    let all = q.all.is_some_and(|v| v == "1");
    page_with(&app, &s, StatusCode::OK, all, None, None).await
}

#[derive(Deserialize)]
pub struct NewTokenForm {
    name: String,
    /// Another user's name (admins); empty: the caller.
    #[serde(default)]
    username: String,
}

/// `POST /account/tokens`: makes a token and shows it, this once.
pub async fn create_token(
    State(app): State<App>,
    s: Session,
    Form(f): Form<NewTokenForm>,
) -> UiResult<Response> {
    let owner = Some(f.username.trim().to_string()).filter(|u| !u.is_empty());
    let all = owner.is_some();
    match tokens::create(&app, &s.who, &f.name, owner).await {
        Ok(t) => page_with(&app, &s, StatusCode::OK, all, None, Some(t)).await,
        Err(e) => page_with(&app, &s, e.status, all, Some(words(&e)), None).await,
    }
}

#[derive(Deserialize)]
pub struct RevokeForm {
    id: i64,
    /// The page showed every user's tokens: go back to it.
    #[serde(default)]
    all: String,
}

/// `POST /account/revoke`.
pub async fn revoke_token(
    State(app): State<App>,
    s: Session,
    Form(f): Form<RevokeForm>,
) -> UiResult<Response> {
    tokens::revoke(&app, &s.who, f.id).await?;
    let to = if f.all == "1" && s.who.role >= Role::Admin {
        "/account?all=1"
    } else {
        "/account"
    };
    Ok(flash_redirect(to, "Token revoked."))
}
