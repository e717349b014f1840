//! Failed-login limiter: after too many failures from one address (or against one
//! account) within a window, further attempts get 429 until the window passes.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a successful login exempts its address from that account's lock.
const TRUST: Duration = Duration::from_secs(24 * 3600);

pub struct LoginLimiter {
    window: Duration,
    per_addr: u32,
    per_user: u32,
    failures: Mutex<HashMap<String, (u32, Instant)>>,
}

impl LoginLimiter {
    pub fn new(window: Duration, per_addr: u32, per_user: u32) -> Self {
        LoginLimiter {
            window,
            per_addr,
            per_user,
            failures: Mutex::new(HashMap::new()),
        }
    }

    fn keys(addr: &str, user: &str) -> [String; 2] {
        [format!("a:{addr}"), format!("u:{user}")]
    }

    fn trust_key(addr: &str, user: &str) -> String {
        format!("t:{addr}|{user}")
    }

    /// Seconds to wait when this address or account is locked out, else `None`.
    /// The account lock does not apply to an address that logged in as that account
    /// recently: guessing from elsewhere cannot lock its owner out.
    pub fn blocked(&self, addr: &str, user: &str) -> Option<u64> {
        let map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let [a, u] = Self::keys(addr, user);
        let trusted = map
            .get(&Self::trust_key(addr, user))
            .is_some_and(|(_, at)| at.elapsed() < TRUST);
        let mut checks = vec![(a, self.per_addr)];
        if !trusted {
            checks.push((u, self.per_user));
        }
        checks.into_iter().find_map(|(k, limit)| {
            let (n, since) = map.get(&k)?;
            let left = self.window.checked_sub(since.elapsed())?;
            (*n >= limit).then(|| left.as_secs().max(1))
        })
    }

    pub fn record_failure(&self, addr: &str, user: &str) {
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() > 100_000 {
            let window = self.window;
            map.retain(|k, (_, since)| {
                since.elapsed() < if k.starts_with("t:") { TRUST } else { window }
            });
        }
        for k in Self::keys(addr, user) {
            let e = map.entry(k).or_insert((0, Instant::now()));
            if e.1.elapsed() >= self.window {
                *e = (0, Instant::now());
            }
            e.0 += 1;
        }
    }

    /// Seconds to wait when this address is locked out (API tokens: there is no
    /// account to lock, and a token is too long to guess).
    pub fn blocked_addr(&self, addr: &str) -> Option<u64> {
        let map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let (n, since) = map.get(&format!("a:{addr}"))?;
        let left = self.window.checked_sub(since.elapsed())?;
        (*n >= self.per_addr).then(|| left.as_secs().max(1))
    }

    pub fn record_failure_addr(&self, addr: &str) {
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let e = map
            .entry(format!("a:{addr}"))
            .or_insert((0, Instant::now()));
        if e.1.elapsed() >= self.window {
            *e = (0, Instant::now());
        }
        e.0 += 1;
    }

    pub fn record_success(&self, addr: &str, user: &str) {
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        map.remove(&format!("a:{addr}"));
        map.insert(Self::trust_key(addr, user), (0, Instant::now()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locks_after_limit_then_window_passes() {
        let l = LoginLimiter::new(Duration::from_millis(200), 3, 100);
        for _ in 0..3 {
            assert!(l.blocked("1.2.3.4", "admin").is_none());
            l.record_failure("1.2.3.4", "admin");
        }
        assert!(l.blocked("1.2.3.4", "admin").is_some());
        assert!(
            l.blocked("5.6.7.8", "admin").is_none(),
            "another address is not locked"
        );
        std::thread::sleep(Duration::from_millis(250));
        assert!(l.blocked("1.2.3.4", "admin").is_none());
    }

    #[test]
    fn guessing_elsewhere_does_not_lock_out_a_known_address() {
        let l = LoginLimiter::new(Duration::from_secs(60), 100, 3);
        l.record_success("10.0.0.1", "admin");
        for i in 0..5 {
            l.record_failure(&format!("192.0.2.{i}"), "admin");
        }
        assert!(
            l.blocked("192.0.2.200", "admin").is_some(),
            "the account is locked for strangers"
        );
        assert!(
            l.blocked("10.0.0.1", "admin").is_none(),
            "but not for its owner's address"
        );
    }
}
