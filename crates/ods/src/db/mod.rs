//! The one database layer: every SQL statement of ODS lives in this module, one file
//! per table family. All three engines go through one code path: a sqlx `Any` pool, one
//! migration set (built per dialect by sea-query), and SQL written once with `?`
//! placeholders that are rewritten for PostgreSQL. Rows map with `#[derive(FromRow)]`.
//! SQLite gets one writer connection and a pool of readers so concurrent requests
//! queue instead of failing with `SQLITE_BUSY`. The pool size is `db_pool_size`. Depends only on `model` and `secrets`.

pub mod backup;
pub mod catalog;
pub mod email;
pub mod events;
pub mod jamf;
pub mod jobs;
pub mod logins;
pub mod migrations;
pub mod nodes;
pub mod nonces;
pub mod packages;
pub mod peers;
pub mod rollouts;
pub mod server;
pub mod sessions;
pub mod stats;
pub mod transfers;
pub mod users;
pub mod webhooks;

use std::borrow::Cow;
use std::time::Duration;

use sqlx::any::{AnyArguments, AnyPoolOptions, AnyRow};
use sqlx::query::Query;
use sqlx::{Any, AnyPool, AssertSqlSafe, Executor};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
    MySql,
}

/// The metadata database.
#[derive(Clone)]
pub struct Db {
    pub dialect: Dialect,
    write: AnyPool,
    read: AnyPool,
}

pub type Tx = sqlx::Transaction<'static, Any>;
pub type Q = Query<'static, Any, AnyArguments>;

/// Connections of a pool when the configuration does not say (`db_pool_size`).
pub const DEFAULT_POOL_SIZE: u32 = 16;
/// Most SQLite reader connections: more than the cores only adds memory.
const SQLITE_READERS: u32 = 8;

impl Db {
    /// Connects with the default pool size (commands and tests).
    pub async fn connect(url: &str) -> anyhow::Result<Db> {
        Self::connect_sized(url, DEFAULT_POOL_SIZE).await
    }

    /// Connects with at most `pool_size` connections (PostgreSQL, MariaDB); SQLite gets
    /// one writer and up to `SQLITE_READERS` readers, fewer when `pool_size` is smaller.
    pub async fn connect_sized(url: &str, pool_size: u32) -> anyhow::Result<Db> {
        let pool_size = pool_size.max(1);
        sqlx::any::install_default_drivers();
        let dialect = if url.starts_with("sqlite:") {
            Dialect::Sqlite
        } else if url.starts_with("postgres") {
            Dialect::Postgres
        } else {
            Dialect::MySql
        };
        let url = url.replacen("mariadb://", "mysql://", 1);
        let db = match dialect {
            Dialect::Sqlite => {
                // A local file cannot drop a connection: skip sqlx's ping before every
                // acquire (a round trip to the connection's thread, on every request).
                let pragmas = |opts: AnyPoolOptions| {
                    opts.test_before_acquire(false).after_connect(|conn, _| {
                        Box::pin(async move {
                            conn.execute(
                                "PRAGMA journal_mode = WAL; PRAGMA busy_timeout = 30000; \
                                 PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;",
                            )
                            .await?;
                            Ok(())
                        })
                    })
                };
                let write = pragmas(AnyPoolOptions::new().max_connections(1))
                    .acquire_timeout(Duration::from_secs(60))
                    .connect(&url)
                    .await?;
                let read =
                    pragmas(AnyPoolOptions::new().max_connections(pool_size.min(SQLITE_READERS)))
                        .acquire_timeout(Duration::from_secs(60))
                        .connect(&url)
                        .await?;
                Db {
                    dialect,
                    write,
                    read,
                }
            }
            _ => {
                let pool = AnyPoolOptions::new()
                    .max_connections(pool_size)
                    .acquire_timeout(Duration::from_secs(30))
                    .connect(&url)
                    .await?;
                Db {
                    dialect,
                    write: pool.clone(),
                    read: pool,
                }
            }
        };
        Ok(db)
    }

    /// The pool for statements that only read.
    pub fn reader(&self) -> &AnyPool {
        &self.read
    }

    /// The pool for statements that write (one connection on SQLite).
    pub fn writer(&self) -> &AnyPool {
        &self.write
    }

    pub async fn begin(&self) -> sqlx::Result<Tx> {
        self.write.begin().await
    }

    /// Builds a query from SQL written with `?` placeholders.
    pub fn q(&self, sql: &str) -> Q {
        sqlx::query(AssertSqlSafe(self.sql(sql).into_owned()))
    }

