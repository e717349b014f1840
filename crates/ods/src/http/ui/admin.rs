//! The Admin tab: this server's settings (the key hidden until an admin reveals it),
//! the Edit dialog (saved by the same `about::save` as POST /api/admin/about/update),
//! and the System Information table, which refreshes itself.

use askama::Template;
use askama_web::WebTemplate;
use axum::Form;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::{Layout, Session, Tab, UiResult, flash_redirect};
use crate::app::App;
use crate::db;
use crate::http::api::about::{self, AboutUpdate};
use crate::http::api::system::{self, SystemInfo};
use crate::model::{Role, Stage};

#[derive(Template, WebTemplate)]
#[template(path = "admin.html")]
struct AdminPage {
    layout: Layout,
    s: db::server::ServerRow,
    sys: SystemInfo,
    stages: [&'static str; 3],
}

#[derive(Template, WebTemplate)]
#[template(path = "admin_system.html")]
struct SystemFragment {
    sys: SystemInfo,
}

#[derive(Template, WebTemplate)]
#[template(path = "admin_key.html")]
struct KeyFragment {
    key: String,
}

/// `GET /admin`.
pub async fn page(State(app): State<App>, s: Session) -> UiResult<impl IntoResponse> {
    s.require(Role::Viewer)?;
    let server = db::server::get(&app.db).await?;
    let sys = system::read(&app).await?;
    Ok(AdminPage {
        layout: Layout::new(&s, Tab::Admin, "Server Admin"),
        s: server,
        sys,
        stages: [
            Stage::Dev.as_str(),
            Stage::Test.as_str(),
            Stage::Prod.as_str(),
        ],
    })
}

/// `GET /admin/system`: the System Information table alone (polled by the page).
pub async fn system_fragment(State(app): State<App>, s: Session) -> UiResult<impl IntoResponse> {
    s.require(Role::Viewer)?;
    Ok(SystemFragment {
        sys: system::read(&app).await?,
    })
}

/// `GET /admin/key`: the registration key, for admins (the Reveal button).
pub async fn key_fragment(State(app): State<App>, s: Session) -> UiResult<impl IntoResponse> {
    s.require(Role::Admin)?;
    let server = db::server::get(&app.db).await?;
    let key = match &server.key_sealed {
        Some(sealed) => app
            .sealer
            .open(sealed)
            .map_err(crate::error::ApiError::from)?,
        None => String::new(),
    };
    Ok(KeyFragment { key })
}

#[derive(Deserialize)]
pub struct SettingsForm {
    name: String,
    url: String,
    stage: String,
    firewalled: String,
    download_auth: String,
}

/// `POST /admin/settings`: the Edit dialog.
pub async fn save_settings(
    State(app): State<App>,
    s: Session,
    Form(f): Form<SettingsForm>,
) -> UiResult<Response> {
    let firewalled = match f.firewalled.as_str() {
        "Enabled" => true,
        "Disabled" => false,
        other => {
            return Err(super::UiError::new(
                axum::http::StatusCode::BAD_REQUEST,
                format!("Firewalled Mode {other:?} must be Enabled or Disabled."),
            ));
        }
    };
    let change = AboutUpdate::from_form(f.name, f.url, f.stage, firewalled, f.download_auth);
    about::save(&app, &s.who, change).await?;
    Ok(flash_redirect("/admin", "Settings saved."))
}
