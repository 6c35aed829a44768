//! PPP numbers: protocols, control codes, options (RFC 1661, 1332, 1877,
//! 1334, 1994, 2759, 1962, 3078).

// Protocol field values.
pub const PROTO_IPV4: u16 = 0x0021;
pub const PROTO_COMPRESSED: u16 = 0x00fd;
pub const PROTO_IPCP: u16 = 0x8021;
pub const PROTO_CCP: u16 = 0x80fd;
pub const PROTO_LCP: u16 = 0xc021;
pub const PROTO_PAP: u16 = 0xc023;
pub const PROTO_CHAP: u16 = 0xc223;

// Control-protocol codes (LCP, IPCP, CCP share 1-7; 8-11 are LCP's, 14-15 CCP's).
pub const CONF_REQ: u8 = 1;
pub const CONF_ACK: u8 = 2;
pub const CONF_NAK: u8 = 3;
pub const CONF_REJ: u8 = 4;
pub const TERM_REQ: u8 = 5;
pub const TERM_ACK: u8 = 6;
pub const CODE_REJ: u8 = 7;
pub const PROTO_REJ: u8 = 8;
pub const ECHO_REQ: u8 = 9;
pub const ECHO_REPLY: u8 = 10;
pub const DISCARD_REQ: u8 = 11;
pub const RESET_REQ: u8 = 14;
pub const RESET_ACK: u8 = 15;

// LCP options.
pub const LCP_MRU: u8 = 1;
pub const LCP_ACCM: u8 = 2;
pub const LCP_AUTH: u8 = 3;
pub const LCP_MAGIC: u8 = 5;
pub const LCP_PFC: u8 = 7;
pub const LCP_ACFC: u8 = 8;

/// CHAP algorithm numbers in the LCP auth option.
pub const CHAP_MSV2: u8 = 0x81;
pub const CHAP_MD5: u8 = 5;

// IPCP options.
pub const IPCP_ADDRESS: u8 = 3;
pub const IPCP_DNS1: u8 = 129;
pub const IPCP_DNS2: u8 = 131;

// CCP options.
pub const CCP_MPPE: u8 = 18;
/// MPPE option bits (RFC 3078 §2.1), in the 32-bit option value.
pub const MPPE_STATELESS: u32 = 0x0100_0000; // H
pub const MPPE_128: u32 = 0x40; // S
pub const MPPE_56: u32 = 0x80; // M
pub const MPPE_40: u32 = 0x20; // L

// PAP and CHAP codes.
pub const PAP_REQ: u8 = 1;
pub const PAP_ACK: u8 = 2;
pub const PAP_NAK: u8 = 3;
pub const CHAP_CHALLENGE: u8 = 1;
pub const CHAP_RESPONSE: u8 = 2;
pub const CHAP_SUCCESS: u8 = 3;
pub const CHAP_FAILURE: u8 = 4;

/// Default MRU; over PPTP/L2TP the tunnel MTU is what limits.
pub const DEFAULT_MRU: u16 = 1500;
/// RFC 1661 §4.6 defaults.
pub const MAX_CONFIGURE: u32 = 10;
pub const MAX_TERMINATE: u32 = 2;
pub const MAX_FAILURE: u32 = 5;
pub const RESTART_INTERVAL: std::time::Duration = std::time::Duration::from_secs(3);
