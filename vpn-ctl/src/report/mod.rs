//! What `status` and `sessions` print. Each struct is serialized for `--json`
//! and formatted by its `Display` for humans, so the two never drift.
use std::fmt;

pub mod human;

use serde::{Deserialize, Serialize};

use crate::dataplane::{MapFill, NamedCount};

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Status {
    pub pid: u32,
    pub version: String,
    /// Unix seconds (the first start: restarts keep it).
    pub started_at: u64,
    /// `vpn-ctl restart`s since then (each handed the sessions over).
    #[serde(default)]
    pub restarts: u32,
    /// "defaults" or the config file's path.
    pub config: String,
    pub wan: WanStatus,
    pub vpn: VpnStatus,
    pub pool: String,
    pub gateway_address: String,
    pub masquerade: bool,
    pub listeners: Vec<ListenerStatus>,
    pub sessions: usize,
    pub maps: Vec<MapFill>,
    pub counters: Vec<NamedCount>,
    /// Data-plane drops by reason, then the daemon's own (prefixed `daemon_`).
    pub drops: Vec<NamedCount>,
    /// Problems the host firewall check found at start-up.
    pub firewall: Vec<String>,
    /// What an operator should know about the configuration (weak or
    /// unencrypted protocols enabled, a protocol that cannot be used).
    #[serde(default)]
    pub notes: Vec<String>,
    /// The capabilities the daemon kept after setup (#43).
    #[serde(default)]
    pub capabilities: Vec<String>,
    /// What the last `vpn-ctl restart` handed over.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_restart: Option<RestartReport>,
    /// XDP forwarding between the WAN and LAN interfaces (decisions #54),
    /// when configured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub xdp_forward: Option<XdpForwardStatus>,
}

/// XDP forwarding's interfaces and whether it forwards now.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct XdpForwardStatus {
    pub interfaces: Vec<String>,
    /// True: fast-path packets between the WAN and these interfaces are
    /// forwarded in XDP. False: by the TC path, because of `bypassed`.
    pub active: bool,
    /// The netfilter chains XDP forwarding would bypass (or why the
    /// ruleset could not be read).
    pub bypassed: Vec<String>,
    /// Whether routes are cached (off with policy rules beyond the defaults).
    #[serde(default)]
    pub route_cache: bool,
}

