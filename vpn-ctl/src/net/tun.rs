//! The VPN interface: a non-persistent multi-queue TUN device. It exists as
//! long as the daemon holds its queues, so a crashed daemon leaves no link.
use std::{
    fs::{File, OpenOptions},
    os::fd::{AsRawFd as _, OwnedFd},
};

use anyhow::Context as _;

const TUNSETIFF: libc::c_ulong = 0x4004_54ca;
const IFF_TUN: libc::c_short = 0x0001;
const IFF_NO_PI: libc::c_short = 0x1000;
const IFF_MULTI_QUEUE: libc::c_short = 0x0100;
const IFF_VNET_HDR: libc::c_short = 0x4000;
const TUNSETOFFLOAD: libc::c_ulong = 0x4004_54d0;
const TUNGETIFF: libc::c_ulong = 0x8004_54d2;
const TUN_F_CSUM: libc::c_ulong = 0x01;
const TUN_F_TSO4: libc::c_ulong = 0x02;

#[repr(C)]
struct IfReq {
    name: [libc::c_char; libc::IFNAMSIZ],
    flags: libc::c_short,
    _pad: [u8; 22],
}

/// How packets cross the queues.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// Bare IP packets.
    Plain,
    /// Each packet behind a `virtio_net_hdr`: writes may be GSO packets
    /// (`vpn_proto::offload::Coalescer`); reads are whole packets.
    VnetHdr,
    /// As `VnetHdr`, and reads may be unsegmented IPv4 TCP with partial
    /// checksums (TSO4; `vpn_proto::offload::split`): one read per 64 KiB
    /// of a flow.
    Tso,
}

pub struct Tun {
    pub name: String,
    pub queues: Vec<OwnedFd>,
}

impl Tun {
    /// The queues a restarting predecessor held (the device lives on).
    /// They must frame packets as `mode` says; a predecessor of another
    /// version may not have.
    pub fn adopt(name: &str, queues: Vec<OwnedFd>, mode: Framing) -> anyhow::Result<Tun> {
        for q in &queues {
            let mut req = IfReq {
                name: [0; libc::IFNAMSIZ],
                flags: 0,
                _pad: [0; 22],
            };
            // SAFETY: TUNGETIFF fills a struct ifreq, which `IfReq` matches.
            if unsafe { libc::ioctl(q.as_raw_fd(), TUNGETIFF, &mut req) } < 0 {
                return Err(std::io::Error::last_os_error())
                    .with_context(|| format!("inherited queue of {name}"));
            }
            if (req.flags & IFF_VNET_HDR != 0) != (mode != Framing::Plain) {
                anyhow::bail!(
                    "the running gateway frames {name}'s packets differently (another \
                     version): restart with `vpn-ctl down` and `vpn-ctl up`"
                );
            }
        }
        Ok(Tun {
            name: name.to_string(),
            queues,
        })
    }

    /// Creates `name` with `queues` queues. Fails if the name is taken.
    pub fn create(name: &str, queues: usize, mode: Framing) -> anyhow::Result<Tun> {
        if super::ifindex(name).is_some() {
            anyhow::bail!("interface {name} already exists");
        }
        let mut fds = Vec::with_capacity(queues);
        for _ in 0..queues.max(1) {
            let f: File = OpenOptions::new()
                .read(true)
                .write(true)
                .open("/dev/net/tun")
                .context("cannot open /dev/net/tun (is the tun module loaded?)")?;
            let mut req = IfReq {
                name: [0; libc::IFNAMSIZ],
                flags: IFF_TUN
                    | IFF_NO_PI
                    | IFF_MULTI_QUEUE
                    | if mode == Framing::Plain {
                        0
                    } else {
                        IFF_VNET_HDR
                    },
                _pad: [0; 22],
            };
            for (d, s) in req.name.iter_mut().zip(name.bytes()) {
                *d = s as libc::c_char;
            }
            // SAFETY: TUNSETIFF reads and writes a struct ifreq, which `IfReq` matches.
            let rc = unsafe { libc::ioctl(f.as_raw_fd(), TUNSETIFF, &mut req) };
            if rc < 0 {
                return Err(std::io::Error::last_os_error())
                    .with_context(|| format!("cannot create TUN device {name}"));
            }
            // SAFETY: TUNSETOFFLOAD takes its flags by value.
            if mode == Framing::Tso
                && unsafe { libc::ioctl(f.as_raw_fd(), TUNSETOFFLOAD, TUN_F_CSUM | TUN_F_TSO4) } < 0
            {
                return Err(std::io::Error::last_os_error())
                    .with_context(|| format!("cannot turn on TCP offload on {name}"));
            }
            // SAFETY: F_SETFL on a valid fd; queues are read from tokio later.
            unsafe { libc::fcntl(f.as_raw_fd(), libc::F_SETFL, libc::O_NONBLOCK) };
            fds.push(OwnedFd::from(f));
        }
        Ok(Tun {
            name: name.to_string(),
            queues: fds,
        })
    }
}
