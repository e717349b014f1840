//! `ods backup DIR` and `ods restore DIR`. A backup is a directory private to its
//! owner (0700, files 0600: it holds the keys) with a consistent copy of the database
//! taken while the server runs (SQLite `VACUUM INTO`; PostgreSQL and MariaDB through
//! their own dump tools, see `native`), the server's `SECRET_KEY` and `DATABASE_KEY`,
//! the blobs (hard-linked or copied from a local store and checked by sha256, or only
//! listed for a remote store, see `blobs`), and `manifest.json`, written last, saying
//! what it holds, which ODS made it and when. A restore writes all of it back into an
//! empty data directory and an empty database, so the server comes back with its
//! identity, its catalog and its blobs, and rejoins its peers without fetching again
//! what it had.

pub mod blobs;
pub mod native;

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::db::{self, Db, Dialect};
use blobs::{Blob, Placed};

pub const MANIFEST: &str = "manifest.json";
const FORMAT: u32 = 1;
const BLOBS_DIR: &str = "blobs";
const SECRET_FILE: &str = "secret.key";
const DATABASE_KEY_FILE: &str = "database.key";

/// `manifest.json`: what a backup holds.
#[derive(Debug, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u32,
    /// The version of ODS that made the backup.
    pub ods_version: String,
    /// When the backup was finished (RFC 3339, UTC).
    pub created_at: String,
    /// The server backed up: its name and iss.
    pub server: ServerPart,
    pub database: DatabasePart,
    /// The key files, each in the backup's top directory.
    pub keys: Vec<String>,
    pub storage: StoragePart,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct ServerPart {
    pub name: String,
    pub iss: String,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct DatabasePart {
    /// `sqlite`, `postgres` or `mysql`.
    pub engine: String,
    /// The copy, in the backup's top directory.
    pub file: String,
    /// How it was made (`VACUUM INTO`, or the dump tool and its version).
    pub tool: String,
    pub bytes: u64,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct StoragePart {
    /// The store backed up (`local disk at ...`).
    pub store: String,
    /// True when the blob files are in `blobs/` (local store); false when they are only
    /// listed (remote store: they stay in the bucket).
    pub copied: bool,
    pub count: u64,
    pub bytes: u64,
    pub blobs: Vec<Blob>,
}

fn engine_name(d: Dialect) -> &'static str {
    match d {
        Dialect::Sqlite => "sqlite",
        Dialect::Postgres => "postgres",
        Dialect::MySql => "mysql",
    }
}

fn dialect_of(url: &str) -> Dialect {
    if url.starts_with("sqlite:") {
        Dialect::Sqlite
    } else if url.starts_with("postgres") {
        Dialect::Postgres
    } else {
        Dialect::MySql
    }
}

fn is_empty_dir(p: &Path) -> std::io::Result<bool> {
    match fs::read_dir(p) {
        Ok(mut rd) => Ok(rd.next().is_none()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(true),
        Err(e) => Err(e),
    }
}

fn make_private_dir(p: &Path) -> anyhow::Result<()> {
    fs::create_dir_all(p).with_context(|| format!("cannot create {}", p.display()))?;
    fs::set_permissions(p, fs::Permissions::from_mode(crate::datadir::DIR_MODE))?;
    Ok(())
}

/// Writes `data` to a new file of mode 0600, synced.
fn write_private(path: &Path, data: &[u8]) -> anyhow::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(crate::datadir::FILE_MODE)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    f.write_all(data)?;
    f.sync_all()?;
    Ok(())
}

fn set_private(path: &Path) -> anyhow::Result<()> {
    fs::set_permissions(path, fs::Permissions::from_mode(crate::datadir::FILE_MODE))?;
    Ok(())
}

/// The database URL's redacted form, for messages.
fn shown(config: &Config) -> String {
    config.database_url_redacted()
}

/// Takes a backup of the server configured by `config` into `dir` (missing or empty)
/// while the server runs. Blobs are gathered before and after the database copy, so
/// every blob the copy refers to is in the backup (a blob is hard-linked before garbage
/// collection could free it).
pub async fn backup(config: &Config, dir: &Path) -> anyhow::Result<Manifest> {
    if !is_empty_dir(dir)? {
        bail!(
            "{} is not empty: a backup goes into a new or empty directory",
            dir.display()
        );
    }
    if config.secret_key.0.is_empty() || config.pending.iter().any(|p| p.contains("KEY")) {
        bail!(
            "the server in {} has no keys yet: start it once (ods serve) before backing it up",
            config.data_dir.display()
        );
    }
    if let Some(file) = config.sqlite_file().filter(|f| !f.exists()) {
        bail!("there is no database at {}", file.display());
    }
    make_private_dir(dir)?;
    let db = Db::connect_sized(&config.database_url.0, config.db_pool_size)
        .await
        .with_context(|| format!("cannot open the database {}", shown(config)))?;
    let server = db::server::get(&db)
        .await
        .context("the database holds no ODS server (nothing to back up)")?;
    let store = crate::app::open_store(
        config,
        &config.storage.store,
        &crate::node::new_id(&config.node_name),
    )
    .await?;
    let into = dir.join(BLOBS_DIR);
    let copied = store.local_path(&"0".repeat(64)).is_some();
    let (mut have, mut placed) = (Vec::new(), Placed::default());
    blobs::pass(store.as_ref(), &into, &mut have, &mut placed).await?;

    let (file, tool) = match db.dialect {
        Dialect::Sqlite => {
            let file = "database.sqlite3";
            db::backup::vacuum_into(&db, &dir.join(file)).await?;
            (file, "SQLite VACUUM INTO".to_string())
        }
        Dialect::Postgres => {
            let (file, url) = ("database.pgdump", config.database_url.0.clone());
            let path = dir.join(file);
            let v = tokio::task::spawn_blocking(move || native::pg_dump(&url, &path)).await??;
            (file, v)
        }
        Dialect::MySql => {
            let (file, url) = ("database.sql", config.database_url.0.clone());
            let path = dir.join(file);
            let v = tokio::task::spawn_blocking(move || native::my_dump(&url, &path)).await??;
            (file, v)
        }
    };
    let db_path = dir.join(file);
    set_private(&db_path)?;
    let db_bytes = fs::metadata(&db_path)?.len();
    db.close().await;
    // Blobs stored while the database was copied.
    blobs::pass(store.as_ref(), &into, &mut have, &mut placed).await?;

    write_private(&dir.join(SECRET_FILE), &config.secret_key.0)?;
    write_private(
        &dir.join(DATABASE_KEY_FILE),
        hex::encode(config.database_key.0).as_bytes(),
    )?;
    have.sort_by(|a, b| a.sha256.cmp(&b.sha256));
    let manifest = Manifest {
        format: FORMAT,
        ods_version: env!("CARGO_PKG_VERSION").to_string(),
        created_at: now_rfc3339(),
        server: ServerPart {
            name: server.name,
            iss: server.iss,
        },
        database: DatabasePart {
            engine: engine_name(db.dialect).to_string(),
            file: file.to_string(),
            tool,
            bytes: db_bytes,
        },
        keys: vec![SECRET_FILE.into(), DATABASE_KEY_FILE.into()],
        storage: StoragePart {
            store: store.describe(),
            copied,
            count: have.len() as u64,
            bytes: have.iter().map(|b| b.size).sum(),
            blobs: have,
        },
    };
    let tmp = dir.join(format!("{MANIFEST}.part"));
    write_private(&tmp, &serde_json::to_vec_pretty(&manifest)?)?;
    fs::rename(&tmp, dir.join(MANIFEST))?;
    fs::File::open(dir)?.sync_all()?;
    tracing::debug!(
        linked = placed.linked,
        copied = placed.copied,
        "blobs placed"
    );
    Ok(manifest)
}

fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .unwrap_or_else(|_| time::OffsetDateTime::now_utc())
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// Which keys the configuration sets itself (flag, environment or `ODS_CONF`); the
/// others the restore writes into the data directory from the backup.
#[derive(Debug, Clone, Copy, Default)]
pub struct ExplicitKeys {
    pub secret_key: bool,
    pub database_key: bool,
}

/// What a restore did.
#[derive(Debug)]
pub struct Restored {
    pub manifest: Manifest,
    pub placed: Placed,
    /// Listed blobs the (remote) store does not hold.
    pub missing: Vec<String>,
    /// Public packages of the restored database whose content the store lacks.
    pub without_content: Vec<String>,
}

/// Reads and checks a backup's manifest.
pub fn read_manifest(dir: &Path) -> anyhow::Result<Manifest> {
    let path = dir.join(MANIFEST);
    let text = fs::read(&path).with_context(|| {
        format!(
            "{} is not a complete ODS backup (no {MANIFEST})",
            dir.display()
        )
    })?;
    let m: Manifest =
        serde_json::from_slice(&text).with_context(|| format!("{} is damaged", path.display()))?;
    if m.format != FORMAT {
        bail!(
            "{} is in backup format {}; this ODS reads format {FORMAT}",
            dir.display(),
            m.format
        );
    }
    Ok(m)
}

/// Brings the backup in `dir` back as the server `config` describes, into an empty
/// data directory and an empty database; refuses, changing nothing, otherwise.
pub async fn restore(
    config: &Config,
    dir: &Path,
    explicit: ExplicitKeys,
) -> anyhow::Result<Restored> {
    let manifest = read_manifest(dir)?;
    let dialect = dialect_of(&config.database_url.0);
    if manifest.database.engine != engine_name(dialect) {
        bail!(
            "this backup holds a {} database, but DATABASE_URL ({}) is {}: restore it into the same engine",
            manifest.database.engine,
            shown(config),
            engine_name(dialect)
        );
    }
    let data_dir = &config.data_dir;
    if !is_empty_dir(data_dir)? {
        bail!(
            "the data directory {} is not empty: ods restore only writes into an empty one (move it aside first)",
            data_dir.display()
        );
    }
    let secret = fs::read(dir.join(SECRET_FILE)).context("the backup has no secret.key")?;
    let db_key_text = fs::read_to_string(dir.join(DATABASE_KEY_FILE))
        .context("the backup has no database.key")?;
    let db_key = hex::decode(db_key_text.trim()).context("the backup's database.key")?;
    if explicit.secret_key && config.secret_key.0 != secret {
        bail!("SECRET_KEY is set and differs from the backup's: unset it, or set the backup's");
    }
    if explicit.database_key && config.database_key.0.as_slice() != db_key.as_slice() {
        bail!(
            "DATABASE_KEY is set and differs from the backup's, which the backed-up database is encrypted with: unset it, or set the backup's"
        );
    }
    let source = dir.join(&manifest.database.file);
    match config.sqlite_file() {
        Some(file) => {
            if fs::metadata(&file).is_ok_and(|m| m.len() > 0) {
                bail!(
                    "the database {} exists: ods restore only writes into an empty one",
                    file.display()
                );
            }
        }
        None => {
            let db = Db::connect_sized(&config.database_url.0, config.db_pool_size)
                .await
                .with_context(|| format!("cannot open the database {}", shown(config)))?;
            let tables = db::backup::table_count(&db).await?;
            db.close().await;
            if tables > 0 {
                bail!(
                    "the database {} has {tables} table(s): ods restore only writes into an empty database",
                    shown(config)
                );
            }
        }
    }

    make_private_dir(data_dir)?;
    if !explicit.secret_key {
        write_private(&data_dir.join(SECRET_FILE), &secret)?;
    }
    if !explicit.database_key {
        write_private(
            &data_dir.join(DATABASE_KEY_FILE),
            db_key_text.trim().as_bytes(),
        )?;
    }
    let url = config.database_url.0.clone();
    match (dialect, config.sqlite_file()) {
        (Dialect::Sqlite, Some(file)) => {
            if let Some(parent) = file.parent() {
                fs::create_dir_all(parent)?;
            }
            let tmp = PathBuf::from(format!("{}.restore", file.display()));
            fs::copy(&source, &tmp)?;
            set_private(&tmp)?;
            fs::File::open(&tmp)?.sync_all()?;
            fs::rename(&tmp, &file)?;
        }
        (Dialect::Sqlite, None) => bail!("DATABASE_URL names no SQLite file"),
        (Dialect::Postgres, _) => {
            tokio::task::spawn_blocking(move || native::pg_restore(&url, &source)).await??
        }
        (Dialect::MySql, _) => {
            tokio::task::spawn_blocking(move || native::my_restore(&url, &source)).await??
        }
    }
    let store = crate::app::open_store(
        config,
        &config.storage.store,
        &crate::node::new_id(&config.node_name),
    )
    .await?;
    let (placed, missing) = blobs::restore(
        store.as_ref(),
        &dir.join(BLOBS_DIR),
        &manifest.storage.blobs,
        manifest.storage.copied,
    )
    .await?;
    crate::datadir::make_private(data_dir, config.sqlite_file())?;
    // Every package the restored catalog serves must have its content.
    let db = Db::connect_sized(&config.database_url.0, config.db_pool_size).await?;
    let packages = db::packages::list(&db).await;
    db.close().await;
    let mut without_content = Vec::new();
    for p in packages? {
        if p.status == crate::model::Status::Public && store.size(&p.sha256).await?.is_none() {
            without_content.push(p.filename);
        }
    }
    Ok(Restored {
        manifest,
        placed,
        missing,
        without_content,
    })
}
