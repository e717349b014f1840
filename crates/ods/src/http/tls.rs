//! Built-in TLS: the server certificate and key (PEM files named by `tls_cert` and
//! `tls_key`), served with rustls over aws-lc-rs with ALPN `h2` and `http/1.1`. The
//! files are read again on SIGHUP and whenever their modification time changes (polled
//! every two seconds), with no restart; a new pair that does not load keeps the old one
//! in service and the log says why.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use anyhow::Context;
use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

/// The certificate in service and where it comes from.
pub struct Tls {
    cert: PathBuf,
    key: PathBuf,
    current: RwLock<TlsAcceptor>,
}

impl Tls {
    /// Loads the pair, or says what is wrong with it (at start: the server does not
    /// start without a working certificate).
    pub fn load(cert: &Path, key: &Path) -> anyhow::Result<Arc<Tls>> {
        let config = build(cert, key)?;
        Ok(Arc::new(Tls {
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
            current: RwLock::new(TlsAcceptor::from(Arc::new(config))),
        }))
    }

    /// The acceptor for a new connection (connections keep the one they started with).
    pub fn acceptor(&self) -> TlsAcceptor {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Reads the files again; on failure keeps the certificate in service.
    pub fn reload(&self) -> bool {
        match build(&self.cert, &self.key) {
            Ok(config) => {
                *self.current.write().unwrap_or_else(|p| p.into_inner()) =
                    TlsAcceptor::from(Arc::new(config));
                tracing::info!(cert = %self.cert.display(), "TLS certificate reloaded");
                true
            }
            Err(e) => {
                tracing::error!(
                    cert = %self.cert.display(),
                    error = %format!("{e:#}"),
                    "the new TLS certificate does not load; still serving the previous one"
                );
                false
            }
        }
    }

    /// Reloads on SIGHUP and when either file changes, until `stop`.
    pub fn watch(self: Arc<Self>, stop: CancellationToken) {
        tokio::spawn(async move {
            let mut hup = match tokio::signal::unix::signal(
                tokio::signal::unix::SignalKind::hangup(),
            ) {
                Ok(s) => Some(s),
                Err(e) => {
                    tracing::warn!(%e, "cannot listen for SIGHUP; certificate files are still polled");
                    None
                }
            };
            let mut seen = self.stamps();
            let mut tick = tokio::time::interval(Duration::from_secs(2));
            loop {
                let signalled = tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tick.tick() => false,
                    Some(()) = async { match hup.as_mut() { Some(h) => h.recv().await, None => std::future::pending().await } } => true,
                };
                let now = self.stamps();
                if signalled || now != seen {
                    seen = now;
                    self.reload();
                }
            }
        });
    }

    fn stamps(&self) -> (Option<SystemTime>, Option<SystemTime>) {
        let m = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
        (m(&self.cert), m(&self.key))
    }
}

fn build(cert: &Path, key: &Path) -> anyhow::Result<ServerConfig> {
    let certs = CertificateDer::pem_file_iter(cert)
        .and_then(|i| i.collect::<Result<Vec<_>, _>>())
        .with_context(|| {
            format!(
                "tls_cert {}: not a readable PEM certificate chain",
                cert.display()
            )
        })?;
    anyhow::ensure!(
        !certs.is_empty(),
        "tls_cert {}: no certificate in it",
        cert.display()
    );
    let key = PrivateKeyDer::from_pem_file(key)
        .with_context(|| format!("tls_key {}: not a readable PEM private key", key.display()))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .context("the TLS key does not match the certificate, or is of an unsupported kind")?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}
