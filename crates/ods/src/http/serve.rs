//! Accepting and serving connections: HTTP/1.1 and HTTP/2 (by preface) over the
//! router, with the limits a server on an open network needs. Request headers must
//! arrive within a deadline; a request body that stops sending is cut off after an idle
//! time; open connections are capped overall and per client address, with a share of
//! the slots kept for the admin networks so a flood cannot lock the admins out. A
//! response body has no deadline: a 30 GB download on a slow but live link goes on as
//! long as the client keeps reading. With TLS (`http::tls`) the handshake runs in the
//! connection's task under the header deadline. Each request gets its `ClientInfo`
//! (`http::client`); trusted proxies are exempt from the per-address cap. Shutdown is
//! graceful.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;
use tower_http::timeout::TimeoutBody;

use super::client::ClientInfo;
use super::tls::Tls;
pub use crate::config::Limits;

/// Raises this process's open-file limit to its hard limit, and returns the limit now
/// in force (each connection costs one descriptor, each download one more).
pub fn raise_fd_limit() -> u64 {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut l = getrlimit(Resource::Nofile);
    if let Some(hard) = l.maximum
        && l.current != Some(hard)
    {
        l.current = Some(hard);
        if let Err(e) = setrlimit(Resource::Nofile, l) {
            tracing::warn!(%e, "could not raise the open-file limit");
        }
    }
    getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX)
}

/// An accepted connection: plain (sending download bodies from their files) or
/// waiting for its TLS handshake.
enum Accepted {
    Plain(super::zero_copy::Conn),
    Tls(TcpStream, tokio_rustls::TlsAcceptor),
}

/// Counts open connections, overall and per address.
#[derive(Default)]
struct Gate {
    open: Mutex<(usize, HashMap<IpAddr, usize>)>,
}

/// One admitted connection; dropping it frees its slot.
struct Slot {
    gate: Arc<Gate>,
    ip: IpAddr,
}

/// Slots of `max_connections` only the admin networks may take: a twentieth, at
/// least one.
fn reserved(l: &Limits) -> usize {
    (l.max_connections / 20).max(1)
}

impl Gate {
    fn admit(self: &Arc<Self>, ip: IpAddr, limits: &Limits) -> Option<Slot> {
        let admin = limits.admin_networks.iter().any(|n| n.contains(&ip));
        let proxy = limits.trusted_proxies.iter().any(|n| n.contains(&ip));
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let (total, by_ip) = &mut *open;
        let cap = if admin {
            limits.max_connections
        } else {
            limits.max_connections.saturating_sub(reserved(limits))
        };
        let mine = by_ip.get(&ip).copied().unwrap_or(0);
        if *total >= cap || (!admin && !proxy && mine >= limits.max_per_address) {
            return None;
        }
        *total += 1;
        *by_ip.entry(ip).or_insert(0) += 1;
        Some(Slot {
            gate: self.clone(),
            ip,
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.gate.open.lock().unwrap_or_else(|p| p.into_inner());
        let (total, by_ip) = &mut *open;
        *total -= 1;
        if let Some(n) = by_ip.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                by_ip.remove(&self.ip);
            }
        }
    }
}

