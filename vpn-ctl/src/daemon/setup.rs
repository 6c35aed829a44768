//! Start-up, in an order that fails early: checks first (WAN, names, pool,
//! ports), then changes, each recorded in the undo journal before it is made.
use std::{
    net::Ipv4Addr,
    path::Path,
    sync::{atomic::AtomicU64, Arc, Mutex},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use anyhow::Context as _;
use tokio::sync::Notify;
use vpn_common::maps::{DataplaneConfig, CONFIG_F_CLIENT_ISOLATION, CONFIG_F_VALID};
use vpn_proto::ppp::link::LinkConfig;

use super::{
    gateway::{limits::LoginGuard, pool::Pool, ppp::PppService},
    handoff::{Keep, SocketFd},
    native::{registry::Registry, Native},
    privileges,
    undo::{Action, Journal},
    Shared,
};
use crate::{
    config::{Config, Source},
    dataplane::{self, bpffs, fastpath::SessionMaps},
    fsutil,
    net::{
        self, firewall,
        netlink::{HostNetwork, Netlink},
        nft, pool, ports,
        prefix::Ipv4Prefix,
        sysctl,
        tun::{Framing, Tun},
    },
    report::{ListenerStatus, Status, VpnStatus, WanStatus},
    secrets::Secrets,
    users::UserDb,
};

const IP_FORWARD: &str = "net.ipv4.ip_forward";

/// Everything the running gateway holds; dropping it releases the TUN
/// device, the sockets and the BPF links.
pub struct Gateway {
    pub shared: Arc<Shared>,
    pub tun: Tun,
    pub sockets: Vec<ports::BoundSocket>,
    /// The Prometheus endpoint's socket, when `[metrics]` is enabled.
    pub metrics: Option<std::net::TcpListener>,
    pub logger: Option<tokio::task::JoinHandle<()>>,
    pub carried: Carried,
}

/// Duplicates of the service sockets and TUN queues, taken before they are
/// handed to their tasks: a restart's successor inherits these.
pub struct Carried {
    pub keep: Keep,
    pub sockets: Vec<SocketFd>,
    pub tun: Vec<std::os::fd::RawFd>,
}

impl Carried {
    fn of(sockets: &[ports::BoundSocket], tun: &Tun) -> anyhow::Result<Carried> {
        use std::os::fd::AsRawFd as _;
        let mut keep = Keep::default();
        let mut fds = Vec::new();
        for s in sockets {
            fds.push(SocketFd {
                service: s.spec.service.into(),
                proto: s.spec.proto.into(),
                port: s.spec.port,
                fd: keep.dup(s.fd.as_raw_fd())?,
            });
        }
        let tun = tun
            .queues
            .iter()
            .map(|q| keep.dup(q.as_raw_fd()))
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(Carried {
            keep,
            sockets: fds,
            tun,
        })
    }
}

/// What a restarting daemon's successor takes over instead of creating:
/// the host is configured already (the journal on disk says how).
pub struct Inherited {
    pub wan: String,
    pub pool: Ipv4Prefix,
    pub tun: Vec<std::os::fd::OwnedFd>,
    pub sockets: Vec<ports::BoundSocket>,
    pub native_udp: Vec<std::os::fd::OwnedFd>,
    /// PPTP's raw GRE socket (what arrived meanwhile is queued there).
    pub pptp_gre: Option<std::os::fd::OwnedFd>,
    /// RADIUS accounting's Acct-Session-Id prefix.
    pub radius_boot: Option<u64>,
    /// The IPsec workers' extra NAT-T sockets.
    pub ipsec_natt: Vec<std::os::fd::OwnedFd>,
    pub started_at: u64,
    pub restarts: u32,
    /// The attachments (pinned links) as the predecessor made them.
    pub xdp: dataplane::XdpAttachment,
    pub tc_prog_id: u32,
}

pub async fn setup(
    cfg: &Config,
    source: &Source,
    journal: &mut Journal,
    inherited: Option<Inherited>,
) -> anyhow::Result<Gateway> {
    let nl = Netlink::connect()?;
    let resuming = inherited.is_some();
    let (mut inherited_tun, mut inherited_sockets, mut inherited_udp) = (None, None, None);
    let mut inherited_net = None;
    let mut inherited_dp = None;
    let mut inherited_gre = None;
    let mut radius_boot = None;
    let mut inherited_natt = None;
    let mut history = (None, 0);
    if let Some(i) = inherited {
        inherited_dp = Some((i.xdp, i.tc_prog_id));
        inherited_gre = i.pptp_gre;
        radius_boot = i.radius_boot;
        inherited_natt = Some(i.ipsec_natt);
        inherited_tun = Some(i.tun);
        inherited_sockets = Some(i.sockets);
        inherited_udp = Some(i.native_udp);
        inherited_net = Some((i.wan, i.pool));
        history = (Some(i.started_at), i.restarts);
    }

    // --- checks: nothing on the host changes before these pass ---
    let wan = match (&inherited_net, &cfg.gateway.wan) {
        (Some((name, _)), _) | (None, Some(name)) => name.clone(),
        (None, None) => {
            let idx = nl
                .default_route_ifindex()
                .await?
                .context("no IPv4 default route to pick the WAN interface from: set gateway.wan")?;
            nl.link_name(idx).await?
        }
    };
    let wan_ifindex =
        net::ifindex(&wan).with_context(|| format!("WAN interface {wan} does not exist"))?;
    let forward_ifs = forward_interfaces(cfg, &wan)?;
    let vpn_name = cfg.gateway.vpn_interface.as_str();
    if !resuming && net::ifindex(vpn_name).is_some() {
        anyhow::bail!("interface {vpn_name} already exists (set gateway.vpn_interface)");
    }
    let host_networks = nl.host_networks().await?;
    let pool = match &inherited_net {
        Some((_, pool)) => *pool,
        None => pool::choose(cfg.gateway.pool, &host_networks)?,
    };
    // A restart's vpn0 is one of the host's networks now: not a LAN.
    let host_networks: Vec<HostNetwork> = host_networks
        .into_iter()
        .filter(|n| !resuming || n.ifname.as_deref() != Some(vpn_name))
        .collect();
    let gw_addr = pool.nth(1).context("pool too small")?;
    let sockets = match inherited_sockets.take() {
        Some(s) => s,
        None => cfg
            .listeners()
            .into_iter()
            .map(ports::bind)
            .collect::<anyhow::Result<Vec<_>>>()?,
    };
    let metrics = metrics_listener(cfg)?;

    // --- secrets and users (persistent state, not host configuration) ---
    let state_dir = &cfg.paths.state_dir;
    fsutil::private_dir(state_dir)?;
    let psk_existed = state_dir.join(crate::secrets::FILE).exists();
    let (secrets, generated) = Secrets::load_or_generate(state_dir)?;
    let initial_user = UserDb::create_initial(state_dir)?;
    if generated || initial_user.is_some() {
        announce_first_start(state_dir, &secrets, !psk_existed, initial_user);
    }
    let migrated = UserDb::migrate(state_dir)?;
    if migrated > 0 {
        log::warn!(
            "{}: replaced the clear passwords of {migrated} users by argon2id verifiers and NT hashes (docs/decisions.md #42)",
            UserDb::path(state_dir).display()
        );
    }
    let users = UserDb::load(state_dir)?;
    for u in &users.users {
        if let Some(ip) = u.ip.filter(|ip| !pool.contains(*ip) || *ip == gw_addr) {
            log::warn!(
                "user {}: static address {ip} is not a client address of the pool {pool}",
                u.name
            );
        }
    }

    // --- host firewall (a restart's predecessor opened what it had to) ---
    let findings = if resuming {
        Vec::new()
    } else {
        firewall::check(&cfg.listeners(), pool)
    };
    for f in &findings {
        if cfg.firewall.open_ports {
            for rule in &f.fix {
                journal.record(Action::DeleteIptablesRule { args: rule.clone() })?;
                firewall::iptables("-I", rule)?;
            }
            println!("vpn-ctl: {}: opened (removed again on down)", f.message);
        } else {
            println!(
                "vpn-ctl: warning: {}; set firewall.open_ports = true to let vpn-ctl open it",
                f.message
            );
        }
    }

    // --- data plane, loaded (verified) before any interface changes ---
    let level = crate::config::log_level(&cfg.log.level).unwrap_or(log::LevelFilter::Info);
    let level = level.min(log::max_level());
    let pins = &cfg.paths.bpf_pin_dir;
    let mut ebpf = match &inherited_dp {
        Some(_) => dataplane::load_pinned(level, pins)?,
        None => dataplane::load(level)?,
    };

    // --- the VPN interface ---
    let tun = match inherited_tun.take() {
        Some(queues) => Tun::adopt(vpn_name, queues, Framing::Tso)?,
        None => {
            let queues = std::thread::available_parallelism().map_or(1, |n| n.get());
            Tun::create(vpn_name, queues, Framing::Tso)?
        }
    };
    let vpn_ifindex = net::ifindex(vpn_name).context("TUN device vanished")?;
    if !resuming {
        nl.add_address(vpn_ifindex, gw_addr, pool.prefix_len())
            .await?;
        // Tunnel MTU: packets bigger than this get ICMP "fragmentation needed".
        nl.set_mtu(vpn_ifindex, cfg.native.mtu.into()).await?;
        nl.set_up(vpn_ifindex).await?;
        host_changes(cfg, pool, &wan, vpn_name, journal)?;
    }

    // --- attach and pin ---
    let dp_cfg = DataplaneConfig {
        flags: CONFIG_F_VALID
            | if cfg.gateway.client_isolation {
                CONFIG_F_CLIENT_ISOLATION
            } else {
                0
            },
        wan_ifindex,
        vpn_ifindex,
        pool_addr: u32::from(pool.network()),
        pool_mask: pool.mask(),
        l2tp_port: if cfg.l2tp.enabled { cfg.l2tp.port } else { 0 },
        native_port: if cfg.native.enabled {
            cfg.native.port
        } else {
            0
        },
        ike_port: if cfg.l2tp.enabled {
            cfg.l2tp.ike_port
        } else {
            0
        },
        natt_port: if cfg.l2tp.enabled {
            cfg.l2tp.natt_port
        } else {
            0
        },
        pptp_enabled: u32::from(cfg.pptp.enabled),
    };
    dataplane::write_config(&mut ebpf, &dp_cfg)?;
    let (xdp, tc_prog_id) = match inherited_dp.take() {
        // Still attached through their pinned links.
        Some(dp) => dp,
        None => {
            pin(&ebpf, pins, journal)?;
            let xdp = dataplane::attach_xdp(&mut ebpf, &wan, cfg.xdp.mode, pins)?;
            let tc_prog_id = dataplane::attach_tc_egress(&mut ebpf, vpn_name, pins)?;
            if cfg.pptp.enabled || cfg.l2tp.enabled {
                dataplane::attach_tc_wan_ingress(&mut ebpf, &wan, pins)?;
            }
            for (name, _, _) in &forward_ifs {
                let a = dataplane::attach_xdp_lan(&mut ebpf, name, cfg.xdp.mode, pins)?;
                println!(
                    "vpn-ctl: {name}: XDP forwarding program attached in {} mode (prog {})",
                    a.mode, a.prog_id
                );
            }
            let lan: Vec<_> = forward_ifs.iter().map(|(_, i, m)| (*i, *m)).collect();
            dataplane::forward::set_interfaces(&mut ebpf, wan_ifindex, &lan)?;
            (xdp, tc_prog_id)
        }
    };
    // After the pins: the logger takes the log ring out of `ebpf`, and a
    // restart's successor reads the running programs' lines from its pin.
    let logger = dataplane::logger::spawn(&mut ebpf);
    let seq_page = if cfg.pptp.enabled {
        Some(dataplane::fastpath::SeqPage::map(&ebpf)?)
    } else {
        None
    };

    let started_at = history.0.unwrap_or_else(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    });
    let listeners: Vec<ListenerStatus> = sockets
        .iter()
        .map(|s| ListenerStatus {
            service: s.spec.service.into(),
            proto: s.spec.proto.into(),
            port: s.spec.port,
            received: 0,
        })
        .collect();
    let base = Status {
        pid: std::process::id(),
        version: env!("CARGO_PKG_VERSION").into(),
        started_at,
        restarts: history.1,
        config: match source {
            Source::Defaults => "defaults".into(),
            Source::File(p) => p.display().to_string(),
        },
        wan: WanStatus {
            name: wan.clone(),
            ifindex: wan_ifindex,
            xdp_mode: xdp.mode.into(),
            xdp_prog_id: xdp.prog_id,
        },
        vpn: VpnStatus {
            name: vpn_name.into(),
            ifindex: vpn_ifindex,
            address: format!("{gw_addr}/{}", pool.prefix_len()),
            queues: tun.queues.len(),
            tc_attach: "tcx".into(),
            tc_prog_id,
        },
        pool: pool.to_string(),
        gateway_address: gw_addr.to_string(),
        masquerade: cfg.nat.masquerade,
        sessions: 0,
        maps: Vec::new(),
        counters: Vec::new(),
        drops: Vec::new(),
        firewall: findings.iter().map(|f| f.message.clone()).collect(),
        notes: notes(cfg, &secrets),
        listeners,
        capabilities: privileges::describe_list(&privileges::kept(journal.unmounts_bpffs())),
        last_restart: None,
        xdp_forward: None,
    };

    println!(
        "vpn-ctl: WAN {wan}: XDP attached in {} mode (prog {}){}",
        xdp.mode,
        xdp.prog_id,
        if xdp.mode == "generic" {
            "; the driver has no native XDP"
        } else {
            ""
        }
    );
    println!(
        "vpn-ctl: {vpn_name} {gw_addr}/{} ({} queues), pool {pool}, NAT {} via {wan}",
        pool.prefix_len(),
        tun.queues.len(),
        if cfg.nat.masquerade {
            "masquerade"
        } else {
            "off"
        }
    );
    match accepting(cfg) {
        a if a.is_empty() => {
            println!("vpn-ctl: warning: no protocol can accept clients (see the notes)")
        }
        a => println!("vpn-ctl: clients can connect with {}", a.join(", ")),
    }
    for n in &base.notes {
        println!("vpn-ctl: note: {n}");
    }

    let carried = Carried::of(&sockets, &tun)?;
    let mut sockets = sockets;
    let pool_alloc = Pool::new(
        pool,
        gw_addr,
        cfg.gateway.max_sessions as usize,
        cfg.gateway.max_sessions_per_user as usize,
    );
    // With RADIUS accounting, ending sessions leave their last rows here.
    let finals = cfg
        .radius
        .enabled
        .then(|| Arc::new(super::radius::accounting::FinalRows::default()));
    let native = native_service(
        cfg,
        finals.clone(),
        &secrets,
        &pool_alloc,
        pool,
        gw_addr,
        &wan,
        &host_networks,
        &mut sockets,
        tun.queues.len(),
        inherited_udp.take(),
    )?;
    let received = base.listeners.iter().map(|_| AtomicU64::new(0)).collect();
    let ebpf = Arc::new(Mutex::new(ebpf));
    let users = Arc::new(Mutex::new(users));
    let radius = match &finals {
        Some(f) => Some(super::radius::Radius::start(&cfg.radius, f.clone(), radius_boot).await?),
        None => None,
    };
    let wan_mtu = net::mtu(&wan);
    if let Some(m) = wan_mtu.filter(|m| *m < 1500) {
        log::info!(
            "WAN {wan} has MTU {m}: PPP MRUs lowered to {} (PPTP, L2TP) and {} (L2TP/IPsec) so tunnel packets fit",
            net::ppp_mru(wan_mtu, 100, 1400),
            net::ppp_mru(wan_mtu, 140, 1360)
        );
    }
    let ppp = PppCommon {
        wan_mtu,
        dns: cfg.gateway.dns.clone(),
        server: gw_addr,
        routes: pool::pushed_routes(cfg, &host_networks, &wan, pool)
            .iter()
            .map(|r| (r.network(), r.prefix_len()))
            .collect(),
        pool: pool_alloc.clone(),
        users: users.clone(),
        maps: SessionMaps::new(ebpf.clone()),
        logins: native.logins.clone(),
        radius: radius.clone(),
    };
    let pptp = if cfg.pptp.enabled {
        Some(pptp_service(cfg, seq_page, &ppp, inherited_gre.take())?)
    } else {
        None
    };
    let l2tp = match sockets.iter().position(|s| s.spec.service == "l2tp") {
        Some(i) if cfg.l2tp.enabled => Some(l2tp_service(cfg, sockets.remove(i).fd, &ppp)),
        _ => None,
    };
    let ipsec = if cfg.ipsec_enabled() {
        Some(ipsec_service(
            cfg,
            &secrets,
            &mut sockets,
            ebpf.clone(),
            tun.queues.len(),
            inherited_natt.take(),
        )?)
    } else {
        None
    };
    let shared = Arc::new(Shared {
        ebpf,
        base,
        received,
        no_session: AtomicU64::new(0),
        tun_uncut: AtomicU64::new(0),
        users,
        pool: pool_alloc,
        native,
        pptp,
        l2tp,
        ipsec,
        radius,
        stopping: Default::default(),
        shutdown: Notify::new(),
        restart_to: Mutex::new(None),
        restarted: Mutex::new(None),
        xdp_forward: (!forward_ifs.is_empty()).then(|| {
            Arc::new(super::xdp_forward::XdpForward::new(
                forward_ifs.iter().map(|(n, _, _)| n.clone()).collect(),
            ))
        }),
    });
    if let Some(f) = &shared.xdp_forward {
        f.check(&shared.ebpf)?;
        super::route_watch::spawn(shared.ebpf.clone(), f.clone())?;
    }
    Ok(Gateway {
        shared,
        tun,
        sockets,
        metrics,
        logger,
        carried,
    })
}

