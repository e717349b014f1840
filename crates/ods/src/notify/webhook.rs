//! Sending one webhook delivery (job `webhook_deliver`, notification lane): sign it
//! as Standard Webhooks 1.0 says (`webhook-id`, `webhook-timestamp`,
//! `webhook-signature: v1,<base64 HMAC-SHA256 of "id.timestamp.body">`), check the
//! receiver's addresses, POST with a timeout, and record the attempt. A non-2xx answer,
//! a timeout or a connection error schedules the next attempt with exponential backoff
//! (`ODS_WEBHOOK_RETRY_BASE_MS` doubling, at most six hours) in the transaction that
//! records this one; after `ODS_WEBHOOK_MAX_ATTEMPTS` the delivery is `failed`.
//!
//! Each attempt is its own job, so the queue's own retry covers only what went wrong
//! around the send (the database, a crash): a process killed mid-send leaves the job
//! running under a lease that a restart releases, and the delivery is sent again with
//! the same `webhook-id`, which is how the specification lets receivers deduplicate.

use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use super::Lane;
use crate::db::{self, webhooks::NewAttempt};
use crate::jobs::{self, Job, Run};
use crate::model::{now_millis, now_unix};

/// At most this many deliveries to one webhook are sent at once by one process; more
/// wait (without holding a slot), so one slow receiver cannot take the whole lane.
const PER_HOOK: usize = 2;
/// An answer body is read only this far (for the error message).
const ERROR_BODY: usize = 200;

#[derive(Debug, Serialize, Deserialize)]
pub struct Deliver {
    pub delivery: i64,
}

impl Job for Deliver {
    const KIND: &'static str = "webhook_deliver";
    fn dedup_key(&self) -> Option<String> {
        Some(format!("webhook:{}", self.delivery))
    }
}

/// The key inside a `whsec_<base64>` secret.
pub fn secret_key(secret: &str) -> Option<Vec<u8>> {
    let b64 = secret.strip_prefix("whsec_")?;
    STANDARD
        .decode(b64)
        .ok()
        .filter(|k| (24..=64).contains(&k.len()))
}

/// A new secret: `whsec_` and 32 random bytes in base64.
pub fn new_secret() -> String {
    format!(
        "whsec_{}",
        STANDARD.encode(crate::secrets::random_bytes::<32>())
    )
}

/// The `webhook-signature` value for a message.
pub fn sign(key: &[u8], msg_id: &str, timestamp: i64, body: &str) -> String {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("HMAC takes any key");
    mac.update(format!("{msg_id}.{timestamp}.").as_bytes());
    mac.update(body.as_bytes());
    format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
}

/// Delay before attempt `done + 1` (`done` attempts made).
pub fn retry_delay(base: Duration, done: u32) -> Duration {
    base.saturating_mul(1u32 << done.saturating_sub(1).min(20))
        .min(Duration::from_secs(6 * 3600))
}

/// Holds one of a webhook's in-flight places for as long as it lives.
struct InFlight<'a> {
    lane: &'a Lane,
    hook: i64,
}

impl<'a> InFlight<'a> {
    fn take(lane: &'a Lane, hook: i64) -> Option<Self> {
        let mut m = lane.0.notify_inflight.lock().expect("in-flight map");
        let n = m.entry(hook).or_insert(0);
        if *n >= PER_HOOK {
            return None;
        }
        *n += 1;
        Some(InFlight { lane, hook })
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        let mut m = self.lane.0.notify_inflight.lock().expect("in-flight map");
        if let Some(n) = m.get_mut(&self.hook) {
            *n -= 1;
            if *n == 0 {
                m.remove(&self.hook);
            }
        }
    }
}

