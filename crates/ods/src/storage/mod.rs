//! Blob storage: content addressed by sha256, behind one trait so the rest of the
//! server never assumes a local path: `local.rs` keeps blobs on disk (one directory,
//! which several nodes of a site may share), `s3/` in an S3-compatible bucket,
//! `migrate` copies every blob from one to the other, `counted` counts every failed
//! operation of either. The jobs
//! that keep the store tidy live here too (`gc`, `sweep`, `discard`), runnable in any
//! context that offers a database and a store.

pub mod counted;
pub mod discard;
pub mod gc;
pub mod local;
pub mod migrate;
pub mod s3;
pub mod sweep;

pub use local::aligned_buffer;

/// What the storage jobs need from the context they run in.
pub trait Context: crate::jobs::Context {
    fn store(&self) -> &dyn BlobStore;
    /// This node's name (`node_name`): processes of this name run on this host.
    fn node_name(&self) -> &str;
    /// Heartbeat silence after which a node counts as gone (`node_timeout_secs`).
    fn node_timeout(&self) -> Duration;
}

use std::collections::HashSet;
use std::io;
use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use futures_util::Stream;

/// Reads up to this size may be answered whole (`BlobStore::read_small`).
pub const SMALL_READ: u64 = 128 * 1024;

pub type ByteStream = Pin<Box<dyn Stream<Item = io::Result<Bytes>> + Send>>;

/// Receives one upload's bytes (from a blocking thread) and either commits them under
/// their sha256 or throws them away. Dropping without `commit` discards the bytes.
pub trait BlobWriter: Send {
    fn write(&mut self, buf: &[u8]) -> io::Result<()>;
    /// Makes the bytes durable and visible as `sha256` (atomic; a no-op when that
    /// content is already stored). Blocking.
    fn commit(self: Box<Self>, sha256: &str) -> io::Result<()>;
}

/// An incoming transfer's file, written chunk by chunk in any order (blocking calls).
/// It survives restarts, so a resumed transfer only fetches what is missing.
pub trait PartialBlob: Send + Sync {
    fn write_at(&self, offset: u64, data: &[u8]) -> io::Result<()>;
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()>;
    /// Makes everything written so far durable.
    fn sync(&self) -> io::Result<()>;
    /// Moves the complete, verified file into place as `sha256`.
    fn commit(&self, sha256: &str) -> io::Result<()>;
}

/// Writes `data` with `writer` and commits it as `sha256` (the general `put_whole`).
pub async fn put_staged(
    mut writer: Box<dyn BlobWriter>,
    sha256: &str,
    data: Bytes,
) -> io::Result<()> {
    let sha256 = sha256.to_string();
    tokio::task::spawn_blocking(move || {
        writer.write(&data)?;
        writer.commit(&sha256)
    })
    .await
    .map_err(io::Error::other)?
}

