//! The native protocol's messages and their byte layouts: TCP frames, the
//! TLV payloads inside them, and the data header. Parsing never panics.
use crate::codec::Reader;
use std::net::Ipv4Addr;
use std::time::Duration;
use zeroize::Zeroizing;

use super::{consts::*, crypto::Cipher};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WireError {
    #[error("truncated")]
    Truncated,
    #[error("malformed {0}")]
    Malformed(&'static str),
}

// ---- TLV ----------------------------------------------------------------

pub fn put_tlv(out: &mut Vec<u8>, t: u8, v: &[u8]) {
    debug_assert!(v.len() <= 255);
    out.push(t);
    out.push(v.len().min(255) as u8);
    out.extend_from_slice(&v[..v.len().min(255)]);
}

/// Iterates (type, value) pairs; a truncated TLV ends it with an error.
pub fn tlvs(mut b: &[u8]) -> impl Iterator<Item = Result<(u8, &[u8]), WireError>> {
    std::iter::from_fn(move || {
        if b.is_empty() {
            return None;
        }
        if b.len() < 2 || b.len() < 2 + b[1] as usize {
            b = &[];
            return Some(Err(WireError::Truncated));
        }
        let (t, l) = (b[0], b[1] as usize);
        let v = &b[2..2 + l];
        b = &b[2 + l..];
        Some(Ok((t, v)))
    })
}

fn ipv4(v: &[u8], what: &'static str) -> Result<Ipv4Addr, WireError> {
    <[u8; 4]>::try_from(v)
        .map(Ipv4Addr::from)
        .map_err(|_| WireError::Malformed(what))
}

fn prefix(v: &[u8], what: &'static str) -> Result<(Ipv4Addr, u8), WireError> {
    if v.len() != 5 || v[4] > 32 {
        return Err(WireError::Malformed(what));
    }
    Ok((ipv4(&v[..4], what)?, v[4]))
}

fn text(v: &[u8], max: usize, what: &'static str) -> Result<String, WireError> {
    if v.len() > max {
        return Err(WireError::Malformed(what));
    }
    String::from_utf8(v.to_vec()).map_err(|_| WireError::Malformed(what))
}

fn be_u16(v: &[u8], what: &'static str) -> Result<u16, WireError> {
    let mut r = Reader::new(v);
    r.u16()
        .filter(|_| r.remaining() == 0)
        .ok_or(WireError::Malformed(what))
}

fn be_u32(v: &[u8], what: &'static str) -> Result<u32, WireError> {
    let mut r = Reader::new(v);
    r.u32()
        .filter(|_| r.remaining() == 0)
        .ok_or(WireError::Malformed(what))
}

// ---- Frames on the TCP handshake connection ---------------------------------

/// Appends `u16 length || body`.
pub fn frame(body: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(2 + body.len());
    f.extend_from_slice(&(body.len() as u16).to_be_bytes());
    f.extend_from_slice(body);
    f
}

/// Takes one complete frame body off the front of `buf`, if there is one.
pub fn take_frame(buf: &mut Vec<u8>) -> Result<Option<Vec<u8>>, WireError> {
    if buf.len() < 2 {
        return Ok(None);
    }
    let len = u16::from_be_bytes([buf[0], buf[1]]) as usize;
    if len == 0 || len > MAX_FRAME {
        return Err(WireError::Malformed("frame length"));
    }
    if buf.len() < 2 + len {
        return Ok(None);
    }
    let body = buf[2..2 + len].to_vec();
    buf.drain(..2 + len);
    Ok(Some(body))
}

/// The plaintext start of CLIENT_INIT: type, magic, versions. It is also the
/// Noise prologue (after `PROLOGUE_LABEL`).
pub fn client_init_header() -> [u8; 7] {
    let mut h = [0u8; 7];
    h[0] = FRAME_CLIENT_INIT;
    h[1..5].copy_from_slice(&MAGIC);
    h[5] = VERSION_MIN;
    h[6] = VERSION_MAX;
    h
}

/// A plaintext ERROR frame body: code, then a UTF-8 message.
pub fn error_body(code: u8, msg: &str) -> Vec<u8> {
    let mut b = vec![FRAME_ERROR, code];
    b.extend_from_slice(&msg.as_bytes()[..msg.len().min(MAX_FRAME - 2)]);
    b
}

// ---- Handshake payloads ---------------------------------------------------

/// What the client asks for inside the encrypted AUTH frame. The password
/// is wiped when the request is dropped, and the type is not `Clone`.
#[derive(PartialEq, Eq)]
pub struct AuthRequest {
    pub user: String,
    pub password: Zeroizing<String>,
    /// The address it had before (reconnects keep their address if free).
    pub want_ip: Option<Ipv4Addr>,
}

impl std::fmt::Debug for AuthRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthRequest")
            .field("user", &self.user)
            .field("want_ip", &self.want_ip)
            .finish_non_exhaustive()
    }
}