/// The Prometheus endpoint's socket, bound with the others (a taken port
/// fails `up` before anything changes).
fn metrics_listener(cfg: &Config) -> anyhow::Result<Option<std::net::TcpListener>> {
    let m = &cfg.metrics;
    if !m.enabled {
        return Ok(None);
    }
    let l = std::net::TcpListener::bind(m.listen)
        .with_context(|| format!("metrics: cannot listen on {}", m.listen))?;
    l.set_nonblocking(true)?;
    if !m.listen.ip().is_loopback() {
        log::warn!(
            "metrics: listening on {} beyond loopback; the endpoint has no authentication",
            m.listen
        );
    }
    log::info!("metrics: http://{}/metrics", m.listen);
    Ok(Some(l))
}

/// Forwarding on, and the NAT/isolation table, each recorded first.
fn host_changes(
    cfg: &Config,
    pool: Ipv4Prefix,
    wan: &str,
    vpn_name: &str,
    journal: &mut Journal,
) -> anyhow::Result<()> {
    let old = sysctl::read(IP_FORWARD)?;
    if old != "1" {
        journal.record(Action::RestoreSysctl {
            key: IP_FORWARD.into(),
            value: old,
        })?;
        sysctl::write(IP_FORWARD, "1")?;
    }
    if cfg.nat.masquerade || cfg.gateway.client_isolation {
        if nft::table_exists()? {
            anyhow::bail!(
                "nftables table {} {} already exists (is another vpn-ctl running in this network namespace?)",
                nft::FAMILY,
                nft::TABLE
            );
        }
        journal.record(Action::DeleteNftTable)?;
        nft::install(&nft::Policy {
            pool,
            wan,
            masquerade: cfg.nat.masquerade,
            isolate_on: cfg.gateway.client_isolation.then_some(vpn_name),
        })?;
    }
    Ok(())
}

