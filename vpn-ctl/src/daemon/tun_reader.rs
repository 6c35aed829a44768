//! The slow path's entry: packets the kernel routes into the VPN interface
//! that the data plane did not take (today: all of them, as no session is on
//! the fast path). Without a session for the destination they are dropped and
//! counted (`daemon_no_session`).
use std::{
    os::fd::{AsRawFd as _, OwnedFd},
    sync::{atomic::Ordering, Arc},
};

use tokio::io::{unix::AsyncFd, Interest};

use super::Shared;

pub async fn run(queue: OwnedFd, shared: Arc<Shared>) {
    // SAFETY: the fd is owned by the AsyncFd and not closed or replaced while registered.
    let Ok(fd) = (unsafe { AsyncFd::register_with_interest(queue, Interest::READABLE) }) else {
        return;
    };
    let mut buf = vec![0u8; 65536];
    loop {
        let Ok(mut guard) = fd.readable().await else {
            return;
        };
        // SAFETY: reading into an owned buffer of the given length.
        let n = unsafe { libc::read(fd.get_ref().as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        if n < 0 {
            let err = std::io::Error::last_os_error();
            if err.kind() == std::io::ErrorKind::WouldBlock {
                guard.clear_ready();
                continue;
            }
            log::warn!("TUN read: {err}");
            return;
        }
        shared.no_session.fetch_add(1, Ordering::Relaxed);
    }
}
