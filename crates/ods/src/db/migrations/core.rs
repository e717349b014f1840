//! Migration 1, the core schema as first released: the server's identity, users,
//! packages, the synced catalog, peers, transfers, jobs and events. Frozen.

use sea_query::{ColumnDef, Index};

use super::{Step, id, index, int, int_null, long_text_null, table, text, text_null};

/// Migration 1: every table and index of the first release.
pub(super) fn core_schema() -> Vec<Step> {
    vec![
        // This server's identity and settings: one row, id = 1.
        Step::table(
            table("server")
                .col(ColumnDef::new("id").big_integer().not_null().primary_key())
                .col(text("name", 255))
                .col(text_null("url", 2048))
                .col(text("iss", 32))
                .col(long_text_null("key_sealed"))
                .col(text("stage", 8))
                .col(int("firewalled"))
                .col(text("download_auth", 16))
                .col(int("created"))
                .take(),
        ),
        // Content: one row per distinct file content, shared by filenames.
        Step::table(
            table("blobs")
                .col(
                    ColumnDef::new("sha256")
                        .string_len(64)
                        .not_null()
                        .primary_key(),
                )
                .col(int("file_size"))
                .col(text("sha1", 40))
                .col(text_null("sha512", 128))
                .col(text_null("md5", 32))
                .col(int("created"))
                .take(),
        ),
        Step::table(
            table("chunks")
                .col(text("sha256", 64))
                .col(int("idx"))
                .col(text("sha1", 40))
                .primary_key(Index::create().col("sha256").col("idx"))
                .take(),
        ),
        Step::table(
            table("packages")
                .col(id())
                .col(text("uuid", 32))
                .col(text("filename", 255))
                .col(int("file_size"))
                .col(text("sha1", 40))
                .col(text("sha256", 64))
                .col(text("stage", 8))
                .col(text("status", 16))
                .col(long_text_null("status_reason"))
                .col(int("created"))
                .col(int("updated"))
                .take(),
        ),
        index("packages", "packages_uuid", &["uuid"], true),
        index("packages", "packages_filename", &["filename"], true),
        index("packages", "packages_sha256", &["sha256"], false),
        Step::table(
            table("users")
                .col(id())
                .col(text("username", 64))
                .col(text("password_hash", 255))
                .col(text("role", 16))
                .col(int("must_change_password"))
                .col(int("created"))
                .col(int("updated"))
                .take(),
        ),
        index("users", "users_username", &["username"], true),
        Step::table(
            table("api_tokens")
                .col(id())
                .col(int("user_id"))
                .col(text("name", 255))
                .col(text("token_hash", 64))
                .col(int("created"))
                .col(int_null("last_used"))
                .take(),
        ),
        index("api_tokens", "api_tokens_hash", &["token_hash"], true),
        index("api_tokens", "api_tokens_user", &["user_id"], false),
        Step::table(
            table("peers")
                .col(id())
                .col(text("iss", 32))
                .col(text("name", 255))
                .col(text_null("url", 2048))
                .col(text("stage", 8))
                .col(int("firewalled"))
                .col(int("registered_on"))
                .col(long_text_null("secret_sealed"))
                .col(int("pulled"))
                .col(int("pushed"))
                .col(int_null("last_contact"))
                .col(long_text_null("last_error"))
                .col(int_null("rate_limit"))
                .take(),
        ),
        index("peers", "peers_iss", &["iss"], true),
        Step::table(
            table("jobs")
                .col(id())
                .col(text("kind", 64))
                .col(long_text_null("payload"))
                .col(text_null("dedup_key", 255))
                .col(text("state", 16))
                .col(int("attempts"))
                .col(int("max_attempts"))
                .col(int("run_at"))
                .col(int_null("lease_until"))
                .col(text_null("locked_by", 64))
                .col(long_text_null("last_error"))
                .col(int("created"))
                .col(int("updated"))
                .take(),
        ),
        index("jobs", "jobs_due", &["state", "run_at"], false),
        index("jobs", "jobs_dedup", &["dedup_key", "state"], false),
        // The network-wide record of every package this server knows of, held or not,
        // live or deleted: what it relays to peers (ordered by the local change `seq`).
        Step::table(
            table("catalog")
                .col(
                    ColumnDef::new("uuid")
                        .string_len(32)
                        .not_null()
                        .primary_key(),
                )
                .col(text("filename", 255))
                .col(int("file_size"))
                .col(text("sha1", 40))
                .col(text("sha256", 64))
                .col(text("stage", 8))
                .col(text("version", 64))
                .col(text("created_version", 64))
                .col(text("origin_iss", 32))
                .col(int("created"))
                .col(int("deleted"))
                .col(int("seq"))
                .take(),
        ),
        index("catalog", "catalog_seq", &["seq"], false),
        index("catalog", "catalog_filename", &["filename"], false),
        Step::table(
            table("counters")
                .col(
                    ColumnDef::new("name")
                        .string_len(32)
                        .not_null()
                        .primary_key(),
                )
                .col(int("value"))
                .take(),
        ),
        // Chunks of an incoming transfer already written and verified (resume state).
        Step::table(
            table("transfer_chunks")
                .col(text("uuid", 32))
                .col(int("idx"))
                .primary_key(Index::create().col("uuid").col("idx"))
                .take(),
        ),
        Step::table(
            table("events")
                .col(id())
                .col(text("kind", 32))
                .col(text_null("package_uuid", 32))
                .col(text_null("filename", 255))
                .col(text_null("peer_iss", 32))
                .col(long_text_null("message"))
                .col(int("created"))
                .take(),
        ),
        index("events", "events_kind", &["kind"], false),
    ]
}
