//! The authenticator's side of PAP (RFC 1334) and MS-CHAPv2 (RFC 2759).
//! The caller looks up the user's NT password hash (the gateway stores no
//! password, so CHAP-MD5, which needs one, is not offered); secrets are
//! compared in constant time and never kept after the decision.
use std::time::Instant;

use subtle::ConstantTimeEq as _;

use super::{
    consts::*,
    fsm::packet,
    lcp::Auth,
    mschap::{self, NtHash},
};

/// Looks a user's NT password hash up (None: no such user, or one that may
/// not log in over PPP).
pub type Lookup<'a> = &'a dyn Fn(&str) -> Option<NtHash>;

/// Our name in CHAP challenges.
pub const NAME: &[u8] = b"vpn-ctl";
const MAX_CHALLENGES: u32 = 10;

#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Authenticated; MS-CHAPv2 also yields the MPPE master key.
    Success {
        user: String,
        mppe_master: Option<mschap::MasterKey>,
    },
    /// Wrong name or password (the user name, for the log).
    Failure { user: String },
}

/// The peer answered none of our challenges.
#[derive(Debug, PartialEq, Eq)]
pub struct NoAnswer;

pub struct Authenticator {
    method: Auth,
    challenge: [u8; 16],
    id: u8,
    sent: u32,
    deadline: Option<Instant>,
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
            done: false,
            last_reply: None,
        }
    }

    pub fn method(&self) -> Auth {
        self.method
    }

    /// The challenge to send now (CHAP), or None (PAP: the peer speaks first).
    pub fn start(&mut self, now: Instant) -> Option<(u16, Vec<u8>)> {
        if self.method == Auth::Pap || self.done {
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

    /// Handles a PAP or CHAP packet; `lookup` finds the user. Returns the
    /// reply to send and the outcome once decided (once; see `repeat`).
    pub fn handle_packet(
        &mut self,
        proto: u16,
        p: &[u8],
        lookup: Lookup,
    ) -> Option<((u16, Vec<u8>), Outcome)> {
        if self.done {
            return None;
        }
        let (code, id, data) = super::fsm::parse(p)?;
        let result = match (self.method, proto, code) {
            (Auth::Pap, PROTO_PAP, PAP_REQ) => self.pap(id, data, lookup),
            (Auth::MsChapV2, PROTO_CHAP, CHAP_RESPONSE) if id == self.id => {
                self.mschapv2(data, lookup)
            }
            _ => None,
        };
        if let Some((reply, _)) = &result {
            self.done = true;
            self.deadline = None;
            self.last_reply = Some(reply.clone());
        }
        result
    }

    fn pap(&self, id: u8, data: &[u8], lookup: Lookup) -> Option<((u16, Vec<u8>), Outcome)> {
        let ulen = *data.first()? as usize;
        let user = data.get(1..1 + ulen)?;
        let plen = *data.get(1 + ulen)? as usize;
        let given = data.get(2 + ulen..2 + ulen + plen)?;
        let user = String::from_utf8_lossy(user).into_owned();
        let given = std::str::from_utf8(given).ok().map(NtHash::of_password);
        let ok = match (lookup(&user), given) {
            (Some(stored), Some(given)) => stored.matches(&given),
            _ => false,
        };
        let (code, msg) = if ok {
            (PAP_ACK, "welcome")
        } else {
            (PAP_NAK, "denied")
        };
        let mut reply = vec![msg.len() as u8];
        reply.extend_from_slice(msg.as_bytes());
        let outcome = if ok {
            Outcome::Success {
                user,
                mppe_master: None,
            }
        } else {
            Outcome::Failure { user }
        };
        Some(((PROTO_PAP, packet(code, id, &reply)), outcome))
    }

    fn mschapv2(&self, data: &[u8], lookup: Lookup) -> Option<((u16, Vec<u8>), Outcome)> {
        let vlen = *data.first()? as usize;
        let value = data.get(1..1 + vlen)?;
        let name = String::from_utf8_lossy(data.get(1 + vlen..)?).into_owned();
        // MS-CHAPv2 names may carry a Windows domain: DOMAIN\user.
        let user = name.rsplit('\\').next().unwrap_or(&name).to_string();
        let fail = |user: String, msg: &str| {
            let reply = packet(CHAP_FAILURE, self.id, msg.as_bytes());
            Some(((PROTO_CHAP, reply), Outcome::Failure { user }))
        };
        if vlen != 49 {
            return fail(user, "E=691 R=0 V=3 M=malformed response");
        }
        let peer: [u8; 16] = value[..16].try_into().ok()?;
        let nt: [u8; 24] = value[24..48].try_into().ok()?;
        let Some(hash) = lookup(&user) else {
            return fail(user, "E=691 R=0 V=3 M=Authentication failure");
        };
        // The challenge hash covers the user name without its domain
        // (RFC 2759 §8.2), as Windows and pppd compute it.
        let expect = mschap::nt_response(&self.challenge, &peer, &user, &hash);
        if !ct_eq(&expect, &nt) {
            return fail(user, "E=691 R=0 V=3 M=Authentication failure");
        }
        let proof = mschap::authenticator_response(&hash, &nt, &peer, &self.challenge, &user);
        let msg = format!("{proof} M=Access granted");
        let reply = packet(CHAP_SUCCESS, self.id, msg.as_bytes());
        Some((
            (PROTO_CHAP, reply),
            Outcome::Success {
                user,
                mppe_master: Some(mschap::master_key(&hash, &nt)),
            },
        ))
    }
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

    #[test]
    fn mschapv2_with_a_windows_domain_in_the_name() {
        let now = Instant::now();
        let mut a = Authenticator::new(Auth::MsChapV2, [7; 16]);
        let (_, ch) = a.start(now).unwrap();
        let resp = chap_response(&ch, "CORP\\alice", "s3cret-pass", [9; 16]).unwrap();
        let ((_, reply), outcome) = a.handle_packet(PROTO_CHAP, &resp, &users).unwrap();
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
            let ((_, reply), outcome) = a.handle_packet(PROTO_CHAP, &resp, &users).unwrap();
            match outcome {
                Outcome::Success { user, mppe_master } => {
                    assert!(ok);
                    assert_eq!(user, "alice");
                    assert!(mppe_master.is_some());
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
            let ((_, reply), out) = a.handle_packet(PROTO_PAP, &req, &users).unwrap();
            assert_eq!(reply[0] == PAP_ACK, ack, "{req:?}");
            assert_eq!(matches!(out, Outcome::Success { .. }), ack);
        }

        let mut a = Authenticator::new(Auth::MsChapV2, [7; 16]);
        let (_, ch) = a.start(now).unwrap();
        let resp = chap_response(&ch, "CORP\\alice", "s3cret-pass", [9; 16]).unwrap();
        assert!(matches!(
            a.handle_packet(PROTO_CHAP, &resp, &users).unwrap().1,
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
            assert!(a
                .handle_packet(PROTO_CHAP, bad, &users)
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
}