/// Pins the maps, mounting bpffs on its conventional place if needed (the
/// programs' links are pinned beside them).
/// `xdp.forward_interfaces` as (name, ifindex, MAC): each must exist, be
/// Ethernet, and not be the WAN.
fn forward_interfaces(cfg: &Config, wan: &str) -> anyhow::Result<Vec<(String, u32, [u8; 6])>> {
    cfg.xdp
        .forward_interfaces
        .iter()
        .map(|name| {
            anyhow::ensure!(
                name != wan,
                "xdp.forward_interfaces: {name} is the WAN interface"
            );
            let ifindex = net::ifindex(name)
                .with_context(|| format!("xdp.forward_interfaces: no interface {name}"))?;
            let mac = net::mac(name).with_context(|| {
                format!("xdp.forward_interfaces: {name} is not an Ethernet interface")
            })?;
            Ok((name.clone(), ifindex, mac))
        })
        .collect()
}

fn pin(ebpf: &aya::Ebpf, dir: &Path, journal: &mut Journal) -> anyhow::Result<()> {
    let root = Path::new("/sys/fs/bpf");
    if dir.starts_with(root) && !bpffs::is_bpffs(root) {
        journal.record(Action::UnmountBpffs { path: root.into() })?;
        bpffs::ensure_mounted(root)?;
    }
    if dir.exists() {
        // Left by a daemon that died before its journal was written.
        log::warn!("removing stale pins in {}", dir.display());
        std::fs::remove_dir_all(dir).with_context(|| format!("remove {}", dir.display()))?;
    }
    journal.record(Action::RemovePins { dir: dir.into() })?;
    dataplane::pin_maps(ebpf, dir)
}

