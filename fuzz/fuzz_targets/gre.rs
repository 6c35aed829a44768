//! The enhanced GRE header of PPTP: no panic, decode(encode(h)) == h, and
//! every strict prefix of an encoded packet (header and the payload its
//! length announces) is refused.
#![no_main]
use libfuzzer_sys::fuzz_target;
use vpn_proto::pptp::gre::GreHeader;

fuzz_target!(|data: &[u8]| {
    if let Some(h) = GreHeader::decode(data) {
        let mut enc = Vec::new();
        h.encode(&mut enc);
        assert_eq!(enc.len(), h.len());
        enc.resize(h.len() + usize::from(h.payload_len), 0);
        assert_eq!(GreHeader::decode(&enc), Some(h));
        for n in 0..enc.len() {
            assert!(GreHeader::decode(&enc[..n]).is_none(), "prefix {n}");
        }
    }
});