#[async_trait::async_trait]
pub trait BlobStore: Send + Sync + 'static {
    /// Starts a new blob; staging space lives where `commit` is a cheap rename.
    async fn begin(&self) -> io::Result<Box<dyn BlobWriter>>;
    /// Stores `data`, complete and verified, as `sha256` in one go (a small package from
    /// a peer), with `commit`'s guarantees. By default: `begin`, write, `commit`.
    async fn put_whole(&self, sha256: &str, data: Bytes) -> io::Result<()> {
        put_staged(self.begin().await?, sha256, data).await
    }
    /// Stores many `(sha256, data)` blobs like `put_whole`, one result per blob, in
    /// order (a bundle of small packages). By default: `put_whole`, several at once.
    async fn put_whole_many(&self, blobs: Vec<(String, Bytes)>) -> Vec<io::Result<()>> {
        use futures_util::StreamExt;
        futures_util::stream::iter(blobs)
            .map(|(sha256, data)| async move { self.put_whole(&sha256, data).await })
            .buffered(16)
            .collect()
            .await
    }
    /// Size of a stored blob, or `None`.
    async fn size(&self, sha256: &str) -> io::Result<Option<u64>>;
    /// Streams `len` bytes from `offset`.
    async fn read(&self, sha256: &str, offset: u64, len: u64) -> io::Result<ByteStream>;
    /// Reads `len` bytes (at most `SMALL_READ`) from `offset` whole, for an answer sent
    /// in one piece. By default it collects `read`.
    async fn read_small(&self, sha256: &str, offset: u64, len: u64) -> io::Result<Bytes> {
        use futures_util::StreamExt;
        let mut parts = self.read(sha256, offset, len).await?;
        let mut buf = bytes::BytesMut::with_capacity(len as usize);
        while let Some(b) = parts.next().await {
            buf.extend_from_slice(&b?);
        }
        Ok(buf.freeze())
    }
    /// `read_small` of a whole small blob for a reader that takes it once (a peer's
    /// bundle): on local disk, never added to the caches of hot downloads, so syncing
    /// many packages to a peer does not push out what clients download.
    async fn read_once(&self, sha256: &str, len: u64) -> io::Result<Bytes> {
        self.read_small(sha256, 0, len).await
    }
    /// Like `read_small`, with the open file the bytes were read from when there is
    /// one (local disk): the bytes can then be sent from it again without a copy
    /// (`http::zero_copy`). A blob's file never changes while it is open.
    async fn read_small_file(
        &self,
        sha256: &str,
        offset: u64,
        len: u64,
    ) -> io::Result<(Bytes, Option<std::sync::Arc<std::fs::File>>)> {
        Ok((self.read_small(sha256, offset, len).await?, None))
    }
    async fn delete(&self, sha256: &str) -> io::Result<()>;
    /// Time since the blob was stored or last deduplicated onto (`commit` of the same
    /// content refreshes it), or `None` when it is not stored.
    async fn age(&self, sha256: &str) -> io::Result<Option<Duration>>;
    /// Deletes a blob unless it was stored or deduplicated onto within `idle`: an upload
    /// of the same content may have committed and be about to record its package. Safe
    /// against a concurrent `commit` of that content: either the commit sees the blob
    /// gone and stores its own copy, or this sees the commit and keeps the blob.
    async fn delete_if_idle(&self, sha256: &str, idle: Duration) -> io::Result<Removal>;
    /// Every stored blob with its age in seconds (for garbage collection).
    async fn list(&self) -> io::Result<Vec<(String, u64)>>;
    /// Removes staging files left by crashed or aborted uploads; returns how many.
    /// A file whose owner (a node id, see `node`) is in `live_owners` is kept: on a
    /// store shared by several nodes it is another node's upload in flight.
    async fn sweep_staging(&self, live_owners: &HashSet<String>) -> io::Result<usize>;
    /// Opens (or creates, `size` bytes long) the partial file of transfer `key`.
    async fn partial(&self, key: &str, size: u64) -> io::Result<std::sync::Arc<dyn PartialBlob>>;
    async fn discard_partial(&self, key: &str) -> io::Result<()>;
    fn describe(&self) -> String;
    /// Where the blob `sha256` lives (or would live) as a plain file on this machine,
    /// for backends that keep blobs on local disk: `ods backup` hard-links such files
    /// and `ods restore` puts them back there. `None` (the default) for remote stores,
    /// whose blobs a backup only lists.
    fn local_path(&self, _sha256: &str) -> Option<std::path::PathBuf> {
        None
    }

    /// A short-lived URL a client may download the blob from directly (S3 with
    /// `download_redirect`), or `None` when downloads go through ODS.
    async fn download_url(&self, _sha256: &str) -> io::Result<Option<String>> {
        Ok(None)
    }
}

/// What `delete_if_idle` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Removal {
    Deleted,
    /// Not stored (already deleted).
    Missing,
    /// Kept: stored or deduplicated onto this long ago, less than the idle time.
    Recent(Duration),
}

pub fn valid_sha256(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}
