//! `vpn-ctl up`: the gateway daemon. `setup` brings the host into shape step
//! by step, recording each change in the undo journal; `serve` runs until a
//! signal or `vpn-ctl down`; then everything is undone.
pub mod gateway;
pub mod handoff;
pub mod ipsec;
pub mod l2tp;
mod metrics_http;
pub mod native;
pub mod pptp;
pub mod privileges;
pub mod radius;
mod route_watch;
mod server;
mod services;
mod setup;
pub mod undo;
mod xdp_forward;

use std::sync::{
    atomic::{AtomicU64, Ordering},
    Arc, Mutex,
};

use anyhow::Context as _;
use aya::Ebpf;
use tokio::sync::Notify;

use self::gateway::service::Service;
use crate::{
    config::{Config, Source},
    control, fsutil,
    report::{NamedCountExt as _, Status},
    users::UserDb,
};

/// State the control server reads while the gateway runs.
pub struct Shared {
    pub ebpf: Arc<Mutex<Ebpf>>,
    /// The parts of `status` fixed at start-up.
    pub base: Status,
    /// Per listener (same order as `base.listeners`): datagrams/connections seen.
    pub received: Vec<AtomicU64>,
    /// Packets routed to the pool for an address without a session.
    pub no_session: AtomicU64,
    /// Reads from vpn0 the workers could not cut into packets (a short or
    /// inconsistent virtio header: the kernel never hands over one).
    pub tun_uncut: AtomicU64,
    pub users: Arc<Mutex<UserDb>>,
    /// Addresses, row IDs and vpn0 routes for every protocol.
    pub pool: gateway::pool::Pool,
    pub native: native::Native,
    /// Present when enabled.
    pub pptp: Option<pptp::Pptp>,
    pub l2tp: Option<l2tp::L2tp>,
    pub ipsec: Option<ipsec::Ipsec>,
    /// Present when `[radius]` is enabled: every login goes through it.
    pub radius: Option<Arc<radius::Radius>>,
    /// Set when the daemon stops: data-path threads exit.
    pub stopping: std::sync::atomic::AtomicBool,
    pub shutdown: Notify,
    /// Set (with `shutdown`) by `vpn-ctl restart`: the successor binary.
    pub restart_to: Mutex<Option<std::path::PathBuf>>,
    /// What this process took over from its predecessor, if it is a restart's.
    pub restarted: Mutex<Option<crate::report::RestartReport>>,
    /// Present when `xdp.forward_interfaces` names any.
    pub xdp_forward: Option<Arc<xdp_forward::XdpForward>>,
}

/// Seconds since the Unix epoch (for reports).
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Shared {
    pub fn request_restart(&self, successor: std::path::PathBuf) {
        *self.restart_to.lock().unwrap_or_else(|e| e.into_inner()) = Some(successor);
        self.shutdown.notify_one();
    }

    /// The restart asked for, if the stop is one.
    pub fn take_restart(&self) -> Option<std::path::PathBuf> {
        self.restart_to
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
    }

    /// Every protocol's service, for sessions, kill, counters and shutdown.
    pub fn services(&self) -> Vec<&dyn Service> {
        let mut v: Vec<&dyn Service> = vec![&self.native];
        if let Some(p) = &self.pptp {
            v.push(p);
        }
        if let Some(l) = &self.l2tp {
            v.push(l);
        }
        if let Some(i) = &self.ipsec {
            v.push(i);
        }
        v
    }

    /// Every session of every protocol, by id.
    pub fn sessions(&self) -> Vec<crate::report::SessionRow> {
        let mut rows: Vec<_> = self
            .services()
            .iter()
            .flat_map(|s| s.rows(&self.ebpf))
            .collect();
        rows.sort_by_key(|r| r.id);
        rows
    }

    pub fn status(&self) -> anyhow::Result<Status> {
        let mut s = self.base.clone();
        {
            let ebpf = self.ebpf.lock().map_err(|_| anyhow::anyhow!("poisoned"))?;
            s.maps = crate::dataplane::map_fill(&ebpf)?;
            s.counters = crate::dataplane::counters(&ebpf)?;
            s.drops = crate::dataplane::drops(&ebpf)?;
        }
        s.drops
            .push_named("daemon_no_session", self.no_session.load(Ordering::Relaxed));
        s.drops
            .push_named("daemon_tun_uncut", self.tun_uncut.load(Ordering::Relaxed));
        s.sessions = 0;
        for svc in self.services() {
            for (name, v) in svc.drops() {
                s.drops.push_named(&format!("daemon_{name}"), v);
            }
            for (name, v) in svc.counters() {
                s.counters.push_named(name, v);
            }
            s.sessions += svc.rows(&self.ebpf).len();
        }
        if let Some(r) = &self.radius {
            for (name, v) in r.counter_values() {
                s.counters.push_named(name, v);
            }
        }
        s.counters
            .push_named("pool_addresses_in_use", self.pool.in_use() as u64);
        s.xdp_forward = self.xdp_forward.as_ref().map(|f| f.status());
        s.last_restart = self
            .restarted
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        for (l, n) in s.listeners.iter_mut().zip(&self.received) {
            l.received = n.load(Ordering::Relaxed);
        }
        Ok(s)
    }
}

