//! `/api/admin/tokens`: API tokens. The token is shown once, at creation; the server
//! keeps only its SHA-256.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use base64::Engine;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::app::App;
use crate::db::{self, users::TokenRow};
use crate::error::{ApiError, ApiResult};
use crate::http::JsonBody;
use crate::http::QueryArgs;
use crate::http::auth::Principal;
use crate::model::Role;
use crate::model::iso_seconds;
use crate::secrets::{random_bytes, token_digest};

fn to_json(t: &TokenRow) -> Value {
    json!({
        "created": iso_seconds(t.created),
        "id": t.id,
        "last_used": t.last_used.map(iso_seconds),
        "name": t.name,
        "username": t.username,
    })
}

#[derive(Debug, Deserialize)]
pub struct ListQuery {
    all: Option<bool>,
}

pub async fn list_tokens(
    State(app): State<App>,
    who: Principal,
    QueryArgs(q): QueryArgs<ListQuery>,
) -> ApiResult<axum::Json<Value>> {
    let scope = if q.all == Some(true) {
        who.require(Role::Admin)?;
        None
    } else {
        Some(who.user_id)
    };
    let items: Vec<Value> = db::users::list_tokens(&app.db, scope)
        .await?
        .iter()
        .map(to_json)
        .collect();
    Ok(axum::Json(json!({ "items": items })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewToken {
    name: String,
    /// Admins may create a token for another user.
    username: Option<String>,
}

pub async fn create_token(
    State(app): State<App>,
    who: Principal,
    JsonBody(body): JsonBody<NewToken>,
) -> ApiResult<(StatusCode, axum::Json<Value>)> {
    let name = body.name.trim();
    if name.is_empty() || name.len() > 255 {
        return Err(ApiError::bad_request(
            "invalid_name",
            "a token name is 1 to 255 characters",
        ));
    }
    let owner = match body.username.filter(|u| *u != who.username) {
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
    let id = db::users::insert_token(&app.db, owner, name, &token_digest(&token)).await?;
    let row = db::users::token(&app.db, id)
        .await?
        .ok_or_else(|| ApiError::internal("reading the token", "row vanished"))?;
    let mut v = to_json(&row);
    v["token"] = json!(token);
    Ok((StatusCode::CREATED, axum::Json(v)))
}

pub async fn delete_token(
    State(app): State<App>,
    who: Principal,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let id = super::path_id(&id)?;
    let t = db::users::token(&app.db, id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no token with id {id}")))?;
    if t.user_id != who.user_id {
        who.require(Role::Admin)?;
    }
    db::users::delete_token(&app.db, id).await?;
    Ok(StatusCode::NO_CONTENT)
}
