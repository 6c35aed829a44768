//! WAN to LAN, a flow's later packets recognised by their frame
//! (docs/decisions.md #64). Once the full path (`xdp_wan`, `tunnel`,
//! `xdp_fwd`) has forwarded a packet, its frame's first bytes, from the
//! ethertype to the end of the inner IPv4 header, are kept with the
//! decision, less the bytes that vary from packet to packet (lengths, IDs,
//! checksums, TTLs, PPTP's sequence numbers). A later frame whose bytes
//! match them under that mask passed every check the full path made on
//! those bytes; only its lengths, its TTL and what PPTP records remain.
//! Anything else (a mismatch, a frame shorter than the window, another
//! generation) takes the full path, as before.
use aya_ebpf::{helpers::bpf_get_smp_processor_id, programs::XdpContext};
use vpn_common::{
    counters::DropReason,
    maps::{DataplaneConfig, FrameSlot, FRAME_AT, FRAME_END, FRAME_SLOTS, FRAME_WORDS},
    wire::{GRE_F_ACK, GRE_F_SEQ, IPPROTO_GRE, IPPROTO_UDP, L2TP_F_LENGTH},
};

use crate::{
    encap::{ETH_LEN, IPV4_LEN},
    maps::DOWN_FRAMES,
    packet::{load16, load32, ptr_at},
    pptp,
    template::Eth,
    xdp_fwd,
};

/// The layouts the cache takes (tunnel, where the inner header starts),
/// each with its mask; the PPP header is always FF 03 00 21.
const LAYOUTS: usize = 5;
/// L2TP without and with its length field.
const L2TP: usize = 0;
/// PPTP's GRE with neither sequence nor acknowledgement number, one of
/// them, both.
const PPTP: usize = 2;

/// Which bytes of the window must equal the kept frame's, per layout.
const MASKS: [[u32; FRAME_WORDS]; LAYOUTS] = [
    mask(true, 52),
    mask(true, 54),
    mask(false, 46),
    mask(false, 50),
    mask(false, 54),
];

/// The window's mask for a tunnel (`udp`: L2TP, else PPTP) whose inner
/// IPv4 header starts at `inner`: outer IPv4 version, length of header,
/// no fragment, protocol, source; the UDP ports or GRE's flags, protocol
/// and call ID; L2TP's flags, tunnel and session; PPP; the inner version,
/// length of header, ToS, no fragment, source and destination.
const fn mask(udp: bool, inner: usize) -> [u32; FRAME_WORDS] {
    let mut b = [0u8; FRAME_END];
    let exact: &[(usize, usize)] = &[(12, 15), (23, 24), (26, 30), (34, 38)];
    let mut i = 0;
    while i < exact.len() {
        let (from, to) = exact[i];
        b = set(b, from, to, 0xff);
        i += 1;
    }
    b[20] = 0x3f; // MF and the fragment offset: zero
    b[21] = 0xff;
    if udp {
        b = set(b, 42, 44, 0xff); // flags (a length field, if any, is not kept)
        b = set(b, inner - 8, inner - 4, 0xff); // tunnel and session
    } else {
        b = set(b, 40, 42, 0xff); // call ID (sequence and ack numbers are not kept)
    }
    b = set(b, inner - 4, inner, 0xff); // PPP
    b = set(b, inner, inner + 2, 0xff);
    b[inner + 6] = 0x3f;
    b[inner + 7] = 0xff;
    b = set(b, inner + 12, inner + 20, 0xff);
    let mut w = [0u32; FRAME_WORDS];
    let mut k = 0;
    while k < FRAME_WORDS {
        let o = FRAME_AT + 4 * k;
        w[k] = u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]]);
        k += 1;
    }
    w
}

const fn set(mut b: [u8; FRAME_END], from: usize, to: usize, v: u8) -> [u8; FRAME_END] {
    let mut i = from;
    while i < to {
        b[i] = v;
        i += 1;
    }
    b
}

const _: () = assert!(cfg!(target_endian = "little"));
// Bytes 16 to 19 (outer length and ID) are in no mask: not compared.
const _: () = {
    let mut l = 0;
    while l < LAYOUTS {
        assert!(MASKS[l][1] == 0);
        l += 1;
    }
};

/// Where a frame's inner IPv4 header would start if it is one of the
/// layouts (`inner`: its 20 bytes, checked to lie in the frame), and
/// which slot it would be in.
struct Located {
    layout: usize,
    inner_at: usize,
    inner: *const u8,
    /// The outer source address, as it lies in the frame.
    src: u32,
    slot: u32,
}

