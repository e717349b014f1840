//! Layered configuration: built-in defaults < the TOML file named by `ODS_CONF` < the
//! environment < command-line flags. Secrets are wrapped so `Debug` never shows them,
//! and a missing `SECRET_KEY`/`DATABASE_KEY` is generated once and kept (mode 0600).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE};
use clap::builder::BoolishValueParser;
use clap::parser::ValueSource;
use clap::{ArgAction, Args, Command};

/// A secret value; `Debug` prints `[hidden]`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret<T>(pub T);

impl<T> std::fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[hidden]")
    }
}

/// Every configuration key, declared once. The field is the key and its TOML name,
/// `env` its variable (also accepted as a TOML key, any letter case), `long` its flag,
/// `default_value` its default and the doc comment its `--help`. clap applies the
/// precedence flag > environment > default, and [`ConfFile::apply`] makes the values of
/// the `ODS_CONF` file the defaults, so the file sits between the environment and the
/// built-in defaults. Keys with `hide_env_values` are secrets: their values are never
/// printed, not even by `--help` or `check-config`.
#[derive(Args, Debug, Clone)]
#[command(next_help_heading = "Configuration (flag > environment > ODS_CONF file > default)")]
pub struct Settings {
    /// Address and port to listen on
    #[arg(
        long,
        env = "ODS_LISTEN",
        value_name = "ADDR:PORT",
        default_value = "127.0.0.1:8080"
    )]
    pub listen: String,
    /// Directory holding the SQLite database, blobs and generated keys
    #[arg(
        long,
        env = "ODS_DATA_DIR",
        value_name = "DIR",
        default_value = "./ods-data"
    )]
    pub data_dir: PathBuf,
    /// sqlite://, postgres:// or mysql:// URL [default: the SQLite file in the data directory]
    #[arg(long, env = "DATABASE_URL", value_name = "URL", hide_env_values = true)]
    pub database_url: Option<Secret<String>>,
    /// Key for signing sessions and tokens, at least 16 characters [default: generated once into DATA_DIR/secret.key]. Prefer the environment or ODS_CONF: other local users can read a command line
    #[arg(long, env = "SECRET_KEY", value_name = "KEY", hide_env_values = true)]
    pub secret_key: Option<Secret<String>>,
    /// Key encrypting sensitive columns: 32 bytes as 64 hex digits or base64 [default: generated once into DATA_DIR/database.key]. Prefer the environment or ODS_CONF
    #[arg(long, env = "DATABASE_KEY", value_name = "KEY", hide_env_values = true)]
    pub database_key: Option<Secret<String>>,
    /// Directory for uploads in progress; must be on the blob store's filesystem [default: DATA_DIR/blobs/.staging]
    #[arg(long, env = "UPLOAD_STAGING_DIRECTORY", value_name = "DIR")]
    pub upload_staging_directory: Option<PathBuf>,
    /// Log at debug level (ODS_LOG, an env-filter, overrides it)
    #[arg(
        long,
        env = "DEBUG",
        value_name = "BOOL",
        default_value_t = false,
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        value_parser = BoolishValueParser::new(),
        action = ArgAction::Set
    )]
    pub debug: bool,
    /// MySQL/MariaDB host[:port], used when DATABASE_URL is not set
    #[arg(long, env = "MYSQL_SERVER", value_name = "HOST:PORT")]
    pub mysql_server: Option<String>,
    /// MySQL/MariaDB database name (with MYSQL_SERVER)
    #[arg(
        long,
        env = "MYSQL_DATABASE",
        value_name = "NAME",
        default_value = "ods"
    )]
    pub mysql_database: String,
    /// MySQL/MariaDB user (with MYSQL_SERVER)
    #[arg(long, env = "MYSQL_USER", value_name = "USER", default_value = "root")]
    pub mysql_user: String,
    /// MySQL/MariaDB password (with MYSQL_SERVER). Prefer the environment or ODS_CONF
    #[arg(
        long,
        env = "MYSQL_PASSWORD",
        value_name = "PASSWORD",
        hide_env_values = true
    )]
    pub mysql_password: Option<Secret<String>>,
    /// The Jamf distribution point share name: packages are also served at /CONTEXT/Packages/NAME
    #[arg(
        long,
        env = "ODS_SHARE_CONTEXT",
        value_name = "CONTEXT",
        default_value = "CasperShare"
    )]
    pub share_context: String,
    /// Allow plain-HTTP peer traffic to non-loopback addresses
    #[arg(
        long,
        env = "ODS_ALLOW_INSECURE_PEERS",
        value_name = "BOOL",
        default_value_t = false,
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        value_parser = BoolishValueParser::new(),
        action = ArgAction::Set
    )]
    pub allow_insecure_peers: bool,
    /// How often an idle worker looks for due jobs, in milliseconds
    #[arg(
        long,
        env = "ODS_JOB_POLL_MS",
        value_name = "MS",
        default_value_t = 1000
    )]
    pub job_poll_ms: u64,
    /// Seconds between anti-entropy rounds with each peer (at least 1)
    #[arg(
        long,
        env = "ODS_SYNC_INTERVAL",
        value_name = "SECS",
        default_value_t = 60
    )]
    pub sync_interval_secs: u64,
    /// Package transfers running at once (1 to 64)
    #[arg(long, env = "ODS_MAX_TRANSFERS", value_name = "N", default_value_t = 4)]
    pub max_transfers: u64,
    /// Seconds a failed login counts against its address and its account
    #[arg(
        long,
        env = "ODS_LOGIN_WINDOW_SECS",
        value_name = "SECS",
        default_value_t = 300,
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    pub login_window_secs: u64,
    /// Failed logins from one address within the window before that address gets 429 (for every account and for tokens)
    #[arg(
        long,
        env = "ODS_LOGIN_MAX_FAILURES",
        value_name = "N",
        default_value_t = 10,
        value_parser = clap::value_parser!(u32).range(1..)
    )]
    pub login_max_failures: u32,
    /// Failed logins against one account within the window, from any addresses, before it gets 429 from every address that has not logged in as it in the last day
    #[arg(
        long,
        env = "ODS_LOGIN_MAX_FAILURES_PER_ADDRESS",
        value_name = "N",
        default_value_t = 30,
        value_parser = clap::value_parser!(u32).range(1..)
    )]
    pub login_max_failures_per_address: u32,
}

