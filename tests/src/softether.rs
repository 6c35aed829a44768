//! SoftEther VPN Server (Debian's `softether-vpnserver` 5.01, userspace),
//! the L2TP/IPsec anchor `cargo xtask bench ipsec` drives with the same
//! client as vpn-ctl (decisions #56). Run in a network namespace with its
//! state in a directory of its own: the binary's paths (/var/lib/softether,
//! /var/log/softether, /run/softether) are compiled in, so it runs in a
//! private mount namespace where those directories are bind mounts of
//! `dir`, and the host's are never touched.
//!
//! Configured as a fair L2TP/IPsec server: L2TP over IPsec only, the
//! `DEFAULT` hub bridged (SoftEther's local bridge, a raw socket) to the
//! gateway's LAN interface, SecureNAT's DHCP server alone (its NAT off)
//! handing clients LAN addresses, so the LAN host reaches them directly.
use std::{
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::Duration,
};

use anyhow::Context as _;

use crate::{netns::Netns, wait};

const SERVER: &str = "/usr/libexec/softether/vpnserver/vpnserver";
const VPNCMD: &str = "/usr/libexec/softether/vpncmd/vpncmd";

/// The addresses SoftEther's DHCP hands out on the LAN, and its own.
pub const POOL_START: &str = "172.16.10.100";
pub const POOL_END: &str = "172.16.10.199";
const DHCP_HOST: &str = "172.16.10.250";

pub struct SoftEther {
    ns: String,
    dir: PathBuf,
    child: Option<Child>,
}

/// A shell prologue that gives the command `dir`'s directories in place of
/// SoftEther's compiled-in ones (mounts private to this process).
fn private_dirs(dir: &str) -> String {
    format!(
        "set -e; mount --make-rprivate /; \
         mount --bind {dir}/run /run; mount --bind {dir}/lib /var/lib; mount --bind {dir}/log /var/log; \
         mkdir -p /run/softether /var/lib/softether /var/log/softether; exec \"$@\""
    )
}

impl SoftEther {
    /// Whether Debian's package is installed (`scripts/setup` installs it).
    pub fn installed() -> bool {
        std::path::Path::new(SERVER).exists()
    }

    /// Starts the server in `ns` with L2TP/IPsec under `psk`, one user,
    /// and the hub bridged to `lan_if`; returns once it is configured.
    pub fn start(
        ns: &Netns,
        lan_if: &str,
        psk: &str,
        user: &str,
        password: &str,
    ) -> anyhow::Result<SoftEther> {
        let dir = std::env::temp_dir()
            .join("vpn-ctl-tests")
            .join(format!("{}-softether", ns.name));
        let _ = std::fs::remove_dir_all(&dir);
        for sub in ["lib", "log", "run"] {
            std::fs::create_dir_all(dir.join(sub))?;
        }
        let child = private(&ns.name, &dir, SERVER)
            .arg("execsvc")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("cannot start vpnserver")?;
        let s = SoftEther {
            ns: ns.name.clone(),
            dir,
            child: Some(child),
        };
        // The admin port answers once the server is up (no admin password
        // on a fresh configuration, and only reachable inside `ns`).
        wait::until("SoftEther's admin port", Duration::from_secs(30), || {
            s.cmd(&["About"]).ok()
        });
        for c in [
            vec![
                "IPsecEnable",
                "/L2TP:yes",
                "/L2TPRAW:no",
                "/ETHERIP:no",
                &format!("/PSK:{psk}"),
                "/DEFAULTHUB:DEFAULT",
            ],
            // No update checks, dynamic DNS or relay to the internet.
            vec!["KeepDisable"],
            vec!["VpnAzureSetEnable", "no"],
            vec![
                "BridgeCreate",
                "DEFAULT",
                &format!("/DEVICE:{lan_if}"),
                "/TAP:no",
            ],
        ] {
            s.cmd(&c)?;
        }
        for c in [
            vec![
                "UserCreate",
                user,
                "/GROUP:none",
                "/REALNAME:none",
                "/NOTE:none",
            ],
            vec!["UserPasswordSet", user, &format!("/PASSWORD:{password}")],
            vec!["SecureNatEnable"],
            vec!["NatDisable"],
            vec![
                "SecureNatHostSet",
                "/MAC:none",
                &format!("/IP:{DHCP_HOST}"),
                "/MASK:255.255.255.0",
            ],
            vec![
                "DhcpSet",
                &format!("/START:{POOL_START}"),
                &format!("/END:{POOL_END}"),
                "/MASK:255.255.255.0",
                "/EXPIRE:7200",
                "/GW:none",
                "/DNS:none",
                "/DNS2:none",
                "/DOMAIN:none",
                "/LOG:no",
                "/PUSHROUTE:none",
            ],
        ] {
            s.hub_cmd(&c)?;
        }
        Ok(s)
    }

    /// One vpncmd server-administration command; its output.
    pub fn cmd(&self, args: &[&str]) -> anyhow::Result<String> {
        self.vpncmd(None, args)
    }

    /// One command on the `DEFAULT` hub.
    pub fn hub_cmd(&self, args: &[&str]) -> anyhow::Result<String> {
        self.vpncmd(Some("DEFAULT"), args)
    }

    fn vpncmd(&self, hub: Option<&str>, args: &[&str]) -> anyhow::Result<String> {
        let mut c = private(&self.ns, &self.dir, VPNCMD);
        c.args(["127.0.0.1:5555", "/SERVER"]);
        if let Some(h) = hub {
            c.arg(format!("/ADMINHUB:{h}"));
        }
        c.arg("/CMD").args(args);
        let out = c.output()?;
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        anyhow::ensure!(
            out.status.success() && text.contains("The command completed successfully"),
            "vpncmd {}: {}",
            args.join(" "),
            text.lines().rev().take(6).collect::<Vec<_>>().join(" | ")
        );
        Ok(text)
    }
}

/// `program` in `ns` with SoftEther's directories replaced by `dir`'s.
fn private(ns: &str, dir: &std::path::Path, program: &str) -> Command {
    let mut c = Command::new("ip");
    c.args(["netns", "exec", ns, "unshare", "-m", "sh", "-c"])
        .arg(private_dirs(&dir.display().to_string()))
        .arg("softether")
        .arg(program);
    c
}

impl SoftEther {
    /// vpnserver processes in the namespace: the server forks workers of
    /// its own, which outlive the one we started unless killed too.
    fn processes(&self) -> Vec<i32> {
        let out = Command::new("ip")
            .args(["netns", "pids", &self.ns])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).to_string())
            .unwrap_or_default();
        out.split_whitespace()
            .filter_map(|p| p.parse().ok())
            .filter(|p| {
                std::fs::read_to_string(format!("/proc/{p}/comm"))
                    .is_ok_and(|c| c.trim() == "vpnserver")
            })
            .collect()
    }
}

impl Drop for SoftEther {
    /// Stops every vpnserver process of the namespace and waits until they
    /// are gone (vpn-ctl binds the same ports next).
    fn drop(&mut self) {
        if let Some(c) = self.child.take() {
            crate::netns::terminate(c);
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let left = self.processes();
            if left.is_empty() || std::time::Instant::now() > deadline {
                break;
            }
            for p in left {
                // SAFETY: signalling a process of the benchmark's namespace.
                unsafe { libc::kill(p, libc::SIGKILL) };
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
