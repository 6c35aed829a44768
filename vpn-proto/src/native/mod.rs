//! vpn-ctl's native protocol (docs/native-protocol.md): a TCP handshake
//! (Noise NNpsk0 plus user authentication inside it), then AEAD-encrypted IP
//! packets over UDP with a session ID, replay window, keepalive, rekey and
//! roaming.
pub mod carry;
pub mod consts;
pub mod crypto;
pub mod handshake;
pub mod messages;
pub mod session;
mod x25519;

#[cfg(test)]
mod tests;
