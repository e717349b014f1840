//! The blobs' part of a backup: files of a local store are hard-linked into the backup
//! (copied when the backup is on another filesystem) and every one is checked against
//! its sha256 name; a remote store's blobs are only listed. A restore puts the files
//! back the same way, checking them again.

use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::Digest;

use crate::storage::{BlobStore, valid_sha256};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Blob {
    pub sha256: String,
    pub size: u64,
}

/// What a pass over the store did.
#[derive(Debug, Default, Clone, Copy)]
pub struct Placed {
    pub linked: u64,
    pub copied: u64,
}

/// The sha256 of a file, read in 1 MiB blocks.
pub fn file_sha256(path: &Path) -> io::Result<String> {
    let mut f = fs::File::open(path)?;
    let mut h = sha2::Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex::encode(h.finalize()))
}

/// Where blob `sha256` goes under `root` (the layout of the local store, also used in
/// the backup directory).
pub fn path_under(root: &Path, sha256: &str) -> PathBuf {
    root.join(&sha256[..2]).join(sha256)
}

/// Hard-links `src` to `dest` (a new name), or copies it (and syncs the copy) when a
/// link cannot be made; then checks that `dest` holds the content named `sha256`.
/// Returns whether it linked.
pub fn place(src: &Path, dest: &Path, sha256: &str) -> anyhow::Result<bool> {
    if let Some(parent) = dest.parent() {
        fs::create_dir_all(parent)?;
    }
    let linked = match fs::hard_link(src, dest) {
        Ok(()) => true,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(e.into()),
        Err(_) => {
            // Another filesystem, or one without hard links.
            let tmp = dest.with_extension("part");
            fs::copy(src, &tmp)?;
            fs::File::open(&tmp)?.sync_all()?;
            fs::rename(&tmp, dest)?;
            false
        }
    };
    let got = file_sha256(dest)?;
    if got != sha256 {
        let _ = fs::remove_file(dest);
        anyhow::bail!(
            "{} holds content with sha256 {got}, not {sha256}: the blob is damaged",
            src.display()
        );
    }
    Ok(linked)
}

/// One pass over the store: every blob not yet in `into` is linked or copied there
/// (local store) or listed (remote store). Blobs deleted during the pass (garbage
/// collection of a deleted package) are skipped. `have` collects what the backup holds.
pub async fn pass(
    store: &dyn BlobStore,
    into: &Path,
    have: &mut Vec<Blob>,
    placed: &mut Placed,
) -> anyhow::Result<()> {
    let mut listed = store.list().await?;
    listed.sort();
    for (sha256, _age) in listed {
        if !valid_sha256(&sha256) || have.iter().any(|b| b.sha256 == sha256) {
            continue;
        }
        match store.local_path(&sha256) {
            Some(src) => {
                let dest = path_under(into, &sha256);
                let sha = sha256.clone();
                let done = tokio::task::spawn_blocking(move || {
                    let size = fs::metadata(&src)?.len();
                    place(&src, &dest, &sha).map(|linked| (size, linked))
                })
                .await?;
                match done {
                    Ok((size, linked)) => {
                        if linked {
                            placed.linked += 1;
                        } else {
                            placed.copied += 1;
                        }
                        have.push(Blob { sha256, size });
                    }
                    Err(e) if is_not_found(&e) => continue,
                    Err(e) => return Err(e),
                }
            }
            None => {
                if let Some(size) = store.size(&sha256).await? {
                    have.push(Blob { sha256, size });
                }
            }
        }
    }
    Ok(())
}

fn is_not_found(e: &anyhow::Error) -> bool {
    e.downcast_ref::<io::Error>()
        .is_some_and(|e| e.kind() == io::ErrorKind::NotFound)
}

/// Puts the backup's blobs back into the store: linked or copied and checked again for
/// a local store; for a remote one, counted as missing when the store lacks them.
/// Returns what was placed and the blobs that are missing.
pub async fn restore(
    store: &dyn BlobStore,
    from: &Path,
    blobs: &[Blob],
    copied: bool,
) -> anyhow::Result<(Placed, Vec<String>)> {
    let mut placed = Placed::default();
    let mut missing = Vec::new();
    for b in blobs {
        anyhow::ensure!(
            valid_sha256(&b.sha256),
            "manifest: {:?} is not a sha256",
            b.sha256
        );
        match (copied, store.local_path(&b.sha256)) {
            (true, Some(dest)) => {
                let src = path_under(from, &b.sha256);
                let sha = b.sha256.clone();
                if tokio::task::spawn_blocking(move || place(&src, &dest, &sha)).await?? {
                    placed.linked += 1;
                } else {
                    placed.copied += 1;
                }
            }
            (true, None) => anyhow::bail!(
                "this backup holds the blob files of a local store, but the server is configured with {}: restore it with the local store it was made from",
                store.describe()
            ),
            (false, _) => {
                if store.size(&b.sha256).await? != Some(b.size) {
                    missing.push(b.sha256.clone());
                }
            }
        }
    }
    Ok((placed, missing))
}
