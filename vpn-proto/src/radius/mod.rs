//! RADIUS, the NAS's side: authentication (RFC 2865) of PAP, MS-CHAPv2
//! (RFC 2548) and native logins, accounting (RFC 2866), and dynamic
//! authorization (Disconnect/CoA, RFC 5176). Sans-IO: datagrams and `now`
//! in, datagrams and answers out.
pub mod accounting;
pub mod client;
pub mod consts;
pub mod dae;
pub mod login;
pub mod packet;
