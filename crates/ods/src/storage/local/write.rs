//! Writing local blob files: an upload's staging file (`LocalWriter`, front to back)
//! and a transfer's partial file (`LocalPartial`, chunks in any order), then `place`,
//! which moves a complete, synced file into the store. With `direct` the bytes go past
//! the page cache where the filesystem allows (`direct.rs`); otherwise a staging
//! file is flushed in the background as it grows, so the commit's fsync is short.

use std::fs::{self, File};
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use super::direct;
use crate::storage::{BlobWriter, PartialBlob, valid_sha256};

/// Bytes written between two background flushes of a staging file, so that writeback
/// overlaps the upload instead of all happening in the commit's fsync.
const FLUSH_EVERY: u64 = 64 * 1024 * 1024;

pub(super) struct LocalWriter {
    file: Option<File>,
    path: PathBuf,
    root: PathBuf,
    /// The direct writer, when the filesystem takes direct writes.
    direct: Option<direct::Sequential>,
    /// Bytes written since the last background flush started.
    unflushed: u64,
    /// The background flush in progress, if any.
    flushing: Option<std::thread::JoinHandle<io::Result<()>>>,
}

impl LocalWriter {
    /// Writes the new staging file `path` (open as `file`); blobs go under `root`.
    pub(super) fn new(
        file: File,
        path: PathBuf,
        root: PathBuf,
        direct_io: bool,
    ) -> io::Result<Self> {
        let direct = match direct_io.then(|| direct::open(&path)).flatten() {
            Some(d) => Some(direct::Sequential::new(&file, d)?),
            None => None,
        };
        Ok(LocalWriter {
            file: Some(file),
            path,
            root,
            direct,
            unflushed: 0,
            flushing: None,
        })
    }

    /// Waits for the background flush in progress and returns its result.
    fn flushed(&mut self) -> io::Result<()> {
        match self.flushing.take() {
            Some(t) => t
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("the flush thread panicked"))),
            None => Ok(()),
        }
    }
}

impl BlobWriter for LocalWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<()> {
        if let Some(d) = &mut self.direct {
            return d.write(buf);
        }
        let file = self.file.as_mut().expect("writer used after commit");
        file.write_all(buf)?;
        self.unflushed += buf.len() as u64;
        // Start the next flush when the last one is done (never wait for it here).
        if self.unflushed >= FLUSH_EVERY && self.flushing.as_ref().is_none_or(|t| t.is_finished()) {
            let copy = file.try_clone()?;
            self.flushed()?;
            self.flushing = Some(std::thread::spawn(move || copy.sync_data()));
            self.unflushed = 0;
        }
        Ok(())
    }

    fn commit(mut self: Box<Self>, sha256: &str) -> io::Result<()> {
        if !valid_sha256(sha256) {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "not a sha256"));
        }
        let file = self.file.take().expect("commit twice");
        if let Some(d) = self.direct.take() {
            d.finish()?;
        }
        self.flushed()?;
        file.sync_all()?;
        place(&file, &self.path, &self.root, sha256)
    }
}

impl Drop for LocalWriter {
    fn drop(&mut self) {
        if self.file.take().is_some() {
            let _ = fs::remove_file(&self.path);
        }
    }
}

pub(super) struct LocalPartial {
    file: File,
    path: PathBuf,
    root: PathBuf,
    /// Direct writes of aligned chunks, when the filesystem takes them.
    direct: Option<direct::AtOffsets>,
}

impl LocalPartial {
    /// The partial file `path` (open read-write as `file`); blobs go under `root`.
    pub(super) fn new(file: File, path: PathBuf, root: PathBuf, direct_io: bool) -> Self {
        let direct = direct_io.then(|| direct::AtOffsets::new(&path));
        LocalPartial {
            file,
            path,
            root,
            direct,
        }
    }
}

impl PartialBlob for LocalPartial {
    fn write_at(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        match &self.direct {
            Some(d) => d.write_at(&self.file, offset, data),
            None => std::os::unix::fs::FileExt::write_all_at(&self.file, data, offset),
        }
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        std::os::unix::fs::FileExt::read_exact_at(&self.file, buf, offset)
    }
    fn sync(&self) -> io::Result<()> {
        self.file.sync_data()
    }
    fn commit(&self, sha256: &str) -> io::Result<()> {
        self.file.sync_all()?;
        place(&self.file, &self.path, &self.root, sha256)
    }
}

/// Moves a complete, synced file into place as `sha256` (atomic rename, directory
/// synced). When that content is stored already, keeps the stored copy (its age now
/// tells the collector it is about to be recorded) and drops this one.
pub(super) fn place(file: &File, staged: &Path, root: &Path, sha256: &str) -> io::Result<()> {
    if !valid_sha256(sha256) {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "not a sha256"));
    }
    let dir = root.join(&sha256[..2]);
    let dest = dir.join(sha256);
    if refresh_existing(&dest)? {
        return fs::remove_file(staged);
    }
    // A resumed transfer's file may be old: its age must count from now, or the
    // collector could take it for abandoned before its package row is written.
    file.set_modified(SystemTime::now())?;
    // The directory exists but for the first blobs: try that first, since making
    // (or finding) it takes the store root's lock, which concurrent commits share.
    match fs::rename(staged, &dest) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            fs::create_dir_all(&dir)?;
            fs::rename(staged, &dest)?;
        }
        other => other?,
    }
    File::open(&dir)?.sync_all()
}

