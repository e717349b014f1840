//! The OpenAPI document generated from the code: it matches the checked-in snapshot
//! (`UPDATE_SNAPSHOT=1` rewrites it, so an API change shows in review), it is complete
//! (references resolve, operation ids are unique, path parameters are described,
//! security is declared), and every documented operation is routed by a real server,
//! which serves the same document at /api/openapi.json.
mod common;

use std::collections::BTreeSet;
use std::path::PathBuf;

use serde_json::Value;

const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

fn generated() -> Value {
    serde_json::to_value(ods::http::document("CasperShare")).unwrap()
}

fn snapshot_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/snapshots/openapi.json")
}

/// (METHOD, path) of every operation in the document.
fn operations(doc: &Value) -> BTreeSet<(String, String)> {
    let paths = doc["paths"].as_object().expect("the document has paths");
    paths
        .iter()
        .flat_map(|(path, item)| {
            METHODS
                .iter()
                .filter(|m| item.get(**m).is_some())
                .map(|m| (m.to_ascii_uppercase(), path.clone()))
        })
        .collect()
}

#[test]
fn document_matches_the_snapshot() {
    let text = ods::http::document("CasperShare").to_pretty_json().unwrap() + "\n";
    let path = snapshot_path();
    if std::env::var("UPDATE_SNAPSHOT").is_ok_and(|v| v == "1") {
        std::fs::write(&path, &text).unwrap();
        return;
    }
    let want = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        want == text,
        "the generated OpenAPI document differs from {}; if the API change is meant, \
         run UPDATE_SNAPSHOT=1 cargo nextest run --test openapi and review the diff",
        path.display()
    );
}

/// Every `$ref` of the document points at something in it.
#[test]
fn every_reference_resolves() {
    fn walk(v: &Value, doc: &Value, bad: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                if let Some(Value::String(r)) = m.get("$ref") {
                    let found = r
                        .strip_prefix('#')
                        .and_then(|pointer| doc.pointer(pointer))
                        .is_some();
                    if !found {
                        bad.push(r.clone());
                    }
                }
                m.values().for_each(|x| walk(x, doc, bad));
            }
            Value::Array(a) => a.iter().for_each(|x| walk(x, doc, bad)),
            _ => {}
        }
    }
    let doc = generated();
    let mut bad = Vec::new();
    walk(&doc, &doc, &mut bad);
    assert!(bad.is_empty(), "unresolved $ref: {bad:?}");
}

/// The admin API needs Basic or Bearer auth and the peer API its signature; each path
/// parameter is described; each operation has a unique id and documented responses.
#[test]
fn operations_are_complete() {
    let doc = generated();
    assert_eq!(doc["openapi"], "3.1.0");
    let schemes = &doc["components"]["securitySchemes"];
    assert_eq!(schemes["basicAuth"]["scheme"], "basic");
    assert_eq!(schemes["bearerAuth"]["scheme"], "bearer");
    assert_eq!(schemes["peerSignature"]["in"], "header");
    let global: BTreeSet<String> = doc["security"]
        .as_array()
        .expect("a global security requirement")
        .iter()
        .flat_map(|r| r.as_object().into_iter().flat_map(|o| o.keys().cloned()))
        .collect();
    assert_eq!(
        global,
        BTreeSet::from(["basicAuth".into(), "bearerAuth".into()])
    );
    let error = &doc["components"]["schemas"]["Error"]["properties"]["error"];
    assert!(
        error["properties"]["code"].is_object() && error["properties"]["message"].is_object(),
        "{error}"
    );

    let mut ids = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in METHODS.iter().filter(|m| item.get(**m).is_some()) {
            let op = &item[*method];
            let id = op["operationId"].as_str().unwrap_or_default();
            assert!(
                ids.insert(id.to_string()),
                "{method} {path}: operationId {id:?} missing or repeated"
            );
            let responses = op["responses"].as_object();
            assert!(
                responses.is_some_and(|r| !r.is_empty()),
                "{method} {path}: no responses"
            );
            if path.starts_with("/api/admin/") {
                assert!(
                    op.get("security").is_none(),
                    "{method} {path} must not override the admin auth"
                );
                for status in ["401", "403", "429", "500"] {
                    assert!(
                        responses.unwrap().contains_key(status),
                        "{method} {path}: {status} undocumented"
                    );
                }
            }
            if path.starts_with("/api/ods/") {
                assert_eq!(
                    op["security"],
                    serde_json::json!([{"peerSignature": []}]),
                    "{method} {path}"
                );
                assert!(responses.unwrap().contains_key("401"), "{method} {path}");
            }
            let params: Vec<&Value> = [&item["parameters"], &op["parameters"]]
                .into_iter()
                .filter_map(Value::as_array)
                .flatten()
                .collect();
            for name in path
                .split('/')
                .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
            {
                assert!(
                    params
                        .iter()
                        .any(|p| p["in"] == "path" && p["name"] == name && p["required"] == true),
                    "{method} {path}: path parameter {name} is not described"
                );
            }
        }
    }
    // Downloads, as the seed and Jamf use them.
    let ops = operations(&doc);
    for path in ["/share/{filename}", "/CasperShare/Packages/{filename}"] {
        for method in ["GET", "HEAD"] {
            assert!(
                ops.contains(&(method.into(), path.into())),
                "{method} {path}"
            );
            let op = &doc["paths"][path][method.to_ascii_lowercase()];
            for status in [
                "200", "206", "304", "400", "401", "404", "412", "416", "429",
            ] {
                assert!(
                    op["responses"].get(status).is_some(),
                    "{method} {path} {status}"
                );
            }
        }
    }
}

/// A concrete path for a templated one.
fn concrete(path: &str) -> String {
    path.split('/')
        .map(
            |s| match s.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                Some("uuid") => "0123456789abcdef0123456789abcdef".to_string(),
                Some("filename") => "nothing-here.pkg".to_string(),
                Some("username") => "nobody".to_string(),
                Some(_) => "424242".to_string(),
                None => s.to_string(),
            },
        )
        .collect::<Vec<_>>()
        .join("/")
}

/// The server serves the generated document, and routes every operation in it: an
/// unauthenticated request to each gets the operation's own answer, never the
/// router's "no such endpoint" or "method not allowed".
#[tokio::test]
async fn the_server_routes_every_documented_operation() {
    let s = common::Server::start().await;
    let served: Value = s
        .http
        .get(s.at("/api/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        served,
        generated(),
        "the served document is not the generated one"
    );

    for (method, path) in operations(&served) {
        let url = s.at(&concrete(&path));
        let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let r = s.http.request(m.clone(), &url).send().await.unwrap();
        let status = r.status().as_u16();
        assert_ne!(status, 405, "{method} {path}: not routed");
        if method == "HEAD" {
            continue;
        }
        let body = r.text().await.unwrap();
        assert!(
            !body.contains("no such endpoint"),
            "{method} {path}: not routed ({status} {body})"
        );
        if path.starts_with("/api/admin/") {
            assert_eq!(status, 401, "{method} {path} answers without auth: {body}");
        }
        if path.starts_with("/api/ods/") {
            assert!(body.contains("peer_auth_failed"), "{method} {path}: {body}");
        }
    }
}
