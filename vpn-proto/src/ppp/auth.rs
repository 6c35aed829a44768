//! The authenticator's side of PAP (RFC 1334), CHAP-MD5 (RFC 1994) and
//! MS-CHAPv2 (RFC 2759).
//! It parses what the peer presents into [`Credentials`] and leaves the
//! decision to the caller: the gateway's own users (the NT password hash,
//! [`Credentials::check`]; the gateway stores no password, so CHAP-MD5 is
//! offered only with RADIUS) or a RADIUS server, whose answer may take a
//! while. Secrets
//! are compared in constant time and not kept after the decision.
use std::time::Instant;

use subtle::ConstantTimeEq as _;
use zeroize::Zeroizing;

use super::{
    consts::*,
    fsm::packet,
    lcp::Auth,
    mschap::{self, NtHash, StartKeys},
};

/// Our name in CHAP challenges.
pub const NAME: &[u8] = b"vpn-ctl";
const MAX_CHALLENGES: u32 = 10;
const MSCHAP_FAILED: &str = "E=691 R=0 V=3 M=Authentication failure";

/// What the peer presented, for the caller to decide on.
#[derive(PartialEq, Eq)]
pub enum Credentials {
    Pap {
        user: String,
        password: Zeroizing<Vec<u8>>,
    },
    /// RFC 1994: `response` is MD5(ident, password, challenge).
    ChapMd5 {
        user: String,
        ident: u8,
        challenge: [u8; 16],
        response: [u8; 16],
    },
    MsChapV2(MsChapV2Response),
}

/// An MS-CHAPv2 Response with the challenge it answers (what a RADIUS
/// server needs: RFC 2548's MS-CHAP-Challenge and MS-CHAP2-Response).
#[derive(PartialEq, Eq)]
pub struct MsChapV2Response {
    /// The name as sent (maybe DOMAIN\user).
    pub name: String,
    /// The name without its domain: the user, and what the hashes cover.
    pub user: String,
    pub ident: u8,
    pub challenge: [u8; 16],
    pub peer_challenge: [u8; 16],
    pub nt_response: [u8; 24],
    pub flags: u8,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credentials::Pap { user, .. } => write!(f, "Pap({user:?}, ..)"),
            Credentials::ChapMd5 { user, .. } => write!(f, "ChapMd5({user:?}, ..)"),
            Credentials::MsChapV2(r) => write!(f, "MsChapV2({:?}, ..)", r.user),
        }
    }
}

impl Credentials {
    pub fn user(&self) -> &str {
        match self {
            Credentials::Pap { user, .. } | Credentials::ChapMd5 { user, .. } => user,
            Credentials::MsChapV2(r) => &r.user,
        }
    }

    /// The decision against the user's NT password hash (None: no such
    /// user, or one who may not log in over PPP).
    pub fn check(&self, hash: Option<&NtHash>) -> Verdict {
        let Some(hash) = hash else {
            return Verdict::reject();
        };
        match self {
            Credentials::Pap { password, .. } => {
                let given = std::str::from_utf8(password).ok().map(NtHash::of_password);
                match given {
                    Some(given) if hash.matches(&given) => Verdict::Accept {
                        proof: None,
                        keys: None,
                    },
                    _ => Verdict::reject(),
                }
            }
            // Needs the clear password: only a RADIUS server can decide.
            Credentials::ChapMd5 { .. } => Verdict::reject(),
            Credentials::MsChapV2(r) => {
                // The challenge hash covers the user name without its domain
                // (RFC 2759 §8.2), as Windows and pppd compute it.
                let expect = mschap::nt_response(&r.challenge, &r.peer_challenge, &r.user, hash);
                if !ct_eq(&expect, &r.nt_response) {
                    return Verdict::reject();
                }
                let proof = mschap::authenticator_response(
                    hash,
                    &r.nt_response,
                    &r.peer_challenge,
                    &r.challenge,
                    &r.user,
                );
                let master = mschap::master_key(hash, &r.nt_response);
                Verdict::Accept {
                    proof: Some(proof),
                    keys: Some(StartKeys::of_master(&master)),
                }
            }
        }
    }
}

/// The caller's decision on [`Credentials`].
#[derive(Debug)]
pub enum Verdict {
    Accept {
        /// MS-CHAPv2's authenticator response ("S=" and 40 hex digits),
        /// which the peer checks; without it an MS-CHAPv2 login fails.
        proof: Option<String>,
        /// MPPE start keys (MS-CHAPv2 only).
        keys: Option<StartKeys>,
    },
    /// `message`: MS-CHAPv2's failure text ("E=691 R=0 ..."), if the
    /// deciding party gave one.
    Reject { message: Option<String> },
}

