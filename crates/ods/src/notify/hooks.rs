//! Webhook subscriptions as the admin API manages them: validation (URL, events,
//! secret), the secret generated when not given and sealed at rest, and the
//! `ods.test` message.

use std::time::Duration;

use crate::app::App;
use crate::db::{self, webhooks::WebhookRow};
use crate::error::{ApiError, ApiResult};
use crate::jobs;

use super::webhook::{Deliver, new_secret, secret_key};
use super::{EVENTS, message};

/// `events` checked and as stored (a JSON list, `["*"]` for every event).
pub fn check_events(events: &[String]) -> ApiResult<String> {
    if events.is_empty() {
        return Err(ApiError::bad_request(
            "invalid_events",
            "events lists at least one event name, or is [\"*\"]",
        ));
    }
    for e in events {
        if e != "*" && !EVENTS.contains(&e.as_str()) {
            return Err(ApiError::bad_request(
                "invalid_events",
                format!("{e:?} is not an event; known: * or {}", EVENTS.join(", ")),
            ));
        }
    }
    let mut list: Vec<&str> = events.iter().map(String::as_str).collect();
    list.sort_unstable();
    list.dedup();
    Ok(serde_json::to_string(&list).expect("a list of strings serializes"))
}

/// Refuses a URL that is not http(s), or whose host resolves to a refused address.
/// A host that does not resolve now is accepted: it is checked again before each send.
pub async fn check_url(app: &App, url: &str) -> ApiResult<()> {
    let bad = |m: String| ApiError::bad_request("invalid_url", m);
    if url.len() > 2048 {
        return Err(bad("a webhook URL is at most 2048 characters".into()));
    }
    let u = url::Url::parse(url).map_err(|e| bad(format!("{url:?} is not a URL: {e}")))?;
    if !matches!(u.scheme(), "http" | "https") {
        return Err(bad("a webhook URL is http:// or https://".into()));
    }
    if !u.username().is_empty() || u.password().is_some() {
        return Err(bad("a webhook URL carries no credentials".into()));
    }
    let Some(host) = u.host_str() else {
        return Err(bad("a webhook URL names a host".into()));
    };
    let port = u.port_or_known_default().unwrap_or(80);
    match super::addr::resolve_checked(host, port, app.config.webhooks.allow_link_local).await {
        Err(e) if e.contains("ODS_WEBHOOK_ALLOW_LINK_LOCAL") => {
            Err(ApiError::bad_request("address_not_allowed", e))
        }
        _ => Ok(()),
    }
}

/// The secret given (checked) or a new one.
pub fn secret_or_new(secret: Option<String>) -> ApiResult<String> {
    match secret {
        None => Ok(new_secret()),
        Some(s) if secret_key(&s).is_some() => Ok(s),
        Some(_) => Err(ApiError::bad_request(
            "invalid_secret",
            "a secret is whsec_ followed by 24 to 64 bytes in base64",
        )),
    }
}

/// Creates a webhook; the answer carries its secret (shown this once).
pub async fn create(
    app: &App,
    url: &str,
    events: &[String],
    secret: Option<String>,
    enabled: bool,
) -> ApiResult<(WebhookRow, String)> {
    let events = check_events(events)?;
    check_url(app, url).await?;
    let secret = secret_or_new(secret)?;
    let id =
        db::webhooks::insert(&app.db, url, &events, &app.sealer.seal(&secret), enabled).await?;
    let row = get(app, id).await?;
    Ok((row, secret))
}

pub async fn get(app: &App, id: i64) -> ApiResult<WebhookRow> {
    db::webhooks::get(&app.db, id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no webhook with id {id}")))
}

/// A change to a webhook; absent fields stay.
#[derive(Debug, Default)]
pub struct Patch {
    pub url: Option<String>,
    pub events: Option<Vec<String>>,
    pub secret: Option<String>,
    pub enabled: Option<bool>,
}

/// Applies `p`; with a new secret, the answer carries it.
pub async fn update(app: &App, id: i64, p: Patch) -> ApiResult<(WebhookRow, Option<String>)> {
    let mut row = get(app, id).await?;
    if let Some(events) = &p.events {
        row.events = check_events(events)?;
    }
    if let Some(url) = p.url {
        check_url(app, &url).await?;
        row.url = url;
    }
    let mut shown = None;
    if let Some(secret) = p.secret {
        let s = secret_or_new(Some(secret))?;
        row.secret_sealed = app.sealer.seal(&s);
        shown = Some(s);
    }
    if let Some(enabled) = p.enabled {
        row.enabled = enabled;
    }
    if !db::webhooks::update(&app.db, &row).await? {
        return Err(ApiError::not_found(format!("no webhook with id {id}")));
    }
    Ok((get(app, id).await?, shown))
}

/// Queues an `ods.test` message to the webhook (sent even when it is disabled or does
/// not subscribe to `ods.test`: the admin asked for it); the delivery's id.
pub async fn send_test(app: &App, id: i64) -> ApiResult<i64> {
    let hook = get(app, id).await?;
    let mut tx = app.db.begin().await?;
    let server = message::server_info(app, &mut tx).await?;
    let body = serde_json::to_string(&message::test(&server))
        .map_err(|e| ApiError::internal("serializing a test message", e))?;
    let msg_id = format!("msg_{}", crate::secrets::random_id());
    let delivery =
        db::webhooks::insert_delivery(&app.db, &mut tx, hook.id, None, "ods.test", &msg_id, &body)
            .await?;
    jobs::enqueue(&app.db, &mut tx, &Deliver { delivery }, Duration::ZERO).await?;
    tx.commit().await?;
    app.notify_wake.notify_one();
    Ok(delivery)
}
