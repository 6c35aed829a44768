//! `vpn-ctl connect`: reads the secrets, then hands over to the client.
use vpn_proto::native::crypto::Cipher;

use super::{args::ConnectArgs, secret_input::read_secret};
use crate::{
    client::{self, ConnectOptions, HostOptions},
    config::Config,
};

pub fn run(cfg: &Config, a: ConnectArgs) -> anyhow::Result<()> {
    // Its warnings (a journal undone, a roam, a lost gateway) reach the user.
    super::init_logging(cfg);
    let ciphers = match &a.cipher {
        None => Cipher::ALL.to_vec(),
        Some(name) => vec![Cipher::from_name(name).ok_or_else(|| {
            anyhow::anyhow!("unknown cipher `{name}` (aes-256-gcm or chacha20-poly1305)")
        })?],
    };
    let psk = read_secret(a.psk_file.as_deref(), "Pre-shared key", false)?;
    let password = read_secret(a.password_file.as_deref(), "Password", false)?;
    if psk.is_empty() {
        anyhow::bail!("the pre-shared key is empty");
    }
    let gateway_key = crate::secrets::decode_key(&a.gateway_key)
        .map_err(|e| anyhow::anyhow!("--gateway-key: {e}"))?;
    client::run(ConnectOptions {
        server: a.server,
        user: a.user,
        password,
        psk,
        gateway_key,
        ciphers,
        host: HostOptions {
            interface: a.interface.clone(),
            full_tunnel: a.full_tunnel,
            extra_routes: a.route,
            resolv_conf: (!a.no_dns).then_some(a.resolv_conf),
        },
        reconnect: !a.no_reconnect,
        run_dir: cfg.paths.run_dir.join(format!("connect-{}", a.interface)),
    })
}
