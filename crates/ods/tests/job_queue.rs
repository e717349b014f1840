//! The durable job queue's dedup on the real engines: enqueues of one key made at the
//! same moment on separate connections (as two nodes, or two tasks, make them) queue
//! the job once, an exclusive job's key stays taken while it runs, and a plain job's
//! key is free again once it is claimed.

mod common;

use ods::db::{self, Db};
use ods::model::now_millis;

async fn open(tdb: &common::TestDb, dir: &std::path::Path) -> Db {
    let url = match &tdb.url {
        Some(u) => u.clone(),
        None => format!("sqlite://{}?mode=rwc", dir.join("jobs.db").display()),
    };
    let db = Db::connect(&url).await.expect("connect");
    db::migrations::run(&db).await.expect("migrations");
    db
}

fn job(kind: &'static str, key: &str) -> db::jobs::NewJob {
    db::jobs::NewJob {
        kind,
        payload: "{}".into(),
        dedup_key: Some(key.to_string()),
        max_attempts: 3,
        run_at_ms: now_millis() - 1,
    }
}

/// Enqueues `kind`/`key` from `n` connections at once; returns the ids that were made.
async fn race(db: &Db, kind: &'static str, key: &str, n: usize) -> Vec<i64> {
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(n));
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let (db, barrier, key) = (db.clone(), barrier.clone(), key.to_string());
            tokio::spawn(async move {
                // Meet before taking a connection: SQLite's writer pool has one.
                barrier.wait().await;
                let mut conn = db.writer().acquire().await.expect("connection");
                db::jobs::enqueue(&db, &mut conn, &job(kind, &key))
                    .await
                    .expect("enqueue")
            })
        })
        .collect();
    let mut ids = Vec::new();
    for t in tasks {
        ids.extend(t.await.unwrap());
    }
    ids
}

#[tokio::test]
async fn one_key_is_queued_once_whoever_enqueues_it() {
    let tdb = common::TestDb::create();
    let dir = tempfile::tempdir().unwrap();
    let db = open(&tdb, dir.path()).await;
    // Two handles on one database, as two nodes have.
    let other = open(&tdb, dir.path()).await;

    for round in 0..5 {
        let key = format!("fetch:{round}");
        let mut ids = race(&db, "fetch", &key, 6).await;
        ids.extend(race(&other, "fetch", &key, 6).await);
        assert_eq!(ids.len(), 1, "round {round}: {ids:?}");
    }

    // An exclusive job that runs keeps its key: nothing more is queued until it ends.
    let claimed = db::jobs::claim(&db, "w1", 60_000, &["fetch"], &["fetch"])
        .await
        .unwrap()
        .expect("a due job");
    let key = claimed.dedup_key.clone().unwrap();
    assert!(race(&other, "fetch", &key, 4).await.is_empty());
    db::jobs::complete(&db, claimed.id, "w1").await.unwrap();
    assert_eq!(race(&other, "fetch", &key, 4).await.len(), 1);

    // A failed attempt of an exclusive job goes back to the queue still holding it.
    let c = db::jobs::claim(&db, "w1", 60_000, &["fetch"], &["fetch"])
        .await
        .unwrap()
        .unwrap();
    db::jobs::fail(&db, c.id, "w1", "boom", Some(now_millis() + 60_000))
        .await
        .unwrap();
    let k = c.dedup_key.clone().unwrap();
    assert!(race(&db, "fetch", &k, 3).await.is_empty());

    // A dead job frees its key; retried by an admin, it takes it back, unless the same
    // work was queued again meanwhile.
    let first = race(&db, "transfer", "transfer:x", 3).await;
    assert_eq!(first.len(), 1);
    let t = db::jobs::claim(&db, "w1", 60_000, &["transfer"], &["transfer"])
        .await
        .unwrap()
        .unwrap();
    db::jobs::fail(&db, t.id, "w1", "gave up", None)
        .await
        .unwrap();
    let again = race(&other, "transfer", "transfer:x", 3).await;
    assert_eq!(again.len(), 1);
    use db::jobs::Retried;
    assert_eq!(
        db::jobs::retry_now(&db, t.id).await.unwrap(),
        Retried::Duplicate
    );
    let t2 = db::jobs::claim(&db, "w1", 60_000, &["transfer"], &["transfer"])
        .await
        .unwrap()
        .unwrap();
    assert_eq!(t2.id, again[0]);
    db::jobs::complete(&db, t2.id, "w1").await.unwrap();
    assert_eq!(db::jobs::retry_now(&db, t.id).await.unwrap(), Retried::Yes);
    assert!(race(&db, "transfer", "transfer:x", 3).await.is_empty());
    assert_eq!(
        db::jobs::retry_now(&db, t2.id).await.unwrap(),
        Retried::NotRetryable
    );

    // A plain job frees its key when it is claimed: the same work may wait behind it,
    // once.
    assert_eq!(race(&db, "sweep", "sweep", 6).await.len(), 1);
    let s = db::jobs::claim(&db, "w2", 60_000, &["sweep"], &["fetch"])
        .await
        .unwrap()
        .expect("the sweep");
    assert_eq!(race(&other, "sweep", "sweep", 6).await.len(), 1);
    // Its failed attempt returns to the queue beside the newer one, keeping its attempts.
    db::jobs::fail(&db, s.id, "w2", "boom", Some(now_millis()))
        .await
        .unwrap();
    let queued = db::jobs::list(&db, Some("queued"), Some("sweep"), 10)
        .await
        .unwrap();
    assert_eq!(queued.len(), 2, "{queued:?}");
    // Once both are gone, the key is free.
    for _ in 0..2 {
        let j = db::jobs::claim(&db, "w2", 60_000, &["sweep"], &[])
            .await
            .unwrap()
            .expect("a queued sweep");
        db::jobs::complete(&db, j.id, "w2").await.unwrap();
    }
    assert_eq!(race(&db, "sweep", "sweep", 3).await.len(), 1);
    db.close().await;
    other.close().await;
}

