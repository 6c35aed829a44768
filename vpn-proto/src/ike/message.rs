//! The ISAKMP header, payload chains, SA/proposal/transform payloads and
//! their data attributes (RFC 2408 §3), in both directions.
use super::consts::*;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Malformed;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    pub icookie: [u8; 8],
    pub rcookie: [u8; 8],
    pub next: u8,
    pub exchange: u8,
    pub flags: u8,
    pub message_id: u32,
    pub length: u32,
}

impl Header {
    pub fn decode(b: &[u8]) -> Result<Header, Malformed> {
        if b.len() < HEADER_LEN || b[17] != VERSION {
            return Err(Malformed);
        }
        let length = u32::from_be_bytes([b[24], b[25], b[26], b[27]]);
        if (length as usize) < HEADER_LEN || length as usize > b.len() {
            return Err(Malformed);
        }
        Ok(Header {
            icookie: b[0..8].try_into().unwrap(),
            rcookie: b[8..16].try_into().unwrap(),
            next: b[16],
            exchange: b[18],
            flags: b[19],
            message_id: u32::from_be_bytes([b[20], b[21], b[22], b[23]]),
            length,
        })
    }

    /// Writes the header; the length is filled in by [`set_length`].
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.icookie);
        out.extend_from_slice(&self.rcookie);
        out.push(self.next);
        out.push(VERSION);
        out.push(self.exchange);
        out.push(self.flags);
        out.extend_from_slice(&self.message_id.to_be_bytes());
        out.extend_from_slice(&self.length.to_be_bytes());
    }
}

pub fn set_length(msg: &mut [u8]) {
    let n = msg.len() as u32;
    msg[24..28].copy_from_slice(&n.to_be_bytes());
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Payload<'a> {
    pub kind: u8,
    pub body: &'a [u8],
}

/// Splits a payload chain starting with type `first`. Returns the payloads
/// and where the last one ended (what follows is CBC padding).
pub fn split(first: u8, b: &[u8]) -> Result<(Vec<Payload<'_>>, usize), Malformed> {
    let mut out = Vec::new();
    let (mut kind, mut at) = (first, 0usize);
    while kind != PL_NONE {
        if out.len() >= 64 || b.len() < at + PAYLOAD_HEADER_LEN {
            return Err(Malformed);
        }
        let next = b[at];
        let len = u16::from_be_bytes([b[at + 2], b[at + 3]]) as usize;
        if len < PAYLOAD_HEADER_LEN || at + len > b.len() {
            return Err(Malformed);
        }
        out.push(Payload {
            kind,
            body: &b[at + PAYLOAD_HEADER_LEN..at + len],
        });
        at += len;
        kind = next;
    }
    Ok((out, at))
}

/// Builds a payload chain; each payload's "next" field is set when the
/// following one is added.
#[derive(Default)]
pub struct Chain {
    pub first: u8,
    pub bytes: Vec<u8>,
    last_at: Option<usize>,
}

impl Chain {
    pub fn add(&mut self, kind: u8, body: &[u8]) -> &mut Chain {
        match self.last_at {
            Some(at) => self.bytes[at] = kind,
            None => self.first = kind,
        }
        self.last_at = Some(self.bytes.len());
        let len = (body.len() + PAYLOAD_HEADER_LEN) as u16;
        self.bytes.extend_from_slice(&[PL_NONE, 0]);
        self.bytes.extend_from_slice(&len.to_be_bytes());
        self.bytes.extend_from_slice(body);
        self
    }

    /// `head` (e.g. the HASH payload), then this chain.
    pub fn prepend(self, kind: u8, body: &[u8]) -> Chain {
        let mut c = Chain::default();
        c.add(kind, body);
        c.bytes[0] = self.first;
        c.bytes.extend_from_slice(&self.bytes);
        c.last_at = self.last_at.map(|a| a + body.len() + PAYLOAD_HEADER_LEN);
        c
    }
}

