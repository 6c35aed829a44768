//! Attribute-value pairs (RFC 2661 §4.1): reading a control message's AVPs
//! (hidden ones revealed with the tunnel secret, §4.3), and writing them
//! (hidden when a secret is set).
use md5::{Digest as _, Md5};

use super::consts::*;
use crate::codec::{Reader, Writer as _};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Avp {
    pub mandatory: bool,
    pub vendor: u16,
    pub attr: u16,
    pub value: Vec<u8>,
    /// It arrived hidden.
    pub hidden: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AvpError {
    #[error("an AVP length of {0} is below its header or past the message")]
    BadLength(usize),
    #[error("a hidden AVP without a Random Vector before it")]
    HiddenWithoutVector,
    #[error("a hidden AVP but no tunnel secret is configured")]
    HiddenWithoutSecret,
    #[error("a hidden AVP whose revealed length is wrong")]
    HiddenBadLength,
}

fn md5(parts: &[&[u8]]) -> [u8; 16] {
    let mut h = Md5::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}

/// XORs `data` in place with the hidden-AVP keystream (§4.3): MD5(type ‖
/// secret ‖ RV) for the first 16 bytes, then MD5(secret ‖ previous
/// ciphertext block). `encrypt` says which side's bytes chain.
fn hide_stream(attr: u16, secret: &[u8], rv: &[u8], data: &mut [u8], encrypt: bool) {
    let mut key = md5(&[&attr.to_be_bytes(), secret, rv]);
    for chunk in data.chunks_mut(16) {
        let mut cipher = [0u8; 16];
        for (i, b) in chunk.iter_mut().enumerate() {
            let c = *b ^ key[i];
            cipher[i] = if encrypt { c } else { *b };
            *b = c;
        }
        key = md5(&[secret, &cipher[..chunk.len()]]);
    }
}

/// Every AVP of a control message body, hidden ones revealed.
pub fn parse(b: &[u8], secret: Option<&[u8]>) -> Result<Vec<Avp>, AvpError> {
    let mut out = Vec::new();
    let mut rv: Option<Vec<u8>> = None;
    let mut r = Reader::new(b);
    while r.remaining() > 0 {
        let short = AvpError::BadLength(r.remaining());
        let (bits, vendor, attr) = match (r.u16(), r.u16(), r.u16()) {
            (Some(b), Some(v), Some(a)) => (b, v, a),
            _ => return Err(short),
        };
        let len = usize::from(bits & AVP_LENGTH_MASK);
        let value = len
            .checked_sub(AVP_HEADER_LEN)
            .and_then(|n| r.bytes(n))
            .ok_or(AvpError::BadLength(len))?;
        let hidden = bits & AVP_HIDDEN != 0;
        let value = if hidden {
            let v = rv.as_deref().ok_or(AvpError::HiddenWithoutVector)?;
            let secret = secret.ok_or(AvpError::HiddenWithoutSecret)?;
            let mut plain = value.to_vec();
            hide_stream(attr, secret, v, &mut plain, false);
            let mut p = Reader::new(&plain);
            let n = p.u16().ok_or(AvpError::HiddenBadLength)?;
            p.bytes(usize::from(n))
                .ok_or(AvpError::HiddenBadLength)?
                .to_vec()
        } else {
            value.to_vec()
        };
        if vendor == 0 && attr == A_RANDOM_VECTOR {
            rv = Some(value.clone());
        }
        out.push(Avp {
            mandatory: bits & AVP_MANDATORY != 0,
            vendor,
            attr,
            value,
            hidden,
        });
    }
    Ok(out)
}

/// How to hide AVPs: the tunnel secret and a fresh random vector.
#[derive(Clone, Copy)]
pub struct Hide<'a> {
    pub secret: &'a [u8],
    pub vector: [u8; 16],
}

/// Builds a control message body.
pub struct Writer<'a> {
    pub out: Vec<u8>,
    /// Set: AVPs added with `hidden` are hidden under this secret and vector.
    hide: Option<Hide<'a>>,
}