impl std::str::FromStr for Secret<String> {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Secret(s.to_string()))
    }
}

/// The file named by `ODS_CONF`: TOML whose keys are the settings' names or their
/// variables, in any letter case.
#[derive(Debug, Default)]
pub struct ConfFile {
    /// Keys (settings ids) the file gave a valid value.
    values: Vec<(String, String)>,
    /// What was wrong with the file; reported with every other problem.
    pub problems: Vec<String>,
}

impl ConfFile {
    /// Reads the file `ODS_CONF` names, if it names one.
    pub fn from_env() -> ConfFile {
        match std::env::var("ODS_CONF").ok().filter(|s| !s.is_empty()) {
            None => ConfFile::default(),
            Some(path) => match std::fs::read_to_string(&path) {
                Ok(text) => ConfFile::parse(&text),
                Err(e) => ConfFile {
                    problems: vec![format!("ODS_CONF={path}: cannot read it: {e}")],
                    ..ConfFile::default()
                },
            },
        }
    }

    /// Checks every key and value of the file against the settings' own declarations.
    pub fn parse(text: &str) -> ConfFile {
        let mut conf = ConfFile::default();
        let table: toml::Table = match toml::from_str(text) {
            Ok(t) => t,
            Err(e) => {
                conf.problems
                    .push(format!("ODS_CONF is not valid TOML: {e}"));
                return conf;
            }
        };
        let keys = Settings::augment_args(Command::new("ods"));
        for (key, value) in table {
            let Some(arg) = keys.get_arguments().find(|a| {
                a.get_id().as_str().eq_ignore_ascii_case(&key)
                    || a.get_env().is_some_and(|e| e.eq_ignore_ascii_case(&key))
            }) else {
                conf.problems
                    .push(format!("ODS_CONF: {key:?} is not a configuration key"));
                continue;
            };
            let text = match value {
                toml::Value::String(s) => s,
                toml::Value::Integer(i) => i.to_string(),
                toml::Value::Float(f) => f.to_string(),
                toml::Value::Boolean(b) => b.to_string(),
                _ => {
                    conf.problems.push(format!(
                        "ODS_CONF: {key} must be a string, a number or a boolean"
                    ));
                    continue;
                }
            };
            // Parse the value with the key's own parser, as the flag would be.
            let long = arg.get_long().unwrap_or_default();
            let check = Command::new("ods")
                .no_binary_name(true)
                .color(clap::ColorChoice::Never)
                .arg(arg.clone().env(None))
                .try_get_matches_from([format!("--{long}={text}")]);
            match check {
                Ok(_) => conf.values.push((arg.get_id().to_string(), text)),
                Err(e) => {
                    let why = e.to_string();
                    let why = why.lines().next().unwrap_or_default();
                    let why = why.strip_prefix("error: ").unwrap_or(why);
                    if arg.is_hide_env_values_set() {
                        conf.problems.push(format!("ODS_CONF: {key} is not valid"));
                    } else {
                        conf.problems.push(format!("ODS_CONF: {key}: {why}"));
                    }
                }
            }
        }
        conf
    }

