//! `POST /api/admin/register`, `GET /api/admin/registered_ods`,
//! `DELETE /api/admin/registered_ods/<id>`: the ODS network as the admin sees it.
//! The registration protocol between servers belongs to the sync module; until it is
//! built, registration validates its input and answers 501.

use axum::extract::{Path, State};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::app::App;
use crate::auth::{Principal, Role};
use crate::db;
use crate::error::{ApiError, ApiResult};
use crate::http::JsonBody;
use crate::model::iso_seconds;

#[derive(Debug, Deserialize)]
pub struct RegisterRequest {
    url: Option<String>,
    iss_id: Option<String>,
    key: Option<String>,
}

pub async fn register(
    State(_app): State<App>,
    who: Principal,
    JsonBody(body): JsonBody<RegisterRequest>,
) -> ApiResult<axum::Json<Value>> {
    who.require(Role::Admin)?;
    let missing: Vec<&str> = [
        ("url", &body.url),
        ("iss_id", &body.iss_id),
        ("key", &body.key),
    ]
    .into_iter()
    .filter(|(_, v)| v.as_deref().is_none_or(|s| s.trim().is_empty()))
    .map(|(n, _)| n)
    .collect();
    if !missing.is_empty() {
        return Err(ApiError::bad_request(
            "missing_field",
            format!("register needs {}", missing.join(", ")),
        ));
    }
    Err(ApiError::new(
        axum::http::StatusCode::NOT_IMPLEMENTED,
        "not_implemented",
        "registration with other servers is not available in this version of ODS",
    ))
}

pub async fn list_registered(
    State(app): State<App>,
    who: Principal,
) -> ApiResult<axum::Json<Value>> {
    who.require(Role::Viewer)?;
    let items: Vec<Value> = db::peers::list(&app.db)
        .await?
        .into_iter()
        .map(|p| {
            json!({
                "firewalled_mode": p.firewalled,
                "id": p.id,
                "iss": p.iss,
                "name": p.name,
                "registered_on": iso_seconds(p.registered_on),
                "registered_on_ts": p.registered_on,
                "stage": p.stage,
                "url": p.url,
            })
        })
        .collect();
    Ok(axum::Json(json!({ "items": items })))
}

pub async fn unregister(
    State(app): State<App>,
    who: Principal,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<Value>> {
    who.require(Role::Admin)?;
    let id = super::path_id(&id)?;
    if !db::peers::list(&app.db).await?.iter().any(|p| p.id == id) {
        return Err(ApiError::not_found(format!(
            "no registered ODS with id {id}"
        )));
    }
    Err(ApiError::new(
        axum::http::StatusCode::NOT_IMPLEMENTED,
        "not_implemented",
        "unregistering is not available in this version of ODS",
    ))
}
