//! A minimal IKEv1 initiator for the responder's tests and the project's
//! own L2TP/IPsec test client: Main Mode with a PSK, Quick Mode for one ESP
//! transport SA, Informational messages. Its private values come from a
//! seed (reproducible tests), so it is never for real connections. Built
//! from the same codec and key derivation, so these tests check the
//! state machine and the directions; the interop tests check the formulas
//! against strongSwan and tests/vectors.rs against independent values.
use std::net::SocketAddrV4;

use crate::ike::{
    consts::*,
    crypto::{CbcAlg, HashAlg},
    dh::DhGroup,
    keys::{self, Phase1Keys},
    message::{self, put_attr_tv, split, Chain, Header, Payload},
    natt,
};

pub struct Initiator {
    pub psk: Vec<u8>,
    pub icookie: [u8; 8],
    pub rcookie: [u8; 8],
    pub hash: HashAlg,
    pub cipher: CbcAlg,
    pub group: DhGroup,
    x: Vec<u8>,
    seed: u8,
    gxi: Vec<u8>,
    gxr: Vec<u8>,
    ni: Vec<u8>,
    sai_b: Vec<u8>,
    pub keys: Option<Phase1Keys>,
    iv: Vec<u8>,
    pub phase1_iv: Vec<u8>,
    /// NAT-D payload number: RFC 3947's, or the drafts'.
    pub natd_kind: u8,
    /// The Quick Mode in flight: its message ID, Ni and IV.
    qm: Option<(u32, Vec<u8>, Vec<u8>)>,
    /// Our address in the identity payloads, and the gateway's.
    pub me: [u8; 4],
    pub gw: [u8; 4],
    /// Our SPI of the Quick Mode in flight, then (after QM3) it and the
    /// keys of the gateway -> initiator direction.
    spi_i: u32,
    pub inbound: Option<(u32, Vec<u8>)>,
    /// The ESP SA lifetime QM1 proposes, in seconds (none when `None`).
    pub esp_lifetime: Option<u16>,
}

pub fn transform(enc: u16, key_bits: u16, hash: u16, group: u16) -> Vec<u8> {
    let mut t = vec![1, KEY_IKE, 0, 0];
    put_attr_tv(&mut t, P1_ENC, enc);
    if key_bits != 0 {
        put_attr_tv(&mut t, P1_KEY_LEN, key_bits);
    }
    put_attr_tv(&mut t, P1_HASH, hash);
    put_attr_tv(&mut t, P1_AUTH, AUTH_PSK);
    put_attr_tv(&mut t, P1_GROUP, group);
    put_attr_tv(&mut t, P1_LIFE_TYPE, LIFE_SECONDS);
    put_attr_tv(&mut t, P1_LIFE_DURATION, 3600);
    t
}

fn sa_body(protocol: u8, spi: &[u8], transforms: &[Vec<u8>]) -> Vec<u8> {
    let mut ts = Chain::default();
    for t in transforms {
        ts.add(PL_TRANSFORM, t);
    }
    let mut p = vec![1, protocol, spi.len() as u8, transforms.len() as u8];
    p.extend_from_slice(spi);
    p.extend_from_slice(&ts.bytes);
    let mut c = Chain::default();
    c.add(PL_PROPOSAL, &p);
    let mut sa = Vec::new();
    sa.extend_from_slice(&DOI_IPSEC.to_be_bytes());
    sa.extend_from_slice(&SIT_IDENTITY_ONLY.to_be_bytes());
    sa.extend_from_slice(&c.bytes);
    sa
}

impl Initiator {
    pub fn new(psk: &[u8], seed: u8) -> Initiator {
        Initiator {
            psk: psk.to_vec(),
            icookie: [seed; 8],
            rcookie: [0; 8],
            hash: HashAlg::Sha1,
            cipher: CbcAlg::Aes128,
            group: DhGroup::Modp2048,
            x: Vec::new(),
            seed,
            gxi: Vec::new(),
            gxr: Vec::new(),
            ni: vec![seed; 16],
            sai_b: Vec::new(),
            keys: None,
            iv: Vec::new(),
            phase1_iv: Vec::new(),
            natd_kind: PL_NATD,
            qm: None,
            me: [192, 168, 50, 11],
            gw: [198, 18, 0, 1],
            spi_i: 0,
            inbound: None,
            esp_lifetime: None,
        }
    }

