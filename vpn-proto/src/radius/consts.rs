//! RADIUS numbers: codes (RFC 2865, 2866, 5176), attributes (RFC 2865,
//! 2866, 2869, 3579, 5176), Microsoft's vendor attributes (RFC 2548).

// Packet codes.
pub const ACCESS_REQUEST: u8 = 1;
pub const ACCESS_ACCEPT: u8 = 2;
pub const ACCESS_REJECT: u8 = 3;
pub const ACCOUNTING_REQUEST: u8 = 4;
pub const ACCOUNTING_RESPONSE: u8 = 5;
pub const ACCESS_CHALLENGE: u8 = 11;
pub const STATUS_SERVER: u8 = 12;
pub const DISCONNECT_REQUEST: u8 = 40;
pub const DISCONNECT_ACK: u8 = 41;
pub const DISCONNECT_NAK: u8 = 42;
pub const COA_REQUEST: u8 = 43;
pub const COA_ACK: u8 = 44;
pub const COA_NAK: u8 = 45;

// Attributes.
pub const USER_NAME: u8 = 1;
pub const USER_PASSWORD: u8 = 2;
pub const CHAP_PASSWORD: u8 = 3;
pub const NAS_IP_ADDRESS: u8 = 4;
pub const NAS_PORT: u8 = 5;
pub const SERVICE_TYPE: u8 = 6;
pub const FRAMED_PROTOCOL: u8 = 7;
pub const FRAMED_IP_ADDRESS: u8 = 8;
pub const REPLY_MESSAGE: u8 = 18;
pub const CLASS: u8 = 25;
pub const VENDOR_SPECIFIC: u8 = 26;
pub const SESSION_TIMEOUT: u8 = 27;
pub const CALLED_STATION_ID: u8 = 30;
pub const CALLING_STATION_ID: u8 = 31;
pub const NAS_IDENTIFIER: u8 = 32;
pub const PROXY_STATE: u8 = 33;
pub const ACCT_STATUS_TYPE: u8 = 40;
pub const ACCT_DELAY_TIME: u8 = 41;
pub const ACCT_INPUT_OCTETS: u8 = 42;
pub const ACCT_OUTPUT_OCTETS: u8 = 43;
pub const ACCT_SESSION_ID: u8 = 44;
pub const ACCT_AUTHENTIC: u8 = 45;
pub const ACCT_SESSION_TIME: u8 = 46;
pub const ACCT_INPUT_PACKETS: u8 = 47;
pub const ACCT_OUTPUT_PACKETS: u8 = 48;
pub const ACCT_TERMINATE_CAUSE: u8 = 49;
pub const ACCT_INPUT_GIGAWORDS: u8 = 52;
pub const ACCT_OUTPUT_GIGAWORDS: u8 = 53;
pub const EVENT_TIMESTAMP: u8 = 55;
pub const CHAP_CHALLENGE: u8 = 60;
pub const NAS_PORT_TYPE: u8 = 61;
pub const TUNNEL_TYPE: u8 = 64;
pub const MESSAGE_AUTHENTICATOR: u8 = 80;
pub const ACCT_INTERIM_INTERVAL: u8 = 85;
pub const NAS_PORT_ID: u8 = 87;
pub const ERROR_CAUSE: u8 = 101;

// Values.
pub const SERVICE_FRAMED: u32 = 2;
pub const FRAMED_PPP: u32 = 1;
pub const NAS_PORT_VIRTUAL: u32 = 5;
pub const ACCT_START: u32 = 1;
pub const ACCT_STOP: u32 = 2;
pub const ACCT_INTERIM: u32 = 3;
pub const ACCT_ON: u32 = 7;
pub const ACCT_OFF: u32 = 8;
pub const ACCT_AUTHENTIC_RADIUS: u32 = 1;
pub const TUNNEL_PPTP: u32 = 1;
pub const TUNNEL_L2TP: u32 = 3;

/// Acct-Terminate-Cause values (RFC 2866 §5.10).
pub mod cause {
    pub const USER_REQUEST: u32 = 1;
    pub const LOST_CARRIER: u32 = 2;
    pub const IDLE_TIMEOUT: u32 = 4;
    pub const SESSION_TIMEOUT: u32 = 5;
    pub const ADMIN_RESET: u32 = 6;
    pub const ADMIN_REBOOT: u32 = 7;
    pub const NAS_REQUEST: u32 = 10;
}

/// Error-Cause values (RFC 5176 §3.6).
pub mod error_cause {
    pub const UNSUPPORTED_ATTRIBUTE: u32 = 401;
    pub const MISSING_ATTRIBUTE: u32 = 402;
    pub const INVALID_REQUEST: u32 = 404;
    pub const UNSUPPORTED_SERVICE: u32 = 405;
    pub const SESSION_NOT_FOUND: u32 = 503;
}

/// Microsoft's vendor ID and attributes (RFC 2548).
pub const VENDOR_MICROSOFT: u32 = 311;
pub const MS_CHAP_ERROR: u8 = 2;
pub const MS_CHAP_CHALLENGE: u8 = 11;
pub const MS_MPPE_SEND_KEY: u8 = 16;
pub const MS_MPPE_RECV_KEY: u8 = 17;
pub const MS_CHAP2_RESPONSE: u8 = 25;
pub const MS_CHAP2_SUCCESS: u8 = 26;

/// The registered UDP ports: authentication, accounting, dynamic
/// authorization (RFC 5176).
pub const AUTH_PORT: u16 = 1812;
pub const ACCT_PORT: u16 = 1813;
pub const DAE_PORT: u16 = 3799;

/// The largest RADIUS packet (RFC 2865 §3).
pub const MAX_PACKET: usize = 4096;
