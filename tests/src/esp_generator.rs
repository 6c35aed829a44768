//! The L2TP/IPsec traffic generator of `cargo xtask bench ipsec`: it takes
//! a connected client's outbound ESP SA from the guest's kernel (`ip xfrm
//! state`), seals L2TP data packets with it ahead of time and sends them
//! from the client's address, as raw ESP or ESP in UDP as the SA says, so
//! the server under test (vpn-ctl or SoftEther) is measured without the
//! slow guest in the way. Sealed with vpn-proto's ESP, which the interop
//! tests check against strongSwan's kernel SAs.
use std::net::Ipv4Addr;

use anyhow::Context as _;
use serde::{Deserialize, Serialize};
use vpn_proto::esp::{EspCipher, EspInteg, EspTransform, Outbound, SaCarry, NEXT_UDP};

/// One blast: whose SA, which L2TP session, what to send and how fast.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Blast {
    pub sa: ClientSa,
    /// The server's L2TP tunnel and session IDs.
    pub tunnel: u16,
    pub session_id: u16,
    /// The client's address inside the tunnel and the LAN host's.
    pub inner_src: Ipv4Addr,
    pub inner_dst: Ipv4Addr,
    /// Inner IPv4 packet length.
    pub len: usize,
    /// First ESP sequence number (above the client's and earlier blasts').
    pub skip: u32,
    /// Packets sealed ahead of time.
    pub count: u32,
}

/// A client's outbound ESP SA as its kernel holds it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ClientSa {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    /// ESP in UDP (RFC 3948): source and destination port.
    pub encap: Option<(u16, u16)>,
    pub spi: u32,
    /// AES-128-GCM-16 (key and salt) or AES-128-CBC with HMAC-SHA1-96
    /// (encryption then integrity key): the transforms the benchmark uses.
    pub gcm: bool,
    pub keymat: Vec<u8>,
}

impl ClientSa {
    /// Reads the first SA of `ip xfrm state list dst GATEWAY`.
    pub fn parse(xfrm: &str) -> anyhow::Result<ClientSa> {
        let words: Vec<&str> = xfrm.split_whitespace().collect();
        let after = |w: &str, n: usize| {
            words
                .iter()
                .position(|x| *x == w)
                .and_then(|i| words.get(i + n))
                .copied()
                .with_context(|| format!("no `{w}` in {xfrm}"))
        };
        let hex = |s: &str| -> anyhow::Result<Vec<u8>> {
            let s = s.trim_start_matches("0x");
            (0..s.len() / 2)
                .map(|i| Ok(u8::from_str_radix(&s[2 * i..2 * i + 2], 16)?))
                .collect()
        };
        let spi = u32::from_str_radix(after("spi", 1)?.trim_start_matches("0x"), 16)?;
        let encap = match (after("espinudp", 2), after("espinudp", 4)) {
            (Ok(sport), Ok(dport)) => Some((sport.parse()?, dport.parse()?)),
            _ => None,
        };
        let (gcm, keymat) = match after("rfc4106(gcm(aes))", 1) {
            Ok(key) => (true, hex(key)?),
            Err(_) => {
                let enc = hex(after("cbc(aes)", 1)?)?;
                anyhow::ensure!(enc.len() == 16, "expected AES-128: {xfrm}");
                (false, [enc, hex(after("hmac(sha1)", 1)?)?].concat())
            }
        };
        Ok(ClientSa {
            src: after("src", 1)?.parse()?,
            dst: after("dst", 1)?.parse()?,
            encap,
            spi,
            gcm,
            keymat,
        })
    }

    fn transform(&self) -> EspTransform {
        if self.gcm {
            EspTransform {
                cipher: EspCipher::AesGcm16 {
                    key_len: self.keymat.len() - 4,
                },
                integ: EspInteg::None,
            }
        } else {
            EspTransform {
                cipher: EspCipher::Cbc(vpn_proto::ike::crypto::CbcAlg::Aes128),
                integ: EspInteg::HmacSha1_96,
            }
        }
    }
}

impl Blast {
    /// The packets, each with its own IPv4 header (for IPPROTO_RAW).
    pub fn packets(&self) -> anyhow::Result<Vec<Vec<u8>>> {
        let payload = l2tp_udp(
            self.tunnel,
            self.session_id,
            self.inner_src,
            self.inner_dst,
            self.len,
        );
        let mut sa = Outbound::resume(&SaCarry {
            spi: self.sa.spi,
            transform: self.sa.transform(),
            keymat: self.sa.keymat.clone(),
            seq: self.skip.into(),
            bits: Vec::new(),
        })
        .context("keys of the wrong length")?;
        (0..self.count)
            .map(|_| {
                let mut esp = Vec::with_capacity(payload.len() + 64);
                sa.seal(NEXT_UDP, &payload, &mut esp)?;
                Ok(match self.sa.encap {
                    None => ipv4(self.sa.src, self.sa.dst, libc::IPPROTO_ESP as u8, &esp),
                    Some((sport, dport)) => {
                        let udp = udp(sport, dport, &esp);
                        ipv4(self.sa.src, self.sa.dst, libc::IPPROTO_UDP as u8, &udp)
                    }
                })
            })
            .collect()
    }
}