/// Runs the gateway in the foreground until SIGINT/SIGTERM or `vpn-ctl
/// down`; `handoff`: a restarting predecessor's (see [`handoff`]).
pub async fn run(
    cfg: Config,
    source: Source,
    mut handoff: Option<handoff::Handoff>,
) -> anyhow::Result<()> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        anyhow::bail!("vpn-ctl up must run as root (it configures interfaces, BPF and nftables)");
    }
    let run_dir = cfg.paths.run_dir.clone();
    fsutil::private_dir(&run_dir)?;
    let lock_path = run_dir.join(control::LOCK);
    let (lock, mut journal, inherited) = match &mut handoff {
        Some(h) => {
            let lock = fsutil::FileLock::adopt(handoff::own(h.lock_fd)?);
            (
                lock,
                undo::Journal::adopt(&run_dir)?,
                Some(h.inherited(&cfg)?),
            )
        }
        None => {
            let Some(lock) = fsutil::FileLock::try_acquire(&lock_path)? else {
                anyhow::bail!(
                    "vpn-ctl is already running (it holds {}); stop it with `vpn-ctl down`",
                    lock_path.display()
                );
            };
            if let Some(n) =
                undo::Journal::recover(&run_dir).context("recovering an earlier run")?
            {
                log::warn!(
                    "undid {n} changes left behind by an earlier vpn-ctl that did not exit cleanly"
                );
            }
            (lock, undo::Journal::new(&run_dir), None)
        }
    };

    let gateway = match setup::setup(&cfg, &source, &mut journal, inherited).await {
        Ok(g) => g,
        Err(e) => {
            journal.unwind();
            cleanup_run_dir(&run_dir);
            return Err(e);
        }
    };
    if let Some(h) = &handoff {
        h.restore(&gateway.shared);
    }
    drop(handoff);
    // From here on the daemon parses internet input: keep only what the
    // data path and teardown need, in every thread (#43). Fail closed.
    let caps = privileges::kept(journal.unmounts_bpffs());
    if let Err(e) = privileges::drop_all_threads(&caps) {
        log::error!("cannot drop capabilities: {e:#}");
        drop(gateway);
        journal.unwind();
        cleanup_run_dir(&run_dir);
        return Err(e.context("dropping capabilities after setup"));
    }
    log::info!(
        "capabilities after setup: {} (everything else dropped, bounding set too)",
        privileges::describe(&caps)
    );
    let result = server::serve(&cfg, gateway, lock.raw_fd()).await;
    let result = match result {
        Ok(server::Exit::Restart(r)) => {
            // Only returns if the exec failed: stop as `down` would.
            let e = handoff::exec(&r.successor, &run_dir, &r.handoff, &r.keep);
            log::error!("restart failed, stopping: {e:#}");
            drop(r);
            Err(e.context("restart"))
        }
        Ok(server::Exit::Stopped) => Ok(()),
        Err(e) => Err(e),
    };
    journal.unwind();
    cleanup_run_dir(&run_dir);
    drop(lock);
    println!("vpn-ctl: gateway stopped, host restored");
    result
}

fn cleanup_run_dir(run_dir: &std::path::Path) {
    let _ = std::fs::remove_file(control::socket_path(run_dir));
}
