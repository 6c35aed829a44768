//! A PPP call of the project's own clients (PPTP, L2TP, L2TP/IPsec), as
//! the tests that send IP through any of them see it.
use std::{net::Ipv4Addr, time::Duration};

use crate::{ipsec_peer::IpsecCall, l2tp_peer::L2tpCall, pptp_peer::PptpCall};

pub trait Call: Send + 'static {
    /// The address IPCP gave the call.
    fn address(&self) -> Ipv4Addr;
    /// Sends an IP packet; the IP packets that came back within `wait`.
    fn echo(&mut self, ip: &[u8], wait: Duration) -> Vec<Vec<u8>>;
}

impl Call for PptpCall {
    fn address(&self) -> Ipv4Addr {
        self.ppp.address().unwrap()
    }
    fn echo(&mut self, ip: &[u8], wait: Duration) -> Vec<Vec<u8>> {
        self.exchange(ip, wait).unwrap()
    }
}

impl Call for L2tpCall {
    fn address(&self) -> Ipv4Addr {
        self.ppp.address().unwrap()
    }
    fn echo(&mut self, ip: &[u8], wait: Duration) -> Vec<Vec<u8>> {
        self.exchange(ip, wait).unwrap()
    }
}

impl Call for IpsecCall {
    fn address(&self) -> Ipv4Addr {
        self.l2tp.ppp.address().unwrap()
    }
    fn echo(&mut self, ip: &[u8], wait: Duration) -> Vec<Vec<u8>> {
        self.l2tp.exchange(ip, wait).unwrap()
    }
}
