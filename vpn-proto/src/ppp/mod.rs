//! PPP (RFC 1661) and what runs over it: authentication (PAP, CHAP-MD5,
//! MS-CHAPv2), IPCP and CCP/MPPE. Sans-IO, like everything in this crate.
pub mod auth;
pub mod carry;
pub mod client;
pub mod consts;
pub mod fsm;
pub mod ipcp;
pub mod lcp;
pub mod link;
pub mod mppe;
pub mod mschap;
