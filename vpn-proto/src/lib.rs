//! Sans-IO protocol engines: they take bytes and the current time and return
//! bytes to send, events and their next deadline. No sockets, no clocks, so
//! tests drive both ends of a protocol on a virtual clock.
pub mod codec;
pub mod dhcp;
pub mod esp;
pub mod ike;
pub mod l2tp;
pub mod native;
pub mod ppp;
pub mod pptp;
pub mod replay;
