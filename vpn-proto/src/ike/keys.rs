//! IKEv1 key derivation for pre-shared keys (RFC 2409 §5, App. B): SKEYID
//! and its three children, the Phase 1 cipher key and IV, the exchange
//! hashes, and Quick Mode KEYMAT.
use zeroize::Zeroizing;

use super::crypto::{CbcAlg, HashAlg};

type Secret = Zeroizing<Vec<u8>>;

pub struct Phase1Keys {
    pub skeyid: Secret,
    pub d: Secret,
    pub a: Secret,
    /// The Phase 1 cipher key (from SKEYID_e, expanded if short).
    pub enc: Secret,
    /// The first IV: hash(g^xi | g^xr), truncated to the block.
    pub iv: Vec<u8>,
}

pub struct Phase1Inputs<'a> {
    pub psk: &'a [u8],
    pub ni: &'a [u8],
    pub nr: &'a [u8],
    pub gxy: &'a [u8],
    pub gxi: &'a [u8],
    pub gxr: &'a [u8],
    pub cky_i: &'a [u8; 8],
    pub cky_r: &'a [u8; 8],
}

pub fn phase1(hash: HashAlg, cipher: CbcAlg, i: &Phase1Inputs<'_>) -> Phase1Keys {
    let skeyid = hash.prf(i.psk, &[i.ni, i.nr]);
    let (ci, cr) = (&i.cky_i[..], &i.cky_r[..]);
    let d = hash.prf(&skeyid, &[i.gxy, ci, cr, &[0]]);
    let a = hash.prf(&skeyid, &[&d, i.gxy, ci, cr, &[1]]);
    let e = hash.prf(&skeyid, &[&a, i.gxy, ci, cr, &[2]]);
    let enc = expand(hash, &e, cipher.key_len());
    let iv = hash.hash(&[i.gxi, i.gxr])[..cipher.block()].to_vec();
    Phase1Keys {
        skeyid,
        d,
        a,
        enc,
        iv,
    }
}

/// RFC 2409 App. B: SKEYID_e is used as is when long enough, else
/// K1 = prf(SKEYID_e, 0), K2 = prf(SKEYID_e, K1), ...
pub fn expand(hash: HashAlg, e: &[u8], len: usize) -> Secret {
    if e.len() >= len {
        return Zeroizing::new(e[..len].to_vec());
    }
    let mut out = Zeroizing::new(Vec::with_capacity(len + hash.len()));
    let mut k = hash.prf(e, &[&[0]]);
    out.extend_from_slice(&k);
    while out.len() < len {
        k = hash.prf(e, &[&k]);
        out.extend_from_slice(&k);
    }
    out.truncate(len);
    out
}

/// HASH_I (`initiator`) or HASH_R of Main Mode.
#[allow(clippy::too_many_arguments)]
pub fn main_mode_hash(
    hash: HashAlg,
    skeyid: &[u8],
    gxi: &[u8],
    gxr: &[u8],
    cky_i: &[u8; 8],
    cky_r: &[u8; 8],
    sai_b: &[u8],
    id_b: &[u8],
    initiator: bool,
) -> Secret {
    if initiator {
        hash.prf(skeyid, &[gxi, gxr, cky_i, cky_r, sai_b, id_b])
    } else {
        hash.prf(skeyid, &[gxr, gxi, cky_r, cky_i, sai_b, id_b])
    }
}

/// IV of a Quick Mode or Informational exchange: hash(last Phase 1 block | M-ID).
pub fn exchange_iv(hash: HashAlg, block: usize, phase1_iv: &[u8], message_id: u32) -> Vec<u8> {
    hash.hash(&[phase1_iv, &message_id.to_be_bytes()])[..block].to_vec()
}

/// KEYMAT for one direction: the SPI is the receiver's.
#[allow(clippy::too_many_arguments)]
pub fn keymat(
    hash: HashAlg,
    skeyid_d: &[u8],
    gqm: Option<&[u8]>,
    protocol: u8,
    spi: u32,
    ni: &[u8],
    nr: &[u8],
    len: usize,
) -> Secret {
    let spi = spi.to_be_bytes();
    let g = gqm.unwrap_or(&[]);
    let mut out = Zeroizing::new(Vec::with_capacity(len + hash.len()));
    let mut k = hash.prf(skeyid_d, &[g, &[protocol], &spi, ni, nr]);
    out.extend_from_slice(&k);
    while out.len() < len {
        k = hash.prf(skeyid_d, &[&k, g, &[protocol], &spi, ni, nr]);
        out.extend_from_slice(&k);
    }
    out.truncate(len);
    out
}
