//! Diffie-Hellman groups IKEv1 clients propose: MODP 1024/1536/2048
//! (constant-time Montgomery modexp) and the NIST curves P-256/P-384
//! (RFC 5903: the KE payload is x | y, the shared secret is x).
use crypto_bigint::{
    modular::runtime_mod::{DynResidue, DynResidueParams},
    Encoding, Uint, U1024, U1536, U2048,
};
use zeroize::Zeroizing;

use super::primes;

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum DhGroup {
    Modp1024,
    Modp1536,
    Modp2048,
    Ecp256,
    Ecp384,
}

/// MODP private exponent size: 2× the groups' security level (as strongSwan
/// and RFC 3526 suggest), which keeps modexp cheap.
const EXPONENT_BYTES: usize = 32;

#[allow(clippy::len_without_is_empty)]
impl DhGroup {
    pub fn from_id(id: u16) -> Option<DhGroup> {
        Some(match id {
            2 => DhGroup::Modp1024,
            5 => DhGroup::Modp1536,
            14 => DhGroup::Modp2048,
            19 => DhGroup::Ecp256,
            20 => DhGroup::Ecp384,
            _ => return None,
        })
    }

    pub fn id(self) -> u16 {
        match self {
            DhGroup::Modp1024 => 2,
            DhGroup::Modp1536 => 5,
            DhGroup::Modp2048 => 14,
            DhGroup::Ecp256 => 19,
            DhGroup::Ecp384 => 20,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            DhGroup::Modp1024 => "modp1024",
            DhGroup::Modp1536 => "modp1536",
            DhGroup::Modp2048 => "modp2048",
            DhGroup::Ecp256 => "ecp256",
            DhGroup::Ecp384 => "ecp384",
        }
    }

    /// Length of public values (the KE payload), in bytes.
    pub fn len(self) -> usize {
        match self {
            DhGroup::Modp1024 => 128,
            DhGroup::Modp1536 => 192,
            DhGroup::Modp2048 => 256,
            DhGroup::Ecp256 => 64,
            DhGroup::Ecp384 => 96,
        }
    }

    /// Length of a private value.
    pub fn secret_len(self) -> usize {
        match self {
            DhGroup::Ecp384 => 48,
            _ => EXPONENT_BYTES,
        }
    }

    /// A private value from `random` and its public value.
    pub fn keypair(self, mut random: impl FnMut(&mut [u8])) -> (Zeroizing<Vec<u8>>, Vec<u8>) {
        loop {
            let mut x = Zeroizing::new(vec![0u8; self.secret_len()]);
            random(&mut x);
            // Only a scalar ≥ the curve order (odds about 2^-32) is retried.
            if let Some(public) = self.public(&x) {
                return (x, public);
            }
        }
    }

    /// The public value of private value `x`, if `x` is a valid one.
    pub fn public(self, x: &[u8]) -> Option<Vec<u8>> {
        match self {
            DhGroup::Modp1024 => modexp::<{ U1024::LIMBS }>(primes::MODP1024, None, x),
            DhGroup::Modp1536 => modexp::<{ U1536::LIMBS }>(primes::MODP1536, None, x),
            DhGroup::Modp2048 => modexp::<{ U2048::LIMBS }>(primes::MODP2048, None, x),
            DhGroup::Ecp256 => {
                let sk = p256::SecretKey::from_slice(x).ok()?;
                Some(sk.public_key().to_sec1_bytes()[1..].to_vec())
            }
            DhGroup::Ecp384 => {
                let sk = p384::SecretKey::from_slice(x).ok()?;
                Some(sk.public_key().to_sec1_bytes()[1..].to_vec())
            }
        }
    }

    /// The shared secret with the peer's public value, or None if that value
    /// is not one of the group's (wrong length; 0, 1, p-1 or ≥ p; not on
    /// the curve).
    pub fn shared(self, x: &[u8], peer: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
        if peer.len() != self.len() {
            return None;
        }
        let sec1 = || [&[4u8][..], peer].concat();
        let out = match self {
            DhGroup::Modp1024 => modexp::<{ U1024::LIMBS }>(primes::MODP1024, Some(peer), x)?,
            DhGroup::Modp1536 => modexp::<{ U1536::LIMBS }>(primes::MODP1536, Some(peer), x)?,
            DhGroup::Modp2048 => modexp::<{ U2048::LIMBS }>(primes::MODP2048, Some(peer), x)?,
            DhGroup::Ecp256 => {
                let pk = p256::PublicKey::from_sec1_bytes(&sec1()).ok()?;
                let sk = p256::SecretKey::from_slice(x).ok()?;
                let s = p256::ecdh::diffie_hellman(sk.to_nonzero_scalar(), pk.as_affine());
                s.raw_secret_bytes().to_vec()
            }
            DhGroup::Ecp384 => {
                let pk = p384::PublicKey::from_sec1_bytes(&sec1()).ok()?;
                let sk = p384::SecretKey::from_slice(x).ok()?;
                let s = p384::ecdh::diffie_hellman(sk.to_nonzero_scalar(), pk.as_affine());
                s.raw_secret_bytes().to_vec()
            }
        };
        Some(Zeroizing::new(out))
    }
}

fn modexp<const L: usize>(prime_hex: &str, base: Option<&[u8]>, x: &[u8]) -> Option<Vec<u8>>
where
    Uint<L>: Encoding,
{
    if x.len() != EXPONENT_BYTES {
        return None;
    }
    let p = Uint::<L>::from_be_hex(prime_hex);
    let b = match base {
        None => Uint::<L>::from_u8(2),
        Some(bytes) => {
            let b = Uint::<L>::from_be_slice(bytes);
            let p_minus_1 = p.wrapping_sub(&Uint::ONE);
            if b <= Uint::ONE || b >= p_minus_1 {
                return None;
            }
            b
        }
    };
    let mut wide = Zeroizing::new(vec![0u8; Uint::<L>::BYTES]);
    let n = wide.len();
    wide[n - EXPONENT_BYTES..].copy_from_slice(x);
    let exp = Uint::<L>::from_be_slice(&wide);
    let params = DynResidueParams::new(&p);
    let r = DynResidue::new(&b, params).pow_bounded_exp(&exp, EXPONENT_BYTES * 8);
    Some(r.retrieve().to_be_bytes().as_ref().to_vec())
}
