//! What the targets share: splitting one fuzz input into several messages.
//! Each message is a 16-bit big-endian length and that many bytes (the
//! seeds written by vpn-proto's tests use the same framing).

/// The messages of a framed input; a short last length takes what is left.
pub fn frames(mut data: &[u8]) -> impl Iterator<Item = &[u8]> {
    std::iter::from_fn(move || {
        if data.len() < 2 {
            return None;
        }
        let n = usize::from(u16::from_be_bytes([data[0], data[1]])).min(data.len() - 2);
        let (m, rest) = data[2..].split_at(n);
        data = rest;
        Some(m)
    })
}
