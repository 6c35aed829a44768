//! The data plane's counters and drops as name -> value, what a fixture
//! changed, and what a fixture expects (the XDP and TC fixture tables).
use std::collections::HashMap;

use vpn_common::counters::{Counter, DropReason};
use vpn_ctl::dataplane;

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
