//! /etc/ppp/chap-secrets: `client server secret [addresses...]`, quoted
//! or not, `*` for any.
use std::net::Ipv4Addr;

#[derive(Debug, PartialEq, Eq)]
pub struct Secret {
    pub client: String,
    pub server: String,
    pub password: String,
    /// The first address column, when it is an address (not `*`).
    pub ip: Option<Ipv4Addr>,
}

/// Splits a line into words, honouring double quotes and `#` comments.
fn words(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let (mut quoted, mut any) = (false, false);
    for c in line.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                any = true;
            }
            '#' if !quoted => break,
            c if c.is_whitespace() && !quoted => {
                if any {
                    out.push(std::mem::take(&mut cur));
                    any = false;
                }
            }
            c => {
                cur.push(c);
                any = true;
            }
        }
    }
    if any {
        out.push(cur);
    }
    out
}

/// The entries, and the line numbers of lines that are not entries.
pub fn parse(text: &str) -> (Vec<Secret>, Vec<usize>) {
    let (mut out, mut bad) = (Vec::new(), Vec::new());
    for (i, line) in text.lines().enumerate() {
        let w = words(line);
        match w.len() {
            0 => {}
            1 | 2 => bad.push(i + 1),
            _ => out.push(Secret {
                client: w[0].clone(),
                server: w[1].clone(),
                password: w[2].clone(),
                ip: w.get(3).and_then(|a| a.parse().ok()),
            }),
        }
    }
    (out, bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_starred_and_addressed_lines() {
        let (s, bad) = parse(
            "# client server secret IP addresses\n\"alice\" pptpd \"pa ss#1\" 192.168.0.240\nbob * s3cret *\ncarol l2tpd pw3 10.10.0.7 # static\nbroken line\n",
        );
        assert_eq!(bad, vec![5]);
        assert_eq!(s.len(), 3);
        assert_eq!(s[0].password, "pa ss#1");
        assert_eq!(s[0].ip, Some(Ipv4Addr::new(192, 168, 0, 240)));
        assert_eq!((s[1].server.as_str(), s[1].ip), ("*", None));
        assert_eq!(s[2].ip, Some(Ipv4Addr::new(10, 10, 0, 7)));
    }
}
