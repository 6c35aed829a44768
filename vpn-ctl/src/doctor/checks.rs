//! The checks: each reads `Inputs` and adds findings. No I/O here.
use std::net::Ipv4Addr;

use super::{classful, Finding, Inputs};
use crate::net::prefix::Ipv4Prefix;

fn running_pool(i: &Inputs) -> Option<Ipv4Prefix> {
    i.running.and_then(|s| s.pool.parse().ok())
}

/// The pool `up` uses: the running one, else the configured one, else
/// the one `up` would pick on this host.
fn the_pool(i: &Inputs) -> Option<Ipv4Prefix> {
    running_pool(i)
        .or(i.cfg.gateway.pool)
        .or_else(|| crate::net::pool::choose(None, &i.host.networks).ok())
}

pub fn firewall(i: &Inputs, out: &mut Vec<Finding>) {
    for f in &i.host.firewall {
        let rules: Vec<String> = f
            .fix
            .iter()
            .map(|r| format!("iptables -I {}", r.join(" ")))
            .collect();
        out.push(Finding::new(
            "firewall",
            f.message.clone(),
            format!(
                "set `[firewall] open_ports = true` (vpn-ctl inserts and removes the rules), or: {}",
                rules.join("; ")
            ),
        ));
    }
    if i.cfg.pptp.enabled {
        if let Some(by) = &i.host.gre_blocked {
            out.push(Finding::new(
                "firewall",
                format!("host firewall: iptables INPUT {by} blocks GRE: PPTP connects but passes no data"),
                "iptables -I INPUT -p gre -m comment --comment vpn-ctl -j ACCEPT",
            ));
        }
    }
    if i.cfg.ipsec_enabled() && i.cfg.ipsec.raw_esp {
        if let Some(by) = &i.host.esp_blocked {
            out.push(Finding::new(
                "firewall",
                format!("host firewall: iptables INPUT {by} blocks ESP: L2TP/IPsec clients not behind NAT connect but pass no data"),
                "iptables -I INPUT -p esp -m comment --comment vpn-ctl -j ACCEPT",
            ));
        }
    }
}

pub fn ports(i: &Inputs, out: &mut Vec<Finding>) {
    let ours = i.running.map(|s| s.pid);
    for l in i.cfg.listeners() {
        let taken =
            i.host.listeners.iter().find(|h| {
                h.proto == l.proto && h.port == l.port && (ours.is_none() || h.pid != ours)
            });
        if let Some(h) = taken {
            let who = h.owner.clone().unwrap_or_else(|| "another program".into());
            out.push(Finding::new(
                "ports",
                format!(
                    "{} port {} ({}) is taken by {who}: `vpn-ctl up` cannot bind it",
                    l.proto.to_uppercase(),
                    l.port,
                    l.service
                ),
                match &h.pid {
                    Some(pid) => format!("stop it (e.g. `systemctl stop` its service, or `kill {pid}`), or move vpn-ctl's port in the configuration"),
                    None => "stop the program that holds it, or move vpn-ctl's port in the configuration".into(),
                },
            ));
        }
    }
}

pub fn forwarding(i: &Inputs, out: &mut Vec<Finding>) {
    // `up` turns forwarding on; off while it runs means something turned it off.
    if i.running.is_some() && i.host.ip_forward == Some(false) {
        out.push(Finding::new(
            "forwarding",
            "IPv4 forwarding is off: clients reach only the gateway itself",
            "sysctl -w net.ipv4.ip_forward=1 (and find what turned it off: a sysctl.d file or another tool)",
        ));
    }
}

pub fn default_route(i: &Inputs, out: &mut Vec<Finding>) {
    if i.host.default_route.is_none() {
        let fix = if i.cfg.gateway.wan.is_none() {
            "ip route add default via ROUTER (and set `[gateway] wan` if the WAN is not where the default route points)"
        } else {
            "ip route add default via ROUTER"
        };
        out.push(Finding::new(
            "default-route",
            "no IPv4 default route: clients cannot reach the internet through the gateway (and `up` cannot pick the WAN itself)",
            fix,
        ));
    }
}

pub fn pool_overlap(i: &Inputs, out: &mut Vec<Finding>) {
    if i.running.is_some() {
        return; // the pool is then on vpn0 itself
    }
    let Some(p) = i.cfg.gateway.pool else {
        return; // `up` picks a free one
    };
    if let Some(n) = i.host.networks.iter().find(|n| n.prefix.overlaps(&p)) {
        out.push(Finding::new(
            "pool",
            format!("the pool {p} overlaps the host's {}: `up` refuses it", n.what),
            "set `[gateway] pool` to a free range (e.g. 10.99.0.0/24), or leave it out and `up` picks one",
        ));
    }
}

