//! vpn-ctl.toml: no panic on any text; an accepted configuration written
//! back as TOML parses to the same configuration.
#![no_main]
use libfuzzer_sys::fuzz_target;
use vpn_ctl::config::Config;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(cfg) = Config::parse(text) {
        let again = toml::to_string(&cfg).expect("an accepted config serializes");
        let back = Config::parse(&again).expect("what we write we read");
        assert_eq!(back, cfg);
    }
});
