//! A network namespace that is deleted on drop (also when a test panics).
use std::{
    process::{Command, Output},
    sync::atomic::{AtomicU32, Ordering},
};

pub struct Netns {
    pub name: String,
}

static NEXT: AtomicU32 = AtomicU32::new(0);

/// A short prefix unique to this process and call, for namespace names.
pub fn unique_prefix() -> String {
    format!(
        "vt{}x{}",
        std::process::id() % 100_000,
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

pub fn sh(cmd: &str) -> Output {
    Command::new("bash")
        .arg("-c")
        .arg(cmd)
        .output()
        .expect("run sh")
}

/// Runs `cmd` and panics with its output if it fails.
pub fn must(cmd: &str) -> String {
    let out = sh(cmd);
    assert!(
        out.status.success(),
        "`{cmd}` failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

impl Netns {
    pub fn new(name: String) -> Netns {
        let _ = sh(&format!("ip netns del {name} 2>/dev/null"));
        must(&format!("ip netns add {name}"));
        must(&format!("ip -n {name} link set lo up"));
        Netns { name }
    }

    /// Prefix that runs a command inside this namespace. Only the network
    /// namespace changes (unlike `ip netns exec`, /sys and bpffs stay visible).
    pub fn enter(&self) -> String {
        format!("nsenter --net=/run/netns/{}", self.name)
    }

    pub fn cmd(&self, program: &str) -> Command {
        cmd_in(&self.name, program)
    }

    /// Runs a shell command line in this namespace.
    pub fn sh(&self, cmd: &str) -> Output {
        sh(&format!(
            "{} bash -c '{}'",
            self.enter(),
            cmd.replace('\'', "'\\''")
        ))
    }

    pub fn must(&self, cmd: &str) -> String {
        must(&format!(
            "{} bash -c '{}'",
            self.enter(),
            cmd.replace('\'', "'\\''")
        ))
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Kill what still runs inside, then delete the namespace.
        let _ = sh(&format!("ip netns pids {} | xargs -r kill -9", self.name));
        let _ = sh(&format!("ip netns del {}", self.name));
    }
}

/// `program` in the network namespace called `name` (for holders of the
/// name only, which must not delete the namespace as a `Netns` does).
pub fn cmd_in(name: &str, program: &str) -> Command {
    let mut c = Command::new("nsenter");
    c.arg(format!("--net=/run/netns/{name}")).arg(program);
    c
}

/// Stops a child politely: SIGTERM (so it can restore what it changed),
/// then SIGKILL if it has not exited after five seconds.
pub fn terminate(mut c: std::process::Child) -> Option<std::process::ExitStatus> {
    // SAFETY: signalling a child we own.
    unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
    for _ in 0..250 {
        if let Some(st) = c.try_wait().ok().flatten() {
            return Some(st);
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // Not gone in 5 s: SIGKILL, and None (it did not stop as asked).
    let _ = c.kill();
    let _ = c.wait();
    None
}

/// Moves the calling thread into the network namespace `name` (the
/// project's own clients run in the test process this way).
pub fn enter_thread(name: &str) {
    use std::os::fd::AsRawFd as _;
    let f = std::fs::File::open(format!("/run/netns/{name}")).unwrap();
    // SAFETY: setns on an open namespace file; affects this thread only.
    assert_eq!(unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) }, 0);
}

/// Runs `f` on a thread inside network namespace `name`; returns its result.
pub fn in_ns<T: Send + 'static>(name: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let name = name.to_string();
    std::thread::spawn(move || {
        enter_thread(&name);
        f()
    })
    .join()
    .unwrap()
}
