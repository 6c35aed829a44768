//! The RADIUS client's transactions: identifiers, retransmission, and
//! failover across servers (RFC 5080 §2.2.1 for the retransmission rules:
//! an accounting retransmit keeps its ID and authenticator, a request sent
//! to another server is a new packet). A server that let a request time
//! out is left alone for `dead_time` while another answers.
use std::{
    collections::{HashMap, VecDeque},
    net::SocketAddr,
    time::{Duration, Instant},
};

use zeroize::Zeroizing;

use super::{
    consts::*,
    packet::{self, Error, Packet},
};

pub struct Server {
    pub auth: SocketAddr,
    pub acct: SocketAddr,
    pub secret: Zeroizing<Vec<u8>>,
}

#[derive(Clone, Copy, Debug)]
pub struct Settings {
    /// Wait for an answer this long before a retransmit.
    pub timeout: Duration,
    /// Transmissions to one server before trying the next.
    pub tries: u32,
    /// How long a server that let a request time out is skipped.
    pub dead_time: Duration,
    /// Answers to Access-Requests without a valid Message-Authenticator
    /// are dropped (the BlastRADIUS defence, for servers that sign them).
    pub require_message_authenticator: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    Auth,
    Acct,
}

/// What the caller asks: an Access-Request (with the password, hidden per
/// server) or an Accounting-Request. ID and authenticator are ours.
pub struct Request {
    pub packet: Packet,
    pub password: Option<Zeroizing<Vec<u8>>>,
}

pub type Token = u64;

#[derive(Debug)]
pub enum Answer {
    /// A verified response. `request_auth`: the authenticator it answers
    /// (MPPE keys are hidden with it); `signed`: it carried a valid
    /// Message-Authenticator.
    Reply {
        server: usize,
        packet: Packet,
        request_auth: [u8; 16],
        signed: bool,
    },
    /// Every server was tried; none answered.
    NoServer,
}

pub struct Transmit {
    pub to: SocketAddr,
    pub bytes: Vec<u8>,
}

struct ServerState {
    spec: Server,
    next_id: [u8; 2],
    dead_until: Option<Instant>,
}

struct Inflight {
    req: Request,
    kind: Kind,
    server: usize,
    tried: Vec<usize>,
    id: u8,
    auth: [u8; 16],
    bytes: Vec<u8>,
    sent: u32,
    deadline: Instant,
}

pub struct Client {
    servers: Vec<ServerState>,
    settings: Settings,
    inflight: HashMap<Token, Inflight>,
    /// (server, kind, id) in use: IDs are 8 bits per destination.
    ids: HashMap<(usize, Kind, u8), Token>,
    /// Requests waiting for a free ID at their server.
    backlog: VecDeque<(Token, Request, Kind, Vec<usize>)>,
    transmits: VecDeque<Transmit>,
    answers: VecDeque<(Token, Answer)>,
    next_token: Token,
}

impl Client {
    pub fn new(servers: Vec<Server>, settings: Settings) -> Client {
        Client {
            servers: servers
                .into_iter()
                .map(|spec| ServerState {
                    spec,
                    next_id: [0; 2],
                    dead_until: None,
                })
                .collect(),
            settings,
            inflight: HashMap::new(),
            ids: HashMap::new(),
            backlog: VecDeque::new(),
            transmits: VecDeque::new(),
            answers: VecDeque::new(),
            next_token: 1,
        }
    }

    pub fn in_flight(&self) -> usize {
        self.inflight.len() + self.backlog.len()
    }

    /// Whether the server is being skipped (it let a request time out).
    pub fn is_dead(&self, server: usize, now: Instant) -> bool {
        self.servers[server].dead_until.is_some_and(|t| now < t)
    }

    /// Sends `req` to the first live server. `random`: fresh bytes for
    /// authenticators (called once per packet built).
    pub fn submit(
        &mut self,
        now: Instant,
        req: Request,
        kind: Kind,
        random: &mut dyn FnMut() -> [u8; 16],
    ) -> Token {
        let token = self.next_token;
        self.next_token += 1;
        self.start(now, token, req, kind, Vec::new(), random);
        token
    }

