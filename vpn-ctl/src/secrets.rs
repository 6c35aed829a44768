//! The gateway's own secrets (the pre-shared key), in `state_dir/secrets.toml`,
//! mode 0600. Generated on first start; never printed or logged.
use std::{fmt, path::Path};

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

use crate::fsutil;

pub const FILE: &str = "secrets.toml";
/// Length of a generated PSK (57-letter alphabet: about 280 bits).
const PSK_LEN: usize = 48;

#[derive(Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Secrets {
    /// Pre-shared key for L2TP/IPsec and the native protocol.
    pub psk: String,
}

impl fmt::Debug for Secrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secrets { psk: <redacted> }")
    }
}

impl Secrets {
    /// Loads the secrets, generating them if the file does not exist.
    /// Returns whether they were generated now.
    pub fn load_or_generate(state_dir: &Path) -> anyhow::Result<(Secrets, bool)> {
        let path = state_dir.join(FILE);
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                let s: Secrets = toml::from_str(&text)
                    .map_err(|e| anyhow::anyhow!("{}: {}", path.display(), e.message()))?;
                if s.psk.len() < 16 {
                    anyhow::bail!("{}: psk must be at least 16 characters", path.display());
                }
                Ok((s, false))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let s = Secrets {
                    psk: fsutil::random_secret(PSK_LEN),
                };
                let text = format!(
                    "# vpn-ctl secrets (root-only). Pre-shared key for L2TP/IPsec and the native protocol.\n{}",
                    toml::to_string(&s).context("encode secrets")?
                );
                fsutil::write_private(&path, text.as_bytes())?;
                Ok((s, true))
            }
            Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
        }
    }
}
