//! The catalog domain: the rules every server applies to package records, its own
//! changes (uploads, deletes, stage changes from `packages`) and those it hears of
//! (from `sync`) alike (DESIGN.md §3, §4.4, §4.7): last writer wins per uuid by hybrid
//! logical clock, deletions are kept as tombstones, a server holds what its stage
//! allows (and what was uploaded to it), two live packages with one filename resolve
//! to the later upload everywhere, and every change is announced to the peers. Each
//! change is written with its follow-up jobs, events and announcements in one
//! transaction. Its jobs: `fetch` and `fetch_small` (hold a package's bytes) and `reevaluate`.

mod apply;
pub mod fetch;
pub mod reevaluate;
pub mod rollout;

pub use apply::remote_many;

use std::time::Duration;

use sqlx::AnyConnection;

use crate::app::App;
use crate::db::catalog::{self, Record};
use crate::db::events::{self, NewEvent};
use crate::db::packages::{self, NewPackage, PackageRow};
use crate::db::{Db, server, transfers};
use crate::jobs;
use crate::model::{Stage, Status, now_unix};
use crate::peers::notify::NotifyPeer;
use crate::storage::{discard::DiscardPartial, gc::BlobGc};

/// Queues a notification of a catalog change to every peer that can be called.
/// Call inside the transaction that made the change.
pub async fn announce(
    db: &Db,
    conn: &mut AnyConnection,
    except_iss: Option<&str>,
) -> sqlx::Result<()> {
    for p in crate::db::peers::list_on(db, conn).await? {
        if p.firewalled || p.url.is_none() || Some(p.iss.as_str()) == except_iss {
            continue;
        }
        let notify = NotifyPeer {
            peer_id: p.id,
            full: false,
        };
        jobs::enqueue(db, conn, &notify, Duration::ZERO).await?;
    }
    Ok(())
}

/// After a commit that changed the catalog: wake the local worker and long-polls.
pub fn changed(app: &App, seq: i64) {
    app.packages_changed();
    app.sync.cursor.send_if_modified(|c| {
        if seq > *c {
            *c = seq;
            true
        } else {
            false
        }
    });
    app.jobs_wake.notify_waiters();
    app.transfers_wake.notify_waiters();
    app.wake_jobs();
}

/// A source for `uuid` appeared: run its waiting transfer now (or queue one).
pub async fn hurry(app: &App, uuid: &str) -> anyhow::Result<()> {
    let mut conn = app.db.writer().acquire().await?;
    let Some(p) = packages::by_uuid(&app.db, &mut conn, uuid).await? else {
        return Ok(());
    };
    if p.status == Status::Public {
        return Ok(());
    }
    crate::db::jobs::run_now(&app.db, &mut conn, &fetch::dedup_key(uuid)).await?;
    fetch::queue(&app.db, &mut conn, uuid, p.file_size).await?;
    app.wake_jobs();
    Ok(())
}

/// Whether this server should hold the bytes of `r`.
pub fn wants(own_stage: Stage, own_iss: &str, r: &Record) -> bool {
    !r.deleted && (own_stage.holds(r.stage) || r.origin_iss == own_iss)
}

/// `a` beats `b` for the same filename: the later upload wins (ISS breaks ties).
/// Whether `a` was uploaded after `b`: by creation version, then by uuid, so that
/// every server picks the same winner whichever record it hears first (two nodes of
/// one site share an ISS and may mint equal versions).
fn later_upload(a: &Record, b: &Record) -> bool {
    (&a.created_version, &a.uuid) > (&b.created_version, &b.uuid)
}

async fn event(
    app: &App,
    conn: &mut AnyConnection,
    kind: &str,
    r: &Record,
    peer: Option<&str>,
    message: String,
) -> sqlx::Result<()> {
    events::record(
        &app.db,
        conn,
        NewEvent {
            kind,
            package_uuid: Some(&r.uuid),
            filename: Some(&r.filename),
            peer_iss: peer,
            message,
        },
    )
    .await
}

/// A record for a package just uploaded here, versioned after every record that has
/// carried its filename (a deleted or replaced one, perhaps stamped by another node of
/// this site whose clock runs ahead): the later upload must win a filename conflict
/// wherever it is decided. Call it in the transaction holding `catalog::lock`.
#[allow(clippy::too_many_arguments)]
pub async fn new_upload(
    app: &App,
    conn: &mut AnyConnection,
    uuid: &str,
    filename: &str,
    size: i64,
    sha1: &str,
    sha256: &str,
    stage: Stage,
) -> sqlx::Result<Record> {
    let v = match catalog::newest_version_named(&app.db, conn, filename).await? {
        Some(newest) => app.sync.hlc.after(&newest),
        None => app.sync.hlc.now(),
    };
    Ok(Record {
        uuid: uuid.to_string(),
        filename: filename.to_string(),
        file_size: size,
        sha1: sha1.to_string(),
        sha256: sha256.to_string(),
        stage,
        version: v.clone(),
        created_version: v,
        origin_iss: app.sync.own_iss.clone(),
        created: now_unix(),
        deleted: false,
        seq: 0,
        available: true,
    })
}

