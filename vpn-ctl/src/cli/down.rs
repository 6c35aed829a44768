//! `vpn-ctl down`: ask the daemon to stop and wait until it has restored the
//! host; with no daemon, undo what a crashed one left behind.
use std::time::{Duration, Instant};

use crate::{
    config::Config,
    control::{self, NotRunning, Request},
    daemon::undo::Journal,
    fsutil::FileLock,
};

const STOP_DEADLINE: Duration = Duration::from_secs(30);

pub fn run(cfg: &Config) -> anyhow::Result<()> {
    let run_dir = &cfg.paths.run_dir;
    match control::call(run_dir, &Request::Shutdown) {
        Ok(_) => {}
        Err(e) if e.is::<NotRunning>() => {
            if run_dir.exists() && FileLock::try_acquire(&run_dir.join(control::LOCK))?.is_some() {
                if let Some(n) = Journal::recover(run_dir)? {
                    println!("vpn-ctl was not running; undid {n} changes left by a daemon that did not exit cleanly");
                    return Ok(());
                }
            }
            return Err(e);
        }
        Err(e) => return Err(e),
    }
    // The daemon holds the lock until it has undone everything.
    let deadline = Instant::now() + STOP_DEADLINE;
    let lock = run_dir.join(control::LOCK);
    while Instant::now() < deadline {
        if FileLock::try_acquire(&lock)?.is_some() {
            println!("vpn-ctl: gateway stopped");
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    anyhow::bail!(
        "the daemon did not stop within {}s",
        STOP_DEADLINE.as_secs()
    )
}
