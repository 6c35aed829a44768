//! pptpd.conf, xl2tpd.conf and pppd option files: the address plan, DNS
//! and authentication and MPPE options of an existing PPTP/L2TP server.
use std::net::Ipv4Addr;

/// What a pppd options file says that vpn-ctl can carry over.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct PppOptions {
    pub dns: Vec<Ipv4Addr>,
    pub require_mppe: bool,
    pub refuse_pap: bool,
    pub require_pap: bool,
    /// CHAP-MD5 allowed: required, or nothing narrower asked for and not
    /// refused (vpn-ctl does not offer it).
    pub wants_chap_md5: bool,
    /// Lines not understood (for the report).
    pub unknown: Vec<String>,
}

/// Strips `#` comments and blank lines.
fn lines(text: &str) -> impl Iterator<Item = &str> {
    text.lines()
        .map(|l| l.split('#').next().unwrap_or("").trim())
        .filter(|l| !l.is_empty())
}

/// pppd options (`/etc/ppp/pptpd-options`, `/etc/ppp/options.xl2tpd`).
pub fn parse_options(text: &str) -> PppOptions {
    let mut o = PppOptions::default();
    let (mut require_chap, mut require_other, mut refuse_chap) = (false, false, false);
    for l in lines(text) {
        let mut w = l.split_whitespace();
        match (w.next().unwrap_or(""), w.next()) {
            ("ms-dns", Some(a)) => {
                if let Ok(ip) = a.parse() {
                    o.dns.push(ip);
                }
            }
            ("require-mppe-128" | "require-mppe", _) => o.require_mppe = true,
            ("mppe", Some(v)) if v.split(',').any(|x| x == "required") => o.require_mppe = true,
            ("refuse-pap", _) => o.refuse_pap = true,
            ("require-pap", _) => {
                o.require_pap = true;
                require_other = true;
            }
            ("refuse-chap", _) => refuse_chap = true,
            ("require-chap", _) => require_chap = true,
            ("require-mschap-v2" | "require-mschap", _) => require_other = true,
            // Options with no bearing on vpn-ctl (pppd mechanics, logging).
            (
                "name" | "refuse-mschap" | "auth" | "proxyarp" | "lock" | "nobsdcomp" | "novj"
                | "novjccomp" | "nologfd" | "debug" | "logfile" | "mtu" | "mru"
                | "lcp-echo-interval" | "lcp-echo-failure" | "ipcp-accept-local"
                | "ipcp-accept-remote" | "noccp" | "nodefaultroute" | "nodeflate" | "asyncmap"
                | "crtscts" | "connect-delay" | "hide-password" | "modem" | "noipx" | "idle"
                | "refuse-eap",
                _,
            ) => {}
            _ => o.unknown.push(l.to_string()),
        }
    }
    o.wants_chap_md5 = !refuse_chap && (require_chap || !require_other);
    o
}

/// `a.b.c.d-e`, `a.b.c.d-f.g.h.i`, lists of those and single addresses
/// (pptpd's `remoteip`, xl2tpd's `ip range`).
pub fn parse_ranges(spec: &str) -> Result<Vec<(Ipv4Addr, Ipv4Addr)>, String> {
    let mut out = Vec::new();
    for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (a, b) = match part.split_once('-') {
            Some((a, b)) => (a.trim(), b.trim()),
            None => (part, part),
        };
        let start: Ipv4Addr = a
            .parse()
            .map_err(|_| format!("`{part}`: not an address range"))?;
        let end: Ipv4Addr = if b.contains('.') {
            b.parse()
                .map_err(|_| format!("`{part}`: not an address range"))?
        } else {
            let last: u8 = b
                .parse()
                .map_err(|_| format!("`{part}`: not an address range"))?;
            let o = start.octets();
            Ipv4Addr::new(o[0], o[1], o[2], last)
        };
        if u32::from(end) < u32::from(start) {
            return Err(format!("`{part}`: the range ends before it starts"));
        }
        out.push((start, end));
    }
    Ok(out)
}

/// pptpd.conf: `localip`, `remoteip`, the `option` file it names.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Pptpd {
    pub local: Vec<(Ipv4Addr, Ipv4Addr)>,
    pub remote: Vec<(Ipv4Addr, Ipv4Addr)>,
    pub option_file: Option<String>,
}

