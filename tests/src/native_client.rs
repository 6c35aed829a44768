//! A `vpn-ctl connect` under test in a client namespace, with its own
//! paths and secret files; stopped with SIGTERM on drop.
use std::{
    io::{BufRead as _, BufReader},
    path::PathBuf,
    process::{Child, ExitStatus, Stdio},
    sync::{Arc, Mutex},
    time::Duration,
};

use crate::{gateway::Gateway, netns::Netns, topology::GW_WAN, vpn_ctl_bin, wait};

pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

pub struct Client {
    pub dir: PathBuf,
    /// How it was started (for `restart`).
    cmd: (String, String, Vec<String>),
    child: Option<Child>,
    out: Arc<Mutex<Vec<String>>>,
    err: Arc<Mutex<Vec<String>>>,
    /// The stdout and stderr readers: they end at EOF, after the last line.
    pumps: Vec<std::thread::JoinHandle<()>>,
}

/// What a native client needs from the gateway's operator.
#[derive(Clone, Debug)]
pub struct Creds {
    pub psk: String,
    /// The gateway key's public half, base64 (`vpn-ctl gateway-key`).
    pub key: String,
}

/// The gateway's PSK and public key, as `vpn-ctl up` generated them (the
/// key read through `vpn-ctl gateway-key --json`, as an operator would).
pub fn gateway_creds(gw: &Gateway) -> Creds {
    let text = std::fs::read_to_string(gw.files.dir.join("state/secrets.toml")).unwrap();
    let v: toml_lite::Value = toml_lite::parse(&text);
    let out = gw.ctl(&["gateway-key", "--json"]);
    assert!(
        out.status.success(),
        "gateway-key: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    Creds {
        psk: v.get("psk").unwrap().to_string(),
        key: j["gateway_key"].as_str().unwrap().to_string(),
    }
}

mod toml_lite {
    //! Just enough to read `psk = "..."` without another dependency.
    pub struct Value(Vec<(String, String)>);
    impl Value {
        pub fn get(&self, k: &str) -> Option<&str> {
            self.0.iter().find(|(a, _)| a == k).map(|(_, b)| b.as_str())
        }
    }
    pub fn parse(t: &str) -> Value {
        Value(
            t.lines()
                .filter_map(|l| l.split_once(" = "))
                .map(|(k, v)| (k.trim().to_string(), v.trim().trim_matches('"').to_string()))
                .collect(),
        )
    }
}

/// Adds a user to the gateway (and makes it reload its database).
pub fn add_user(gw: &Gateway, name: &str, password: &str, ip: Option<&str>) {
    let pw = gw.files.dir.join(format!("{name}.pw"));
    std::fs::write(&pw, format!("{password}\n")).unwrap();
    let mut args = vec![
        "users",
        "add",
        name,
        "--password-file",
        pw.to_str().unwrap(),
    ];
    if let Some(ip) = ip {
        args.extend(["--ip", ip]);
    }
    let out = gw.ctl(&args);
    assert!(
        out.status.success(),
        "users add: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn pump(
    r: impl std::io::Read + Send + 'static,
    into: Arc<Mutex<Vec<String>>>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        for line in BufReader::new(r).lines().map_while(Result::ok) {
            into.lock().unwrap().push(line);
        }
    })
}

impl Client {
    /// Starts `vpn-ctl connect GW_WAN` in `ns` as `user` with `creds`.
    pub fn start(ns: &Netns, user: &str, password: &str, creds: &Creds, extra: &[&str]) -> Client {
        let dir = std::env::temp_dir()
            .join("vpn-ctl-tests")
            .join(format!("{}-client-{user}", ns.name));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let config = dir.join("client.toml");
        std::fs::write(
            &config,
            format!("[paths]\nrun_dir = \"{}/run\"\n", dir.display()),
        )
        .unwrap();
        std::fs::write(dir.join("psk"), format!("{}\n", creds.psk)).unwrap();
        std::fs::write(dir.join("password"), format!("{password}\n")).unwrap();
        std::fs::write(dir.join("resolv.conf"), "nameserver 192.0.2.53\n").unwrap();
        let cmd = (
            ns.name.clone(),
            user.to_string(),
            extra.iter().map(|s| s.to_string()).collect(),
        );
        let mut c = Client {
            dir,
            cmd,
            child: None,
            out: Arc::default(),
            err: Arc::default(),
            pumps: Vec::new(),
        };
        c.spawn(&creds.key);
        c
    }