/// Records a local upload (its package row is already written in `conn`).
pub async fn local_upload(app: &App, conn: &mut AnyConnection, r: &Record) -> sqlx::Result<i64> {
    let seq = catalog::put(&app.db, conn, r).await?;
    event(
        app,
        conn,
        "package.uploaded",
        r,
        None,
        format!("{} uploaded ({} bytes)", r.filename, r.file_size),
    )
    .await?;
    event(
        app,
        conn,
        "package.public",
        r,
        None,
        format!("{} is Public here", r.filename),
    )
    .await?;
    rollout::check(app, conn, &r.uuid)
        .await
        .map_err(|e| sqlx::Error::Protocol(format!("checking the rollout: {e:#}")))?;
    announce(&app.db, conn, None).await?;
    Ok(seq)
}

/// Records a local deletion as a tombstone (the package row is already gone).
pub async fn local_delete(
    app: &App,
    conn: &mut AnyConnection,
    pkg: &PackageRow,
) -> sqlx::Result<Option<i64>> {
    let Some(mut r) = catalog::get(&app.db, conn, &pkg.uuid).await? else {
        return Ok(None);
    };
    r.deleted = true;
    r.version = app.sync.hlc.after(&r.version);
    let seq = catalog::put(&app.db, conn, &r).await?;
    event(
        app,
        conn,
        "package.deleted",
        &r,
        None,
        format!("{} deleted here", r.filename),
    )
    .await?;
    announce(&app.db, conn, None).await?;
    Ok(Some(seq))
}

/// Records a local stage change and withdraws the package here if it no longer qualifies.
pub async fn local_stage(
    app: &App,
    conn: &mut AnyConnection,
    pkg: &PackageRow,
    stage: Stage,
) -> sqlx::Result<Option<i64>> {
    let Some(mut r) = catalog::get(&app.db, conn, &pkg.uuid).await? else {
        return Ok(None);
    };
    let from = r.stage;
    r.stage = stage;
    r.version = app.sync.hlc.after(&r.version);
    let seq = catalog::put(&app.db, conn, &r).await?;
    packages::set_stage(&app.db, conn, pkg.id, stage).await?;
    event(
        app,
        conn,
        "package.stage_changed",
        &r,
        None,
        format!("{}: {} -> {}", r.filename, from.as_str(), stage.as_str()),
    )
    .await?;
    let own = server::get_on(&app.db, conn).await?;
    if !wants(own.stage, &app.sync.own_iss, &r) {
        withdraw(app, conn, pkg, &r).await?;
    }
    announce(&app.db, conn, None).await?;
    Ok(Some(seq))
}

/// Stops holding a package here: its row, its transfer state, its partial file and
/// (once no other package uses it) its content.
async fn drop_holding(app: &App, conn: &mut AnyConnection, pkg: &PackageRow) -> sqlx::Result<()> {
    packages::delete(&app.db, conn, pkg.id).await?;
    transfers::forget_on(&app.db, conn, &pkg.uuid).await?;
    let gc = BlobGc {
        sha256: pkg.sha256.clone(),
    };
    jobs::enqueue(&app.db, conn, &gc, Duration::ZERO).await?;
    let discard = DiscardPartial {
        uuid: pkg.uuid.clone(),
    };
    jobs::enqueue(&app.db, conn, &discard, Duration::ZERO).await?;
    Ok(())
}

async fn withdraw(
    app: &App,
    conn: &mut AnyConnection,
    pkg: &PackageRow,
    r: &Record,
) -> sqlx::Result<()> {
    drop_holding(app, conn, pkg).await?;
    event(
        app,
        conn,
        "package.withdrawn",
        r,
        None,
        format!(
            "{} no longer belongs on this server ({})",
            r.filename,
            r.stage.as_str()
        ),
    )
    .await
}

/// The package row of `r` while its bytes arrive here (Downloading).
fn arriving_row(r: &Record) -> NewPackage<'_> {
    NewPackage {
        uuid: &r.uuid,
        filename: &r.filename,
        file_size: r.file_size,
        sha1: &r.sha1,
        sha256: &r.sha256,
        stage: r.stage,
        status: Status::Downloading,
        created: r.created,
    }
}

/// Starts holding `r` here: a Downloading row and a transfer job.
async fn begin_holding(app: &App, conn: &mut AnyConnection, r: &Record) -> sqlx::Result<()> {
    packages::insert(&app.db, conn, &arriving_row(r)).await?;
    fetch::queue(&app.db, conn, &r.uuid, r.file_size).await?;
    Ok(())
}

