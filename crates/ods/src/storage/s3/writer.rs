//! One upload into the bucket (the `BlobWriter` of S3). Bytes gather into 8 MiB parts;
//! the multipart upload of `staging/<name>` starts with the first full part (a file
//! smaller than one part is one PUT at commit) and is recorded in `uploads/<name>` for
//! the sweep (that marker is written empty before the upload is created, then given
//! its id). At most two parts are in flight, so memory stays at about 24 MiB whatever
//! the size. Commit completes the upload and settles the content (copy into
//! `blobs/<sha256>` unless stored already); dropping the writer aborts the multipart
//! upload.

use std::collections::VecDeque;
use std::io;
use std::sync::Arc;

use bytes::Bytes;
use object_store::PutPayload;
use object_store::multipart::{MultipartStore, PartId};
use object_store::path::Path;
use tokio::task::JoinHandle;

use super::{Inner, Own, PARTS_IN_FLIGHT, UPLOAD_PART, io_err};

pub(super) struct S3Writer {
    inner: Arc<Inner>,
    name: String,
    buf: Vec<u8>,
    size: u64,
    /// The multipart upload of the staging object, once started.
    upload: Option<String>,
    inflight: VecDeque<JoinHandle<io::Result<PartId>>>,
    parts: Vec<PartId>,
    done: bool,
}

impl S3Writer {
    pub(super) fn new(inner: Arc<Inner>, name: String) -> S3Writer {
        S3Writer {
            inner,
            name,
            buf: Vec::new(),
            size: 0,
            upload: None,
            inflight: VecDeque::new(),
            parts: Vec::new(),
            done: false,
        }
    }

    fn staged(&self) -> Path {
        self.inner.key("staging", &self.name)
    }

    /// Starts the multipart upload and records its id for the sweep. The marker is
    /// written first (empty): a process killed before it records the id leaves a
    /// marker the sweep finds, and the sweep looks the upload up by its key.
    fn start(&mut self) -> io::Result<String> {
        if let Some(id) = &self.upload {
            return Ok(id.clone());
        }
        let (inner, staged) = (self.inner.clone(), self.staged());
        let marker = inner.key("uploads", &self.name);
        let id = inner.rt.block_on(async {
            inner.put(&marker, Bytes::new()).await?;
            let id = match inner.s3.create_multipart(&staged).await {
                Ok(id) => id,
                Err(e) => {
                    let _ = inner.delete(&marker).await;
                    return Err(io_err("CreateMultipartUpload", e));
                }
            };
            if let Err(e) = inner.put(&marker, Bytes::from(id.clone())).await {
                let _ = inner.s3.abort_multipart(&staged, &id).await;
                return Err(e);
            }
            Ok::<_, io::Error>(id)
        })?;
        self.upload = Some(id.clone());
        Ok(id)
    }

    /// Sends `data` as the next part, first waiting for the oldest part if enough are
    /// in flight.
    fn send(&mut self, data: Vec<u8>) -> io::Result<()> {
        let id = self.start()?;
        while self.inflight.len() >= PARTS_IN_FLIGHT {
            self.wait_oldest()?;
        }
        let idx = self.parts.len() + self.inflight.len();
        let (inner, staged) = (self.inner.clone(), self.staged());
        let payload = PutPayload::from(Bytes::from(data));
        self.inflight.push_back(self.inner.rt.spawn(async move {
            inner
                .s3
                .put_part(&staged, &id, idx, payload)
                .await
                .map_err(|e| io_err("UploadPart", e))
        }));
        Ok(())
    }

    fn wait_oldest(&mut self) -> io::Result<()> {
        if let Some(h) = self.inflight.pop_front() {
            let part = self
                .inner
                .rt
                .block_on(h)
                .map_err(|e| io::Error::other(format!("an upload part task failed: {e}")))??;
            self.parts.push(part);
        }
        Ok(())
    }

    fn finish(&mut self, sha256: &str) -> io::Result<()> {
        let inner = self.inner.clone();
        if self.upload.is_none() {
            let data = Bytes::from(std::mem::take(&mut self.buf));
            return inner
                .rt
                .block_on(inner.settle(sha256, self.size, Own::Bytes(data)));
        }
        if !self.buf.is_empty() {
            let last = std::mem::take(&mut self.buf);
            self.send(last)?;
        }
        while !self.inflight.is_empty() {
            self.wait_oldest()?;
        }
        let id = self.upload.clone().unwrap_or_default();
        let staged = self.staged();
        let parts = std::mem::take(&mut self.parts);
        inner.rt.block_on(async {
            inner
                .s3
                .complete_multipart(&staged, &id, parts)
                .await
                .map_err(|e| io_err("CompleteMultipartUpload", e))
        })?;
        self.upload = None; // completed: nothing left to abort
        let (size, marker) = (self.size, inner.key("uploads", &self.name));
        inner.rt.block_on(async {
            let settled = inner.settle(sha256, size, Own::Staged(&staged)).await;
            // The staging object goes whatever happened; then its record.
            inner.delete(&staged).await?;
            inner.delete(&marker).await?;
            settled
        })
    }
}

impl crate::storage::BlobWriter for S3Writer {
    fn write(&mut self, mut buf: &[u8]) -> io::Result<()> {
        self.size += buf.len() as u64;
        while !buf.is_empty() {
            if self.buf.capacity() == 0 {
                self.buf.reserve_exact(UPLOAD_PART);
            }
            let n = (UPLOAD_PART - self.buf.len()).min(buf.len());
            self.buf.extend_from_slice(&buf[..n]);
            buf = &buf[n..];
            if self.buf.len() == UPLOAD_PART {
                let full = std::mem::take(&mut self.buf);
                self.send(full)?;
            }
        }
        Ok(())
    }

    fn commit(mut self: Box<Self>, sha256: &str) -> io::Result<()> {
        if !crate::storage::valid_sha256(sha256) {
            return Err(super::not_sha());
        }
        let r = self.finish(sha256);
        if r.is_ok() {
            self.done = true;
        }
        r
    }
}

impl Drop for S3Writer {
    /// An upload that did not commit: abort its multipart upload (in the background;
    /// the sweep catches it if this process dies first).
    fn drop(&mut self) {
        if self.done {
            return;
        }
        for h in self.inflight.drain(..) {
            h.abort();
        }
        let Some(id) = self.upload.take() else {
            return;
        };
        let (inner, staged) = (self.inner.clone(), self.staged());
        let marker = inner.key("uploads", &self.name);
        self.inner.rt.spawn(async move {
            if let Err(e) = inner.s3.abort_multipart(&staged, &id).await {
                tracing::warn!("aborting the multipart upload of a dropped upload: {e}");
                return; // the marker stays, so the sweep tries again
            }
            let _ = inner.delete(&staged).await;
            let _ = inner.delete(&marker).await;
        });
    }
}