impl AuthRequest {
    /// The plaintext of AUTH (wiped when dropped: it holds the password).
    pub fn encode(&self) -> Zeroizing<Vec<u8>> {
        let mut b = Zeroizing::new(Vec::with_capacity(
            8 + self.user.len() + self.password.len() + 6,
        ));
        put_tlv(&mut b, TLV_USER, self.user.as_bytes());
        put_tlv(&mut b, TLV_PASSWORD, self.password.as_bytes());
        if let Some(ip) = self.want_ip {
            put_tlv(&mut b, TLV_WANT_IP, &ip.octets());
        }
        b
    }

    pub fn decode(b: &[u8]) -> Result<AuthRequest, WireError> {
        let (mut user, mut password, mut want_ip) = (None, None, None);
        for t in tlvs(b) {
            match t? {
                (TLV_USER, v) => user = Some(text(v, MAX_USER, "user")?),
                (TLV_PASSWORD, v) => {
                    password = Some(Zeroizing::new(text(v, MAX_PASSWORD, "password")?))
                }
                (TLV_WANT_IP, v) => want_ip = Some(ipv4(v, "requested address")?),
                _ => {} // unknown TLVs are skipped: newer clients may add some
            }
        }
        Ok(AuthRequest {
            user: user.ok_or(WireError::Malformed("user missing"))?,
            password: password.ok_or(WireError::Malformed("password missing"))?,
            want_ip,
        })
    }
}

/// What the gateway grants in WELCOME.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Welcome {
    pub session_id: u32,
    pub address: Ipv4Addr,
    pub prefix_len: u8,
    pub gateway: Ipv4Addr,
    pub routes: Vec<(Ipv4Addr, u8)>,
    pub dns: Vec<Ipv4Addr>,
    pub mtu: u16,
    pub keepalive: Duration,
    pub rekey: Duration,
    pub udp_port: u16,
}

impl Welcome {
    pub fn encode(&self) -> Vec<u8> {
        let mut b = Vec::new();
        put_tlv(&mut b, TLV_SESSION_ID, &self.session_id.to_be_bytes());
        let mut a = self.address.octets().to_vec();
        a.push(self.prefix_len);
        put_tlv(&mut b, TLV_ADDRESS, &a);
        put_tlv(&mut b, TLV_GATEWAY, &self.gateway.octets());
        for (net, len) in &self.routes {
            let mut r = net.octets().to_vec();
            r.push(*len);
            put_tlv(&mut b, TLV_ROUTE, &r);
        }
        for d in &self.dns {
            put_tlv(&mut b, TLV_DNS, &d.octets());
        }
        put_tlv(&mut b, TLV_MTU, &self.mtu.to_be_bytes());
        let ka = self.keepalive.as_secs().min(u16::MAX as u64) as u16;
        put_tlv(&mut b, TLV_KEEPALIVE, &ka.to_be_bytes());
        let rk = self.rekey.as_secs().min(u32::MAX as u64) as u32;
        put_tlv(&mut b, TLV_REKEY, &rk.to_be_bytes());
        put_tlv(&mut b, TLV_UDP_PORT, &self.udp_port.to_be_bytes());
        b
    }

    pub fn decode(b: &[u8]) -> Result<Welcome, WireError> {
        let mut w = Welcome {
            session_id: 0,
            address: Ipv4Addr::UNSPECIFIED,
            prefix_len: 32,
            gateway: Ipv4Addr::UNSPECIFIED,
            routes: Vec::new(),
            dns: Vec::new(),
            mtu: DEFAULT_MTU,
            keepalive: DEFAULT_KEEPALIVE,
            rekey: DEFAULT_REKEY,
            udp_port: 0,
        };
        for t in tlvs(b) {
            match t? {
                (TLV_SESSION_ID, v) => w.session_id = be_u32(v, "session id")?,
                (TLV_ADDRESS, v) => (w.address, w.prefix_len) = prefix(v, "address")?,
                (TLV_GATEWAY, v) => w.gateway = ipv4(v, "gateway")?,
                (TLV_ROUTE, v) => w.routes.push(prefix(v, "route")?),
                (TLV_DNS, v) => w.dns.push(ipv4(v, "dns")?),
                (TLV_MTU, v) => w.mtu = be_u16(v, "mtu")?,
                (TLV_KEEPALIVE, v) => {
                    w.keepalive = Duration::from_secs(be_u16(v, "keepalive")?.max(1).into())
                }
                (TLV_REKEY, v) => w.rekey = Duration::from_secs(be_u32(v, "rekey")?.max(10).into()),
                (TLV_UDP_PORT, v) => w.udp_port = be_u16(v, "udp port")?,
                _ => {}
            }
        }
        if w.session_id == 0 || w.address.is_unspecified() || w.udp_port == 0 {
            return Err(WireError::Malformed(
                "welcome lacks session, address or port",
            ));
        }
        Ok(w)
    }
}

