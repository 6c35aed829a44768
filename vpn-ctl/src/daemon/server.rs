//! The running gateway: control socket, service sockets, TUN readers,
//! signals. Returns when asked to stop.
use std::{
    os::{fd::AsRawFd as _, unix::fs::PermissionsExt as _},
    sync::Arc,
};

use anyhow::Context as _;
use tokio::{
    io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader},
    net::{UnixListener, UnixStream},
    signal::unix::{signal, SignalKind},
};

use super::{
    gateway,
    handoff::{self, Handoff, Keep},
    ipsec, l2tp, native, pptp, services,
    setup::Gateway,
    Shared,
};
use crate::{
    config::Config,
    control::{self, Request, Response},
    users::UserDb,
};

/// How `serve` ended.
pub enum Exit {
    /// Stopped: the caller restores the host.
    Stopped,
    /// `vpn-ctl restart`: the caller execs the successor with this.
    Restart(Box<Restart>),
}

pub struct Restart {
    pub successor: std::path::PathBuf,
    pub handoff: Handoff,
    pub keep: Keep,
    /// Held until the exec: its sockets and maps stay open meanwhile.
    pub _shared: Arc<Shared>,
}

pub async fn serve(cfg: &Config, gw: Gateway, lock_fd: std::os::fd::RawFd) -> anyhow::Result<Exit> {
    let Gateway {
        shared,
        tun,
        sockets,
        metrics,
        logger,
        carried,
    } = gw;
    let super::setup::Carried {
        mut keep,
        sockets: socket_fds,
        tun: tun_fds,
    } = carried;
    let path = control::socket_path(&cfg.paths.run_dir);
    let _ = std::fs::remove_file(&path);
    let listener = UnixListener::bind(&path)
        .with_context(|| format!("cannot bind control socket {}", path.display()))?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;

    let mut tasks = tokio::task::JoinSet::new();
    for s in sockets {
        let index = shared
            .base
            .listeners
            .iter()
            .position(|l| l.proto == s.spec.proto && l.port == s.spec.port)
            .unwrap_or_default();
        if s.spec.service == "native" && s.spec.proto == "tcp" {
            let listener = tokio::net::TcpListener::from_std(std::net::TcpListener::from(s.fd))?;
            tasks.spawn(native::serve_handshakes(listener, index, shared.clone()));
        } else if s.spec.service == "radius-dae" && shared.radius.is_some() {
            let sock = tokio::net::UdpSocket::from_std(std::net::UdpSocket::from(s.fd))?;
            let radius = shared.radius.clone().expect("checked");
            tasks.spawn(super::radius::dae::serve(sock, shared.clone(), radius));
        } else if s.spec.service == "pptp" && shared.pptp.is_some() {
            let listener = tokio::net::TcpListener::from_std(std::net::TcpListener::from(s.fd))?;
            tasks.spawn(pptp::serve(listener, index, shared.clone()));
        } else {
            tasks.spawn(services::run(s, index, shared.clone()));
        }
    }
    tasks.spawn(native::run_timers(shared.clone()));
    if let Some(f) = &shared.xdp_forward {
        tasks.spawn(super::xdp_forward::run(shared.clone(), f.clone()));
    }
    if let Some(r) = &shared.radius {
        tasks.spawn(super::radius::accounting::run(shared.clone(), r.clone()));
    }
    if let Some(m) = metrics {
        let listener = tokio::net::TcpListener::from_std(m)?;
        tasks.spawn(super::metrics_http::serve(listener, shared.clone()));
    }
    let mut gre_reader = None;
    if shared.pptp.is_some() {
        tasks.spawn(pptp::run_timers(shared.clone()));
        let q = tun.queues.first().context("no TUN queue")?.try_clone()?;
        gre_reader = Some(pptp::spawn_reader(shared.clone(), q));
    }
    let mut l2tp_worker = None;
    if shared.l2tp.is_some() {
        let q = tun.queues.first().context("no TUN queue")?.try_clone()?;
        l2tp_worker = Some(l2tp::spawn_worker(shared.clone(), q));
    }
    // One IPsec worker per NAT-T socket (the first also reads UDP 500
    // and raw ESP, and runs the timers).
    let mut ipsec_workers = Vec::new();
    if let Some(i) = &shared.ipsec {
        for index in 0..=i.sockets.natt_workers.len() {
            let q = tun.queues.first().context("no TUN queue")?.try_clone()?;
            ipsec_workers.push(ipsec::spawn_worker(shared.clone(), q, index));
        }
    }
    let port: Arc<dyn gateway::tun::DatagramPort> = Arc::new(native::Port(shared.clone()));
    let workers = gateway::tun::spawn_workers(tun.queues, shared.clone(), Some(port));

    let mut sigint = signal(SignalKind::interrupt())?;
    let mut sigterm = signal(SignalKind::terminate())?;
    let mut sighup = signal(SignalKind::hangup())?;
    println!("vpn-ctl: gateway up; control socket {}", path.display());
    let state_dir = cfg.paths.state_dir.clone();
    loop {
        tokio::select! {
            _ = sigint.recv() => { log::info!("SIGINT: stopping"); break; }
            _ = sigterm.recv() => { log::info!("SIGTERM: stopping"); break; }
            _ = shared.shutdown.notified() => { log::info!("vpn-ctl down or restart: stopping"); break; }
            _ = sighup.recv() => {
                // systemctl reload: what can change live is the user database.
                log::info!("SIGHUP: reloading the user database");
                if let Err(e) = reload_users(&shared, &state_dir) {
                    log::warn!("SIGHUP: {e:#}; the users in force are unchanged");
                }
            }
            conn = listener.accept() => match conn {
                Ok((stream, _)) => {
                    let shared = shared.clone();
                    let state_dir = state_dir.clone();
                    tokio::spawn(async move {
                        if let Err(e) = handle(stream, &shared, &state_dir).await {
                            log::warn!("control connection: {e:#}");
                        }
                    });
                }
                Err(e) => log::warn!("control socket accept: {e}"),
            },
        }
    }
    if let Some(successor) = shared.take_restart() {
        // Everything that reads stops, then the state is taken.
        let mut ended = Vec::new();
        let threads = [gre_reader, l2tp_worker]
            .into_iter()
            .flatten()
            .chain(ipsec_workers);
        stop_readers(&mut tasks, &shared, workers, threads, logger).await;
        // Nothing moves packets now: the connection tasks hand over.
        let mut pptp_carried = Vec::new();
        if let Some(p) = &shared.pptp {
            let before = p.all().len();
            let (carried, fds) = p.handoff.collect(HANDOVER_DEADLINE).await;
            keep.0.extend(fds.0);
            let n: usize = carried.iter().map(|c| c.calls.len()).sum();
            if before > n {
                ended.push(("pptp".into(), before - n));
            }
            pptp_carried = carried;
        }
        let ipsec_carried = shared.ipsec.as_ref().map(|i| i.carry());
        let mut l2tp_carried = Vec::new();
        if let Some(l) = &shared.l2tp {
            let (carried, n) = l2tp::carry::carry(l);
            if n > 0 {
                ended.push(("l2tp".into(), n));
            }
            l2tp_carried = carried;
        }
        let now = std::time::Instant::now();
        let native_udp = shared
            .native
            .udp
            .iter()
            .skip(1)
            .map(|f| keep.dup(f.as_raw_fd()))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let ipsec_natt = match &shared.ipsec {
            Some(i) => i
                .sockets
                .natt_workers
                .iter()
                .map(|f| keep.dup(f.as_raw_fd()))
                .collect::<anyhow::Result<Vec<_>>>()?,
            None => Vec::new(),
        };
        let pptp_gre = match &shared.pptp {
            Some(p) => Some(keep.dup(p.gre.as_raw_fd())?),
            None => None,
        };
        let handoff = Handoff {
            format: handoff::FORMAT,
            from_version: env!("CARGO_PKG_VERSION").into(),
            started_at: shared.base.started_at,
            restarts: shared.base.restarts,
            wan: shared.base.wan.name.clone(),
            pool: shared.base.pool.clone(),
            xdp_mode: shared.base.wan.xdp_mode.clone(),
            xdp_prog_id: shared.base.wan.xdp_prog_id,
            tc_prog_id: shared.base.vpn.tc_prog_id,
            next_row_id: shared.pool.next_row_id(),
            lock_fd,
            tun: tun_fds,
            sockets: socket_fds,
            native_udp,
            pptp_gre,
            ipsec_natt,
            native: shared.native.registry.carry(now),
            pptp: pptp_carried,
            l2tp: l2tp_carried,
            ipsec: ipsec_carried,
            radius: shared.radius.as_ref().map(|r| r.carry()),
            ended,
        };
        return Ok(Exit::Restart(Box::new(Restart {
            successor,
            handoff,
            keep,
            _shared: shared,
        })));
    }
    // The accounting server hears of every session's end, then clients
    // are told (they reconnect once the gateway is back), then stop.
    if let Some(r) = &shared.radius {
        let limit = std::time::Duration::from_secs(3);
        super::radius::accounting::stop_all(&shared, r, limit).await;
    }
    for svc in shared.services() {
        svc.shutdown();
    }
    let threads = [gre_reader, l2tp_worker]
        .into_iter()
        .flatten()
        .chain(ipsec_workers);
    stop_readers(&mut tasks, &shared, workers, threads, logger).await;
    let _ = std::fs::remove_file(&path);
    // The last reference to the BPF object: detaches XDP/TC.
    drop(shared);
    Ok(Exit::Stopped)
}

