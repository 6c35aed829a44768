//! A raw IPv4 socket of one protocol (GRE, ESP) for the test clients: the
//! kernel adds the IPv4 header on send, and hands it over on receive.
use std::{
    net::Ipv4Addr,
    os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd},
    time::Duration,
};

use anyhow::Context as _;

pub struct RawIp(OwnedFd);

impl RawIp {
    /// A socket for `proto` whose receives give up after `wait`.
    pub fn open(proto: i32, wait: Duration) -> anyhow::Result<RawIp> {
        // SAFETY: plain socket call; the descriptor is owned at once.
        let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_RAW, proto) };
        anyhow::ensure!(
            fd >= 0,
            "raw socket {proto}: {}",
            std::io::Error::last_os_error()
        );
        // SAFETY: the kernel just gave us this descriptor.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let tv = libc::timeval {
            tv_sec: wait.as_secs() as libc::time_t,
            tv_usec: wait.subsec_micros() as libc::suseconds_t,
        };
        // SAFETY: a valid timeval for SO_RCVTIMEO.
        unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&tv as *const libc::timeval).cast(),
                std::mem::size_of::<libc::timeval>() as u32,
            )
        };
        Ok(RawIp(fd))
    }

    /// Sends `payload` (what follows the IPv4 header) to `dst`.
    pub fn send_to(&self, dst: Ipv4Addr, payload: &[u8]) -> anyhow::Result<()> {
        // SAFETY: a zeroed sockaddr_in is valid; filled below.
        let mut to: libc::sockaddr_in = unsafe { std::mem::zeroed() };
        to.sin_family = libc::AF_INET as u16;
        to.sin_addr.s_addr = u32::from_ne_bytes(dst.octets());
        // SAFETY: valid buffer and address for the call.
        let n = unsafe {
            libc::sendto(
                self.0.as_raw_fd(),
                payload.as_ptr().cast(),
                payload.len(),
                0,
                (&to as *const libc::sockaddr_in).cast(),
                std::mem::size_of::<libc::sockaddr_in>() as u32,
            )
        };
        anyhow::ensure!(n >= 0, "raw send: {}", std::io::Error::last_os_error());
        Ok(())
    }

    /// One packet from `src` (its IPv4 header skipped) into `buf`: the
    /// payload's range, or `None` once the wait is over.
    pub fn recv_from(
        &self,
        src: Ipv4Addr,
        buf: &mut [u8],
    ) -> anyhow::Result<Option<std::ops::Range<usize>>> {
        loop {
            // SAFETY: a valid buffer for the call.
            let n =
                unsafe { libc::recv(self.0.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
            if n < 0 {
                let e = std::io::Error::last_os_error();
                if matches!(e.raw_os_error(), Some(libc::EAGAIN) | Some(libc::EINTR)) {
                    return Ok(None);
                }
                return Err(e).context("raw receive");
            }
            let p = &buf[..n as usize];
            let ihl = usize::from(p.first().copied().unwrap_or(0) & 0x0f) * 4;
            if p.len() >= ihl + 8 && p[12..16] == src.octets() {
                return Ok(Some(ihl..p.len()));
            }
        }
    }
}
