//! The `ods` command line: serve | worker | migrate | check-config | user set-password |
//! backup | restore | completions | man | storage migrate.

use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use ods::config::{ConfFile, Config, KeyFiles, Settings};

/// The server makes and frees many small buffers on many threads (request heads, rows,
/// catalog records); mimalloc's per-thread free lists serve them with less contention
/// and fewer instructions than the system allocator (see the README's benchmarks).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Shown under every command's `--help`.
const CONFIG_HELP: &str = "Every option can also be set by the environment variable shown with it, or in the \
TOML file named by ODS_CONF, under the option's name or its variable (any letter case). \
A flag wins over the environment, the environment over the file; an empty variable counts \
as unset. ODS_LOG takes a tracing env-filter (for example ods=debug).";

#[derive(Parser)]
#[command(
    name = "ods",
    version,
    about = "Open Distribution Server",
    after_help = CONFIG_HELP
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP server and the background worker
    #[command(after_help = CONFIG_HELP)]
    Serve {
        #[command(flatten)]
        settings: Settings,
    },
    /// Run only the background worker (for scaled-out sites sharing one database)
    #[command(after_help = CONFIG_HELP)]
    Worker {
        #[command(flatten)]
        settings: Settings,
    },
    /// Apply database migrations and exit
    #[command(after_help = CONFIG_HELP)]
    Migrate {
        #[command(flatten)]
        settings: Settings,
    },
    /// Check the configuration, report every problem, and exit (creates nothing)
    #[command(after_help = CONFIG_HELP)]
    CheckConfig {
        #[command(flatten)]
        settings: Settings,
    },
    /// Manage users
    User {
        #[command(subcommand)]
        action: UserAction,
    },
    /// Back up the database, the keys and the blobs into DIR (new or empty) while the server runs
    #[command(after_help = CONFIG_HELP)]
    Backup {
        /// Directory to write the backup to (made private: it holds the keys)
        dir: std::path::PathBuf,
        #[command(flatten)]
        settings: Settings,
    },
    /// Restore a backup made by `ods backup` into an empty data directory and database
    #[command(after_help = CONFIG_HELP)]
    Restore {
        /// Directory holding the backup
        dir: std::path::PathBuf,
        #[command(flatten)]
        settings: Settings,
    },
    /// Print a shell completion script (bash, zsh, fish, elvish or powershell)
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff) of ods, or write the pages of ods and of every subcommand into a directory
    Man {
        /// Write ods.1 and one page per subcommand (ods-serve.1, ods-user-set-password.1, ...) into DIR (created if missing) instead of printing ods.1
        #[arg(long, value_name = "DIR")]
        out_dir: Option<std::path::PathBuf>,
    },
    /// Manage the blob store
    Storage {
        #[command(subcommand)]
        action: StorageAction,
    },
}

#[derive(Subcommand)]
enum StorageAction {
    /// Copy every blob of the configured store (ODS_STORAGE) to another one, each
    /// verified by its SHA-256; blobs already there are skipped, so it resumes. Safe
    /// while the server runs; run it again after switching ODS_STORAGE and restarting
    #[command(after_help = CONFIG_HELP)]
    Migrate {
        /// The target store: `local` (DATA_DIR/blobs) or s3://BUCKET/PREFIX (with the S3 keys)
        #[arg(long, value_name = "URL")]
        to: String,
        #[command(flatten)]
        settings: Settings,
    },
}

#[derive(Subcommand)]
enum UserAction {
    /// Set a user's password (read from standard input); creates an admin if missing
    #[command(after_help = CONFIG_HELP)]
    SetPassword {
        name: String,
        #[command(flatten)]
        settings: Settings,
    },
}

fn load(settings: Settings, conf: &ConfFile, keys: KeyFiles) -> Result<Config, ExitCode> {
    Config::load(settings, &conf.problems, keys).map_err(|problems| {
        eprintln!("ods: the configuration has {} problem(s):", problems.len());
        for p in problems {
            eprintln!("  - {p}");
        }
        ExitCode::from(2)
    })
}

