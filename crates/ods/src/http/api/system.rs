//! `GET /api/admin/system`: machine figures.

use axum::extract::State;
use serde_json::Value;

use crate::app::App;
use crate::error::ApiResult;
use crate::http::auth::Principal;
use crate::model::Role;

pub async fn get_system(State(app): State<App>, who: Principal) -> ApiResult<axum::Json<Value>> {
    who.require(Role::Viewer)?;
    let dir = app.config.data_dir.clone();
    let v = tokio::task::spawn_blocking(move || crate::system::snapshot(&dir))
        .await
        .map_err(|e| crate::error::ApiError::internal("reading system figures", e))?;
    Ok(axum::Json(v))
}
