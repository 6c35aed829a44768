//! secrets.toml: no panic on any text; accepted secrets written back read
//! back the same.
#![no_main]
use libfuzzer_sys::fuzz_target;
use vpn_ctl::secrets::Secrets;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(s) = Secrets::parse(text) {
        let again = toml::to_string(&s).expect("accepted secrets serialize");
        let back = Secrets::parse(&again).expect("what we write we read");
        assert!(back.psk == s.psk && back.gateway_key == s.gateway_key);
    }
});
