//! Root-only files and directories: created with restrictive modes from the
//! start (no window where a secret is world-readable), replaced atomically.
use std::{
    fs,
    io::Write as _,
    os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _},
    path::Path,
};

use anyhow::Context as _;

/// Creates `dir` (and parents) with mode 0700, or tightens an existing one.
pub fn private_dir(dir: &Path) -> anyhow::Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("cannot create {}", dir.display()))?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
        .with_context(|| format!("cannot chmod {}", dir.display()))
}

/// Writes `data` to `path` with mode 0600 through a temporary file and rename.
pub fn write_private(path: &Path, data: &[u8]) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    let _ = fs::remove_file(&tmp);
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("cannot create {}", tmp.display()))?;
    f.write_all(data)
        .and_then(|()| f.sync_all())
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    fs::rename(&tmp, path).with_context(|| format!("cannot replace {}", path.display()))
}

/// An exclusive `flock` held until drop.
pub struct FileLock {
    _file: fs::File,
}

impl FileLock {
    /// Takes the lock without waiting; `Ok(None)` if another process holds it.
    pub fn try_acquire(path: &Path) -> anyhow::Result<Option<FileLock>> {
        let f = Self::open(path)?;
        // SAFETY: flock on a valid, owned file descriptor.
        let rc = unsafe {
            libc::flock(
                std::os::fd::AsRawFd::as_raw_fd(&f),
                libc::LOCK_EX | libc::LOCK_NB,
            )
        };
        if rc == 0 {
            return Ok(Some(FileLock { _file: f }));
        }
        let err = std::io::Error::last_os_error();
        if err.raw_os_error() == Some(libc::EWOULDBLOCK) {
            return Ok(None);
        }
        Err(err).with_context(|| format!("cannot lock {}", path.display()))
    }

    /// The lock a predecessor held (restart): the same open file, so the
    /// same lock.
    pub fn adopt(fd: std::os::fd::OwnedFd) -> FileLock {
        FileLock {
            _file: fs::File::from(fd),
        }
    }

    pub fn raw_fd(&self) -> std::os::fd::RawFd {
        std::os::fd::AsRawFd::as_raw_fd(&self._file)
    }

    /// Takes the lock, waiting for the holder to release it.
    pub fn acquire(path: &Path) -> anyhow::Result<FileLock> {
        let f = Self::open(path)?;
        // SAFETY: as above.
        let rc = unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&f), libc::LOCK_EX) };
        if rc != 0 {
            return Err(std::io::Error::last_os_error())
                .with_context(|| format!("cannot lock {}", path.display()));
        }
        Ok(FileLock { _file: f })
    }

    fn open(path: &Path) -> anyhow::Result<fs::File> {
        fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(path)
            .with_context(|| format!("cannot open {}", path.display()))
    }
}

/// A random string of `len` characters from an unambiguous alphabet.
pub fn random_secret(len: usize) -> String {
    use rand::Rng as _;
    const ALPHABET: &[u8] = b"abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut rng = rand::rngs::OsRng;
    (0..len)
        .map(|_| char::from(ALPHABET[rng.gen_range(0..ALPHABET.len())]))
        .collect()
}
