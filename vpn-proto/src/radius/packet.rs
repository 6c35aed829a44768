//! RADIUS packets: the wire format (RFC 2865 §3), attributes, and the
//! shared-secret arithmetic: request and response authenticators, the
//! Message-Authenticator (RFC 3579 §3.2), User-Password hiding (RFC 2865
//! §5.2) and the salted MPPE keys (RFC 2548 §2.4.2).
use std::net::Ipv4Addr;

use hmac::{Hmac, Mac as _};
use md5::{Digest as _, Md5};
use subtle::ConstantTimeEq as _;
use zeroize::Zeroizing;

use super::consts::*;

const HEADER: usize = 20;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attr {
    pub kind: u8,
    pub value: Vec<u8>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Packet {
    pub code: u8,
    pub id: u8,
    pub authenticator: [u8; 16],
    pub attrs: Vec<Attr>,
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("malformed packet")]
    Malformed,
    #[error("the authenticator does not match (wrong shared secret?)")]
    BadAuthenticator,
    #[error("the Message-Authenticator does not match (wrong shared secret?)")]
    BadMessageAuthenticator,
    #[error("no Message-Authenticator")]
    NoMessageAuthenticator,
}

impl Packet {
    pub fn new(code: u8, id: u8) -> Packet {
        Packet {
            code,
            id,
            authenticator: [0; 16],
            attrs: Vec::new(),
        }
    }

    /// Parses the framing only (lengths); authenticators are checked by
    /// the `verify_*` functions.
    pub fn parse(b: &[u8]) -> Result<Packet, Error> {
        if b.len() < HEADER {
            return Err(Error::Malformed);
        }
        let len = usize::from(u16::from_be_bytes([b[2], b[3]]));
        // Octets past Length are padding (RFC 2865 §3); fewer is malformed.
        if !(HEADER..=MAX_PACKET).contains(&len) || len > b.len() {
            return Err(Error::Malformed);
        }
        let mut attrs = Vec::new();
        let mut at = HEADER;
        while at < len {
            let kind = b[at];
            let alen = usize::from(*b.get(at + 1).ok_or(Error::Malformed)?);
            if alen < 2 || at + alen > len {
                return Err(Error::Malformed);
            }
            attrs.push(Attr {
                kind,
                value: b[at + 2..at + alen].to_vec(),
            });
            at += alen;
        }
        Ok(Packet {
            code: b[0],
            id: b[1],
            authenticator: b[4..20].try_into().expect("16 bytes"),
            attrs,
        })
    }

    /// The bytes, with the authenticator field as it is.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(256);
        out.extend_from_slice(&[self.code, self.id, 0, 0]);
        out.extend_from_slice(&self.authenticator);
        for a in &self.attrs {
            out.push(a.kind);
            out.push((a.value.len() + 2) as u8);
            out.extend_from_slice(&a.value);
        }
        let len = out.len() as u16;
        out[2..4].copy_from_slice(&len.to_be_bytes());
        out
    }

    // Building. Values longer than an attribute holds are cut at 253 bytes.
    pub fn add(&mut self, kind: u8, value: &[u8]) -> &mut Packet {
        self.attrs.push(Attr {
            kind,
            value: value[..value.len().min(253)].to_vec(),
        });
        self
    }

    pub fn add_u32(&mut self, kind: u8, v: u32) -> &mut Packet {
        self.add(kind, &v.to_be_bytes())
    }

    pub fn add_ip(&mut self, kind: u8, ip: Ipv4Addr) -> &mut Packet {
        self.add(kind, &ip.octets())
    }

    /// A Vendor-Specific attribute with one sub-attribute (RFC 2865 §5.26).
    pub fn add_vendor(&mut self, vendor: u32, kind: u8, value: &[u8]) -> &mut Packet {
        let mut v = vendor.to_be_bytes().to_vec();
        v.push(kind);
        v.push((value.len() + 2) as u8);
        v.extend_from_slice(value);
        self.add(VENDOR_SPECIFIC, &v)
    }

    // Reading.
    pub fn get(&self, kind: u8) -> Option<&[u8]> {
        self.attrs
            .iter()
            .find(|a| a.kind == kind)
            .map(|a| &a.value[..])
    }

    pub fn get_all(&self, kind: u8) -> impl Iterator<Item = &[u8]> {
        self.attrs
            .iter()
            .filter(move |a| a.kind == kind)
            .map(|a| &a.value[..])
    }

    pub fn get_u32(&self, kind: u8) -> Option<u32> {
        Some(u32::from_be_bytes(self.get(kind)?.try_into().ok()?))
    }

    pub fn get_ip(&self, kind: u8) -> Option<Ipv4Addr> {
        let b: [u8; 4] = self.get(kind)?.try_into().ok()?;
        Some(Ipv4Addr::from(b))
    }

    pub fn get_str(&self, kind: u8) -> Option<String> {
        self.get(kind)
            .map(|b| String::from_utf8_lossy(b).into_owned())
    }

    /// The first sub-attribute `kind` of `vendor`'s Vendor-Specific attributes.
    pub fn get_vendor(&self, vendor: u32, kind: u8) -> Option<&[u8]> {
        self.get_all(VENDOR_SPECIFIC).find_map(|v| {
            if v.len() < 6 || v[..4] != vendor.to_be_bytes() {
                return None;
            }
            let mut sub = &v[4..];
            while sub.len() >= 2 {
                let len = usize::from(sub[1]);
                if len < 2 || len > sub.len() {
                    return None;
                }
                if sub[0] == kind {
                    return Some(&sub[2..len]);
                }
                sub = &sub[len..];
            }
            None
        })
    }
}

