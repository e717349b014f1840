//! The durable job table: enqueue (inside the caller's transaction), claim with a
//! lease, heartbeat, complete, retry. Claiming is an optimistic conditional UPDATE, so
//! it is portable and safe with several worker processes on one database. Every time
//! in this table (`run_at`, `lease_until`, `created`, `updated`) is Unix milliseconds.

use sqlx::{AnyConnection, Connection, FromRow, Row};

use super::{Db, Dialect};
use crate::model::now_millis;

#[derive(Debug, Clone, FromRow)]
pub struct JobRow {
    pub id: i64,
    pub kind: String,
    pub payload: String,
    pub dedup_key: Option<String>,
    pub state: String,
    pub attempts: i64,
    pub max_attempts: i64,
    pub run_at: i64,
    pub lease_until: Option<i64>,
    pub locked_by: Option<String>,
    pub last_error: Option<String>,
    pub created: i64,
    pub updated: i64,
}

const COLS: &str = "id, kind, COALESCE(payload, '') AS payload, dedup_key, state, attempts, max_attempts, run_at, lease_until, locked_by, last_error, created, updated";

pub struct NewJob {
    pub kind: &'static str,
    pub payload: String,
    pub dedup_key: Option<String>,
    pub max_attempts: i64,
    pub run_at_ms: i64,
}

/// Adds a job unless its dedup key is taken; returns its id, or `None` when it was
/// not added. The key is taken while a job with it is queued, and also while one runs
/// when the kind is exclusive: `dedup_slot` holds the key in those states and a unique
/// index on it makes the check atomic across connections and processes (a plain
/// look-then-insert let two nodes, or two tasks, queue the same exclusive job).
pub async fn enqueue(db: &Db, conn: &mut AnyConnection, job: &NewJob) -> sqlx::Result<Option<i64>> {
    // Sampled before the statement: sqlx counts transactions on the client, so a
    // server-side rollback of the caller's transaction does not hide it.
    let in_transaction = conn.is_in_transaction();
    let mut attempt = 1;
    loop {
        match insert(db, conn, job).await {
            Err(e) if super::retry_on_deadlock(&e, in_transaction, attempt).await => attempt += 1,
            done => return done,
        }
    }
}

async fn insert(db: &Db, conn: &mut AnyConnection, job: &NewJob) -> sqlx::Result<Option<i64>> {
    let now = now_millis();
    let cols = "(kind, payload, dedup_key, dedup_slot, state, attempts, max_attempts, run_at, created, updated) \
                VALUES (?, ?, ?, ?, 'queued', 0, ?, ?, ?, ?)";
    let sql = match db.dialect {
        Dialect::MySql => format!("INSERT IGNORE INTO jobs {cols}"),
        _ => format!("INSERT INTO jobs {cols} ON CONFLICT DO NOTHING RETURNING id"),
    };
    let q = bind_job(db.q(&sql), job, now);
    if db.dialect == Dialect::MySql {
        let done = q.execute(&mut *conn).await?;
        return Ok((done.rows_affected() == 1)
            .then(|| done.last_insert_id())
            .flatten());
    }
    q.fetch_optional(&mut *conn)
        .await?
        .map(|row| row.try_get::<i64, _>(0))
        .transpose()
}

/// Adds many jobs in one statement, each unless its dedup key is taken (as `enqueue`,
/// without the ids); returns how many were added. Meant for the caller's transaction.
pub async fn enqueue_many(db: &Db, conn: &mut AnyConnection, jobs: &[NewJob]) -> sqlx::Result<u64> {
    if jobs.is_empty() {
        return Ok(0);
    }
    let rows = super::rows("(?, ?, ?, ?, 'queued', 0, ?, ?, ?, ?)", jobs.len());
    let cols = "(kind, payload, dedup_key, dedup_slot, state, attempts, max_attempts, run_at, created, updated)";
    let sql = match db.dialect {
        Dialect::MySql => format!("INSERT IGNORE INTO jobs {cols} VALUES {rows}"),
        _ => format!("INSERT INTO jobs {cols} VALUES {rows} ON CONFLICT DO NOTHING"),
    };
    let mut q = db.q(&sql);
    let now = now_millis();
    for job in jobs {
        q = bind_job(q, job, now);
    }
    Ok(q.execute(&mut *conn).await?.rows_affected())
}

