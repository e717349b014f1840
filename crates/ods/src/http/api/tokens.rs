//! `/api/admin/tokens`: API tokens. The token is shown once, at creation; the server
//! keeps only its SHA-256.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use base64::Engine;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::app::App;
use crate::db::{self, users::TokenRow};
use crate::error::{ApiError, ApiResult};
use crate::http::JsonBody;
use crate::http::QueryArgs;
use crate::http::auth::Principal;
use crate::http::docs::{AdminErrors, BadRequest, JsonErrors, NotFound};
use crate::model::Role;
use crate::model::iso_seconds;
use crate::secrets::{random_bytes, token_digest};

/// An API token (the secret itself is shown only once, at creation).
#[derive(Debug, Serialize, ToSchema)]
pub struct Token {
    /// ISO 8601 without microseconds (UTC).
    pub created: String,
    pub id: i64,
    /// Last use, ISO 8601 without microseconds (UTC); null if never used.
    pub last_used: Option<String>,
    pub name: String,
    /// The owner.
    pub username: String,
}

/// A new token, with the secret to send as `Authorization: Bearer <token>`.
#[derive(Debug, Serialize, ToSchema)]
pub struct NewTokenCreated {
    pub created: String,
    pub id: i64,
    pub last_used: Option<String>,
    pub name: String,
    /// The secret; the server keeps only its SHA-256, so it cannot be shown again.
    #[schema(pattern = "^ods_[A-Za-z0-9_-]{43}$")]
    pub token: String,
    pub username: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TokenList {
    pub items: Vec<Token>,
}

fn to_json(t: &TokenRow) -> Token {
    Token {
        created: iso_seconds(t.created),
        id: t.id,
        last_used: t.last_used.map(iso_seconds),
        name: t.name.clone(),
        username: t.username.clone(),
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// `true` for every user's tokens (admins only); otherwise the caller's own.
    #[param(value_type = bool, required = false)]
    all: Option<bool>,
}

#[utoipa::path(
    get,
    path = "/tokens",
    tag = "tokens",
    description = "The caller's API tokens (every user's with `all=true`, for admins).",
    params(ListQuery),
    responses((status = 200, description = "The tokens.", body = TokenList), BadRequest, AdminErrors)
)]
pub async fn list_tokens(
    State(app): State<App>,
    who: Principal,
    QueryArgs(q): QueryArgs<ListQuery>,
) -> ApiResult<axum::Json<TokenList>> {
    Ok(axum::Json(list(&app, &who, q.all == Some(true)).await?))
}

/// The caller's tokens, or (`all`, admins only) every user's.
pub async fn list(app: &App, who: &Principal, all: bool) -> ApiResult<TokenList> {
    let scope = if all {
        who.require(Role::Admin)?;
        None
    } else {
        Some(who.user_id)
    };
    let items = db::users::list_tokens(&app.db, scope)
        .await?
        .iter()
        .map(to_json)
        .collect();
    Ok(TokenList { items })
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewToken {
    /// What the token is for: 1 to 255 characters, not all spaces (trimmed).
    #[schema(
        min_length = 1,
        max_length = 255,
        pattern = r"[^\t\n\u000b\u000c\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]"
    )]
    name: String,
    /// Admins may create a token for another user; absent or null for the caller.
    username: Option<String>,
}

#[utoipa::path(
    post,
    path = "/tokens",
    tag = "tokens",
    description = "Creates an API token for the caller (or, for admins, another user).",
    request_body = NewToken,
    responses((status = 201, description = "Created; the token is in the answer, once.", body = NewTokenCreated), JsonErrors, NotFound, AdminErrors)
)]
pub async fn create_token(
    State(app): State<App>,
    who: Principal,
    JsonBody(body): JsonBody<NewToken>,
) -> ApiResult<(StatusCode, axum::Json<NewTokenCreated>)> {
    let t = create(&app, &who, &body.name, body.username).await?;
    Ok((StatusCode::CREATED, axum::Json(t)))
}

/// Makes a token named `name` for the caller or (admins) user `username`; the answer
/// holds the token, the only time it is shown.
pub async fn create(
    app: &App,
    who: &Principal,
    name: &str,
    username: Option<String>,
) -> ApiResult<NewTokenCreated> {
    let trimmed = name.trim();
    if trimmed.is_empty() || name.chars().count() > 255 {
        return Err(ApiError::bad_request(
            "invalid_name",
            "a token name is 1 to 255 characters",
        ));
    }
    let owner = match username.filter(|u| *u != who.username) {
        Some(other) => {
            who.require(Role::Admin)?;
            db::users::by_name(&app.db, &other)
                .await?
                .ok_or_else(|| ApiError::not_found(format!("no user named {other:?}")))?
                .id
        }
        None => who.user_id,
    };
    let token = format!(
        "ods_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random_bytes::<32>())
    );
    let id = db::users::insert_token(&app.db, owner, trimmed, &token_digest(&token)).await?;
    let row = db::users::token(&app.db, id)
        .await?
        .ok_or_else(|| ApiError::internal("reading the token", "row vanished"))?;
    let t = to_json(&row);
    Ok(NewTokenCreated {
        created: t.created,
        id: t.id,
        last_used: t.last_used,
        name: t.name,
        token,
        username: t.username,
    })
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct TokenId {
    /// The token's numeric id.
    #[allow(dead_code)]
    id: i64,
}

#[utoipa::path(
    delete,
    path = "/tokens/{id}",
    tag = "tokens",
    description = "Revokes a token (the caller's own; any, for admins).",
    params(TokenId),
    responses((status = 204, description = "Revoked."), BadRequest, NotFound, AdminErrors)
)]
pub async fn delete_token(
    State(app): State<App>,
    who: Principal,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    revoke(&app, &who, super::path_id(&id)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Revokes token `id`: the caller's own, or any for admins.
pub async fn revoke(app: &App, who: &Principal, id: i64) -> ApiResult<()> {
    let t = db::users::token(&app.db, id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no token with id {id}")))?;
    if t.user_id != who.user_id {
        who.require(Role::Admin)?;
    }
    db::users::delete_token(&app.db, id).await?;
    Ok(())
}
