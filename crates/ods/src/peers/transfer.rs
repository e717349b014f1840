//! Pulling a package's bytes (DESIGN.md §4.5). A package of one chunk or less comes
//! whole in one request, verified in memory (its SHA-1 is its chunk's) and stored like
//! an upload. A larger one: ask every callable peer for the manifest, then each peer's
//! workers take spans of missing 1 MiB chunks from a shared queue (`spans`) and fetch
//! each span in one request; each chunk's SHA-1 is checked as it arrives (a bad chunk
//! is fetched again from another peer) and written, while the whole file's SHA-256 and
//! SHA-1 are folded in order beside the fetch and the written chunks are made durable
//! and recorded in the background (`inorder`), so a restart resumes. The whole-file
//! digests are checked before the file moves into place. Turning the package Public
//! is the catalog's part (`catalog::fetch`).

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use reqwest::Method;
use sha1::Sha1;
use sha2::{Digest, Sha256};

use super::Manifest;
use super::client::{self, Link, PeerError};
use super::inorder::{Fold, Recorder};
use super::spans::{Spans, Taken};
use crate::app::App;
use crate::db::{self, catalog, packages, transfers};
use crate::ingest::CHUNK_SIZE;
use crate::model::Status;
use crate::storage::PartialBlob;

/// A package's bytes, verified and in place as its content: what is left is to record
/// it (`catalog::fetch`).
pub struct Arrived {
    pub record: catalog::Record,
    pub chunks: Vec<String>,
    pub started: Instant,
}

/// Span requests in flight per peer.
const PER_PEER: usize = 4;
/// Chunks per request (one for a rate-limited link, so its limit stays smooth).
const SPAN: usize = 4;

fn chunk_count(size: i64) -> usize {
    (size.max(0) as usize).div_ceil(CHUNK_SIZE)
}

fn chunk_len(size: u64, idx: usize) -> usize {
    (size - (idx * CHUNK_SIZE) as u64).min(CHUNK_SIZE as u64) as usize
}

async fn set_reason(app: &App, uuid: &str, reason: Option<&str>) -> anyhow::Result<()> {
    let mut conn = app.db.writer().acquire().await?;
    packages::set_status(&app.db, &mut conn, uuid, Status::Downloading, reason).await?;
    Ok(())
}

/// Brings the bytes of those of `uuids` that are plain small transfers (held here as
/// Downloading, one chunk or less, content not here under another name) in bundles
/// from the callable peers; what arrived, by uuid. The rest is left to `bring`. The
/// caller holds the packages' claims and a transfer permit.
pub async fn bring_small(
    app: &App,
    uuids: &[&str],
) -> anyhow::Result<std::collections::HashMap<String, Arrived>> {
    let db = &app.db;
    let recs: Vec<catalog::Record> = {
        let mut conn = db.reader().acquire().await?;
        let arriving: HashSet<String> = packages::by_uuids(db, &mut conn, uuids)
            .await?
            .into_iter()
            .filter(|p| p.status != Status::Public)
            .map(|p| p.uuid)
            .collect();
        let recs: Vec<catalog::Record> = catalog::get_many(db, &mut conn, uuids)
            .await?
            .into_iter()
            .filter(|r| arriving.contains(&r.uuid) && !r.deleted && chunk_count(r.file_size) <= 1)
            .collect();
        // Content already here under another name takes the general way (no transfer).
        let hashes: Vec<&str> = recs.iter().map(|r| r.sha256.as_str()).collect();
        let stored = packages::blobs_present(db, &mut conn, &hashes).await?;
        recs.into_iter()
            .filter(|r| !stored.contains(&r.sha256))
            .collect()
    };
    if recs.is_empty() {
        return Ok(Default::default());
    }
    let links = callable_links(app).await?;
    Ok(super::bundle::bring(app, &recs, &links).await)
}

