//! The package-record upsert of JAMF.md §3, keyed by fileName: query, create with the
//! required fields, nothing when the hash matches, GET + PUT of the whole object with
//! only the hash fields changed (never the read-only ones), and `DUPLICATE_FIELD` on
//! create answered by querying again and updating. Also the checksum a record carries
//! (computed once per content, off the upload path) and whether a package may have a
//! record yet.

use futures_util::StreamExt;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sha3::{Digest, Sha3_512};

use super::client::{Client, q, rsql_eq};
use crate::app::App;
use crate::db::{self, jamf::InstanceRow, packages::PackageRow};
use crate::jobs::Run;
use crate::model::{Stage, Status};
use crate::packages::digests::Digests;
use crate::storage::BlobStore;

/// Fields Jamf Pro sets itself: never sent back.
const READ_ONLY: [&str; 4] = ["id", "indexed", "cloudTransferStatus", "size"];

/// What an upsert did.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    Created(String),
    Updated(String),
    Unchanged(String),
}

impl Outcome {
    pub fn record_id(&self) -> &str {
        match self {
            Outcome::Created(id) | Outcome::Updated(id) | Outcome::Unchanged(id) => id,
        }
    }
}

/// The package's checksum of `hash_type` (`SHA_512`, `MD5` or `SHA3_512`), lowercase
/// hex, computing and storing it the first time it is needed.
pub async fn checksum(app: &App, pkg: &PackageRow, hash_type: &str) -> anyhow::Result<String> {
    if hash_type == "SHA3_512" {
        if let Some(v) = db::jamf::sha3(&app.db, &pkg.sha256).await? {
            return Ok(v);
        }
        let v = sha3_of(app.store.as_ref(), &pkg.sha256, pkg.file_size).await?;
        db::jamf::set_sha3(&app.db, &pkg.sha256, &v).await?;
        return Ok(v);
    }
    let pick = |b: &db::packages::BlobRow| {
        if hash_type == "MD5" {
            b.md5.clone()
        } else {
            b.sha512.clone()
        }
    };
    let blob = db::packages::blob(&app.db, &pkg.sha256).await?;
    if let Some(v) = blob.as_ref().and_then(pick) {
        return Ok(v);
    }
    Digests {
        sha256: pkg.sha256.clone(),
    }
    .run(app.clone())
    .await?;
    db::packages::blob(&app.db, &pkg.sha256)
        .await?
        .as_ref()
        .and_then(pick)
        .ok_or_else(|| anyhow::anyhow!("the package's content is gone"))
}

async fn sha3_of(store: &dyn BlobStore, sha256: &str, size: i64) -> anyhow::Result<String> {
    let mut stream = store.read(sha256, 0, size.max(0) as u64).await?;
    let (tx, mut rx) = tokio::sync::mpsc::channel::<bytes::Bytes>(4);
    let hasher = tokio::task::spawn_blocking(move || {
        let mut h = Sha3_512::new();
        while let Some(b) = rx.blocking_recv() {
            h.update(&b);
        }
        hex::encode(h.finalize())
    });
    while let Some(piece) = stream.next().await {
        if tx.send(piece?).await.is_err() {
            break;
        }
    }
    drop(tx);
    Ok(hasher.await?)
}

/// The record's packageName: the instance's template with `{filename}` and `{stem}`.
pub fn package_name(inst: &InstanceRow, filename: &str) -> String {
    let stem = filename
        .rsplit_once('.')
        .map(|(s, _)| s)
        .filter(|s| !s.is_empty())
        .unwrap_or(filename);
    inst.package_name
        .replace("{filename}", filename)
        .replace("{stem}", stem)
}

/// Why `pkg` may not have a record on `inst` yet, or `None` when it may: it must be
/// Public here, of the instance's stage, and, with `wait_all`, Public on every
/// registered server of that stage that can be asked.
pub async fn not_ready(
    app: &App,
    inst: &InstanceRow,
    pkg: &PackageRow,
) -> anyhow::Result<Option<String>> {
    if pkg.stage != inst.stage {
        return Ok(Some(format!(
            "the package is {:?}, the instance takes {:?}",
            pkg.stage, inst.stage
        )));
    }
    if pkg.status != Status::Public {
        return Ok(Some("the package is not verified here yet".into()));
    }
    if !inst.wait_all {
        return Ok(None);
    }
    let mut waiting = Vec::new();
    for peer in db::peers::list(&app.db).await? {
        if Stage::parse(&peer.stage) != Some(inst.stage) {
            continue;
        }
        let Some(link) = crate::peers::client::Link::of(app, &peer)? else {
            continue; // firewalled: it cannot be asked (see the README)
        };
        let path = format!("/api/ods/packages/{}/manifest", pkg.uuid);
        let public = match crate::peers::client::call(
            app,
            &link,
            Method::GET,
            &path,
            None,
            std::time::Duration::from_secs(15),
        )
        .await
        {
            Ok(r) => r.status().is_success(),
            Err(_) => false,
        };
        if !public {
            waiting.push(peer.name.clone());
        }
    }
    Ok((!waiting.is_empty()).then(|| {
        format!(
            "waiting until the package is Public on every {:?} server (not yet: {})",
            inst.stage,
            waiting.join(", ")
        )
    }))
}

