//! XDP forwarding for the unencrypted fast paths (docs/decisions.md #54).
//!
//! WAN to LAN: a fast-path session's data packet is decapsulated in XDP
//! and, when the kernel's route for its inner packet (looked up as if it
//! came in on vpn0, as the stack would) leaves through a forwarding
//! interface with a known neighbour, redirected straight there. LAN to
//! WAN: a packet arriving on a forwarding interface for a fast-path client
//! is encapsulated and redirected out of the WAN. Everything else, and
//! everything the stack must answer (TTL, MTU, options, fragments,
//! unfinished checksums, unknown neighbours), takes the TC path, which is
//! also all there is while the daemon has cleared CONFIG_F_XDP_FORWARD
//! (netfilter rules that XDP would bypass). A flow's decisions (session,
//! routes, next hop) are cached per CPU (`flow.rs`, decisions #61): its
//! later packets only get the checks that depend on the packet itself.
//! WAN to LAN, the frame is kept with the decision too (`frame.rs`,
//! decisions #64), and `xdp_wan` tries it before parsing anything.
use aya_ebpf::{
    bindings::{
        bpf_fib_lookup as FibParams, xdp_action, BPF_FIB_LKUP_RET_SUCCESS, BPF_FIB_LOOKUP_OUTPUT,
        BPF_FIB_LOOKUP_SKIP_NEIGH,
    },
    helpers::{bpf_fib_lookup, bpf_xdp_adjust_head},
    programs::XdpContext,
};
use vpn_common::{
    counters::{Counter, DropReason},
    maps::{
        DataplaneConfig, FibKey, FlowKey, CONFIG_F_VALID, CONFIG_F_XDP_FORWARD, FIB_KIND_FORWARD,
        FIB_KIND_OUTPUT, FIB_KIND_TO_VPN, PROTO_L2TP, PROTO_PPTP,
    },
    wire::{EthHdr, Ipv4Hdr, ETH_P_IPV4, IPPROTO_GRE, IPPROTO_UDP},
};

use crate::{
    bytes::{PacketBytes, XdpBytes},
    encap::{add_stats, checksum_partial, ppp_ipv4, session_for, ETH_LEN, IPV4_LEN},
    flow,
    frame::{self, Learned},
    l2tp, lan_hit,
    maps::{forward_if, CONFIG, DOWN_FLOWS, FIB_CACHE, REDIRECT_DEVS, UP_FLOWS},
    packet::{bytes_mut, store},
    pptp,
    stats::count,
    template::{self, Eth, Hdr},
    tunnel,
};

const AF_INET: u8 = 2;

/// The daemon's configuration, when XDP forwarding is on.
#[inline(always)]
pub fn config() -> Option<&'static DataplaneConfig> {
    CONFIG.get(0).filter(|c| on(c))
}

/// XDP forwarding is on in the valid configuration `cfg`.
#[inline(always)]
pub fn on(cfg: &DataplaneConfig) -> bool {
    cfg.flags & (CONFIG_F_VALID | CONFIG_F_XDP_FORWARD) == CONFIG_F_VALID | CONFIG_F_XDP_FORWARD
}

