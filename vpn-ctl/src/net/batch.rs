//! Batched datagram I/O for the userspace data path: `recvmmsg`/`sendmmsg`
//! (one system call per batch instead of per packet), a `SO_REUSEPORT` UDP
//! group (one socket per worker; the kernel keeps each flow on one), and
//! plain fd reads/writes for TUN queues.
use std::{
    io,
    mem::{size_of, zeroed},
    net::{Ipv4Addr, SocketAddr, SocketAddrV4},
    os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd, RawFd},
    time::Duration,
};

/// Batch size of one recvmmsg/sendmmsg call.
pub const BATCH: usize = 32;
/// Room for the largest datagram we accept (tunnel MTU + overhead, with margin).
pub const DATAGRAM_MAX: usize = 9100;

fn cvt(rc: libc::c_int) -> io::Result<libc::c_int> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

/// A non-blocking UDP socket on 0.0.0.0:`port` with SO_REUSEPORT, so that
/// each worker can bind its own socket to the same port.
pub fn udp_reuseport(port: u16) -> io::Result<OwnedFd> {
    // SAFETY: plain socket calls on a fd we own from here on.
    unsafe {
        let fd = cvt(libc::socket(
            libc::AF_INET,
            libc::SOCK_DGRAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        ))?;
        let fd = OwnedFd::from_raw_fd(fd);
        let one: libc::c_int = 1;
        cvt(libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_REUSEPORT,
            (&one as *const libc::c_int).cast(),
            size_of::<libc::c_int>() as u32,
        ))?;
        set_buffers(fd.as_raw_fd(), SOCKET_BUFFER);
        let sa = sockaddr_in(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port));
        cvt(libc::bind(
            fd.as_raw_fd(),
            (&sa as *const libc::sockaddr_in).cast(),
            size_of::<libc::sockaddr_in>() as u32,
        ))?;
        Ok(fd)
    }
}

fn sockaddr_in(a: SocketAddrV4) -> libc::sockaddr_in {
    // SAFETY: sockaddr_in is plain old data; all-zero is valid.
    let mut sa: libc::sockaddr_in = unsafe { zeroed() };
    sa.sin_family = libc::AF_INET as libc::sa_family_t;
    sa.sin_port = a.port().to_be();
    sa.sin_addr.s_addr = u32::from(*a.ip()).to_be();
    sa
}

fn from_sockaddr_in(sa: &libc::sockaddr_in) -> SocketAddr {
    SocketAddr::V4(SocketAddrV4::new(
        Ipv4Addr::from(u32::from_be(sa.sin_addr.s_addr)),
        u16::from_be(sa.sin_port),
    ))
}

/// Socket buffers of the data path: room for bursts while a worker is busy
/// encrypting (the default ~200 KB drops under a single fast TCP flow).
pub const SOCKET_BUFFER: libc::c_int = 4 << 20;

/// Sets both socket buffers to `bytes`, past the sysctl limits (needs
/// CAP_NET_ADMIN; falls back to the capped request).
pub fn set_buffers(fd: RawFd, bytes: libc::c_int) {
    for (force, plain) in [
        (libc::SO_RCVBUFFORCE, libc::SO_RCVBUF),
        (libc::SO_SNDBUFFORCE, libc::SO_SNDBUF),
    ] {
        // SAFETY: setsockopt with a valid int option value.
        unsafe {
            let v = (&bytes as *const libc::c_int).cast();
            let len = size_of::<libc::c_int>() as u32;
            if libc::setsockopt(fd, libc::SOL_SOCKET, force, v, len) != 0 {
                libc::setsockopt(fd, libc::SOL_SOCKET, plain, v, len);
            }
        }
    }
}

