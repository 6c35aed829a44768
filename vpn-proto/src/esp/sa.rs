//! One ESP security association per direction. Keys are scheduled once;
//! per packet there is no allocation beyond the caller's buffer.
use aes::cipher::{
    block_padding::NoPadding, BlockDecryptMut, BlockEncrypt, BlockEncryptMut, InnerIvInit, KeyInit,
};
use aes_gcm::{aead::AeadInPlace, Aes128Gcm, Aes256Gcm, Nonce, Tag};
use hmac::{Hmac, Mac};
use sha1::Sha1;
use sha2::Sha256;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use super::{EspCipher, EspInteg, EspTransform, ESP_HEADER_LEN};
use crate::{ike::crypto::CbcAlg, replay::ReplayWindow};

#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EspError {
    #[error("too short")]
    Truncated,
    #[error("replayed or too old sequence number")]
    Replay,
    #[error("integrity check failed")]
    Integrity,
    #[error("bad padding")]
    Padding,
    #[error("sequence numbers exhausted")]
    Exhausted,
}

#[derive(Clone)]
enum Cipher {
    Aes128(aes::Aes128),
    Aes192(aes::Aes192),
    Aes256(aes::Aes256),
    Tdes(des::TdesEde3),
    Gcm128(Box<Aes128Gcm>, [u8; 4]),
    Gcm256(Box<Aes256Gcm>, [u8; 4]),
}

#[derive(Clone)]
enum Integ {
    None,
    Sha1(Hmac<Sha1>),
    Sha256(Hmac<Sha256>),
}

struct Keys {
    transform: EspTransform,
    cipher: Cipher,
    integ: Integ,
    /// Kept for a restart's handoff (the schedules above are opaque).
    keymat: Zeroizing<Vec<u8>>,
}

impl Keys {
    /// `keymat`: the encryption key (and GCM salt), then the integrity key.
    fn new(transform: EspTransform, keymat: &[u8]) -> Keys {
        assert_eq!(keymat.len(), transform.keymat_len(), "KEYMAT length");
        let (ek, ik) = keymat.split_at(transform.enc_key_len());
        let cipher = match transform.cipher {
            EspCipher::Cbc(CbcAlg::Aes128) => Cipher::Aes128(KeyInit::new_from_slice(ek).unwrap()),
            EspCipher::Cbc(CbcAlg::Aes192) => Cipher::Aes192(KeyInit::new_from_slice(ek).unwrap()),
            EspCipher::Cbc(CbcAlg::Aes256) => Cipher::Aes256(KeyInit::new_from_slice(ek).unwrap()),
            EspCipher::Cbc(CbcAlg::Tdes) => Cipher::Tdes(KeyInit::new_from_slice(ek).unwrap()),
            EspCipher::AesGcm16 { key_len } => {
                let salt: [u8; 4] = ek[key_len..].try_into().unwrap();
                if key_len == 16 {
                    Cipher::Gcm128(Box::new(KeyInit::new_from_slice(&ek[..16]).unwrap()), salt)
                } else {
                    Cipher::Gcm256(Box::new(KeyInit::new_from_slice(&ek[..32]).unwrap()), salt)
                }
            }
        };
        let integ = match transform.integ {
            EspInteg::None => Integ::None,
            EspInteg::HmacSha1_96 => Integ::Sha1(Mac::new_from_slice(ik).unwrap()),
            EspInteg::HmacSha256_128 => Integ::Sha256(Mac::new_from_slice(ik).unwrap()),
        };
        Keys {
            transform,
            cipher,
            integ,
            keymat: Zeroizing::new(keymat.to_vec()),
        }
    }

    fn icv(&self, data: &[u8], out: &mut [u8]) {
        let n = out.len();
        match &self.integ {
            Integ::None => {}
            Integ::Sha1(m) => {
                let mut m = m.clone();
                m.update(data);
                out.copy_from_slice(&m.finalize().into_bytes()[..n]);
            }
            Integ::Sha256(m) => {
                let mut m = m.clone();
                m.update(data);
                out.copy_from_slice(&m.finalize().into_bytes()[..n]);
            }
        }
    }
}

