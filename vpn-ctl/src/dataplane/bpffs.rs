//! Making sure a BPF filesystem is mounted where maps are pinned.
use std::{ffi::CString, path::Path};

use anyhow::Context as _;

const BPF_FS_MAGIC: i64 = 0xcafe4a11;

pub fn is_bpffs(path: &Path) -> bool {
    let Ok(c) = CString::new(path.as_os_str().as_encoded_bytes()) else {
        return false;
    };
    // SAFETY: statfs fills a zeroed struct from a valid path.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::statfs(c.as_ptr(), &mut st) };
    rc == 0 && st.f_type as i64 == BPF_FS_MAGIC
}

/// Mounts bpffs on `path` unless one is there. Returns true if it mounted it.
pub fn ensure_mounted(path: &Path) -> anyhow::Result<bool> {
    if is_bpffs(path) {
        return Ok(false);
    }
    std::fs::create_dir_all(path).with_context(|| format!("create {}", path.display()))?;
    let target = CString::new(path.as_os_str().as_encoded_bytes())?;
    let fstype = CString::new("bpf")?;
    // SAFETY: valid C strings; no data argument.
    let rc = unsafe {
        libc::mount(
            fstype.as_ptr(),
            target.as_ptr(),
            fstype.as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error())
            .with_context(|| format!("cannot mount bpffs on {}", path.display()));
    }
    Ok(true)
}

pub fn unmount(path: &Path) -> anyhow::Result<()> {
    if !is_bpffs(path) {
        return Ok(());
    }
    let c = CString::new(path.as_os_str().as_encoded_bytes())?;
    // SAFETY: valid C string.
    if unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) } != 0 {
        return Err(std::io::Error::last_os_error())
            .with_context(|| format!("cannot unmount {}", path.display()));
    }
    Ok(())
}