    /// `cmd` with the file's values as the defaults of its settings (in every
    /// subcommand), and an empty variable counted as unset.
    pub fn apply(&self, cmd: Command) -> Command {
        let mut cmd = cmd.mut_args(|a| {
            let empty = a
                .get_env()
                .and_then(std::env::var_os)
                .is_some_and(|v| v.is_empty());
            if empty { a.env(None) } else { a }
        });
        for (id, value) in &self.values {
            if cmd.get_arguments().any(|a| a.get_id() == id.as_str()) {
                cmd = cmd.mut_arg(id, |a| a.default_value(value.clone()));
            }
        }
        cmd.mut_subcommands(|sc| self.apply(sc))
    }

    /// Where each setting of the innermost subcommand of `matches` came from, with its
    /// value (secrets as `[hidden]`), one line per key, for `check-config`.
    pub fn describe(&self, cmd: &Command, matches: &clap::ArgMatches) -> Vec<String> {
        let (mut cmd, mut m) = (cmd, matches);
        while let Some((name, sub)) = m.subcommand() {
            match cmd.find_subcommand(name) {
                Some(c) => (cmd, m) = (c, sub),
                None => break,
            }
        }
        let keys = Settings::augment_args(Command::new("ods"));
        keys.get_arguments()
            .filter_map(|key| {
                let arg = cmd.get_arguments().find(|a| a.get_id() == key.get_id())?;
                let id = arg.get_id().as_str();
                let env = arg.get_env().map(|e| e.to_string_lossy().into_owned());
                let origin = match m.value_source(id) {
                    Some(ValueSource::CommandLine) => {
                        format!("flag --{}", arg.get_long().unwrap_or(id))
                    }
                    Some(ValueSource::EnvVariable) => format!("env {}", env.unwrap_or_default()),
                    Some(ValueSource::DefaultValue) if self.values.iter().any(|(k, _)| k == id) => {
                        "ODS_CONF".to_string()
                    }
                    Some(_) => "default".to_string(),
                    None => return Some(format!("{id}: not set")),
                };
                let value = if arg.is_hide_env_values_set() {
                    "[hidden]".to_string()
                } else {
                    m.get_raw(id)
                        .into_iter()
                        .flatten()
                        .map(|v| v.to_string_lossy().into_owned())
                        .collect::<Vec<_>>()
                        .join(",")
                };
                Some(format!("{id} = {value} ({origin})"))
            })
            .collect()
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
    pub login_window_secs: u64,
    pub login_max_failures: u32,
    pub login_max_failures_per_address: u32,
    /// What `ods serve` will create on first start (`check-config` only; empty after
    /// `KeyFiles::Create`). A key listed here is empty in this `Config`.
    pub pending: Vec<String>,
}

/// What the caller wants done with missing keys.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum KeyFiles {
    /// Generate missing keys and keep them in the data directory.
    Create,
    /// Only read what exists (`check-config`); a missing key is noted in
    /// `Config::pending` as one `ods serve` will generate, not made.
    ReadOnly,
}

impl Config {
    /// Builds the configuration from the parsed settings (flags, environment and the
    /// `ODS_CONF` file already layered), reporting every problem at once, the file's too.
    pub fn load(
        settings: Settings,
        file_problems: &[String],
        keys: KeyFiles,
    ) -> Result<Config, Vec<String>> {
        let mut problems = file_problems.to_vec();
        match Config::resolve(settings, keys) {
            Ok(c) if problems.is_empty() => Ok(c),
            Ok(_) => Err(problems),
            Err(mut more) => {
                problems.append(&mut more);
                Err(problems)
            }
        }
    }

