//! Frees the content of a deleted or replaced package once no package uses it.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::Job;
use crate::app::App;
use crate::db;
use crate::storage::Removal;

#[derive(Debug, Serialize, Deserialize)]
pub struct BlobGc {
    pub sha256: String,
}

/// An upload commits its content (or finds it already stored, which refreshes its age)
/// just before it records its package: content used this recently is left alone and
/// looked at again later, so an upload of the same bytes racing a delete keeps them.
pub const IN_USE_GRACE: Duration = Duration::from_secs(10);

impl BlobGc {
    async fn later(&self, app: &App, age: Duration) -> anyhow::Result<()> {
        let wait = IN_USE_GRACE.saturating_sub(age) + Duration::from_millis(500);
        let mut conn = app.db.writer().acquire().await?;
        // This row is 'running', so the dedup key does not stop the new one.
        super::enqueue(&app.db, &mut conn, self, wait).await?;
        tracing::debug!(sha256 = %self.sha256, ?wait, "content used moments ago; collecting later");
        Ok(())
    }
}

impl Job for BlobGc {
    const KIND: &'static str = "blob_gc";
    fn dedup_key(&self) -> Option<String> {
        Some(format!("blob_gc:{}", self.sha256))
    }
    async fn run(self, app: App) -> anyhow::Result<()> {
        let mut conn = app.db.reader().acquire().await?;
        if db::packages::blob_refs(&app.db, &mut conn, &self.sha256).await? > 0 {
            return Ok(()); // still in use
        }
        drop(conn);
        if let Some(age) = app.store.age(&self.sha256).await?
            && age < IN_USE_GRACE
        {
            return self.later(&app, age).await;
        }
        let mut tx = app.db.begin().await?;
        let unused = db::packages::delete_unused_blob(&app.db, &mut tx, &self.sha256).await?;
        tx.commit().await?;
        if unused {
            match app.store.delete_if_idle(&self.sha256, IN_USE_GRACE).await? {
                Removal::Deleted => {
                    tracing::info!(sha256 = %self.sha256, "content no longer used: removed")
                }
                Removal::Missing => {}
                Removal::Recent(age) => return self.later(&app, age).await,
            }
        }
        Ok(())
    }
}