macro_rules! cbc {
    ($dir:ident, $cipher:expr, $iv:expr, $buf:expr, $f:ident, $($arg:tt)*) => {
        match $cipher {
            Cipher::Aes128(c) => cbc::$dir::<aes::Aes128>::inner_iv_slice_init(c.clone(), $iv).unwrap().$f::<NoPadding>($($arg)*),
            Cipher::Aes192(c) => cbc::$dir::<aes::Aes192>::inner_iv_slice_init(c.clone(), $iv).unwrap().$f::<NoPadding>($($arg)*),
            Cipher::Aes256(c) => cbc::$dir::<aes::Aes256>::inner_iv_slice_init(c.clone(), $iv).unwrap().$f::<NoPadding>($($arg)*),
            Cipher::Tdes(c) => cbc::$dir::<des::TdesEde3>::inner_iv_slice_init(c.clone(), $iv).unwrap().$f::<NoPadding>($($arg)*),
            Cipher::Gcm128(..) | Cipher::Gcm256(..) => unreachable!("CBC only"),
        }
    };
}

/// One direction's SA as plain data: keys, and the last sequence number
/// sent (outbound) or the replay window (inbound: `seq` is its next
/// expected number, `bits` its bitmap). Keys are wiped when dropped.
#[derive(serde::Serialize, serde::Deserialize)]
pub struct SaCarry {
    pub spi: u32,
    pub transform: EspTransform,
    pub keymat: Vec<u8>,
    pub seq: u64,
    pub bits: Vec<u64>,
}

impl Drop for SaCarry {
    fn drop(&mut self) {
        use zeroize::Zeroize as _;
        self.keymat.zeroize();
    }
}

/// Sends: sequence numbers from 1, IVs unpredictable without an RNG per packet.
pub struct Outbound {
    pub spi: u32,
    keys: Keys,
    seq: u32,
}

impl Outbound {
    pub fn new(spi: u32, transform: EspTransform, keymat: &[u8]) -> Outbound {
        Outbound {
            spi,
            keys: Keys::new(transform, keymat),
            seq: 0,
        }
    }

    pub fn transform(&self) -> EspTransform {
        self.keys.transform
    }

    pub fn sent(&self) -> u32 {
        self.seq
    }

    /// This SA as plain data (a restart hands it over).
    pub fn carry(&self) -> SaCarry {
        SaCarry {
            spi: self.spi,
            transform: self.keys.transform,
            keymat: self.keys.keymat.to_vec(),
            seq: u64::from(self.seq),
            bits: Vec::new(),
        }
    }

    /// The SA `carry` described; sending goes on after its last number.
    pub fn resume(c: &SaCarry) -> Option<Outbound> {
        (c.keymat.len() == c.transform.keymat_len()).then(|| Outbound {
            spi: c.spi,
            keys: Keys::new(c.transform, &c.keymat),
            seq: u32::try_from(c.seq).unwrap_or(u32::MAX),
        })
    }

    /// Appends the ESP packet carrying `payload` (next header `next`) to `out`.
    pub fn seal(&mut self, next: u8, payload: &[u8], out: &mut Vec<u8>) -> Result<(), EspError> {
        let t = self.keys.transform;
        self.seq = self.seq.checked_add(1).ok_or(EspError::Exhausted)?;
        let start = out.len();
        out.extend_from_slice(&self.spi.to_be_bytes());
        out.extend_from_slice(&self.seq.to_be_bytes());
        let iv_at = out.len();
        let iv_len = t.iv_len();
        out.resize(iv_at + iv_len, 0);
        let body_at = out.len();
        out.extend_from_slice(payload);
        let align = t.align();
        let pad = (align - (payload.len() + 2) % align) % align;
        out.extend((1..=pad as u8).chain([pad as u8, next]));
        match &self.keys.cipher {
            Cipher::Gcm128(..) | Cipher::Gcm256(..) => {
                // RFC 4106: the explicit IV only needs to be unique per key.
                let iv = u64::from(self.seq).to_be_bytes();
                out[iv_at..body_at].copy_from_slice(&iv);
                let aad: [u8; 8] = out[start..iv_at].try_into().unwrap();
                let tag = self.gcm(
                    &aad,
                    &iv,
                    |g, n, aad, b| g.encrypt_in_place_detached(n, aad, b),
                    &mut out[body_at..],
                );
                out.extend_from_slice(&tag.map_err(|_| EspError::Integrity)?);
            }
            cipher => {
                // NIST SP 800-38A App. C: IV = E_K(unique nonce).
                let mut iv = [0u8; 16];
                iv[..4].copy_from_slice(&self.spi.to_be_bytes());
                iv[4..8].copy_from_slice(&self.seq.to_be_bytes());
                iv[8] = 0x80;
                let iv = &mut iv[..iv_len];
                block_encrypt(cipher, iv);
                out[iv_at..body_at].copy_from_slice(iv);
                let n = out.len() - body_at;
                let iv = out[iv_at..body_at].to_vec();
                cbc!(
                    Encryptor,
                    cipher,
                    &iv,
                    (),
                    encrypt_padded_mut,
                    &mut out[body_at..],
                    n
                )
                .expect("whole blocks");
                let icv_at = out.len();
                out.resize(icv_at + t.icv_len(), 0);
                let (data, icv) = out[start..].split_at_mut(icv_at - start);
                self.keys.icv(data, icv);
            }
        }
        Ok(())
    }

