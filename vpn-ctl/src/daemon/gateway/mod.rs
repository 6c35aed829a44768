//! The protocol-neutral core every protocol plugs into: one address pool
//! with leases (and the vpn0 route that goes with each), the vpn0 queue
//! workers that hand packets to their session's owner, one PPP call driver
//! for the PPP carriers (PPTP, L2TP), and the service lifecycle the control
//! socket drives. It names no protocol.
pub mod limits;
pub mod pool;
pub mod ppp;
pub mod routes;
pub mod service;
pub mod tun;
