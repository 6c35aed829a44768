//! Keys and AEAD of the native protocol: the Noise handshake (snow), key
//! derivation from its split (HKDF-SHA256), and the data ciphers (ring).
use ring::{
    aead::{self, Aad, LessSafeKey, Nonce, UnboundKey},
    digest, hkdf,
};

use std::sync::Arc;

pub use super::x25519::StaticKey;
use super::{consts::*, x25519};

/// Data-channel ciphers, by wire code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cipher {
    Aes256Gcm = 1,
    ChaCha20Poly1305 = 2,
}

impl Cipher {
    /// Preference order when the client offers several.
    pub const ALL: [Cipher; 2] = [Cipher::Aes256Gcm, Cipher::ChaCha20Poly1305];

    pub fn from_code(c: u8) -> Option<Cipher> {
        Cipher::ALL.into_iter().find(|x| *x as u8 == c)
    }

    pub fn name(self) -> &'static str {
        match self {
            Cipher::Aes256Gcm => "aes-256-gcm",
            Cipher::ChaCha20Poly1305 => "chacha20-poly1305",
        }
    }

    pub fn from_name(s: &str) -> Option<Cipher> {
        Cipher::ALL.into_iter().find(|x| x.name() == s)
    }

    fn algorithm(self) -> &'static aead::Algorithm {
        match self {
            Cipher::Aes256Gcm => &aead::AES_256_GCM,
            Cipher::ChaCha20Poly1305 => &aead::CHACHA20_POLY1305,
        }
    }
}

/// The 32-byte Noise PSK from the configured pre-shared key text.
pub fn noise_psk(psk_text: &str) -> zeroize::Zeroizing<[u8; 32]> {
    let mut ctx = digest::Context::new(&digest::SHA256);
    ctx.update(PSK_LABEL);
    ctx.update(psk_text.as_bytes());
    let mut out = zeroize::Zeroizing::new([0u8; 32]);
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

/// HKDF-SHA256 (RFC 5869) with an empty salt: 32 bytes of `info` from `ikm`.
pub fn derive(ikm: &[u8; 32], info: &[u8]) -> [u8; 32] {
    struct Len32;
    impl hkdf::KeyType for Len32 {
        fn len(&self) -> usize {
            32
        }
    }
    let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, &[]).extract(ikm);
    let infos = [info];
    let okm = prk
        .expand(&infos, Len32)
        .expect("32 bytes is a valid HKDF-SHA256 length");
    let mut out = [0u8; 32];
    okm.fill(&mut out).expect("length matches");
    out
}

/// Keys of one direction pair, named from the local side's point of view.
/// Not `Clone`; wiped when dropped.
pub struct KeyPair {
    pub send: [u8; 32],
    pub recv: [u8; 32],
}

impl Drop for KeyPair {
    fn drop(&mut self) {
        use zeroize::Zeroize as _;
        self.send.zeroize();
        self.recv.zeroize();
    }
}

impl std::fmt::Debug for KeyPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyPair { <redacted> }")
    }
}

/// Control-frame and data keys derived from a Noise split
/// (`i2r`: initiator to responder). The client is always the initiator.
pub fn session_keys(i2r: &[u8; 32], r2i: &[u8; 32], client: bool) -> (KeyPair, KeyPair) {
    let (c2s, s2c) = (
        (derive(i2r, LABEL_CONTROL_C2S), derive(i2r, LABEL_DATA_C2S)),
        (derive(r2i, LABEL_CONTROL_S2C), derive(r2i, LABEL_DATA_S2C)),
    );
    let pair = |send: [u8; 32], recv: [u8; 32]| KeyPair { send, recv };
    if client {
        (pair(c2s.0, s2c.0), pair(c2s.1, s2c.1))
    } else {
        (pair(s2c.0, c2s.0), pair(s2c.1, c2s.1))
    }
}

/// The data keys of a rekey handshake (no control keys after the first).
pub fn data_keys(i2r: &[u8; 32], r2i: &[u8; 32], client: bool) -> KeyPair {
    session_keys(i2r, r2i, client).1
}

