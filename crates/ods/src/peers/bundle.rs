//! Many small packages in one request (issue 11): a receiver that must hold packages of
//! one chunk or less asks a peer for up to `MAX_COUNT` of them at once
//! (`POST /api/ods/packages/bundle`), checks each one's size, SHA-1 and SHA-256 in
//! memory, and stores the good ones in one batch (`BlobStore::put_whole_many`: on local
//! disk, their syncs side by side, so the filesystem commits them together). The answer's framing: for each uuid asked, in
//! order, its length as 8 bytes big-endian followed by its bytes, or `ABSENT` when the
//! peer cannot send it (not Public there, too large, or past `MAX_BYTES`).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes};
use reqwest::Method;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::client::{self, Link, PeerError};
use super::transfer::{Arrived, is_whole, rejected, stored_whole};
use crate::app::App;
use crate::db::catalog::Record;
use crate::ingest::CHUNK_SIZE;

/// Most packages one bundle request may name.
pub const MAX_COUNT: usize = 64;
/// Most bytes of packages one bundle answer carries; the rest are answered `ABSENT`.
pub const MAX_BYTES: u64 = 16 * 1024 * 1024;
/// The length that says "not sent".
pub const ABSENT: u64 = u64::MAX;

/// The packages a bundle request asks for.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BundleRequest {
    /// Uuids of Public packages of at most one chunk (1 MiB), 1 to 64 of them.
    #[schema(min_items = 1, max_items = 64, value_type = Vec<String>)]
    pub uuids: Vec<String>,
}

/// The frame head of one package in a bundle answer.
pub fn frame_head(len: Option<u64>) -> Bytes {
    Bytes::copy_from_slice(&len.unwrap_or(ABSENT).to_be_bytes())
}

/// Splits a bundle answer into one body (or `None`) per uuid asked; `None` for all
/// when the framing is broken.
fn split(mut body: Bytes, asked: usize) -> Option<Vec<Option<Bytes>>> {
    let mut out = Vec::with_capacity(asked);
    for _ in 0..asked {
        if body.len() < 8 {
            return None;
        }
        let len = body.get_u64();
        if len == ABSENT {
            out.push(None);
            continue;
        }
        if len > body.len() as u64 {
            return None;
        }
        out.push(Some(body.split_to(len as usize)));
    }
    body.is_empty().then_some(out)
}

/// Brings as many of `recs` (each of one chunk or less) as the peers send in bundles,
/// stored and verified; returns what arrived by uuid. What did not arrive (no peer
/// sent it, or its bytes failed a check) is left to the one-package path.
pub async fn bring(app: &App, recs: &[Record], links: &[Link]) -> HashMap<String, Arrived> {
    let mut arrived = HashMap::new();
    let mut missing: Vec<&Record> = recs
        .iter()
        .filter(|r| r.file_size >= 0 && r.file_size as usize <= CHUNK_SIZE)
        .collect();
    for link in links {
        if missing.is_empty() {
            break;
        }
        let mut still = Vec::new();
        for group in missing.chunks(MAX_COUNT) {
            match from_link(app, link, group).await {
                Ok(got) => {
                    let mut got: HashMap<String, Arrived> = got.into_iter().collect();
                    for r in group {
                        match got.remove(&r.uuid) {
                            Some(a) => {
                                arrived.insert(r.uuid.clone(), a);
                            }
                            None => still.push(*r),
                        }
                    }
                }
                Err(e) => {
                    app.sync.stats.transfer_error(&link.iss);
                    tracing::warn!(peer = %link.iss, error = %e, "bundle fetch failed");
                    still.extend_from_slice(group);
                }
            }
        }
        missing = still;
    }
    arrived
}

