//! After this server's stage changed: fetch what now qualifies, drop what does not.

use serde::{Deserialize, Serialize};

use crate::app::App;
use crate::jobs::{Job, Run};

#[derive(Debug, Serialize, Deserialize)]
pub struct Reevaluate;

impl Job for Reevaluate {
    const KIND: &'static str = "reevaluate";
    fn dedup_key(&self) -> Option<String> {
        Some("reevaluate".into())
    }
}

impl Run<App> for Reevaluate {
    async fn run(self, app: App) -> anyhow::Result<()> {
        super::reevaluate_all(&app).await
    }
}
