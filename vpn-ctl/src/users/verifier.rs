//! What the user database keeps instead of a password: an argon2id
//! verifier (PHC string) for logins that send the password (native, PAP),
//! and the NT hash for MS-CHAPv2, which cannot work without it.
use argon2::{
    password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier as _, SaltString},
    Argon2,
};
use rand::RngCore as _;
use vpn_proto::ppp::mschap::NtHash;
use zeroize::Zeroizing;

/// argon2id with the crate's defaults: 19 MiB, 2 passes, 1 lane (OWASP's
/// recommendation); about 30 ms per check on one core of this machine kind.
fn argon2() -> Argon2<'static> {
    Argon2::default()
}

/// A fresh verifier for `password` (random 16-byte salt).
pub fn make(password: &str) -> anyhow::Result<String> {
    let mut salt = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt).map_err(|e| anyhow::anyhow!("salt: {e}"))?;
    let phc = argon2()
        .hash_password(password.as_bytes(), &salt)
        .map_err(|e| anyhow::anyhow!("argon2id: {e}"))?;
    Ok(phc.to_string())
}

/// Checks a verifier's form (that it is argon2id and parses).
pub fn check_form(phc: &str) -> anyhow::Result<()> {
    let h = PasswordHash::new(phc).map_err(|e| anyhow::anyhow!("verifier: {e}"))?;
    if h.algorithm.as_str() != "argon2id" {
        anyhow::bail!("verifier: {} is not argon2id", h.algorithm);
    }
    Ok(())
}

/// Whether `password` matches `phc`. With no verifier (no such user) the
/// same work is done against a throwaway one, so the time taken does not
/// tell whether a user exists.
pub fn verify(phc: Option<&str>, password: &str) -> bool {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let dummy = DUMMY.get_or_init(|| make("\u{0}no such user").expect("argon2id"));
    let Ok(hash) = PasswordHash::new(phc.unwrap_or(dummy)) else {
        return false;
    };
    let ok = argon2().verify_password(password.as_bytes(), &hash).is_ok();
    ok && phc.is_some()
}

/// The NT hash as the file stores it (32 hex digits).
pub fn nt_hex(password: &str) -> String {
    let h = NtHash::of_password(password);
    h.as_bytes().iter().map(|b| format!("{b:02x}")).collect()
}

/// Parses a stored NT hash.
pub fn parse_nt(hex: &str) -> anyhow::Result<NtHash> {
    if hex.len() != 32 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        anyhow::bail!("nt_hash must be 32 hex digits");
    }
    let mut b = Zeroizing::new([0u8; 16]);
    for (i, out) in b.iter_mut().enumerate() {
        *out = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16)?;
    }
    Ok(NtHash::from_bytes(*b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verifier_accepts_only_the_password() {
        let v = make("correct horse").unwrap();
        assert!(v.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{v}");
        assert!(!v.contains("correct"));
        check_form(&v).unwrap();
        assert!(verify(Some(&v), "correct horse"));
        assert!(!verify(Some(&v), "correct horsE"));
        assert!(!verify(Some(&v), ""));
        assert!(!verify(None, "\u{0}no such user"));
        assert!(!verify(Some("not a verifier"), "correct horse"));
        // Two verifiers of one password differ (salted).
        assert_ne!(v, make("correct horse").unwrap());
        assert!(check_form("$argon2i$v=19$m=16,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo").is_err());
    }

    #[test]
    fn nt_hash_round_trips_through_hex() {
        // RFC 2759 §9.2's example password and its NT hash.
        let hex = nt_hex("clientPass");
        assert_eq!(hex, "44ebba8d5312b8d611474411f56989ae");
        let h = parse_nt(&hex).unwrap();
        assert!(h.matches(&NtHash::of_password("clientPass")));
        assert!(parse_nt("44ebba8d").is_err());
        assert!(parse_nt(&"zz".repeat(16)).is_err());
    }
}
