//! ipsec.secrets (the PSK) and ipsec.conf (the L2TP connection and its
//! `ike=`/`esp=` proposals), as strongSwan and libreswan write them.

/// The PSKs in ipsec.secrets, in order (`... : PSK "key"`).
pub fn parse_secrets(text: &str) -> Vec<String> {
    text.lines()
        .map(|l| l.split('#').next().unwrap_or("").trim())
        .filter_map(|l| {
            let (_, rest) = l.split_once(':')?;
            let rest = rest.trim();
            let key = rest.strip_prefix("PSK")?.trim();
            let key = key
                .strip_prefix('"')
                .and_then(|k| k.strip_suffix('"'))
                .or_else(|| key.strip_prefix('\'').and_then(|k| k.strip_suffix('\'')))
                .unwrap_or(key);
            (!key.is_empty()).then(|| key.to_string())
        })
        .collect()
}

/// One `conn` of ipsec.conf that carries L2TP (UDP 1701, transport mode).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct L2tpConn {
    pub name: String,
    pub ike: Option<String>,
    pub esp: Option<String>,
}

/// The L2TP connections of ipsec.conf.
pub fn parse_conf(text: &str) -> Vec<L2tpConn> {
    let mut out = Vec::new();
    let mut cur: Option<(String, Vec<(String, String)>)> = None;
    let finish = |c: Option<(String, Vec<(String, String)>)>, out: &mut Vec<L2tpConn>| {
        let Some((name, kv)) = c else { return };
        let get = |k: &str| kv.iter().find(|(x, _)| x == k).map(|(_, v)| v.clone());
        let l2tp = ["leftprotoport", "rightprotoport"]
            .iter()
            .any(|k| get(k).is_some_and(|v| v.starts_with("17/1701") || v == "udp/l2tp"));
        let transport = get("type").is_some_and(|v| v == "transport");
        if l2tp && transport && name != "%default" {
            out.push(L2tpConn {
                name,
                ike: get("ike"),
                esp: get("esp").or_else(|| get("phase2alg")),
            });
        }
    };
    for line in text.lines() {
        let l = line.split('#').next().unwrap_or("");
        if let Some(name) = l.trim_start().strip_prefix("conn ") {
            finish(cur.take(), &mut out);
            cur = Some((name.trim().to_string(), Vec::new()));
        } else if !l.starts_with(char::is_whitespace) && !l.trim().is_empty() {
            finish(cur.take(), &mut out); // `config setup`, `include`...
        } else if let (Some((_, kv)), Some((k, v))) = (cur.as_mut(), l.split_once('=')) {
            kv.push((k.trim().to_string(), v.trim().trim_matches('"').to_string()));
        }
    }
    finish(cur, &mut out);
    out
}

/// Algorithms of an `ike=`/`esp=` list vpn-ctl does not implement, and
/// whether it names legacy ones (MODP1024/1536, 3DES).
pub fn check_proposals(list: &str) -> (Vec<String>, bool) {
    const KNOWN: [&str; 17] = [
        "aes",
        "aes128",
        "aes192",
        "aes256",
        "3des",
        "sha",
        "sha1",
        "sha2_256",
        "sha256",
        "sha384",
        "sha512",
        "modp1024",
        "modp1536",
        "modp2048",
        "ecp256",
        "ecp384",
        "aes128gcm16",
    ];
    const ALSO: [&str; 2] = ["aes256gcm16", "aes_gcm"];
    let mut unknown = Vec::new();
    let mut legacy = false;
    for proposal in list.trim_end_matches('!').split(',') {
        for alg in proposal
            .split(['-', ';', '+'])
            .map(str::trim)
            .filter(|a| !a.is_empty())
        {
            let a = alg.to_ascii_lowercase();
            legacy |= matches!(a.as_str(), "modp1024" | "modp1536" | "3des");
            if !KNOWN.contains(&a.as_str()) && !ALSO.contains(&a.as_str()) && !unknown.contains(&a)
            {
                unknown.push(a);
            }
        }
    }
    (unknown, legacy)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn psk_lines() {
        let s = parse_secrets(
            "# comment\n%any %any : PSK \"the shared secret\"\n1.2.3.4 : PSK 'second'\n: RSA key.pem\n",
        );
        assert_eq!(
            s,
            vec!["the shared secret".to_string(), "second".to_string()]
        );
    }

    #[test]
    fn l2tp_connections_only() {
        let conf = "config setup\n  uniqueids=no\n\nconn %default\n  keyexchange=ikev1\n\nconn L2TP-PSK\n  authby=secret\n  type=transport\n  left=%defaultroute\n  leftprotoport=17/1701\n  right=%any\n  rightprotoport=17/%any\n  ike=aes256-sha1-modp2048,3des-sha1-modp1024!\n  esp=aes128-sha1,3des-sha1!\n  auto=add\n\nconn site\n  type=tunnel\n  leftsubnet=10.0.0.0/8\n";
        let c = parse_conf(conf);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].name, "L2TP-PSK");
        assert_eq!(
            c[0].ike.as_deref(),
            Some("aes256-sha1-modp2048,3des-sha1-modp1024!")
        );
        let (unknown, legacy) = check_proposals(c[0].ike.as_deref().unwrap());
        assert!(unknown.is_empty() && legacy);
        let (unknown, legacy) = check_proposals("camellia256-sha1-modp2048");
        assert_eq!((unknown, legacy), (vec!["camellia256".to_string()], false));
    }
}
