//! `vpn-ctl ipsec-psk`: the pre-shared key an operator hands to L2TP/IPsec
//! users (each OS asks for it as "pre-shared key" or "shared secret"),
//! with a fingerprint to compare against `vpn-ctl status`.
use crate::{config::Config, secrets};

/// `--set FILE`: a new key for the next start (e.g. a container's VPN_PSK).
pub fn set(cfg: &Config, file: &std::path::Path) -> anyhow::Result<()> {
    let psk = super::secret_input::read_secret(Some(file), "Pre-shared key", false)?;
    secrets::check_psk(&psk)?;
    secrets::Secrets::set_psk(&cfg.paths.state_dir, &psk, true)?;
    println!(
        "pre-shared key set ({}); a running gateway uses it from its next start",
        secrets::psk_fingerprint(&psk)
    );
    Ok(())
}

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