/// Binds a new job's row: kind, payload, dedup key (also its slot), attempts allowed,
/// due time, created and updated (`now`).
fn bind_job(q: super::Q, job: &NewJob, now: i64) -> super::Q {
    q.bind(job.kind)
        .bind(job.payload.clone())
        .bind(job.dedup_key.clone())
        .bind(job.dedup_key.clone())
        .bind(job.max_attempts)
        .bind(job.run_at_ms)
        .bind(now)
        .bind(now)
}

/// A job that went back to the queue takes its key again, unless a newer job with the
/// key was queued meanwhile (then both stay queued: this one keeps its attempts).
async fn retake_slot(db: &Db, id: i64) -> sqlx::Result<()> {
    let mut attempt = 1;
    loop {
        let r = db
            .q("UPDATE jobs SET dedup_slot = dedup_key WHERE id = ? AND state = 'queued' AND dedup_slot IS NULL")
            .bind(id)
            .execute(db.writer())
            .await;
        match r {
            Err(e) if super::is_unique_violation(&e) => return Ok(()),
            Err(e) if super::retry_on_deadlock(&e, false, attempt).await => attempt += 1,
            r => return r.map(|_| ()),
        }
    }
}

/// Claims one due job (or one whose lease expired: its worker died) of one of
/// `kinds` for `worker`. Each worker lane claims only the kinds it runs, so one lane's
/// slow jobs cannot take another's slots. A claimed job of a kind not in `exclusive`
/// frees its dedup key, so the same work can be queued again while it runs.
pub async fn claim(
    db: &Db,
    worker: &str,
    lease_ms: i64,
    kinds: &[&str],
    exclusive: &[&str],
) -> sqlx::Result<Option<JobRow>> {
    if kinds.is_empty() {
        return Ok(None);
    }
    let claim = Claim::new(worker, lease_ms, exclusive);
    for id in claim.candidates(db, kinds, 8).await? {
        if claim.take(db, db.writer(), &[id]).await? == 1 {
            return get(db, id).await;
        }
    }
    Ok(None)
}

/// Claims up to `limit` more due jobs of `kind` for `worker`: the rest of a batch whose
/// first job `claim` took (`Job::BATCH`). One UPDATE takes every candidate still due,
/// one SELECT reads back those this claim took (by worker and lease), oldest first.
pub async fn claim_more(
    db: &Db,
    worker: &str,
    lease_ms: i64,
    kind: &str,
    exclusive: &[&str],
    limit: usize,
) -> sqlx::Result<Vec<JobRow>> {
    if limit == 0 {
        return Ok(Vec::new());
    }
    let claim = Claim::new(worker, lease_ms, exclusive);
    let candidates = claim.candidates(db, &[kind], limit).await?;
    if candidates.is_empty() || claim.take(db, db.writer(), &candidates).await? == 0 {
        return Ok(Vec::new());
    }
    let marks = super::marks(candidates.len());
    let sql = format!(
        "SELECT {COLS} FROM jobs WHERE id IN ({marks}) AND state = 'running' AND locked_by = ? \
         AND lease_until = ? ORDER BY run_at, id"
    );
    let mut q = db.q(&sql);
    for id in &candidates {
        q = q.bind(*id);
    }
    q.bind(worker.to_string())
        .bind(claim.now + lease_ms)
        .fetch_all(db.writer())
        .await?
        .iter()
        .map(JobRow::from_row)
        .collect()
}

/// One claim: the due-job condition and the conditional UPDATE that takes a job.
struct Claim<'a> {
    worker: &'a str,
    lease_ms: i64,
    exclusive: &'a [&'a str],
    now: i64,
}

const DUE: &str = "((state = 'queued' AND run_at <= ?) OR (state = 'running' AND lease_until < ?))";