#[tokio::test]
async fn jobs_queued_before_the_dedup_slot_get_one_slot_per_key() {
    let tdb = common::TestDb::create();
    let dir = tempfile::tempdir().unwrap();
    let db = open(&tdb, dir.path()).await;
    // A database as an older ODS left it: no slots, and the duplicates its
    // look-then-insert could make.
    db.q("DELETE FROM schema_migrations WHERE version = 7")
        .execute(db.writer())
        .await
        .unwrap();
    for (key, state) in [
        ("fetch:a", "queued"),
        ("fetch:a", "queued"),
        ("fetch:b", "running"),
        ("fetch:b", "queued"),
        ("fetch:c", "done"),
    ] {
        db.q("INSERT INTO jobs (kind, payload, dedup_key, state, attempts, max_attempts, run_at, created, updated) \
              VALUES ('fetch', '{}', ?, ?, 0, 3, 0, 0, 0)")
            .bind(key)
            .bind(state)
            .execute(db.writer())
            .await
            .unwrap();
    }
    // Applied again (the column exists already: that counts as done), twice.
    assert_eq!(db::migrations::run(&db).await.unwrap(), [7]);
    db.q("DELETE FROM schema_migrations WHERE version = 7")
        .execute(db.writer())
        .await
        .unwrap();
    assert_eq!(db::migrations::run(&db).await.unwrap(), [7]);
    let slots: Vec<(String, String, Option<String>)> = db
        .q("SELECT dedup_key, state, dedup_slot FROM jobs ORDER BY id")
        .fetch_all(db.reader())
        .await
        .unwrap()
        .iter()
        .map(|r| {
            use sqlx::Row;
            (r.get(0), r.get(1), r.get(2))
        })
        .collect();
    let held: Vec<Option<&str>> = slots.iter().map(|s| s.2.as_deref()).collect();
    assert_eq!(
        held,
        [Some("fetch:a"), None, None, Some("fetch:b"), None],
        "{slots:?}"
    );
    // And the queue dedups from there on.
    assert!(race(&db, "fetch", "fetch:a", 3).await.is_empty());
    assert_eq!(race(&db, "fetch", "fetch:c", 3).await.len(), 1);
    db.close().await;
}

