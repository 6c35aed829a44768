//! PPTP (RFC 2637): the TCP control connection's messages and the enhanced
//! GRE that carries PPP frames. The control-connection state machine lives
//! with the gateway that drives it; these are its wire formats.
pub mod gre;
pub mod messages;
