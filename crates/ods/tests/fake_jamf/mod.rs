//! A fake Jamf Pro for tests, following JAMF.md §5: both token endpoints (Basic and
//! OAuth client credentials, with a configurable lifetime), the version endpoint,
//! `GET/POST /api/v1/packages` (paging, sort by id, RSQL `field=="value"` on
//! packageName, fileName and id), `GET/PUT/DELETE /api/v1/packages/{id}`, 400 on a
//! missing required field or a read-only field sent, 400 `DUPLICATE_FIELD` on a
//! duplicate packageName, 401 on a missing or expired token, injectable faults (a
//! status with optional Retry-After, a slow answer, a competing create) and a journal
//! of every request.
#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde_json::{Value, json};

pub const USER: (&str, &str) = ("jamf-api", "jamf-pass-1");
pub const CLIENT: (&str, &str) = ("ods-client", "client-secret-1");

const REQUIRED: [&str; 13] = [
    "packageName",
    "fileName",
    "categoryId",
    "priority",
    "fillUserTemplate",
    "rebootRequired",
    "osInstall",
    "suppressUpdates",
    "suppressFromDock",
    "suppressEula",
    "suppressRegistration",
    "hashType",
    "hashValue",
];
const READ_ONLY: [&str; 4] = ["id", "indexed", "cloudTransferStatus", "size"];

/// One request as the fake saw it.
#[derive(Debug, Clone)]
pub struct Entry {
    pub method: String,
    pub path: String,
    pub query: String,
    pub body: Value,
    pub status: u16,
}

/// What to do to the next request that matches.
#[derive(Debug, Clone)]
pub enum Fault {
    /// Answer this status (with `Retry-After` seconds when given).
    Status(u16, Option<u64>),
    /// Wait, then answer normally.
    Slow(Duration),
    /// On a create: first create the record as a competitor would (with a stale
    /// hash), then answer this request 400 DUPLICATE_FIELD.
    RaceCreate,
}

#[derive(Default)]
struct St {
    lifetime: Duration,
    tokens: HashMap<String, Instant>,
    packages: BTreeMap<u64, Value>,
    next_id: u64,
    journal: Vec<Entry>,
    /// (method, path) of every request as it arrives (the journal has it once answered).
    arrived: Vec<(String, String)>,
    /// (method, path prefix, fault)
    faults: VecDeque<(Method, String, Fault)>,
}

#[derive(Clone)]
pub struct FakeJamf {
    pub url: String,
    st: Arc<Mutex<St>>,
}

