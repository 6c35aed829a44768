//! `vpn-ctl import [--root DIR] [--apply] [--force]`: shows (or writes)
//! what an existing pptpd / xl2tpd / strongSwan setup becomes.
use std::path::Path;

use crate::{config::Config, import, secrets::psk_fingerprint};

/// Where the systemd unit reads the configuration from.
const DEFAULT_CONFIG: &str = "/etc/vpn-ctl/vpn-ctl.toml";

pub fn run(
    cfg: Config,
    config_path: Option<&Path>,
    root: &Path,
    apply: bool,
    force: bool,
) -> anyhow::Result<()> {
    let target = config_path.unwrap_or(Path::new(DEFAULT_CONFIG));
    let plan = import::plan(root, cfg)?;
    if plan.read.is_empty() {
        anyhow::bail!(
            "nothing to import under {}: no pptpd.conf, xl2tpd.conf, ipsec.conf, ipsec.secrets or chap-secrets",
            root.display()
        );
    }
    println!("read:");
    for p in &plan.read {
        println!("  {}", p.display());
    }
    let c = &plan.config;
    let mut protocols = Vec::new();
    if c.ipsec_enabled() {
        protocols.push("L2TP/IPsec");
    }
    if c.pptp.enabled {
        protocols.push("PPTP");
    }
    println!("protocols: {}", protocols.join(", "));
    if let Some(p) = c.gateway.pool {
        println!("pool:      {p}");
    }
    if !c.gateway.dns.is_empty() {
        let dns: Vec<String> = c.gateway.dns.iter().map(|d| d.to_string()).collect();
        println!("dns:       {}", dns.join(", "));
    }
    match &plan.psk {
        Some(k) => println!("psk:       from ipsec.secrets ({})", psk_fingerprint(k)),
        None => println!("psk:       generated on the next start"),
    }
    println!("users ({}):", plan.users.len());
    for u in &plan.users {
        match u.ip {
            Some(ip) => println!("  {}\tstatic {ip}", u.name),
            None => println!("  {}\tpool", u.name),
        }
    }
    if !plan.notes.is_empty() {
        println!("not carried over, or changed:");
        for n in &plan.notes {
            println!("  - {n}");
        }
    }
    if !apply {
        println!(
            "dry run: nothing written. `--apply` writes {} and the users and PSK under {}",
            target.display(),
            c.paths.state_dir.display()
        );
        return Ok(());
    }
    let done = import::apply(&plan, target, force)?;
    println!("wrote {}", target.display());
    println!("users added: {}", done.added.join(", "));
    if !done.skipped.is_empty() {
        println!(
            "users kept as they were (already present; --force replaces them): {}",
            done.skipped.join(", ")
        );
    }
    println!(
        "next: vpn-ctl doctor, then vpn-ctl -c {} up",
        target.display()
    );
    Ok(())
}