/// Waits until one of `fds` is readable or `timeout` passes; returns which.
pub fn poll_readable(fds: &[RawFd], timeout: Duration) -> io::Result<Vec<bool>> {
    let mut p: Vec<libc::pollfd> = fds
        .iter()
        .map(|&fd| libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    // SAFETY: p is a valid array of pollfd of the given length.
    let rc = unsafe {
        libc::poll(
            p.as_mut_ptr(),
            p.len() as libc::nfds_t,
            timeout.as_millis() as i32,
        )
    };
    if rc < 0 {
        let e = io::Error::last_os_error();
        if e.kind() == io::ErrorKind::Interrupted {
            return Ok(vec![false; fds.len()]);
        }
        return Err(e);
    }
    Ok(p.iter().map(|x| x.revents != 0).collect())
}

/// Receives up to BATCH datagrams per call into fixed buffers.
pub struct RecvBatch {
    bufs: Vec<Vec<u8>>,
    addrs: Vec<libc::sockaddr_in>,
    iovs: Vec<libc::iovec>,
    hdrs: Vec<libc::mmsghdr>,
}

// SAFETY: the raw pointers inside point into the struct's own heap buffers.
unsafe impl Send for RecvBatch {}

impl Default for RecvBatch {
    fn default() -> Self {
        Self::new()
    }
}

impl RecvBatch {
    pub fn new() -> RecvBatch {
        // SAFETY: plain old data, zero is valid.
        let zero_addr: libc::sockaddr_in = unsafe { zeroed() };
        let mut b = RecvBatch {
            bufs: (0..BATCH).map(|_| vec![0u8; DATAGRAM_MAX]).collect(),
            addrs: vec![zero_addr; BATCH],
            iovs: Vec::with_capacity(BATCH),
            // SAFETY: as above.
            hdrs: (0..BATCH).map(|_| unsafe { zeroed() }).collect(),
        };
        for i in 0..BATCH {
            b.iovs.push(libc::iovec {
                iov_base: b.bufs[i].as_mut_ptr().cast(),
                iov_len: DATAGRAM_MAX,
            });
        }
        for i in 0..BATCH {
            let h = &mut b.hdrs[i].msg_hdr;
            h.msg_iov = &mut b.iovs[i];
            h.msg_iovlen = 1;
            h.msg_name = (&mut b.addrs[i] as *mut libc::sockaddr_in).cast();
        }
        b
    }

    /// Receives what is queued (without blocking). Returns the count.
    pub fn recv(&mut self, fd: RawFd) -> io::Result<usize> {
        for i in 0..BATCH {
            self.hdrs[i].msg_hdr.msg_namelen = size_of::<libc::sockaddr_in>() as u32;
            self.hdrs[i].msg_hdr.msg_flags = 0;
            self.hdrs[i].msg_len = 0;
        }
        // SAFETY: hdrs point at live buffers owned by self.
        let n = unsafe {
            libc::recvmmsg(
                fd,
                self.hdrs.as_mut_ptr(),
                BATCH as u32,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            return match e.kind() {
                io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => Ok(0),
                _ => Err(e),
            };
        }
        Ok(n as usize)
    }

    /// Datagram `i` of the last batch: (bytes, sender, truncated?).
    pub fn get(&mut self, i: usize) -> (&mut [u8], SocketAddr, bool) {
        let len = (self.hdrs[i].msg_len as usize).min(DATAGRAM_MAX);
        let truncated = self.hdrs[i].msg_hdr.msg_flags & libc::MSG_TRUNC != 0;
        let from = from_sockaddr_in(&self.addrs[i]);
        (&mut self.bufs[i][..len], from, truncated)
    }
}

/// Collects datagrams and sends them with one sendmmsg.
pub struct SendBatch {
    bufs: Vec<Vec<u8>>,
    dsts: Vec<libc::sockaddr_in>,
    len: usize,
}

impl Default for SendBatch {
    fn default() -> Self {
        Self::new()
    }
}

impl SendBatch {
    pub fn new() -> SendBatch {
        SendBatch {
            bufs: (0..BATCH).map(|_| Vec::with_capacity(2048)).collect(),
            // SAFETY: plain old data, zero is valid.
            dsts: vec![unsafe { zeroed() }; BATCH],
            len: 0,
        }
    }

    /// A buffer for the next datagram; `commit` queues it. Flushes when full.
    pub fn slot(&mut self, fd: RawFd) -> &mut Vec<u8> {
        if self.len == BATCH {
            self.flush(fd);
        }
        &mut self.bufs[self.len]
    }

    pub fn commit(&mut self, dst: SocketAddr) {
        if let SocketAddr::V4(a) = dst {
            self.dsts[self.len] = sockaddr_in(a);
            self.len += 1;
        }
    }

    pub fn push(&mut self, fd: RawFd, data: &[u8], dst: SocketAddr) {
        let s = self.slot(fd);
        s.clear();
        s.extend_from_slice(data);
        self.commit(dst);
    }

    /// Sends everything queued. Datagrams the kernel refuses (e.g. no route)
    /// are dropped: UDP has no delivery promise and the peer retransmits.
    pub fn flush(&mut self, fd: RawFd) {
        let mut sent = 0;
        while sent < self.len {
            let mut iovs: Vec<libc::iovec> = self.bufs[sent..self.len]
                .iter_mut()
                .map(|b| libc::iovec {
                    iov_base: b.as_mut_ptr().cast(),
                    iov_len: b.len(),
                })
                .collect();
            let mut hdrs: Vec<libc::mmsghdr> = (0..iovs.len())
                .map(|i| {
                    // SAFETY: plain old data, zero is valid.
                    let mut h: libc::mmsghdr = unsafe { zeroed() };
                    h.msg_hdr.msg_iov = &mut iovs[i];
                    h.msg_hdr.msg_iovlen = 1;
                    h.msg_hdr.msg_name =
                        (&mut self.dsts[sent + i] as *mut libc::sockaddr_in).cast();
                    h.msg_hdr.msg_namelen = size_of::<libc::sockaddr_in>() as u32;
                    h
                })
                .collect();
            // SAFETY: the headers point at buffers alive for the call.
            let n = unsafe { libc::sendmmsg(fd, hdrs.as_mut_ptr(), hdrs.len() as u32, 0) };
            if n <= 0 {
                let e = io::Error::last_os_error();
                if n < 0 && e.kind() == io::ErrorKind::WouldBlock {
                    // Socket buffer full: wait briefly for room rather than drop a burst.
                    let _ = poll_writable(fd, Duration::from_millis(10));
                    continue;
                }
                sent += 1; // skip the datagram the kernel refused
                continue;
            }
            sent += n as usize;
        }
        self.len = 0;
    }
}

fn poll_writable(fd: RawFd, timeout: Duration) -> io::Result<()> {
    let mut p = libc::pollfd {
        fd,
        events: libc::POLLOUT,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    cvt(unsafe { libc::poll(&mut p, 1, timeout.as_millis() as i32) })?;
    Ok(())
}

/// One read from a non-blocking fd (a TUN queue). Ok(None): nothing queued.
pub fn read_fd(fd: RawFd, buf: &mut [u8]) -> io::Result<Option<usize>> {
    // SAFETY: reading into an owned buffer of the given length.
    let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
    if n < 0 {
        let e = io::Error::last_os_error();
        return match e.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => Ok(None),
            _ => Err(e),
        };
    }
    Ok(Some(n as usize))
}

/// One write of a whole packet to a TUN queue.
pub fn write_fd(fd: RawFd, buf: &[u8]) -> io::Result<()> {
    // SAFETY: writing from a borrowed buffer of the given length.
    let n = unsafe { libc::write(fd, buf.as_ptr().cast(), buf.len()) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// A one-off datagram (control traffic outside the batches).
pub fn send_to(fd: RawFd, data: &[u8], dst: SocketAddr) -> io::Result<()> {
    let SocketAddr::V4(a) = dst else {
        return Err(io::Error::new(io::ErrorKind::Unsupported, "IPv6 peer"));
    };
    let sa = sockaddr_in(a);
    // SAFETY: valid buffer and sockaddr for the call.
    let n = unsafe {
        libc::sendto(
            fd,
            data.as_ptr().cast(),
            data.len(),
            0,
            (&sa as *const libc::sockaddr_in).cast(),
            size_of::<libc::sockaddr_in>() as u32,
        )
    };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