impl Verdict {
    pub fn reject() -> Verdict {
        Verdict::Reject { message: None }
    }
}

#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Authenticated; MS-CHAPv2 also yields the MPPE start keys.
    Success {
        user: String,
        keys: Option<StartKeys>,
    },
    /// Wrong name or password (the user name, for the log).
    Failure { user: String },
}

impl PartialEq for StartKeys {
    fn eq(&self, other: &StartKeys) -> bool {
        ct_eq(&self.send, &other.send) && ct_eq(&self.recv, &other.recv)
    }
}
impl Eq for StartKeys {}

/// The peer answered none of our challenges.
#[derive(Debug, PartialEq, Eq)]
pub struct NoAnswer;

pub struct Authenticator {
    method: Auth,
    challenge: [u8; 16],
    id: u8,
    sent: u32,
    deadline: Option<Instant>,
    /// Credentials handed to the caller, not decided yet: (packet id, user).
    pending: Option<(u8, String)>,
    done: bool,
    /// The Success/Failure we sent, resent if the peer repeats its Response
    /// (RFC 1994 §4.1: ours may have been lost).
    last_reply: Option<(u16, Vec<u8>)>,
}

impl Authenticator {
    /// `random`: 16 fresh random bytes (the challenge).
    pub fn new(method: Auth, random: [u8; 16]) -> Authenticator {
        Authenticator {
            method,
            challenge: random,
            id: random[0],
            sent: 0,
            deadline: None,
            pending: None,
            done: false,
            last_reply: None,
        }
    }

    pub fn method(&self) -> Auth {
        self.method
    }

    /// The challenge to send now (CHAP), or None (PAP: the peer speaks first).
    pub fn start(&mut self, now: Instant) -> Option<(u16, Vec<u8>)> {
        if self.method == Auth::Pap || self.done || self.pending.is_some() {
            return None;
        }
        self.sent += 1;
        self.deadline = Some(now + RESTART_INTERVAL);
        let mut data = vec![self.challenge.len() as u8];
        data.extend_from_slice(&self.challenge);
        data.extend_from_slice(NAME);
        Some((PROTO_CHAP, packet(CHAP_CHALLENGE, self.id, &data)))
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        self.deadline
    }

    /// Retransmits the challenge; Err when the peer never answered.
    pub fn handle_timeout(&mut self, now: Instant) -> Result<Option<(u16, Vec<u8>)>, NoAnswer> {
        if self.deadline.is_none_or(|d| now < d) {
            return Ok(None);
        }
        if self.sent >= MAX_CHALLENGES {
            self.deadline = None;
            return Err(NoAnswer);
        }
        Ok(self.start(now))
    }

    /// After the decision: the same reply again for a repeated Response or
    /// Authenticate-Request (the first reply was lost on the way).
    pub fn repeat(&self, proto: u16, p: &[u8]) -> Option<(u16, Vec<u8>)> {
        let (code, id, _) = super::fsm::parse(p)?;
        let repeated = match proto {
            PROTO_CHAP => code == CHAP_RESPONSE && id == self.id,
            PROTO_PAP => code == PAP_REQ,
            _ => false,
        };
        if self.done && repeated {
            self.last_reply.clone()
        } else {
            None
        }
    }

