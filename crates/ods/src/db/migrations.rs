//! The one migration set. Each migration is frozen once released: new schema changes
//! are new entries at the end. Tables are defined once with sea-query and rendered for
//! the connected engine; every statement is idempotent so concurrent starts are safe.

use sea_query::{
    ColumnDef, Expr, ExprTrait, Index, IndexCreateStatement, MysqlQueryBuilder,
    PostgresQueryBuilder, Query, SqliteQueryBuilder, Table, TableAlterStatement,
    TableCreateStatement, UpdateStatement,
};
use sqlx::Row;

use super::{Db, Dialect};

mod core;
mod notifications;
use core::core_schema;
use notifications::notifications;

// Built a handful of times at start; boxing would only add noise.
#[allow(clippy::large_enum_variant)]
enum Step {
    Table(TableCreateStatement),
    Index(IndexCreateStatement),
    /// A data change; it must be a no-op when run twice (concurrent starts).
    Update(UpdateStatement),
    /// A new column; "it exists already" counts as done (concurrent starts).
    AddColumn(TableAlterStatement),
    /// Portable SQL the builder cannot express; a no-op when run twice.
    Sql(&'static str),
}

struct Migration {
    version: i64,
    name: &'static str,
    steps: fn() -> Vec<Step>,
}

const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "core",
        steps: core_schema,
    },
    Migration {
        version: 2,
        name: "jobs_times_in_ms",
        steps: jobs_times_in_ms,
    },
    Migration {
        version: 3,
        name: "peer_nonces",
        steps: peer_nonces,
    },
    Migration {
        version: 4,
        name: "sessions",
        steps: sessions,
    },
    Migration {
        version: 5,
        name: "notifications",
        steps: notifications,
    },
    Migration {
        version: 6,
        name: "jamf",
        steps: jamf,
    },
    Migration {
        version: 7,
        name: "jobs_dedup_slot",
        steps: jobs_dedup_slot,
    },
    Migration {
        version: 8,
        name: "nodes_and_login_limits",
        steps: nodes_and_login_limits,
    },
];

/// Migration 7: `jobs.dedup_slot` holds a job's dedup key while the key is taken
/// (queued, or running for an exclusive kind) and is unique, so two enqueues of the
/// same work cannot both succeed, whichever connections or nodes make them. Each key's
/// oldest queued job takes its slot (the derived table lets MySQL read the table it
/// updates).
fn jobs_dedup_slot() -> Vec<Step> {
    vec![
        Step::AddColumn(
            Table::alter()
                .table("jobs")
                .add_column(text_null("dedup_slot", 255))
                .take(),
        ),
        index("jobs", "jobs_dedup_slot", &["dedup_slot"], true),
        Step::Sql(
            "UPDATE jobs SET dedup_slot = dedup_key WHERE dedup_slot IS NULL AND id IN \
             (SELECT first_id FROM (SELECT MIN(id) AS first_id FROM jobs \
              WHERE state = 'queued' AND dedup_key IS NOT NULL GROUP BY dedup_key) AS firsts) \
             AND NOT EXISTS (SELECT 1 FROM (SELECT dedup_slot AS taken FROM jobs \
              WHERE dedup_slot IS NOT NULL) AS slots WHERE slots.taken = jobs.dedup_key)",
        ),
    ]
}

/// Migration 4: web UI sessions, kept in the database so every process sharing it
/// knows them (only the SHA-256 of the session token is stored), and the indexes the
/// Packages tab sorts by.
fn sessions() -> Vec<Step> {
    vec![
        Step::table(
            table("sessions")
                .col(id())
                .col(text("token_hash", 64))
                .col(int("user_id"))
                .col(int("created"))
                .col(int("last_seen"))
                .take(),
        ),
        index("sessions", "sessions_token_hash", &["token_hash"], true),
        index("sessions", "sessions_user", &["user_id"], false),
        index("sessions", "sessions_last_seen", &["last_seen"], false),
        // The Packages tab sorts in the database by these (and by filename, indexed).
        index("packages", "packages_created", &["created"], false),
        index("packages", "packages_file_size", &["file_size"], false),
    ]
}