/// One bundle request to `link`: the packages it sent that passed their checks.
async fn from_link(
    app: &App,
    link: &Link,
    recs: &[&Record],
) -> Result<Vec<(String, Arrived)>, PeerError> {
    let started = Instant::now();
    let total: u64 = recs.iter().map(|r| r.file_size.max(0) as u64).sum();
    app.sync
        .rates
        .take(link.id, link.rate_limit, total.min(MAX_BYTES))
        .await;
    let body = serde_json::to_vec(&BundleRequest {
        uuids: recs.iter().map(|r| r.uuid.clone()).collect(),
    })
    .map_err(|e| PeerError::Protocol(e.to_string()))?;
    let resp = client::call(
        app,
        link,
        Method::POST,
        "/api/ods/packages/bundle",
        Some(body),
        Duration::from_secs(120),
    )
    .await?;
    let cap = total.min(MAX_BYTES) as usize + 8 * recs.len();
    let body = super::transfer::read_capped(resp, cap).await?;
    let parts = split(body, recs.len())
        .ok_or_else(|| PeerError::Protocol("a bundle whose framing is broken".into()))?;

    // Check every package sent, then store the good ones with their fsyncs side by side.
    let sent: Vec<(Record, Bytes)> = recs
        .iter()
        .zip(parts)
        .filter_map(|(r, b)| b.map(|b| ((*r).clone(), b)))
        .collect();
    let checked = tokio::task::spawn_blocking(move || {
        sent.into_iter()
            .map(|(r, b)| {
                let ok = is_whole(&r, &b);
                (r, b, ok)
            })
            .collect::<Vec<_>>()
    })
    .await
    .map_err(|e| PeerError::Protocol(e.to_string()))?;
    let mut good = Vec::with_capacity(checked.len());
    for (r, b, ok) in checked {
        if ok {
            good.push((r, b));
        } else {
            rejected(app, &link.iss, &r.uuid);
        }
    }
    let blobs = good
        .iter()
        .map(|(r, b)| (r.sha256.clone(), b.clone()))
        .collect();
    let stored = app.store.put_whole_many(blobs).await;
    let mut arrived = Vec::with_capacity(good.len());
    for ((r, b), stored) in good.into_iter().zip(stored) {
        let uuid = r.uuid.clone();
        let done = match stored {
            Ok(()) => stored_whole(app, &link.iss, r, b.len() as u64, started).await,
            Err(e) => Err(e),
        };
        match done {
            Ok(a) => arrived.push((uuid, a)),
            // (counted in ods_storage_errors_total by the store itself)
            Err(e) => tracing::warn!(%uuid, error = %e, "storing a package from a bundle failed"),
        }
    }
    Ok(arrived)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;

    fn framed(parts: &[Option<&[u8]>]) -> Bytes {
        let mut b = BytesMut::new();
        for p in parts {
            b.extend_from_slice(&frame_head(p.map(|d| d.len() as u64)));
            if let Some(d) = p {
                b.extend_from_slice(d);
            }
        }
        b.freeze()
    }

    #[test]
    fn frames_split_back_into_packages() {
        let body = framed(&[Some(b"abc"), None, Some(b""), Some(b"z")]);
        let got = split(body, 4).unwrap();
        assert_eq!(
            got,
            vec![
                Some(Bytes::from_static(b"abc")),
                None,
                Some(Bytes::new()),
                Some(Bytes::from_static(b"z"))
            ]
        );
    }

    #[test]
    fn broken_framing_is_refused() {
        let body = framed(&[Some(b"abc")]);
        assert!(split(body.clone(), 2).is_none(), "fewer frames than asked");
        assert!(
            split(body.slice(..body.len() - 1), 1).is_none(),
            "a short body"
        );
        let mut long = BytesMut::from(&body[..]);
        long.extend_from_slice(b"x");
        assert!(
            split(long.freeze(), 1).is_none(),
            "bytes past the last frame"
        );
        let lying = framed(&[Some(b"ab")]);
        let mut lie = BytesMut::from(&lying[..8]);
        lie[7] = 200;
        lie.extend_from_slice(b"ab");
        assert!(split(lie.freeze(), 1).is_none(), "a length past the end");
    }
}
