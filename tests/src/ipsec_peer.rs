//! The project's own L2TP/IPsec client: vpn-proto's test initiator (IKEv1
//! Main Mode with the PSK, Quick Mode for one ESP transport SA protecting
//! UDP 1701) over UDP, then the L2TP client (`l2tp_peer`) inside raw ESP
//! (the churn path has no NAT). Hangs up with Deletes of both SAs, as
//! strongSwan does. For the churn test; runs in the calling thread's
//! network namespace.
use std::{
    net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket},
    time::Duration,
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

/// L2TP datagrams in UDP 1701 in ESP transport mode, through a raw socket.
pub struct Esp {
    raw: RawIp,
    gw: Ipv4Addr,
    out: Outbound,
    inb: Inbound,
    spi_in: u32,
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
        self.out
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
            if u32::from_be_bytes([esp[0], esp[1], esp[2], esp[3]]) != self.spi_in {
                continue;
            }
            let Ok(o) = self.inb.open(esp) else {
                continue;
            };
            let inner = &esp[o.start..o.end];
            if o.next != NEXT_UDP || inner.len() < 8 {
                continue;
            }
            return Ok(Some(inner[8..].to_vec()));
        }
    }
}

/// An L2TP/IPsec call, up: the L2TP call and the IKE state to end it with.
pub struct IpsecCall {
    pub l2tp: L2tpCall,
    ike: UdpSocket,
    init: Initiator,
    spi_in: u32,
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
        let ike = UdpSocket::bind("0.0.0.0:0")?;
        ike.connect(SocketAddr::from((gw, 500)))?;
        ike.set_read_timeout(Some(Duration::from_secs(5)))?;
        let SocketAddr::V4(me) = ike.local_addr()? else {
            anyhow::bail!("not IPv4");
        };
        let mut i = Initiator::new(psk.as_bytes(), (id % 250) as u8 + 1);
        i.icookie[..2].copy_from_slice(&id.to_be_bytes());
        (i.me, i.gw) = (me.ip().octets(), gw.octets());
        // ECP256, as Windows and macOS propose it first (cheaper than MODP).
        i.group = DhGroup::Ecp256;
        let mm1 = i.mm1(
            &[transform(ENC_AES_CBC, 128, HASH_SHA1, 19)],
            &[&VID_NATT_RFC3947],
            EXCH_MAIN,
        );
        let mm2 = exchange(&ike, &mm1)?;
        let mm3 = i.mm3(&mm2, SocketAddrV4::new(gw, 500), me);
        let mm4 = exchange(&ike, &mm3)?;
        let mm5 = i.mm5(&mm4, false);
        let mm6 = exchange(&ike, &mm5)?;
        i.mm6(&mm6);
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
        let esp = Esp {
            raw: RawIp::open(libc::IPPROTO_ESP, Duration::from_millis(5))?,
            gw,
            out: Outbound::new(spi_r, t, &km_out),
            inb: Inbound::new(spi_in, t, &km_in),
            spi_in,
        };
        let l2tp = L2tpCall::connect_over(Box::new(esp), user, password, id)?;
        Ok(IpsecCall {
            l2tp,
            ike,
            init: i,
            spi_in,
        })
    }

    /// L2TP's hang-up, then Deletes of the ESP SA and of the IKE SA.
    pub fn hang_up(self) -> anyhow::Result<()> {
        let IpsecCall {
            l2tp,
            ike,
            mut init,
            spi_in,
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
