//! Per-peer transfer rate limits (token buckets, bytes per second).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Default)]
pub struct RateLimits {
    buckets: Mutex<HashMap<i64, (f64, Instant)>>,
}

impl RateLimits {
    /// Waits until `bytes` may be taken from peer `peer` at `rate` bytes/s.
    pub async fn take(&self, peer: i64, rate: Option<i64>, bytes: u64) {
        let Some(rate) = rate.filter(|r| *r > 0).map(|r| r as f64) else {
            return;
        };
        let wait = {
            let mut m = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
            let (tokens, at) = m.entry(peer).or_insert((rate, Instant::now()));
            // Refill, at most one second's worth of burst.
            *tokens = (*tokens + at.elapsed().as_secs_f64() * rate).min(rate);
            *at = Instant::now();
            *tokens -= bytes as f64;
            if *tokens < 0.0 {
                Duration::from_secs_f64(-*tokens / rate)
            } else {
                Duration::ZERO
            }
        };
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }
}
