//! Who the client of a request is: its address, the scheme and the host it asked for.
//! That is the socket peer, unless the peer is one of the `trusted_proxies`: only then
//! are `Forwarded` (RFC 7239) or, without it, `X-Forwarded-For`/`-Proto`/`-Host`
//! believed. The forwarding chain is walked from the right (the hop nearest to us),
//! skipping the hops that are themselves trusted proxies; the first one that is not is
//! the client. A hop that cannot be read (`unknown`, an obfuscated name, garbage) ends
//! the walk at the last trusted proxy, so a forged header never gets further than the
//! proxy that passed it on. The result is computed once per request by the listener and
//! read by the login limiter, the per-address rules and the request log.

use std::net::{IpAddr, SocketAddr};

use axum::http::request::Parts;
use axum::http::{HeaderMap, Request, header};
use ipnet::IpNet;

/// The client of one request, as far as ODS can tell (a request extension).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientInfo {
    /// The client's address: the socket peer, or the one a trusted proxy named.
    pub addr: IpAddr,
    /// `http` or `https`: what the client used to reach us (or the proxy).
    pub scheme: &'static str,
    /// The host (and port) the client asked for, if it said one.
    pub host: Option<String>,
    /// The socket peer is a trusted proxy.
    pub via_proxy: bool,
}

impl ClientInfo {
    /// The client of a request that came from `peer` with `headers` over a connection
    /// that is (`tls`) or is not TLS.
    pub fn resolve(peer: SocketAddr, headers: &HeaderMap, trusted: &[IpNet], tls: bool) -> Self {
        let peer_ip = canonical(peer.ip());
        let mut info = ClientInfo {
            addr: peer_ip,
            scheme: if tls { "https" } else { "http" },
            host: headers
                .get(header::HOST)
                .and_then(|v| v.to_str().ok())
                .and_then(valid_host),
            via_proxy: false,
        };
        if !is_trusted(peer_ip, trusted) {
            return info;
        }
        info.via_proxy = true;
        let hops = forwarded_hops(headers).unwrap_or_else(|| x_forwarded_hops(headers));
        // The nearest hop was written by the peer, a trusted proxy; each further hop
        // is believed only while the one that wrote it is trusted too.
        for hop in hops.iter().rev() {
            let Some(addr) = hop.addr else { break };
            info.addr = addr;
            if let Some(proto) = hop.proto {
                info.scheme = proto;
            }
            if let Some(host) = &hop.host {
                info.host = Some(host.clone());
            }
            if !is_trusted(addr, trusted) {
                break;
            }
        }
        info
    }
}

/// The client address of a request: the `ClientInfo` the listener computed, or the
/// socket peer when there is none (a router driven without the listener).
pub fn addr_of(parts: &Parts) -> Option<IpAddr> {
    if let Some(c) = parts.extensions.get::<ClientInfo>() {
        return Some(c.addr);
    }
    parts
        .extensions
        .get::<axum::extract::ConnectInfo<SocketAddr>>()
        .map(|c| canonical(c.0.ip()))
}

/// The span each request is logged in: method, path and the client address.
pub fn span<B>(req: &Request<B>) -> tracing::Span {
    let client = req.extensions().get::<ClientInfo>();
    // (The fields are only evaluated when the span is enabled.)
    tracing::info_span!(
        "request",
        method = %req.method(),
        uri = %req.uri().path(),
        client = %client.map(|c| c.addr.to_string()).unwrap_or_default(),
        via_proxy = client.is_some_and(|c| c.via_proxy),
    )
}

fn is_trusted(ip: IpAddr, trusted: &[IpNet]) -> bool {
    trusted.iter().any(|n| n.contains(&ip))
}

/// An IPv4 address mapped into IPv6 (a dual-stack socket) as the IPv4 address.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(IpAddr::V4)
            .unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    }
}

/// One proxy hop: the address it received the request from, and what it says the
/// scheme and host were.
#[derive(Debug, Default)]
struct Hop {
    addr: Option<IpAddr>,
    proto: Option<&'static str>,
    host: Option<String>,
}

