//! A peer transfer's file on S3: each 1 MiB chunk is its own object
//! `partial/<key>/<index>`, durable once its PUT returns (so `sync` has nothing left to
//! do and a restart resumes from the chunks the database records). `read_at` reads
//! them back (the last few are cached: the whole-file SHA-256 and SHA-1 read the same
//! chunks side by side). `commit` settles the content; its own copy is a multipart
//! upload of `blobs/<sha256>` streamed from the chunks, 8 chunks a part.

use std::collections::VecDeque;
use std::io;
use std::sync::{Arc, Mutex};

use bytes::{Bytes, BytesMut};
use futures_util::{StreamExt, TryStreamExt};
use object_store::ObjectStore;
use object_store::ObjectStoreExt;
use object_store::PutPayload;
use object_store::multipart::{MultipartStore, PartId};
use object_store::path::Path;

use super::{Inner, Own, io_err};

/// The transfer chunk size (`ingest::CHUNK_SIZE`, DESIGN.md §2).
const CHUNK_SIZE: usize = 1024 * 1024;

const CACHED_CHUNKS: usize = 4;
const CHUNKS_PER_PART: usize = 8;
const PARTS_IN_FLIGHT: usize = 2;

pub(crate) struct S3Partial {
    inner: Arc<Inner>,
    key: String,
    size: u64,
    cache: Mutex<VecDeque<(u64, Bytes)>>,
}

impl S3Partial {
    pub(super) fn new(inner: Arc<Inner>, key: &str, size: u64) -> io::Result<S3Partial> {
        if key.is_empty() || key.len() > 64 || !key.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "bad transfer key",
            ));
        }
        Ok(S3Partial {
            inner,
            key: key.to_string(),
            size,
            cache: Mutex::new(VecDeque::new()),
        })
    }

    fn chunk(&self, idx: u64) -> Path {
        self.inner.key("partial", &format!("{}/{idx:08}", self.key))
    }

    async fn fetch(&self, idx: u64) -> io::Result<Bytes> {
        if let Some((_, b)) = self.cache.lock().unwrap().iter().find(|(i, _)| *i == idx) {
            return Ok(b.clone());
        }
        let b = match self.inner.s3.get(&self.chunk(idx)).await {
            Ok(got) => got.bytes().await.map_err(|e| io_err("GET", e))?,
            Err(object_store::Error::NotFound { .. }) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("chunk {idx} of the transfer is not stored"),
                ));
            }
            Err(e) => return Err(io_err("GET", e)),
        };
        let mut cache = self.cache.lock().unwrap();
        if cache.len() >= CACHED_CHUNKS {
            cache.pop_front();
        }
        cache.push_back((idx, b.clone()));
        Ok(b)
    }

    /// Deletes every chunk object of the transfer.
    pub(super) async fn remove(&self) -> io::Result<()> {
        let i = &self.inner;
        let prefix = i.key("partial", &self.key);
        let found = i.s3.list(Some(&prefix)).map_ok(|m| m.location).boxed();
        i.s3.delete_stream(found)
            .try_collect::<Vec<_>>()
            .await
            .map_err(|e| io_err("DELETE", e))?;
        Ok(())
    }

    /// Uploads the chunks as `to`, a multipart upload aborted on any failure.
    pub(super) async fn assemble(&self, i: &Inner, to: &Path, size: u64) -> io::Result<()> {
        let chunks = size.div_ceil(CHUNK_SIZE as u64);
        if chunks <= 1 {
            let data = if size == 0 {
                Bytes::new()
            } else {
                self.fetch(0).await?
            };
            return i.put(to, data).await;
        }
        let id =
            i.s3.create_multipart(to)
                .await
                .map_err(|e| io_err("CreateMultipartUpload", e))?;
        let parts = chunks.div_ceil(CHUNKS_PER_PART as u64);
        let sent: io::Result<Vec<PartId>> = futures_util::stream::iter(0..parts)
            .map(|p| {
                let id = id.clone();
                async move {
                    let mut data = BytesMut::new();
                    let first = p * CHUNKS_PER_PART as u64;
                    for c in first..(first + CHUNKS_PER_PART as u64).min(chunks) {
                        data.extend_from_slice(&self.fetch(c).await?);
                    }
                    i.s3.put_part(to, &id, p as usize, PutPayload::from(data.freeze()))
                        .await
                        .map_err(|e| io_err("UploadPart", e))
                }
            })
            .buffered(PARTS_IN_FLIGHT)
            .try_collect()
            .await;
        let done = match sent {
            Ok(parts) => {
                i.s3.complete_multipart(to, &id, parts)
                    .await
                    .map(|_| ())
                    .map_err(|e| io_err("CompleteMultipartUpload", e))
            }
            Err(e) => Err(e),
        };
        if done.is_err() {
            let _ = i.s3.abort_multipart(to, &id).await;
        }
        done
    }
}

impl crate::storage::PartialBlob for S3Partial {
    fn write_at(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        let chunk = CHUNK_SIZE as u64;
        if !offset.is_multiple_of(chunk)
            || data.len() > CHUNK_SIZE
            || offset + data.len() as u64 > self.size
        {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "S3 transfers are written one whole chunk at a time",
            ));
        }
        let idx = offset / chunk;
        self.cache.lock().unwrap().retain(|(i, _)| *i != idx);
        let i = &self.inner;
        i.rt.block_on(i.put(&self.chunk(idx), Bytes::copy_from_slice(data)))
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        let chunk = CHUNK_SIZE as u64;
        let mut done = 0usize;
        while done < buf.len() {
            let at = offset + done as u64;
            let (idx, within) = (at / chunk, (at % chunk) as usize);
            let data = self.inner.rt.block_on(self.fetch(idx))?;
            if data.len() <= within {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "past the end of a chunk",
                ));
            }
            let n = (data.len() - within).min(buf.len() - done);
            buf[done..done + n].copy_from_slice(&data[within..within + n]);
            done += n;
        }
        Ok(())
    }

    fn sync(&self) -> io::Result<()> {
        Ok(()) // every chunk was durable when its PUT returned
    }

    fn commit(&self, sha256: &str) -> io::Result<()> {
        let i = &self.inner;
        i.rt.block_on(async {
            i.settle(sha256, self.size, Own::Chunks(self)).await?;
            self.remove().await
        })
    }
}
