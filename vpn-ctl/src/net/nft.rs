//! NAT in the gateway's own nftables table (never touches other tables).
use std::{io::Write as _, process::Command};

use anyhow::{bail, Context as _};

use super::prefix::Ipv4Prefix;

pub const FAMILY: &str = "ip";
pub const TABLE: &str = "vpn_ctl";

fn nft(args: &[&str], stdin: Option<&str>) -> anyhow::Result<std::process::Output> {
    let mut cmd = Command::new("nft");
    cmd.args(args)
        .stdin(if stdin.is_some() {
            std::process::Stdio::piped()
        } else {
            std::process::Stdio::null()
        })
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd
        .spawn()
        .context("cannot run nft (install the nftables package)")?;
    if let (Some(text), Some(mut si)) = (stdin, child.stdin.take()) {
        si.write_all(text.as_bytes()).context("write to nft")?;
    }
    child.wait_with_output().context("wait for nft")
}

pub fn table_exists() -> anyhow::Result<bool> {
    Ok(nft(&["list", "table", FAMILY, TABLE], None)?
        .status
        .success())
}

/// What the gateway's own table holds.
pub struct Policy<'a> {
    pub pool: Ipv4Prefix,
    pub wan: &'a str,
    /// Masquerade the pool out of the WAN.
    pub masquerade: bool,
    /// Drop client-to-client traffic (vpn0 in, vpn0 out), counted.
    pub isolate_on: Option<&'a str>,
}

/// Creates the table: NAT and the client-isolation filter as asked.
pub fn install(p: &Policy<'_>) -> anyhow::Result<()> {
    if table_exists()? {
        bail!("nftables table {FAMILY} {TABLE} already exists (is another vpn-ctl running in this network namespace?)");
    }
    let (pool, wan) = (p.pool, p.wan);
    let mut ruleset = format!("table {FAMILY} {TABLE} {{\n");
    if p.masquerade {
        ruleset.push_str(&format!(
            "\tchain postrouting {{\n\
             \t\ttype nat hook postrouting priority srcnat; policy accept;\n\
             \t\toifname \"{wan}\" ip saddr {pool} ip daddr != {pool} masquerade\n\
             \t}}\n"
        ));
    }
    if let Some(vpn) = p.isolate_on {
        ruleset.push_str(&format!(
            "\tchain forward {{\n\
             \t\ttype filter hook forward priority filter; policy accept;\n\
             \t\tiifname \"{vpn}\" oifname \"{vpn}\" counter drop comment \"client isolation\"\n\
             \t}}\n"
        ));
    }
    ruleset.push_str("}\n");
    let out = nft(&["-f", "-"], Some(&ruleset))?;
    if !out.status.success() {
        bail!(
            "nft could not create table {FAMILY} {TABLE}: {}",
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .next()
                .unwrap_or("")
                .trim()
        );
    }
    Ok(())
}

pub fn delete_table() -> anyhow::Result<()> {
    if !table_exists()? {
        return Ok(());
    }
    let out = nft(&["delete", "table", FAMILY, TABLE], None)?;
    if !out.status.success() {
        bail!(
            "nft delete table {FAMILY} {TABLE}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}