    fn gcm<R>(
        &self,
        aad: &[u8],
        iv: &[u8; 8],
        f: impl FnOnce(&dyn GcmOp, &Nonce<aes_gcm::aead::consts::U12>, &[u8], &mut [u8]) -> R,
        buf: &mut [u8],
    ) -> R {
        gcm_run(&self.keys.cipher, aad, iv, f, buf)
    }
}

/// AES-GCM behind one object-safe face for both key sizes.
trait GcmOp {
    fn encrypt_in_place_detached(
        &self,
        n: &Nonce<aes_gcm::aead::consts::U12>,
        aad: &[u8],
        b: &mut [u8],
    ) -> Result<[u8; 16], aes_gcm::Error>;
    fn decrypt_in_place_detached(
        &self,
        n: &Nonce<aes_gcm::aead::consts::U12>,
        aad: &[u8],
        b: &mut [u8],
        tag: &[u8; 16],
    ) -> Result<(), aes_gcm::Error>;
}

impl<
        A: AeadInPlace<NonceSize = aes_gcm::aead::consts::U12, TagSize = aes_gcm::aead::consts::U16>,
    > GcmOp for A
{
    fn encrypt_in_place_detached(
        &self,
        n: &Nonce<aes_gcm::aead::consts::U12>,
        aad: &[u8],
        b: &mut [u8],
    ) -> Result<[u8; 16], aes_gcm::Error> {
        AeadInPlace::encrypt_in_place_detached(self, n, aad, b).map(|t| t.into())
    }

    fn decrypt_in_place_detached(
        &self,
        n: &Nonce<aes_gcm::aead::consts::U12>,
        aad: &[u8],
        b: &mut [u8],
        tag: &[u8; 16],
    ) -> Result<(), aes_gcm::Error> {
        AeadInPlace::decrypt_in_place_detached(self, n, aad, b, Tag::from_slice(tag))
    }
}

fn gcm_run<R>(
    cipher: &Cipher,
    aad: &[u8],
    iv: &[u8; 8],
    f: impl FnOnce(&dyn GcmOp, &Nonce<aes_gcm::aead::consts::U12>, &[u8], &mut [u8]) -> R,
    buf: &mut [u8],
) -> R {
    let (g, salt): (&dyn GcmOp, &[u8; 4]) = match cipher {
        Cipher::Gcm128(g, s) => (g.as_ref(), s),
        Cipher::Gcm256(g, s) => (g.as_ref(), s),
        _ => unreachable!("GCM only"),
    };
    let mut nonce = [0u8; 12];
    nonce[..4].copy_from_slice(salt);
    nonce[4..].copy_from_slice(iv);
    f(g, Nonce::from_slice(&nonce), aad, buf)
}

fn block_encrypt(cipher: &Cipher, block: &mut [u8]) {
    match cipher {
        Cipher::Aes128(c) => c.encrypt_block(block.into()),
        Cipher::Aes192(c) => c.encrypt_block(block.into()),
        Cipher::Aes256(c) => c.encrypt_block(block.into()),
        Cipher::Tdes(c) => c.encrypt_block(block.into()),
        Cipher::Gcm128(..) | Cipher::Gcm256(..) => unreachable!("CBC only"),
    }
}

