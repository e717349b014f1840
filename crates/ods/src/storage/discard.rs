//! Removes the partial file of a transfer that will not complete here.

use serde::{Deserialize, Serialize};

use super::Context;
use crate::jobs::{Job, Run};

#[derive(Debug, Serialize, Deserialize)]
pub struct DiscardPartial {
    pub uuid: String,
}

impl Job for DiscardPartial {
    const KIND: &'static str = "discard_partial";
    fn dedup_key(&self) -> Option<String> {
        Some(format!("discard:{}", self.uuid))
    }
}

impl<C: Context> Run<C> for DiscardPartial {
    async fn run(self, ctx: C) -> anyhow::Result<()> {
        let mut conn = ctx.db().writer().acquire().await?;
        if crate::db::packages::by_uuid(ctx.db(), &mut conn, &self.uuid)
            .await?
            .is_none()
        {
            ctx.store().discard_partial(&self.uuid).await?;
        }
        Ok(())
    }
}
