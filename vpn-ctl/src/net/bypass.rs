//! Which netfilter rules XDP forwarding would bypass (decisions #54).
//!
//! A packet XDP redirects between the WAN and a LAN interface never meets
//! netfilter: no prerouting, forward or postrouting hook, no netdev
//! ingress or egress chain. So XDP forwarding is only on while no such
//! chain outside vpn-ctl's own table holds a rule (other than the ones
//! vpn-ctl inserted, commented "vpn-ctl") or drops by policy. Read from
//! nftables (iptables-nft rules included) and, where installed, from the
//! legacy iptables tables. Conservative on purpose: a rule that could not
//! matter still turns XDP forwarding off, and `status` names it.
use std::process::Command;

use serde_json::Value;

use super::{firewall::COMMENT, nft};

/// The hooks of the forwarding path.
const ROUTED_HOOKS: [&str; 3] = ["prerouting", "forward", "postrouting"];

/// The chains XDP forwarding would bypass, as "family table chain: N
/// rules" or "... policy drop". Empty: it may forward. An error when the
/// ruleset cannot be read (then it must not).
pub fn find() -> anyhow::Result<Vec<String>> {
    let out = Command::new("nft")
        .args(["-j", "list", "ruleset"])
        .output()
        .map_err(|e| anyhow::anyhow!("cannot run nft: {e}"))?;
    if !out.status.success() {
        anyhow::bail!(
            "nft list ruleset: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let mut found = from_nft_json(&String::from_utf8_lossy(&out.stdout))?;
    if let Ok(legacy) = Command::new("iptables-legacy-save").output() {
        if legacy.status.success() {
            found.extend(from_iptables_save(
                "iptables-legacy",
                &String::from_utf8_lossy(&legacy.stdout),
            ));
        }
    }
    Ok(found)
}

/// A chain that sits on the forwarding path, with what makes it matter.
#[derive(Debug, Default)]
struct Chain {
    family: String,
    table: String,
    name: String,
    drops: bool,
    rules: usize,
}

/// Chains of `nft -j list ruleset` output on the forwarding path.
fn from_nft_json(text: &str) -> anyhow::Result<Vec<String>> {
    let v: Value = serde_json::from_str(text)
        .map_err(|e| anyhow::anyhow!("nft printed no JSON ruleset: {e}"))?;
    let items = v["nftables"].as_array().cloned().unwrap_or_default();
    let mut chains: Vec<Chain> = Vec::new();
    for item in &items {
        let Some(c) = item.get("chain") else {
            continue;
        };
        let s = |k: &str| c[k].as_str().unwrap_or("").to_string();
        let (family, hook) = (s("family"), s("hook"));
        let routed = match family.as_str() {
            "ip" | "inet" => ROUTED_HOOKS.contains(&hook.as_str()),
            "netdev" => !hook.is_empty(),
            _ => false,
        };
        if !routed || (family == nft::FAMILY && s("table") == nft::TABLE) {
            continue;
        }
        chains.push(Chain {
            family,
            table: s("table"),
            name: s("name"),
            drops: c["policy"].as_str() == Some("drop"),
            rules: 0,
        });
    }
    for item in &items {
        let Some(r) = item.get("rule") else {
            continue;
        };
        if r["comment"].as_str() == Some(COMMENT) {
            continue;
        }
        let s = |k: &str| r[k].as_str().unwrap_or("");
        if let Some(c) = chains
            .iter_mut()
            .find(|c| c.family == s("family") && c.table == s("table") && c.name == s("chain"))
        {
            c.rules += 1;
        }
    }
    Ok(chains.iter().filter_map(describe).collect())
}

fn describe(c: &Chain) -> Option<String> {
    let what = match (c.rules, c.drops) {
        (0, false) => return None,
        (0, true) => "policy drop".to_string(),
        (1, _) => "1 rule".to_string(),
        (n, _) => format!("{n} rules"),
    };
    Some(format!("{} {} {}: {what}", c.family, c.table, c.name))
}

/// Chains of `iptables-save` output on the forwarding path (built-in
/// PREROUTING, FORWARD, POSTROUTING of any table).
fn from_iptables_save(family: &str, text: &str) -> Vec<String> {
    let mut chains: Vec<Chain> = Vec::new();
    let mut table = String::new();
    for line in text.lines() {
        if let Some(t) = line.strip_prefix('*') {
            table = t.to_string();
        } else if let Some(decl) = line.strip_prefix(':') {
            let mut f = decl.split_whitespace();
            let (Some(name), Some(policy)) = (f.next(), f.next()) else {
                continue;
            };
            if ["PREROUTING", "FORWARD", "POSTROUTING"].contains(&name) {
                chains.push(Chain {
                    family: family.into(),
                    table: table.clone(),
                    name: name.into(),
                    drops: policy == "DROP",
                    rules: 0,
                });
            }
        } else if let Some(rule) = line.strip_prefix("-A ") {
            let name = rule.split_whitespace().next().unwrap_or("");
            if rule.contains(&format!("--comment {COMMENT}"))
                || rule.contains(&format!("--comment \"{COMMENT}\""))
            {
                continue;
            }
            if let Some(c) = chains
                .iter_mut()
                .find(|c| c.table == table && c.name == name)
            {
                c.rules += 1;
            }
        }
    }
    chains.iter().filter_map(describe).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nft_chains_on_the_forwarding_path_count_unless_ours() {
        let text = r#"{"nftables": [
          {"metainfo": {"version": "1.0.6"}},
          {"table": {"family": "ip", "name": "vpn_ctl", "handle": 1}},
          {"chain": {"family": "ip", "table": "vpn_ctl", "name": "postrouting", "type": "nat", "hook": "postrouting", "prio": 100, "policy": "accept"}},
          {"rule": {"family": "ip", "table": "vpn_ctl", "chain": "postrouting", "handle": 2, "expr": []}},
          {"chain": {"family": "ip", "table": "filter", "name": "FORWARD", "type": "filter", "hook": "forward", "prio": 0, "policy": "accept"}},
          {"rule": {"family": "ip", "table": "filter", "chain": "FORWARD", "handle": 3, "expr": [], "comment": "vpn-ctl"}},
          {"chain": {"family": "ip", "table": "filter", "name": "INPUT", "type": "filter", "hook": "input", "prio": 0, "policy": "drop"}},
          {"rule": {"family": "ip", "table": "filter", "chain": "INPUT", "handle": 4, "expr": []}},
          {"chain": {"family": "inet", "table": "fw", "name": "fwd", "type": "filter", "hook": "forward", "prio": 0, "policy": "accept"}},
          {"rule": {"family": "inet", "table": "fw", "chain": "fwd", "handle": 5, "expr": []}},
          {"rule": {"family": "inet", "table": "fw", "chain": "fwd", "handle": 6, "expr": []}},
          {"chain": {"family": "inet", "table": "fw", "name": "pre", "type": "filter", "hook": "prerouting", "prio": 0, "policy": "drop"}},
          {"chain": {"family": "inet", "table": "fw", "name": "empty", "type": "filter", "hook": "postrouting", "prio": 0, "policy": "accept"}},
          {"chain": {"family": "netdev", "table": "nd", "name": "in", "type": "filter", "hook": "ingress", "prio": 0, "policy": "accept"}},
          {"rule": {"family": "netdev", "table": "nd", "chain": "in", "handle": 7, "expr": []}},
          {"chain": {"family": "bridge", "table": "br", "name": "f", "type": "filter", "hook": "forward", "prio": 0, "policy": "drop"}}
        ]}"#;
        assert_eq!(
            from_nft_json(text).unwrap(),
            [
                "inet fw fwd: 2 rules",
                "inet fw pre: policy drop",
                "netdev nd in: 1 rule"
            ]
        );
    }

    #[test]
    fn an_empty_ruleset_bypasses_nothing_and_garbage_is_an_error() {
        assert!(from_nft_json(r#"{"nftables": [{"metainfo": {}}]}"#)
            .unwrap()
            .is_empty());
        assert!(from_nft_json("Error: no JSON").is_err());
    }

    #[test]
    fn legacy_chains_count_rules_and_drop_policies() {
        let text = "*filter\n:INPUT DROP [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n\
                    -A INPUT -p udp -j ACCEPT\n\
                    -A FORWARD -s 10.0.0.0/8 -m comment --comment vpn-ctl -j ACCEPT\n\
                    COMMIT\n*nat\n:PREROUTING ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n\
                    -A PREROUTING -p tcp --dport 80 -j DNAT --to-destination 10.0.0.2\nCOMMIT\n\
                    *mangle\n:FORWARD DROP [0:0]\nCOMMIT\n";
        assert_eq!(
            from_iptables_save("iptables-legacy", text),
            [
                "iptables-legacy nat PREROUTING: 1 rule",
                "iptables-legacy mangle FORWARD: policy drop"
            ]
        );
    }
}
