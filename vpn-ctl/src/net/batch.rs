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

/// Receives up to BATCH datagrams per call into fixed buffers. With UDP
/// GRO, one buffer may hold a run of datagrams of one size from one peer
/// (`segment_size`), which the kernel coalesced instead of queueing each.
pub struct RecvBatch {
    bufs: Vec<Vec<u8>>,
    addrs: Vec<libc::sockaddr_in>,
    iovs: Vec<libc::iovec>,
    hdrs: Vec<libc::mmsghdr>,
    /// Per message: room for the UDP_GRO control message (8-byte aligned).
    ctrl: Vec<[u64; 4]>,
    gro: bool,
}

/// Largest coalesced read (the kernel's GRO limit for one UDP packet).
const GRO_MAX: usize = 65_535;

/// Asks the kernel to coalesce runs of datagrams for `fd` (UDP_GRO, Linux
/// 5.0). False: not supported; datagrams then come one by one.
pub fn enable_gro(fd: RawFd) -> bool {
    let one: libc::c_int = 1;
    // SAFETY: setsockopt with a valid int option value.
    unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_UDP,
            libc::UDP_GRO,
            (&one as *const libc::c_int).cast(),
            size_of::<libc::c_int>() as u32,
        ) == 0
    }
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
        RecvBatch::with_gro(false)
    }

    /// With `gro`, buffers are large enough for coalesced reads (see
    /// [`enable_gro`]) and `segment_size` reports each read's datagram size.
    pub fn with_gro(gro: bool) -> RecvBatch {
        let size = if gro { GRO_MAX } else { DATAGRAM_MAX };
        // SAFETY: plain old data, zero is valid.
        let zero_addr: libc::sockaddr_in = unsafe { zeroed() };
        let mut b = RecvBatch {
            bufs: (0..BATCH).map(|_| vec![0u8; size]).collect(),
            addrs: vec![zero_addr; BATCH],
            iovs: Vec::with_capacity(BATCH),
            // SAFETY: as above.
            hdrs: (0..BATCH).map(|_| unsafe { zeroed() }).collect(),
            ctrl: vec![[0; 4]; BATCH],
            gro,
        };
        for i in 0..BATCH {
            b.iovs.push(libc::iovec {
                iov_base: b.bufs[i].as_mut_ptr().cast(),
                iov_len: size,
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
            if self.gro {
                self.hdrs[i].msg_hdr.msg_control = self.ctrl[i].as_mut_ptr().cast();
                self.hdrs[i].msg_hdr.msg_controllen = size_of::<[u64; 4]>();
            }
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
        let len = (self.hdrs[i].msg_len as usize).min(self.bufs[i].len());
        let truncated = self.hdrs[i].msg_hdr.msg_flags & libc::MSG_TRUNC != 0;
        let from = from_sockaddr_in(&self.addrs[i]);
        (&mut self.bufs[i][..len], from, truncated)
    }

    /// The size of the datagrams read `i` holds (the last may be shorter):
    /// the kernel's UDP_GRO segment size, else the whole read.
    pub fn segment_size(&self, i: usize) -> usize {
        let h = &self.hdrs[i].msg_hdr;
        let whole = (self.hdrs[i].msg_len as usize).max(1);
        if !self.gro {
            return whole;
        }
        // SAFETY: the control buffer is ours and msg_controllen says how
        // much of it the kernel filled; CMSG_* stay inside it.
        unsafe {
            let mut c = libc::CMSG_FIRSTHDR(h);
            while !c.is_null() {
                if (*c).cmsg_level == libc::SOL_UDP && (*c).cmsg_type == libc::UDP_GRO {
                    let size = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast::<libc::c_int>());
                    return usize::try_from(size)
                        .ok()
                        .filter(|&s| s > 0)
                        .unwrap_or(whole);
                }
                c = libc::CMSG_NXTHDR(h, c);
            }
        }
        whole
    }
}

/// Datagrams of one size to one peer, sent as one UDP GSO "super-datagram"
/// (UDP_SEGMENT, Linux 4.18): one trip through the stack for up to 64
/// datagrams, cut by the device or at the last moment. Where a route
/// refuses GSO, each datagram goes out on its own.
pub struct GsoBatch {
    buf: Vec<u8>,
    /// Where `push_with` builds the next datagram.
    scratch: Vec<u8>,
    seg: usize,
    count: usize,
    /// A shorter datagram ended the run (only the last may be shorter).
    closed: bool,
    dst: Option<SocketAddrV4>,
    gso: bool,
}

const GSO_MAX_SEGMENTS: usize = 64;
const GSO_MAX_BYTES: usize = 65_000;

impl Default for GsoBatch {
    fn default() -> Self {
        Self::new()
    }
}

impl GsoBatch {
    pub fn new() -> GsoBatch {
        GsoBatch {
            buf: Vec::with_capacity(GSO_MAX_BYTES),
            scratch: Vec::with_capacity(2048),
            seg: 0,
            count: 0,
            closed: false,
            dst: None,
            gso: true,
        }
    }

    /// Queues `data` for `dst`, sending what is queued first if `data`
    /// cannot join its run.
    pub fn push(&mut self, fd: RawFd, data: &[u8], dst: SocketAddr) {
        let SocketAddr::V4(dst) = dst else { return };
        if self.count > 0
            && (self.dst != Some(dst)
                || self.closed
                || data.len() > self.seg
                || self.count == GSO_MAX_SEGMENTS
                || self.buf.len() + data.len() > GSO_MAX_BYTES)
        {
            self.flush(fd);
        }
        if self.count == 0 {
            self.seg = data.len();
            self.dst = Some(dst);
        }
        self.closed = data.len() < self.seg;
        self.buf.extend_from_slice(data);
        self.count += 1;
    }

    /// Queues the datagram `build` writes (if it returns true).
    pub fn push_with(
        &mut self,
        fd: RawFd,
        dst: SocketAddr,
        build: impl FnOnce(&mut Vec<u8>) -> bool,
    ) -> bool {
        let mut d = std::mem::take(&mut self.scratch);
        let built = build(&mut d);
        if built {
            self.push(fd, &d, dst);
        }
        self.scratch = d;
        built
    }

    /// Sends the queued run. Datagrams the kernel refuses are dropped, as
    /// in [`SendBatch::flush`].
    pub fn flush(&mut self, fd: RawFd) {
        let Some(dst) = self.dst else { return };
        if self.count > 1 && self.gso {
            match send_segmented(fd, &self.buf, self.seg, dst) {
                Ok(()) => return self.clear(),
                // No checksum offload on the route's device: never again.
                Err(e) if matches!(e.raw_os_error(), Some(libc::EIO | libc::EOPNOTSUPP)) => {
                    log::debug!("UDP GSO refused ({e}); sending datagrams one by one");
                    self.gso = false;
                }
                // E.g. datagrams above the route's MTU: this run one by one.
                Err(_) => {}
            }
        }
        for d in self.buf.chunks(self.seg.max(1)) {
            let _ = send_to_waiting(fd, d, dst);
        }
        self.clear();
    }

    fn clear(&mut self) {
        self.buf.clear();
        self.count = 0;
        self.closed = false;
    }
}

/// One sendmsg of `data` cut into datagrams of `seg` bytes; waits briefly
/// for room when the socket buffer is full.
fn send_segmented(fd: RawFd, data: &[u8], seg: usize, dst: SocketAddrV4) -> io::Result<()> {
    let mut sa = sockaddr_in(dst);
    let mut iov = libc::iovec {
        iov_base: data.as_ptr() as *mut libc::c_void,
        iov_len: data.len(),
    };
    let mut ctrl = [0u64; 4];
    // SAFETY: plain old data, zero is valid.
    let mut msg: libc::msghdr = unsafe { zeroed() };
    msg.msg_name = (&mut sa as *mut libc::sockaddr_in).cast();
    msg.msg_namelen = size_of::<libc::sockaddr_in>() as u32;
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = ctrl.as_mut_ptr().cast();
    // SAFETY: CMSG_SPACE/LEN are pure arithmetic; the one control message
    // fits the 32-byte buffer (16-byte header + 2 bytes, aligned to 8).
    unsafe {
        msg.msg_controllen = libc::CMSG_SPACE(size_of::<u16>() as u32) as usize;
        let c = libc::CMSG_FIRSTHDR(&msg);
        (*c).cmsg_level = libc::SOL_UDP;
        (*c).cmsg_type = libc::UDP_SEGMENT;
        (*c).cmsg_len = libc::CMSG_LEN(size_of::<u16>() as u32) as usize;
        std::ptr::write_unaligned(libc::CMSG_DATA(c).cast::<u16>(), seg as u16);
    }
    loop {
        // SAFETY: msg points at live buffers for the call.
        let n = unsafe { libc::sendmsg(fd, &msg, 0) };
        if n >= 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::WouldBlock {
            return Err(e);
        }
        let _ = poll_writable(fd, Duration::from_millis(10));
    }
}

/// `send_to`, waiting briefly for room when the socket buffer is full.
fn send_to_waiting(fd: RawFd, data: &[u8], dst: SocketAddrV4) -> io::Result<()> {
    for _ in 0..100 {
        match send_to(fd, data, SocketAddr::V4(dst)) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                let _ = poll_writable(fd, Duration::from_millis(10));
            }
            r => return r,
        }
    }
    Err(io::ErrorKind::WouldBlock.into())
}