impl Run<Lane> for Deliver {
    async fn run(self, lane: Lane) -> anyhow::Result<()> {
        let app = &lane.0;
        let Some(d) = db::webhooks::delivery(&app.db, self.delivery).await? else {
            return Ok(()); // its webhook was deleted
        };
        if d.state != "pending" {
            return Ok(()); // already done (a rerun after a crash)
        }
        let Some(hook) = db::webhooks::get(&app.db, d.webhook_id).await? else {
            return Ok(());
        };
        if !hook.enabled && d.event_type != "ods.test" {
            db::webhooks::fail_delivery(&app.db, d.id, "the webhook was disabled").await?;
            return Ok(());
        }
        let Some(_place) = InFlight::take(&lane, hook.id) else {
            let mut conn = app.db.writer().acquire().await?;
            // Not an attempt: try again shortly, with the slot free for others.
            db::jobs::enqueue(
                &app.db,
                &mut conn,
                &db::jobs::NewJob {
                    kind: Self::KIND,
                    payload: serde_json::to_string(&self)?,
                    dedup_key: None,
                    max_attempts: Self::MAX_ATTEMPTS,
                    run_at_ms: now_millis() + 500,
                },
            )
            .await?;
            return Ok(());
        };
        let secret = app.sealer.open(&hook.secret_sealed)?;
        let key = secret_key(&secret)
            .ok_or_else(|| anyhow::anyhow!("the stored webhook secret is malformed"))?;
        let cfg = &app.config.webhooks;
        let started_ms = now_millis();
        let clock = Instant::now();
        let outcome = send(&hook.url, &d.msg_id, &d.body, &key, cfg).await;
        let duration_ms = clock.elapsed().as_millis() as i64;
        let (status, error, retry) = match outcome {
            Ok((code, _)) if (200..300).contains(&code) => (Some(code as i64), None, false),
            Ok((code, said)) => (
                Some(code as i64),
                Some(match said {
                    Some(t) => format!("the receiver answered {code}: {t}"),
                    None => format!("the receiver answered {code}"),
                }),
                true,
            ),
            Err(SendError::Refused(e)) => (None, Some(e), false),
            Err(SendError::Failed(e)) => (None, Some(e), true),
        };
        let attempt_no = d.attempts + 1;
        let state = match (&error, retry) {
            (None, _) => "delivered",
            (Some(_), true) if attempt_no < cfg.max_attempts as i64 => "pending",
            _ => "failed",
        };
        let mut tx = app.db.begin().await?;
        db::webhooks::record_attempt(
            &app.db,
            &mut tx,
            &NewAttempt {
                delivery_id: d.id,
                webhook_id: hook.id,
                at_ms: started_ms,
                status_code: status,
                duration_ms,
                error: error.as_deref(),
            },
            state,
        )
        .await?;
        if state == "pending" {
            let delay = retry_delay(cfg.retry_base, attempt_no as u32);
            jobs::enqueue(&app.db, &mut tx, &self, delay).await?;
        }
        tx.commit().await?;
        match &error {
            None => tracing::debug!(delivery = d.id, webhook = hook.id, "webhook delivered"),
            Some(e) => {
                tracing::info!(delivery = d.id, webhook = hook.id, attempt = attempt_no, state, error = %e, "webhook attempt failed")
            }
        }
        Ok(())
    }

    async fn gave_up(self, lane: Lane, error: String) -> anyhow::Result<()> {
        db::webhooks::fail_delivery(&lane.0.db, self.delivery, &error).await?;
        Ok(())
    }
}

enum SendError {
    /// Not to be retried: the address is not allowed.
    Refused(String),
    Failed(String),
}

async fn send(
    url: &str,
    msg_id: &str,
    body: &str,
    key: &[u8],
    cfg: &crate::config::Webhooks,
) -> Result<(u16, Option<String>), SendError> {
    let parsed = url::Url::parse(url).map_err(|e| SendError::Refused(format!("bad URL: {e}")))?;
    let host = parsed
        .host_str()
        .ok_or_else(|| SendError::Refused("the URL has no host".into()))?
        .to_string();
    let port = parsed.port_or_known_default().unwrap_or(80);
    let addrs = super::addr::resolve_checked(&host, port, cfg.allow_link_local)
        .await
        .map_err(|e| {
            if e.contains("ODS_WEBHOOK_ALLOW_LINK_LOCAL") {
                SendError::Refused(e)
            } else {
                SendError::Failed(e)
            }
        })?;
    // Connect to exactly the addresses checked; no proxy and no redirects, which
    // would send the message somewhere not checked.
    let mut b = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(cfg.timeout)
        .connect_timeout(cfg.timeout)
        .user_agent(concat!("ods/", env!("CARGO_PKG_VERSION")));
    if host.parse::<std::net::IpAddr>().is_err() {
        b = b.resolve_to_addrs(&host, &addrs);
    }
    let client = b
        .build()
        .map_err(|e| SendError::Failed(format!("building the client: {e}")))?;
    let ts = now_unix();
    let res = client
        .post(parsed)
        .header("content-type", "application/json")
        .header("webhook-id", msg_id)
        .header("webhook-timestamp", ts.to_string())
        .header("webhook-signature", sign(key, msg_id, ts, body))
        .body(body.to_string())
        .send()
        .await
        .map_err(|e| {
            SendError::Failed(if e.is_timeout() {
                format!("no answer within {} s", cfg.timeout.as_secs())
            } else {
                format!("{e:#}")
            })
        })?;
    let code = res.status().as_u16();
    let mut said = None;
    if !(200..300).contains(&code) {
        // A little of the answer, for the delivery log (never waiting long for it).
        if let Ok(Ok(t)) = tokio::time::timeout(Duration::from_secs(1), res.text()).await {
            let t: String = t.chars().take(ERROR_BODY).collect();
            said = Some(t.trim().to_string()).filter(|t| !t.is_empty());
        }
    }
    Ok((code, said))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_matches_the_specification_example() {
        // The example of the Standard Webhooks specification (its README).
        let key = secret_key("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let body = r#"{"test": 2432232314}"#;
        assert_eq!(
            sign(&key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn secrets_have_the_documented_form() {
        let s = new_secret();
        assert!(s.starts_with("whsec_"));
        assert_eq!(secret_key(&s).unwrap().len(), 32);
        assert!(secret_key("whsec_c2hvcnQ=").is_none(), "too short a key");
        assert!(secret_key("nope").is_none());
    }

    #[test]
    fn retries_back_off() {
        let b = Duration::from_millis(100);
        assert_eq!(retry_delay(b, 1), Duration::from_millis(100));
        assert_eq!(retry_delay(b, 2), Duration::from_millis(200));
        assert_eq!(retry_delay(b, 4), Duration::from_millis(800));
        assert_eq!(retry_delay(b, 40), Duration::from_secs(6 * 3600));
    }
}
