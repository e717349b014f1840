//! Failed-login limiter: after too many failures from one address (or against one
//! account) within a window, further attempts get 429 until the window passes. The
//! counts live in the database (`db::logins`, one atomic upsert per failure), so every
//! node of a site sharing the database enforces one limit, not one per node. Windows
//! are fixed: window `w` covers the seconds `[(w-1)*len, w*len)`.

use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::db::{Db, logins};
use crate::model::now_unix;

/// How long a successful login exempts its address from that account's lock.
const TRUST: Duration = Duration::from_secs(24 * 3600);

pub struct LoginLimiter {
    window: Duration,
    per_addr: u32,
    per_user: u32,
}

fn digest(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}

impl LoginLimiter {
    pub fn new(window: Duration, per_addr: u32, per_user: u32) -> Self {
        LoginLimiter {
            window: window.max(Duration::from_secs(1)),
            per_addr,
            per_user,
        }
    }

    /// The current window's number (never 0, which marks trust records) and the
    /// seconds until it ends.
    fn window_now(&self) -> (i64, u64) {
        let len = self.window.as_secs() as i64;
        let now = now_unix();
        let w = now / len + 1;
        (w, (w * len - now).max(1) as u64)
    }

    fn addr_key(addr: &str) -> String {
        digest(&format!("a:{addr}"))
    }
    fn user_key(user: &str) -> String {
        digest(&format!("u:{user}"))
    }
    fn trust_key(addr: &str, user: &str) -> String {
        digest(&format!("t:{addr}|{user}"))
    }

    /// Seconds to wait when this address or account is locked out, else `None`.
    /// The account lock does not apply to an address that logged in as that account
    /// recently: guessing from elsewhere cannot lock its owner out.
    pub async fn blocked(&self, db: &Db, addr: &str, user: &str) -> sqlx::Result<Option<u64>> {
        let (w, left) = self.window_now();
        let (a, u, t) = (
            Self::addr_key(addr),
            Self::user_key(user),
            Self::trust_key(addr, user),
        );
        let trusted_since = logins::counts(db, &[&t], 0).await?[0];
        let trusted = trusted_since > 0 && now_unix() - trusted_since < TRUST.as_secs() as i64;
        let n = logins::counts(db, &[&a, &u], w).await?;
        let locked = n[0] >= self.per_addr as i64 || (!trusted && n[1] >= self.per_user as i64);
        Ok(locked.then_some(left))
    }

    pub async fn record_failure(&self, db: &Db, addr: &str, user: &str) -> sqlx::Result<()> {
        let (w, _) = self.window_now();
        logins::increment(db, &Self::addr_key(addr), w).await?;
        logins::increment(db, &Self::user_key(user), w).await?;
        Ok(())
    }

    /// Seconds to wait when this address is locked out (API tokens: there is no
    /// account to lock, and a token is too long to guess).
    pub async fn blocked_addr(&self, db: &Db, addr: &str) -> sqlx::Result<Option<u64>> {
        let (w, left) = self.window_now();
        let n = logins::counts(db, &[&Self::addr_key(addr)], w).await?;
        Ok((n[0] >= self.per_addr as i64).then_some(left))
    }

    pub async fn record_failure_addr(&self, db: &Db, addr: &str) -> sqlx::Result<()> {
        let (w, _) = self.window_now();
        logins::increment(db, &Self::addr_key(addr), w).await?;
        Ok(())
    }

    pub async fn record_success(&self, db: &Db, addr: &str, user: &str) -> sqlx::Result<()> {
        logins::clear(db, &Self::addr_key(addr)).await?;
        logins::set(db, &Self::trust_key(addr, user), 0, now_unix()).await
    }

    /// Drops counters of windows that ended and trust older than `TRUST`.
    pub async fn prune(&self, db: &Db) -> sqlx::Result<u64> {
        let (w, _) = self.window_now();
        logins::prune(db, w, now_unix() - TRUST.as_secs() as i64).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn db() -> (tempfile::TempDir, Db) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("l.db").display());
        let db = Db::connect(&url).await.unwrap();
        crate::db::migrations::run(&db).await.unwrap();
        (dir, db)
    }

    #[tokio::test]
    async fn locks_after_limit_then_window_passes() {
        let (_d, db) = db().await;
        let l = LoginLimiter::new(Duration::from_secs(2), 3, 100);
        // Start early in a window (2 s left), so the three failures share one.
        while l.window_now().1 < 2 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        for _ in 0..3 {
            assert!(l.blocked(&db, "1.2.3.4", "admin").await.unwrap().is_none());
            l.record_failure(&db, "1.2.3.4", "admin").await.unwrap();
        }
        assert!(l.blocked(&db, "1.2.3.4", "admin").await.unwrap().is_some());
        assert!(
            l.blocked(&db, "5.6.7.8", "admin").await.unwrap().is_none(),
            "another address is not locked"
        );
        tokio::time::sleep(Duration::from_millis(2100)).await;
        assert!(l.blocked(&db, "1.2.3.4", "admin").await.unwrap().is_none());
        assert!(l.prune(&db).await.unwrap() >= 2, "the old window is pruned");
    }

    #[tokio::test]
    async fn guessing_elsewhere_does_not_lock_out_a_known_address() {
        let (_d, db) = db().await;
        let l = LoginLimiter::new(Duration::from_secs(60), 100, 3);
        l.record_success(&db, "10.0.0.1", "admin").await.unwrap();
        for i in 0..5 {
            l.record_failure(&db, &format!("192.0.2.{i}"), "admin")
                .await
                .unwrap();
        }
        assert!(
            l.blocked(&db, "192.0.2.200", "admin")
                .await
                .unwrap()
                .is_some(),
            "the account is locked for strangers"
        );
        assert!(
            l.blocked(&db, "10.0.0.1", "admin").await.unwrap().is_none(),
            "but not for its owner's address"
        );
    }

    #[tokio::test]
    async fn token_failures_count_per_address() {
        let (_d, db) = db().await;
        let l = LoginLimiter::new(Duration::from_secs(60), 2, 100);
        for _ in 0..2 {
            assert!(l.blocked_addr(&db, "1.2.3.4").await.unwrap().is_none());
            l.record_failure_addr(&db, "1.2.3.4").await.unwrap();
        }
        assert!(l.blocked_addr(&db, "1.2.3.4").await.unwrap().is_some());
        l.record_success(&db, "1.2.3.4", "admin").await.unwrap();
        assert!(l.blocked_addr(&db, "1.2.3.4").await.unwrap().is_none());
    }
}
