//! Removes the partial file of a transfer that will not complete here.

use serde::{Deserialize, Serialize};

use super::Job;
use crate::app::App;

#[derive(Debug, Serialize, Deserialize)]
pub struct DiscardPartial {
    pub uuid: String,
}

impl Job for DiscardPartial {
    const KIND: &'static str = "discard_partial";
    fn dedup_key(&self) -> Option<String> {
        Some(format!("discard:{}", self.uuid))
    }
    async fn run(self, app: App) -> anyhow::Result<()> {
        let mut conn = app.db.writer().acquire().await?;
        if crate::db::packages::by_uuid(&app.db, &mut conn, &self.uuid)
            .await?
            .is_none()
        {
            app.store.discard_partial(&self.uuid).await?;
        }
        Ok(())
    }
}
