//! The project's own L2TP client (a LAC): tunnel and call set-up with
//! vpn-proto's L2TP codecs, then vpn-proto's PPP client in L2TP data
//! messages, over plain UDP or over ESP (`ipsec_peer`). No retransmission:
//! it runs over the test topology's lossless links, and a lost answer is
//! an error. For the churn test; runs in the calling thread's network
//! namespace.
use std::{
    net::{Ipv4Addr, SocketAddr, UdpSocket},
    time::{Duration, Instant},
};

use anyhow::Context as _;
use vpn_proto::{
    l2tp::{
        avp::{self, Avp, Writer},
        consts::*,
        header::Header,
    },
    ppp::client::Client,
};

/// How L2TP datagrams (UDP 1701's payload) reach the gateway and back.
pub trait Datagrams {
    fn send(&mut self, d: &[u8]) -> anyhow::Result<()>;
    /// The next datagram, or `None` after a short wait.
    fn recv(&mut self) -> anyhow::Result<Option<Vec<u8>>>;
}

/// Plain L2TP: a UDP socket connected to the gateway's port 1701.
pub struct Udp(UdpSocket);

impl Udp {
    pub fn connect(gw: Ipv4Addr) -> anyhow::Result<Udp> {
        let sock = UdpSocket::bind("0.0.0.0:0")?;
        sock.connect(SocketAddr::from((gw, 1701)))?;
        sock.set_read_timeout(Some(Duration::from_millis(5)))?;
        Ok(Udp(sock))
    }
}

impl Datagrams for Udp {
    fn send(&mut self, d: &[u8]) -> anyhow::Result<()> {
        self.0.send(d)?;
        Ok(())
    }

    fn recv(&mut self) -> anyhow::Result<Option<Vec<u8>>> {
        let mut b = [0u8; 2048];
        match self.0.recv(&mut b) {
            Ok(n) => Ok(Some(b[..n].to_vec())),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Ok(None),
            Err(e) => Err(e).context("L2TP receive"),
        }
    }
}

/// One tunnel with one call, up.
pub struct L2tpCall {
    sock: Box<dyn Datagrams + Send>,
    ns: u16,
    nr: u16,
    /// The gateway's tunnel and session IDs (what we address).
    gw_tunnel: u16,
    gw_session: u16,
    /// The last control message, for retransmission.
    last: Vec<u8>,
    /// Ours (what the gateway addresses).
    our_tunnel: u16,
    our_session: u16,
    /// The next Ns of our data messages, when we sequence them (S bit).
    data_ns: Option<u16>,
    pub ppp: Client,
}

fn message_type(avps: &[Avp]) -> Option<u16> {
    avp::find_u16(avps, A_MESSAGE_TYPE)
}

impl L2tpCall {
    /// Plain L2TP to `gw`.
    pub fn connect(gw: Ipv4Addr, user: &str, password: &str, id: u16) -> anyhow::Result<L2tpCall> {
        Self::connect_over(Box::new(Udp::connect(gw)?), user, password, id)
    }

    /// Plain L2TP to `gw`, sequencing every data message from the first
    /// (as some clients do): the gateway then keeps the call in userspace,
    /// since the kernel's fast path does not sequence.
    pub fn connect_sequenced(
        gw: Ipv4Addr,
        user: &str,
        password: &str,
        id: u16,
    ) -> anyhow::Result<L2tpCall> {
        Self::connect_with(Box::new(Udp::connect(gw)?), user, password, id, true)
    }

    /// SCCRQ..SCCCN, ICRQ..ICCN, then PPP until IPCP is up.
    pub fn connect_over(
        sock: Box<dyn Datagrams + Send>,
        user: &str,
        password: &str,
        id: u16,
    ) -> anyhow::Result<L2tpCall> {
        Self::connect_with(sock, user, password, id, false)
    }

    fn connect_with(
        sock: Box<dyn Datagrams + Send>,
        user: &str,
        password: &str,
        id: u16,
        sequenced: bool,
    ) -> anyhow::Result<L2tpCall> {
        let mut random = [0u8; 20];
        random[..2].copy_from_slice(&id.to_be_bytes());
        random[16..].copy_from_slice(&u32::from(id).wrapping_mul(2_654_435_761).to_be_bytes());
        let mut c = L2tpCall {
            sock,
            ns: 0,
            nr: 0,
            gw_tunnel: 0,
            gw_session: 0,
            last: Vec::new(),
            our_tunnel: id.max(1),
            our_session: id.max(1),
            data_ns: sequenced.then_some(0),
            ppp: Client::new(Instant::now(), user, password, false, random),
        };
        let mut w = Writer::new(SCCRQ, None);
        w.u16(A_PROTOCOL_VERSION, 0x0100)
            .bytes(A_HOST_NAME, b"vpn-tests")
            .u32(A_FRAMING_CAPABILITIES, 3)
            .u16(A_ASSIGNED_TUNNEL_ID, c.our_tunnel)
            .u16(A_RECEIVE_WINDOW_SIZE, 8);
        c.control(0, &w.out)?;
        let avps = c.expect(SCCRP)?;
        c.gw_tunnel =
            avp::find_u16(&avps, A_ASSIGNED_TUNNEL_ID).context("SCCRP without a tunnel ID")?;
        c.control(0, &Writer::new(SCCCN, None).out)?;
        let mut w = Writer::new(ICRQ, None);
        w.u16(A_ASSIGNED_SESSION_ID, c.our_session)
            .u32(A_CALL_SERIAL_NUMBER, u32::from(id));
        c.control(0, &w.out)?;
        let avps = c.expect(ICRP)?;
        c.gw_session =
            avp::find_u16(&avps, A_ASSIGNED_SESSION_ID).context("ICRP without a session ID")?;
        let mut w = Writer::new(ICCN, None);
        w.u32(A_TX_CONNECT_SPEED, 100_000_000)
            .u32(A_FRAMING_TYPE, 3);
        c.control(c.gw_session, &w.out)?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while !c.ppp.is_up() {
            anyhow::ensure!(Instant::now() < deadline, "PPP did not come up");
            c.flush()?;
            match c.recv()? {
                Some(mut f) => c.ppp.handle_frame(Instant::now(), &mut f),
                None => c.ppp.handle_timeout(Instant::now()),
            }
        }
        c.flush()?;
        Ok(c)
    }

