//! The Prometheus endpoint: read by the reference parser (Python's
//! prometheus_client), its values agree with `status --json` and
//! `sessions --json`, it answers only /metrics, and only on loopback.
//! Needs root.
use std::collections::HashMap;

use vpn_tests::{
    gateway::Gateway,
    native_client::{add_user, gateway_creds, Client},
    topology::{Topology, GW_WAN, LAN_HOST},
};

/// name + sorted labels → (family type, value), as the parser read them.
type Scrape = HashMap<(String, Vec<(String, String)>), (String, f64)>;

const SCRAPER: &str = r#"
import json, sys, urllib.request
from prometheus_client.parser import text_string_to_metric_families
text = urllib.request.urlopen("http://127.0.0.1:9477/metrics", timeout=5).read().decode()
out = []
for fam in text_string_to_metric_families(text):
    for s in fam.samples:
        out.append({"name": s.name, "labels": s.labels, "value": s.value, "type": fam.type})
print(json.dumps(out))
"#;

fn scrape(gw: &Gateway) -> Scrape {
    let out = gw
        .ns
        .cmd("/usr/bin/python3")
        .args(["-c", SCRAPER])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "scrape: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    v.into_iter()
        .map(|s| {
            let mut labels: Vec<(String, String)> = s["labels"]
                .as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
                .collect();
            labels.sort();
            let key = (s["name"].as_str().unwrap().to_string(), labels);
            (
                key,
                (
                    s["type"].as_str().unwrap().to_string(),
                    s["value"].as_f64().unwrap(),
                ),
            )
        })
        .collect()
}

fn get(m: &Scrape, name: &str, labels: &[(&str, &str)]) -> (String, f64) {
    let mut l: Vec<(String, String)> = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    l.sort();
    m.get(&(name.to_string(), l))
        .cloned()
        .unwrap_or_else(|| panic!("no {name}{labels:?}"))
}

#[test]
fn the_endpoint_parses_and_agrees_with_status_and_sessions() {
    let t = Topology::build();
    let gw = Gateway::start(&t.gw, "[metrics]\nenabled = true\n");
    add_user(&gw, "alice", "alice-password-1", None);
    let mut c = Client::start(&t.c1, "alice", "alice-password-1", &gateway_creds(&gw), &[]);
    c.wait_connected();
    t.c1.must(&format!("ping -c 3 -i 0.2 -W 2 {LAN_HOST}"));

    let m = scrape(&gw);
    let status = gw.status();
    let sessions: serde_json::Value =
        serde_json::from_slice(&gw.ctl(&["sessions", "--json"]).stdout).unwrap();
    let rows = sessions.as_array().unwrap();
    assert_eq!(rows.len(), 1);
    let row = &rows[0];
    let id = row["id"].as_u64().unwrap().to_string();

    let (kind, n) = get(&m, "vpnctl_sessions", &[("protocol", "native")]);
    assert_eq!((kind.as_str(), n), ("gauge", 1.0));
    assert_eq!(get(&m, "vpnctl_sessions", &[("protocol", "pptp")]).1, 0.0);
    // Per-session counters: read before `sessions`, so at most its values.
    let labels = [
        ("id", id.as_str()),
        ("protocol", "native"),
        ("user", "alice"),
    ];
    for (metric, field) in [
        ("vpnctl_session_receive_bytes_total", "rx_bytes"),
        ("vpnctl_session_transmit_bytes_total", "tx_bytes"),
        ("vpnctl_session_receive_packets_total", "rx_packets"),
    ] {
        let (kind, v) = get(&m, metric, &labels);
        assert_eq!(kind, "counter", "{metric}");
        let now = row[field].as_f64().unwrap();
        assert!(v > 0.0 && v <= now, "{metric}: {v} vs {field} {now}");
    }
    let (kind, v) = get(
        &m,
        "vpnctl_protocol_receive_bytes",
        &[("protocol", "native")],
    );
    assert!(kind == "gauge" && v > 0.0 && v <= row["rx_bytes"].as_f64().unwrap());
    for d in status["drops"].as_array().unwrap() {
        let reason = d["name"].as_str().unwrap();
        let (kind, v) = get(&m, "vpnctl_drops_total", &[("reason", reason)]);
        assert!(
            kind == "counter" && v <= d["value"].as_f64().unwrap(),
            "{reason}"
        );
    }
    let (_, in_use) = get(&m, "vpnctl_level", &[("what", "pool_addresses_in_use")]);
    assert_eq!(in_use, 1.0);
    let pool = status["pool"].as_str().unwrap();
    assert_eq!(get(&m, "vpnctl_pool_addresses", &[("pool", pool)]).1, 253.0);
    for l in status["listeners"].as_array().unwrap() {
        let port = l["port"].to_string();
        let labels = [
            ("service", l["service"].as_str().unwrap()),
            ("proto", l["proto"].as_str().unwrap()),
            ("port", port.as_str()),
        ];
        let (_, v) = get(&m, "vpnctl_listener_received_total", &labels);
        assert!(v <= l["received"].as_f64().unwrap());
    }
    let (_, fast_rx) = get(&m, "vpnctl_events_total", &[("event", "xdp_rx")]);
    assert!(fast_rx > 0.0);

    // The text forms a person reads: dates, human bytes, zeros hidden.
    let text = String::from_utf8(gw.ctl(&["status"]).stdout).unwrap();
    assert!(
        text.contains(" UTC (") && text.contains("counters at zero not shown"),
        "{text}"
    );
    let counts = text
        .lines()
        .filter(|l| l.starts_with("  "))
        .filter_map(|l| l.split_once(": "))
        .flat_map(|(_, items)| items.split(", "));
    for item in counts {
        assert!(!item.ends_with(" 0"), "{item} shown in:\n{text}");
    }
    let verbose = String::from_utf8(gw.ctl(&["status", "-v"]).stdout).unwrap();
    assert!(
        verbose.contains("maps:") && verbose.contains(" 0"),
        "{verbose}"
    );
    let text = String::from_utf8(gw.ctl(&["sessions"]).stdout).unwrap();
    assert!(
        text.contains(&format!("session {id}: alice (native)")),
        "{text}"
    );
    assert!(
        text.contains(" received, ") && text.contains(" ago)"),
        "{text}"
    );

    // Only /metrics, and only on loopback.
    let other = gw
        .ns
        .sh("python3 -c 'import urllib.request as u; u.urlopen(\"http://127.0.0.1:9477/other\", timeout=5)'");
    assert!(String::from_utf8_lossy(&other.stderr).contains("404"));
    let outside = t.inet.sh(&format!(
        "timeout 3 bash -c 'echo > /dev/tcp/{GW_WAN}/9477'"
    ));
    assert!(
        !outside.status.success(),
        "the endpoint answered from outside"
    );
}
