//! The tests' inputs, written out as fuzz seeds: when `VPN_FUZZ_SEEDS`
//! names a directory (`cargo xtask fuzz` sets it), each call saves one
//! input for one fuzz target; otherwise it does nothing. Multi-message
//! targets take messages as 16-bit big-endian length and bytes
//! (fuzz/src/lib.rs reads them back).
use std::path::PathBuf;

fn dir(target: &str) -> Option<PathBuf> {
    let d = PathBuf::from(std::env::var_os("VPN_FUZZ_SEEDS")?).join(target);
    std::fs::create_dir_all(&d).ok()?;
    Some(d)
}

/// FNV-1a: a stable file name for the same input.
fn name(bytes: &[u8]) -> String {
    let h = bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    });
    format!("{h:016x}")
}

/// One input for `target`, as is.
pub fn save(target: &str, bytes: &[u8]) {
    if let Some(d) = dir(target) {
        let _ = std::fs::write(d.join(name(bytes)), bytes);
    }
}

/// Several messages for `target`, framed; `head` goes first unframed (a
/// target's mode or split byte).
pub fn save_frames(target: &str, head: &[u8], msgs: &[&[u8]]) {
    let mut b = head.to_vec();
    for m in msgs {
        let n = m.len().min(usize::from(u16::MAX));
        b.extend_from_slice(&(n as u16).to_be_bytes());
        b.extend_from_slice(&m[..n]);
    }
    save(target, &b);
}