/// Sessions a restart carried over, lost (could not be rebuilt), and ended
/// on purpose by protocol (L2TP/IPsec, calls still negotiating).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct RestartReport {
    pub carried: usize,
    pub lost: usize,
    pub ended: Vec<(String, usize)>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct WanStatus {
    pub name: String,
    pub ifindex: u32,
    /// "native" or "generic".
    pub xdp_mode: String,
    pub xdp_prog_id: u32,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct VpnStatus {
    pub name: String,
    pub ifindex: u32,
    pub address: String,
    pub queues: usize,
    /// "tcx" (bpf_link) attachment of the egress program.
    pub tc_attach: String,
    pub tc_prog_id: u32,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ListenerStatus {
    pub service: String,
    pub proto: String,
    pub port: u16,
    /// Datagrams or connections received.
    pub received: u64,
}

/// The group a counter or drop belongs to in text output.
fn group(name: &str) -> &'static str {
    let name = name.strip_prefix("daemon_").unwrap_or(name);
    match name.split('_').next().unwrap_or("") {
        "xdp" | "tc" | "fast" | "truncated" | "malformed" | "spoofed" => "data plane",
        "esp" if name == "esp_unknown_spi" => "data plane",
        "ike" | "esp" | "ipsec" | "natt" => "l2tp/ipsec",
        "native" => "native",
        "pptp" | "gre" | "mppe" => "pptp",
        "l2tp" => "l2tp",
        "radius" => "radius",
        "pool" | "no" => "gateway",
        _ => "other",
    }
}

/// Counts grouped by `group`, zeros left out unless `verbose`; returns
/// the lines and how many zeros were left out.
fn grouped(counts: &[NamedCount], verbose: bool) -> (Vec<String>, usize) {
    let mut groups: Vec<(&str, Vec<String>)> = Vec::new();
    let mut hidden = 0;
    for c in counts {
        if c.value == 0 && !verbose {
            hidden += 1;
            continue;
        }
        let g = group(&c.name);
        let item = format!("{} {}", c.name, c.value);
        match groups.iter_mut().find(|(n, _)| *n == g) {
            Some((_, v)) => v.push(item),
            None => groups.push((g, vec![item])),
        }
    }
    let lines = groups
        .into_iter()
        .map(|(g, items)| format!("  {:<11} {}", format!("{g}:"), items.join(", ")))
        .collect();
    (lines, hidden)
}

impl Status {
    /// The text form: dates and durations, grouped counters, zeros hidden
    /// unless `verbose` (which also lists the BPF maps). `now`: Unix seconds.
    pub fn render(&self, verbose: bool, now: u64) -> String {
        let mut f = String::new();
        let mut line = |s: String| {
            f.push_str(&s);
            f.push('\n');
        };
        line(format!(
            "vpn-ctl {} (pid {}), up since {}{}, config: {}",
            self.version,
            self.pid,
            human::date_and_age(self.started_at, now).replace(" ago)", ")"),
            match self.restarts {
                0 => String::new(),
                1 => ", restarted once".into(),
                n => format!(", restarted {n} times"),
            },
            self.config
        ));
        line(format!(
            "wan:        {} (ifindex {}), XDP {} mode, prog {}",
            self.wan.name, self.wan.ifindex, self.wan.xdp_mode, self.wan.xdp_prog_id
        ));
        line(format!(
            "vpn:        {} (ifindex {}) {}, {} queues, TC egress ({}) prog {}",
            self.vpn.name,
            self.vpn.ifindex,
            self.vpn.address,
            self.vpn.queues,
            self.vpn.tc_attach,
            self.vpn.tc_prog_id
        ));
        let in_use = self
            .counters
            .iter()
            .find(|c| c.name == "pool_addresses_in_use")
            .map_or(0, |c| c.value);
        line(format!(
            "pool:       {} (gateway {}), {in_use} addresses in use, masquerade {}",
            self.pool,
            self.gateway_address,
            if self.masquerade { "on" } else { "off" }
        ));
        if let Some(f) = &self.xdp_forward {
            line(if f.active {
                format!(
                    "forwarding: XDP between the WAN and {}",
                    f.interfaces.join(", ")
                )
            } else {
                format!(
                    "forwarding: TC path (XDP forwarding to {} would bypass {})",
                    f.interfaces.join(", "),
                    f.bypassed.join("; ")
                )
            });
        }
        line(format!("sessions:   {}", self.sessions));
        line(format!("privileges: {}", self.capabilities.join(", ")));
        line("listening:".into());
        for l in &self.listeners {
            line(format!(
                "  {:<9} {}/{:<6} received {}",
                l.service, l.proto, l.port, l.received
            ));
        }
        if verbose {
            line("maps:".into());
            for m in &self.maps {
                line(format!(
                    "  {:<20} {:<13} {}/{}",
                    m.name, m.kind, m.entries, m.max_entries
                ));
            }
        }
        let (counters, hidden_c) = grouped(&self.counters, verbose);
        line("counters:".into());
        counters.into_iter().for_each(&mut line);
        let (drops, hidden_d) = grouped(&self.drops, verbose);
        line(if drops.is_empty() {
            "drops:      none".into()
        } else {
            "drops:".into()
        });
        drops.into_iter().for_each(&mut line);
        if hidden_c + hidden_d > 0 {
            line(format!(
                "({} counters at zero not shown; -v shows them and the maps)",
                hidden_c + hidden_d
            ));
        }
        for w in &self.firewall {
            line(format!("warning: {w}"));
        }
        for n in &self.notes {
            line(format!("note: {n}"));
        }
        f
    }
}

impl RestartReport {
    /// "3 sessions carried over, 1 lost, 2 ended before the restart (2 l2tp-ipsec)".
    pub fn describe(&self) -> String {
        let mut s = format!("{} sessions carried over", self.carried);
        if self.lost > 0 {
            s += &format!(", {} lost", self.lost);
        }
        let ended: usize = self.ended.iter().map(|(_, n)| n).sum();
        if ended > 0 {
            let list: Vec<String> = self.ended.iter().map(|(p, n)| format!("{n} {p}")).collect();
            s += &format!(
                ", {ended} ended before the restart ({}; their clients redial)",
                list.join(", ")
            );
        }
        s
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.render(false, crate::daemon::unix_now()))
    }
}

/// One session: the fields every protocol reports.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct SessionRow {
    pub id: u64,
    pub protocol: String,
    pub user: String,
    /// Outer address of the client, ip:port.
    pub peer: String,
    pub assigned_ip: String,
    pub state: String,
    /// Unix seconds.
    pub started_at: u64,
    pub rx_bytes: u64,
    pub rx_packets: u64,
    pub tx_bytes: u64,
    pub tx_packets: u64,
    pub fast_path: bool,
    pub fast_path_rx_packets: u64,
    pub fast_path_tx_packets: u64,
    pub encryption: String,
    pub drops: u64,
}

impl SessionRow {
    /// The text form, one block per session like `wg show`'s peers.
    pub fn render(&self, now: u64) -> String {
        let mut out = format!(
            "session {}: {} ({})\n  peer:       {}\n  address:    {}\n  state:      {}, encryption {}\n  connected:  {}\n  transfer:   {} received, {} sent ({} / {} packets)\n",
            self.id,
            if self.user.is_empty() { "-" } else { &self.user },
            self.protocol,
            self.peer,
            if self.assigned_ip.is_empty() { "-" } else { &self.assigned_ip },
            self.state,
            self.encryption,
            human::date_and_age(self.started_at, now),
            human::bytes(self.rx_bytes),
            human::bytes(self.tx_bytes),
            self.rx_packets,
            self.tx_packets,
        );
        if self.fast_path {
            out += &format!(
                "  in-kernel:  {} packets in, {} out\n",
                self.fast_path_rx_packets, self.fast_path_tx_packets
            );
        }
        if self.drops > 0 {
            out += &format!("  drops:      {}\n", self.drops);
        }
        out
    }
}

/// Appending a named count to a list (the daemon's own counters).
pub trait NamedCountExt {
    fn push_named(&mut self, name: &str, value: u64);
}

impl NamedCountExt for Vec<NamedCount> {
    fn push_named(&mut self, name: &str, value: u64) {
        self.push(NamedCount {
            name: name.to_string(),
            value,
        });
    }
}
