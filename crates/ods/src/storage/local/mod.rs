//! Blobs on local disk: `<root>/<first two hex>/<sha256>`. Uploads are written to a
//! staging file on the same filesystem, fsynced, then renamed into place, so a reader
//! never sees a partial blob and a crash leaves at most a staging file to sweep.
//! `write.rs` writes the staging and partial files (`direct.rs`: past the page cache
//! where the filesystem allows), `unnamed.rs` whole blobs without a staging name;
//! this file finds, reads (`read.rs`: the buffers), lists and removes blobs.

mod direct;
mod read;
mod unnamed;
mod write;

pub use direct::aligned_buffer;

use std::collections::HashSet;
use std::fs::{self, File};
use std::io::{self, Seek, SeekFrom};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use super::{BlobStore, BlobWriter, ByteStream, Removal, SMALL_READ, valid_sha256};

pub struct LocalStore {
    root: PathBuf,
    staging: PathBuf,
    partials: PathBuf,
    /// The node id staging files are tagged with: `<owner>.<random>.part`.
    owner: String,
    /// Blobs opened for small reads, kept open while they are read often: a busy
    /// server's small downloads then cost one `pread` each, not an open, a path walk
    /// and a close. A blob's content never changes under its name, so a descriptor
    /// is never stale; one whose file was deleted keeps its space until it is idle.
    open_files: moka::sync::Cache<String, Arc<File>>,
    /// The whole content of small blobs read lately (at most `SMALL_READ` each,
    /// `SMALL_BLOBS_BYTES` in all): a hot small download then costs no system call
    /// and no copy before the socket. Content never changes under its sha256.
    small_blobs: moka::sync::Cache<String, Bytes>,
    /// Write blob files with `O_DIRECT` where the filesystem takes it (`direct`).
    direct_io: bool,
}

/// Descriptors kept by `open_files`, and how long an unused one stays open.
const OPEN_FILES: u64 = 256;
const OPEN_FILE_IDLE: Duration = Duration::from_secs(2);
/// Memory `small_blobs` may hold, and how long an unread one stays.
const SMALL_BLOBS_BYTES: u64 = 64 * 1024 * 1024;
const SMALL_BLOB_IDLE: Duration = Duration::from_secs(60);

/// Staging files older than this are swept even if their process still runs.
const STALE_STAGING: Duration = Duration::from_secs(24 * 3600);
/// Bytes per read and per body chunk of a download; `READ_AHEAD` blocks are buffered.
const READ_BLOCK: usize = 1024 * 1024;
const READ_AHEAD: usize = 2;

impl LocalStore {
    /// Fails at start when the staging directory is on another filesystem than the
    /// blobs (the commit would not be a rename).
    pub fn open(
        root: PathBuf,
        staging: Option<PathBuf>,
        owner: String,
        direct_io: bool,
    ) -> anyhow::Result<LocalStore> {
        let staging = staging.unwrap_or_else(|| root.join(".staging"));
        fs::create_dir_all(&root)?;
        fs::create_dir_all(&staging)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            if fs::metadata(&root)?.dev() != fs::metadata(&staging)?.dev() {
                anyhow::bail!(
                    "UPLOAD_STAGING_DIRECTORY {} is on another filesystem than the blob store {}; \
                     put it on the same filesystem so uploads commit with a rename",
                    staging.display(),
                    root.display()
                );
            }
        }
        let partials = root.join(".partial");
        fs::create_dir_all(&partials)?;
        Ok(LocalStore {
            root,
            staging,
            partials,
            owner,
            open_files: moka::sync::Cache::builder()
                .max_capacity(OPEN_FILES)
                .time_to_idle(OPEN_FILE_IDLE)
                .build(),
            small_blobs: moka::sync::Cache::builder()
                .max_capacity(SMALL_BLOBS_BYTES)
                .weigher(|_, b: &Bytes| b.len().try_into().unwrap_or(u32::MAX))
                .time_to_idle(SMALL_BLOB_IDLE)
                .build(),
            direct_io,
        })
    }

    fn partial_path(&self, key: &str) -> io::Result<PathBuf> {
        if key.is_empty() || key.len() > 64 || !key.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "bad transfer key",
            ));
        }
        Ok(self.partials.join(format!("{key}.part")))
    }

    fn path(&self, sha256: &str) -> io::Result<PathBuf> {
        if !valid_sha256(sha256) {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "not a sha256"));
        }
        Ok(self.root.join(&sha256[..2]).join(sha256))
    }
}

