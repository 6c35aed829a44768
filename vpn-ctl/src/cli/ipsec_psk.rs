//! `vpn-ctl ipsec-psk`: the pre-shared key an operator hands to L2TP/IPsec
//! users (each OS asks for it as "pre-shared key" or "shared secret"),
//! with a fingerprint to compare against `vpn-ctl status`.
use crate::{config::Config, secrets};

pub fn run(cfg: &Config, json: bool) -> anyhow::Result<()> {
    let s = secrets::Secrets::read(&cfg.paths.state_dir)?;
    let fingerprint = secrets::psk_fingerprint(&s.psk);
    if json {
        let v = serde_json::json!({ "psk": s.psk, "fingerprint": fingerprint });
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        println!("pre-shared key: {}", s.psk);
        println!("fingerprint:    {fingerprint}");
        println!("(users also need their own user name and password; docs/operator-guide.md has each OS's steps)");
    }
    Ok(())
}
