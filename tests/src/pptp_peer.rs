//! The project's own PPTP client: the control connection's client side,
//! GRE through a raw socket, and vpn-proto's PPP client (LCP, MS-CHAPv2,
//! CHAP-MD5 or PAP, IPCP, MPPE). It brings calls up and down in milliseconds, without pppd,
//! for the churn test. Runs in the calling thread's network namespace.
use std::{
    io::{Read as _, Write as _},
    net::{Ipv4Addr, SocketAddr, TcpStream},
    time::{Duration, Instant},
};

use anyhow::Context as _;
use vpn_proto::{
    ppp::{client::Client, lcp::Auth},
    pptp::{gre::GreHeader, messages as m},
};

use crate::raw_ip::RawIp;

const HEADER: usize = 12;

/// One call, up.
pub struct PptpCall {
    ctrl: TcpStream,
    gre: RawIp,
    gw: Ipv4Addr,
    our_call: u16,
    gw_call: u16,
    seq: u32,
    pub ppp: Client,
}

/// Reads one whole control message of `kind`; returns its body.
fn expect(ctrl: &mut TcpStream, buf: &mut Vec<u8>, kind: u16) -> anyhow::Result<Vec<u8>> {
    loop {
        if let Some(msg) = m::take(buf)? {
            let got = u16::from_be_bytes([msg[8], msg[9]]);
            anyhow::ensure!(got == kind, "expected control message {kind}, got {got}");
            return Ok(msg[HEADER..].to_vec());
        }
        let mut chunk = [0u8; 512];
        let n = ctrl.read(&mut chunk)?;
        anyhow::ensure!(n > 0, "the gateway closed the control connection");
        buf.extend_from_slice(&chunk[..n]);
    }
}

impl PptpCall {
    /// Control connection, outgoing call `our_call`, then PPP until IPCP
    /// (and with `mppe`, MPPE-128) is up.
    pub fn connect(
        gw: Ipv4Addr,
        user: &str,
        password: &str,
        mppe: bool,
        our_call: u16,
    ) -> anyhow::Result<PptpCall> {
        Self::connect_with(gw, user, password, Auth::MsChapV2, mppe, our_call)
    }

    /// The same, logging in with `auth` (PAP, CHAP-MD5 or MS-CHAPv2).
    pub fn connect_with(
        gw: Ipv4Addr,
        user: &str,
        password: &str,
        auth: Auth,
        mppe: bool,
        our_call: u16,
    ) -> anyhow::Result<PptpCall> {
        let mut ctrl = TcpStream::connect(SocketAddr::from((gw, 1723))).context("TCP 1723")?;
        ctrl.set_nodelay(true)?;
        ctrl.set_read_timeout(Some(Duration::from_secs(5)))?;
        let mut buf = Vec::new();
        ctrl.write_all(&m::sccrq())?;
        let sccrp = expect(&mut ctrl, &mut buf, m::SCCRP)?;
        anyhow::ensure!(sccrp[2] == m::RESULT_OK, "SCCRP result {}", sccrp[2]);
        // Open before asking for the call: the gateway's first LCP request
        // follows its reply at once.
        let gre = RawIp::open(libc::IPPROTO_GRE, Duration::from_millis(20))?;
        ctrl.write_all(&m::ocrq(our_call, our_call, 64))?;
        let ocrp = expect(&mut ctrl, &mut buf, m::OCRP)?;
        anyhow::ensure!(ocrp[4] == m::RESULT_OK, "OCRP result {}", ocrp[4]);
        let gw_call = u16::from_be_bytes([ocrp[0], ocrp[1]]);
        let mut random = [0u8; 20];
        random[..2].copy_from_slice(&our_call.to_be_bytes());
        random[16..].copy_from_slice(
            &u32::from(our_call)
                .wrapping_mul(2_654_435_761)
                .to_be_bytes(),
        );
        let mut call = PptpCall {
            ctrl,
            gre,
            gw,
            our_call,
            gw_call,
            seq: 0,
            ppp: Client::with_auth(Instant::now(), user, password, auth, mppe, random),
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        let t0 = Instant::now();
        let dbg = std::env::var_os("VPN_PPTP_DEBUG").is_some();
        while !call.ppp.is_up() {
            anyhow::ensure!(!call.ppp.is_refused(), "the gateway refused the login");
            anyhow::ensure!(Instant::now() < deadline, "PPP did not come up");
            call.flush()?;
            match call.recv()? {
                Some(mut f) => {
                    if dbg {
                        eprintln!("{:?} rx {:02x?}", t0.elapsed(), &f[..f.len().min(8)]);
                    }
                    call.ppp.handle_frame(Instant::now(), &mut f)
                }
                None => call.ppp.handle_timeout(Instant::now()),
            }
        }
        call.flush()?;
        Ok(call)
    }

    /// Sends what PPP has queued, each frame in GRE with the next sequence number.
    fn flush(&mut self) -> anyhow::Result<()> {
        while let Some(f) = self.ppp.poll_transmit() {
            self.send_frame(&f)?;
        }
        Ok(())
    }

    /// A PPP frame in this call's GRE (header with the next sequence
    /// number); what a raw IPPROTO_GRE socket sends to the gateway.
    pub fn gre_packet(&mut self, f: &[u8]) -> Vec<u8> {
        let mut p = Vec::with_capacity(16 + f.len());
        GreHeader {
            call_id: self.gw_call,
            seq: Some(self.seq),
            ack: None,
            payload_len: f.len() as u16,
        }
        .encode(&mut p);
        self.seq = self.seq.wrapping_add(1);
        p.extend_from_slice(f);
        p
    }

    pub fn send_frame(&mut self, f: &[u8]) -> anyhow::Result<()> {
        let p = self.gre_packet(f);
        self.gre.send_to(self.gw, &p)
    }

    /// The next PPP frame of this call from the gateway, or `None` after a
    /// short wait.
    fn recv(&mut self) -> anyhow::Result<Option<Vec<u8>>> {
        let mut b = [0u8; 2048];
        loop {
            let Some(r) = self.gre.recv_from(self.gw, &mut b)? else {
                return Ok(None);
            };
            let g = &b[r];
            let Some(h) = GreHeader::decode(g) else {
                continue;
            };
            let end = h.len() + usize::from(h.payload_len);
            if h.call_id != self.our_call || h.payload_len == 0 || end > g.len() {
                continue;
            }
            return Ok(Some(g[h.len()..end].to_vec()));
        }
    }

    /// Sends an IP packet through the call (MPPE if agreed) and returns the
    /// IP packets that come back within `timeout`.
    pub fn exchange(&mut self, ip: &[u8], timeout: Duration) -> anyhow::Result<Vec<Vec<u8>>> {
        let f = self.ppp.ip_frame(ip);
        self.send_frame(&f)?;
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(mut f) = self.recv()? {
                self.ppp.handle_frame(Instant::now(), &mut f);
            }
            self.flush()?;
            let got = self.ppp.take_ip();
            if !got.is_empty() {
                return Ok(got);
            }
        }
        Ok(Vec::new())
    }

    /// Hangs up as pptp-linux does: LCP Terminate-Request, Call-Clear-Request,
    /// then the control connection closed without waiting for answers.
    pub fn hang_up(mut self) -> anyhow::Result<()> {
        self.ppp.close(Instant::now());
        self.flush()?;
        self.ctrl.write_all(&m::ccrq(self.our_call))?;
        Ok(())
    }
}