/// Why the gateway refused (REJECT) or ended (BYE) a session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    BadCredentials = 1,
    PoolExhausted = 2,
    TooManySessions = 3,
    Killed = 4,
    Shutdown = 5,
    Expired = 6,
    ServerError = 7,
    ClientExit = 8,
}

impl Reason {
    pub fn from_code(c: u8) -> Reason {
        use Reason::*;
        [
            BadCredentials,
            PoolExhausted,
            TooManySessions,
            Killed,
            Shutdown,
            Expired,
            ServerError,
            ClientExit,
        ]
        .into_iter()
        .find(|r| *r as u8 == c)
        .unwrap_or(ServerError)
    }

    pub fn describe(self) -> &'static str {
        match self {
            Reason::BadCredentials => "wrong user name or password",
            Reason::PoolExhausted => "no free address in the gateway's pool",
            Reason::TooManySessions => "the gateway has reached its session limit",
            Reason::Killed => "the session was ended by the gateway's administrator",
            Reason::Shutdown => "the gateway is shutting down",
            Reason::Expired => "the session expired",
            Reason::ServerError => "the gateway had an internal error",
            Reason::ClientExit => "the client disconnected",
        }
    }

    /// Whether a client should try again on its own.
    pub fn retry(self) -> bool {
        matches!(
            self,
            Reason::Shutdown | Reason::Expired | Reason::ServerError
        )
    }
}

/// The longest reason message, in bytes.
pub const MAX_REASON_MESSAGE: usize = 200;

/// `s` cut to at most `max` bytes at a character boundary.
fn clip(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// REJECT body (encrypted) and BYE body: reason TLV plus an optional message.
pub fn encode_reason(reason: Reason, msg: &str) -> Vec<u8> {
    let mut b = Vec::new();
    put_tlv(&mut b, TLV_REASON, &[reason as u8]);
    let msg = clip(msg, MAX_REASON_MESSAGE);
    if !msg.is_empty() {
        put_tlv(&mut b, TLV_MESSAGE, msg.as_bytes());
    }
    b
}

/// The reason and its message (not valid UTF-8: repaired; too long: cut).
pub fn decode_reason(b: &[u8]) -> Result<(Reason, String), WireError> {
    let (mut reason, mut msg) = (None, String::new());
    for t in tlvs(b) {
        match t? {
            (TLV_REASON, [c]) => reason = Some(Reason::from_code(*c)),
            (TLV_MESSAGE, v) => {
                msg = clip(&String::from_utf8_lossy(v), MAX_REASON_MESSAGE).to_string()
            }
            _ => {}
        }
    }
    Ok((reason.ok_or(WireError::Malformed("reason missing"))?, msg))
}

/// Ciphers offered (CLIENT_INIT payload) or chosen (SERVER_INIT payload).
pub fn encode_ciphers(tlv: u8, ciphers: &[Cipher]) -> Vec<u8> {
    let codes: Vec<u8> = ciphers.iter().map(|c| *c as u8).collect();
    let mut b = Vec::new();
    put_tlv(&mut b, tlv, &codes);
    b
}

/// The ciphers named, in order, each once (a repeated or unknown code adds
/// nothing, so the list stays as short as the cipher set).
pub fn decode_ciphers(b: &[u8], tlv: u8) -> Result<Vec<Cipher>, WireError> {
    let mut out = Vec::new();
    for t in tlvs(b) {
        let (t, v) = t?;
        if t == tlv {
            for c in v.iter().filter_map(|c| Cipher::from_code(*c)) {
                if !out.contains(&c) {
                    out.push(c);
                }
            }
        }
    }
    Ok(out)
}

// ---- Data channel ------------------------------------------------------------

/// The 16-byte header of every UDP datagram (authenticated as AEAD data).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DataHeader {
    pub key_id: u8,
    pub session_id: u32,
    pub counter: u64,
}

