//! A tiny read-through cache for hot lookups on the download path (settings, package
//! rows): values are trusted for a short time, dropped at once when this process
//! changes what they were read from, and a read racing such a change never stores the
//! stale value. Other processes sharing the database are seen within the time limit.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub struct Recent<V> {
    ttl: Duration,
    max_entries: usize,
    state: Mutex<State<V>>,
}

struct State<V> {
    generation: u64,
    entries: HashMap<String, (Instant, V)>,
}

impl<V: Clone> Recent<V> {
    pub fn new(ttl: Duration, max_entries: usize) -> Self {
        Recent {
            ttl,
            max_entries,
            state: Mutex::new(State {
                generation: 0,
                entries: HashMap::new(),
            }),
        }
    }

    /// The cached value for `key`, or `load()`'s (stored unless invalidated meanwhile).
    pub async fn get_or_load<E, F, Fut>(&self, key: &str, load: F) -> Result<V, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<V, E>>,
    {
        let generation = {
            let s = self.state.lock().unwrap_or_else(|p| p.into_inner());
            if let Some((at, v)) = s.entries.get(key)
                && at.elapsed() < self.ttl
            {
                return Ok(v.clone());
            }
            s.generation
        };
        let value = load().await?;
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if s.generation == generation {
            if s.entries.len() >= self.max_entries {
                let ttl = self.ttl;
                s.entries.retain(|_, (at, _)| at.elapsed() < ttl);
                if s.entries.len() >= self.max_entries {
                    s.entries.clear();
                }
            }
            s.entries
                .insert(key.to_string(), (Instant::now(), value.clone()));
        }
        Ok(value)
    }

    /// Forgets everything (call after changing what the values are read from).
    pub fn invalidate(&self) {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        s.generation += 1;
        s.entries.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn caches_expires_and_invalidates() {
        let c = Recent::<u32>::new(Duration::from_millis(100), 10);
        let v: Result<u32, ()> = c.get_or_load("k", || async { Ok(1) }).await;
        assert_eq!(v, Ok(1));
        let v: Result<u32, ()> = c.get_or_load("k", || async { Ok(2) }).await;
        assert_eq!(v, Ok(1), "served from the cache");
        c.invalidate();
        let v: Result<u32, ()> = c.get_or_load("k", || async { Ok(3) }).await;
        assert_eq!(v, Ok(3));
        tokio::time::sleep(Duration::from_millis(120)).await;
        let v: Result<u32, ()> = c.get_or_load("k", || async { Ok(4) }).await;
        assert_eq!(v, Ok(4), "expired");
        // A change during a load is not hidden by the value loaded before it.
        let v: Result<u32, ()> = c
            .get_or_load("x", || async {
                c.invalidate();
                Ok(5)
            })
            .await;
        assert_eq!(v, Ok(5));
        let v: Result<u32, ()> = c.get_or_load("x", || async { Ok(6) }).await;
        assert_eq!(v, Ok(6), "the racing value was not stored");
    }
}
