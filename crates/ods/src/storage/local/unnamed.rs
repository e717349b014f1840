//! Whole blobs stored without a staging name (a small package from a peer): each is
//! written to an unnamed file (`O_TMPFILE`) in the blob's own directory, synced, then
//! linked in under its name, and the directory synced. Unlike a staging file, this
//! takes no lock on the one directory every writer shares, needs no rename across
//! directories, and a crash before the link leaves nothing to sweep.
//!
//! Many blobs at once (a bundle) go through the same steps in phases: write every
//! file, then sync them all, side by side; link them all, then sync each directory
//! touched once. A journaling filesystem then commits the whole batch in a few commits instead
//! of two per blob. No blob's result is Ok before its file and its directory entry
//! are both on disk.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;

use super::LocalStore;
use super::write::refresh_existing;
use crate::storage::{BlobStore, valid_sha256};

/// Files written, or synced, at once in one batch.
const IN_FLIGHT: usize = 16;

/// What storing one blob without a name came to.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Unnamed {
    /// The blob is stored under its name (now, or already before).
    Stored,
    /// The filesystem (or a missing `/proc`) does not allow it; nothing was stored.
    Unsupported,
}

/// `BlobStore::put_whole_many` on local disk: unnamed files where the filesystem has
/// them, the staging way for each blob where it does not.
pub(super) async fn store_many(
    store: &LocalStore,
    blobs: Vec<(String, Bytes)>,
) -> Vec<io::Result<()>> {
    let (root, n) = (store.root.clone(), blobs.len());
    let stored = tokio::task::spawn_blocking(move || {
        let refs: Vec<(&str, &[u8])> = blobs.iter().map(|(k, d)| (k.as_str(), &d[..])).collect();
        let done = put_many(&root, &refs);
        (blobs, done)
    })
    .await;
    let (blobs, done) = match stored {
        Ok(r) => r,
        Err(e) => {
            return (0..n)
                .map(|_| Err(io::Error::other(e.to_string())))
                .collect();
        }
    };
    let mut results = Vec::with_capacity(n);
    for ((sha256, data), done) in blobs.into_iter().zip(done) {
        results.push(match done {
            Ok(Unnamed::Stored) => Ok(()),
            Ok(Unnamed::Unsupported) => match store.begin().await {
                Ok(w) => crate::storage::put_staged(w, &sha256, data).await,
                Err(e) => Err(e),
            },
            Err(e) => Err(e),
        });
    }
    results
}

/// Stores `data` as blob `sha256` (see the module's comment).
#[cfg(test)]
pub(super) fn put(root: &Path, sha256: &str, data: &[u8]) -> io::Result<Unnamed> {
    put_many(root, &[(sha256, data)])
        .pop()
        .expect("one result per blob")
}

/// Stores each `(sha256, data)` of `blobs`, in phases (see the module's comment); one
/// result per blob, in order.
pub(super) fn put_many(root: &Path, blobs: &[(&str, &[u8])]) -> Vec<io::Result<Unnamed>> {
    let written = side_by_side(blobs, |(sha256, data)| write_unnamed(root, sha256, data));
    let mut results: Vec<Option<io::Result<Unnamed>>> = Vec::with_capacity(blobs.len());
    let mut open = Vec::new();
    for (i, written) in written.into_iter().enumerate() {
        match written {
            Ok(Written::File(file, dir)) => {
                open.push((i, file, dir));
                results.push(None);
            }
            Ok(Written::Done(u)) => results.push(Some(Ok(u))),
            Err(e) => results.push(Some(Err(e))),
        }
    }
    let synced = side_by_side(&open, |(_, file, _)| file.sync_all());
    let mut dirs: BTreeMap<PathBuf, Vec<usize>> = BTreeMap::new();
    for ((i, file, dir), synced) in open.into_iter().zip(synced) {
        let linked = synced.and_then(|()| link(&file, &dir.join(blobs[i].0)));
        match linked {
            Ok(Linked::New) => dirs.entry(dir).or_default().push(i),
            Ok(Linked::Existing) => results[i] = Some(Ok(Unnamed::Stored)),
            Ok(Linked::Unsupported) => results[i] = Some(Ok(Unnamed::Unsupported)),
            Err(e) => results[i] = Some(Err(e)),
        }
    }
    let dirs: Vec<(PathBuf, Vec<usize>)> = dirs.into_iter().collect();
    let synced = side_by_side(&dirs, |(dir, _)| File::open(dir)?.sync_all());
    for ((_, members), synced) in dirs.into_iter().zip(synced) {
        for i in members {
            results[i] = Some(match &synced {
                Ok(()) => Ok(Unnamed::Stored),
                Err(e) => Err(io::Error::new(e.kind(), e.to_string())),
            });
        }
    }
    results
        .into_iter()
        .map(|r| r.expect("every blob has a result"))
        .collect()
}

