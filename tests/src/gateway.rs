//! A `vpn-ctl up` under test, running in a namespace with its own paths
//! (state, run dir, pin dir), stopped on drop.
use std::{
    path::PathBuf,
    process::{Child, Output, Stdio},
    time::Duration,
};

use crate::{netns::Netns, vpn_ctl_bin, wait};

pub const START_TIMEOUT: Duration = Duration::from_secs(30);

/// Mounts bpffs on /sys/fs/bpf as systemd does on a normal host, so that
/// parallel gateways do not mount and unmount it under each other.
pub fn ensure_bpffs() {
    let _ = crate::netns::sh("mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf");
}

/// Files and paths of one gateway instance.
pub struct GatewayFiles {
    pub dir: PathBuf,
    pub config: PathBuf,
    pub pin_dir: PathBuf,
}

impl GatewayFiles {
    /// Writes a config with private paths plus `extra` TOML (which must not
    /// repeat the `[paths]` table).
    pub fn new(ns: &Netns, extra: &str) -> GatewayFiles {
        ensure_bpffs();
        let dir = std::env::temp_dir().join("vpn-ctl-tests").join(&ns.name);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let pin_dir = PathBuf::from("/sys/fs/bpf").join(&ns.name);
        let text = format!(
            "{extra}\n[paths]\nstate_dir = \"{d}/state\"\nrun_dir = \"{d}/run\"\nbpf_pin_dir = \"{p}\"\n",
            d = dir.display(),
            p = pin_dir.display()
        );
        let config = dir.join("vpn-ctl.toml");
        std::fs::write(&config, text).unwrap();
        // Root only, as a config holding RADIUS secrets must be.
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o600)).unwrap();
        GatewayFiles {
            dir,
            config,
            pin_dir,
        }
    }

    /// Runs `vpn-ctl -c CONFIG args...` in `ns` to completion.
    pub fn ctl(&self, ns: &Netns, args: &[&str]) -> Output {
        ns.cmd(vpn_ctl_bin().to_str().unwrap())
            .arg("-c")
            .arg(&self.config)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run vpn-ctl")
    }
}

pub struct Gateway<'a> {
    pub ns: &'a Netns,
    pub files: GatewayFiles,
    child: Option<Child>,
}

