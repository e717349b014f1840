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

use sqlx::AnyConnection;

use crate::app::App;
use crate::db::catalog::{self, Record};
use crate::db::events::{self, NewEvent};
use crate::db::{packages, peers, rollouts, server};
use crate::model::{Stage, Status};

/// Whether what this server knows of peer `iss` holding `r` Public must change: the new
/// value, or `None` when it is known already (a full anti-entropy pull hears every
/// record, and writes nothing for those).
pub async fn holding_change(
    app: &App,
    conn: &mut AnyConnection,
    r: &Record,
    iss: &str,
) -> anyhow::Result<Option<bool>> {
    let holds = r.available && !r.deleted;
    let known = rollouts::holders(&app.db, conn, &r.uuid)
        .await?
        .iter()
        .any(|h| h == iss);
    Ok((known != holds).then_some(holds))
}

/// Remembers whether peer `iss` holds `uuid` Public, then checks the rollout, inside
/// the caller's transaction.
pub async fn set_holding(
    app: &App,
    conn: &mut AnyConnection,
    uuid: &str,
    iss: &str,
    holds: bool,
) -> anyhow::Result<()> {
    rollouts::set_holding(&app.db, conn, iss, uuid, holds).await?;
    check(app, conn, uuid).await
}

/// Raises `package.rollout_complete` for `uuid` if it is now Public everywhere it
/// should be and was not raised before for its stage.
pub async fn check(app: &App, conn: &mut AnyConnection, uuid: &str) -> anyhow::Result<()> {
    let db = &app.db;
    let Some(rec) = catalog::get(db, conn, uuid).await? else {
        return Ok(());
    };
    if rec.deleted {
        return Ok(());
    }
    let me = server::get_on(db, conn).await?;
    let should = |stage: Stage, iss: &str| stage.holds(rec.stage) || rec.origin_iss == iss;
    if should(me.stage, &me.iss) {
        let here = packages::by_uuid(db, conn, uuid).await?;
        if here.is_none_or(|p| p.status != Status::Public) {
            return Ok(());
        }
    }
    let holders = rollouts::holders(db, conn, uuid).await?;
    let mut servers = 1;
    for p in peers::list_on(db, conn).await? {
        let Some(stage) = Stage::parse(&p.stage) else {
            continue;
        };
        if !should(stage, &p.iss) {
            continue;
        }
        if !holders.contains(&p.iss) {
            return Ok(());
        }
        servers += 1;
    }
    if !rollouts::mark_complete(db, conn, uuid, rec.stage.as_str()).await? {
        return Ok(());
    }
    events::record(
        db,
        conn,
        NewEvent {
            kind: "package.rollout_complete",
            package_uuid: Some(uuid),
            filename: Some(&rec.filename),
            peer_iss: None,
            message: format!(
                "{} ({}) is Public on every server that should hold it ({} known here)",
                rec.filename,
                rec.stage.as_str(),
                servers
            ),
        },
    )
    .await?;
    Ok(())
}
