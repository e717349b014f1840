//! `/api/admin/users`: accounts and roles. Admins manage everyone; any user may change
//! their own password (giving the current one).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::app::App;
use crate::auth::password;
use crate::db::{self, users::UserRow};
use crate::error::{ApiError, ApiResult};
use crate::http::JsonBody;
use crate::http::auth::Principal;
use crate::model::Role;
use crate::model::iso_seconds;

fn to_json(u: &UserRow) -> Value {
    json!({
        "created": iso_seconds(u.created),
        "id": u.id,
        "must_change_password": u.must_change_password,
        "role": u.role.as_str(),
        "username": u.username,
    })
}

fn parse_role(s: &str) -> ApiResult<Role> {
    Role::parse(s).ok_or_else(|| {
        ApiError::bad_request(
            "invalid_role",
            format!("role {s:?} must be admin, uploader or viewer"),
        )
    })
}

async fn find(app: &App, username: &str) -> ApiResult<UserRow> {
    db::users::by_name(&app.db, username)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no user named {username:?}")))
}

pub async fn list_users(State(app): State<App>, who: Principal) -> ApiResult<axum::Json<Value>> {
    who.require(Role::Admin)?;
    let items: Vec<Value> = db::users::list(&app.db)
        .await?
        .iter()
        .map(to_json)
        .collect();
    Ok(axum::Json(json!({ "items": items })))
}

pub async fn get_user(
    State(app): State<App>,
    who: Principal,
    Path(name): Path<String>,
) -> ApiResult<axum::Json<Value>> {
    if who.username != name {
        who.require(Role::Admin)?;
    }
    Ok(axum::Json(to_json(&find(&app, &name).await?)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    username: String,
    password: String,
    role: String,
}

pub async fn create_user(
    State(app): State<App>,
    who: Principal,
    JsonBody(body): JsonBody<NewUser>,
) -> ApiResult<(StatusCode, axum::Json<Value>)> {
    who.require(Role::Admin)?;
    let name = body.username.trim();
    if name.is_empty()
        || name.len() > 64
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-@".contains(c))
    {
        return Err(ApiError::bad_request(
            "invalid_username",
            "a username is 1 to 64 letters, digits, '.', '_', '-' or '@'",
        ));
    }
    let role = parse_role(&body.role)?;
    password::check_new(&body.password)?;
    let hash = password::hash_async(body.password).await?;
    match db::users::insert(&app.db, name, &hash, role, false).await {
        Ok(_) => {}
        Err(e) if db::is_unique_violation(&e) => {
            return Err(ApiError::conflict(
                "username_exists",
                format!("a user named {name:?} exists"),
            ));
        }
        Err(e) => return Err(e.into()),
    }
    tracing::info!(by = %who.username, user = name, role = role.as_str(), "user created");
    Ok((
        StatusCode::CREATED,
        axum::Json(to_json(&find(&app, name).await?)),
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserUpdate {
    role: Option<String>,
    password: Option<String>,
    current_password: Option<String>,
}

pub async fn update_user(
    State(app): State<App>,
    who: Principal,
    Path(name): Path<String>,
    JsonBody(body): JsonBody<UserUpdate>,
) -> ApiResult<axum::Json<Value>> {
    let own = who.username == name;
    if !own {
        who.require(Role::Admin)?;
    }
    who.require_only_password_change(body.password.is_some(), body.role.is_some())?;
    let user = find(&app, &name).await?;
    let role = body.role.as_deref().map(parse_role).transpose()?;
    if let Some(new) = &body.password {
        password::check_new(new)?;
        if own && who.role != Role::Admin {
            let current = body.current_password.clone().unwrap_or_default();
            if !password::verify_async(current, user.password_hash.clone()).await {
                return Err(ApiError::bad_request(
                    "wrong_password",
                    "current_password is not your current password",
                ));
            }
        }
    }
    if let Some(role) = role.filter(|r| *r != user.role) {
        who.require(Role::Admin)?;
        let mut tx = app.db.begin().await?;
        db::users::set_role(&app.db, &mut tx, user.id, role).await?;
        if user.role == Role::Admin && db::users::count_admins(&app.db, &mut tx).await? == 0 {
            return Err(ApiError::conflict(
                "last_admin",
                "ODS needs at least one admin",
            ));
        }
        tx.commit().await?;
    }
    if let Some(new) = body.password {
        let hash = password::hash_async(new).await?;
        crate::users::set_password(&app, user.id, &hash, own).await?;
    }
    app.basic_cache.clear();
    Ok(axum::Json(to_json(&find(&app, &name).await?)))
}

pub async fn delete_user(
    State(app): State<App>,
    who: Principal,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    who.require(Role::Admin)?;
    let user = find(&app, &name).await?;
    let mut tx = app.db.begin().await?;
    db::users::delete(&app.db, &mut tx, user.id).await?;
    if db::users::count_admins(&app.db, &mut tx).await? == 0 {
        return Err(ApiError::conflict(
            "last_admin",
            "ODS needs at least one admin",
        ));
    }
    tx.commit().await?;
    app.basic_cache.clear();
    Ok(StatusCode::NO_CONTENT)
}