impl<'a> Gateway<'a> {
    /// Starts `vpn-ctl up` and waits until its control socket answers.
    pub fn start(ns: &'a Netns, extra: &str) -> Gateway<'a> {
        Self::start_with(ns, GatewayFiles::new(ns, extra))
    }

    /// `down`, then `up` again with the same files (state, users, secrets).
    pub fn restart(&mut self) {
        self.down();
        let files = GatewayFiles {
            dir: self.files.dir.clone(),
            config: self.files.config.clone(),
            pin_dir: self.files.pin_dir.clone(),
        };
        let old_log = self.log();
        std::fs::write(self.files.dir.join("daemon.log.1"), old_log).unwrap();
        *self = Self::start_with(self.ns, files);
    }

    pub fn start_with(ns: &'a Netns, files: GatewayFiles) -> Gateway<'a> {
        let log = std::fs::File::create(files.dir.join("daemon.log")).unwrap();
        let child = ns
            .cmd(vpn_ctl_bin().to_str().unwrap())
            .arg("-c")
            .arg(&files.config)
            .arg("up")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("spawn vpn-ctl up");
        let mut gw = Gateway {
            ns,
            files,
            child: Some(child),
        };
        wait::until("the gateway's control socket", START_TIMEOUT, || {
            if let Some(st) = gw.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("vpn-ctl up exited ({st}):\n{}", gw.log());
            }
            gw.ctl(&["status", "--json"]).status.success().then_some(())
        });
        gw
    }

    /// `vpn-ctl restart`: the daemon hands its sessions to a new image of
    /// itself (same process). Returns what the command printed.
    pub fn restart_in_place(&self) -> String {
        let out = self.ctl(&["restart"]);
        assert!(
            out.status.success(),
            "restart failed: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            self.log()
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The daemon's process id (`vpn-ctl up` runs in the foreground).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("the gateway is running").id()
    }

    /// `vpn-ctl sessions --json`, parsed.
    pub fn sessions(&self) -> Vec<serde_json::Value> {
        let out = self.ctl(&["sessions", "--json"]);
        assert!(
            out.status.success(),
            "sessions: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<serde_json::Value>(&out.stdout)
            .unwrap()
            .as_array()
            .unwrap()
            .clone()
    }

    /// The L2TP/IPsec pre-shared key (`vpn-ctl ipsec-psk --json`).
    pub fn ipsec_psk(&self) -> String {
        let out = self.ctl(&["ipsec-psk", "--json"]);
        assert!(
            out.status.success(),
            "ipsec-psk: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        v["psk"].as_str().unwrap().to_string()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.files.dir.join("daemon.log")).unwrap_or_default()
    }

    pub fn ctl(&self, args: &[&str]) -> Output {
        self.files.ctl(self.ns, args)
    }

    /// `status --json`'s one element.
    pub fn status(&self) -> serde_json::Value {
        let out = self.ctl(&["status", "--json"]);
        assert!(
            out.status.success(),
            "status failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("status JSON");
        let arr = v.as_array().expect("status --json prints an array");
        assert_eq!(arr.len(), 1);
        arr[0].clone()
    }

    /// A counter from `status --json` (`counters` or `drops`).
    pub fn count(&self, list: &str, name: &str) -> u64 {
        let s = self.status();
        s[list]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .unwrap_or_else(|| panic!("no {list} entry {name}"))["value"]
            .as_u64()
            .unwrap()
    }

    /// `vpn-ctl down`, then waits for the daemon to exit; returns its exit status.
    pub fn down(&mut self) -> std::process::ExitStatus {
        let out = self.ctl(&["down"]);
        assert!(
            out.status.success(),
            "down failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let child = self.child.as_mut().unwrap();
        let st = wait::until("the daemon to exit", START_TIMEOUT, || {
            child.try_wait().unwrap()
        });
        self.child = None;
        st
    }
}

impl Gateway<'_> {
    /// For a failed test's report: the non-zero counters and drops, and the
    /// sessions, while the daemon still runs.
    fn print_state(&self) {
        let out = self.ctl(&["status", "--json"]);
        let Ok(serde_json::Value::Array(v)) = serde_json::from_slice(&out.stdout) else {
            return;
        };
        for list in ["counters", "drops"] {
            let set: Vec<String> = v[0][list]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|c| c["value"].as_u64().is_some_and(|n| n > 0))
                .map(|c| format!("{}={}", c["name"].as_str().unwrap_or("?"), c["value"]))
                .collect();
            eprintln!("--- gateway {list} (non-zero) ---\n{}", set.join(" "));
        }
        let rows = self.ctl(&["sessions", "--json"]);
        eprintln!(
            "--- gateway sessions ---\n{}",
            String::from_utf8_lossy(&rows.stdout).trim()
        );
    }

    /// SIGKILL: the daemon gets no chance to restore anything.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }

    /// SIGTERM, then the daemon's exit status (None: it had to be killed).
    pub fn terminate(&mut self) -> Option<std::process::ExitStatus> {
        self.child.take().and_then(crate::netns::terminate)
    }
}

impl Drop for Gateway<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() && self.child.is_some() {
            self.print_state();
        }
        if let Some(c) = self.child.take() {
            // SIGTERM first: it restores the host.
            crate::netns::terminate(c);
        }
        if std::thread::panicking() {
            let log = self.log();
            let tail: Vec<&str> = log.lines().rev().take(60).collect();
            eprintln!("--- gateway log (last lines) ---");
            for l in tail.iter().rev() {
                eprintln!("{l}");
            }
        }
    }
}
