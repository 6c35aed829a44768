//! `cargo xtask bench`: the WAN XDP program's cost, measured in one run.
//!
//! - packets/s of a 64-byte UDP flood from the internet host to a sink on
//!   the gateway, with the gateway up (its addresses, NAT, conntrack, TC)
//!   and the program behind its XDP link swapped, round by round, between
//!   an XDP_PASS program (the baseline) and vpn-ctl's; vpn-ctl's counters
//!   prove which program saw the packets;
//! - per-packet cost by BPF_PROG_TEST_RUN of the program loaded and
//!   configured as the daemon configures it, for each kind of WAN packet,
//!   against the XDP_PASS program on the same frame;
//! - cold gateway start-up (`vpn-ctl up` until its control socket answers).
//!
//! Both ends share the machine's cores: read the ratios, not the absolutes.
//! Results also go to target/bench/dataplane.json; a failed measurement
//! ends the run with an error.
use std::{
    net::UdpSocket,
    os::fd::AsRawFd as _,
    process::Stdio,
    time::{Duration, Instant},
};

use serde_json::json;
use vpn_common::wire::{GRE_PROTO_PPP, PORT_IKE, PORT_L2TP, PORT_NATT};
use vpn_ctl::dataplane::{self, test_run};
use vpn_tests::{
    bench::{self, Stats},
    bpf_fixtures,
    gateway::Gateway,
    packet::{Frame, L4},
    topology::Topology,
    xdp_swap::Swap,
};

const PORT: u16 = 9000;
const SECS: u64 = 3;
const ROUNDS: usize = 5;
const PAYLOAD: usize = 64;
const BATCH: usize = 64;
const TEST_RUN_REPEAT: u32 = 1_000_000;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("blast") => blast(&args[2], SECS + 1),
        Some("sink") => sink(SECS),
        _ => orchestrate(),
    }
}

/// Sends 64-byte UDP datagrams to `dst` as fast as it can for `secs`.
fn blast(dst: &str, secs: u64) -> anyhow::Result<()> {
    let s = UdpSocket::bind("0.0.0.0:0")?;
    s.connect((dst, PORT))?;
    let payload = [0x5au8; PAYLOAD];
    let mut iov: Vec<libc::iovec> = (0..BATCH)
        .map(|_| libc::iovec {
            iov_base: payload.as_ptr() as *mut _,
            iov_len: PAYLOAD,
        })
        .collect();
    // SAFETY: zeroed mmsghdr is a valid empty header; we fill iov below.
    let mut msgs: Vec<libc::mmsghdr> = (0..BATCH).map(|_| unsafe { std::mem::zeroed() }).collect();
    for (m, v) in msgs.iter_mut().zip(iov.iter_mut()) {
        m.msg_hdr.msg_iov = v;
        m.msg_hdr.msg_iovlen = 1;
    }
    let end = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < end {
        // SAFETY: msgs/iov point at live buffers; errors (ENOBUFS, ECONNREFUSED) are ignored.
        unsafe { libc::sendmmsg(s.as_raw_fd(), msgs.as_mut_ptr(), BATCH as u32, 0) };
    }
    Ok(())
}

/// Counts datagrams on PORT during `secs` (after the first one) and prints the count.
fn sink(secs: u64) -> anyhow::Result<()> {
    let s = UdpSocket::bind(("0.0.0.0", PORT))?;
    s.set_read_timeout(Some(Duration::from_millis(200)))?;
    println!("ready");
    let mut bufs = vec![[0u8; 2048]; BATCH];
    let mut iov: Vec<libc::iovec> = bufs
        .iter_mut()
        .map(|b| libc::iovec {
            iov_base: b.as_mut_ptr().cast(),
            iov_len: b.len(),
        })
        .collect();
    // SAFETY: as in `blast`.
    let mut msgs: Vec<libc::mmsghdr> = (0..BATCH).map(|_| unsafe { std::mem::zeroed() }).collect();
    for (m, v) in msgs.iter_mut().zip(iov.iter_mut()) {
        m.msg_hdr.msg_iov = v;
        m.msg_hdr.msg_iovlen = 1;
    }
    let mut first = [0u8; 2048];
    let deadline = Instant::now() + Duration::from_secs(10);
    while s.recv(&mut first).is_err() {
        anyhow::ensure!(Instant::now() < deadline, "no traffic arrived");
    }
    let end = Instant::now() + Duration::from_secs(secs);
    let mut count: u64 = 0;
    while Instant::now() < end {
        // SAFETY: buffers live for the call.
        let n = unsafe {
            libc::recvmmsg(
                s.as_raw_fd(),
                msgs.as_mut_ptr(),
                BATCH as u32,
                0,
                std::ptr::null_mut(),
            )
        };
        if n > 0 {
            count += n as u64;
        }
    }
    println!("{count}");
    Ok(())
}

