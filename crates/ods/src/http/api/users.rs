//! `/api/admin/users`: accounts and roles. Admins manage everyone; any user may change
//! their own password (giving the current one).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::app::App;
use crate::auth::password;
use crate::db::{self, users::UserRow};
use crate::error::{ApiError, ApiResult};
use crate::http::JsonBody;
use crate::http::auth::Principal;
use crate::http::docs::{AdminErrors, Conflict, JsonErrors, NotFound};
use crate::model::Role;
use crate::model::iso_seconds;

/// A user's role: `admin` (everything), `uploader` (packages), `viewer` (read).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum RoleName {
    Admin,
    Uploader,
    Viewer,
}

impl RoleName {
    pub fn as_str(&self) -> &'static str {
        match self {
            RoleName::Admin => "admin",
            RoleName::Uploader => "uploader",
            RoleName::Viewer => "viewer",
        }
    }
}

impl From<Role> for RoleName {
    fn from(r: Role) -> Self {
        match r {
            Role::Admin => RoleName::Admin,
            Role::Uploader => RoleName::Uploader,
            Role::Viewer => RoleName::Viewer,
        }
    }
}

/// An account.
#[derive(Debug, Serialize, ToSchema)]
pub struct User {
    /// ISO 8601 without microseconds (UTC).
    pub created: String,
    pub id: i64,
    /// The user must choose a new password (set by an admin, or the default one).
    pub must_change_password: bool,
    pub role: RoleName,
    pub username: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UserList {
    pub items: Vec<User>,
}

fn to_json(u: &UserRow) -> User {
    User {
        created: iso_seconds(u.created),
        id: u.id,
        must_change_password: u.must_change_password,
        role: u.role.into(),
        username: u.username.clone(),
    }
}

/// A role as the API takes it: exactly `admin`, `uploader` or `viewer`.
fn parse_role(s: &str) -> ApiResult<Role> {
    Role::parse(s).filter(|r| r.as_str() == s).ok_or_else(|| {
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

#[utoipa::path(
    get,
    path = "/users",
    tag = "users",
    description = "Every user, under `items`. Needs the `admin` role.",
    responses((status = 200, description = "The users.", body = UserList), AdminErrors)
)]
pub async fn list_users(State(app): State<App>, who: Principal) -> ApiResult<axum::Json<UserList>> {
    Ok(axum::Json(list(&app, &who).await?))
}

/// Every user, for admins.
pub async fn list(app: &App, who: &Principal) -> ApiResult<UserList> {
    who.require(Role::Admin)?;
    let items = db::users::list(&app.db)
        .await?
        .iter()
        .map(to_json)
        .collect();
    Ok(UserList { items })
}

/// A username.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct Username {
    /// The user's name.
    #[allow(dead_code)]
    username: String,
}

#[utoipa::path(
    get,
    path = "/users/{username}",
    tag = "users",
    description = "One user: the caller themself, or anyone for admins.",
    params(Username),
    responses((status = 200, description = "The user.", body = User), NotFound, AdminErrors)
)]
pub async fn get_user(
    State(app): State<App>,
    who: Principal,
    Path(name): Path<String>,
) -> ApiResult<axum::Json<User>> {
    if who.username != name {
        who.require(Role::Admin)?;
    }
    Ok(axum::Json(to_json(&find(&app, &name).await?)))
}

/// An account to create.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    /// 1 to 64 letters, digits, `.`, `_`, `-` or `@`.
    #[schema(pattern = "^[A-Za-z0-9._@-]{1,64}$", min_length = 1, max_length = 64)]
    username: String,
    /// 8 to 1024 characters, not the default one.
    #[schema(min_length = 8, max_length = 1024)]
    password: String,
    #[schema(value_type = RoleName)]
    role: String,
}

#[utoipa::path(
    post,
    path = "/users",
    tag = "users",
    description = "Creates a user. Needs the `admin` role.",
    request_body = NewUser,
    responses((status = 201, description = "Created.", body = User), JsonErrors, Conflict, AdminErrors)
)]
pub async fn create_user(
    State(app): State<App>,
    who: Principal,
    JsonBody(body): JsonBody<NewUser>,
) -> ApiResult<(StatusCode, axum::Json<User>)> {
    let u = create(&app, &who, &body.username, body.password, &body.role).await?;
    Ok((StatusCode::CREATED, axum::Json(u)))
}

/// Creates user `name` (the API's POST /users and the UI's Users tab).
pub async fn create(
    app: &App,
    who: &Principal,
    name: &str,
    password: String,
    role: &str,
) -> ApiResult<User> {
    who.require(Role::Admin)?;
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
    let role = parse_role(role)?;
    password::check_new(&password)?;
    let hash = password::hash_async(password).await?;
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
    Ok(to_json(&find(app, name).await?))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserUpdate {
    /// A new role (admins only).
    #[schema(value_type = Option<RoleName>)]
    role: Option<String>,
    /// A new password: 8 to 1024 characters, not the default one.
    #[schema(min_length = 8, max_length = 1024)]
    password: Option<String>,
    /// The caller's current password, needed when a non-admin changes their own.
    current_password: Option<String>,
}

#[utoipa::path(
    patch,
    path = "/users/{username}",
    tag = "users",
    description = "Changes a user's role (admins) or password (admins, or the user giving `current_password`).",
    params(Username),
    request_body = UserUpdate,
    responses((status = 200, description = "The user as it is now.", body = User), JsonErrors, NotFound, Conflict, AdminErrors)
)]
pub async fn update_user(
    State(app): State<App>,
    who: Principal,
    Path(name): Path<String>,
    JsonBody(body): JsonBody<UserUpdate>,
) -> ApiResult<axum::Json<User>> {
    Ok(axum::Json(update(&app, &who, &name, body).await?))
}

impl UserUpdate {
    /// A change of role alone.
    pub fn role(role: String) -> UserUpdate {
        UserUpdate {
            role: Some(role),
            password: None,
            current_password: None,
        }
    }
    /// A new password (an admin's reset of another user's, who must then change it).
    pub fn password(password: String) -> UserUpdate {
        UserUpdate {
            role: None,
            password: Some(password),
            current_password: None,
        }
    }
}

/// Changes user `name` (the API's PATCH /users/{username} and the UI's Users tab).
pub async fn update(app: &App, who: &Principal, name: &str, body: UserUpdate) -> ApiResult<User> {
    let own = who.username == name;
    if !own {
        who.require(Role::Admin)?;
    }
    who.require_only_password_change(body.password.is_some(), body.role.is_some())?;
    let user = find(app, name).await?;
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
        crate::users::set_password(app, user.id, &hash, own).await?;
    }
    app.basic_cache.clear();
    Ok(to_json(&find(app, name).await?))
}

#[utoipa::path(
    delete,
    path = "/users/{username}",
    tag = "users",
    description = "Deletes a user (not the last admin). Needs the `admin` role.",
    params(Username),
    responses((status = 204, description = "Deleted."), NotFound, Conflict, AdminErrors)
)]
pub async fn delete_user(
    State(app): State<App>,
    who: Principal,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    delete(&app, &who, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Deletes user `name`, never the last admin (the API's DELETE and the UI's Users tab).
pub async fn delete(app: &App, who: &Principal, name: &str) -> ApiResult<()> {
    who.require(Role::Admin)?;
    let user = find(app, name).await?;
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
    Ok(())
}