impl<'a> Claim<'a> {
    fn new(worker: &'a str, lease_ms: i64, exclusive: &'a [&'a str]) -> Self {
        Claim {
            worker,
            lease_ms,
            exclusive,
            now: now_millis(),
        }
    }

    /// Ids of due jobs of `kinds`, oldest first.
    async fn candidates(&self, db: &Db, kinds: &[&str], limit: usize) -> sqlx::Result<Vec<i64>> {
        let marks = super::marks(kinds.len());
        let sql = format!(
            "SELECT id FROM jobs WHERE {DUE} AND kind IN ({marks}) ORDER BY run_at, id LIMIT {limit}"
        );
        let mut q = db.q(&sql).bind(self.now).bind(self.now);
        for k in kinds {
            q = q.bind(k.to_string());
        }
        q.fetch_all(db.reader())
            .await?
            .iter()
            .map(|r| r.try_get(0))
            .collect()
    }

    /// Takes those of jobs `ids` that are still due; how many it took (another worker
    /// may have got some first).
    async fn take<'c, E>(&self, db: &Db, conn: E, ids: &[i64]) -> sqlx::Result<u64>
    where
        E: sqlx::Executor<'c, Database = sqlx::Any>,
    {
        let keep_slot = if self.exclusive.is_empty() {
            "NULL".to_string()
        } else {
            let marks = super::marks(self.exclusive.len());
            format!("CASE WHEN kind IN ({marks}) THEN dedup_slot ELSE NULL END")
        };
        let sql = format!(
            "UPDATE jobs SET state = 'running', locked_by = ?, lease_until = ?, attempts = attempts + 1, updated = ?, \
             dedup_slot = {keep_slot} WHERE id IN ({}) AND {DUE}",
            super::marks(ids.len())
        );
        let mut q = db
            .q(&sql)
            .bind(self.worker.to_string())
            .bind(self.now + self.lease_ms)
            .bind(now_millis());
        for k in self.exclusive {
            q = q.bind(k.to_string());
        }
        for id in ids {
            q = q.bind(*id);
        }
        let res = q.bind(self.now).bind(self.now).execute(conn).await?;
        Ok(res.rows_affected())
    }
}

pub async fn get(db: &Db, id: i64) -> sqlx::Result<Option<JobRow>> {
    let sql = format!("SELECT {COLS} FROM jobs WHERE id = ?");
    db.q(&sql)
        .bind(id)
        .fetch_optional(db.writer())
        .await?
        .as_ref()
        .map(JobRow::from_row)
        .transpose()
}

/// Extends the lease of a running job; false when the lease was lost.
pub async fn heartbeat(db: &Db, id: i64, worker: &str, lease_ms: i64) -> sqlx::Result<bool> {
    let r = db
        .q("UPDATE jobs SET lease_until = ? WHERE id = ? AND locked_by = ? AND state = 'running'")
        .bind(now_millis() + lease_ms)
        .bind(id)
        .bind(worker.to_string())
        .execute(db.writer())
        .await?;
    Ok(r.rows_affected() == 1)
}

/// Marks job `id` (held by `worker`) done.
pub async fn complete(db: &Db, id: i64, worker: &str) -> sqlx::Result<()> {
    complete_many(db, &[id], worker).await
}

/// Marks jobs `ids` (held by `worker`) done, in one statement.
pub async fn complete_many(db: &Db, ids: &[i64], worker: &str) -> sqlx::Result<()> {
    if ids.is_empty() {
        return Ok(());
    }
    let marks = super::marks(ids.len());
    let mut q = db
        .q(&format!(
            "UPDATE jobs SET state = 'done', dedup_slot = NULL, lease_until = NULL, last_error = NULL, updated = ? \
             WHERE locked_by = ? AND id IN ({marks})"
        ))
        .bind(now_millis())
        .bind(worker.to_string());
    for id in ids {
        q = q.bind(*id);
    }
    q.execute(db.writer()).await?;
    Ok(())
}

/// Records a failed attempt: back to the queue at `retry_at_ms`, or `dead` when none.
pub async fn fail(
    db: &Db,
    id: i64,
    worker: &str,
    error: &str,
    retry_at_ms: Option<i64>,
) -> sqlx::Result<()> {
    let (state, run_at) = match retry_at_ms {
        Some(t) => ("queued", t),
        None => ("dead", now_millis()),
    };
    // A dead job gives its key up; a retried one keeps it (exclusive) or takes it again.
    let slot = if retry_at_ms.is_some() {
        "dedup_slot"
    } else {
        "NULL"
    };
    db.q(&format!(
        "UPDATE jobs SET state = ?, run_at = ?, lease_until = NULL, last_error = ?, updated = ?, \
         dedup_slot = {slot} WHERE id = ? AND locked_by = ?"
    ))
    .bind(state)
    .bind(run_at)
    .bind(error.to_string())
    .bind(now_millis())
    .bind(id)
    .bind(worker.to_string())
    .execute(db.writer())
    .await?;
    if retry_at_ms.is_some() {
        retake_slot(db, id).await?;
    }
    Ok(())
}

/// What `retry_now` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retried {
    Yes,
    /// Neither dead nor queued.
    NotRetryable,
    /// Dead, and the same work (its dedup key) is queued or running already.
    Duplicate,
}

