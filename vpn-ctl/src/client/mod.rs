//! `vpn-ctl connect SERVER`: the native protocol's client. Handshake, then
//! a TUN device with the granted address, routes and DNS, then the data path
//! until the session ends; reconnects (asking for the same address) after
//! network loss or a gateway restart; restores the host on exit.
mod datapath;
mod handshake;
mod host;
mod pushed;

use std::{
    net::{SocketAddr, ToSocketAddrs as _},
    path::PathBuf,
    sync::atomic::{AtomicBool, Ordering},
    time::{Duration, Instant},
};

use anyhow::Context as _;
use vpn_proto::native::{
    crypto::{self, Cipher},
    messages::{AuthRequest, Reason},
    session::{Params, Role, Session, Setup},
};
use zeroize::Zeroizing;

use self::{datapath::Ended, host::Host};
use crate::{daemon::undo::Journal, fsutil, net::prefix::Ipv4Prefix};

pub use host::Options as HostOptions;

pub struct ConnectOptions {
    pub server: String,
    pub user: String,
    pub password: Zeroizing<String>,
    pub psk: Zeroizing<String>,
    /// The gateway key the user pinned (its public half).
    pub gateway_key: [u8; 32],
    pub ciphers: Vec<Cipher>,
    pub host: HostOptions,
    pub reconnect: bool,
    pub run_dir: PathBuf,
}

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::Relaxed);
}

/// Waits up to `d`, returning early (false) when asked to stop.
fn pause(d: Duration) -> bool {
    let end = Instant::now() + d;
    while Instant::now() < end {
        if STOP.load(Ordering::Relaxed) {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    !STOP.load(Ordering::Relaxed)
}

fn resolve(server: &str) -> anyhow::Result<SocketAddr> {
    let with_port = if server.contains(':') {
        server.to_string()
    } else {
        format!("{server}:{}", crate::config::NATIVE_DEFAULT_PORT)
    };
    with_port
        .to_socket_addrs()
        .with_context(|| format!("cannot resolve {server}"))?
        .find(SocketAddr::is_ipv4)
        .with_context(|| format!("{server} has no IPv4 address"))
}

pub fn run(opts: ConnectOptions) -> anyhow::Result<()> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        anyhow::bail!("vpn-ctl connect must run as root (it creates a TUN device and routes)");
    }
    // SAFETY: the handler only stores to an atomic (async-signal-safe).
    unsafe {
        libc::signal(libc::SIGINT, on_signal as *const () as libc::sighandler_t);
        libc::signal(libc::SIGTERM, on_signal as *const () as libc::sighandler_t);
    }
    fsutil::private_dir(&opts.run_dir)?;
    let lock_path = opts.run_dir.join("lock");
    let Some(_lock) = fsutil::FileLock::try_acquire(&lock_path)? else {
        anyhow::bail!(
            "another vpn-ctl connect uses {} (it holds {})",
            opts.host.interface,
            lock_path.display()
        );
    };
    if let Some(n) = Journal::recover(&opts.run_dir)? {
        log::warn!("undid {n} changes left by an earlier connect that did not exit cleanly");
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut journal = Journal::new(&opts.run_dir);
    let result = session_loop(&opts, &rt, &mut journal);
    journal.unwind();
    if result.is_ok() {
        println!("vpn-ctl: disconnected; host restored");
    }
    result
}

fn session_loop(
    opts: &ConnectOptions,
    rt: &tokio::runtime::Runtime,
    journal: &mut Journal,
) -> anyhow::Result<()> {
    let psk = crypto::noise_psk(&opts.psk);
    let mut host: Option<Host> = None;
    let mut backoff = Duration::from_secs(1);
    loop {
        let server = resolve(&opts.server)?;
        let auth = AuthRequest {
            user: opts.user.clone(),
            password: opts.password.clone(),
            want_ip: host.as_ref().map(|h| h.address),
        };
        let (keys, welcome) =
            match handshake::connect(server, &psk, &opts.gateway_key, auth, &opts.ciphers) {
                Ok(ok) => ok,
                Err(e) if e.is_fatal() || !opts.reconnect => return Err(e.into()),
                Err(e) => {
                    eprintln!("vpn-ctl: {e}; retrying in {}s", backoff.as_secs());
                    if !pause(backoff) {
                        return Ok(());
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(30));
                    continue;
                }
            };
        backoff = Duration::from_secs(1);
        // Keep the interface across reconnects when the address is unchanged.
        if host
            .as_ref()
            .is_some_and(|h| h.address != welcome.address || h.prefix_len != welcome.prefix_len)
        {
            host = None;
            journal.unwind();
        }
        let reconnected = host.is_some();
        if host.is_none() {
            host = Some(rt.block_on(host::setup(&opts.host, server, &welcome, journal))?);
        }
        let h = host.as_ref().expect("set above");
        let routes: Vec<String> = h.routes.iter().map(Ipv4Prefix::to_string).collect();
        println!(
            "vpn-ctl: {} {server} as {}: address {}/{} on {}, routes [{}], dns [{}], {}",
            if reconnected {
                "reconnected to"
            } else {
                "connected to"
            },
            opts.user,
            welcome.address,
            welcome.prefix_len,
            h.tun.name,
            routes.join(", "),
            welcome
                .dns
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", "),
            keys.cipher.name()
        );
        let data_server = SocketAddr::new(server.ip(), welcome.udp_port);
        let mut session = Session::new(
            Setup {
                role: Role::Client,
                id: welcome.session_id,
                cipher: keys.cipher,
                data: keys.data,
                psk: psk.clone(),
                params: Params {
                    keepalive: welcome.keepalive,
                    rekey: welcome.rekey,
                },
                inner_addr: None,
                peer: Some(data_server),
            },
            Instant::now(),
        );
        let udp = std::net::UdpSocket::bind("0.0.0.0:0").context("UDP socket")?;
        udp.set_nonblocking(true)?;
        let udp = std::os::fd::OwnedFd::from(udp);
        crate::net::batch::set_buffers(
            std::os::fd::AsRawFd::as_raw_fd(&udp),
            crate::net::batch::SOCKET_BUFFER,
        );
        let ended = datapath::run(&mut session, &h.tun.queues[0], &udp, data_server, &STOP)?;
        match ended {
            Ended::Stopped => {
                for d in session.close(Instant::now(), Reason::ClientExit, "") {
                    let _ = crate::net::batch::send_to(
                        std::os::fd::AsRawFd::as_raw_fd(&udp),
                        &d,
                        data_server,
                    );
                }
                return Ok(());
            }
            Ended::Closed(reason, msg) if !reason.retry() || !opts.reconnect => {
                let extra = if msg.is_empty() {
                    String::new()
                } else {
                    format!(" ({msg})")
                };
                anyhow::bail!("disconnected by the gateway: {}{extra}", reason.describe());
            }
            Ended::Closed(reason, _) => {
                eprintln!(
                    "vpn-ctl: the gateway ended the session: {}; reconnecting",
                    reason.describe()
                );
            }
            Ended::PeerDead if !opts.reconnect => {
                anyhow::bail!("connection lost: no answer from the gateway");
            }
            Ended::PeerDead => {
                eprintln!("vpn-ctl: connection lost: no answer from the gateway; reconnecting");
            }
        }
        if !pause(Duration::from_millis(500)) {
            return Ok(());
        }
    }
}