impl FakeJamf {
    pub async fn start(token_lifetime: Duration) -> FakeJamf {
        let st = Arc::new(Mutex::new(St {
            lifetime: token_lifetime,
            next_id: 1,
            ..Default::default()
        }));
        let app = axum::Router::new().fallback(handle).with_state(st.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        FakeJamf { url, st }
    }

    pub fn journal(&self) -> Vec<Entry> {
        self.st.lock().unwrap().journal.clone()
    }

    /// Journal entries with this method whose path starts with `prefix`.
    pub fn calls(&self, method: &str, prefix: &str) -> Vec<Entry> {
        self.journal()
            .into_iter()
            .filter(|e| e.method == method && e.path.starts_with(prefix))
            .collect()
    }

    /// How many requests with `method` under `prefix` have arrived (answered or not).
    pub fn arrived(&self, method: &str, prefix: &str) -> usize {
        self.st
            .lock()
            .unwrap()
            .arrived
            .iter()
            .filter(|(m, p)| m == method && p.starts_with(prefix))
            .count()
    }

    pub fn clear_journal(&self) {
        self.st.lock().unwrap().journal.clear();
    }

    /// Queues a fault for the next request with `method` whose path starts with `prefix`.
    pub fn inject(&self, method: Method, prefix: &str, fault: Fault) {
        self.st
            .lock()
            .unwrap()
            .faults
            .push_back((method, prefix.to_string(), fault));
    }

    /// Every token issued so far stops working (as if they expired early).
    pub fn expire_tokens(&self) {
        self.st.lock().unwrap().tokens.clear();
    }

    pub fn set_token_lifetime(&self, d: Duration) {
        self.st.lock().unwrap().lifetime = d;
    }

    pub fn records(&self) -> Vec<Value> {
        self.st.lock().unwrap().packages.values().cloned().collect()
    }

    pub fn record_by_file(&self, file: &str) -> Option<Value> {
        self.records().into_iter().find(|r| r["fileName"] == file)
    }

    /// Changes fields of a record as an admin would in Jamf Pro.
    pub fn edit(&self, id: &str, changes: Value) {
        let mut st = self.st.lock().unwrap();
        let rec = st.packages.get_mut(&id.parse::<u64>().unwrap()).unwrap();
        for (k, v) in changes.as_object().unwrap() {
            rec[k] = v.clone();
        }
    }

    /// Adds a record directly (as made in Jamf Pro by hand); returns its id.
    pub fn add(&self, fields: Value) -> String {
        let mut st = self.st.lock().unwrap();
        insert(&mut st, fields)
    }
}

fn insert(st: &mut St, fields: Value) -> String {
    let id = st.next_id;
    st.next_id += 1;
    let mut rec = json!({
        "id": id.to_string(),
        "packageName": "",
        "fileName": "",
        "categoryId": "-1",
        "info": "",
        "notes": "",
        "priority": 10,
        "osRequirements": "",
        "fillUserTemplate": false,
        "indexed": false,
        "fillExistingUsers": false,
        "swu": false,
        "rebootRequired": false,
        "selfHealNotify": false,
        "selfHealingAction": "nothing",
        "osInstall": false,
        "serialNumber": "",
        "parentPackageId": "-1",
        "basePath": "",
        "suppressUpdates": false,
        "cloudTransferStatus": "NOT_APPLICABLE",
        "ignoreConflicts": false,
        "suppressFromDock": false,
        "suppressEula": false,
        "suppressRegistration": false,
        "installLanguage": "en_US",
        "md5": null,
        "sha256": null,
        "hashType": null,
        "hashValue": null,
        "size": null,
        "osInstallerVersion": "",
        "manifest": null,
        "manifestFileName": null,
        "format": null
    });
    for (k, v) in fields.as_object().unwrap() {
        rec[k] = v.clone();
    }
    st.packages.insert(id, rec);
    id.to_string()
}

fn error(status: u16, code: &str, field: Option<&str>, description: &str) -> (u16, Value) {
    (
        status,
        json!({"httpStatus": status, "errors": [{"code": code, "field": field, "description": description, "id": "0"}]}),
    )
}

fn query_map(q: &str) -> HashMap<String, String> {
    url::form_urlencoded::parse(q.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// `field=="value"` (quotes and backslashes escaped with a backslash).
fn rsql(filter: &str) -> Option<(String, String)> {
    let (field, rest) = filter.split_once("==")?;
    let inner = rest.strip_prefix('"')?.strip_suffix('"')?;
    let mut out = String::new();
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            out.push(chars.next()?);
        } else {
            out.push(c);
        }
    }
    Some((field.to_string(), out))
}

fn missing_required(body: &Value) -> Option<&'static str> {
    REQUIRED
        .into_iter()
        .find(|f| body.get(*f).is_none_or(Value::is_null))
}

async fn handle(
    State(st): State<Arc<Mutex<St>>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    // In a task of its own: a request is carried out even when the client goes away
    // before the answer (as a real server would).
    tokio::spawn(handle_request(st, method, uri, headers, body))
        .await
        .unwrap()
}

async fn handle_request(
    st: Arc<Mutex<St>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_string();
    let query = uri.query().unwrap_or("").to_string();
    let json_body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let fault = {
        let mut s = st.lock().unwrap();
        s.arrived.push((method.to_string(), path.clone()));
        let at = s
            .faults
            .iter()
            .position(|(m, p, _)| *m == method && path.starts_with(p.as_str()));
        at.and_then(|i| s.faults.remove(i)).map(|f| f.2)
    };
    let mut retry_after = None;
    let (status, answer) = match fault {
        Some(Fault::Status(code, ra)) => {
            retry_after = ra;
            error(code, "INJECTED", None, "an injected failure")
        }
        Some(Fault::Slow(d)) => {
            tokio::time::sleep(d).await;
            answer(
                &st, &method, &path, &query, &headers, &body, &json_body, false,
            )
        }
        Some(Fault::RaceCreate) => answer(
            &st, &method, &path, &query, &headers, &body, &json_body, true,
        ),
        None => answer(
            &st, &method, &path, &query, &headers, &body, &json_body, false,
        ),
    };
    st.lock().unwrap().journal.push(Entry {
        method: method.to_string(),
        path,
        query,
        body: json_body,
        status,
    });
    let mut resp = (
        StatusCode::from_u16(status).unwrap(),
        axum::Json(answer.clone()),
    )
        .into_response();
    if answer.is_null() {
        resp = StatusCode::from_u16(status).unwrap().into_response();
    }
    if let Some(ra) = retry_after {
        resp.headers_mut()
            .insert("retry-after", ra.to_string().parse().unwrap());
    }
    resp
}

