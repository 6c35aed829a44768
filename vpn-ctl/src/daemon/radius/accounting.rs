//! What the RADIUS servers hear about sessions, and the limits they set on
//! them. Once a second every protocol's session rows (the same rows as
//! `sessions`) are compared with what was reported: a session that logged
//! in gets its Start, one that is gone its Stop with its last counters and
//! why it ended, and Interim-Updates follow the server's interval.
//! Session-Timeout and Idle-Timeout from the Access-Accept end sessions.
use std::{
    collections::{HashMap, HashSet},
    net::{IpAddr, Ipv4Addr, SocketAddr},
    sync::{atomic::Ordering, Arc, Mutex},
    time::{Duration, Instant},
};

use vpn_proto::radius::{
    accounting::{nas_request, session_request, Usage},
    client::{Kind, Request},
    consts::{cause, ACCT_INTERIM, ACCT_OFF, ACCT_ON, ACCT_START, ACCT_STOP},
    login::{Grant, SessionInfo},
};

use super::Radius;
use crate::{
    daemon::{unix_now, Shared},
    report::SessionRow,
};

/// Sessions' last rows, recorded by the protocols as the sessions end, so
/// a Stop carries the final counters rather than the last sample's.
#[derive(Default)]
pub struct FinalRows(Mutex<HashMap<u64, SessionRow>>);

impl FinalRows {
    pub fn record(&self, row: SessionRow) {
        lock(&self.0).insert(row.id, row);
    }

    fn drain(&self) -> HashMap<u64, SessionRow> {
        std::mem::take(&mut *lock(&self.0))
    }
}

pub(super) struct Tracked {
    pub(super) info: SessionInfo,
    pub(super) framed_ip: Option<Ipv4Addr>,
    pub(super) grant: Grant,
    pub(super) last: SessionRow,
    /// When the session was first seen logged in.
    pub(super) since: Instant,
    pub(super) interim: Option<Duration>,
    pub(super) next_interim: Option<Instant>,
    /// The last time its counters moved (Idle-Timeout).
    pub(super) active_at: Instant,
}

pub struct Accounting {
    /// Accounting records are sent (else only the limits apply).
    send: bool,
    default_interim: u32,
    pub(super) tracked: Mutex<HashMap<u64, Tracked>>,
    /// Why sessions we ended ended (Acct-Terminate-Cause), until their Stop.
    causes: Mutex<HashMap<u64, u32>>,
}

impl Accounting {
    pub fn new(send: bool, default_interim: u32) -> Accounting {
        Accounting {
            send,
            default_interim,
            tracked: Mutex::new(HashMap::new()),
            causes: Mutex::new(HashMap::new()),
        }
    }

    /// The gateway ends session `row` for this reason (its Stop says so).
    pub fn ended_by(&self, row: u64, why: u32) {
        lock(&self.causes).insert(row, why);
    }
}

pub(super) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

pub(super) fn peer_ip(peer: &str) -> IpAddr {
    peer.parse::<SocketAddr>()
        .map(|s| s.ip())
        .or_else(|_| peer.parse::<IpAddr>())
        .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
}

fn usage(row: &SessionRow, now_unix: u64) -> Usage {
    Usage {
        session_time: now_unix.saturating_sub(row.started_at) as u32,
        input_octets: row.rx_bytes,
        output_octets: row.tx_bytes,
        input_packets: row.rx_packets,
        output_packets: row.tx_packets,
    }
}

fn record(t: &Tracked, status: u32, cause: Option<u32>, now_unix: u64) -> Request {
    let u = (status != ACCT_START).then(|| usage(&t.last, now_unix));
    session_request(
        &t.info,
        status,
        t.framed_ip,
        &t.grant.class,
        u.as_ref(),
        cause,
        now_unix as u32,
    )
}

/// Sends an accounting record without waiting for it (the engine retries
/// and fails over); the outcome is counted.
fn send(radius: &Arc<Radius>, req: Request) {
    let r = radius.clone();
    tokio::spawn(async move {
        let c = &r.counters;
        match r.ask(req, Kind::Acct).await {
            Some(_) => c.accounting_sent.fetch_add(1, Ordering::Relaxed),
            None => c.accounting_failed.fetch_add(1, Ordering::Relaxed),
        };
    });
}

/// The loop: Accounting-On, then a step a second.
pub async fn run(shared: Arc<Shared>, radius: Arc<Radius>) {
    let a = &radius.sessions;
    // A restart's successor continues the predecessor's accounting.
    if a.send && !radius.resumed {
        let on = nas_request(
            ACCT_ON,
            &radius.nas_identifier,
            radius.nas_ip,
            &radius.acct_session_id(0),
        );
        if radius.ask(on, Kind::Acct).await.is_none() {
            log::warn!("radius: no accounting server answered Accounting-On");
        }
    }
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        step(&shared, &radius);
    }
}

