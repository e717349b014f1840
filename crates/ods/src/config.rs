//! Layered configuration: built-in defaults < the TOML file named by `ODS_CONF` < the
//! environment < command-line flags, with every key declared once in [`Settings`];
//! here the settings are checked and resolved into the [`Config`] the server reads.
//! Secrets are wrapped so `Debug` never shows them, and a missing
//! `SECRET_KEY`/`DATABASE_KEY` is generated once and kept (mode 0600).

use std::net::SocketAddr;
use std::path::PathBuf;

/// A secret value; `Debug` prints `[hidden]`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret<T>(pub T);

impl<T> std::fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[hidden]")
    }
}

impl std::str::FromStr for Secret<String> {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Secret(s.to_string()))
    }
}

mod jamf;
mod keys;
pub mod sample;
mod settings;
mod storage;
pub use jamf::Jamf;
pub use keys::KeyFiles;
pub use settings::{ConfFile, Settings};
pub use storage::{Storage, StorageConfig};

/// The resolved configuration every part of the server reads (passed in `App`).
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub database_url: Secret<String>,
    /// Connections of this process's database pool (`db_pool_size`, 1 to 1000).
    pub db_pool_size: u32,
    pub secret_key: Secret<Vec<u8>>,
    pub database_key: Secret<[u8; 32]>,
    pub staging_dir: Option<PathBuf>,
    /// Where blobs live (`storage` and the S3 keys).
    pub storage: StorageConfig,
    /// The local blob store (`blob_dir`, default `DATA_DIR/blobs`).
    pub blob_dir: PathBuf,
    /// Write local blob files with `O_DIRECT` where possible (`direct_io`).
    pub direct_io: bool,
    /// This node's name in a site of several nodes (`node_name`, default the host name).
    pub node_name: String,
    /// Silence after which other nodes count this one as gone (`node_timeout_secs`).
    pub node_timeout: std::time::Duration,
    pub debug: bool,
    pub share_context: String,
    /// Cache-Control of package downloads without Authorization.
    pub download_cache_control: axum::http::HeaderValue,
    /// Certificate and key files when ODS serves HTTPS itself.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// Extra CA certificates (PEM) the peer client trusts.
    pub peer_ca: Vec<reqwest::Certificate>,
    /// The plain-http listener for the Jamf path beside TLS.
    pub plain_listen: Option<SocketAddr>,
    /// Jamf Pro integration settings (see `Jamf`).
    pub jamf: Jamf,
    pub allow_insecure_peers: bool,
    pub job_poll_ms: u64,
    pub sync_interval_secs: u64,
    /// How webhooks are sent (`webhook_*` and `notify_parallel` keys).
    pub webhooks: Webhooks,
    /// Downtime before `ods.unreachable`.
    pub unreachable_after_secs: u64,
    /// How email is sent (`email_*` keys).
    pub email: Email,
    pub max_transfers: usize,
    pub login_window_secs: u64,
    pub login_max_failures_per_address: u32,
    pub login_max_failures_per_account: u32,
    /// Web UI sessions end after this long unused (`session_idle_secs`)...
    pub session_idle_secs: u64,
    /// ...and this long after their login (`session_max_secs`), whichever is first.
    pub session_max_secs: u64,
    /// `ODS_INITIAL_ADMIN_PASSWORD`: the first-start admin's password, if set.
    pub initial_admin_password: Option<Secret<String>>,
    /// Who may read `/metrics` (off when both are unset).
    pub metrics_token: Option<Secret<String>>,
    pub metrics_networks: Vec<ipnet::IpNet>,
    /// The listener serving only `/metrics` (`metrics_listen`).
    pub metrics_listen: Option<SocketAddr>,
    /// Connection limits of the HTTP listener.
    pub limits: Limits,
    /// What `ods serve` will create on first start (`check-config` only; empty after
    /// `KeyFiles::Create`). A key listed here is empty in this `Config`.
    pub pending: Vec<String>,
}