fn init_logging(debug: bool) {
    let default = if debug {
        "ods=debug,tower_http=debug,info"
    } else {
        "ods=info,warn"
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("ODS_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour codes only on a terminal, never in files or the journal.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("installing the SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

fn main() -> ExitCode {
    // One TLS crypto provider for every client in the process (peer calls).
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let conf = ConfFile::from_env();
    let cmd = conf.apply(Cli::command());
    let matches = cmd.clone().get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("starting the runtime");
    let described = conf.describe(&cmd, &matches);
    rt.block_on(run(cli, conf, described))
}

async fn run(cli: Cli, conf: ConfFile, described: Vec<String>) -> ExitCode {
    match cli.command {
        Command::Serve { settings } => {
            let Ok(config) = load(settings, &conf, KeyFiles::Create) else {
                return ExitCode::from(2);
            };
            init_logging(config.debug);
            let fds = ods::http::serve::raise_fd_limit();
            if fds < config.limits.max_connections as u64 + 256 {
                eprintln!(
                    "ods: warning: the open-file limit is {fds}, below ODS_MAX_CONNECTIONS ({}) plus room for files; raise LimitNOFILE or lower the cap",
                    config.limits.max_connections
                );
            }
            let listener = match tokio::net::TcpListener::bind(config.listen).await {
                Ok(l) => l,
                Err(e) => {
                    eprintln!("ods: cannot listen on {}: {e}", config.listen);
                    return ExitCode::from(2);
                }
            };
            let plain = match config.plain_listen {
                None => None,
                Some(a) => match tokio::net::TcpListener::bind(a).await {
                    Ok(l) => Some(l),
                    Err(e) => {
                        eprintln!("ods: cannot listen on {a} (plain_listen): {e}");
                        return ExitCode::from(2);
                    }
                },
            };
            let chosen_password = config.initial_admin_password.is_some();
            let opened = match ods::App::open(config).await {
                Ok(o) => o,
                Err(e) => {
                    eprintln!("ods: {e:#}");
                    return ExitCode::from(2);
                }
            };
            if let Err(e) = ods::join_site(&opened.app).await {
                eprintln!("ods: {e:#}");
                return ExitCode::from(2);
            }
            let addr = listener
                .local_addr()
                .map(|a| a.to_string())
                .unwrap_or_default();
            if let Some((cert, key)) = &opened.app.config.tls
                && let Err(e) = ods::http::tls::Tls::load(cert, key)
            {
                eprintln!("ods: {e:#}");
                return ExitCode::from(2);
            }
            let scheme = if opened.app.config.tls.is_some() {
                "https"
            } else {
                "http"
            };
            println!("ODS listening on {scheme}://{addr}");
            if let Some(p) = plain.as_ref().and_then(|l| l.local_addr().ok()) {
                println!(
                    "Jamf downloads also on plain http://{p}/{}/Packages/",
                    opened.app.config.share_context
                );
            }
            if opened.first_start && chosen_password {
                println!("First start: log in as admin with ODS_INITIAL_ADMIN_PASSWORD.");
            } else if opened.first_start {
                println!(
                    "First start: log in as admin / ods1234! and change the password (until then it can do nothing else)."
                );
            }
            let _ = std::io::stdout().flush();
            match ods::launch_with(opened.app, Some(listener), plain, shutdown_signal()).await {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("ods: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Worker { settings } => {
            let Ok(config) = load(settings, &conf, KeyFiles::Create) else {
                return ExitCode::from(2);
            };
            init_logging(config.debug);
            let o = match ods::App::open(config).await {
                Ok(o) => o,
                Err(e) => {
                    eprintln!("ods: {e:#}");
                    return ExitCode::from(2);
                }
            };
            if let Err(e) = ods::join_site(&o.app).await {
                eprintln!("ods: {e:#}");
                return ExitCode::from(2);
            }
            match ods::launch(o.app, None, shutdown_signal()).await {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("ods: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Migrate { settings } => {
            let Ok(config) = load(settings, &conf, KeyFiles::Create) else {
                return ExitCode::from(2);
            };
            match migrate(&config).await {
                Ok(v) if v.is_empty() => {
                    println!("database is up to date");
                    ExitCode::SUCCESS
                }
                Ok(v) => {
                    println!("applied migrations {v:?}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("ods: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::CheckConfig { settings } => {
            let Ok(config) = load(settings, &conf, KeyFiles::ReadOnly) else {
                return ExitCode::from(2);
            };
            check_config(&config, &described).await
        }
        Command::Storage {
            action: StorageAction::Migrate { to, settings },
        } => {
            let Ok(config) = load(settings, &conf, KeyFiles::Create) else {
                return ExitCode::from(2);
            };
            init_logging(config.debug);
            match storage_migrate(&config, &to).await {
                Ok(r) if r.failed == 0 => {
                    println!(
                        "migrated: {} copied ({} bytes), {} already there",
                        r.copied, r.bytes, r.skipped
                    );
                    ExitCode::SUCCESS
                }
                Ok(r) => {
                    eprintln!(
                        "ods: {} blob(s) could not be copied ({} copied, {} already there); run it again",
                        r.failed, r.copied, r.skipped
                    );
                    ExitCode::FAILURE
                }
                Err(e) => {
                    eprintln!("ods: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::User {
            action: UserAction::SetPassword { name, settings },
        } => {
            let Ok(config) = load(settings, &conf, KeyFiles::Create) else {
                return ExitCode::from(2);
            };
            match set_password(config, &name).await {
                Ok(msg) => {
                    println!("{msg}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("ods: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Backup { dir, settings } => {
            // Everything the backup writes is private (it holds the keys), the dump
            // tools' files included.
            rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
            let Ok(config) = load(settings, &conf, KeyFiles::ReadOnly) else {
                return ExitCode::from(2);
            };
            match ods::backup::backup(&config, &dir).await {
                Ok(m) => {
                    println!(
                        "backup of {} ({}) in {}: {} database ({} bytes, {}), keys, {} blob(s) of {} bytes {}",
                        m.server.name,
                        m.server.iss,
                        dir.display(),
                        m.database.engine,
                        m.database.bytes,
                        m.database.tool,
                        m.storage.count,
                        m.storage.bytes,
                        if m.storage.copied {
                            "copied"
                        } else {
                            "listed (they stay in the store)"
                        }
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("ods: backup failed: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Restore { dir, settings } => {
            rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
            let explicit = ods::backup::ExplicitKeys {
                secret_key: settings.secret_key.is_some(),
                database_key: settings.database_key.is_some(),
            };
            // A missing data directory is an empty one: make it, private.
            if let Err(e) = std::fs::create_dir_all(&settings.data_dir) {
                eprintln!("ods: cannot create {}: {e}", settings.data_dir.display());
                return ExitCode::from(2);
            }
            let Ok(config) = load(settings, &conf, KeyFiles::ReadOnly) else {
                return ExitCode::from(2);
            };
            match ods::backup::restore(&config, &dir, explicit).await {
                Ok(r) => {
                    println!(
                        "restored {} ({}) from the backup of {}: {} database, {} blob(s) ({} hard-linked, {} copied)",
                        r.manifest.server.name,
                        r.manifest.server.iss,
                        r.manifest.created_at,
                        r.manifest.database.engine,
                        r.manifest.storage.count,
                        r.placed.linked,
                        r.placed.copied
                    );
                    if !r.missing.is_empty() {
                        eprintln!(
                            "ods: warning: {} blob(s) the backup lists are not in the store ({}); their packages must be fetched again",
                            r.missing.len(),
                            r.missing.join(", ")
                        );
                    }
                    if !r.without_content.is_empty() {
                        eprintln!(
                            "ods: warning: {} Public package(s) have no content in the store: {}",
                            r.without_content.len(),
                            r.without_content.join(", ")
                        );
                    }
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("ods: restore refused or failed: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Completions { shell } => {
            let mut cmd = Cli::command();
            clap_complete::generate(shell, &mut cmd, "ods", &mut std::io::stdout());
            ExitCode::SUCCESS
        }
        Command::Man { out_dir } => {
            let written = match &out_dir {
                None => clap_mangen::Man::new(Cli::command()).render(&mut std::io::stdout()),
                Some(dir) => std::fs::create_dir_all(dir)
                    .and_then(|()| clap_mangen::generate_to(Cli::command(), dir)),
            };
            match written {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    match &out_dir {
                        Some(dir) => {
                            eprintln!("ods: writing the manual pages into {}: {e}", dir.display())
                        }
                        None => eprintln!("ods: {e}"),
                    }
                    ExitCode::FAILURE
                }
            }
        }
    }
}

/// `ods check-config`: opens the database (unless it is a SQLite file `ods serve` has
/// yet to create), then prints every setting with where it came from.
async fn check_config(config: &Config, described: &[String]) -> ExitCode {
    let mut pending = config.pending.clone();
    match config.sqlite_file().filter(|f| !f.exists()) {
        Some(file) => pending.push(format!(
            "the SQLite database {} does not exist yet: ods serve creates it",
            file.display()
        )),
        None => match ods::db::Db::connect_sized(&config.database_url.0, config.db_pool_size).await
        {
            Ok(db) => db.close().await,
            Err(e) => {
                eprintln!(
                    "ods: the configuration has 1 problem(s):\n  - cannot open the database {}: {e}",
                    config.database_url_redacted()
                );
                return ExitCode::from(2);
            }
        },
    }
    if let ods::config::Storage::S3(opts) = &config.storage.store
        && let Err(e) =
            ods::storage::s3::S3Store::open(opts.clone(), ods::node::new_id(&config.node_name))
                .await
    {
        eprintln!("ods: the configuration has 1 problem(s):\n  - {e:#}");
        return ExitCode::from(2);
    }
    println!(
        "configuration OK: listen {}, data {}, database {}",
        config.listen,
        config.data_dir.display(),
        config.database_url_redacted()
    );
    for line in described {
        println!("  {line}");
    }
    for p in pending {
        println!("first start: {p}");
    }
    ExitCode::SUCCESS
}

/// `ods storage migrate --to URL`.
async fn storage_migrate(
    config: &Config,
    to: &str,
) -> anyhow::Result<ods::storage::migrate::Report> {
    let target = config
        .storage
        .parse(to)
        .map_err(|e| anyhow::anyhow!("--to: {e}"))?;
    let from = ods::app::open_store(
        config,
        &config.storage.store,
        &ods::node::new_id(&config.node_name),
    )
    .await?;
    let into = ods::app::open_store(config, &target, &ods::node::new_id(&config.node_name)).await?;
    if from.describe() == into.describe() {
        anyhow::bail!("--to names the store in use ({})", from.describe());
    }
    println!(
        "copying blobs from {} to {}",
        from.describe(),
        into.describe()
    );
    let say = |line: String| println!("{line}");
    Ok(ods::storage::migrate::migrate(from.as_ref(), into.as_ref(), &say).await?)
}

async fn migrate(config: &Config) -> anyhow::Result<Vec<i64>> {
    let db = ods::db::Db::connect_sized(&config.database_url.0, config.db_pool_size).await?;
    let v = ods::db::migrations::run(&db).await?;
    db.close().await;
    Ok(v)
}

async fn set_password(config: Config, name: &str) -> anyhow::Result<String> {
    use ods::auth::password;
    use ods::model::Role;
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        eprint!("New password for {name}: ");
    }
    let mut line = String::new();
    stdin.lock().read_line(&mut line)?;
    let pass = line.trim_end_matches(['\r', '\n']).to_string();
    password::check_new(&pass).map_err(|e| anyhow::anyhow!(e.message))?;
    let opened = ods::App::open(config).await?;
    let db = &opened.app.db;
    let hash = password::hash_async(pass).await?;
    let msg = match ods::db::users::by_name(db, name).await? {
        Some(u) => {
            ods::db::users::set_password(db, u.id, &hash, false).await?;
            format!("password of {name} changed")
        }
        None => {
            ods::db::users::insert(db, name, &hash, Role::Admin, false).await?;
            format!("admin user {name} created")
        }
    };
    db.close().await;
    Ok(msg)
}