fn md5(parts: &[&[u8]]) -> [u8; 16] {
    let mut h = Md5::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}

fn hmac_md5(secret: &[u8], data: &[u8]) -> [u8; 16] {
    let mut m = <Hmac<Md5>>::new_from_slice(secret).expect("HMAC takes any key");
    m.update(data);
    m.finalize().into_bytes().into()
}

fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

/// Fills in the Message-Authenticator (present in `bytes`, zeroed): HMAC-MD5
/// over the packet with the authenticator field as it will be sent.
fn sign_message_authenticator(bytes: &mut [u8], secret: &[u8]) {
    if let Some(at) = message_authenticator_at(bytes) {
        let mac = hmac_md5(secret, bytes);
        bytes[at..at + 16].copy_from_slice(&mac);
    }
}

/// Where the Message-Authenticator's value lies in `bytes`, if present.
fn message_authenticator_at(bytes: &[u8]) -> Option<usize> {
    let len = usize::from(u16::from_be_bytes([bytes[2], bytes[3]])).min(bytes.len());
    let mut at = HEADER;
    while at + 2 <= len {
        let alen = usize::from(bytes[at + 1]);
        if alen < 2 {
            return None;
        }
        if bytes[at] == MESSAGE_AUTHENTICATOR && alen == 18 {
            return Some(at + 2);
        }
        at += alen;
    }
    None
}

/// Checks the Message-Authenticator of received `bytes` whose authenticator
/// field must read `auth` for the HMAC (a request's own, or for a response
/// the request's). `Ok(false)`: none present.
fn check_message_authenticator(
    bytes: &[u8],
    auth: &[u8; 16],
    secret: &[u8],
) -> Result<bool, Error> {
    let Some(at) = message_authenticator_at(bytes) else {
        return Ok(false);
    };
    let len = usize::from(u16::from_be_bytes([bytes[2], bytes[3]]));
    let mut copy = bytes[..len].to_vec();
    copy[4..20].copy_from_slice(auth);
    let given: [u8; 16] = copy[at..at + 16].try_into().expect("16 bytes");
    copy[at..at + 16].fill(0);
    if ct_eq(&hmac_md5(secret, &copy), &given) {
        Ok(true)
    } else {
        Err(Error::BadMessageAuthenticator)
    }
}

/// An Access-Request: `authenticator` is 16 fresh random bytes; a
/// Message-Authenticator goes first (RFC 3579, and the BlastRADIUS
/// advice), the User-Password, if any, is hidden.
pub fn encode_access_request(
    p: &Packet,
    authenticator: [u8; 16],
    password: Option<&[u8]>,
    secret: &[u8],
) -> Vec<u8> {
    let mut q = Packet {
        authenticator,
        attrs: vec![Attr {
            kind: MESSAGE_AUTHENTICATOR,
            value: vec![0; 16],
        }],
        ..p.clone()
    };
    if let Some(pw) = password {
        q.attrs.push(Attr {
            kind: USER_PASSWORD,
            value: hide_password(pw, &authenticator, secret),
        });
    }
    q.attrs.extend(
        p.attrs
            .iter()
            .filter(|a| a.kind != MESSAGE_AUTHENTICATOR)
            .cloned(),
    );
    let mut b = q.to_bytes();
    sign_message_authenticator(&mut b, secret);
    b
}

