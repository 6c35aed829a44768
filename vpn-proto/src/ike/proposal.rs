//! Proposal selection in the gateway's preference order from what the
//! client offers (docs/decisions.md #40). Phase 1: AES-CBC with SHA2/SHA1
//! over ECP256, ECP384, MODP2048; MODP1536, MODP1024 and 3DES only with
//! `legacy` on.
//! Phase 2: ESP transport (UDP-encapsulated behind NAT) with AES-GCM-16,
//! AES-CBC or (legacy) 3DES, and HMAC-SHA1-96 or HMAC-SHA2-256-128.
use super::{
    consts::*,
    crypto::{CbcAlg, HashAlg},
    dh::DhGroup,
    message::{Attribute, Proposal, SaPayload, Transform},
};
use crate::esp::{EspCipher, EspInteg, EspTransform};

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Phase1Algs {
    pub cipher: CbcAlg,
    pub hash: HashAlg,
    pub group: DhGroup,
}

impl Phase1Algs {
    pub fn name(&self) -> String {
        format!(
            "{}-{}-{}",
            self.cipher.name(),
            self.hash.name(),
            self.group.name()
        )
    }
}

/// What the gateway accepts, most preferred first.
pub fn phase1_preferences(legacy: bool) -> Vec<Phase1Algs> {
    // The curves first: cheaper and stronger (Windows proposes them first).
    let mut groups = vec![DhGroup::Ecp256, DhGroup::Ecp384, DhGroup::Modp2048];
    if legacy {
        groups.extend([DhGroup::Modp1536, DhGroup::Modp1024]);
    }
    let mut v = Vec::new();
    for &group in &groups {
        for cipher in [CbcAlg::Aes256, CbcAlg::Aes128, CbcAlg::Aes192] {
            for hash in [
                HashAlg::Sha256,
                HashAlg::Sha1,
                HashAlg::Sha384,
                HashAlg::Sha512,
            ] {
                v.push(Phase1Algs {
                    cipher,
                    hash,
                    group,
                });
            }
        }
    }
    if legacy {
        for &group in &groups {
            v.push(Phase1Algs {
                cipher: CbcAlg::Tdes,
                hash: HashAlg::Sha1,
                group,
            });
        }
    }
    v
}

/// The Phase 1 set in a line, preference order kept within each part:
/// "aes256|aes128|aes192 x sha256|sha1|sha384|sha512 x ecp256|...".
pub fn describe_phase1(legacy: bool) -> String {
    let prefs = phase1_preferences(legacy);
    let mut parts: [Vec<&str>; 3] = Default::default();
    for a in &prefs {
        for (part, name) in parts
            .iter_mut()
            .zip([a.cipher.name(), a.hash.name(), a.group.name()])
        {
            if !part.contains(&name) {
                part.push(name);
            }
        }
    }
    let [c, h, g] = parts.map(|p| p.join("|"));
    format!("{c} x {h} x {g} (groups in this order, 3des with sha1 only)")
}

pub fn phase2_preferences(legacy: bool) -> Vec<EspTransform> {
    let cbc = |c, integ| EspTransform {
        cipher: EspCipher::Cbc(c),
        integ,
    };
    let mut v = vec![
        EspTransform {
            cipher: EspCipher::AesGcm16 { key_len: 16 },
            integ: EspInteg::None,
        },
        EspTransform {
            cipher: EspCipher::AesGcm16 { key_len: 32 },
            integ: EspInteg::None,
        },
    ];
    // SHA1 before SHA2-256: Android 6/7 truncate HMAC-SHA2-256 to 96 bits.
    for integ in [EspInteg::HmacSha1_96, EspInteg::HmacSha256_128] {
        for c in [CbcAlg::Aes128, CbcAlg::Aes256, CbcAlg::Aes192] {
            v.push(cbc(c, integ));
        }
    }
    if legacy {
        v.push(cbc(CbcAlg::Tdes, EspInteg::HmacSha1_96));
        v.push(cbc(CbcAlg::Tdes, EspInteg::HmacSha256_128));
    }
    v
}