/// WAN ingress, untagged IPv4 whose L4 header is at `l4`: `Some(action)`
/// when the packet was forwarded (or must be dropped), `None` when it
/// continues on today's way.
pub fn from_wan(
    ctx: &XdpContext,
    ip: &Ipv4Hdr,
    l4: usize,
    cfg: &DataplaneConfig,
) -> Result<Option<u32>, DropReason> {
    let b = XdpBytes {
        start: ctx.data(),
        end: ctx.data_end(),
    };
    let Some(h) = tunnel::header(&b, ip, l4, cfg) else {
        return Ok(None);
    };
    let gen = flow::generation();
    let flows = flow::table(&DOWN_FLOWS);
    let parsed = ppp_inner(&b, &h).map(|(off, inner)| {
        let key = FlowKey::down(&h.key, inner.dst, inner.tos);
        (off, inner, key)
    });
    // A flow already decided: the checks that depend on the packet only.
    if let Some((off, inner, key)) = &parsed {
        if let Some(f) = flows.and_then(|t| flow::hit(t, key, gen)) {
            let inner_len = usize::from(u16::from_be(inner.total_len));
            if tunnel::accepts(&h, f.idx, f.peer_port)
                && inner.src == f.assigned_ip
                && forwardable(inner)
                && off + inner_len <= b.len()
                && inner_len <= f.fits as usize
            {
                let d = Learned {
                    idx: f.idx,
                    ifindex: f.ifindex,
                    fits: f.fits,
                    eth: &template::eth(&f.hdr),
                };
                frame::learn(ctx, gen, *off, &d);
                return down(ctx, *off, inner_len, d.idx, d.ifindex, d.eth).map(Some);
            }
        }
    }
    let Some(a) = tunnel::resolve(&h) else {
        return Ok(None);
    };
    // Anything odd is TC's to count or drop, as without this path.
    let Some((off, inner, key)) = parsed else {
        return Ok(to_stack());
    };
    let inner_len = usize::from(u16::from_be(inner.total_len));
    if inner.src != a.entry.assigned_ip || !forwardable(&inner) || off + inner_len > b.len() {
        return Ok(to_stack());
    }
    // The route the stack takes for it after vpn0's ingress.
    let fib = FibKey {
        dst: inner.dst,
        src: inner.src,
        ifindex: cfg.vpn_ifindex,
        kind: FIB_KIND_FORWARD | u32::from(inner.tos) << 8,
    };
    let hop = match route(ctx, gen, &fib, inner.tos, inner.proto, inner_len, 0) {
        Some(hop) if hop.forwarding => hop,
        _ => return Ok(to_stack()),
    };
    let decision = flow::Decision {
        idx: a.idx,
        ifindex: hop.ifindex,
        hdr: template::build(hop.l2, &[]),
        csum0: 0,
        mac: [0; 6],
        assigned_ip: a.entry.assigned_ip,
        peer_port: a.entry.peer_port,
        proto: a.entry.proto,
        len: inner_len as u32,
    };
    if let Some(t) = flows {
        flow::fill(t, &key, gen, &decision);
    }
    let d = Learned {
        idx: a.idx,
        ifindex: hop.ifindex,
        fits: inner_len as u32,
        eth: &template::eth(&decision.hdr),
    };
    frame::learn(ctx, gen, off, &d);
    down(ctx, off, inner_len, a.idx, hop.ifindex, d.eth).map(Some)
}

/// The IPv4 packet a tunnel packet's PPP frame carries: its offset and header.
#[inline(always)]
fn ppp_inner(b: &XdpBytes, h: &tunnel::Header) -> Option<(usize, Ipv4Hdr)> {
    let off = ppp_ipv4(b, h.ppp).ok().flatten()?;
    Some((off, b.read::<Ipv4Hdr>(off)?))
}

/// Decapsulates session `idx`'s inner packet (`inner_len` bytes at `off`)
/// and redirects it out of `ifindex` behind the Ethernet header `eth`.
/// The packet is changed from here on: a failure drops it.
#[inline(always)]
pub fn down(
    ctx: &XdpContext,
    off: usize,
    inner_len: usize,
    idx: u32,
    ifindex: u32,
    eth: &Eth,
) -> Result<u32, DropReason> {
    // Counted first: fewer values to keep across the helper call.
    add_stats(idx, true, inner_len as u64);
    count(Counter::XdpFwdRx);
    adjust_head(ctx, (off - ETH_LEN) as i32)?;
    template::write_eth(ctx, eth)?;
    decrement_ttl_in_frame(ctx, ETH_LEN)?;
    redirect(ifindex)
}

