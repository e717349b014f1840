//! Layered configuration: built-in defaults < the TOML file named by `ODS_CONF` < the
//! environment < command-line flags. Secrets are wrapped so `Debug` never shows them,
//! and a missing `SECRET_KEY`/`DATABASE_KEY` is generated once and kept (mode 0600).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE};
use serde::Deserialize;

/// A secret value; `Debug` prints `[hidden]`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret<T>(pub T);

impl<T> std::fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[hidden]")
    }
}

/// Settings as given by one layer; every field optional.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(default)]
pub struct Layer {
    pub listen: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub database_url: Option<Secret<String>>,
    pub secret_key: Option<Secret<String>>,
    pub database_key: Option<Secret<String>>,
    pub upload_staging_directory: Option<PathBuf>,
    pub debug: Option<bool>,
    pub mysql_server: Option<String>,
    pub mysql_database: Option<String>,
    pub mysql_user: Option<String>,
    pub mysql_password: Option<Secret<String>>,
    pub share_context: Option<String>,
    pub allow_insecure_peers: Option<bool>,
    pub job_poll_ms: Option<u64>,
    pub sync_interval_secs: Option<u64>,
    pub max_transfers: Option<u64>,
    pub login_window_secs: Option<u64>,
    pub login_max_failures: Option<u64>,
    pub login_max_failures_per_address: Option<u64>,
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Secret<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        T::deserialize(d).map(Secret)
    }
}

impl Layer {
    /// Later layers win field by field.
    fn over(self, base: Layer) -> Layer {
        Layer {
            listen: self.listen.or(base.listen),
            data_dir: self.data_dir.or(base.data_dir),
            database_url: self.database_url.or(base.database_url),
            secret_key: self.secret_key.or(base.secret_key),
            database_key: self.database_key.or(base.database_key),
            upload_staging_directory: self
                .upload_staging_directory
                .or(base.upload_staging_directory),
            debug: self.debug.or(base.debug),
            mysql_server: self.mysql_server.or(base.mysql_server),
            mysql_database: self.mysql_database.or(base.mysql_database),
            mysql_user: self.mysql_user.or(base.mysql_user),
            mysql_password: self.mysql_password.or(base.mysql_password),
            share_context: self.share_context.or(base.share_context),
            allow_insecure_peers: self.allow_insecure_peers.or(base.allow_insecure_peers),
            job_poll_ms: self.job_poll_ms.or(base.job_poll_ms),
            sync_interval_secs: self.sync_interval_secs.or(base.sync_interval_secs),
            max_transfers: self.max_transfers.or(base.max_transfers),
            login_window_secs: self.login_window_secs.or(base.login_window_secs),
            login_max_failures: self.login_max_failures.or(base.login_max_failures),
            login_max_failures_per_address: self
                .login_max_failures_per_address
                .or(base.login_max_failures_per_address),
        }
    }

    /// The environment layer, with the seed's variable names.
    pub fn from_env(get: impl Fn(&str) -> Option<String>) -> Result<Layer, Vec<String>> {
        let mut problems = Vec::new();
        let mut flag = |name: &str| -> Option<bool> {
            let v = get(name)?;
            match parse_bool(&v) {
                Some(b) => Some(b),
                None => {
                    problems.push(format!("{name}={v:?} is not a boolean (use true or false)"));
                    None
                }
            }
        };
        let debug = flag("DEBUG");
        let allow_insecure_peers = flag("ODS_ALLOW_INSECURE_PEERS");
        let mut number = |name: &str, what: &str| -> Option<u64> {
            let v = get(name)?;
            match v.trim().parse() {
                Ok(n) => Some(n),
                Err(_) => {
                    problems.push(format!("{name}={v:?} is not a number of {what}"));
                    None
                }
            }
        };
        let job_poll_ms = number("ODS_JOB_POLL_MS", "milliseconds");
        let sync_interval_secs = number("ODS_SYNC_INTERVAL", "seconds");
        let max_transfers = number("ODS_MAX_TRANSFERS", "transfers");
        let login_window_secs = number("ODS_LOGIN_WINDOW_SECS", "seconds");
        let login_max_failures = number("ODS_LOGIN_MAX_FAILURES", "failed logins");
        let login_max_failures_per_address =
            number("ODS_LOGIN_MAX_FAILURES_PER_ADDRESS", "failed logins");
        let layer = Layer {
            listen: get("ODS_LISTEN"),
            data_dir: get("ODS_DATA_DIR").map(PathBuf::from),
            database_url: get("DATABASE_URL").map(Secret),
            secret_key: get("SECRET_KEY").map(Secret),
            database_key: get("DATABASE_KEY").map(Secret),
            upload_staging_directory: get("UPLOAD_STAGING_DIRECTORY").map(PathBuf::from),
            debug,
            mysql_server: get("MYSQL_SERVER"),
            mysql_database: get("MYSQL_DATABASE"),
            mysql_user: get("MYSQL_USER"),
            mysql_password: get("MYSQL_PASSWORD").map(Secret),
            share_context: get("ODS_SHARE_CONTEXT"),
            allow_insecure_peers,
            job_poll_ms,
            sync_interval_secs,
            max_transfers,
            login_window_secs,
            login_max_failures,
            login_max_failures_per_address,
        };
        if problems.is_empty() {
            Ok(layer)
        } else {
            Err(problems)
        }
    }

