//! `package.rollout_complete` (issue 8 item 3): raised once per package and stage
//! when the package is Public on every server that should hold it, as far as this
//! server knows: itself, and each registered peer whose stage holds the package's (or
//! that uploaded it), known Public from that peer's catalog (`available`, which a peer
//! bumps when it turns the package Public, so a pull always brings it). Peers' peers
//! are not known here; each server judges the servers it is registered with.
//!
//! Checked when this server turns a package Public and when it hears that a peer did,
//! inside that change's transaction; `rollouts` (insert-ignore) makes it once even
//! with several processes.

use std::collections::HashSet;

use sqlx::AnyConnection;

use crate::app::App;
use crate::db::catalog::{self, Record};
use crate::db::events::{self, NewEvent};
use crate::db::{packages, peers, rollouts, server};
use crate::model::{Stage, Status};

/// Whether what this server knows of peer `iss` holding `r` Public must change, given
/// the peers known to hold it (`holders`): the new value, or `None` when it is known
/// already (a full anti-entropy pull hears every record, and writes nothing for those).
pub fn holding_change(r: &Record, iss: &str, holders: Option<&Vec<String>>) -> Option<bool> {
    let holds = r.available && !r.deleted;
    let known = holders.is_some_and(|h| h.iter().any(|h| h == iss));
    (known != holds).then_some(holds)
}

/// Raises `package.rollout_complete` for `uuid` if it is now Public everywhere it
/// should be and was not raised before for its stage.
pub async fn check(app: &App, conn: &mut AnyConnection, uuid: &str) -> anyhow::Result<()> {
    check_many(app, conn, &[uuid]).await
}

/// `check` for many packages, reading what it needs of them in a few statements.
pub async fn check_many(app: &App, conn: &mut AnyConnection, uuids: &[&str]) -> anyhow::Result<()> {
    let db = &app.db;
    let records = catalog::get_many(db, conn, uuids).await?;
    let live: Vec<&Record> = records.iter().filter(|r| !r.deleted).collect();
    if live.is_empty() {
        return Ok(());
    }
    let me = server::get_on(db, conn).await?;
    let peers = peers::list_on(db, conn).await?;
    let ids: Vec<&str> = live.iter().map(|r| r.uuid.as_str()).collect();
    let public_here: HashSet<String> = packages::by_uuids(db, conn, &ids)
        .await?
        .into_iter()
        .filter(|p| p.status == Status::Public)
        .map(|p| p.uuid)
        .collect();
    let holders = rollouts::holders_many(db, conn, &ids).await?;
    let mut complete = Vec::new();
    for rec in live {
        let should = |stage: Stage, iss: &str| stage.holds(rec.stage) || rec.origin_iss == iss;
        if should(me.stage, &me.iss) && !public_here.contains(&rec.uuid) {
            continue;
        }
        let held = holders
            .get(&rec.uuid)
            .map(Vec::as_slice)
            .unwrap_or_default();
        let mut servers = Some(1);
        for p in &peers {
            let Some(stage) = Stage::parse(&p.stage) else {
                continue;
            };
            if !should(stage, &p.iss) {
                continue;
            }
            if !held.contains(&p.iss) {
                servers = None;
                break;
            }
            servers = servers.map(|n| n + 1);
        }
        let Some(servers) = servers else {
            continue;
        };
        complete.push((rec, servers));
    }
    let pairs: Vec<(&str, &str)> = complete
        .iter()
        .map(|(rec, _)| (rec.uuid.as_str(), rec.stage.as_str()))
        .collect();
    let new = rollouts::mark_complete_many(db, conn, &pairs).await?;
    complete.retain(|(rec, _)| new.contains(&(rec.uuid.clone(), rec.stage.as_str().to_string())));
    let events: Vec<NewEvent> = complete
        .iter()
        .map(|(rec, servers)| NewEvent {
            kind: "package.rollout_complete",
            package_uuid: Some(&rec.uuid),
            filename: Some(&rec.filename),
            peer_iss: None,
            message: format!(
                "{} ({}) is Public on every server that should hold it ({} known here)",
                rec.filename,
                rec.stage.as_str(),
                servers
            ),
        })
        .collect();
    events::record_many(db, conn, &events).await?;
    Ok(())
}
