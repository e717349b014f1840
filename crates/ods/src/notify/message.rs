//! What an event says to a subscriber: the Standard Webhooks body
//! `{"type", "timestamp", "data"}`, where `data` carries the event's own fields, the
//! package as the admin API shows it (`packages::view::Package`, null when the event
//! is not about a package or the package is gone) and this server (name, iss, url).
//! Built once, when the event is fanned out, so every retry sends the same bytes.

use serde::Serialize;
use sqlx::AnyConnection;

use crate::app::App;
use crate::db::{self, events::EventRow};
use crate::packages::view::Package;

#[derive(Debug, Serialize)]
pub struct Body {
    #[serde(rename = "type")]
    pub kind: String,
    /// RFC 3339, UTC.
    pub timestamp: String,
    pub data: Data,
}

#[derive(Debug, Serialize)]
pub struct Data {
    /// The event's id in `GET /api/admin/events` (null for `ods.test`).
    pub event_id: Option<i64>,
    pub message: Option<String>,
    pub filename: Option<String>,
    pub package_uuid: Option<String>,
    pub package: Option<Package>,
    /// The peer the event is about, if any.
    pub peer_iss: Option<String>,
    pub server: ServerInfo,
}

#[derive(Debug, Clone, Serialize)]
pub struct ServerInfo {
    pub name: String,
    pub iss: String,
    pub url: Option<String>,
}

/// RFC 3339 of Unix seconds.
pub fn rfc3339(unix: i64) -> String {
    format!("{}Z", crate::model::iso_seconds(unix))
}

pub async fn server_info(app: &App, conn: &mut AnyConnection) -> sqlx::Result<ServerInfo> {
    let s = db::server::get_on(&app.db, conn).await?;
    Ok(ServerInfo {
        name: s.name,
        iss: s.iss,
        url: s.url,
    })
}

/// The body of the message for event `e`, read on `conn`.
pub async fn for_event(
    app: &App,
    conn: &mut AnyConnection,
    server: &ServerInfo,
    e: &EventRow,
) -> sqlx::Result<Body> {
    let package = match &e.package_uuid {
        Some(uuid) => match db::packages::by_uuid(&app.db, conn, uuid).await? {
            Some(p) => {
                // Progress counts verified chunks of a transfer still running.
                let done = db::transfers::counts(&app.db).await?.get(&p.uuid).copied();
                Some(crate::packages::view::package(&p, done))
            }
            None => None,
        },
        None => None,
    };
    Ok(Body {
        kind: e.kind.clone(),
        timestamp: rfc3339(e.created),
        data: Data {
            event_id: Some(e.id),
            message: e.message.clone(),
            filename: e.filename.clone(),
            package_uuid: e.package_uuid.clone(),
            package,
            peer_iss: e.peer_iss.clone(),
            server: server.clone(),
        },
    })
}

/// The body of an `ods.test` message.
pub fn test(server: &ServerInfo) -> Body {
    Body {
        kind: "ods.test".into(),
        timestamp: rfc3339(crate::model::now_unix()),
        data: Data {
            event_id: None,
            message: Some("a test message sent from the admin API".into()),
            filename: None,
            package_uuid: None,
            package: None,
            peer_iss: None,
            server: server.clone(),
        },
    }
}