/// # Safety
/// `p` is the frame's start `start`, with `FRAME_END` readable bytes.
#[inline(always)]
unsafe fn locate(p: *const u8, start: usize, end: usize) -> Option<Located> {
    // SAFETY: every offset below is inside the window. Only 2-byte loads
    // here: a 4-byte one across two of the generator's 4-byte stores (the
    // ports at 34) waits for them to reach the cache (decisions #64).
    let (layout, inner_at, tunnel) = unsafe {
        let proto = (load16(p.add(22)) >> 8) as u8;
        if proto == IPPROTO_UDP {
            let flags = u16::from_be(load16(p.add(42)));
            let long = usize::from(flags & L2TP_F_LENGTH != 0);
            (
                L2TP + long,
                52 + 2 * long,
                (u32::from(load16(p.add(34))) << 16 | u32::from(load16(p.add(36))))
                    ^ u32::from(flags),
            )
        } else if proto == IPPROTO_GRE {
            let flags = u16::from_be(load16(p.add(34)));
            let n = usize::from(flags & GRE_F_SEQ != 0) + usize::from(flags & GRE_F_ACK != 0);
            let call = u32::from(load16(p.add(40)));
            (PPTP + n, 46 + 4 * n, call << 16 | u32::from(flags))
        } else {
            return None;
        }
    };
    // Checked again on its own: the verifier keeps no range for a packet
    // pointer moved by a variable offset.
    let inner = ptr_at::<[u8; 20]>(start, end, inner_at).ok()?.cast::<u8>();
    // SAFETY: inside the window, and inside the inner header.
    let (src, dst) = unsafe {
        (
            u32::from(load16(p.add(26))) | u32::from(load16(p.add(28))) << 16,
            u32::from(load16(inner.add(16))) << 16 | u32::from(load16(inner.add(18))),
        )
    };
    let mix = src ^ tunnel.rotate_left(16) ^ dst.rotate_left(8) ^ inner_at as u32;
    Some(Located {
        layout,
        inner_at,
        inner,
        src,
        slot: mix.wrapping_mul(0x9e37_79b1) >> (32 - FRAME_SLOTS.trailing_zeros()),
    })
}

/// Nonzero if any of words `i` of the window at `p` differs from
/// `want[i]` in the bits of layout `l`'s mask, an immediate. One assembly
/// block a word: LLVM would load every word first and keep most of them
/// on the stack. `i` lists the words the mask has bits in (checked at
/// compile time: a word left out must have none).
///
/// # Safety
/// `p` has `FRAME_END` readable bytes; `want` `FRAME_WORDS` words.
macro_rules! differ {
    ($p:expr, $want:expr, $l:literal; $($i:literal)*) => {{
        const _: () = assert!(covers($l, &[$($i),*]));
        let mut acc: u64 = 0;
        $(
            #[cfg(target_arch = "bpf")]
            core::arch::asm!(
                "{t} = *(u32 *)({p} + {o})",
                "{t} &= {m}",
                "{w} = *(u32 *)({want} + {k})",
                "{t} ^= {w}",
                "{acc} |= {t}",
                p = in(reg) $p,
                want = in(reg) $want,
                o = const FRAME_AT + 4 * $i,
                k = const 4 * $i,
                // Sign-extended by the instruction; `t` has no high bits.
                m = const MASKS[$l][$i] as i32,
                t = out(reg) _,
                w = out(reg) _,
                acc = inout(reg) acc,
                options(nostack, readonly),
            );
            #[cfg(not(target_arch = "bpf"))]
            {
                let v = $p.add(FRAME_AT + 4 * $i).cast::<u32>().read_unaligned();
                acc |= u64::from((v & MASKS[$l][$i]) ^ *$want.add($i));
            }
        )*
        acc
    }};
}

/// Whether `words` lists every word layout `l`'s mask has bits in.
const fn covers(l: usize, words: &[usize]) -> bool {
    let mut w = 0;
    while w < FRAME_WORDS {
        let mut listed = false;
        let mut j = 0;
        while j < words.len() {
            listed |= words[j] == w;
            j += 1;
        }
        if !listed && MASKS[l][w] != 0 {
            return false;
        }
        w += 1;
    }
    true
}

/// This CPU's slot `i`.
#[inline(always)]
fn slot(i: u32) -> Option<*mut FrameSlot> {
    // SAFETY: a plain helper call (inlined by the verifier on x86-64).
    let cpu = unsafe { bpf_get_smp_processor_id() };
    let t = DOWN_FRAMES.get_ptr_mut(cpu)?;
    let i = (i & (FRAME_SLOTS - 1)) as usize;
    // SAFETY: `i` is below the table's length (masked), inside `*t`.
    Some(unsafe { core::ptr::addr_of_mut!((*t).slots[i]) })
}