/// A Status-Server probe (RFC 5997) to a server's authentication port:
/// answered with an Access-Accept by a server that knows our secret (a
/// server drops what it cannot verify, so silence also means a wrong one).
pub fn encode_status_server(
    id: u8,
    authenticator: [u8; 16],
    nas_identifier: &str,
    secret: &[u8],
) -> Vec<u8> {
    let mut p = Packet::new(STATUS_SERVER, id);
    p.add(NAS_IDENTIFIER, nas_identifier.as_bytes());
    encode_access_request(&p, authenticator, None, secret)
}

/// Accounting-Request, Disconnect-Request, CoA-Request: the authenticator
/// is MD5 over the packet with a zero authenticator, plus the secret.
pub fn encode_signed_request(p: &Packet, secret: &[u8]) -> Vec<u8> {
    let mut b = Packet {
        authenticator: [0; 16],
        ..p.clone()
    }
    .to_bytes();
    let auth = md5(&[&b, secret]);
    b[4..20].copy_from_slice(&auth);
    b
}

/// Checks the authenticator of an Accounting-, Disconnect- or CoA-Request
/// (and its Message-Authenticator, if present).
pub fn verify_signed_request(bytes: &[u8], secret: &[u8]) -> Result<Packet, Error> {
    let p = Packet::parse(bytes)?;
    let len = usize::from(u16::from_be_bytes([bytes[2], bytes[3]]));
    let mut copy = bytes[..len].to_vec();
    copy[4..20].fill(0);
    if !ct_eq(&md5(&[&copy, secret]), &p.authenticator) {
        return Err(Error::BadAuthenticator);
    }
    check_message_authenticator(bytes, &[0; 16], secret)?;
    Ok(p)
}

/// A response (Access-Accept, Accounting-Response, Disconnect-ACK, ...) to
/// the request whose authenticator was `request_auth`. With
/// `message_authenticator` one is added and signed.
pub fn encode_response(
    p: &Packet,
    request_auth: &[u8; 16],
    secret: &[u8],
    message_authenticator: bool,
) -> Vec<u8> {
    let mut q = Packet {
        authenticator: *request_auth,
        ..p.clone()
    };
    q.attrs.retain(|a| a.kind != MESSAGE_AUTHENTICATOR);
    if message_authenticator {
        q.attrs.insert(
            0,
            Attr {
                kind: MESSAGE_AUTHENTICATOR,
                value: vec![0; 16],
            },
        );
    }
    let mut b = q.to_bytes();
    sign_message_authenticator(&mut b, secret);
    let auth = md5(&[&b, secret]);
    b[4..20].copy_from_slice(&auth);
    b
}

/// Checks a response against its request's authenticator. Returns the
/// packet and whether it carried a (valid) Message-Authenticator.
pub fn verify_response(
    bytes: &[u8],
    request_auth: &[u8; 16],
    secret: &[u8],
) -> Result<(Packet, bool), Error> {
    let p = Packet::parse(bytes)?;
    let len = usize::from(u16::from_be_bytes([bytes[2], bytes[3]]));
    let mut copy = bytes[..len].to_vec();
    copy[4..20].copy_from_slice(request_auth);
    if !ct_eq(&md5(&[&copy, secret]), &p.authenticator) {
        return Err(Error::BadAuthenticator);
    }
    let signed = check_message_authenticator(bytes, request_auth, secret)?;
    Ok((p, signed))
}

/// The MD5 keystream both hiding schemes use: b(1) = MD5(S + first),
/// b(i) = MD5(S + c(i-1)); XORs `data` (a multiple of 16) in place.
/// `encrypt`: c(i) is the output (hiding), else the input (revealing).
fn md5_stream(data: &mut [u8], secret: &[u8], first: &[u8], encrypt: bool) {
    let mut prev: Vec<u8> = first.to_vec();
    for chunk in data.chunks_mut(16) {
        let b = md5(&[secret, &prev]);
        let cipher_in: Vec<u8> = chunk.to_vec();
        for (x, k) in chunk.iter_mut().zip(b) {
            *x ^= k;
        }
        prev = if encrypt { chunk.to_vec() } else { cipher_in };
    }
}

/// User-Password hiding (RFC 2865 §5.2): padded to 16, at most 128 bytes.
pub fn hide_password(pw: &[u8], authenticator: &[u8; 16], secret: &[u8]) -> Vec<u8> {
    let pw = &pw[..pw.len().min(128)];
    let mut v = pw.to_vec();
    v.resize(pw.len().div_ceil(16).max(1) * 16, 0);
    md5_stream(&mut v, secret, authenticator, true);
    v
}