impl<'a> Writer<'a> {
    /// A body starting with the Message Type AVP (M set, never hidden).
    /// `hide`: the secret and a fresh random vector, to hide AVPs with.
    pub fn new(message_type: u16, hide: Option<Hide<'a>>) -> Writer<'a> {
        let mut w = Writer {
            out: Vec::with_capacity(128),
            hide: None,
        };
        w.u16(A_MESSAGE_TYPE, message_type);
        if let Some(h) = hide {
            w.raw(A_RANDOM_VECTOR, &h.vector, true, false);
        }
        w.hide = hide;
        w
    }

    fn raw(&mut self, attr: u16, value: &[u8], mandatory: bool, hidden: bool) {
        let mut v = value.to_vec();
        let mut bits = if mandatory { AVP_MANDATORY } else { 0 };
        if let (true, Some(h)) = (hidden, self.hide) {
            let mut plain = (value.len() as u16).to_be_bytes().to_vec();
            plain.extend_from_slice(value);
            hide_stream(attr, h.secret, &h.vector, &mut plain, true);
            v = plain;
            bits |= AVP_HIDDEN;
        }
        bits |= (AVP_HEADER_LEN + v.len()) as u16;
        self.out.put_u16(bits);
        self.out.put_u16(0);
        self.out.put_u16(attr);
        self.out.extend_from_slice(&v);
    }

    pub fn bytes(&mut self, attr: u16, value: &[u8]) -> &mut Self {
        self.raw(attr, value, true, false);
        self
    }

    /// Mandatory, hidden when the writer hides.
    pub fn hidden(&mut self, attr: u16, value: &[u8]) -> &mut Self {
        self.raw(attr, value, true, true);
        self
    }

    pub fn u16(&mut self, attr: u16, v: u16) -> &mut Self {
        self.raw(attr, &v.to_be_bytes(), true, false);
        self
    }

    pub fn u32(&mut self, attr: u16, v: u32) -> &mut Self {
        self.raw(attr, &v.to_be_bytes(), true, false);
        self
    }

    /// Result Code (and error code and message).
    pub fn result(&mut self, result: u16, error: u16, msg: &str) -> &mut Self {
        let mut v = result.to_be_bytes().to_vec();
        v.extend_from_slice(&error.to_be_bytes());
        v.extend_from_slice(msg.as_bytes());
        self.raw(A_RESULT_CODE, &v, true, false);
        self
    }
}

/// The value of the first IETF AVP `attr`.
pub fn find(avps: &[Avp], attr: u16) -> Option<&[u8]> {
    avps.iter()
        .find(|a| a.vendor == 0 && a.attr == attr)
        .map(|a| a.value.as_slice())
}

pub fn find_u16(avps: &[Avp], attr: u16) -> Option<u16> {
    find(avps, attr)
        .filter(|v| v.len() == 2)
        .and_then(|v| Reader::new(v).u16())
}

/// The first mandatory AVP we do not understand, if any.
pub fn unknown_mandatory(avps: &[Avp]) -> Option<(u16, u16)> {
    avps.iter()
        .find(|a| a.mandatory && (a.vendor != 0 || !KNOWN_ATTRIBUTES.contains(&a.attr)))
        .map(|a| (a.vendor, a.attr))
}

/// The tunnel-authentication response (§5.1.1): MD5(message type octet ‖
/// secret ‖ challenge).
pub fn challenge_response(message_type: u16, secret: &[u8], challenge: &[u8]) -> [u8; 16] {
    md5(&[&[message_type as u8], secret, challenge])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hidden_avps_round_trip_and_need_the_vector_and_secret() {
        let secret = b"tunnel-secret";
        let hide = Hide {
            secret,
            vector: [7u8; 16],
        };
        let mut w = Writer::new(ICRP, Some(hide));
        // 40 bytes: three keystream blocks.
        let long: Vec<u8> = (0..40).collect();
        w.hidden(A_ASSIGNED_SESSION_ID, &[0x12, 0x34])
            .hidden(A_HOST_NAME, &long);
        let body = w.out.clone();
        let avps = parse(&body, Some(secret)).unwrap();
        assert_eq!(find_u16(&avps, A_MESSAGE_TYPE), Some(ICRP));
        assert_eq!(find_u16(&avps, A_ASSIGNED_SESSION_ID), Some(0x1234));
        assert_eq!(find(&avps, A_HOST_NAME), Some(&long[..]));
        assert!(avps.iter().skip(2).all(|a| a.hidden));
        assert!(
            !body.windows(2).any(|x| x == [0x12, 0x34]),
            "hidden on the wire"
        );
        assert_eq!(parse(&body, None), Err(AvpError::HiddenWithoutSecret));
        let wrong = parse(&body, Some(b"other"));
        assert!(wrong.is_err() || find_u16(&wrong.unwrap(), A_ASSIGNED_SESSION_ID) != Some(0x1234));
        // The same hidden AVP without its Random Vector in front.
        let rv_len = 6 + 16;
        let mut no_rv = body[..8].to_vec();
        no_rv.extend_from_slice(&body[8 + rv_len..]);
        assert_eq!(
            parse(&no_rv, Some(secret)),
            Err(AvpError::HiddenWithoutVector)
        );
    }

    #[test]
    fn lengths_zero_short_and_past_the_end_are_errors() {
        let mut w = Writer::new(HELLO, None);
        w.u16(A_ASSIGNED_TUNNEL_ID, 5);
        let body = w.out;
        for n in 1..body.len() {
            if n != 8 {
                assert!(parse(&body[..n], None).is_err(), "prefix {n}");
            }
        }
        let mut zero = body.clone();
        zero[8] = 0x80;
        zero[9] = 0;
        assert_eq!(parse(&zero, None), Err(AvpError::BadLength(0)));
        let mut long = body.clone();
        long[9] = 0xff;
        assert_eq!(parse(&long, None), Err(AvpError::BadLength(0xff)));
    }

    #[test]
    fn unknown_mandatory_avps_are_found() {
        let mut w = Writer::new(ICRQ, None);
        w.u16(A_ASSIGNED_SESSION_ID, 1).u16(200, 1);
        let avps = parse(&w.out, None).unwrap();
        assert_eq!(unknown_mandatory(&avps), Some((0, 200)));
        let mut w = Writer::new(ICRQ, None);
        w.u16(A_ASSIGNED_SESSION_ID, 1);
        assert_eq!(unknown_mandatory(&parse(&w.out, None).unwrap()), None);
    }
}