    fn resolve(raw: Settings, keys: KeyFiles) -> Result<Config, Vec<String>> {
        let mut problems = Vec::new();
        let mut pending = Vec::new();
        let listen_text = raw.listen;
        let listen = listen_text.parse::<SocketAddr>().unwrap_or_else(|_| {
            problems.push(format!(
                "listen address {listen_text:?} is not ADDRESS:PORT (for example 0.0.0.0:8080)"
            ));
            SocketAddr::from(([127, 0, 0, 1], 8080))
        });
        let data_dir = raw.data_dir;
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
                let (db, user) = (raw.mysql_database, raw.mysql_user);
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
            None => stored_key(
                &data_dir,
                "SECRET_KEY",
                "secret.key",
                keys,
                &mut problems,
                &mut pending,
            )
            .map(|k| k.into_bytes()),
        };
        let database_key = match raw.database_key {
            Some(s) => decode_key32(&s.0).or_else(|| {
                problems.push(
                    "DATABASE_KEY must be 32 bytes written as 64 hex digits or base64".into(),
                );
                None
            }),
            None => stored_key(
                &data_dir,
                "DATABASE_KEY",
                "database.key",
                keys,
                &mut problems,
                &mut pending,
            )
            .and_then(|k| {
                decode_key32(&k).or_else(|| {
                    problems.push(format!(
                        "{} does not hold a 32-byte key",
                        data_dir.join("database.key").display()
                    ));
                    None
                })
            }),
        };

        let share_context = raw.share_context;
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
            debug: raw.debug,
            share_context,
            allow_insecure_peers: raw.allow_insecure_peers,
            job_poll_ms: raw.job_poll_ms,
            sync_interval_secs: raw.sync_interval_secs.max(1),
            max_transfers: raw.max_transfers.clamp(1, 64) as usize,
            login_window_secs: raw.login_window_secs,
            login_max_failures: raw.login_max_failures,
            login_max_failures_per_address: raw.login_max_failures_per_address,
            pending,
        })
    }

    /// The database file when the database is a SQLite file (not `:memory:`).
    pub fn sqlite_file(&self) -> Option<PathBuf> {
        let url = &self.database_url.0;
        let rest = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))?;
        let path = rest.split('?').next().unwrap_or_default();
        (!path.is_empty() && !path.contains(":memory:")).then(|| PathBuf::from(path))
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

/// The key `name` kept in the data directory as `file`; one that `ods serve` will
/// generate goes to `pending` under `KeyFiles::ReadOnly`.
fn stored_key(
    data_dir: &Path,
    name: &str,
    file: &str,
    keys: KeyFiles,
    problems: &mut Vec<String>,
    pending: &mut Vec<String>,
) -> Option<String> {
    let k = key_file(data_dir, file, keys, problems);
    if k.is_none() && keys == KeyFiles::ReadOnly && !data_dir.join(file).exists() {
        pending.push(format!(
            "{name} is not set: ods serve generates it into {}",
            data_dir.join(file).display()
        ));
    }
    k
}

