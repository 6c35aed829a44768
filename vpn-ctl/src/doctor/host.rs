//! A snapshot of what the doctor's checks look at on this host: sysctls,
//! routes, the WAN's address and MTU, the host firewall, who listens on
//! which port, BTF. Gathered once; the checks themselves do no I/O.
use std::{net::Ipv4Addr, path::Path, process::Command};

use crate::{
    config::Config,
    net::{firewall, netlink::HostNetwork, prefix::Ipv4Prefix},
};

use super::ports::{self, Listener};

#[derive(Debug, Default)]
pub struct Host {
    pub ip_forward: Option<bool>,
    /// (interface or "all", value) of net.ipv4.conf.*.rp_filter.
    pub rp_filter: Vec<(String, u8)>,
    /// The default route's interface, if there is one.
    pub default_route: Option<String>,
    pub networks: Vec<HostNetwork>,
    pub wan: Option<Wan>,
    /// What the host firewall would reject (iptables), as the daemon
    /// reports it at start.
    pub firewall: Vec<firewall::Finding>,
    /// GRE (PPTP) and ESP blocked by the host firewall: the rule.
    pub gre_blocked: Option<String>,
    pub esp_blocked: Option<String>,
    pub listeners: Vec<Listener>,
    pub btf: bool,
    /// The output interface of the route to this address (pool check).
    pub route_to_pool: Option<String>,
    /// With RADIUS: each server and whether it answered a Status-Server.
    pub radius: Vec<(Ipv4Addr, bool)>,
}

#[derive(Debug, Clone)]
pub struct Wan {
    pub name: String,
    pub address: Option<Ipv4Addr>,
    pub mtu: Option<u32>,
}

fn read_trimmed(path: impl AsRef<Path>) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_string())
}

fn sysctl_conf(iface: &str, key: &str) -> Option<u8> {
    read_trimmed(format!("/proc/sys/net/ipv4/conf/{iface}/{key}"))?
        .parse()
        .ok()
}

/// The first IPv4 address and the MTU of an interface (`ip -o -4 addr`).
fn wan_details(name: &str) -> Wan {
    let addr = Command::new("ip")
        .args(["-o", "-4", "addr", "show", "dev", name])
        .output()
        .ok()
        .and_then(|o| {
            let text = String::from_utf8_lossy(&o.stdout).into_owned();
            text.split_whitespace()
                .skip_while(|w| *w != "inet")
                .nth(1)
                .and_then(|a| a.split('/').next()?.parse().ok())
        });
    // From `ip link`, not /sys/class/net: /sys shows the namespace it was
    // mounted in, which need not be ours.
    let mtu = Command::new("ip")
        .args(["-o", "link", "show", "dev", name])
        .output()
        .ok()
        .and_then(|o| {
            let text = String::from_utf8_lossy(&o.stdout).into_owned();
            let mut w = text.split_whitespace();
            w.find(|x| *x == "mtu")?;
            w.next()?.parse().ok()
        });
    Wan {
        name: name.to_string(),
        address: addr,
        mtu,
    }
}

/// The interface `ip route get ADDR` would send through.
fn route_dev(addr: Ipv4Addr) -> Option<String> {
    let out = Command::new("ip")
        .args(["-o", "-4", "route", "get", &addr.to_string()])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut words = text.split_whitespace();
    words.find(|w| *w == "dev")?;
    words.next().map(str::to_string)
}

impl Host {
    /// Looks at this host (in the caller's network namespace).
    pub fn gather(cfg: &Config, pool: Option<Ipv4Prefix>) -> anyhow::Result<Host> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let (default_route, networks) = rt.block_on(async {
            let nl = crate::net::netlink::Netlink::connect()?;
            let default = match nl.default_route_ifindex().await? {
                Some(i) => Some(nl.link_name(i).await?),
                None => None,
            };
            anyhow::Ok((default, nl.host_networks().await?))
        })?;
        let wan_name = cfg.gateway.wan.clone().or_else(|| default_route.clone());
        let mut rp_filter = Vec::new();
        let mut ifaces = vec!["all".to_string(), cfg.gateway.vpn_interface.clone()];
        ifaces.extend(wan_name.clone());
        for i in ifaces {
            if let Some(v) = sysctl_conf(&i, "rp_filter") {
                rp_filter.push((i, v));
            }
        }
        let pool_or_default = pool.unwrap_or_else(|| "10.99.0.0/24".parse().expect("prefix"));
        let (gre_blocked, esp_blocked) = firewall::blocked_protocols();
        Ok(Host {
            ip_forward: read_trimmed("/proc/sys/net/ipv4/ip_forward").map(|v| v == "1"),
            rp_filter,
            default_route,
            networks,
            wan: wan_name.as_deref().map(wan_details),
            firewall: firewall::check(&cfg.listeners(), pool_or_default),
            gre_blocked,
            esp_blocked,
            listeners: ports::listeners(),
            btf: Path::new("/sys/kernel/btf/vmlinux").exists(),
            route_to_pool: pool.and_then(|p| p.nth(2)).and_then(route_dev),
            radius: radius_probes(&cfg.radius),
        })
    }
}

/// Sends each RADIUS server a Status-Server (twice, `timeout_ms` apart, at
/// most 2 s each) and notes whether a verified answer came.
fn radius_probes(cfg: &crate::config::RadiusConfig) -> Vec<(Ipv4Addr, bool)> {
    use vpn_proto::radius::packet;
    if !cfg.enabled {
        return Vec::new();
    }
    let wait = std::time::Duration::from_millis(cfg.timeout_ms.min(2000).into());
    cfg.servers
        .iter()
        .map(|s| {
            let answered = (|| -> Option<bool> {
                let sock = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
                sock.set_read_timeout(Some(wait)).ok()?;
                let auth: [u8; 16] = rand::random();
                let id: u8 = rand::random();
                let secret = s.secret.as_bytes();
                let req = packet::encode_status_server(id, auth, &cfg.nas_identifier, secret);
                let mut buf = [0u8; 4096];
                for _ in 0..2 {
                    sock.send_to(&req, (s.address, s.auth_port)).ok()?;
                    let deadline = std::time::Instant::now() + wait;
                    while std::time::Instant::now() < deadline {
                        let Ok((n, _)) = sock.recv_from(&mut buf) else {
                            break;
                        };
                        if buf[1] == id && packet::verify_response(&buf[..n], &auth, secret).is_ok()
                        {
                            return Some(true);
                        }
                    }
                }
                Some(false)
            })()
            .unwrap_or(false);
            (s.address, answered)
        })
        .collect()
}