/// Brings the bytes of `uuid` from the peers that have them; `None` when there is
/// nothing to bring (the package is gone, deleted or Public already). The caller holds
/// the package's claim (`app.sync.in_flight`) and a transfer permit.
pub async fn bring(app: &App, uuid: &str) -> anyhow::Result<Option<Arrived>> {
    let db = &app.db;
    let (pkg, rec) = {
        let mut conn = db.writer().acquire().await?;
        let pkg = packages::by_uuid(db, &mut conn, uuid).await?;
        let rec = catalog::get(db, &mut conn, uuid).await?;
        (pkg, rec)
    };
    let (Some(pkg), Some(rec)) = (pkg, rec) else {
        app.store.discard_partial(uuid).await?;
        return Ok(None);
    };
    if pkg.status == Status::Public || rec.deleted {
        return Ok(None);
    }

    // The same content is already here under another name: nothing to fetch.
    let local_content = {
        let mut conn = db.reader().acquire().await?;
        packages::has_blob(db, &mut conn, &rec.sha256).await?
    };
    if local_content && app.store.size(&rec.sha256).await? == Some(rec.file_size.max(0) as u64) {
        let chunks = packages::chunks(db, &rec.sha256).await?;
        return Ok(Some(Arrived {
            record: rec,
            chunks,
            started: Instant::now(),
        }));
    }

    let links = callable_links(app).await?;
    let n = chunk_count(rec.file_size);
    // One chunk or none: the whole package in one request, no manifest needed. When no
    // peer sends it (or a firewalled one pushed it), the general way below applies.
    if n <= 1
        && !links.is_empty()
        && let Some(arrived) = bring_whole(app, &rec, &links).await?
    {
        return Ok(Some(arrived));
    }

    // Sources: every callable peer whose manifest matches the record.
    let answers = futures_util::future::join_all(links.iter().map(|l| async move {
        super::manifests::manifest(app, l, uuid)
            .await
            .map(|m| (l.clone(), m))
    }))
    .await;
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
    let links: Vec<Link> = sources.into_iter().map(|(l, _)| l).collect();
    let size = rec.file_size.max(0) as u64;
    let partial = app.store.partial(uuid, size).await?;

    let done: HashSet<usize> = transfers::done(db, uuid)
        .await?
        .into_iter()
        .map(|i| i as usize)
        .collect();
    let missing: Vec<usize> = (0..n).filter(|i| !done.contains(i)).collect();
    if !missing.is_empty() && links.is_empty() {
        set_reason(app, uuid, Some("waiting for a peer to send the rest")).await?;
        anyhow::bail!(
            "{} of {} chunks of {} are still missing and no reachable peer has it",
            missing.len(),
            n,
            rec.filename
        );
    }
    if pkg.status != Status::Downloading || pkg.status_reason.is_some() {
        set_reason(app, uuid, None).await?;
    }
    tracing::info!(filename = %rec.filename, chunks = n, missing = missing.len(), sources = links.len(), "transfer starting");

    let started = Instant::now();
    let before = Arc::new(done);
    let run = Run {
        app,
        uuid,
        size,
        chunks: &chunk_list,
        partial: partial.clone(),
        sha256: Fold::start::<Sha256>(partial.clone(), size, before.clone()),
        sha1: Fold::start::<Sha1>(partial.clone(), size, before),
        recorder: Recorder::start(app, uuid, partial.clone()),
        spans: Spans::new(missing, links.len()),
    };
    futures_util::future::join_all(links.iter().enumerate().flat_map(|(li, link)| {
        let run = &run;
        (0..PER_PEER).map(move |_| run.worker(li, link))
    }))
    .await;
    let Run {
        sha256,
        sha1,
        recorder,
        spans,
        ..
    } = run;
    let recorded = recorder.finish().await;
    let (given_up, why) = spans.outcome();
    if let Some(first) = given_up.iter().min() {
        recorded?;
        anyhow::bail!(
            "chunk {first} could not be fetched from any peer ({})",
            why.join("; ")
        );
    }
    recorded?;

    // Whole-file check before anything is served (folded while the chunks arrived).
    let (sha256, sha1) = tokio::try_join!(sha256.finish(), sha1.finish())?;
    if sha256 != rec.sha256 || sha1 != rec.sha1 {
        transfers::forget(db, uuid).await?;
        // The chunk list itself may be what was wrong (a pushed manifest): forget it
        // unless the content is stored here (then the list is proven).
        packages::forget_unproven_chunks(db, &rec.sha256).await?;
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
    Ok(Some(Arrived {
        record: rec,
        chunks: chunk_list,
        started,
    }))
}

/// A package of at most one chunk, whole from the first peer that sends the right
/// bytes (SHA-1 and SHA-256 checked in memory), stored like an upload; `None` when no
/// peer did.
async fn bring_whole(
    app: &App,
    rec: &catalog::Record,
    links: &[Link],
) -> anyhow::Result<Option<Arrived>> {
    let started = Instant::now();
    let size = rec.file_size.max(0) as usize;
    let path = format!("/api/ods/packages/{}/chunks/0", rec.uuid);
    for link in links {
        let data = if size == 0 {
            Bytes::new()
        } else {
            app.sync
                .rates
                .take(link.id, link.rate_limit, size as u64)
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
                Ok(resp) => read_capped(resp, size).await,
                Err(e) => Err(e),
            };
            match got {
                Ok(b) => b,
                Err(e) => {
                    app.sync.stats.transfer_error(&link.iss);
                    tracing::debug!(uuid = %rec.uuid, peer = %link.iss, error = %e, "whole-package fetch failed");
                    continue;
                }
            }
        };
        let ok = {
            let (r, d) = (rec.clone(), data.clone());
            tokio::task::spawn_blocking(move || is_whole(&r, &d)).await?
        };
        if !ok {
            rejected(app, &link.iss, &rec.uuid);
            continue;
        }
        return Ok(Some(
            store_whole(app, &link.iss, rec.clone(), data, started).await?,
        ));
    }
    Ok(None)
}

