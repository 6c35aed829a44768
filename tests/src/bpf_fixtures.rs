//! What the XDP and TC fixture tables share: the data plane loaded with
//! the fixtures' configuration, its counters and drops as name -> value,
//! what a fixture changed, and what a fixture expects.
use std::collections::HashMap;

use vpn_common::{
    counters::{Counter, DropReason},
    maps::{DataplaneConfig, CONFIG_F_VALID},
    wire::{PORT_IKE, PORT_L2TP, PORT_NATT},
};
use vpn_ctl::dataplane;

/// The native protocol's port in the fixtures' configuration.
pub const NATIVE_PORT: u16 = 7443;

/// The programs loaded (not attached), configured for a WAN (ifindex 1),
/// vpn0 (2) and the pool 10.99.0.0/24; PPTP's GRE classified if `pptp`.
pub fn load(pptp: bool) -> aya::Ebpf {
    let mut ebpf = dataplane::load(log::LevelFilter::Off).expect("load eBPF (run as root)");
    let cfg = DataplaneConfig {
        flags: CONFIG_F_VALID,
        wan_ifindex: 1,
        vpn_ifindex: 2,
        pool_addr: u32::from_be_bytes([10, 99, 0, 0]),
        pool_mask: 0xffff_ff00,
        l2tp_port: PORT_L2TP,
        native_port: NATIVE_PORT,
        ike_port: PORT_IKE,
        natt_port: PORT_NATT,
        pptp_enabled: u32::from(pptp),
    };
    dataplane::write_config(&mut ebpf, &cfg).unwrap();
    ebpf
}

pub type Counts = HashMap<String, u64>;

/// Every counter and drop reason, summed over CPUs.
pub fn read(ebpf: &aya::Ebpf) -> Counts {
    let mut m = Counts::new();
    for c in dataplane::counters(ebpf).unwrap() {
        m.insert(c.name, c.value);
    }
    for d in dataplane::drops(ebpf).unwrap() {
        m.insert(d.name, d.value);
    }
    m
}

/// The entries that changed, and by how much.
pub fn delta(before: &Counts, after: Counts) -> Counts {
    after
        .into_iter()
        .filter_map(|(k, v)| {
            let d = v - before[&k];
            (d != 0).then_some((k, d))
        })
        .collect()
}

/// One increment of each counter and drop reason named.
pub fn expect(c: &[Counter], d: &[DropReason]) -> Counts {
    let mut m = Counts::new();
    for x in c {
        *m.entry(x.name().to_string()).or_default() += 1;
    }
    for x in d {
        *m.entry(x.name().to_string()).or_default() += 1;
    }
    m
}

/// A session to install: key, entry, and (seq_out, seq_in) of its GRE space.
pub type FixtureSession = (
    vpn_common::maps::TunnelKey,
    vpn_common::maps::SessionEntry,
    (u32, Option<u32>),
);

/// The WAN's TC ingress loaded with fast-path sessions installed the way
/// the daemon installs them (the PPTP fixtures also start each session's
/// GRE sequence space).
pub struct TcHarness {
    ebpf: std::sync::Arc<std::sync::Mutex<aya::Ebpf>>,
    slots: Vec<dataplane::fastpath::FastSlot>,
    seqs: dataplane::fastpath::SeqPage,
}

impl TcHarness {
    /// `sessions`: each with the (seq_out, seq_in) its GRE space starts at.
    pub fn new(pptp: bool, sessions: &[FixtureSession]) -> TcHarness {
        let ebpf = load(pptp);
        let seqs = dataplane::fastpath::SeqPage::map(&ebpf).unwrap();
        let ebpf = std::sync::Arc::new(std::sync::Mutex::new(ebpf));
        let maps = dataplane::fastpath::SessionMaps::new(ebpf.clone());
        let slots = sessions
            .iter()
            .map(|(key, entry, (out, inn))| {
                maps.install(*key, *entry, |idx| seqs.init(idx, *out, *inn))
                    .unwrap()
            })
            .collect();
        TcHarness { ebpf, slots, seqs }
    }

    /// Runs `frame` once; returns the action, output and counter deltas.
    pub fn run(&self, frame: &[u8]) -> (u32, Vec<u8>, Counts) {
        let ebpf = self.ebpf.lock().unwrap();
        let before = read(&ebpf);
        let r = dataplane::test_run::run_tc(dataplane::tc_wan(&ebpf).unwrap(), frame, 1)
            .unwrap_or_else(|e| panic!("{} bytes: {e:#}", frame.len()));
        let after = delta(&before, read(&ebpf));
        (r.action, r.output, after)
    }

    /// The highest GRE sequence number the kernel recorded for session `n`.
    pub fn seq_in(&self, n: usize) -> Option<u32> {
        self.seqs.seq_in(self.slots[n].index())
    }

    /// The kernel's per-session counters of session `n`.
    pub fn stats(&self, n: usize) -> vpn_common::maps::SessionStats {
        self.slots[n].stats()
    }
}
