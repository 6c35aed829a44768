//! ESP (RFC 4303) in transport mode for L2TP/IPsec: the transforms IKEv1
//! negotiates, and a security association per direction (sequence numbers,
//! anti-replay, ICV checked before decryption, padding checked).
mod sa;
#[cfg(test)]
mod tests;
mod transform;

pub use sa::{EspError, Inbound, Opened, Outbound, SaCarry};
pub use transform::{EspCipher, EspInteg, EspTransform};

/// SPI and sequence number.
pub const ESP_HEADER_LEN: usize = 8;
/// Next-header value of UDP (what L2TP/IPsec carries).
pub const NEXT_UDP: u8 = 17;
