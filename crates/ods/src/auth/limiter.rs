//! Failed-login limiter: after too many failures from one address (or against one
//! account) within the last window, further attempts get 429 until enough of those
//! failures are older than the window. The failures live in the database
//! (`db::logins`: each is an atomic upsert keyed by its millisecond), so every node of
//! a site sharing the database enforces one limit, not one per node. The window
//! slides: failures on either side of a clock boundary count together.

use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::db::{Db, logins};
use crate::model::{now_millis, now_unix};

/// How long a successful login exempts its address from that account's lock.
const TRUST: Duration = Duration::from_secs(24 * 3600);

pub struct LoginLimiter {
    window_ms: i64,
    per_addr: u32,
    per_user: u32,
}

fn digest(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}

/// Whether `failures` (count, oldest time in ms) reach `limit`; then the seconds
/// until the oldest of them leaves a window of `window_ms`.
fn wait(failures: (i64, Option<i64>), limit: u32, window_ms: i64, now: i64) -> Option<u64> {
    let (n, oldest) = failures;
    (n >= limit as i64).then(|| {
        let left_ms = oldest.map_or(window_ms, |t| t + window_ms - now);
        (left_ms.max(1) as u64).div_ceil(1000)
    })
}

impl LoginLimiter {
    pub fn new(window: Duration, per_addr: u32, per_user: u32) -> Self {
        LoginLimiter {
            window_ms: window.max(Duration::from_secs(1)).as_millis() as i64,
            per_addr,
            per_user,
        }
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
        let now = now_millis();
        let since = now - self.window_ms;
        let by_addr = logins::recent(db, &Self::addr_key(addr), since).await?;
        if let Some(w) = wait(by_addr, self.per_addr, self.window_ms, now) {
            return Ok(Some(w));
        }
        let trusted_since = logins::trusted_since(db, &Self::trust_key(addr, user)).await?;
        let trusted = trusted_since.is_some_and(|t| now_unix() - t < TRUST.as_secs() as i64);
        if trusted {
            return Ok(None);
        }
        let by_user = logins::recent(db, &Self::user_key(user), since).await?;
        Ok(wait(by_user, self.per_user, self.window_ms, now))
    }

    pub async fn record_failure(&self, db: &Db, addr: &str, user: &str) -> sqlx::Result<()> {
        let now = now_millis();
        logins::increment(db, &Self::addr_key(addr), now).await?;
        logins::increment(db, &Self::user_key(user), now).await?;
        Ok(())
    }

    /// Seconds to wait when this address is locked out (API tokens: there is no
    /// account to lock, and a token is too long to guess).
    pub async fn blocked_addr(&self, db: &Db, addr: &str) -> sqlx::Result<Option<u64>> {
        let now = now_millis();
        let by_addr = logins::recent(db, &Self::addr_key(addr), now - self.window_ms).await?;
        Ok(wait(by_addr, self.per_addr, self.window_ms, now))
    }

    pub async fn record_failure_addr(&self, db: &Db, addr: &str) -> sqlx::Result<()> {
        logins::increment(db, &Self::addr_key(addr), now_millis()).await?;
        Ok(())
    }

    pub async fn record_success(&self, db: &Db, addr: &str, user: &str) -> sqlx::Result<()> {
        logins::clear(db, &Self::addr_key(addr)).await?;
        logins::set(db, &Self::trust_key(addr, user), 0, now_unix()).await
    }

    /// Drops failures older than the window and trust older than `TRUST`.
    pub async fn prune(&self, db: &Db) -> sqlx::Result<u64> {
        let oldest = now_millis() - self.window_ms;
        logins::prune(db, oldest, now_unix() - TRUST.as_secs() as i64).await
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
        for _ in 0..3 {
            assert!(l.blocked(&db, "1.2.3.4", "admin").await.unwrap().is_none());
            l.record_failure(&db, "1.2.3.4", "admin").await.unwrap();
        }
        let w = l.blocked(&db, "1.2.3.4", "admin").await.unwrap();
        assert!(w.is_some_and(|s| (1..=2).contains(&s)), "{w:?}");
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