/// A frame of a flow in the cache, forwarded: `Some(action)`. `None`: the
/// full path must look at it (the frame is unchanged).
#[inline(always)]
pub fn forward(
    ctx: &XdpContext,
    cfg: &DataplaneConfig,
    gen: u32,
) -> Option<Result<u32, DropReason>> {
    let (start, end) = (ctx.data(), ctx.data_end());
    let p = ptr_at::<[u8; FRAME_END]>(start, end, 0).ok()?.cast::<u8>();
    // SAFETY: `ptr_at` proved the window's bytes lie inside the frame.
    let at = unsafe { locate(p, start, end) }?;
    let s = slot(at.slot)?;
    // SAFETY: this CPU's slot; no other program runs on this CPU while
    // this one does (see `flow.rs`).
    let s = unsafe { &*s };
    if s.gen != gen || gen == 0 || s.inner_at as usize != at.inner_at {
        return None;
    }
    let want = s.want.as_ptr();
    // SAFETY: the window's words and the slot's (`differ`).
    let diff = unsafe {
        match s.layout {
            0 => differ!(p, want, 0; 0 2 3 4 5 6 7 8 9 10 11 13 14),
            1 => differ!(p, want, 1; 0 2 3 4 5 6 7 8 9 10 12 13 14 15),
            2 => differ!(p, want, 2; 0 2 3 4 5 6 7 8 10 11 12 13),
            3 => differ!(p, want, 3; 0 2 3 4 5 6 7 8 9 11 12 13 14),
            4 => differ!(p, want, 4; 0 2 3 4 5 6 7 9 10 12 13 14 15),
            _ => 1,
        }
    };
    if diff != 0 {
        return None;
    }
    let len = end - start;
    let inner_at = at.inner_at;
    // SAFETY: inside the window, and inside the inner header.
    let (outer_len, inner_len, ttl) = unsafe {
        (
            usize::from(u16::from_be(load16(p.add(16)))),
            usize::from(u16::from_be(load16(at.inner.add(2)))),
            load16(at.inner.add(8)) as u8,
        )
    };
    // The checks of the full path that depend on more than these bytes.
    if ETH_LEN + outer_len > len
        || outer_len < IPV4_LEN
        || cfg.in_pool(u32::from_be(at.src))
        || inner_at + inner_len > len
        || inner_len > s.fits as usize
        || ttl <= 1
    {
        return None;
    }
    if (s.layout as usize) < PPTP {
        // The port L2TP is served on now (a restart may have moved it).
        // SAFETY: inside the window.
        let port = u16::from_be(unsafe { load16(p.add(36)) });
        if port != cfg.l2tp_port || port == 0 {
            return None;
        }
    } else {
        if cfg.pptp_enabled == 0 {
            return None;
        }
        // SAFETY: inside the window.
        let (payload, flags, seq) = unsafe {
            (
                load16(p.add(38)),
                u16::from_be(load16(p.add(34))),
                u32::from(u16::from_be(load16(p.add(42)))) << 16
                    | u32::from(u16::from_be(load16(p.add(44)))),
            )
        };
        if payload == 0 {
            return None; // an acknowledgement alone: the daemon's
        }
        if flags & GRE_F_SEQ != 0 {
            pptp::record_seq(s.idx, seq);
        }
    }
    Some(xdp_fwd::down(
        ctx, inner_at, inner_len, s.idx, s.ifindex, &s.eth,
    ))
}

/// After the full path decided to forward the packet at the frame's start
/// (not yet changed) whose inner IPv4 header it found at `inner_at`:
/// keeps its frame with that decision, if it has one of the layouts.
#[inline(always)]
pub fn learn(ctx: &XdpContext, gen: u32, inner_at: usize, d: &Learned) {
    let Ok(p) = ptr_at::<[u8; FRAME_END]>(ctx.data(), ctx.data_end(), 0) else {
        return;
    };
    let p = p.cast::<u8>();
    // SAFETY: `ptr_at` proved the window's bytes lie inside the frame.
    let Some(at) = (unsafe { locate(p, ctx.data(), ctx.data_end()) }) else {
        return;
    };
    // Another layout (a compressed PPP header, L2TP's offset field, IPv4
    // options) read as one of ours: not kept.
    // SAFETY: inside the window.
    let version_ihl = unsafe { load16(p.add(14)) } as u8;
    if at.inner_at != inner_at || version_ihl != 0x45 || gen == 0 {
        return;
    }
    let Some(s) = slot(at.slot) else { return };
    let masks = &MASKS[at.layout.min(LAYOUTS - 1)];
    // SAFETY: as in `forward`; written field by field (a whole-struct
    // copy is a call to a byte-loop memcpy in BPF).
    unsafe {
        for (i, mask) in masks.iter().enumerate() {
            (*s).want[i] = load32(p.add(FRAME_AT + 4 * i)) & mask;
        }
        (*s).gen = gen;
        (*s).idx = d.idx;
        (*s).ifindex = d.ifindex;
        (*s).fits = d.fits;
        (*s).inner_at = at.inner_at as u32;
        (*s).layout = at.layout as u32;
        (*s).eth = *d.eth;
    }
}

/// The decision `learn` keeps with a frame.
pub struct Learned<'a> {
    pub idx: u32,
    pub ifindex: u32,
    pub fits: u32,
    pub eth: &'a Eth,
}
