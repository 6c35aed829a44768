//! The Prometheus text exposition (format 0.0.4) of what `status` and
//! `sessions` report: one source, two renderings. Pure: status and session
//! rows in, text out.
use std::{collections::BTreeMap, fmt::Write as _};

use crate::report::{SessionRow, Status};

/// Status counters that are levels, not running totals.
const GAUGES: [&str; 9] = [
    "native_sessions",
    "pptp_calls",
    "l2tp_tunnels",
    "l2tp_sessions",
    "ike_sas",
    "ike_half_open",
    "esp_sas",
    "ipsec_clients",
    "pool_addresses_in_use",
];

/// The protocols a session row can name (series exist even at zero).
const PROTOCOLS: [&str; 4] = ["native", "pptp", "l2tp", "l2tp-ipsec"];

/// Escapes a label value (backslash, quote, newline).
fn esc(v: &str) -> String {
    v.replace('\\', r"\\")
        .replace('"', "\\\"")
        .replace('\n', r"\n")
}

struct Out(String);

impl Out {
    fn head(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: u64) {
        self.0.push_str(name);
        if !labels.is_empty() {
            let l: Vec<String> = labels
                .iter()
                .map(|(k, v)| format!("{k}=\"{}\"", esc(v)))
                .collect();
            let _ = write!(self.0, "{{{}}}", l.join(","));
        }
        let _ = writeln!(self.0, " {value}");
    }
}

/// Addresses a pool of this prefix length can hand out (network, gateway
/// and broadcast excluded).
fn pool_size(pool: &str) -> Option<u64> {
    let len: u32 = pool.split_once('/')?.1.parse().ok()?;
    (1u64 << (32 - len.min(32))).checked_sub(3)
}

pub fn render(s: &Status, sessions: &[SessionRow]) -> String {
    let mut o = Out(String::new());
    o.head(
        "vpnctl_info",
        "gauge",
        "The running gateway (always 1), with its version.",
    );
    o.sample(
        "vpnctl_info",
        &[("version", &s.version), ("xdp_mode", &s.wan.xdp_mode)],
        1,
    );
    o.head(
        "vpnctl_start_time_seconds",
        "gauge",
        "When the gateway started, Unix seconds.",
    );
    o.sample("vpnctl_start_time_seconds", &[], s.started_at);

    o.head("vpnctl_sessions", "gauge", "Sessions by protocol.");
    let mut by_proto: BTreeMap<&str, Vec<&SessionRow>> =
        PROTOCOLS.iter().map(|p| (*p, Vec::new())).collect();
    for r in sessions {
        by_proto.entry(r.protocol.as_str()).or_default().push(r);
    }
    for (p, rows) in &by_proto {
        o.sample("vpnctl_sessions", &[("protocol", p)], rows.len() as u64);
    }
    type Field = fn(&SessionRow) -> u64;
    let per_session: [(&str, &str, Field); 6] = [
        ("receive_bytes", "Bytes received from the client.", |r| {
            r.rx_bytes
        }),
        ("transmit_bytes", "Bytes sent to the client.", |r| {
            r.tx_bytes
        }),
        (
            "receive_packets",
            "Packets received from the client.",
            |r| r.rx_packets,
        ),
        ("transmit_packets", "Packets sent to the client.", |r| {
            r.tx_packets
        }),
        (
            "fast_path_receive_packets",
            "Packets from the client carried by the in-kernel path.",
            |r| r.fast_path_rx_packets,
        ),
        (
            "fast_path_transmit_packets",
            "Packets to the client carried by the in-kernel path.",
            |r| r.fast_path_tx_packets,
        ),
    ];
    for (what, help, field) in per_session {
        let name = format!("vpnctl_session_{what}_total");
        o.head(&name, "counter", help);
        for r in sessions {
            let id = r.id.to_string();
            let labels = [
                ("id", id.as_str()),
                ("protocol", &r.protocol),
                ("user", &r.user),
            ];
            o.sample(&name, &labels, field(r));
        }
        // Sums over the current sessions: they fall when sessions end, so gauges.
        let name = format!("vpnctl_protocol_{what}");
        o.head(
            &name,
            "gauge",
            &format!("{help} Summed over the protocol's current sessions."),
        );
        for (p, rows) in &by_proto {
            o.sample(
                &name,
                &[("protocol", p)],
                rows.iter().map(|r| field(r)).sum(),
            );
        }
    }

    o.head(
        "vpnctl_drops_total",
        "counter",
        "Packets and attempts dropped, by reason (daemon_ prefix: in userspace).",
    );
    for d in &s.drops {
        o.sample("vpnctl_drops_total", &[("reason", &d.name)], d.value);
    }
    o.head(
        "vpnctl_events_total",
        "counter",
        "Data-plane counters and protocol events (handshakes, tunnels opened, keepalives).",
    );
    for c in s
        .counters
        .iter()
        .filter(|c| !GAUGES.contains(&c.name.as_str()))
    {
        o.sample("vpnctl_events_total", &[("event", &c.name)], c.value);
    }
    o.head(
        "vpnctl_level",
        "gauge",
        "Current levels: tunnels, calls, SAs, half-open exchanges, addresses in use.",
    );
    for c in s
        .counters
        .iter()
        .filter(|c| GAUGES.contains(&c.name.as_str()))
    {
        o.sample("vpnctl_level", &[("what", &c.name)], c.value);
    }
    o.head(
        "vpnctl_pool_addresses",
        "gauge",
        "Client addresses of the pool: how many exist.",
    );
    o.sample(
        "vpnctl_pool_addresses",
        &[("pool", &s.pool)],
        pool_size(&s.pool).unwrap_or(0),
    );
    o.head(
        "vpnctl_listener_received_total",
        "counter",
        "Datagrams or connections each listening socket received.",
    );
    for l in &s.listeners {
        let port = l.port.to_string();
        let labels = [
            ("service", l.service.as_str()),
            ("proto", &l.proto),
            ("port", &port),
        ];
        o.sample("vpnctl_listener_received_total", &labels, l.received);
    }
    o.head(
        "vpnctl_bpf_map_entries",
        "gauge",
        "Entries in use in each BPF map.",
    );
    for m in &s.maps {
        o.sample(
            "vpnctl_bpf_map_entries",
            &[("map", &m.name)],
            m.entries.into(),
        );
    }
    o.head(
        "vpnctl_bpf_map_max_entries",
        "gauge",
        "Capacity of each BPF map.",
    );
    for m in &s.maps {
        o.sample(
            "vpnctl_bpf_map_max_entries",
            &[("map", &m.name)],
            m.max_entries.into(),
        );
    }
    o.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_escaped_and_pool_sizes_counted() {
        assert_eq!(esc("a\"b\\c\nd"), r#"a\"b\\c\nd"#);
        assert_eq!(pool_size("10.99.0.0/24"), Some(253));
        assert_eq!(pool_size("10.0.0.0/30"), Some(1));
        assert_eq!(pool_size("junk"), None);
    }

    #[test]
    fn gauges_and_counters_follow_the_naming_rules() {
        // Counters end in _total; nothing else does.
        let mut o = Out(String::new());
        o.head("vpnctl_x_total", "counter", "h");
        o.sample("vpnctl_x_total", &[("user", "al\"ice")], 3);
        assert_eq!(
            o.0,
            "# HELP vpnctl_x_total h\n# TYPE vpnctl_x_total counter\nvpnctl_x_total{user=\"al\\\"ice\"} 3\n"
        );
        for g in GAUGES {
            assert!(!g.ends_with("_total"), "{g}");
        }
    }
}
