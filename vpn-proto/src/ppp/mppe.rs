//! MPPE (RFC 3078): RC4 over PPP payloads with a 12-bit coherency count,
//! 40- or 128-bit keys from MS-CHAPv2 (RFC 3079), stateless (a new key per
//! packet) or stateful (a new key every 256 packets, resynchronised with CCP
//! Reset-Request after loss). And the CCP options that negotiate it.
use zeroize::{Zeroize as _, Zeroizing};

use super::{consts::*, fsm::*, mschap};

impl Drop for Rc4 {
    fn drop(&mut self) {
        self.s.zeroize();
    }
}

/// RC4, for MPPE only (which mandates it). Its state is the key: wiped
/// when dropped.
struct Rc4 {
    s: [u8; 256],
    i: u8,
    j: u8,
}

impl Rc4 {
    fn new(key: &[u8]) -> Rc4 {
        let mut s = [0u8; 256];
        for (i, x) in s.iter_mut().enumerate() {
            *x = i as u8;
        }
        let mut j = 0u8;
        for i in 0..256 {
            j = j.wrapping_add(s[i]).wrapping_add(key[i % key.len()]);
            s.swap(i, j as usize);
        }
        Rc4 { s, i: 0, j: 0 }
    }

    fn apply(&mut self, data: &mut [u8]) {
        for b in data {
            self.i = self.i.wrapping_add(1);
            self.j = self.j.wrapping_add(self.s[self.i as usize]);
            self.s.swap(self.i as usize, self.j as usize);
            let k =
                self.s[(self.s[self.i as usize].wrapping_add(self.s[self.j as usize])) as usize];
            *b ^= k;
        }
    }
}

const CCOUNT_SPACE: u16 = 4096;
const BIT_FLUSHED: u8 = 0x80;
const BIT_ENCRYPTED: u8 = 0x10;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Strength {
    Bits40,
    Bits128,
}

