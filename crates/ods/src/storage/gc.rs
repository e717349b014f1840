//! Frees the content of a deleted or replaced package once no package uses it.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{Context, Removal};
use crate::db;
use crate::jobs::{self, Job, Run};

#[derive(Debug, Serialize, Deserialize)]
pub struct BlobGc {
    pub sha256: String,
}

/// An upload commits its content (or finds it already stored, which refreshes its age)
/// just before it records its package: content used this recently is left alone and
/// looked at again later, so an upload of the same bytes racing a delete keeps them.
pub const IN_USE_GRACE: Duration = Duration::from_secs(10);

impl BlobGc {
    async fn later(&self, ctx: &impl Context, age: Duration) -> anyhow::Result<()> {
        let wait = IN_USE_GRACE.saturating_sub(age) + Duration::from_millis(500);
        let mut conn = ctx.db().writer().acquire().await?;
        // This row is 'running', so the dedup key does not stop the new one.
        jobs::enqueue(ctx.db(), &mut conn, self, wait).await?;
        tracing::debug!(sha256 = %self.sha256, ?wait, "content used moments ago; collecting later");
        Ok(())
    }
}

impl Job for BlobGc {
    const KIND: &'static str = "blob_gc";
    fn dedup_key(&self) -> Option<String> {
        Some(format!("blob_gc:{}", self.sha256))
    }
}

impl<C: Context> Run<C> for BlobGc {
    async fn run(self, ctx: C) -> anyhow::Result<()> {
        let mut conn = ctx.db().reader().acquire().await?;
        if db::packages::blob_refs(ctx.db(), &mut conn, &self.sha256).await? > 0 {
            return Ok(()); // still in use
        }
        drop(conn);
        if let Some(age) = ctx.store().age(&self.sha256).await?
            && age < IN_USE_GRACE
        {
            return self.later(&ctx, age).await;
        }
        let mut tx = ctx.db().begin().await?;
        let unused = db::packages::delete_unused_blob(ctx.db(), &mut tx, &self.sha256).await?;
        tx.commit().await?;
        if unused {
            match ctx
                .store()
                .delete_if_idle(&self.sha256, IN_USE_GRACE)
                .await?
            {
                Removal::Deleted => {
                    tracing::info!(sha256 = %self.sha256, "content no longer used: removed")
                }
                Removal::Missing => {}
                Removal::Recent(age) => return self.later(&ctx, age).await,
            }
        }
        Ok(())
    }
}
