use super::*;

/// RFC 1071's checksum, word by word: the independent check.
fn rfc1071(parts: &[&[u8]]) -> u16 {
    let bytes: Vec<u8> = parts.concat();
    let mut s: u32 = 0;
    for c in bytes.chunks(2) {
        s += u32::from(c[0]) << 8 | u32::from(*c.get(1).unwrap_or(&0));
    }
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    !(s as u16)
}

fn pseudo(src: [u8; 4], dst: [u8; 4], proto: u8, len: usize) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&src);
    v.extend_from_slice(&dst);
    v.extend_from_slice(&[0, proto]);
    v.extend_from_slice(&(len as u16).to_be_bytes());
    v
}

const SRC: [u8; 4] = [10, 99, 0, 2];
const DST: [u8; 4] = [192, 168, 50, 10];

/// A TCP super-packet as the stack hands it to a TSO device: IP total
/// length of the whole, the TCP checksum field holding the pseudo-header's
/// sum (not complemented), 12 bytes of TCP options.
fn super_packet(payload: &[u8], flags: u8) -> Vec<u8> {
    let tcp_hlen = 32;
    let total = 20 + tcp_hlen + payload.len();
    let mut p = vec![0x45, 0, 0, 0, 0x12, 0x34, 0x40, 0, 64, 6, 0, 0];
    p[2..4].copy_from_slice(&(total as u16).to_be_bytes());
    p.extend_from_slice(&SRC);
    p.extend_from_slice(&DST);
    p.extend_from_slice(&[0x9c, 0x40, 0x14, 0x51]); // ports
    p.extend_from_slice(&0xffff_fc00u32.to_be_bytes()); // seq, wraps
    p.extend_from_slice(&7u32.to_be_bytes()); // ack
    p.extend_from_slice(&[(tcp_hlen as u8 / 4) << 4, flags, 0xff, 0xff, 0, 0, 0, 0]);
    p.extend_from_slice(&[1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2]); // NOP NOP TS
    let partial = !rfc1071(&[&pseudo(SRC, DST, 6, tcp_hlen + payload.len())]);
    p[36..38].copy_from_slice(&partial.to_be_bytes());
    p.extend_from_slice(payload);
    p
}

fn tso(mss: u16) -> VnetHdr {
    VnetHdr {
        flags: VNET_HDR_F_NEEDS_CSUM,
        gso_type: VNET_HDR_GSO_TCPV4,
        hdr_len: 52,
        gso_size: mss,
        csum_start: 20,
        csum_offset: 16,
    }
}

fn segments(hdr: &VnetHdr, p: &mut [u8]) -> Result<Vec<Vec<u8>>, OffloadError> {
    let mut v = Vec::new();
    split(hdr, p, &mut Vec::new(), |s| v.push(s.to_vec()))?;
    Ok(v)
}

#[test]
fn the_header_decodes_little_endian() {
    let b = [1, 1, 52, 0, 0x78, 0x05, 20, 0, 16, 0];
    assert_eq!(VnetHdr::decode(&b), Some(tso(1400)));
    assert_eq!(VnetHdr::decode(&b[..9]), None);
}

#[test]
fn a_super_packet_becomes_valid_segments_carrying_the_same_bytes() {
    let payload: Vec<u8> = (0..3001u32).map(|i| (i * 7 + 3) as u8).collect();
    let mut p = super_packet(&payload, 0x18 | TCP_FIN | TCP_CWR); // PSH ACK FIN CWR
    let mut seed = vec![0, 1, 1, 52, 0, 0x78, 0x05, 20, 0, 16, 0];
    seed.extend_from_slice(&p);
    crate::fuzz_seed::save("offload", &seed);
    let segs = segments(&tso(1400), &mut p).unwrap();
    assert_eq!(
        segs.iter().map(Vec::len).collect::<Vec<_>>(),
        [1452, 1452, 253]
    );
    let mut carried = Vec::new();
    for (i, s) in segs.iter().enumerate() {
        assert_eq!(usize::from(u16::from_be_bytes([s[2], s[3]])), s.len());
        assert_eq!(u16::from_be_bytes([s[4], s[5]]), 0x1234 + i as u16);
        assert_eq!(rfc1071(&[&s[..20]]), 0, "IP checksum of segment {i}");
        let tcp = &s[20..];
        assert_eq!(
            rfc1071(&[&pseudo(SRC, DST, 6, tcp.len()), tcp]),
            0,
            "TCP checksum of segment {i}"
        );
        let seq = u32::from_be_bytes(tcp[4..8].try_into().unwrap());
        assert_eq!(seq, 0xffff_fc00u32.wrapping_add(1400 * i as u32));
        let last = i == segs.len() - 1;
        assert_eq!(tcp[13] & (TCP_FIN | TCP_PSH) != 0, last, "FIN/PSH on {i}");
        assert_eq!(tcp[13] & TCP_CWR != 0, i == 0, "CWR on {i}");
        assert_eq!(tcp[13] & 0x10, 0x10, "ACK on every segment");
        assert_eq!(&tcp[20..32], &p[40..52], "options copied");
        carried.extend_from_slice(&tcp[32..]);
    }
    assert_eq!(carried, payload);
}

