//! PPTP control connections: the socket side of vpn-proto's PAC engine.
//! Calls get call IDs unique across all clients; bad input closes the
//! connection with a log line and a counter.
use std::{
    net::{IpAddr, SocketAddr},
    sync::{atomic::Ordering, Arc},
    time::Instant,
};

use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::{TcpListener, TcpStream},
    sync::Notify,
};
use vpn_proto::pptp::{
    control::{ControlConnection, ControlEvent},
    messages::{OCRP_BUSY, OCRP_DO_NOT_ACCEPT},
};

use super::{Gre, GreWire, Pptp, PptpCall};
use crate::daemon::{
    gateway::{
        limits::{warn_unauthenticated, HalfOpen, HalfOpenPermit, ACCEPT_BACKOFF},
        ppp::Call,
    },
    Shared,
};
use std::os::fd::AsRawFd as _;

/// How long a write to a client's control connection may take.
const WRITE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

pub async fn serve(listener: TcpListener, index: usize, shared: Arc<Shared>) {
    let Some(pptp) = &shared.pptp else { return };
    let slots = HalfOpen::new(pptp.max_half_open);
    loop {
        let (stream, from) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                log::debug!("pptp: accept: {e}");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        if let Some(c) = shared.received.get(index) {
            c.fetch_add(1, Ordering::Relaxed);
        }
        let permit = match slots.try_enter(from.ip()) {
            Ok(p) => p,
            Err(why) => {
                pptp.counters.control_busy.fetch_add(1, Ordering::Relaxed);
                log::debug!("pptp: refusing {from}: too many connections setting up ({why:?})");
                continue;
            }
        };
        let ctl = ControlConnection::new(Instant::now(), rand::random());
        spawn_connection(
            shared.clone(),
            stream,
            from,
            ctl,
            Vec::new(),
            Some(permit),
            None,
        );
    }
}

/// Runs one control connection until it ends or a restart takes it over.
/// `calls`, `notify`: a resumed connection's (restart).
pub(super) fn spawn_connection(
    shared: Arc<Shared>,
    mut stream: TcpStream,
    from: SocketAddr,
    ctl: ControlConnection,
    calls: Vec<Arc<PptpCall>>,
    permit: Option<HalfOpenPermit>,
    notify: Option<Arc<Notify>>,
) {
    let Some(pptp) = &shared.pptp else { return };
    pptp.handoff.live.fetch_add(1, Ordering::SeqCst);
    let handoff = pptp.handoff.signal.subscribe();
    tokio::spawn(async move {
        let Some(pptp) = &shared.pptp else { return };
        let mut conn = Connection {
            pptp,
            pool: &shared.pool,
            from,
            calls,
            permit,
            notify: notify.unwrap_or_default(),
        };
        let result = conn.run(&mut stream, ctl, handoff).await;
        // The half-open slot goes before the socket closes: a client that
        // reconnects once it sees our FIN must not find its own closed
        // connection still holding its address's share.
        conn.permit = None;
        match result {
            Ok(Ended::HandedOver) => {}
            Ok(Ended::Closed) => conn.teardown(),
            Err(e) => {
                conn.teardown();
                pptp.counters.control_bad.fetch_add(1, Ordering::Relaxed);
                warn_unauthenticated(|| {
                    format!("pptp: control connection from {from} closed: {e}")
                });
            }
        }
        drop(stream); // after the counters: a client that sees the close sees them
        pptp.handoff.live.fetch_sub(1, Ordering::SeqCst);
    });
}

/// How a control connection's task ended.
enum Ended {
    Closed,
    /// A restart's successor continues it (its state is in the handoff).
    HandedOver,
}

struct Connection<'a> {
    pptp: &'a Pptp,
    pool: &'a crate::daemon::gateway::pool::Pool,
    from: SocketAddr,
    calls: Vec<Arc<PptpCall>>,
    /// Held until the connection has a call (flood guard).
    permit: Option<HalfOpenPermit>,
    /// Woken when one of our calls should be cleared (kill, link down).
    notify: Arc<Notify>,
}

