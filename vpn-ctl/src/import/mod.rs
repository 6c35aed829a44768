//! `vpn-ctl import`: reads an existing pptpd / xl2tpd / strongSwan (or
//! libreswan) setup and turns it into vpn-ctl's configuration, users and
//! pre-shared key, saying what it could not carry over. `plan` only reads;
//! `apply` writes.
use std::{
    net::Ipv4Addr,
    path::{Path, PathBuf},
};

use anyhow::Context as _;
use zeroize::Zeroizing;

use crate::{
    config::Config,
    net::prefix::Ipv4Prefix,
    users::{User, UserDb, MIN_PASSWORD_LEN},
};

mod chap_secrets;
mod ppp;
mod strongswan;

/// A user to create: the old password becomes verifiers on `apply`.
pub struct ImportedUser {
    pub name: String,
    pub password: Zeroizing<String>,
    pub ip: Option<Ipv4Addr>,
}

pub struct Plan {
    /// The configuration in effect with what was imported on top.
    pub config: Config,
    pub users: Vec<ImportedUser>,
    pub psk: Option<Zeroizing<String>>,
    /// The files read.
    pub read: Vec<PathBuf>,
    /// What could not be carried over, or changed meaning.
    pub notes: Vec<String>,
}

/// The vpn-ctl PSK minimum (secrets.rs refuses shorter).
const MIN_PSK_LEN: usize = 16;

struct Reader<'a> {
    root: &'a Path,
    read: Vec<PathBuf>,
}

impl Reader<'_> {
    /// The file at `path` under the root, if it exists.
    fn read(&mut self, path: &str) -> anyhow::Result<Option<String>> {
        let p = self.root.join(path.trim_start_matches('/'));
        match std::fs::read_to_string(&p) {
            Ok(t) => {
                self.read.push(p);
                Ok(Some(t))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("cannot read {}", p.display())),
        }
    }

    /// The first of several candidate files that exists.
    fn read_first(&mut self, paths: &[&str]) -> anyhow::Result<Option<String>> {
        for p in paths {
            if let Some(t) = self.read(p)? {
                return Ok(Some(t));
            }
        }
        Ok(None)
    }
}

/// The smallest prefix holding every address (None if they span more
/// than a /16: two unrelated plans).
fn covering(addrs: &[Ipv4Addr]) -> Option<Ipv4Prefix> {
    let lo = addrs.iter().map(|a| u32::from(*a)).min()?;
    let hi = addrs.iter().map(|a| u32::from(*a)).max()?;
    // Room for the network, the gateway and the broadcast address too.
    let len = ((lo ^ hi).leading_zeros() as u8).min(30);
    (len >= 16).then(|| Ipv4Prefix::new(Ipv4Addr::from(lo), len).expect("len <= 32"))
}