/// A data attribute: type and value (TV values are two bytes).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attribute<'a> {
    pub kind: u16,
    pub value: &'a [u8],
}

impl Attribute<'_> {
    /// The value as a number (TV, or a TLV of up to 8 bytes).
    pub fn number(&self) -> Option<u64> {
        if self.value.is_empty() || self.value.len() > 8 {
            return None;
        }
        Some(
            self.value
                .iter()
                .fold(0u64, |a, &b| (a << 8) | u64::from(b)),
        )
    }
}

pub fn attributes(mut b: &[u8]) -> Result<Vec<Attribute<'_>>, Malformed> {
    let mut out = Vec::new();
    while !b.is_empty() {
        if b.len() < 4 || out.len() >= 32 {
            return Err(Malformed);
        }
        let t = u16::from_be_bytes([b[0], b[1]]);
        if t & 0x8000 != 0 {
            out.push(Attribute {
                kind: t & 0x7fff,
                value: &b[2..4],
            });
            b = &b[4..];
        } else {
            let len = u16::from_be_bytes([b[2], b[3]]) as usize;
            if b.len() < 4 + len {
                return Err(Malformed);
            }
            out.push(Attribute {
                kind: t,
                value: &b[4..4 + len],
            });
            b = &b[4 + len..];
        }
    }
    Ok(out)
}

pub fn put_attr_tv(out: &mut Vec<u8>, kind: u16, value: u16) {
    out.extend_from_slice(&(kind | 0x8000).to_be_bytes());
    out.extend_from_slice(&value.to_be_bytes());
}

/// One transform of a proposal, with its raw body (echoed when chosen).
#[derive(Clone, Debug)]
pub struct Transform<'a> {
    pub number: u8,
    pub id: u8,
    pub attributes: Vec<Attribute<'a>>,
    pub raw: &'a [u8],
}

#[derive(Clone, Debug)]
pub struct Proposal<'a> {
    pub number: u8,
    pub protocol: u8,
    pub spi: &'a [u8],
    pub transforms: Vec<Transform<'a>>,
}

/// An SA payload's body: DOI, situation and proposals.
#[derive(Clone, Debug)]
pub struct SaPayload<'a> {
    pub doi: u32,
    pub situation: u32,
    pub proposals: Vec<Proposal<'a>>,
}

impl<'a> SaPayload<'a> {
    pub fn decode(b: &'a [u8]) -> Result<SaPayload<'a>, Malformed> {
        if b.len() < 8 {
            return Err(Malformed);
        }
        let doi = u32::from_be_bytes(b[0..4].try_into().unwrap());
        let situation = u32::from_be_bytes(b[4..8].try_into().unwrap());
        let (props, _) = split(PL_PROPOSAL, &b[8..])?;
        let mut proposals = Vec::new();
        for p in props {
            if p.kind != PL_PROPOSAL || p.body.len() < 4 {
                return Err(Malformed);
            }
            let (number, protocol, spi_len, count) = (p.body[0], p.body[1], p.body[2], p.body[3]);
            let spi_end = 4 + spi_len as usize;
            if p.body.len() < spi_end {
                return Err(Malformed);
            }
            let (ts, _) = split(PL_TRANSFORM, &p.body[spi_end..])?;
            if ts.len() != count as usize {
                return Err(Malformed);
            }
            let mut transforms = Vec::new();
            for t in ts {
                if t.kind != PL_TRANSFORM || t.body.len() < 4 {
                    return Err(Malformed);
                }
                transforms.push(Transform {
                    number: t.body[0],
                    id: t.body[1],
                    attributes: attributes(&t.body[4..])?,
                    raw: t.body,
                });
            }
            proposals.push(Proposal {
                number,
                protocol,
                spi: &p.body[4..spi_end],
                transforms,
            });
        }
        Ok(SaPayload {
            doi,
            situation,
            proposals,
        })
    }
}

/// An SA payload body answering with one proposal of one transform (the
/// chosen transform's body echoed as the initiator sent it).
pub fn sa_answer(proposal: u8, protocol: u8, spi: &[u8], transform: &[u8]) -> Vec<u8> {
    let mut t = Chain::default();
    t.add(PL_TRANSFORM, transform);
    let mut body = Vec::new();
    body.extend_from_slice(&[proposal, protocol, spi.len() as u8, 1]);
    body.extend_from_slice(spi);
    body.extend_from_slice(&t.bytes);
    let mut p = Chain::default();
    p.add(PL_PROPOSAL, &body);
    let mut sa = Vec::new();
    sa.extend_from_slice(&DOI_IPSEC.to_be_bytes());
    sa.extend_from_slice(&SIT_IDENTITY_ONLY.to_be_bytes());
    sa.extend_from_slice(&p.bytes);
    sa
}

/// A notification body: DOI, protocol, SPI, type, data.
pub fn notify(protocol: u8, spi: &[u8], kind: u16, data: &[u8]) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&DOI_IPSEC.to_be_bytes());
    b.extend_from_slice(&[protocol, spi.len() as u8]);
    b.extend_from_slice(&kind.to_be_bytes());
    b.extend_from_slice(spi);
    b.extend_from_slice(data);
    b
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notify<'a> {
    pub protocol: u8,
    pub kind: u16,
    pub spi: &'a [u8],
    pub data: &'a [u8],
}