#[derive(Clone, Debug)]
pub struct Phase1Choice {
    pub algs: Phase1Algs,
    /// Seconds, if the client proposed a lifetime in seconds.
    pub lifetime: Option<u64>,
    pub proposal: u8,
    pub transform: Vec<u8>,
}

/// Why nothing was chosen (said in the log, never to the client).
pub fn describe_offer(sa: &SaPayload<'_>) -> String {
    let mut out = Vec::new();
    for p in &sa.proposals {
        for t in &p.transforms {
            let attrs: Vec<String> = t
                .attributes
                .iter()
                .map(|a| format!("{}={}", a.kind, a.number().unwrap_or(0)))
                .collect();
            out.push(format!("#{}[{}:{}]", p.number, t.id, attrs.join(",")));
        }
    }
    out.join(" ")
}

fn life(attrs: &[Attribute<'_>], type_attr: u16, duration_attr: u16) -> Option<Option<u64>> {
    let mut seconds = None;
    let mut kind = None;
    for a in attrs {
        if a.kind == type_attr {
            kind = Some(a.number()?);
        } else if a.kind == duration_attr {
            let n = a.number()?;
            match kind? as u16 {
                LIFE_SECONDS => seconds = Some(n),
                LIFE_KILOBYTES => {}
                _ => return None,
            }
        }
    }
    Some(seconds)
}

fn phase1_transform(t: &Transform<'_>) -> Option<(Phase1Algs, Option<u64>)> {
    if t.id != KEY_IKE {
        return None;
    }
    let (mut enc, mut hash, mut auth, mut group, mut key_len) = (None, None, None, None, None);
    for a in &t.attributes {
        let v = a.number()?;
        match a.kind {
            P1_ENC => enc = Some(v),
            P1_HASH => hash = HashAlg::from_attr(u16::try_from(v).ok()?),
            P1_AUTH => auth = Some(v),
            P1_GROUP => group = DhGroup::from_id(u16::try_from(v).ok()?),
            P1_KEY_LEN => key_len = Some(v),
            P1_LIFE_TYPE | P1_LIFE_DURATION => {}
            _ => return None,
        }
    }
    if auth? != u64::from(AUTH_PSK) {
        return None;
    }
    let cipher = match (enc? as u16, key_len) {
        (ENC_AES_CBC, Some(128)) => CbcAlg::Aes128,
        (ENC_AES_CBC, Some(192)) => CbcAlg::Aes192,
        (ENC_AES_CBC, Some(256)) => CbcAlg::Aes256,
        (ENC_3DES, None) => CbcAlg::Tdes,
        _ => return None,
    };
    let lifetime = life(&t.attributes, P1_LIFE_TYPE, P1_LIFE_DURATION)?;
    Some((
        Phase1Algs {
            cipher,
            hash: hash?,
            group: group?,
        },
        lifetime,
    ))
}

pub fn choose_phase1(sa: &SaPayload<'_>, legacy: bool) -> Option<Phase1Choice> {
    if sa.doi != DOI_IPSEC || sa.situation != SIT_IDENTITY_ONLY {
        return None;
    }
    let offered: Vec<(&Proposal<'_>, &Transform<'_>, Phase1Algs, Option<u64>)> = sa
        .proposals
        .iter()
        .filter(|p| p.protocol == PROTO_ISAKMP)
        .flat_map(|p| p.transforms.iter().map(move |t| (p, t)))
        .filter_map(|(p, t)| phase1_transform(t).map(|(a, l)| (p, t, a, l)))
        .collect();
    for want in phase1_preferences(legacy) {
        if let Some((p, t, algs, lifetime)) = offered.iter().find(|o| o.2 == want) {
            return Some(Phase1Choice {
                algs: *algs,
                lifetime: *lifetime,
                proposal: p.number,
                transform: t.raw.to_vec(),
            });
        }
    }
    None
}

/// ESP encapsulation the SA asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encap {
    Transport,
    UdpTransport { draft: bool },
}

#[derive(Clone, Debug)]
pub struct Phase2Choice {
    pub transform: EspTransform,
    pub encap: Encap,
    pub lifetime: Option<u64>,
    /// PFS group, if the client asked for one.
    pub pfs: Option<DhGroup>,
    pub proposal: u8,
    pub spi_out: u32,
    pub transform_raw: Vec<u8>,
}

