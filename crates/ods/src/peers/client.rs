//! Outgoing peer calls: signed requests to another server's `/api/ods/...`, with the
//! transport policy (https, or plain http only to loopback unless allowed).

use std::time::Duration;

use reqwest::Method;

use crate::app::App;
use crate::db::peers::PeerRow;
use crate::mesh::sign as auth;
use crate::model::now_unix;

/// Why a peer call failed.
#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    #[error("cannot reach {0}")]
    Unreachable(String),
    #[error("the peer answered {status}: {message}")]
    Refused { status: u16, message: String },
    #[error("{0}")]
    Policy(String),
    #[error("the peer sent a response ODS does not understand: {0}")]
    Protocol(String),
}

/// Where and how to reach one peer.
#[derive(Clone)]
pub struct Link {
    pub id: i64,
    pub iss: String,
    pub url: String,
    pub secret: Vec<u8>,
    pub rate_limit: Option<i64>,
}

impl Link {
    /// The link to a registered peer; `None` when it cannot be called (firewalled or
    /// without a URL).
    pub fn of(app: &App, p: &PeerRow) -> anyhow::Result<Option<Link>> {
        let (Some(url), Some(sealed), false) = (&p.url, &p.secret_sealed, p.firewalled) else {
            return Ok(None);
        };
        Ok(Some(Link {
            id: p.id,
            iss: p.iss.clone(),
            url: url.trim_end_matches('/').to_string(),
            secret: app.sealer.open(sealed)?.into_bytes(),
            rate_limit: p.rate_limit,
        }))
    }
}

/// Refuses plain http to anything but loopback unless insecure peers are allowed.
pub fn check_url(url: &str, allow_insecure: bool) -> Result<reqwest::Url, PeerError> {
    let parsed = reqwest::Url::parse(url)
        .map_err(|e| PeerError::Policy(format!("{url:?} is not a URL: {e}")))?;
    match parsed.scheme() {
        "https" => Ok(parsed),
        "http" => {
            let loopback = match parsed.host() {
                Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
                Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
                Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
                None => false,
            };
            if loopback || allow_insecure {
                Ok(parsed)
            } else {
                Err(PeerError::Policy(format!(
                    "{url} uses plain http: peers must use https (or set ODS_ALLOW_INSECURE_PEERS=true)"
                )))
            }
        }
        other => Err(PeerError::Policy(format!(
            "{url}: scheme {other} is not http or https"
        ))),
    }
}

/// Sends one signed request. `secret` is the pair secret (or a registration key).
#[allow(clippy::too_many_arguments)]
pub async fn send(
    app: &App,
    base_url: &str,
    receiver_iss: &str,
    secret: &[u8],
    method: Method,
    path_and_query: &str,
    body: Option<Vec<u8>>,
    timeout: Duration,
) -> Result<reqwest::Response, PeerError> {
    let base = check_url(base_url, app.config.allow_insecure_peers)?;
    let url = format!("{}{path_and_query}", base.as_str().trim_end_matches('/'));
    let own = app.sync.own_iss.clone();
    let body = body.unwrap_or_default();
    let sig = auth::sign(
        secret,
        &own,
        receiver_iss,
        method.as_str(),
        path_and_query,
        &body,
        now_unix(),
    );
    let mut req = app
        .sync
        .http
        .request(method, &url)
        .timeout(timeout)
        .header(auth::ISS_HEADER, own)
        .header(auth::SIG_HEADER, sig);
    if !body.is_empty() {
        req = req
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body);
    }
    let resp = req
        .send()
        .await
        .map_err(|e| PeerError::Unreachable(format!("{base_url}: {}", error_chain(&e))))?;
    if resp.status().is_success() {
        return Ok(resp);
    }
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap_or_default();
    let message = serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| v["error"]["message"].as_str().map(str::to_string))
        .unwrap_or_else(|| text.chars().take(200).collect());
    Err(PeerError::Refused { status, message })
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// A signed call to a registered peer.
pub async fn call(
    app: &App,
    link: &Link,
    method: Method,
    path_and_query: &str,
    body: Option<Vec<u8>>,
    timeout: Duration,
) -> Result<reqwest::Response, PeerError> {
    send(
        app,
        &link.url,
        &link.iss,
        &link.secret,
        method,
        path_and_query,
        body,
        timeout,
    )
    .await
}
