//! ISAKMP/IKEv1 wire constants (RFC 2407, 2408, 2409, 3706, 3947) in one place.

pub const VERSION: u8 = 0x10;
pub const HEADER_LEN: usize = 28;
/// Generic payload header: next payload, reserved, length.
pub const PAYLOAD_HEADER_LEN: usize = 4;
/// Largest IKE message we accept (PSK exchanges stay far below it).
pub const MAX_MESSAGE: usize = 8192;

// Exchange types.
pub const EXCH_MAIN: u8 = 2;
pub const EXCH_AGGRESSIVE: u8 = 4;
pub const EXCH_INFO: u8 = 5;
pub const EXCH_QUICK: u8 = 32;

// Header flags.
pub const FLAG_ENCRYPTED: u8 = 0x01;
pub const FLAG_COMMIT: u8 = 0x02;

// Payload types.
pub const PL_NONE: u8 = 0;
pub const PL_SA: u8 = 1;
pub const PL_PROPOSAL: u8 = 2;
pub const PL_TRANSFORM: u8 = 3;
pub const PL_KE: u8 = 4;
pub const PL_ID: u8 = 5;
pub const PL_HASH: u8 = 8;
pub const PL_NONCE: u8 = 10;
pub const PL_NOTIFY: u8 = 11;
pub const PL_DELETE: u8 = 12;
pub const PL_VENDOR: u8 = 13;
pub const PL_NATD: u8 = 20;
pub const PL_NATOA: u8 = 21;
/// The NAT-T drafts' numbers (still sent by clients that announce a draft VID).
pub const PL_NATD_DRAFT: u8 = 130;
pub const PL_NATOA_DRAFT: u8 = 131;

// IPsec DOI.
pub const DOI_IPSEC: u32 = 1;
pub const SIT_IDENTITY_ONLY: u32 = 1;
pub const PROTO_ISAKMP: u8 = 1;
pub const PROTO_ESP: u8 = 3;
pub const KEY_IKE: u8 = 1;

// Phase 1 attributes and values.
pub const P1_ENC: u16 = 1;
pub const P1_HASH: u16 = 2;
pub const P1_AUTH: u16 = 3;
pub const P1_GROUP: u16 = 4;
pub const P1_LIFE_TYPE: u16 = 11;
pub const P1_LIFE_DURATION: u16 = 12;
pub const P1_KEY_LEN: u16 = 14;
pub const ENC_3DES: u16 = 5;
pub const ENC_AES_CBC: u16 = 7;
pub const HASH_SHA1: u16 = 2;
pub const HASH_SHA256: u16 = 4;
pub const HASH_SHA384: u16 = 5;
pub const HASH_SHA512: u16 = 6;
pub const AUTH_PSK: u16 = 1;
pub const LIFE_SECONDS: u16 = 1;
pub const LIFE_KILOBYTES: u16 = 2;

// Phase 2 (IPsec DOI) attributes and values.
pub const P2_LIFE_TYPE: u16 = 1;
pub const P2_LIFE_DURATION: u16 = 2;
pub const P2_GROUP: u16 = 3;
pub const P2_ENCAP: u16 = 4;
pub const P2_AUTH: u16 = 5;
pub const P2_KEY_LEN: u16 = 6;
pub const ENCAP_TUNNEL: u16 = 1;
pub const ENCAP_TRANSPORT: u16 = 2;
pub const ENCAP_UDP_TUNNEL: u16 = 3;
pub const ENCAP_UDP_TRANSPORT: u16 = 4;
pub const ENCAP_UDP_TUNNEL_DRAFT: u16 = 61443;
pub const ENCAP_UDP_TRANSPORT_DRAFT: u16 = 61444;
pub const P2_AUTH_SHA1: u16 = 2;
pub const P2_AUTH_SHA256: u16 = 5;
pub const ESP_3DES: u8 = 3;
pub const ESP_AES_CBC: u8 = 12;
pub const ESP_AES_GCM16: u8 = 20;

// Identification types.
pub const ID_IPV4_ADDR: u8 = 1;
pub const ID_IPV4_SUBNET: u8 = 4;
pub const IPPROTO_UDP: u8 = 17;
pub const L2TP_PORT: u16 = 1701;

// Notify message types.
pub const N_INVALID_PAYLOAD_TYPE: u16 = 1;
pub const N_INVALID_EXCHANGE_TYPE: u16 = 7;
pub const N_INVALID_MESSAGE_ID: u16 = 9;
pub const N_NO_PROPOSAL_CHOSEN: u16 = 14;
pub const N_PAYLOAD_MALFORMED: u16 = 16;
pub const N_INVALID_ID_INFORMATION: u16 = 18;
pub const N_INVALID_HASH_INFORMATION: u16 = 23;
pub const N_AUTHENTICATION_FAILED: u16 = 24;
pub const N_RESPONDER_LIFETIME: u16 = 24576;
pub const N_INITIAL_CONTACT: u16 = 24578;
pub const N_R_U_THERE: u16 = 36136;
pub const N_R_U_THERE_ACK: u16 = 36137;

// Vendor IDs (MD5 of their names).
pub const VID_NATT_RFC3947: [u8; 16] = hex16("4a131c81070358455c5728f20e95452f");
pub const VID_NATT_DRAFT_02: [u8; 16] = hex16("cd60464335df21f87cfdb2fc68b6a448");
pub const VID_NATT_DRAFT_02N: [u8; 16] = hex16("90cb80913ebb696e086381b5ec427b1f");
pub const VID_NATT_DRAFT_03: [u8; 16] = hex16("7d9419a65310ca6f2c179d9215529d56");
pub const VID_DPD: [u8; 16] = hex16("afcad71368a1f1c96b8696fc77570100");
/// Windows' "Vid-Initial-Contact": the same meaning as the notify.
pub const VID_MS_INITIAL_CONTACT: [u8; 16] = hex16("26244d38eddb61b3172a36e3d0cfb819");

const fn hex16(s: &str) -> [u8; 16] {
    let b = s.as_bytes();
    let mut out = [0u8; 16];
    let mut i = 0;
    while i < 16 {
        out[i] = (nibble(b[2 * i]) << 4) | nibble(b[2 * i + 1]);
        i += 1;
    }
    out
}

const fn nibble(c: u8) -> u8 {
    match c {
        b'0'..=b'9' => c - b'0',
        b'a'..=b'f' => c - b'a' + 10,
        _ => panic!("not a lower-case hex digit"),
    }
}
