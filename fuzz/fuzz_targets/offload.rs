//! The TUN offloads (vpn_proto::offload). The first byte picks the side:
//! even, a `virtio_net_hdr` and a packet as a TUN device would hand over
//! (`split`); odd, framed packets as a client's decrypted datagrams would
//! yield (`Coalescer`, attacker-controlled on the gateway).
#![no_main]
use libfuzzer_sys::fuzz_target;
use vpn_proto::offload::{split, Coalescer, VnetHdr, VNET_HDR_GSO_NONE, VNET_HDR_LEN};

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode % 2 == 0 {
        let Some(hdr) = VnetHdr::decode(rest) else {
            return;
        };
        let mut packet = rest[VNET_HDR_LEN..].to_vec();
        let (len, mut n) = (packet.len(), 0usize);
        let _ = split(&hdr, &mut packet, &mut Vec::new(), |s| {
            assert!(s.len() <= len, "a segment longer than the packet");
            n += 1;
        });
        assert!(n <= len.max(1), "{n} segments from {len} bytes");
        return;
    }
    // Every packet pushed comes out: its bytes, alone or in a GSO packet
    // that cuts back into packets with the same payload bytes in order.
    let mut c = Coalescer::new();
    let mut writes: Vec<Vec<u8>> = Vec::new();
    let mut w = |b: &[u8]| writes.push(b.to_vec());
    let mut pushed = 0usize;
    for p in vpn_fuzz::frames(rest) {
        c.push(p, &mut w);
        pushed += 1;
    }
    c.flush(&mut w);
    let mut out = 0usize;
    for mut b in writes {
        let hdr = VnetHdr::decode(&b).expect("every write starts with its header");
        if hdr.gso_type == VNET_HDR_GSO_NONE {
            out += 1;
            continue;
        }
        split(&hdr, &mut b[VNET_HDR_LEN..], &mut Vec::new(), |_| out += 1)
            .expect("a GSO write cuts");
    }
    assert_eq!(out, pushed, "packets in, packets out");
});
