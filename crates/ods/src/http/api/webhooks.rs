//! `/api/admin/webhooks`: Standard Webhooks subscriptions (issue 8 item 1), their
//! `ods.test` message and their delivery log. Admins only (a webhook sends what
//! happens on this server elsewhere). The secret is shown once, when it is set.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::app::App;
use crate::db::{self, webhooks::WebhookRow};
use crate::error::ApiResult;
use crate::http::JsonBody;
use crate::http::QueryArgs;
use crate::http::auth::Principal;
use crate::http::docs::{AdminErrors, BadRequest, JsonErrors, NotFound};
use crate::model::Role;
use crate::model::iso_seconds;
use crate::notify::hooks;

/// An event name (DESIGN.md §5), or `*` for every event.
#[derive(Deserialize, ToSchema)]
#[allow(dead_code)]
pub enum EventName {
    #[serde(rename = "*")]
    All,
    #[serde(rename = "package.uploaded")]
    PackageUploaded,
    #[serde(rename = "package.public")]
    PackagePublic,
    #[serde(rename = "package.stage_changed")]
    PackageStageChanged,
    #[serde(rename = "package.deleted")]
    PackageDeleted,
    #[serde(rename = "package.withdrawn")]
    PackageWithdrawn,
    #[serde(rename = "package.sync_failed")]
    PackageSyncFailed,
    #[serde(rename = "package.conflict")]
    PackageConflict,
    #[serde(rename = "package.rollout_complete")]
    PackageRolloutComplete,
    #[serde(rename = "ods.registered")]
    OdsRegistered,
    #[serde(rename = "ods.unregistered")]
    OdsUnregistered,
    #[serde(rename = "ods.unreachable")]
    OdsUnreachable,
    #[serde(rename = "ods.recovered")]
    OdsRecovered,
    #[serde(rename = "ods.test")]
    OdsTest,
}

/// A webhook (its secret is shown only when set).
#[derive(Debug, Serialize, ToSchema)]
pub struct Webhook {
    /// ISO 8601 without microseconds (UTC).
    pub created: String,
    pub enabled: bool,
    /// Event names, or `["*"]` for every event.
    pub events: Vec<String>,
    pub id: i64,
    /// Present only in the answer that set it (`whsec_<base64>`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    pub updated: String,
    pub url: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookList {
    pub items: Vec<Webhook>,
}

fn to_json(w: &WebhookRow, secret: Option<String>) -> Webhook {
    Webhook {
        created: iso_seconds(w.created),
        enabled: w.enabled,
        events: serde_json::from_str(&w.events).unwrap_or_default(),
        id: w.id,
        secret,
        updated: iso_seconds(w.updated),
        url: w.url.clone(),
    }
}

/// A webhook to create.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewWebhook {
    /// Where to POST: http:// or https://, at most 2048 characters. A host that
    /// resolves to a link-local or metadata address is refused unless the operator set
    /// ODS_WEBHOOK_ALLOW_LINK_LOCAL.
    #[schema(max_length = 2048, example = "https://hooks.example.com/ods")]
    url: String,
    /// Event names (package.uploaded, package.public, ...), or `["*"]`.
    #[schema(value_type = Vec<EventName>, min_items = 1, example = json!(["package.public"]))]
    events: Vec<String>,
    /// `whsec_` and 24 to 64 bytes in base64; generated when absent or null.
    secret: Option<String>,
    /// Default true.
    enabled: Option<bool>,
}

/// A change to a webhook; absent or null fields stay as they are.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookUpdate {
    #[schema(max_length = 2048)]
    url: Option<String>,
    #[schema(value_type = Option<Vec<EventName>>, min_items = 1)]
    events: Option<Vec<String>>,
    /// A new secret (`whsec_<base64>`), shown back once.
    secret: Option<String>,
    enabled: Option<bool>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct WebhookId {
    /// The webhook's numeric id.
    #[allow(dead_code)]
    id: i64,
}

