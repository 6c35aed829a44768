//! What `connect` changes on the client host: its TUN device with the
//! granted address and MTU, routes (split or full tunnel) and DNS. Changes
//! that outlive the TUN device (the host route to the gateway, resolv.conf)
//! go through the undo journal first, so exit and a later run restore them.
use std::{
    net::{Ipv4Addr, SocketAddr},
    path::PathBuf,
};

use anyhow::Context as _;
use vpn_proto::native::messages::Welcome;

use crate::{
    daemon::undo::{Action, Journal},
    net::{
        self,
        netlink::Netlink,
        prefix::Ipv4Prefix,
        tun::{Framing, Tun},
    },
};

pub struct Options {
    pub interface: String,
    pub full_tunnel: bool,
    pub extra_routes: Vec<Ipv4Prefix>,
    /// None: leave DNS alone.
    pub resolv_conf: Option<PathBuf>,
}

/// The tunnel's side of the host, while connected.
pub struct Host {
    pub tun: Tun,
    pub address: Ipv4Addr,
    pub prefix_len: u8,
    pub routes: Vec<Ipv4Prefix>,
}

/// Creates and configures the TUN device for `w`; records the rest in `journal`.
pub async fn setup(
    opts: &Options,
    server: SocketAddr,
    w: &Welcome,
    journal: &mut Journal,
) -> anyhow::Result<Host> {
    let nl = Netlink::connect()?;
    let tun = Tun::create(&opts.interface, 1, Framing::Tso)?;
    let idx = net::ifindex(&opts.interface).context("TUN device vanished")?;
    nl.add_address(idx, w.address, w.prefix_len).await?;
    nl.set_mtu(idx, w.mtu.into()).await?;
    nl.set_up(idx).await?;

    let mut routes: Vec<Ipv4Prefix> = Vec::new();
    if opts.full_tunnel {
        // The gateway itself stays reachable the old way, or the tunnel
        // would carry its own packets.
        let SocketAddr::V4(s) = server else {
            anyhow::bail!("IPv6 gateways are not supported");
        };
        let (via, oif) = nl
            .default_route()
            .await?
            .context("--full-tunnel needs an existing default route to reach the gateway by")?;
        let host = Ipv4Prefix::new(*s.ip(), 32).map_err(anyhow::Error::msg)?;
        journal.record(Action::DeleteRoute {
            prefix: host.to_string(),
            via,
            oif,
        })?;
        nl.add_route(host, via, oif).await?;
        // Two halves instead of replacing the default route: more specific,
        // and the original default is untouched when the tunnel goes away.
        for half in ["0.0.0.0/1", "128.0.0.0/1"] {
            routes.push(half.parse().map_err(anyhow::Error::msg)?);
        }
    } else {
        let gateway = match server {
            SocketAddr::V4(s) => *s.ip(),
            SocketAddr::V6(_) => anyhow::bail!("IPv6 gateways are not supported"),
        };
        let (keep, refused) = super::pushed::routes(&w.routes, gateway);
        for r in refused {
            eprintln!("vpn-ctl: ignoring a route the gateway pushed: {r}");
        }
        routes.extend(keep);
        routes.extend(opts.extra_routes.iter().copied());
    }
    for r in &routes {
        nl.add_route(*r, None, idx).await?;
    }

    if let Some(path) = &opts.resolv_conf {
        let dns = super::pushed::dns(&w.dns);
        if !dns.is_empty() {
            set_dns(path, &dns, journal)?;
        }
    }
    Ok(Host {
        tun,
        address: w.address,
        prefix_len: w.prefix_len,
        routes,
    })
}

fn set_dns(path: &std::path::Path, dns: &[Ipv4Addr], journal: &mut Journal) -> anyhow::Result<()> {
    let symlink = std::fs::read_link(path).ok();
    let content = if symlink.is_some() {
        None
    } else {
        match std::fs::read_to_string(path) {
            Ok(t) => Some(t),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(e).with_context(|| format!("read {}", path.display())),
        }
    };
    journal.record(Action::RestoreFile {
        path: path.into(),
        content,
        symlink,
    })?;
    let mut text = String::from("# written by vpn-ctl connect; restored when it exits\n");
    for d in dns {
        text.push_str(&format!("nameserver {d}\n"));
    }
    let _ = std::fs::remove_file(path); // replace a symlink rather than write through it
    std::fs::write(path, text).with_context(|| format!("write {}", path.display()))
}