/// Collects datagrams and sends them with one sendmmsg.
pub struct SendBatch {
    bufs: Vec<Vec<u8>>,
    dsts: Vec<libc::sockaddr_in>,
    len: usize,
    /// The system call's arrays, refilled by each flush (no allocation).
    iovs: Vec<libc::iovec>,
    hdrs: Vec<libc::mmsghdr>,
}

// SAFETY: the raw pointers in `iovs`/`hdrs` are only set and used within
// `flush`, pointing into the struct's own buffers.
unsafe impl Send for SendBatch {}

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
            iovs: Vec::with_capacity(BATCH),
            hdrs: Vec::with_capacity(BATCH),
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
            self.iovs.clear();
            self.iovs
                .extend(self.bufs[sent..self.len].iter_mut().map(|b| libc::iovec {
                    iov_base: b.as_mut_ptr().cast(),
                    iov_len: b.len(),
                }));
            self.hdrs.clear();
            for i in 0..self.iovs.len() {
                // SAFETY: plain old data, zero is valid.
                let mut h: libc::mmsghdr = unsafe { zeroed() };
                h.msg_hdr.msg_iov = &mut self.iovs[i];
                h.msg_hdr.msg_iovlen = 1;
                h.msg_hdr.msg_name = (&mut self.dsts[sent + i] as *mut libc::sockaddr_in).cast();
                h.msg_hdr.msg_namelen = size_of::<libc::sockaddr_in>() as u32;
                self.hdrs.push(h);
            }
            // SAFETY: the headers point at buffers alive for the call.
            let n =
                unsafe { libc::sendmmsg(fd, self.hdrs.as_mut_ptr(), self.hdrs.len() as u32, 0) };
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

/// One write of a whole packet behind a `virtio_net_hdr` of zeros (a
/// complete packet, nothing to offload) to a TUN queue with IFF_VNET_HDR.
pub fn write_fd_vnet(fd: RawFd, buf: &[u8]) -> io::Result<()> {
    let hdr = [0u8; vpn_proto::offload::VNET_HDR_LEN];
    let iov = [
        libc::iovec {
            iov_base: hdr.as_ptr() as *mut libc::c_void,
            iov_len: hdr.len(),
        },
        libc::iovec {
            iov_base: buf.as_ptr() as *mut libc::c_void,
            iov_len: buf.len(),
        },
    ];
    // SAFETY: both iovecs point at borrowed buffers of the given lengths.
    let n = unsafe { libc::writev(fd, iov.as_ptr(), 2) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
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