/// Migration 6: Jamf Pro instances (per-server configuration, not synced), the state
/// of each package's record per instance, the last drift report, and the SHA3-512
/// of blobs for instances that publish it (issue 8, item 4).
fn jamf() -> Vec<Step> {
    vec![
        Step::table(
            table("jamf_instances")
                .col(id())
                .col(text("name", 255))
                .col(text("url", 2048))
                .col(text("auth", 16))
                .col(text_null("username", 255))
                .col(long_text_null("secret_sealed"))
                .col(text("stage", 8))
                .col(text("hash_type", 16))
                .col(int("wait_all"))
                .col(text("package_name", 255))
                .col(int("delete_records"))
                .col(long_text_null("token_sealed"))
                .col(int_null("token_expires"))
                .col(int_null("last_reconcile"))
                .col(long_text_null("last_error"))
                .col(int("created"))
                .col(int("updated"))
                .take(),
        ),
        Step::table(
            table("jamf_records")
                .col(int("instance_id"))
                .col(text("package_uuid", 32))
                .col(text("filename", 255))
                .col(text("state", 16))
                .col(text_null("record_id", 64))
                .col(text_null("hash_type", 16))
                .col(text_null("hash_value", 128))
                .col(long_text_null("reason"))
                .col(int("updated"))
                .primary_key(Index::create().col("instance_id").col("package_uuid"))
                .take(),
        ),
        Step::table(
            table("jamf_drift")
                .col(id())
                .col(int("instance_id"))
                .col(text("record_id", 64))
                .col(text("file_name", 255))
                .col(text("problem", 32))
                .col(long_text_null("detail"))
                .col(int("checked"))
                .take(),
        ),
        index("jamf_drift", "jamf_drift_instance", &["instance_id"], false),
        Step::table(
            table("blob_sha3")
                .col(
                    ColumnDef::new("sha256")
                        .string_len(64)
                        .not_null()
                        .primary_key(),
                )
                .col(text("sha3_512", 128))
                .take(),
        ),
    ]
}

/// Migration 3: the nonces of accepted peer requests, kept until their signature
/// window closes, so a replay is refused after a restart and by every process that
/// shares the database (issue 9, finding 7).
fn peer_nonces() -> Vec<Step> {
    vec![
        Step::table(
            table("peer_nonces")
                .col(text("nonce", 64))
                .col(int("expires"))
                .take(),
        ),
        index("peer_nonces", "peer_nonces_nonce", &["nonce"], true),
        index("peer_nonces", "peer_nonces_expires", &["expires"], false),
    ]
}

/// Migration 8: the processes sharing this database (one row per running `ods serve`
/// or `ods worker`, with its heartbeat), and the failed-login counters, so that every
/// node of a site sees one limiter.
fn nodes_and_login_limits() -> Vec<Step> {
    vec![
        Step::table(
            table("nodes")
                .col(ColumnDef::new("id").string_len(64).not_null().primary_key())
                .col(text("name", 32))
                .col(text("secret_check", 64))
                .col(int("started"))
                .col(int("last_seen"))
                .take(),
        ),
        // `k` is the SHA-256 of what is counted (an address or an account), `win` the
        // millisecond its failures happened in (0 for the record of a successful login).
        Step::table(
            table("login_limits")
                .col(text("k", 64))
                .col(int("win"))
                .col(int("n"))
                .primary_key(Index::create().col("k").col("win"))
                .take(),
        ),
        index("login_limits", "login_limits_win", &["win"], false),
    ]
}