    /// Parses a PAP Authenticate-Request or an MS-CHAPv2 Response into the
    /// credentials to decide on (once: repeats while the decision is
    /// pending are ignored). `Err`: a malformed Response, to be refused
    /// (`decide` with a rejection) without asking anyone.
    pub fn handle_packet(
        &mut self,
        proto: u16,
        p: &[u8],
    ) -> Option<Result<Credentials, Malformed>> {
        if self.done || self.pending.is_some() {
            return None;
        }
        let (code, id, data) = super::fsm::parse(p)?;
        let creds = match (self.method, proto, code) {
            (Auth::Pap, PROTO_PAP, PAP_REQ) => {
                let ulen = *data.first()? as usize;
                let user = data.get(1..1 + ulen)?;
                let plen = *data.get(1 + ulen)? as usize;
                let password = data.get(2 + ulen..2 + ulen + plen)?;
                Credentials::Pap {
                    user: String::from_utf8_lossy(user).into_owned(),
                    password: Zeroizing::new(password.to_vec()),
                }
            }
            (Auth::ChapMd5, PROTO_CHAP, CHAP_RESPONSE) if id == self.id => {
                let vlen = *data.first()? as usize;
                let value = data.get(1..1 + vlen)?;
                let user = String::from_utf8_lossy(data.get(1 + vlen..)?).into_owned();
                let Ok(response) = <[u8; 16]>::try_from(value) else {
                    self.pending = Some((id, user));
                    return Some(Err(Malformed));
                };
                Credentials::ChapMd5 {
                    user,
                    ident: id,
                    challenge: self.challenge,
                    response,
                }
            }
            (Auth::MsChapV2, PROTO_CHAP, CHAP_RESPONSE) if id == self.id => {
                let vlen = *data.first()? as usize;
                let value = data.get(1..1 + vlen)?;
                let name = String::from_utf8_lossy(data.get(1 + vlen..)?).into_owned();
                // MS-CHAPv2 names may carry a Windows domain: DOMAIN\user.
                let user = name.rsplit('\\').next().unwrap_or(&name).to_string();
                if vlen != 49 {
                    // Not a response anyone could accept: refused here.
                    self.pending = Some((id, user));
                    return Some(Err(Malformed));
                }
                Credentials::MsChapV2(MsChapV2Response {
                    name,
                    user,
                    ident: id,
                    challenge: self.challenge,
                    peer_challenge: value[..16].try_into().ok()?,
                    nt_response: value[24..48].try_into().ok()?,
                    flags: value[48],
                })
            }
            _ => return None,
        };
        self.pending = Some((id, creds.user().to_string()));
        self.deadline = None;
        Some(Ok(creds))
    }

    /// Whether credentials await the caller's verdict.
    pub fn is_pending(&self) -> bool {
        self.pending.is_some()
    }

    /// The caller's verdict on the pending credentials: the reply for the
    /// peer and the outcome. None when nothing is pending.
    pub fn decide(&mut self, verdict: Verdict) -> Option<((u16, Vec<u8>), Outcome)> {
        let (id, user) = self.pending.take()?;
        let (reply, outcome) = match (self.method, verdict) {
            (Auth::Pap, Verdict::Accept { .. }) => (
                (PROTO_PAP, pap_reply(PAP_ACK, id, "welcome")),
                Outcome::Success { user, keys: None },
            ),
            (Auth::Pap, Verdict::Reject { .. }) => (
                (PROTO_PAP, pap_reply(PAP_NAK, id, "denied")),
                Outcome::Failure { user },
            ),
            (Auth::ChapMd5, Verdict::Accept { .. }) => (
                (PROTO_CHAP, packet(CHAP_SUCCESS, id, b"Welcome")),
                Outcome::Success { user, keys: None },
            ),
            (Auth::ChapMd5, Verdict::Reject { .. }) => (
                (
                    PROTO_CHAP,
                    packet(CHAP_FAILURE, id, b"Authentication failure"),
                ),
                Outcome::Failure { user },
            ),
            (
                Auth::MsChapV2,
                Verdict::Accept {
                    proof: Some(proof),
                    keys,
                },
            ) => {
                let msg = format!("{proof} M=Access granted");
                (
                    (PROTO_CHAP, packet(CHAP_SUCCESS, id, msg.as_bytes())),
                    Outcome::Success { user, keys },
                )
            }
            // Without the authenticator response the peer cannot accept us.
            (Auth::MsChapV2, Verdict::Accept { proof: None, .. }) => (
                (
                    PROTO_CHAP,
                    packet(CHAP_FAILURE, id, MSCHAP_FAILED.as_bytes()),
                ),
                Outcome::Failure { user },
            ),
            (Auth::MsChapV2, Verdict::Reject { message }) => {
                let msg = message.unwrap_or_else(|| MSCHAP_FAILED.into());
                (
                    (PROTO_CHAP, packet(CHAP_FAILURE, id, msg.as_bytes())),
                    Outcome::Failure { user },
                )
            }
        };
        self.done = true;
        self.deadline = None;
        self.last_reply = Some(reply.clone());
        Some((reply, outcome))
    }
}

/// A Response that no one could accept (wrong length).
#[derive(Debug, PartialEq, Eq)]
pub struct Malformed;

fn pap_reply(code: u8, id: u8, msg: &str) -> Vec<u8> {
    let mut reply = vec![msg.len() as u8];
    reply.extend_from_slice(msg.as_bytes());
    packet(code, id, &reply)
}

fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