/// How webhooks are sent.
#[derive(Debug, Clone)]
pub struct Webhooks {
    pub timeout: std::time::Duration,
    pub max_attempts: u32,
    pub retry_base: std::time::Duration,
    pub allow_link_local: bool,
    /// Slots of the notification job lane.
    pub parallel: usize,
}

/// How email is sent.
#[derive(Debug, Clone)]
pub struct Email {
    pub digest_window: std::time::Duration,
    /// Extra CA certificates (PEM) for the SMTP server's certificate.
    pub ca_pem: Option<Vec<u8>>,
}

/// The HTTP listener's connection limits (config keys `header_timeout_secs`, `body_idle_timeout_secs`,
/// `max_connections`, `max_connections_per_address`, `admin_networks`,
/// `trusted_proxies`).
#[derive(Debug, Clone)]
pub struct Limits {
    pub header_timeout: std::time::Duration,
    pub body_idle_timeout: std::time::Duration,
    pub max_connections: usize,
    pub max_per_address: usize,
    /// Addresses that may use the slots kept back from everyone else, and that the
    /// per-address cap does not apply to.
    pub admin_networks: Vec<ipnet::IpNet>,
    /// Peers whose forwarding headers are believed (`http::client`), and that the
    /// per-address cap does not apply to (one proxy carries many clients).
    pub trusted_proxies: Vec<ipnet::IpNet>,
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
        let jamf = Jamf::from_settings(&raw, &mut problems);
        let storage = StorageConfig::from_settings(&raw, &mut problems);
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

        let (secret_key, database_key) = keys::resolve(
            raw.secret_key,
            raw.database_key,
            &data_dir,
            keys,
            &mut problems,
            &mut pending,
        );

