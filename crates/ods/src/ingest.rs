//! Streaming upload ingest. Bytes are cut into 1 MiB blocks as they arrive and fanned
//! out to three blocking threads: one writes the staging file and the whole-file SHA-1,
//! one computes the SHA-256, one the per-chunk SHA-1s. Channels are bounded, so memory
//! stays at a few MiB whatever the file size, and hashing overlaps receiving on both
//! cores. Nothing is visible until `Received::commit` renames the staging file.

use std::io;

use bytes::{Bytes, BytesMut};
use sha1::Sha1;
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::storage::{BlobStore, BlobWriter};

/// The block size of chunk hashes and of sync transfers (DESIGN.md §2).
pub const CHUNK_SIZE: usize = 1024 * 1024;
const QUEUE: usize = 4;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Digests {
    pub size: u64,
    pub sha1: String,
    pub sha256: String,
    pub chunks: Vec<String>,
}

pub struct Ingest {
    block: BytesMut,
    size: u64,
    lanes: Option<[mpsc::Sender<Bytes>; 3]>,
    writer: JoinHandle<io::Result<(Box<dyn BlobWriter>, String)>>,
    sha256: JoinHandle<String>,
    chunks: JoinHandle<Vec<String>>,
}

/// A finished upload, hashed and staged but not yet visible.
pub struct Received {
    pub digests: Digests,
    writer: Box<dyn BlobWriter>,
}

impl Received {
    /// Makes the bytes durable under their sha256. Dropping instead discards them.
    pub async fn commit(self) -> io::Result<()> {
        let sha = self.digests.sha256.clone();
        let w = self.writer;
        tokio::task::spawn_blocking(move || w.commit(&sha)).await?
    }
}

impl Ingest {
    pub async fn start(store: &dyn BlobStore) -> io::Result<Ingest> {
        let mut out = store.begin().await?;
        let (wtx, mut wrx) = mpsc::channel::<Bytes>(QUEUE);
        let (stx, mut srx) = mpsc::channel::<Bytes>(QUEUE);
        let (ctx, mut crx) = mpsc::channel::<Bytes>(QUEUE);
        let writer = tokio::task::spawn_blocking(move || {
            let mut sha1 = Sha1::new();
            while let Some(b) = wrx.blocking_recv() {
                out.write(&b)?;
                sha1.update(&b);
            }
            Ok((out, hex::encode(sha1.finalize())))
        });
        let sha256 = tokio::task::spawn_blocking(move || {
            let mut h = Sha256::new();
            while let Some(b) = srx.blocking_recv() {
                h.update(&b);
            }
            hex::encode(h.finalize())
        });
        let chunks = tokio::task::spawn_blocking(move || {
            let mut list = Vec::new();
            while let Some(b) = crx.blocking_recv() {
                list.push(hex::encode(Sha1::digest(&b)));
            }
            list
        });
        Ok(Ingest {
            block: BytesMut::with_capacity(CHUNK_SIZE),
            size: 0,
            lanes: Some([wtx, stx, ctx]),
            writer,
            sha256,
            chunks,
        })
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    /// Takes the next piece of the body.
    pub async fn feed(&mut self, mut data: Bytes) -> io::Result<()> {
        self.size += data.len() as u64;
        while !data.is_empty() {
            let room = CHUNK_SIZE - self.block.len();
            let take = room.min(data.len());
            self.block.extend_from_slice(&data.split_to(take));
            if self.block.len() == CHUNK_SIZE {
                self.dispatch().await?;
            }
        }
        Ok(())
    }

    async fn dispatch(&mut self) -> io::Result<()> {
        let block =
            std::mem::replace(&mut self.block, BytesMut::with_capacity(CHUNK_SIZE)).freeze();
        let lanes = self.lanes.as_ref().expect("feed after finish");
        for lane in lanes {
            if lane.send(block.clone()).await.is_err() {
                // A lane stopped early: the writer failed; `finish` reports why.
                return Err(io::Error::other("the staging writer stopped"));
            }
        }
        Ok(())
    }

    /// Flushes the last short chunk and collects the hashes.
    pub async fn finish(mut self) -> io::Result<Received> {
        let sent = if self.block.is_empty() {
            Ok(())
        } else {
            self.dispatch().await
        };
        self.lanes = None; // closes the channels: the threads finish
        // A writer error explains a failed send better than the send error itself.
        let (writer, sha1) = self.writer.await??;
        sent?;
        let sha256 = self.sha256.await?;
        let chunks = self.chunks.await?;
        Ok(Received {
            digests: Digests {
                size: self.size,
                sha1,
                sha256,
                chunks,
            },
            writer,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::local::LocalStore;

    #[tokio::test]
    async fn hashes_match_one_shot_and_commit_is_atomic() {
        let dir = tempfile::tempdir().unwrap();
        let store =
            LocalStore::open(dir.path().join("blobs"), None, "t-1-00000000".into(), true).unwrap();
        let data: Vec<u8> = (0..(CHUNK_SIZE * 2 + 12345))
            .map(|i| (i * 31 % 251) as u8)
            .collect();
        let mut ing = Ingest::start(&store).await.unwrap();
        for piece in data.chunks(70_001) {
            ing.feed(Bytes::copy_from_slice(piece)).await.unwrap();
        }
        let rec = ing.finish().await.unwrap();
        let d = rec.digests.clone();
        assert_eq!(d.size, data.len() as u64);
        assert_eq!(d.sha1, hex::encode(Sha1::digest(&data)));
        assert_eq!(d.sha256, hex::encode(Sha256::digest(&data)));
        assert_eq!(d.chunks.len(), 3);
        assert_eq!(
            d.chunks[2],
            hex::encode(Sha1::digest(&data[CHUNK_SIZE * 2..]))
        );
        assert_eq!(
            store.size(&d.sha256).await.unwrap(),
            None,
            "not visible before commit"
        );
        rec.commit().await.unwrap();
        assert_eq!(
            store.size(&d.sha256).await.unwrap(),
            Some(data.len() as u64)
        );
        assert_eq!(store.sweep_staging(&Default::default()).await.unwrap(), 0);
    }

    #[tokio::test]
    async fn dropped_upload_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store =
            LocalStore::open(dir.path().join("blobs"), None, "t-1-00000000".into(), true).unwrap();
        let mut ing = Ingest::start(&store).await.unwrap();
        ing.feed(Bytes::from_static(b"partial")).await.unwrap();
        let rec = ing.finish().await.unwrap();
        drop(rec);
        let staged = std::fs::read_dir(dir.path().join("blobs/.staging"))
            .unwrap()
            .count();
        assert_eq!(staged, 0);
    }
}
