//! What every benchmark binary shares: a figure is a real measurement or
//! an error (never 0, inf or NaN), rounds summarised as median and spread,
//! counters read once they have settled, results written as JSON for
//! comparison across commits, and peer processes reaped on every exit.
use std::{
    path::PathBuf,
    process::Child,
    time::{Duration, Instant},
};

use serde_json::{json, Value};

/// A measured figure: finite and positive, or an error naming it.
pub fn measured(what: &str, v: f64) -> anyhow::Result<f64> {
    anyhow::ensure!(
        v.is_finite() && v > 0.0,
        "{what}: the measurement failed ({v})"
    );
    Ok(v)
}

/// The rounds of one row.
#[derive(Clone, Debug)]
pub struct Stats {
    pub samples: Vec<f64>,
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

impl Stats {
    pub fn of(what: &str, samples: &[f64]) -> anyhow::Result<Stats> {
        anyhow::ensure!(!samples.is_empty(), "{what}: no rounds");
        for v in samples {
            measured(what, *v)?;
        }
        let mut s = samples.to_vec();
        s.sort_by(f64::total_cmp);
        let median = if s.len() % 2 == 1 {
            s[s.len() / 2]
        } else {
            (s[s.len() / 2 - 1] + s[s.len() / 2]) / 2.0
        };
        Ok(Stats {
            samples: samples.to_vec(),
            median,
            min: s[0],
            max: s[s.len() - 1],
        })
    }

    /// (max - min) / median, in percent.
    pub fn spread_pct(&self) -> f64 {
        (self.max - self.min) / self.median * 100.0
    }

    /// `median [min-max]` with `decimals`.
    pub fn show(&self, decimals: usize) -> String {
        format!(
            "{:.d$} [{:.d$}-{:.d$}]",
            self.median,
            self.min,
            self.max,
            d = decimals
        )
    }

    pub fn json(&self) -> Value {
        json!({
            "median": self.median,
            "min": self.min,
            "max": self.max,
            "spread_pct": self.spread_pct(),
            "samples": self.samples,
        })
    }
}

/// `a / b` of two medians.
pub fn ratio(a: &Stats, b: &Stats) -> f64 {
    a.median / b.median
}

/// A counter once it has stopped moving (the daemon drained its socket),
/// read every 100 ms for at most 5 s.
pub fn settled(mut read: impl FnMut() -> u64) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut last = read();
    loop {
        std::thread::sleep(Duration::from_millis(100));
        let now = read();
        if now == last || Instant::now() > deadline {
            return now;
        }
        last = now;
    }
}

/// Writes `results` (with the commit and the machine's core count) to
/// target/bench/NAME.json; returns the path.
pub fn write_json(name: &str, mut results: Value) -> anyhow::Result<PathBuf> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(PathBuf::from)
        .unwrap_or_default();
    let commit = std::process::Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .current_dir(&root)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    results["commit"] = json!(commit);
    results["cores"] = json!(cores);
    results["unix_time"] = json!(std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs()));
    let dir = root.join("target/bench");
    std::fs::create_dir_all(&dir)?;
    let path = dir.join(format!("{name}.json"));
    std::fs::write(&path, serde_json::to_string_pretty(&results)?)?;
    println!("results: {}", path.display());
    Ok(path)
}

/// Sends prepared packets through a raw IPv4 socket of `proto` (with
/// `libc::IPPROTO_RAW` each packet carries its own IPv4 header), in order,
/// for at most `secs`, starting over at the end when `cycle`, paced to
/// `rate` packets per second when given (else as fast as it can). A full
/// queue (ENOBUFS) retries the same packet: generators whose receiver
/// tracks order (MPPE, ESP's window) need every one. Returns the packets
/// sent and the seconds it took.
pub fn raw_send(
    proto: i32,
    dst: std::net::Ipv4Addr,
    packets: &[Vec<u8>],
    secs: f64,
    cycle: bool,
    rate: Option<f64>,
) -> anyhow::Result<(u64, f64)> {
    anyhow::ensure!(!packets.is_empty(), "nothing to send");
    // SAFETY: plain socket calls on an fd owned below.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_RAW, proto) };
    anyhow::ensure!(fd >= 0, "raw socket: {}", std::io::Error::last_os_error());
    // SAFETY: the kernel just gave us this descriptor.
    let fd = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
    let fd = std::os::fd::AsRawFd::as_raw_fd(&fd);
    // SAFETY: a zeroed sockaddr_in is valid; filled below.
    let mut to: libc::sockaddr_in = unsafe { std::mem::zeroed() };
    to.sin_family = libc::AF_INET as u16;
    to.sin_addr.s_addr = u32::from_ne_bytes(dst.octets());
    let t0 = Instant::now();
    let end = t0 + Duration::from_secs_f64(secs);
    let mut sent = 0u64;
    let mut i = 0;
    while i < packets.len() {
        if sent.is_multiple_of(64) {
            let now = Instant::now();
            if now >= end {
                break;
            }
            // Paced: wait until this packet's time.
            if let Some(r) = rate {
                let due = t0 + Duration::from_secs_f64(sent as f64 / r);
                while Instant::now() < due {
                    std::hint::spin_loop();
                }
            }
        }
        let p = &packets[i];
        // SAFETY: valid buffer and address for the call.
        let n = unsafe {
            libc::sendto(
                fd,
                p.as_ptr().cast(),
                p.len(),
                0,
                (&to as *const libc::sockaddr_in).cast(),
                std::mem::size_of::<libc::sockaddr_in>() as u32,
            )
        };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            anyhow::ensure!(e.raw_os_error() == Some(libc::ENOBUFS), "sendto: {e}");
            continue;
        }
        sent += 1;
        i += 1;
        if cycle && i == packets.len() {
            i = 0;
        }
    }
    Ok((sent, t0.elapsed().as_secs_f64()))
}

/// A peer process killed and waited for when dropped, also on an early error.
pub struct Reap(pub Child);

impl Drop for Reap {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_measurements_are_errors() {
        for v in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            assert!(measured("x", v).is_err(), "{v}");
        }
        assert!(Stats::of("x", &[]).is_err());
        assert!(Stats::of("x", &[3.0, 0.0]).is_err());
    }

    #[test]
    fn median_and_spread() {
        let s = Stats::of("x", &[30.0, 10.0, 20.0]).unwrap();
        assert_eq!((s.median, s.min, s.max), (20.0, 10.0, 30.0));
        assert_eq!(s.spread_pct(), 100.0);
        assert_eq!(Stats::of("x", &[1.0, 3.0]).unwrap().median, 2.0);
    }
}
