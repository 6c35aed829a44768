//! The one user database every protocol authenticates against:
//! `state_dir/users.toml` (mode 0600): name, password verifiers, optional
//! static address. No password is stored (docs/decisions.md #42): an
//! argon2id verifier checks logins that send the password (native, PAP),
//! and the NT hash checks MS-CHAPv2 (PPTP, L2TP), for users allowed PPP.
//! A file from before that, with clear passwords, is migrated when loaded.
use std::{fmt, net::Ipv4Addr, path::Path};

use anyhow::{bail, Context as _};
use serde::{Deserialize, Serialize};
use vpn_proto::ppp::mschap::NtHash;
use zeroize::Zeroize as _;

use crate::fsutil;

pub mod login_cache;
pub mod verifier;

pub const FILE: &str = "users.toml";
const LOCK: &str = "users.lock";
pub const INITIAL_USER: &str = "vpn";
/// The first user's generated password, for the operator to read once;
/// removed when that password is changed or the user deleted.
pub const INITIAL_PASSWORD_FILE: &str = "initial-password";
const GENERATED_PASSWORD_LEN: usize = 20;
pub const MIN_PASSWORD_LEN: usize = 8;

#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct User {
    pub name: String,
    /// argon2id verifier of the password (PHC string).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    verifier: Option<String>,
    /// MD4 of the password (hex), what MS-CHAPv2 checks; absent for users
    /// who may log in with the native protocol only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    nt_hash: Option<String>,
    /// Files written before #42 held the password in clear: read, turned
    /// into the two above, wiped, never written.
    #[serde(default, skip_serializing)]
    password: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<Ipv4Addr>,
}

impl User {
    /// A user with `password`; `ppp`: may log in over PPTP and L2TP
    /// (MS-CHAPv2), which needs the NT hash stored too.
    pub fn new(
        name: &str,
        password: &str,
        ip: Option<Ipv4Addr>,
        ppp: bool,
    ) -> anyhow::Result<User> {
        check_name(name)?;
        let mut u = User {
            name: name.into(),
            verifier: None,
            nt_hash: None,
            password: None,
            ip,
        };
        u.set_password(password, ppp)?;
        Ok(u)
    }

    pub fn set_password(&mut self, password: &str, ppp: bool) -> anyhow::Result<()> {
        if password.chars().count() < MIN_PASSWORD_LEN {
            bail!("the password must have at least {MIN_PASSWORD_LEN} characters");
        }
        self.verifier = Some(verifier::make(password)?);
        self.nt_hash = ppp.then(|| verifier::nt_hex(password));
        Ok(())
    }

    /// The argon2id verifier (None only before `validate`).
    pub fn verifier(&self) -> Option<&str> {
        self.verifier.as_deref()
    }

    /// What MS-CHAPv2 and PAP check; None for a native-only user.
    pub fn nt_hash(&self) -> Option<NtHash> {
        self.nt_hash
            .as_deref()
            .and_then(|h| verifier::parse_nt(h).ok())
    }

    pub fn ppp(&self) -> bool {
        self.nt_hash.is_some()
    }

    /// Turns a clear password from an old file into verifiers.
    fn migrate(&mut self) -> anyhow::Result<bool> {
        let Some(mut pw) = self.password.take() else {
            return Ok(false);
        };
        self.verifier = Some(verifier::make(&pw)?);
        self.nt_hash = Some(verifier::nt_hex(&pw));
        pw.zeroize();
        Ok(true)
    }
}

impl fmt::Debug for User {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("User")
            .field("name", &self.name)
            .field("ip", &self.ip)
            .finish_non_exhaustive()
    }
}

/// What `users list` shows: no verifier, no hash.
#[derive(Clone, Debug, Serialize)]
pub struct UserRow {
    pub name: String,
    pub ip: Option<Ipv4Addr>,
    /// May log in over PPTP and L2TP (MS-CHAPv2), not only native.
    pub ppp: bool,
}

impl fmt::Display for UserRow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.ip {
            Some(ip) => write!(f, "{}\tstatic {}", self.name, ip)?,
            None => write!(f, "{}\tpool", self.name)?,
        }
        f.write_str(if self.ppp {
            "\tall protocols"
        } else {
            "\tnative only"
        })
    }
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct UserDb {
    #[serde(default, rename = "user")]
    pub users: Vec<User>,
    /// How many users `load` migrated from clear passwords (not yet saved).
    #[serde(skip)]
    migrated: usize,
}

impl UserDb {
    pub fn find(&self, name: &str) -> Option<&User> {
        self.users.iter().find(|u| u.name == name)
    }

    /// Static addresses of all users: never handed out from the pool.
    pub fn reserved_addresses(&self) -> std::collections::HashSet<std::net::Ipv4Addr> {
        self.users.iter().filter_map(|u| u.ip).collect()
    }

    pub fn path(state_dir: &Path) -> std::path::PathBuf {
        state_dir.join(FILE)
    }

