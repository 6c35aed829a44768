//! TCP handshakes: at most `max_half_open` at once (more are refused with a
//! clear BUSY), each bounded by a deadline; credentials checked in constant
//! time; a session admitted into the registry and sent its WELCOME.
use std::{
    net::SocketAddr,
    sync::{atomic::Ordering, Arc},
    time::Instant,
};

use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::{TcpListener, TcpStream},
};
use vpn_proto::native::{
    consts::ERROR_BUSY,
    handshake::{ServerHandshake, ServerStep},
    messages::{self, AuthRequest, Reason, Welcome},
    session::{Role, Session, Setup},
};

use super::registry;
use crate::daemon::{
    gateway::{
        limits::{warn_unauthenticated, HalfOpen, ACCEPT_BACKOFF},
        pool::Claim,
    },
    Shared,
};

/// The client's first frame must arrive within this time (an idle
/// connection holds a half-open slot only this long).
const FIRST_FRAME: std::time::Duration = std::time::Duration::from_secs(3);

#[derive(Debug, thiserror::Error)]
#[error("nothing within {FIRST_FRAME:?} of connecting")]
struct FirstFrameTimeout;

/// `index`: this listener's slot in `status` (connections received).
pub async fn serve(listener: TcpListener, index: usize, shared: Arc<Shared>) {
    let native = &shared.native;
    let slots = HalfOpen::new(native.max_half_open);
    loop {
        let (mut conn, from) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                log::debug!("native: accept: {e}");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        if let Some(c) = shared.received.get(index) {
            c.fetch_add(1, Ordering::Relaxed);
        }
        let permit = match slots.try_enter(from.ip()) {
            Ok(p) => p,
            Err(why) => {
                native.handshakes.busy.fetch_add(1, Ordering::Relaxed);
                log::debug!("native: refusing {from}: too many handshakes in progress ({why:?})");
                let busy = messages::frame(&messages::error_body(
                    ERROR_BUSY,
                    "the gateway is busy, try again",
                ));
                let _ = conn.try_write(&busy);
                continue;
            }
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            let native = &shared.native;
            let limit = native.handshake_timeout;
            match tokio::time::timeout(limit, handshake(&mut conn, from, &shared)).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) if e.is::<FirstFrameTimeout>() => {
                    native.handshakes.timeout.fetch_add(1, Ordering::Relaxed);
                    log::debug!("native: {from}: {e}");
                }
                Ok(Err(e)) => {
                    native.handshakes.failed.fetch_add(1, Ordering::Relaxed);
                    warn_unauthenticated(|| format!("native: handshake from {from} failed: {e}"));
                }
                Err(_) => {
                    native.handshakes.timeout.fetch_add(1, Ordering::Relaxed);
                    log::info!("native: handshake from {from} did not finish within {limit:?}");
                }
            }
            drop(permit);
        });
    }
}

/// Runs one handshake to its end. Err: a protocol failure worth a log line.
async fn handshake(conn: &mut TcpStream, from: SocketAddr, shared: &Shared) -> anyhow::Result<()> {
    let native = &shared.native;
    let mut hs = ServerHandshake::new(&native.psk, &native.key, &native.ciphers);
    let mut buf = [0u8; 2048];
    let mut first = true;
    loop {
        let n = if std::mem::take(&mut first) {
            tokio::time::timeout(FIRST_FRAME, conn.read(&mut buf))
                .await
                .map_err(|_| FirstFrameTimeout)??
        } else {
            conn.read(&mut buf).await?
        };
        if n == 0 {
            anyhow::bail!("connection closed mid-handshake");
        }
        hs.handle_bytes(&buf[..n]);
        loop {
            match hs.poll() {
                Ok(None) => break,
                Ok(Some(ServerStep::Send(b))) => conn.write_all(&b).await?,
                Ok(Some(ServerStep::Authenticate(req))) => {
                    return decide(conn, from, shared, hs, req).await;
                }
                Err(e) => {
                    if let Some(r) = &e.reply {
                        let _ = conn.write_all(r).await;
                    }
                    return Err(e.into());
                }
            }
        }
    }
}

/// Whether the password matches the user's argon2id verifier (unknown
/// users cost the same), or is the one that last logged this user in (the
/// login cache). The argon2id check takes tens of milliseconds and 19 MiB,
/// so it runs on the blocking pool, at most one per core at a time: a
/// burst of logins queues instead of taking the runtime or the memory.
async fn password_ok(
    native: &super::Native,
    user: &str,
    verifier: Option<String>,
    given: zeroize::Zeroizing<String>,
) -> bool {
    let cache = &native.login_cache;
    if let Some(v) = &verifier {
        if cache.hit(user, v, &given, Instant::now()) {
            return true;
        }
    }
    let ok = argon2_ok(verifier.clone(), given.clone()).await;
    if let (true, Some(v)) = (ok, &verifier) {
        cache.remember(user, v, &given, Instant::now());
    }
    ok
}