/// One flood: (packets/s received by the sink, packets it received).
fn flood(t: &Topology) -> anyhow::Result<(f64, u64)> {
    let me = std::env::current_exe()?;
    let mut sink = bench::Reap(
        t.gw.cmd(me.to_str().unwrap())
            .arg("sink")
            .stdout(Stdio::piped())
            .spawn()?,
    );
    let mut out = std::io::BufReader::new(sink.0.stdout.take().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut out, &mut line)?;
    anyhow::ensure!(line.trim() == "ready", "sink did not start");
    let _blaster = bench::Reap(
        t.inet
            .cmd(me.to_str().unwrap())
            .args(["blast", vpn_tests::topology::GW_WAN])
            .spawn()?,
    );
    line.clear();
    std::io::BufRead::read_line(&mut out, &mut line)?;
    let n: u64 = line
        .trim()
        .parse()
        .map_err(|_| anyhow::anyhow!("the sink printed `{}`", line.trim()))?;
    Ok((bench::measured("flood", n as f64 / SECS as f64)?, n))
}

/// The WAN frames of the per-packet table: (name, frame).
fn frames() -> Vec<(&'static str, Vec<u8>)> {
    const PEER: [u8; 4] = [198, 18, 1, 2];
    const GW: [u8; 4] = [198, 18, 0, 1];
    let udp = |dport: u16, payload: Vec<u8>| {
        Frame {
            l4: L4::Udp {
                sport: 40000,
                dport,
                payload,
            },
            ..Frame::udp(PEER, GW, dport)
        }
        .build()
    };
    let esp = [&0x1234u32.to_be_bytes()[..], &[0, 0, 0, 1], &[0xab; 56]].concat();
    vec![
        ("UDP to the gateway, other port", udp(PORT, vec![0x5a; 64])),
        (
            "native datagram",
            udp(bpf_fixtures::NATIVE_PORT, vec![0x5a; 64]),
        ),
        (
            "L2TP data",
            udp(PORT_L2TP, vec![0, 2, 0, 5, 0, 7, 0xff, 3, 0, 0x21]),
        ),
        ("IKE", udp(PORT_IKE, vec![0x11; 64])),
        ("NAT-T ESP, known SPI", udp(PORT_NATT, esp)),
        (
            "PPTP GRE",
            Frame::gre(PEER, GW, 0x3001, GRE_PROTO_PPP).build(),
        ),
        (
            "VLAN-tagged UDP",
            Frame::udp(PEER, GW, PORT).with_vlans(&[100]).build(),
        ),
        (
            "pool source from the WAN (dropped)",
            Frame::udp([10, 99, 0, 5], GW, PORT).build(),
        ),
    ]
}

