//! PostgreSQL and MariaDB backups through the engines' own tools: `pg_dump` /
//! `pg_restore` and `mariadb-dump` / `mariadb` (or their `mysqldump` / `mysql` names).
//! Each dump reads one snapshot of a live database (`pg_dump` always, `mariadb-dump`
//! with `--single-transaction`), every type round-trips exactly, and the files are the
//! ones a DBA already knows how to inspect and restore by hand. Passwords go to the
//! tools through their environment variables, never on a command line.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, bail};

/// The connection a tool needs, split out of a `DATABASE_URL`.
struct Target {
    host: String,
    port: Option<u16>,
    user: String,
    password: Option<String>,
    database: String,
    /// The URL without its password (PostgreSQL tools take URLs).
    url: String,
}

fn target(database_url: &str) -> anyhow::Result<Target> {
    let mut url = url::Url::parse(database_url).context("DATABASE_URL is not a URL")?;
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(s)
            .decode_utf8_lossy()
            .into_owned()
    };
    let password = url.password().map(decode);
    let _ = url.set_password(None);
    let database = decode(url.path().trim_start_matches('/'));
    if database.is_empty() {
        bail!("DATABASE_URL names no database");
    }
    Ok(Target {
        host: url.host_str().unwrap_or("localhost").to_string(),
        port: url.port(),
        user: decode(url.username()),
        password,
        database,
        url: url.to_string(),
    })
}

/// Runs a tool, failing with its standard error when it fails.
fn run(mut cmd: Command, what: &str) -> anyhow::Result<()> {
    let out = cmd
        .output()
        .with_context(|| format!("cannot run {what} (install the database's client tools)"))?;
    if !out.status.success() {
        bail!(
            "{what} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// The first of `names` found on the PATH.
fn tool(names: &[&str]) -> anyhow::Result<String> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    for name in names {
        if std::env::split_paths(&path).any(|d| d.join(name).is_file()) {
            return Ok(name.to_string());
        }
    }
    bail!(
        "{} not found on the PATH: install the database's client tools (Debian: postgresql-client or mariadb-client)",
        names.join(" or ")
    )
}

/// `tool --version`, for the manifest.
fn version(name: &str) -> String {
    Command::new(name)
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|_| name.to_string())
}

fn pg_command(name: &str, t: &Target) -> Command {
    let mut c = Command::new(name);
    if let Some(p) = &t.password {
        c.env("PGPASSWORD", p);
    }
    c
}

fn my_command(name: &str, t: &Target) -> Command {
    let mut c = Command::new(name);
    c.arg(format!("--host={}", t.host));
    if let Some(p) = t.port {
        c.arg(format!("--port={p}"));
    }
    if !t.user.is_empty() {
        c.arg(format!("--user={}", t.user));
    }
    match &t.password {
        Some(p) => c.env("MYSQL_PWD", p),
        None => c.env_remove("MYSQL_PWD"),
    };
    c
}

/// Dumps a PostgreSQL database into `file` (custom format); returns the tool's version.
pub fn pg_dump(database_url: &str, file: &Path) -> anyhow::Result<String> {
    let t = target(database_url)?;
    let name = tool(&["pg_dump"])?;
    let mut c = pg_command(&name, &t);
    c.args(["--format=custom", "--no-owner", "--no-privileges", "--file"])
        .arg(file)
        .arg(format!("--dbname={}", t.url));
    run(c, "pg_dump")?;
    Ok(version(&name))
}

/// Restores a `pg_dump` file into the (empty) database, all or nothing.
pub fn pg_restore(database_url: &str, file: &Path) -> anyhow::Result<()> {
    let t = target(database_url)?;
    let name = tool(&["pg_restore"])?;
    let mut c = pg_command(&name, &t);
    c.args([
        "--no-owner",
        "--no-privileges",
        "--exit-on-error",
        "--single-transaction",
    ])
    .arg(format!("--dbname={}", t.url))
    .arg(file);
    run(c, "pg_restore")
}

/// Dumps a MariaDB/MySQL database into `file` (SQL); returns the tool's version.
pub fn my_dump(database_url: &str, file: &Path) -> anyhow::Result<String> {
    let t = target(database_url)?;
    let name = tool(&["mariadb-dump", "mysqldump"])?;
    let mut c = my_command(&name, &t);
    c.args([
        "--single-transaction",
        "--skip-lock-tables",
        "--hex-blob",
        "--default-character-set=utf8mb4",
    ])
    .arg("--result-file")
    .arg(file)
    .arg(&t.database);
    run(c, &name)?;
    Ok(version(&name))
}

/// Loads a dump made by [`my_dump`] into the (empty) database.
pub fn my_restore(database_url: &str, file: &Path) -> anyhow::Result<()> {
    let t = target(database_url)?;
    let name = tool(&["mariadb", "mysql"])?;
    let mut c = my_command(&name, &t);
    c.arg("--default-character-set=utf8mb4")
        .arg(&t.database)
        .stdin(std::fs::File::open(file).with_context(|| format!("{}", file.display()))?);
    run(c, &name)
}

#[cfg(test)]
mod tests {
    #[test]
    fn passwords_leave_the_url() {
        let t = super::target("postgres://ods:p%40ss@db.example:5433/ods_site?sslmode=require")
            .unwrap();
        assert_eq!(t.password.as_deref(), Some("p@ss"));
        assert_eq!(t.user, "ods");
        assert_eq!(t.database, "ods_site");
        assert_eq!(t.port, Some(5433));
        assert!(!t.url.contains("p%40ss"), "{}", t.url);
        assert!(t.url.contains("sslmode=require"));
        assert!(super::target("mysql://root@127.0.0.1:3306/").is_err());
    }
}
