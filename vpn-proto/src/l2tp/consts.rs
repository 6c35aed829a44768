//! L2TPv2 numbers (RFC 2661): header bits, message types, AVP attributes,
//! result and error codes. The one place they are written.

// Header flag bits: shared with the data plane.
pub use vpn_common::wire::{
    L2TP_F_LENGTH as F_LENGTH, L2TP_F_OFFSET as F_OFFSET, L2TP_F_PRIORITY as F_PRIORITY,
    L2TP_F_SEQUENCE as F_SEQUENCE, L2TP_F_TYPE as F_TYPE, L2TP_VERSION as VERSION,
    L2TP_VERSION_MASK as VERSION_MASK,
};

// Control message types (Message Type AVP values).
pub const SCCRQ: u16 = 1;
pub const SCCRP: u16 = 2;
pub const SCCCN: u16 = 3;
pub const STOPCCN: u16 = 4;
pub const HELLO: u16 = 6;
pub const OCRQ: u16 = 7;
pub const OCRP: u16 = 8;
pub const OCCN: u16 = 9;
pub const ICRQ: u16 = 10;
pub const ICRP: u16 = 11;
pub const ICCN: u16 = 12;
pub const CDN: u16 = 14;
pub const WEN: u16 = 15;
pub const SLI: u16 = 16;

// AVP header bits.
pub const AVP_MANDATORY: u16 = 0x8000;
pub const AVP_HIDDEN: u16 = 0x4000;
pub const AVP_LENGTH_MASK: u16 = 0x03ff;
pub const AVP_HEADER_LEN: usize = 6;

// Attribute types (IETF, vendor 0).
pub const A_MESSAGE_TYPE: u16 = 0;
pub const A_RESULT_CODE: u16 = 1;
pub const A_PROTOCOL_VERSION: u16 = 2;
pub const A_FRAMING_CAPABILITIES: u16 = 3;
pub const A_BEARER_CAPABILITIES: u16 = 4;
pub const A_TIE_BREAKER: u16 = 5;
pub const A_FIRMWARE_REVISION: u16 = 6;
pub const A_HOST_NAME: u16 = 7;
pub const A_VENDOR_NAME: u16 = 8;
pub const A_ASSIGNED_TUNNEL_ID: u16 = 9;
pub const A_RECEIVE_WINDOW_SIZE: u16 = 10;
pub const A_CHALLENGE: u16 = 11;
pub const A_CHALLENGE_RESPONSE: u16 = 13;
pub const A_ASSIGNED_SESSION_ID: u16 = 14;
pub const A_CALL_SERIAL_NUMBER: u16 = 15;
pub const A_FRAMING_TYPE: u16 = 19;
pub const A_TX_CONNECT_SPEED: u16 = 24;
pub const A_RANDOM_VECTOR: u16 = 36;
pub const A_SEQUENCING_REQUIRED: u16 = 39;

/// Attributes this LNS understands (an unknown one with the M bit set
/// ends the tunnel or session, RFC 2661 §4.1). Informational ones we read
/// past are listed too.
pub const KNOWN_ATTRIBUTES: &[u16] = &[
    0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26,
    27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39,
];

// StopCCN result codes (§4.4.2).
pub const STOP_CLEAR: u16 = 1;
pub const STOP_GENERAL_ERROR: u16 = 2;
pub const STOP_NOT_AUTHORIZED: u16 = 4;
pub const STOP_BAD_VERSION: u16 = 5;
pub const STOP_SHUTTING_DOWN: u16 = 6;
// CDN result codes.
pub const CDN_GENERAL_ERROR: u16 = 2;
pub const CDN_ADMIN: u16 = 3;
pub const CDN_NO_RESOURCES: u16 = 4;
// Error codes (with the "general error" result codes).
pub const ERR_NONE: u16 = 0;
pub const ERR_BAD_LENGTH: u16 = 2;
pub const ERR_BAD_VALUE: u16 = 3;
pub const ERR_NO_RESOURCES: u16 = 4;
pub const ERR_VENDOR: u16 = 6;
pub const ERR_UNKNOWN_MANDATORY: u16 = 8;