    /// The file layer: TOML with the same keys as the environment (any letter case).
    pub fn from_toml(text: &str) -> Result<Layer, String> {
        let table: BTreeMap<String, toml::Value> =
            toml::from_str(text).map_err(|e| format!("ODS_CONF is not valid TOML: {e}"))?;
        let lowered: toml::Table = table
            .into_iter()
            .map(|(k, v)| {
                let k = k.to_ascii_lowercase();
                let k = match k.as_str() {
                    "ods_listen" => "listen".to_string(),
                    "ods_data_dir" => "data_dir".to_string(),
                    "ods_share_context" => "share_context".to_string(),
                    "ods_allow_insecure_peers" => "allow_insecure_peers".to_string(),
                    "ods_job_poll_ms" => "job_poll_ms".to_string(),
                    "ods_sync_interval" => "sync_interval_secs".to_string(),
                    "ods_max_transfers" => "max_transfers".to_string(),
                    "ods_login_window_secs" => "login_window_secs".to_string(),
                    "ods_login_max_failures" => "login_max_failures".to_string(),
                    "ods_login_max_failures_per_address" => {
                        "login_max_failures_per_address".to_string()
                    }
                    _ => k,
                };
                (k, v)
            })
            .collect();
        lowered
            .try_into()
            .map_err(|e| format!("ODS_CONF has a bad value: {e}"))
    }
}

fn parse_bool(v: &str) -> Option<bool> {
    match v.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Some(true),
        "0" | "false" | "no" | "off" | "" => Some(false),
        _ => None,
    }
}

/// The resolved configuration every part of the server reads (passed in `App`).
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub database_url: Secret<String>,
    pub secret_key: Secret<Vec<u8>>,
    pub database_key: Secret<[u8; 32]>,
    pub staging_dir: Option<PathBuf>,
    pub debug: bool,
    pub share_context: String,
    pub allow_insecure_peers: bool,
    pub job_poll_ms: u64,
    pub sync_interval_secs: u64,
    pub max_transfers: usize,
    /// Failed-login limiter: the window, failures per account, failures per address.
    pub login_window_secs: u64,
    pub login_max_failures: u32,
    pub login_max_failures_per_address: u32,
}

/// What the caller wants done with missing keys.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum KeyFiles {
    /// Generate missing keys and keep them in the data directory.
    Create,
    /// Only read what exists (`check-config`); a missing key is reported, not made.
    ReadOnly,
}

impl Config {
    /// Builds the configuration from file, environment and flags, reporting every
    /// problem at once.
    pub fn load(flags: Layer, env: Layer, keys: KeyFiles) -> Result<Config, Vec<String>> {
        let mut problems = Vec::new();
        let conf_path = std::env::var("ODS_CONF").ok().filter(|s| !s.is_empty());
        let file = match conf_path {
            Some(path) => match std::fs::read_to_string(&path) {
                Ok(text) => Layer::from_toml(&text).unwrap_or_else(|e| {
                    problems.push(e);
                    Layer::default()
                }),
                Err(e) => {
                    problems.push(format!("ODS_CONF={path}: cannot read it: {e}"));
                    Layer::default()
                }
            },
            None => Layer::default(),
        };
        let raw = flags.over(env.over(file));
        match Config::resolve(raw, keys) {
            Ok(c) if problems.is_empty() => Ok(c),
            Ok(_) => Err(problems),
            Err(mut more) => {
                problems.append(&mut more);
                Err(problems)
            }
        }
    }

