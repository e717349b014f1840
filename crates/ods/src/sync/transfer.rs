//! Pulling a package's bytes (DESIGN.md §4.5): ask every callable peer for the
//! manifest, fetch the missing 1 MiB chunks several at a time spread over every peer
//! that has it, check each chunk's SHA-1 (a bad chunk is fetched again from another
//! peer), record verified chunks so a restart resumes, then check the whole file's
//! SHA-256 and SHA-1 before the package turns Public.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use reqwest::Method;
use serde::{Deserialize, Serialize};
use sha1::Sha1;
use sha2::{Digest, Sha256};

use super::client::{self, Link, PeerError};
use crate::app::App;
use crate::db::events::{self, NewEvent};
use crate::db::{self, catalog, packages};
use crate::ingest::CHUNK_SIZE;
use crate::model::Status;
use crate::storage::PartialBlob;

/// What a peer says about a package it holds (`GET /api/ods/packages/<uuid>/manifest`).
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Manifest {
    pub uuid: String,
    pub file_size: i64,
    pub sha1: String,
    pub sha256: String,
    pub chunks: Vec<String>,
}

const PARALLEL_CHUNKS: usize = 8;
const RECORD_EVERY: usize = 16;

fn chunk_count(size: i64) -> usize {
    (size.max(0) as usize).div_ceil(CHUNK_SIZE)
}

fn in_flight() -> &'static Mutex<HashSet<String>> {
    static SET: std::sync::OnceLock<Mutex<HashSet<String>>> = std::sync::OnceLock::new();
    SET.get_or_init(Default::default)
}

/// Only one transfer per package in this process.
struct Claim(String);
impl Claim {
    fn take(uuid: &str) -> Option<Claim> {
        in_flight()
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(uuid.to_string())
            .then(|| Claim(uuid.to_string()))
    }
}
impl Drop for Claim {
    fn drop(&mut self) {
        in_flight()
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.0);
    }
}

async fn set_reason(app: &App, uuid: &str, reason: Option<&str>) -> anyhow::Result<()> {
    let mut conn = app.db.writer().acquire().await?;
    packages::set_status(&app.db, &mut conn, uuid, Status::Downloading, reason).await?;
    Ok(())
}

