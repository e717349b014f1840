//! What runs beside an incoming transfer, off its fetch path: the whole-file SHA-256
//! and SHA-1 folded over the chunks in order as they arrive in any order (one blocking
//! thread per digest; chunks verified in an earlier run, and any the thread could not
//! hold, are read back from the partial file), and the recorder that makes written
//! chunks durable and records them as done, in batches, while the next ones arrive.

use std::collections::{BTreeMap, HashSet};
use std::io;
use std::sync::Arc;
use std::sync::mpsc;

use bytes::Bytes;
use sha2::Digest;
use tokio::task::JoinHandle;

use crate::app::App;
use crate::db::transfers;
use crate::ingest::CHUNK_SIZE;
use crate::storage::PartialBlob;

/// Chunks a digest thread keeps in memory while it waits for an earlier one; beyond
/// that it drops the bytes and reads the chunk back from the file when its turn comes.
const MAX_HELD: usize = 24;

/// One whole-file digest being folded in order.
pub struct Fold {
    tx: mpsc::Sender<(usize, Bytes)>,
    task: JoinHandle<io::Result<String>>,
}

impl Fold {
    /// Starts a digest `D` over the `n` chunks of a `size`-byte partial file; `before`
    /// are the chunks already there (verified by an earlier run), read from the file.
    pub fn start<D: Digest + Send + 'static>(
        partial: Arc<dyn PartialBlob>,
        size: u64,
        before: Arc<HashSet<usize>>,
    ) -> Fold {
        let (tx, rx) = mpsc::channel::<(usize, Bytes)>();
        let task = tokio::task::spawn_blocking(move || fold::<D>(&*partial, size, &before, rx));
        Fold { tx, task }
    }

    /// Hands over chunk `idx`, verified and written to the partial file.
    pub fn push(&self, idx: usize, data: Bytes) {
        // The thread is gone only when it failed: `finish` reports that.
        let _ = self.tx.send((idx, data));
    }

    /// The hex digest, once every chunk was pushed (an error if one was not).
    pub async fn finish(self) -> anyhow::Result<String> {
        drop(self.tx);
        Ok(self.task.await??)
    }
}

fn chunk_len(size: u64, idx: usize) -> usize {
    (size - (idx * CHUNK_SIZE) as u64).min(CHUNK_SIZE as u64) as usize
}

fn fold<D: Digest>(
    partial: &dyn PartialBlob,
    size: u64,
    before: &HashSet<usize>,
    rx: mpsc::Receiver<(usize, Bytes)>,
) -> io::Result<String> {
    let n = (size as usize).div_ceil(CHUNK_SIZE);
    let mut h = D::new();
    let mut held: BTreeMap<usize, Option<Bytes>> = BTreeMap::new();
    let mut buf = Vec::new();
    let mut read_back = |idx: usize, h: &mut D| -> io::Result<()> {
        let len = chunk_len(size, idx);
        buf.resize(len, 0);
        partial.read_at((idx * CHUNK_SIZE) as u64, &mut buf[..len])?;
        h.update(&buf[..len]);
        Ok(())
    };
    for next in 0..n {
        if before.contains(&next) {
            read_back(next, &mut h)?;
            continue;
        }
        let got = loop {
            if let Some(got) = held.remove(&next) {
                break got;
            }
            match rx.recv() {
                Ok((idx, data)) if idx == next => break Some(data),
                Ok((idx, data)) => {
                    let keep = held.len() < MAX_HELD;
                    held.insert(idx, keep.then_some(data));
                }
                Err(_) => {
                    return Err(io::Error::other(format!(
                        "the transfer ended without chunk {next}"
                    )));
                }
            }
        };
        match got {
            Some(data) => h.update(&data),
            None => read_back(next, &mut h)?,
        }
    }
    Ok(hex::encode(h.finalize()))
}

/// Makes written chunks durable and records them as done, in the background: each
/// round takes every chunk written since the last, one fsync, one insert.
pub struct Recorder {
    tx: tokio::sync::mpsc::UnboundedSender<usize>,
    task: JoinHandle<anyhow::Result<()>>,
}

impl Recorder {
    pub fn start(app: &App, uuid: &str, partial: Arc<dyn PartialBlob>) -> Recorder {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<usize>();
        let app = app.clone();
        let uuid = uuid.to_string();
        let task = tokio::spawn(async move {
            let mut batch = Vec::new();
            while rx.recv_many(&mut batch, 4096).await > 0 {
                let p = partial.clone();
                tokio::task::spawn_blocking(move || p.sync()).await??;
                transfers::record(&app.db, &uuid, &batch).await?;
                batch.clear();
            }
            Ok(())
        });
        Recorder { tx, task }
    }

    /// Chunk `idx` is written and verified.
    pub fn written(&self, idx: usize) {
        let _ = self.tx.send(idx);
    }

    /// Waits until everything handed over is durable and recorded.
    pub async fn finish(self) -> anyhow::Result<()> {
        drop(self.tx);
        self.task.await?
    }
}