/// Every registered peer this server can call.
async fn callable_links(app: &App) -> anyhow::Result<Vec<Link>> {
    let mut links = Vec::new();
    for p in db::peers::list(&app.db).await? {
        if let Some(l) = Link::of(app, &p)? {
            links.push(l);
        }
    }
    Ok(links)
}

/// Whether `data` is the whole package `rec`: its size, SHA-1 and SHA-256 (hashing:
/// call it off the async threads).
pub(super) fn is_whole(rec: &catalog::Record, data: &[u8]) -> bool {
    data.len() as i64 == rec.file_size
        && hex::encode(Sha1::digest(data)) == rec.sha1
        && hex::encode(Sha256::digest(data)) == rec.sha256
}

/// Counts and logs a whole package from `iss` that failed `is_whole`.
pub(super) fn rejected(app: &App, iss: &str, uuid: &str) {
    app.sync.stats.transfer_error(iss);
    app.sync
        .stats
        .chunks_rejected
        .fetch_add(1, Ordering::Relaxed);
    tracing::warn!(%uuid, peer = %iss, "package failed its size, SHA-1 or SHA-256 check; trying another source");
}

/// Stores a whole package that passed `is_whole`, fetched from `iss`, like an upload.
pub(super) async fn store_whole(
    app: &App,
    iss: &str,
    rec: catalog::Record,
    data: Bytes,
    started: Instant,
) -> std::io::Result<Arrived> {
    let size = data.len() as u64;
    app.store.put_whole(&rec.sha256, data).await?;
    stored_whole(app, iss, rec, size, started).await
}

/// A whole package of `size` bytes from `iss` is stored: drops any partial file an
/// earlier chunk-wise attempt (a firewalled peer's push) left, and counts the bytes.
pub(super) async fn stored_whole(
    app: &App,
    iss: &str,
    rec: catalog::Record,
    size: u64,
    started: Instant,
) -> std::io::Result<Arrived> {
    app.store.discard_partial(&rec.uuid).await?;
    if size > 0 {
        app.sync.stats.fetched(iss, size);
    }
    let chunks = if size > 0 {
        vec![rec.sha1.clone()]
    } else {
        Vec::new()
    };
    Ok(Arrived {
        record: rec,
        chunks,
        started,
    })
}

/// One chunk-wise transfer in progress, shared by every peer's workers.
struct Run<'a> {
    app: &'a App,
    uuid: &'a str,
    size: u64,
    chunks: &'a [String],
    partial: Arc<dyn PartialBlob>,
    sha256: Fold,
    sha1: Fold,
    recorder: Recorder,
    spans: Spans,
}

