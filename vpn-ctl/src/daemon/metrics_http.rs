//! Serves `GET /metrics` (Prometheus text format) over plain HTTP/1.x:
//! one request per connection, the request head bounded in size and time,
//! a few connections at once. Nothing else is served.
use std::{sync::Arc, time::Duration};

use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::{TcpListener, TcpStream},
    sync::Semaphore,
};

use super::{gateway::limits::ACCEPT_BACKOFF, Shared};

const MAX_HEAD: usize = 8192;
const HEAD_TIMEOUT: Duration = Duration::from_secs(5);
const MAX_CONNECTIONS: usize = 8;

pub async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let (conn, _) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                log::debug!("metrics: accept: {e}");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        // Over the limit the connection is just closed.
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            continue;
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            let _ = tokio::time::timeout(HEAD_TIMEOUT, answer(conn, &shared)).await;
            drop(permit);
        });
    }
}

/// The request target of a GET, from the head read so far.
fn target(head: &[u8]) -> Option<&str> {
    let line = std::str::from_utf8(head).ok()?.lines().next()?;
    let mut w = line.split(' ');
    match (w.next()?, w.next()?, w.next()?) {
        ("GET", t, v) if v.starts_with("HTTP/1.") => Some(t),
        _ => None,
    }
}

async fn answer(mut conn: TcpStream, shared: &Shared) -> std::io::Result<()> {
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = conn.read(&mut buf).await?;
        if n == 0 || head.len() + n > MAX_HEAD {
            return Ok(());
        }
        head.extend_from_slice(&buf[..n]);
    }
    let (status, body) = match target(&head) {
        Some("/metrics") => match shared.status() {
            Ok(s) => ("200 OK", crate::metrics::render(&s, &shared.sessions())),
            Err(e) => ("500 Internal Server Error", format!("{e:#}\n")),
        },
        Some(_) => ("404 Not Found", "only /metrics is here\n".to_string()),
        None => ("400 Bad Request", "GET /metrics HTTP/1.1\n".to_string()),
    };
    let reply = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    conn.write_all(reply.as_bytes()).await?;
    conn.shutdown().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_lines() {
        assert_eq!(
            target(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"),
            Some("/metrics")
        );
        assert_eq!(target(b"GET / HTTP/1.0\r\n\r\n"), Some("/"));
        assert_eq!(target(b"POST /metrics HTTP/1.1\r\n\r\n"), None);
        assert_eq!(target(b"GET /metrics\r\n\r\n"), None);
        assert_eq!(target(b"\xff\xfe\r\n\r\n"), None);
    }
}
