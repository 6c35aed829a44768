//! What `status` and `sessions` print. Each struct is serialized for `--json`
//! and formatted by its `Display` for humans, so the two never drift.
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::dataplane::{MapFill, NamedCount};

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Status {
    pub pid: u32,
    pub version: String,
    /// Unix seconds.
    pub started_at: u64,
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

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "vpn-ctl {} (pid {}), up since {}, config: {}",
            self.version, self.pid, self.started_at, self.config
        )?;
        writeln!(
            f,
            "wan:       {} (ifindex {}) XDP {} mode, prog {}",
            self.wan.name, self.wan.ifindex, self.wan.xdp_mode, self.wan.xdp_prog_id
        )?;
        writeln!(
            f,
            "vpn:       {} (ifindex {}) {}, {} queues, TC egress ({}) prog {}",
            self.vpn.name,
            self.vpn.ifindex,
            self.vpn.address,
            self.vpn.queues,
            self.vpn.tc_attach,
            self.vpn.tc_prog_id
        )?;
        writeln!(
            f,
            "pool:      {} (gateway {}), masquerade {}",
            self.pool,
            self.gateway_address,
            if self.masquerade { "on" } else { "off" }
        )?;
        writeln!(f, "sessions:  {}", self.sessions)?;
        writeln!(f, "privileges: {}", self.capabilities.join(", "))?;
        writeln!(f, "listening:")?;
        for l in &self.listeners {
            writeln!(
                f,
                "  {:<9} {}/{:<6} received {}",
                l.service, l.proto, l.port, l.received
            )?;
        }
        writeln!(f, "maps:")?;
        for m in &self.maps {
            writeln!(
                f,
                "  {:<20} {:<13} {}/{}",
                m.name, m.kind, m.entries, m.max_entries
            )?;
        }
        writeln!(f, "counters:")?;
        for c in &self.counters {
            writeln!(f, "  {:<20} {}", c.name, c.value)?;
        }
        writeln!(f, "drops:")?;
        for d in &self.drops {
            writeln!(f, "  {:<20} {}", d.name, d.value)?;
        }
        for w in &self.firewall {
            writeln!(f, "warning: {w}")?;
        }
        for n in &self.notes {
            writeln!(f, "note: {n}")?;
        }
        Ok(())
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
    pub const HEADER: &'static str =
        "ID\tPROTOCOL\tUSER\tPEER\tADDRESS\tSTATE\tSTARTED\tRX_BYTES\tTX_BYTES\tFAST\tENCRYPTION\tDROPS";
}

impl fmt::Display for SessionRow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
            self.id,
            self.protocol,
            self.user,
            self.peer,
            self.assigned_ip,
            self.state,
            self.started_at,
            self.rx_bytes,
            self.tx_bytes,
            if self.fast_path { "yes" } else { "no" },
            self.encryption,
            self.drops
        )
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