impl DataHeader {
    pub fn encode(&self) -> [u8; DATA_HEADER_LEN] {
        let mut h = [0u8; DATA_HEADER_LEN];
        h[0] = VERSION_MAX;
        h[1] = TYPE_DATA;
        h[2] = self.key_id;
        h[4..8].copy_from_slice(&self.session_id.to_be_bytes());
        h[8..16].copy_from_slice(&self.counter.to_be_bytes());
        h
    }

    /// Parses the header of a datagram that is long enough to hold a tag.
    pub fn decode(d: &[u8]) -> Result<DataHeader, WireError> {
        if d.len() < OVERHEAD {
            return Err(WireError::Truncated);
        }
        let mut r = Reader::new(d);
        let bad = WireError::Malformed("data header");
        let [version, kind, key_id, zero] = r.array().ok_or(WireError::Truncated)?;
        if !(VERSION_MIN..=VERSION_MAX).contains(&version) || kind != TYPE_DATA || zero != 0 {
            return Err(bad);
        }
        Ok(DataHeader {
            key_id,
            session_id: r.u32().ok_or(WireError::Truncated)?,
            counter: r.u64().ok_or(WireError::Truncated)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by the `native_messages` fuzz target: a long message, or one
    /// cut inside a character, did not come back as it was decoded.
    #[test]
    fn reason_messages_are_cut_at_a_character_boundary() {
        let long = "é".repeat(150); // 300 bytes
        let (_, m) = decode_reason(&encode_reason(Reason::ServerError, &long)).unwrap();
        assert_eq!(m.len(), MAX_REASON_MESSAGE);
        assert!(long.starts_with(&m));
        let mut b = Vec::new();
        put_tlv(&mut b, TLV_REASON, &[Reason::ServerError as u8]);
        put_tlv(&mut b, TLV_MESSAGE, &[0xff; 250]);
        let (r, m) = decode_reason(&b).unwrap();
        assert!(m.len() <= MAX_REASON_MESSAGE);
        assert_eq!(decode_reason(&encode_reason(r, &m)).unwrap(), (r, m));
    }

    /// Repeated cipher codes (or many TLVs) must not make a list longer
    /// than one TLV can carry back (the fuzz target's round trip).
    #[test]
    fn cipher_lists_name_each_cipher_once() {
        let mut b = Vec::new();
        for _ in 0..200 {
            put_tlv(&mut b, 9, &[1, 2, 1, 2, 1]);
        }
        let c = decode_ciphers(&b, 9).unwrap();
        assert!(c.len() <= Cipher::ALL.len());
        assert_eq!(decode_ciphers(&encode_ciphers(9, &c), 9).unwrap(), c);
    }

    #[test]
    fn welcome_round_trips_and_rejects_garbage() {
        let w = Welcome {
            session_id: 0xdead_beef,
            address: Ipv4Addr::new(10, 99, 0, 2),
            prefix_len: 24,
            gateway: Ipv4Addr::new(10, 99, 0, 1),
            routes: vec![(Ipv4Addr::new(172, 16, 10, 0), 24)],
            dns: vec![Ipv4Addr::new(10, 99, 0, 1)],
            mtu: 1420,
            keepalive: Duration::from_secs(10),
            rekey: Duration::from_secs(600),
            udp_port: 7443,
        };
        let b = w.encode();
        assert_eq!(Welcome::decode(&b).unwrap(), w);
        for cut in 0..b.len() {
            let _ = Welcome::decode(&b[..cut]); // never panics
        }
        assert!(Welcome::decode(&[TLV_ADDRESS, 5, 1, 2, 3, 4, 33]).is_err());
    }

    #[test]
    fn auth_request_debug_hides_the_password() {
        let a = AuthRequest {
            user: "alice".into(),
            password: Zeroizing::new("hunter2-secret".into()),
            want_ip: None,
        };
        assert_eq!(AuthRequest::decode(&a.encode()).unwrap(), a);
        assert!(!format!("{a:?}").contains("hunter2"));
    }

    #[test]
    fn frames_split_anywhere_reassemble() {
        let f = [frame(b"\x10hello"), frame(b"\x11world")].concat();
        for split in 0..f.len() {
            let mut buf = f[..split].to_vec();
            let mut got = Vec::new();
            while let Some(b) = take_frame(&mut buf).unwrap() {
                got.push(b);
            }
            buf.extend_from_slice(&f[split..]);
            while let Some(b) = take_frame(&mut buf).unwrap() {
                got.push(b);
            }
            assert_eq!(got, vec![b"\x10hello".to_vec(), b"\x11world".to_vec()]);
        }
        assert!(
            take_frame(&mut vec![0x10, 0x00]).is_err(),
            "oversized length"
        );
    }
}