/// How long a restart waits for PPTP's connection tasks to hand over.
const HANDOVER_DEADLINE: std::time::Duration = std::time::Duration::from_secs(2);

/// Stops everything that reads sockets or queues: the tasks, then (with
/// `stopping` set) the TUN workers and data-path threads, then the logger.
async fn stop_readers(
    tasks: &mut tokio::task::JoinSet<()>,
    shared: &Shared,
    workers: gateway::tun::Workers,
    threads: impl Iterator<Item = std::thread::JoinHandle<()>>,
    logger: Option<tokio::task::JoinHandle<()>>,
) {
    tasks.abort_all();
    while tasks.join_next().await.is_some() {}
    shared
        .stopping
        .store(true, std::sync::atomic::Ordering::Relaxed);
    drop(workers);
    for t in threads {
        let _ = t.join();
    }
    if let Some(l) = logger {
        l.abort();
    }
}

async fn handle(
    stream: UnixStream,
    shared: &Arc<Shared>,
    state_dir: &std::path::Path,
) -> anyhow::Result<()> {
    let cred = stream.peer_cred()?;
    let (rd, mut wr) = stream.into_split();
    if cred.uid() != 0 {
        let resp = Response::err("the control socket is for root only");
        wr.write_all(&encode(&resp)).await?;
        return Ok(());
    }
    let mut line = String::new();
    let mut rd = BufReader::new(rd.take(control::MAX_REQUEST as u64));
    rd.read_line(&mut line).await?;
    let resp = match serde_json::from_str::<Request>(&line) {
        Err(e) => Response::err(format!("bad request: {e}")),
        Ok(Request::Restart) => {
            // Checked before anything stops: a successor that cannot read
            // our handoff leaves the gateway running as it is.
            match handoff::successor() {
                Ok(path) => {
                    wr.write_all(&encode(&Response::ok(serde_json::Value::Null)))
                        .await?;
                    wr.shutdown().await?;
                    log::info!("vpn-ctl restart: handing over to {}", path.display());
                    shared.request_restart(path);
                    return Ok(());
                }
                Err(e) => Response::err(format!("{e:#}")),
            }
        }
        Ok(req) => answer(req, shared, state_dir),
    };
    wr.write_all(&encode(&resp)).await?;
    Ok(())
}

