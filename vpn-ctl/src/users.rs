//! The one user database every protocol authenticates against:
//! `state_dir/users.toml` (mode 0600), like pppd's chap-secrets: name,
//! password, optional static address. Passwords are stored in clear because
//! CHAP and MS-CHAPv2 need them; they are never printed, logged or sent over
//! the control socket.
use std::{fmt, net::Ipv4Addr, path::Path};

use anyhow::{bail, Context as _};
use serde::{Deserialize, Serialize};

use crate::fsutil;

pub const FILE: &str = "users.toml";
const LOCK: &str = "users.lock";
pub const INITIAL_USER: &str = "vpn";
const GENERATED_PASSWORD_LEN: usize = 20;
pub const MIN_PASSWORD_LEN: usize = 8;

#[derive(Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct User {
    pub name: String,
    pub password: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<Ipv4Addr>,
}

impl fmt::Debug for User {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("User")
            .field("name", &self.name)
            .field("ip", &self.ip)
            .finish_non_exhaustive()
    }
}

/// What `users list` shows: everything but the password.
#[derive(Clone, Debug, Serialize)]
pub struct UserRow {
    pub name: String,
    pub ip: Option<Ipv4Addr>,
}

impl fmt::Display for UserRow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.ip {
            Some(ip) => write!(f, "{}\tstatic {}", self.name, ip),
            None => write!(f, "{}\tpool", self.name),
        }
    }
}

#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct UserDb {
    #[serde(default, rename = "user")]
    pub users: Vec<User>,
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
        let db: UserDb = toml::from_str(&text)
            .map_err(|e| anyhow::anyhow!("{}: {}", path.display(), e.message()))?;
        db.validate()
            .with_context(|| format!("{}", path.display()))?;
        Ok(db)
    }

    fn validate(&self) -> anyhow::Result<()> {
        for (i, u) in self.users.iter().enumerate() {
            check_name(&u.name)?;
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
            toml::to_string(self).context("encode users")?
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
    /// password. Returns the user's name if it did so.
    pub fn create_initial(state_dir: &Path) -> anyhow::Result<Option<&'static str>> {
        if Self::path(state_dir).exists() {
            return Ok(None);
        }
        Self::modify(state_dir, |db| {
            db.add(User {
                name: INITIAL_USER.into(),
                password: fsutil::random_secret(GENERATED_PASSWORD_LEN),
                ip: None,
            })
        })?;
        Ok(Some(INITIAL_USER))
    }

    pub fn add(&mut self, user: User) -> anyhow::Result<()> {
        check_name(&user.name)?;
        if user.password.chars().count() < MIN_PASSWORD_LEN {
            bail!("the password must have at least {MIN_PASSWORD_LEN} characters");
        }
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
            })
            .collect()
    }
}

fn check_name(name: &str) -> anyhow::Result<()> {
    let ok = (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._@-".contains(&b));
    if !ok {
        bail!("user name `{name}`: use 1-64 of a-z A-Z 0-9 . _ @ -");
    }
    Ok(())
}

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
        User {
            name: name.into(),
            password: "correct horse".into(),
            ip,
        }
    }

    #[test]
    fn add_remove_and_limits() {
        let mut db = UserDb::default();
        db.add(user("alice", None)).unwrap();
        assert!(db.add(user("alice", None)).is_err());
        assert!(db.add(user("bad name", None)).is_err());
        let mut short = user("bob", None);
        short.password = "short".into();
        assert!(db.add(short).is_err());
        db.remove("alice").unwrap();
        assert!(db.remove("alice").is_err());
    }

    #[test]
    fn static_addresses_are_unique() {
        let ip = Some(Ipv4Addr::new(10, 99, 0, 7));
        let db = UserDb {
            users: vec![user("a", ip), user("b", ip)],
        };
        assert!(db.validate().unwrap_err().to_string().contains("both have"));
    }

    #[test]
    fn debug_never_shows_the_password() {
        let u = user("alice", None);
        assert!(!format!("{u:?}").contains("horse"));
    }

    #[test]
    fn file_round_trip_is_private() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = std::env::temp_dir().join(format!("vpn-ctl-users-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(UserDb::create_initial(&dir).unwrap(), Some(INITIAL_USER));
        assert_eq!(UserDb::create_initial(&dir).unwrap(), None);
        UserDb::modify(&dir, |db| {
            db.add(user("carol", Some(Ipv4Addr::new(10, 0, 0, 9))))
        })
        .unwrap();
        let db = UserDb::load(&dir).unwrap();
        assert_eq!(db.users.len(), 2);
        assert_eq!(db.users[1].ip, Some(Ipv4Addr::new(10, 0, 0, 9)));
        let mode = std::fs::metadata(UserDb::path(&dir))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
