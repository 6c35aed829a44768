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
const TUN_F_CSUM: libc::c_ulong = 0x01;
const TUN_F_TSO4: libc::c_ulong = 0x02;

#[repr(C)]
struct IfReq {
    name: [libc::c_char; libc::IFNAMSIZ],
    flags: libc::c_short,
    _pad: [u8; 22],
}

pub struct Tun {
    pub name: String,
    pub queues: Vec<OwnedFd>,
}

impl Tun {
    /// The queues a restarting predecessor held (the device lives on).
    pub fn adopt(name: &str, queues: Vec<OwnedFd>) -> Tun {
        Tun {
            name: name.to_string(),
            queues,
        }
    }

    /// Creates `name` with `queues` queues. Fails if the name is taken.
    pub fn create(name: &str, queues: usize) -> anyhow::Result<Tun> {
        Tun::create_with(name, queues, false)
    }

    /// With `tso`, every packet read or written starts with a
    /// `virtio_net_hdr` and the stack may hand over unsegmented, unchecksummed
    /// IPv4 TCP (see `vpn_proto::offload`): one read per 64 KiB of a flow.
    pub fn create_with(name: &str, queues: usize, tso: bool) -> anyhow::Result<Tun> {
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
                flags: IFF_TUN | IFF_NO_PI | IFF_MULTI_QUEUE | if tso { IFF_VNET_HDR } else { 0 },
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
            if tso
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