/// Split-tunnel PPP clients of macOS and Linux route only the classful
/// network of their address through the tunnel (Windows asks by DHCPINFORM).
pub fn classful_routes(i: &Inputs, out: &mut Vec<Finding>) {
    let Some(p) = the_pool(i) else { return };
    let Some(client) = p.nth(2) else { return };
    let cls = classful(client);
    let wan = i.host.wan.as_ref().map_or("", |w| w.name.as_str());
    let routes = crate::net::pool::pushed_routes(i.cfg, &i.host.networks, wan, p);
    for r in &routes {
        if !(cls.contains(r.network()) && r.prefix_len() >= cls.prefix_len()) {
            out.push(Finding::new(
                "routes",
                format!(
                    "pushed route {r} is outside {cls}, the classful network of the pool {p}: macOS and Linux L2TP/PPTP clients with split tunnelling do not reach it (Windows gets it by DHCPINFORM)"
                ),
                format!(
                    "choose a pool inside {} (`[gateway] pool`), or have those users send all traffic through the VPN",
                    classful(r.network())
                ),
            ));
        }
    }
}

pub fn rp_filter(i: &Inputs, out: &mut Vec<Finding>) {
    let Some(s) = i.running else { return };
    let vpn = &s.vpn.name;
    let strict = i
        .host
        .rp_filter
        .iter()
        .filter(|(iface, _)| iface == "all" || iface == vpn)
        .any(|(_, v)| *v == 1);
    let via = i.host.route_to_pool.as_deref();
    if strict && via.is_some_and(|d| d != vpn) {
        out.push(Finding::new(
            "rp_filter",
            format!(
                "strict reverse-path filtering (rp_filter=1) with the route back to the pool via {} instead of {vpn}: packets from clients are dropped",
                via.unwrap_or("-")
            ),
            format!("remove the route that takes the pool elsewhere, or: sysctl -w net.ipv4.conf.all.rp_filter=2 net.ipv4.conf.{vpn}.rp_filter=2"),
        ));
    }
}

pub fn bpf(i: &Inputs, out: &mut Vec<Finding>) {
    if !i.host.btf {
        out.push(Finding::new(
            "bpf",
            "the kernel has no BTF (/sys/kernel/btf/vmlinux): the data plane cannot load",
            "use a kernel built with CONFIG_DEBUG_INFO_BTF=y (every current distribution kernel is)",
        ));
    }
    if let Some(s) = i.running {
        if s.wan.xdp_mode == "generic" {
            out.push(Finding::new(
                "xdp",
                format!("XDP runs in generic mode on {} (its driver has no native XDP): every WAN packet costs an skb first", s.wan.name),
                "use a NIC/driver with native XDP (virtio_net, veth, mlx5, i40e, ixgbe, ena...), or accept the slower path",
            ));
        }
    }
}

pub fn radius(i: &Inputs, out: &mut Vec<Finding>) {
    for (addr, answered) in &i.host.radius {
        if !answered {
            out.push(Finding::new(
                "radius",
                format!(
                    "RADIUS server {addr} does not answer a Status-Server: it is down, the path is filtered, it does not list this gateway as a client, or the shared secret differs (servers drop what they cannot verify); logins fail over to the next server after radius.tries × radius.timeout_ms"
                ),
                format!(
                    "check that {addr} runs and lists this gateway with the same secret (FreeRADIUS: clients.conf, and `status_server = yes`), and that UDP {} is open on the way",
                    i.cfg.radius.servers.iter().find(|s| s.address == *addr).map_or(1812, |s| s.auth_port)
                ),
            ));
        }
    }
}

pub fn mtu(i: &Inputs, out: &mut Vec<Finding>) {
    let Some(wan_mtu) = i.host.wan.as_ref().and_then(|w| w.mtu) else {
        return;
    };
    if !i.cfg.native.enabled {
        return;
    }
    // IPv4 (20) + UDP (8) + the native data header and tag.
    let need = u32::from(i.cfg.native.mtu) + 28 + vpn_proto::native::consts::OVERHEAD as u32;
    if need > wan_mtu {
        out.push(Finding::new(
            "mtu",
            format!(
                "native tunnel packets of MTU {} need {need} bytes but the WAN's MTU is {wan_mtu}: large packets fragment or vanish",
                i.cfg.native.mtu
            ),
            format!(
                "set `[native] mtu = {}`",
                wan_mtu.saturating_sub(28 + vpn_proto::native::consts::OVERHEAD as u32)
            ),
        ));
    }
}

fn is_private(ip: Ipv4Addr) -> bool {
    let o = ip.octets();
    ip.is_private() || (o[0] == 100 && (64..128).contains(&o[1]))
}

pub fn behind_nat(i: &Inputs, out: &mut Vec<Finding>) {
    if !i.cfg.ipsec_enabled() {
        return;
    }
    let Some(addr) = i.host.wan.as_ref().and_then(|w| w.address) else {
        return;
    };
    if is_private(addr) {
        out.push(Finding::new(
            "nat",
            format!("the WAN address {addr} is private: if the gateway is reached through NAT (a cloud VM's public IP), Windows refuses L2TP/IPsec to it until told otherwise"),
            r"on each Windows client: reg add HKLM\SYSTEM\CurrentControlSet\Services\PolicyAgent /v AssumeUDPEncapsulationContextOnSendRule /t REG_DWORD /d 2 /f, then reboot",
        ));
    }
}

