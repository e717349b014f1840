//! The blob storage settings (`ODS_STORAGE` and the S3 keys), checked once at start:
//! `local` or an `s3://bucket/prefix` URL, a plain-http endpoint only on loopback,
//! and `download_redirect` only with S3.

use std::time::Duration;

use super::Settings;
use crate::storage::s3::S3Options;

/// Where blobs live.
#[derive(Debug, Clone)]
pub enum Storage {
    /// `DATA_DIR/blobs` (and the staging directory).
    Local,
    S3(S3Options),
}

/// The storage settings: the store in use, and the S3 connection settings any
/// `s3://` URL is opened with (`ods storage migrate --to`).
#[derive(Debug, Clone)]
pub struct StorageConfig {
    pub store: Storage,
    s3: S3Options,
}

impl StorageConfig {
    pub(super) fn from_settings(raw: &Settings, problems: &mut Vec<String>) -> StorageConfig {
        let endpoint = raw
            .s3_endpoint
            .clone()
            .filter(|e| !e.is_empty())
            .map(|e| e.trim_end_matches('/').to_string());
        if let Some(e) = &endpoint
            && let Err(why) = check_endpoint(e)
        {
            problems.push(why);
        }
        let s3 = S3Options {
            bucket: String::new(),
            prefix: String::new(),
            path_style: raw.s3_path_style.unwrap_or(endpoint.is_some()),
            endpoint,
            region: raw
                .s3_region
                .clone()
                .filter(|r| !r.is_empty())
                .unwrap_or_else(|| "us-east-1".into()),
            access_key_id: raw.aws_access_key_id.as_ref().map(|s| s.0.clone()),
            secret_access_key: raw.aws_secret_access_key.as_ref().map(|s| s.0.clone()),
            session_token: raw.aws_session_token.as_ref().map(|s| s.0.clone()),
            max_copy_bytes: raw.s3_max_copy_bytes,
            redirect: raw
                .download_redirect
                .then(|| Duration::from_secs(raw.download_redirect_secs)),
        };
        let mut cfg = StorageConfig {
            store: Storage::Local,
            s3,
        };
        match cfg.parse(&raw.storage) {
            Ok(store) => cfg.store = store,
            Err(why) => problems.push(why),
        }
        if raw.download_redirect && matches!(cfg.store, Storage::Local) {
            problems.push(
                "ODS_DOWNLOAD_REDIRECT needs S3 storage (ODS_STORAGE=s3://...): local blobs have no URL to redirect to".into(),
            );
        }
        cfg
    }

    /// `local` or `s3://bucket[/prefix]`, opened with these settings.
    pub fn parse(&self, url: &str) -> Result<Storage, String> {
        if url == "local" {
            return Ok(Storage::Local);
        }
        let bad =
            || format!("ODS_STORAGE {url:?} is neither `local` nor an s3://BUCKET/PREFIX URL");
        let rest = url.strip_prefix("s3://").ok_or_else(bad)?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        let bucket_ok = (3..=63).contains(&bucket.len())
            && bucket
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
        let prefix = prefix.trim_matches('/');
        if !bucket_ok || prefix.contains("//") || prefix.contains('?') || prefix.contains('#') {
            return Err(bad());
        }
        Ok(Storage::S3(S3Options {
            bucket: bucket.into(),
            prefix: prefix.into(),
            ..self.s3.clone()
        }))
    }
}

/// An endpoint is an http(s) URL; plain http only to a loopback host.
fn check_endpoint(e: &str) -> Result<(), String> {
    let url = url::Url::parse(e).map_err(|_| format!("AWS_ENDPOINT_URL {e:?} is not a URL"))?;
    match url.scheme() {
        "https" => Ok(()),
        "http" => {
            let loopback = match url.host() {
                Some(url::Host::Ipv4(a)) => a.is_loopback(),
                Some(url::Host::Ipv6(a)) => a.is_loopback(),
                Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
                None => false,
            };
            if loopback {
                Ok(())
            } else {
                Err(format!(
                    "AWS_ENDPOINT_URL {e} is plain http to a host that is not loopback: credentials and blobs would cross the network in the clear; use https"
                ))
            }
        }
        _ => Err(format!("AWS_ENDPOINT_URL {e:?} must be an http(s) URL")),
    }
}
