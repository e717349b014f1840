//! The peers service: the links to registered servers and what travels over them
//! without touching the catalog's rules. Signed outgoing calls (`client`), link health
//! and peer events, the messages both sides exchange (`CatalogPage`, `Manifest`), the
//! jobs that push to a peer (`notify`, `offer`), and moving a package's bytes from
//! peers into place (`transfer`, and many small ones at once: `bundle`). The catalog decides what to hold; this moves it.

pub mod bundle;
pub mod client;
mod inorder;
pub mod manifests;
pub mod notify;
pub mod offer;
pub mod replay;
mod spans;
pub mod transfer;

use serde::{Deserialize, Serialize};

use crate::app::App;
use crate::db::{self, events::NewEvent, peers::PeerRow};
use crate::model::Identity;

/// One page of a server's catalog (`GET /api/ods/catalog`, and what a firewalled
/// server pushes).
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CatalogPage {
    pub identity: Identity,
    pub entries: Vec<db::catalog::Record>,
    pub cursor: i64,
    pub more: bool,
}

/// What a peer says about a package it holds (`GET /api/ods/packages/<uuid>/manifest`).
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Manifest {
    pub uuid: String,
    pub file_size: i64,
    pub sha1: String,
    pub sha256: String,
    pub chunks: Vec<String>,
}

/// This server's identity as it tells its peers.
pub async fn own_identity(app: &App) -> anyhow::Result<Identity> {
    let s = db::server::get(&app.db).await?;
    Ok(Identity {
        iss: s.iss,
        name: s.name,
        url: s.url,
        stage: s.stage.as_str().into(),
        firewalled: s.firewalled,
    })
}

/// Records an event about a peer (registration, reachability).
pub async fn event(app: &App, kind: &str, peer: &PeerRow, message: String) -> sqlx::Result<()> {
    let mut conn = app.db.writer().acquire().await?;
    db::events::record(
        &app.db,
        &mut conn,
        NewEvent {
            kind,
            peer_iss: Some(&peer.iss),
            message,
            ..Default::default()
        },
    )
    .await
}

/// Records how a call to a peer went. `ods.unreachable` is raised once the link has
/// been failing for `ODS_UNREACHABLE_AFTER_SECS` since the last good contact (calls
/// keep failing on the anti-entropy timer, so this is noticed within one interval),
/// and `ods.recovered` at the next good contact after that, never for a blip.
pub async fn contact(app: &App, peer: &PeerRow, error: Option<String>) {
    if let Err(e) = db::peers::record_contact(&app.db, peer.id, error.as_deref()).await {
        tracing::warn!(%e, "recording peer contact");
        return;
    }
    let ev = match &error {
        Some(e) => {
            let since = peer.last_contact.unwrap_or(peer.registered_on);
            let down = crate::model::now_unix() - since;
            if down < app.config.unreachable_after_secs as i64 {
                return;
            }
            match db::rollouts::mark_outage(&app.db, peer.id).await {
                Ok(true) => (
                    "ods.unreachable",
                    format!("{} cannot be reached (for {down} s): {e}", peer.name),
                ),
                Ok(false) => return,
                Err(e) => {
                    tracing::warn!(%e, "recording a peer outage");
                    return;
                }
            }
        }
        None => match db::rollouts::clear_outage(&app.db, peer.id).await {
            Ok(true) => (
                "ods.recovered",
                format!("{} can be reached again", peer.name),
            ),
            Ok(false) => return,
            Err(e) => {
                tracing::warn!(%e, "recording a peer outage");
                return;
            }
        },
    };
    if let Err(e) = event(app, ev.0, peer, ev.1).await {
        tracing::warn!(%e, "recording a peer event");
    }
}

/// Keeps what a peer says about itself (name, URL, stage, mode) up to date.
pub async fn refresh_identity(app: &App, peer: &PeerRow, id: &Identity) -> sqlx::Result<()> {
    if id.name != peer.name
        || id.url != peer.url
        || id.stage != peer.stage
        || id.firewalled != peer.firewalled
    {
        db::peers::update_identity(&app.db, id).await?;
    }
    Ok(())
}