/// Batches (`Job::BATCH`): two workers on two handles claiming one kind in batches at
/// the same time take each due job exactly once, an exclusive kind's jobs keep their
/// keys while they run, and a batch completes in one statement.
#[tokio::test]
async fn batches_are_claimed_once_each_and_completed_together() {
    let tdb = common::TestDb::create();
    let dir = tempfile::tempdir().unwrap();
    let db = open(&tdb, dir.path()).await;
    let other = open(&tdb, dir.path()).await;
    const N: usize = 150;
    for i in 0..N {
        assert_eq!(
            race(&db, "fetch_small", &format!("fetch:{i}"), 1)
                .await
                .len(),
            1
        );
    }
    // Another kind's due job is never part of a batch.
    assert_eq!(race(&db, "fetch", "fetch:big", 1).await.len(), 1);

    let worker = |db: Db, name: &'static str| {
        tokio::spawn(async move {
            let mut batches: Vec<Vec<i64>> = Vec::new();
            loop {
                let Some(first) =
                    db::jobs::claim(&db, name, 60_000, &["fetch_small"], &["fetch_small"])
                        .await
                        .unwrap()
                else {
                    return batches;
                };
                let more =
                    db::jobs::claim_more(&db, name, 60_000, "fetch_small", &["fetch_small"], 31)
                        .await
                        .unwrap();
                assert!(
                    more.iter()
                        .all(|j| j.kind == "fetch_small" && j.state == "running")
                );
                assert!(more.iter().all(|j| j.locked_by.as_deref() == Some(name)));
                let mut ids = vec![first.id];
                ids.extend(more.iter().map(|j| j.id));
                batches.push(ids);
            }
        })
    };
    let (w1, w2) = (worker(db.clone(), "w1"), worker(other.clone(), "w2"));
    let (b1, b2) = (w1.await.unwrap(), w2.await.unwrap());
    let mut all: Vec<i64> = b1.iter().chain(&b2).flatten().copied().collect();
    let claimed = all.len();
    all.sort();
    all.dedup();
    assert_eq!((claimed, all.len()), (N, N), "each job claimed once");
    assert!(b1.iter().chain(&b2).all(|b| b.len() <= 32));
    assert!(
        b1.len() + b2.len() < N / 4,
        "claimed in batches: {} and {}",
        b1.len(),
        b2.len()
    );
    // Running exclusive jobs hold their keys.
    assert!(race(&other, "fetch_small", "fetch:7", 3).await.is_empty());
    // One batch completes in one statement; only the worker holding it can.
    // (Either worker may have taken every batch: the other then holds none.)
    let (batch, holder, other_worker) = match b1.first() {
        Some(b) => (b, "w1", "w2"),
        None => (&b2[0], "w2", "w1"),
    };
    db::jobs::complete_many(&db, batch, other_worker)
        .await
        .unwrap();
    db::jobs::complete_many(&db, batch, holder).await.unwrap();
    let marks = vec!["?"; batch.len()].join(", ");
    let mut q = db.q(&format!(
        "SELECT COUNT(*) FROM jobs WHERE state = 'done' AND dedup_slot IS NULL AND id IN ({marks})"
    ));
    for id in batch {
        q = q.bind(*id);
    }
    let done: i64 = {
        use sqlx::Row;
        q.fetch_one(db.reader()).await.unwrap().get(0)
    };
    assert_eq!(done as usize, batch.len());
    let still: i64 = {
        use sqlx::Row;
        db.q("SELECT COUNT(*) FROM jobs WHERE state = 'running' AND kind = 'fetch_small'")
            .fetch_one(db.reader())
            .await
            .unwrap()
            .get(0)
    };
    assert_eq!(still as usize, N - batch.len());
    db.close().await;
    other.close().await;
}

/// A key freed a moment ago is the hard case on MariaDB: the row that held it still
/// marks the spot in the unique index, every inserter locks that gap, and InnoDB ends
/// all but one insert as a deadlock. Enqueue runs a lost insert again, so each round
/// still queues exactly one job and none of the racing enqueues fails.
#[tokio::test]
async fn a_key_freed_a_moment_ago_is_queued_again_once() {
    let tdb = common::TestDb::create();
    let dir = tempfile::tempdir().unwrap();
    let db = open(&tdb, dir.path()).await;
    let other = open(&tdb, dir.path()).await;
    let key = "fetch:again";
    assert_eq!(race(&db, "fetch", key, 4).await.len(), 1);
    for round in 0..300 {
        let j = db::jobs::claim(&db, "w1", 60_000, &["fetch"], &["fetch"])
            .await
            .unwrap()
            .expect("the queued job");
        db::jobs::complete(&db, j.id, "w1").await.unwrap();
        let (mine, theirs) =
            tokio::join!(race(&db, "fetch", key, 8), race(&other, "fetch", key, 8));
        let ids: Vec<i64> = mine.into_iter().chain(theirs).collect();
        assert_eq!(ids.len(), 1, "round {round}: {ids:?}");
    }
}
