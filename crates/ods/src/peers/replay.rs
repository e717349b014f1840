//! Replay protection that survives restarts and holds across processes: the nonce of
//! every accepted peer request is recorded in the database (`db::nonces`) until its
//! signature window closes. The in-memory cache (`mesh::sign::NonceCache`) answers
//! repeats to this process cheaply; the table is what another process, or this one
//! after a restart, relies on. Expired nonces are pruned here now and then and by the
//! hourly housekeeping.

use crate::app::App;
use crate::db;
use crate::error::{ApiError, ApiResult};
use crate::mesh::sign::{Refusal, nonce_window};
use crate::model::now_unix;

/// Records the nonce of an accepted signature header, or 401 if it was used already.
pub async fn record(app: &App, sig_header: &str) -> ApiResult<()> {
    let Some((nonce, expires)) = nonce_window(sig_header) else {
        return Err(refused(Refusal::Malformed));
    };
    if !db::nonces::first_use(&app.db, nonce, expires).await? {
        return Err(refused(Refusal::Replayed));
    }
    if rand::random::<u8>() < 4 {
        // About one accepted request in 64 also clears the expired nonces.
        if let Err(e) = db::nonces::prune(&app.db, now_unix()).await {
            tracing::warn!(%e, "pruning peer nonces");
        }
    }
    Ok(())
}

fn refused(r: Refusal) -> ApiError {
    ApiError::new(
        axum::http::StatusCode::UNAUTHORIZED,
        "peer_auth_failed",
        r.message(),
    )
}