/// Keys people type when a tutorial says "your PSK here".
const WEAK: &[&str] = &[
    "vpn",
    "psk",
    "secret",
    "password",
    "changeme",
    "12345678",
    "123456789",
    "1234567890",
    "sharedsecret",
    "preshared",
    "ipsec",
    "l2tp",
    "test",
    "default",
    "qwerty",
];

pub fn weak_psk(psk: &str) -> Option<&'static str> {
    let lower = psk.to_ascii_lowercase();
    if WEAK
        .iter()
        .any(|w| lower == *w || lower.trim_end_matches(char::is_numeric) == *w)
    {
        return Some("a well-known default");
    }
    if psk.chars().count() < 20 {
        return Some("shorter than 20 characters");
    }
    let distinct: std::collections::HashSet<char> = psk.chars().collect();
    if distinct.len() < 8 {
        return Some("fewer than 8 different characters");
    }
    None
}

pub fn psk(i: &Inputs, out: &mut Vec<Finding>) {
    let Some(psk) = i.psk else { return };
    if let Some(why) = weak_psk(psk) {
        out.push(Finding::new(
            "psk",
            format!("the pre-shared key is weak ({why}): anyone who guesses it can pose as the gateway to L2TP/IPsec clients"),
            "put a long random one in secrets.toml (`openssl rand -base64 36`), restart, and hand it out again (`vpn-ctl ipsec-psk`, `vpn-ctl client-config`)",
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{config::Config, doctor::Host, net::netlink::HostNetwork};

    fn inputs<'a>(cfg: &'a Config, host: &'a Host) -> Inputs<'a> {
        Inputs {
            cfg,
            running: None,
            host,
            psk: None,
        }
    }

    #[test]
    fn silent_radius_servers_are_named() {
        let cfg = Config::default();
        let host = Host {
            radius: vec![
                ("10.0.0.5".parse().unwrap(), false),
                ("10.0.0.6".parse().unwrap(), true),
            ],
            ..Host::default()
        };
        let mut out = Vec::new();
        radius(&inputs(&cfg, &host), &mut out);
        assert_eq!(out.len(), 1);
        assert!(out[0].problem.contains("10.0.0.5 does not answer"));
    }

    #[test]
    fn weak_keys() {
        assert_eq!(weak_psk("vpn"), Some("a well-known default"));
        assert_eq!(weak_psk("Secret123"), Some("a well-known default"));
        assert_eq!(
            weak_psk("short-but-odd"),
            Some("shorter than 20 characters")
        );
        assert_eq!(
            weak_psk("abababababababababababab"),
            Some("fewer than 8 different characters")
        );
        assert_eq!(weak_psk("Xq8v-2LmZp9#Tr4wKd7sYb1n"), None);
    }

    #[test]
    fn classful_and_private() {
        assert_eq!(
            classful("10.99.0.2".parse().unwrap()).to_string(),
            "10.0.0.0/8"
        );
        assert_eq!(
            classful("172.16.10.2".parse().unwrap()).to_string(),
            "172.16.0.0/16"
        );
        assert_eq!(
            classful("192.168.7.9".parse().unwrap()).to_string(),
            "192.168.7.0/24"
        );
        assert!(
            is_private("100.64.1.1".parse().unwrap()) && is_private("192.168.1.1".parse().unwrap())
        );
        assert!(!is_private("198.18.0.1".parse().unwrap()));
    }

    #[test]
    fn pushed_routes_outside_the_classful_network_are_found() {
        let mut cfg = Config::default();
        cfg.gateway.pool = Some("10.99.0.0/24".parse().unwrap());
        cfg.gateway.push_routes = Some(vec![
            "172.16.10.0/24".parse().unwrap(),
            "10.20.0.0/16".parse().unwrap(),
        ]);
        let host = Host::default();
        let mut out = Vec::new();
        classful_routes(&inputs(&cfg, &host), &mut out);
        assert_eq!(out.len(), 1, "{out:?}");
        assert!(out[0].problem.contains("172.16.10.0/24") && out[0].fix.contains("172.16.0.0/16"));
    }

    #[test]
    fn a_configured_pool_on_a_host_network_is_found() {
        let mut cfg = Config::default();
        cfg.gateway.pool = Some("172.16.10.0/24".parse().unwrap());
        let host = Host {
            networks: vec![HostNetwork {
                prefix: "172.16.10.0/24".parse().unwrap(),
                what: "address 172.16.10.1/24 on lan".into(),
                ifname: Some("lan".into()),
            }],
            ..Host::default()
        };
        let mut out = Vec::new();
        pool_overlap(&inputs(&cfg, &host), &mut out);
        assert_eq!(out.len(), 1);
        assert!(out[0].problem.contains("overlaps"));
    }
}
