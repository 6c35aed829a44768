//! The undo journal: every change `up` makes to the host is recorded here
//! *before* it is made, and persisted in `run_dir/undo.json`. Unwinding runs
//! the actions in reverse; each action is idempotent, so a change that was
//! recorded but never made is harmless to undo. A daemon that died without
//! cleaning up is cleaned up by the next `up` or by `down`.
//!
//! Things that vanish with the process need no entry: the TUN device (not
//! persistent), XDP/TCX links (bpf_link fds), sockets.
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

use crate::{
    fsutil,
    net::{firewall, nft, sysctl},
};

const FILE: &str = "undo.json";

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Action {
    RestoreSysctl {
        key: String,
        value: String,
    },
    DeleteNftTable,
    DeleteIptablesRule {
        args: Vec<String>,
    },
    RemovePins {
        dir: PathBuf,
    },
    /// Unmount bpffs we mounted, if nothing else was pinned there meanwhile.
    UnmountBpffs {
        path: PathBuf,
    },
    /// A route `connect` added outside its tunnel interface.
    DeleteRoute {
        prefix: String,
        via: Option<std::net::Ipv4Addr>,
        oif: u32,
    },
    /// Put a file back as it was (`connect` and resolv.conf): its content,
    /// or the symlink it was, or nothing if it did not exist.
    RestoreFile {
        path: PathBuf,
        content: Option<String>,
        symlink: Option<PathBuf>,
    },
}

impl Action {
    fn run(&self) -> anyhow::Result<()> {
        match self {
            Action::RestoreSysctl { key, value } => sysctl::write(key, value),
            Action::DeleteNftTable => nft::delete_table(),
            Action::DeleteIptablesRule { args } => {
                // Already gone is fine (recorded before it was inserted).
                let _ = firewall::iptables("-D", args);
                Ok(())
            }
            Action::RemovePins { dir } => match std::fs::remove_dir_all(dir) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    Err(e).with_context(|| format!("remove {}", dir.display()))
                }
                _ => Ok(()),
            },
            Action::UnmountBpffs { path } => {
                // The kernel preloads these iterators into every bpffs.
                let empty = std::fs::read_dir(path)
                    .map(|d| {
                        d.flatten().all(|e| {
                            matches!(e.file_name().to_str(), Some("maps.debug" | "progs.debug"))
                        })
                    })
                    .unwrap_or(false);
                if empty {
                    crate::dataplane::bpffs::unmount(path)?;
                }
                Ok(())
            }
            Action::DeleteRoute { prefix, via, oif } => {
                let prefix = prefix.parse().map_err(anyhow::Error::msg)?;
                let (via, oif) = (*via, *oif);
                // Undo may run inside or outside a runtime: netlink on a thread of its own.
                std::thread::spawn(move || -> anyhow::Result<()> {
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()?;
                    rt.block_on(async {
                        let nl = crate::net::netlink::Netlink::connect()?;
                        // Already gone (e.g. its interface went away) is fine.
                        let _ = nl.del_route(prefix, via, oif).await;
                        Ok(())
                    })
                })
                .join()
                .map_err(|_| anyhow::anyhow!("route removal panicked"))?
            }
            Action::RestoreFile {
                path,
                content,
                symlink,
            } => {
                let _ = std::fs::remove_file(path);
                if let Some(target) = symlink {
                    std::os::unix::fs::symlink(target, path)
                        .with_context(|| format!("restore symlink {}", path.display()))?;
                } else if let Some(text) = content {
                    std::fs::write(path, text)
                        .with_context(|| format!("restore {}", path.display()))?;
                }
                Ok(())
            }
        }
    }
}

pub struct Journal {
    path: PathBuf,
    actions: Vec<Action>,
}

impl Journal {
    pub fn new(run_dir: &Path) -> Journal {
        Journal {
            path: run_dir.join(FILE),
            actions: Vec::new(),
        }
    }

    /// The journal a predecessor wrote (restart): its changes are ours to
    /// undo now.
    pub fn adopt(run_dir: &Path) -> anyhow::Result<Journal> {
        let path = run_dir.join(FILE);
        let actions = match std::fs::read(&path) {
            Ok(text) => serde_json::from_slice(&text)
                .with_context(|| format!("corrupt undo journal {}", path.display()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e).with_context(|| format!("read {}", path.display())),
        };
        Ok(Journal { path, actions })
    }

    /// Records `action`, to be run on unwind.
    pub fn record(&mut self, action: Action) -> anyhow::Result<()> {
        self.actions.push(action);
        self.persist()
    }

    fn persist(&self) -> anyhow::Result<()> {
        let text = serde_json::to_vec_pretty(&self.actions)?;
        fsutil::write_private(&self.path, &text)
    }

    /// Undoes everything, newest first. Returns the failures (already logged).
    /// Whether teardown will unmount a bpffs (which needs CAP_SYS_ADMIN).
    pub fn unmounts_bpffs(&self) -> bool {
        self.actions
            .iter()
            .any(|a| matches!(a, Action::UnmountBpffs { .. }))
    }

    pub fn unwind(&mut self) -> Vec<String> {
        let mut errors = Vec::new();
        while let Some(a) = self.actions.pop() {
            if let Err(e) = a.run() {
                log::error!("undo {a:?}: {e:#}");
                errors.push(format!("{e:#}"));
            }
            if let Err(e) = self.persist() {
                log::error!("undo journal: {e:#}");
            }
        }
        let _ = std::fs::remove_file(&self.path);
        errors
    }

    /// Unwinds a journal left by a daemon that did not exit cleanly.
    /// Returns how many actions it undid (None: there was no journal).
    pub fn recover(run_dir: &Path) -> anyhow::Result<Option<usize>> {
        let path = run_dir.join(FILE);
        let text = match std::fs::read(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("read {}", path.display())),
        };
        let actions: Vec<Action> = serde_json::from_slice(&text)
            .with_context(|| format!("corrupt undo journal {}", path.display()))?;
        let n = actions.len();
        let mut j = Journal { path, actions };
        j.unwind();
        Ok(Some(n))
    }
}
