//! Counts failed blob store operations in `ods_storage_errors_total`, by operation,
//! whoever asked: a request, a job (gc, sweep, discard, a peer transfer's partial
//! writes and commit) or a command. One wrapper around whichever backend is open, so no
//! caller has to remember to count; the only label is the operation's name (bounded:
//! never a hash, key or path).

use std::collections::HashSet;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;

use super::{BlobStore, BlobWriter, ByteStream, PartialBlob, Removal};

/// The counter's name, as `stats` declares it (storage sits below `stats`, which
/// reads the app state, so the name is repeated here rather than imported).
const STORAGE_ERRORS: &str = "ods_storage_errors_total";

/// `store`, with every failure counted.
pub fn counted(store: Arc<dyn BlobStore>) -> Arc<dyn BlobStore> {
    Arc::new(Counted(store))
}

/// Counts `result` when it failed, under the operation `op`.
fn count<T>(op: &'static str, result: io::Result<T>) -> io::Result<T> {
    if result.is_err() {
        metrics::counter!(STORAGE_ERRORS, "op" => op).increment(1);
    }
    result
}

struct Counted(Arc<dyn BlobStore>);

struct CountedWriter(Box<dyn BlobWriter>);

impl BlobWriter for CountedWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<()> {
        count("write", self.0.write(buf))
    }
    fn commit(self: Box<Self>, sha256: &str) -> io::Result<()> {
        count("commit", self.0.commit(sha256))
    }
}

struct CountedPartial(Arc<dyn PartialBlob>);

impl PartialBlob for CountedPartial {
    fn write_at(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        count("partial_write", self.0.write_at(offset, data))
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        count("partial_read", self.0.read_at(offset, buf))
    }
    fn sync(&self) -> io::Result<()> {
        count("partial_sync", self.0.sync())
    }
    fn commit(&self, sha256: &str) -> io::Result<()> {
        count("partial_commit", self.0.commit(sha256))
    }
}

#[async_trait::async_trait]
impl BlobStore for Counted {
    async fn begin(&self) -> io::Result<Box<dyn BlobWriter>> {
        let w = count("begin", self.0.begin().await)?;
        Ok(Box::new(CountedWriter(w)))
    }
    async fn put_whole(&self, sha256: &str, data: Bytes) -> io::Result<()> {
        count("commit", self.0.put_whole(sha256, data).await)
    }
    async fn put_whole_many(&self, blobs: Vec<(String, Bytes)>) -> Vec<io::Result<()>> {
        let results = self.0.put_whole_many(blobs).await;
        results.into_iter().map(|r| count("commit", r)).collect()
    }
    async fn size(&self, sha256: &str) -> io::Result<Option<u64>> {
        count("size", self.0.size(sha256).await)
    }
    async fn read(&self, sha256: &str, offset: u64, len: u64) -> io::Result<ByteStream> {
        let stream = count("read", self.0.read(sha256, offset, len).await)?;
        Ok(Box::pin(stream.map(|item| count("read", item))))
    }
    async fn read_small(&self, sha256: &str, offset: u64, len: u64) -> io::Result<Bytes> {
        count("read", self.0.read_small(sha256, offset, len).await)
    }
    async fn read_once(&self, sha256: &str, len: u64) -> io::Result<Bytes> {
        count("read", self.0.read_once(sha256, len).await)
    }
    async fn read_small_file(
        &self,
        sha256: &str,
        offset: u64,
        len: u64,
    ) -> io::Result<(Bytes, Option<Arc<std::fs::File>>)> {
        count("read", self.0.read_small_file(sha256, offset, len).await)
    }
    async fn delete(&self, sha256: &str) -> io::Result<()> {
        count("delete", self.0.delete(sha256).await)
    }
    async fn age(&self, sha256: &str) -> io::Result<Option<Duration>> {
        count("age", self.0.age(sha256).await)
    }
    async fn delete_if_idle(&self, sha256: &str, idle: Duration) -> io::Result<Removal> {
        count("delete", self.0.delete_if_idle(sha256, idle).await)
    }
    async fn list(&self) -> io::Result<Vec<(String, u64)>> {
        count("list", self.0.list().await)
    }
    async fn sweep_staging(&self, live_owners: &HashSet<String>) -> io::Result<usize> {
        count("sweep_staging", self.0.sweep_staging(live_owners).await)
    }
    async fn partial(&self, key: &str, size: u64) -> io::Result<Arc<dyn PartialBlob>> {
        let p = count("partial_open", self.0.partial(key, size).await)?;
        Ok(Arc::new(CountedPartial(p)))
    }
    async fn discard_partial(&self, key: &str) -> io::Result<()> {
        count("partial_discard", self.0.discard_partial(key).await)
    }
    fn describe(&self) -> String {
        self.0.describe()
    }
    fn local_path(&self, sha256: &str) -> Option<std::path::PathBuf> {
        self.0.local_path(sha256)
    }
    async fn download_url(&self, sha256: &str) -> io::Result<Option<String>> {
        count("download_url", self.0.download_url(sha256).await)
    }
}
