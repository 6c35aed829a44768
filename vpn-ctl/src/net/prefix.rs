//! An IPv4 prefix (`10.99.0.0/24`), parsed from config and netlink alike.
use std::{fmt, net::Ipv4Addr, str::FromStr};

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Ipv4Prefix {
    addr: Ipv4Addr,
    len: u8,
}

impl Ipv4Prefix {
    /// Builds the prefix containing `addr` (host bits are cleared).
    pub fn new(addr: Ipv4Addr, len: u8) -> Result<Self, String> {
        if len > 32 {
            return Err(format!("prefix length {len} is longer than 32"));
        }
        let mask = Self::mask_of(len);
        Ok(Self {
            addr: Ipv4Addr::from(u32::from(addr) & mask),
            len,
        })
    }

    const fn mask_of(len: u8) -> u32 {
        if len == 0 {
            0
        } else {
            u32::MAX << (32 - len)
        }
    }

    pub fn network(&self) -> Ipv4Addr {
        self.addr
    }
    pub fn prefix_len(&self) -> u8 {
        self.len
    }
    pub fn mask(&self) -> u32 {
        Self::mask_of(self.len)
    }
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & self.mask() == u32::from(self.addr)
    }
    pub fn overlaps(&self, other: &Ipv4Prefix) -> bool {
        self.contains(other.addr) || other.contains(self.addr)
    }
    /// The `n`th address of the prefix (0 is the network address).
    pub fn nth(&self, n: u32) -> Option<Ipv4Addr> {
        let size = 1u64 << (32 - u32::from(self.len));
        (u64::from(n) < size).then(|| Ipv4Addr::from(u32::from(self.addr) + n))
    }
    pub fn broadcast(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr) | !self.mask())
    }
}

impl fmt::Display for Ipv4Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

impl FromStr for Ipv4Prefix {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (a, l) = s
            .split_once('/')
            .ok_or_else(|| format!("`{s}` is not an IPv4 prefix like 10.99.0.0/24"))?;
        let addr: Ipv4Addr = a
            .parse()
            .map_err(|_| format!("`{a}` is not an IPv4 address"))?;
        let len: u8 = l
            .parse()
            .map_err(|_| format!("`{l}` is not a prefix length"))?;
        let p = Self::new(addr, len)?;
        if p.addr != addr {
            return Err(format!("`{s}` has host bits set (did you mean {p}?)"));
        }
        Ok(p)
    }
}

impl Serialize for Ipv4Prefix {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Ipv4Prefix {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_rejects() {
        let p: Ipv4Prefix = "10.99.0.0/24".parse().unwrap();
        assert_eq!(p.nth(1), Some(Ipv4Addr::new(10, 99, 0, 1)));
        assert_eq!(p.broadcast(), Ipv4Addr::new(10, 99, 0, 255));
        assert!(p.contains(Ipv4Addr::new(10, 99, 0, 200)));
        assert!(!p.contains(Ipv4Addr::new(10, 99, 1, 0)));
        assert!("10.99.0.1/24".parse::<Ipv4Prefix>().is_err());
        assert!("10.99.0.0/33".parse::<Ipv4Prefix>().is_err());
        assert!("10.99.0.0".parse::<Ipv4Prefix>().is_err());
    }

    #[test]
    fn overlap_is_symmetric() {
        let a: Ipv4Prefix = "10.0.0.0/8".parse().unwrap();
        let b: Ipv4Prefix = "10.99.0.0/24".parse().unwrap();
        let c: Ipv4Prefix = "192.168.0.0/16".parse().unwrap();
        assert!(a.overlaps(&b) && b.overlaps(&a));
        assert!(!a.overlaps(&c) && !c.overlaps(&a));
    }
}