/// The reverse (the server's side; tests).
pub fn reveal_password(
    hidden: &[u8],
    authenticator: &[u8; 16],
    secret: &[u8],
) -> Option<Zeroizing<Vec<u8>>> {
    if hidden.is_empty() || !hidden.len().is_multiple_of(16) || hidden.len() > 128 {
        return None;
    }
    let mut v = Zeroizing::new(hidden.to_vec());
    md5_stream(&mut v, secret, authenticator, false);
    let end = v.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
    v.truncate(end);
    Some(v)
}

/// An MS-MPPE-Send-Key or -Recv-Key (RFC 2548 §2.4.2): salt (2 bytes, top
/// bit set), then the key's length, the key and padding, hidden with the
/// request authenticator and the salt. Returns the key.
pub fn reveal_mppe_key(
    value: &[u8],
    request_auth: &[u8; 16],
    secret: &[u8],
) -> Option<Zeroizing<Vec<u8>>> {
    let (salt, hidden) = (value.get(..2)?, value.get(2..)?);
    if salt[0] & 0x80 == 0 || hidden.is_empty() || !hidden.len().is_multiple_of(16) {
        return None;
    }
    let mut v = Zeroizing::new(hidden.to_vec());
    md5_stream(&mut v, secret, &[&request_auth[..], salt].concat(), false);
    let len = usize::from(v[0]);
    (len > 0 && len < v.len()).then(|| Zeroizing::new(v[1..1 + len].to_vec()))
}