    /// The next server for a request that has tried `tried`: the first
    /// live one in the configured order, else the one dead the longest.
    fn pick(&self, now: Instant, tried: &[usize]) -> Option<usize> {
        let untried = (0..self.servers.len()).filter(|i| !tried.contains(i));
        let live = untried.clone().find(|&i| !self.is_dead(i, now));
        live.or_else(|| untried.min_by_key(|&i| self.servers[i].dead_until))
    }

    fn start(
        &mut self,
        now: Instant,
        token: Token,
        req: Request,
        kind: Kind,
        mut tried: Vec<usize>,
        random: &mut dyn FnMut() -> [u8; 16],
    ) {
        let Some(server) = self.pick(now, &tried) else {
            self.answers.push_back((token, Answer::NoServer));
            return;
        };
        let Some(id) = self.free_id(server, kind) else {
            self.backlog.push_back((token, req, kind, tried));
            return;
        };
        tried.push(server);
        let s = &self.servers[server];
        let mut p = req.packet.clone();
        p.id = id;
        let (bytes, auth) = match kind {
            Kind::Auth => {
                let auth = random();
                let b = packet::encode_access_request(
                    &p,
                    auth,
                    req.password.as_deref().map(|v| &v[..]),
                    &s.spec.secret,
                );
                (b, auth)
            }
            Kind::Acct => {
                let b = packet::encode_signed_request(&p, &s.spec.secret);
                let auth = b[4..20].try_into().expect("16 bytes");
                (b, auth)
            }
        };
        let to = match kind {
            Kind::Auth => s.spec.auth,
            Kind::Acct => s.spec.acct,
        };
        self.transmits.push_back(Transmit {
            to,
            bytes: bytes.clone(),
        });
        self.ids.insert((server, kind, id), token);
        self.inflight.insert(
            token,
            Inflight {
                req,
                kind,
                server,
                tried,
                id,
                auth,
                bytes,
                sent: 1,
                deadline: now + self.settings.timeout,
            },
        );
    }

    fn free_id(&mut self, server: usize, kind: Kind) -> Option<u8> {
        let k = kind as usize;
        for _ in 0..256 {
            let id = self.servers[server].next_id[k];
            self.servers[server].next_id[k] = id.wrapping_add(1);
            if !self.ids.contains_key(&(server, kind, id)) {
                return Some(id);
            }
        }
        None
    }

