//! The gateway's own secrets (the pre-shared key and the native protocol's
//! gateway key), in `state_dir/secrets.toml`, mode 0600. Generated on first
//! start (the key also when an older file lacks it); never printed or
//! logged, but for the gateway key's public half.
use std::{fmt, path::Path};

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

use crate::fsutil;

pub const FILE: &str = "secrets.toml";
/// Length of a generated PSK (57-letter alphabet: about 280 bits).
const PSK_LEN: usize = 48;

/// Not `Clone`; wiped when dropped.
#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Secrets {
    /// Pre-shared key for L2TP/IPsec and the native protocol.
    pub psk: String,
    /// The native protocol's gateway key: X25519 private key, base64.
    #[serde(default)]
    pub gateway_key: Option<String>,
}

impl Drop for Secrets {
    fn drop(&mut self) {
        use zeroize::Zeroize as _;
        self.psk.zeroize();
        self.gateway_key.zeroize();
    }
}

impl fmt::Debug for Secrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secrets { psk: <redacted>, gateway_key: <redacted> }")
    }
}

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::STANDARD
}

/// A gateway public key as users give it to `vpn-ctl connect --gateway-key`.
pub fn encode_key(k: &[u8; 32]) -> String {
    use base64::Engine as _;
    b64().encode(k)
}

pub fn decode_key(text: &str) -> anyhow::Result<[u8; 32]> {
    use base64::Engine as _;
    b64()
        .decode(text.trim())
        .ok()
        .and_then(|v| <[u8; 32]>::try_from(v).ok())
        .ok_or_else(|| anyhow::anyhow!("a gateway key is 32 bytes in base64 (44 characters)"))
}

/// Bounds of an operator's PSK: clients take 16 to 255 characters, and
/// none of them controls.
pub fn check_psk(psk: &str) -> anyhow::Result<()> {
    if psk.chars().count() < 16 {
        anyhow::bail!("the pre-shared key must have at least 16 characters");
    }
    // Clients (Windows among them) take at most 255; the TOML writer also
    // miscounts runs of 256 or more quotes (found by the secrets_file fuzz
    // target), so a longer key would be written into a file that does not
    // read back.
    if psk.len() > 255 {
        anyhow::bail!("the pre-shared key must have at most 255 bytes");
    }
    if psk.chars().any(char::is_control) {
        anyhow::bail!("the pre-shared key must not contain control characters");
    }
    Ok(())
}

/// A short, non-reversible name for the PSK (to check two sides agree).
pub fn psk_fingerprint(psk: &str) -> String {
    use sha2::Digest as _;
    let d = sha2::Sha256::digest(psk.as_bytes());
    let hex: String = d[..8].iter().map(|b| format!("{b:02x}")).collect();
    format!("SHA256:{hex}")
}

impl Secrets {
    /// Reads existing secrets (for the commands that show their public parts).
    pub fn read(state_dir: &Path) -> anyhow::Result<Secrets> {
        let path = state_dir.join(FILE);
        let text = std::fs::read_to_string(&path).map_err(|e| {
            anyhow::anyhow!(
                "cannot read {} ({e}); run `vpn-ctl up` once first, as root",
                path.display()
            )
        })?;
        // Not checked beyond its form: `doctor` reports a weak key and
        // `ipsec-psk` shows what is there; `up` refuses it (`parse`).
        Self::parse_form(&text).with_context(|| format!("{}", path.display()))
    }

    fn parse_form(text: &str) -> anyhow::Result<Secrets> {
        toml::from_str(text).map_err(|e| anyhow::anyhow!("{}", e.message()))
    }

    /// secrets.toml's text, checked (the PSK's bounds, the key's form).
    pub fn parse(text: &str) -> anyhow::Result<Secrets> {
        let s = Self::parse_form(text)?;
        check_psk(&s.psk).context("psk")?;
        if let Some(k) = &s.gateway_key {
            decode_key(k).context("gateway_key")?;
        }
        Ok(s)
    }