pub async fn run(app: &App, uuid: &str) -> anyhow::Result<()> {
    let Some(_claim) = Claim::take(uuid) else {
        return Ok(());
    };
    let _permit = app.sync.transfers.acquire().await?;
    let db = &app.db;
    let (pkg, rec) = {
        let mut conn = db.writer().acquire().await?;
        let pkg = packages::by_uuid(db, &mut conn, uuid).await?;
        let rec = catalog::get(db, &mut conn, uuid).await?;
        (pkg, rec)
    };
    let (Some(pkg), Some(rec)) = (pkg, rec) else {
        app.store.discard_partial(uuid).await?;
        return Ok(());
    };
    if pkg.status == Status::Public || rec.deleted {
        return Ok(());
    }

    // The same content is already here under another name: nothing to fetch.
    let local_content = {
        let mut conn = db.reader().acquire().await?;
        packages::has_blob(db, &mut conn, &rec.sha256).await?
    };
    if local_content && app.store.size(&rec.sha256).await? == Some(rec.file_size.max(0) as u64) {
        let chunks = packages::chunks(db, &rec.sha256).await?;
        return finish(app, &rec, &chunks, Instant::now()).await;
    }

    // Sources: every callable peer whose manifest matches the record.
    let mut links = Vec::new();
    for p in db::peers::list(db).await? {
        if let Some(l) = Link::of(app, &p)? {
            links.push(l);
        }
    }
    let path = format!("/api/ods/packages/{uuid}/manifest");
    let answers = futures_util::future::join_all(links.iter().map(|l| {
        let path = path.clone();
        async move {
            let r = client::call(app, l, Method::GET, &path, None, Duration::from_secs(20)).await;
            match r {
                Ok(resp) => resp.json::<Manifest>().await.ok().map(|m| (l.clone(), m)),
                Err(_) => None,
            }
        }
    }))
    .await;
    let n = chunk_count(rec.file_size);
    let sources: Vec<(Link, Manifest)> = answers
        .into_iter()
        .flatten()
        .filter(|(_, m)| {
            m.sha256 == rec.sha256 && m.file_size == rec.file_size && m.chunks.len() == n
        })
        .collect();
    // Chunk hashes: from a source, or from a manifest a firewalled peer pushed to us.
    let chunk_list = match sources.first() {
        Some((_, m)) => m.chunks.clone(),
        None => packages::chunks(db, &rec.sha256).await?,
    };
    if chunk_list.len() != n {
        set_reason(app, uuid, Some("waiting for a peer that has it")).await?;
        anyhow::bail!("no reachable peer has {} yet", rec.filename);
    }
    let chunks = Arc::new(chunk_list);
    let links: Arc<Vec<Link>> = Arc::new(sources.into_iter().map(|(l, _)| l).collect());
    let partial = app.store.partial(uuid, rec.file_size.max(0) as u64).await?;

    let done = packages::transfer_done(db, uuid).await?;
    let missing: Vec<usize> = (0..n).filter(|i| !done.contains(&(*i as i64))).collect();
    if !missing.is_empty() && links.is_empty() {
        set_reason(app, uuid, Some("waiting for a peer to send the rest")).await?;
        anyhow::bail!(
            "{} of {} chunks of {} are still missing and no reachable peer has it",
            missing.len(),
            n,
            rec.filename
        );
    }
    set_reason(app, uuid, None).await?;
    tracing::info!(filename = %rec.filename, chunks = n, missing = missing.len(), sources = links.len(), "transfer starting");

    let started = Instant::now();
    let mut results = futures_util::stream::iter(missing)
        .map(|idx| {
            fetch_chunk(
                app,
                uuid,
                idx,
                rec.file_size,
                chunks.clone(),
                links.clone(),
                partial.clone(),
            )
        })
        .buffer_unordered(PARALLEL_CHUNKS);
    let mut pending = Vec::new();
    let mut first_error = None;
    while let Some(r) = results.next().await {
        match r {
            Ok(idx) => pending.push(idx),
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
        if pending.len() >= RECORD_EVERY {
            record(app, uuid, &partial, &mut pending).await?;
        }
    }
    record(app, uuid, &partial, &mut pending).await?;
    if let Some(e) = first_error {
        return Err(e);
    }

    // Whole-file check before anything is served: both digests at once, one thread
    // each, reading the (cached) file twice.
    let size = rec.file_size.max(0) as u64;
    let (sha256, sha1) = tokio::try_join!(
        whole_file::<Sha256>(partial.clone(), size),
        whole_file::<Sha1>(partial.clone(), size)
    )?;
    if sha256 != rec.sha256 || sha1 != rec.sha1 {
        db.q("DELETE FROM transfer_chunks WHERE uuid = ?")
            .bind(uuid.to_string())
            .execute(db.writer())
            .await?;
        // The chunk list itself may be what was wrong (a pushed manifest): forget it
        // unless the content is stored here (then the list is proven).
        db.q("DELETE FROM chunks WHERE sha256 = ? AND NOT EXISTS (SELECT 1 FROM blobs WHERE sha256 = ?)")
            .bind(rec.sha256.clone())
            .bind(rec.sha256.clone())
            .execute(db.writer())
            .await?;
        app.store.discard_partial(uuid).await?;
        anyhow::bail!(
            "the assembled {} does not match its SHA-256; fetching it again",
            rec.filename
        );
    }
    {
        let p = partial.clone();
        let sha = sha256.clone();
        tokio::task::spawn_blocking(move || p.commit(&sha)).await??;
    }
    finish(app, &rec, &chunks, started).await
}

/// The bytes are in place and verified: record the content and turn the package Public.
async fn finish(
    app: &App,
    rec: &catalog::Record,
    chunks: &[String],
    started: Instant,
) -> anyhow::Result<()> {
    let db = &app.db;
    let uuid = rec.uuid.as_str();
    let mut tx = db.begin().await?;
    catalog::lock(db, &mut tx).await?;
    if packages::by_uuid(db, &mut tx, uuid).await?.is_none() {
        // Deleted or withdrawn while arriving: leave the blob to the collector.
        tx.rollback().await?;
        let mut conn = db.writer().acquire().await?;
        let gc = crate::jobs::blob_gc::BlobGc {
            sha256: rec.sha256.clone(),
        };
        crate::jobs::enqueue(db, &mut conn, &gc, Duration::ZERO).await?;
        return Ok(());
    }
    packages::insert_blob(db, &mut tx, &rec.sha256, rec.file_size, &rec.sha1, chunks).await?;
    packages::set_status(db, &mut tx, uuid, Status::Public, None).await?;
    db.q("DELETE FROM transfer_chunks WHERE uuid = ?")
        .bind(uuid.to_string())
        .execute(&mut *tx)
        .await?;
    let seq = catalog::touch(db, &mut tx, uuid).await?;
    events::record(
        db,
        &mut tx,
        NewEvent {
            kind: "package.public",
            package_uuid: Some(uuid),
            filename: Some(&rec.filename),
            peer_iss: None,
            message: format!(
                "{} is Public here (synced in {:.1} s)",
                rec.filename,
                started.elapsed().as_secs_f64()
            ),
        },
    )
    .await?;
    super::announce(db, &mut tx, None).await?;
    tx.commit().await?;
    super::changed(app, seq);
    tracing::info!(filename = %rec.filename, secs = started.elapsed().as_secs_f64(), "transfer complete");
    Ok(())
}

/// The hex digest `D` of a partial file's first `size` bytes (in a blocking thread).
async fn whole_file<D: Digest + Send + 'static>(
    partial: Arc<dyn PartialBlob>,
    size: u64,
) -> anyhow::Result<String> {
    let digest = tokio::task::spawn_blocking(move || -> std::io::Result<String> {
        let mut h = D::new();
        let mut buf = vec![0u8; CHUNK_SIZE];
        let mut off = 0u64;
        while off < size {
            let n = (size - off).min(CHUNK_SIZE as u64) as usize;
            partial.read_at(off, &mut buf[..n])?;
            h.update(&buf[..n]);
            off += n as u64;
        }
        Ok(hex::encode(h.finalize()))
    })
    .await??;
    Ok(digest)
}

