//! L2TPv2 (RFC 2661) for an LNS: header and AVP codecs, the reliable
//! control channel, and the tunnel engine (control connection and calls).
//! Data messages carry PPP frames; the gateway's PPP driver runs them.
pub mod avp;
pub mod channel;
pub mod consts;
pub mod header;
pub mod tunnel;

#[cfg(test)]
mod tests;