#[utoipa::path(
    get,
    path = "/webhooks",
    tag = "notifications",
    description = "Every webhook. Needs the `admin` role.",
    responses((status = 200, description = "The webhooks.", body = WebhookList), AdminErrors)
)]
pub async fn list_webhooks(
    State(app): State<App>,
    who: Principal,
) -> ApiResult<axum::Json<WebhookList>> {
    who.require(Role::Admin)?;
    let items = db::webhooks::list(&app.db)
        .await?
        .iter()
        .map(|w| to_json(w, None))
        .collect();
    Ok(axum::Json(WebhookList { items }))
}

#[utoipa::path(
    post,
    path = "/webhooks",
    tag = "notifications",
    description = "Creates a webhook; the answer shows its secret, once. Needs the `admin` role.",
    request_body = NewWebhook,
    responses((status = 201, description = "Created.", body = Webhook), JsonErrors, AdminErrors)
)]
pub async fn create_webhook(
    State(app): State<App>,
    who: Principal,
    JsonBody(body): JsonBody<NewWebhook>,
) -> ApiResult<(StatusCode, axum::Json<Webhook>)> {
    who.require(Role::Admin)?;
    let (row, secret) = hooks::create(
        &app,
        &body.url,
        &body.events,
        body.secret,
        body.enabled.unwrap_or(true),
    )
    .await?;
    tracing::info!(by = %who.username, webhook = row.id, "webhook created");
    Ok((StatusCode::CREATED, axum::Json(to_json(&row, Some(secret)))))
}

#[utoipa::path(
    get,
    path = "/webhooks/{id}",
    tag = "notifications",
    description = "One webhook. Needs the `admin` role.",
    params(WebhookId),
    responses((status = 200, description = "The webhook.", body = Webhook), BadRequest, NotFound, AdminErrors)
)]
pub async fn get_webhook(
    State(app): State<App>,
    who: Principal,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<Webhook>> {
    who.require(Role::Admin)?;
    let id = super::path_id(&id)?;
    Ok(axum::Json(to_json(&hooks::get(&app, id).await?, None)))
}

#[utoipa::path(
    patch,
    path = "/webhooks/{id}",
    tag = "notifications",
    description = "Changes a webhook. Needs the `admin` role.",
    params(WebhookId),
    request_body = WebhookUpdate,
    responses((status = 200, description = "The webhook as it is now.", body = Webhook), JsonErrors, NotFound, AdminErrors)
)]
pub async fn update_webhook(
    State(app): State<App>,
    who: Principal,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<WebhookUpdate>,
) -> ApiResult<axum::Json<Webhook>> {
    who.require(Role::Admin)?;
    let id = super::path_id(&id)?;
    let patch = hooks::Patch {
        url: body.url,
        events: body.events,
        secret: body.secret,
        enabled: body.enabled,
    };
    let (row, secret) = hooks::update(&app, id, patch).await?;
    Ok(axum::Json(to_json(&row, secret)))
}

#[utoipa::path(
    delete,
    path = "/webhooks/{id}",
    tag = "notifications",
    description = "Deletes a webhook, its pending deliveries and its log. Needs the `admin` role.",
    params(WebhookId),
    responses((status = 204, description = "Deleted."), BadRequest, NotFound, AdminErrors)
)]
pub async fn delete_webhook(
    State(app): State<App>,
    who: Principal,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    who.require(Role::Admin)?;
    let id = super::path_id(&id)?;
    if !db::webhooks::delete(&app.db, id).await? {
        return Err(crate::error::ApiError::not_found(format!(
            "no webhook with id {id}"
        )));
    }
    Ok(StatusCode::NO_CONTENT)
}

/// The test message that was queued.
#[derive(Debug, Serialize, ToSchema)]
pub struct TestQueued {
    /// Its delivery id in `GET /api/admin/webhooks/{id}/deliveries`.
    pub delivery_id: i64,
}