fn phase2_transform(
    t: &Transform<'_>,
) -> Option<(EspTransform, Encap, Option<u64>, Option<DhGroup>)> {
    let (mut encap, mut auth, mut key_len, mut pfs) = (None, None, None, None);
    for a in &t.attributes {
        let v = u16::try_from(a.number()?).ok();
        match a.kind {
            P2_ENCAP => encap = v,
            P2_AUTH => auth = v,
            P2_KEY_LEN => key_len = v,
            P2_GROUP => pfs = Some(DhGroup::from_id(v?)?),
            P2_LIFE_TYPE | P2_LIFE_DURATION => {}
            _ => return None,
        }
    }
    let encap = match encap? {
        ENCAP_TRANSPORT => Encap::Transport,
        ENCAP_UDP_TRANSPORT => Encap::UdpTransport { draft: false },
        ENCAP_UDP_TRANSPORT_DRAFT => Encap::UdpTransport { draft: true },
        _ => return None, // tunnel modes: L2TP/IPsec is transport only
    };
    let integ = match auth {
        None => EspInteg::None,
        Some(P2_AUTH_SHA1) => EspInteg::HmacSha1_96,
        Some(P2_AUTH_SHA256) => EspInteg::HmacSha256_128,
        Some(_) => return None,
    };
    let cipher = match (t.id, key_len) {
        (ESP_AES_CBC, Some(128) | None) => EspCipher::Cbc(CbcAlg::Aes128),
        (ESP_AES_CBC, Some(192)) => EspCipher::Cbc(CbcAlg::Aes192),
        (ESP_AES_CBC, Some(256)) => EspCipher::Cbc(CbcAlg::Aes256),
        (ESP_3DES, None) => EspCipher::Cbc(CbcAlg::Tdes),
        (ESP_AES_GCM16, Some(128) | None) => EspCipher::AesGcm16 { key_len: 16 },
        (ESP_AES_GCM16, Some(256)) => EspCipher::AesGcm16 { key_len: 32 },
        _ => return None,
    };
    // GCM carries its own integrity; CBC needs an HMAC.
    if matches!(cipher, EspCipher::AesGcm16 { .. }) != (integ == EspInteg::None) {
        return None;
    }
    let lifetime = life(&t.attributes, P2_LIFE_TYPE, P2_LIFE_DURATION)?;
    Some((EspTransform { cipher, integ }, encap, lifetime, pfs))
}

/// `udp`: whether NAT was detected (then only UDP-encapsulated modes fit).
pub fn choose_phase2(sa: &SaPayload<'_>, legacy: bool, udp: bool) -> Option<Phase2Choice> {
    if sa.doi != DOI_IPSEC || sa.situation != SIT_IDENTITY_ONLY {
        return None;
    }
    // Proposals sharing a number form a bundle (e.g. AH+ESP): not offered here.
    let single = |n: u8| sa.proposals.iter().filter(|p| p.number == n).count() == 1;
    let offered: Vec<_> = sa
        .proposals
        .iter()
        .filter(|p| p.protocol == PROTO_ESP && p.spi.len() == 4 && single(p.number))
        .flat_map(|p| p.transforms.iter().map(move |t| (p, t)))
        .filter_map(|(p, t)| phase2_transform(t).map(|x| (p, t, x)))
        .filter(|(_, _, (_, encap, _, _))| matches!(encap, Encap::UdpTransport { .. }) == udp)
        .collect();
    for want in phase2_preferences(legacy) {
        if let Some((p, t, (transform, encap, lifetime, pfs))) =
            offered.iter().find(|o| o.2 .0 == want)
        {
            return Some(Phase2Choice {
                transform: *transform,
                encap: *encap,
                lifetime: *lifetime,
                pfs: *pfs,
                proposal: p.number,
                spi_out: u32::from_be_bytes(p.spi.try_into().ok()?),
                transform_raw: t.raw.to_vec(),
            });
        }
    }
    None
}
