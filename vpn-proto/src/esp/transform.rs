//! ESP transforms: cipher and integrity algorithm, and the key material
//! each takes (KEYMAT is encryption key first, then integrity key).
use crate::ike::crypto::CbcAlg;

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum EspCipher {
    Cbc(CbcAlg),
    /// AES-GCM with a 16-byte ICV (RFC 4106); key length 16 or 32.
    AesGcm16 {
        key_len: usize,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum EspInteg {
    /// For AEAD ciphers.
    None,
    HmacSha1_96,
    HmacSha256_128,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct EspTransform {
    pub cipher: EspCipher,
    pub integ: EspInteg,
}

impl EspTransform {
    pub fn enc_key_len(&self) -> usize {
        match self.cipher {
            EspCipher::Cbc(c) => c.key_len(),
            // The key, then a 4-byte salt.
            EspCipher::AesGcm16 { key_len } => key_len + 4,
        }
    }

    pub fn integ_key_len(&self) -> usize {
        match self.integ {
            EspInteg::None => 0,
            EspInteg::HmacSha1_96 => 20,
            EspInteg::HmacSha256_128 => 32,
        }
    }

    pub fn keymat_len(&self) -> usize {
        self.enc_key_len() + self.integ_key_len()
    }

    pub fn icv_len(&self) -> usize {
        match self.integ {
            EspInteg::None => 16,
            EspInteg::HmacSha1_96 => 12,
            EspInteg::HmacSha256_128 => 16,
        }
    }

    pub fn iv_len(&self) -> usize {
        match self.cipher {
            EspCipher::Cbc(c) => c.block(),
            EspCipher::AesGcm16 { .. } => 8,
        }
    }

    /// What the payload, padding and trailer are aligned to.
    pub fn align(&self) -> usize {
        match self.cipher {
            EspCipher::Cbc(c) => c.block(),
            EspCipher::AesGcm16 { .. } => 4,
        }
    }

    /// e.g. "aes128-sha1" or "aes256gcm16", as strongSwan names them.
    pub fn name(&self) -> String {
        match (self.cipher, self.integ) {
            (EspCipher::AesGcm16 { key_len }, _) => format!("aes{}gcm16", key_len * 8),
            (EspCipher::Cbc(c), EspInteg::HmacSha1_96) => format!("{}-sha1", c.name()),
            (EspCipher::Cbc(c), EspInteg::HmacSha256_128) => format!("{}-sha256", c.name()),
            (EspCipher::Cbc(c), EspInteg::None) => format!("{}-none", c.name()),
        }
    }
}
