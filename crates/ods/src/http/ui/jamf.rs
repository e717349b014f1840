//! The Jamf tab: the Jamf Pro instances (add one, reconcile now), each with its drift
//! report and the state of every package record, over the same service calls as
//! `/api/admin/jamf`, and the warning that packages used during automated device
//! enrollment cannot sit behind download authentication.

use askama::Template;
use askama_web::WebTemplate;
use axum::Form;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::{Layout, Session, Tab, UiError, UiResult, flash_redirect};
use crate::app::App;
use crate::db::{self, jamf::DriftRow, jamf::InstanceFields, jamf::InstanceRow, jamf::RecordRow};
use crate::jamf as svc;
use crate::model::{Role, Stage, iso_seconds};

/// One instance with what the page shows of it.
struct Card {
    i: InstanceRow,
    last: String,
    drift: Vec<DriftRow>,
    records: Vec<RecordRow>,
}

#[derive(Template, WebTemplate)]
#[template(path = "jamf.html")]
struct JamfPage {
    layout: Layout,
    cards: Vec<Card>,
    download_auth: String,
    stages: [&'static str; 3],
}

/// `GET /jamf`.
pub async fn page(State(app): State<App>, s: Session) -> UiResult<impl IntoResponse> {
    s.require(Role::Viewer)?;
    let mut cards = Vec::new();
    for i in db::jamf::list(&app.db).await? {
        cards.push(Card {
            last: i
                .last_reconcile
                .map(iso_seconds)
                .unwrap_or_else(|| "never".into()),
            drift: db::jamf::drift(&app.db, i.id).await?,
            records: db::jamf::records_of_instance(&app.db, i.id).await?,
            i,
        });
    }
    Ok(JamfPage {
        layout: Layout::new(&s, Tab::Jamf, "Jamf Pro"),
        cards,
        download_auth: db::server::get(&app.db).await?.download_auth,
        stages: [
            Stage::Dev.as_str(),
            Stage::Test.as_str(),
            Stage::Prod.as_str(),
        ],
    })
}

#[derive(Deserialize)]
pub struct ReconcileForm {
    id: i64,
}

/// `POST /jamf/reconcile`: the Reconcile now button.
pub async fn reconcile(
    State(app): State<App>,
    s: Session,
    Form(f): Form<ReconcileForm>,
) -> UiResult<Response> {
    s.require(Role::Admin)?;
    let Some(i) = db::jamf::get(&app.db, f.id).await? else {
        return Err(UiError::new(
            StatusCode::NOT_FOUND,
            "That Jamf Pro instance is gone.",
        ));
    };
    svc::schedule_reconcile(&app, i.id).await?;
    Ok(flash_redirect(
        "/jamf",
        &format!("Checking every record of {} now.", i.name),
    ))
}

#[derive(Deserialize)]
pub struct AddForm {
    name: String,
    url: String,
    stage: String,
    auth: String,
    username: String,
    secret: String,
    hash_type: String,
    #[serde(default)]
    wait_all: Option<String>,
}

/// `POST /jamf/add`: the Add instance form.
pub async fn add(State(app): State<App>, s: Session, Form(f): Form<AddForm>) -> UiResult<Response> {
    s.require(Role::Admin)?;
    let bad = |m: &str| UiError::new(StatusCode::BAD_REQUEST, m.to_string());
    let url = f.url.trim();
    if !(url.starts_with("https://") || url.starts_with("http://"))
        || url.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(bad(
            "The URL must start with https:// or http:// and have no spaces.",
        ));
    }
    let stage = Stage::parse(&f.stage).ok_or_else(|| bad("Choose Dev, Test or Prod."))?;
    if !["basic", "oauth"].contains(&f.auth.as_str()) {
        return Err(bad("Choose a user account or an API client."));
    }
    if f.username.is_empty() || f.secret.is_empty() {
        return Err(bad(
            "Fill in the user (or client id) and the password (or client secret).",
        ));
    }
    if !svc::HASH_TYPES.contains(&f.hash_type.as_str()) {
        return Err(bad("Choose SHA_512, MD5 or SHA3_512."));
    }
    let name = match f.name.trim() {
        "" => url::Url::parse(url)
            .ok()
            .and_then(|u| u.host_str().map(str::to_string))
            .unwrap_or_else(|| "Jamf Pro".into()),
        n if n.chars().count() <= 255 && !n.chars().any(char::is_control) => n.to_string(),
        _ => return Err(bad("The name must be at most 255 printable characters.")),
    };
    let fields = InstanceFields {
        name,
        url: url.to_string(),
        auth: f.auth.clone(),
        username: Some(f.username.clone()),
        secret_sealed: Some(app.sealer.seal(&f.secret)),
        stage,
        hash_type: f.hash_type.clone(),
        wait_all: f.wait_all.is_some(),
        package_name: "{filename}".into(),
        delete_records: false,
    };
    let i = svc::create(&app, &fields)
        .await
        .map_err(|e| crate::error::ApiError::internal("adding the Jamf Pro instance", e))?;
    Ok(flash_redirect("/jamf", &format!("Added {}.", i.name)))
}