/// Reads what exists under `root` and plans the import onto `base`.
pub fn plan(root: &Path, base: Config) -> anyhow::Result<Plan> {
    let mut r = Reader {
        root,
        read: Vec::new(),
    };
    let mut cfg = base;
    let mut notes = Vec::new();
    let mut addrs: Vec<Ipv4Addr> = Vec::new();
    let mut local_ips: Vec<Ipv4Addr> = Vec::new();
    let mut dns: Vec<Ipv4Addr> = Vec::new();
    let mut server_names = vec!["*".to_string()];
    let range_addrs = |ranges: &[(Ipv4Addr, Ipv4Addr)]| {
        ranges
            .iter()
            .flat_map(|(a, b)| [*a, *b])
            .collect::<Vec<_>>()
    };

    // --- PPTP ---
    if let Some(text) = r.read("/etc/pptpd.conf")? {
        let p = ppp::parse_pptpd(&text).map_err(|e| anyhow::anyhow!("pptpd.conf: {e}"))?;
        cfg.pptp.enabled = true;
        addrs.extend(range_addrs(&p.remote));
        local_ips.extend(p.local.iter().map(|(a, _)| *a));
        let opt_file = p.option_file.clone();
        let options = match &opt_file {
            Some(f) => r.read(f)?,
            None => r.read_first(&["/etc/ppp/pptpd-options", "/etc/ppp/options.pptpd"])?,
        };
        if let Some(text) = options {
            let o = ppp::parse_options(&text);
            cfg.pptp.require_mppe = o.require_mppe;
            if !o.require_mppe {
                notes.push("pptpd did not require MPPE: vpn-ctl carries that over (pptp.require_mppe = false); unencrypted PPTP calls are allowed".into());
            }
            if !o.refuse_pap || o.require_pap {
                notes.push("pptpd accepted PAP (the password in clear): vpn-ctl keeps PAP off; set pptp.allow_pap = true if a client needs it".into());
            }
            pppd_notes("PPTP", &o, &mut notes);
            dns.extend(o.dns);
            server_names.extend(name_option(&text));
        }
        server_names.push("pptpd".into());
    }

    // --- L2TP ---
    if let Some(text) = r.read("/etc/xl2tpd/xl2tpd.conf")? {
        let x = ppp::parse_xl2tpd(&text).map_err(|e| anyhow::anyhow!("xl2tpd.conf: {e}"))?;
        cfg.l2tp.enabled = true;
        addrs.extend(range_addrs(&x.ranges));
        local_ips.extend(x.local);
        if !x.require_authentication {
            notes.push("xl2tpd did not require PPP authentication: vpn-ctl always does (every user needs a password)".into());
        }
        let options = match &x.pppoptfile {
            Some(f) => r.read(f)?,
            None => r.read("/etc/ppp/options.xl2tpd")?,
        };
        if let Some(text) = options {
            let mut o = ppp::parse_options(&text);
            // xl2tpd's `require chap` hands pppd `require-chap` (CHAP-MD5).
            o.wants_chap_md5 |= x.require_chap && !text.contains("refuse-chap");
            if o.require_pap {
                notes.push("xl2tpd required PAP: vpn-ctl keeps PAP off; set l2tp.allow_pap = true if a client needs it".into());
            }
            pppd_notes("L2TP", &o, &mut notes);
            dns.extend(o.dns);
            server_names.extend(name_option(&text));
        }
        server_names.extend(["l2tpd".into(), "xl2tpd".into()]);
    }

    // --- IPsec ---
    let psks = match r.read("/etc/ipsec.secrets")? {
        Some(t) => strongswan::parse_secrets(&t),
        None => Vec::new(),
    };
    let conns = match r.read("/etc/ipsec.conf")? {
        Some(t) => strongswan::parse_conf(&t),
        None => Vec::new(),
    };
    let mut psk = None;
    if let Some(conn) = conns.first() {
        cfg.ipsec.enabled = true;
        cfg.l2tp.enabled = true;
        let mut legacy = false;
        for (what, list) in [("ike", &conn.ike), ("esp", &conn.esp)] {
            let Some(list) = list else { continue };
            let (unknown, l) = strongswan::check_proposals(list);
            legacy |= l;
            if !unknown.is_empty() {
                notes.push(format!(
                    "ipsec.conf `{}`: {what}= names {} which vpn-ctl does not offer; clients proposing only those will not connect",
                    conn.name,
                    unknown.join(", ")
                ));
            }
        }
        // Only what the old server offered: legacy groups and 3DES if it did.
        if conn.ike.is_some() || conn.esp.is_some() {
            cfg.ipsec.legacy = legacy;
        }
        if conns.len() > 1 {
            notes.push(format!(
                "ipsec.conf has {} L2TP connections; vpn-ctl has one policy (taken from `{}`)",
                conns.len(),
                conn.name
            ));
        }
        match psks.first() {
            Some(k) if k.chars().count() < MIN_PSK_LEN => notes.push(format!(
                "the pre-shared key in ipsec.secrets is shorter than {MIN_PSK_LEN} characters: not imported; vpn-ctl generates a strong one (hand it out with `vpn-ctl client-config`)"
            )),
            Some(k) => psk = Some(Zeroizing::new(k.clone())),
            None => notes.push("no PSK line in ipsec.secrets: vpn-ctl generates one".into()),
        }
        if psks.iter().skip(1).any(|k| Some(k) != psks.first()) {
            notes.push(
                "ipsec.secrets holds several PSKs: vpn-ctl has one (the first was taken)".into(),
            );
        }
    } else if cfg.l2tp.enabled {
        notes.push("xl2tpd ran without an IPsec L2TP connection in ipsec.conf: vpn-ctl refuses plain L2TP unless l2tp.allow_plain = true (its traffic is unencrypted)".into());
    }

    // --- Addresses ---
    let users_text = r.read("/etc/ppp/chap-secrets")?;
    let (secrets, bad_lines) = users_text
        .as_deref()
        .map(chap_secrets::parse)
        .unwrap_or_default();
    for n in bad_lines {
        notes.push(format!(
            "chap-secrets line {n}: not `client server secret [address]`; skipped"
        ));
    }
    let statics: Vec<Ipv4Addr> = secrets.iter().filter_map(|s| s.ip).collect();
    let mut all = addrs.clone();
    all.extend(&local_ips);
    all.extend(&statics);
    if !all.is_empty() {
        match covering(&all) {
            Some(pool) => {
                cfg.gateway.pool = Some(pool);
                let gw = pool.nth(1).expect("pool has room");
                if let Some(old) = local_ips.iter().find(|a| **a != gw) {
                    notes.push(format!("the gateway's VPN address becomes {gw} (the first of the pool {pool}); it was {old}"));
                }
            }
            None => notes.push("the PPTP and L2TP address ranges are unrelated (more than a /16 apart): not imported; set gateway.pool by hand".into()),
        }
    }
    dns.dedup();
    if !dns.is_empty() {
        cfg.gateway.dns = dns;
    }

    // --- Users ---
    let mut users: Vec<ImportedUser> = Vec::new();
    for s in secrets {
        let line = |why: &str| format!("chap-secrets user `{}`: {why}", s.client);
        if !server_names.contains(&s.server) {
            notes.push(line(&format!(
                "for server `{}`, not this one: skipped",
                s.server
            )));
        } else if s.client == "*" || s.password == "*" || s.password.is_empty() {
            notes.push(line("wildcard name or password: skipped"));
        } else if s.password.chars().count() < MIN_PASSWORD_LEN {
            notes.push(line(&format!("password shorter than {MIN_PASSWORD_LEN} characters: not imported; set a new one with `vpn-ctl users add`")));
        } else if let Some(u) = users.iter().find(|u| u.name == s.client) {
            // The same user for PPTP and L2TP is usual; only a conflict is news.
            if *u.password != s.password || u.ip != s.ip {
                notes.push(line(
                    "listed twice with different passwords or addresses: the first entry was taken",
                ));
            }
        } else if crate::users::check_name(&s.client).is_err() {
            notes.push(line(
                "a name vpn-ctl cannot take (use a-z A-Z 0-9 . _ @ -): skipped",
            ));
        } else {
            if let (Some(ip), Some(pool)) = (s.ip, cfg.gateway.pool) {
                if !pool.contains(ip) {
                    notes.push(line(&format!(
                        "static address {ip} is outside the pool {pool}"
                    )));
                }
            }
            users.push(ImportedUser {
                name: s.client,
                password: Zeroizing::new(s.password),
                ip: s.ip,
            });
        }
    }
    Ok(Plan {
        config: cfg,
        users,
        psk,
        read: r.read,
        notes,
    })
}