fn answer(req: Request, shared: &Arc<Shared>, state_dir: &std::path::Path) -> Response {
    match req {
        Request::Status => match shared.status() {
            Ok(s) => Response::ok(serde_json::to_value(s).unwrap_or_default()),
            Err(e) => Response::err(format!("{e:#}")),
        },
        Request::Sessions => {
            Response::ok(serde_json::to_value(shared.sessions()).unwrap_or_default())
        }
        Request::Kill { id } => {
            if let Some(r) = &shared.radius {
                r.sessions
                    .ended_by(id, vpn_proto::radius::consts::cause::ADMIN_RESET);
            }
            if shared
                .services()
                .iter()
                .any(|s| s.end(id, "ended by the administrator"))
            {
                Response::ok(serde_json::Value::Null)
            } else {
                Response::err(format!("no session {id}"))
            }
        }
        Request::ReloadUsers => match reload_users(shared, state_dir) {
            Ok(()) => Response::ok(serde_json::Value::Null),
            Err(e) => Response::err(format!("{e:#}")),
        },
        Request::Shutdown => {
            shared.shutdown.notify_one();
            Response::ok(serde_json::Value::Null)
        }
        Request::Restart => Response::err("restart is answered by the connection handler"),
    }
}

/// Re-reads users.toml (`users add/del/passwd`, SIGHUP); sessions of users
/// no longer in it end now, so revocation sticks.
fn reload_users(shared: &Shared, state_dir: &std::path::Path) -> anyhow::Result<()> {
    let db = UserDb::load(state_dir)?;
    let n = db.users.len();
    for svc in shared.services() {
        for row in svc.rows(&shared.ebpf) {
            if !row.user.is_empty() && db.find(&row.user).is_none() {
                svc.end(row.id, "the user was removed");
            }
        }
    }
    if let Ok(mut u) = shared.users.lock() {
        *u = db;
    }
    log::info!("user database reloaded: {n} users");
    Ok(())
}

fn encode(resp: &Response) -> Vec<u8> {
    let mut v = serde_json::to_vec(resp).unwrap_or_default();
    v.push(b'\n');
    v
}
