//! `vpn-ctl restart` (docs/decisions.md #52): the daemon hands itself to
//! the binary now on disk without dropping sessions. It stops reading,
//! writes what the successor needs into an unnamed file (the state below, and the
//! numbers of the descriptors it keeps open: the lock, the TUN queues, the
//! service sockets, PPTP control connections), and execs the new binary in
//! its own process with `VPN_CTL_HANDOFF_FD` naming that file. The host's
//! configuration (vpn0's address, sysctls, nftables, firewall rules) stays
//! as it is, recorded in the undo journal on disk; the successor loads and
//! attaches the eBPF programs again, refills the maps from the carried
//! sessions and goes on.
mod exec;
mod resume;

use std::{
    io::Read as _,
    net::Ipv4Addr,
    os::fd::{FromRawFd as _, OwnedFd, RawFd},
};

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

pub use exec::{exec, successor, Keep};

/// The handoff's layout version: a binary refuses to restart into one that
/// reads another (`vpn-ctl handoff-format` prints it).
pub const FORMAT: u32 = 3;
/// Names the descriptor of the file holding the handoff, in the successor's environment.
pub const ENV: &str = "VPN_CTL_HANDOFF_FD";
/// The largest handoff read (sessions' state is a few hundred bytes each).
const MAX_BYTES: u64 = 256 << 20;

/// A service socket, by what it listens for.
#[derive(Debug, Serialize, Deserialize)]
pub struct SocketFd {
    pub service: String,
    pub proto: String,
    pub port: u16,
    pub fd: RawFd,
}

/// A native session.
#[derive(Serialize, Deserialize)]
pub struct NativeCarry {
    pub row_id: u64,
    pub wire_id: u32,
    pub user: String,
    pub addr: Ipv4Addr,
    pub started_at: u64,
    pub engine: vpn_proto::native::carry::SessionCarry,
}

/// Everything the successor takes over.
#[derive(Serialize, Deserialize)]
pub struct Handoff {
    pub format: u32,
    /// The version that wrote it.
    pub from_version: String,
    /// When the gateway first came up (`status` keeps it).
    pub started_at: u64,
    pub restarts: u32,
    pub wan: String,
    pub pool: String,
    /// "native" or "generic", and the programs' IDs (still attached).
    pub xdp_mode: String,
    pub xdp_prog_id: u32,
    pub tc_prog_id: u32,
    /// The next session row ID: IDs stay unique across restarts.
    pub next_row_id: u64,
    pub lock_fd: RawFd,
    pub tun: Vec<RawFd>,
    pub sockets: Vec<SocketFd>,
    /// The native data path's extra per-worker sockets (SO_REUSEPORT).
    pub native_udp: Vec<RawFd>,
    pub pptp_gre: Option<RawFd>,
    /// The IPsec workers' extra NAT-T sockets.
    #[serde(default)]
    pub ipsec_natt: Vec<RawFd>,
    pub native: Vec<NativeCarry>,
    /// PPTP control connections with their calls.
    pub pptp: Vec<crate::daemon::pptp::carry::ConnectionCarry>,
    /// L2TP tunnels (plain UDP or inside IPsec) with their calls.
    pub l2tp: Vec<crate::daemon::l2tp::carry::TunnelCarry>,
    /// IPsec: ISAKMP SAs, clients, ESP SAs.
    pub ipsec: Option<crate::daemon::ipsec::carry::IpsecCarry>,
    /// RADIUS accounting's state, when `[radius]` is on.
    pub radius: Option<crate::daemon::radius::carry::RadiusCarry>,
    /// Sessions that could not be carried, by protocol (they were ended
    /// with a reason their clients were told).
    pub ended: Vec<(String, usize)>,
}

/// What an inherited descriptor number becomes: owned once, by whoever
/// takes it.
pub fn own(fd: RawFd) -> anyhow::Result<OwnedFd> {
    // SAFETY: F_GETFD only reads the descriptor's flags.
    if fd < 0 || unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
        anyhow::bail!("handoff: descriptor {fd} is not open");
    }
    // Close it on the next exec again, as every descriptor of ours.
    // SAFETY: F_SETFD on an open descriptor.
    unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
    // SAFETY: the predecessor passed this open descriptor to us alone, and
    // the handoff names each one once.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// The handoff this process was started with, if any (the variable is
/// removed so nothing we start inherits it).
pub fn take() -> anyhow::Result<Option<Handoff>> {
    let Some(v) = std::env::var_os(ENV) else {
        return Ok(None);
    };
    // Called before the runtime's threads start.
    std::env::remove_var(ENV);
    let fd: RawFd = v
        .to_str()
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("{ENV} is not a descriptor number"))?;
    let mut file = std::fs::File::from(own(fd)?);
    let mut text = zeroize::Zeroizing::new(Vec::new());
    (&mut file)
        .take(MAX_BYTES)
        .read_to_end(&mut text)
        .context("reading the handoff")?;
    let h: Handoff = serde_json::from_slice(&text).context("the handoff does not parse")?;
    if h.format != FORMAT {
        anyhow::bail!(
            "the handoff has format {} (from vpn-ctl {}); this build reads {FORMAT}",
            h.format,
            h.from_version
        );
    }
    Ok(Some(h))
}
