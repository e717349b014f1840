//! The Jamf Pro API client (JAMF.md §3): a bearer token from `POST /api/v1/auth/token`
//! (Basic) or `POST /api/oauth/token` (client credentials), kept sealed with the
//! instance and renewed before it expires; one re-authentication on 401; 429 and 5xx
//! retried with backoff, honouring `Retry-After`. Anything left failing is an error
//! for the job that called, which the job queue retries later.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde::Deserialize;
use serde_json::Value;

use crate::app::App;
use crate::db::{self, jamf::InstanceRow};
use crate::model::now_millis;

/// A token is renewed when less than this is left of it.
const RENEW_MARGIN_MS: i64 = 5_000;
/// Attempts per call for 429/5xx answers and failed connections.
const ATTEMPTS: u32 = 4;
/// The longest `Retry-After` waited for inside a job (longer: the job retries later).
const MAX_RETRY_AFTER: Duration = Duration::from_secs(30);
const TIMEOUT: Duration = Duration::from_secs(30);

pub struct Client {
    app: App,
    inst: InstanceRow,
    base: url::Url,
    http: reqwest::Client,
    token: Option<String>,
}

/// An answer from Jamf Pro.
pub struct Answer {
    pub status: StatusCode,
    pub body: Value,
}

impl Answer {
    /// The first error code of a Jamf error body (`{"errors": [{"code": ...}]}`).
    pub fn error_code(&self) -> Option<&str> {
        self.body["errors"]
            .as_array()?
            .iter()
            .find_map(|e| e["code"].as_str())
    }

    /// A short description for a record's state and the job log.
    pub fn describe(&self) -> String {
        let errors: Vec<String> = self.body["errors"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|e| {
                        format!(
                            "{} {} {}",
                            e["code"].as_str().unwrap_or(""),
                            e["field"].as_str().unwrap_or(""),
                            e["description"].as_str().unwrap_or("")
                        )
                        .trim()
                        .to_string()
                    })
                    .collect()
            })
            .unwrap_or_default();
        if errors.is_empty() {
            format!("Jamf Pro answered {}", self.status)
        } else {
            format!("Jamf Pro answered {}: {}", self.status, errors.join("; "))
        }
    }
}

#[derive(Deserialize)]
struct BasicToken {
    token: String,
    expires: String,
}

#[derive(Deserialize)]
struct OauthToken {
    access_token: String,
    expires_in: i64,
}

impl Client {
    /// A client for `inst`, or an error saying why it may not be called.
    pub fn new(app: &App, inst: InstanceRow) -> anyhow::Result<Client> {
        let base = url::Url::parse(inst.url.trim_end_matches('/'))
            .map_err(|e| anyhow::anyhow!("the instance URL does not parse: {e}"))?;
        if !app.config.jamf.host_allowed(&base) {
            anyhow::bail!(
                "{} is not among the hosts Jamf jobs may call (ODS_JAMF_ALLOWED_HOSTS)",
                base.host_str().unwrap_or_default()
            );
        }
        let http = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .connect_timeout(Duration::from_secs(10))
            .build()?;
        let token = match (&inst.token_sealed, inst.token_expires) {
            (Some(sealed), Some(exp)) if exp - RENEW_MARGIN_MS > now_millis() => {
                app.sealer.open(sealed).ok()
            }
            _ => None,
        };
        Ok(Client {
            app: app.clone(),
            inst,
            base,
            http,
            token,
        })
    }

    fn url(&self, path_and_query: &str) -> String {
        format!(
            "{}{}",
            self.base.as_str().trim_end_matches('/'),
            path_and_query
        )
    }

