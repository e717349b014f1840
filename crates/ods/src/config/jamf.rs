//! The Jamf Pro settings (`ODS_JAMF_*`), checked once at start: the public key of
//! download tokens must parse, and the allow-list of hosts Jamf jobs may call.

use super::{Secret, Settings};

/// Jamf Pro settings (`ODS_JAMF_*`).
#[derive(Debug, Clone)]
pub struct Jamf {
    /// Lowercase `host` or `host:port` entries; empty: any host.
    pub allowed_hosts: Vec<String>,
    pub scan_secs: u64,
    pub reconcile_secs: u64,
    pub webhook_secret: Option<Secret<String>>,
    /// The PEM of the key download tokens are checked against (`download_auth` jwt).
    pub jwt_public_key: Option<Vec<u8>>,
    pub jwt_leeway_secs: u64,
    pub jwt_issuer: String,
    pub jwt_subject: String,
}

impl Jamf {
    /// Whether Jamf jobs may call `url`'s host (see `allowed_hosts`).
    pub fn host_allowed(&self, url: &url::Url) -> bool {
        if self.allowed_hosts.is_empty() {
            return true;
        }
        let host = url.host_str().unwrap_or_default().to_ascii_lowercase();
        let with_port = format!("{host}:{}", url.port_or_known_default().unwrap_or(0));
        self.allowed_hosts
            .iter()
            .any(|h| *h == host || *h == with_port)
    }
}

impl Jamf {
    /// Reads the `jamf_*` keys, adding what is wrong to `problems`.
    pub(super) fn from_settings(raw: &Settings, problems: &mut Vec<String>) -> Jamf {
        let jwt_public_key = match &raw.jamf_jwt_public_key {
            None => None,
            Some(f) => match std::fs::read(f) {
                Ok(pem) if jsonwebtoken::DecodingKey::from_rsa_pem(&pem).is_ok() => Some(pem),
                Ok(_) => {
                    problems.push(format!(
                        "jamf_jwt_public_key {}: not a PEM RSA public key",
                        f.display()
                    ));
                    None
                }
                Err(e) => {
                    problems.push(format!("jamf_jwt_public_key {}: {e}", f.display()));
                    None
                }
            },
        };
        Jamf {
            allowed_hosts: raw
                .jamf_allowed_hosts
                .iter()
                .map(|h| h.trim().to_ascii_lowercase())
                .filter(|h| !h.is_empty())
                .collect(),
            scan_secs: raw.jamf_scan_secs.max(1),
            reconcile_secs: raw.jamf_reconcile_secs.max(1),
            webhook_secret: raw.jamf_webhook_secret.clone().filter(|s| !s.0.is_empty()),
            jwt_public_key,
            jwt_leeway_secs: raw.jamf_jwt_leeway_secs,
            jwt_issuer: raw.jamf_jwt_issuer.clone(),
            jwt_subject: raw.jamf_jwt_subject.clone(),
        }
    }
}