/// A blob's first phase: its unnamed file written (not yet synced), or its result.
enum Written {
    File(File, PathBuf),
    Done(Unnamed),
}

fn write_unnamed(root: &Path, sha256: &str, data: &[u8]) -> io::Result<Written> {
    if !valid_sha256(sha256) {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "not a sha256"));
    }
    let dir = root.join(&sha256[..2]);
    if refresh_existing(&dir.join(sha256))? {
        return Ok(Written::Done(Unnamed::Stored));
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
        Err(e) if unnamed_unsupported(&e) => return Ok(Written::Done(Unnamed::Unsupported)),
        Err(e) => return Err(e),
    };
    file.write_all(data)?;
    Ok(Written::File(file, dir))
}

enum Linked {
    /// Linked in: its directory must be synced.
    New,
    /// Stored meanwhile by another writer: that copy stays (ours vanishes on close).
    Existing,
    /// No `/proc` to name the file by.
    Unsupported,
}

/// Links the synced unnamed `file` in as `dest`.
fn link(file: &File, dest: &Path) -> io::Result<Linked> {
    let by_fd = format!("/proc/self/fd/{}", file.as_raw_fd());
    let follow = rustix::fs::AtFlags::SYMLINK_FOLLOW;
    let mut tries = 0;
    loop {
        match rustix::fs::linkat(rustix::fs::CWD, &by_fd, rustix::fs::CWD, dest, follow) {
            Ok(()) => return Ok(Linked::New),
            // Stored meanwhile: keep that one, unless a collector took it in between;
            // then link ours after all.
            Err(rustix::io::Errno::EXIST) if tries < 3 => {
                if refresh_existing(dest)? {
                    return Ok(Linked::Existing);
                }
                tries += 1;
            }
            Err(rustix::io::Errno::NOENT) if !Path::new(&by_fd).exists() => {
                return Ok(Linked::Unsupported);
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// Runs `step` on every item, up to `IN_FLIGHT` at once, and returns its results in
/// order. The steps mostly wait on the disk or on the filesystem's own locks, and syncs
/// that overlap share the filesystem's commits.
fn side_by_side<T: Sync, R: Send>(items: &[T], step: impl Fn(&T) -> R + Sync) -> Vec<R> {
    if items.len() <= 1 {
        return items.iter().map(&step).collect();
    }
    let next = AtomicUsize::new(0);
    let done = Mutex::new(Vec::with_capacity(items.len()));
    std::thread::scope(|s| {
        for _ in 0..items.len().min(IN_FLIGHT) {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(item) = items.get(i) else { break };
                    let r = step(item);
                    done.lock().unwrap_or_else(|p| p.into_inner()).push((i, r));
                }
            });
        }
    });
    let mut done = done.into_inner().unwrap_or_else(|p| p.into_inner());
    done.sort_by_key(|(i, _)| *i);
    done.into_iter().map(|(_, r)| r).collect()
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

#[cfg(test)]
mod tests {
    use super::*;
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
        assert_eq!(
            put(&root, &key, &data).unwrap(),
            Unnamed::Stored,
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
        assert!(put(&root, "../not-a-sha", &data).is_err());
    }

    /// A batch stores every good blob complete under its name, in one go: blobs that
    /// share a directory, the same bytes twice in one batch, a blob stored before, and
    /// a bad name in the middle, which fails alone.
    #[tokio::test]
    async fn a_batch_stores_each_blob_and_fails_only_the_bad_one() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("blobs");
        let store = LocalStore::open(root.clone(), None, "t-1-00000000".into(), true).unwrap();
        let datas: Vec<Bytes> = (0..300u32)
            .map(|i| Bytes::from(format!("blob {i} ").repeat(1 + i as usize % 50)))
            .collect();
        let keys: Vec<String> = datas.iter().map(|d| sha(d)).collect();
        store.put_whole(&keys[7], datas[7].clone()).await.unwrap();

        let mut batch: Vec<(String, Bytes)> = keys.iter().cloned().zip(datas.clone()).collect();
        batch.push((keys[3].clone(), datas[3].clone()));
        batch.insert(150, ("../not-a-sha".into(), Bytes::from_static(b"x")));
        let results = store.put_whole_many(batch).await;
        assert_eq!(results.len(), 302);
        for (i, r) in results.iter().enumerate() {
            assert_eq!(r.is_err(), i == 150, "result {i}: {r:?}");
        }
        for (key, data) in keys.iter().zip(&datas) {
            assert_eq!(fs::read(root.join(&key[..2]).join(key)).unwrap(), *data);
        }
        let mut files = 0;
        for d in fs::read_dir(&root).unwrap() {
            let d = d.unwrap();
            if d.file_name() != ".staging" && d.file_type().unwrap().is_dir() {
                files += fs::read_dir(d.path()).unwrap().count();
            }
        }
        assert_eq!(files, keys.len(), "one file per blob, nothing else");
    }
}