    fn resolve(raw: Layer, keys: KeyFiles) -> Result<Config, Vec<String>> {
        let mut problems = Vec::new();
        let listen_text = raw.listen.unwrap_or_else(|| "127.0.0.1:8080".into());
        let listen = listen_text.parse::<SocketAddr>().unwrap_or_else(|_| {
            problems.push(format!(
                "listen address {listen_text:?} is not ADDRESS:PORT (for example 0.0.0.0:8080)"
            ));
            SocketAddr::from(([127, 0, 0, 1], 8080))
        });
        let data_dir = raw.data_dir.unwrap_or_else(|| PathBuf::from("./ods-data"));
        if keys == KeyFiles::Create {
            if let Err(e) = std::fs::create_dir_all(&data_dir) {
                problems.push(format!(
                    "data directory {}: cannot create it: {e}",
                    data_dir.display()
                ));
            }
        } else if !data_dir.is_dir() {
            problems.push(format!(
                "data directory {} does not exist yet (ods serve creates it)",
                data_dir.display()
            ));
        }

        let database_url = match (raw.database_url, raw.mysql_server) {
            (Some(url), _) => url.0,
            (None, Some(server)) => {
                let server = server.trim_start_matches("mysql://").trim_end_matches('/');
                let db = raw.mysql_database.unwrap_or_else(|| "ods".into());
                let user = raw.mysql_user.unwrap_or_else(|| "root".into());
                let auth = match raw.mysql_password {
                    Some(p) => format!("{}:{}", url_escape(&user), url_escape(&p.0)),
                    None => url_escape(&user),
                };
                format!("mysql://{auth}@{server}/{}", url_escape(&db))
            }
            (None, None) => {
                let abs = std::path::absolute(data_dir.join("ods.sqlite3"))
                    .unwrap_or_else(|_| data_dir.join("ods.sqlite3"));
                format!("sqlite://{}?mode=rwc", abs.display())
            }
        };
        if !["sqlite:", "postgres:", "postgresql:", "mysql:", "mariadb:"]
            .iter()
            .any(|p| database_url.starts_with(p))
        {
            problems.push(format!(
                "DATABASE_URL {} is not a sqlite://, postgres:// or mysql:// URL",
                redact_url(&database_url)
            ));
        }

        let secret_key = match raw.secret_key {
            Some(s) if s.0.len() >= 16 => Some(s.0.into_bytes()),
            Some(_) => {
                problems.push("SECRET_KEY is shorter than 16 characters".into());
                None
            }
            None => key_file(&data_dir, "secret.key", keys, &mut problems).map(|k| k.into_bytes()),
        };
        let database_key = match raw.database_key {
            Some(s) => decode_key32(&s.0).or_else(|| {
                problems.push(
                    "DATABASE_KEY must be 32 bytes written as 64 hex digits or base64".into(),
                );
                None
            }),
            None => key_file(&data_dir, "database.key", keys, &mut problems).and_then(|k| {
                decode_key32(&k).or_else(|| {
                    problems.push(format!(
                        "{} does not hold a 32-byte key",
                        data_dir.join("database.key").display()
                    ));
                    None
                })
            }),
        };

        let share_context = raw.share_context.unwrap_or_else(|| "CasperShare".into());
        if share_context.is_empty()
            || !share_context
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
            || ["api", "share", "static", "ui"].contains(&share_context.as_str())
        {
            problems.push(format!(
                "ODS_SHARE_CONTEXT {share_context:?} must be letters, digits, '-', '_' or '.' and not a reserved path (api, share, static, ui)"
            ));
        }
        if let Some(dir) = &raw.upload_staging_directory
            && keys == KeyFiles::Create
            && let Err(e) = std::fs::create_dir_all(dir)
        {
            problems.push(format!("UPLOAD_STAGING_DIRECTORY {}: {e}", dir.display()));
        }

        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(Config {
            listen,
            data_dir,
            database_url: Secret(database_url),
            secret_key: Secret(secret_key.unwrap_or_default()),
            database_key: Secret(database_key.unwrap_or_default()),
            staging_dir: raw.upload_staging_directory,
            debug: raw.debug.unwrap_or(false),
            share_context,
            allow_insecure_peers: raw.allow_insecure_peers.unwrap_or(false),
            job_poll_ms: raw.job_poll_ms.unwrap_or(1000),
            sync_interval_secs: raw.sync_interval_secs.unwrap_or(60).max(1),
            max_transfers: raw.max_transfers.unwrap_or(4).clamp(1, 64) as usize,
            login_window_secs: raw.login_window_secs.unwrap_or(300).max(1),
            login_max_failures: raw
                .login_max_failures
                .unwrap_or(30)
                .clamp(1, u32::MAX.into()) as u32,
            login_max_failures_per_address: raw
                .login_max_failures_per_address
                .unwrap_or(10)
                .clamp(1, u32::MAX.into()) as u32,
        })
    }

