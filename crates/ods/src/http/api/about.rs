//! `GET /api/admin/about`, `POST /api/admin/about[/update]`: this server's settings.

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::app::App;
use crate::db;
use crate::error::{ApiError, ApiResult};
use crate::http::JsonBody;
use crate::http::auth::Principal;
use crate::http::docs::{AdminErrors, JsonErrors};
use crate::model::Role;
use crate::model::Stage;

/// How clients authenticate to download packages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum DownloadAuth {
    /// Anyone may download.
    None,
    /// HTTP Basic with any ODS user (the read account Jamf Pro stores).
    Basic,
    /// A Jamf Pro download token (RS256 JWT) in `?token=`; needs ODS_JAMF_JWT_PUBLIC_KEY.
    /// Packages used during automated device enrollment cannot sit behind authentication.
    Jwt,
}

impl DownloadAuth {
    fn from_db(s: &str) -> DownloadAuth {
        if s == "basic" {
            DownloadAuth::Basic
        } else if s == "jwt" {
            DownloadAuth::Jwt
        } else {
            DownloadAuth::None
        }
    }
}

/// This server's settings (the seed's fields plus `download_auth`).
#[derive(Debug, Serialize, ToSchema)]
pub struct About {
    pub download_auth: DownloadAuth,
    pub firewalled_mode: bool,
    /// This server's ISS ID: 32 lowercase hex characters.
    #[schema(pattern = "^[0-9a-f]{32}$")]
    pub iss: String,
    /// The registration key other servers use to register here; only admins see it.
    pub key: Option<String>,
    pub name: String,
    pub stage: Stage,
    /// The URL other servers reach this one at; null until set.
    pub url: Option<String>,
}

#[utoipa::path(
    get,
    path = "/about",
    tag = "about",
    description = "This server's settings. Needs the `viewer` role; `key` is null unless the caller is an admin.",
    responses((status = 200, description = "Settings.", body = About), AdminErrors)
)]
pub async fn get_about(State(app): State<App>, who: Principal) -> ApiResult<axum::Json<About>> {
    who.require(Role::Viewer)?;
    let s = db::server::get(&app.db).await?;
    // The registration key is a secret: only admins see it.
    let key = match (&s.key_sealed, who.role) {
        (Some(sealed), Role::Admin) => Some(app.sealer.open(sealed)?),
        _ => None,
    };
    Ok(axum::Json(About {
        download_auth: DownloadAuth::from_db(&s.download_auth),
        firewalled_mode: s.firewalled,
        iss: s.iss,
        key,
        name: s.name,
        stage: s.stage,
        url: s.url,
    }))
}

/// `firewalled_mode` is written as `Enabled`/`Disabled` (the seed) or a boolean.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum Toggle {
    Bool(bool),
    #[schema(value_type = FirewalledWord)]
    Word(String),
}

/// The seed's spelling of `firewalled_mode`.
#[derive(ToSchema)]
#[allow(dead_code)]
enum FirewalledWord {
    Enabled,
    Disabled,
}

/// A change of settings: every field is optional; absent or null leaves it as it is,
/// except `url`, where null or blank clears it. `iss` and `key` cannot be changed.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AboutUpdate {
    /// 1 to 255 printable characters (surrounding spaces are trimmed).
    #[schema(
        min_length = 1,
        max_length = 255,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]*[^\t\n\u000b\u000c\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\u0000-\u001f\u007f-\u009f][^\u0000-\u001f\u007f-\u009f]*$"
    )]
    name: Option<String>,
    /// An http:// or https:// URL other servers can reach this one at; null or blank clears it.
    #[serde(default, deserialize_with = "crate::http::present")]
    #[schema(value_type = Option<String>, max_length = 2048, pattern = r"^[\t\n\u000b\u000c\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*(https?://[^\t\n\u000b\u000c\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\u0000-\u001f\u007f-\u009f]*[^\t\n\u000b\u000c\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\u0000-\u001f\u007f-\u009f/][^\t\n\u000b\u000c\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\u0000-\u001f\u007f-\u009f]*)?[\t\n\u000b\u000c\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*$")]
    url: Option<Option<String>>,
    #[schema(value_type = Option<crate::http::docs::StageName>)]
    stage: Option<String>,
    firewalled_mode: Option<Toggle>,
    #[schema(value_type = Option<DownloadAuth>)]
    download_auth: Option<String>,
    /// The seed forbids changing these; they are refused with a clear message.
    #[schema(ignore)]
    iss: Option<Value>,
    #[schema(ignore)]
    key: Option<Value>,
}

