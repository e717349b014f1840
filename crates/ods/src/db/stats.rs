//! The counts `/metrics` reports from the database at scrape time: packages by status
//! and stage, jobs by kind and state with the age of the oldest waiting one.

use sqlx::Row;

use super::Db;

/// `(status, stage, count)` for every combination that has packages.
pub async fn package_counts(db: &Db) -> sqlx::Result<Vec<(String, String, i64)>> {
    db.q("SELECT status, stage, COUNT(*) AS n FROM packages GROUP BY status, stage")
        .fetch_all(db.reader())
        .await?
        .iter()
        .map(|r| Ok((r.try_get("status")?, r.try_get("stage")?, r.try_get("n")?)))
        .collect()
}

/// Jobs not yet done, by kind and state.
pub struct JobCounts {
    pub kind: String,
    pub state: String,
    pub count: i64,
    /// Unix milliseconds of the earliest `run_at` among them.
    pub oldest_run_at: i64,
}

pub async fn job_counts(db: &Db) -> sqlx::Result<Vec<JobCounts>> {
    db.q(
        "SELECT kind, state, COUNT(*) AS n, MIN(run_at) AS oldest FROM jobs \
         WHERE state <> 'done' GROUP BY kind, state",
    )
    .fetch_all(db.reader())
    .await?
    .iter()
    .map(|r| {
        Ok(JobCounts {
            kind: r.try_get("kind")?,
            state: r.try_get("state")?,
            count: r.try_get("n")?,
            oldest_run_at: r.try_get("oldest")?,
        })
    })
    .collect()
}