    /// The database URL with any password replaced, for messages.
    pub fn database_url_redacted(&self) -> String {
        redact_url(&self.database_url.0)
    }
}

fn url_escape(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// `scheme://user:secret@host/db` -> `scheme://user:***@host/db`.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    match rest.split_once('@') {
        Some((auth, host)) => match auth.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
            None => url.to_string(),
        },
        None => url.to_string(),
    }
}

fn decode_key32(text: &str) -> Option<[u8; 32]> {
    let t = text.trim();
    let bytes = if t.len() == 64 && t.chars().all(|c| c.is_ascii_hexdigit()) {
        hex::decode(t).ok()?
    } else {
        STANDARD.decode(t).or_else(|_| URL_SAFE.decode(t)).ok()?
    };
    bytes.try_into().ok()
}

/// Reads a key kept in the data directory, creating it (0600) when asked to.
fn key_file(dir: &Path, name: &str, keys: KeyFiles, problems: &mut Vec<String>) -> Option<String> {
    let path = dir.join(name);
    match std::fs::read_to_string(&path) {
        Ok(s) => return Some(s.trim().to_string()),
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            problems.push(format!("{}: cannot read it: {e}", path.display()));
            return None;
        }
        Err(_) => {}
    }
    if keys == KeyFiles::ReadOnly {
        problems.push(format!(
            "{} is missing and its variable is not set (ods serve generates it on first start)",
            path.display()
        ));
        return None;
    }
    let key = URL_SAFE.encode(crate::secrets::random_bytes::<32>());
    match write_private(&path, &key) {
        Ok(()) => Some(key),
        Err(e) => {
            problems.push(format!("{}: cannot create it: {e}", path.display()));
            None
        }
    }
}

fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_hidden_in_debug() {
        let dir = tempfile::tempdir().unwrap();
        let flags = Layer {
            data_dir: Some(dir.path().into()),
            database_url: Some(Secret("postgres://u:hunter2@h/db".into())),
            secret_key: Some(Secret("s3cr3t-s3cr3t-s3cr3t".into())),
            ..Layer::default()
        };
        let c = Config::resolve(flags, KeyFiles::Create).unwrap();
        let dbg = format!("{c:?}");
        assert!(!dbg.contains("hunter2") && !dbg.contains("s3cr3t"), "{dbg}");
        assert_eq!(c.database_url_redacted(), "postgres://u:***@h/db");
    }

    #[test]
    fn every_problem_is_reported() {
        let flags = Layer {
            listen: Some("nonsense".into()),
            data_dir: Some("/nonexistent/ods".into()),
            database_url: Some(Secret("oracle://x".into())),
            database_key: Some(Secret("short".into())),
            share_context: Some("a/b".into()),
            ..Layer::default()
        };
        let problems = Config::resolve(flags, KeyFiles::ReadOnly).unwrap_err();
        assert!(problems.len() >= 5, "{problems:#?}");
    }

    #[test]
    fn keys_generated_once_with_private_mode() {
        let dir = tempfile::tempdir().unwrap();
        let flags = || Layer {
            data_dir: Some(dir.path().into()),
            ..Layer::default()
        };
        let a = Config::resolve(flags(), KeyFiles::Create).unwrap();
        let b = Config::resolve(flags(), KeyFiles::Create).unwrap();
        assert_eq!(a.database_key.0, b.database_key.0);
        assert_eq!(a.secret_key.0, b.secret_key.0);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join("database.key"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn toml_keys_any_case_and_mysql_vars() {
        let l = Layer::from_toml("MYSQL_SERVER = \"db:3306\"\nmysql_user = \"ods\"\nMYSQL_PASSWORD = \"p@ss\"\nDEBUG = true").unwrap();
        assert_eq!(l.mysql_server.as_deref(), Some("db:3306"));
        let dir = tempfile::tempdir().unwrap();
        let l = Layer {
            data_dir: Some(dir.path().into()),
            ..l
        };
        let c = Config::resolve(l, KeyFiles::Create).unwrap();
        assert_eq!(c.database_url.0, "mysql://ods:p%40ss@db:3306/ods");
        assert!(c.debug);
    }
}
