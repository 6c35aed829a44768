//! IPCP (RFC 1332) with DNS (RFC 1877), both ends. The gateway offers its
//! own address and hands the peer its assigned one (and DNS servers) by Nak.
use std::net::Ipv4Addr;

use super::{consts::*, fsm::*};

pub struct Ipcp {
    /// Our address (the gateway's pool address, or 0.0.0.0 on a client).
    pub local: Ipv4Addr,
    /// Gateway: the address the peer must use. Client: what we were given.
    pub peer: Ipv4Addr,
    /// Gateway: DNS servers to hand out (primary, secondary).
    pub dns: Vec<Ipv4Addr>,
    /// Client: ask for DNS servers; what we got.
    pub want_dns: bool,
    pub got_dns: Vec<Ipv4Addr>,
    /// Client: the gateway's address, as it announced it.
    pub remote: Ipv4Addr,
}

impl Ipcp {
    pub fn server(local: Ipv4Addr, peer: Ipv4Addr, dns: Vec<Ipv4Addr>) -> Ipcp {
        Ipcp {
            local,
            peer,
            dns,
            want_dns: false,
            got_dns: Vec::new(),
            remote: Ipv4Addr::UNSPECIFIED,
        }
    }

    pub fn client() -> Ipcp {
        Ipcp {
            local: Ipv4Addr::UNSPECIFIED,
            peer: Ipv4Addr::UNSPECIFIED,
            dns: Vec::new(),
            want_dns: true,
            got_dns: vec![Ipv4Addr::UNSPECIFIED; 2],
            remote: Ipv4Addr::UNSPECIFIED,
        }
    }

    fn is_server(&self) -> bool {
        !self.peer.is_unspecified()
    }
}

fn addr(v: &[u8]) -> Option<Ipv4Addr> {
    <[u8; 4]>::try_from(v).ok().map(Ipv4Addr::from)
}

impl Options for Ipcp {
    fn request(&mut self) -> Vec<u8> {
        let mut o = Vec::new();
        put_option(&mut o, IPCP_ADDRESS, &self.local.octets());
        if self.want_dns {
            for (i, t) in [IPCP_DNS1, IPCP_DNS2].into_iter().enumerate() {
                if let Some(d) = self.got_dns.get(i) {
                    put_option(&mut o, t, &d.octets());
                }
            }
        }
        o
    }

    fn check(&mut self, opts: &[u8], must_reject: bool) -> Verdict {
        let (mut nak, mut rej) = (Vec::new(), Vec::new());
        for o in options(opts) {
            let Some((t, v)) = o else {
                return Verdict::Reject(opts.to_vec());
            };
            match (t, addr(v)) {
                (IPCP_ADDRESS, Some(a)) if self.is_server() => {
                    if a != self.peer {
                        put_option(&mut nak, t, &self.peer.octets());
                    }
                }
                (IPCP_ADDRESS, Some(a)) if !a.is_unspecified() => self.remote = a,
                (IPCP_DNS1 | IPCP_DNS2, Some(a)) if self.is_server() => {
                    let i = usize::from(t == IPCP_DNS2);
                    match self.dns.get(i) {
                        Some(d) if *d != a => put_option(&mut nak, t, &d.octets()),
                        Some(_) => {}
                        None => put_option(&mut rej, t, v),
                    }
                }
                _ => put_option(&mut rej, t, v),
            }
        }
        if !rej.is_empty() {
            Verdict::Reject(rej)
        } else if !nak.is_empty() && must_reject {
            Verdict::Reject(nak)
        } else if !nak.is_empty() {
            Verdict::Nak(nak)
        } else {
            Verdict::Ack
        }
    }

    fn naked(&mut self, opts: &[u8]) -> bool {
        for (t, v) in options(opts).flatten() {
            match (t, addr(v)) {
                (IPCP_ADDRESS, Some(a)) if !self.is_server() => self.local = a,
                (IPCP_DNS1, Some(a)) if self.want_dns => self.got_dns[0] = a,
                (IPCP_DNS2, Some(a)) if self.want_dns => self.got_dns[1] = a,
                _ => {}
            }
        }
        true
    }

    fn rejected(&mut self, opts: &[u8]) -> bool {
        for (t, _) in options(opts).flatten() {
            match t {
                IPCP_DNS2 => self.got_dns.truncate(1),
                IPCP_DNS1 => self.got_dns.clear(),
                // Without an address there is no IP link.
                IPCP_ADDRESS => return false,
                _ => {}
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;
    use crate::ppp::fsm::testing::converse;

    #[test]
    fn the_client_learns_its_address_and_dns_from_naks() {
        let now = Instant::now();
        let gw = Ipv4Addr::new(10, 99, 0, 1);
        let mut s = Fsm::new(Ipcp::server(
            gw,
            Ipv4Addr::new(10, 99, 0, 7),
            vec![Ipv4Addr::new(172, 16, 10, 2)],
        ));
        let mut c = Fsm::new(Ipcp::client());
        converse(&mut s, &mut c, now);
        assert!(s.is_open() && c.is_open());
        assert_eq!(c.opts.local, Ipv4Addr::new(10, 99, 0, 7));
        assert_eq!(c.opts.remote, gw);
        // One DNS server configured: the secondary was rejected, the primary given.
        assert_eq!(c.opts.got_dns, vec![Ipv4Addr::new(172, 16, 10, 2)]);
    }
}