    /// Loads the database; a missing file is an empty database.
    pub fn load(state_dir: &Path) -> anyhow::Result<UserDb> {
        let path = Self::path(state_dir);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(UserDb::default()),
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        };
        Self::parse(&text).with_context(|| format!("{}", path.display()))
    }

    /// The database in `text` (users.toml's form), clear passwords of an
    /// old file turned into verifiers, checked.
    pub fn parse(text: &str) -> anyhow::Result<UserDb> {
        let mut db: UserDb =
            toml::from_str(text).map_err(|e| anyhow::anyhow!("{}", e.message()))?;
        for u in &mut db.users {
            if u.migrate()? {
                db.migrated += 1;
            }
        }
        db.validate()?;
        Ok(db)
    }

    /// users.toml's text for this database (what `parse` reads back).
    pub fn to_text(&self) -> anyhow::Result<String> {
        toml::to_string(self).context("users.toml")
    }

    /// Rewrites a file that still holds clear passwords (once, on start).
    /// Returns how many users it migrated.
    pub fn migrate(state_dir: &Path) -> anyhow::Result<usize> {
        if !Self::path(state_dir).exists() {
            return Ok(0);
        }
        Self::modify(state_dir, |db| Ok(db.migrated))
    }

    fn validate(&self) -> anyhow::Result<()> {
        for (i, u) in self.users.iter().enumerate() {
            check_name(&u.name)?;
            let Some(v) = &u.verifier else {
                bail!("user `{}` has neither a verifier nor a password", u.name);
            };
            verifier::check_form(v).with_context(|| format!("user `{}`", u.name))?;
            if let Some(h) = &u.nt_hash {
                verifier::parse_nt(h).with_context(|| format!("user `{}`", u.name))?;
            }
            if self.users[..i].iter().any(|o| o.name == u.name) {
                bail!("user `{}` appears twice", u.name);
            }
            if let Some(ip) = u.ip {
                if let Some(o) = self.users[..i].iter().find(|o| o.ip == Some(ip)) {
                    bail!(
                        "users `{}` and `{}` both have static address {ip}",
                        o.name,
                        u.name
                    );
                }
            }
        }
        Ok(())
    }

    fn save(&self, state_dir: &Path) -> anyhow::Result<()> {
        let text = format!(
            "# vpn-ctl users (root-only). Edit with `vpn-ctl users add/del`.\n{}",
            self.to_text()?
        );
        fsutil::write_private(&Self::path(state_dir), text.as_bytes())
    }

    /// Runs a read-modify-write of the database under its lock.
    pub fn modify<T>(
        state_dir: &Path,
        f: impl FnOnce(&mut UserDb) -> anyhow::Result<T>,
    ) -> anyhow::Result<T> {
        fsutil::private_dir(state_dir)?;
        let _lock = fsutil::FileLock::acquire(&state_dir.join(LOCK))?;
        let mut db = Self::load(state_dir)?;
        let out = f(&mut db)?;
        db.validate()?;
        db.save(state_dir)?;
        Ok(out)
    }

    /// On first start: creates the database with one user and a random
    /// password, which goes to `INITIAL_PASSWORD_FILE` (0600) for the
    /// operator. Returns the user's name if it did so.
    pub fn create_initial(state_dir: &Path) -> anyhow::Result<Option<&'static str>> {
        if Self::path(state_dir).exists() {
            return Ok(None);
        }
        fsutil::private_dir(state_dir)?;
        let password = zeroize::Zeroizing::new(fsutil::random_secret(GENERATED_PASSWORD_LEN));
        let user = User::new(INITIAL_USER, &password, None, true)?;
        let text = zeroize::Zeroizing::new(format!(
            "{}\n# the password of user `{INITIAL_USER}`; this file goes away when it is changed (vpn-ctl users passwd {INITIAL_USER})\n",
            *password
        ));
        fsutil::write_private(&state_dir.join(INITIAL_PASSWORD_FILE), text.as_bytes())?;
        Self::modify(state_dir, |db| db.add(user))?;
        Ok(Some(INITIAL_USER))
    }

    /// Forgets the first user's generated password (changed or deleted).
    pub fn forget_initial_password(state_dir: &Path, name: &str) -> anyhow::Result<()> {
        if name != INITIAL_USER {
            return Ok(());
        }
        match std::fs::remove_file(state_dir.join(INITIAL_PASSWORD_FILE)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
            _ => Ok(()),
        }
    }

    pub fn find_mut(&mut self, name: &str) -> anyhow::Result<&mut User> {
        self.users
            .iter_mut()
            .find(|u| u.name == name)
            .with_context(|| format!("no user `{name}`"))
    }

    pub fn add(&mut self, user: User) -> anyhow::Result<()> {
        if self.users.iter().any(|u| u.name == user.name) {
            bail!("user `{}` already exists", user.name);
        }
        self.users.push(user);
        Ok(())
    }

    pub fn remove(&mut self, name: &str) -> anyhow::Result<()> {
        let before = self.users.len();
        self.users.retain(|u| u.name != name);
        if self.users.len() == before {
            bail!("no user `{name}`");
        }
        Ok(())
    }

    pub fn rows(&self) -> Vec<UserRow> {
        self.users
            .iter()
            .map(|u| UserRow {
                name: u.name.clone(),
                ip: u.ip,
                ppp: u.ppp(),
            })
            .collect()
    }
}

