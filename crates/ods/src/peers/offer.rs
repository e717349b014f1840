//! Firewalled mode: sends a peer the chunks of a package it is waiting for, since it
//! cannot fetch them from us. The receiver checks every chunk against the manifest.

use std::time::Duration;

use futures_util::StreamExt;
use reqwest::Method;
use serde::{Deserialize, Serialize};

use super::Manifest;
use super::client::{self, Link};
use crate::app::App;
use crate::db;
use crate::ingest::CHUNK_SIZE;
use crate::jobs::{Job, Run};

#[derive(Debug, Serialize, Deserialize)]
pub struct Offer {
    pub peer_id: i64,
    pub uuid: String,
}

impl Job for Offer {
    const KIND: &'static str = "offer";
    fn dedup_key(&self) -> Option<String> {
        Some(format!("offer:{}:{}", self.peer_id, self.uuid))
    }
}

impl Run<App> for Offer {
    async fn run(self, app: App) -> anyhow::Result<()> {
        let Some(peer) = db::peers::by_id(&app.db, self.peer_id).await? else {
            return Ok(());
        };
        let Some(link) = Link::of(&app, &peer)? else {
            return Ok(());
        };
        let pkg = {
            let mut conn = app.db.reader().acquire().await?;
            db::packages::by_uuid(&app.db, &mut conn, &self.uuid).await?
        };
        let Some(pkg) = pkg.filter(|p| p.status == crate::model::Status::Public) else {
            return Ok(());
        };
        let chunks = db::packages::chunks(&app.db, &pkg.sha256).await?;
        let manifest = Manifest {
            uuid: pkg.uuid.clone(),
            file_size: pkg.file_size,
            sha1: pkg.sha1.clone(),
            sha256: pkg.sha256.clone(),
            chunks,
        };
        let path = format!("/api/ods/packages/{}/offer", pkg.uuid);
        let resp = client::call(
            &app,
            &link,
            Method::POST,
            &path,
            Some(serde_json::to_vec(&manifest)?),
            Duration::from_secs(30),
        )
        .await?;
        let answer: serde_json::Value = resp.json().await?;
        let missing: Vec<u64> = answer["missing"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_u64())
            .collect();
        let size = pkg.file_size.max(0) as u64;
        for idx in missing {
            let offset = idx * CHUNK_SIZE as u64;
            if offset >= size {
                continue;
            }
            let len = (size - offset).min(CHUNK_SIZE as u64);
            let mut stream = app.store.read(&pkg.sha256, offset, len).await?;
            let mut buf = Vec::with_capacity(len as usize);
            while let Some(piece) = stream.next().await {
                buf.extend_from_slice(&piece?);
            }
            app.sync.rates.take(peer.id, peer.rate_limit, len).await;
            let path = format!("/api/ods/packages/{}/chunks/{idx}", pkg.uuid);
            client::call(
                &app,
                &link,
                Method::PUT,
                &path,
                Some(buf),
                Duration::from_secs(120),
            )
            .await?;
            app.sync.stats.served(&peer.iss, len);
        }
        Ok(())
    }
}
