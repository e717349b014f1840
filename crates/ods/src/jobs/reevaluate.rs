//! After this server's stage changed: fetch what now qualifies, drop what does not.

use serde::{Deserialize, Serialize};

use super::Job;
use crate::app::App;

#[derive(Debug, Serialize, Deserialize)]
pub struct Reevaluate;

impl Job for Reevaluate {
    const KIND: &'static str = "reevaluate";
    fn dedup_key(&self) -> Option<String> {
        Some("reevaluate".into())
    }
    async fn run(self, app: App) -> anyhow::Result<()> {
        crate::sync::apply::reevaluate_all(&app).await
    }
}
