//! NAT traversal negotiation (RFC 3947, and the drafts' vendor IDs and
//! payload numbers): which dialect to answer, and the NAT-D hashes.
use std::net::SocketAddrV4;

use super::{consts::*, crypto::HashAlg, responder::NatT};

/// The best dialect the client announced, and the vendor ID to echo.
pub fn variant(vids: &[&[u8]]) -> Option<(NatT, [u8; 16])> {
    for (vid, v) in [
        (VID_NATT_RFC3947, NatT::Rfc3947),
        (VID_NATT_DRAFT_03, NatT::Draft),
        (VID_NATT_DRAFT_02N, NatT::Draft),
        (VID_NATT_DRAFT_02, NatT::Draft),
    ] {
        if vids.contains(&&vid[..]) {
            return Some((v, vid));
        }
    }
    None
}

pub fn natd_payload(v: NatT) -> u8 {
    match v {
        NatT::Rfc3947 => PL_NATD,
        NatT::Draft => PL_NATD_DRAFT,
    }
}

pub fn natoa_payload(v: NatT) -> u8 {
    match v {
        NatT::Rfc3947 => PL_NATOA,
        NatT::Draft => PL_NATOA_DRAFT,
    }
}

/// HASH(CKY-I | CKY-R | IP | port) with the negotiated hash (not the PRF).
pub fn natd(hash: HashAlg, icookie: &[u8; 8], rcookie: &[u8; 8], at: SocketAddrV4) -> Vec<u8> {
    hash.hash(&[
        icookie,
        rcookie,
        &at.ip().octets(),
        &at.port().to_be_bytes(),
    ])
}
