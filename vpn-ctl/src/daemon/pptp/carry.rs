//! PPTP over a restart (docs/decisions.md #52): each control connection's
//! task hands over its TCP socket (a duplicate), its engine's state and
//! its call (GRE sequence numbers and the PPP call); the successor resumes
//! the task with them.
use std::{
    net::{Ipv4Addr, SocketAddr},
    os::fd::RawFd,
    sync::{atomic::AtomicUsize, Arc, Mutex},
    time::Instant,
};

use serde::{Deserialize, Serialize};
use tokio::sync::Notify;
use vpn_proto::pptp::control::{ControlCarry, ControlConnection};

use super::{control::spawn_connection, Gre, GreWire};
use crate::daemon::{
    gateway::ppp::{self, Call},
    handoff::{own, Keep},
    Shared,
};

#[derive(Serialize, Deserialize)]
pub struct CallCarry {
    pub call_id: u16,
    pub peer_call_id: u16,
    pub peer: Ipv4Addr,
    pub local: Ipv4Addr,
    pub seq_out: u32,
    pub seq_in: Option<u32>,
    pub ack_owed: bool,
    pub fast_acked: Option<u32>,
    pub call: ppp::CallCarry,
}

#[derive(Serialize, Deserialize)]
pub struct ConnectionCarry {
    pub fd: RawFd,
    pub from: SocketAddr,
    pub ctl: ControlCarry,
    pub calls: Vec<CallCarry>,
}

/// The restart's rendezvous with the connection tasks.
pub struct Handoff {
    /// Set to true: every connection task hands over (or closes) and ends.
    pub signal: tokio::sync::watch::Sender<bool>,
    /// Connection tasks running.
    pub live: AtomicUsize,
    carried: Mutex<(Vec<ConnectionCarry>, Keep)>,
}

impl Default for Handoff {
    fn default() -> Handoff {
        Handoff {
            signal: tokio::sync::watch::channel(false).0,
            live: AtomicUsize::new(0),
            carried: Mutex::default(),
        }
    }
}

impl Handoff {
    fn lock(&self) -> std::sync::MutexGuard<'_, (Vec<ConnectionCarry>, Keep)> {
        self.carried.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A duplicate of `fd` for the successor; its number.
    pub fn keep(&self, fd: RawFd) -> anyhow::Result<RawFd> {
        self.lock().1.dup(fd)
    }

    pub fn push(&self, c: ConnectionCarry) {
        self.lock().0.push(c);
    }

    /// Asks every connection task to hand over, and waits (up to
    /// `deadline`) until none runs; returns what they handed over.
    pub async fn collect(&self, deadline: std::time::Duration) -> (Vec<ConnectionCarry>, Keep) {
        use std::sync::atomic::Ordering;
        self.signal.send_replace(true);
        let until = tokio::time::Instant::now() + deadline;
        while self.live.load(Ordering::SeqCst) > 0 && tokio::time::Instant::now() < until {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        std::mem::take(&mut *self.lock())
    }
}

/// The successor: resumes each carried connection with its calls.
/// Returns (calls carried, calls lost).
pub fn restore(shared: &Arc<Shared>, carried: &[ConnectionCarry]) -> (usize, usize) {
    let Some(pptp) = &shared.pptp else {
        return (0, carried.iter().map(|c| c.calls.len()).sum());
    };
    let (mut ok, mut lost) = (0, 0);
    for conn in carried {
        let notify = Arc::new(Notify::new());
        let stream = own(conn.fd).and_then(|fd| {
            let s = std::net::TcpStream::from(fd);
            s.set_nonblocking(true)?;
            Ok(tokio::net::TcpStream::from_std(s)?)
        });
        let mut calls = Vec::new();
        for c in &conn.calls {
            let carrier = Gre {
                row_id: c.call.row_id,
                call_id: c.call_id,
                peer_call_id: c.peer_call_id,
                peer: c.peer,
                local: c.local,
                control_peer: conn.from,
                socket: pptp.gre.clone(),
                seq: pptp.seq.clone(),
                clear: notify.clone(),
            };
            let wire = GreWire {
                seq_out: c.seq_out,
                seq_in: c.seq_in,
                ack_owed: c.ack_owed,
                fast_acked: c.fast_acked,
            };
            match Call::resume(carrier, wire, pptp.ppp.clone(), &c.call) {
                Ok(call) => {
                    pptp.insert(call.clone());
                    calls.push(call);
                }
                Err(e) => log::warn!(
                    "restart: pptp session {} ({}) not carried over: {e:#}",
                    c.call.row_id,
                    c.call.user
                ),
            }
        }
        match stream {
            Ok(stream) if calls.len() == conn.calls.len() => {
                ok += calls.len();
                let ctl = ControlConnection::resume(&conn.ctl, Instant::now());
                spawn_connection(
                    shared.clone(),
                    stream,
                    conn.from,
                    ctl,
                    calls,
                    None,
                    Some(notify),
                );
            }
            other => {
                if let Err(e) = other {
                    log::warn!("restart: pptp connection from {}: {e:#}", conn.from);
                }
                // Closing its socket tells the client; the calls go.
                lost += conn.calls.len();
                for c in calls {
                    pptp.remove(c.carrier.call_id);
                    c.end("it could not be carried over the restart");
                }
            }
        }
    }
    (ok, lost)
}
