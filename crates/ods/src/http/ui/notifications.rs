//! The Notifications tab (admins): webhooks with their recent deliveries and a test
//! button, the SMTP settings, email subscriptions and a test message. Every change
//! goes through the same service or admin-API handler as `/api/admin/webhooks` and
//! `/api/admin/email`, so the rules (refused addresses, sealed secrets, validation)
//! are the API's.

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::{Form, Json};
use serde::Deserialize;

use super::{Layout, Session, Tab, UiResult, flash_redirect};
use crate::app::App;
use crate::db;
use crate::error::ApiError;
use crate::http::JsonBody;
use crate::http::api::email::{
    self, EmailSettingsUpdate, EmailTest, NewEmailSubscription, Security,
};
use crate::model::Role;
use crate::notify::{EVENTS, hooks};

struct DeliveryView {
    event_type: String,
    state: String,
    attempts: usize,
    last: String,
    created: String,
}

struct HookView {
    id: i64,
    url: String,
    events: String,
    enabled: bool,
    deliveries: Vec<DeliveryView>,
}

struct SubView {
    id: i64,
    recipients: String,
    events: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "notifications.html")]
struct Page {
    layout: Layout,
    hooks: Vec<HookView>,
    mail: email::EmailSettings,
    subs: Vec<SubView>,
    events: String,
}

fn list(json: &str) -> String {
    serde_json::from_str::<Vec<String>>(json)
        .unwrap_or_default()
        .join(", ")
}

/// `GET /notifications`.
pub async fn page(State(app): State<App>, s: Session) -> UiResult<impl IntoResponse> {
    s.require(Role::Admin)?;
    let mut views = Vec::new();
    for h in db::webhooks::list(&app.db).await? {
        let ds = db::webhooks::deliveries(&app.db, h.id, 10).await?;
        let ids: Vec<i64> = ds.iter().map(|d| d.id).collect();
        let attempts = db::webhooks::attempts(&app.db, &ids).await?;
        let deliveries = ds
            .into_iter()
            .map(|d| {
                let mine: Vec<_> = attempts.iter().filter(|a| a.delivery_id == d.id).collect();
                let last = match mine.last() {
                    None => "not tried yet".to_string(),
                    Some(a) => match (a.status_code, &a.error) {
                        (Some(c), None) => format!("{c} in {} ms", a.duration_ms),
                        (_, Some(e)) => e.clone(),
                        (None, None) => String::new(),
                    },
                };
                DeliveryView {
                    event_type: d.event_type,
                    state: d.state,
                    attempts: mine.len(),
                    last,
                    created: crate::model::iso_seconds(d.created),
                }
            })
            .collect();
        views.push(HookView {
            id: h.id,
            url: h.url.clone(),
            events: list(&h.events),
            enabled: h.enabled,
            deliveries,
        });
    }
    let Json(mail) = email::get_email(State(app.clone()), s.who.clone()).await?;
    let subs = db::email::subscriptions(&app.db)
        .await?
        .into_iter()
        .map(|x| SubView {
            id: x.id,
            recipients: list(&x.recipients),
            events: list(&x.events),
        })
        .collect();
    Ok(Page {
        layout: Layout::new(&s, Tab::Notifications, "Notifications"),
        hooks: views,
        mail,
        subs,
        events: EVENTS.join(", "),
    })
}

/// Names separated by commas or spaces.
fn names(s: &str) -> Vec<String> {
    s.split([',', ' ', '\n'])
        .map(str::trim)
        .filter(|x| !x.is_empty())
        .map(str::to_string)
        .collect()
}

#[derive(Deserialize)]
pub struct HookForm {
    url: String,
    events: String,
    #[serde(default)]
    secret: String,
}