/// The hops of every `Forwarded` header, in order, or `None` when there is none.
fn forwarded_hops(headers: &HeaderMap) -> Option<Vec<Hop>> {
    let mut values = headers.get_all(header::FORWARDED).iter().peekable();
    values.peek()?;
    let mut hops = Vec::new();
    for value in values {
        let Ok(text) = value.to_str() else {
            // Unreadable: no hop of it can be believed.
            hops.push(Hop::default());
            continue;
        };
        for element in split_unquoted(text, ',') {
            let mut hop = Hop::default();
            for pair in split_unquoted(element, ';') {
                let Some((k, v)) = pair.split_once('=') else {
                    continue;
                };
                let v = unquote(v.trim());
                match k.trim().to_ascii_lowercase().as_str() {
                    "for" => hop.addr = parse_node(&v),
                    "proto" => hop.proto = parse_proto(&v),
                    "host" => hop.host = valid_host(&v),
                    _ => {}
                }
            }
            hops.push(hop);
        }
    }
    Some(hops)
}

/// The hops of `X-Forwarded-For`, with `X-Forwarded-Proto` and `-Host` (the values the
/// nearest proxy set) on the nearest hop.
fn x_forwarded_hops(headers: &HeaderMap) -> Vec<Hop> {
    let mut hops: Vec<Hop> = headers
        .get_all("x-forwarded-for")
        .iter()
        .flat_map(|v| match v.to_str() {
            Ok(t) => t
                .split(',')
                .map(|a| Hop {
                    addr: parse_node(a.trim()),
                    ..Hop::default()
                })
                .collect(),
            Err(_) => vec![Hop::default()],
        })
        .collect();
    let last = |name: &str| {
        headers
            .get_all(name)
            .iter()
            .next_back()
            .and_then(|v| v.to_str().ok())
            .and_then(|t| t.rsplit(',').next())
            .map(|t| t.trim().to_string())
    };
    if let Some(hop) = hops.last_mut() {
        hop.proto = last("x-forwarded-proto").as_deref().and_then(parse_proto);
        hop.host = last("x-forwarded-host").as_deref().and_then(valid_host);
    }
    hops
}

/// An address as a proxy writes it: `192.0.2.1`, `192.0.2.1:4711`, `[2001:db8::1]`,
/// `[2001:db8::1]:4711` or a bare IPv6 address. Anything else (`unknown`, `_hidden`)
/// is no address.
fn parse_node(text: &str) -> Option<IpAddr> {
    let text = text.trim();
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Some(canonical(ip));
    }
    if let Ok(sa) = text.parse::<SocketAddr>() {
        return Some(canonical(sa.ip()));
    }
    let inner = text.strip_prefix('[')?;
    let (ip, _) = inner.split_once(']')?;
    ip.parse::<IpAddr>().ok().map(canonical)
}

fn parse_proto(text: &str) -> Option<&'static str> {
    if text.eq_ignore_ascii_case("https") {
        Some("https")
    } else if text.eq_ignore_ascii_case("http") {
        Some("http")
    } else {
        None
    }
}

/// A host[:port] that is a valid URI authority without user info, as written.
fn valid_host(text: &str) -> Option<String> {
    let a: axum::http::uri::Authority = text.trim().parse().ok()?;
    if a.as_str().contains('@') || a.host().is_empty() {
        return None;
    }
    Some(a.as_str().to_string())
}

/// `text` split at `sep` outside double quotes.
fn split_unquoted(text: &str, sep: char) -> Vec<&str> {
    let (mut out, mut start, mut quoted, mut escaped) = (Vec::new(), 0, false, false);
    for (i, c) in text.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            c if c == sep && !quoted => {
                out.push(text[start..i].trim());
                start = i + c.len_utf8();
            }
            _ => {}
        }
    }
    out.push(text[start..].trim());
    out.into_iter().filter(|s| !s.is_empty()).collect()
}

