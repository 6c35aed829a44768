//! `cargo xtask bench`: figures measured in one run, printed as ratios.
//!
//! - packets/s of a UDP flood from the internet host to a sink on the gateway,
//!   through the gateway's WAN veth without and with the XDP program attached
//!   (the program's pass-through cost);
//! - the XDP program's own cost per packet (BPF_PROG_TEST_RUN, repeated);
//! - cold gateway start-up (`vpn-ctl up` until its control socket answers).
//!
//! Both ends share the machine's cores: read the ratios, not the absolutes.
use std::{
    net::UdpSocket,
    os::fd::AsRawFd as _,
    process::Stdio,
    time::{Duration, Instant},
};

use vpn_tests::{gateway::Gateway, packet::Frame, topology::Topology};

const PORT: u16 = 9000;
const SECS: u64 = 3;
const ROUNDS: usize = 3;
const PAYLOAD: usize = 64;
const BATCH: usize = 64;

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

/// One measurement: packets/s received by the sink in the gateway namespace.
fn flood(t: &Topology) -> anyhow::Result<f64> {
    let me = std::env::current_exe()?;
    let mut sink =
        t.gw.cmd(me.to_str().unwrap())
            .arg("sink")
            .stdout(Stdio::piped())
            .spawn()?;
    let mut out = std::io::BufReader::new(sink.stdout.take().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut out, &mut line)?;
    anyhow::ensure!(line.trim() == "ready", "sink did not start");
    let mut blaster = t
        .inet
        .cmd(me.to_str().unwrap())
        .args(["blast", vpn_tests::topology::GW_WAN])
        .spawn()?;
    line.clear();
    std::io::BufRead::read_line(&mut out, &mut line)?;
    sink.wait()?;
    blaster.wait()?;
    Ok(line.trim().parse::<f64>()? / SECS as f64)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn orchestrate() -> anyhow::Result<()> {
    let t = Topology::build();
    let mut plain = Vec::new();
    let mut with_xdp = Vec::new();
    let mut startup = Vec::new();
    for _ in 0..ROUNDS {
        plain.push(flood(&t)?);
        let t0 = Instant::now();
        let gw = Gateway::start(&t.gw, "");
        startup.push(t0.elapsed().as_secs_f64());
        anyhow::ensure!(gw.status()["wan"]["xdp_mode"] == "native");
        with_xdp.push(flood(&t)?);
        drop(gw);
    }
    let (p, x) = (median(plain), median(with_xdp));

    let ebpf = vpn_ctl::dataplane::load(log::LevelFilter::Off)?;
    let frame = Frame::udp([198, 18, 1, 2], [198, 18, 0, 1], PORT).build();
    let xdp = vpn_ctl::dataplane::xdp(&ebpf)?;
    let run = vpn_ctl::dataplane::test_run::run_xdp(xdp, &frame, 1_000_000)?;

    println!(
        "benchmark (median of {ROUNDS} rounds of {SECS}s, 64-byte UDP, both ends on this machine)"
    );
    println!("  WAN veth, no XDP:            {:>12.0} packets/s", p);
    println!("  WAN veth, vpn-ctl XDP:       {:>12.0} packets/s", x);
    println!("  ratio with/without XDP:      {:>12.3}", x / p);
    println!(
        "  XDP program per packet:      {:>12} ns (BPF_PROG_TEST_RUN x1e6)",
        run.duration_ns
    );
    println!(
        "  vpn-ctl up, cold to ready:   {:>12.3} s (median)",
        median(startup)
    );
    Ok(())
}
