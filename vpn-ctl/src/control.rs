//! The control socket between the CLI and the daemon: one JSON request line,
//! one JSON response, over a root-only Unix socket in `run_dir`.
use std::{
    io::{BufRead as _, BufReader, Write as _},
    os::unix::net::UnixStream,
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

pub const SOCKET: &str = "control.sock";
pub const LOCK: &str = "lock";
/// Longest request line the daemon reads.
pub const MAX_REQUEST: usize = 4096;

pub fn socket_path(run_dir: &Path) -> PathBuf {
    run_dir.join(SOCKET)
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "request", rename_all = "snake_case")]
pub enum Request {
    Status,
    Sessions,
    Kill {
        id: u64,
    },
    ReloadUsers,
    Shutdown,
    /// Hand the sessions to the binary on disk and exec it (same PID).
    Restart,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Response {
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default)]
    pub data: serde_json::Value,
}

impl Response {
    pub fn ok(data: serde_json::Value) -> Response {
        Response {
            ok: true,
            error: None,
            data,
        }
    }
    pub fn err(msg: impl Into<String>) -> Response {
        Response {
            ok: false,
            error: Some(msg.into()),
            data: serde_json::Value::Null,
        }
    }
}

/// The daemon is not reachable (as opposed to a request it refused).
#[derive(Debug, thiserror::Error)]
#[error("vpn-ctl is not running (no daemon on {0})")]
pub struct NotRunning(pub PathBuf);

/// Sends `req` and returns the response's data, or its error.
pub fn call(run_dir: &Path, req: &Request) -> anyhow::Result<serde_json::Value> {
    let path = socket_path(run_dir);
    let mut stream = match UnixStream::connect(&path) {
        Ok(s) => s,
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
            ) =>
        {
            return Err(NotRunning(path).into())
        }
        Err(e) => return Err(e).with_context(|| format!("connect {}", path.display())),
    };
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut line = serde_json::to_vec(req)?;
    line.push(b'\n');
    stream.write_all(&line).context("send request")?;
    let mut reply = String::new();
    BufReader::new(stream)
        .read_line(&mut reply)
        .context("read response")?;
    let resp: Response = serde_json::from_str(&reply).context("malformed response")?;
    if resp.ok {
        Ok(resp.data)
    } else {
        anyhow::bail!("{}", resp.error.unwrap_or_else(|| "request failed".into()))
    }
}