/// A quoted-string's content (backslash escapes removed), or a token as is.
fn unquote(text: &str) -> String {
    match text.strip_prefix('"').and_then(|t| t.strip_suffix('"')) {
        None => text.to_string(),
        Some(inner) => {
            let mut out = String::with_capacity(inner.len());
            let mut chars = inner.chars();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => out.extend(chars.next()),
                    c => out.push(c),
                }
            }
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(peer: &str, headers: &[(&str, &str)], trusted: &[&str]) -> ClientInfo {
        let mut h = HeaderMap::new();
        for (k, v) in headers {
            h.append(
                axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        let trusted: Vec<IpNet> = trusted.iter().map(|t| t.parse().unwrap()).collect();
        ClientInfo::resolve(peer.parse().unwrap(), &h, &trusted, false)
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn headers_from_an_untrusted_peer_are_ignored() {
        let c = resolve(
            "198.51.100.9:5000",
            &[
                ("x-forwarded-for", "203.0.113.7"),
                ("x-forwarded-proto", "https"),
                ("forwarded", "for=203.0.113.8;proto=https;host=evil"),
                ("host", "ods.example:8080"),
            ],
            &["10.0.0.0/8"],
        );
        assert_eq!(c.addr, ip("198.51.100.9"));
        assert_eq!(c.scheme, "http");
        assert_eq!(c.host.as_deref(), Some("ods.example:8080"));
        assert!(!c.via_proxy);
        // And with no trusted proxies at all (the default).
        let c = resolve("10.0.0.1:1", &[("x-forwarded-for", "203.0.113.7")], &[]);
        assert_eq!(c.addr, ip("10.0.0.1"));
    }

    #[test]
    fn x_forwarded_for_is_walked_from_the_right_past_trusted_hops() {
        let trusted = ["10.0.0.0/8"];
        // The client forged the leftmost entry; the proxy appended the real one.
        let c = resolve(
            "10.0.0.1:1",
            &[
                ("x-forwarded-for", "1.1.1.1, 203.0.113.7, 10.0.0.2"),
                ("x-forwarded-proto", "https"),
                ("x-forwarded-host", "ods.example"),
            ],
            &trusted,
        );
        assert_eq!(c.addr, ip("203.0.113.7"));
        assert_eq!(c.scheme, "https");
        assert_eq!(c.host.as_deref(), Some("ods.example"));
        assert!(c.via_proxy);
        // Every hop trusted: the leftmost is the client.
        let c = resolve("10.0.0.1:1", &[("x-forwarded-for", "10.1.1.1")], &trusted);
        assert_eq!(c.addr, ip("10.1.1.1"));
        // Garbage ends the walk at the last trusted hop.
        let c = resolve(
            "10.0.0.1:1",
            &[("x-forwarded-for", "203.0.113.7, bogus")],
            &trusted,
        );
        assert_eq!(c.addr, ip("10.0.0.1"));
        // Several headers count as one list; ports and brackets are read.
        let c = resolve(
            "10.0.0.1:1",
            &[
                ("x-forwarded-for", "9.9.9.9"),
                ("x-forwarded-for", "[2001:db8::5]:4711"),
            ],
            &trusted,
        );
        assert_eq!(c.addr, ip("2001:db8::5"));
        // A bad proto or host from a trusted proxy is not taken.
        let c = resolve(
            "10.0.0.1:1",
            &[
                ("x-forwarded-for", "203.0.113.7"),
                ("x-forwarded-proto", "gopher"),
                ("x-forwarded-host", "a b/c"),
                ("host", "inner:8080"),
            ],
            &trusted,
        );
        assert_eq!((c.scheme, c.host.as_deref()), ("http", Some("inner:8080")));
        // No header from a trusted proxy: the proxy is the client.
        let c = resolve("10.0.0.1:1", &[], &trusted);
        assert_eq!(c.addr, ip("10.0.0.1"));
    }

    #[test]
    fn forwarded_wins_and_is_parsed_as_rfc_7239() {
        let trusted = ["10.0.0.0/8", "::1/128"];
        let c = resolve(
            "[::1]:1",
            &[
                ("x-forwarded-for", "198.51.100.1"),
                (
                    "forwarded",
                    r#"for=1.1.1.1, for="[2001:db8:cafe::17]:4711";proto=https;host="ods.example:8443""#,
                ),
                ("forwarded", "for=10.0.0.3;proto=http;by=10.0.0.1"),
            ],
            &trusted,
        );
        assert_eq!(c.addr, ip("2001:db8:cafe::17"));
        assert_eq!(c.scheme, "https");
        assert_eq!(c.host.as_deref(), Some("ods.example:8443"));
        // Obfuscated or unknown: stop at the proxy that wrote it.
        let c = resolve(
            "10.0.0.1:1",
            &[("forwarded", "for=203.0.113.7, for=_hidden")],
            &trusted,
        );
        assert_eq!(c.addr, ip("10.0.0.1"));
        let c = resolve(
            "10.0.0.1:1",
            &[("forwarded", r#"for="192.0.2.43:47011";proto="HTTPS""#)],
            &trusted,
        );
        assert_eq!((c.addr, c.scheme), (ip("192.0.2.43"), "https"));
    }

    #[test]
    fn mapped_ipv4_is_ipv4() {
        let c = resolve(
            "[::ffff:10.0.0.1]:1",
            &[("x-forwarded-for", "203.0.113.7")],
            &["10.0.0.0/8"],
        );
        assert_eq!(c.addr, ip("203.0.113.7"));
    }
}
