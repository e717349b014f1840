//! The S3 sweep: multipart uploads (and their staging objects) left behind by a node
//! that died, found through their `uploads/<name>` markers, and collectors' intents
//! left by a crash. A marker is named like its upload, `<node id>.<random>`, so an
//! upload is orphaned exactly when its node is no longer live (the `nodes` heartbeats,
//! see `storage::sweep::live_owners`). Names written by an older ODS,
//! `<random>-<pid>-<host>`, are still recognised: those of a dead process on this
//! host are swept, as they were then.
//!
//! A writer puts its marker (empty) before it creates the multipart upload and
//! overwrites it with the upload id after, so a node killed between the two leaves an
//! empty marker: the sweep then looks the upload up with ListMultipartUploads (one
//! presigned GET, as `copy.rs` presigns UploadPartCopy: object_store cannot list
//! multipart uploads) and aborts what it finds.

use std::collections::HashSet;
use std::io;
use std::time::{Duration, SystemTime};

use futures_util::TryStreamExt;
use object_store::multipart::MultipartStore;
use object_store::path::Path;
use object_store::signer::{SignedUrlOptions, Signer};
use object_store::{ObjectStore, ObjectStoreExt};

use super::{INTENT_TTL, Inner, io_err};

/// Uploads older than this are aborted even when their node still runs (a node's own
/// staging files are swept at the same age on a local store).
const STALE_UPLOAD: Duration = Duration::from_secs(24 * 3600);

/// Who started the upload named `name`.
#[derive(Debug, PartialEq, Eq)]
enum Owner<'a> {
    /// `<node id>.<random>`: a node of the site.
    Node(&'a str),
    /// `<random>-<pid>-<host>`, as an older ODS named its uploads.
    Process { pid: Option<u32>, host: &'a str },
}

fn owner(name: &str) -> Owner<'_> {
    if let Some((node, random)) = name.rsplit_once('.')
        && !node.is_empty()
        && random.len() == 32
        && random.bytes().all(|b| b.is_ascii_hexdigit())
    {
        return Owner::Node(node);
    }
    let mut parts = name.splitn(3, '-').skip(1);
    Owner::Process {
        pid: parts.next().and_then(|p| p.parse().ok()),
        host: parts.next().unwrap_or_default(),
    }
}

/// Whether the upload `name`, whose marker is `age` old, belongs to nobody.
fn orphaned(name: &str, age: Duration, live: &HashSet<String>, here: &str) -> bool {
    if age > STALE_UPLOAD {
        return true;
    }
    match owner(name) {
        Owner::Node(node) => !live.contains(node),
        // Another host's process cannot be checked: only its age counts.
        Owner::Process { pid: Some(p), host } if host == here => {
            p != std::process::id() && !crate::node::pid_alive(p)
        }
        Owner::Process { .. } => false,
    }
}

/// This host's name, as the older upload names carry it.
fn host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_default()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '.')
        .collect()
}

pub(super) async fn sweep(i: &Inner, live: &HashSet<String>) -> io::Result<usize> {
    let now = SystemTime::now();
    let here = host();
    let markers: Vec<_> =
        i.s3.list(Some(&i.key("uploads", "")))
            .try_collect()
            .await
            .map_err(|e| io_err("LIST", e))?;
    let mut removed = 0;
    for m in markers {
        let name = m.location.filename().unwrap_or_default().to_string();
        let age = now
            .duration_since(m.last_modified.into())
            .unwrap_or_default();
        if !orphaned(&name, age, live, &here) {
            continue;
        }
        let staged = i.key("staging", &name);
        let id = match i.s3.get(&m.location).await {
            Ok(got) => got.bytes().await.map_err(|e| io_err("GET", e))?,
            Err(object_store::Error::NotFound { .. }) => continue, // swept meanwhile
            Err(e) => return Err(io_err("GET", e)),
        };
        let ids = if id.is_empty() {
            // Killed before it recorded the id: ask the bucket. A server without
            // ListMultipartUploads (s3s-fs 0.14 answers NotImplemented) leaves such an
            // upload to the bucket's AbortIncompleteMultipartUpload rule (README); the
            // marker goes anyway, there is nothing more the sweep can do with it.
            match open_uploads(i, &staged).await {
                Ok(ids) => ids,
                Err(e) => {
                    tracing::debug!(%name, "listing the multipart uploads of a dead node: {e}");
                    Vec::new()
                }
            }
        } else {
            vec![String::from_utf8_lossy(&id).into_owned()]
        };
        for id in ids {
            if let Err(e) = i.s3.abort_multipart(&staged, &id).await {
                tracing::debug!(%name, "aborting a dead node's multipart upload: {e}");
            }
        }
        // One that cannot be removed now is tried again by the next sweep.
        let gone = async {
            i.delete(&staged).await?;
            i.delete(&m.location).await
        };
        match gone.await {
            Ok(()) => removed += 1,
            Err(e) => tracing::warn!(%name, "removing a dead node's upload: {e}"),
        }
    }
    let intents: Vec<_> =
        i.s3.list(Some(&i.key("gc", "")))
            .try_collect()
            .await
            .map_err(|e| io_err("LIST", e))?;
    for m in intents {
        if now
            .duration_since(m.last_modified.into())
            .unwrap_or_default()
            > 2 * INTENT_TTL
            && let Err(e) = i.delete(&m.location).await
        {
            tracing::warn!("removing a dead collector's intent: {e}");
        }
    }
    Ok(removed)
}

