//! Email over SMTP (lettre): the settings (host, port, security `none|starttls|tls`,
//! username, sealed password, from), the items the fan-out puts in a recipient's
//! outbox, and the digest job (`email_digest`, notification lane) that sends them.
//!
//! Batching: the fan-out adds an item per event and recipient and queues the
//! recipient's digest job `ODS_EMAIL_DIGEST_SECS` later, deduplicated by recipient, so
//! every event inside that window joins one message (a 200-package rollout is one
//! email per recipient, not 200). The job sends what is in the outbox and then forgets
//! exactly those items; a failure leaves them for the job's next attempt (the queue's
//! backoff). A crash between sending and forgetting sends that digest again: email is
//! at-least-once, like every job.

use std::time::Duration;

use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::AsyncSmtpTransport;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncTransport, Message, Tokio1Executor};
use serde::{Deserialize, Serialize};

use super::Lane;
use super::message::ServerInfo;
use crate::app::App;
use crate::db::{self, email::SettingsRow, events::EventRow};
use crate::jobs::{Job, Run};

/// Items in one digest at most (more wait for the next).
const DIGEST_MAX: i64 = 500;
const SMTP_TIMEOUT: Duration = Duration::from_secs(30);

/// One event as a recipient will read it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Item {
    pub kind: String,
    pub message: Option<String>,
    pub filename: Option<String>,
    /// The package in the web UI, when the server's URL is known.
    pub link: Option<String>,
    pub server_name: String,
    /// RFC 3339.
    pub at: String,
}

pub fn item(e: &EventRow, server: &ServerInfo, package_id: Option<i64>) -> Item {
    // The Packages tab searched for the file's name: the UI has no page per package.
    let link = match (&server.url, package_id, &e.filename) {
        (Some(url), Some(_), Some(name)) => Some(format!(
            "{}/packages?q={}",
            url.trim_end_matches('/'),
            percent_encoding::utf8_percent_encode(name, percent_encoding::NON_ALPHANUMERIC)
        )),
        _ => None,
    };
    Item {
        kind: e.kind.clone(),
        message: e.message.clone(),
        filename: e.filename.clone(),
        link,
        server_name: server.name.clone(),
        at: super::message::rfc3339(e.created),
    }
}

/// Sends a recipient's waiting items as one message.
#[derive(Debug, Serialize, Deserialize)]
pub struct Digest {
    pub to: String,
}

impl Job for Digest {
    const KIND: &'static str = "email_digest";
    const MAX_ATTEMPTS: i64 = 10;
    fn dedup_key(&self) -> Option<String> {
        Some(format!("email:{}", self.to))
    }
}

impl Run<Lane> for Digest {
    async fn run(self, lane: Lane) -> anyhow::Result<()> {
        let app = &lane.0;
        let rows = db::email::outbox(&app.db, &self.to, DIGEST_MAX).await?;
        if rows.is_empty() {
            return Ok(());
        }
        let items: Vec<Item> = rows
            .iter()
            .filter_map(|(_, j)| serde_json::from_str(j).ok())
            .collect();
        if !items.is_empty() {
            let (subject, text, html) = render(&items);
            send(app, &self.to, &subject, text, html).await?;
        }
        let ids: Vec<i64> = rows.iter().map(|(id, _)| *id).collect();
        db::email::outbox_done(&app.db, &ids).await?;
        tracing::info!(to = %self.to, items = ids.len(), "email sent");
        Ok(())
    }

    async fn gave_up(self, _lane: Lane, error: String) -> anyhow::Result<()> {
        // The items stay in the outbox: the next event to this recipient retries them.
        tracing::error!(to = %self.to, %error, "email could not be sent; the job is dead (see /api/admin/jobs)");
        Ok(())
    }
}

/// The test message of `POST /api/admin/email/test`.
#[derive(Debug, Serialize, Deserialize)]
pub struct TestMail {
    pub to: String,
}

impl Job for TestMail {
    const KIND: &'static str = "email_test";
    const MAX_ATTEMPTS: i64 = 5;
}

impl Run<Lane> for TestMail {
    async fn run(self, lane: Lane) -> anyhow::Result<()> {
        let app = &lane.0;
        let s = db::server::get(&app.db).await?;
        let subject = format!("[ODS {}] Test message", s.name);
        let text = format!(
            "This is a test message from the ODS server {}.\nEmail notifications work.\n",
            s.name
        );
        let html = format!(
            "<p>This is a test message from the ODS server <b>{}</b>.</p><p>Email notifications work.</p>",
            esc(&s.name)
        );
        send(app, &self.to, &subject, text, html).await
    }
}