#[utoipa::path(
    post,
    path = "/webhooks/{id}/test",
    tag = "notifications",
    description = "Queues an `ods.test` message to the webhook (sent like any other: signed, \
        retried, logged), even when it is disabled. Needs the `admin` role.",
    params(WebhookId),
    responses((status = 202, description = "Queued.", body = TestQueued), BadRequest, NotFound, AdminErrors)
)]
pub async fn test_webhook(
    State(app): State<App>,
    who: Principal,
    Path(id): Path<String>,
) -> ApiResult<(StatusCode, axum::Json<TestQueued>)> {
    who.require(Role::Admin)?;
    let id = super::path_id(&id)?;
    let delivery_id = hooks::send_test(&app, id).await?;
    Ok((StatusCode::ACCEPTED, axum::Json(TestQueued { delivery_id })))
}

/// One try of a delivery.
#[derive(Debug, Serialize, ToSchema)]
pub struct Attempt {
    /// When it started, RFC 3339 with milliseconds (UTC).
    pub at: String,
    /// Unix milliseconds.
    pub at_ms: i64,
    pub duration_ms: i64,
    /// Why it failed (null when it succeeded).
    pub error: Option<String>,
    /// The receiver's HTTP status, null when none came (timeout, refused connection).
    pub status_code: Option<i64>,
}

/// One message to the webhook and its attempts.
#[derive(Debug, Serialize, ToSchema)]
pub struct Delivery {
    pub attempts: Vec<Attempt>,
    pub created: String,
    /// The event's id in `GET /api/admin/events` (null for `ods.test`).
    pub event_id: Option<i64>,
    /// `package.public`, `ods.test`...
    pub event_type: String,
    pub id: i64,
    pub last_error: Option<String>,
    /// The `webhook-id` header, the same on every attempt.
    pub msg_id: String,
    /// `pending` (retries remain), `delivered` or `failed` (no attempt left).
    pub state: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryList {
    pub items: Vec<Delivery>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeliveryQuery {
    /// At most this many, newest first (default 100; clamped to 1..500).
    #[param(value_type = i64, required = false)]
    limit: Option<i64>,
}

#[utoipa::path(
    get,
    path = "/webhooks/{id}/deliveries",
    tag = "notifications",
    description = "The webhook's deliveries, newest first, each with every attempt (time, \
        status code, duration, error). Needs the `admin` role.",
    params(WebhookId, DeliveryQuery),
    responses((status = 200, description = "The deliveries.", body = DeliveryList), BadRequest, NotFound, AdminErrors)
)]
pub async fn list_deliveries(
    State(app): State<App>,
    who: Principal,
    Path(id): Path<String>,
    QueryArgs(q): QueryArgs<DeliveryQuery>,
) -> ApiResult<axum::Json<DeliveryList>> {
    who.require(Role::Admin)?;
    let id = super::path_id(&id)?;
    hooks::get(&app, id).await?;
    let rows = db::webhooks::deliveries(&app.db, id, q.limit.unwrap_or(100).clamp(1, 500)).await?;
    let ids: Vec<i64> = rows.iter().map(|d| d.id).collect();
    let mut attempts = db::webhooks::attempts(&app.db, &ids).await?;
    let items = rows
        .into_iter()
        .map(|d| Delivery {
            attempts: attempts
                .extract_if(.., |a| a.delivery_id == d.id)
                .map(|a| Attempt {
                    at: iso_millis(a.at_ms),
                    at_ms: a.at_ms,
                    duration_ms: a.duration_ms,
                    error: a.error,
                    status_code: a.status_code,
                })
                .collect(),
            created: iso_seconds(d.created),
            event_id: d.event_id,
            event_type: d.event_type,
            id: d.id,
            last_error: d.last_error,
            msg_id: d.msg_id,
            state: d.state,
        })
        .collect();
    Ok(axum::Json(DeliveryList { items }))
}

fn iso_millis(ms: i64) -> String {
    format!(
        "{}.{:03}Z",
        iso_seconds(ms.div_euclid(1000)),
        ms.rem_euclid(1000)
    )
}
