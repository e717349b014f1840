//! The application state passed to every handler and job: configuration, database,
//! blob store, secrets, the sync state and the small in-memory helpers. No globals.
//! It is the context the job queue and the storage jobs run in. Uses only modules
//! below the services (never a service, `sync` or `http`).

use std::ops::Deref;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::http::HeaderValue;

use tokio::sync::Notify;

use crate::auth::basic::BasicCache;
use crate::auth::limiter::LoginLimiter;
use crate::auth::{DEFAULT_ADMIN, password};
use crate::config::Config;
use crate::db::{self, Db};
use crate::mesh::MeshState;
use crate::model::Role;
use crate::recent::Recent;
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
    /// Checks Jamf Pro's download tokens, when a public key is configured.
    pub jwt: Option<crate::auth::jwt::JwtVerifier>,
    /// Verified against for unknown users, so a failed login costs the same either way.
    pub dummy_hash: String,
    /// Wakes the main job lane (after queueing jobs other than transfers);
    /// `wake_jobs` wakes it and the transfer lane.
    pub jobs_wake: Notify,
    /// Wakes the transfer job lane (`catalog::fetch::Lane`).
    pub transfers_wake: Notify,
    /// Wakes the notification job lane (`notify::Lane`).
    pub notify_wake: Notify,
    /// Webhook deliveries being sent by this process, per webhook id.
    pub notify_inflight: std::sync::Mutex<std::collections::HashMap<i64, usize>>,
    pub started: Instant,
    pub worker_id: String,
    pub sync: MeshState,
    /// Settings read on every download (`download_auth`), briefly cached.
    hot_settings: Recent<String>,
    /// Package rows by filename for downloads, briefly cached.
    /// Misses are not kept (a package made Public by another node is served at once).
    hot_packages: Recent<Arc<HotPackage>>,
}

#[derive(Clone)]
pub struct App(Arc<AppInner>);

impl Deref for App {
    type Target = AppInner;
    fn deref(&self) -> &AppInner {
        &self.0
    }
}

/// Opens the blob store `storage` names (local: `blob_dir`); uploads in progress are
/// tagged with `node_id`. An S3 bucket that cannot be reached fails here. Every failed
/// operation of the store is counted in `ods_storage_errors_total` (`storage::counted`).
pub async fn open_store(
    config: &Config,
    storage: &crate::config::Storage,
    node_id: &str,
) -> anyhow::Result<Arc<dyn BlobStore>> {
    let store: Arc<dyn BlobStore> = match storage {
        crate::config::Storage::Local => Arc::new(LocalStore::open(
            config.blob_dir.clone(),
            config.staging_dir.clone(),
            node_id.to_string(),
            config.direct_io,
        )?),
        crate::config::Storage::S3(opts) => {
            Arc::new(crate::storage::s3::S3Store::open(opts.clone(), node_id.to_string()).await?)
        }
    };
    Ok(crate::storage::counted::counted(store))
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
        let db = Db::connect_sized(&config.database_url.0, config.db_pool_size)
            .await
            .map_err(|e| {
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
            // With ODS_INITIAL_ADMIN_PASSWORD the operator chose the password: it need
            // not be changed. The well-known default must be (see `http::auth`).
            let (pass, must_change) = match &config.initial_admin_password {
                Some(p) => (p.0.clone(), false),
                None => (DEFAULT_ADMIN.1.to_string(), true),
            };
            let hash = password::hash_async(pass).await?;
            match db::users::insert(&db, DEFAULT_ADMIN.0, &hash, Role::Admin, must_change).await {
                Ok(_) => true,
                Err(e) if db::is_unique_violation(&e) => false,
                Err(e) => return Err(e.into()),
            }
        } else {
            false
        };
        let worker_id = crate::node::new_id(&config.node_name);
        let store = open_store(&config, &config.storage.store, &worker_id).await?;
        crate::datadir::make_private(&config.data_dir, config.sqlite_file())?;
        let inner = AppInner {
            db,
            store,
            sealer,
            limiter: LoginLimiter::new(
                Duration::from_secs(config.login_window_secs),
                config.login_max_failures_per_address,
                config.login_max_failures_per_account,
            ),
            basic_cache: BasicCache::default(),
            jwt: config.jamf.jwt_public_key.as_deref().and_then(|pem| {
                crate::auth::jwt::JwtVerifier::new(
                    pem,
                    &config.jamf.jwt_issuer,
                    &config.jamf.jwt_subject,
                    config.jamf.jwt_leeway_secs,
                )
            }),
            dummy_hash: password::hash_async(crate::secrets::random_id()).await?,
            jobs_wake: Notify::new(),
            transfers_wake: Notify::new(),
            notify_wake: Notify::new(),
            notify_inflight: Default::default(),
            started: Instant::now(),
            // Also this node's id in the `nodes` table (see `node`); fits both columns.
            worker_id,
            sync: MeshState::new(
                &server.iss,
                config.max_transfers,
                Duration::from_secs(config.sync_interval_secs),
                &config.peer_ca,
            ),
            hot_settings: Recent::new(HOT_TTL, 16),
            hot_packages: Recent::new(HOT_TTL, 10_000),
            config,
        };
        // The clock lives in memory: start it past every version this server has seen.
        if let Some(v) = db::catalog::max_version(&inner.db).await? {
            inner.sync.hlc.observe(&v);
        }
        Ok(Opened {
            app: App(Arc::new(inner)),
            first_start: first_start || created,
        })
    }
}

