//! The RADIUS client of the running gateway (docs/radius.md): one task owns
//! vpn-proto's transaction engine and a UDP socket; logins and accounting
//! records are handed to it and answered through one-shot channels.
//! Accounting (`accounting`) and dynamic authorization (`dae`) build on it.
pub mod accounting;
pub mod carry;
pub mod dae;

use std::{
    collections::HashMap,
    net::{IpAddr, Ipv4Addr, SocketAddr},
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use anyhow::Context as _;
use tokio::sync::{mpsc, oneshot};
use vpn_proto::{
    ppp::auth::{Credentials, Verdict},
    radius::{
        client::{Answer, Client, Kind, Request, Server, Settings},
        consts::*,
        login::{self, Grant, SessionInfo},
        packet::Packet,
    },
};
use zeroize::Zeroizing;

use crate::config::RadiusConfig;

/// A verified answer from a server.
pub struct Reply {
    pub packet: Packet,
    pub request_auth: [u8; 16],
    pub server: usize,
}

struct Submit {
    req: Request,
    kind: Kind,
    done: oneshot::Sender<Option<Reply>>,
}

#[derive(Default)]
pub struct RadiusCounters {
    pub access_accepts: AtomicU64,
    pub access_rejects: AtomicU64,
    /// Requests no server answered.
    pub no_server: AtomicU64,
    /// Datagrams that answered nothing (unknown, forged, malformed).
    pub bad_responses: AtomicU64,
    pub accounting_sent: AtomicU64,
    pub accounting_failed: AtomicU64,
    pub disconnects: AtomicU64,
    pub dae_refused: AtomicU64,
}

pub struct Radius {
    submit: mpsc::UnboundedSender<Submit>,
    runtime: tokio::runtime::Handle,
    secrets: Vec<Zeroizing<Vec<u8>>>,
    servers: Vec<Ipv4Addr>,
    nas_identifier: String,
    nas_ip: Option<Ipv4Addr>,
    /// Start of this daemon (Unix seconds): Acct-Session-Ids stay unique
    /// across restarts.
    boot: u64,
    /// A restart's successor: no Accounting-On.
    resumed: bool,
    /// What the servers granted each logged-in session, by row ID, and
    /// since when (a grant whose session never showed up is dropped).
    grants: Mutex<HashMap<u64, (Grant, Instant)>>,
    pub sessions: accounting::Accounting,
    /// Where ending sessions leave their last rows (the Stop's counters).
    pub finals: Arc<accounting::FinalRows>,
    pub counters: RadiusCounters,
}

impl Radius {
    /// Binds the client socket and starts the task (on the current runtime).
    /// `boot`: a restart's predecessor's (its Acct-Session-Id prefix).
    pub async fn start(
        cfg: &RadiusConfig,
        finals: Arc<accounting::FinalRows>,
        boot: Option<u64>,
    ) -> anyhow::Result<Arc<Radius>> {
        let sock = tokio::net::UdpSocket::bind(SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)))
            .await
            .context("cannot bind the RADIUS client socket")?;
        let servers = cfg
            .servers
            .iter()
            .map(|s| Server {
                auth: SocketAddr::from((s.address, s.auth_port)),
                acct: SocketAddr::from((s.address, s.acct_port)),
                secret: Zeroizing::new(s.secret.as_bytes().to_vec()),
            })
            .collect();
        let engine = Client::new(
            servers,
            Settings {
                timeout: Duration::from_millis(cfg.timeout_ms.into()),
                tries: cfg.tries,
                dead_time: Duration::from_secs(cfg.dead_time_secs.into()),
                require_message_authenticator: cfg.require_message_authenticator,
            },
        );
        let (tx, rx) = mpsc::unbounded_channel();
        let radius = Arc::new(Radius {
            submit: tx,
            runtime: tokio::runtime::Handle::current(),
            secrets: cfg
                .servers
                .iter()
                .map(|s| Zeroizing::new(s.secret.as_bytes().to_vec()))
                .collect(),
            servers: cfg.servers.iter().map(|s| s.address).collect(),
            nas_identifier: cfg.nas_identifier.clone(),
            nas_ip: cfg.nas_ip,
            boot: boot.unwrap_or_else(crate::daemon::unix_now),
            resumed: boot.is_some(),
            grants: Mutex::new(HashMap::new()),
            sessions: accounting::Accounting::new(cfg.accounting, cfg.interim_secs),
            finals,
            counters: RadiusCounters::default(),
        });
        tokio::spawn(run(engine, sock, rx, Arc::downgrade(&radius)));
        Ok(radius)
    }

    /// Sends `req` and waits for its answer (None: no server answered).
    pub async fn ask(&self, req: Request, kind: Kind) -> Option<Reply> {
        let (done, answer) = oneshot::channel();
        self.submit.send(Submit { req, kind, done }).ok()?;
        answer.await.ok().flatten()
    }

    pub fn acct_session_id(&self, row: u64) -> String {
        format!("{:08X}{:08X}", self.boot as u32, row)
    }

    pub fn session_info(&self, user: &str, peer: IpAddr, row: u64, ppp: bool) -> SessionInfo {
        SessionInfo {
            nas_identifier: self.nas_identifier.clone(),
            nas_ip: self.nas_ip,
            user: user.to_string(),
            calling_station: peer.to_string(),
            acct_session_id: self.acct_session_id(row),
            framed_ppp: ppp,
        }
    }

    /// The secret shared with a dynamic-authorization client at `ip` (one
    /// of the servers).
    pub fn dae_secret(&self, ip: IpAddr) -> Option<&[u8]> {
        let i = self.servers.iter().position(|s| IpAddr::V4(*s) == ip)?;
        Some(&self.secrets[i])
    }

    /// Decides PPP credentials through the servers; `done` runs with the
    /// verdict on the gateway's runtime (PPP calls live on plain threads).
    pub fn ppp_login(
        self: &Arc<Self>,
        creds: Credentials,
        info: SessionInfo,
        done: impl FnOnce(Verdict, Option<Grant>) + Send + 'static,
    ) {
        let me = self.clone();
        self.runtime.spawn(async move {
            let reply = me.ask(login::ppp_request(&creds, &info), Kind::Auth).await;
            let answer = reply.as_ref().map(|r| (&r.packet, &r.request_auth));
            let secret = reply
                .as_ref()
                .map_or(&[][..], |r| &me.secrets[r.server][..]);
            let (verdict, grant) = login::ppp_verdict(&creds, answer, secret);
            me.count(reply.as_ref());
            done(verdict, grant);
        });
    }

    /// A password login (the native protocol): the grant, or None when
    /// refused or unanswered.
    pub async fn password_login(&self, password: &[u8], info: SessionInfo) -> Option<Grant> {
        let reply = self
            .ask(login::password_request(password, &info), Kind::Auth)
            .await;
        self.count(reply.as_ref());
        let r = reply?;
        (r.packet.code == ACCESS_ACCEPT).then(|| Grant::of(&r.packet))
    }

    fn count(&self, reply: Option<&Reply>) {
        let c = &self.counters;
        match reply.map(|r| r.packet.code) {
            Some(ACCESS_ACCEPT) => c.access_accepts.fetch_add(1, Ordering::Relaxed),
            Some(_) => c.access_rejects.fetch_add(1, Ordering::Relaxed),
            None => c.no_server.fetch_add(1, Ordering::Relaxed),
        };
    }

    pub fn set_grant(&self, row: u64, grant: Grant) {
        self.lock_grants().insert(row, (grant, Instant::now()));
    }

    pub fn grant(&self, row: u64) -> Option<Grant> {
        self.lock_grants().get(&row).map(|(g, _)| g.clone())
    }

    pub fn take_grant(&self, row: u64) -> Option<Grant> {
        self.lock_grants().remove(&row).map(|(g, _)| g)
    }

    /// Drops the grants of sessions that ended before they were
    /// accounted (a minute's grace for sessions still being set up).
    pub fn forget_grants(&self, live: impl Fn(u64) -> bool) {
        let Some(old) = Instant::now().checked_sub(Duration::from_secs(60)) else {
            return;
        };
        self.lock_grants()
            .retain(|row, (_, at)| live(*row) || *at > old);
    }

    fn lock_grants(&self) -> std::sync::MutexGuard<'_, HashMap<u64, (Grant, Instant)>> {
        self.grants.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// For `status`.
    pub fn counter_values(&self) -> Vec<(&'static str, u64)> {
        let c = &self.counters;
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        vec![
            ("radius_access_accepts", l(&c.access_accepts)),
            ("radius_access_rejects", l(&c.access_rejects)),
            ("radius_no_server", l(&c.no_server)),
            ("radius_bad_responses", l(&c.bad_responses)),
            ("radius_accounting_sent", l(&c.accounting_sent)),
            ("radius_accounting_failed", l(&c.accounting_failed)),
            ("radius_disconnects", l(&c.disconnects)),
            ("radius_dae_refused", l(&c.dae_refused)),
        ]
    }
}