/// `POST /notifications/webhook`: creates a webhook; the secret is shown once.
pub async fn create_hook(
    State(app): State<App>,
    s: Session,
    Form(f): Form<HookForm>,
) -> UiResult<Response> {
    s.require(Role::Admin)?;
    let secret = Some(f.secret.trim().to_string()).filter(|x| !x.is_empty());
    let (_, secret) = hooks::create(&app, f.url.trim(), &names(&f.events), secret, true).await?;
    Ok(flash_redirect(
        "/notifications",
        &format!("Webhook created. Its secret, shown only now: {secret}"),
    ))
}

/// `POST /notifications/{id}/test`.
pub async fn test_hook(
    State(app): State<App>,
    s: Session,
    Path(id): Path<i64>,
) -> UiResult<Response> {
    s.require(Role::Admin)?;
    hooks::send_test(&app, id).await?;
    Ok(flash_redirect("/notifications", "Test message queued."))
}

/// `POST /notifications/{id}/delete`.
pub async fn delete_hook(
    State(app): State<App>,
    s: Session,
    Path(id): Path<i64>,
) -> UiResult<Response> {
    s.require(Role::Admin)?;
    if !db::webhooks::delete(&app.db, id).await? {
        return Err(ApiError::not_found(format!("no webhook with id {id}")).into());
    }
    Ok(flash_redirect("/notifications", "Webhook deleted."))
}

#[derive(Deserialize)]
pub struct EmailForm {
    host: String,
    port: String,
    security: String,
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    from: String,
}

/// `POST /notifications/email`: the SMTP settings (an empty password keeps the stored one).
pub async fn save_email(
    State(app): State<App>,
    s: Session,
    Form(f): Form<EmailForm>,
) -> UiResult<Response> {
    let port = f.port.trim().parse().map_err(|_| {
        ApiError::bad_request("invalid_email_settings", "port is a number from 1 to 65535")
    })?;
    let security = match f.security.as_str() {
        "none" => Security::None,
        "starttls" => Security::Starttls,
        "tls" => Security::Tls,
        _ => {
            return Err(ApiError::bad_request(
                "invalid_email_settings",
                "security is none, starttls or tls",
            )
            .into());
        }
    };
    let body = EmailSettingsUpdate {
        host: f.host,
        port,
        security,
        username: Some(f.username).filter(|u| !u.is_empty()),
        password: Some(f.password).filter(|p| !p.is_empty()),
        from: f.from,
    };
    let _ = email::put_email(State(app), s.who.clone(), JsonBody(body)).await?;
    Ok(flash_redirect("/notifications", "Email settings saved."))
}

#[derive(Deserialize)]
pub struct SubscribeForm {
    recipients: String,
    events: String,
}

/// `POST /notifications/subscribe`.
pub async fn subscribe(
    State(app): State<App>,
    s: Session,
    Form(f): Form<SubscribeForm>,
) -> UiResult<Response> {
    let body = NewEmailSubscription {
        recipients: names(&f.recipients),
        events: names(&f.events),
    };
    let _ = email::create_subscription(State(app), s.who.clone(), JsonBody(body)).await?;
    Ok(flash_redirect("/notifications", "Subscription added."))
}

/// `POST /notifications/{id}/unsubscribe`.
pub async fn unsubscribe(
    State(app): State<App>,
    s: Session,
    Path(id): Path<i64>,
) -> UiResult<Response> {
    email::delete_subscription(State(app), s.who.clone(), Path(id.to_string())).await?;
    Ok(flash_redirect("/notifications", "Subscription removed."))
}

#[derive(Deserialize)]
pub struct MailTestForm {
    to: String,
}

/// `POST /notifications/mailtest`.
pub async fn mail_test(
    State(app): State<App>,
    s: Session,
    Form(f): Form<MailTestForm>,
) -> UiResult<Response> {
    let _ = email::test_email(
        State(app),
        s.who.clone(),
        JsonBody(EmailTest {
            to: f.to.trim().to_string(),
        }),
    )
    .await?;
    Ok(flash_redirect("/notifications", "Test email queued."))
}
