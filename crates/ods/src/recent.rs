//! A read-through cache for hot lookups on the download path (settings, package
//! rows): values are trusted for a short time, dropped at once when this process
//! changes what they were read from, and a read racing such a change never stores the
//! stale value. Other processes sharing the database are seen within the time limit.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use moka::sync::Cache;
use tokio::sync::OnceCell;

/// A moka cache (time to live, bounded size) whose values carry a generation:
/// `invalidate` starts a new one, so a load that began before it stores a value no
/// later read takes. Concurrent misses of one key share one load (the first caller's;
/// the others wait for it), so an entry expiring under a busy server costs one query,
/// not one per waiting request. Looking up a key allocates nothing.
pub struct Recent<V> {
    generation: AtomicU64,
    entries: Cache<String, (u64, Arc<OnceCell<V>>)>,
}

/// A load that found nothing (never stored).
struct Missing;

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

    /// The slot of `key` in the current generation, shared by every caller until it
    /// expires or is invalidated.
    fn slot(&self, key: &str) -> Arc<OnceCell<V>> {
        let generation = self.generation.load(Ordering::Acquire);
        let (g, cell) = self
            .entries
            .get_with_by_ref(key, || (generation, Arc::new(OnceCell::new())));
        if g == generation {
            return cell;
        }
        // Made in an earlier generation by a caller that raced `invalidate`.
        let fresh = Arc::new(OnceCell::new());
        self.entries
            .insert(key.to_string(), (generation, fresh.clone()));
        fresh
    }

    /// The cached value for `key`, or `load()`'s (stored unless invalidated meanwhile).
    pub async fn get_or_load<E, F, Fut>(&self, key: &str, load: F) -> Result<V, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<V, E>>,
    {
        let cell = self.slot(key);
        cell.get_or_try_init(load).await.cloned()
    }

    /// Like `get_or_load` for a value that may not exist: a miss is never stored, so
    /// what another process sharing the database just created is found at once.
    pub async fn get_or_load_found<E, F, Fut>(&self, key: &str, load: F) -> Result<Option<V>, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Option<V>, E>>,
    {
        let cell = self.slot(key);
        let found = cell
            .get_or_try_init(|| async {
                match load().await {
                    Ok(Some(v)) => Ok(v),
                    Ok(None) => Err(Ok(Missing)),
                    Err(e) => Err(Err(e)),
                }
            })
            .await;
        match found {
            Ok(v) => Ok(Some(v.clone())),
            Err(Ok(Missing)) => Ok(None),
            Err(Err(e)) => Err(e),
        }
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

    #[tokio::test]
    async fn concurrent_misses_share_one_load_and_misses_are_not_stored() {
        let c = Arc::new(Recent::<u32>::new(Duration::from_secs(60), 10));
        let loads = Arc::new(AtomicU64::new(0));
        let waiters: Vec<_> = (0..32)
            .map(|_| {
                let (c, loads) = (c.clone(), loads.clone());
                tokio::spawn(async move {
                    c.get_or_load("k", || async {
                        loads.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        Ok::<u32, ()>(7)
                    })
                    .await
                })
            })
            .collect();
        for w in waiters {
            assert_eq!(w.await.unwrap(), Ok(7));
        }
        assert_eq!(
            loads.load(Ordering::SeqCst),
            1,
            "one load for 32 concurrent misses"
        );

        let v: Result<Option<u32>, ()> = c.get_or_load_found("gone", || async { Ok(None) }).await;
        assert_eq!(v, Ok(None));
        let v: Result<Option<u32>, ()> =
            c.get_or_load_found("gone", || async { Ok(Some(8)) }).await;
        assert_eq!(v, Ok(Some(8)), "a miss is not stored");
        let v: Result<Option<u32>, ()> = c.get_or_load_found("gone", || async { Ok(None) }).await;
        assert_eq!(v, Ok(Some(8)), "a hit is");
        let v: Result<u32, &str> = c.get_or_load("err", || async { Err("down") }).await;
        assert_eq!(v, Err("down"));
        let v: Result<u32, &str> = c.get_or_load("err", || async { Ok(9) }).await;
        assert_eq!(v, Ok(9), "an error is not stored");
    }
}
