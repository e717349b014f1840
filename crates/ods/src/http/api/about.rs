//! `GET /api/admin/about`, `POST /api/admin/about[/update]`: this server's settings.

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::app::App;
use crate::db;
use crate::error::{ApiError, ApiResult};
use crate::http::JsonBody;
use crate::http::auth::Principal;
use crate::model::Role;
use crate::model::Stage;

pub async fn get_about(State(app): State<App>, who: Principal) -> ApiResult<axum::Json<Value>> {
    who.require(Role::Viewer)?;
    let s = db::server::get(&app.db).await?;
    // The registration key is a secret: only admins see it.
    let key = match (&s.key_sealed, who.role) {
        (Some(sealed), Role::Admin) => Some(app.sealer.open(sealed)?),
        _ => None,
    };
    Ok(axum::Json(json!({
        "download_auth": s.download_auth,
        "firewalled_mode": s.firewalled,
        "iss": s.iss,
        "key": key,
        "name": s.name,
        "stage": s.stage.as_str(),
        "url": s.url,
    })))
}

/// `firewalled_mode` is written as `Enabled`/`Disabled` (the seed) or a boolean.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Toggle {
    Bool(bool),
    Word(String),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AboutUpdate {
    name: Option<String>,
    #[serde(default, deserialize_with = "crate::http::present")]
    url: Option<Option<String>>,
    stage: Option<String>,
    firewalled_mode: Option<Toggle>,
    download_auth: Option<String>,
    /// The seed forbids changing these; they are refused with a clear message.
    iss: Option<Value>,
    key: Option<Value>,
}

pub async fn update_about(
    State(app): State<App>,
    who: Principal,
    JsonBody(body): JsonBody<AboutUpdate>,
) -> ApiResult<impl IntoResponse> {
    who.require(Role::Admin)?;
    if body.iss.is_some() || body.key.is_some() {
        return Err(ApiError::bad_request(
            "read_only_field",
            "iss and key cannot be changed",
        ));
    }
    let mut u = db::server::ServerUpdate::default();
    if let Some(name) = body.name {
        let name = name.trim().to_string();
        if name.is_empty() || name.len() > 255 || name.chars().any(char::is_control) {
            return Err(ApiError::bad_request(
                "invalid_name",
                "name must be 1 to 255 printable characters",
            ));
        }
        u.name = Some(name);
    }
    if let Some(url) = body.url {
        u.url = Some(
            match url
                .map(|s| s.trim().trim_end_matches('/').to_string())
                .filter(|s| !s.is_empty())
            {
                None => None,
                Some(s) => {
                    let ok = (s.starts_with("http://") || s.starts_with("https://"))
                        && s.len() <= 2048
                        && !s.chars().any(|c| c.is_whitespace() || c.is_control())
                        && s.split("://").nth(1).is_some_and(|rest| !rest.is_empty());
                    if !ok {
                        return Err(ApiError::bad_request(
                            "invalid_url",
                            format!(
                                "url {s:?} must be an http:// or https:// URL other servers can reach"
                            ),
                        ));
                    }
                    Some(s)
                }
            },
        );
    }
    if let Some(stage) = body.stage {
        u.stage = Some(Stage::parse(&stage).ok_or_else(|| {
            ApiError::bad_request(
                "invalid_stage",
                format!("stage {stage:?} must be Dev, Test or Prod"),
            )
        })?);
    }
    if let Some(t) = body.firewalled_mode {
        u.firewalled = Some(match t {
            Toggle::Bool(b) => b,
            Toggle::Word(w) if w.eq_ignore_ascii_case("enabled") => true,
            Toggle::Word(w) if w.eq_ignore_ascii_case("disabled") => false,
            Toggle::Word(w) => {
                return Err(ApiError::bad_request(
                    "invalid_firewalled_mode",
                    format!("firewalled_mode {w:?} must be Enabled, Disabled, true or false"),
                ));
            }
        });
    }
    if let Some(mode) = body.download_auth {
        let mode = mode.to_ascii_lowercase();
        if !["none", "basic"].contains(&mode.as_str()) {
            return Err(ApiError::bad_request(
                "invalid_download_auth",
                "download_auth must be none or basic",
            ));
        }
        u.download_auth = Some(mode);
    }
    let before = db::server::get(&app.db).await?;
    let mut tx = app.db.begin().await?;
    db::server::update(&app.db, &mut tx, &u).await?;
    let stage_changed = u.stage.is_some_and(|s| s != before.stage);
    if stage_changed {
        crate::jobs::enqueue(
            &app.db,
            &mut tx,
            &crate::catalog::reevaluate::Reevaluate,
            std::time::Duration::ZERO,
        )
        .await?;
    }
    // Peers learn our new name, URL, stage or mode with their next pull.
    crate::catalog::announce(&app.db, &mut tx, None).await?;
    tx.commit().await?;
    app.jobs_wake.notify_one();
    app.settings_changed();
    // The seed answers 201 with an empty text/html body.
    Ok((
        StatusCode::CREATED,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        "",
    ))
}
