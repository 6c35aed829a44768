//! PPTP control connections (RFC 2637 §2-3), the gateway as PAC: answer
//! SCCRQ, accept outgoing calls (OCRQ -> OCRP, each with a call ID unique
//! across all clients), echo, clear calls (CCRQ -> CDN), stop
//! (StopCCRQ/StopCCRP). Bad input closes the connection with a log line.
use std::{
    net::{IpAddr, SocketAddr},
    sync::{atomic::Ordering, Arc, Mutex},
    time::{Duration, Instant},
};

use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::{TcpListener, TcpStream},
    sync::{Notify, OwnedSemaphorePermit, Semaphore},
};
use vpn_proto::{
    ppp::link::Link,
    pptp::messages::{self as m, Message},
};

use super::{Call, CallState};
use crate::daemon::Shared;

/// A new control connection must set up a call within this time.
const SETUP_TIMEOUT: Duration = Duration::from_secs(10);
/// Echo-Request after this much silence; the connection ends if unanswered.
const ECHO_IDLE: Duration = Duration::from_secs(60);
const TICK: Duration = Duration::from_secs(1);
/// Our receive window, told to the client in OCRP.
const RECV_WINDOW: u16 = 256;

pub async fn serve(listener: TcpListener, index: usize, shared: Arc<Shared>) {
    let slots = Arc::new(Semaphore::new(shared.pptp.max_half_open));
    loop {
        let Ok((stream, from)) = listener.accept().await else {
            continue;
        };
        if let Some(c) = shared.received.get(index) {
            c.fetch_add(1, Ordering::Relaxed);
        }
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            shared
                .pptp
                .counters
                .control_busy
                .fetch_add(1, Ordering::Relaxed);
            log::debug!("pptp: refusing {from}: too many connections setting up");
            continue;
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            let mut conn = Connection {
                shared: &shared,
                from,
                calls: Vec::new(),
                permit: Some(permit),
                notify: Arc::new(Notify::new()),
            };
            let result = conn.run(stream).await;
            conn.teardown();
            if let Err(e) = result {
                shared
                    .pptp
                    .counters
                    .control_bad
                    .fetch_add(1, Ordering::Relaxed);
                log::warn!("pptp: control connection from {from} closed: {e}");
            }
        });
    }
}

struct Connection<'a> {
    shared: &'a Shared,
    from: SocketAddr,
    calls: Vec<Arc<Call>>,
    /// Held until the connection has a call (flood guard).
    permit: Option<OwnedSemaphorePermit>,
    /// Woken when one of our calls should be cleared (kill, link down).
    notify: Arc<Notify>,
}

