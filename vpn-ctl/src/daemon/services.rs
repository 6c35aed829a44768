//! The service sockets (L2TP, IKE, PPTP, native). They own their ports from
//! start-up (so conflicts are found then, and the data plane passes control
//! traffic to them). Protocol engines attach here as they land; until then
//! traffic is counted and, once per service, logged.
use std::sync::{atomic::Ordering, Arc};

use super::Shared;
use crate::net::ports::BoundSocket;

pub async fn run(sock: BoundSocket, index: usize, shared: Arc<Shared>) {
    let spec = sock.spec;
    let counter = &shared.received[index];
    let mut warned = false;
    let mut note = |from: std::net::SocketAddr| {
        counter.fetch_add(1, Ordering::Relaxed);
        if !std::mem::replace(&mut warned, true) {
            log::warn!(
                "{} {}/{}: traffic from {from}, but this build has no {} engine; ignored and counted",
                spec.service, spec.proto, spec.port, spec.service
            );
        }
    };
    match spec.proto {
        "tcp" => {
            let Ok(l) = tokio::net::TcpListener::from_std(std::net::TcpListener::from(sock.fd))
            else {
                return;
            };
            while let Ok((conn, from)) = l.accept().await {
                note(from);
                drop(conn);
            }
        }
        _ => {
            let std_sock = std::net::UdpSocket::from(sock.fd);
            let Ok(s) = tokio::net::UdpSocket::from_std(std_sock) else {
                return;
            };
            let mut buf = vec![0u8; 65536];
            while let Ok((_, from)) = s.recv_from(&mut buf).await {
                note(from);
            }
        }
    }
}
