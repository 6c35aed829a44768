//! WAN to LAN, a flow's later packets recognised by their frame
//! (docs/decisions.md #64, #65). Once the full path (`xdp_wan`, `tunnel`,
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
    maps::{FrameSlot, FrameTable, FRAME_AT, FRAME_DWORDS, FRAME_END, FRAME_SLOTS},
    wire::{GRE_F_ACK, GRE_F_SEQ, IPPROTO_GRE, IPPROTO_UDP, L2TP_F_LENGTH},
};

use crate::{
    encap::{ETH_LEN, IPV4_LEN},
    maps::DOWN_FRAMES,
    packet::{load16, load64, ptr_at},
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
const MASKS: [[u64; FRAME_DWORDS]; LAYOUTS] = [
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
const fn mask(udp: bool, inner: usize) -> [u64; FRAME_DWORDS] {
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
    let mut w = [0u64; FRAME_DWORDS];
    let mut k = 0;
    while k < FRAME_DWORDS {
        let o = FRAME_AT + 8 * k;
        w[k] = u64::from_le_bytes([
            b[o],
            b[o + 1],
            b[o + 2],
            b[o + 3],
            b[o + 4],
            b[o + 5],
            b[o + 6],
            b[o + 7],
        ]);
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
        assert!(MASKS[l][1] & 0xffff_ffff == 0);
        l += 1;
    }
};

/// Where each layout's inner IPv4 header starts.
const INNER_AT: [usize; LAYOUTS] = [52, 54, 46, 50, 54];

/// Which layout the frame at `p` would be, if any. Branches rather than
/// arithmetic: the CPU predicts them, and what follows reads at constant
/// offsets instead of waiting for these loads (decisions #64).
///
/// # Safety
/// `p` has `FRAME_END` readable bytes.
#[inline(always)]
unsafe fn layout(p: *const u8) -> Option<usize> {
    // SAFETY: every offset below is inside the window.
    unsafe {
        let proto = (load16(p.add(22)) >> 8) as u8;
        if proto == IPPROTO_UDP {
            if u16::from_be(load16(p.add(42))) & L2TP_F_LENGTH != 0 {
                Some(L2TP + 1)
            } else {
                Some(L2TP)
            }
        } else if proto == IPPROTO_GRE {
            let flags = u16::from_be(load16(p.add(34)));
            match (flags & GRE_F_SEQ != 0, flags & GRE_F_ACK != 0) {
                (false, false) => Some(PPTP),
                (true, true) => Some(PPTP + 2),
                _ => Some(PPTP + 1),
            }
        } else {
            None
        }
    }
}

/// The slot of a frame of layout `L`: the outer source, the tunnel (UDP
/// ports, or GRE's call ID) and the inner destination, hashed.
///
/// # Safety
/// `p` has `FRAME_END` readable bytes.
#[inline(always)]
unsafe fn slot_of<const L: usize>(p: *const u8) -> u32 {
    let inner = INNER_AT[L];
    // SAFETY: inside the window (the inner header of every layout is).
    let (src, tunnel, dst) = unsafe {
        (
            u32::from(load16(p.add(26))) | u32::from(load16(p.add(28))) << 16,
            if L < PPTP {
                u32::from(load16(p.add(34))) << 16 | u32::from(load16(p.add(36)))
            } else {
                u32::from(load16(p.add(40)))
            },
            u32::from(load16(p.add(inner + 16))) << 16 | u32::from(load16(p.add(inner + 18))),
        )
    };
    let mix = src ^ tunnel.rotate_left(16) ^ dst.rotate_left(8) ^ L as u32;
    mix.wrapping_mul(0x9e37_79b1) >> (32 - FRAME_SLOTS.trailing_zeros())
}
const _: () = assert!(INNER_AT[1] + 20 <= FRAME_END && INNER_AT[4] + 20 <= FRAME_END);

/// Nonzero if any 8-byte word `i` of the window at `p` differs from
/// `want[i]` in the bits of layout `L`'s mask, for the words the mask has
/// bits in. One assembly block a word: LLVM would load every word first
/// and keep most of them on the stack.
///
/// # Safety
/// `p` has `FRAME_END` readable bytes; `want` `FRAME_DWORDS` words.
macro_rules! differ {
    ($p:expr, $want:expr, $l:ident; $($i:literal)*) => {{
        const _: () = assert!(FRAME_DWORDS == [$($i),*].len());
        let mut acc: u64 = 0;
        $(
            let m = MASKS[$l][$i];
            #[cfg(target_arch = "bpf")]
            if m == u64::MAX {
                differ_word!(acc, $p, $want, $i;;);
            } else if m != 0 {
                differ_word!(acc, $p, $want, $i;
                    "{m} = {mask} ll" "{t} &= {m}";
                    m = out(reg) _, mask = const MASKS[$l][$i] as i64,);
            }
            #[cfg(not(target_arch = "bpf"))]
            {
                let v = $p.add(FRAME_AT + 8 * $i).cast::<u64>().read_unaligned();
                acc |= (v & m) ^ *$want.add($i);
            }
        )*
        acc
    }};
}

/// One word of `differ!` into `acc`: the frame's word, masked by the
/// instructions `mask` (none for an all-ones mask) with their operands
/// `ops`, XORed with the kept one.
#[cfg(target_arch = "bpf")]
macro_rules! differ_word {
    ($acc:ident, $p:expr, $want:expr, $i:literal; $($mask:literal)*; $($ops:tt)*) => {
        core::arch::asm!(
            "{t} = *(u64 *)({p} + {o})",
            $($mask,)*
            "{w} = *(u64 *)({want} + {k})",
            "{t} ^= {w}",
            "{acc} |= {t}",
            p = in(reg) $p,
            want = in(reg) $want,
            o = const FRAME_AT + 8 * $i,
            k = const 8 * $i,
            t = out(reg) _,
            w = out(reg) _,
            acc = inout(reg) $acc,
            $($ops)*
            options(nostack, readonly),
        )
    };
}

/// This CPU's table. Looked up before the frame is read: the helper call
/// would otherwise make LLVM keep the frame's words on the stack across it.
#[inline(always)]
fn table() -> Option<*mut FrameTable> {
    // SAFETY: a plain helper call (inlined by the verifier on x86-64).
    let cpu = unsafe { bpf_get_smp_processor_id() };
    DOWN_FRAMES.get_ptr_mut(cpu)
}

/// Slot `i` of table `t`.
#[inline(always)]
fn slot(t: *mut FrameTable, i: u32) -> *mut FrameSlot {
    let i = (i & (FRAME_SLOTS - 1)) as usize;
    // SAFETY: `i` is below the table's length (masked), inside `*t`.
    unsafe { core::ptr::addr_of_mut!((*t).slots[i]) }
}

/// A frame of a flow in the cache, forwarded: `Some(action)`. `None`: the
/// full path must look at it (the frame is unchanged). What the full path
/// checked against the configuration (the pool, the L2TP port, PPTP on,
/// XDP forwarding on) holds for the slot's generation: the daemon moves
/// the generation on whenever it writes the configuration.
#[inline(always)]
pub fn forward(ctx: &XdpContext, gen: u32) -> Option<Result<u32, DropReason>> {
    if gen == 0 {
        return None;
    }
    let t = table()?;
    let p = ptr_at::<[u8; FRAME_END]>(ctx.data(), ctx.data_end(), 0)
        .ok()?
        .cast::<u8>();
    // SAFETY: `ptr_at` proved the window's bytes lie inside the frame.
    match unsafe { layout(p) }? {
        0 => forward_as::<0>(ctx, p, t, gen),
        1 => forward_as::<1>(ctx, p, t, gen),
        2 => forward_as::<2>(ctx, p, t, gen),
        3 => forward_as::<3>(ctx, p, t, gen),
        _ => forward_as::<4>(ctx, p, t, gen),
    }
}

/// `forward` for a frame of layout `L` at `p` (its window checked), with
/// this CPU's table `t`: every offset a constant.
#[inline(always)]
fn forward_as<const L: usize>(
    ctx: &XdpContext,
    p: *const u8,
    t: *mut FrameTable,
    gen: u32,
) -> Option<Result<u32, DropReason>> {
    // SAFETY: `p`'s window is readable.
    let s = slot(t, unsafe { slot_of::<L>(p) });
    // SAFETY: this CPU's slot; no other program runs on this CPU while
    // this one does (see `flow.rs`).
    let s = unsafe { &*s };
    if s.gen != gen || s.layout as usize != L {
        return None;
    }
    let want = s.want.as_ptr();
    // SAFETY: the window's words and the slot's (`differ`).
    let diff = unsafe { differ!(p, want, L; 0 1 2 3 4 5 6 7 8) };
    if diff != 0 {
        return None;
    }
    let inner_at = INNER_AT[L];
    let len = ctx.data_end() - ctx.data();
    // SAFETY: inside the window (the inner header of every layout is).
    let (outer_len, inner_len, ttl) = unsafe {
        (
            usize::from(u16::from_be(load16(p.add(16)))),
            usize::from(u16::from_be(load16(p.add(inner_at + 2)))),
            load16(p.add(inner_at + 8)) as u8,
        )
    };
    // The checks of the full path that depend on more than these bytes.
    if ETH_LEN + outer_len > len
        || outer_len < IPV4_LEN
        || inner_at + inner_len > len
        || inner_len > s.fits as usize
        || ttl <= 1
    {
        return None;
    }
    if L >= PPTP {
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
    let Some(l) = (unsafe { layout(p) }) else {
        return;
    };
    let l = l.min(LAYOUTS - 1);
    // Another layout (a compressed PPP header, L2TP's offset field, IPv4
    // options) read as one of ours: not kept.
    // SAFETY: inside the window.
    let version_ihl = unsafe { load16(p.add(14)) } as u8;
    if INNER_AT[l] != inner_at || version_ihl != 0x45 || gen == 0 {
        return;
    }
    let Some(t) = table() else { return };
    // SAFETY: inside the window.
    let i = unsafe {
        match l {
            0 => slot_of::<0>(p),
            1 => slot_of::<1>(p),
            2 => slot_of::<2>(p),
            3 => slot_of::<3>(p),
            _ => slot_of::<4>(p),
        }
    };
    let s = slot(t, i);
    let masks = &MASKS[l];
    // SAFETY: as in `forward`; written field by field (a whole-struct
    // copy is a call to a byte-loop memcpy in BPF).
    unsafe {
        for (i, mask) in masks.iter().enumerate() {
            (*s).want[i] = load64(p.add(FRAME_AT + 8 * i)) & mask;
        }
        (*s).gen = gen;
        (*s).idx = d.idx;
        (*s).ifindex = d.ifindex;
        (*s).fits = d.fits;
        (*s).layout = l as u32;
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
