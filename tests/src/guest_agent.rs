//! The host end of the guest agent's serial protocol (guest/agent): one
//! request or reply per line, scripts and their output in base64.
use std::{
    io::{ErrorKind, Read as _, Write as _},
    os::unix::net::UnixStream,
    path::Path,
    time::{Duration, Instant},
};

use base64::{engine::general_purpose::STANDARD as B64, Engine as _};

/// How long the host waits beyond a script's own timeout before declaring the
/// guest hung (the agent's `timeout -k 3` reports first in a healthy guest).
const HUNG_MARGIN: Duration = Duration::from_secs(20);

pub struct Agent {
    stream: UnixStream,
    buf: Vec<u8>,
    next_id: u64,
}

/// The result of one script run in the guest.
#[derive(Debug)]
pub struct ScriptRun {
    /// The script's exit code; 124 when the guest's `timeout` stopped it.
    pub code: i32,
    /// stdout and stderr, interleaved.
    pub output: String,
}

impl Agent {
    /// Connects to QEMU's socket for the agent's serial port.
    pub fn connect(path: &Path, deadline: Instant) -> Result<Agent, String> {
        loop {
            match UnixStream::connect(path) {
                Ok(stream) => {
                    return Ok(Agent {
                        stream,
                        buf: Vec::new(),
                        next_id: 1,
                    })
                }
                Err(e) if Instant::now() >= deadline => {
                    return Err(format!("cannot connect to {}: {e}", path.display()))
                }
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    }

    /// Pings until the agent answers: the guest has booted and has its network.
    /// Pings repeat because a serial line drops what arrives before it is opened.
    pub fn wait_ready(&mut self, deadline: Instant) -> Result<(), String> {
        loop {
            self.send("PING\n")?;
            let next = (Instant::now() + Duration::from_millis(500)).min(deadline);
            while let Some(line) = self.read_line(next)? {
                if line == "READY" {
                    return Ok(());
                }
            }
            if Instant::now() >= deadline {
                return Err("the guest did not boot in time".into());
            }
        }
    }

    /// Runs `script` with bash in the guest, stopped after `timeout`.
    pub fn run(&mut self, script: &str, timeout: Duration) -> Result<ScriptRun, String> {
        let id = self.next_id;
        self.next_id += 1;
        let secs = timeout.as_secs().max(1);
        self.send(&format!("RUN {id} {secs} {}\n", B64.encode(script)))?;
        let deadline = Instant::now() + timeout + HUNG_MARGIN;
        loop {
            let Some(line) = self.read_line(deadline)? else {
                return Err(format!(
                    "the guest did not answer within {timeout:?} + margin"
                ));
            };
            let mut f = line.splitn(4, ' ');
            if f.next() != Some("DONE") || f.next() != Some(&id.to_string()) {
                continue; // a late READY, or an answer to an abandoned request
            }
            let code = f
                .next()
                .and_then(|c| c.parse().ok())
                .ok_or_else(|| format!("bad agent reply: {line}"))?;
            let output = B64
                .decode(f.next().unwrap_or("").trim())
                .map_err(|e| format!("bad agent output encoding: {e}"))?;
            return Ok(ScriptRun {
                code,
                output: String::from_utf8_lossy(&output).into_owned(),
            });
        }
    }

    fn send(&mut self, s: &str) -> Result<(), String> {
        self.stream
            .write_all(s.as_bytes())
            .map_err(|e| format!("agent connection lost: {e}"))
    }

    /// The next line, or None at `deadline`. Err when QEMU closed the line.
    fn read_line(&mut self, deadline: Instant) -> Result<Option<String>, String> {
        loop {
            if let Some(nl) = self.buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=nl).collect();
                return Ok(Some(
                    String::from_utf8_lossy(&line[..nl]).trim().to_string(),
                ));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            self.stream
                .set_read_timeout(Some(left))
                .map_err(|e| e.to_string())?;
            let mut chunk = [0u8; 65536];
            match self.stream.read(&mut chunk) {
                Ok(0) => return Err("the guest's serial line closed (QEMU exited)".into()),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(format!("agent connection lost: {e}")),
            }
        }
    }
}
