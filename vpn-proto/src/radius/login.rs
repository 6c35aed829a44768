//! Logins through RADIUS: what the peer presented becomes an
//! Access-Request (PAP: User-Password; MS-CHAPv2: RFC 2548's
//! MS-CHAP-Challenge and MS-CHAP2-Response), and the answer becomes the
//! PPP verdict (the server's MS-CHAP2-Success proof and MPPE keys) and
//! what the server grants the session.
use std::net::Ipv4Addr;

use zeroize::Zeroizing;

use super::{client::Request, consts::*, packet::Packet};
use crate::ppp::{
    auth::{Credentials, Verdict},
    mschap::StartKeys,
};

/// The attributes every Access- and Accounting-Request of a session
/// carries: who we are and who the client is.
#[derive(Clone, Debug)]
pub struct SessionInfo {
    pub nas_identifier: String,
    pub nas_ip: Option<Ipv4Addr>,
    pub user: String,
    /// The client's outer address.
    pub calling_station: String,
    pub acct_session_id: String,
    /// PPP (PPTP, L2TP) or not (native).
    pub framed_ppp: bool,
}

impl SessionInfo {
    pub fn add_to(&self, p: &mut Packet) {
        p.add(USER_NAME, self.user.as_bytes())
            .add(NAS_IDENTIFIER, self.nas_identifier.as_bytes());
        if let Some(ip) = self.nas_ip {
            p.add_ip(NAS_IP_ADDRESS, ip);
        }
        p.add_u32(NAS_PORT_TYPE, NAS_PORT_VIRTUAL)
            .add_u32(SERVICE_TYPE, SERVICE_FRAMED)
            .add(CALLING_STATION_ID, self.calling_station.as_bytes())
            .add(ACCT_SESSION_ID, self.acct_session_id.as_bytes());
        if self.framed_ppp {
            p.add_u32(FRAMED_PROTOCOL, FRAMED_PPP);
        }
    }
}

/// What an Access-Accept grants beyond the login.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Grant {
    pub framed_ip: Option<Ipv4Addr>,
    pub session_timeout: Option<u32>,
    pub idle_timeout: Option<u32>,
    pub interim_interval: Option<u32>,
    /// Class attributes, echoed in accounting (RFC 2865 §5.25).
    pub class: Vec<Vec<u8>>,
    pub reply_message: Option<String>,
}

impl Grant {
    pub fn of(p: &Packet) -> Grant {
        // 255.255.255.254 and .255 mean "NAS chooses" / "user chooses".
        let framed_ip = p
            .get_ip(FRAMED_IP_ADDRESS)
            .filter(|ip| ip.octets()[..3] != [255, 255, 255]);
        Grant {
            framed_ip,
            session_timeout: p.get_u32(SESSION_TIMEOUT).filter(|&t| t > 0),
            idle_timeout: p.get_u32(28).filter(|&t| t > 0),
            interim_interval: p.get_u32(ACCT_INTERIM_INTERVAL).filter(|&t| t > 0),
            class: p.get_all(CLASS).map(<[u8]>::to_vec).collect(),
            reply_message: p.get_str(REPLY_MESSAGE),
        }
    }
}

/// The Access-Request for PPP credentials.
pub fn ppp_request(creds: &Credentials, info: &SessionInfo) -> Request {
    let mut p = Packet::new(ACCESS_REQUEST, 0);
    info.add_to(&mut p);
    let password = match creds {
        Credentials::Pap { password, .. } => Some(password.clone()),
        Credentials::ChapMd5 {
            ident,
            challenge,
            response,
            ..
        } => {
            p.add(CHAP_PASSWORD, &[&[*ident][..], response].concat())
                .add(CHAP_CHALLENGE, challenge);
            None
        }
        Credentials::MsChapV2(r) => {
            p.add_vendor(VENDOR_MICROSOFT, MS_CHAP_CHALLENGE, &r.challenge);
            let mut v = vec![r.ident, r.flags];
            v.extend_from_slice(&r.peer_challenge);
            v.extend_from_slice(&[0; 8]);
            v.extend_from_slice(&r.nt_response);
            p.add_vendor(VENDOR_MICROSOFT, MS_CHAP2_RESPONSE, &v);
            None
        }
    };
    Request {
        packet: p,
        password,
    }
}

/// The Access-Request for a password login (the native protocol).
pub fn password_request(password: &[u8], info: &SessionInfo) -> Request {
    let mut p = Packet::new(ACCESS_REQUEST, 0);
    info.add_to(&mut p);
    Request {
        packet: p,
        password: Some(Zeroizing::new(password.to_vec())),
    }
}