/// The peer's side of MS-CHAPv2, for tests and a future client: the
/// Response packet to a Challenge.
pub fn chap_response(
    challenge_pkt: &[u8],
    user: &str,
    password: &str,
    peer_challenge: [u8; 16],
) -> Option<Vec<u8>> {
    let (code, id, data) = super::fsm::parse(challenge_pkt)?;
    if code != CHAP_CHALLENGE {
        return None;
    }
    let vlen = *data.first()? as usize;
    let challenge = data.get(1..1 + vlen)?;
    let auth: [u8; 16] = challenge.try_into().ok()?;
    // The hash takes the name without a DOMAIN\ prefix; the packet the whole name.
    let bare = user.rsplit('\\').next().unwrap_or(user);
    let nt = mschap::nt_response(&auth, &peer_challenge, bare, &NtHash::of_password(password));
    let value = [&peer_challenge[..], &[0u8; 8], &nt, &[0]].concat();
    let mut d = vec![value.len() as u8];
    d.extend_from_slice(&value);
    d.extend_from_slice(user.as_bytes());
    Some(packet(CHAP_RESPONSE, id, &d))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn users(u: &str) -> Option<NtHash> {
        (u == "alice").then(|| NtHash::of_password("s3cret-pass"))
    }

    /// The authenticator deciding against `users`, as the gateway does.
    fn run(a: &mut Authenticator, proto: u16, p: &[u8]) -> Option<((u16, Vec<u8>), Outcome)> {
        let verdict = match a.handle_packet(proto, p)? {
            Ok(creds) => creds.check(users(creds.user()).as_ref()),
            Err(Malformed) => Verdict::Reject {
                message: Some("E=691 R=0 V=3 M=malformed response".into()),
            },
        };
        a.decide(verdict)
    }

    #[test]
    fn mschapv2_with_a_windows_domain_in_the_name() {
        let now = Instant::now();
        let mut a = Authenticator::new(Auth::MsChapV2, [7; 16]);
        let (_, ch) = a.start(now).unwrap();
        let resp = chap_response(&ch, "CORP\\alice", "s3cret-pass", [9; 16]).unwrap();
        let ((_, reply), outcome) = run(&mut a, PROTO_CHAP, &resp).unwrap();
        assert!(
            matches!(&outcome, Outcome::Success { user, .. } if user == "alice"),
            "{outcome:?}"
        );
        // The proof the client checks is over the same bare name.
        let want = mschap::authenticator_response(
            &NtHash::of_password("s3cret-pass"),
            resp[4 + 1 + 24..4 + 1 + 48].try_into().unwrap(),
            &[9; 16],
            &[7; 16],
            "alice",
        );
        assert!(String::from_utf8_lossy(&reply[4..]).starts_with(&want));
    }

    #[test]
    fn mschapv2_right_and_wrong_password() {
        let now = Instant::now();
        for (pw, ok) in [("s3cret-pass", true), ("guess", false)] {
            let mut a = Authenticator::new(Auth::MsChapV2, [7; 16]);
            let (_, ch) = a.start(now).unwrap();
            let resp = chap_response(&ch, "alice", pw, [9; 16]).unwrap();
            let ((_, reply), outcome) = run(&mut a, PROTO_CHAP, &resp).unwrap();
            match outcome {
                Outcome::Success { user, keys } => {
                    assert!(ok);
                    assert_eq!(user, "alice");
                    assert!(keys.is_some());
                    assert_eq!(reply[0], CHAP_SUCCESS);
                    assert!(String::from_utf8_lossy(&reply[4..]).starts_with("S="));
                }
                Outcome::Failure { user } => {
                    assert!(!ok);
                    assert_eq!(user, "alice");
                    assert!(String::from_utf8_lossy(&reply[4..]).contains("E=691"));
                }
            }
        }
    }

    #[test]
    fn pap_checks_the_password_against_the_nt_hash_and_domain_names() {
        let now = Instant::now();
        for (req, ack) in [
            (&b"\x05alice\x0bs3cret-pass"[..], true),
            (b"\x05alice\x0bs3cret-pasS", false),
            (b"\x05alice\x0bs3cret-pas\xff", false),
            (b"\x03bob\x0bs3cret-pass", false),
        ] {
            let mut a = Authenticator::new(Auth::Pap, [1; 16]);
            assert!(a.start(now).is_none());
            let req = packet(PAP_REQ, 5, req);
            let ((_, reply), out) = run(&mut a, PROTO_PAP, &req).unwrap();
            assert_eq!(reply[0] == PAP_ACK, ack, "{req:?}");
            assert_eq!(matches!(out, Outcome::Success { .. }), ack);
        }

        let mut a = Authenticator::new(Auth::MsChapV2, [7; 16]);
        let (_, ch) = a.start(now).unwrap();
        let resp = chap_response(&ch, "CORP\\alice", "s3cret-pass", [9; 16]).unwrap();
        assert!(matches!(
            run(&mut a, PROTO_CHAP, &resp).unwrap().1,
            Outcome::Success { .. }
        ));
    }

    #[test]
    fn garbage_and_silence() {
        let mut now = Instant::now();
        let mut a = Authenticator::new(Auth::MsChapV2, [7; 16]);
        a.start(now);
        for bad in [
            &b""[..],
            b"\x02",
            b"\x02\x07\x00\x05\x31",
            b"\x02\x07\x00\x06\x05\x00",
        ] {
            assert!(run(&mut a, PROTO_CHAP, bad)
                .is_none_or(|(_, o)| matches!(o, Outcome::Failure { .. })));
        }
        let mut a = Authenticator::new(Auth::MsChapV2, [7; 16]);
        a.start(now);
        let mut resent = 0;
        loop {
            now += RESTART_INTERVAL;
            match a.handle_timeout(now) {
                Ok(Some(_)) => resent += 1,
                Ok(None) => {}
                Err(NoAnswer) => break,
            }
        }
        assert_eq!(resent, MAX_CHALLENGES - 1);
    }

    #[test]
    fn a_decision_from_elsewhere_arrives_later() {
        let now = Instant::now();
        let mut a = Authenticator::new(Auth::MsChapV2, [7; 16]);
        let (_, ch) = a.start(now).unwrap();
        let resp = chap_response(&ch, "CORP\\bob", "whatever", [9; 16]).unwrap();
        let Some(Ok(Credentials::MsChapV2(r))) = a.handle_packet(PROTO_CHAP, &resp) else {
            panic!("no credentials")
        };
        assert_eq!((r.name.as_str(), r.user.as_str()), ("CORP\\bob", "bob"));
        assert_eq!((r.challenge, r.peer_challenge), ([7; 16], [9; 16]));
        // Pending: the peer's repeated Response is neither answered nor
        // handed out twice, and the challenge is no longer retransmitted.
        assert!(a.is_pending() && a.poll_timeout().is_none());
        assert!(a.handle_packet(PROTO_CHAP, &resp).is_none());
        assert!(a.repeat(PROTO_CHAP, &resp).is_none());
        // A server's answer (its proof, its keys) goes to the peer as is.
        let proof = format!("S={}", "AB".repeat(20));
        let ((_, reply), outcome) = a
            .decide(Verdict::Accept {
                proof: Some(proof.clone()),
                keys: Some(StartKeys {
                    send: [1; 16],
                    recv: [2; 16],
                }),
            })
            .unwrap();
        assert_eq!(reply[0], CHAP_SUCCESS);
        assert_eq!(&reply[4..], format!("{proof} M=Access granted").as_bytes());
        assert!(
            matches!(outcome, Outcome::Success { ref user, keys: Some(ref k) } if user == "bob" && k.send == [1; 16])
        );
        // Once decided, a repeated Response gets the same reply.
        assert_eq!(a.repeat(PROTO_CHAP, &resp).unwrap().1, reply);
        assert!(a.decide(Verdict::reject()).is_none());
    }

    #[test]
    fn an_mschapv2_acceptance_without_a_proof_fails_and_a_server_message_is_passed_on() {
        let now = Instant::now();
        for (verdict, text) in [
            (
                Verdict::Accept {
                    proof: None,
                    keys: None,
                },
                MSCHAP_FAILED,
            ),
            (
                Verdict::Reject {
                    message: Some("E=648 R=0 V=3".into()),
                },
                "E=648 R=0 V=3",
            ),
        ] {
            let mut a = Authenticator::new(Auth::MsChapV2, [7; 16]);
            let (_, ch) = a.start(now).unwrap();
            let resp = chap_response(&ch, "alice", "s3cret-pass", [9; 16]).unwrap();
            assert!(a.handle_packet(PROTO_CHAP, &resp).is_some());
            let ((_, reply), outcome) = a.decide(verdict).unwrap();
            assert_eq!(reply[0], CHAP_FAILURE);
            assert_eq!(&reply[4..], text.as_bytes());
            assert!(matches!(outcome, Outcome::Failure { .. }));
        }
    }
}
