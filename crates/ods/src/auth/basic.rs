//! Recently verified Basic credentials, so Argon2 does not run on every request of a
//! script: keyed by a keyed digest of the credentials, holding the user id and a digest
//! of the password hash they were verified against. A hit counts only while the user's
//! stored hash is unchanged, so a password set elsewhere (`ods user set-password`,
//! another server process on the same database) ends the old password at once.

use std::time::Duration;

use moka::sync::Cache;
use sha2::{Digest, Sha256};

/// Credential key -> (user id, digest of the password hash verified against).
pub struct BasicCache {
    entries: Cache<[u8; 32], (i64, [u8; 32])>,
}

const BASIC_CACHE_TTL: Duration = Duration::from_secs(60);

impl Default for BasicCache {
    fn default() -> Self {
        BasicCache {
            entries: Cache::builder()
                .time_to_live(BASIC_CACHE_TTL)
                .max_capacity(10_000)
                .build(),
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
    /// Forget every cached credential (a password or role changed).
    pub fn clear(&self) {
        self.entries.invalidate_all();
    }
}
