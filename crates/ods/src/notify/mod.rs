//! Notifications (DESIGN.md §5, issue 8): the events an admin can subscribe to, the
//! message each event becomes (`message`), the fan-out of recorded events to the
//! webhooks that want them (`fanout`), the webhooks themselves (`hooks`) and their
//! delivery job (`webhook`), and email (`email`: settings, digests).
//!
//! Deliveries run in a job lane of their own (`Lane`, with its own registry, wake and
//! slots, `ODS_NOTIFY_PARALLEL`): the main lane never claims them, so receivers that
//! answer slowly can hold at most the notification slots, never a sync job's.

pub mod addr;
pub mod email;
pub mod fanout;
pub mod hooks;
pub mod message;
pub mod webhook;

use tokio::sync::Notify;

use crate::app::App;
use crate::db::Db;

/// The events a subscription may name (DESIGN.md §5), plus `ods.test`.
pub const EVENTS: &[&str] = &[
    "package.uploaded",
    "package.public",
    "package.stage_changed",
    "package.deleted",
    "package.withdrawn",
    "package.sync_failed",
    "package.conflict",
    "package.rollout_complete",
    "ods.registered",
    "ods.unregistered",
    "ods.unreachable",
    "ods.recovered",
    "ods.test",
];

/// The context of the notification lane: the app, with the lane's own wake (so waking
/// it never steals a wake-up meant for the main lane, and the other way round).
#[derive(Clone)]
pub struct Lane(pub App);

impl crate::jobs::Context for Lane {
    fn db(&self) -> &Db {
        &self.0.db
    }
    fn wake(&self) -> &Notify {
        &self.0.notify_wake
    }
    fn worker_id(&self) -> &str {
        &self.0.worker_id
    }
}

/// The job kinds of the notification lane.
pub fn job_registry() -> crate::jobs::Registry<Lane> {
    let mut r = crate::jobs::Registry::new();
    r.register::<webhook::Deliver>()
        .register::<email::Digest>()
        .register::<email::TestMail>();
    r
}
