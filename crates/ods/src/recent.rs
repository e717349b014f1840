//! A read-through cache for hot lookups on the download path (settings, package
//! rows): values are trusted for a short time, dropped at once when this process
//! changes what they were read from, and a read racing such a change never stores the
//! stale value. Other processes sharing the database are seen within the time limit.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use moka::sync::Cache;

/// A moka cache (time to live, bounded size) whose values carry a generation:
/// `invalidate` starts a new one, so a load that began before it stores a value no
/// later read takes. Looking up a key allocates nothing.
pub struct Recent<V> {
    generation: AtomicU64,
    entries: Cache<String, (u64, V)>,
}

impl<V: Clone + Send + Sync + 'static> Recent<V> {
    pub fn new(ttl: Duration, max_entries: u64) -> Self {
        Recent {
            generation: AtomicU64::new(0),
            entries: Cache::builder()
                .time_to_live(ttl)
                .max_capacity(max_entries)
                .build(),
        }
    }

    /// The cached value for `key`, or `load()`'s (stored unless invalidated meanwhile).
    pub async fn get_or_load<E, F, Fut>(&self, key: &str, load: F) -> Result<V, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<V, E>>,
    {
        let generation = self.generation.load(Ordering::Acquire);
        if let Some((g, v)) = self.entries.get(key)
            && g == generation
        {
            return Ok(v);
        }
        let value = load().await?;
        if self.generation.load(Ordering::Acquire) == generation {
            self.entries
                .insert(key.to_string(), (generation, value.clone()));
        }
        Ok(value)
    }

    /// Like `get_or_load` for a value that may not exist: a miss is never stored, so
    /// what another process sharing the database just created is found at once.
    pub async fn get_or_load_found<E, F, Fut>(&self, key: &str, load: F) -> Result<Option<V>, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Option<V>, E>>,
    {
        let generation = self.generation.load(Ordering::Acquire);
        if let Some((g, v)) = self.entries.get(key)
            && g == generation
        {
            return Ok(Some(v));
        }
        let value = load().await?;
        if let Some(v) = &value
            && self.generation.load(Ordering::Acquire) == generation
        {
            self.entries
                .insert(key.to_string(), (generation, v.clone()));
        }
        Ok(value)
    }

    /// Forgets everything (call after changing what the values are read from).
    pub fn invalidate(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.entries.invalidate_all();
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
