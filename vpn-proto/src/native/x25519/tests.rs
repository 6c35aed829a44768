use super::*;

fn hex32(s: &str) -> [u8; 32] {
    let v: Vec<u8> = (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect();
    v.try_into().unwrap()
}

// RFC 7748, section 6.1.
const ALICE: &str = "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a";
const ALICE_PUB: &str = "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a";
const BOB: &str = "5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb";
const BOB_PUB: &str = "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f";
const SHARED: &str = "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742";

fn slot(preset: Option<Arc<StaticKey>>) -> Box<dyn Dh> {
    Resolver { preset }
        .resolve_dh(&DHChoice::Curve25519)
        .expect("X25519")
}

#[test]
fn rfc7748_vectors_through_the_noise_slot() {
    assert_eq!(StaticKey::new(&hex32(ALICE)).public(), &hex32(ALICE_PUB));
    let mut a = slot(None);
    a.set(&hex32(ALICE));
    assert_eq!(a.pubkey(), hex32(ALICE_PUB));
    assert_eq!(a.privkey(), hex32(ALICE));
    let mut b = slot(None);
    b.set(&hex32(BOB));
    assert_eq!(b.pubkey(), hex32(BOB_PUB));
    let (mut k1, mut k2) = ([0u8; 32], [0u8; 32]);
    a.dh(&hex32(BOB_PUB), &mut k1).unwrap();
    b.dh(&hex32(ALICE_PUB), &mut k2).unwrap();
    assert_eq!(k1, hex32(SHARED));
    assert_eq!(k2, hex32(SHARED));
}

#[test]
fn the_preset_key_is_taken_as_it_is_and_another_key_is_not_mistaken_for_it() {
    let preset = StaticKey::new(&hex32(ALICE));
    let mut same = slot(Some(preset.clone()));
    same.set(&hex32(ALICE));
    assert_eq!(
        Arc::strong_count(&preset),
        3,
        "the slot shares the prepared key"
    );
    assert_eq!(same.pubkey(), hex32(ALICE_PUB));
    let mut other = slot(Some(preset.clone()));
    other.set(&hex32(BOB));
    assert_eq!(other.pubkey(), hex32(BOB_PUB));
}

#[test]
fn generated_keys_differ_and_agree() {
    let mut rng = DefaultResolver.resolve_rng().unwrap();
    let (mut a, mut b) = (slot(None), slot(None));
    a.generate(&mut *rng).unwrap();
    b.generate(&mut *rng).unwrap();
    assert_ne!(a.pubkey(), b.pubkey());
    let (mut k1, mut k2) = ([0u8; 32], [0u8; 32]);
    a.dh(b.pubkey(), &mut k1).unwrap();
    b.dh(a.pubkey(), &mut k2).unwrap();
    assert_eq!(k1, k2);
    assert_ne!(k1, [0u8; 32]);
}

#[test]
fn low_order_peer_keys_and_empty_slots_are_refused() {
    let mut a = slot(None);
    let mut out = [0u8; 32];
    assert!(a.dh(&hex32(BOB_PUB), &mut out).is_err(), "no key yet");
    a.set(&hex32(ALICE));
    // 0 and 1 are points of small order: the shared secret would be zero.
    let mut one = [0u8; 32];
    one[0] = 1;
    assert!(a.dh(&[0u8; 32], &mut out).is_err());
    assert!(a.dh(&one, &mut out).is_err());
    assert!(a.dh(&[9u8; 31], &mut out).is_err(), "short key");
}
