//! Applies what peers say of their catalogs (a page of a pull, or a push): checks each
//! record, writes them a group per transaction, and makes this server's holdings
//! match. New records that only start a holding here (the bulk of a new server's first
//! pull) are written set-wise; every other record takes `reconcile`, one by one.

use std::collections::{HashMap, HashSet};

use sqlx::AnyConnection;

use super::{announce, arriving_row, changed, fetch, hurry, reconcile, rollout, wants};
use crate::app::App;
use crate::db::catalog::{self, Record};
use crate::db::packages::{self, NewPackage};
use crate::db::peers::PeerRow;
use crate::db::{rollouts, server};
use crate::model::Stage;

/// Why a record from a peer cannot be applied, if it cannot.
fn invalid(r: &Record) -> Option<String> {
    let hex = |s: &str, n: usize| {
        s.len() == n
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    if !hex(&r.uuid, 32) || !hex(&r.origin_iss, 32) || !hex(&r.sha256, 64) || !hex(&r.sha1, 40) {
        return Some("malformed uuid, ISS or digest".into());
    }
    if r.file_size < 0 {
        return Some("negative size".into());
    }
    if let Err(why) = crate::filenames::accept(&r.filename) {
        return Some(why);
    }
    if !crate::mesh::hlc::acceptable(&r.version)
        || crate::mesh::hlc::parse(&r.created_version).is_none()
    {
        return Some(format!(
            "version {:?} is malformed or too far in the future (check the clocks)",
            r.version
        ));
    }
    None
}

/// Records applied per transaction by `remote_many`.
const GROUP: usize = 100;

/// Applies records heard from `from` (a page of its catalog, or a push); returns how
/// many changed the catalog here. The records of a group are written in one
/// transaction (a group commit: a new server pulling thousands of records pays one
/// commit per `GROUP`, and the fetches they queue can be claimed together). A record
/// that cannot be applied is logged and skipped, so it cannot stall the stream of
/// records behind it.
pub async fn remote_many(app: &App, incoming: &[Record], from: &PeerRow) -> anyhow::Result<usize> {
    let mut valid = Vec::with_capacity(incoming.len());
    for r in incoming {
        if let Some(why) = invalid(r) {
            tracing::warn!(peer = %from.name, uuid = %r.uuid, why, "skipping a record from a peer");
            continue;
        }
        // A peer's filename is held to the same rule as an upload's: stored in NFC.
        let r = match crate::filenames::accept(&r.filename) {
            Ok(nfc) if nfc != r.filename => Record {
                filename: nfc,
                ..r.clone()
            },
            _ => r.clone(),
        };
        app.sync.hlc.observe(&r.version);
        valid.push(r);
    }
    let mut applied = 0;
    for group in valid.chunks(GROUP) {
        applied += apply_group(app, group, from).await?;
    }
    Ok(applied)
}

/// Whether `incoming` is newer than what is known of its package.
fn newer(known: &Option<Record>, incoming: &Record) -> bool {
    known.as_ref().is_none_or(|l| l.version < incoming.version)
}

async fn apply_group(app: &App, group: &[Record], from: &PeerRow) -> anyhow::Result<usize> {
    let db = &app.db;
    // Cheap checks first, without the lock: most records heard are ones we have.
    let mut todo = Vec::new();
    let mut waiting = Vec::new();
    {
        let mut conn = db.reader().acquire().await?;
        let uuids: Vec<&str> = group.iter().map(|r| r.uuid.as_str()).collect();
        let known: HashMap<String, Record> = catalog::get_many(db, &mut conn, &uuids)
            .await?
            .into_iter()
            .map(|r| (r.uuid.clone(), r))
            .collect();
        let holders = rollouts::holders_many(db, &mut conn, &uuids).await?;
        for r in group {
            let is_newer = known.get(&r.uuid).is_none_or(|l| l.version < r.version);
            let holding = rollout::holding_change(r, &from.iss, holders.get(&r.uuid));
            if !is_newer && r.available {
                // Nothing new, but a source appeared: a waiting transfer can go now.
                waiting.push(r.uuid.as_str());
            }
            if is_newer || holding.is_some() {
                todo.push((r, is_newer, holding));
            }
        }
    }
    for uuid in waiting {
        hurry(app, uuid).await?;
    }
    if todo.is_empty() {
        return Ok(0);
    }
    let mut tx = db.begin().await?;
    catalog::lock(db, &mut tx).await?;
    let own_stage = server::get_on(db, &mut tx).await?.stage;
    let fresh = fresh_holdings(app, &mut tx, group, &todo, own_stage).await?;
    let mut seq = begin_holding_many(app, &mut tx, &fresh).await?;
    let mut applied = fresh.len();
    // The sending peer's holdings as the group last says them, written in one go.
    let holdings: HashMap<&str, bool> = todo
        .iter()
        .filter_map(|(r, _, h)| h.map(|h| (r.uuid.as_str(), h)))
        .collect();
    let changes = |holds: bool| -> Vec<&str> {
        let mut v: Vec<&str> = holdings
            .iter()
            .filter(|(_, h)| **h == holds)
            .map(|(u, _)| *u)
            .collect();
        v.sort_unstable();
        v
    };
    let (held, dropped) = (changes(true), changes(false));
    rollouts::set_holdings(db, &mut tx, &from.iss, &held, &dropped).await?;
    let held_changed: Vec<&str> = held.iter().chain(&dropped).copied().collect();
    for (incoming, is_newer, _) in todo {
        if fresh.iter().any(|r| r.uuid == incoming.uuid) {
            continue;
        }
        // Decide again under the lock: another writer may have got there first.
        if !is_newer || !newer(&catalog::get(db, &mut tx, &incoming.uuid).await?, incoming) {
            continue;
        }
        let mut r = incoming.clone();
        r.available = false;
        seq = seq.max(catalog::put(db, &mut tx, &r).await?);
        reconcile(app, &mut tx, &r, own_stage, Some(&from.iss)).await?;
        applied += 1;
    }
    // The rollouts a changed holding may complete, judged on the records as now stored.
    rollout::check_many(app, &mut tx, &held_changed).await?;
    if applied > 0 {
        announce(db, &mut tx, Some(&from.iss)).await?;
    }
    tx.commit().await?;
    if applied > 0 {
        changed(app, seq);
    }
    Ok(applied)
}

/// The records of `todo` that only start a holding here: new to this server (also under
/// the lock), live, wanted by its stage, alone with their uuid in the group, and with a
/// filename no other record of the group and no live record carries. `reconcile` would do for each exactly what
/// `begin_holding_many` does for them together; every other record takes the general
/// way.
async fn fresh_holdings(
    app: &App,
    conn: &mut AnyConnection,
    group: &[Record],
    todo: &[(&Record, bool, Option<bool>)],
    own_stage: Stage,
) -> sqlx::Result<Vec<Record>> {
    let db = &app.db;
    let candidates: Vec<&Record> = todo
        .iter()
        .filter(|(r, is_newer, _)| {
            *is_newer && !r.deleted && wants(own_stage, &app.sync.own_iss, r)
        })
        .map(|(r, _, _)| *r)
        .collect();
    if candidates.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<&str> = candidates.iter().map(|r| r.uuid.as_str()).collect();
    let mut known: HashSet<String> = catalog::get_many(db, conn, &ids)
        .await?
        .into_iter()
        .map(|r| r.uuid)
        .collect();
    known.extend(
        packages::by_uuids(db, conn, &ids)
            .await?
            .into_iter()
            .map(|p| p.uuid),
    );
    let names: Vec<&str> = candidates.iter().map(|r| r.filename.as_str()).collect();
    let live = catalog::live_filenames(db, conn, &names).await?;
    // A filename or a uuid twice in the group: those records take the general way.
    let mut named: HashMap<&str, usize> = HashMap::new();
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for r in group {
        *named.entry(r.filename.as_str()).or_default() += 1;
        *seen.entry(r.uuid.as_str()).or_default() += 1;
    }
    Ok(candidates
        .into_iter()
        .filter(|r| {
            !known.contains(&r.uuid)
                && !live.contains(&r.filename)
                && named[r.filename.as_str()] == 1
                && seen[r.uuid.as_str()] == 1
        })
        .map(|r| Record {
            available: false,
            ..r.clone()
        })
        .collect())
}

/// Stores new records and starts holding each (a Downloading row and a fetch job), a
/// statement per step for all of them; returns the highest change number (0 when
/// there are none).
async fn begin_holding_many(
    app: &App,
    conn: &mut AnyConnection,
    recs: &[Record],
) -> sqlx::Result<i64> {
    if recs.is_empty() {
        return Ok(0);
    }
    let db = &app.db;
    let refs: Vec<&Record> = recs.iter().collect();
    let seq = catalog::insert_new_many(db, conn, &refs).await?;
    let rows: Vec<NewPackage> = recs.iter().map(arriving_row).collect();
    packages::insert_many(db, conn, &rows).await?;
    let fetches: Vec<(&str, i64)> = recs
        .iter()
        .map(|r| (r.uuid.as_str(), r.file_size))
        .collect();
    fetch::queue_many(db, conn, &fetches).await?;
    Ok(seq)
}
