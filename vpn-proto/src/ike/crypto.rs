//! The primitives IKEv1 negotiates: its hash (and HMAC as the PRF) and the
//! Phase 1 CBC ciphers. Diffie-Hellman is in `dh.rs`.
use aes::cipher::{block_padding::NoPadding, BlockDecryptMut, BlockEncryptMut, KeyIvInit};
use hmac::{Hmac, Mac};
use sha1::Sha1;
use sha2::{Digest, Sha256, Sha384, Sha512};
use zeroize::Zeroizing;

use super::consts::*;

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum HashAlg {
    Sha1,
    Sha256,
    Sha384,
    Sha512,
}

#[allow(clippy::len_without_is_empty)]
impl HashAlg {
    pub fn from_attr(v: u16) -> Option<HashAlg> {
        Some(match v {
            HASH_SHA1 => HashAlg::Sha1,
            HASH_SHA256 => HashAlg::Sha256,
            HASH_SHA384 => HashAlg::Sha384,
            HASH_SHA512 => HashAlg::Sha512,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            HashAlg::Sha1 => "sha1",
            HashAlg::Sha256 => "sha256",
            HashAlg::Sha384 => "sha384",
            HashAlg::Sha512 => "sha512",
        }
    }

    pub fn len(self) -> usize {
        match self {
            HashAlg::Sha1 => 20,
            HashAlg::Sha256 => 32,
            HashAlg::Sha384 => 48,
            HashAlg::Sha512 => 64,
        }
    }

    pub fn hash(self, parts: &[&[u8]]) -> Vec<u8> {
        fn run<D: Digest>(parts: &[&[u8]]) -> Vec<u8> {
            let mut d = D::new();
            for p in parts {
                d.update(p);
            }
            d.finalize().to_vec()
        }
        match self {
            HashAlg::Sha1 => run::<Sha1>(parts),
            HashAlg::Sha256 => run::<Sha256>(parts),
            HashAlg::Sha384 => run::<Sha384>(parts),
            HashAlg::Sha512 => run::<Sha512>(parts),
        }
    }

    /// IKEv1's PRF: HMAC with the negotiated hash.
    pub fn prf(self, key: &[u8], parts: &[&[u8]]) -> Zeroizing<Vec<u8>> {
        fn run<M: Mac + hmac::digest::KeyInit>(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
            let mut m = <M as Mac>::new_from_slice(key).expect("HMAC takes any key length");
            for p in parts {
                m.update(p);
            }
            m.finalize().into_bytes().to_vec()
        }
        Zeroizing::new(match self {
            HashAlg::Sha1 => run::<Hmac<Sha1>>(key, parts),
            HashAlg::Sha256 => run::<Hmac<Sha256>>(key, parts),
            HashAlg::Sha384 => run::<Hmac<Sha384>>(key, parts),
            HashAlg::Sha512 => run::<Hmac<Sha512>>(key, parts),
        })
    }
}

/// Phase 1 (and ESP) CBC ciphers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum CbcAlg {
    Aes128,
    Aes192,
    Aes256,
    Tdes,
}

impl CbcAlg {
    pub fn key_len(self) -> usize {
        match self {
            CbcAlg::Aes128 => 16,
            CbcAlg::Aes192 => 24,
            CbcAlg::Aes256 => 32,
            CbcAlg::Tdes => 24,
        }
    }

    pub fn block(self) -> usize {
        match self {
            CbcAlg::Tdes => 8,
            _ => 16,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            CbcAlg::Aes128 => "aes128",
            CbcAlg::Aes192 => "aes192",
            CbcAlg::Aes256 => "aes256",
            CbcAlg::Tdes => "3des",
        }
    }

    /// Encrypts whole blocks in place (`buf.len()` a multiple of the block).
    pub fn encrypt(self, key: &[u8], iv: &[u8], buf: &mut [u8]) {
        fn run<C: BlockEncryptMut + KeyIvInit>(key: &[u8], iv: &[u8], buf: &mut [u8]) {
            let n = buf.len();
            C::new_from_slices(key, iv)
                .expect("key and IV lengths come from the algorithm")
                .encrypt_padded_mut::<NoPadding>(buf, n)
                .expect("whole blocks");
        }
        match self {
            CbcAlg::Aes128 => run::<cbc::Encryptor<aes::Aes128>>(key, iv, buf),
            CbcAlg::Aes192 => run::<cbc::Encryptor<aes::Aes192>>(key, iv, buf),
            CbcAlg::Aes256 => run::<cbc::Encryptor<aes::Aes256>>(key, iv, buf),
            CbcAlg::Tdes => run::<cbc::Encryptor<des::TdesEde3>>(key, iv, buf),
        }
    }

    /// Decrypts whole blocks in place; false if `buf` is not whole blocks.
    pub fn decrypt(self, key: &[u8], iv: &[u8], buf: &mut [u8]) -> bool {
        fn run<C: BlockDecryptMut + KeyIvInit>(key: &[u8], iv: &[u8], buf: &mut [u8]) -> bool {
            C::new_from_slices(key, iv)
                .expect("key and IV lengths come from the algorithm")
                .decrypt_padded_mut::<NoPadding>(buf)
                .is_ok()
        }
        if !buf.len().is_multiple_of(self.block()) {
            return false;
        }
        match self {
            CbcAlg::Aes128 => run::<cbc::Decryptor<aes::Aes128>>(key, iv, buf),
            CbcAlg::Aes192 => run::<cbc::Decryptor<aes::Aes192>>(key, iv, buf),
            CbcAlg::Aes256 => run::<cbc::Decryptor<aes::Aes256>>(key, iv, buf),
            CbcAlg::Tdes => run::<cbc::Decryptor<des::TdesEde3>>(key, iv, buf),
        }
    }
}
