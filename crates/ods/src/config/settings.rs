//! The configuration keys, each declared once (name, variable, flag, default, doc) as
//! a clap argument, and the `ODS_CONF` file layered under the environment as the keys'
//! defaults.

use std::path::PathBuf;

use clap::builder::BoolishValueParser;
use clap::parser::ValueSource;
use clap::{ArgAction, Args, Command};

use super::Secret;

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
    /// Database connections this process keeps at most (PostgreSQL/MariaDB; on SQLite one writer and up to 8 readers, fewer when this is smaller). Every node of a site has its own pool: the server's max_connections must exceed this times the number of nodes (plus `ods` commands and other clients)
    #[arg(long, env = "ODS_DB_POOL_SIZE", value_name = "N", default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub db_pool_size: u32,
    /// Server secret, at least 16 characters; it keys the cache of verified Basic credentials [default: generated once into DATA_DIR/secret.key]. Prefer the environment or ODS_CONF: other local users can read a command line
    #[arg(long, env = "SECRET_KEY", value_name = "KEY", hide_env_values = true)]
    pub secret_key: Option<Secret<String>>,
    /// Key encrypting sensitive columns: 32 bytes as 64 hex digits or base64 [default: generated once into DATA_DIR/database.key]. Prefer the environment or ODS_CONF
    #[arg(long, env = "DATABASE_KEY", value_name = "KEY", hide_env_values = true)]
    pub database_key: Option<Secret<String>>,
    /// Password of the `admin` account created at first start (at least 8 characters, not the well-known default); such an admin need not change it. Without it the first start creates admin / ods1234!, which may only change its password. Read only when the database has no users yet
    #[arg(
        long,
        env = "ODS_INITIAL_ADMIN_PASSWORD",
        value_name = "PASSWORD",
        hide_env_values = true
    )]
    pub initial_admin_password: Option<Secret<String>>,
    /// Directory for uploads in progress; must be on the blob store's filesystem [default: DATA_DIR/blobs/.staging]
    #[arg(long, env = "UPLOAD_STAGING_DIRECTORY", value_name = "DIR")]
    pub upload_staging_directory: Option<PathBuf>,
    /// Where blobs live: `local` (DATA_DIR/blobs) or `s3://BUCKET/PREFIX` (an S3-compatible bucket; see the other S3 keys)
    #[arg(
        long,
        env = "ODS_STORAGE",
        value_name = "local|s3://BUCKET/PREFIX",
        default_value = "local"
    )]
    pub storage: String,
    /// S3 endpoint URL for S3-compatible servers; plain http only on loopback [default: AWS]
    #[arg(long, env = "AWS_ENDPOINT_URL", value_name = "URL")]
    pub s3_endpoint: Option<String>,
    /// S3 region [default: us-east-1]
    #[arg(long, env = "AWS_REGION", value_name = "REGION")]
    pub s3_region: Option<String>,
    /// Path-style S3 requests (ENDPOINT/BUCKET/KEY) instead of virtual-hosted ones (BUCKET.ENDPOINT/KEY) [default: path-style with s3_endpoint, virtual-hosted on AWS]
    #[arg(long, env = "ODS_S3_PATH_STYLE", value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = BoolishValueParser::new(), action = ArgAction::Set)]
    pub s3_path_style: Option<bool>,
    /// S3 access key id [default: the AWS credential chain: web identity, ECS, instance metadata]
    #[arg(
        long,
        env = "AWS_ACCESS_KEY_ID",
        value_name = "ID",
        hide_env_values = true
    )]
    pub aws_access_key_id: Option<Secret<String>>,
    /// S3 secret access key (with AWS_ACCESS_KEY_ID). Prefer the environment or ODS_CONF
    #[arg(
        long,
        env = "AWS_SECRET_ACCESS_KEY",
        value_name = "KEY",
        hide_env_values = true
    )]
    pub aws_secret_access_key: Option<Secret<String>>,
    /// S3 session token of temporary credentials
    #[arg(
        long,
        env = "AWS_SESSION_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    pub aws_session_token: Option<Secret<String>>,
    /// Largest blob the S3 backend copies with one CopyObject when an upload commits (AWS allows 5 GiB); larger ones are copied server-side in parts of this size (UploadPartCopy, at least 5 MiB)
    #[arg(long, env = "ODS_S3_MAX_COPY_BYTES", value_name = "BYTES", default_value_t = 5 * 1024 * 1024 * 1024, value_parser = clap::value_parser!(u64).range(5 * 1024 * 1024..=5 * 1024 * 1024 * 1024))]
    pub s3_max_copy_bytes: u64,
    /// With S3 storage: answer a package download with a redirect (307) to a presigned URL of the bucket instead of streaming it through ODS (preconditions are still checked here)
    #[arg(long, env = "ODS_DOWNLOAD_REDIRECT", value_name = "BOOL", default_value_t = false, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = BoolishValueParser::new(), action = ArgAction::Set)]
    pub download_redirect: bool,
    /// Seconds a download redirect's presigned URL stays valid
    #[arg(long, env = "ODS_DOWNLOAD_REDIRECT_SECS", value_name = "SECS", default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..=604_800))]
    pub download_redirect_secs: u64,
    /// Directory of the local blob store; several nodes of one site point it at one shared filesystem, each keeping its own data directory [default: DATA_DIR/blobs]
    #[arg(long, env = "ODS_BLOB_DIR", value_name = "DIR")]
    pub blob_dir: Option<PathBuf>,
    /// Write local blob files past the page cache (O_DIRECT) where the filesystem takes it: uploads and transfers then cost no page-cache copy and their fsync little; false writes through the page cache
    #[arg(long, env = "ODS_DIRECT_IO", value_name = "BOOL", default_value_t = true, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = BoolishValueParser::new(), action = ArgAction::Set)]
    pub direct_io: bool,
    /// This node's name within a site of several nodes (letters, digits, '.', '-', '_'; at most 32) [default: the host name]
    #[arg(long, env = "ODS_NODE_NAME", value_name = "NAME")]
    pub node_name: Option<String>,
    /// Seconds without a heartbeat after which another node counts this one as gone and sweeps its staging files; at least 2
    #[arg(
        long,
        env = "ODS_NODE_TIMEOUT_SECS",
        value_name = "SECS",
        default_value_t = 60
    )]
    pub node_timeout_secs: u64,
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
    /// Seconds a webhook receiver has to answer (connect included) before the attempt counts as failed (1 to 300)
    #[arg(
        long,
        env = "ODS_WEBHOOK_TIMEOUT",
        value_name = "SECS",
        default_value_t = 10
    )]
    pub webhook_timeout_secs: u64,
    /// Seconds a link to a peer must have been failing before `ods.unreachable` is raised (`ods.recovered` follows when it works again)
    #[arg(
        long,
        env = "ODS_UNREACHABLE_AFTER_SECS",
        value_name = "SECS",
        default_value_t = 120
    )]
    pub unreachable_after_secs: u64,
    /// Attempts per webhook delivery before it is marked failed (1 to 50)
    #[arg(
        long,
        env = "ODS_WEBHOOK_MAX_ATTEMPTS",
        value_name = "N",
        default_value_t = 8
    )]
    pub webhook_max_attempts: u32,
    /// Delay before the first webhook retry, doubling after each failed attempt up to six hours
    #[arg(
        long,
        env = "ODS_WEBHOOK_RETRY_BASE_MS",
        value_name = "MS",
        default_value_t = 5000
    )]
    pub webhook_retry_base_ms: u64,
    /// Allow webhook URLs whose host resolves to a link-local or cloud metadata address (169.254.0.0/16, fe80::/10, fd00:ec2::254); refused by default, when created and when sent
    #[arg(
        long,
        env = "ODS_WEBHOOK_ALLOW_LINK_LOCAL",
        value_name = "BOOL",
        default_value_t = false,
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        value_parser = BoolishValueParser::new(),
        action = ArgAction::Set
    )]
    pub webhook_allow_link_local: bool,
    /// Notification deliveries running at once, in a job lane of their own so slow receivers never hold up sync jobs (1 to 64)
    #[arg(
        long,
        env = "ODS_NOTIFY_PARALLEL",
        value_name = "N",
        default_value_t = 8
    )]
    pub notify_parallel: u32,
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
        env = "ODS_LOGIN_MAX_FAILURES_PER_ADDRESS",
        value_name = "N",
        default_value_t = 10,
        value_parser = clap::value_parser!(u32).range(1..)
    )]
    pub login_max_failures_per_address: u32,
    /// Failed logins against one account within the window, from any addresses, before it gets 429 from every address that has not logged in as it in the last day
    #[arg(
        long,
        env = "ODS_LOGIN_MAX_FAILURES_PER_ACCOUNT",
        value_name = "N",
        default_value_t = 30,
        value_parser = clap::value_parser!(u32).range(1..)
    )]
    pub login_max_failures_per_account: u32,
    /// Seconds a web UI session lasts without being used
    #[arg(
        long,
        env = "ODS_SESSION_IDLE_SECS",
        value_name = "SECS",
        default_value_t = 7200,
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    pub session_idle_secs: u64,
    /// Seconds a web UI session lasts at most from its login, however often it is used
    #[arg(
        long,
        env = "ODS_SESSION_MAX_SECS",
        value_name = "SECS",
        default_value_t = 43200,
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    pub session_max_secs: u64,
    /// Seconds a client has to send a request's headers, once it has started one
    #[arg(
        long,
        env = "ODS_HEADER_TIMEOUT_SECS",
        value_name = "SECS",
        default_value_t = 30,
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    pub header_timeout_secs: u64,
    /// Seconds a request body may send nothing before the request is cut off (a download has no such limit)
    #[arg(
        long,
        env = "ODS_BODY_IDLE_TIMEOUT_SECS",
        value_name = "SECS",
        default_value_t = 60,
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    pub body_idle_timeout_secs: u64,
    /// Most connections open at once (also bounded by the open-file limit, which ods raises to its hard limit at start)
    #[arg(
        long,
        env = "ODS_MAX_CONNECTIONS",
        value_name = "N",
        default_value_t = 4096,
        value_parser = clap::value_parser!(u64).range(2..)
    )]
    pub max_connections: u64,
    /// Most connections open at once from one client address outside the admin networks
    #[arg(
        long,
        env = "ODS_MAX_CONNECTIONS_PER_ADDRESS",
        value_name = "N",
        default_value_t = 256,
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    pub max_connections_per_address: u64,
    /// Client networks (CIDRs, comma-separated) exempt from the per-address cap and allowed the twentieth of the connection slots kept back from everyone else
    #[arg(
        long,
        env = "ODS_ADMIN_NETWORKS",
        value_name = "CIDRS",
        value_delimiter = ',',
        default_value = "127.0.0.0/8,::1/128"
    )]
    pub admin_networks: Vec<ipnet::IpNet>,
    /// Reverse proxies (CIDRs, comma-separated) whose Forwarded / X-Forwarded-For / -Proto / -Host headers are believed; the client address they name is what the login limiter, the per-address rules and the logs use. Such peers are also exempt from the per-address connection cap. Headers from any other peer are ignored [default: none]
    #[arg(
        long,
        env = "ODS_TRUSTED_PROXIES",
        value_name = "CIDRS",
        value_delimiter = ','
    )]
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Bearer token a Prometheus scraper sends to read `GET /metrics` (Authorization: Bearer TOKEN). With neither METRICS_TOKEN nor METRICS_NETWORKS set, /metrics is off (404); with both, a scrape needs both [default: none]
    #[arg(
        long,
        env = "ODS_METRICS_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    pub metrics_token: Option<Secret<String>>,
    /// Client networks (CIDRs, comma-separated) allowed to read `GET /metrics`, checked on the client address (see TRUSTED_PROXIES). With neither METRICS_TOKEN nor METRICS_NETWORKS set, /metrics is off (404) [default: none]
    #[arg(
        long,
        env = "ODS_METRICS_NETWORKS",
        value_name = "CIDRS",
        value_delimiter = ','
    )]
    pub metrics_networks: Vec<ipnet::IpNet>,
    /// A second listener serving only /metrics (same token and networks), e.g. for `ods worker`, which has no other
    #[arg(long, env = "ODS_METRICS_LISTEN", value_name = "ADDR:PORT")]
    pub metrics_listen: Option<String>,
    /// Cache-Control of package downloads. The default lets a site's caching proxy (nginx proxy_cache) keep packages and revalidate them by ETag after a minute; nginx stores nothing marked no-cache or max-age=0. A download request carrying Authorization is always answered `private, no-cache`
    #[arg(
        long,
        env = "ODS_DOWNLOAD_CACHE_CONTROL",
        value_name = "VALUE",
        default_value = "public, max-age=60, must-revalidate"
    )]
    pub download_cache_control: String,
    /// PEM certificate chain to serve HTTPS with (with TLS_KEY); re-read on SIGHUP and when the file changes
    #[arg(long, env = "ODS_TLS_CERT", value_name = "FILE")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of TLS_CERT
    #[arg(long, env = "ODS_TLS_KEY", value_name = "FILE")]
    pub tls_key: Option<PathBuf>,
    /// PEM bundle of CA certificates peers' https certificates may chain to, in addition to the system's roots (for a private CA); certificates are always checked
    #[arg(long, env = "ODS_PEER_CA_FILE", value_name = "FILE")]
    pub peer_ca_file: Option<PathBuf>,
    /// PEM CA certificates the SMTP server's certificate may chain to (STARTTLS or TLS), besides the system's roots (for a private CA or a self-signed certificate); certificates are always checked
    #[arg(long, env = "ODS_EMAIL_CA_FILE", value_name = "FILE")]
    pub email_ca_file: Option<PathBuf>,
    /// Seconds events wait to be batched into one email digest per recipient (0 sends each at once)
    #[arg(
        long,
        env = "ODS_EMAIL_DIGEST_SECS",
        value_name = "SECS",
        default_value_t = 60
    )]
    pub email_digest_secs: u64,
    /// With TLS on: also listen on this address in plain HTTP, serving only the Jamf downloads /CONTEXT/Packages/NAME (for distribution points that cannot use https) [default: no plain listener]
    #[arg(long, env = "ODS_PLAIN_LISTEN", value_name = "ADDR:PORT")]
    pub plain_listen: Option<String>,
    /// Hosts (host or host:port, comma-separated) Jamf Pro jobs may call; an instance whose URL names another host is not called and its records show why [default: any host]
    #[arg(
        long,
        env = "ODS_JAMF_ALLOWED_HOSTS",
        value_name = "HOSTS",
        value_delimiter = ','
    )]
    pub jamf_allowed_hosts: Vec<String>,
    /// Seconds between looks for packages whose Jamf Pro record is not in sync (changes here are also noticed at once)
    #[arg(
        long,
        env = "ODS_JAMF_SCAN_SECS",
        value_name = "SECS",
        default_value_t = 30
    )]
    pub jamf_scan_secs: u64,
    /// Seconds between full checks of every Jamf Pro record (the drift report)
    #[arg(
        long,
        env = "ODS_JAMF_RECONCILE_SECS",
        value_name = "SECS",
        default_value_t = 3600
    )]
    pub jamf_reconcile_secs: u64,
    /// Secret Jamf Pro webhooks send to POST /api/integrations/jamf/webhook (as the Basic password, or in X-ODS-Webhook-Token) [default: the receiver is off]
    #[arg(
        long,
        env = "ODS_JAMF_WEBHOOK_SECRET",
        value_name = "SECRET",
        hide_env_values = true
    )]
    pub jamf_webhook_secret: Option<Secret<String>>,
    /// PEM file with the RSA public key that signs Jamf Pro's download tokens (needed for download_auth jwt)
    #[arg(long, env = "ODS_JAMF_JWT_PUBLIC_KEY", value_name = "FILE")]
    pub jamf_jwt_public_key: Option<PathBuf>,
    /// Clock skew allowed when checking a download token's exp, in seconds
    #[arg(
        long,
        env = "ODS_JAMF_JWT_LEEWAY_SECS",
        value_name = "SECS",
        default_value_t = 60
    )]
    pub jamf_jwt_leeway_secs: u64,
    /// The iss a download token must carry
    #[arg(
        long,
        env = "ODS_JAMF_JWT_ISSUER",
        value_name = "ISS",
        default_value = "JSS"
    )]
    pub jamf_jwt_issuer: String,
    /// The sub a download token must carry
    #[arg(
        long,
        env = "ODS_JAMF_JWT_SUBJECT",
        value_name = "SUB",
        default_value = "AppManifest"
    )]
    pub jamf_jwt_subject: String,
}

/// The file named by `ODS_CONF`: TOML whose keys are the settings' names or their
/// variables, in any letter case.
#[derive(Debug, Default)]
pub struct ConfFile {
    /// Keys (settings ids) the file gave a valid value.
    pub(super) values: Vec<(String, String)>,
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