/// The native protocol's state: keys, policy, the WELCOME template and the
/// UDP sockets of its workers (the bound one plus one per extra TUN queue).
#[allow(clippy::too_many_arguments)]
fn native_service(
    cfg: &Config,
    finals: Option<Arc<super::radius::accounting::FinalRows>>,
    secrets: &Secrets,
    leases: &Pool,
    pool: Ipv4Prefix,
    gw_addr: Ipv4Addr,
    wan: &str,
    host_networks: &[HostNetwork],
    sockets: &mut Vec<ports::BoundSocket>,
    workers: usize,
    inherited_udp: Option<Vec<std::os::fd::OwnedFd>>,
) -> anyhow::Result<Native> {
    use vpn_proto::native::{crypto, messages::Welcome, session::Params};
    let n = &cfg.native;
    let mut udp = Vec::new();
    if let Some(i) = sockets
        .iter()
        .position(|s| s.spec.service == "native" && s.spec.proto == "udp")
    {
        udp.push(sockets.remove(i).fd);
        if let Some(extra) = inherited_udp {
            udp.extend(extra);
        }
        for _ in udp.len()..workers {
            udp.push(
                net::batch::udp_reuseport(n.port)
                    .with_context(|| format!("bind UDP port {} for a worker", n.port))?,
            );
        }
    }
    let routes = pool::pushed_routes(cfg, host_networks, wan, pool);
    let params = Params {
        keepalive: Duration::from_secs(n.keepalive_secs.into()),
        rekey: Duration::from_secs(n.rekey_secs.into()),
    };
    Ok(Native {
        registry: Registry::new(leases.clone(), finals),
        psk: crypto::noise_psk(&secrets.psk),
        key: vpn_proto::native::crypto::StaticKey::new(&secrets.gateway_private()?),
        ciphers: n.cipher_list(),
        params,
        max_half_open: n.max_half_open as usize,
        handshake_timeout: Duration::from_secs(n.handshake_timeout_secs.into()),
        welcome: Welcome {
            session_id: 0,
            address: Ipv4Addr::UNSPECIFIED,
            prefix_len: pool.prefix_len(),
            gateway: gw_addr,
            routes: routes
                .iter()
                .map(|r| (r.network(), r.prefix_len()))
                .collect(),
            dns: cfg.gateway.dns.clone(),
            mtu: n.mtu,
            keepalive: params.keepalive,
            rekey: params.rekey,
            udp_port: n.port,
        },
        udp,
        handshakes: Default::default(),
        logins: Arc::default(),
        login_cache: Default::default(),
    })
}