/// The gateway's side of the handshake's static key: its private key (the
/// responder) or the public key the client pinned (the initiator).
#[derive(Clone, Copy)]
pub enum GatewayKey<'a> {
    Private(&'a Arc<StaticKey>),
    Pinned(&'a [u8; 32]),
}

/// The first handshake's Noise NKpsk0 state. `prologue` binds the client's
/// hello into the transcript; `fixed_ephemeral` is for test vectors only.
pub(crate) fn noise_handshake(
    psk: &[u8; 32],
    prologue: &[u8],
    key: GatewayKey<'_>,
    fixed_ephemeral: Option<&[u8; 32]>,
) -> Result<snow::HandshakeState, snow::Error> {
    let params = NOISE_PARAMS.parse().expect("valid Noise parameters");
    let preset = match key {
        GatewayKey::Private(k) => Some(k.clone()),
        GatewayKey::Pinned(_) => None,
    };
    let resolver = Box::new(x25519::Resolver { preset });
    let mut b = snow::Builder::with_resolver(params, resolver)
        .psk(0, psk)?
        .prologue(prologue)?;
    if let Some(e) = fixed_ephemeral {
        b = b.fixed_ephemeral_key_for_testing_only(e);
    }
    match key {
        GatewayKey::Pinned(public) => b.remote_public_key(public)?.build_initiator(),
        GatewayKey::Private(k) => b.local_private_key(k.private())?.build_responder(),
    }
}

/// A rekey's Noise NNpsk0 state (inside the authenticated channel).
/// `prologue` binds the session and epoch into the transcript.
pub fn noise(
    psk: &[u8; 32],
    prologue: &[u8],
    initiator: bool,
) -> Result<snow::HandshakeState, snow::Error> {
    let params = REKEY_NOISE_PARAMS.parse().expect("valid Noise parameters");
    let resolver = Box::new(x25519::Resolver { preset: None });
    let b = snow::Builder::with_resolver(params, resolver)
        .psk(0, psk)?
        .prologue(prologue)?;
    if initiator {
        b.build_initiator()
    } else {
        b.build_responder()
    }
}

/// A new gateway static private key.
/// Any 32 random bytes are an X25519 private key.
pub fn generate_gateway_key() -> [u8; 32] {
    let mut k = [0u8; 32];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut k)
        .expect("the system's random source");
    k
}

/// The public half of a gateway's static key (X25519).
pub fn gateway_public(private: &[u8; 32]) -> [u8; 32] {
    *StaticKey::new(private).public()
}

/// A short, comparable name of a gateway key: 16 bytes of SHA-256 in
/// colon-separated hex groups.
pub fn fingerprint(public: &[u8; 32]) -> String {
    let mut ctx = digest::Context::new(&digest::SHA256);
    ctx.update(FINGERPRINT_LABEL);
    ctx.update(public);
    let d = ctx.finish();
    d.as_ref()[..16]
        .chunks(2)
        .map(|c| format!("{:02x}{:02x}", c[0], c[1]))
        .collect::<Vec<_>>()
        .join(":")
}

/// One direction's AEAD key. Nonce = 4 zero bytes then the 64-bit counter,
/// big-endian; counters never repeat under one key.
pub struct AeadKey {
    key: LessSafeKey,
    /// The key's bytes, kept for a restart's handoff (ring's key is sealed).
    raw: zeroize::Zeroizing<[u8; 32]>,
}

impl AeadKey {
    pub fn new(cipher: Cipher, key: &[u8; 32]) -> AeadKey {
        let unbound = UnboundKey::new(cipher.algorithm(), key).expect("32-byte key");
        AeadKey {
            key: LessSafeKey::new(unbound),
            raw: zeroize::Zeroizing::new(*key),
        }
    }

    pub fn raw(&self) -> &[u8; 32] {
        &self.raw
    }

    fn nonce(counter: u64) -> Nonce {
        let mut n = [0u8; 12];
        n[4..].copy_from_slice(&counter.to_be_bytes());
        Nonce::assume_unique_for_key(n)
    }

    /// Encrypts `buf[at..]` in place and appends the tag; `aad` is authenticated.
    pub fn seal(&self, counter: u64, aad: &[u8], buf: &mut Vec<u8>, at: usize) {
        let tag = self
            .key
            .seal_in_place_separate_tag(Self::nonce(counter), Aad::from(aad), &mut buf[at..])
            .expect("plaintext within AEAD limits");
        buf.extend_from_slice(tag.as_ref());
    }

    /// Decrypts ciphertext+tag in place; returns the plaintext length.
    pub fn open(&self, counter: u64, aad: &[u8], buf: &mut [u8]) -> Option<usize> {
        self.key
            .open_in_place(Self::nonce(counter), Aad::from(aad), buf)
            .ok()
            .map(|p| p.len())
    }
}
