//! The standard topology (drawn in lib.rs).
use crate::netns::{must, unique_prefix, Netns};

pub const GW_WAN: &str = "198.18.0.1";
pub const INET: &str = "198.18.0.2";
pub const C1: &str = "198.18.1.2";
pub const NAT_WAN: &str = "198.18.2.2";
pub const GW_LAN: &str = "172.16.10.1";
pub const LAN_HOST: &str = "172.16.10.2";
pub const LAN_NET: &str = "172.16.10.0/24";

pub struct Topology {
    pub gw: Netns,
    pub inet: Netns,
    pub lan: Netns,
    pub c1: Netns,
    pub nat: Netns,
    pub c2: Netns,
    pub c3: Netns,
}

/// Connects `a:a_if` and `b:b_if` with a veth pair, addresses them and sets them up.
fn wire(a: &Netns, a_if: &str, a_addr: &str, b: &Netns, b_if: &str, b_addr: &str) {
    must(&format!(
        "ip link add {a_if} netns {} type veth peer name {b_if} netns {}",
        a.name, b.name
    ));
    for (ns, ifn, addr) in [(a, a_if, a_addr), (b, b_if, b_addr)] {
        if !addr.is_empty() {
            must(&format!("ip -n {} addr add {addr} dev {ifn}", ns.name));
        }
        must(&format!("ip -n {} link set {ifn} up", ns.name));
    }
}

impl Topology {
    /// Three echo requests to the gateway's WAN address from the internet
    /// host, sourced from an address of `pool` (the gateway's client pool,
    /// "a.b.c.0/24"): spoofs the WAN must drop. Whether any was answered.
    pub fn ping_from_pool_address(&self, pool: &str) -> bool {
        let spoof = pool.replace(".0/24", ".5");
        self.inet
            .must(&format!("ip addr replace {spoof}/32 dev gw0"));
        self.inet
            .sh(&format!("ping -c 3 -i 0.2 -W 1 -I {spoof} {GW_WAN}"))
            .status
            .success()
    }

    pub fn build() -> Topology {
        let p = unique_prefix();
        let ns = |n: &str| Netns::new(format!("{p}{n}"));
        let t = Topology {
            gw: ns("gw"),
            inet: ns("inet"),
            lan: ns("lan"),
            c1: ns("c1"),
            nat: ns("nat"),
            c2: ns("c2"),
            c3: ns("c3"),
        };
        wire(
            &t.gw,
            "wan0",
            "198.18.0.1/24",
            &t.inet,
            "gw0",
            "198.18.0.2/24",
        );
        wire(
            &t.gw,
            "lan0",
            "172.16.10.1/24",
            &t.lan,
            "eth0",
            "172.16.10.2/24",
        );
        wire(
            &t.c1,
            "eth0",
            "198.18.1.2/24",
            &t.inet,
            "c1",
            "198.18.1.1/24",
        );
        wire(
            &t.nat,
            "wan0",
            "198.18.2.2/24",
            &t.inet,
            "nat",
            "198.18.2.1/24",
        );
        must(&format!("ip -n {} link add br0 type bridge", t.nat.name));
        must(&format!(
            "ip -n {} addr add 192.168.50.1/24 dev br0",
            t.nat.name
        ));
        must(&format!("ip -n {} link set br0 up", t.nat.name));
        wire(&t.c2, "eth0", "192.168.50.2/24", &t.nat, "c2", "");
        wire(&t.c3, "eth0", "192.168.50.3/24", &t.nat, "c3", "");
        for port in ["c2", "c3"] {
            must(&format!("ip -n {} link set {port} master br0", t.nat.name));
        }
        t.gw.must("ip route add default via 198.18.0.2");
        t.lan.must("ip route add default via 172.16.10.1");
        t.c1.must("ip route add default via 198.18.1.1");
        t.nat.must("ip route add default via 198.18.2.1");
        t.c2.must("ip route add default via 192.168.50.1");
        t.c3.must("ip route add default via 192.168.50.1");
        for r in [&t.inet, &t.nat] {
            r.must("sysctl -qw net.ipv4.ip_forward=1");
        }
        t.nat.must(
            "nft add table ip natbox && \
             nft add chain ip natbox post { type nat hook postrouting priority srcnat \\; } && \
             nft add rule ip natbox post oifname wan0 ip saddr 192.168.50.0/24 masquerade",
        );
        // PPTP passthrough, as home routers do: the conntrack helper tracks
        // the control connection and NATs each call's GRE by its call ID.
        t.nat.must(
            "nft 'add ct helper ip natbox pptp { type \"pptp\" protocol tcp; }' && \
             nft 'add chain ip natbox pre { type filter hook prerouting priority filter; }' && \
             nft 'add rule ip natbox pre tcp dport 1723 ct helper set \"pptp\"'",
        );
        t
    }
}