/// A forwarding interface's ingress: a packet for a fast-path client is
/// encapsulated and sent out of the WAN; anything else passes untouched.
pub fn from_lan(ctx: &XdpContext) -> Result<u32, DropReason> {
    let pass = Ok(xdp_action::XDP_PASS);
    let Some(cfg) = config() else {
        return pass;
    };
    let gen = flow::generation();
    let flows = flow::table(&UP_FLOWS);
    // A flow already decided: the checks that depend on the packet only.
    if let Some(t) = flows {
        if let Some(action) = lan_hit::forward(ctx, cfg, t, gen) {
            return action;
        }
    }
    let b = XdpBytes {
        start: ctx.data(),
        end: ctx.data_end(),
    };
    // One read, one check (two reads of `Option`s left LLVM reading the
    // flag of one on a path where it was never set, which the verifier
    // refuses).
    let Some(EthIpv4 { eth, ip }) = b.read::<EthIpv4>(0) else {
        return pass;
    };
    if u16::from_be(eth.ethertype) != ETH_P_IPV4 {
        return pass;
    }
    let ifindex = ctx.ingress_ifindex() as u32;
    let inner_len = usize::from(u16::from_be(ip.total_len));
    let flow_key = FlowKey::up(ifindex, ip.src, ip.dst, ip.tos);
    // Frames for another host (promiscuous mode, a bridge port) are not ours to route.
    let mac = match forward_if(ifindex) {
        Some(f) if f.mac == eth.dst => f.mac,
        _ => return pass,
    };
    let Some((idx, entry)) = session_for(ip.dst) else {
        return pass;
    };
    if !forwardable(&ip) || ETH_LEN + inner_len > b.len() || checksum_partial(&b, ETH_LEN, &ip) {
        return Ok(lan_to_stack());
    }
    // The stack's route for it must be vpn0's (the operator may route it elsewhere) ...
    let key = FibKey {
        dst: ip.dst,
        src: ip.src,
        ifindex,
        kind: FIB_KIND_TO_VPN | u32::from(ip.tos) << 8,
    };
    match route(
        ctx,
        gen,
        &key,
        ip.tos,
        ip.proto,
        inner_len,
        BPF_FIB_LOOKUP_SKIP_NEIGH,
    ) {
        Some(hop) if hop.ifindex == cfg.vpn_ifindex => {}
        _ => return Ok(lan_to_stack()),
    }
    // ... and the tunnel packet's route the WAN, with a known next hop.
    let (l4, encap_len) = match entry.proto {
        PROTO_PPTP => (IPPROTO_GRE, pptp::ENCAP_LEN),
        PROTO_L2TP => (IPPROTO_UDP, l2tp::ENCAP_LEN),
        _ => return pass,
    };
    let key = FibKey {
        dst: entry.peer_ip,
        src: entry.local_ip,
        ifindex: cfg.wan_ifindex,
        kind: FIB_KIND_OUTPUT,
    };
    // The outer header's ToS is 0 (`encap::ipv4_header`).
    let out = match route(
        ctx,
        gen,
        &key,
        0,
        l4,
        encap_len + inner_len,
        BPF_FIB_LOOKUP_OUTPUT,
    ) {
        Some(hop) if hop.ifindex == cfg.wan_ifindex => hop,
        _ => return Ok(lan_to_stack()),
    };
    // The frame's headers for an empty inner packet, each packet's
    // lengths patched in as it goes (one arm per protocol: constant sizes).
    let (hdr, csum0) = match entry.proto {
        PROTO_PPTP => {
            let t = pptp::header_with(&entry, 0, 0, 0);
            (template::build(out.l2, &t), template::checksum(&t))
        }
        _ => {
            let t = l2tp::header(&entry, 0);
            (template::build(out.l2, &t), template::checksum(&t))
        }
    };
    let decision = flow::Decision {
        idx,
        ifindex: out.ifindex,
        hdr,
        csum0,
        mac,
        assigned_ip: entry.assigned_ip,
        peer_port: entry.peer_port,
        proto: entry.proto,
        len: inner_len as u32,
    };
    if let Some(t) = flows {
        flow::fill(t, &flow_key, gen, &decision);
    }
    let hop = one_hop(ip.ttl, ip.proto, ip.check);
    up(
        ctx,
        cfg,
        inner_len,
        hop,
        idx,
        entry.proto,
        &decision.hdr,
        csum0,
    )
}

/// Encapsulates the LAN packet at the frame's start (`inner_len` bytes;
/// `hop`: its bytes 8 to 11 after this hop, see `one_hop`) for session
/// `idx` (protocol `proto`) behind its flow's headers `hdr` (`csum0`:
/// their IPv4 checksum for an empty packet) and redirects it out of the
/// WAN.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub fn up(
    ctx: &XdpContext,
    cfg: &DataplaneConfig,
    inner_len: usize,
    hop: [u8; 4],
    idx: u32,
    proto: u8,
    hdr: &Hdr,
    csum0: u16,
) -> Result<u32, DropReason> {
    write_at(ctx, ETH_LEN + 8, &hop)?;
    add_stats(idx, false, inner_len as u64);
    count(Counter::XdpFwdTx);
    // One arm per protocol: the verifier needs constant sizes.
    match proto {
        PROTO_PPTP => {
            let (seq, ack) = pptp::next_seq(idx)?;
            adjust_head(ctx, -(pptp::ENCAP_LEN as i32))?;
            template::write_pptp(ctx, hdr, csum0, inner_len, seq, ack)?;
        }
        _ => {
            adjust_head(ctx, -(l2tp::ENCAP_LEN as i32))?;
            template::write_l2tp(ctx, hdr, csum0, inner_len)?;
        }
    }
    redirect(cfg.wan_ifindex)
}