/// Reads a key kept in the data directory, creating it (0600) when asked to; `None`
/// (and no problem) when it is missing and `keys` is `ReadOnly`.
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
    use clap::FromArgMatches;

    /// Settings from these flags and this ODS_CONF text, ignoring the environment.
    fn parse(args: &[&str], file: &str) -> Settings {
        let conf = ConfFile::parse(file);
        assert_eq!(conf.problems, Vec::<String>::new());
        let cmd = conf.apply(Settings::augment_args(Command::new("ods")).mut_args(|a| a.env(None)));
        let m = cmd.try_get_matches_from(std::iter::once("ods").chain(args.iter().copied()));
        Settings::from_arg_matches(&m.unwrap()).unwrap()
    }

    fn settings(args: &[&str]) -> Settings {
        parse(args, "")
    }

    #[test]
    fn secrets_hidden_in_debug() {
        let dir = tempfile::tempdir().unwrap();
        let flags = settings(&[
            "--data-dir",
            dir.path().to_str().unwrap(),
            "--database-url",
            "postgres://u:hunter2@h/db",
            "--secret-key",
            "s3cr3t-s3cr3t-s3cr3t",
            "--mysql-password",
            "s3cr3t-too",
        ]);
        assert!(!format!("{flags:?}").contains("s3cr3t"), "{flags:?}");
        let c = Config::resolve(flags, KeyFiles::Create).unwrap();
        let dbg = format!("{c:?}");
        assert!(!dbg.contains("hunter2") && !dbg.contains("s3cr3t"), "{dbg}");
        assert_eq!(c.database_url_redacted(), "postgres://u:***@h/db");
    }

    #[test]
    fn every_problem_is_reported() {
        let flags = settings(&[
            "--listen",
            "nonsense",
            "--data-dir",
            "/nonexistent/ods",
            "--database-url",
            "oracle://x",
            "--database-key",
            "short",
            "--share-context",
            "a/b",
        ]);
        let problems = Config::resolve(flags, KeyFiles::ReadOnly).unwrap_err();
        assert!(problems.len() >= 5, "{problems:#?}");
    }

    #[test]
    fn keys_generated_once_with_private_mode() {
        let dir = tempfile::tempdir().unwrap();
        let flags = || settings(&["--data-dir", dir.path().to_str().unwrap()]);
        let a = Config::resolve(flags(), KeyFiles::Create).unwrap();
        let b = Config::resolve(flags(), KeyFiles::Create).unwrap();
        assert_eq!(a.database_key.0, b.database_key.0);
        assert_eq!(a.secret_key.0, b.secret_key.0);
        assert!(a.pending.is_empty());
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
    fn keys_to_be_generated_are_pending_not_problems() {
        let dir = tempfile::tempdir().unwrap();
        let flags = || settings(&["--data-dir", dir.path().to_str().unwrap()]);
        let c = Config::resolve(flags(), KeyFiles::ReadOnly).unwrap();
        assert_eq!(c.pending.len(), 2, "{:?}", c.pending);
        assert!(
            c.pending[0].starts_with("SECRET_KEY is not set"),
            "{:?}",
            c.pending
        );
        assert!(
            c.pending[1].starts_with("DATABASE_KEY is not set"),
            "{:?}",
            c.pending
        );
        assert!(
            !dir.path().join("secret.key").exists(),
            "nothing is created"
        );
        // Once generated, they are read, not pending.
        let made = Config::resolve(flags(), KeyFiles::Create).unwrap();
        let read = Config::resolve(flags(), KeyFiles::ReadOnly).unwrap();
        assert!(read.pending.is_empty(), "{:?}", read.pending);
        assert_eq!(read.database_key.0, made.database_key.0);
        // A key file that is there but bad is a problem.
        std::fs::write(dir.path().join("database.key"), "garbage").unwrap();
        let problems = Config::resolve(flags(), KeyFiles::ReadOnly).unwrap_err();
        assert!(problems[0].contains("32-byte key"), "{problems:?}");
    }

    #[test]
    fn toml_keys_any_case_and_mysql_vars() {
        let dir = tempfile::tempdir().unwrap();
        let l = parse(
            &["--data-dir", dir.path().to_str().unwrap()],
            "MYSQL_SERVER = \"db:3306\"\nmysql_user = \"ods\"\nMYSQL_PASSWORD = \"p@ss\"\nDEBUG = true\nods_sync_interval = 7\nLogin_Max_Failures = 3",
        );
        assert_eq!(l.mysql_server.as_deref(), Some("db:3306"));
        let c = Config::resolve(l, KeyFiles::Create).unwrap();
        assert_eq!(c.database_url.0, "mysql://ods:p%40ss@db:3306/ods");
        assert!(c.debug);
        assert_eq!(c.sync_interval_secs, 7);
        assert_eq!(c.login_max_failures, 3);
    }

    #[test]
    fn flags_win_over_the_file_and_the_file_over_defaults() {
        let file = "listen = \"127.0.0.1:1\"\nODS_LOGIN_WINDOW_SECS = 5\ndebug = true";
        let s = parse(&["--listen", "127.0.0.1:2", "--debug=false"], file);
        assert_eq!(s.listen, "127.0.0.1:2");
        assert!(!s.debug);
        assert_eq!(s.login_window_secs, 5, "from the file");
        assert_eq!(s.login_max_failures, 10, "the default");
        assert!(parse(&["--debug"], "").debug, "a bare boolean flag is true");
    }

    #[test]
    fn bad_files_are_reported_key_by_key_without_secrets() {
        let conf = ConfFile::parse(
            "no_such_key = 1\nODS_JOB_POLL_MS = \"soon\"\nlogin_max_failures = 0\nsecret_key = [1]\nlisten = \"127.0.0.1:9\"",
        );
        assert_eq!(conf.problems.len(), 4, "{:#?}", conf.problems);
        assert!(
            conf.problems.iter().any(|p| p.contains("no_such_key")),
            "{:?}",
            conf.problems
        );
        assert!(
            conf.problems
                .iter()
                .any(|p| p.contains("ODS_JOB_POLL_MS") && p.contains("soon"))
        );
        assert_eq!(
            conf.values,
            vec![("listen".to_string(), "127.0.0.1:9".to_string())]
        );
        let conf = ConfFile::parse("not toml at all ===");
        assert_eq!(conf.problems.len(), 1);
    }
}
