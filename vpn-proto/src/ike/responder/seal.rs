//! Building and opening ISAKMP messages: plain ones, and ones whose
//! payloads are CBC-encrypted with the Phase 1 key (IVs chained per
//! exchange, RFC 2409 App. B).
use super::IkeSa;
use crate::ike::{
    consts::*,
    crypto::CbcAlg,
    message::{set_length, Chain, Header},
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