/// `name X` in a pppd options file: the server name chap-secrets uses.
fn name_option(text: &str) -> Option<String> {
    text.lines().find_map(|l| {
        let mut w = l.split_whitespace();
        (w.next() == Some("name")).then(|| w.next().map(str::to_string))?
    })
}

fn pppd_notes(proto: &str, o: &ppp::PppOptions, notes: &mut Vec<String>) {
    if o.wants_chap_md5 {
        notes.push(format!("{proto}: pppd accepted CHAP-MD5: vpn-ctl does not (it stores no clear passwords); clients must use MS-CHAPv2, as Windows, macOS, iOS and Android do"));
    }
    for l in &o.unknown {
        notes.push(format!("{proto}: pppd option `{l}` not carried over"));
    }
}

/// What `apply` did (for the report).
pub struct Applied {
    pub added: Vec<String>,
    pub skipped: Vec<String>,
}

/// Writes the plan: the configuration to `config_path`, the users and the
/// PSK into the configuration's state directory. Existing files and users
/// are kept unless `force`.
pub fn apply(plan: &Plan, config_path: &Path, force: bool) -> anyhow::Result<Applied> {
    if config_path.exists() && !force {
        anyhow::bail!(
            "{} exists; --force replaces it (a copy goes to {}.before-import)",
            config_path.display(),
            config_path.display()
        );
    }
    let text = format!(
        "# Written by `vpn-ctl import`. docs/vpn-ctl.example.toml explains every key.\n{}",
        toml::to_string(&plan.config).context("encode the configuration")?
    );
    // The result must load as it will at `up`.
    Config::parse(&text).context("the imported configuration does not validate")?;
    if config_path.exists() {
        let backup = PathBuf::from(format!("{}.before-import", config_path.display()));
        std::fs::copy(config_path, &backup)
            .with_context(|| format!("cannot keep a copy as {}", backup.display()))?;
    }
    if let Some(dir) = config_path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    crate::fsutil::write_private(config_path, text.as_bytes())?;
    let state_dir = &plan.config.paths.state_dir;
    if let Some(psk) = &plan.psk {
        crate::secrets::Secrets::set_psk(state_dir, psk, force)?;
    }
    let mut out = Applied {
        added: Vec::new(),
        skipped: Vec::new(),
    };
    let mut new_users = Vec::new();
    for u in &plan.users {
        new_users.push(User::new(&u.name, &u.password, u.ip, true)?);
    }
    UserDb::modify(state_dir, |db| {
        for u in new_users {
            let exists = db.find(&u.name).is_some();
            if exists && !force {
                out.skipped.push(u.name.clone());
                continue;
            }
            if exists {
                db.remove(&u.name)?;
            }
            out.added.push(u.name.clone());
            db.add(u)?;
        }
        Ok(())
    })?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn covering_prefixes() {
        let a = |s: &str| s.parse::<Ipv4Addr>().unwrap();
        assert_eq!(
            covering(&[a("192.168.0.1"), a("192.168.0.234"), a("192.168.0.245")])
                .unwrap()
                .to_string(),
            "192.168.0.0/24"
        );
        assert_eq!(
            covering(&[a("172.20.0.1"), a("172.20.1.50")])
                .unwrap()
                .to_string(),
            "172.20.0.0/23"
        );
        assert!(covering(&[a("10.0.0.1"), a("192.168.0.1")]).is_none());
        assert_eq!(covering(&[a("10.0.0.1")]).unwrap().prefix_len(), 30);
    }
}
