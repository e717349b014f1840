//! `/api/admin/email`: SMTP settings (the password sealed at rest and never shown),
//! subscriptions (recipients and events), and a test message (issue 8 item 2).
//! Admins only.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::app::App;
use crate::db::{self, email::SettingsRow, email::SubscriptionRow};
use crate::error::{ApiError, ApiResult};
use crate::http::JsonBody;
use crate::http::auth::Principal;
use crate::http::docs::{AdminErrors, BadRequest, Conflict, JsonErrors, NotFound};
use crate::jobs;
use crate::model::{Role, iso_seconds};
use crate::notify::{self, email};

/// `none`, `starttls` or `tls`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Security {
    None,
    Starttls,
    Tls,
}

impl Security {
    fn as_str(self) -> &'static str {
        match self {
            Security::None => "none",
            Security::Starttls => "starttls",
            Security::Tls => "tls",
        }
    }
}

/// The SMTP settings (the password is never shown; `password_set` says whether there
/// is one). All null until set.
#[derive(Debug, Serialize, ToSchema)]
pub struct EmailSettings {
    pub configured: bool,
    pub from: Option<String>,
    pub host: Option<String>,
    pub password_set: bool,
    pub port: Option<i64>,
    pub security: Option<String>,
    pub username: Option<String>,
}

fn settings_json(s: Option<SettingsRow>) -> EmailSettings {
    match s {
        None => EmailSettings {
            configured: false,
            from: None,
            host: None,
            password_set: false,
            port: None,
            security: None,
            username: None,
        },
        Some(s) => EmailSettings {
            configured: true,
            from: Some(s.from_addr),
            host: Some(s.host),
            password_set: s.password_sealed.is_some(),
            port: Some(s.port),
            security: Some(s.security),
            username: s.username,
        },
    }
}

/// New SMTP settings.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EmailSettingsUpdate {
    #[schema(min_length = 1, max_length = 255, example = "smtp.example.com")]
    pub(crate) host: String,
    #[schema(minimum = 1, maximum = 65535, example = 587)]
    pub(crate) port: i64,
    pub(crate) security: Security,
    /// Absent or null for no authentication.
    #[schema(max_length = 255)]
    pub(crate) username: Option<String>,
    /// Absent or null keeps the stored password; an empty string removes it.
    #[schema(max_length = 1024)]
    pub(crate) password: Option<String>,
    /// The sender address, e.g. `ODS <ods@example.com>`.
    #[schema(max_length = 320, example = "ODS <ods@example.com>")]
    pub(crate) from: String,
}

#[utoipa::path(
    get,
    path = "/email",
    tag = "notifications",
    description = "The SMTP settings. Needs the `admin` role.",
    responses((status = 200, description = "The settings.", body = EmailSettings), AdminErrors)
)]
pub async fn get_email(
    State(app): State<App>,
    who: Principal,
) -> ApiResult<axum::Json<EmailSettings>> {
    who.require(Role::Admin)?;
    Ok(axum::Json(settings_json(
        db::email::settings(&app.db).await?,
    )))
}

#[utoipa::path(
    put,
    path = "/email",
    tag = "notifications",
    description = "Sets the SMTP settings (the password is sealed at rest). Needs the `admin` role.",
    request_body = EmailSettingsUpdate,
    responses((status = 200, description = "The settings as they are now.", body = EmailSettings), JsonErrors, AdminErrors)
)]
pub async fn put_email(
    State(app): State<App>,
    who: Principal,
    JsonBody(body): JsonBody<EmailSettingsUpdate>,
) -> ApiResult<axum::Json<EmailSettings>> {
    who.require(Role::Admin)?;
    let old = db::email::settings(&app.db).await?;
    let password_sealed = match body.password {
        None => old.and_then(|o| o.password_sealed),
        Some(p) if p.is_empty() => None,
        Some(p) if p.len() > 1024 => {
            return Err(ApiError::bad_request(
                "invalid_email_settings",
                "password is at most 1024 bytes",
            ));
        }
        Some(p) => Some(app.sealer.seal(&p)),
    };
    let row = SettingsRow {
        host: body.host.trim().to_string(),
        port: body.port,
        security: body.security.as_str().into(),
        username: body.username.filter(|u| !u.is_empty()),
        password_sealed,
        from_addr: body.from,
        updated: 0,
    };
    if row.username.as_ref().is_some_and(|u| u.len() > 255) {
        return Err(ApiError::bad_request(
            "invalid_email_settings",
            "username is at most 255 bytes",
        ));
    }
    email::check_settings(&row).map_err(|e| ApiError::bad_request("invalid_email_settings", e))?;
    db::email::put_settings(&app.db, &row).await?;
    tracing::info!(by = %who.username, "email settings changed");
    Ok(axum::Json(settings_json(
        db::email::settings(&app.db).await?,
    )))
}