impl<'a> Notify<'a> {
    pub fn decode(b: &'a [u8]) -> Result<Notify<'a>, Malformed> {
        if b.len() < 8 {
            return Err(Malformed);
        }
        let spi_len = b[5] as usize;
        if b.len() < 8 + spi_len {
            return Err(Malformed);
        }
        Ok(Notify {
            protocol: b[4],
            kind: u16::from_be_bytes([b[6], b[7]]),
            spi: &b[8..8 + spi_len],
            data: &b[8 + spi_len..],
        })
    }
}

/// A Delete payload: protocol and the SPIs it names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delete<'a> {
    pub protocol: u8,
    pub spis: Vec<&'a [u8]>,
}

impl<'a> Delete<'a> {
    pub fn decode(b: &'a [u8]) -> Result<Delete<'a>, Malformed> {
        if b.len() < 8 {
            return Err(Malformed);
        }
        let (protocol, spi_len) = (b[4], b[5] as usize);
        let count = u16::from_be_bytes([b[6], b[7]]) as usize;
        if spi_len == 0 || b.len() != 8 + spi_len * count {
            return Err(Malformed);
        }
        Ok(Delete {
            protocol,
            spis: b[8..].chunks(spi_len).collect(),
        })
    }
}

pub fn delete(protocol: u8, spis: &[&[u8]]) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&DOI_IPSEC.to_be_bytes());
    b.push(protocol);
    b.push(spis.first().map_or(0, |s| s.len() as u8));
    b.extend_from_slice(&(spis.len() as u16).to_be_bytes());
    for s in spis {
        b.extend_from_slice(s);
    }
    b
}

/// An Identification payload body: type, protocol, port, data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity<'a> {
    pub kind: u8,
    pub protocol: u8,
    pub port: u16,
    pub data: &'a [u8],
}

impl<'a> Identity<'a> {
    pub fn decode(b: &'a [u8]) -> Result<Identity<'a>, Malformed> {
        if b.len() < 4 {
            return Err(Malformed);
        }
        Ok(Identity {
            kind: b[0],
            protocol: b[1],
            port: u16::from_be_bytes([b[2], b[3]]),
            data: &b[4..],
        })
    }
}

pub fn identity(kind: u8, protocol: u8, port: u16, data: &[u8]) -> Vec<u8> {
    let mut b = vec![kind, protocol];
    b.extend_from_slice(&port.to_be_bytes());
    b.extend_from_slice(data);
    b
}
