//! Dynamic authorization (RFC 5176): Disconnect-Requests from the RADIUS
//! servers end the sessions they name. Requests are accepted only from a
//! configured server's address and must be signed with its secret.
use std::{
    net::SocketAddr,
    sync::{atomic::Ordering, Arc},
};

use vpn_proto::radius::{
    consts::{cause, error_cause, MAX_PACKET},
    dae::{self, Action},
};

use super::Radius;
use crate::daemon::Shared;

pub async fn serve(sock: tokio::net::UdpSocket, shared: Arc<Shared>, radius: Arc<Radius>) {
    let mut buf = vec![0u8; MAX_PACKET];
    loop {
        let Ok((n, from)) = sock.recv_from(&mut buf).await else {
            continue;
        };
        if let Some(reply) = answer(&buf[..n], from, &shared, &radius) {
            let _ = sock.send_to(&reply, from).await;
        }
    }
}

fn answer(bytes: &[u8], from: SocketAddr, shared: &Shared, radius: &Radius) -> Option<Vec<u8>> {
    let refused = || radius.counters.dae_refused.fetch_add(1, Ordering::Relaxed);
    let Some(secret) = radius.dae_secret(from.ip()) else {
        refused();
        log::warn!("radius: dynamic-authorization request from {from}, which is not a configured server; dropped");
        return None;
    };
    let (req, action) = match dae::handle_request(bytes, secret) {
        Ok(r) => r,
        Err(e) => {
            refused();
            log::warn!("radius: dynamic-authorization request from {from} dropped: {e}");
            return None;
        }
    };
    let error = match action {
        Action::Refuse(code) => Some(code),
        Action::Disconnect(target) => {
            let mut ended = 0;
            for row in shared.sessions() {
                let ip = row.assigned_ip.parse().ok();
                if !target.matches(&row.user, &radius.acct_session_id(row.id), ip) {
                    continue;
                }
                radius.sessions.ended_by(row.id, cause::ADMIN_RESET);
                let why = "disconnected by the RADIUS server";
                if shared.services().iter().any(|s| s.end(row.id, why)) {
                    ended += 1;
                    log::info!(
                        "radius: session {} ({}) ended by a Disconnect-Request from {from}",
                        row.id,
                        row.user
                    );
                }
            }
            radius
                .counters
                .disconnects
                .fetch_add(ended, Ordering::Relaxed);
            (ended == 0).then_some(error_cause::SESSION_NOT_FOUND)
        }
    };
    if error.is_some() {
        refused();
    }
    Some(dae::reply(&req, error, secret))
}
