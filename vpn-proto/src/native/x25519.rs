//! X25519 for the Noise handshakes, from aws-lc (decisions #58): its
//! assembly ladder is about 2.5x curve25519-dalek's portable one, which
//! snow uses by default and which was most of a handshake's CPU. snow gets
//! it through a resolver of our own; hash, AEAD and RNG stay snow's.
//!
//! The gateway's static key is prepared once (`StaticKey`): snow hands
//! every handshake the private bytes again, and the resolver recognises
//! them instead of deriving the public key anew.
use std::sync::Arc;

use aws_lc_rs::agreement::{self, UnparsedPublicKey, X25519};
use snow::{
    params::{CipherChoice, DHChoice, HashChoice},
    resolvers::{CryptoResolver, DefaultResolver},
    types::{Cipher, Dh, Hash, Random},
    Error,
};
use subtle::ConstantTimeEq as _;
use zeroize::Zeroizing;

const KEY_LEN: usize = 32;

/// An X25519 private key ready for agreements, with its public half.
pub struct StaticKey {
    private: Zeroizing<[u8; KEY_LEN]>,
    public: [u8; KEY_LEN],
    key: agreement::PrivateKey,
}

impl StaticKey {
    /// Every 32-byte string is an X25519 private key (it is clamped when used).
    pub fn new(private: &[u8; KEY_LEN]) -> Arc<StaticKey> {
        let key = agreement::PrivateKey::from_private_key(&X25519, private)
            .expect("any 32 bytes are an X25519 private key");
        let public = key
            .compute_public_key()
            .expect("X25519 public key")
            .as_ref()
            .try_into()
            .expect("32-byte X25519 public key");
        Arc::new(StaticKey {
            private: Zeroizing::new(*private),
            public,
            key,
        })
    }

    pub fn public(&self) -> &[u8; KEY_LEN] {
        &self.public
    }

    pub fn private(&self) -> &[u8; KEY_LEN] {
        &self.private
    }
}

/// snow's resolver with aws-lc's X25519; `preset` is the static key this
/// side will be given, if it has one.
pub(crate) struct Resolver {
    pub preset: Option<Arc<StaticKey>>,
}

impl CryptoResolver for Resolver {
    fn resolve_rng(&self) -> Option<Box<dyn Random>> {
        DefaultResolver.resolve_rng()
    }

    fn resolve_dh(&self, choice: &DHChoice) -> Option<Box<dyn Dh>> {
        match choice {
            DHChoice::Curve25519 => Some(Box::new(NoiseX25519 {
                preset: self.preset.clone(),
                key: None,
            })),
            _ => None,
        }
    }

    fn resolve_hash(&self, choice: &HashChoice) -> Option<Box<dyn Hash>> {
        DefaultResolver.resolve_hash(choice)
    }

    fn resolve_cipher(&self, choice: &CipherChoice) -> Option<Box<dyn Cipher>> {
        DefaultResolver.resolve_cipher(choice)
    }
}

/// One Noise key slot (s or e). `key` is None until set or generated.
struct NoiseX25519 {
    preset: Option<Arc<StaticKey>>,
    key: Option<Arc<StaticKey>>,
}

impl Dh for NoiseX25519 {
    fn name(&self) -> &'static str {
        "25519"
    }

    fn pub_len(&self) -> usize {
        KEY_LEN
    }

    fn priv_len(&self) -> usize {
        KEY_LEN
    }

    fn set(&mut self, privkey: &[u8]) {
        let bytes: &[u8; KEY_LEN] = privkey.try_into().expect("snow passes 32-byte keys");
        self.key = Some(match &self.preset {
            Some(p) if bool::from(p.private().ct_eq(bytes)) => p.clone(),
            _ => StaticKey::new(bytes),
        });
    }

    fn generate(&mut self, rng: &mut dyn Random) -> Result<(), Error> {
        let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
        rng.try_fill_bytes(&mut bytes[..])?;
        self.key = Some(StaticKey::new(&bytes));
        Ok(())
    }

    fn pubkey(&self) -> &[u8] {
        self.key.as_ref().map_or(&[][..], |k| &k.public[..])
    }

    fn privkey(&self) -> &[u8] {
        self.key.as_ref().map_or(&[][..], |k| &k.private[..])
    }

    /// Fails on a low-order peer key (an all-zero result), which Noise
    /// allows an implementation to reject. snow passes the peer's key in a
    /// buffer of its longest DH key: the first 32 bytes are ours.
    fn dh(&self, pubkey: &[u8], out: &mut [u8]) -> Result<(), Error> {
        let key = self.key.as_ref().ok_or(Error::Dh)?;
        let peer = pubkey.get(..KEY_LEN).ok_or(Error::Dh)?;
        agreement::agree(
            &key.key,
            UnparsedPublicKey::new(&X25519, peer),
            Error::Dh,
            |shared| {
                out.get_mut(..KEY_LEN)
                    .ok_or(Error::Dh)?
                    .copy_from_slice(shared);
                Ok(())
            },
        )
    }
}

#[cfg(test)]
mod tests;