/// What [`Inbound::open`] found: the payload's place in the buffer and its
/// next-header value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Opened {
    pub next: u8,
    pub start: usize,
    pub end: usize,
    pub seq: u32,
}

/// Receives: ICV first, then the replay window, then decryption.
pub struct Inbound {
    pub spi: u32,
    keys: Keys,
    replay: ReplayWindow,
}

impl Inbound {
    /// This SA as plain data (a restart hands it over).
    pub fn carry(&self) -> SaCarry {
        let (next, bits) = self.replay.to_parts();
        SaCarry {
            spi: self.spi,
            transform: self.keys.transform,
            keymat: self.keys.keymat.to_vec(),
            seq: next,
            bits,
        }
    }

    /// The SA `carry` described, with its replay window.
    pub fn resume(c: &SaCarry) -> Option<Inbound> {
        if c.keymat.len() != c.transform.keymat_len() {
            return None;
        }
        Some(Inbound {
            spi: c.spi,
            keys: Keys::new(c.transform, &c.keymat),
            replay: ReplayWindow::from_parts(c.seq, &c.bits)?,
        })
    }

    pub fn new(spi: u32, transform: EspTransform, keymat: &[u8]) -> Inbound {
        Inbound {
            spi,
            keys: Keys::new(transform, keymat),
            replay: ReplayWindow::default(),
        }
    }

    pub fn transform(&self) -> EspTransform {
        self.keys.transform
    }

    /// Decrypts `packet` (starting at the SPI) in place.
    pub fn open(&mut self, packet: &mut [u8]) -> Result<Opened, EspError> {
        let t = self.keys.transform;
        let (iv_len, icv_len) = (t.iv_len(), t.icv_len());
        let body_at = ESP_HEADER_LEN + iv_len;
        if packet.len() < body_at + t.align().max(4) + icv_len {
            return Err(EspError::Truncated);
        }
        let seq = u32::from_be_bytes(packet[4..8].try_into().unwrap());
        if seq == 0 || !self.replay.check(u64::from(seq)) {
            return Err(EspError::Replay);
        }
        let icv_at = packet.len() - icv_len;
        match &self.keys.cipher {
            Cipher::Gcm128(..) | Cipher::Gcm256(..) => {
                let aad: [u8; 8] = packet[..8].try_into().unwrap();
                let iv: [u8; 8] = packet[8..16].try_into().unwrap();
                let tag: [u8; 16] = packet[icv_at..].try_into().unwrap();
                gcm_run(
                    &self.keys.cipher,
                    &aad,
                    &iv,
                    |g, n, aad, b| g.decrypt_in_place_detached(n, aad, b, &tag),
                    &mut packet[body_at..icv_at],
                )
                .map_err(|_| EspError::Integrity)?;
            }
            cipher => {
                let mut want = Zeroizing::new([0u8; 16]);
                let want = &mut want[..icv_len];
                self.keys.icv(&packet[..icv_at], want);
                if !bool::from(want.ct_eq(&packet[icv_at..])) {
                    return Err(EspError::Integrity);
                }
                // Only now: a forged packet is an integrity failure whatever its length.
                if !(icv_at - body_at).is_multiple_of(t.align()) {
                    return Err(EspError::Padding);
                }
                let iv = packet[ESP_HEADER_LEN..body_at].to_vec();
                cbc!(
                    Decryptor,
                    cipher,
                    &iv,
                    (),
                    decrypt_padded_mut,
                    &mut packet[body_at..icv_at]
                )
                .map_err(|_| EspError::Padding)?;
            }
        }
        let next = packet[icv_at - 1];
        let pad = packet[icv_at - 2] as usize;
        let end = (icv_at - 2)
            .checked_sub(pad)
            .filter(|&e| e >= body_at)
            .ok_or(EspError::Padding)?;
        if !packet[end..icv_at - 2]
            .iter()
            .enumerate()
            .all(|(i, &b)| b as usize == i + 1)
        {
            return Err(EspError::Padding);
        }
        if !self.replay.update(u64::from(seq)) {
            return Err(EspError::Replay);
        }
        Ok(Opened {
            next,
            start: body_at,
            end,
            seq,
        })
    }
}