impl Connection<'_> {
    async fn run(&mut self, mut stream: TcpStream) -> anyhow::Result<()> {
        let started = Instant::now();
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        let mut established = false;
        let mut last_rx = Instant::now();
        let mut echo_sent: Option<u32> = None;
        loop {
            tokio::select! {
                r = stream.read(&mut chunk) => {
                    let n = r?;
                    if n == 0 {
                        log::info!("pptp: {} closed its control connection", self.from);
                        return Ok(());
                    }
                    last_rx = Instant::now();
                    echo_sent = None;
                    buf.extend_from_slice(&chunk[..n]);
                    while let Some(msg) = m::take(&mut buf)? {
                        let msg = m::parse(&msg)?;
                        if !self.handle(&mut stream, msg, &mut established).await? {
                            return Ok(());
                        }
                    }
                }
                _ = self.notify.notified() => {
                    if self.clear_dead_calls(&mut stream).await? {
                        return Ok(());
                    }
                }
                _ = tokio::time::sleep(TICK) => {
                    if self.calls.is_empty() && started.elapsed() > SETUP_TIMEOUT {
                        anyhow::bail!("no call set up within {SETUP_TIMEOUT:?}");
                    }
                    if last_rx.elapsed() > ECHO_IDLE {
                        if echo_sent.is_some() {
                            anyhow::bail!("no answer to our Echo-Request");
                        }
                        let id = rand::random();
                        stream.write_all(&m::echo_rq(id)).await?;
                        echo_sent = Some(id);
                        last_rx = Instant::now();
                    }
                }
            }
        }
    }

    /// Handles one message; false when the connection should end.
    async fn handle(
        &mut self,
        stream: &mut TcpStream,
        msg: Message,
        established: &mut bool,
    ) -> anyhow::Result<bool> {
        match msg {
            Message::Sccrq { version } => {
                if version != m::VERSION {
                    stream.write_all(&m::sccrp(5, "vpn-ctl")).await?;
                    anyhow::bail!("unsupported PPTP version {version:#06x}");
                }
                stream.write_all(&m::sccrp(m::RESULT_OK, "vpn-ctl")).await?;
                *established = true;
            }
            Message::Ocrq { call_id, .. } if *established => self.new_call(stream, call_id).await?,
            Message::EchoRq { id } => stream.write_all(&m::echo_rp(id)).await?,
            Message::EchoRp { .. } | Message::Sli { .. } | Message::Wen => {}
            Message::Ccrq { call_id } => {
                // The client's own call ID names the call it clears.
                if let Some(c) = self
                    .calls
                    .iter()
                    .find(|c| c.peer_call_id == call_id)
                    .cloned()
                {
                    stream.write_all(&m::cdn(c.call_id, m::RESULT_OK)).await?;
                    self.drop_call(&c, "the client cleared the call");
                }
            }
            Message::Cdn { .. } => {}
            Message::StopCcrq => {
                stream.write_all(&m::stop_ccrp()).await?;
                log::info!("pptp: {} stopped its control connection", self.from);
                return Ok(false);
            }
            Message::StopCcrp => return Ok(false),
            Message::Ocrq { .. } => anyhow::bail!("OCRQ before SCCRQ"),
            Message::Other(t) => {
                self.shared
                    .pptp
                    .counters
                    .control_bad
                    .fetch_add(1, Ordering::Relaxed);
                log::warn!(
                    "pptp: {} sent control message type {t}, which a PAC does not handle; ignored",
                    self.from
                );
            }
        }
        Ok(true)
    }

    async fn new_call(&mut self, stream: &mut TcpStream, peer_call_id: u16) -> anyhow::Result<()> {
        let pptp = &self.shared.pptp;
        let IpAddr::V4(peer) = self.from.ip() else {
            anyhow::bail!("IPv6 clients are not supported");
        };
        let IpAddr::V4(local) = stream.local_addr()?.ip() else {
            anyhow::bail!("IPv6 is not supported");
        };
        let call_id = pptp.fresh_call_id();
        let now = Instant::now();
        let link = Link::new(pptp.link.clone(), rand::random(), now);
        let call = Arc::new(Call {
            row_id: self.shared.native.registry.next_row_id(),
            call_id,
            peer_call_id,
            peer,
            local,
            control_peer: self.from,
            started_at: crate::daemon::unix_now(),
            state: Mutex::new(CallState {
                link,
                seq_out: 0,
                seq_in: None,
                ack_owed: false,
                user: None,
                addr: None,
                encryption: "none",
                fast: None,
                fast_acked: None,
                control_budget: super::TokenBucket::new(now),
                flood_logged: false,
                rx_packets: 0,
                rx_bytes: 0,
                tx_packets: 0,
                tx_bytes: 0,
                drops: 0,
            }),
            clear: self.notify.clone(),
        });
        pptp.insert(call.clone());
        stream
            .write_all(&m::ocrp(call_id, peer_call_id, m::RESULT_OK, RECV_WINDOW))
            .await?;
        {
            let mut s = call.state.lock().unwrap_or_else(|e| e.into_inner());
            pptp.flush_frames(&call, &mut s);
        }
        log::info!(
            "pptp: call {call_id} from {} (its call {peer_call_id}), session {}",
            self.from,
            call.row_id
        );
        self.calls.push(call);
        self.permit = None;
        Ok(())
    }

    /// Clears calls whose link is over; true when the connection should end.
    async fn clear_dead_calls(&mut self, stream: &mut TcpStream) -> anyhow::Result<bool> {
        let dead: Vec<Arc<Call>> = self
            .calls
            .iter()
            .filter(|c| {
                c.state
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .link
                    .is_dead()
            })
            .cloned()
            .collect();
        for c in &dead {
            stream.write_all(&m::cdn(c.call_id, m::CDN_ADMIN)).await?;
            self.drop_call(c, "the PPP link ended");
        }
        if !dead.is_empty() && self.calls.is_empty() {
            stream.write_all(&m::stop_ccrq(1)).await?;
            return Ok(true);
        }
        Ok(false)
    }

    fn drop_call(&mut self, c: &Arc<Call>, why: &str) {
        self.calls.retain(|x| x.call_id != c.call_id);
        let pptp = &self.shared.pptp;
        pptp.remove(c.call_id);
        let mut s = c.state.lock().unwrap_or_else(|e| e.into_inner());
        pptp.disable_fast_path(&self.shared.ebpf, c, &mut s);
        if let Some(ip) = s.addr {
            self.shared.native.registry.release_external(ip);
        }
        log::info!(
            "pptp: session {} ({}, {}) ended: {why}",
            c.row_id,
            s.user.as_deref().unwrap_or("-"),
            s.addr.map(|a| a.to_string()).unwrap_or_else(|| "-".into())
        );
    }

    fn teardown(&mut self) {
        for c in self.calls.clone() {
            self.drop_call(&c, "its control connection closed");
        }
    }
}