    /// A datagram from `from`. Err: not an answer to anything in flight
    /// (unknown source or ID, bad authenticator): the caller counts it.
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        from: SocketAddr,
        bytes: &[u8],
        random: &mut dyn FnMut() -> [u8; 16],
    ) -> Result<(), Error> {
        let id = *bytes.get(1).ok_or(Error::Malformed)?;
        let found = self.servers.iter().enumerate().find_map(|(i, s)| {
            let kind = if s.spec.auth == from {
                Kind::Auth
            } else if s.spec.acct == from {
                Kind::Acct
            } else {
                return None;
            };
            self.ids.get(&(i, kind, id)).map(|t| (i, kind, *t))
        });
        let Some((server, kind, token)) = found else {
            return Err(Error::Malformed);
        };
        let f = &self.inflight[&token];
        let secret = &self.servers[server].spec.secret;
        let (packet, signed) = packet::verify_response(bytes, &f.auth, secret)?;
        let expected = match kind {
            Kind::Auth => matches!(
                packet.code,
                ACCESS_ACCEPT | ACCESS_REJECT | ACCESS_CHALLENGE
            ),
            Kind::Acct => packet.code == ACCOUNTING_RESPONSE,
        };
        if !expected {
            return Err(Error::Malformed);
        }
        if kind == Kind::Auth && !signed && self.settings.require_message_authenticator {
            return Err(Error::NoMessageAuthenticator);
        }
        let f = self.finish(token).expect("in flight");
        self.servers[server].dead_until = None;
        self.answers.push_back((
            token,
            Answer::Reply {
                server,
                packet,
                request_auth: f.auth,
                signed,
            },
        ));
        self.drain_backlog(now, random);
        Ok(())
    }

    fn finish(&mut self, token: Token) -> Option<Inflight> {
        let f = self.inflight.remove(&token)?;
        self.ids.remove(&(f.server, f.kind, f.id));
        Some(f)
    }

    fn drain_backlog(&mut self, now: Instant, random: &mut dyn FnMut() -> [u8; 16]) {
        for _ in 0..self.backlog.len() {
            let Some((token, req, kind, tried)) = self.backlog.pop_front() else {
                break;
            };
            self.start(now, token, req, kind, tried, random);
        }
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        self.inflight.values().map(|f| f.deadline).min()
    }

    /// Retransmits what waited `timeout`; after `tries` the server is
    /// marked dead and the request moves on to the next one.
    pub fn handle_timeout(&mut self, now: Instant, random: &mut dyn FnMut() -> [u8; 16]) {
        let due: Vec<Token> = self
            .inflight
            .iter()
            .filter(|(_, f)| f.deadline <= now)
            .map(|(t, _)| *t)
            .collect();
        for token in due {
            let f = self.inflight.get_mut(&token).expect("in flight");
            if f.sent < self.settings.tries {
                f.sent += 1;
                f.deadline = now + self.settings.timeout;
                self.transmits.push_back(Transmit {
                    to: match f.kind {
                        Kind::Auth => self.servers[f.server].spec.auth,
                        Kind::Acct => self.servers[f.server].spec.acct,
                    },
                    bytes: f.bytes.clone(),
                });
                continue;
            }
            let f = self.finish(token).expect("in flight");
            self.servers[f.server].dead_until = Some(now + self.settings.dead_time);
            self.start(now, token, f.req, f.kind, f.tried, random);
        }
        self.drain_backlog(now, random);
    }

    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    pub fn poll_answer(&mut self) -> Option<(Token, Answer)> {
        self.answers.pop_front()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn two_servers() -> Client {
        let server = |a: &str, b: &str, secret: &[u8]| Server {
            auth: addr(a),
            acct: addr(b),
            secret: Zeroizing::new(secret.to_vec()),
        };
        Client::new(
            vec![
                server("10.0.0.1:1812", "10.0.0.1:1813", b"one"),
                server("10.0.0.2:1812", "10.0.0.2:1813", b"two"),
            ],
            Settings {
                timeout: Duration::from_secs(2),
                tries: 3,
                dead_time: Duration::from_secs(30),
                require_message_authenticator: false,
            },
        )
    }

    fn rng() -> impl FnMut() -> [u8; 16] {
        let mut n = 0u8;
        move || {
            n = n.wrapping_add(1);
            [n; 16]
        }
    }

    fn access(user: &str) -> Request {
        let mut p = Packet::new(ACCESS_REQUEST, 0);
        p.add(USER_NAME, user.as_bytes());
        Request {
            packet: p,
            password: Some(Zeroizing::new(b"pw".to_vec())),
        }
    }

    /// The server's answer to a transmitted request.
    fn answer(t: &Transmit, secret: &[u8], code: u8) -> Vec<u8> {
        let req = Packet::parse(&t.bytes).unwrap();
        let mut r = Packet::new(code, req.id);
        r.add_u32(SESSION_TIMEOUT, 60);
        let b = packet::encode_response(&r, &req.authenticator, secret, true);
        crate::fuzz_seed::save("radius", &b);
        b
    }

    #[test]
    fn an_answer_is_verified_and_matched_to_its_request() {
        let (mut c, mut rnd, now) = (two_servers(), rng(), Instant::now());
        let t1 = c.submit(now, access("alice"), Kind::Auth, &mut rnd);
        let t2 = c.submit(now, access("bob"), Kind::Auth, &mut rnd);
        let (x1, x2) = (c.poll_transmit().unwrap(), c.poll_transmit().unwrap());
        assert_eq!(x1.to, addr("10.0.0.1:1812"));
        // A forged answer (wrong secret) and one from elsewhere are refused.
        let forged = answer(&x1, b"guess", ACCESS_ACCEPT);
        assert!(c.handle_datagram(now, x1.to, &forged, &mut rnd).is_err());
        let good = answer(&x1, b"one", ACCESS_ACCEPT);
        assert!(c
            .handle_datagram(now, addr("10.0.0.9:1812"), &good, &mut rnd)
            .is_err());
        // An Accounting-Response is not an answer to an Access-Request.
        let wrong = answer(&x2, b"one", ACCOUNTING_RESPONSE);
        assert!(c.handle_datagram(now, x2.to, &wrong, &mut rnd).is_err());
        c.handle_datagram(now, x2.to, &answer(&x2, b"one", ACCESS_REJECT), &mut rnd)
            .unwrap();
        c.handle_datagram(now, x1.to, &good, &mut rnd).unwrap();
        let a: Vec<_> = std::iter::from_fn(|| c.poll_answer()).collect();
        assert!(
            matches!(&a[0], (t, Answer::Reply { packet, .. }) if *t == t2 && packet.code == ACCESS_REJECT)
        );
        assert!(
            matches!(&a[1], (t, Answer::Reply { packet, signed: true, .. }) if *t == t1 && packet.code == ACCESS_ACCEPT)
        );
        // Answered once: a duplicate answer matches nothing.
        assert!(c.handle_datagram(now, x1.to, &good, &mut rnd).is_err());
        assert_eq!(c.in_flight(), 0);
    }

    #[test]
    fn retransmits_then_fails_over_then_gives_up() {
        let (mut c, mut rnd, mut now) = (two_servers(), rng(), Instant::now());
        let token = c.submit(now, access("alice"), Kind::Auth, &mut rnd);
        let first = c.poll_transmit().unwrap();
        // Two retransmits of the same bytes to the first server.
        for _ in 0..2 {
            now = c.poll_timeout().unwrap();
            c.handle_timeout(now, &mut rnd);
            let again = c.poll_transmit().unwrap();
            assert_eq!((again.to, &again.bytes), (first.to, &first.bytes));
        }
        // Then a new packet (new authenticator, its own secret) to the second.
        now = c.poll_timeout().unwrap();
        c.handle_timeout(now, &mut rnd);
        let second = c.poll_transmit().unwrap();
        assert_eq!(second.to, addr("10.0.0.2:1812"));
        assert_ne!(second.bytes[4..20], first.bytes[4..20]);
        assert!(c.is_dead(0, now));
        // A new request now goes straight to the live server.
        c.submit(now, access("bob"), Kind::Auth, &mut rnd);
        assert_eq!(c.poll_transmit().unwrap().to, addr("10.0.0.2:1812"));
        // The second server is silent too: the first request fails.
        let mut gave_up = false;
        while let Some(t) = c.poll_timeout() {
            now = t;
            c.handle_timeout(now, &mut rnd);
            while c.poll_transmit().is_some() {}
            while let Some((t, a)) = c.poll_answer() {
                if t == token {
                    assert!(matches!(a, Answer::NoServer));
                    gave_up = true;
                }
            }
        }
        assert!(gave_up && c.in_flight() == 0);
    }

    #[test]
    fn accounting_retransmits_keep_their_id_and_an_exhausted_id_space_waits() {
        let (mut c, mut rnd, now) = (two_servers(), rng(), Instant::now());
        let acct = || {
            let mut p = Packet::new(ACCOUNTING_REQUEST, 0);
            p.add_u32(ACCT_STATUS_TYPE, ACCT_START);
            Request {
                packet: p,
                password: None,
            }
        };
        for _ in 0..300 {
            c.submit(now, acct(), Kind::Acct, &mut rnd);
        }
        let sent: Vec<_> = std::iter::from_fn(|| c.poll_transmit()).collect();
        assert_eq!(sent.len(), 256, "one ID per request in flight");
        assert_eq!(c.in_flight(), 300);
        let reply = |t: &Transmit| {
            let req = packet::verify_signed_request(&t.bytes, b"one").unwrap();
            let r = Packet::new(ACCOUNTING_RESPONSE, req.id);
            packet::encode_response(&r, &req.authenticator, b"one", false)
        };
        c.handle_datagram(now, sent[0].to, &reply(&sent[0]), &mut rnd)
            .unwrap();
        // The freed ID carries the next waiting request.
        let next = c.poll_transmit().unwrap();
        assert_eq!(next.bytes[1], sent[0].bytes[1]);
        assert_eq!(c.in_flight(), 299);
    }
}
