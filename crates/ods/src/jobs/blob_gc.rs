//! Frees the content of a deleted or replaced package once no package uses it.

use serde::{Deserialize, Serialize};

use super::Job;
use crate::app::App;
use crate::db;

#[derive(Debug, Serialize, Deserialize)]
pub struct BlobGc {
    pub sha256: String,
}

impl Job for BlobGc {
    const KIND: &'static str = "blob_gc";
    fn dedup_key(&self) -> Option<String> {
        Some(format!("blob_gc:{}", self.sha256))
    }
    async fn run(self, app: App) -> anyhow::Result<()> {
        let mut tx = app.db.begin().await?;
        let unused = db::packages::delete_unused_blob(&app.db, &mut tx, &self.sha256).await?;
        tx.commit().await?;
        if unused {
            app.store.delete(&self.sha256).await?;
            tracing::info!(sha256 = %self.sha256, "content no longer used: removed");
        }
        Ok(())
    }
}