/// Puts a dead or queued job back to run now (admin action). A dead job takes its
/// dedup key again, so it cannot run beside a newer copy of itself.
pub async fn retry_now(db: &Db, id: i64) -> sqlx::Result<Retried> {
    // dedup_slot first: MySQL's later assignments see the earlier ones' new values.
    let r = db
        .q(
            "UPDATE jobs SET dedup_slot = CASE WHEN state = 'dead' THEN dedup_key ELSE dedup_slot END, \
            state = 'queued', run_at = ?, attempts = 0, updated = ? \
            WHERE id = ? AND state IN ('dead', 'queued')",
        )
        .bind(now_millis())
        .bind(now_millis())
        .bind(id)
        .execute(db.writer())
        .await;
    match r {
        Ok(r) if r.rows_affected() == 1 => Ok(Retried::Yes),
        Ok(_) => Ok(Retried::NotRetryable),
        Err(e) if super::is_unique_violation(&e) => Ok(Retried::Duplicate),
        Err(e) => Err(e),
    }
}

pub async fn list(
    db: &Db,
    state: Option<&str>,
    kind: Option<&str>,
    limit: i64,
) -> sqlx::Result<Vec<JobRow>> {
    let mut sql = format!("SELECT {COLS} FROM jobs WHERE 1 = 1");
    if state.is_some() {
        sql.push_str(" AND state = ?");
    }
    if kind.is_some() {
        sql.push_str(" AND kind = ?");
    }
    sql.push_str(" ORDER BY id DESC LIMIT ?");
    let mut q = db.q(&sql);
    if let Some(s) = state {
        q = q.bind(s.to_string());
    }
    if let Some(k) = kind {
        q = q.bind(k.to_string());
    }
    q.bind(limit)
        .fetch_all(db.reader())
        .await?
        .iter()
        .map(JobRow::from_row)
        .collect()
}

/// Forgets finished jobs older than `cutoff` (Unix milliseconds).
pub async fn prune_done(db: &Db, cutoff: i64) -> sqlx::Result<u64> {
    let r = db
        .q("DELETE FROM jobs WHERE state = 'done' AND updated < ?")
        .bind(cutoff)
        .execute(db.writer())
        .await?;
    Ok(r.rows_affected())
}

/// Returns to the queue the jobs that workers which no longer run held (`dead` says
/// which worker ids those are), so a restart resumes them at once instead of after
/// their lease runs out.
pub async fn release_dead(db: &Db, dead: impl Fn(&str) -> bool) -> sqlx::Result<u64> {
    let rows = db
        .q("SELECT id, locked_by FROM jobs WHERE state = 'running'")
        .fetch_all(db.reader())
        .await?;
    let mut released = 0;
    for r in rows {
        let id: i64 = r.try_get(0)?;
        let Some(worker) = r.try_get::<Option<String>, _>(1)? else {
            continue;
        };
        if !dead(&worker) {
            continue;
        }
        let done = db
            .q(
                "UPDATE jobs SET state = 'queued', lease_until = NULL, run_at = ?, updated = ? \
                WHERE id = ? AND state = 'running' AND locked_by = ?",
            )
            .bind(now_millis())
            .bind(now_millis())
            .bind(id)
            .bind(worker)
            .execute(db.writer())
            .await?;
        if done.rows_affected() == 1 {
            retake_slot(db, id).await?;
        }
        released += done.rows_affected();
    }
    Ok(released)
}

/// Makes a queued job with this dedup key due now; true when there was one.
pub async fn run_now(db: &Db, conn: &mut AnyConnection, dedup_key: &str) -> sqlx::Result<bool> {
    let r = db
        .q("UPDATE jobs SET run_at = ? WHERE dedup_key = ? AND state = 'queued'")
        .bind(now_millis())
        .bind(dedup_key.to_string())
        .execute(&mut *conn)
        .await?;
    Ok(r.rows_affected() > 0)
}

/// How many jobs with any of these dedup keys are queued or running.
pub async fn count_pending(db: &Db, dedup_keys: &[String]) -> sqlx::Result<i64> {
    if dedup_keys.is_empty() {
        return Ok(0);
    }
    let marks = super::marks(dedup_keys.len());
    let sql = format!(
        "SELECT COUNT(*) FROM jobs WHERE state IN ('queued', 'running') AND dedup_key IN ({marks})"
    );
    let mut q = db.q(&sql);
    for k in dedup_keys {
        q = q.bind(k.clone());
    }
    q.fetch_one(db.reader()).await?.try_get(0)
}
