//! Building and opening ISAKMP messages: plain ones, and ones whose
//! payloads are CBC-encrypted with the Phase 1 key (IVs chained per
//! exchange, RFC 2409 App. B).
use subtle::ConstantTimeEq as _;

use super::{IkeError, IkeSa, Up};
use crate::ike::{
    consts::*,
    crypto::CbcAlg,
    message::{set_length, split, Chain, Header},
};

impl IkeSa {
    fn header(&self, exchange: u8, flags: u8, message_id: u32, next: u8) -> Header {
        Header {
            icookie: self.icookie,
            rcookie: self.rcookie,
            next,
            exchange,
            flags,
            message_id,
            length: 0,
        }
    }

    pub(super) fn plain(&self, exchange: u8, message_id: u32, chain: &Chain) -> Vec<u8> {
        let mut m = Vec::with_capacity(HEADER_LEN + chain.bytes.len());
        self.header(exchange, 0, message_id, chain.first)
            .encode(&mut m);
        m.extend_from_slice(&chain.bytes);
        set_length(&mut m);
        m
    }

    /// The encrypted message and its last cipher block (the next IV).
    pub(super) fn sealed(
        &self,
        cipher: CbcAlg,
        key: &[u8],
        iv: &[u8],
        exchange: u8,
        message_id: u32,
        chain: &Chain,
    ) -> (Vec<u8>, Vec<u8>) {
        let mut m = Vec::with_capacity(HEADER_LEN + chain.bytes.len() + 16);
        self.header(exchange, FLAG_ENCRYPTED, message_id, chain.first)
            .encode(&mut m);
        m.extend_from_slice(&chain.bytes);
        let b = cipher.block();
        let padded = chain.bytes.len().div_ceil(b) * b;
        m.resize(HEADER_LEN + padded.max(b), 0);
        cipher.encrypt(key, iv, &mut m[HEADER_LEN..]);
        set_length(&mut m);
        let last = m[m.len() - b..].to_vec();
        (m, last)
    }
}

/// Decrypts a message's payloads. Returns the plaintext and the last
/// cipher block (the next IV), or None if it is not whole blocks.
pub(super) fn open(
    cipher: CbcAlg,
    key: &[u8],
    iv: &[u8],
    msg: &[u8],
) -> Option<(Vec<u8>, Vec<u8>)> {
    let body = msg.get(HEADER_LEN..)?;
    let b = cipher.block();
    if body.is_empty() || body.len() % b != 0 {
        return None;
    }
    let last = body[body.len() - b..].to_vec();
    let mut plain = body.to_vec();
    cipher.decrypt(key, iv, &mut plain).then_some((plain, last))
}

/// Opens a protected Quick Mode or Informational message (IV `iv`) and
/// checks its leading HASH payload: prf(SKEYID_a, M-ID | `nonce` | the
/// payloads after HASH) (RFC 2409 §5.5, §5.7: HASH(1) and the
/// Informational hash with no nonce, HASH(2) with Ni_b). Returns the
/// plaintext (HASH first) and the last cipher block (the next IV).
pub(super) fn open_hashed(
    up: &Up,
    iv: &[u8],
    h: &Header,
    msg: &[u8],
    nonce: &[u8],
) -> Result<(Vec<u8>, Vec<u8>), IkeError> {
    let (plain, last) = open(up.algs.cipher, &up.keys.enc, iv, msg).ok_or(IkeError::Malformed)?;
    let (payloads, end) = split(h.next, &plain).map_err(|_| IkeError::Malformed)?;
    let Some(hash) = payloads.first().filter(|p| p.kind == PL_HASH) else {
        return Err(IkeError::Malformed);
    };
    let rest = &plain[hash.body.len() + 4..end];
    let want = up
        .algs
        .hash
        .prf(&up.keys.a, &[&h.message_id.to_be_bytes(), nonce, rest]);
    if !bool::from(want.as_slice().ct_eq(hash.body)) {
        return Err(IkeError::BadHash);
    }
    Ok((plain, last))
}

/// An unprotected Informational message with one notification (before
/// keys are agreed: a refused proposal, a failed authentication).
pub(super) fn unprotected_notify(icookie: [u8; 8], rcookie: [u8; 8], kind: u16) -> Vec<u8> {
    let mut c = Chain::default();
    c.add(
        PL_NOTIFY,
        &crate::ike::message::notify(PROTO_ISAKMP, &[], kind, &[]),
    );
    let mut m = Vec::with_capacity(HEADER_LEN + c.bytes.len());
    Header {
        icookie,
        rcookie,
        next: c.first,
        exchange: EXCH_INFO,
        flags: 0,
        message_id: 0,
        length: 0,
    }
    .encode(&mut m);
    m.extend_from_slice(&c.bytes);
    set_length(&mut m);
    m
}