/// An Ethernet frame's headers up to an IPv4 header without options
/// (packed: the IPv4 header right after the 14 bytes).
#[repr(C, packed(2))]
#[derive(Clone, Copy)]
struct EthIpv4 {
    eth: EthHdr,
    ip: Ipv4Hdr,
}
const _: () = assert!(core::mem::size_of::<EthIpv4>() == ETH_LEN + IPV4_LEN);

/// What the stack would forward without asking anything of it: IPv4
/// without options, not a fragment, a TTL left after this hop.
#[inline(always)]
fn forwardable(ip: &Ipv4Hdr) -> bool {
    ip.version_ihl == 0x45 && u16::from_be(ip.frag_off) & 0x3fff == 0 && ip.ttl > 1
}

/// A fast-path packet from the WAN left to TC.
#[inline(always)]
fn to_stack() -> Option<u32> {
    count(Counter::XdpFwdToStack);
    None
}

/// A packet for a fast-path client left to the stack (and vpn0's TC).
#[inline(always)]
fn lan_to_stack() -> u32 {
    count(Counter::XdpFwdToStack);
    xdp_action::XDP_PASS
}

/// Where a route sends a packet: the egress interface and the Ethernet
/// header's first 12 bytes (destination, then source MAC).
struct Hop {
    ifindex: u32,
    /// The egress interface is a forwarding interface.
    forwarding: bool,
    l2: [u32; 3],
}

/// The FIB's answer for `key`, a packet of ToS `tos`, protocol `proto` and
/// `len` bytes: from the route cache while generation `gen` holds (and the
/// packet is no bigger than one the lookup passed), else from
/// `bpf_fib_lookup` with `flags`, which then fills the cache. `None`: the
/// lookup did not succeed, the stack must handle the packet.
#[inline(always)]
fn route(
    ctx: &XdpContext,
    gen: u32,
    key: &FibKey,
    tos: u8,
    proto: u8,
    len: usize,
    flags: u32,
) -> Option<Hop> {
    let mut fits = len as u32;
    let slot = FIB_CACHE.get_ptr_mut(key.slot());
    if let Some(s) = slot.filter(|_| gen != 0) {
        // SAFETY: this CPU's slot; no other program runs on this CPU
        // while this one does. Read field by field: a whole-struct copy is
        // a call to a byte-loop memcpy in BPF.
        let (k, e) = unsafe { (&(*s).key, &(*s).entry) };
        if e.gen == gen
            && k.dst == key.dst
            && k.src == key.src
            && k.ifindex == key.ifindex
            && k.kind == key.kind
        {
            if fits <= e.fits {
                return Some(Hop {
                    ifindex: e.ifindex,
                    forwarding: e.forwarding != 0,
                    l2: [e.l2[0], e.l2[1], e.l2[2]],
                });
            }
            fits = fits.max(e.fits);
        }
    }
    let mut p = fib_params(tos, key.src, key.dst, proto, len);
    p.ifindex = key.ifindex;
    if lookup(ctx, &mut p, flags) != BPF_FIB_LKUP_RET_SUCCESS {
        return None;
    }
    let (d, m) = (p.dmac, p.smac);
    let l2 = [
        u32::from_ne_bytes([d[0], d[1], d[2], d[3]]),
        u32::from_ne_bytes([d[4], d[5], m[0], m[1]]),
        u32::from_ne_bytes([m[2], m[3], m[4], m[5]]),
    ];
    // Kept with the route: the set of forwarding interfaces is fixed
    // while the daemon runs.
    let forwarding = forward_if(p.ifindex).is_some();
    if let Some(s) = slot.filter(|_| gen != 0) {
        // SAFETY: this CPU's slot; a collision just replaces the other key.
        unsafe {
            let (k, e) = (&mut (*s).key, &mut (*s).entry);
            k.dst = key.dst;
            k.src = key.src;
            k.ifindex = key.ifindex;
            k.kind = key.kind;
            e.ifindex = p.ifindex;
            e.gen = gen;
            e.fits = fits;
            e.forwarding = u32::from(forwarding);
            e.l2 = [l2[0], l2[1], l2[2]];
        }
    }
    Some(Hop {
        ifindex: p.ifindex,
        forwarding,
        l2,
    })
}