    fn plain(&self, exchange: u8, mid: u32, c: &Chain) -> Vec<u8> {
        let mut m = Vec::new();
        Header {
            icookie: self.icookie,
            rcookie: self.rcookie,
            next: c.first,
            exchange,
            flags: 0,
            message_id: mid,
            length: 0,
        }
        .encode(&mut m);
        m.extend_from_slice(&c.bytes);
        message::set_length(&mut m);
        m
    }

    fn sealed(&mut self, exchange: u8, mid: u32, c: &Chain, iv: &[u8]) -> Vec<u8> {
        let b = self.cipher.block();
        let mut m = self.plain(exchange, mid, c);
        m[19] |= FLAG_ENCRYPTED;
        let n = (m.len() - HEADER_LEN).div_ceil(b) * b;
        m.resize(HEADER_LEN + n, 0);
        let key = self.keys.as_ref().unwrap().enc.clone();
        self.cipher.encrypt(&key, iv, &mut m[HEADER_LEN..]);
        message::set_length(&mut m);
        self.iv = m[m.len() - b..].to_vec();
        m
    }

    /// Decrypts a message with `iv`; returns its payload bytes and next type.
    fn open(&mut self, msg: &[u8], iv: &[u8]) -> (u8, Vec<u8>) {
        let h = Header::decode(msg).unwrap();
        let b = self.cipher.block();
        let mut body = msg[HEADER_LEN..h.length as usize].to_vec();
        let last = body[body.len() - b..].to_vec();
        let key = self.keys.as_ref().unwrap().enc.clone();
        assert!(self.cipher.decrypt(&key, iv, &mut body));
        self.iv = last;
        (h.next, body)
    }

    pub fn mm1(&mut self, transforms: &[Vec<u8>], vids: &[&[u8]], exchange: u8) -> Vec<u8> {
        self.sai_b = sa_body(PROTO_ISAKMP, &[], transforms);
        let mut c = Chain::default();
        c.add(PL_SA, &self.sai_b.clone());
        for v in vids {
            c.add(PL_VENDOR, v);
        }
        self.plain(exchange, 0, &c)
    }

    /// MM3 after MM2; NAT-D for `to` (the gateway as we address it) and `me`.
    pub fn mm3(&mut self, mm2: &[u8], to: SocketAddrV4, me: SocketAddrV4) -> Vec<u8> {
        let h = Header::decode(mm2).unwrap();
        self.rcookie = h.rcookie;
        let seed = self.seed;
        let (x, gxi) = self.group.keypair(|b| b.fill(seed.wrapping_add(1)));
        (self.x, self.gxi) = (x.to_vec(), gxi);
        let mut c = Chain::default();
        c.add(PL_KE, &self.gxi.clone())
            .add(PL_NONCE, &self.ni.clone());
        let k = self.natd_kind;
        c.add(k, &natt::natd(self.hash, &self.icookie, &self.rcookie, to));
        c.add(k, &natt::natd(self.hash, &self.icookie, &self.rcookie, me));
        self.plain(EXCH_MAIN, 0, &c)
    }

