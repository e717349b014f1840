//! `ods storage migrate --to URL`: copies every blob of one store into another (local
//! disk to S3 or back). Each blob is streamed through a blocking thread that hashes it
//! while writing, and committed under its name only when its SHA-256 matches, so
//! whatever the target holds under a name is that content: a blob already there with
//! the right size is skipped, which makes a second run resume where the first stopped.
//! Only reads the source, so the server may keep running on it meanwhile (a blob
//! stored after the listing is copied by the next run; one deleted meanwhile is
//! skipped).

use std::io;

use futures_util::StreamExt;
use sha2::{Digest, Sha256};

use super::BlobStore;

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Report {
    pub copied: usize,
    pub skipped: usize,
    /// Blobs that could not be copied (the error is logged), or failed their hash.
    pub failed: usize,
    pub bytes: u64,
}

/// Copies what `to` lacks; `say` hears one line per blob copied or failed.
pub async fn migrate(
    from: &dyn BlobStore,
    to: &dyn BlobStore,
    say: &(dyn Fn(String) + Sync),
) -> io::Result<Report> {
    let mut report = Report::default();
    let mut blobs = from.list().await?;
    blobs.sort();
    for (sha, _) in blobs {
        let Some(size) = from.size(&sha).await? else {
            report.skipped += 1; // deleted since the listing
            continue;
        };
        match to.size(&sha).await? {
            Some(s) if s == size => {
                report.skipped += 1;
                continue;
            }
            Some(_) => to.delete(&sha).await?, // a wrong copy: replaced
            None => {}
        }
        match copy_one(from, to, &sha, size).await {
            Ok(()) => {
                report.copied += 1;
                report.bytes += size;
                say(format!("copied {sha} ({size} bytes)"));
            }
            Err(e) => {
                report.failed += 1;
                say(format!("FAILED {sha}: {e}"));
            }
        }
    }
    Ok(report)
}

async fn copy_one(
    from: &dyn BlobStore,
    to: &dyn BlobStore,
    sha: &str,
    size: u64,
) -> io::Result<()> {
    let mut stream = from.read(sha, 0, size).await?;
    let mut writer = to.begin().await?;
    let (tx, mut rx) = tokio::sync::mpsc::channel::<bytes::Bytes>(4);
    let want = sha.to_string();
    let sink = tokio::task::spawn_blocking(move || {
        let mut h = Sha256::new();
        let mut n = 0u64;
        while let Some(b) = rx.blocking_recv() {
            h.update(&b);
            n += b.len() as u64;
            writer.write(&b)?;
        }
        let got = hex::encode(h.finalize());
        if got != want || n != size {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("the source has {n} bytes hashing to {got}, not its name: not copied"),
            ));
        }
        writer.commit(&want)
    });
    let mut read_error = None;
    while let Some(piece) = stream.next().await {
        match piece {
            Ok(b) => {
                if tx.send(b).await.is_err() {
                    break; // the writer failed; its error is below
                }
            }
            Err(e) => {
                read_error = Some(e);
                break;
            }
        }
    }
    drop(tx);
    if let Some(e) = read_error {
        drop(sink); // dropping the writer without commit discards it
        return Err(e);
    }
    sink.await?
}