/// Makes this server's holdings match the record `r` (already stored in the catalog).
async fn reconcile(
    app: &App,
    conn: &mut AnyConnection,
    r: &Record,
    own_stage: Stage,
    peer: Option<&str>,
) -> sqlx::Result<()> {
    let db = &app.db;
    let held = packages::by_uuid(db, conn, &r.uuid).await?;
    if r.deleted {
        if let Some(p) = held {
            drop_holding(app, conn, &p).await?;
            event(
                app,
                conn,
                "package.deleted",
                r,
                peer,
                format!("{} deleted (change from the network)", r.filename),
            )
            .await?;
        }
        return Ok(());
    }
    if !wants(own_stage, &app.sync.own_iss, r) {
        if let Some(p) = held {
            withdraw(app, conn, &p, r).await?;
        }
        return Ok(());
    }
    if let Some(p) = held {
        if p.stage != r.stage {
            packages::set_stage(db, conn, p.id, r.stage).await?;
            event(
                app,
                conn,
                "package.stage_changed",
                r,
                peer,
                format!(
                    "{}: {} -> {}",
                    r.filename,
                    p.stage.as_str(),
                    r.stage.as_str()
                ),
            )
            .await?;
        }
        return Ok(());
    }
    // Another live package with this filename? The later upload wins.
    for other in catalog::live_by_filename(db, conn, &r.filename).await? {
        if other.uuid == r.uuid {
            continue;
        }
        let (winner, mut loser) = if later_upload(r, &other) {
            (r.clone(), other.clone())
        } else {
            (other.clone(), r.clone())
        };
        loser.deleted = true;
        loser.version = app.sync.hlc.after(&loser.version);
        catalog::put(db, conn, &loser).await?;
        event(
            app,
            conn,
            "package.conflict",
            &winner,
            peer,
            format!(
                "two uploads named {}: the later one ({}) wins, {} is removed",
                winner.filename, winner.uuid, loser.uuid
            ),
        )
        .await?;
        if loser.uuid == r.uuid {
            return Ok(()); // the incoming record lost: nothing to hold
        }
        if let Some(p) = packages::by_uuid(db, conn, &loser.uuid).await? {
            drop_holding(app, conn, &p).await?;
        }
    }
    begin_holding(app, conn, r).await
}

/// After this server's own stage changed: hold what now qualifies, drop what does not.
pub async fn reevaluate_all(app: &App) -> anyhow::Result<()> {
    for known in catalog::all_live(&app.db).await? {
        let mut tx = app.db.begin().await?;
        catalog::lock(&app.db, &mut tx).await?;
        // The stage and the record as they are now, not as listed a moment ago.
        let own_stage = server::get_on(&app.db, &mut tx).await?.stage;
        if let Some(r) = catalog::get(&app.db, &mut tx, &known.uuid).await? {
            reconcile(app, &mut tx, &r, own_stage, None).await?;
        }
        tx.commit().await?;
    }
    app.packages_changed();
    app.wake_jobs();
    Ok(())
}

/// Marks a package whose transfer gave up as Failed (retried later by the reconciler).
pub async fn transfer_failed(app: &App, uuid: &str, reason: &str) -> anyhow::Result<()> {
    let mut tx = app.db.begin().await?;
    if let Some(p) = packages::by_uuid(&app.db, &mut tx, uuid).await?
        && p.status != Status::Public
    {
        packages::set_status(&app.db, &mut tx, uuid, Status::Failed, Some(reason)).await?;
        if let Some(r) = catalog::get(&app.db, &mut tx, uuid).await? {
            event(
                app,
                &mut tx,
                "package.sync_failed",
                &r,
                None,
                format!("{}: {reason}", r.filename),
            )
            .await?;
        }
    }
    tx.commit().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upload(uuid: &str, created_version: &str) -> Record {
        Record {
            uuid: uuid.repeat(32),
            filename: "same.pkg".into(),
            file_size: 1,
            sha1: "0".repeat(40),
            sha256: "0".repeat(64),
            stage: Stage::Prod,
            version: created_version.into(),
            created_version: created_version.into(),
            origin_iss: "f".repeat(32),
            created: 0,
            deleted: false,
            seq: 0,
            available: true,
        }
    }

    #[test]
    fn a_filename_conflict_has_one_winner_whichever_record_arrives_first() {
        // Two nodes of one site (one ISS) minted the same version in one millisecond.
        let v = format!("1700000000000.000000.{}", "f".repeat(32));
        let (a, b) = (upload("a", &v), upload("b", &v));
        assert_ne!(later_upload(&a, &b), later_upload(&b, &a));
        let newer = upload("0", &format!("1700000000000.000001.{}", "f".repeat(32)));
        assert!(later_upload(&newer, &a) && later_upload(&newer, &b));
    }
}