/// How long the download path trusts what it read: a change made through this process
/// applies at once; one made by another process sharing the database (another node of
/// the site) to a package already Public here, or to `download_auth`, within this
/// time. A package that was not Public is looked up afresh on every request.
const HOT_TTL: Duration = Duration::from_secs(1);

impl App {
    /// Jobs that may include transfers were queued to run now: wakes the main lane and
    /// the transfer lane (the notification lane has its own wake, `notify_wake`).
    pub fn wake_jobs(&self) {
        self.jobs_wake.notify_one();
        self.transfers_wake.notify_one();
    }

    /// The server's `download_auth` (`none`, `basic` or `jwt`), read at most once per `HOT_TTL`.
    pub async fn download_auth(&self) -> sqlx::Result<String> {
        self.hot_settings
            .get_or_load("download_auth", || async {
                Ok(db::server::get(&self.db).await?.download_auth)
            })
            .await
    }

    /// The Public package named `filename`, if any, read at most once per `HOT_TTL`.
    pub async fn public_package(&self, filename: &str) -> sqlx::Result<Option<Arc<HotPackage>>> {
        self.hot_packages
            .get_or_load_found(filename, || async {
                // NFC first, then the exact name (see `filenames` for the rule).
                for form in crate::filenames::lookup_forms(filename) {
                    let p =
                        db::packages::find_by_filename(&self.db, self.db.reader(), &form).await?;
                    if let Some(p) = p {
                        if p.status != crate::model::Status::Public {
                            return Ok(None);
                        }
                        return HotPackage::new(p).map(|h| Some(Arc::new(h)));
                    }
                }
                Ok(None)
            })
            .await
    }

    /// Call after changing the server's settings.
    pub fn settings_changed(&self) {
        self.hot_settings.invalidate();
    }

    /// Call after any package changed here (upload, delete, stage, sync).
    pub fn packages_changed(&self) {
        self.hot_packages.invalidate();
    }
}

/// A Public package as the download path serves it: the row and the headers every
/// answer about it carries, formatted once when the row is read.
pub struct HotPackage {
    pub row: db::packages::PackageRow,
    /// The strong ETag: the sha256, quoted.
    pub etag: HeaderValue,
    pub modified: SystemTime,
    pub last_modified: HeaderValue,
    /// `sha-256=:<base64>:`
    pub repr_digest: HeaderValue,
    /// The file size, for `Content-Length` of the whole file.
    pub length: HeaderValue,
}

impl HotPackage {
    fn new(row: db::packages::PackageRow) -> sqlx::Result<HotPackage> {
        use base64::Engine;
        let bad = |e: Box<dyn std::error::Error + Send + Sync>| sqlx::Error::Decode(e);
        let digest = hex::decode(&row.sha256).map_err(|e| bad(Box::new(e)))?;
        let repr_digest = format!(
            "sha-256=:{}:",
            base64::engine::general_purpose::STANDARD.encode(digest)
        );
        let modified = UNIX_EPOCH + Duration::from_secs(row.created.max(0) as u64);
        let value = |s: String| HeaderValue::try_from(s).map_err(|e| bad(Box::new(e)));
        Ok(HotPackage {
            etag: value(format!("\"{}\"", row.sha256))?,
            last_modified: value(httpdate::fmt_http_date(modified))?,
            repr_digest: value(repr_digest)?,
            length: HeaderValue::from(row.file_size.max(0) as u64),
            modified,
            row,
        })
    }
}

impl crate::jobs::Context for App {
    fn db(&self) -> &Db {
        &self.db
    }
    fn wake(&self) -> &Notify {
        &self.jobs_wake
    }
    fn worker_id(&self) -> &str {
        &self.worker_id
    }
}

impl crate::storage::Context for App {
    fn store(&self) -> &dyn BlobStore {
        self.store.as_ref()
    }
    fn node_name(&self) -> &str {
        &self.config.node_name
    }
    fn node_timeout(&self) -> Duration {
        self.config.node_timeout
    }
}
