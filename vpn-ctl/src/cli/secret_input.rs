//! Reading a password or key: from a file ("-": standard input), else from
//! the terminal without echo, else the first line of standard input.
use std::{io::IsTerminal as _, path::Path};

use anyhow::Context as _;
use zeroize::Zeroizing;

fn first_line(r: impl std::io::BufRead) -> anyhow::Result<Zeroizing<String>> {
    let line = Zeroizing::new(r.lines().next().transpose()?.unwrap_or_default());
    Ok(Zeroizing::new(
        line.trim_end_matches(['\r', '\n']).to_string(),
    ))
}

/// `what` names the secret in prompts; `confirm` asks twice (new secrets).
/// The secret is wiped from memory when dropped.
pub fn read_secret(
    file: Option<&Path>,
    what: &str,
    confirm: bool,
) -> anyhow::Result<Zeroizing<String>> {
    match file {
        Some(p) if p == Path::new("-") => first_line(std::io::stdin().lock()),
        Some(p) => {
            let f =
                std::fs::File::open(p).with_context(|| format!("cannot read {}", p.display()))?;
            first_line(std::io::BufReader::new(f))
        }
        None if std::io::stdin().is_terminal() => {
            let a = Zeroizing::new(rpassword::prompt_password(format!("{what}: "))?);
            if confirm {
                let b = Zeroizing::new(rpassword::prompt_password("Again: ")?);
                if a != b {
                    anyhow::bail!("the two entries do not match");
                }
            }
            Ok(a)
        }
        None => first_line(std::io::stdin().lock()),
    }
}