/// FIB parameters for an IPv4 packet `src` -> `dst` (network order) of
/// `len` bytes (the lookup checks it against the route's MTU).
#[inline(always)]
fn fib_params(tos: u8, src: u32, dst: u32, proto: u8, len: usize) -> FibParams {
    let mut p = core::mem::MaybeUninit::<FibParams>::uninit();
    let words = p.as_mut_ptr().cast::<u32>();
    // Zeroed word by word: `mem::zeroed` (or a loop LLVM turns into one)
    // is a call to a byte-loop `memset` in BPF, a tenth of this path's time.
    const WORDS: usize = core::mem::size_of::<FibParams>() / 4;
    // SAFETY: WORDS u32 stores cover the 64-byte, 4-aligned struct exactly;
    // after them it is a plain C struct of integers, all zero, a valid value.
    let mut p = unsafe {
        for i in 0..WORDS {
            core::ptr::write_volatile(words.add(i), 0);
        }
        p.assume_init()
    };
    p.family = AF_INET;
    p.l4_protocol = proto;
    p.__bindgen_anon_1.tot_len = len as u16;
    p.__bindgen_anon_2.tos = tos;
    p.__bindgen_anon_3.ipv4_src = src;
    p.__bindgen_anon_4.ipv4_dst = dst;
    p
}

#[inline(always)]
fn lookup(ctx: &XdpContext, p: &mut FibParams, flags: u32) -> u32 {
    // SAFETY: `p` is a whole bpf_fib_lookup of the size passed.
    let rc = unsafe {
        bpf_fib_lookup(
            ctx.ctx.cast(),
            p,
            core::mem::size_of::<FibParams>() as i32,
            flags,
        )
    };
    rc as u32
}

fn adjust_head(ctx: &XdpContext, delta: i32) -> Result<(), DropReason> {
    // SAFETY: plain helper call on this program's context.
    match unsafe { bpf_xdp_adjust_head(ctx.ctx, delta) } {
        0 => Ok(()),
        _ => Err(DropReason::FastPathFailed),
    }
}

/// Four bytes at `off`, in one store.
#[inline(always)]
fn write_at(ctx: &XdpContext, off: usize, v: &[u8; 4]) -> Result<(), DropReason> {
    let p =
        bytes_mut::<4>(ctx.data(), ctx.data_end(), off).map_err(|_| DropReason::FastPathFailed)?;
    // SAFETY: `bytes_mut` proved the four bytes lie inside the frame.
    unsafe { store::<4>(p, u64::from(u32::from_ne_bytes(*v))) };
    Ok(())
}

/// One hop for the IPv4 header at `l3`, read from the frame again: after
/// a helper call that is cheaper than keeping the header's fields across
/// it.
#[inline(always)]
fn decrement_ttl_in_frame(ctx: &XdpContext, l3: usize) -> Result<(), DropReason> {
    let b = XdpBytes {
        start: ctx.data(),
        end: ctx.data_end(),
    };
    let [ttl_proto, check] = b
        .read::<[u16; 2]>(l3 + 8)
        .ok_or(DropReason::FastPathFailed)?;
    let [ttl, proto] = ttl_proto.to_ne_bytes();
    write_at(ctx, l3 + 8, &one_hop(ttl, proto, check))
}

/// An IPv4 header's TTL, protocol and checksum (network order) after one
/// hop, as they lie in the header (bytes 8 to 11).
#[inline(always)]
pub fn one_hop(ttl: u8, proto: u8, check: u16) -> [u8; 4] {
    let sum = u32::from(u16::from_be(check)) + 0x0100;
    let [c0, c1] = (((sum & 0xffff) + (sum >> 16)) as u16).to_be_bytes();
    [ttl.wrapping_sub(1), proto, c0, c1]
}

fn redirect(ifindex: u32) -> Result<u32, DropReason> {
    REDIRECT_DEVS
        .redirect(ifindex, 0)
        .map_err(|_| DropReason::FastPathFailed)
}

const _: () = assert!(IPV4_LEN == core::mem::size_of::<Ipv4Hdr>());
const _: () = assert!(core::mem::size_of::<FibParams>() == 64);
