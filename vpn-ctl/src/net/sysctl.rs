//! Sysctls through /proc/sys (per network namespace for net.*).
use std::path::PathBuf;

use anyhow::Context as _;

pub fn path(key: &str) -> PathBuf {
    PathBuf::from("/proc/sys").join(key.replace('.', "/"))
}

pub fn read(key: &str) -> anyhow::Result<String> {
    let p = path(key);
    Ok(std::fs::read_to_string(&p)
        .with_context(|| format!("cannot read sysctl {key}"))?
        .trim()
        .to_string())
}

pub fn write(key: &str, value: &str) -> anyhow::Result<()> {
    std::fs::write(path(key), value).with_context(|| format!("cannot set sysctl {key}={value}"))
}
