//! Migration 5, notifications: webhooks and their deliveries, email settings and
//! digests, and the rollout bookkeeping. Frozen.

use sea_query::{ColumnDef, Index};

use super::{Step, id, index, int, int_null, long_text_null, table, text, text_null};

/// Migration 5: notifications (issue 8 items 1-3). Webhooks: `webhooks` are the subscriptions (secret
/// sealed), `webhook_deliveries` one message to one webhook (its body fixed when the
/// event was fanned out, so every attempt sends the same bytes), `webhook_attempts`
/// each try. `notify_fanned` marks the events already fanned out (see
/// `notify::fanout` for why a set and not only a cursor). Email: the SMTP settings
/// (one row, password sealed), subscriptions, and the outbox of events waiting for a
/// recipient's next digest. Rollouts: peers' holdings, the rollouts
/// announced, and the peers announced unreachable.
pub(super) fn notifications() -> Vec<Step> {
    vec![
        Step::table(
            table("email_settings")
                .col(ColumnDef::new("id").big_integer().not_null().primary_key())
                .col(text("host", 255))
                .col(int("port"))
                .col(text("security", 16))
                .col(text_null("username", 255))
                .col(long_text_null("password_sealed"))
                .col(text("from_addr", 320))
                .col(int("updated"))
                .take(),
        ),
        Step::table(
            table("email_subscriptions")
                .col(id())
                .col(long_text_null("recipients"))
                .col(long_text_null("events"))
                .col(int("created"))
                .take(),
        ),
        Step::table(
            table("email_outbox")
                .col(id())
                .col(text("recipient", 320))
                .col(int_null("event_id"))
                .col(long_text_null("item"))
                .col(int("created"))
                .take(),
        ),
        index(
            "email_outbox",
            "email_outbox_recipient",
            &["recipient", "id"],
            false,
        ),
        // Rollouts (issue 8 item 3): which peers hold which package Public, and which
        // (package, stage) rollouts were announced complete.
        Step::table(
            table("peer_holdings")
                .col(text("peer_iss", 32))
                .col(text("uuid", 32))
                .primary_key(Index::create().col("peer_iss").col("uuid"))
                .take(),
        ),
        index("peer_holdings", "peer_holdings_uuid", &["uuid"], false),
        Step::table(
            table("peer_outages")
                .col(
                    ColumnDef::new("peer_id")
                        .big_integer()
                        .not_null()
                        .primary_key(),
                )
                .take(),
        ),
        Step::table(
            table("rollouts")
                .col(text("uuid", 32))
                .col(text("stage", 8))
                .primary_key(Index::create().col("uuid").col("stage"))
                .take(),
        ),
        Step::table(
            table("webhooks")
                .col(id())
                .col(text("url", 2048))
                .col(long_text_null("events"))
                .col(long_text_null("secret_sealed"))
                .col(int("enabled"))
                .col(int("created"))
                .col(int("updated"))
                .take(),
        ),
        Step::table(
            table("webhook_deliveries")
                .col(id())
                .col(int("webhook_id"))
                .col(int_null("event_id"))
                .col(text("event_type", 64))
                .col(text("msg_id", 64))
                .col(long_text_null("body"))
                .col(text("state", 16))
                .col(int("attempts"))
                .col(long_text_null("last_error"))
                .col(int("created"))
                .col(int("updated"))
                .take(),
        ),
        index(
            "webhook_deliveries",
            "webhook_deliveries_hook",
            &["webhook_id", "id"],
            false,
        ),
        Step::table(
            table("webhook_attempts")
                .col(id())
                .col(int("delivery_id"))
                .col(int("webhook_id"))
                .col(int("at_ms"))
                .col(int_null("status_code"))
                .col(int("duration_ms"))
                .col(long_text_null("error"))
                .take(),
        ),
        index(
            "webhook_attempts",
            "webhook_attempts_hook",
            &["webhook_id", "id"],
            false,
        ),
        Step::table(
            table("notify_fanned")
                .col(
                    ColumnDef::new("event_id")
                        .big_integer()
                        .not_null()
                        .primary_key(),
                )
                .take(),
        ),
    ]
}