impl Connection<'_> {
    /// Drives the sans-IO engine (`vpn_proto::pptp::control`) with the socket.
    async fn run(
        &mut self,
        stream: &mut TcpStream,
        mut ctl: ControlConnection,
        mut handoff: tokio::sync::watch::Receiver<bool>,
    ) -> anyhow::Result<Ended> {
        let mut chunk = [0u8; 4096];
        loop {
            let wait = ctl.poll_timeout().saturating_duration_since(Instant::now());
            let mut cleared = false;
            tokio::select! {
                r = stream.read(&mut chunk) => {
                    let n = r?;
                    if n == 0 {
                        log::info!("pptp: {} closed its control connection", self.from);
                        return Ok(Ended::Closed);
                    }
                    ctl.handle_bytes(Instant::now(), &chunk[..n])?;
                }
                r = handoff.changed() => {
                    if r.is_ok() && *handoff.borrow() {
                        if self.hand_over(stream, &ctl) {
                            return Ok(Ended::HandedOver);
                        }
                        log::info!("pptp: {}: its call cannot be carried over the restart; closing", self.from);
                        return Ok(Ended::Closed);
                    }
                }
                _ = self.notify.notified() => {
                    for c in self.finished_calls() {
                        ctl.clear_call(c.carrier.call_id);
                        self.drop_call(&c, "the PPP link ended");
                        cleared = true;
                    }
                }
                _ = tokio::time::sleep(wait) => ctl.handle_timeout(Instant::now())?,
            }
            let mut new_calls = Vec::new();
            let mut stopped = false;
            while let Some(ev) = ctl.poll() {
                match ev {
                    ControlEvent::CallRequested { peer_call_id } => {
                        match self.new_call(stream, peer_call_id)? {
                            Ok(call) => {
                                ctl.accept_call(call.carrier.call_id, peer_call_id);
                                new_calls.push(call);
                            }
                            Err(result) => ctl.refuse_call(peer_call_id, result),
                        }
                    }
                    ControlEvent::CallCleared { call_id } => {
                        if let Some(c) = self
                            .calls
                            .iter()
                            .find(|c| c.carrier.call_id == call_id)
                            .cloned()
                        {
                            self.drop_call(&c, "the client cleared the call");
                        }
                    }
                    ControlEvent::Ignored { kind } => {
                        self.pptp
                            .counters
                            .control_bad
                            .fetch_add(1, Ordering::Relaxed);
                        let from = self.from;
                        warn_unauthenticated(|| {
                            format!("pptp: {from} sent control message type {kind}, which a PAC does not handle; ignored")
                        });
                    }
                    ControlEvent::Stopped => stopped = true,
                }
            }
            while let Some(b) = ctl.poll_transmit() {
                // A peer that stops reading must not park this task (and
                // with it the clean-up of its calls).
                tokio::time::timeout(WRITE_TIMEOUT, stream.write_all(&b))
                    .await
                    .map_err(|_| anyhow::anyhow!("the client stopped reading"))??;
            }
            // Only now (OCRP is out) may the call's first PPP frames follow.
            for call in new_calls {
                let mut s = call.lock();
                call.process(&mut s, Instant::now());
            }
            if stopped {
                log::info!("pptp: {} stopped its control connection", self.from);
                return Ok(Ended::Closed);
            }
            if cleared && self.calls.is_empty() {
                return Ok(Ended::Closed); // we sent StopCCRQ with the last CDN
            }
        }
    }

    /// A call for the client, or the OCRP result that refuses it: one call
    /// per control connection (as pptpd), within `max_sessions`, with a
    /// call ID no other call uses.
    fn new_call(
        &mut self,
        stream: &TcpStream,
        peer_call_id: u16,
    ) -> anyhow::Result<Result<Arc<PptpCall>, u8>> {
        let pptp = self.pptp;
        let refuse = |why: &str, result: u8| {
            pptp.counters.calls_refused.fetch_add(1, Ordering::Relaxed);
            log::debug!("pptp: call from {} refused: {why}", self.from);
            Ok(Err(result))
        };
        if !self.calls.is_empty() {
            return refuse("one call per control connection", OCRP_DO_NOT_ACCEPT);
        }
        let IpAddr::V4(peer) = self.from.ip() else {
            anyhow::bail!("IPv6 clients are not supported");
        };
        let IpAddr::V4(local) = stream.local_addr()?.ip() else {
            anyhow::bail!("IPv6 is not supported");
        };
        let Ok(admission) = self.pool.admit() else {
            return refuse("the gateway has reached max_sessions", OCRP_BUSY);
        };
        let Some(call_id) = pptp.fresh_call_id() else {
            return refuse("no free call ID", OCRP_BUSY);
        };
        let carrier = Gre {
            row_id: self.pool.next_row_id(),
            call_id,
            peer_call_id,
            peer,
            local,
            control_peer: self.from,
            socket: pptp.gre.clone(),
            seq: pptp.seq.clone(),
            clear: self.notify.clone(),
        };
        let call = Call::new(carrier, GreWire::default(), pptp.ppp.clone(), admission);
        pptp.insert(call.clone());
        log::info!(
            "pptp: call {call_id} from {} (its call {peer_call_id}), session {}",
            self.from,
            call.carrier.row_id
        );
        self.calls.push(call.clone());
        self.permit = None;
        Ok(Ok(call))
    }

    /// Our calls whose PPP link is over and done terminating (kill, echo
    /// timeout, auth failure).
    fn finished_calls(&self) -> Vec<Arc<PptpCall>> {
        self.calls
            .iter()
            .filter(|c| c.is_finished())
            .cloned()
            .collect()
    }

    fn drop_call(&mut self, c: &Arc<PptpCall>, why: &str) {
        let id = c.carrier.call_id;
        self.calls.retain(|x| x.carrier.call_id != id);
        self.pptp.remove(id);
        c.end(why);
    }

    /// Restart: the connection's and its calls' state into the handoff,
    /// with a duplicate of the socket. False if any part cannot be carried.
    fn hand_over(&self, stream: &TcpStream, ctl: &ControlConnection) -> bool {
        let Some(ctl) = ctl.carry() else { return false };
        let mut calls = Vec::new();
        for c in &self.calls {
            let g = &c.carrier;
            let Some((call, wire)) = c.carry(|w| (w.seq_out, w.seq_in, w.ack_owed, w.fast_acked))
            else {
                return false;
            };
            calls.push(super::carry::CallCarry {
                call_id: g.call_id,
                peer_call_id: g.peer_call_id,
                peer: g.peer,
                local: g.local,
                seq_out: wire.0,
                seq_in: wire.1,
                ack_owed: wire.2,
                fast_acked: wire.3,
                call,
            });
        }
        let fd = match self.pptp.handoff.keep(stream.as_raw_fd()) {
            Ok(fd) => fd,
            Err(e) => {
                log::warn!("pptp: {}: {e:#}", self.from);
                return false;
            }
        };
        self.pptp.handoff.push(super::carry::ConnectionCarry {
            fd,
            from: self.from,
            ctl,
            calls,
        });
        true
    }

    fn teardown(&mut self) {
        for c in self.calls.clone() {
            self.drop_call(&c, "its control connection closed");
        }
    }
}
