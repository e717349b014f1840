//! The `ods` command line: serve | worker | migrate | check-config | user set-password.

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use ods::config::{Config, KeyFiles, Layer, Secret};

#[derive(Parser)]
#[command(name = "ods", version, about = "Open Distribution Server")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Args, Clone, Default)]
struct Common {
    /// Directory holding the SQLite database, blobs and generated keys [env: ODS_DATA_DIR; default ./ods-data]
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// sqlite://, postgres:// or mysql:// URL [env: DATABASE_URL; default the SQLite file in the data directory]
    #[arg(long)]
    database_url: Option<String>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP server and the background worker
    Serve {
        #[command(flatten)]
        common: Common,
        /// Address and port to listen on [env: ODS_LISTEN; default 127.0.0.1:8080]
        #[arg(long)]
        listen: Option<String>,
        /// Allow plain-HTTP peer traffic to non-loopback addresses [env: ODS_ALLOW_INSECURE_PEERS]
        #[arg(long)]
        allow_insecure_peers: bool,
    },
    /// Run only the background worker (for scaled-out sites sharing one database)
    Worker {
        #[command(flatten)]
        common: Common,
    },
    /// Apply database migrations and exit
    Migrate {
        #[command(flatten)]
        common: Common,
    },
    /// Check the configuration, report every problem, and exit
    CheckConfig {
        #[command(flatten)]
        common: Common,
        #[arg(long)]
        listen: Option<String>,
    },
    /// Manage users
    User {
        #[command(subcommand)]
        action: UserAction,
    },
}

#[derive(Subcommand)]
enum UserAction {
    /// Set a user's password (read from standard input); creates an admin if missing
    SetPassword {
        name: String,
        #[command(flatten)]
        common: Common,
    },
}

fn flags(common: &Common, listen: Option<String>, insecure: bool) -> Layer {
    Layer {
        listen,
        data_dir: common.data_dir.clone(),
        database_url: common.database_url.clone().map(Secret),
        allow_insecure_peers: insecure.then_some(true),
        ..Layer::default()
    }
}

fn load(flags: Layer, keys: KeyFiles) -> Result<Config, ExitCode> {
    let env = Layer::from_env(|k| std::env::var(k).ok().filter(|v| !v.is_empty()));
    let result = match env {
        Ok(env) => Config::load(flags, env, keys),
        Err(problems) => Err(problems),
    };
    result.map_err(|problems| {
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
    // One TLS crypto provider for every client in the process (peer calls, Jamf).
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let cli = Cli::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("starting the runtime");
    rt.block_on(run(cli))
}

async fn run(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Serve {
            common,
            listen,
            allow_insecure_peers,
        } => {
            let Ok(config) = load(
                flags(&common, listen, allow_insecure_peers),
                KeyFiles::Create,
            ) else {
                return ExitCode::from(2);
            };
            init_logging(config.debug);
            let listener = match tokio::net::TcpListener::bind(config.listen).await {
                Ok(l) => l,
                Err(e) => {
                    eprintln!("ods: cannot listen on {}: {e}", config.listen);
                    return ExitCode::from(2);
                }
            };
            let opened = match ods::App::open(config).await {
                Ok(o) => o,
                Err(e) => {
                    eprintln!("ods: {e:#}");
                    return ExitCode::from(2);
                }
            };
            let addr = listener
                .local_addr()
                .map(|a| a.to_string())
                .unwrap_or_default();
            println!("ODS listening on http://{addr}");
            if opened.first_start {
                println!("First start: log in as admin / ods1234! and change the password.");
            }
            let _ = std::io::stdout().flush();
            match ods::launch(opened.app, Some(listener), shutdown_signal()).await {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("ods: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Worker { common } => {
            let Ok(config) = load(flags(&common, None, false), KeyFiles::Create) else {
                return ExitCode::from(2);
            };
            init_logging(config.debug);
            match ods::App::open(config).await {
                Ok(o) => match ods::launch(o.app, None, shutdown_signal()).await {
                    Ok(()) => ExitCode::SUCCESS,
                    Err(e) => {
                        eprintln!("ods: {e:#}");
                        ExitCode::FAILURE
                    }
                },
                Err(e) => {
                    eprintln!("ods: {e:#}");
                    ExitCode::from(2)
                }
            }
        }
        Command::Migrate { common } => {
            let Ok(config) = load(flags(&common, None, false), KeyFiles::Create) else {
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
        Command::CheckConfig { common, listen } => {
            let Ok(config) = load(flags(&common, listen, false), KeyFiles::ReadOnly) else {
                return ExitCode::from(2);
            };
            match ods::db::Db::connect(&config.database_url.0).await {
                Ok(db) => {
                    db.close().await;
                    println!(
                        "configuration OK: listen {}, data {}, database {}",
                        config.listen,
                        config.data_dir.display(),
                        config.database_url_redacted()
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!(
                        "ods: the configuration has 1 problem(s):\n  - cannot open the database {}: {e}",
                        config.database_url_redacted()
                    );
                    ExitCode::from(2)
                }
            }
        }
        Command::User {
            action: UserAction::SetPassword { name, common },
        } => {
            let Ok(config) = load(flags(&common, None, false), KeyFiles::Create) else {
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
    }
}

async fn migrate(config: &Config) -> anyhow::Result<Vec<i64>> {
    let db = ods::db::Db::connect(&config.database_url.0).await?;
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