/// A user name vpn-ctl accepts.
pub fn check_name(name: &str) -> anyhow::Result<()> {
    let ok = (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._@-".contains(&b));
    if !ok {
        bail!("user name `{name}`: use 1-64 of a-z A-Z 0-9 . _ @ -");
    }
    Ok(())
}

vpn_proto::assert_not_clone!(User);

/// A user name fit for a log line (it comes from the network).
pub fn printable(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_ascii_graphic() { c } else { '?' })
        .take(64)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(name: &str, ip: Option<Ipv4Addr>) -> User {
        User::new(name, "correct horse", ip, true).unwrap()
    }

    #[test]
    fn add_remove_and_limits() {
        let mut db = UserDb::default();
        db.add(user("alice", None)).unwrap();
        assert!(db.add(user("alice", None)).is_err());
        assert!(User::new("bad name", "correct horse", None, true).is_err());
        assert!(User::new("bob", "short", None, true).is_err());
        db.remove("alice").unwrap();
        assert!(db.remove("alice").is_err());
    }

    #[test]
    fn native_only_users_have_no_nt_hash() {
        let u = User::new("carol", "correct horse", None, false).unwrap();
        assert!(u.nt_hash().is_none() && !u.ppp());
        assert!(verifier::verify(u.verifier(), "correct horse"));
        let u = user("dave", None);
        assert!(u
            .nt_hash()
            .unwrap()
            .matches(&NtHash::of_password("correct horse")));
    }

    #[test]
    fn static_addresses_are_unique() {
        let ip = Some(Ipv4Addr::new(10, 99, 0, 7));
        let db = UserDb {
            users: vec![user("a", ip), user("b", ip)],
            migrated: 0,
        };
        assert!(db.validate().unwrap_err().to_string().contains("both have"));
    }

    #[test]
    fn debug_never_shows_the_password() {
        let u = user("alice", None);
        assert!(!format!("{u:?}").contains("horse"));
    }

    #[test]
    fn file_round_trip_is_private_and_holds_no_password() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = std::env::temp_dir().join(format!("vpn-ctl-users-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(UserDb::create_initial(&dir).unwrap(), Some(INITIAL_USER));
        assert_eq!(UserDb::create_initial(&dir).unwrap(), None);
        let initial = std::fs::read_to_string(dir.join(INITIAL_PASSWORD_FILE)).unwrap();
        let initial = initial.lines().next().unwrap();
        let db = UserDb::load(&dir).unwrap();
        assert!(verifier::verify(
            db.find(INITIAL_USER).unwrap().verifier(),
            initial
        ));
        let text = std::fs::read_to_string(UserDb::path(&dir)).unwrap();
        assert!(
            !text.contains(initial) && !text.contains("password"),
            "{text}"
        );
        UserDb::modify(&dir, |db| {
            db.add(user("carol", Some(Ipv4Addr::new(10, 0, 0, 9))))
        })
        .unwrap();
        let db = UserDb::load(&dir).unwrap();
        assert_eq!(db.users.len(), 2);
        let text = std::fs::read(UserDb::path(&dir)).unwrap();
        vpn_proto::fuzz_seed::save("users_file", &text);
        assert_eq!(db.users[1].ip, Some(Ipv4Addr::new(10, 0, 0, 9)));
        let mode = std::fs::metadata(UserDb::path(&dir))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        UserDb::forget_initial_password(&dir, INITIAL_USER).unwrap();
        assert!(!dir.join(INITIAL_PASSWORD_FILE).exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn clear_passwords_of_an_old_file_are_migrated_once() {
        let dir = std::env::temp_dir().join(format!("vpn-ctl-users-old-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        fsutil::private_dir(&dir).unwrap();
        let old = "[[user]]\nname = \"erin\"\npassword = \"old-clear-pass\"\nip = \"10.0.0.5\"\n";
        fsutil::write_private(&UserDb::path(&dir), old.as_bytes()).unwrap();
        assert_eq!(UserDb::migrate(&dir).unwrap(), 1);
        assert_eq!(UserDb::migrate(&dir).unwrap(), 0);
        let text = std::fs::read_to_string(UserDb::path(&dir)).unwrap();
        assert!(
            !text.contains("old-clear-pass") && text.contains("$argon2id$"),
            "{text}"
        );
        let db = UserDb::load(&dir).unwrap();
        let u = db.find("erin").unwrap();
        assert_eq!(u.ip, Some(Ipv4Addr::new(10, 0, 0, 5)));
        assert!(verifier::verify(u.verifier(), "old-clear-pass"));
        assert!(u
            .nt_hash()
            .unwrap()
            .matches(&NtHash::of_password("old-clear-pass")));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_user_without_verifier_or_password_is_an_error() {
        let db: UserDb = toml::from_str("[[user]]\nname = \"x\"\n").unwrap();
        assert!(db.validate().unwrap_err().to_string().contains("neither"));
    }
}