/// Migration 2: `jobs.created` and `jobs.updated` were Unix seconds beside `run_at`
/// and `lease_until` in milliseconds; now the whole table is milliseconds. A value
/// below 10^11 is seconds (milliseconds passed 10^11 in 1973), so running this twice
/// changes nothing.
fn jobs_times_in_ms() -> Vec<Step> {
    ["created", "updated"]
        .into_iter()
        .map(|col| {
            Step::Update(
                Query::update()
                    .table("jobs")
                    .value(col, Expr::col(col).mul(1000))
                    .and_where(Expr::col(col).lt(100_000_000_000i64))
                    .take(),
            )
        })
        .collect()
}

fn id() -> ColumnDef {
    ColumnDef::new("id")
        .big_integer()
        .not_null()
        .auto_increment()
        .primary_key()
        .take()
}
fn text(name: &'static str, len: u32) -> ColumnDef {
    ColumnDef::new(name).string_len(len).not_null().take()
}
fn text_null(name: &'static str, len: u32) -> ColumnDef {
    ColumnDef::new(name).string_len(len).null().take()
}
fn long_text_null(name: &'static str) -> ColumnDef {
    ColumnDef::new(name).text().null().take()
}
fn int(name: &'static str) -> ColumnDef {
    ColumnDef::new(name).big_integer().not_null().take()
}
fn int_null(name: &'static str) -> ColumnDef {
    ColumnDef::new(name).big_integer().null().take()
}
fn table(name: &'static str) -> TableCreateStatement {
    Table::create().table(name).if_not_exists().take()
}
fn index(table: &'static str, name: &'static str, cols: &[&'static str], unique: bool) -> Step {
    let mut i = Index::create();
    i.name(name).table(table).if_not_exists();
    for c in cols {
        i.col(*c);
    }
    if unique {
        i.unique();
    }
    Step::Index(i.take())
}

impl Step {
    fn table(t: TableCreateStatement) -> Step {
        Step::Table(t)
    }

    fn render(&self, dialect: Dialect) -> String {
        match self {
            Step::Table(t) => {
                let mut sql = match dialect {
                    Dialect::Sqlite => t.to_string(SqliteQueryBuilder),
                    Dialect::Postgres => t.to_string(PostgresQueryBuilder),
                    Dialect::MySql => t.to_string(MysqlQueryBuilder),
                };
                if dialect == Dialect::MySql {
                    // Byte-exact, case-sensitive names, as on SQLite and PostgreSQL.
                    sql.push_str(" ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin");
                }
                sql
            }
            Step::Index(i) => match dialect {
                Dialect::Sqlite => i.to_string(SqliteQueryBuilder),
                Dialect::Postgres => i.to_string(PostgresQueryBuilder),
                Dialect::MySql => i.to_string(MysqlQueryBuilder),
            },
            Step::Update(u) => match dialect {
                Dialect::Sqlite => u.to_string(SqliteQueryBuilder),
                Dialect::Postgres => u.to_string(PostgresQueryBuilder),
                Dialect::MySql => u.to_string(MysqlQueryBuilder),
            },
            Step::AddColumn(a) => match dialect {
                Dialect::Sqlite => a.to_string(SqliteQueryBuilder),
                Dialect::Postgres => a.to_string(PostgresQueryBuilder),
                Dialect::MySql => a.to_string(MysqlQueryBuilder),
            },
            Step::Sql(sql) => sql.to_string(),
        }
    }
}

/// Applies every migration not yet recorded. Safe to run from several processes.
pub async fn run(db: &Db) -> anyhow::Result<Vec<i64>> {
    let ledger = Table::create()
        .table("schema_migrations")
        .if_not_exists()
        .col(
            ColumnDef::new("version")
                .big_integer()
                .not_null()
                .primary_key(),
        )
        .col(text("name", 64))
        .col(int("applied_at"))
        .take();
    sqlx::raw_sql(sqlx::AssertSqlSafe(Step::table(ledger).render(db.dialect)))
        .execute(db.writer())
        .await?;
    let done: Vec<i64> = db
        .q("SELECT version FROM schema_migrations")
        .fetch_all(db.writer())
        .await?
        .iter()
        .map(|r| r.get::<i64, _>(0))
        .collect();
    let mut applied = Vec::new();
    for m in MIGRATIONS.iter().filter(|m| !done.contains(&m.version)) {
        for step in (m.steps)() {
            let sql = step.render(db.dialect);
            match sqlx::raw_sql(sqlx::AssertSqlSafe(sql.clone()))
                .execute(db.writer())
                .await
            {
                Ok(_) => {}
                // MySQL has no CREATE INDEX IF NOT EXISTS: "duplicate key name" means done.
                Err(sqlx::Error::Database(e))
                    if matches!(step, Step::Index(_))
                        && e.code().as_deref() == Some("42000")
                        && e.message().contains("Duplicate key name") => {}
                // SQLite: "duplicate column name"; PostgreSQL 42701; MySQL "Duplicate column name".
                Err(sqlx::Error::Database(e))
                    if matches!(step, Step::AddColumn(_))
                        && (e.code().as_deref() == Some("42701")
                            || e.message()
                                .to_ascii_lowercase()
                                .contains("duplicate column")) => {}
                Err(e) => anyhow::bail!("migration {} ({}) failed: {e}\n{sql}", m.version, m.name),
            }
        }
        let rec = db
            .q("INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)")
            .bind(m.version)
            .bind(m.name)
            .bind(crate::model::now_unix())
            .execute(db.writer())
            .await;
        match rec {
            Ok(_) => applied.push(m.version),
            Err(e) if super::is_unique_violation(&e) => {} // another process got there first
            Err(e) => return Err(e.into()),
        }
    }
    Ok(applied)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ddl_renders_for_every_engine() {
        for d in [Dialect::Sqlite, Dialect::Postgres, Dialect::MySql] {
            for step in core_schema() {
                let sql = step.render(d);
                let idempotent = sql.contains("IF NOT EXISTS")
                    || (d == Dialect::MySql && matches!(step, Step::Index(_)));
                assert!(idempotent, "{d:?}: {sql}");
            }
        }
        for d in [Dialect::Sqlite, Dialect::Postgres, Dialect::MySql] {
            for step in jobs_times_in_ms() {
                let sql = step.render(d);
                assert!(
                    sql.contains("* 1000") && sql.contains("< 100000000000"),
                    "{d:?}: {sql}"
                );
            }
        }
        let pk = Step::table(table("t").col(id()).take());
        let sqlite = pk.render(Dialect::Sqlite);
        assert!(sqlite.contains("AUTOINCREMENT"), "{sqlite}");
        assert!(pk.render(Dialect::MySql).contains("AUTO_INCREMENT"));
    }

    #[tokio::test]
    async fn jobs_times_become_milliseconds_once() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("m.db").display());
        let db = Db::connect(&url).await.unwrap();
        // A database as migration 1 left it, with a job written in seconds.
        run(&db).await.unwrap();
        db.q("DELETE FROM schema_migrations WHERE version = 2")
            .execute(db.writer())
            .await
            .unwrap();
        db.q("INSERT INTO jobs (kind, payload, dedup_key, state, attempts, max_attempts, run_at, created, updated) \
              VALUES ('sweep', 'null', NULL, 'done', 1, 12, 1700000000123, 1700000000, 1700000001)")
            .execute(db.writer())
            .await
            .unwrap();
        let times = || async {
            let r = db
                .q("SELECT run_at, created, updated FROM jobs")
                .fetch_one(db.reader())
                .await
                .unwrap();
            (r.get::<i64, _>(0), r.get::<i64, _>(1), r.get::<i64, _>(2))
        };
        assert_eq!(run(&db).await.unwrap(), [2]);
        let want = (1_700_000_000_123, 1_700_000_000_000, 1_700_000_001_000);
        assert_eq!(times().await, want);
        // Run again (as a second process starting at the same moment might): no change.
        for step in jobs_times_in_ms() {
            sqlx::raw_sql(sqlx::AssertSqlSafe(step.render(db.dialect)))
                .execute(db.writer())
                .await
                .unwrap();
        }
        assert_eq!(times().await, want);
        db.close().await;
    }
}
