//! `vpn-ctl doctor`: checks the host and the path from the internet for
//! the problems people hit in practice, one finding per line with the
//! command that fixes it. Works with the gateway down (what `up` would run
//! into) or up (what is wrong now). Each check is a function of a
//! [`Host`] snapshot, so the rules are unit-tested without a host.
use std::net::Ipv4Addr;

use serde::Serialize;

use crate::{config::Config, net::prefix::Ipv4Prefix, report::Status};

mod checks;
mod host;
mod ports;

pub use host::Host;

/// One problem: which check found it, what is wrong, and what fixes it.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Finding {
    pub check: &'static str,
    pub problem: String,
    pub fix: String,
}

impl Finding {
    fn new(check: &'static str, problem: impl Into<String>, fix: impl Into<String>) -> Finding {
        Finding {
            check,
            problem: problem.into(),
            fix: fix.into(),
        }
    }
}

/// What the checks look at: the configuration, the running daemon's
/// status (if it runs), and the host.
pub struct Inputs<'a> {
    pub cfg: &'a Config,
    pub running: Option<&'a Status>,
    pub host: &'a Host,
    pub psk: Option<&'a str>,
}

/// Every check, in the order they are printed.
pub fn run(i: &Inputs) -> Vec<Finding> {
    let mut out = Vec::new();
    checks::firewall(i, &mut out);
    checks::ports(i, &mut out);
    checks::forwarding(i, &mut out);
    checks::default_route(i, &mut out);
    checks::pool_overlap(i, &mut out);
    checks::classful_routes(i, &mut out);
    checks::rp_filter(i, &mut out);
    checks::bpf(i, &mut out);
    checks::mtu(i, &mut out);
    checks::behind_nat(i, &mut out);
    checks::psk(i, &mut out);
    checks::radius(i, &mut out);
    out
}

/// The classful network (RFC 791) of an address: what Windows, macOS and
/// Linux PPP clients route through the tunnel with split tunnelling.
pub fn classful(ip: Ipv4Addr) -> Ipv4Prefix {
    let len = match ip.octets()[0] {
        0..=127 => 8,
        128..=191 => 16,
        _ => 24,
    };
    Ipv4Prefix::new(ip, len).expect("valid length")
}