/// What every PPP protocol's calls share: DNS to push, the pool, the
/// users, the session maps and the login backoff.
struct PppCommon {
    /// PPP MRUs are chosen so that tunnel packets fit it.
    wan_mtu: Option<u32>,
    dns: Vec<Ipv4Addr>,
    server: Ipv4Addr,
    routes: Vec<(Ipv4Addr, u8)>,
    pool: Pool,
    users: Arc<Mutex<UserDb>>,
    maps: Arc<SessionMaps>,
    logins: Arc<LoginGuard>,
    radius: Option<Arc<super::radius::Radius>>,
}

impl PppCommon {
    /// One protocol's PPP service: its link policy, with or without the
    /// in-kernel path.
    fn service(&self, protocol: &'static str, link: LinkConfig, fast: bool) -> Arc<PppService> {
        Arc::new(PppService {
            protocol,
            link,
            dns: self.dns.clone(),
            server: self.server,
            routes: self.routes.clone(),
            pool: self.pool.clone(),
            users: self.users.clone(),
            maps: fast.then(|| self.maps.clone()),
            logins: self.logins.clone(),
            radius: self.radius.clone(),
            counters: Default::default(),
        })
    }
}

/// PPTP's policy (docs/decisions.md) and its raw GRE socket.
fn pptp_service(
    cfg: &Config,
    seq: Option<dataplane::fastpath::SeqPage>,
    common: &PppCommon,
    inherited_gre: Option<std::os::fd::OwnedFd>,
) -> anyhow::Result<super::pptp::Pptp> {
    use vpn_proto::ppp::lcp::Auth;
    let p = &cfg.pptp;
    let mut auth = vec![Auth::MsChapV2];
    if p.allow_pap && !p.require_mppe {
        auth.push(Auth::Pap);
    }
    // CHAP-MD5 needs the clear password: a RADIUS server has it, we do not.
    if cfg.radius.enabled && !p.require_mppe {
        auth.push(Auth::ChapMd5);
    }
    let link = LinkConfig {
        auth,
        require_mppe: p.require_mppe,
        allow_mppe_128: true,
        allow_mppe_40: false,
        // PPTP's GRE (16) and IP (20) headers with room to spare: 1400 on a
        // 1500-byte WAN, less on a smaller one (a cloud's 1460, PPPoE).
        mru: net::ppp_mru(common.wan_mtu, 100, 1400),
        echo_interval: Duration::from_secs(p.echo_interval_secs.into()),
        echo_failures: p.echo_failures,
    };
    let ppp = common.service("pptp", link, seq.is_some());
    Ok(super::pptp::Pptp::new(
        ppp,
        p.max_half_open as usize,
        match inherited_gre {
            Some(fd) => fd,
            None => super::pptp::open_socket()?,
        },
        seq,
    ))
}

