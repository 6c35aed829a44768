//! The native protocol's handshake payloads and data header: no panic,
//! decode(encode(x)) == x, and the fixed-size header refuses every
//! strict prefix.
#![no_main]
use libfuzzer_sys::fuzz_target;
use vpn_proto::native::{
    consts::OVERHEAD,
    messages::{self, AuthRequest, DataHeader, Welcome},
};

fuzz_target!(|data: &[u8]| {
    if let Ok(a) = AuthRequest::decode(data) {
        assert!(AuthRequest::decode(&a.encode()).unwrap() == a);
    }
    if let Ok(w) = Welcome::decode(data) {
        assert_eq!(Welcome::decode(&w.encode()).unwrap(), w);
    }
    if let Ok((r, m)) = messages::decode_reason(data) {
        let again = messages::decode_reason(&messages::encode_reason(r, &m)).unwrap();
        assert_eq!(again, (r, m));
    }
    if let Some((&tlv, rest)) = data.split_first() {
        if let Ok(c) = messages::decode_ciphers(rest, tlv) {
            let enc = messages::encode_ciphers(tlv, &c);
            assert_eq!(messages::decode_ciphers(&enc, tlv).unwrap(), c);
        }
    }
    if let Ok(h) = DataHeader::decode(data) {
        // A datagram holds at least the header and a tag.
        let mut enc = h.encode().to_vec();
        enc.resize(OVERHEAD, 0);
        assert_eq!(DataHeader::decode(&enc).unwrap(), h);
        for n in 0..enc.len() {
            assert!(DataHeader::decode(&enc[..n]).is_err(), "prefix {n}");
        }
    }
});
