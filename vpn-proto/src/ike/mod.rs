//! IKEv1 responder for L2TP/IPsec (RFC 2408, 2409): Main Mode with a
//! pre-shared key, Quick Mode for ESP transport SAs protecting UDP 1701,
//! Informational exchanges (Delete, DPD, INITIAL-CONTACT) and NAT-T
//! (RFC 3947 and its drafts). Sans-IO: datagrams and `now` in, datagrams,
//! events and deadlines out.
pub mod consts;
pub mod crypto;
pub mod dh;
/// A minimal initiator with deterministic keys: the responder's tests and
/// the project's own L2TP/IPsec test client. Never for real connections.
#[cfg(any(test, feature = "test-client"))]
pub mod initiator;
pub mod keys;
pub mod message;
pub mod natt;
mod primes;
pub mod proposal;
pub mod responder;
#[cfg(test)]
mod tests;
