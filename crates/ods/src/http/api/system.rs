//! `GET /api/admin/system`: machine figures.

use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::app::App;
use crate::error::{ApiError, ApiResult};
use crate::http::auth::Principal;
use crate::http::docs::AdminErrors;
use crate::model::Role;

/// The seed's system figures: bytes, seconds, and their `_hr` renderings.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SystemInfo {
    pub cpu_count: u64,
    pub disk_free: u64,
    #[schema(example = "56.2 GB")]
    pub disk_free_hr: String,
    pub disk_total: u64,
    pub disk_total_hr: String,
    pub disk_used: u64,
    pub disk_used_hr: String,
    pub mem_available: u64,
    pub mem_available_hr: String,
    pub mem_total: u64,
    pub mem_total_hr: String,
    pub mem_used: u64,
    pub mem_used_hr: String,
    pub network_bytes_received: u64,
    pub network_bytes_received_hr: String,
    pub network_bytes_sent: u64,
    pub network_bytes_sent_hr: String,
    /// Seconds since the machine started.
    pub uptime: u64,
    /// Uptime as Python's timedelta prints it, e.g. `8:33:26`.
    #[schema(example = "8:33:26")]
    pub uptime_hr: String,
}

#[utoipa::path(
    get,
    path = "/system",
    tag = "system",
    description = "CPU, memory, disk (of the data directory), network and uptime. Needs the `viewer` role.",
    responses((status = 200, description = "The figures.", body = SystemInfo), AdminErrors)
)]
pub async fn get_system(
    State(app): State<App>,
    who: Principal,
) -> ApiResult<axum::Json<SystemInfo>> {
    who.require(Role::Viewer)?;
    Ok(axum::Json(read(&app).await?))
}

/// The figures now (for the API and the Admin tab).
pub(crate) async fn read(app: &App) -> ApiResult<SystemInfo> {
    let dir = app.config.data_dir.clone();
    let v = tokio::task::spawn_blocking(move || crate::system::snapshot(&dir))
        .await
        .map_err(|e| ApiError::internal("reading system figures", e))?;
    // `system::snapshot` gives the figures as JSON; this checks them against the type.
    serde_json::from_value(v).map_err(|e| ApiError::internal("reading system figures", e))
}
