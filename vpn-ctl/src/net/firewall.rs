//! Finds host firewall rules (iptables INPUT/FORWARD) that would reject the
//! gateway's traffic, and optionally opens a hole in front of them.
//!
//! Only rules whose match we fully understand count: protocol, destination
//! port, comments. Rules with other conditions (source, interface, conntrack,
//! jumps to other chains) are skipped, so a reported problem is a real one.
use std::process::Command;

use super::prefix::Ipv4Prefix;
use crate::config::ListenerSpec;

/// The comment that marks rules vpn-ctl inserted.
pub const COMMENT: &str = "vpn-ctl";

#[derive(Debug, Default, PartialEq, Eq)]
struct Rule {
    text: String,
    proto: Option<String>,
    dports: Option<Vec<(u16, u16)>>,
    target: Option<String>,
    other_conditions: bool,
}

fn tokenize(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    for c in line.chars() {
        match c {
            '"' => quoted = !quoted,
            c if c.is_whitespace() && !quoted => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
            }
            c => cur.push(c),
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

fn parse_ports(s: &str) -> Option<Vec<(u16, u16)>> {
    s.split(',')
        .map(|p| match p.split_once(':') {
            Some((a, b)) => Some((a.parse().ok()?, b.parse().ok()?)),
            None => p.parse().ok().map(|x| (x, x)),
        })
        .collect()
}

fn parse_rule(line: &str) -> Rule {
    let t = tokenize(line);
    let mut r = Rule {
        text: line.to_string(),
        ..Rule::default()
    };
    let mut i = 2; // skip "-A CHAIN"
    while i < t.len() {
        let arg = t.get(i + 1).cloned();
        match t[i].as_str() {
            "-p" => r.proto = arg,
            "--dport" | "--dports" => {
                r.dports = arg.as_deref().and_then(parse_ports);
                if r.dports.is_none() {
                    r.other_conditions = true;
                }
            }
            "-j" => r.target = arg,
            "-m" if matches!(
                arg.as_deref(),
                Some("tcp" | "udp" | "comment" | "multiport")
            ) => {}
            "--comment" | "--reject-with" => {}
            _ => {
                r.other_conditions = true;
                i += 1;
                continue;
            }
        }
        i += 2;
    }
    r
}

/// Reads a chain: its policy and rules. `None` if iptables is absent or fails.
fn read_chain(chain: &str) -> Option<(String, Vec<Rule>)> {
    let out = Command::new("iptables").args(["-S", chain]).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut policy = "ACCEPT".to_string();
    let mut rules = Vec::new();
    for line in text.lines() {
        let t = tokenize(line);
        match t.first().map(String::as_str) {
            Some("-P") => policy = t.get(2).cloned().unwrap_or_default(),
            Some("-A") => rules.push(parse_rule(line)),
            _ => {}
        }
    }
    Some((policy, rules))
}

/// What first decides the fate of new traffic matching `proto`/`port`:
/// `Some(description)` if it is rejected or dropped.
fn verdict(policy: &str, rules: &[Rule], proto: Option<&str>, port: Option<u16>) -> Option<String> {
    for r in rules {
        if r.other_conditions {
            continue;
        }
        let proto_ok = match (&r.proto, proto) {
            (None, _) => true,
            (Some(rp), Some(p)) => rp == p,
            (Some(_), None) => false,
        };
        let port_ok = match (&r.dports, port) {
            (None, _) => true,
            (Some(ranges), Some(p)) => ranges.iter().any(|(a, b)| (*a..=*b).contains(&p)),
            (Some(_), None) => false,
        };
        if !proto_ok || !port_ok {
            continue;
        }
        match r.target.as_deref() {
            Some("ACCEPT") => return None,
            Some("REJECT" | "DROP") => return Some(format!("rule `{}`", r.text)),
            _ => continue,
        }
    }
    (policy == "DROP").then(|| "policy DROP".to_string())
}

/// A problem found in the host firewall, with the rules that would fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// One line for the operator.
    pub message: String,
    /// iptables arguments after `-I`/`-D` (chain first) that open the hole.
    pub fix: Vec<Vec<String>>,
}

/// `CHAIN match... -m comment --comment vpn-ctl -j ACCEPT`.
fn tagged_accept(chain: &str, matches: &[&str]) -> Vec<String> {
    std::iter::once(chain)
        .chain(matches.iter().copied())
        .chain(["-m", "comment", "--comment", COMMENT, "-j", "ACCEPT"])
        .map(str::to_string)
        .collect()
}

fn accept_port(l: &ListenerSpec) -> Vec<String> {
    tagged_accept("INPUT", &["-p", l.proto, "--dport", &l.port.to_string()])
}

/// From the pool: anything. Toward the pool: only answers (ESTABLISHED,
/// RELATED), so a neighbour routing the pool via the gateway cannot reach
/// clients through the hole we open.
fn accept_pool(dir: &str, pool: Ipv4Prefix) -> Vec<String> {
    let p = pool.to_string();
    if dir == "-d" {
        tagged_accept(
            "FORWARD",
            &[
                dir,
                &p,
                "-m",
                "conntrack",
                "--ctstate",
                "ESTABLISHED,RELATED",
            ],
        )
    } else {
        tagged_accept("FORWARD", &[dir, &p])
    }
}

/// Checks INPUT for each listener and FORWARD for the pool.
pub fn check(listeners: &[ListenerSpec], pool: Ipv4Prefix) -> Vec<Finding> {
    let mut out = Vec::new();
    if let Some((policy, rules)) = read_chain("INPUT") {
        for l in listeners {
            if let Some(by) = verdict(&policy, &rules, Some(l.proto), Some(l.port)) {
                out.push(Finding {
                    message: format!(
                        "host firewall: iptables INPUT {by} blocks {} port {} ({})",
                        l.proto.to_uppercase(),
                        l.port,
                        l.service
                    ),
                    fix: vec![accept_port(l)],
                });
            }
        }
    }
    if let Some((policy, rules)) = read_chain("FORWARD") {
        if let Some(by) = verdict(&policy, &rules, None, None) {
            out.push(Finding {
                message: format!(
                    "host firewall: iptables FORWARD {by} blocks traffic of the pool {pool}"
                ),
                fix: vec![accept_pool("-s", pool), accept_pool("-d", pool)],
            });
        }
    }
    out
}

/// Rules of INPUT that would reject GRE (PPTP's data) and ESP (IPsec
/// without NAT): the rule, for each.
pub fn blocked_protocols() -> (Option<String>, Option<String>) {
    let Some((policy, rules)) = read_chain("INPUT") else {
        return (None, None);
    };
    let by = |names: &[&str]| {
        names
            .iter()
            .find_map(|n| verdict(&policy, &rules, Some(n), None))
    };
    (by(&["gre", "47"]), by(&["esp", "50"]))
}

/// Runs `iptables ACTION args...` (`-I` inserts at the top, `-D` deletes).
pub fn iptables(action: &str, args: &[String]) -> anyhow::Result<()> {
    let (chain, rest) = args
        .split_first()
        .ok_or_else(|| anyhow::anyhow!("empty rule"))?;
    let mut cmd = Command::new("iptables");
    cmd.arg(action).arg(chain);
    if action == "-I" {
        cmd.arg("1");
    }
    let out = cmd.args(rest).output()?;
    if !out.status.success() {
        anyhow::bail!(
            "iptables {action} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(lines: &[&str]) -> Vec<Rule> {
        lines.iter().map(|l| parse_rule(l)).collect()
    }

    #[test]
    fn trailing_reject_blocks_unless_accepted_first() {
        let r = rules(&[
            "-A INPUT -m state --state RELATED,ESTABLISHED -j ACCEPT",
            "-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT",
            "-A INPUT -j REJECT --reject-with icmp-host-prohibited",
        ]);
        let v = verdict("ACCEPT", &r, Some("udp"), Some(1701)).unwrap();
        assert!(
            v.contains("REJECT --reject-with icmp-host-prohibited"),
            "{v}"
        );
        assert_eq!(verdict("ACCEPT", &r, Some("tcp"), Some(22)), None);
    }

    #[test]
    fn udp_accept_does_not_open_tcp() {
        // The classic mistake: publishing TCP 1701 instead of UDP 1701.
        let r = rules(&[
            "-A INPUT -p tcp -m tcp --dport 1701 -j ACCEPT",
            "-A INPUT -j DROP",
        ]);
        assert!(verdict("ACCEPT", &r, Some("udp"), Some(1701)).is_some());
    }

    #[test]
    fn policy_and_unknown_conditions() {
        let r = rules(&[
            "-A INPUT -s 10.0.0.0/8 -j REJECT",
            "-A INPUT -p udp -m multiport --dports 500,1701,4400:4600 -j ACCEPT",
        ]);
        assert_eq!(verdict("DROP", &r, Some("udp"), Some(4500)), None);
        assert_eq!(
            verdict("DROP", &r, Some("tcp"), Some(7443)).unwrap(),
            "policy DROP"
        );
        assert_eq!(verdict("ACCEPT", &r, Some("tcp"), Some(7443)), None);
    }

    #[test]
    fn quoted_comments_are_one_token() {
        let r = parse_rule("-A INPUT -m comment --comment \"allow all the things\" -j ACCEPT");
        assert!(!r.other_conditions);
        assert_eq!(r.target.as_deref(), Some("ACCEPT"));
    }
}
