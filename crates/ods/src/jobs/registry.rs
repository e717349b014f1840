//! The job kinds a worker knows: kind name -> runner, filled at start by each domain
//! that owns job kinds. A worker lane claims only the kinds its registry knows, so a
//! row of a kind this process does not run waits for one that does (another lane, or a
//! newer process sharing the database).

use std::collections::HashMap;

use futures_util::future::BoxFuture;

use super::Run;

type RunFn<Ctx> = fn(Ctx, String, Option<String>) -> BoxFuture<'static, anyhow::Result<()>>;
type BatchFn<Ctx> = fn(Ctx, Vec<String>) -> BoxFuture<'static, Vec<anyhow::Result<()>>>;

pub struct Registry<Ctx> {
    kinds: HashMap<&'static str, RunFn<Ctx>>,
    /// The kinds whose `Job::BATCH` is above 1: their batch size and batch runner.
    batches: HashMap<&'static str, (usize, BatchFn<Ctx>)>,
    /// The kinds whose `Job::EXCLUSIVE` is set.
    exclusive: Vec<&'static str>,
}

impl<Ctx> Default for Registry<Ctx> {
    fn default() -> Self {
        Registry {
            kinds: HashMap::new(),
            batches: HashMap::new(),
            exclusive: Vec::new(),
        }
    }
}

fn not_parsed(e: serde_json::Error) -> anyhow::Error {
    anyhow::anyhow!("job payload does not parse: {e}")
}

fn run_one<Ctx, J: Run<Ctx>>(
    ctx: Ctx,
    payload: String,
    gave_up: Option<String>,
) -> BoxFuture<'static, anyhow::Result<()>>
where
    Ctx: Send + 'static,
{
    Box::pin(async move {
        let job: J = serde_json::from_str(&payload).map_err(not_parsed)?;
        match gave_up {
            None => job.run(ctx).await,
            Some(error) => job.gave_up(ctx, error).await,
        }
    })
}

/// Runs the jobs of a batch that parse together; one that does not fails alone.
fn run_many<Ctx, J: Run<Ctx>>(
    ctx: Ctx,
    payloads: Vec<String>,
) -> BoxFuture<'static, Vec<anyhow::Result<()>>>
where
    Ctx: Clone + Send + 'static,
{
    Box::pin(async move {
        let mut results: Vec<Option<anyhow::Result<()>>> = Vec::with_capacity(payloads.len());
        let mut jobs = Vec::new();
        for p in &payloads {
            match serde_json::from_str::<J>(p) {
                Ok(job) => {
                    jobs.push(job);
                    results.push(None);
                }
                Err(e) => results.push(Some(Err(not_parsed(e)))),
            }
        }
        let expected = jobs.len();
        let mut ran = J::run_batch(jobs, ctx).await.into_iter();
        if ran.len() != expected {
            tracing::error!(
                kind = J::KIND,
                expected,
                got = ran.len(),
                "a batch runner answered for the wrong number of jobs"
            );
        }
        results
            .into_iter()
            .map(|r| {
                r.unwrap_or_else(|| {
                    ran.next()
                        .unwrap_or_else(|| Err(anyhow::anyhow!("the batch runner gave no result")))
                })
            })
            .collect()
    })
}

impl<Ctx: Clone + Send + 'static> Registry<Ctx> {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a job kind. Panics when its name is taken (two kinds, one name).
    pub fn register<J: Run<Ctx>>(&mut self) -> &mut Self {
        let before = self.kinds.insert(J::KIND, run_one::<Ctx, J>);
        assert!(before.is_none(), "job kind {:?} registered twice", J::KIND);
        if J::BATCH > 1 {
            self.batches.insert(J::KIND, (J::BATCH, run_many::<Ctx, J>));
        }
        if J::EXCLUSIVE {
            self.exclusive.push(J::KIND);
        }
        self
    }

    /// The registered kinds that must not run twice at once.
    pub fn exclusive_kinds(&self) -> &[&'static str] {
        &self.exclusive
    }

    /// The registered kind names.
    pub fn kinds(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.kinds.keys().copied()
    }

    /// How many jobs of `kind` may be claimed and run together (1 for most kinds).
    pub fn batch_size(&self, kind: &str) -> usize {
        self.batches.get(kind).map_or(1, |(n, _)| *n)
    }

    /// Runs several claimed jobs of one batchable kind together: one result per
    /// payload, in order. A kind without batching runs each alone.
    pub async fn dispatch_batch(
        &self,
        ctx: Ctx,
        kind: &str,
        payloads: Vec<String>,
    ) -> Vec<anyhow::Result<()>> {
        match self.batches.get(kind) {
            Some((_, run)) => run(ctx, payloads).await,
            None => {
                let mut results = Vec::with_capacity(payloads.len());
                for p in payloads {
                    results.push(self.dispatch(ctx.clone(), kind, p, None).await);
                }
                results
            }
        }
    }

    /// Runs a claimed job; `gave_up` carries the final error instead when the job has
    /// no attempts left.
    pub async fn dispatch(
        &self,
        ctx: Ctx,
        kind: &str,
        payload: String,
        gave_up: Option<String>,
    ) -> anyhow::Result<()> {
        let Some(run) = self.kinds.get(kind) else {
            anyhow::bail!("unknown job kind {kind:?} (written by a newer ODS?)");
        };
        run(ctx, payload, gave_up).await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicI64, Ordering};

    use serde::{Deserialize, Serialize};

    use super::*;
    use crate::jobs::Job;

    #[derive(Serialize, Deserialize)]
    struct Add(i64);
    impl Job for Add {
        const KIND: &'static str = "add";
    }
    impl Run<Arc<AtomicI64>> for Add {
        async fn run(self, ctx: Arc<AtomicI64>) -> anyhow::Result<()> {
            ctx.fetch_add(self.0, Ordering::SeqCst);
            Ok(())
        }
        async fn gave_up(self, ctx: Arc<AtomicI64>, _error: String) -> anyhow::Result<()> {
            ctx.store(-1, Ordering::SeqCst);
            Ok(())
        }
    }

    #[tokio::test]
    async fn dispatches_by_kind_name() {
        let mut r = Registry::new();
        r.register::<Add>();
        assert_eq!(r.kinds().collect::<Vec<_>>(), ["add"]);
        let n = Arc::new(AtomicI64::new(0));
        r.dispatch(n.clone(), "add", "5".into(), None)
            .await
            .unwrap();
        r.dispatch(n.clone(), "add", "2".into(), None)
            .await
            .unwrap();
        assert_eq!(n.load(Ordering::SeqCst), 7);
        let unknown = r.dispatch(n.clone(), "sub", "1".into(), None).await;
        assert!(
            unknown
                .unwrap_err()
                .to_string()
                .contains("unknown job kind")
        );
        let bad = r.dispatch(n.clone(), "add", "\"x\"".into(), None).await;
        assert!(bad.unwrap_err().to_string().contains("does not parse"));
        r.dispatch(n.clone(), "add", "1".into(), Some("boom".into()))
            .await
            .unwrap();
        assert_eq!(n.load(Ordering::SeqCst), -1, "gave_up ran instead of run");
    }

    #[test]
    #[should_panic(expected = "registered twice")]
    fn one_name_one_kind() {
        Registry::<Arc<AtomicI64>>::new()
            .register::<Add>()
            .register::<Add>();
    }
}
