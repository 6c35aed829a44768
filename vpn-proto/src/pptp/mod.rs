//! PPTP (RFC 2637): the control connection (messages and the PAC's state
//! machine) and the enhanced GRE that carries PPP frames.
pub mod control;
pub mod gre;
pub mod messages;
