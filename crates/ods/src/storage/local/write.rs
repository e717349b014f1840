//! Writing local blob files: an upload's staging file (`LocalWriter`, front to back)
//! and a transfer's partial file (`LocalPartial`, chunks in any order), then `place`,
//! which moves a complete, synced file into the store. With `direct` the bytes go past
//! the page cache where the filesystem allows (`direct.rs`); otherwise a staging
//! file is flushed in the background as it grows, so the commit's fsync is short.

use std::fs::{self, File};
use std::io::{self, Write};
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
