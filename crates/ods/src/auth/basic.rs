//! Recently verified Basic credentials, so Argon2 does not run on every request of a
//! script: keyed by a keyed digest of the credentials, holding the user id and a digest
//! of the password hash they were verified against. A hit counts only while the user's
//! stored hash is unchanged, so a password set elsewhere (`ods user set-password`,
//! another server process on the same database) ends the old password at once.
//!
//! Downloads (`download_auth` basic) take a shortcut: credentials that passed that
//! check less than `DOWNLOAD_RECHECK` ago are accepted without reading the user again.
//! A password change or user deletion through this process (`clear`) ends them at
//! once; one made by another process sharing the database, within that time.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use moka::sync::Cache;
use sha2::{Digest, Sha256};

/// Credential key -> (user id, digest of the password hash verified against).
pub struct BasicCache {
    entries: Cache<[u8; 32], (i64, [u8; 32])>,
    /// Credential keys a download may take without a database read, by generation.
    fresh: Cache<(u64, [u8; 32]), ()>,
    generation: AtomicU64,
}

const BASIC_CACHE_TTL: Duration = Duration::from_secs(60);
/// How long a download trusts credentials checked against the database (the same
/// bound the download path keeps for package rows and settings).
pub const DOWNLOAD_RECHECK: Duration = Duration::from_secs(1);

impl Default for BasicCache {
    fn default() -> Self {
        BasicCache {
            entries: Cache::builder()
                .time_to_live(BASIC_CACHE_TTL)
                .max_capacity(10_000)
                .build(),
            fresh: Cache::builder()
                .time_to_live(DOWNLOAD_RECHECK)
                .max_capacity(10_000)
                .build(),
            generation: AtomicU64::new(0),
        }
    }
}

impl BasicCache {
    /// The cache key of these credentials (`secret` keeps it from being a plain hash).
    pub fn key(secret: &[u8], user: &str, pass: &str) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(secret);
        h.update(user.as_bytes());
        h.update([0]);
        h.update(pass.as_bytes());
        h.finalize().into()
    }
    pub fn hash_digest(password_hash: &str) -> [u8; 32] {
        Sha256::digest(password_hash.as_bytes()).into()
    }
    /// The cached user id and password-hash digest for these credentials.
    pub fn get(&self, k: &[u8; 32]) -> Option<(i64, [u8; 32])> {
        self.entries.get(k)
    }
    pub fn put(&self, k: [u8; 32], user_id: i64, password_hash: &str) {
        self.entries
            .insert(k, (user_id, Self::hash_digest(password_hash)));
    }
    /// The generation to pass to `mark_fresh`, read before checking the credentials.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }
    /// Whether a download may take these credentials without a database read.
    pub fn is_fresh(&self, k: &[u8; 32]) -> bool {
        self.fresh.contains_key(&(self.generation(), *k))
    }
    /// Records credentials just checked against the database, unless `clear` ran since
    /// `generation` was read (the check may have seen the old password).
    pub fn mark_fresh(&self, generation: u64, k: [u8; 32]) {
        if self.generation() == generation {
            self.fresh.insert((generation, k), ());
        }
    }
    /// Forget every cached credential (a password or role changed).
    pub fn clear(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.fresh.invalidate_all();
        self.entries.invalidate_all();
    }
}
