//! Anti-replay sliding window over 64-bit packet counters (RFC 6479 style):
//! a bitmap of the last `REPLAY_WINDOW` counters below the highest seen.
/// Counters a packet may lag behind the newest and still be accepted (both
/// the native protocol and ESP: wide enough for multi-core reordering).
pub const REPLAY_WINDOW: u64 = 2048;

/// One word more than the window, so the oldest allowed counter never shares
/// a word with the newest.
const WORDS: usize = (REPLAY_WINDOW / 64) as usize + 1;

#[derive(Clone, Debug)]
pub struct ReplayWindow {
    /// One above the highest accepted counter (0: none yet).
    next: u64,
    bits: [u64; WORDS],
}

impl Default for ReplayWindow {
    fn default() -> Self {
        ReplayWindow {
            next: 0,
            bits: [0; WORDS],
        }
    }
}

impl ReplayWindow {
    /// Whether `counter` could be accepted (cheap; checked before decryption).
    pub fn check(&self, counter: u64) -> bool {
        if counter >= self.next {
            return true;
        }
        if self.next - counter > REPLAY_WINDOW {
            return false; // too old to tell: treated as a replay
        }
        !self.bit(counter)
    }

    /// Records `counter` (after the packet authenticated). Returns false if it
    /// was a replay after all.
    pub fn update(&mut self, counter: u64) -> bool {
        if !self.check(counter) {
            return false;
        }
        if counter >= self.next {
            // Clear the words the top of the window moves over.
            let new_top = counter / 64;
            match self.next.checked_sub(1).map(|h| h / 64) {
                Some(old_top) if new_top - old_top < WORDS as u64 => {
                    for w in old_top + 1..=new_top {
                        self.bits[(w % WORDS as u64) as usize] = 0;
                    }
                }
                _ => self.bits = [0; WORDS],
            }
            self.next = counter + 1;
        }
        let (w, b) = Self::pos(counter);
        self.bits[w] |= 1 << b;
        true
    }

    /// The window as plain numbers (a restart's handoff): the next counter
    /// and the bitmap words.
    pub fn to_parts(&self) -> (u64, Vec<u64>) {
        (self.next, self.bits.to_vec())
    }

    /// The window `to_parts` described; None if the bitmap has another size.
    pub fn from_parts(next: u64, bits: &[u64]) -> Option<ReplayWindow> {
        Some(ReplayWindow {
            next,
            bits: bits.try_into().ok()?,
        })
    }

    pub fn highest(&self) -> Option<u64> {
        self.next.checked_sub(1)
    }

    fn pos(counter: u64) -> (usize, u32) {
        ((counter / 64) as usize % WORDS, (counter % 64) as u32)
    }

    fn bit(&self, counter: u64) -> bool {
        let (w, b) = Self::pos(counter);
        self.bits[w] & (1 << b) != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_each_counter_once_in_any_order() {
        let mut w = ReplayWindow::default();
        for c in [5u64, 1, 0, 3, 2, 4, 100, 50, 99] {
            assert!(w.update(c), "{c} first time");
            assert!(!w.check(c) && !w.update(c), "{c} replayed");
        }
        assert_eq!(w.highest(), Some(100));
    }

    #[test]
    fn too_old_is_rejected_and_window_slides_cleanly() {
        let mut w = ReplayWindow::default();
        assert!(w.update(0));
        assert!(w.update(10_000));
        assert!(!w.check(0));
        assert!(!w.check(10_000 - REPLAY_WINDOW - 1));
        // Within the window and never seen: accepted (stale bits were cleared).
        for c in (10_000 - REPLAY_WINDOW + 1)..10_000 {
            assert!(w.check(c), "{c}");
        }
        assert!(w.update(9_990) && !w.update(9_990));
    }

    #[test]
    fn matches_a_reference_set_over_a_long_random_walk() {
        use std::collections::HashSet;
        let mut w = ReplayWindow::default();
        let mut seen = HashSet::new();
        let mut next = 0u64;
        let mut x = 0x1234_5678_9abc_def0u64;
        for _ in 0..200_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let c = if x.is_multiple_of(3) {
                next + x % 300
            } else {
                next.saturating_sub(x % (REPLAY_WINDOW + 200))
            };
            let expect = c >= next || (next - c <= REPLAY_WINDOW && !seen.contains(&c));
            assert_eq!(w.update(c), expect, "counter {c}, next {next}");
            if expect {
                seen.insert(c);
                next = next.max(c + 1);
            }
        }
    }
}