    /// Rewrites `?` placeholders to `$n` for PostgreSQL (our SQL has no `?` literals).
    pub fn sql<'a>(&self, sql: &'a str) -> Cow<'a, str> {
        if self.dialect != Dialect::Postgres || !sql.contains('?') {
            return Cow::Borrowed(sql);
        }
        let mut out = String::with_capacity(sql.len() + 8);
        let mut n = 0;
        for c in sql.chars() {
            if c == '?' {
                n += 1;
                out.push('$');
                out.push_str(&n.to_string());
            } else {
                out.push(c);
            }
        }
        Cow::Owned(out)
    }

    /// Turns `INSERT INTO ...` into an insert that skips rows whose key exists, so two
    /// writers racing to record the same content both succeed (and, on PostgreSQL,
    /// the transaction is not aborted by a duplicate-key error).
    pub fn insert_ignore(&self, insert_sql: &str) -> String {
        let rest = insert_sql
            .trim_start()
            .strip_prefix("INSERT INTO")
            .expect("an INSERT INTO statement");
        match self.dialect {
            Dialect::Sqlite => format!("INSERT OR IGNORE INTO{rest}"),
            Dialect::MySql => format!("INSERT IGNORE INTO{rest}"),
            Dialect::Postgres => format!("INSERT INTO{rest} ON CONFLICT DO NOTHING"),
        }
    }

    /// Runs an INSERT and returns the new row's id, on every dialect.
    pub async fn insert_id<'c, E>(
        &self,
        exec: E,
        sql: &str,
        bind: impl FnOnce(Q) -> Q,
    ) -> sqlx::Result<i64>
    where
        E: sqlx::Executor<'c, Database = Any>,
    {
        if self.dialect != Dialect::MySql {
            // PostgreSQL and SQLite (>= 3.35) return it.
            let sql = format!("{sql} RETURNING id");
            let row: AnyRow = bind(self.q(&sql)).fetch_one(exec).await?;
            return sqlx::Row::try_get::<i64, _>(&row, 0);
        }
        // MySQL reports the new id with the result (MySQL 8 has no RETURNING).
        let done = bind(self.q(sql)).execute(exec).await?;
        done.last_insert_id().ok_or_else(|| {
            sqlx::Error::Protocol("the database did not report the new row's id".into())
        })
    }

    pub async fn close(&self) {
        self.write.close().await;
        self.read.close().await;
    }
}

/// An integer flag column (0 or 1) read as a `bool`: the `Any` driver cannot decode
/// a `BOOLEAN` on every engine, so flags are stored as integers. Use it on a row
/// field as `#[sqlx(try_from = "Flag")]`.
pub struct Flag(bool);

impl From<Flag> for bool {
    fn from(f: Flag) -> bool {
        f.0
    }
}

impl sqlx::Type<Any> for Flag {
    fn type_info() -> sqlx::any::AnyTypeInfo {
        <i64 as sqlx::Type<Any>>::type_info()
    }
    fn compatible(ty: &sqlx::any::AnyTypeInfo) -> bool {
        <i64 as sqlx::Type<Any>>::compatible(ty)
    }
}

impl<'r> sqlx::Decode<'r, Any> for Flag {
    fn decode(
        value: <Any as sqlx::Database>::ValueRef<'r>,
    ) -> Result<Self, sqlx::error::BoxDynError> {
        Ok(Flag(<i64 as sqlx::Decode<'r, Any>>::decode(value)? != 0))
    }
}

/// `?, ?, …`: the placeholders of an `IN (…)` list of `n` values.
pub(crate) fn marks(n: usize) -> String {
    rows("?", n)
}

/// `row, row, …`: `n` copies of one row's placeholders, such as `(?, ?)`, for a
/// multi-row `VALUES` list.
pub(crate) fn rows(row: &str, n: usize) -> String {
    vec![row; n].join(", ")
}

/// Binds each of `values` as text, in order (the values of an `IN (…)` list).
pub(crate) fn bind_texts(mut q: Q, values: &[&str]) -> Q {
    for v in values {
        q = q.bind(v.to_string());
    }
    q
}

/// True when the engine picked the statement as a deadlock's victim and rolled its
/// transaction back: SQLSTATE 40001 (InnoDB's 1213, or a serialization failure) or PostgreSQL's 40P01. InnoDB does
/// this even to two plain inserts of one unique key when an older row with that key was
/// just changed away (both hold the gap, both want to insert into it); the documented
/// remedy is to run the work again. Only work that was alone in its transaction may
/// simply be repeated: see `retry_on_deadlock`.
pub fn is_deadlock(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::Database(db) => {
            matches!(db.code().as_deref(), Some("40001" | "40P01"))
        }
        _ => false,
    }
}

/// How many times an autocommit statement that lost a deadlock is tried in all.
pub const DEADLOCK_TRIES: u32 = 5;

/// Whether a statement that failed with `err` on its `attempt` (from 1) should be run
/// again: it lost a deadlock, it was not part of a caller's transaction (then the whole
/// transaction was rolled back and only the caller can repeat it), and tries remain.
/// Waits a little first, longer each time, so the winner can commit.
pub async fn retry_on_deadlock(err: &sqlx::Error, in_transaction: bool, attempt: u32) -> bool {
    if in_transaction || attempt >= DEADLOCK_TRIES || !is_deadlock(err) {
        return false;
    }
    tokio::time::sleep(Duration::from_millis(2 << attempt)).await;
    true
}

/// True when the error is a unique-constraint violation (any engine).
pub fn is_unique_violation(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::Database(db) => {
            matches!(db.kind(), sqlx::error::ErrorKind::UniqueViolation)
                || db.code().as_deref() == Some("23000")
                || db.code().as_deref() == Some("1062")
        }
        _ => false,
    }
}