    /// Runs `vpn-ctl connect` again with the same files (its journal, its
    /// resolv.conf): what a user does after a crash.
    pub fn restart(&mut self, creds: &Creds) {
        assert!(self.child.is_none(), "restart: the client still runs");
        self.out.lock().unwrap().clear();
        self.err.lock().unwrap().clear();
        self.spawn(&creds.key);
    }

    fn spawn(&mut self, key: &str) {
        let (ns_name, user, extra) = self.cmd.clone();
        let dir = self.dir.clone();
        let config = dir.join("client.toml");
        let mut child = crate::netns::cmd_in(&ns_name, vpn_ctl_bin().to_str().unwrap())
            .arg("-c")
            .arg(&config)
            .args(["connect", GW_WAN, "-u", &user, "--gateway-key", key])
            .arg("--psk-file")
            .arg(dir.join("psk"))
            .arg("--password-file")
            .arg(dir.join("password"))
            .arg("--resolv-conf")
            .arg(dir.join("resolv.conf"))
            .args(&extra)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn vpn-ctl connect");
        self.pumps = vec![
            pump(child.stdout.take().unwrap(), self.out.clone()),
            pump(child.stderr.take().unwrap(), self.err.clone()),
        ];
        self.child = Some(child);
    }

    pub fn stdout(&self) -> String {
        self.out.lock().unwrap().join("\n")
    }

    pub fn stderr(&self) -> String {
        self.err.lock().unwrap().join("\n")
    }

    /// Waits for the `n`th line of stdout containing `pat`; returns it.
    pub fn wait_line(&mut self, pat: &str, n: usize, timeout: Duration) -> String {
        wait::until(&format!("client line #{n} with `{pat}`"), timeout, || {
            let found = self
                .out
                .lock()
                .unwrap()
                .iter()
                .filter(|l| l.contains(pat))
                .nth(n - 1)
                .cloned();
            if found.is_none() {
                if let Some(st) = self.child.as_mut().unwrap().try_wait().unwrap() {
                    panic!(
                        "vpn-ctl connect exited ({st}) before `{pat}`:\n{}\n{}",
                        self.stdout(),
                        self.stderr()
                    );
                }
            }
            found
        })
    }

    /// Waits for the first connection; returns the granted address.
    pub fn wait_connected(&mut self) -> String {
        let line = self.wait_line("connected to", 1, CONNECT_TIMEOUT);
        address_of(&line)
    }

    /// Waits for the client to exit; returns its status.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let child = self.child.as_mut().unwrap();
        let st = wait::until("vpn-ctl connect to exit", timeout, || {
            child.try_wait().unwrap()
        });
        self.child = None;
        // Every line is in once the readers saw EOF (the pipes close with
        // the process; nothing else holds them).
        let pumps = std::mem::take(&mut self.pumps);
        wait::until("the client's output to end", Duration::from_secs(5), || {
            pumps.iter().all(|p| p.is_finished()).then_some(())
        });
        st
    }

    /// SIGKILL: the client says nothing to the gateway (no BYE).
    pub fn kill(&mut self) {
        if let Some(c) = &self.child {
            unsafe { libc::kill(c.id() as i32, libc::SIGKILL) };
        }
        self.wait_exit(Duration::from_secs(10));
    }

    /// SIGTERM, then the exit status.
    pub fn stop(&mut self) -> ExitStatus {
        if let Some(c) = &self.child {
            unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
        }
        self.wait_exit(Duration::from_secs(10))
    }

    pub fn resolv_conf(&self) -> String {
        std::fs::read_to_string(self.dir.join("resolv.conf")).unwrap_or_default()
    }
}

/// The address in a "connected to ... address A/L on ..." line.
pub fn address_of(line: &str) -> String {
    line.split("address ")
        .nth(1)
        .and_then(|r| r.split('/').next())
        .unwrap_or_else(|| panic!("no address in `{line}`"))
        .to_string()
}

impl Drop for Client {
    fn drop(&mut self) {
        if let Some(c) = self.child.take() {
            // SIGTERM first: it restores the host.
            crate::netns::terminate(c);
        }
    }
}