pub fn parse_pptpd(text: &str) -> Result<Pptpd, String> {
    let mut p = Pptpd::default();
    for l in lines(text) {
        let (k, v) = l.split_once(char::is_whitespace).unwrap_or((l, ""));
        match k {
            "localip" => p.local = parse_ranges(v)?,
            "remoteip" => p.remote = parse_ranges(v)?,
            "option" => p.option_file = Some(v.trim().to_string()),
            _ => {}
        }
    }
    Ok(p)
}

/// xl2tpd.conf's `[lns ...]` section.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Xl2tpd {
    pub ranges: Vec<(Ipv4Addr, Ipv4Addr)>,
    pub local: Option<Ipv4Addr>,
    pub pppoptfile: Option<String>,
    pub require_authentication: bool,
    pub refuse_pap: bool,
    pub require_chap: bool,
}

pub fn parse_xl2tpd(text: &str) -> Result<Xl2tpd, String> {
    let mut x = Xl2tpd {
        require_authentication: true,
        ..Default::default()
    };
    let mut in_lns = false;
    for l in text
        .lines()
        .map(|l| l.split(';').next().unwrap_or("").trim())
    {
        if l.starts_with('[') {
            in_lns = l.trim_start_matches('[').starts_with("lns");
            continue;
        }
        let Some((k, v)) = l.split_once('=') else {
            continue;
        };
        if !in_lns {
            continue;
        }
        let (k, v) = (k.trim().to_ascii_lowercase(), v.trim());
        let yes = matches!(v, "yes" | "true" | "1");
        match k.as_str() {
            "ip range" => x.ranges.extend(parse_ranges(v)?),
            "local ip" => x.local = v.parse().ok(),
            "pppoptfile" => x.pppoptfile = Some(v.to_string()),
            "require authentication" => x.require_authentication = yes,
            "refuse pap" => x.refuse_pap = yes,
            "require chap" => x.require_chap = yes,
            _ => {}
        }
    }
    Ok(x)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_in_every_form() {
        let r = parse_ranges("192.168.0.234-238,192.168.0.245, 10.0.0.2-10.0.1.9").unwrap();
        assert_eq!(
            r,
            vec![
                (
                    "192.168.0.234".parse().unwrap(),
                    "192.168.0.238".parse().unwrap()
                ),
                (
                    "192.168.0.245".parse().unwrap(),
                    "192.168.0.245".parse().unwrap()
                ),
                ("10.0.0.2".parse().unwrap(), "10.0.1.9".parse().unwrap()),
            ]
        );
        assert!(parse_ranges("10.0.0.9-3").is_err());
        assert!(parse_ranges("ten").is_err());
    }

    #[test]
    fn options_files() {
        let o = parse_options(
            "name pptpd\nrefuse-pap\nrefuse-chap\nrefuse-mschap\nrequire-mschap-v2\nrequire-mppe-128\nms-dns 8.8.8.8\nms-dns 1.1.1.1 # two\nproxyarp\nplugin radius.so\n",
        );
        assert_eq!(
            o.dns,
            vec![Ipv4Addr::new(8, 8, 8, 8), Ipv4Addr::new(1, 1, 1, 1)]
        );
        assert!(o.require_mppe && o.refuse_pap && !o.wants_chap_md5);
        assert_eq!(o.unknown, vec!["plugin radius.so".to_string()]);
    }

    #[test]
    fn xl2tpd_lns_section() {
        let x = parse_xl2tpd(
            "[global]\nport = 1701\n\n[lns default]\nip range = 10.10.0.2-10.10.0.50\nlocal ip = 10.10.0.1\nrequire chap = yes\nrefuse pap = yes\nrequire authentication = yes\npppoptfile = /etc/ppp/options.xl2tpd ; comment\n",
        )
        .unwrap();
        assert_eq!(x.local, Some(Ipv4Addr::new(10, 10, 0, 1)));
        assert_eq!(x.ranges.len(), 1);
        assert_eq!(x.pppoptfile.as_deref(), Some("/etc/ppp/options.xl2tpd"));
        assert!(x.require_chap && x.refuse_pap && x.require_authentication);
    }
}
