//! Recently verified Basic credentials, so Argon2 does not run on every request of a
//! script: keyed by a keyed digest of the credentials, holding the user id and a digest
//! of the password hash they were verified against. A hit counts only while the user's
//! stored hash is unchanged, so a password set elsewhere (`ods user set-password`,
//! another server process on the same database) ends the old password at once.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

#[derive(Default)]
pub struct BasicCache {
    entries: Mutex<HashMap<[u8; 32], CacheEntry>>,
}

struct CacheEntry {
    user_id: i64,
    hash_digest: [u8; 32],
    at: Instant,
}

const BASIC_CACHE_TTL: Duration = Duration::from_secs(60);

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
        let map = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        map.get(k)
            .filter(|e| e.at.elapsed() < BASIC_CACHE_TTL)
            .map(|e| (e.user_id, e.hash_digest))
    }
    pub fn put(&self, k: [u8; 32], user_id: i64, password_hash: &str) {
        let mut map = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() > 10_000 {
            map.clear();
        }
        let entry = CacheEntry {
            user_id,
            hash_digest: Self::hash_digest(password_hash),
            at: Instant::now(),
        };
        map.insert(k, entry);
    }
    /// Forget every cached credential (a password or role changed).
    pub fn clear(&self) {
        self.entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }
}