/// The client task: submissions in, datagrams both ways, timers.
async fn run(
    mut engine: Client,
    sock: tokio::net::UdpSocket,
    mut submits: mpsc::UnboundedReceiver<Submit>,
    radius: std::sync::Weak<Radius>,
) {
    let mut waiting: HashMap<u64, oneshot::Sender<Option<Reply>>> = HashMap::new();
    let mut rng = rand::random::<[u8; 16]>;
    let mut buf = vec![0u8; MAX_PACKET];
    loop {
        while let Some(t) = engine.poll_transmit() {
            if let Err(e) = sock.send_to(&t.bytes, t.to).await {
                log::debug!("radius: send to {}: {e}", t.to);
            }
        }
        while let Some((token, answer)) = engine.poll_answer() {
            let reply = match answer {
                Answer::Reply {
                    server,
                    packet,
                    request_auth,
                    ..
                } => Some(Reply {
                    packet,
                    request_auth,
                    server,
                }),
                Answer::NoServer => None,
            };
            if let Some(done) = waiting.remove(&token) {
                let _ = done.send(reply);
            }
        }
        let deadline = engine.poll_timeout();
        let sleep = tokio::time::sleep_until(deadline.map_or_else(
            || tokio::time::Instant::now() + Duration::from_secs(3600),
            tokio::time::Instant::from_std,
        ));
        tokio::select! {
            s = submits.recv() => {
                let Some(Submit { req, kind, done }) = s else { break };
                let token = engine.submit(Instant::now(), req, kind, &mut rng);
                waiting.insert(token, done);
            }
            r = sock.recv_from(&mut buf) => {
                let Ok((n, from)) = r else { continue };
                if engine.handle_datagram(Instant::now(), from, &buf[..n], &mut rng).is_err() {
                    if let Some(r) = radius.upgrade() {
                        r.counters.bad_responses.fetch_add(1, Ordering::Relaxed);
                    }
                    log::debug!("radius: a datagram from {from} answers nothing in flight");
                }
            }
            _ = sleep, if deadline.is_some() => engine.handle_timeout(Instant::now(), &mut rng),
        }
    }
}