fn ensure(answer: &super::client::Answer, ok: &[StatusCode], what: &str) -> anyhow::Result<()> {
    if ok.contains(&answer.status) {
        Ok(())
    } else {
        anyhow::bail!("{what}: {}", answer.describe())
    }
}

/// The records whose `field` equals `value` (the first page is enough: the key is unique).
async fn query(c: &mut Client, field: &str, value: &str) -> anyhow::Result<Vec<Value>> {
    let path = format!(
        "/api/v1/packages?page=0&page-size=200&sort={}&filter={}",
        q("id:asc"),
        q(&rsql_eq(field, value))
    );
    let a = c.call(Method::GET, &path, None).await?;
    ensure(&a, &[StatusCode::OK], "querying package records")?;
    Ok(a.body["results"].as_array().cloned().unwrap_or_default())
}

fn id_of(record: &Value) -> Option<String> {
    match &record["id"] {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn hash_matches(record: &Value, hash_type: &str, hash_value: &str) -> bool {
    record["hashType"].as_str() == Some(hash_type)
        && record["hashValue"]
            .as_str()
            .is_some_and(|v| v.eq_ignore_ascii_case(hash_value))
}

/// Upserts the record of `filename` with this checksum.
pub async fn upsert(
    c: &mut Client,
    inst: &InstanceRow,
    filename: &str,
    hash_type: &str,
    hash_value: &str,
) -> anyhow::Result<Outcome> {
    let found = query(c, "fileName", filename).await?;
    if let Some(record) = found.first() {
        return update(c, record, hash_type, hash_value).await;
    }
    let name = package_name(inst, filename);
    let body = json!({
        "packageName": name,
        "fileName": filename,
        "categoryId": "-1",
        "priority": 10,
        "fillUserTemplate": false,
        "rebootRequired": false,
        "osInstall": false,
        "suppressUpdates": false,
        "suppressFromDock": false,
        "suppressEula": false,
        "suppressRegistration": false,
        "hashType": hash_type,
        "hashValue": hash_value,
    });
    let a = c
        .call(Method::POST, "/api/v1/packages", Some(&body))
        .await?;
    if a.status == StatusCode::CREATED || a.status == StatusCode::OK {
        let id = id_of(&a.body)
            .ok_or_else(|| anyhow::anyhow!("Jamf Pro created a record without an id"))?;
        return Ok(Outcome::Created(id));
    }
    if a.status == StatusCode::BAD_REQUEST && a.error_code() == Some("DUPLICATE_FIELD") {
        // Someone else created it meanwhile, or a record has our packageName.
        let mut again = query(c, "fileName", filename).await?;
        if again.is_empty() {
            again = query(c, "packageName", &name).await?;
        }
        if let Some(record) = again.first() {
            return update(c, record, hash_type, hash_value).await;
        }
    }
    anyhow::bail!("creating the package record: {}", a.describe())
}

async fn update(
    c: &mut Client,
    listed: &Value,
    hash_type: &str,
    hash_value: &str,
) -> anyhow::Result<Outcome> {
    let id = id_of(listed).ok_or_else(|| anyhow::anyhow!("a package record without an id"))?;
    if hash_matches(listed, hash_type, hash_value) {
        return Ok(Outcome::Unchanged(id));
    }
    let path = format!("/api/v1/packages/{}", q(&id));
    let a = c.call(Method::GET, &path, None).await?;
    ensure(&a, &[StatusCode::OK], "reading the package record")?;
    let mut record = a.body;
    let Some(obj) = record.as_object_mut() else {
        anyhow::bail!("the package record is not a JSON object");
    };
    for f in READ_ONLY {
        obj.remove(f);
    }
    obj.insert("hashType".into(), json!(hash_type));
    obj.insert("hashValue".into(), json!(hash_value));
    let a = c.call(Method::PUT, &path, Some(&record)).await?;
    ensure(
        &a,
        &[StatusCode::OK, StatusCode::CREATED, StatusCode::ACCEPTED],
        "updating the package record",
    )?;
    Ok(Outcome::Updated(id))
}