#[utoipa::path(
    post,
    path = "/about",
    tag = "about",
    description = "Changes this server's settings. Needs the `admin` role. Answers the seed's 201 with an empty text/html body.",
    request_body = AboutUpdate,
    responses(
        (status = 201, description = "Saved (empty body, as the seed).", content_type = "text/html", body = String),
        JsonErrors,
        AdminErrors
    )
)]
pub async fn update_about(
    app: State<App>,
    who: Principal,
    body: JsonBody<AboutUpdate>,
) -> ApiResult<impl IntoResponse> {
    save_about(app, who, body).await
}

#[utoipa::path(
    post,
    path = "/about/update",
    tag = "about",
    description = "The seed's spelling of POST /api/admin/about. Needs the `admin` role.",
    request_body = AboutUpdate,
    responses(
        (status = 201, description = "Saved (empty body, as the seed).", content_type = "text/html", body = String),
        JsonErrors,
        AdminErrors
    )
)]
pub async fn update_about_seed(
    app: State<App>,
    who: Principal,
    body: JsonBody<AboutUpdate>,
) -> ApiResult<impl IntoResponse> {
    save_about(app, who, body).await
}

/// Stage as the API takes it: `Dev`, `Test` or `Prod`, in any letter case.
pub(crate) fn parse_stage(s: &str) -> ApiResult<Stage> {
    Stage::parse(s).ok_or_else(|| {
        ApiError::bad_request(
            "invalid_stage",
            format!("stage {s:?} must be Dev, Test or Prod"),
        )
    })
}

async fn save_about(
    State(app): State<App>,
    who: Principal,
    JsonBody(body): JsonBody<AboutUpdate>,
) -> ApiResult<impl IntoResponse> {
    save(&app, &who, body).await?;
    // The seed answers 201 with an empty text/html body.
    Ok((
        StatusCode::CREATED,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        "",
    ))
}

impl AboutUpdate {
    /// The change the web UI's Edit dialog makes: every field given.
    pub(crate) fn from_form(
        name: String,
        url: String,
        stage: String,
        firewalled: bool,
        download_auth: String,
    ) -> AboutUpdate {
        AboutUpdate {
            name: Some(name),
            url: Some(Some(url)),
            stage: Some(stage),
            firewalled_mode: Some(Toggle::Bool(firewalled)),
            download_auth: Some(download_auth),
            iss: None,
            key: None,
        }
    }
}

/// Validates and saves a change of settings (the API's and the web UI's one path).
pub(crate) async fn save(app: &App, who: &Principal, body: AboutUpdate) -> ApiResult<()> {
    who.require(Role::Admin)?;
    if body.iss.is_some() || body.key.is_some() {
        return Err(ApiError::bad_request(
            "read_only_field",
            "iss and key cannot be changed",
        ));
    }
    let mut u = db::server::ServerUpdate::default();
    if let Some(name) = body.name {
        let raw_len = name.chars().count();
        let name = name.trim().to_string();
        if name.is_empty() || raw_len > 255 || name.chars().any(char::is_control) {
            return Err(ApiError::bad_request(
                "invalid_name",
                "name must be 1 to 255 printable characters",
            ));
        }
        u.name = Some(name);
    }
    if let Some(url) = body.url {
        if url.as_ref().is_some_and(|s| s.chars().count() > 2048) {
            return Err(ApiError::bad_request(
                "invalid_url",
                "url may have at most 2048 characters",
            ));
        }
        u.url = Some(
            match url
                .map(|s| s.trim().trim_end_matches('/').to_string())
                .filter(|s| !s.is_empty())
            {
                None => None,
                Some(s) => {
                    let ok = (s.starts_with("http://") || s.starts_with("https://"))
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
        u.stage = Some(parse_stage(&stage)?);
    }
    if let Some(t) = body.firewalled_mode {
        u.firewalled = Some(match t {
            Toggle::Bool(b) => b,
            Toggle::Word(w) if w == "Enabled" => true,
            Toggle::Word(w) if w == "Disabled" => false,
            Toggle::Word(w) => {
                return Err(ApiError::bad_request(
                    "invalid_firewalled_mode",
                    format!("firewalled_mode {w:?} must be Enabled, Disabled, true or false"),
                ));
            }
        });
    }
    if let Some(mode) = body.download_auth {
        if !["none", "basic", "jwt"].contains(&mode.as_str()) {
            return Err(ApiError::bad_request(
                "invalid_download_auth",
                "download_auth must be none, basic or jwt",
            ));
        }
        if mode == "jwt" && app.jwt.is_none() {
            return Err(ApiError::bad_request(
                "invalid_download_auth",
                "download_auth jwt needs the Jamf Pro public key: set ODS_JAMF_JWT_PUBLIC_KEY",
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
    Ok(())
}
