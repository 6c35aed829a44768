//! The lifecycle every protocol module has, so the control socket and
//! `status` treat them alike: rows, kill, counters, drops, shutdown.
use std::sync::Mutex;

use crate::report::SessionRow;

pub trait Service: Send + Sync {
    /// One row per session, for `sessions`. `ebpf`: for fast-path counters.
    fn rows(&self, ebpf: &Mutex<aya::Ebpf>) -> Vec<SessionRow>;
    /// Ends the session with this row ID, telling the client `why` where
    /// the protocol can; false if it is not one of ours.
    fn end(&self, row_id: u64, why: &str) -> bool;
    /// Gauges and totals for `status` counters.
    fn counters(&self) -> Vec<(&'static str, u64)>;
    /// Drops by reason for `status` (shown with a `daemon_` prefix).
    fn drops(&self) -> Vec<(&'static str, u64)>;
    /// The gateway stops: tell clients where the protocol can.
    fn shutdown(&self);
}