impl Run<'_> {
    /// Fetches spans over `link` until nothing is left.
    async fn worker(&self, li: usize, link: &Link) {
        let max = if link.rate_limit.is_some() { 1 } else { SPAN };
        while let Some(span) = self.spans.take(li, max).await {
            let (done, failure) = self.fetch_span(link, &span).await;
            if failure.is_some() {
                self.app.sync.stats.transfer_error(&link.iss);
            }
            self.spans.finish(li, &link.iss, span, done, failure);
        }
    }

    /// Fetches one span in one request, chunk by chunk as the body streams in: how many
    /// chunks from its start arrived verified and written, and why it stopped early.
    async fn fetch_span(&self, link: &Link, span: &Taken) -> (usize, Option<String>) {
        let app = self.app;
        let bytes: u64 = (span.first..span.first + span.count)
            .map(|i| chunk_len(self.size, i) as u64)
            .sum();
        app.sync.rates.take(link.id, link.rate_limit, bytes).await;
        let path = if span.count == 1 {
            format!("/api/ods/packages/{}/chunks/{}", self.uuid, span.first)
        } else {
            format!(
                "/api/ods/packages/{}/chunks/{}?count={}",
                self.uuid, span.first, span.count
            )
        };
        let mut resp = match client::call(
            app,
            link,
            Method::GET,
            &path,
            None,
            Duration::from_secs(120),
        )
        .await
        {
            Ok(r) => r,
            Err(e) => return (0, Some(e.to_string())),
        };
        let mut done = 0;
        // Chunks are gathered where a direct write takes them without a copy.
        let mut buf = crate::storage::aligned_buffer(chunk_len(self.size, span.first));
        loop {
            let mut piece = match resp.chunk().await {
                Ok(Some(p)) => p,
                Ok(None) => break,
                Err(e) => {
                    return (
                        done,
                        Some(PeerError::Unreachable(e.to_string()).to_string()),
                    );
                }
            };
            while !piece.is_empty() {
                if done == span.count {
                    return (done, Some("sent more than the chunks asked for".into()));
                }
                let idx = span.first + done;
                let want = chunk_len(self.size, idx);
                let take = (want - buf.len()).min(piece.len());
                buf.extend_from_slice(&piece.split_to(take));
                if buf.len() < want {
                    continue;
                }
                let next = if done + 1 < span.count {
                    chunk_len(self.size, idx + 1)
                } else {
                    0
                };
                let data =
                    std::mem::replace(&mut buf, crate::storage::aligned_buffer(next)).freeze();
                match self.store_chunk(idx, data).await {
                    Ok(true) => {
                        app.sync.stats.fetched(&link.iss, want as u64);
                        done += 1;
                    }
                    Ok(false) => {
                        app.sync
                            .stats
                            .chunks_rejected
                            .fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(uuid = self.uuid, idx, peer = %link.iss, "chunk failed its SHA-1 check; trying another source");
                        return (
                            done,
                            Some("sent a chunk that failed its SHA-1 check".into()),
                        );
                    }
                    Err(e) => return (done, Some(format!("writing chunk {idx}: {e}"))),
                }
            }
        }
        if !buf.is_empty() {
            return (
                done,
                Some(format!(
                    "the answer ended inside chunk {}",
                    span.first + done
                )),
            );
        }
        // A peer of the older protocol sends one chunk whatever was asked: the rest go
        // back to the queue, not counted as failures.
        (done, None)
    }

    /// Checks chunk `idx` against its SHA-1 and writes it (false: wrong bytes); then
    /// hands it to the whole-file digests and the recorder.
    async fn store_chunk(&self, idx: usize, data: Bytes) -> anyhow::Result<bool> {
        let want = self.chunks[idx].clone();
        let p = self.partial.clone();
        let offset = (idx * CHUNK_SIZE) as u64;
        let written = tokio::task::spawn_blocking(move || -> std::io::Result<Option<Bytes>> {
            if hex::encode(Sha1::digest(&data)) != want {
                return Ok(None);
            }
            p.write_at(offset, &data)?;
            Ok(Some(data))
        })
        .await??;
        let Some(data) = written else {
            return Ok(false);
        };
        self.sha256.push(idx, data.clone());
        self.sha1.push(idx, data);
        self.recorder.written(idx);
        Ok(true)
    }
}

/// Reads a body, refusing more than `cap` bytes (a peer cannot make us buffer more
/// than it should send).
pub(super) async fn read_capped(
    mut resp: reqwest::Response,
    cap: usize,
) -> Result<Bytes, PeerError> {
    let mut buf = BytesMut::with_capacity(cap);
    while let Some(piece) = resp
        .chunk()
        .await
        .map_err(|e| PeerError::Unreachable(e.to_string()))?
    {
        if buf.len() + piece.len() > cap {
            return Err(PeerError::Protocol(format!(
                "a body longer than the {cap} bytes asked for"
            )));
        }
        buf.extend_from_slice(&piece);
    }
    Ok(buf.freeze())
}
