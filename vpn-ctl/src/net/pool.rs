//! Choosing the client pool: the configured one must not overlap the host's
//! networks; without one, the first free candidate is taken.
use anyhow::bail;

use super::{netlink::HostNetwork, prefix::Ipv4Prefix};

/// Candidates in order of preference, from rarely used private ranges.
pub const CANDIDATES: [&str; 6] = [
    "10.99.0.0/24",
    "10.98.0.0/24",
    "10.97.0.0/24",
    "172.29.99.0/24",
    "172.28.99.0/24",
    "192.168.213.0/24",
];

pub fn choose(configured: Option<Ipv4Prefix>, host: &[HostNetwork]) -> anyhow::Result<Ipv4Prefix> {
    if let Some(pool) = configured {
        if let Some(n) = host.iter().find(|n| n.prefix.overlaps(&pool)) {
            bail!("pool {pool} overlaps the host's {}", n.what);
        }
        return Ok(pool);
    }
    for c in CANDIDATES {
        let p: Ipv4Prefix = c.parse().map_err(anyhow::Error::msg)?;
        if !host.iter().any(|n| n.prefix.overlaps(&p)) {
            return Ok(p);
        }
    }
    bail!(
        "every default pool candidate ({}) overlaps a network of this host: set gateway.pool",
        CANDIDATES.join(", ")
    )
}

/// Routes pushed to clients: `gateway.push_routes`, or the networks of
/// the gateway's interfaces other than the WAN (its LANs).
pub fn pushed_routes(
    cfg: &crate::config::Config,
    host_networks: &[HostNetwork],
    wan: &str,
    pool: Ipv4Prefix,
) -> Vec<Ipv4Prefix> {
    match &cfg.gateway.push_routes {
        Some(r) => r.clone(),
        None => host_networks
            .iter()
            .filter(|h| h.ifname.as_deref().is_some_and(|i| i != wan && i != "lo"))
            .map(|h| h.prefix)
            .filter(|p| !p.overlaps(&pool))
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> HostNetwork {
        HostNetwork {
            prefix: s.parse().unwrap(),
            what: format!("route {s}"),
            ifname: None,
        }
    }

    #[test]
    fn skips_taken_candidates() {
        let host = [net("10.99.0.0/16"), net("10.96.0.0/14")];
        assert_eq!(choose(None, &host).unwrap().to_string(), "172.29.99.0/24");
    }

    #[test]
    fn configured_overlap_is_named() {
        let err = choose(Some("10.0.0.0/8".parse().unwrap()), &[net("10.1.2.0/24")])
            .unwrap_err()
            .to_string();
        assert_eq!(err, "pool 10.0.0.0/8 overlaps the host's route 10.1.2.0/24");
    }
}
