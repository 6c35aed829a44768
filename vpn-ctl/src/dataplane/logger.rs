//! Forwards aya-log records from the eBPF programs to the daemon's log.
use aya::Ebpf;
use aya_log::EbpfLogger;
use tokio::io::{unix::AsyncFd, Interest};

/// Starts the pump; logs a warning (and returns None) if logging is unavailable.
pub fn spawn(ebpf: &mut Ebpf) -> Option<tokio::task::JoinHandle<()>> {
    let logger = match EbpfLogger::init(ebpf) {
        Ok(l) => l,
        Err(e) => {
            log::warn!("eBPF log forwarding unavailable: {e}");
            return None;
        }
    };
    // SAFETY: the logger owns its ring-buffer fd for as long as the AsyncFd lives.
    let mut fd = match unsafe { AsyncFd::register_with_interest(logger, Interest::READABLE) } {
        Ok(fd) => fd,
        Err(e) => {
            log::warn!("eBPF log forwarding unavailable: {e}");
            return None;
        }
    };
    Some(tokio::spawn(async move {
        loop {
            let Ok(mut guard) = fd.readable_mut().await else {
                return;
            };
            guard.get_inner_mut().flush();
            guard.clear_ready();
        }
    }))
}
