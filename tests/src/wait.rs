//! Waiting on a condition with a deadline (never sleep-and-hope).
use std::time::{Duration, Instant};

/// Polls `f` until it returns `Some`, or fails with `what` after `timeout`.
pub fn until<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