/// L2TP's policy (docs/decisions.md) on its bound UDP socket.
fn l2tp_service(
    cfg: &Config,
    socket: std::os::fd::OwnedFd,
    common: &PppCommon,
) -> super::l2tp::L2tp {
    use vpn_proto::{l2tp::tunnel::TunnelConfig, ppp::lcp::Auth};
    let l = &cfg.l2tp;
    let mut auth = vec![Auth::MsChapV2];
    if l.allow_pap {
        auth.push(Auth::Pap);
    }
    if cfg.radius.enabled {
        auth.push(Auth::ChapMd5);
    }
    let link = LinkConfig {
        auth,
        // Inside IPsec (and plain, where it is allowed) MPPE adds nothing.
        require_mppe: false,
        allow_mppe_128: false,
        allow_mppe_40: false,
        // IP (20) + UDP (8) + L2TP (up to 16) + PPP (4) in a 1500-byte path,
        // with room for ESP in UDP later.
        mru: net::ppp_mru(common.wan_mtu, 100, 1400),
        echo_interval: Duration::from_secs(l.echo_interval_secs.into()),
        echo_failures: l.echo_failures,
    };
    let ppp = common.service("l2tp", link.clone(), l.fast_path);
    // Inside ESP in UDP (about 70 bytes more than plain L2TP).
    let ppp_ipsec = cfg.ipsec_enabled().then(|| {
        let mru = net::ppp_mru(common.wan_mtu, 140, 1360);
        common.service("l2tp-ipsec", LinkConfig { mru, ..link }, false)
    });
    let secret = (!l.secret.is_empty()).then(|| l.secret.as_bytes().to_vec());
    let policy = super::l2tp::Policy {
        tunnel: TunnelConfig {
            host_name: "vpn-ctl".into(),
            hide_avps: l.hide_avps && secret.is_some(),
            secret,
            hello_interval: Duration::from_secs(l.hello_interval_secs.into()),
            max_sessions: l.max_sessions_per_tunnel as usize,
        },
        allow_plain: l.allow_plain,
        max_per_address: l.max_tunnels_per_address as usize,
        max_half_open: l.max_half_open as usize,
    };
    super::l2tp::L2tp::new(ppp, ppp_ipsec, policy, l.port, socket)
}