    /// Loads the secrets, generating them if the file does not exist (and
    /// the gateway key if an older file lacks it). Returns whether anything
    /// was generated now.
    pub fn load_or_generate(state_dir: &Path) -> anyhow::Result<(Secrets, bool)> {
        let path = state_dir.join(FILE);
        let (mut s, mut generated) = match std::fs::read_to_string(&path) {
            Ok(text) => (
                Self::parse(&text).with_context(|| format!("{}", path.display()))?,
                false,
            ),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let s = Secrets {
                    psk: fsutil::random_secret(PSK_LEN),
                    gateway_key: None,
                };
                (s, true)
            }
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        };
        if s.gateway_key.is_none() {
            let k = vpn_proto::native::crypto::generate_gateway_key();
            s.gateway_key = Some(encode_key(&k));
            generated = true;
        }
        if generated {
            let text = format!(
                "# vpn-ctl secrets (root-only). Pre-shared key for L2TP/IPsec and the native protocol;\n# the native protocol's gateway key (private).\n{}",
                toml::to_string(&s).context("encode secrets")?
            );
            fsutil::write_private(&path, text.as_bytes())?;
        }
        Ok((s, generated))
    }

    /// Puts `psk` into the secrets file (keeping the gateway key). An
    /// existing, different PSK is replaced only with `force`.
    pub fn set_psk(state_dir: &Path, psk: &str, force: bool) -> anyhow::Result<()> {
        fsutil::private_dir(state_dir)?;
        let path = state_dir.join(FILE);
        let mut s = match std::fs::read_to_string(&path) {
            Ok(text) => toml::from_str(&text)
                .map_err(|e| anyhow::anyhow!("{}: {}", path.display(), e.message()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Secrets {
                psk: String::new(),
                gateway_key: None,
            },
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        };
        if !s.psk.is_empty() && s.psk != psk && !force {
            anyhow::bail!(
                "{} already holds another pre-shared key; --force replaces it",
                path.display()
            );
        }
        check_psk(psk)?;
        s.psk = psk.to_string();
        let text = format!(
            "# vpn-ctl secrets (root-only). Pre-shared key for L2TP/IPsec and the native protocol;\n# the native protocol's gateway key (private; made on the next start if missing).\n{}",
            toml::to_string(&s).context("encode secrets")?
        );
        fsutil::write_private(&path, text.as_bytes())
    }

    /// The gateway key's private half.
    pub fn gateway_private(&self) -> anyhow::Result<[u8; 32]> {
        decode_key(self.gateway_key.as_deref().unwrap_or_default())
    }

    /// The gateway key's public half.
    pub fn gateway_public(&self) -> anyhow::Result<[u8; 32]> {
        Ok(vpn_proto::native::crypto::gateway_public(
            &self.gateway_private()?,
        ))
    }
}

vpn_proto::assert_not_clone!(Secrets);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_is_checked_and_round_trips() {
        let key = encode_key(&[7; 32]);
        let text = format!("psk = \"{}\"\ngateway_key = \"{key}\"\n", "p".repeat(20));
        vpn_proto::fuzz_seed::save("secrets_file", text.as_bytes());
        let s = Secrets::parse(&text).unwrap();
        assert_eq!(s.gateway_private().unwrap(), [7; 32]);
        let back = Secrets::parse(&toml::to_string(&s).unwrap()).unwrap();
        assert!(back.psk == s.psk && back.gateway_key == s.gateway_key);
        // The longest key, all quotes, reads back (the TOML writer's limit).
        let quotes = Secrets {
            psk: "'".repeat(255),
            gateway_key: None,
        };
        let back = Secrets::parse(&toml::to_string(&quotes).unwrap()).unwrap();
        assert!(back.psk == quotes.psk);
        for (bad, why) in [
            ("psk = \"short\"\n", "at least 16"),
            (&format!("psk = \"{}\"\n", "'".repeat(300)), "at most 255"),
            ("psk = \"pppppppppppppppp\\u0007\"\n", "control"),
            (
                "psk = \"pppppppppppppppppppp\"\ngateway_key = \"AAAA\"\n",
                "gateway_key",
            ),
            (
                "psk = \"pppppppppppppppppppp\"\nextra = 1\n",
                "unknown field",
            ),
            ("gateway_key = \"x\"\n", "missing field"),
        ] {
            let e = format!("{:#}", Secrets::parse(bad).err().unwrap());
            assert!(e.contains(why), "{bad}: {e}");
        }
    }
}