/// Who gets email about which events.
#[derive(Debug, Serialize, ToSchema)]
pub struct EmailSubscription {
    pub created: String,
    /// Event names, or `["*"]`.
    pub events: Vec<String>,
    pub id: i64,
    pub recipients: Vec<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EmailSubscriptionList {
    pub items: Vec<EmailSubscription>,
}

fn sub_json(s: &SubscriptionRow) -> EmailSubscription {
    EmailSubscription {
        created: iso_seconds(s.created),
        events: serde_json::from_str(&s.events).unwrap_or_default(),
        id: s.id,
        recipients: serde_json::from_str(&s.recipients).unwrap_or_default(),
    }
}

/// An email address (`local@domain`).
#[derive(ToSchema)]
#[schema(value_type = String, format = Email, max_length = 320)]
#[allow(dead_code)]
pub struct EmailAddress(String);

/// A subscription to create.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewEmailSubscription {
    /// One to 100 email addresses.
    #[schema(value_type = Vec<EmailAddress>, min_items = 1, max_items = 100, example = json!(["ops@example.com"]))]
    pub(crate) recipients: Vec<String>,
    /// Event names, or `["*"]`.
    #[schema(value_type = Vec<super::webhooks::EventName>, min_items = 1, example = json!(["package.rollout_complete"]))]
    pub(crate) events: Vec<String>,
}

#[utoipa::path(
    get,
    path = "/email/subscriptions",
    tag = "notifications",
    description = "Every email subscription. Needs the `admin` role.",
    responses((status = 200, description = "The subscriptions.", body = EmailSubscriptionList), AdminErrors)
)]
pub async fn list_subscriptions(
    State(app): State<App>,
    who: Principal,
) -> ApiResult<axum::Json<EmailSubscriptionList>> {
    who.require(Role::Admin)?;
    let items = db::email::subscriptions(&app.db)
        .await?
        .iter()
        .map(sub_json)
        .collect();
    Ok(axum::Json(EmailSubscriptionList { items }))
}

#[utoipa::path(
    post,
    path = "/email/subscriptions",
    tag = "notifications",
    description = "Subscribes recipients to events. Needs the `admin` role.",
    request_body = NewEmailSubscription,
    responses((status = 201, description = "Created.", body = EmailSubscription), JsonErrors, AdminErrors)
)]
pub async fn create_subscription(
    State(app): State<App>,
    who: Principal,
    JsonBody(body): JsonBody<NewEmailSubscription>,
) -> ApiResult<(StatusCode, axum::Json<EmailSubscription>)> {
    who.require(Role::Admin)?;
    let events = notify::hooks::check_events(&body.events)?;
    if body.recipients.is_empty() || body.recipients.len() > 100 {
        return Err(ApiError::bad_request(
            "invalid_recipients",
            "one to 100 recipients",
        ));
    }
    for r in &body.recipients {
        email::check_address(r).map_err(|e| ApiError::bad_request("invalid_recipients", e))?;
    }
    let mut rcpts = body.recipients.clone();
    rcpts.sort();
    rcpts.dedup();
    let recipients = serde_json::to_string(&rcpts).expect("strings serialize");
    let id = db::email::insert_subscription(&app.db, &recipients, &events).await?;
    let row = db::email::subscription(&app.db, id)
        .await?
        .ok_or_else(|| ApiError::internal("reading the subscription", "row vanished"))?;
    Ok((StatusCode::CREATED, axum::Json(sub_json(&row))))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct SubscriptionId {
    /// The subscription's numeric id.
    #[allow(dead_code)]
    id: i64,
}

#[utoipa::path(
    delete,
    path = "/email/subscriptions/{id}",
    tag = "notifications",
    description = "Deletes a subscription. Needs the `admin` role.",
    params(SubscriptionId),
    responses((status = 204, description = "Deleted."), BadRequest, NotFound, AdminErrors)
)]
pub async fn delete_subscription(
    State(app): State<App>,
    who: Principal,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    who.require(Role::Admin)?;
    let id = super::path_id(&id)?;
    if !db::email::delete_subscription(&app.db, id).await? {
        return Err(ApiError::not_found(format!(
            "no email subscription with id {id}"
        )));
    }
    Ok(StatusCode::NO_CONTENT)
}

/// Where to send a test message.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EmailTest {
    #[schema(value_type = EmailAddress, example = "ops@example.com")]
    pub(crate) to: String,
}

/// The queued test message.
#[derive(Debug, Serialize, ToSchema)]
pub struct EmailTestQueued {
    /// Its job in `GET /api/admin/jobs/{id}` (retried like every message).
    pub job_id: Option<i64>,
}

#[utoipa::path(
    post,
    path = "/email/test",
    tag = "notifications",
    description = "Queues a test message to `to` through the SMTP settings. Needs the `admin` role.",
    request_body = EmailTest,
    responses((status = 202, description = "Queued.", body = EmailTestQueued), JsonErrors, Conflict, AdminErrors)
)]
pub async fn test_email(
    State(app): State<App>,
    who: Principal,
    JsonBody(body): JsonBody<EmailTest>,
) -> ApiResult<(StatusCode, axum::Json<EmailTestQueued>)> {
    who.require(Role::Admin)?;
    email::check_address(&body.to).map_err(|e| ApiError::bad_request("invalid_recipients", e))?;
    if db::email::settings(&app.db).await?.is_none() {
        return Err(ApiError::conflict(
            "email_not_configured",
            "set up email first (PUT /api/admin/email)",
        ));
    }
    let lane = notify::Lane(app.clone());
    let job_id = jobs::enqueue_now(&lane, &email::TestMail { to: body.to }).await?;
    Ok((StatusCode::ACCEPTED, axum::Json(EmailTestQueued { job_id })))
}
