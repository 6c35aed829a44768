//! The project's own L2TP/IPsec client: vpn-proto's test initiator (IKEv1
//! Main Mode with the PSK, Quick Mode for one ESP transport SA protecting
//! UDP 1701) over UDP, then the L2TP client (`l2tp_peer`) inside raw ESP
//! (the churn path has no NAT). Hangs up with Deletes of both SAs, as
//! strongSwan does. For the churn test; runs in the calling thread's
//! network namespace.
use std::{
    net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use anyhow::Context as _;
use vpn_proto::{
    esp::{EspCipher, EspInteg, EspTransform, Inbound, Outbound, NEXT_UDP},
    ike::{
        consts::*,
        crypto::CbcAlg,
        dh::DhGroup,
        initiator::{transform, Initiator},
        message,
    },
};

use crate::{
    l2tp_peer::{Datagrams, L2tpCall},
    raw_ip::RawIp,
};

const L2TP: u16 = 1701;

/// A call's ESP SAs: the one it sends on, those it takes packets on, and
/// the SPI the last packet came on (which SA the gateway sends on).
struct Sas {
    out: Outbound,
    inbound: Vec<Inbound>,
    last_spi_in: Option<u32>,
}

/// L2TP datagrams in UDP 1701 in ESP transport mode, through a raw socket.
pub struct Esp {
    raw: RawIp,
    gw: Ipv4Addr,
    sas: Arc<Mutex<Sas>>,
}

impl Esp {
    fn sas(&self) -> std::sync::MutexGuard<'_, Sas> {
        self.sas.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Datagrams for Esp {
    fn send(&mut self, d: &[u8]) -> anyhow::Result<()> {
        let mut udp = Vec::with_capacity(8 + d.len());
        udp.extend_from_slice(&L2TP.to_be_bytes());
        udp.extend_from_slice(&L2TP.to_be_bytes());
        udp.extend_from_slice(&((8 + d.len()) as u16).to_be_bytes());
        udp.extend_from_slice(&[0, 0]); // no checksum (IPv4 allows it)
        udp.extend_from_slice(d);
        let mut pkt = Vec::new();
        self.sas()
            .out
            .seal(NEXT_UDP, &udp, &mut pkt)
            .map_err(|e| anyhow::anyhow!("ESP seal: {e:?}"))?;
        self.raw.send_to(self.gw, &pkt)
    }

    fn recv(&mut self) -> anyhow::Result<Option<Vec<u8>>> {
        let mut b = [0u8; 2048];
        loop {
            let Some(r) = self.raw.recv_from(self.gw, &mut b)? else {
                return Ok(None);
            };
            let esp = &mut b[r];
            let spi = u32::from_be_bytes([esp[0], esp[1], esp[2], esp[3]]);
            let mut sas = self.sas();
            let Some(inb) = sas.inbound.iter_mut().find(|i| i.spi == spi) else {
                continue;
            };
            let Ok(o) = inb.open(esp) else {
                continue;
            };
            sas.last_spi_in = Some(spi);
            let inner = &esp[o.start..o.end];
            if o.next != NEXT_UDP || inner.len() < 8 {
                continue;
            }
            return Ok(Some(inner[8..].to_vec()));
        }
    }
}

/// A new SA pair from a Quick Mode the gateway started, not yet sent on.
pub struct NewPair {
    /// Ours (the gateway sends on it).
    pub spi_in: u32,
    out: Outbound,
}

/// An L2TP/IPsec call, up: the L2TP call and the IKE state to end it with.
pub struct IpsecCall {
    pub l2tp: L2tpCall,
    ike: UdpSocket,
    init: Initiator,
    spi_in: u32,
    transform: EspTransform,
    sas: Arc<Mutex<Sas>>,
}

/// Main Mode on `ike` (connected to the gateway's port 500) with `psk`:
/// AES-128-CBC, SHA-1, ECP256 (as Windows and macOS propose first).
/// `seed` and `id` make the cookies.
fn main_mode(ike: &UdpSocket, psk: &str, seed: u8, id: u16) -> anyhow::Result<Initiator> {
    let (SocketAddr::V4(me), SocketAddr::V4(gw)) = (ike.local_addr()?, ike.peer_addr()?) else {
        anyhow::bail!("not IPv4");
    };
    let mut i = Initiator::new(psk.as_bytes(), seed);
    i.icookie[..2].copy_from_slice(&id.to_be_bytes());
    (i.me, i.gw) = (me.ip().octets(), gw.ip().octets());
    i.group = DhGroup::Ecp256;
    let mm1 = i.mm1(
        &[transform(ENC_AES_CBC, 128, HASH_SHA1, 19)],
        &[&VID_NATT_RFC3947],
        EXCH_MAIN,
    );
    let mm2 = exchange(ike, &mm1)?;
    let mm3 = i.mm3(&mm2, SocketAddrV4::new(*gw.ip(), 500), me);
    let mm4 = exchange(ike, &mm3)?;
    let mm5 = i.mm5(&mm4, false);
    let mm6 = exchange(ike, &mm5)?;
    i.mm6(&mm6);
    Ok(i)
}

/// The next Quick Mode message from the gateway on `ike` before
/// `deadline`: its header and bytes (anything else is skipped).
fn next_quick_mode(
    ike: &UdpSocket,
    deadline: Instant,
    what: &str,
) -> anyhow::Result<(message::Header, Vec<u8>)> {
    let mut b = [0u8; 4096];
    loop {
        anyhow::ensure!(Instant::now() < deadline, "no {what} from the gateway");
        let Ok(n) = ike.recv(&mut b) else {
            continue;
        };
        let h = message::Header::decode(&b[..n]).map_err(|e| anyhow::anyhow!("{e:?}"))?;
        if h.exchange == EXCH_QUICK {
            return Ok((h, b[..n].to_vec()));
        }
    }
}

fn exchange(sock: &UdpSocket, msg: &[u8]) -> anyhow::Result<Vec<u8>> {
    sock.send(msg)?;
    let mut b = [0u8; 4096];
    let n = sock.recv(&mut b).context("no IKE answer")?;
    Ok(b[..n].to_vec())
}

impl IpsecCall {
    /// Main Mode and Quick Mode with `psk` (AES-128-CBC, SHA-1, ECP256;
    /// ESP AES-128-CBC with HMAC-SHA1-96), then L2TP and PPP inside.
    pub fn connect(
        gw: Ipv4Addr,
        psk: &str,
        user: &str,
        password: &str,
        id: u16,
    ) -> anyhow::Result<IpsecCall> {
        Self::connect_with(gw, psk, user, password, id, None)
    }

    /// As `connect`, proposing an ESP SA lifetime of `esp_lifetime` seconds.
    pub fn connect_with(
        gw: Ipv4Addr,
        psk: &str,
        user: &str,
        password: &str,
        id: u16,
        esp_lifetime: Option<u16>,
    ) -> anyhow::Result<IpsecCall> {
        let ike = UdpSocket::bind("0.0.0.0:0")?;
        ike.connect(SocketAddr::from((gw, 500)))?;
        ike.set_read_timeout(Some(Duration::from_secs(5)))?;
        let mut i = main_mode(&ike, psk, (id % 250) as u8 + 1, id)?;
        i.esp_lifetime = esp_lifetime;
        let t = EspTransform {
            cipher: EspCipher::Cbc(CbcAlg::Aes128),
            integ: EspInteg::HmacSha1_96,
        };
        let spi_i = 0xc0de_0000 | u32::from(id);
        let qm1 = i.qm1(
            0x1000_0000 | u32::from(id),
            spi_i,
            ESP_AES_CBC,
            128,
            Some(P2_AUTH_SHA1),
            ENCAP_TRANSPORT,
        );
        let qm2 = exchange(&ike, &qm1)?;
        let (qm3, spi_r, km_out) = i.qm3(&qm2, t.keymat_len());
        ike.send(&qm3)?;
        let (spi_in, km_in) = i.inbound.clone().context("no inbound keys")?;
        let sas = Arc::new(Mutex::new(Sas {
            out: Outbound::new(spi_r, t, &km_out),
            inbound: vec![Inbound::new(spi_in, t, &km_in)],
            last_spi_in: None,
        }));
        let esp = Esp {
            raw: RawIp::open(libc::IPPROTO_ESP, Duration::from_millis(5))?,
            gw,
            sas: sas.clone(),
        };
        let l2tp = L2tpCall::connect_over(Box::new(esp), user, password, id)?;
        Ok(IpsecCall {
            l2tp,
            ike,
            init: i,
            spi_in,
            transform: t,
            sas,
        })
    }

    fn sas(&self) -> std::sync::MutexGuard<'_, Sas> {
        self.sas.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The SPI our ESP SA in use has (the gateway's packets come on it).
    pub fn spi_in(&self) -> u32 {
        self.spi_in
    }

    /// The SPI the last ESP packet from the gateway came on.
    pub fn last_spi_in(&self) -> Option<u32> {
        self.sas().last_spi_in
    }

    /// Waits up to `within` for a Quick Mode the gateway starts, answers
    /// it (QM2, our SPI `spi`) and waits for its QM3. Packets on the new
    /// inbound SA are taken from now on (to see when the gateway uses it);
    /// ours stay on the old SA until `install`, as a client's that has not
    /// yet processed QM3.
    pub fn answer_gateway_quick_mode(
        &mut self,
        spi: u32,
        within: Duration,
    ) -> anyhow::Result<NewPair> {
        let deadline = Instant::now() + within;
        let ike = &self.ike;
        let next =
            |what: &str| next_quick_mode(ike, deadline, what).map(|(h, m)| (h.message_id, m));
        let (mid, qm1) = next("QM1")?;
        let t = self.transform;
        let (qm2, (spi_gw, toward_gw), (spi_us, toward_us)) =
            self.init.answer_qm1(&qm1, spi, t.keymat_len());
        self.ike.send(&qm2)?;
        // QM3: the same exchange, and not a repeat of QM1.
        loop {
            let (m, qm3) = next("QM3")?;
            if m == mid && qm3 != qm1 {
                break;
            }
        }
        self.sas().inbound.push(Inbound::new(spi_us, t, &toward_us));
        Ok(NewPair {
            spi_in: spi_us,
            out: Outbound::new(spi_gw, t, &toward_gw),
        })
    }

    /// The cookies of the ISAKMP SA in use.
    pub fn cookies(&self) -> ([u8; 8], [u8; 8]) {
        (self.init.icookie, self.init.rcookie)
    }

    /// A new Main Mode from the same address and port, as a client's
    /// reauthentication: Quick Modes are answered on the new ISAKMP SA
    /// from now on (the old one is left to lapse).
    pub fn reauthenticate(&mut self, psk: &str, id: u16) -> anyhow::Result<()> {
        let seed = self.init.icookie[7].wrapping_add(101);
        let mut i = main_mode(&self.ike, psk, seed, id)?;
        i.esp_lifetime = self.init.esp_lifetime;
        self.init = i;
        Ok(())
    }

    /// The cookies of the next Quick Mode message the gateway sends within
    /// `within`, unanswered: which ISAKMP SA it started a Quick Mode on.
    pub fn gateway_quick_mode_cookies(
        &mut self,
        within: Duration,
    ) -> anyhow::Result<([u8; 8], [u8; 8])> {
        let (h, _) = next_quick_mode(&self.ike, Instant::now() + within, "Quick Mode")?;
        Ok((h.icookie, h.rcookie))
    }

    /// Sends on the new pair from now on (the client installed it).
    pub fn install(&mut self, pair: NewPair) {
        self.sas().out = pair.out;
        self.spi_in = pair.spi_in;
    }

    /// L2TP's hang-up, then Deletes of the ESP SA and of the IKE SA.
    pub fn hang_up(self) -> anyhow::Result<()> {
        let IpsecCall {
            l2tp,
            ike,
            mut init,
            spi_in,
            ..
        } = self;
        l2tp.hang_up()?;
        let esp = message::delete(PROTO_ESP, &[&spi_in.to_be_bytes()]);
        ike.send(&init.info(0x2000_0001, PL_DELETE, &esp))?;
        let cookies = [init.icookie, init.rcookie].concat();
        let isakmp = message::delete(PROTO_ISAKMP, &[&cookies]);
        ike.send(&init.info(0x2000_0002, PL_DELETE, &isakmp))?;
        Ok(())
    }
}
