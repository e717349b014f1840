//! Pulling a package's bytes (DESIGN.md §4.5): ask every callable peer for the
//! manifest, fetch the missing 1 MiB chunks several at a time spread over every peer
//! that has it, check each chunk's SHA-1 (a bad chunk is fetched again from another
//! peer), record verified chunks so a restart resumes, then check the whole file's
//! SHA-256 and SHA-1 and move it into place. Turning the package Public is the
//! catalog's part (`catalog::fetch`).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use reqwest::Method;
use sha1::Sha1;
use sha2::{Digest, Sha256};

use super::Manifest;
use super::client::{self, Link, PeerError};
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

const PARALLEL_CHUNKS: usize = 8;
const RECORD_EVERY: usize = 16;

fn chunk_count(size: i64) -> usize {
    (size.max(0) as usize).div_ceil(CHUNK_SIZE)
}

async fn set_reason(app: &App, uuid: &str, reason: Option<&str>) -> anyhow::Result<()> {
    let mut conn = app.db.writer().acquire().await?;
    packages::set_status(&app.db, &mut conn, uuid, Status::Downloading, reason).await?;
    Ok(())
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

    let done = transfers::done(db, uuid).await?;
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
    drop(results);
    Ok(Some(Arrived {
        record: rec,
        chunks: Arc::unwrap_or_clone(chunks),
        started,
    }))
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
    transfers::record(&app.db, uuid, pending).await?;
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
                app.sync.stats.fetched(&link.iss, len as u64);
                let p = partial.clone();
                tokio::task::spawn_blocking(move || p.write_at(offset, &bytes)).await??;
                return Ok(idx);
            }
            Ok(_) => {
                app.sync.stats.transfer_error(&link.iss);
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
                app.sync.stats.transfer_error(&link.iss);
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