    /// A control message (Ns/Nr) to the gateway's tunnel.
    fn control(&mut self, session: u16, body: &[u8]) -> anyhow::Result<()> {
        let mut m = Vec::new();
        Header::encode_control(
            &mut m,
            self.gw_tunnel,
            session,
            self.ns,
            self.nr,
            body.len(),
        );
        m.extend_from_slice(body);
        self.ns = self.ns.wrapping_add(1);
        self.sock.send(&m)?;
        self.last = m;
        Ok(())
    }

    /// Acknowledges what we received (a ZLB).
    fn zlb(&mut self) -> anyhow::Result<()> {
        let mut m = Vec::new();
        Header::encode_control(&mut m, self.gw_tunnel, 0, self.ns, self.nr, 0);
        self.sock.send(&m)
    }

    /// Waits for the control message `kind` (ZLBs and data skipped),
    /// sending the last message again every 5 ms meanwhile (over IPsec
    /// the first may beat the gateway's new SA into its data plane).
    fn expect(&mut self, kind: u16) -> anyhow::Result<Vec<Avp>> {
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut resend = Instant::now() + Duration::from_millis(5);
        loop {
            anyhow::ensure!(Instant::now() < deadline, "no control message {kind}");
            let Some(d) = self.sock.recv()? else {
                if Instant::now() >= resend {
                    let last = self.last.clone();
                    self.sock.send(&last)?;
                    resend = Instant::now() + Duration::from_millis(5);
                }
                continue;
            };
            if let Some(avps) = self.take_control(&d)? {
                let got = message_type(&avps);
                anyhow::ensure!(got == Some(kind), "expected message {kind}, got {got:?}");
                return Ok(avps);
            }
        }
    }

    /// A control message's AVPs (acknowledged), or `None` for a ZLB or data.
    fn take_control(&mut self, d: &[u8]) -> anyhow::Result<Option<Vec<Avp>>> {
        let h = Header::decode(d).map_err(|e| anyhow::anyhow!("header: {e:?}"))?;
        if !h.control || h.payload_at == h.end {
            return Ok(None);
        }
        if h.seq.map(|(ns, _)| ns) == Some(self.nr) {
            self.nr = self.nr.wrapping_add(1);
        }
        let avps = avp::parse(&d[h.payload_at..h.end], None)
            .map_err(|e| anyhow::anyhow!("AVPs: {e:?}"))?;
        Ok(Some(avps))
    }

    /// The PPP frame in an L2TP data message (sequenced, numbered from
    /// `data_ns`, when the call sequences its data).
    pub fn data_packet(&mut self, f: &[u8]) -> Vec<u8> {
        let seq = self.data_ns.map(|ns| (ns, 0));
        if let Some(ns) = &mut self.data_ns {
            *ns = ns.wrapping_add(1);
        }
        let mut m = Vec::with_capacity(12 + f.len());
        Header::encode_data(&mut m, self.gw_tunnel, self.gw_session, seq);
        m.extend_from_slice(f);
        m
    }

    fn flush(&mut self) -> anyhow::Result<()> {
        while let Some(f) = self.ppp.poll_transmit() {
            let m = self.data_packet(&f);
            self.sock.send(&m)?;
        }
        Ok(())
    }

    /// The next PPP frame of our session, or `None` after a short wait;
    /// control messages on the way are acknowledged.
    fn recv(&mut self) -> anyhow::Result<Option<Vec<u8>>> {
        loop {
            let Some(d) = self.sock.recv()? else {
                return Ok(None);
            };
            let d = &d[..];
            let h = Header::decode(d).map_err(|e| anyhow::anyhow!("header: {e:?}"))?;
            if h.control {
                if self.take_control(d)?.is_some() {
                    self.zlb()?;
                }
                continue;
            }
            if h.tunnel_id == self.our_tunnel && h.session_id == self.our_session {
                return Ok(Some(d[h.payload_at..h.end].to_vec()));
            }
        }
    }

    /// Sends an IP packet through the call and returns the IP packets that
    /// come back within `timeout`.
    pub fn exchange(&mut self, ip: &[u8], timeout: Duration) -> anyhow::Result<Vec<Vec<u8>>> {
        let f = self.ppp.ip_frame(ip);
        let m = self.data_packet(&f);
        self.sock.send(&m)?;
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

    /// Hangs up as xl2tpd does: LCP Terminate-Request, CDN, StopCCN; does
    /// not wait for answers.
    pub fn hang_up(mut self) -> anyhow::Result<()> {
        self.ppp.close(Instant::now());
        self.flush()?;
        let mut w = Writer::new(CDN, None);
        w.result(CDN_ADMIN, 0, "")
            .u16(A_ASSIGNED_SESSION_ID, self.our_session);
        let body = w.out;
        self.control(self.gw_session, &body)?;
        let mut w = Writer::new(STOPCCN, None);
        w.u16(A_ASSIGNED_TUNNEL_ID, self.our_tunnel)
            .result(1, 0, "");
        let body = w.out;
        self.control(0, &body)?;
        Ok(())
    }
}