async fn argon2_ok(verifier: Option<String>, given: zeroize::Zeroizing<String>) -> bool {
    static SLOTS: std::sync::OnceLock<tokio::sync::Semaphore> = std::sync::OnceLock::new();
    let slots = SLOTS.get_or_init(|| {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        tokio::sync::Semaphore::new(cores)
    });
    let Ok(_slot) = slots.acquire().await else {
        return false;
    };
    tokio::task::spawn_blocking(move || crate::users::verifier::verify(verifier.as_deref(), &given))
        .await
        .unwrap_or(false)
}

async fn decide(
    conn: &mut TcpStream,
    from: SocketAddr,
    shared: &Shared,
    hs: ServerHandshake,
    req: AuthRequest,
) -> anyhow::Result<()> {
    let native = &shared.native;
    // What the login needs from the database, copied out of its lock.
    let (user, reserved) = {
        let db = shared.users.lock().unwrap_or_else(|e| e.into_inner());
        let user = db
            .find(&req.user)
            .map(|u| (u.name.clone(), u.ip, u.verifier().map(str::to_owned)));
        (user, db.reserved_addresses())
    };
    if let Some(wait) = native.logins.check(&req.user, from.ip(), Instant::now()) {
        native.handshakes.throttled.fetch_add(1, Ordering::Relaxed);
        warn_unauthenticated(|| {
            format!(
                "native: login of `{}` from {from} refused unchecked: too many failed logins (wait {}s)",
                crate::users::printable(&req.user),
                wait.as_secs().max(1)
            )
        });
        let msg = format!(
            "too many failed logins; try again in {} s",
            wait.as_secs().max(1)
        );
        conn.write_all(&hs.reject(Reason::BadCredentials, &msg))
            .await?;
        return Ok(());
    }
    let verifier = user.as_ref().and_then(|u| u.2.clone());
    let AuthRequest {
        user: req_user,
        password,
        want_ip,
    } = req;
    let row_id = shared.pool.next_row_id();
    // Who logged in, and the address they must have: from the RADIUS
    // servers when configured, else from the local users.
    let login = match &shared.radius {
        Some(radius) => {
            let info = radius.session_info(&req_user, from.ip(), row_id, false);
            radius
                .password_login(password.as_bytes(), info)
                .await
                .map(|grant| (req_user.clone(), grant))
        }
        None => match password_ok(native, &req_user, verifier, password).await {
            true => user.map(|(name, ip, _)| {
                let grant = vpn_proto::radius::login::Grant {
                    framed_ip: ip,
                    ..Default::default()
                };
                (name, grant)
            }),
            false => None,
        },
    };
    let Some((name, grant)) = login else {
        native.logins.failed(&req_user, from.ip(), Instant::now());
        native.handshakes.bad_login.fetch_add(1, Ordering::Relaxed);
        warn_unauthenticated(|| {
            format!(
                "native: login failed for user `{}` from {from}: wrong user name or password",
                crate::users::printable(&req_user)
            )
        });
        conn.write_all(&hs.reject(Reason::BadCredentials, ""))
            .await?;
        return Ok(());
    };
    native.logins.succeeded(&name, from.ip());
    let claim = Claim {
        user: &name,
        protocol: "native",
        row_id,
        static_ip: grant.framed_ip,
        want_ip,
        reserved: &reserved,
    };
    // Before the session exists, so accounting finds the grant with it.
    if let Some(r) = &shared.radius {
        r.set_grant(row_id, grant);
    }
    let mut hs = Some(hs);
    let admitted = native.registry.admit(&claim, |addr, wire_id, _row| {
        let welcome = Welcome {
            session_id: wire_id,
            address: addr,
            ..native.welcome.clone()
        };
        let (frame, keys) = hs.take().expect("admit builds once").accept(&welcome);
        let engine = Session::new(
            Setup {
                role: Role::Server,
                id: wire_id,
                cipher: keys.cipher,
                data: keys.data,
                psk: native.psk.clone(),
                params: native.params,
                inner_addr: Some(addr),
                peer: None,
            },
            Instant::now(),
        );
        (engine, keys.cipher, frame)
    });
    let admitted = match admitted {
        Ok(a) => a,
        Err(refusal) => {
            if let Some(r) = &shared.radius {
                r.take_grant(row_id);
            }
            log::warn!("native: refused user `{name}` from {from}: {refusal}");
            if let Some(hs) = hs {
                let reason = registry::reason(&refusal);
                conn.write_all(&hs.reject(reason, &refusal.for_client()))
                    .await?;
            }
            return Ok(());
        }
    };
    let s = &admitted.session;
    if let Some(old) = admitted.replaced {
        log::info!(
            "native: session {old} of `{}` replaced by a new login (same address)",
            s.user
        );
    }
    if let Err(e) = conn.write_all(&admitted.extra).await {
        native.registry.remove(s.row_id);
        anyhow::bail!("client went away before WELCOME: {e}");
    }
    native.handshakes.ok.fetch_add(1, Ordering::Relaxed);
    log::info!(
        "native: session {} for `{}` from {from}: address {}, {}",
        s.row_id,
        s.user,
        s.addr,
        s.cipher.name()
    );
    let _ = conn.shutdown().await;
    Ok(())
}