/// The PPP verdict from the server's answer (`None`: no server answered,
/// refused like a wrong password). MS-CHAPv2 needs the server's proof, and
/// MPPE its keys, revealed with the request's authenticator and `secret`.
pub fn ppp_verdict(
    creds: &Credentials,
    answer: Option<(&Packet, &[u8; 16])>,
    secret: &[u8],
) -> (Verdict, Option<Grant>) {
    let Some((p, request_auth)) = answer.filter(|(p, _)| p.code == ACCESS_ACCEPT) else {
        // MS-CHAP-Error: ident, then "E=691 R=0 ..."; passed on to the peer.
        let message = answer
            .and_then(|(p, _)| p.get_vendor(VENDOR_MICROSOFT, MS_CHAP_ERROR))
            .and_then(|e| e.get(1..))
            .map(|e| String::from_utf8_lossy(e).into_owned())
            .filter(|e| e.starts_with("E="));
        return (Verdict::Reject { message }, None);
    };
    let grant = Grant::of(p);
    match creds {
        Credentials::Pap { .. } | Credentials::ChapMd5 { .. } => (
            Verdict::Accept {
                proof: None,
                keys: None,
            },
            Some(grant),
        ),
        Credentials::MsChapV2(_) => {
            let proof = p
                .get_vendor(VENDOR_MICROSOFT, MS_CHAP2_SUCCESS)
                .and_then(|s| s.get(1..))
                .map(|s| String::from_utf8_lossy(s).into_owned())
                .filter(|s| s.len() == 42 && s.starts_with("S="));
            let key = |kind| {
                let v = p.get_vendor(VENDOR_MICROSOFT, kind)?;
                let k = super::packet::reveal_mppe_key(v, request_auth, secret)?;
                <[u8; 16]>::try_from(&k[..]).ok()
            };
            let keys = match (key(MS_MPPE_SEND_KEY), key(MS_MPPE_RECV_KEY)) {
                (Some(send), Some(recv)) => Some(StartKeys { send, recv }),
                _ => None,
            };
            (Verdict::Accept { proof, keys }, Some(grant))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        ppp::{
            auth::{chap_response, Authenticator},
            lcp::Auth,
            mschap::{self, NtHash},
        },
        radius::packet,
    };

    const SECRET: &[u8] = b"testing123";

    fn info() -> SessionInfo {
        SessionInfo {
            nas_identifier: "gw".into(),
            nas_ip: None,
            user: "alice".into(),
            calling_station: "192.0.2.7".into(),
            acct_session_id: "S1".into(),
            framed_ppp: true,
        }
    }

    /// A RADIUS server's MS-CHAPv2 check (as FreeRADIUS's mschap module
    /// does it), from the request's attributes alone.
    fn server_accept(req: &[u8], password: &str) -> Vec<u8> {
        let q = Packet::parse(req).unwrap();
        let challenge: [u8; 16] = q
            .get_vendor(VENDOR_MICROSOFT, MS_CHAP_CHALLENGE)
            .unwrap()
            .try_into()
            .unwrap();
        let r = q.get_vendor(VENDOR_MICROSOFT, MS_CHAP2_RESPONSE).unwrap();
        let peer: [u8; 16] = r[2..18].try_into().unwrap();
        let nt: [u8; 24] = r[26..50].try_into().unwrap();
        let user = q.get_str(USER_NAME).unwrap();
        let hash = NtHash::of_password(password);
        assert_eq!(mschap::nt_response(&challenge, &peer, &user, &hash), nt);
        let proof = mschap::authenticator_response(&hash, &nt, &peer, &challenge, &user);
        let keys = StartKeys::of_master(&mschap::master_key(&hash, &nt));
        let mut a = Packet::new(ACCESS_ACCEPT, q.id);
        a.add_vendor(
            VENDOR_MICROSOFT,
            MS_CHAP2_SUCCESS,
            &[&[r[0]], proof.as_bytes()].concat(),
        )
        .add_vendor(
            VENDOR_MICROSOFT,
            MS_MPPE_SEND_KEY,
            &packet::hide_mppe_key(&keys.send, [1, 2], &q.authenticator, SECRET),
        )
        .add_vendor(
            VENDOR_MICROSOFT,
            MS_MPPE_RECV_KEY,
            &packet::hide_mppe_key(&keys.recv, [3, 4], &q.authenticator, SECRET),
        )
        .add_ip(FRAMED_IP_ADDRESS, Ipv4Addr::new(10, 9, 0, 77))
        .add_u32(SESSION_TIMEOUT, 3600)
        .add(CLASS, b"gold");
        let b = packet::encode_response(&a, &q.authenticator, SECRET, true);
        crate::fuzz_seed::save("radius", &b);
        b
    }

    #[test]
    fn mschapv2_through_a_server_gives_the_same_proof_and_keys_as_a_local_check() {
        let now = std::time::Instant::now();
        let mut a = Authenticator::new(Auth::MsChapV2, [7; 16]);
        let (_, ch) = a.start(now).unwrap();
        let resp = chap_response(&ch, "alice", "pw-alice-1", [9; 16]).unwrap();
        let creds = a.handle_packet(0xc223, &resp).unwrap().unwrap();
        let req = ppp_request(&creds, &info());
        assert!(req.password.is_none());
        let auth = [5u8; 16];
        let bytes = packet::encode_access_request(&req.packet, auth, None, SECRET);
        let answer = server_accept(&bytes, "pw-alice-1");
        let (p, _) = packet::verify_response(&answer, &auth, SECRET).unwrap();
        let (verdict, grant) = ppp_verdict(&creds, Some((&p, &auth)), SECRET);
        let local = creds.check(Some(&NtHash::of_password("pw-alice-1")));
        match (verdict, local) {
            (
                Verdict::Accept {
                    proof: Some(p1),
                    keys: Some(k1),
                },
                Verdict::Accept {
                    proof: Some(p2),
                    keys: Some(k2),
                },
            ) => {
                assert_eq!(p1, p2);
                assert_eq!((k1.send, k1.recv), (k2.send, k2.recv));
            }
            other => panic!("{other:?}"),
        }
        let grant = grant.unwrap();
        assert_eq!(grant.framed_ip, Some(Ipv4Addr::new(10, 9, 0, 77)));
        assert_eq!(grant.session_timeout, Some(3600));
        assert_eq!(grant.class, vec![b"gold".to_vec()]);
    }

    #[test]
    fn rejections_and_silence_are_refusals_with_the_servers_message() {
        let creds = Credentials::Pap {
            user: "alice".into(),
            password: Zeroizing::new(b"x".to_vec()),
        };
        let mut rej = Packet::new(ACCESS_REJECT, 1);
        rej.add_vendor(VENDOR_MICROSOFT, MS_CHAP_ERROR, b"\x01E=691 R=0 V=3");
        let (v, g) = ppp_verdict(&creds, Some((&rej, &[0; 16])), SECRET);
        assert!(matches!(v, Verdict::Reject { message: Some(ref m) } if m == "E=691 R=0 V=3"));
        assert!(g.is_none());
        let (v, _) = ppp_verdict(&creds, None, SECRET);
        assert!(matches!(v, Verdict::Reject { message: None }));
        // PAP: the password travels hidden, not in the clear.
        let req = ppp_request(&creds, &info());
        assert_eq!(req.password.as_deref().map(|v| &v[..]), Some(&b"x"[..]));
        let b = packet::encode_access_request(&req.packet, [1; 16], Some(b"x"), SECRET);
        assert!(
            !b.windows(2).any(|w| w == b"\x02\x03"),
            "no clear 1-byte password attribute"
        );
    }

    #[test]
    fn chap_md5_goes_to_the_server_as_chap_password_and_challenge() {
        let now = std::time::Instant::now();
        let mut a = Authenticator::new(Auth::ChapMd5, [4; 16]);
        let (_, ch) = a.start(now).unwrap();
        // RFC 1994: MD5(ident, secret, challenge).
        let id = ch[1];
        let resp: [u8; 16] = {
            use md5::{Digest as _, Md5};
            Md5::new()
                .chain_update([id])
                .chain_update(b"pw")
                .chain_update([4u8; 16])
                .finalize()
                .into()
        };
        let mut data = vec![16];
        data.extend_from_slice(&resp);
        data.extend_from_slice(b"alice");
        let pkt = crate::ppp::fsm::packet(crate::ppp::consts::CHAP_RESPONSE, id, &data);
        let creds = a.handle_packet(0xc223, &pkt).unwrap().unwrap();
        assert_eq!(creds.user(), "alice");
        // No local decision without the clear password.
        assert!(matches!(
            creds.check(Some(&NtHash::of_password("pw"))),
            Verdict::Reject { .. }
        ));
        let req = ppp_request(&creds, &info());
        assert!(req.password.is_none());
        let p = &req.packet;
        assert_eq!(
            p.get(CHAP_PASSWORD).unwrap(),
            &[&[id][..], &resp].concat()[..]
        );
        assert_eq!(p.get(CHAP_CHALLENGE), Some(&[4u8; 16][..]));
    }
}
