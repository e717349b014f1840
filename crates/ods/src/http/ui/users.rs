//! The Users tab (admins): create a user, change a role, reset a password (the user
//! must then choose their own, and their tokens and sessions end), delete with
//! confirmation; each through the same `api::users` functions as /api/admin/users.

use askama::Template;
use askama_web::WebTemplate;
use axum::Form;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::network::when;
use super::{Layout, Session, Tab, UiResult, flash_redirect, words};
use crate::app::App;
use crate::http::api::users::{self, User, UserUpdate};
use crate::model::Role;

const ROLES: [&str; 3] = ["viewer", "uploader", "admin"];

#[derive(Template, WebTemplate)]
#[template(path = "users.html")]
struct UsersPage {
    layout: Layout,
    users: Vec<(User, String)>,
    roles: [&'static str; 3],
    new_name: String,
    new_role: String,
    me: String,
}

async fn page_with(
    app: &App,
    s: &Session,
    status: StatusCode,
    error: Option<String>,
    new_name: String,
    new_role: String,
) -> UiResult<Response> {
    let users = users::list(app, &s.who)
        .await?
        .items
        .into_iter()
        .map(|u| {
            let created = when(&u.created);
            (u, created)
        })
        .collect();
    let mut layout = Layout::new(s, Tab::Users, "Users");
    if error.is_some() {
        layout.error = error;
    }
    let page = UsersPage {
        layout,
        users,
        roles: ROLES,
        new_name,
        new_role,
        me: s.who.username.clone(),
    };
    Ok((status, page).into_response())
}

/// `GET /users`.
pub async fn page(State(app): State<App>, s: Session) -> UiResult<Response> {
    s.require(Role::Admin)?;
    page_with(
        &app,
        &s,
        StatusCode::OK,
        None,
        String::new(),
        "viewer".into(),
    )
    .await
}

#[derive(Deserialize)]
pub struct CreateForm {
    username: String,
    password: String,
    confirm: String,
    role: String,
}

/// `POST /users/create`: on failure the page again with the reason and the name kept.
pub async fn create(
    State(app): State<App>,
    s: Session,
    Form(f): Form<CreateForm>,
) -> UiResult<Response> {
    s.require(Role::Admin)?;
    let name = f.username.trim().to_string();
    let result = if f.password != f.confirm {
        Err("The password and its confirmation differ.".to_string())
    } else {
        users::create(&app, &s.who, &name, f.password, &f.role)
            .await
            .map_err(|e| words(&e))
    };
    match result {
        Ok(u) => Ok(flash_redirect(
            "/users",
            &format!("User {} created ({}).", u.username, u.role.as_str()),
        )),
        Err(why) => page_with(&app, &s, StatusCode::BAD_REQUEST, Some(why), name, f.role).await,
    }
}

#[derive(Deserialize)]
pub struct RoleForm {
    username: String,
    role: String,
}

/// `POST /users/role`.
pub async fn set_role(
    State(app): State<App>,
    s: Session,
    Form(f): Form<RoleForm>,
) -> UiResult<Response> {
    let u = users::update(&app, &s.who, &f.username, UserUpdate::role(f.role)).await?;
    Ok(flash_redirect(
        "/users",
        &format!("{} is now {}.", u.username, u.role.as_str()),
    ))
}

#[derive(Deserialize)]
pub struct ResetForm {
    username: String,
    password: String,
}

/// `POST /users/password`: an admin's reset (of another user: they must change it at
/// their next login; their API tokens and sessions end).
pub async fn reset_password(
    State(app): State<App>,
    s: Session,
    Form(f): Form<ResetForm>,
) -> UiResult<Response> {
    s.require(Role::Admin)?;
    let u = users::update(&app, &s.who, &f.username, UserUpdate::password(f.password)).await?;
    let tail = if u.must_change_password {
        " They must choose their own at their next login; their API tokens were revoked."
    } else {
        ""
    };
    Ok(flash_redirect(
        "/users",
        &format!("Password of {} reset.{tail}", u.username),
    ))
}

#[derive(Deserialize)]
pub struct DeleteForm {
    username: String,
}

/// `POST /users/delete`.
pub async fn delete(
    State(app): State<App>,
    s: Session,
    Form(f): Form<DeleteForm>,
) -> UiResult<Response> {
    users::delete(&app, &s.who, &f.username).await?;
    Ok(flash_redirect(
        "/users",
        &format!("User {} deleted.", f.username),
    ))
}