/// What a refused connection is told, if its socket takes it at once.
const REFUSED: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
cache-control: no-store\r\nretry-after: 5\r\nconnection: close\r\ncontent-length: 103\r\n\r\n\
{\"error\":{\"code\":\"too_many_connections\",\"message\":\"too many open connections; try again later\"}}";

/// Serves `router` on `listener` until `stop` is cancelled, then lets open requests
/// finish for up to ten seconds.
pub async fn serve(
    listener: TcpListener,
    router: super::Service,
    limits: Limits,
    tls: Option<Arc<Tls>>,
    stop: CancellationToken,
) -> std::io::Result<()> {
    let limits = Arc::new(limits);
    let gate = Arc::new(Gate::default());
    let graceful = GracefulShutdown::new();
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        // Room for the header limits `headers::limit_request_head` answers in JSON.
        .max_buf_size(256 * 1024)
        .max_headers(super::headers::MAX_HEADERS * 2);
    builder.http2().timer(TokioTimer::new());
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of descriptors or a connection reset before accept: never
                    // spin, never stop serving.
                    tracing::warn!(%e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = stop.cancelled() => break,
        };
        let Some(slot) = gate.admit(peer.ip(), &limits) else {
            refuse(stream, peer);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let router = router.clone();
        let idle = limits.body_idle_timeout;
        let for_req = limits.clone();
        let secure = tls.is_some();
        // Plain connections send download bodies from their files (`zero_copy`).
        let (stream, zero_copy) = match &tls {
            None => {
                let (conn, handle) = super::zero_copy::Conn::new(stream);
                (Accepted::Plain(conn), Some(handle))
            }
            Some(t) => (Accepted::Tls(stream, t.acceptor()), None),
        };
        let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
            let client = ClientInfo::resolve(peer, req.headers(), &for_req.trusted_proxies, secure);
            req.extensions_mut().insert(ConnectInfo(peer));
            req.extensions_mut().insert(client);
            if let Some(z) = &zero_copy {
                req.extensions_mut().insert(z.clone());
            }
            let req = req.map(|body| axum::body::Body::new(TimeoutBody::new(idle, body)));
            let router = router.clone();
            async move { router.oneshot(req).await }
        });
        let builder = builder.clone();
        let watcher = graceful.watcher();
        let handshake = limits.header_timeout;
        tokio::spawn(async move {
            let ended = match stream {
                Accepted::Plain(conn) => {
                    let conn = builder.serve_connection_with_upgrades(TokioIo::new(conn), service);
                    watcher.watch(conn.into_owned()).await
                }
                Accepted::Tls(stream, acceptor) => {
                    // The handshake is part of the request head: same deadline.
                    match tokio::time::timeout(handshake, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => {
                            let conn =
                                builder.serve_connection_with_upgrades(TokioIo::new(tls), service);
                            watcher.watch(conn.into_owned()).await
                        }
                        Ok(Err(e)) => {
                            tracing::debug!(%peer, error = %e, "TLS handshake failed");
                            Ok(())
                        }
                        Err(_) => {
                            tracing::debug!(%peer, "TLS handshake timed out");
                            Ok(())
                        }
                    }
                }
            };
            if let Err(e) = ended {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
            drop(slot);
        });
    }
    drop(listener);
    if tokio::time::timeout(Duration::from_secs(10), graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("some connections were still open after 10 s; closing them");
    }
    Ok(())
}

/// Tells a refused client why, without waiting on it, and closes.
fn refuse(stream: TcpStream, peer: SocketAddr) {
    tracing::debug!(%peer, "connection refused: over the connection limits");
    let _ = stream.try_write(REFUSED);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(max: usize, per: usize) -> Limits {
        Limits {
            header_timeout: Duration::from_secs(1),
            body_idle_timeout: Duration::from_secs(1),
            max_connections: max,
            max_per_address: per,
            admin_networks: vec!["127.0.0.0/8".parse().unwrap()],
            trusted_proxies: vec!["10.1.0.0/16".parse().unwrap()],
        }
    }

    #[test]
    fn per_address_and_total_caps_keep_room_for_admins() {
        let gate = Arc::new(Gate::default());
        let l = limits(40, 10);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let held: Vec<Slot> = (0..10).map(|_| gate.admit(a, &l).unwrap()).collect();
        assert!(gate.admit(a, &l).is_none(), "per-address cap");
        // Others fill the rest, up to the admins' reserve (40 / 20 = 2 slots).
        let others: Vec<Slot> = (0..28)
            .map(|i| gate.admit(IpAddr::from([10, 0, 1, i as u8]), &l).unwrap())
            .collect();
        assert!(
            gate.admit("10.9.9.9".parse().unwrap(), &l).is_none(),
            "reserve kept"
        );
        let admin: IpAddr = "127.0.0.1".parse().unwrap();
        let a1 = gate
            .admit(admin, &l)
            .expect("an admin gets a reserved slot");
        let a2 = gate.admit(admin, &l).expect("and another");
        assert!(gate.admit(admin, &l).is_none(), "the total is a hard cap");
        drop((a1, a2));
        drop(held);
        assert!(
            gate.admit(a, &l).is_some(),
            "slots come back when connections close"
        );
        drop(others);
        // A trusted proxy carries many clients: no per-address cap for it.
        let proxy: IpAddr = "10.1.0.1".parse().unwrap();
        let via: Vec<Slot> = (0..20).map(|_| gate.admit(proxy, &l).unwrap()).collect();
        drop(via);
        assert_eq!(gate.open.lock().unwrap().0, 0);
        assert!(gate.open.lock().unwrap().1.is_empty());
    }
}
