//! The application state passed to every handler and job: configuration, database,
//! blob store, secrets and the small in-memory helpers. No globals.

use std::ops::Deref;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use crate::auth::limiter::LoginLimiter;
use crate::auth::principal::BasicCache;
use crate::auth::{DEFAULT_ADMIN, Role, password};
use crate::config::Config;
use crate::db::{self, Db};
use crate::secrets::Sealer;
use crate::storage::BlobStore;
use crate::storage::local::LocalStore;

pub struct AppInner {
    pub config: Config,
    pub db: Db,
    pub store: Arc<dyn BlobStore>,
    pub sealer: Sealer,
    pub limiter: LoginLimiter,
    pub basic_cache: BasicCache,
    /// Verified against for unknown users, so a failed login costs the same either way.
    pub dummy_hash: String,
    pub jobs_wake: Notify,
    pub started: Instant,
    pub worker_id: String,
    pub sync: crate::sync::SyncState,
    /// `download_auth` as last read, and when: it is checked on every download.
    download_auth: std::sync::Mutex<SettingsCache>,
}

#[derive(Clone)]
pub struct App(Arc<AppInner>);

impl Deref for App {
    type Target = AppInner;
    fn deref(&self) -> &AppInner {
        &self.0
    }
}

/// What `App::open` found on the way up, for the start-up banner.
pub struct Opened {
    pub app: App,
    pub first_start: bool,
}

impl App {
    /// Connects, migrates, and makes sure this server has an identity and an admin.
    /// Fails here, at start, on any bad configuration.
    pub async fn open(config: Config) -> anyhow::Result<Opened> {
        let db = Db::connect(&config.database_url.0).await.map_err(|e| {
            anyhow::anyhow!(
                "cannot open the database {}: {e}",
                config.database_url_redacted()
            )
        })?;
        db::migrations::run(&db).await?;
        let sealer = Sealer::new(&config.database_key.0);
        let created = db::server::ensure(&db, &sealer).await?;
        db::catalog::ensure_counter(&db).await?;
        let server = db::server::get(&db).await?;
        if let Some(sealed) = &server.key_sealed {
            sealer.open(sealed).map_err(|e| {
                anyhow::anyhow!("{e}; set DATABASE_KEY to the key this database was created with")
            })?;
        }
        let first_start = if db::users::count(&db).await? == 0 {
            let hash = password::hash_async(DEFAULT_ADMIN.1.to_string()).await?;
            match db::users::insert(&db, DEFAULT_ADMIN.0, &hash, Role::Admin, true).await {
                Ok(_) => true,
                Err(e) if db::is_unique_violation(&e) => false,
                Err(e) => return Err(e.into()),
            }
        } else {
            false
        };
        let store = LocalStore::open(config.data_dir.join("blobs"), config.staging_dir.clone())?;
        let inner = AppInner {
            db,
            store: Arc::new(store),
            sealer,
            limiter: LoginLimiter::new(Duration::from_secs(300), 10, 30),
            basic_cache: BasicCache::default(),
            dummy_hash: password::hash_async(crate::secrets::random_id()).await?,
            jobs_wake: Notify::new(),
            started: Instant::now(),
            worker_id: format!("{}-{}", hostname(), std::process::id()),
            sync: crate::sync::SyncState::new(
                &server.iss,
                config.max_transfers,
                Duration::from_secs(config.sync_interval_secs),
            ),
            download_auth: std::sync::Mutex::default(),
            config,
        };
        Ok(Opened {
            app: App(Arc::new(inner)),
            first_start: first_start || created,
        })
    }
}

/// How long a download trusts the `download_auth` it read. A change made through this
/// process applies at once (`settings_changed`); one made by another process sharing
/// the database, within this time.
const SETTINGS_TTL: Duration = Duration::from_secs(1);

impl App {
    /// The server's `download_auth` (`none` or `basic`), read from the database at
    /// most once per `SETTINGS_TTL`.
    pub async fn download_auth(&self) -> sqlx::Result<String> {
        let generation = {
            let cache = self.download_auth.lock().unwrap_or_else(|p| p.into_inner());
            if let Some((at, mode)) = &cache.value
                && at.elapsed() < SETTINGS_TTL
            {
                return Ok(mode.clone());
            }
            cache.generation
        };
        let mode = db::server::get(&self.db).await?.download_auth;
        let mut cache = self.download_auth.lock().unwrap_or_else(|p| p.into_inner());
        // A change made while we read must not be hidden by what we read before it.
        if cache.generation == generation {
            cache.value = Some((Instant::now(), mode.clone()));
        }
        Ok(mode)
    }

    /// Call after changing the server's settings.
    pub fn settings_changed(&self) {
        let mut cache = self.download_auth.lock().unwrap_or_else(|p| p.into_inner());
        cache.generation += 1;
        cache.value = None;
    }
}

#[derive(Default)]
struct SettingsCache {
    generation: u64,
    value: Option<(Instant, String)>,
}

fn hostname() -> String {
    std::fs::read_to_string("/etc/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "ods".into())
}
