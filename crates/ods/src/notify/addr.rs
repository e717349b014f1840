//! Which addresses a webhook may be sent to: not link-local and not a cloud metadata
//! endpoint (169.254.0.0/16, fe80::/10, fd00:ec2::254, 100.100.100.200, and those as
//! IPv4-mapped IPv6), unless the operator allows it (`ODS_WEBHOOK_ALLOW_LINK_LOCAL`).
//! Checked on the addresses the host name resolves to, at creation and again before
//! every send (the send then connects to exactly the addresses checked, so a DNS
//! answer that changes in between cannot slip through).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Why an address is refused, or `None` when it is allowed.
pub fn refused(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => refused_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return refused_v4(v4);
            }
            if (v6.segments()[0] & 0xffc0) == 0xfe80 {
                return Some("a link-local address (fe80::/10)");
            }
            if v6 == Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254) {
                return Some("a cloud metadata address");
            }
            None
        }
    }
}

fn refused_v4(v4: Ipv4Addr) -> Option<&'static str> {
    if v4.is_link_local() {
        return Some("a link-local or metadata address (169.254.0.0/16)");
    }
    if v4 == Ipv4Addr::new(100, 100, 100, 200) {
        return Some("a cloud metadata address");
    }
    None
}

/// Resolves `host:port` and checks every address; the addresses to connect to.
pub async fn resolve_checked(
    host: &str,
    port: u16,
    allow_link_local: bool,
) -> Result<Vec<SocketAddr>, String> {
    let host_only = host.trim_start_matches('[').trim_end_matches(']');
    let addrs: Vec<SocketAddr> = match host_only.parse::<IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, port)],
        Err(_) => tokio::net::lookup_host((host_only, port))
            .await
            .map_err(|e| format!("cannot resolve {host_only}: {e}"))?
            .collect(),
    };
    if addrs.is_empty() {
        return Err(format!("{host_only} resolves to no address"));
    }
    if !allow_link_local {
        for a in &addrs {
            if let Some(why) = refused(a.ip()) {
                return Err(format!(
                    "{host_only} resolves to {}, {why}; set ODS_WEBHOOK_ALLOW_LINK_LOCAL=true to allow it",
                    a.ip()
                ));
            }
        }
    }
    Ok(addrs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_local_and_metadata_are_refused() {
        for bad in [
            "169.254.169.254",
            "169.254.0.1",
            "fe80::1",
            "febf::1",
            "::ffff:169.254.169.254",
            "fd00:ec2::254",
            "100.100.100.200",
        ] {
            assert!(refused(bad.parse().unwrap()).is_some(), "{bad}");
        }
        for ok in [
            "127.0.0.1",
            "10.0.0.1",
            "8.8.8.8",
            "::1",
            "fec0::1",
            "2001:db8::1",
        ] {
            assert!(refused(ok.parse().unwrap()).is_none(), "{ok}");
        }
    }

    #[tokio::test]
    async fn literal_hosts_are_checked_without_dns() {
        assert!(resolve_checked("169.254.169.254", 80, false).await.is_err());
        assert!(resolve_checked("169.254.169.254", 80, true).await.is_ok());
        assert!(resolve_checked("[fe80::1]", 80, false).await.is_err());
        let ok = resolve_checked("127.0.0.1", 8080, false).await.unwrap();
        assert_eq!(ok, vec!["127.0.0.1:8080".parse().unwrap()]);
    }
}