#[allow(clippy::too_many_arguments)]
fn answer(
    st: &Mutex<St>,
    method: &Method,
    path: &str,
    query: &str,
    headers: &HeaderMap,
    raw: &[u8],
    body: &Value,
    race: bool,
) -> (u16, Value) {
    let mut st = st.lock().unwrap();
    let now = Instant::now();
    let issue = |st: &mut St| {
        let token = format!("tok-{}", rand_hex());
        st.tokens.insert(token.clone(), now + st.lifetime);
        token
    };
    if path == "/api/v1/auth/token" && method == Method::POST {
        let expected = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", USER.0, USER.1))
        );
        if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(&expected) {
            return error(401, "INVALID_CREDENTIALS", None, "bad user or password");
        }
        let token = issue(&mut st);
        let expires = time::OffsetDateTime::now_utc() + st.lifetime;
        let fmt = time::macros::format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
        );
        return (
            200,
            json!({"token": token, "expires": expires.format(&fmt).unwrap()}),
        );
    }
    if path == "/api/oauth/token" && method == Method::POST {
        let form = query_map(&String::from_utf8_lossy(raw));
        let ok = form.get("grant_type").map(String::as_str) == Some("client_credentials")
            && form.get("client_id").map(String::as_str) == Some(CLIENT.0)
            && form.get("client_secret").map(String::as_str) == Some(CLIENT.1);
        if !ok {
            return (401, json!({"error": "invalid_client"}));
        }
        let token = issue(&mut st);
        return (
            200,
            json!({"access_token": token, "scope": "api-role:1", "token_type": "Bearer", "expires_in": st.lifetime.as_secs()}),
        );
    }
    let bearer = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match bearer.and_then(|t| st.tokens.get(t)) {
        Some(exp) if *exp > now => {}
        _ => return error(401, "INVALID_TOKEN", None, "missing or expired token"),
    }
    if path == "/api/v1/jamf-pro-version" {
        return (200, json!({"version": "11.6.1"}));
    }
    if path == "/api/v1/packages" && method == Method::GET {
        let q = query_map(query);
        let page: usize = q.get("page").and_then(|p| p.parse().ok()).unwrap_or(0);
        let size: usize = q
            .get("page-size")
            .and_then(|p| p.parse().ok())
            .unwrap_or(100);
        let mut items: Vec<Value> = st.packages.values().cloned().collect();
        if let Some(f) = q.get("filter") {
            let Some((field, value)) = rsql(f) else {
                return error(400, "INVALID_RSQL_FILTER", Some("filter"), "bad filter");
            };
            if !["packageName", "fileName", "id"].contains(&field.as_str()) {
                return error(400, "INVALID_RSQL_FILTER", Some("filter"), "unknown field");
            }
            items.retain(|r| r[&field].as_str() == Some(value.as_str()));
        }
        if q.get("sort").map(String::as_str) == Some("id:desc") {
            items.reverse();
        }
        let total = items.len();
        let results: Vec<Value> = items.into_iter().skip(page * size).take(size).collect();
        return (200, json!({"totalCount": total, "results": results}));
    }
    if path == "/api/v1/packages" && method == Method::POST {
        if let Some(f) = missing_required(body) {
            return error(400, "INVALID_FIELD", Some(f), "a required field is missing");
        }
        if race {
            let mut competitor = body.clone();
            competitor["hashValue"] = json!("0000");
            insert(&mut st, competitor);
        }
        let name = body["packageName"].clone();
        if st.packages.values().any(|r| r["packageName"] == name) {
            return error(
                400,
                "DUPLICATE_FIELD",
                Some("packageName"),
                "a package with this name exists",
            );
        }
        let id = insert(&mut st, body.clone());
        return (
            201,
            json!({"id": id, "href": format!("/api/v1/packages/{id}")}),
        );
    }
    if let Some(id) = path.strip_prefix("/api/v1/packages/") {
        let Ok(id) = id.parse::<u64>() else {
            return error(404, "NOT_FOUND", None, "no such package");
        };
        if !st.packages.contains_key(&id) {
            return error(404, "NOT_FOUND", None, "no such package");
        }
        return match *method {
            Method::GET => (200, st.packages[&id].clone()),
            Method::DELETE => {
                st.packages.remove(&id);
                (204, Value::Null)
            }
            Method::PUT => {
                if let Some(f) = READ_ONLY.into_iter().find(|f| body.get(*f).is_some()) {
                    return error(400, "INVALID_FIELD", Some(f), "a read-only field was sent");
                }
                if let Some(f) = missing_required(body) {
                    return error(400, "INVALID_FIELD", Some(f), "a required field is missing");
                }
                let rec = st.packages.get_mut(&id).unwrap();
                for (k, v) in body.as_object().unwrap() {
                    rec[k] = v.clone();
                }
                (200, rec.clone())
            }
            _ => error(405, "METHOD_NOT_ALLOWED", None, "no"),
        };
    }
    error(404, "NOT_FOUND", None, "no such endpoint")
}

fn rand_hex() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{t:x}{:x}", N.fetch_add(1, Ordering::Relaxed))
}