/// The server's side of [`reveal_mppe_key`] (tests; a RADIUS server).
pub fn hide_mppe_key(key: &[u8], salt: [u8; 2], request_auth: &[u8; 16], secret: &[u8]) -> Vec<u8> {
    let mut p = vec![key.len() as u8];
    p.extend_from_slice(key);
    p.resize((key.len() + 1).div_ceil(16) * 16, 0);
    let salt = [salt[0] | 0x80, salt[1]];
    md5_stream(&mut p, secret, &[&request_auth[..], &salt].concat(), true);
    [&salt[..], &p].concat()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"xyzzy5461";

    #[test]
    fn rfc2865_access_request_example_hides_the_password() {
        // RFC 2865 §7.1: user nemo, password arctangent, secret xyzzy5461.
        let auth: [u8; 16] = [
            0x0f, 0x40, 0x3f, 0x94, 0x73, 0x97, 0x80, 0x57, 0xbd, 0x83, 0xd5, 0xcb, 0x98, 0xf4,
            0x22, 0x7a,
        ];
        let hidden = hide_password(b"arctangent", &auth, SECRET);
        assert_eq!(
            hidden,
            [
                0x0d, 0xbe, 0x70, 0x8d, 0x93, 0xd4, 0x13, 0xce, 0x31, 0x96, 0xe4, 0x3f, 0x78, 0x2a,
                0x0a, 0xee
            ]
        );
        assert_eq!(
            &reveal_password(&hidden, &auth, SECRET).unwrap()[..],
            b"arctangent"
        );
        // Long passwords chain the blocks.
        let long = b"0123456789abcdef0123456789abcdefXYZ";
        let h = hide_password(long, &auth, SECRET);
        assert_eq!(h.len(), 48);
        assert_eq!(&reveal_password(&h, &auth, SECRET).unwrap()[..], long);
    }

    #[test]
    fn rfc2865_access_accept_example_verifies() {
        // RFC 2865 §7.1's Access-Accept to that request.
        let req_auth: [u8; 16] = [
            0x0f, 0x40, 0x3f, 0x94, 0x73, 0x97, 0x80, 0x57, 0xbd, 0x83, 0xd5, 0xcb, 0x98, 0xf4,
            0x22, 0x7a,
        ];
        let accept: Vec<u8> = [
            &[0x02, 0x00, 0x00, 0x26][..],
            &[
                0x86, 0xfe, 0x22, 0x0e, 0x76, 0x24, 0xba, 0x2a, 0x10, 0x05, 0xf6, 0xbf, 0x9b, 0x55,
                0xe0, 0xb2,
            ],
            &[0x06, 0x06, 0x00, 0x00, 0x00, 0x01],
            &[0x0f, 0x06, 0x00, 0x00, 0x00, 0x00],
            &[0x0e, 0x06, 0xc0, 0xa8, 0x01, 0x03],
        ]
        .concat();
        let (p, signed) = verify_response(&accept, &req_auth, SECRET).unwrap();
        assert_eq!((p.code, signed), (ACCESS_ACCEPT, false));
        assert_eq!(p.get_u32(SERVICE_TYPE), Some(1));
        let mut bad = accept.clone();
        bad[25] ^= 1;
        assert_eq!(
            verify_response(&bad, &req_auth, SECRET).unwrap_err(),
            Error::BadAuthenticator
        );
        assert_eq!(
            verify_response(&accept, &req_auth, b"other").unwrap_err(),
            Error::BadAuthenticator
        );
    }

    #[test]
    fn signed_requests_and_responses_round_trip_and_detect_tampering() {
        let mut p = Packet::new(ACCOUNTING_REQUEST, 7);
        p.add_u32(ACCT_STATUS_TYPE, ACCT_START)
            .add(ACCT_SESSION_ID, b"abc");
        let b = encode_signed_request(&p, SECRET);
        let got = verify_signed_request(&b, SECRET).unwrap();
        assert_eq!(got.get(ACCT_SESSION_ID), Some(&b"abc"[..]));
        assert!(verify_signed_request(&b, b"nope").is_err());
        // The response, with a Message-Authenticator.
        let mut r = Packet::new(ACCOUNTING_RESPONSE, 7);
        r.add(REPLY_MESSAGE, b"ok");
        let rb = encode_response(&r, &got.authenticator, SECRET, true);
        let (rp, signed) = verify_response(&rb, &got.authenticator, SECRET).unwrap();
        assert!(signed);
        assert_eq!(rp.get(REPLY_MESSAGE), Some(&b"ok"[..]));
        let mut bad = rb.clone();
        let at = message_authenticator_at(&bad).unwrap();
        bad[at] ^= 1;
        // MD5 over everything catches it first; the HMAC is checked too.
        assert!(verify_response(&bad, &got.authenticator, SECRET).is_err());
    }

    #[test]
    fn access_requests_carry_a_valid_message_authenticator_first() {
        let mut p = Packet::new(ACCESS_REQUEST, 1);
        p.add(USER_NAME, b"alice");
        let auth = [3u8; 16];
        let b = encode_access_request(&p, auth, Some(b"pw"), SECRET);
        let q = Packet::parse(&b).unwrap();
        assert_eq!(q.attrs[0].kind, MESSAGE_AUTHENTICATOR);
        assert_eq!(check_message_authenticator(&b, &auth, SECRET), Ok(true));
        assert_eq!(
            &reveal_password(q.get(USER_PASSWORD).unwrap(), &auth, SECRET).unwrap()[..],
            b"pw"
        );
    }

    #[test]
    fn status_server_is_signed() {
        let b = encode_status_server(4, [6; 16], "gw", SECRET);
        let p = Packet::parse(&b).unwrap();
        assert_eq!(
            (p.code, p.attrs[0].kind),
            (STATUS_SERVER, MESSAGE_AUTHENTICATOR)
        );
        assert_eq!(check_message_authenticator(&b, &[6; 16], SECRET), Ok(true));
        assert!(check_message_authenticator(&b, &[6; 16], b"other").is_err());
    }

    #[test]
    fn mppe_keys_round_trip_through_the_salted_hiding() {
        let ra = [9u8; 16];
        let key = [0x5au8; 16];
        let v = hide_mppe_key(&key, [0x12, 0x34], &ra, SECRET);
        assert_eq!(v.len(), 2 + 32);
        assert_eq!(v[0] & 0x80, 0x80);
        assert_eq!(&reveal_mppe_key(&v, &ra, SECRET).unwrap()[..], &key);
        assert_ne!(
            reveal_mppe_key(&v, &[8; 16], SECRET).as_deref(),
            Some(&key.to_vec())
        );
        assert!(reveal_mppe_key(&v[..3], &ra, SECRET).is_none());
    }

    #[test]
    fn framing_errors_and_vendor_attributes() {
        for bad in [
            &[][..],
            &[1, 0, 0, 19, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            &[1, 0, 0, 30, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            &[
                1, 0, 0, 22, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1,
            ],
            &[
                1, 0, 0, 22, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 9,
            ],
        ] {
            assert_eq!(Packet::parse(bad), Err(Error::Malformed), "{bad:?}");
        }
        let mut p = Packet::new(ACCESS_ACCEPT, 2);
        p.add_vendor(VENDOR_MICROSOFT, MS_CHAP2_SUCCESS, b"\x01S=00")
            .add_vendor(9, MS_CHAP2_SUCCESS, b"other vendor");
        let q = Packet::parse(&p.to_bytes()).unwrap();
        assert_eq!(
            q.get_vendor(VENDOR_MICROSOFT, MS_CHAP2_SUCCESS),
            Some(&b"\x01S=00"[..])
        );
        assert_eq!(q.get_vendor(VENDOR_MICROSOFT, MS_MPPE_SEND_KEY), None);
    }
}