#[test]
fn a_payload_of_whole_segments_leaves_no_empty_one() {
    let mut p = super_packet(&[5; 2800], 0x10);
    let segs = segments(&tso(1400), &mut p).unwrap();
    assert_eq!(segs.len(), 2);
    // A bare ACK with the GSO type still goes out, as one packet.
    let mut ack = super_packet(&[], 0x10);
    let segs = segments(&tso(1400), &mut ack).unwrap();
    assert_eq!(segs.len(), 1);
    assert_eq!(rfc1071(&[&pseudo(SRC, DST, 6, 32), &segs[0][20..]]), 0);
}

#[test]
fn a_partial_checksum_is_completed_in_place() {
    // UDP: header (8) + 5 bytes; the field holds the pseudo-header sum.
    let mut p = vec![0x45, 0, 0, 33, 0, 0, 0, 0, 64, 17, 0, 0];
    p.extend_from_slice(&SRC);
    p.extend_from_slice(&DST);
    p.extend_from_slice(&[
        0x30, 0x39, 0x00, 0x35, 0, 13, 0, 0, b'h', b'e', b'l', b'l', b'o',
    ]);
    let partial = !rfc1071(&[&pseudo(SRC, DST, 17, 13)]);
    p[26..28].copy_from_slice(&partial.to_be_bytes());
    let hdr = VnetHdr {
        flags: VNET_HDR_F_NEEDS_CSUM,
        csum_start: 20,
        csum_offset: 6,
        ..VnetHdr::default()
    };
    let segs = segments(&hdr, &mut p).unwrap();
    assert_eq!(segs, [p.clone()]);
    assert_ne!(&p[26..28], &[0, 0]);
    assert_eq!(rfc1071(&[&pseudo(SRC, DST, 17, 13), &p[20..]]), 0);
    // Without the flag the packet is passed as it is.
    let mut q = p.clone();
    assert_eq!(segments(&VnetHdr::default(), &mut q).unwrap(), [p]);
}

#[test]
fn lies_and_unoffered_types_are_refused() {
    let mut p = super_packet(&[1; 100], 0x10);
    let mut bad = tso(0);
    assert_eq!(segments(&bad, &mut p), Err(OffloadError::Malformed));
    bad = tso(1400);
    bad.gso_type = 4; // TCPv6
    assert_eq!(segments(&bad, &mut p), Err(OffloadError::Unsupported));
    assert_eq!(
        segments(&tso(1400), &mut p[..40].to_vec()),
        Err(OffloadError::Malformed)
    );
    let mut not_tcp = p.clone();
    not_tcp[9] = 17;
    assert_eq!(
        segments(&tso(1400), &mut not_tcp),
        Err(OffloadError::Malformed)
    );
    let csum_past_end = VnetHdr {
        flags: VNET_HDR_F_NEEDS_CSUM,
        csum_start: 150,
        csum_offset: 16,
        ..VnetHdr::default()
    };
    assert_eq!(
        segments(&csum_past_end, &mut p),
        Err(OffloadError::Malformed)
    );
}

#[test]
fn the_wide_sum_equals_the_word_sum() {
    for len in [0usize, 1, 2, 7, 8, 9, 15, 16, 1500, 1501] {
        let d: Vec<u8> = (0..len).map(|i| (i * 131 + 17) as u8 ^ 0xa5).collect();
        assert_eq!(!fold(sum(0, &d)), rfc1071(&[&d]), "length {len}");
    }
    assert_eq!(!fold(sum(0, &[0xff; 4096])), rfc1071(&[&[0xff; 4096]]));
}

#[test]
fn all_ones_addresses_do_not_overflow_the_pseudo_header_sum() {
    // The fuzzer's first find: the 8 address bytes summed as one 64-bit
    // word, then the protocol and length added with `+`, overflowed.
    let mut p = super_packet(&[9; 2000], 0x10);
    p[12..20].fill(0xff);
    let segs = segments(&tso(1000), &mut p).unwrap();
    assert_eq!(segs.len(), 2);
    for s in &segs {
        let tcp = &s[20..];
        assert_eq!(
            rfc1071(&[&pseudo([0xff; 4], [0xff; 4], 6, tcp.len()), tcp]),
            0
        );
    }
}