/// L2TP/IPsec: the IKE engine's policy (the gateway's PSK), the IKE and
/// NAT-T sockets, and a raw ESP socket.
fn ipsec_service(
    cfg: &Config,
    secrets: &Secrets,
    sockets: &mut Vec<ports::BoundSocket>,
    ebpf: Arc<Mutex<aya::Ebpf>>,
    workers: usize,
    inherited_natt: Option<Vec<std::os::fd::OwnedFd>>,
) -> anyhow::Result<super::ipsec::Ipsec> {
    use super::ipsec::{sockets::Sockets, Ipsec};
    use vpn_proto::ike::responder::Config as IkeConfig;
    let i = &cfg.ipsec;
    let mut take = |service: &str| {
        sockets
            .iter()
            .position(|s| s.spec.service == service)
            .map(|p| sockets.remove(p).fd)
            .with_context(|| format!("no {service} socket"))
    };
    let (ike, natt) = (take("ike")?, take("ike-natt")?);
    for fd in [&ike, &natt] {
        crate::net::batch::set_buffers(
            std::os::fd::AsRawFd::as_raw_fd(fd),
            crate::net::batch::SOCKET_BUFFER,
        );
    }
    let mut natt_workers = inherited_natt.unwrap_or_default();
    while natt_workers.len() + 1 < workers {
        natt_workers.push(
            crate::net::batch::udp_reuseport(cfg.l2tp.natt_port)
                .with_context(|| format!("bind UDP port {} for a worker", cfg.l2tp.natt_port))?,
        );
    }
    let esp = if i.raw_esp {
        match super::ipsec::sockets::open_raw_esp() {
            Ok(fd) => Some(fd),
            Err(e) => {
                log::warn!(
                    "ipsec: raw ESP socket: {e}; only clients behind NAT (ESP in UDP) can connect"
                );
                None
            }
        }
    } else {
        None
    };
    Ok(Ipsec {
        cfg: Arc::new(IkeConfig {
            psk: zeroize::Zeroizing::new(secrets.psk.as_bytes().to_vec()),
            legacy: i.legacy,
            max_phase1_life: Duration::from_secs(i.max_ike_lifetime_secs.into()),
            max_phase2_life: Duration::from_secs(i.max_esp_lifetime_secs.into()),
            setup_deadline: Duration::from_secs(i.setup_timeout_secs.into()),
        }),
        sockets: Arc::new(Sockets {
            ike,
            natt,
            esp,
            natt_workers,
        }),
        tables: Default::default(),
        inbound: Default::default(),
        half_open: super::gateway::limits::HalfOpen::new(i.max_half_open as usize),
        max_ike_sas: (cfg.gateway.max_sessions as usize * 2).max(64),
        counters: Default::default(),
        spis: crate::dataplane::esp_spis::EspSpis(ebpf),
    })
}