    pub fn mm5(&mut self, mm4: &[u8], initial_contact: bool) -> Vec<u8> {
        let h = Header::decode(mm4).unwrap();
        let (p, _) = split(h.next, &mm4[HEADER_LEN..]).unwrap();
        let body = |k| {
            p.iter()
                .find(|p: &&Payload<'_>| p.kind == k)
                .unwrap()
                .body
                .to_vec()
        };
        self.gxr = body(PL_KE);
        let nr = body(PL_NONCE);
        let gxy = self.group.shared(&self.x, &self.gxr).unwrap();
        let k = keys::phase1(
            self.hash,
            self.cipher,
            &keys::Phase1Inputs {
                psk: &self.psk,
                ni: &self.ni,
                nr: &nr,
                gxy: &gxy,
                gxi: &self.gxi,
                gxr: &self.gxr,
                cky_i: &self.icookie,
                cky_r: &self.rcookie,
            },
        );
        let iv = k.iv.clone();
        let idi = message::identity(ID_IPV4_ADDR, IPPROTO_UDP, 500, &self.me);
        let hash_i = keys::main_mode_hash(
            self.hash,
            &k.skeyid,
            &self.gxi,
            &self.gxr,
            &self.icookie,
            &self.rcookie,
            &self.sai_b,
            &idi,
            true,
        );
        self.keys = Some(k);
        let mut c = Chain::default();
        c.add(PL_ID, &idi).add(PL_HASH, &hash_i);
        if initial_contact {
            let spi: Vec<u8> = [self.icookie, self.rcookie].concat();
            c.add(
                PL_NOTIFY,
                &message::notify(PROTO_ISAKMP, &spi, N_INITIAL_CONTACT, &[]),
            );
        }
        self.sealed(EXCH_MAIN, 0, &c, &iv)
    }

    /// Checks MM6's HASH_R; afterwards Quick Mode can start.
    pub fn mm6(&mut self, mm6: &[u8]) {
        let iv = self.iv.clone();
        let (next, plain) = self.open(mm6, &iv);
        self.phase1_iv = self.iv.clone();
        let (p, _) = split(next, &plain).unwrap();
        let k = self.keys.as_ref().unwrap();
        let want = keys::main_mode_hash(
            self.hash,
            &k.skeyid,
            &self.gxi,
            &self.gxr,
            &self.icookie,
            &self.rcookie,
            &self.sai_b,
            p[0].body,
            false,
        );
        assert_eq!(p[1].kind, PL_HASH);
        assert_eq!(p[1].body, &want[..], "HASH_R");
    }

    /// QM1 offering one ESP transform (`id`, key bits, auth) in `encap` mode.
    pub fn qm1(
        &mut self,
        mid: u32,
        spi: u32,
        id: u8,
        key_bits: u16,
        auth: Option<u16>,
        encap: u16,
    ) -> Vec<u8> {
        let mut t = vec![1, id, 0, 0];
        put_attr_tv(&mut t, P2_ENCAP, encap);
        if let Some(a) = auth {
            put_attr_tv(&mut t, P2_AUTH, a);
        }
        if key_bits != 0 {
            put_attr_tv(&mut t, P2_KEY_LEN, key_bits);
        }
        if let Some(secs) = self.esp_lifetime {
            put_attr_tv(&mut t, P2_LIFE_TYPE, LIFE_SECONDS);
            put_attr_tv(&mut t, P2_LIFE_DURATION, secs);
        }
        let sa = sa_body(PROTO_ESP, &spi.to_be_bytes(), &[t]);
        let ni = vec![0x5a; 20];
        let mut rest = Chain::default();
        rest.add(PL_SA, &sa).add(PL_NONCE, &ni);
        rest.add(
            PL_ID,
            &message::identity(ID_IPV4_ADDR, IPPROTO_UDP, L2TP_PORT, &self.me),
        );
        rest.add(
            PL_ID,
            &message::identity(ID_IPV4_ADDR, IPPROTO_UDP, L2TP_PORT, &self.gw),
        );
        self.spi_i = spi;
        let a = self.keys.as_ref().unwrap().a.clone();
        let h = self.hash.prf(&a, &[&mid.to_be_bytes(), &rest.bytes]);
        let c = rest.prepend(PL_HASH, &h);
        let iv = keys::exchange_iv(self.hash, self.cipher.block(), &self.phase1_iv, mid);
        let m = self.sealed(EXCH_QUICK, mid, &c, &iv);
        self.qm = Some((mid, ni, self.iv.clone()));
        m
    }

    /// QM3 after QM2; returns it, the gateway's SPI and the keys for the
    /// initiator → gateway direction.
    pub fn qm3(&mut self, qm2: &[u8], key_len: usize) -> (Vec<u8>, u32, Vec<u8>) {
        let (mid, ni, iv) = self.qm.clone().unwrap();
        let (next, plain) = self.open(qm2, &iv);
        let (p, _) = split(next, &plain).unwrap();
        let sa =
            message::SaPayload::decode(p.iter().find(|p| p.kind == PL_SA).unwrap().body).unwrap();
        let spi_r = u32::from_be_bytes(sa.proposals[0].spi.try_into().unwrap());
        let nr = p.iter().find(|p| p.kind == PL_NONCE).unwrap().body.to_vec();
        let k = self.keys.as_ref().unwrap();
        let h3 = self.hash.prf(&k.a, &[&[0], &mid.to_be_bytes(), &ni, &nr]);
        let km = keys::keymat(self.hash, &k.d, None, PROTO_ESP, spi_r, &ni, &nr, key_len).to_vec();
        let km_in = keys::keymat(
            self.hash, &k.d, None, PROTO_ESP, self.spi_i, &ni, &nr, key_len,
        )
        .to_vec();
        self.inbound = Some((self.spi_i, km_in));
        let mut c = Chain::default();
        c.add(PL_HASH, &h3);
        let iv = self.iv.clone();
        (self.sealed(EXCH_QUICK, mid, &c, &iv), spi_r, km)
    }

    /// The other role: QM2 answering a Quick Mode the gateway started
    /// (accepting its one transform with our SPI `spi`). Returns QM2 and
    /// the keys of both directions: (gateway's SPI, keys toward it) and
    /// (ours, keys toward us).
    #[allow(clippy::type_complexity)]
    pub fn answer_qm1(
        &mut self,
        qm1: &[u8],
        spi: u32,
        key_len: usize,
    ) -> (Vec<u8>, (u32, Vec<u8>), (u32, Vec<u8>)) {
        let h = Header::decode(qm1).unwrap();
        let mid = h.message_id;
        let iv = keys::exchange_iv(self.hash, self.cipher.block(), &self.phase1_iv, mid);
        let (next, plain) = self.open(qm1, &iv);
        let (p, end) = split(next, &plain).unwrap();
        let k = self.keys.as_ref().unwrap();
        let after_hash = p[0].body.len() + 4;
        let want = self
            .hash
            .prf(&k.a, &[&mid.to_be_bytes(), &plain[after_hash..end]]);
        assert_eq!(p[0].body, &want[..], "HASH(1)");
        let sa =
            message::SaPayload::decode(p.iter().find(|p| p.kind == PL_SA).unwrap().body).unwrap();
        let spi_gw = u32::from_be_bytes(sa.proposals[0].spi.try_into().unwrap());
        let transform = sa.proposals[0].transforms[0].raw.to_vec();
        let ni = p.iter().find(|p| p.kind == PL_NONCE).unwrap().body.to_vec();
        let ids: Vec<Vec<u8>> = p
            .iter()
            .filter(|p| p.kind == PL_ID)
            .map(|p| p.body.to_vec())
            .collect();
        let nr = vec![0x6b; 24];
        let mut rest = Chain::default();
        rest.add(
            PL_SA,
            &message::sa_answer(1, PROTO_ESP, &spi.to_be_bytes(), &transform),
        )
        .add(PL_NONCE, &nr);
        for id in &ids {
            rest.add(PL_ID, id);
        }
        let h2 = self.hash.prf(&k.a, &[&mid.to_be_bytes(), &ni, &rest.bytes]);
        let toward_gw =
            keys::keymat(self.hash, &k.d, None, PROTO_ESP, spi_gw, &ni, &nr, key_len).to_vec();
        let toward_us =
            keys::keymat(self.hash, &k.d, None, PROTO_ESP, spi, &ni, &nr, key_len).to_vec();
        let c = rest.prepend(PL_HASH, &h2);
        let iv = self.iv.clone();
        let qm2 = self.sealed(EXCH_QUICK, mid, &c, &iv);
        (qm2, (spi_gw, toward_gw), (spi, toward_us))
    }

    pub fn info(&mut self, mid: u32, kind: u8, body: &[u8]) -> Vec<u8> {
        let mut rest = Chain::default();
        rest.add(kind, body);
        let a = self.keys.as_ref().unwrap().a.clone();
        let h = self.hash.prf(&a, &[&mid.to_be_bytes(), &rest.bytes]);
        let c = rest.prepend(PL_HASH, &h);
        let iv = keys::exchange_iv(self.hash, self.cipher.block(), &self.phase1_iv, mid);
        self.sealed(EXCH_INFO, mid, &c, &iv)
    }

    /// Opens an Informational message from the gateway: its payloads after HASH.
    pub fn open_info(&mut self, msg: &[u8]) -> Vec<(u8, Vec<u8>)> {
        let mid = Header::decode(msg).unwrap().message_id;
        let iv = keys::exchange_iv(self.hash, self.cipher.block(), &self.phase1_iv, mid);
        let (next, plain) = self.open(msg, &iv);
        let (p, _) = split(next, &plain).unwrap();
        p[1..].iter().map(|p| (p.kind, p.body.to_vec())).collect()
    }
}