/// ns per packet of the configured program and of XDP_PASS, by frame.
fn per_packet(pass_fd: i32) -> anyhow::Result<Vec<(&'static str, Stats, Stats)>> {
    let mut ebpf = bpf_fixtures::load(true);
    dataplane::esp_spis::insert(&mut ebpf, 0x1234, true)?;
    let xdp = dataplane::xdp(&ebpf)?;
    let mut rows = Vec::new();
    for (name, frame) in frames() {
        let (mut ours, mut pass) = (Vec::new(), Vec::new());
        for _ in 0..ROUNDS {
            pass.push(f64::from(
                test_run::run_fd(pass_fd, &frame, TEST_RUN_REPEAT)?.duration_ns,
            ));
            ours.push(f64::from(
                test_run::run_xdp(xdp, &frame, TEST_RUN_REPEAT)?.duration_ns,
            ));
        }
        // An empty program can measure 0 ns; a floor keeps ratios finite.
        let pass: Vec<f64> = pass.iter().map(|v| v.max(1.0)).collect();
        rows.push((
            name,
            Stats::of(name, &ours.iter().map(|v| v.max(1.0)).collect::<Vec<_>>())?,
            Stats::of(name, &pass)?,
        ));
    }
    Ok(rows)
}

fn orchestrate() -> anyhow::Result<()> {
    let t = Topology::build();
    let gw = Gateway::start(&t.gw, "");
    anyhow::ensure!(gw.status()["wan"]["xdp_mode"] == "native");
    let swap = Swap::of_process(gw.pid())?;
    let (mut pass, mut ours) = (Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        // Alternate which goes first, so neither always runs on a warm cache.
        for first in [round % 2 == 0, round % 2 == 1] {
            let before = gw.count("counters", "xdp_rx");
            if first {
                swap.to_pass()?;
                let (pps, _) = flood(&t)?;
                let seen = gw.count("counters", "xdp_rx") - before;
                anyhow::ensure!(seen == 0, "XDP_PASS round: vpn-ctl's program saw {seen}");
                pass.push(pps);
            } else {
                swap.to_ours()?;
                let (pps, received) = flood(&t)?;
                let seen = gw.count("counters", "xdp_rx") - before;
                anyhow::ensure!(
                    seen >= received,
                    "vpn-ctl round: its program saw {seen} of {received} packets"
                );
                ours.push(pps);
            }
        }
    }
    swap.to_ours()?;
    let (pass, ours) = (
        Stats::of("XDP_PASS", &pass)?,
        Stats::of("vpn-ctl XDP", &ours)?,
    );
    let table = per_packet(swap.pass_fd())?;
    drop(swap);
    drop(gw);

    let mut startup = Vec::new();
    for _ in 0..ROUNDS {
        let t0 = Instant::now();
        let gw = Gateway::start(&t.gw, "");
        startup.push(t0.elapsed().as_secs_f64());
        drop(gw);
    }
    let startup = Stats::of("start-up", &startup)?;

    println!(
        "WAN XDP, gateway up (64-byte UDP flood to the gateway, {ROUNDS} interleaved rounds of {SECS} s; median [min-max] packets/s)"
    );
    println!("  XDP_PASS program (baseline):   {}", pass.show(0));
    println!("  vpn-ctl XDP program:           {}", ours.show(0));
    println!(
        "  ratio vpn-ctl / XDP_PASS:      {:.3}",
        bench::ratio(&ours, &pass)
    );
    println!(
        "per packet, BPF_PROG_TEST_RUN x{TEST_RUN_REPEAT} of the configured program (median ns, {ROUNDS} rounds)"
    );
    println!(
        "  {:<36} {:>8} {:>9} {:>8}",
        "frame", "vpn-ctl", "XDP_PASS", "extra"
    );
    for (name, o, p) in &table {
        println!(
            "  {name:<36} {:>8.0} {:>9.0} {:>8.0}",
            o.median,
            p.median,
            o.median - p.median
        );
    }
    println!("vpn-ctl up, cold to ready:       {} s", startup.show(3));
    let rows: serde_json::Map<String, serde_json::Value> = table
        .iter()
        .map(|(n, o, p)| {
            (
                n.to_string(),
                json!({"vpn_ctl_ns": o.json(), "xdp_pass_ns": p.json()}),
            )
        })
        .collect();
    bench::write_json(
        "dataplane",
        json!({
            "flood_secs": SECS,
            "packets_per_s": {"xdp_pass": pass.json(), "vpn_ctl": ours.json()},
            "ratio": bench::ratio(&ours, &pass),
            "test_run": rows,
            "startup_s": startup.json(),
        }),
    )?;
    Ok(())
}