/// What `status` and the start-up banner tell the operator about the policy.
/// The protocols a client can complete a connection with, and their ports
/// (a protocol that listens but refuses everyone is not one of them).
fn accepting(cfg: &Config) -> Vec<String> {
    let mut v = Vec::new();
    if cfg.ipsec_enabled() {
        v.push(format!(
            "L2TP/IPsec (UDP {} and {})",
            cfg.l2tp.ike_port, cfg.l2tp.natt_port
        ));
    }
    if cfg.l2tp.enabled && cfg.l2tp.allow_plain {
        v.push(format!("plain L2TP (UDP {})", cfg.l2tp.port));
    }
    if cfg.pptp.enabled {
        v.push(format!("PPTP (TCP {} and GRE)", cfg.pptp.port));
    }
    if cfg.native.enabled {
        v.push(format!("native (TCP and UDP {})", cfg.native.port));
    }
    v
}

/// On first start at a terminal: the generated user, password and PSK,
/// once, and what to run next. Elsewhere (a service's log) only where
/// they are: secrets stay out of logs.
fn announce_first_start(
    state_dir: &std::path::Path,
    secrets: &Secrets,
    new_psk: bool,
    user: Option<&str>,
) {
    use std::io::IsTerminal as _;
    let pw_file = state_dir.join(crate::users::INITIAL_PASSWORD_FILE);
    let password = std::fs::read_to_string(&pw_file)
        .ok()
        .and_then(|t| t.lines().next().map(str::to_string));
    match (user, password) {
        (Some(user), Some(pw)) if std::io::stdout().is_terminal() => println!(
            "vpn-ctl: first start: generated (shown once; kept root-only under {}):\n  user:            {user}\n  password:        {pw}\n  pre-shared key:  {}\n  next: vpn-ctl client-config {user} --os windows|macos|ios|android|linux|native --server THIS-HOST [--qr]",
            state_dir.display(),
            secrets.psk
        ),
        _ => {
            let mut made = vec![if new_psk {
                "the pre-shared key and the gateway key"
            } else {
                "the gateway key"
            }
            .to_string()];
            made[0] += &format!(" ({})", state_dir.join(crate::secrets::FILE).display());
            if let Some(user) = user {
                made.push(format!(
                    "user `{user}` with a random password ({})",
                    pw_file.display()
                ));
            }
            println!(
                "vpn-ctl: first start: generated {}, readable by root only; `vpn-ctl client-config` prints what clients need",
                made.join(" and ")
            );
        }
    }
}

fn notes(cfg: &Config, secrets: &Secrets) -> Vec<String> {
    let mut v = Vec::new();
    if cfg.radius.enabled {
        let servers: Vec<String> = cfg
            .radius
            .servers
            .iter()
            .map(|s| s.address.to_string())
            .collect();
        v.push(format!(
            "RADIUS decides every login ({}); users.toml is not consulted{}",
            servers.join(", "),
            if cfg.radius.accounting {
                "; sessions are accounted"
            } else {
                ""
            }
        ));
    }
    if cfg.pptp.enabled {
        v.push("PPTP is enabled; PPTP/MS-CHAPv2 is cryptographically weak".into());
    }
    if cfg.l2tp.enabled && cfg.l2tp.allow_plain {
        v.push(
            "plain L2TP is allowed (l2tp.allow_plain): its sessions cross the network unencrypted"
                .into(),
        );
    } else if cfg.l2tp.enabled {
        v.push("plain L2TP (without IPsec) is refused (l2tp.allow_plain = false)".into());
    }
    if cfg.ipsec_enabled() {
        use vpn_proto::ike::proposal;
        let names = |v: Vec<String>| v.join(",");
        v.push(format!(
            "L2TP/IPsec: pre-shared key fingerprint {} (`vpn-ctl ipsec-psk` shows the key)",
            crate::secrets::psk_fingerprint(&secrets.psk)
        ));
        v.push(format!(
            "L2TP/IPsec: IKE proposals {}",
            proposal::describe_phase1(cfg.ipsec.legacy)
        ));
        v.push(format!(
            "L2TP/IPsec: ESP proposals {}",
            names(
                proposal::phase2_preferences(cfg.ipsec.legacy)
                    .iter()
                    .map(|t| t.name())
                    .collect()
            )
        ));
    }
    if cfg.ipsec_enabled() && cfg.ipsec.legacy {
        v.push("L2TP/IPsec legacy proposals are on (ipsec.legacy: MODP1536/MODP1024, 3DES) for older Android and macOS clients; turn off when none connect".into());
    }
    if cfg.l2tp.enabled && !cfg.ipsec_enabled() && !cfg.l2tp.allow_plain {
        v.push("L2TP is on but IPsec is off (ipsec.enabled = false) and plain L2TP is refused: no L2TP client can connect".into());
    }
    v
}
