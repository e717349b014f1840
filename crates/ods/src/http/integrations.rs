//! `/api/integrations/...`: what other systems call. The Jamf Pro webhook receiver
//! (JAMF.md §4) only schedules a reconcile of every instance, whatever the event says:
//! no event is about packages, so unknown, duplicate and out-of-order events are all
//! fine (they collapse into the queued reconcile, which reads the current state). It is
//! off until `ODS_JAMF_WEBHOOK_SECRET` is set; Jamf Pro sends the secret as the Basic
//! password (any user name) or in `X-ODS-Webhook-Token`.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::Serialize;
use serde_json::Value;
use subtle::ConstantTimeEq;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::App;
use crate::error::{ApiError, ApiResult};
use crate::http::auth::basic_credentials;
use crate::http::docs::{BadRequest, Internal, NotFound, TooLarge};

pub fn routes() -> OpenApiRouter<App> {
    OpenApiRouter::new().routes(routes!(jamf_webhook))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookAccepted {
    /// Jamf Pro instances whose reconcile is now queued.
    pub reconciles_scheduled: usize,
}

fn authorized(parts: &Parts, secret: &str) -> Result<bool, ApiError> {
    if let Some(v) = parts.headers.get("x-ods-webhook-token") {
        return Ok(bool::from(v.as_bytes().ct_eq(secret.as_bytes())));
    }
    match basic_credentials(parts) {
        Some(creds) => {
            let (_user, pass) = creds?;
            Ok(bool::from(pass.as_bytes().ct_eq(secret.as_bytes())))
        }
        None => Ok(false),
    }
}

#[utoipa::path(
    post,
    path = "/jamf/webhook",
    tag = "integrations",
    operation_id = "jamf_webhook",
    description = "Receives a Jamf Pro webhook (`{\"webhook\": {...}, \"event\": {...}}`, any event) and schedules a reconcile of every Jamf Pro instance. Off (404) unless ODS_JAMF_WEBHOOK_SECRET is set.",
    security(("basicAuth" = []), ("jamfWebhookToken" = [])),
    request_body(content = Object, description = "The webhook's JSON object."),
    responses(
        (status = 202, description = "Accepted; reconciles queued.", body = WebhookAccepted),
        BadRequest,
        (status = 401, description = "No or wrong secret.", body = crate::error::ErrorBody),
        NotFound,
        TooLarge,
        Internal
    )
)]
async fn jamf_webhook(
    State(app): State<App>,
    parts: Parts,
    body: Bytes,
) -> ApiResult<(StatusCode, axum::Json<WebhookAccepted>)> {
    let Some(secret) = &app.config.jamf.webhook_secret else {
        return Err(ApiError::not_found(
            "the Jamf Pro webhook receiver is off (set ODS_JAMF_WEBHOOK_SECRET)",
        ));
    };
    if !authorized(&parts, &secret.0)? {
        return Err(ApiError::unauthorized(
            "send the webhook secret as the Basic password or in X-ODS-Webhook-Token",
        ));
    }
    match serde_json::from_slice::<Value>(&body) {
        Ok(Value::Object(o)) => {
            let event = o
                .get("webhook")
                .and_then(|w| w.get("webhookEvent"))
                .and_then(Value::as_str)
                .unwrap_or("unknown");
            tracing::info!(event, "Jamf Pro webhook received");
        }
        _ => {
            return Err(ApiError::bad_request(
                "invalid_json",
                "the body must be a JSON object",
            ));
        }
    }
    let n = crate::jamf::webhook_received(&app).await?;
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(WebhookAccepted {
            reconciles_scheduled: n,
        }),
    ))
}