        let download_cache_control = axum::http::HeaderValue::from_str(raw.download_cache_control.trim())
            .ok()
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| {
                problems.push(format!(
                    "download_cache_control {:?} is not a header value (for example \"public, max-age=60, must-revalidate\")",
                    raw.download_cache_control
                ));
                axum::http::HeaderValue::from_static("no-cache")
            });
        let tls = match (raw.tls_cert, raw.tls_key) {
            (Some(c), Some(k)) => Some((c, k)),
            (None, None) => None,
            _ => {
                problems.push("tls_cert and tls_key go together: set both or neither".into());
                None
            }
        };
        let peer_ca = match &raw.peer_ca_file {
            None => Vec::new(),
            Some(f) => match std::fs::read(f).map_err(|e| e.to_string()).and_then(|pem| {
                reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| e.to_string())
            }) {
                Ok(certs) if !certs.is_empty() => certs,
                Ok(_) => {
                    problems.push(format!(
                        "peer_ca_file {}: no PEM certificate in it",
                        f.display()
                    ));
                    Vec::new()
                }
                Err(e) => {
                    problems.push(format!("peer_ca_file {}: {e}", f.display()));
                    Vec::new()
                }
            },
        };
        let email_ca = match &raw.email_ca_file {
            None => None,
            Some(f) => match std::fs::read(f) {
                Ok(pem) if lettre::transport::smtp::client::Certificate::from_pem(&pem).is_ok() => {
                    Some(pem)
                }
                Ok(_) => {
                    problems.push(format!(
                        "email_ca_file {}: no PEM certificate in it",
                        f.display()
                    ));
                    None
                }
                Err(e) => {
                    problems.push(format!("email_ca_file {}: {e}", f.display()));
                    None
                }
            },
        };
        let plain_listen = match &raw.plain_listen {
            None => None,
            Some(_) if tls.is_none() => {
                problems.push("plain_listen is only for use beside TLS (tls_cert and tls_key): without TLS the main listener is plain http already".into());
                None
            }
            Some(text) => match text.parse::<SocketAddr>() {
                Ok(a) => Some(a),
                Err(_) => {
                    problems.push(format!(
                        "plain_listen {text:?} is not ADDRESS:PORT (for example 0.0.0.0:80)"
                    ));
                    None
                }
            },
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

        let metrics_listen = match &raw.metrics_listen {
            None => None,
            Some(_)
                if raw.metrics_token.as_ref().is_none_or(|t| t.0.is_empty())
                    && raw.metrics_networks.is_empty() =>
            {
                problems.push("metrics_listen needs ODS_METRICS_TOKEN or ODS_METRICS_NETWORKS (who may read /metrics)".into());
                None
            }
            Some(text) => match text.parse::<SocketAddr>() {
                Ok(a) => Some(a),
                Err(_) => {
                    problems.push(format!(
                        "metrics_listen {text:?} is not ADDRESS:PORT (for example 127.0.0.1:9187)"
                    ));
                    None
                }
            },
        };
        let blob_dir = raw.blob_dir.unwrap_or_else(|| data_dir.join("blobs"));
        let node_name = raw.node_name.unwrap_or_else(default_node_name);
        if node_name.is_empty()
            || node_name.len() > 32
            || !node_name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            problems.push(format!(
                "ODS_NODE_NAME {node_name:?} must be 1 to 32 letters, digits, '-', '_' or '.'"
            ));
        }

        if let Some(p) = &raw.initial_admin_password
            && let Err(e) = crate::auth::password::check_new(&p.0)
        {
            problems.push(format!("ODS_INITIAL_ADMIN_PASSWORD: {}", e.message));
        }

        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(Config {
            listen,
            data_dir,
            database_url: Secret(database_url),
            db_pool_size: raw.db_pool_size,
            secret_key: Secret(secret_key.unwrap_or_default()),
            database_key: Secret(database_key.unwrap_or_default()),
            staging_dir: raw.upload_staging_directory,
            storage,
            blob_dir,
            direct_io: raw.direct_io,
            node_name,
            node_timeout: std::time::Duration::from_secs(raw.node_timeout_secs.max(2)),
            debug: raw.debug,
            share_context,
            download_cache_control,
            tls,
            peer_ca,
            plain_listen,
            jamf,
            allow_insecure_peers: raw.allow_insecure_peers,
            job_poll_ms: raw.job_poll_ms,
            sync_interval_secs: raw.sync_interval_secs.max(1),
            unreachable_after_secs: raw.unreachable_after_secs,
            webhooks: Webhooks {
                timeout: std::time::Duration::from_secs(raw.webhook_timeout_secs.clamp(1, 300)),
                max_attempts: raw.webhook_max_attempts.clamp(1, 50),
                retry_base: std::time::Duration::from_millis(raw.webhook_retry_base_ms.max(1)),
                allow_link_local: raw.webhook_allow_link_local,
                parallel: raw.notify_parallel.clamp(1, 64) as usize,
            },
            email: Email {
                digest_window: std::time::Duration::from_secs(raw.email_digest_secs.min(86_400)),
                ca_pem: email_ca,
            },
            max_transfers: raw.max_transfers.clamp(1, 64) as usize,
            login_window_secs: raw.login_window_secs,
            login_max_failures_per_address: raw.login_max_failures_per_address,
            login_max_failures_per_account: raw.login_max_failures_per_account,
            session_idle_secs: raw.session_idle_secs,
            session_max_secs: raw.session_max_secs,
            initial_admin_password: raw.initial_admin_password,
            metrics_token: raw.metrics_token.filter(|t| !t.0.is_empty()),
            metrics_networks: raw.metrics_networks,
            metrics_listen,
            limits: Limits {
                header_timeout: std::time::Duration::from_secs(raw.header_timeout_secs),
                body_idle_timeout: std::time::Duration::from_secs(raw.body_idle_timeout_secs),
                max_connections: raw.max_connections as usize,
                max_per_address: raw.max_connections_per_address as usize,
                admin_networks: raw.admin_networks,
                trusted_proxies: raw.trusted_proxies,
            },
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

/// The host name, cut and cleaned to what a node name may hold.
fn default_node_name() -> String {
    let host = std::fs::read_to_string("/etc/hostname").unwrap_or_default();
    let name: String = host
        .trim()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || "-_.".contains(*c))
        .take(32)
        .collect();
    if name.is_empty() { "ods".into() } else { name }
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

#[cfg(test)]
mod tests;