/// The L2TP datagram (in UDP 1701 → 1701) carrying one IPv4/UDP packet of
/// `len` bytes from `src` to `dst`.
pub fn l2tp_udp(tunnel: u16, session_id: u16, src: Ipv4Addr, dst: Ipv4Addr, len: usize) -> Vec<u8> {
    let mut ip = vec![0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, 17, 0, 0];
    ip[2..4].copy_from_slice(&(len as u16).to_be_bytes());
    ip.extend_from_slice(&src.octets());
    ip.extend_from_slice(&dst.octets());
    let sum = crate::packet::checksum(&ip);
    ip[10..12].copy_from_slice(&sum.to_be_bytes());
    ip.extend_from_slice(&udp(5000, 9, &vec![0x5a; len - 28]));
    let mut l2tp = vec![0x00, 0x02];
    l2tp.extend_from_slice(&tunnel.to_be_bytes());
    l2tp.extend_from_slice(&session_id.to_be_bytes());
    l2tp.extend_from_slice(&[0xff, 0x03, 0x00, 0x21]);
    l2tp.extend_from_slice(&ip);
    udp(1701, 1701, &l2tp)
}

/// A UDP datagram without a checksum (0: none, as IPv4 and RFC 3948 allow).
fn udp(sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut u = Vec::with_capacity(8 + payload.len());
    u.extend_from_slice(&sport.to_be_bytes());
    u.extend_from_slice(&dport.to_be_bytes());
    u.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    u.extend_from_slice(&[0, 0]);
    u.extend_from_slice(payload);
    u
}

/// An IPv4 header from `src` to `dst` before `payload` (the kernel fills
/// in the checksum of IPPROTO_RAW packets).
fn ipv4(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, payload: &[u8]) -> Vec<u8> {
    let mut p = vec![0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, proto, 0, 0];
    p[2..4].copy_from_slice(&((20 + payload.len()) as u16).to_be_bytes());
    p.extend_from_slice(&src.octets());
    p.extend_from_slice(&dst.octets());
    p.extend_from_slice(payload);
    p
}

#[cfg(test)]
mod tests {
    use vpn_proto::esp::Inbound;

    use super::*;

    /// What `ip xfrm state list dst` printed in the guest for a client
    /// behind SoftEther (which always floats to 4500).
    const CBC_IN_UDP: &str = "src 198.18.21.2 dst 198.18.0.1
	proto esp spi 0xba54a6cd reqid 1 mode transport
	replay-window 0 
	auth-trunc hmac(sha1) 0x9898bfed9e8f0713c183d51e98d968e07ea6fb6c 96
	enc cbc(aes) 0x4ab70e6309cde9551265749878af4ab1
	encap type espinudp sport 4500 dport 4500 addr 0.0.0.0
	anti-replay context: seq 0x0, oseq 0xf839, bitmap 0x00000000
	sel src 198.18.21.2/32 dst 198.18.0.1/32 ";

    const GCM_RAW: &str = "src 198.18.21.2 dst 198.18.0.1
	proto esp spi 0xc1a2b3c4 reqid 1 mode transport
	replay-window 0 
	aead rfc4106(gcm(aes)) 0x00112233445566778899aabbccddeeff01020304 128
	anti-replay context: seq 0x0, oseq 0x10, bitmap 0x00000000
	sel src 198.18.21.2/32 dst 198.18.0.1/32 ";

    #[test]
    fn reads_the_sa_of_either_transform_and_encapsulation() {
        let cbc = ClientSa::parse(CBC_IN_UDP).unwrap();
        assert_eq!(cbc.src, Ipv4Addr::new(198, 18, 21, 2));
        assert_eq!(cbc.dst, Ipv4Addr::new(198, 18, 0, 1));
        assert_eq!(cbc.spi, 0xba54a6cd);
        assert_eq!(cbc.encap, Some((4500, 4500)));
        assert!(!cbc.gcm);
        assert_eq!(cbc.keymat.len(), 16 + 20);
        assert_eq!(cbc.keymat[..2], [0x4a, 0xb7]);
        assert_eq!(cbc.keymat[16..18], [0x98, 0x98]);
        let gcm = ClientSa::parse(GCM_RAW).unwrap();
        assert_eq!((gcm.encap, gcm.gcm, gcm.keymat.len()), (None, true, 20));
        assert!(ClientSa::parse("src 1.2.3.4 dst 5.6.7.8").is_err());
    }

    /// The server's side opens what the generator seals: sequence numbers
    /// from `skip`, the L2TP payload intact, headers as the SA says.
    #[test]
    fn packets_open_with_the_sa_from_skip_on() {
        for text in [CBC_IN_UDP, GCM_RAW] {
            let sa = ClientSa::parse(text).unwrap();
            let b = Blast {
                sa: sa.clone(),
                tunnel: 7,
                session_id: 9,
                inner_src: Ipv4Addr::new(172, 16, 10, 100),
                inner_dst: Ipv4Addr::new(172, 16, 10, 2),
                len: 64,
                skip: 1000,
                count: 3,
            };
            let packets = b.packets().unwrap();
            assert_eq!(packets.len(), 3);
            let mut inbound = Inbound::new(sa.spi, sa.transform(), &sa.keymat);
            for (i, p) in packets.iter().enumerate() {
                assert_eq!(&p[12..16], &sa.src.octets());
                let esp = match sa.encap {
                    Some(_) => {
                        assert_eq!(p[9], 17);
                        assert_eq!(&p[20..24], &[0x11, 0x94, 0x11, 0x94]);
                        &p[28..]
                    }
                    None => {
                        assert_eq!(p[9], 50);
                        &p[20..]
                    }
                };
                let seq = u32::from_be_bytes(esp[4..8].try_into().unwrap());
                assert_eq!(seq, 1001 + i as u32);
                let mut esp = esp.to_vec();
                let o = inbound.open(&mut esp).unwrap();
                assert_eq!((o.next, o.seq), (NEXT_UDP, seq));
                assert_eq!(
                    esp[o.start..o.end],
                    l2tp_udp(7, 9, b.inner_src, b.inner_dst, 64)
                );
            }
        }
    }
}
