//! Registration (DESIGN.md §4.1). A registers with B given B's URL, ISS and key: A sends
//! its identity to B signed with B's key; B makes a fresh pair secret for the link and
//! answers with it and its own identity; both store the other. Every later call uses
//! the pair secret. Either both sides keep the link or neither does.

use std::time::Duration;

use base64::Engine;
use reqwest::Method;
use serde::{Deserialize, Serialize};

use crate::app::App;
use crate::db;
use crate::error::ApiError;
use crate::jobs;
use crate::model::Identity;
use crate::peers::client::{self, PeerError};
use crate::peers::{self, own_identity};

/// B's answer to a registration: its identity and the new link's pair secret.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Welcome {
    #[serde(flatten)]
    pub identity: Identity,
    pub pair_secret: String,
}

pub fn new_pair_secret() -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(crate::secrets::random_bytes::<32>())
}

/// The admin side: register this server with the one at `url`.
pub async fn register_with(
    app: &App,
    url: &str,
    iss: &str,
    key: &str,
) -> Result<db::peers::PeerRow, ApiError> {
    let url = url.trim().trim_end_matches('/').to_string();
    let iss = iss.trim().to_ascii_lowercase().replace('-', "");
    let me = own_identity(app).await?;
    if iss.len() != 32 || !iss.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ApiError::bad_request(
            "invalid_iss",
            "iss_id must be the 32 hex characters shown on the other server's Admin tab",
        ));
    }
    if iss == me.iss {
        return Err(ApiError::bad_request(
            "self_registration",
            "that ISS ID is this server's own: register with another server",
        ));
    }
    if me.url.as_deref().map(|u| u.trim_end_matches('/')) == Some(url.as_str()) {
        return Err(ApiError::bad_request(
            "self_registration",
            "that URL is this server's own URL",
        ));
    }
    if !me.firewalled && me.url.is_none() {
        return Err(ApiError::bad_request(
            "url_not_set",
            "set this server's URL first (Admin tab or POST /api/admin/about), or enable firewalled mode",
        ));
    }
    if let Some(existing) = db::peers::by_iss(&app.db, &iss).await? {
        return Err(ApiError::conflict(
            "already_registered",
            format!("already registered with {} ({})", existing.name, iss),
        ));
    }
    client::check_url(&url, app.config.allow_insecure_peers)
        .map_err(|e| ApiError::bad_request("insecure_url", e.to_string()))?;
    let body =
        serde_json::to_vec(&me).map_err(|e| ApiError::internal("encoding the registration", e))?;
    let resp = client::send(
        app,
        &url,
        &iss,
        key.trim().as_bytes(),
        Method::POST,
        "/api/ods/register",
        Some(body),
        Duration::from_secs(20),
    )
    .await
    .map_err(|e| match e {
        PeerError::Unreachable(m) => {
            ApiError::bad_request("peer_unreachable", format!("cannot reach the server: {m}"))
        }
        PeerError::Refused {
            status: 401,
            message,
        } => ApiError::bad_request(
            "registration_refused",
            format!(
                "the server refused the registration: {message} (check the ISS ID and the key)"
            ),
        ),
        PeerError::Refused { status: 409, .. } => ApiError::conflict(
            "already_registered",
            "the other server has a link with this server already: unregister it there first",
        ),
        PeerError::Refused { status: 404, .. } => ApiError::bad_request(
            "not_an_ods",
            format!("{url} does not look like an ODS (no peer API)"),
        ),
        other => ApiError::bad_request("registration_failed", other.to_string()),
    })?;
    let welcome: Welcome = resp.json().await.map_err(|e| {
        ApiError::bad_request(
            "registration_failed",
            format!("the server's answer is not an ODS registration: {e}"),
        )
    })?;
    if welcome.identity.iss != iss {
        return Err(ApiError::bad_request(
            "registration_failed",
            "the server answered with another ISS ID",
        ));
    }
    let sealed = app.sealer.seal(&welcome.pair_secret);
    let stored = async {
        let mut tx = app.db.begin().await?;
        db::peers::upsert(&app.db, &mut tx, &welcome.identity, &sealed).await?;
        tx.commit().await
    }
    .await;
    if let Err(e) = stored {
        // The other side keeps a link we could not record: take it back, so the
        // registration happened on neither side.
        let undo = client::send(
            app,
            &url,
            &iss,
            welcome.pair_secret.as_bytes(),
            Method::POST,
            "/api/ods/unregister",
            Some(b"{}".to_vec()),
            Duration::from_secs(10),
        )
        .await;
        if let Err(u) = undo {
            tracing::error!(error = %u, "could not withdraw a half-made registration; unregister on the other server");
        }
        return Err(e.into());
    }
    let peer = db::peers::by_iss(&app.db, &iss)
        .await?
        .ok_or_else(|| ApiError::internal("registering", "peer row vanished"))?;
    peers::event(
        app,
        "ods.registered",
        &peer,
        format!("registered with {} at {url}", peer.name),
    )
    .await?;
    // Catch up at once both ways.
    let mut conn = app.db.writer().acquire().await?;
    jobs::enqueue(
        &app.db,
        &mut conn,
        &super::pull::PullPeer {
            peer_id: peer.id,
            full: true,
        },
        Duration::ZERO,
    )
    .await?;
    app.jobs_wake.notify_one();
    Ok(peer)
}

/// The admin side of unregistering: tell the peer (best effort), then forget it.
pub async fn unregister(app: &App, peer: &db::peers::PeerRow) -> Result<bool, ApiError> {
    let told = match client::Link::of(app, peer)? {
        Some(link) => client::call(
            app,
            &link,
            Method::POST,
            "/api/ods/unregister",
            Some(b"{}".to_vec()),
            Duration::from_secs(10),
        )
        .await
        .is_ok(),
        None => false,
    };
    db::peers::delete(&app.db, peer.id).await?;
    peers::event(
        app,
        "ods.unregistered",
        peer,
        format!("unregistered {}", peer.name),
    )
    .await?;
    Ok(told)
}