fn step(shared: &Shared, radius: &Arc<Radius>) {
    let a = &radius.sessions;
    // Final rows first: a session recorded there is gone from `rows` too.
    let mut finals = radius.finals.drain();
    let rows = shared.sessions();
    let (now, now_unix) = (Instant::now(), unix_now());
    let mut records = Vec::new();
    let mut expired: Vec<(u64, &str, u32)> = Vec::new();
    {
        let mut tracked = lock(&a.tracked);
        let live: HashSet<u64> = rows.iter().map(|r| r.id).collect();
        radius.forget_grants(|row| live.contains(&row));
        let gone: Vec<u64> = tracked
            .keys()
            .filter(|id| !live.contains(id))
            .copied()
            .collect();
        for id in gone {
            let mut t = tracked.remove(&id).expect("listed");
            if let Some(last) = finals.remove(&id) {
                t.last = last;
            }
            radius.take_grant(id);
            let why = lock(&a.causes).remove(&id).unwrap_or(cause::USER_REQUEST);
            if a.send {
                records.push(record(&t, ACCT_STOP, Some(why), now_unix));
            }
        }
        for row in rows {
            if let Some(t) = tracked.get_mut(&row.id) {
                if (row.rx_packets, row.tx_packets) != (t.last.rx_packets, t.last.tx_packets) {
                    t.active_at = now;
                }
                t.last = row;
                if let Some(limit) = t.grant.session_timeout {
                    if now >= t.since + Duration::from_secs(limit.into()) {
                        expired.push((
                            t.last.id,
                            "the RADIUS server's session time is up",
                            cause::SESSION_TIMEOUT,
                        ));
                    }
                }
                if let Some(limit) = t.grant.idle_timeout {
                    if now >= t.active_at + Duration::from_secs(limit.into()) {
                        expired.push((
                            t.last.id,
                            "idle longer than the RADIUS server allows",
                            cause::IDLE_TIMEOUT,
                        ));
                    }
                }
                if let (Some(every), Some(next)) = (t.interim, t.next_interim) {
                    if now >= next {
                        t.next_interim = Some(now + every);
                        if a.send {
                            records.push(record(t, ACCT_INTERIM, None, now_unix));
                        }
                    }
                }
                continue;
            }
            // Logged in (a user, an address): it starts being accounted.
            if row.state != "up" || row.user.is_empty() || row.assigned_ip.is_empty() {
                continue;
            }
            let grant = radius.grant(row.id).unwrap_or_default();
            let interim = match grant.interim_interval.unwrap_or(a.default_interim) {
                0 => None,
                // At least a minute apart, whatever the server says (RFC 2869 §2.1).
                s => Some(Duration::from_secs(s.max(60).into())),
            };
            let info = radius.session_info(
                &row.user,
                peer_ip(&row.peer),
                row.id,
                row.protocol != "native",
            );
            let t = Tracked {
                info,
                framed_ip: row.assigned_ip.parse().ok(),
                grant,
                since: now,
                interim,
                next_interim: interim.map(|i| now + i),
                active_at: now,
                last: row,
            };
            if a.send {
                records.push(record(&t, ACCT_START, None, now_unix));
            }
            tracked.insert(t.last.id, t);
        }
    }
    for (id, why, c) in expired {
        a.ended_by(id, c);
        shared.services().iter().any(|s| s.end(id, why));
    }
    for r in records {
        send(radius, r);
    }
}

/// The gateway stops: a Stop for every accounted session (Admin-Reboot)
/// and Accounting-Off, waited for up to `limit`.
pub async fn stop_all(shared: &Shared, radius: &Arc<Radius>, limit: Duration) {
    let a = &radius.sessions;
    if !a.send {
        return;
    }
    let rows: HashMap<u64, SessionRow> = shared.sessions().into_iter().map(|r| (r.id, r)).collect();
    let now_unix = unix_now();
    let records: Vec<Request> = lock(&a.tracked)
        .drain()
        .map(|(id, mut t)| {
            if let Some(r) = rows.get(&id) {
                t.last = r.clone();
            }
            record(&t, ACCT_STOP, Some(cause::ADMIN_REBOOT), now_unix)
        })
        .collect();
    let off = nas_request(
        ACCT_OFF,
        &radius.nas_identifier,
        radius.nas_ip,
        &radius.acct_session_id(0),
    );
    // The Stops first, then Accounting-Off (the NAS's last word).
    let all = async {
        futures::future::join_all(records.into_iter().map(|r| radius.ask(r, Kind::Acct))).await;
        radius.ask(off, Kind::Acct).await
    };
    if tokio::time::timeout(limit, all).await.is_err() {
        log::warn!("radius: the accounting server did not confirm every Stop before shutdown");
    }
}