impl Strength {
    fn key_len(self) -> usize {
        match self {
            Strength::Bits40 => 8,
            Strength::Bits128 => 16,
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
pub enum MppeError {
    Malformed,
    NotEncrypted,
    /// Stateful mode lost sync: send a CCP Reset-Request, drop until a flushed packet.
    NeedReset,
    /// A packet that breaks the rules (stateless without the flushed bit, a
    /// coherency-count jump past `MAX_CATCH_UP`): dropped unread and counted.
    Sanity,
    /// More than `SANITY_MAX` such packets: the call should end.
    Desync,
}

/// Stateless mode: the largest coherency-count jump caught up with (each
/// step costs a SHA-1 and an RC4 key schedule). Half the count space, as
/// Linux's ppp_mppe: a jump further ahead is taken for a late packet and
/// dropped. A smaller bound ended calls whose packets were lost in bursts
/// of a few hundred (a receive queue overflowing under load).
pub const MAX_CATCH_UP: u16 = CCOUNT_SPACE / 2 - 1;
/// Rule-breaking packets tolerated before the call is ended (as Linux's ppp_mppe).
pub const SANITY_MAX: u32 = 1600;

/// One MPPE direction as plain data (`Mppe::carry`); its keys are wiped
/// when dropped.
#[derive(serde::Serialize, serde::Deserialize)]
pub struct MppeCarry {
    pub start: Vec<u8>,
    pub session: Vec<u8>,
    pub rc4: Vec<u8>,
    pub rc4_i: u8,
    pub rc4_j: u8,
    pub ccount: u16,
    pub stateful: bool,
    pub bits128: bool,
    pub discarding: bool,
    pub flush_next: bool,
    pub sanity_errors: u32,
}

impl Drop for MppeCarry {
    fn drop(&mut self) {
        use zeroize::Zeroize as _;
        self.start.zeroize();
        self.session.zeroize();
        self.rc4.zeroize();
    }
}

/// One direction of MPPE. Not `Clone`; its keys are wiped when dropped.
pub struct Mppe {
    start: Zeroizing<Vec<u8>>,
    session: Zeroizing<Vec<u8>>,
    rc4: Rc4,
    ccount: u16,
    stateful: bool,
    strength: Strength,
    /// Stateful receive: waiting for a flushed packet after a reset request.
    discarding: bool,
    /// Stateful send: the peer asked for a reset; flush on the next packet.
    flush_next: bool,
    /// Rule-breaking packets received so far.
    sanity_errors: u32,
}

impl Mppe {
    /// `start`: the start key of this direction (RFC 3079 GetAsymmetricStartKey).
    pub fn new(start: &[u8], strength: Strength, stateful: bool) -> Mppe {
        let start = Zeroizing::new(start[..strength.key_len()].to_vec());
        let mut m = Mppe {
            session: start.clone(),
            rc4: Rc4::new(&start),
            start,
            ccount: CCOUNT_SPACE - 1,
            stateful,
            strength,
            discarding: false,
            flush_next: false,
            sanity_errors: 0,
        };
        m.rekey(true);
        m
    }

    /// The server's send and receive directions from its start keys.
    pub fn server_pair(
        keys: &mschap::StartKeys,
        strength: Strength,
        stateful: bool,
    ) -> (Mppe, Mppe) {
        (
            Mppe::new(&keys.send, strength, stateful),
            Mppe::new(&keys.recv, strength, stateful),
        )
    }

    /// The peer's (client's) send and receive directions: the server's, swapped.
    pub fn client_pair(
        master: &mschap::MasterKey,
        strength: Strength,
        stateful: bool,
    ) -> (Mppe, Mppe) {
        let keys = mschap::StartKeys::of_master(master);
        let (send, recv) = Self::server_pair(&keys, strength, stateful);
        (recv, send)
    }

    fn rekey(&mut self, initial: bool) {
        let interim = mschap::new_key_from_sha(&self.start, &self.session);
        if initial {
            self.session = interim;
        } else {
            let mut k = interim.clone();
            Rc4::new(&interim).apply(&mut k[..]);
            self.session = k;
        }
        if self.strength == Strength::Bits40 {
            self.session[..3].copy_from_slice(&[0xd1, 0x26, 0x9e]);
        }
        self.rc4 = Rc4::new(&self.session);
    }

    /// This direction's whole state (a restart hands it over): keys, the
    /// RC4 state, the coherency count and the flags.
    pub fn carry(&self) -> MppeCarry {
        MppeCarry {
            start: self.start.to_vec(),
            session: self.session.to_vec(),
            rc4: self.rc4.s.to_vec(),
            rc4_i: self.rc4.i,
            rc4_j: self.rc4.j,
            ccount: self.ccount,
            stateful: self.stateful,
            bits128: self.strength == Strength::Bits128,
            discarding: self.discarding,
            flush_next: self.flush_next,
            sanity_errors: self.sanity_errors,
        }
    }

    /// The direction `carry` described; None if it is inconsistent.
    pub fn resume(c: &MppeCarry) -> Option<Mppe> {
        let strength = if c.bits128 {
            Strength::Bits128
        } else {
            Strength::Bits40
        };
        if c.start.len() != strength.key_len() || c.session.len() != strength.key_len() {
            return None;
        }
        Some(Mppe {
            start: Zeroizing::new(c.start.clone()),
            session: Zeroizing::new(c.session.clone()),
            rc4: Rc4 {
                s: c.rc4.as_slice().try_into().ok()?,
                i: c.rc4_i,
                j: c.rc4_j,
            },
            ccount: c.ccount % CCOUNT_SPACE,
            stateful: c.stateful,
            strength,
            discarding: c.discarding,
            flush_next: c.flush_next,
            sanity_errors: c.sanity_errors,
        })
    }

    /// The peer sent a CCP Reset-Request (stateful mode).
    pub fn reset_requested(&mut self) {
        self.flush_next = true;
    }

    /// Encrypts `inner` (PPP protocol field and payload) into the body of a
    /// 0x00FD frame: the 2-byte header, then the ciphertext.
    pub fn encrypt(&mut self, inner: &[u8], out: &mut Vec<u8>) {
        out.clear();
        self.encrypt_parts(&[inner], out);
    }

    /// Appends the 2-byte header and the encryption of `parts` (one inner
    /// frame in pieces, e.g. protocol field and packet) to `out`.
    pub fn encrypt_parts(&mut self, parts: &[&[u8]], out: &mut Vec<u8>) {
        self.ccount = (self.ccount + 1) % CCOUNT_SPACE;
        let mut h = self.ccount.to_be_bytes();
        if !self.stateful || self.ccount & 0xff == 0xff || self.flush_next {
            self.flush_next = false;
            self.rekey(false);
            h[0] |= BIT_FLUSHED;
        }
        if self.stateful && h[0] & BIT_FLUSHED != 0 {
            // A flushed packet restarts the RC4 stream on the receiver.
            self.rc4 = Rc4::new(&self.session);
        }
        h[0] |= BIT_ENCRYPTED;
        out.extend_from_slice(&h);
        let at = out.len();
        for p in parts {
            out.extend_from_slice(p);
        }
        self.rc4.apply(&mut out[at..]);
    }

    /// Counts a rule-breaking packet; past `SANITY_MAX` the call is lost.
    fn sanity(&mut self) -> MppeError {
        self.sanity_errors += 1;
        if self.sanity_errors > SANITY_MAX {
            MppeError::Desync
        } else {
            MppeError::Sanity
        }
    }

    /// Decrypts a 0x00FD frame body in place; returns the inner frame's range.
    pub fn decrypt(&mut self, body: &mut [u8]) -> Result<std::ops::Range<usize>, MppeError> {
        if body.len() < 3 {
            return Err(MppeError::Malformed);
        }
        if body[0] & BIT_ENCRYPTED == 0 {
            return Err(MppeError::NotEncrypted);
        }
        let flushed = body[0] & BIT_FLUSHED != 0;
        let ccount = u16::from_be_bytes([body[0] & 0x0f, body[1]]);
        let gap = (ccount + CCOUNT_SPACE - self.ccount) % CCOUNT_SPACE;
        if !self.stateful {
            // One key per packet, every packet flushed (RFC 3078 §8.1): catch
            // up over a bounded number of lost ones; a reordered older packet,
            // a missing flushed bit or a longer jump is dropped unread.
            if !flushed || gap == 0 || gap > MAX_CATCH_UP {
                return Err(self.sanity());
            }
            for _ in 0..gap {
                self.rekey(false);
            }
        } else {
            if self.discarding && !flushed {
                return Err(MppeError::NeedReset);
            }
            if gap != 1 && !flushed {
                self.discarding = true;
                return Err(MppeError::NeedReset);
            }
            // Key changes on each 0xff boundary crossed.
            let mut c = self.ccount;
            while c != ccount {
                c = (c + 1) % CCOUNT_SPACE;
                if c & 0xff == 0xff {
                    self.rekey(false);
                }
            }
            if flushed {
                if ccount & 0xff != 0xff {
                    self.rekey(false);
                }
                self.rc4 = Rc4::new(&self.session);
                self.discarding = false;
            }
        }
        self.ccount = ccount;
        self.rc4.apply(&mut body[2..]);
        Ok(2..body.len())
    }
}

/// CCP options: MPPE only. The gateway's policy says which strengths it
/// allows and whether it requires MPPE at all.
pub struct Ccp {
    pub allow_128: bool,
    pub allow_40: bool,
    pub allow_stateful: bool,
    /// What both ends agreed (bits of the MPPE option), once open.
    pub agreed: Option<u32>,
    wanted: u32,
}

impl Ccp {
    pub fn new(allow_128: bool, allow_40: bool, allow_stateful: bool) -> Ccp {
        let mut wanted = MPPE_STATELESS;
        wanted |= if allow_128 { MPPE_128 } else { MPPE_40 };
        Ccp {
            allow_128,
            allow_40,
            allow_stateful,
            agreed: None,
            wanted,
        }
    }

    /// The single set of bits we accept for what the peer offers.
    fn choose(&self, offered: u32) -> Option<u32> {
        let strength = if self.allow_128 && offered & MPPE_128 != 0 {
            MPPE_128
        } else if self.allow_40 && offered & MPPE_40 != 0 {
            MPPE_40
        } else {
            return None;
        };
        let stateless = offered & MPPE_STATELESS != 0 || !self.allow_stateful;
        Some(strength | if stateless { MPPE_STATELESS } else { 0 })
    }

    /// Keys' strength and mode of the agreed option.
    pub fn mode(&self) -> Option<(Strength, bool)> {
        self.agreed.map(|b| {
            let s = if b & MPPE_128 != 0 {
                Strength::Bits128
            } else {
                Strength::Bits40
            };
            (s, b & MPPE_STATELESS == 0)
        })
    }
}

impl Options for Ccp {
    fn request(&mut self) -> Vec<u8> {
        let mut o = Vec::new();
        put_option(&mut o, CCP_MPPE, &self.wanted.to_be_bytes());
        o
    }

    fn check(&mut self, opts: &[u8], must_reject: bool) -> Verdict {
        let mut rej = Vec::new();
        let mut mppe = None;
        for o in options(opts) {
            let Some((t, v)) = o else {
                return Verdict::Reject(opts.to_vec());
            };
            match (t, <[u8; 4]>::try_from(v)) {
                (CCP_MPPE, Ok(b)) => mppe = Some(u32::from_be_bytes(b)),
                // Other compressors (deflate, BSD, ...): we only do MPPE.
                _ => put_option(&mut rej, t, v),
            }
        }
        if !rej.is_empty() {
            return Verdict::Reject(rej);
        }
        let Some(offered) = mppe else {
            return Verdict::Ack; // an empty request: no compression from the peer
        };
        match self.choose(offered) {
            Some(b) if b == offered => {
                self.agreed = Some(b);
                Verdict::Ack
            }
            Some(b) if !must_reject => {
                let mut o = Vec::new();
                put_option(&mut o, CCP_MPPE, &b.to_be_bytes());
                Verdict::Nak(o)
            }
            _ => {
                let mut o = Vec::new();
                put_option(&mut o, CCP_MPPE, &offered.to_be_bytes());
                Verdict::Reject(o)
            }
        }
    }

    fn acked(&mut self, _opts: &[u8]) {
        if self.agreed.is_none() {
            self.agreed = Some(self.wanted);
        }
    }

    fn naked(&mut self, opts: &[u8]) -> bool {
        for (t, v) in options(opts).flatten() {
            if let (CCP_MPPE, Ok(b)) = (t, <[u8; 4]>::try_from(v)) {
                match self.choose(u32::from_be_bytes(b)) {
                    Some(c) => self.wanted = c,
                    None => return false,
                }
            }
        }
        true
    }

    fn rejected(&mut self, _opts: &[u8]) -> bool {
        false // MPPE is all CCP is for here
    }

    fn reset(&mut self) {
        self.agreed = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rc4_known_answer() {
        // The classic vector: key "Key", plaintext "Plaintext".
        let mut d = *b"Plaintext";
        Rc4::new(b"Key").apply(&mut d);
        assert_eq!(d, [0xBB, 0xF3, 0x16, 0xE8, 0xD9, 0x40, 0xAF, 0x0A, 0xD3]);
    }

    #[test]
    fn initial_128_bit_session_key_is_rfc3079s() {
        let start = [
            0x8B, 0x7C, 0xDC, 0x14, 0x9B, 0x99, 0x3A, 0x1B, 0xA1, 0x18, 0xCB, 0x15, 0x3F, 0x56,
            0xDC, 0xCB,
        ];
        let m = Mppe::new(&start, Strength::Bits128, false);
        let hex: String = m.session.iter().map(|b| format!("{b:02X}")).collect();
        assert_eq!(hex, "405CB2247A7956E6E211007AE27B22D4");
    }

    fn roundtrip(
        strength: Strength,
        stateful: bool,
        lose: impl Fn(usize) -> bool,
    ) -> (usize, usize) {
        let key = [0x42u8; 16];
        let (mut tx, mut rx) = (
            Mppe::new(&key, strength, stateful),
            Mppe::new(&key, strength, stateful),
        );
        let (mut ok, mut resets) = (0, 0);
        let mut seed = Vec::new();
        for i in 0..1000usize {
            let inner = [&[0x00, 0x21][..], &i.to_be_bytes()].concat();
            let mut body = Vec::new();
            tx.encrypt(&inner, &mut body);
            if i < 4 {
                seed.push(body.clone());
            } else if i == 4 {
                let mode = u8::from(strength == Strength::Bits40) | u8::from(stateful) << 1;
                let msgs: Vec<&[u8]> = seed.iter().map(Vec::as_slice).collect();
                crate::fuzz_seed::save_frames("mppe", &[mode], &msgs);
            }
            if lose(i) {
                continue;
            }
            match rx.decrypt(&mut body) {
                Ok(r) => {
                    assert_eq!(&body[r], &inner[..], "packet {i}");
                    ok += 1;
                }
                Err(MppeError::NeedReset) => {
                    resets += 1;
                    tx.reset_requested();
                }
                Err(e) => panic!("{e:?}"),
            }
        }
        (ok, resets)
    }

    #[test]
    fn stateless_survives_loss_without_resets() {
        for s in [Strength::Bits40, Strength::Bits128] {
            let (ok, resets) = roundtrip(s, false, |i| i % 7 == 3);
            assert_eq!((ok, resets), (1000 - 143, 0));
        }
    }

    #[test]
    fn stateless_catches_up_over_a_burst_of_1500_lost_packets() {
        let key = [0x24u8; 16];
        let (mut tx, mut rx) = (
            Mppe::new(&key, Strength::Bits128, false),
            Mppe::new(&key, Strength::Bits128, false),
        );
        let mut body = Vec::new();
        for _ in 0..1500 {
            tx.encrypt(&[0x00, 0x21, 9], &mut body);
        }
        tx.encrypt(&[0x00, 0x21, 7], &mut body);
        let r = rx.decrypt(&mut body).unwrap();
        assert_eq!(&body[r], &[0x00, 0x21, 7]);
    }

    #[test]
    fn stateless_drops_unflushed_and_far_jumps_unread_then_gives_up() {
        let key = [0x42u8; 16];
        let (mut tx, mut rx) = (
            Mppe::new(&key, Strength::Bits128, false),
            Mppe::new(&key, Strength::Bits128, false),
        );
        let mut body = Vec::new();
        tx.encrypt(&[0x00, 0x21, 1], &mut body);
        let good = body.clone();
        // The flushed bit cleared: dropped, counted.
        let mut unflushed = good.clone();
        unflushed[0] &= !BIT_FLUSHED;
        assert_eq!(rx.decrypt(&mut unflushed), Err(MppeError::Sanity));
        // 3000 coherency counts ahead is 1096 behind: a late packet,
        // dropped without rekeying.
        let mut far = good.clone();
        far[0] = (far[0] & 0xf0) | 0x0b;
        far[1] = 0xb8;
        assert_eq!(rx.decrypt(&mut far), Err(MppeError::Sanity));
        // The real next packet still decrypts.
        let mut ok = good.clone();
        assert!(rx.decrypt(&mut ok).is_ok());
        // A flood of bad packets ends the call.
        let results: Vec<_> = (0..SANITY_MAX)
            .map(|_| rx.decrypt(&mut unflushed.clone()))
            .collect();
        assert_eq!(results.last(), Some(&Err(MppeError::Desync)));
    }

    #[test]
    fn stateful_crosses_key_changes_and_resyncs_after_loss() {
        assert_eq!(roundtrip(Strength::Bits128, true, |_| false), (1000, 0));
        let (ok, resets) = roundtrip(Strength::Bits128, true, |i| i == 100 || i == 600);
        assert!(resets >= 2 && ok >= 990, "ok {ok}, resets {resets}");
    }

    #[test]
    fn ccp_agrees_on_128_bit_stateless() {
        use std::time::Instant;
        let now = Instant::now();
        let mut s = Fsm::new(Ccp::new(true, false, false));
        let mut c = Fsm::new(Ccp::new(true, true, true));
        crate::ppp::fsm::testing::converse(&mut s, &mut c, now);
        assert!(s.is_open() && c.is_open());
        assert_eq!(s.opts.mode(), Some((Strength::Bits128, false)));
    }
}
