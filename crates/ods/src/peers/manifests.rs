//! Manifests of many packages in one request (issue 11): before a package larger than
//! one chunk is fetched, each source is asked for its manifest. The first such ask to a
//! peer names up to `MAX_COUNT` packages this server is waiting for
//! (`POST /api/ods/packages/manifests`), and the answers for the others wait in a
//! short-lived cache for their own transfers, which then cost no round trip. A manifest
//! is only a claim: every chunk is still checked against the record's hashes, and a
//! cached one is used once. A peer without the route is asked one package at a time.

use std::time::Duration;

use reqwest::Method;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::Manifest;
use super::client::{self, Link};
use crate::app::App;
use crate::db;

/// Most packages one manifests request may name.
pub const MAX_COUNT: usize = 64;
/// `POST /api/ods/packages/manifests`: the packages whose manifests are wanted.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ManifestsRequest {
    /// 1 to 64 package uuids.
    pub uuids: Vec<String>,
}

/// The manifests of those packages asked for that are Public on the peer (the others
/// are left out).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ManifestsAnswer {
    pub manifests: Vec<Manifest>,
}

/// What `link` says of package `uuid` (`None`: it does not hold it Public, or cannot
/// be asked). Fetched ahead when it can be, with the manifests of other packages this
/// server waits for.
pub async fn manifest(app: &App, link: &Link, uuid: &str) -> Option<Manifest> {
    let ahead = &app.sync.manifests_ahead;
    let key = (link.id, uuid.to_string());
    if let Some(json) = ahead.remove(&key) {
        return serde_json::from_slice(&json).ok();
    }
    // Transfers starting together: the first asks for all, the others find theirs.
    let asking = app
        .sync
        .manifests_asking
        .get_with(link.id, Default::default);
    let _turn = asking.lock().await;
    if let Some(json) = ahead.remove(&key) {
        return serde_json::from_slice(&json).ok();
    }
    let mut uuids = vec![uuid.to_string()];
    match db::packages::arriving_chunked(&app.db, crate::ingest::CHUNK_SIZE as i64, MAX_COUNT).await
    {
        Ok(others) => uuids.extend(
            others
                .into_iter()
                .filter(|u| u != uuid && !ahead.contains_key(&(link.id, u.clone())))
                .take(MAX_COUNT - 1),
        ),
        Err(e) => tracing::warn!(error = %e, "listing the packages to ask manifests for"),
    }
    let body = serde_json::to_vec(&ManifestsRequest { uuids }).ok()?;
    let timeout = Duration::from_secs(20);
    match client::call(
        app,
        link,
        Method::POST,
        "/api/ods/packages/manifests",
        Some(body),
        timeout,
    )
    .await
    {
        Ok(resp) => {
            let answer = resp.json::<ManifestsAnswer>().await.ok()?;
            let mut mine = None;
            for m in answer.manifests {
                if m.uuid == uuid {
                    mine = Some(m);
                } else if let Ok(json) = serde_json::to_vec(&m) {
                    ahead.insert((link.id, m.uuid.clone()), json);
                }
            }
            mine
        }
        // A peer from before the route: one package at a time.
        Err(client::PeerError::Refused {
            status: 404 | 405, ..
        }) => one(app, link, uuid).await,
        Err(_) => None,
    }
}

/// The manifest of one package (`GET /api/ods/packages/<uuid>/manifest`).
async fn one(app: &App, link: &Link, uuid: &str) -> Option<Manifest> {
    let path = format!("/api/ods/packages/{uuid}/manifest");
    let resp = client::call(app, link, Method::GET, &path, None, Duration::from_secs(20))
        .await
        .ok()?;
    resp.json::<Manifest>().await.ok()
}
