//! Every number on the native protocol's wire, in one place
//! (docs/native-protocol.md is the prose for these).
use std::time::Duration;

/// Protocol versions this build speaks (the handshake picks the highest common one).
/// Version 2 authenticates the gateway by a static key the client pins
/// (docs/decisions.md #34); version 1 (no gateway key) is refused.
pub const VERSION_MIN: u8 = 2;
pub const VERSION_MAX: u8 = 2;

/// First bytes of a client's first frame.
pub const MAGIC: [u8; 4] = *b"VCTL";
/// Noise pattern and primitives of the handshake: the client knows the
/// gateway's static key beforehand (NK) and both hold the PSK.
pub const NOISE_PARAMS: &str = "Noise_NKpsk0_25519_AESGCM_SHA256";
/// Noise pattern of a rekey inside the established (already authenticated) channel.
pub const REKEY_NOISE_PARAMS: &str = "Noise_NNpsk0_25519_AESGCM_SHA256";
/// Domain label of a gateway key's fingerprint.
pub const FINGERPRINT_LABEL: &[u8] = b"vpn-ctl gateway key\0";
/// Prologue prefix bound into the handshake transcript.
pub const PROLOGUE_LABEL: &[u8] = b"vpn-ctl native";
/// Domain label for turning the configured PSK text into the Noise PSK.
pub const PSK_LABEL: &[u8] = b"vpn-ctl native psk v1\0";
/// HKDF info labels: keys of the TCP control frames and of the data channel.
pub const LABEL_CONTROL_C2S: &[u8] = b"vpn-ctl/1 control c2s";
pub const LABEL_CONTROL_S2C: &[u8] = b"vpn-ctl/1 control s2c";
pub const LABEL_DATA_C2S: &[u8] = b"vpn-ctl/1 data c2s";
pub const LABEL_DATA_S2C: &[u8] = b"vpn-ctl/1 data s2c";

// ---- TCP handshake frames: u16 big-endian length, then a body whose first byte is its type.
pub const FRAME_CLIENT_INIT: u8 = 0x10;
pub const FRAME_SERVER_INIT: u8 = 0x11;
pub const FRAME_AUTH: u8 = 0x12;
pub const FRAME_WELCOME: u8 = 0x13;
pub const FRAME_REJECT: u8 = 0x14;
pub const FRAME_ERROR: u8 = 0x1f;
/// Longest frame body either side accepts.
pub const MAX_FRAME: usize = 1024;

/// Plaintext ERROR codes (sent when no shared key exists yet).
pub const ERROR_HANDSHAKE: u8 = 1;
pub const ERROR_VERSION: u8 = 2;
pub const ERROR_BUSY: u8 = 3;
pub const ERROR_PROTOCOL: u8 = 4;

// ---- TLVs (type u8, length u8, value) inside handshake payloads and frames.
pub const TLV_CIPHERS: u8 = 0x01;
pub const TLV_CIPHER: u8 = 0x02;
pub const TLV_USER: u8 = 0x10;
pub const TLV_PASSWORD: u8 = 0x11;
pub const TLV_WANT_IP: u8 = 0x12;
pub const TLV_SESSION_ID: u8 = 0x20;
pub const TLV_ADDRESS: u8 = 0x21;
pub const TLV_GATEWAY: u8 = 0x22;
pub const TLV_ROUTE: u8 = 0x23;
pub const TLV_DNS: u8 = 0x24;
pub const TLV_MTU: u8 = 0x25;
pub const TLV_KEEPALIVE: u8 = 0x26;
pub const TLV_REKEY: u8 = 0x27;
pub const TLV_UDP_PORT: u8 = 0x28;
pub const TLV_REASON: u8 = 0x30;
pub const TLV_MESSAGE: u8 = 0x31;
pub const MAX_USER: usize = 64;
pub const MAX_PASSWORD: usize = 128;

// ---- Data channel (UDP): a 16-byte header, then AEAD ciphertext and tag.
pub const DATA_HEADER_LEN: usize = 16;
pub const TAG_LEN: usize = 16;
pub const OVERHEAD: usize = DATA_HEADER_LEN + TAG_LEN;
pub const TYPE_DATA: u8 = 0x01;

/// First plaintext byte of a control message inside a data packet (IP
/// packets start with 0x4_ or 0x6_, so the two never collide).
pub const CTL_KEEPALIVE: u8 = 0x01;
pub const CTL_KEEPALIVE_REPLY: u8 = 0x02;
pub const CTL_REKEY_INIT: u8 = 0x03;
pub const CTL_REKEY_RESP: u8 = 0x04;
pub const CTL_BYE: u8 = 0x05;

/// A key is retired after this many packets (far below AES-GCM's limits).
pub const REKEY_AFTER_PACKETS: u64 = 1 << 40;

// ---- Defaults the gateway pushes in WELCOME.
pub const DEFAULT_KEEPALIVE: Duration = Duration::from_secs(10);
pub const DEFAULT_REKEY: Duration = Duration::from_secs(600);
pub const DEFAULT_MTU: u16 = 1420;
/// A peer is dead after this many keepalive intervals without an authentic packet.
pub const DEAD_AFTER_KEEPALIVES: u32 = 3;
/// Rekey initiations are retransmitted this often, this many times.
pub const REKEY_RETRY: Duration = Duration::from_secs(1);
pub const REKEY_TRIES: u32 = 10;
/// After a rekey that got no answer, the client starts over after this pause.
pub const REKEY_PAUSE: Duration = Duration::from_secs(30);
/// BYE is sent this many times (it is not acknowledged).
pub const BYE_COPIES: usize = 3;
