//! Reading packet bytes the same way in TC (an skb, through
//! `bpf_skb_load_bytes`) and in XDP (direct access), so that each tunnel
//! header is parsed by one function for both attach points.
use aya_ebpf::programs::TcContext;

use crate::packet::read_at;

pub trait PacketBytes {
    /// A `T` at `off`, or `None` past the end.
    fn read<T: Copy>(&self, off: usize) -> Option<T>;
    /// The packet's length in bytes.
    fn len(&self) -> usize;
    /// A big-endian u16 at `off`.
    #[inline(always)]
    fn be16(&self, off: usize) -> Option<u16> {
        self.read::<u16>(off).map(u16::from_be)
    }
}

impl PacketBytes for TcContext {
    #[inline(always)]
    fn read<T: Copy>(&self, off: usize) -> Option<T> {
        TcContext::load::<T>(self, off).ok()
    }
    #[inline(always)]
    fn len(&self) -> usize {
        TcContext::len(self) as usize
    }
}

/// An XDP frame's bytes, `[start, end)`.
#[derive(Clone, Copy)]
pub struct XdpBytes {
    pub start: usize,
    pub end: usize,
}

/// The deepest offset read in an XDP frame: the verifier tracks a packet
/// pointer's range only while its variable offset is provably below 64
/// KiB, and no header we parse lies this deep (the TC path takes the rest).
const XDP_MAX_OFFSET: usize = 4096;

impl PacketBytes for XdpBytes {
    #[inline(always)]
    fn read<T: Copy>(&self, off: usize) -> Option<T> {
        if off > XDP_MAX_OFFSET {
            return None;
        }
        read_at(self.start, self.end, off).ok()
    }
    #[inline(always)]
    fn len(&self) -> usize {
        self.end - self.start
    }
}
