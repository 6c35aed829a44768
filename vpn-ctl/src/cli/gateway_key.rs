//! `vpn-ctl gateway-key`: what an operator hands to native-protocol users
//! so their clients pin this gateway (never the private half, never the PSK).
use crate::{config::Config, secrets};

pub fn run(cfg: &Config, json: bool) -> anyhow::Result<()> {
    let path = cfg.paths.state_dir.join(secrets::FILE);
    let s = secrets::Secrets::read(&cfg.paths.state_dir)?;
    if s.gateway_key.is_none() {
        anyhow::bail!(
            "{} has no gateway key yet; `vpn-ctl up` adds it",
            path.display()
        );
    }
    let public = s.gateway_public()?;
    let key = secrets::encode_key(&public);
    let fingerprint = vpn_proto::native::crypto::fingerprint(&public);
    let port = cfg.native.port;
    let server = if port == crate::config::NATIVE_DEFAULT_PORT {
        "GATEWAY".to_string()
    } else {
        format!("GATEWAY:{port}")
    };
    let line = format!("vpn-ctl connect {server} -u USER --gateway-key {key}");
    if json {
        let v = serde_json::json!({
            "gateway_key": key,
            "fingerprint": fingerprint,
            "connect": line,
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        println!("gateway key:  {key}");
        println!("fingerprint:  {fingerprint}");
        println!("client:       {line}");
        println!("(give users the pre-shared key separately; replace GATEWAY and USER)");
    }
    Ok(())
}