    /// A token, fetching one when there is none or it is about to expire.
    async fn token(&mut self) -> anyhow::Result<String> {
        if let Some(t) = &self.token {
            return Ok(t.clone());
        }
        let secret = match &self.inst.secret_sealed {
            Some(s) => self.app.sealer.open(s)?,
            None => anyhow::bail!("the instance has no credentials"),
        };
        let user = self.inst.username.clone().unwrap_or_default();
        let (token, expires_ms) = if self.inst.auth == "oauth" {
            let form = url::form_urlencoded::Serializer::new(String::new())
                .append_pair("grant_type", "client_credentials")
                .append_pair("client_id", &user)
                .append_pair("client_secret", &secret)
                .finish();
            let r = self
                .with_retries(|c| {
                    c.http
                        .post(c.url("/api/oauth/token"))
                        .header(
                            reqwest::header::CONTENT_TYPE,
                            "application/x-www-form-urlencoded",
                        )
                        .body(form.clone())
                })
                .await?;
            if !r.status.is_success() {
                anyhow::bail!("OAuth token request refused: {}", r.describe());
            }
            let t: OauthToken = serde_json::from_value(r.body)
                .map_err(|e| anyhow::anyhow!("unexpected OAuth token answer: {e}"))?;
            (t.access_token, now_millis() + t.expires_in * 1000)
        } else {
            let r = self
                .with_retries(|c| {
                    c.http
                        .post(c.url("/api/v1/auth/token"))
                        .basic_auth(&user, Some(&secret))
                })
                .await?;
            if !r.status.is_success() {
                anyhow::bail!("token request refused: {}", r.describe());
            }
            let t: BasicToken = serde_json::from_value(r.body)
                .map_err(|e| anyhow::anyhow!("unexpected token answer: {e}"))?;
            let exp = time::OffsetDateTime::parse(
                &t.expires,
                &time::format_description::well_known::Rfc3339,
            )
            .map(|d| (d.unix_timestamp_nanos() / 1_000_000) as i64)
            .unwrap_or_else(|_| now_millis() + 60_000);
            (t.token, exp)
        };
        db::jamf::set_token(
            &self.app.db,
            self.inst.id,
            Some((&self.app.sealer.seal(&token), expires_ms)),
        )
        .await?;
        // A token that is already within the renewal margin is used for this job only.
        self.token = Some(token.clone());
        Ok(token)
    }

    /// Sends a request built by `build`, retrying 429/5xx and failed connections.
    async fn with_retries(
        &self,
        build: impl Fn(&Client) -> reqwest::RequestBuilder,
    ) -> anyhow::Result<Answer> {
        let mut last = String::new();
        for attempt in 0..ATTEMPTS {
            match build(self).send().await {
                Ok(resp) => {
                    let status = resp.status();
                    let retry_after = resp
                        .headers()
                        .get(reqwest::header::RETRY_AFTER)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.trim().parse::<u64>().ok())
                        .map(Duration::from_secs);
                    let bytes = resp.bytes().await.unwrap_or_default();
                    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
                    let answer = Answer { status, body };
                    let transient =
                        status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error();
                    if !transient {
                        return Ok(answer);
                    }
                    last = answer.describe();
                    if attempt + 1 < ATTEMPTS {
                        let wait = match retry_after {
                            Some(d) if d > MAX_RETRY_AFTER => {
                                anyhow::bail!("{last}; Retry-After {} s", d.as_secs())
                            }
                            Some(d) => d,
                            None => backoff(attempt),
                        };
                        tracing::info!(instance = self.inst.id, %status, ?wait, "Jamf Pro asks to retry");
                        tokio::time::sleep(wait).await;
                    }
                }
                Err(e) => {
                    last = format!("calling Jamf Pro failed: {e}");
                    if attempt + 1 < ATTEMPTS {
                        tokio::time::sleep(backoff(attempt)).await;
                    }
                }
            }
        }
        anyhow::bail!("{last} (after {ATTEMPTS} attempts)")
    }

    /// An authenticated call; on 401 the token is renewed once and the call repeated.
    pub async fn call(
        &mut self,
        method: Method,
        path_and_query: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<Answer> {
        for renewed in [false, true] {
            let token = self.token().await?;
            let answer = self
                .with_retries(|c| {
                    let mut r = c
                        .http
                        .request(method.clone(), c.url(path_and_query))
                        .bearer_auth(&token)
                        .header(reqwest::header::ACCEPT, "application/json");
                    if let Some(b) = body {
                        r = r.json(b);
                    }
                    r
                })
                .await?;
            if answer.status != StatusCode::UNAUTHORIZED || renewed {
                return Ok(answer);
            }
            tracing::info!(
                instance = self.inst.id,
                "Jamf Pro refused the token; renewing it"
            );
            self.token = None;
            db::jamf::set_token(&self.app.db, self.inst.id, None).await?;
        }
        anyhow::bail!("Jamf Pro refused a fresh token (401)")
    }
}

/// 0.5 s, 1 s, 2 s... with up to 25% jitter.
fn backoff(attempt: u32) -> Duration {
    use rand::Rng;
    let base = 500u64 << attempt.min(6);
    Duration::from_millis(base + rand::rng().random_range(0..=base / 4))
}

/// RSQL `field=="value"` with the value's quotes and backslashes escaped.
pub fn rsql_eq(field: &str, value: &str) -> String {
    let escaped = value.replace('\\', "\\\\").replace('"', "\\\"");
    format!("{field}==\"{escaped}\"")
}

/// Percent-encodes a query value.
pub fn q(v: &str) -> String {
    percent_encoding::utf8_percent_encode(v, percent_encoding::NON_ALPHANUMERIC).to_string()
}
