//! Test harness: network-namespace topologies, a gateway under test, and
//! waiting on conditions with deadlines. Needs root.
//!
//! ```text
//!   c1 (198.18.1.2) ──┐                         ┌── lan host (172.16.10.2)
//!                     │                         │
//!   c2 ─┐             ├── inet (198.18.0.2) ── gw ── (vpn0: pool)
//!       ├─ nat ───────┘   "internet host"     wan0 198.18.0.1 / lan0 172.16.10.1
//!   c3 ─┘ 192.168.50.0/24, masqueraded to 198.18.2.2
//! ```
pub mod bench;
pub mod bpf_fixtures;
pub mod call;
pub mod esp_generator;
pub mod freeradius;
pub mod gateway;
pub mod guest;
pub mod guest_agent;
pub mod guest_iperf;
pub mod ipsec_peer;
pub mod l2tp_client;
pub mod l2tp_peer;
pub mod native_client;
pub mod netns;
pub mod packet;
pub mod pptp_client;
pub mod pptp_peer;
pub mod raw_bpf;
pub mod raw_ip;
pub mod restart;
pub mod snapshot;
pub mod softether;
pub mod topology;
pub mod wait;
pub mod xdp_swap;

/// Path of the vpn-ctl binary built for these tests.
pub fn vpn_ctl_bin() -> std::path::PathBuf {
    let mut p = std::env::current_exe().expect("test binary path");
    p.pop();
    if p.ends_with("deps") {
        p.pop();
    }
    p.join("vpn-ctl")
}
