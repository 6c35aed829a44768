//! A real FreeRADIUS (Debian's `freeradius`) in a network namespace, with a
//! configuration of its own: PAP, CHAP and MS-CHAPv2 (with MPPE keys) from a
//! users file, accounting written to a detail file the tests read, one
//! client (the gateway). Used by tests/tests/radius.rs.
use std::{
    path::PathBuf,
    process::{Child, Stdio},
    time::Duration,
};

use crate::{netns::Netns, wait};

pub struct FreeRadius {
    pub dir: PathBuf,
    child: Option<Child>,
}

/// One user of the server's users file: name, password and reply attributes
/// (FreeRADIUS syntax, e.g. `Framed-IP-Address = 10.0.0.5`).
pub struct RadiusUser<'a> {
    pub name: &'a str,
    pub password: &'a str,
    pub reply: &'a [&'a str],
}

impl FreeRadius {
    /// Starts the server in `ns` for the client at `client_ip` with
    /// `secret`; returns once it answers.
    pub fn start(ns: &Netns, client_ip: &str, secret: &str, users: &[RadiusUser]) -> FreeRadius {
        let dir = std::env::temp_dir()
            .join("vpn-ctl-tests")
            .join(format!("{}-freeradius", ns.name));
        let _ = std::fs::remove_dir_all(&dir);
        for sub in ["log", "radacct", "run"] {
            std::fs::create_dir_all(dir.join(sub)).unwrap();
        }
        let d = dir.display();
        std::fs::write(
            dir.join("radiusd.conf"),
            config(&d.to_string(), client_ip, secret),
        )
        .unwrap();
        let mut text = String::new();
        for u in users {
            text.push_str(&format!(
                "{} Cleartext-Password := \"{}\"\n",
                u.name, u.password
            ));
            let reply: Vec<String> = u.reply.iter().map(|r| format!("\t{r}")).collect();
            if !reply.is_empty() {
                text.push_str(&reply.join(",\n"));
                text.push('\n');
            }
            text.push('\n');
        }
        std::fs::write(dir.join("users"), text).unwrap();
        let child = ns
            .cmd("freeradius")
            .args(["-f", "-d"])
            .arg(&dir)
            .args(["-n", "radiusd", "-l"])
            .arg(dir.join("log/radius.log"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("freeradius (Debian package freeradius)");
        let server = FreeRadius {
            dir,
            child: Some(child),
        };
        wait::until("FreeRADIUS ready", Duration::from_secs(20), || {
            server
                .log()
                .contains("Ready to process requests")
                .then_some(())
        });
        server
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("log/radius.log")).unwrap_or_default()
    }

    /// The accounting records received so far, each as its attribute lines.
    pub fn accounting(&self) -> Vec<Record> {
        let text = std::fs::read_to_string(self.dir.join("radacct/detail")).unwrap_or_default();
        text.split("\n\n")
            .filter(|r| r.contains("Acct-Status-Type"))
            .map(|r| Record(r.to_string()))
            .collect()
    }
}

/// One accounting record of the detail file.
#[derive(Clone, Debug)]
pub struct Record(pub String);

impl Record {
    /// The value of `attr` (quotes removed), if present.
    pub fn get(&self, attr: &str) -> Option<String> {
        self.0.lines().find_map(|l| {
            let (k, v) = l.trim().split_once(" = ")?;
            (k == attr).then(|| v.trim_matches('"').to_string())
        })
    }

    pub fn number(&self, attr: &str) -> u64 {
        self.get(attr).and_then(|v| v.parse().ok()).unwrap_or(0)
    }
}

impl Drop for FreeRadius {
    fn drop(&mut self) {
        if let Some(c) = self.child.take() {
            crate::netns::terminate(c);
        }
    }
}

fn config(d: &str, client_ip: &str, secret: &str) -> String {
    format!(
        r#"prefix = /usr
exec_prefix = /usr
sysconfdir = /etc
localstatedir = /var
sbindir = /usr/sbin
datarootdir = /usr/share
dictdir = /usr/share/freeradius
logdir = {d}/log
raddbdir = {d}
radacctdir = {d}/radacct
name = freeradius
confdir = {d}
modconfdir = {d}
run_dir = {d}/run
db_dir = {d}
libdir = /usr/lib/freeradius
pidfile = {d}/run/radiusd.pid
max_request_time = 30
cleanup_delay = 5
max_requests = 16384
hostname_lookups = no
log {{
  destination = files
  file = {d}/log/radius.log
  auth = yes
}}
security {{
  allow_core_dumps = no
  max_attributes = 200
  reject_delay = 0
  status_server = yes
}}
thread pool {{
  start_servers = 2
  max_servers = 4
  min_spare_servers = 1
  max_spare_servers = 3
  max_requests_per_server = 0
}}
client gateway {{
  ipaddr = {client_ip}
  secret = {secret}
}}
modules {{
  pap {{
    normalise = yes
  }}
  chap {{
  }}
  mschap {{
    use_mppe = yes
    require_encryption = no
    require_strong = no
    with_ntdomain_hack = yes
  }}
  files {{
    filename = {d}/users
  }}
  detail {{
    filename = {d}/radacct/detail
    permissions = 0600
    header = "%t"
    locking = no
  }}
}}
server default {{
  listen {{
    type = auth
    ipaddr = *
    port = 1812
  }}
  listen {{
    type = acct
    ipaddr = *
    port = 1813
  }}
  authorize {{
    chap
    mschap
    files
    pap
  }}
  authenticate {{
    Auth-Type PAP {{
      pap
    }}
    Auth-Type CHAP {{
      chap
    }}
    Auth-Type MS-CHAP {{
      mschap
    }}
  }}
  accounting {{
    detail
  }}
}}
"#
    )
}
