//! users.toml: no panic on any text; an accepted database written back
//! reads back to the same text.
#![no_main]
use libfuzzer_sys::fuzz_target;
use vpn_ctl::users::UserDb;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // A clear `password` is migrated with argon2id (tens of milliseconds,
    // 19 MiB): the hasher's work, not the parser's, and it would starve
    // the run. Such files are covered by the migration tests.
    if text.contains("password") {
        return;
    }
    if let Ok(db) = UserDb::parse(text) {
        let again = db.to_text().expect("an accepted database serializes");
        let back = UserDb::parse(&again).expect("what we write we read");
        assert_eq!(back.to_text().unwrap(), again);
    }
});