use crate::node::pid_alive;
use read::{part_of, pread_whole, read_block, tokio_stream_from};
use write::{LocalPartial, LocalWriter};

#[async_trait::async_trait]
impl BlobStore for LocalStore {
    async fn begin(&self) -> io::Result<Box<dyn BlobWriter>> {
        let name = format!("{}.{}.part", self.owner, crate::secrets::random_id());
        let path = self.staging.join(name);
        let file = tokio::task::spawn_blocking({
            let path = path.clone();
            move || File::options().write(true).create_new(true).open(path)
        })
        .await??;
        let (root, direct_io) = (self.root.clone(), self.direct_io);
        let writer =
            tokio::task::spawn_blocking(move || LocalWriter::new(file, path, root, direct_io))
                .await??;
        Ok(Box::new(writer))
    }

    async fn put_whole(&self, sha256: &str, data: Bytes) -> io::Result<()> {
        self.put_whole_many(vec![(sha256.to_string(), data)])
            .await
            .pop()
            .expect("one result per blob")
    }

    async fn put_whole_many(&self, blobs: Vec<(String, Bytes)>) -> Vec<io::Result<()>> {
        unnamed::store_many(self, blobs).await
    }

    async fn size(&self, sha256: &str) -> io::Result<Option<u64>> {
        match tokio::fs::metadata(self.path(sha256)?).await {
            Ok(m) => Ok(Some(m.len())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn read(&self, sha256: &str, offset: u64, len: u64) -> io::Result<ByteStream> {
        let path = self.path(sha256)?;
        if len <= SMALL_READ {
            let data = self.read_small(sha256, offset, len).await?;
            return Ok(Box::pin(futures_util::stream::once(async { Ok(data) })));
        }
        if len <= READ_BLOCK as u64 {
            // One blocking call, no reader thread.
            let data = tokio::task::spawn_blocking(move || {
                let mut file = File::open(path)?;
                file.seek(SeekFrom::Start(offset))?;
                read_block(&mut file, len as usize)
            })
            .await??;
            return Ok(Box::pin(futures_util::stream::once(async { Ok(data) })));
        }
        let mut file = tokio::task::spawn_blocking(move || File::open(path)).await??;
        let (tx, rx) = tokio::sync::mpsc::channel::<io::Result<Bytes>>(READ_AHEAD);
        tokio::task::spawn_blocking(move || {
            let mut left = len;
            if let Err(e) = file.seek(SeekFrom::Start(offset)) {
                let _ = tx.blocking_send(Err(e));
                return;
            }
            while left > 0 {
                let n = left.min(READ_BLOCK as u64) as usize;
                let block = read_block(&mut file, n);
                let failed = block.is_err();
                if tx.blocking_send(block).is_err() || failed {
                    return; // the client went away, or the error is sent
                }
                left -= n as u64;
            }
        });
        Ok(Box::pin(tokio_stream_from(rx)))
    }

    async fn read_small(&self, sha256: &str, offset: u64, len: u64) -> io::Result<Bytes> {
        Ok(self.read_small_file(sha256, offset, len).await?.0)
    }

    /// Most requests of a busy server: the blob held in memory, or one `pread` right
    /// here, on the async thread. A few pages from the page cache take microseconds,
    /// less than a hop to the blocking pool (nginx without `aio` reads the same way).
    /// Larger reads go to the pool.
    async fn read_small_file(
        &self,
        sha256: &str,
        offset: u64,
        len: u64,
    ) -> io::Result<(Bytes, Option<Arc<File>>)> {
        if len > SMALL_READ {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "read_small takes at most SMALL_READ bytes",
            ));
        }
        // One lookup per request; the path is built only to open a blob not held open.
        let file = self
            .open_files
            .try_get_with_by_ref(sha256, || File::open(self.path(sha256)?).map(Arc::new))
            .map_err(|e| io::Error::new(e.kind(), e.to_string()))?;
        if let Some(whole) = self.small_blobs.get(sha256) {
            return Ok((part_of(&whole, offset, len)?, Some(file)));
        }
        // A read that may be of a small blob: if it is one, read it whole and keep it.
        if offset + len <= SMALL_READ {
            let size = file.metadata()?.len();
            if size <= SMALL_READ {
                let whole = pread_whole(&file, 0, size as usize)?;
                self.small_blobs.insert(sha256.to_string(), whole.clone());
                return Ok((part_of(&whole, offset, len)?, Some(file)));
            }
        }
        Ok((pread_whole(&file, offset, len as usize)?, Some(file)))
    }

    async fn read_once(&self, sha256: &str, len: u64) -> io::Result<Bytes> {
        if let Some(whole) = self.small_blobs.get(sha256) {
            return part_of(&whole, 0, len);
        }
        if len > SMALL_READ {
            return self.read_small(sha256, 0, len).await;
        }
        // Page-cache reads of at most SMALL_READ, like `read_small_file`'s.
        pread_whole(&File::open(self.path(sha256)?)?, 0, len as usize)
    }

    async fn delete(&self, sha256: &str) -> io::Result<()> {
        self.open_files.invalidate(sha256);
        self.small_blobs.invalidate(sha256);
        match tokio::fs::remove_file(self.path(sha256)?).await {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    async fn age(&self, sha256: &str) -> io::Result<Option<Duration>> {
        match tokio::fs::metadata(self.path(sha256)?).await {
            Ok(m) => Ok(Some(m.modified()?.elapsed().unwrap_or_default())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn delete_if_idle(&self, sha256: &str, idle: Duration) -> io::Result<Removal> {
        let path = self.path(sha256)?;
        self.open_files.invalidate(sha256);
        self.small_blobs.invalidate(sha256);
        // Named like a staging file, so a crash right here leaves something the
        // start-up sweep removes.
        let aside = self.staging.join(format!(
            "{}-{}.part",
            std::process::id(),
            crate::secrets::random_id()
        ));
        tokio::task::spawn_blocking(move || {
            // Move it out of sight first: from here a `commit` of the same content no
            // longer finds it and stores its own copy. Then look at its age: a commit
            // that refreshed it just before the move makes it recent, and it goes back.
            match fs::rename(&path, &aside) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Removal::Missing),
                Err(e) => return Err(e),
            }
            let age = fs::metadata(&aside)
                .and_then(|m| m.modified())
                .map(|t| t.elapsed().unwrap_or_default());
            match age {
                Ok(age) if age >= idle => {
                    fs::remove_file(&aside)?;
                    Ok(Removal::Deleted)
                }
                other => {
                    // Same content whatever is at `path` now, so replacing it is fine.
                    fs::rename(&aside, &path)?;
                    Ok(Removal::Recent(other?))
                }
            }
        })
        .await?
    }

    async fn list(&self) -> io::Result<Vec<(String, u64)>> {
        let root = self.root.clone();
        tokio::task::spawn_blocking(move || {
            let mut out = Vec::new();
            for dir in fs::read_dir(&root)? {
                let dir = dir?;
                if !dir.file_type()?.is_dir() || dir.file_name().len() != 2 {
                    continue;
                }
                for f in fs::read_dir(dir.path())? {
                    let f = f?;
                    let name = f.file_name().to_string_lossy().into_owned();
                    if valid_sha256(&name) {
                        let age = f
                            .metadata()?
                            .modified()?
                            .elapsed()
                            .unwrap_or_default()
                            .as_secs();
                        out.push((name, age));
                    }
                }
            }
            Ok(out)
        })
        .await?
    }

    async fn sweep_staging(&self, live_owners: &HashSet<String>) -> io::Result<usize> {
        let staging = self.staging.clone();
        let live = live_owners.clone();
        tokio::task::spawn_blocking(move || {
            let mut removed = 0;
            for f in fs::read_dir(&staging)? {
                let f = f?;
                let name = f.file_name().to_string_lossy().into_owned();
                let Some(stem) = name.strip_suffix(".part") else {
                    continue;
                };
                let age = f.metadata()?.modified()?.elapsed().unwrap_or_default();
                let orphan = match stem.rsplit_once('.') {
                    // `<node id>.<random>`: a node of the site that is no longer live.
                    Some((owner, _)) => !live.contains(owner) || age > STALE_STAGING,
                    // `<pid>-<random>`, as written by an older ODS on this host.
                    None => match stem.split('-').next().and_then(|p| p.parse::<u32>().ok()) {
                        Some(pid) if pid == std::process::id() => age > STALE_STAGING,
                        Some(pid) => !pid_alive(pid) || age > STALE_STAGING,
                        None => true,
                    },
                };
                if orphan {
                    fs::remove_file(f.path())?;
                    removed += 1;
                }
            }
            Ok(removed)
        })
        .await?
    }

    async fn partial(
        &self,
        key: &str,
        size: u64,
    ) -> io::Result<std::sync::Arc<dyn super::PartialBlob>> {
        let path = self.partial_path(key)?;
        let (root, direct_io) = (self.root.clone(), self.direct_io);
        tokio::task::spawn_blocking(move || {
            let file = File::options()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&path)?;
            if file.metadata()?.len() != size {
                file.set_len(size)?;
            }
            Ok(
                std::sync::Arc::new(LocalPartial::new(file, path, root, direct_io))
                    as std::sync::Arc<dyn super::PartialBlob>,
            )
        })
        .await?
    }

    async fn discard_partial(&self, key: &str) -> io::Result<()> {
        let path = self.partial_path(key)?;
        // Most packages never had one: look first, since an unlink locks the whole
        // directory even when there is nothing to remove. The look is a lookup in the
        // kernel's directory cache, cheaper than a hop to the blocking pool.
        if let Err(e) = fs::symlink_metadata(&path) {
            return match e.kind() {
                io::ErrorKind::NotFound => Ok(()),
                _ => Err(e),
            };
        }
        match tokio::fs::remove_file(path).await {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    fn describe(&self) -> String {
        format!("local disk at {}", self.root.display())
    }

    fn local_path(&self, sha256: &str) -> Option<PathBuf> {
        self.path(sha256).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::write::refresh_existing;
    use super::*;
    use sha2::{Digest, Sha256};
    use std::path::Path;
    use std::time::SystemTime;

    async fn stage(store: &LocalStore, data: &[u8]) -> (Box<dyn BlobWriter>, String) {
        let mut w = store.begin().await.unwrap();
        w.write(data).unwrap();
        (w, hex::encode(Sha256::digest(data)))
    }

    fn age_by(path: &Path, by: Duration) {
        File::options()
            .write(true)
            .open(path)
            .unwrap()
            .set_modified(SystemTime::now() - by)
            .unwrap();
    }

    #[tokio::test]
    async fn direct_and_buffered_writes_store_the_same_blobs() {
        let chunk = 1024 * 1024; // the transfer chunk size
        let data: Vec<u8> = (0..3 * chunk + 4_321).map(|i| (i % 253) as u8).collect();
        let sha = hex::encode(Sha256::digest(&data));
        for direct_io in [true, false] {
            let dir = tempfile::tempdir().unwrap();
            let store = LocalStore::open(
                dir.path().join("blobs"),
                None,
                "t-1-00000000".into(),
                direct_io,
            )
            .unwrap();
            // An upload, fed in pieces that cross every block boundary.
            let mut w = store.begin().await.unwrap();
            for piece in data.chunks(300_007) {
                w.write(piece).unwrap();
            }
            w.commit(&sha).unwrap();
            assert_eq!(
                std::fs::read(store.path(&sha).unwrap()).unwrap(),
                data,
                "upload, direct {direct_io}"
            );
            store.delete(&sha).await.unwrap();
            // A transfer: chunks in any order, from an aligned buffer or not.
            let partial = store.partial("k1", data.len() as u64).await.unwrap();
            for idx in [3, 1, 0, 2] {
                let part = &data[idx * chunk..((idx + 1) * chunk).min(data.len())];
                if idx % 2 == 0 {
                    let mut b = super::aligned_buffer(part.len());
                    b.extend_from_slice(part);
                    partial.write_at((idx * chunk) as u64, &b.freeze()).unwrap();
                } else {
                    partial.write_at((idx * chunk) as u64, part).unwrap();
                }
            }
            partial.sync().unwrap();
            partial.commit(&sha).unwrap();
            assert_eq!(
                std::fs::read(store.path(&sha).unwrap()).unwrap(),
                data,
                "transfer, direct {direct_io}"
            );
            assert!(
                store.list().await.unwrap().len() == 1,
                "one blob, no leftovers listed"
            );
        }
    }

    #[tokio::test]
    async fn small_blobs_are_read_whole_once_and_forgotten_on_delete() {
        let dir = tempfile::tempdir().unwrap();
        let store =
            LocalStore::open(dir.path().join("blobs"), None, "t-1-00000000".into(), true).unwrap();
        let data: Vec<u8> = (0..65_536u32).map(|i| (i % 251) as u8).collect();
        let (w, sha) = stage(&store, &data).await;
        w.commit(&sha).unwrap();
        // A one-time reader (a peer's bundle) reads it whole and leaves no trace.
        assert_eq!(store.read_once(&sha, 65_536).await.unwrap(), data[..]);
        assert!(store.small_blobs.get(&sha).is_none(), "not kept");
        assert_eq!(
            store.read_small(&sha, 100, 50).await.unwrap(),
            data[100..150]
        );
        assert_eq!(
            store.small_blobs.get(&sha).as_deref(),
            Some(&data[..]),
            "kept whole"
        );
        // Served from memory from now on: the file's bytes are not read again.
        std::fs::write(store.path(&sha).unwrap(), vec![0u8; data.len()]).unwrap();
        assert_eq!(store.read_small(&sha, 0, 65_536).await.unwrap(), data[..]);
        assert_eq!(store.read_once(&sha, 65_536).await.unwrap(), data[..]);
        let past = store.read_small(&sha, 65_000, 1_000).await.unwrap_err();
        assert_eq!(past.kind(), io::ErrorKind::UnexpectedEof);
        store.delete(&sha).await.unwrap();
        assert!(store.small_blobs.get(&sha).is_none());
        assert!(
            store.read_small(&sha, 0, 10).await.is_err(),
            "gone with its file"
        );
    }

    #[tokio::test]
    async fn collection_spares_recently_used_content() {
        let dir = tempfile::tempdir().unwrap();
        let store =
            LocalStore::open(dir.path().join("blobs"), None, "t-1-00000000".into(), true).unwrap();
        let hour = Duration::from_secs(3600);
        let (w, sha) = stage(&store, b"content").await;
        w.commit(&sha).unwrap();
        let path = store.path(&sha).unwrap();

        // Just stored: kept, and still in place afterwards.
        let kept = store.delete_if_idle(&sha, hour).await.unwrap();
        assert!(
            matches!(kept, Removal::Recent(age) if age < hour),
            "{kept:?}"
        );
        assert_eq!(store.size(&sha).await.unwrap(), Some(7));

        // An upload of the same bytes refreshes the age of the stored copy.
        age_by(&path, 2 * hour);
        assert!(store.age(&sha).await.unwrap().unwrap() >= 2 * hour);
        let (w, _) = stage(&store, b"content").await;
        w.commit(&sha).unwrap();
        assert!(store.age(&sha).await.unwrap().unwrap() < hour);
        assert!(matches!(
            store.delete_if_idle(&sha, hour).await.unwrap(),
            Removal::Recent(_)
        ));

        // Idle long enough: deleted, and nothing is left aside.
        age_by(&path, 2 * hour);
        assert_eq!(
            store.delete_if_idle(&sha, hour).await.unwrap(),
            Removal::Deleted
        );
        assert_eq!(store.size(&sha).await.unwrap(), None);
        assert_eq!(store.age(&sha).await.unwrap(), None);
        assert_eq!(
            store.delete_if_idle(&sha, hour).await.unwrap(),
            Removal::Missing
        );
        assert_eq!(fs::read_dir(&store.staging).unwrap().count(), 0);
    }

    #[tokio::test]
    async fn commit_stores_its_own_copy_when_the_stored_one_went_away() {
        let dir = tempfile::tempdir().unwrap();
        let store =
            LocalStore::open(dir.path().join("blobs"), None, "t-1-00000000".into(), true).unwrap();
        let (w, sha) = stage(&store, b"bytes").await;
        w.commit(&sha).unwrap();
        let path = store.path(&sha).unwrap();
        assert!(refresh_existing(&path).unwrap());
        // The collector moved it away: a commit of the same bytes must not rely on it.
        fs::remove_file(&path).unwrap();
        assert!(!refresh_existing(&path).unwrap());
        let (w, _) = stage(&store, b"bytes").await;
        w.commit(&sha).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"bytes");
        assert_eq!(fs::read_dir(&store.staging).unwrap().count(), 0);
    }
}
