//! `vpn-ctl restart`: ask the daemon to hand over to the binary on disk,
//! and wait until its successor answers.
use std::time::{Duration, Instant};

use crate::{
    config::Config,
    control::{self, Request},
    report::Status,
};

const DEADLINE: Duration = Duration::from_secs(60);

fn status(cfg: &Config) -> anyhow::Result<Status> {
    Ok(serde_json::from_value(control::call(
        &cfg.paths.run_dir,
        &Request::Status,
    )?)?)
}

pub fn run(cfg: &Config) -> anyhow::Result<()> {
    let before = status(cfg)?;
    control::call(&cfg.paths.run_dir, &Request::Restart)?;
    let deadline = Instant::now() + DEADLINE;
    let lock = cfg.paths.run_dir.join(control::LOCK);
    while Instant::now() < deadline {
        // The lock is free only if the daemon is gone: its successor
        // failed to start and undid everything, as a failed `up` does.
        if crate::fsutil::FileLock::try_acquire(&lock)?.is_some() {
            anyhow::bail!(
                "the new daemon did not start (see its log); the gateway is stopped and the host restored"
            );
        }
        // Until the successor binds the control socket, calls fail.
        if let Ok(now) = status(cfg) {
            if now.restarts > before.restarts {
                let report = now.last_restart.unwrap_or_default();
                println!(
                    "vpn-ctl: restarted (pid {}, vpn-ctl {}): {} of {} sessions carried over{}",
                    now.pid,
                    now.version,
                    report.carried,
                    before.sessions,
                    report
                        .describe()
                        .split_once("carried over")
                        .map_or("", |(_, rest)| rest)
                );
                return Ok(());
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    anyhow::bail!(
        "the daemon did not come back within {}s (see its log)",
        DEADLINE.as_secs()
    )
}
