//! What the client takes from a WELCOME: the gateway pushes routes and DNS
//! servers, and a gateway (or whoever got hold of its key) must not be able
//! to take the whole host with them. No default route unless the user asked
//! for a full tunnel, nothing that covers the gateway's own address (its
//! packets would loop into the tunnel), and bounded lists.
use std::net::Ipv4Addr;

use crate::net::prefix::Ipv4Prefix;

/// At most this many pushed routes are installed.
pub const MAX_ROUTES: usize = 64;
/// At most this many pushed DNS servers are used (resolv.conf reads three).
pub const MAX_DNS: usize = 3;

/// The pushed routes to install, and a line for each one refused.
pub fn routes(pushed: &[(Ipv4Addr, u8)], gateway: Ipv4Addr) -> (Vec<Ipv4Prefix>, Vec<String>) {
    let mut keep = Vec::new();
    let mut refused = Vec::new();
    for (net, len) in pushed {
        match Ipv4Prefix::new(*net, *len) {
            Err(e) => refused.push(format!("{net}/{len}: {e}")),
            Ok(p) if p.prefix_len() == 0 => refused.push(format!(
                "{p}: a default route (use --full-tunnel to send everything)"
            )),
            Ok(p) if p.contains(gateway) => {
                refused.push(format!("{p}: covers the gateway's own address {gateway}"))
            }
            Ok(_) if keep.len() >= MAX_ROUTES => {
                refused.push(format!("{net}/{len}: more than {MAX_ROUTES} routes"))
            }
            Ok(p) => keep.push(p),
        }
    }
    (keep, refused)
}

/// The pushed DNS servers to use: unicast addresses, at most `MAX_DNS`.
pub fn dns(pushed: &[Ipv4Addr]) -> Vec<Ipv4Addr> {
    pushed
        .iter()
        .copied()
        .filter(|d| !d.is_unspecified() && !d.is_broadcast() && !d.is_multicast())
        .take(MAX_DNS)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    #[test]
    fn defaults_the_gateway_and_floods_are_refused() {
        let gw = ip("203.0.113.7");
        let mut pushed = vec![
            (ip("172.16.10.0"), 24),
            (ip("0.0.0.0"), 0),
            (ip("203.0.0.0"), 16),
            (ip("10.1.2.3"), 40),
        ];
        let (keep, refused) = routes(&pushed, gw);
        assert_eq!(keep, vec!["172.16.10.0/24".parse().unwrap()]);
        assert_eq!(refused.len(), 3, "{refused:?}");
        assert!(refused[0].contains("default route"));
        assert!(refused[1].contains("gateway's own address"));
        pushed = (0..100).map(|i| (Ipv4Addr::new(10, i, 0, 0), 16)).collect();
        let (keep, refused) = routes(&pushed, gw);
        assert_eq!((keep.len(), refused.len()), (MAX_ROUTES, 100 - MAX_ROUTES));
    }

    #[test]
    fn dns_is_unicast_and_bounded() {
        let got = dns(&[
            ip("0.0.0.0"),
            ip("172.16.10.2"),
            ip("255.255.255.255"),
            ip("224.0.0.1"),
            ip("1.1.1.1"),
            ip("8.8.8.8"),
            ip("9.9.9.9"),
        ]);
        assert_eq!(got, vec![ip("172.16.10.2"), ip("1.1.1.1"), ip("8.8.8.8")]);
    }
}
