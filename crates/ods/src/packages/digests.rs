//! Computes the SHA-512 and MD5 of stored content (what Jamf Pro records use), once,
//! off the upload path, and keeps them with the blob.

use futures_util::StreamExt;
use md5::Md5;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha512};

use crate::db;
use crate::jobs::{Job, Run};
use crate::storage::Context;

#[derive(Debug, Serialize, Deserialize)]
pub struct Digests {
    pub sha256: String,
}

impl Job for Digests {
    const KIND: &'static str = "digests";
    fn dedup_key(&self) -> Option<String> {
        Some(format!("digests:{}", self.sha256))
    }
}

impl<C: Context> Run<C> for Digests {
    async fn run(self, ctx: C) -> anyhow::Result<()> {
        let Some(blob) = db::packages::blob(ctx.db(), &self.sha256).await? else {
            return Ok(()); // deleted meanwhile
        };
        if blob.sha512.is_some() && blob.md5.is_some() {
            return Ok(());
        }
        let mut stream = ctx
            .store()
            .read(&self.sha256, 0, blob.file_size as u64)
            .await?;
        let (tx, mut rx) = tokio::sync::mpsc::channel::<bytes::Bytes>(4);
        let hasher = tokio::task::spawn_blocking(move || {
            let (mut s, mut m) = (Sha512::new(), Md5::new());
            while let Some(b) = rx.blocking_recv() {
                s.update(&b);
                m.update(&b);
            }
            (hex::encode(s.finalize()), hex::encode(m.finalize()))
        });
        while let Some(piece) = stream.next().await {
            if tx.send(piece?).await.is_err() {
                break;
            }
        }
        drop(tx);
        let (sha512, md5) = hasher.await?;
        db::packages::set_extra_digests(ctx.db(), &self.sha256, &sha512, &md5).await?;
        Ok(())
    }
}
