//! The client's TCP handshake: connect, drive the engine, return the keys
//! and what the gateway granted.
use std::{
    io::{Read as _, Write as _},
    net::{SocketAddr, TcpStream},
    time::{Duration, Instant},
};

use vpn_proto::native::{
    crypto::Cipher,
    handshake::{ClientError, ClientHandshake, ClientStep, Keys},
    messages::{AuthRequest, Welcome},
};

/// How long connecting plus the whole handshake may take.
pub const TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The gateway answered and said no: retrying will not help.
    #[error(transparent)]
    Refused(#[from] ClientError),
    /// The network or the gateway is not there (now): worth retrying.
    #[error("cannot reach {0}: {1}")]
    Unreachable(SocketAddr, std::io::Error),
}

impl ConnectError {
    pub fn is_fatal(&self) -> bool {
        match self {
            // BUSY is transient; every other refusal is about us.
            ConnectError::Refused(ClientError::Refused(m)) => !m.contains("busy"),
            ConnectError::Refused(ClientError::Rejected(r, _)) => !r.retry(),
            ConnectError::Refused(_) => true,
            ConnectError::Unreachable(..) => false,
        }
    }
}

pub fn connect(
    server: SocketAddr,
    psk: &[u8; 32],
    gateway_key: &[u8; 32],
    auth: AuthRequest,
    ciphers: &[Cipher],
) -> Result<(Keys, Welcome), ConnectError> {
    let deadline = Instant::now() + TIMEOUT;
    let io = |e| ConnectError::Unreachable(server, e);
    let mut conn = TcpStream::connect_timeout(&server, TIMEOUT).map_err(io)?;
    conn.set_nodelay(true).map_err(io)?;
    let (mut hs, first) = ClientHandshake::start(psk, gateway_key, auth, ciphers);
    conn.write_all(&first).map_err(io)?;
    let mut buf = [0u8; 2048];
    loop {
        while let Some(step) = hs.poll()? {
            match step {
                ClientStep::Send(b) => conn.write_all(&b).map_err(io)?,
                ClientStep::Established(keys, welcome) => return Ok((keys, welcome)),
            }
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io(std::io::ErrorKind::TimedOut.into()));
        }
        conn.set_read_timeout(Some(left)).map_err(io)?;
        let n = conn.read(&mut buf).map_err(io)?;
        if n == 0 {
            return Err(io(std::io::Error::new(
                std::io::ErrorKind::ConnectionAborted,
                "the gateway closed the connection during the handshake",
            )));
        }
        hs.handle_bytes(&buf[..n]);
    }
}
