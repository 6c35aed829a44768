//! What a gateway could change in its namespace, captured for comparison:
//! links (incl. XDP), IPv4 addresses, routes and rules, nftables, iptables,
//! sysctls, qdiscs and filters, BPF attachments, listening sockets, pins.
use std::path::Path;

use crate::netns::Netns;

const COMMANDS: &[&str] = &[
    "ip -d link show",
    "ip -4 addr show",
    "ip -4 route show table all",
    "ip rule show",
    "nft list ruleset",
    "iptables-save | grep -v '^#'",
    "sysctl net.ipv4.ip_forward net.ipv4.conf.all.forwarding net.ipv4.conf.all.rp_filter net.ipv4.conf.default.rp_filter",
    "tc qdisc show",
    "tc filter show dev wan0 ingress 2>/dev/null; tc filter show dev wan0 egress 2>/dev/null",
    "bpftool net show",
    "ss -H -lntu",
];

#[derive(Debug, PartialEq, Eq)]
pub struct Snapshot(Vec<(String, String)>);

impl Snapshot {
    pub fn take(ns: &Netns, pin_dir: &Path) -> Snapshot {
        let mut v: Vec<(String, String)> = COMMANDS
            .iter()
            .map(|c| {
                let out = ns.sh(c);
                (
                    c.to_string(),
                    String::from_utf8_lossy(&out.stdout).into_owned(),
                )
            })
            .collect();
        v.push(("pin dir exists".into(), pin_dir.exists().to_string()));
        Snapshot(v)
    }

    /// The entries that differ, for assertion messages.
    pub fn diff(&self, other: &Snapshot) -> String {
        self.0
            .iter()
            .zip(&other.0)
            .filter(|(a, b)| a != b)
            .map(|((k, a), (_, b))| format!("== {k}\n-- before:\n{a}-- after:\n{b}"))
            .collect()
    }
}
