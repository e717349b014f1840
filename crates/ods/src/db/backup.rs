//! The statements `ods backup` and `ods restore` need from the database itself: a
//! consistent copy of a live SQLite database (`VACUUM INTO`) and the check that a
//! PostgreSQL or MariaDB database is empty before a restore writes into it.

use std::path::Path;

use super::{Db, Dialect};

/// Writes a consistent copy of the SQLite database to `dest` (which must not exist),
/// while other connections keep reading and writing: `VACUUM INTO` reads one snapshot.
pub async fn vacuum_into(db: &Db, dest: &Path) -> anyhow::Result<()> {
    anyhow::ensure!(db.dialect == Dialect::Sqlite, "VACUUM INTO is SQLite's");
    let dest = dest
        .to_str()
        .ok_or_else(|| anyhow::anyhow!("{} is not UTF-8", dest.display()))?;
    db.q("VACUUM INTO ?")
        .bind(dest.to_string())
        .execute(db.reader())
        .await?;
    Ok(())
}

/// How many tables the database (PostgreSQL: its current schema) holds.
pub async fn table_count(db: &Db) -> sqlx::Result<i64> {
    let sql = match db.dialect {
        Dialect::Sqlite => "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table'",
        Dialect::Postgres => {
            "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = current_schema()"
        }
        Dialect::MySql => {
            "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = DATABASE()"
        }
    };
    let row = db.q(sql).fetch_one(db.reader()).await?;
    sqlx::Row::try_get::<i64, _>(&row, 0)
}