/// Stores `data` as blob `sha256` without a staging name: an unnamed file
/// (`O_TMPFILE`) in the blob's own directory, written and synced, then linked in under
/// its name and the directory synced. Unlike a staging file, this takes no lock on the
/// one directory every writer shares, needs no rename across directories, and a crash
/// before the link leaves nothing to sweep. `Ok(false)`: the filesystem (or a missing
/// `/proc`) does not allow it, and nothing was stored.
pub(super) fn put_unnamed(root: &Path, sha256: &str, data: &[u8]) -> io::Result<bool> {
    if !valid_sha256(sha256) {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "not a sha256"));
    }
    let dir = root.join(&sha256[..2]);
    let dest = dir.join(sha256);
    if refresh_existing(&dest)? {
        return Ok(true);
    }
    let opened = match open_unnamed(&dir) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            fs::create_dir_all(&dir)?;
            open_unnamed(&dir)
        }
        other => other,
    };
    let mut file = match opened {
        Ok(f) => f,
        Err(e) if unnamed_unsupported(&e) => return Ok(false),
        Err(e) => return Err(e),
    };
    file.write_all(data)?;
    file.sync_all()?;
    let by_fd = format!("/proc/self/fd/{}", file.as_raw_fd());
    let follow = rustix::fs::AtFlags::SYMLINK_FOLLOW;
    let mut tries = 0;
    loop {
        match rustix::fs::linkat(rustix::fs::CWD, &by_fd, rustix::fs::CWD, &dest, follow) {
            Ok(()) => break,
            // Stored meanwhile by another writer: keep that one (ours vanishes on close)
            // unless a collector took it in between; then link ours after all.
            Err(rustix::io::Errno::EXIST) if tries < 3 => {
                if refresh_existing(&dest)? {
                    return Ok(true);
                }
                tries += 1;
            }
            // No /proc to name the file by: the staging way instead.
            Err(rustix::io::Errno::NOENT) if !Path::new(&by_fd).exists() => return Ok(false),
            Err(e) => return Err(e.into()),
        }
    }
    File::open(&dir)?.sync_all()?;
    Ok(true)
}

/// An unnamed file in `dir`, for writing.
fn open_unnamed(dir: &Path) -> io::Result<File> {
    File::options()
        .write(true)
        .custom_flags(rustix::fs::OFlags::TMPFILE.bits() as i32)
        .open(dir)
}

/// `O_TMPFILE` is not there: a filesystem without it (`EOPNOTSUPP`), or a kernel that
/// reads the flag as `O_DIRECTORY` (`EISDIR`).
fn unnamed_unsupported(e: &io::Error) -> bool {
    use rustix::io::Errno;
    let refused = [Errno::OPNOTSUPP, Errno::ISDIR, Errno::INVAL];
    refused
        .iter()
        .any(|r| e.raw_os_error() == Some(r.raw_os_error()))
}

/// Marks a stored blob as just used; false when there is none (any more). The check
/// after the touch matters: a collector may have moved the blob away in between, and
/// then the caller must store its own copy. (`delete_if_idle` is the other half.)
pub(super) fn refresh_existing(dest: &Path) -> io::Result<bool> {
    let file = match File::options().write(true).open(dest) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    };
    file.set_modified(SystemTime::now())?;
    drop(file);
    match fs::symlink_metadata(dest) {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::BlobStore;
    use crate::storage::local::LocalStore;
    use bytes::Bytes;
    use sha2::{Digest, Sha256};
    use std::sync::Arc;

    fn sha(data: &[u8]) -> String {
        hex::encode(Sha256::digest(data))
    }

    /// Whole puts go through an unnamed file: the blob is complete under its name, no
    /// staging file is ever made, the same bytes put again (even at once, from many
    /// tasks) keep one file, and a blob the collector took is stored again.
    #[tokio::test]
    async fn whole_puts_link_complete_files_and_keep_one_copy() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("blobs");
        let store =
            Arc::new(LocalStore::open(root.clone(), None, "t-1-00000000".into(), true).unwrap());
        let data = Bytes::from((0..70_000u32).map(|i| (i % 251) as u8).collect::<Vec<u8>>());
        let key = sha(&data);
        assert!(
            put_unnamed(&root, &key, &data).unwrap(),
            "O_TMPFILE works on the test filesystem"
        );
        let path = root.join(&key[..2]).join(&key);
        assert_eq!(fs::read(&path).unwrap(), data);

        let puts: Vec<_> = (0..8)
            .map(|_| {
                let (store, data, key) = (store.clone(), data.clone(), key.clone());
                tokio::spawn(async move { store.put_whole(&key, data).await })
            })
            .collect();
        for p in puts {
            p.await.unwrap().unwrap();
        }
        assert_eq!(fs::read(&path).unwrap(), data);
        assert_eq!(fs::read_dir(path.parent().unwrap()).unwrap().count(), 1);

        fs::remove_file(&path).unwrap();
        store.put_whole(&key, data.clone()).await.unwrap();
        assert_eq!(fs::read(&path).unwrap(), data);
        let empty = Bytes::new();
        store.put_whole(&sha(&empty), empty).await.unwrap();
        assert_eq!(
            fs::read(root.join(&sha(b"")[..2]).join(sha(b""))).unwrap(),
            b""
        );
        assert_eq!(fs::read_dir(root.join(".staging")).unwrap().count(), 0);
        assert!(put_unnamed(&root, "../not-a-sha", &data).is_err());
    }
}
