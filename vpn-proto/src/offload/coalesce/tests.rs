use super::*;
use crate::offload::{split, VnetHdr, VNET_HDR_GSO_NONE};

/// Valid segments of a flow, cut by `split` from a super-packet (its
/// checksums and sequence numbers are checked in `offload::tests`).
fn segments(src_port: u8, seq: u32, payload: usize, mss: u16, psh: bool) -> Vec<Vec<u8>> {
    let tcp_hlen = 32;
    let total = 20 + tcp_hlen + payload;
    let mut p = vec![0x45, 0, 0, 0, 0x12, 0x34, 0x40, 0, 64, 6, 0, 0];
    p[2..4].copy_from_slice(&(total as u16).to_be_bytes());
    p.extend_from_slice(&[10, 99, 0, 2, 192, 168, 50, 10]);
    p.extend_from_slice(&[0x9c, src_port, 0x14, 0x51]);
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&7u32.to_be_bytes());
    p.extend_from_slice(&[0x80, if psh { 0x18 } else { 0x10 }, 0xff, 0xff, 0, 0, 0, 0]);
    p.extend_from_slice(&[1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2]);
    p.extend((0..payload).map(|i| (i * 31 + usize::from(src_port)) as u8));
    let hdr = VnetHdr {
        gso_type: VNET_HDR_GSO_TCPV4,
        gso_size: mss,
        ..VnetHdr::default()
    };
    let mut out = Vec::new();
    split(&hdr, &mut p, &mut Vec::new(), |s| out.push(s.to_vec())).unwrap();
    out
}

/// What the coalescer wrote, each cut back into packets as the kernel would.
fn written(c: &mut Coalescer, packets: &[Vec<u8>]) -> Writes {
    let mut writes = Vec::new();
    let mut w = |b: &[u8]| writes.push(b.to_vec());
    for p in packets {
        c.push(p, &mut w);
    }
    c.flush(&mut w);
    writes
        .into_iter()
        .map(|mut b| {
            let hdr = VnetHdr::decode(&b).unwrap();
            let mut out = Vec::new();
            split(&hdr, &mut b[VNET_HDR_LEN..], &mut Vec::new(), |s| {
                out.push(s.to_vec())
            })
            .unwrap();
            (hdr, out)
        })
        .collect()
}

#[test]
fn a_flow_becomes_one_gso_write_that_cuts_back_into_the_same_segments() {
    let segs = segments(1, 1000, 20 * 1400 + 300, 1400, true);
    let framed: Vec<&[u8]> = segs.iter().map(Vec::as_slice).collect();
    crate::fuzz_seed::save_frames("offload", &[1], &framed);
    let w = written(&mut Coalescer::new(), &segs);
    assert_eq!(w.len(), 1);
    let (hdr, back) = &w[0];
    assert_eq!(hdr.gso_type, VNET_HDR_GSO_TCPV4);
    assert_eq!(hdr.flags, VNET_HDR_F_NEEDS_CSUM);
    assert_eq!((hdr.gso_size, hdr.hdr_len), (1400, 52));
    assert_eq!(back, &segs);
}

#[test]
fn runs_end_at_a_gap_a_short_segment_a_push_and_at_64_segments() {
    let mut segs = segments(1, 0, 3 * 1000, 1000, false);
    segs.extend(segments(1, 5000, 2 * 1000, 1000, false)); // a gap
    let w = written(&mut Coalescer::new(), &segs);
    assert_eq!(w.len(), 2);
    assert_eq!(w.iter().flat_map(|x| x.1.clone()).collect::<Vec<_>>(), segs);

    let mut segs = segments(1, 0, 2 * 1000 + 10, 1000, false); // short last
    segs.extend(segments(1, 2010, 1000, 1000, false));
    assert_eq!(written(&mut Coalescer::new(), &segs).len(), 2);

    let mut segs = segments(1, 0, 2 * 1000, 1000, true); // PSH on the second
    segs.extend(segments(1, 2000, 1000, 1000, false));
    assert_eq!(written(&mut Coalescer::new(), &segs).len(), 2);

    let segs = segments(1, 0, 65 * 100, 100, false);
    let w = written(&mut Coalescer::new(), &segs);
    assert_eq!(w.iter().map(|x| x.1.len()).collect::<Vec<_>>(), [64, 1]);
}

/// The writes, each with its header and the packets it cuts into.
type Writes = Vec<(VnetHdr, Vec<Vec<u8>>)>;

fn interleave(flows: usize) -> (Vec<Vec<Vec<u8>>>, Writes) {
    let flows: Vec<Vec<Vec<u8>>> = (0..flows as u8)
        .map(|f| segments(f, 100, 4 * 500, 500, false))
        .collect();
    let mut mixed = Vec::new();
    for i in 0..4 {
        for f in &flows {
            mixed.push(f[i].clone());
        }
    }
    let w = written(&mut Coalescer::new(), &mixed);
    let all: Vec<Vec<u8>> = w.iter().flat_map(|x| x.1.clone()).collect();
    assert_eq!(all.len(), 4 * flows.len());
    for f in &flows {
        let got: Vec<&Vec<u8>> = all.iter().filter(|p| p[21] == f[0][21]).collect();
        assert_eq!(got, f.iter().collect::<Vec<_>>(), "flow order kept");
    }
    (flows, w)
}

#[test]
fn interleaved_flows_keep_their_order_and_more_flows_than_runs_still_pass() {
    // As many flows as runs: each flow's four segments become one write.
    let (_, w) = interleave(RUNS);
    assert!(w.iter().all(|x| x.1.len() == 4), "{w:?}");
    // More, in a cycle: the oldest run is closed for each new flow, so
    // nothing grows, but everything passes in order.
    let (_, w) = interleave(RUNS + 2);
    assert_eq!(w.len(), 4 * (RUNS + 2));
}

#[test]
fn what_cannot_join_goes_out_unchanged_and_after_its_flows_run() {
    let segs = segments(1, 0, 3 * 1000, 1000, false);
    let mut bad = segments(1, 3000, 1000, 1000, false).remove(0);
    bad[60] ^= 1; // a payload byte: the checksum no longer holds
    let mut ack = segments(1, 4000, 0, 1000, false).remove(0); // no data
    ack[33] = 0x10;
    let udp = vec![
        0x45, 0, 0, 28, 0, 0, 0, 0, 64, 17, 0, 0, 10, 99, 0, 2, 192, 168, 50, 10, 0, 1, 0, 2, 0, 8,
        0, 0,
    ];
    let input = [segs.clone(), vec![bad.clone(), ack.clone(), udp.clone()]].concat();
    let mut c = Coalescer::new();
    let mut writes = Vec::new();
    let mut w = |b: &[u8]| writes.push(b.to_vec());
    for p in &input {
        c.push(p, &mut w);
    }
    c.flush(&mut w);
    assert_eq!(writes.len(), 4);
    assert_eq!(
        VnetHdr::decode(&writes[0]).unwrap().gso_type,
        VNET_HDR_GSO_TCPV4
    );
    for (w, p) in writes[1..].iter().zip([&bad, &ack, &udp]) {
        assert_eq!(VnetHdr::decode(w).unwrap(), VnetHdr::default());
        assert_eq!(&w[VNET_HDR_LEN..], &p[..]);
    }
    let _ = VNET_HDR_GSO_NONE;
}
