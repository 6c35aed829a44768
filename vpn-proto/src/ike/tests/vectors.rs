//! Key derivation against vectors computed independently (Python's hmac
//! and hashlib from RFC 2409's formulas), DH agreement,
//! and the codec.
use crate::ike::{
    consts::*,
    crypto::{CbcAlg, HashAlg},
    dh::DhGroup,
    keys,
    message::{split, Chain, SaPayload},
};

fn hex(s: &str) -> Vec<u8> {
    (0..s.len() / 2)
        .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap())
        .collect()
}

#[test]
fn phase1_keys_hashes_and_keymat_match_independent_vectors() {
    let psk = b"vpn-ctl test psk 0123456789";
    let ni: Vec<u8> = (0..16).collect();
    let nr: Vec<u8> = (100..132).collect();
    let gxy: Vec<u8> = (0..128).map(|i| ((i * 7) % 256) as u8).collect();
    let gxi: Vec<u8> = (0..128).map(|i| ((i * 3) % 256) as u8).collect();
    let gxr: Vec<u8> = (0..128).map(|i| ((i * 5 + 1) % 256) as u8).collect();
    let (ci, cr) = ([1, 2, 3, 4, 5, 6, 7, 8], [9, 10, 11, 12, 13, 14, 15, 16]);
    let k = keys::phase1(
        HashAlg::Sha1,
        CbcAlg::Aes256,
        &keys::Phase1Inputs {
            psk,
            ni: &ni,
            nr: &nr,
            gxy: &gxy,
            gxi: &gxi,
            gxr: &gxr,
            cky_i: &ci,
            cky_r: &cr,
        },
    );
    assert_eq!(*k.skeyid, hex("decfb4fc62e07c19e980dc14f837789e8015b2ef"));
    assert_eq!(*k.d, hex("8cca9abe8e7ee1c82a31518c43e09550bfa579cd"));
    assert_eq!(*k.a, hex("08e8bee88eea44c6837db3fcce5803bbdaf1bccf"));
    // SHA1's 20 bytes expanded to AES-256's 32 (K1 | K2).
    assert_eq!(
        *k.enc,
        hex("9c30aaf143dace614ee6bd39ad9c464f2bfda41cd94b42f42333c803624eed08")
    );
    assert_eq!(k.iv, hex("9165362a024cd2f19ff8d0aa7deedbb2"));
    let sai = b"\x00\x00\x00\x01\x00\x00\x00\x01sa-body";
    let idi = [1, 17, 1, 244, 192, 168, 50, 11];
    let h = keys::main_mode_hash(
        HashAlg::Sha1,
        &k.skeyid,
        &gxi,
        &gxr,
        &ci,
        &cr,
        sai,
        &idi,
        true,
    );
    assert_eq!(*h, hex("05367f3787255c02296fce112218e94c4aa82825"));
    let qni: Vec<u8> = (0..20).collect();
    let qnr: Vec<u8> = (50..82).collect();
    let km = keys::keymat(
        HashAlg::Sha1,
        &k.d,
        None,
        PROTO_ESP,
        0x1122_3344,
        &qni,
        &qnr,
        52,
    );
    assert_eq!(
        *km,
        hex("d409b8d7d9316d3c93732e1ca1ccf1bec817ca063666e28f4648d56155cabed6efc9b7fc6bf4c7a7a2d5a50f8b90714a66d58de8")
    );
    let iv = keys::exchange_iv(HashAlg::Sha1, 16, &[0; 16], 0xdead_beef);
    assert_eq!(iv, hex("75e541cccea5df69c87fe19cb1687caa"));
}

#[test]
fn diffie_hellman_agrees_and_refuses_values_outside_the_group() {
    for g in [
        DhGroup::Modp1024,
        DhGroup::Modp1536,
        DhGroup::Modp2048,
        DhGroup::Ecp256,
        DhGroup::Ecp384,
    ] {
        let (x, gx) = g.keypair(|b| b.fill(7));
        let (y, gy) = g.keypair(|b| b.fill(201));
        assert_eq!(gx.len(), g.len());
        let s = g.shared(&x, &gy).unwrap();
        assert_eq!(*s, *g.shared(&y, &gx).unwrap(), "{g:?}");
        let mut one = vec![0u8; g.len()];
        *one.last_mut().unwrap() = 1;
        assert!(
            g.shared(&x, &one).is_none(),
            "{g:?}: 1 / a point off the curve accepted"
        );
        assert!(
            g.shared(&x, &vec![0xff; g.len()]).is_none(),
            "{g:?}: ≥ p accepted"
        );
        assert!(
            g.shared(&x, &gy[1..]).is_none(),
            "{g:?}: short value accepted"
        );
    }
}

/// RFC 5903 §8.1 (P-256): the initiator's public value from its private
/// value, and the shared secret (x only) with the responder's public value
/// (also checked with a plain Python implementation of the curve).
#[test]
fn ecp256_matches_rfc5903() {
    let i = hex("C88F01F510D9AC3F70A292DAA2316DE544E9AAB8AFE84049C62A9C57862D1433");
    let gi = hex(concat!(
        "DAD0B65394221CF9B051E1FECA5787D098DFE637FC90B9EF945D0C3772581180",
        "5271A0461CDB8252D61F1C456FA3E59AB1F45B33ACCF5F58389E0577B8990BB3"
    ));
    let gr = hex(concat!(
        "D12DFB5289C8D4F81208B70270398C342296970A0BCCB74C736FC7554494BF63",
        "56FBF3CA366CC23E8157854C13C58D6AAC23F046ADA30F8353E74F33039872AB"
    ));
    let z = hex("D6840F6B42F6EDAFD13116E0E12565202FEF8E9ECE7DCE03812464D04B9442DE");
    assert_eq!(DhGroup::Ecp256.public(&i).unwrap(), gi);
    assert_eq!(*DhGroup::Ecp256.shared(&i, &gr).unwrap(), z);
}

#[test]
fn payload_chains_round_trip_and_truncations_are_errors() {
    let mut c = Chain::default();
    c.add(PL_SA, b"abc")
        .add(PL_NONCE, &[1; 20])
        .add(PL_VENDOR, &VID_DPD);
    let c = c.prepend(PL_HASH, &[9; 20]);
    assert_eq!(c.first, PL_HASH);
    let (p, end) = split(c.first, &c.bytes).unwrap();
    assert_eq!(end, c.bytes.len());
    let kinds: Vec<u8> = p.iter().map(|p| p.kind).collect();
    assert_eq!(kinds, [PL_HASH, PL_SA, PL_NONCE, PL_VENDOR]);
    assert_eq!(p[3].body, &VID_DPD[..]);
    for n in 0..c.bytes.len() {
        assert!(split(c.first, &c.bytes[..n]).is_err(), "prefix {n} parsed");
    }
    for n in 0..8 {
        assert!(
            SaPayload::decode(&[0u8; 8][..n]).is_err(),
            "SA body of {n} bytes"
        );
    }
}