/// Makes written chunks durable, then records them as done.
async fn record(
    app: &App,
    uuid: &str,
    partial: &Arc<dyn PartialBlob>,
    pending: &mut Vec<usize>,
) -> anyhow::Result<()> {
    if pending.is_empty() {
        return Ok(());
    }
    let p = partial.clone();
    tokio::task::spawn_blocking(move || p.sync()).await??;
    let mut sql = String::from("INSERT INTO transfer_chunks (uuid, idx) VALUES ");
    for i in 0..pending.len() {
        sql.push_str(if i == 0 { "(?, ?)" } else { ", (?, ?)" });
    }
    let mut q = app.db.q(&sql);
    for idx in pending.iter() {
        q = q.bind(uuid.to_string()).bind(*idx as i64);
    }
    if let Err(e) = q.execute(app.db.writer()).await
        && !db::is_unique_violation(&e)
    {
        return Err(e.into());
    }
    pending.clear();
    Ok(())
}

/// Reads a chunk body, refusing more than `cap` bytes (a peer cannot make us buffer
/// more than one chunk).
async fn read_capped(mut resp: reqwest::Response, cap: usize) -> Result<bytes::Bytes, PeerError> {
    let mut buf = bytes::BytesMut::with_capacity(cap);
    while let Some(piece) = resp
        .chunk()
        .await
        .map_err(|e| PeerError::Unreachable(e.to_string()))?
    {
        if buf.len() + piece.len() > cap {
            return Err(PeerError::Protocol(format!(
                "a chunk longer than {cap} bytes"
            )));
        }
        buf.extend_from_slice(&piece);
    }
    Ok(buf.freeze())
}

/// Fetches one chunk, trying each source in turn until one sends the right bytes.
async fn fetch_chunk(
    app: &App,
    uuid: &str,
    idx: usize,
    size: i64,
    chunks: Arc<Vec<String>>,
    links: Arc<Vec<Link>>,
    partial: Arc<dyn PartialBlob>,
) -> anyhow::Result<usize> {
    let offset = (idx * CHUNK_SIZE) as u64;
    let len = (size as u64 - offset).min(CHUNK_SIZE as u64) as usize;
    let path = format!("/api/ods/packages/{uuid}/chunks/{idx}");
    let mut errors: HashMap<String, String> = HashMap::new();
    for attempt in 0..links.len() * 2 {
        let link = &links[(idx + attempt) % links.len()];
        app.sync
            .rates
            .take(link.id, link.rate_limit, len as u64)
            .await;
        let got = match client::call(
            app,
            link,
            Method::GET,
            &path,
            None,
            Duration::from_secs(120),
        )
        .await
        {
            Ok(resp) => read_capped(resp, len).await,
            Err(e) => Err(e),
        };
        match got {
            Ok(bytes) if bytes.len() == len && hex::encode(Sha1::digest(&bytes)) == chunks[idx] => {
                app.sync.stats.fetched(len as u64);
                let p = partial.clone();
                tokio::task::spawn_blocking(move || p.write_at(offset, &bytes)).await??;
                return Ok(idx);
            }
            Ok(_) => {
                app.sync
                    .stats
                    .chunks_rejected
                    .fetch_add(1, Ordering::Relaxed);
                tracing::warn!(uuid, idx, peer = %link.iss, "chunk failed its SHA-1 check; trying another source");
                errors.insert(
                    link.iss.clone(),
                    "sent a chunk that failed its SHA-1 check".into(),
                );
            }
            Err(e) => {
                errors.insert(link.iss.clone(), e.to_string());
            }
        }
    }
    let why: Vec<String> = errors
        .into_iter()
        .map(|(iss, e)| format!("{iss}: {e}"))
        .collect();
    anyhow::bail!(
        "chunk {idx} could not be fetched from any peer ({})",
        why.join("; ")
    )
}