/// The ids of the multipart uploads open on exactly `key` (ListMultipartUploads with
/// the key as prefix; the first page is enough, a key has a handful at most).
async fn open_uploads(i: &Inner, key: &Path) -> io::Result<Vec<String>> {
    let bad = |e: String| io::Error::other(format!("S3 ListMultipartUploads: {e}"));
    let opts = SignedUrlOptions::new().with_query([
        ("uploads", String::new()),
        ("prefix", key.as_ref().to_string()),
    ]);
    let url =
        i.s3.signed_url_opts(
            reqwest::Method::GET,
            &Path::from(""),
            Duration::from_secs(300),
            &opts,
        )
        .await
        .map_err(|e| io_err("presign", e))?;
    let resp = i
        .http
        .get(url)
        .send()
        .await
        .map_err(|e| bad(e.without_url().to_string()))?;
    let status = resp.status();
    let body = resp
        .text()
        .await
        .map_err(|e| bad(e.without_url().to_string()))?;
    if !status.is_success() || !body.contains("<ListMultipartUploadsResult") {
        return Err(bad(format!(
            "{status}: {}",
            body.chars().take(300).collect::<String>()
        )));
    }
    Ok(uploads_of(&body, key.as_ref()))
}

/// The `UploadId`s of the `<Upload>` entries of a ListMultipartUploads answer whose
/// `Key` is `key` (keys here are plain: letters, digits, `-`, `_`, `.`, `/`).
fn uploads_of(body: &str, key: &str) -> Vec<String> {
    let field = |s: &str, tag: &str| {
        s.split_once(&format!("<{tag}>"))
            .and_then(|(_, rest)| rest.split_once(&format!("</{tag}>")))
            .map(|(v, _)| v.to_string())
    };
    body.split("<Upload>")
        .skip(1)
        .filter_map(|u| {
            let u = u.split("</Upload>").next()?;
            (field(u, "Key")? == key).then(|| field(u, "UploadId"))?
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upload_names_tell_their_owner() {
        let random = "0123456789abcdef0123456789abcdef";
        assert_eq!(
            owner(&format!("node1-42-0badcafe.{random}")),
            Owner::Node("node1-42-0badcafe")
        );
        assert_eq!(
            owner(&format!("a.b-c-42-0badcafe.{random}")),
            Owner::Node("a.b-c-42-0badcafe"),
            "node names may hold dots and dashes"
        );
        assert_eq!(
            owner("0123456789ab-42-my.host.example"),
            Owner::Process {
                pid: Some(42),
                host: "my.host.example"
            },
            "an older name with a dotted host"
        );
        let live: HashSet<String> = ["node1-42-0badcafe".to_string()].into();
        let young = Duration::from_secs(5);
        assert!(!orphaned(
            &format!("node1-42-0badcafe.{random}"),
            young,
            &live,
            "h"
        ));
        assert!(orphaned(
            &format!("node2-43-0badcafe.{random}"),
            young,
            &live,
            "h"
        ));
        assert!(orphaned(
            &format!("node1-42-0badcafe.{random}"),
            STALE_UPLOAD * 2,
            &live,
            "h"
        ));
        assert!(orphaned("0123456789ab-4294967294-h", young, &live, "h"));
        assert!(!orphaned(
            "0123456789ab-4294967294-other",
            young,
            &live,
            "h"
        ));
        assert!(
            !orphaned("0123456789ab-1-h", young, &live, "h"),
            "pid 1 runs"
        );
    }

    #[test]
    fn listed_uploads_are_matched_by_whole_key() {
        let body = "<?xml version=\"1.0\"?><ListMultipartUploadsResult><Bucket>b</Bucket>\
            <Upload><Key>p/staging/n.1</Key><UploadId>id-1</UploadId></Upload>\
            <Upload><Key>p/staging/n.12</Key><UploadId>id-2</UploadId></Upload>\
            <Upload><Key>p/staging/n.1</Key><UploadId>id-3</UploadId></Upload>\
            </ListMultipartUploadsResult>";
        assert_eq!(uploads_of(body, "p/staging/n.1"), ["id-1", "id-3"]);
        assert!(uploads_of(body, "p/staging/x").is_empty());
    }
}