/// HTML-escapes text.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Subject, plain text and HTML of a message listing `items` (one item: about it;
/// several: a digest).
pub fn render(items: &[Item]) -> (String, String, String) {
    let server = items.first().map(|i| i.server_name.as_str()).unwrap_or("");
    let subject = match items {
        [one] => format!(
            "[ODS {server}] {}{}",
            one.kind,
            one.filename
                .as_ref()
                .map(|f| format!(": {f}"))
                .unwrap_or_default()
        ),
        many => format!("[ODS {server}] {} events", many.len()),
    };
    let mut text = format!("What happened on the ODS server {server}:\n\n");
    let mut html = format!(
        "<html><body><p>What happened on the ODS server <b>{}</b>:</p><ul>",
        esc(server)
    );
    for i in items {
        let what = i.message.clone().unwrap_or_else(|| i.kind.clone());
        text.push_str(&format!("- {} {}: {what}\n", i.at, i.kind));
        html.push_str(&format!(
            "<li>{} <code>{}</code>: {}",
            esc(&i.at),
            esc(&i.kind),
            esc(&what)
        ));
        if let Some(link) = &i.link {
            text.push_str(&format!("  {link}\n"));
            html.push_str(&format!(
                " (<a href=\"{}\">open the package</a>)",
                esc(link)
            ));
        }
        html.push_str("</li>");
    }
    html.push_str("</ul></body></html>");
    (subject, text, html)
}

/// Checks settings as the API takes them; the reason when they are wrong.
pub fn check_settings(s: &SettingsRow) -> Result<(), String> {
    if s.host.trim().is_empty() || s.host.len() > 255 {
        return Err("host is 1 to 255 characters".into());
    }
    if !(1..=65535).contains(&s.port) {
        return Err("port is 1 to 65535".into());
    }
    if !matches!(s.security.as_str(), "none" | "starttls" | "tls") {
        return Err("security is none, starttls or tls".into());
    }
    s.from_addr
        .parse::<Mailbox>()
        .map_err(|e| format!("from is not an address: {e}"))?;
    Ok(())
}

/// Whether `to` is one email address.
pub fn check_address(to: &str) -> Result<(), String> {
    to.parse::<lettre::Address>()
        .map(|_| ())
        .map_err(|e| format!("{to:?} is not an email address: {e}"))
}

async fn send(
    app: &App,
    to: &str,
    subject: &str,
    text: String,
    html: String,
) -> anyhow::Result<()> {
    let Some(s) = db::email::settings(&app.db).await? else {
        anyhow::bail!("email is not set up (PUT /api/admin/email)");
    };
    let msg = Message::builder()
        .from(s.from_addr.parse()?)
        .to(to.parse()?)
        .subject(subject)
        .multipart(MultiPart::alternative_plain_html(text, html))?;
    let tls = || -> anyhow::Result<TlsParameters> {
        let mut b = TlsParameters::builder(s.host.clone());
        if let Some(pem) = &app.config.email.ca_pem {
            b = b.add_root_certificate(Certificate::from_pem(pem)?);
        }
        Ok(b.build_rustls()?)
    };
    let tls = match s.security.as_str() {
        "starttls" => Tls::Required(tls()?),
        "tls" => Tls::Wrapper(tls()?),
        _ => Tls::None,
    };
    let mut b = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(s.host.as_str())
        .port(s.port as u16)
        .tls(tls)
        .timeout(Some(SMTP_TIMEOUT));
    if let Some(user) = s.username.clone().filter(|u| !u.is_empty()) {
        let pass = match &s.password_sealed {
            Some(p) => app.sealer.open(p)?,
            None => String::new(),
        };
        b = b.credentials(Credentials::new(user, pass));
    }
    b.build()
        .send(msg)
        .await
        .map_err(|e| anyhow::anyhow!("sending to {to} through {}:{}: {e}", s.host, s.port))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn it(kind: &str, file: &str) -> Item {
        Item {
            kind: kind.into(),
            message: Some(format!("{file} <is> here")),
            filename: Some(file.into()),
            // A quote in the link must come out escaped in the HTML.
            link: Some(format!(
                "https://ods.example/packages?q={file}&a=\"{file}\""
            )),
            server_name: "Main & Co".into(),
            at: "2026-12-01T00:00:00Z".into(),
        }
    }

    #[test]
    fn addresses_as_fuzzers_write_them_are_taken() {
        for ok in [
            "0@A.COM",
            "LByrFMY+'@h.aecAg6.FidEliTY",
            "}L~w23ym@A.COM",
            "`G@A.BRIDGEstonE",
            "!dgFv9@A.COM",
            "/-n2@A.COM",
        ] {
            assert!(check_address(ok).is_ok(), "{ok}");
        }
        for bad in ["nope", "a@", "@b.c", "a b@c.d"] {
            assert!(check_address(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn one_event_or_a_digest_and_html_escaped() {
        let (subject, text, html) = render(&[it("package.public", "a.pkg")]);
        assert_eq!(subject, "[ODS Main & Co] package.public: a.pkg");
        assert!(
            text.contains("a.pkg <is> here") && text.contains("https://ods.example/packages?q=")
        );
        assert!(html.contains("Main &amp; Co") && html.contains("a.pkg &lt;is&gt; here"));
        assert!(html.contains("a=&quot;a.pkg&quot;"), "{html}");
        let (subject, _, _) = render(&[
            it("package.public", "a.pkg"),
            it("package.deleted", "b.pkg"),
        ]);
        assert_eq!(subject, "[ODS Main & Co] 2 events");
    }
}
