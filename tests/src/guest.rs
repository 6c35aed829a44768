//! A Debian guest under QEMU (TCG) attached to the topology by a tap device,
//! driven through its serial agent: the way tests run real VPN clients
//! (pppd/pptp-linux, xl2tpd, strongSwan), which this host's kernel cannot.
//! See docs/interop.md.
use std::{
    fs,
    io::{BufRead as _, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use crate::{
    guest_agent::{Agent, ScriptRun},
    netns::{must, Netns},
    topology::Topology,
    wait,
};

/// Booting takes ~5 s alone; allow for a loaded 2-core machine.
pub const BOOT_TIMEOUT: Duration = Duration::from_secs(150);

/// Where a guest plugs into the topology. The number (1-9) tells apart
/// guests of one topology and picks their addresses.
#[derive(Clone, Copy, Debug)]
pub enum Site {
    /// A host on the internet: its own /24 behind the inet router,
    /// 198.18.(20+n).2 with the router at .1.
    Internet(u8),
    /// A host on the NAT box's LAN (192.168.50.(10+n)), masqueraded to 198.18.2.2.
    BehindNat(u8),
}

impl Site {
    fn index(self) -> u8 {
        let (Site::Internet(n) | Site::BehindNat(n)) = self;
        assert!((1..=9).contains(&n), "guest number {n} is not in 1..=9");
        n
    }

    /// The guest's address.
    pub fn addr(self) -> String {
        match self {
            Site::Internet(n) => format!("198.18.{}.2", 20 + n),
            Site::BehindNat(n) => format!("192.168.50.{}", 10 + n),
        }
    }

    fn gateway(self) -> String {
        match self {
            Site::Internet(n) => format!("198.18.{}.1", 20 + n),
            Site::BehindNat(_) => "192.168.50.1".into(),
        }
    }

    fn tap(self) -> String {
        match self {
            Site::Internet(n) => format!("gi{n}"),
            Site::BehindNat(n) => format!("gn{n}"),
        }
    }

    fn mac(self) -> String {
        match self {
            Site::Internet(n) => format!("52:54:00:00:01:{n:02x}"),
            Site::BehindNat(n) => format!("52:54:00:00:02:{n:02x}"),
        }
    }

    fn router(self, t: &Topology) -> &Netns {
        match self {
            Site::Internet(_) => &t.inet,
            Site::BehindNat(_) => &t.nat,
        }
    }
}

pub struct Guest {
    pub name: String,
    pub site: Site,
    router_ns: String,
    dir: PathBuf,
    qemu: Child,
    tcpdump: Child,
    agent: Option<Agent>,
    /// The run slots this guest (and those started with it) holds.
    _slots: std::sync::Arc<Slots>,
}

/// How long a test may wait for guest slots (other tests' guests finish).
const SLOT_WAIT: Duration = Duration::from_secs(900);

/// Guests running at once, across every test process: one per core (each
/// has one vCPU under TCG), so the gateways under test are not starved.
fn max_guests() -> usize {
    std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .max(1)
}

/// Locks on slot files (flock), released when the files close.
pub struct Slots {
    _locked: Vec<std::fs::File>,
}

impl Slots {
    /// Takes `n` slots at once (all or none, so two tests each holding one
    /// cannot wait on each other), waiting for other guests to end.
    fn take(n: usize) -> Slots {
        use std::os::fd::AsRawFd as _;
        let n = n.min(max_guests());
        let dir = std::env::temp_dir().join("vpn-ctl-guest-slots");
        fs::create_dir_all(&dir).unwrap();
        wait::until(&format!("{n} guest slots"), SLOT_WAIT, || {
            let mut held = Vec::new();
            for i in 0..max_guests() {
                let f = fs::OpenOptions::new()
                    .create(true)
                    .truncate(false)
                    .write(true)
                    .open(dir.join(i.to_string()))
                    .unwrap();
                // SAFETY: flock on a file this function owns.
                if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
                    held.push(f);
                    if held.len() == n {
                        return Some(Slots { _locked: held });
                    }
                }
            }
            None // dropping `held` unlocks what was taken
        })
    }
}

/// The cached image that `cargo xtask guest-image` builds.
fn image_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/guest");
    assert!(
        dir.join("rootfs.ext4").exists(),
        "no guest image at {}: run `cargo xtask guest-image`",
        dir.display()
    );
    dir
}

fn artifacts_dir(ns: &str, name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../target/interop")
        .join(format!("{ns}-{name}"));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

impl Guest {
    /// Boots one guest and waits until its agent answers.
    pub fn start(t: &Topology, name: &str, site: Site) -> Guest {
        Self::start_all(t, &[(name, site)]).pop().unwrap()
    }

    /// Boots several guests at once (they boot in parallel) and waits for all.
    pub fn start_all(t: &Topology, specs: &[(&str, Site)]) -> Vec<Guest> {
        let slots = std::sync::Arc::new(Slots::take(specs.len()));
        let mut guests: Vec<Guest> = specs
            .iter()
            .map(|&(name, site)| Guest::spawn(t, name, site, slots.clone()))
            .collect();
        let deadline = Instant::now() + BOOT_TIMEOUT;
        for g in &mut guests {
            let sock = g.dir.join("agent.sock");
            let ready = Agent::connect(&sock, deadline).and_then(|mut a| {
                a.wait_ready(deadline)?;
                Ok(a)
            });
            match ready {
                Ok(a) => g.agent = Some(a),
                Err(e) => panic!("{}", g.report(&format!("did not boot: {e}"), "")),
            }
        }
        guests
    }

    fn spawn(t: &Topology, name: &str, site: Site, slots: std::sync::Arc<Slots>) -> Guest {
        site.index();
        let image = image_dir();
        let router = site.router(t);
        let dir = artifacts_dir(&router.name, name);
        let tap = site.tap();
        must(&format!(
            "ip -n {} tuntap add dev {tap} mode tap",
            router.name
        ));
        let attach = match site {
            Site::Internet(_) => format!("ip addr add {}/24 dev {tap}", site.gateway()),
            Site::BehindNat(_) => format!("ip link set {tap} master br0"),
        };
        router.must(&attach);
        router.must(&format!("ip link set {tap} up"));
        let tcpdump = start_capture(router, &tap, &dir);
        let append = format!(
            "console=ttyS0 quiet panic=-1 {GUEST_NET_PARAMS} vpn.name={name} vpn.ip={}/24 vpn.gw={}",
            site.addr(),
            site.gateway()
        );
        let qemu = router
            .cmd("qemu-system-x86_64")
            .args(["-accel", "tcg,thread=multi", "-cpu", "qemu64"])
            // One vCPU: the gateway under test keeps a host core.
            .args(["-m", "256", "-smp", "1", "-display", "none"])
            .args(["-no-reboot", "-nodefaults"])
            .arg("-kernel")
            .arg(image.join("vmlinux"))
            .arg("-initrd")
            .arg(image.join("initrd.cpio"))
            .args(["-append", &append])
            .arg("-netdev")
            .arg(format!("tap,id=n0,ifname={tap},script=no,downscript=no"))
            .arg("-device")
            .arg(format!(
                "virtio-net-pci,netdev=n0,romfile=,mac={}",
                site.mac()
            ))
            .args(["-device", "virtio-rng-pci"])
            .arg("-drive")
            .arg(format!(
                "file={},if=virtio,format=raw,snapshot=on",
                image.join("rootfs.ext4").display()
            ))
            .arg("-serial")
            .arg(format!("file:{}", dir.join("console.log").display()))
            .arg("-chardev")
            .arg(format!(
                "socket,id=agent,path={},server=on,wait=off",
                dir.join("agent.sock").display()
            ))
            .args(["-serial", "chardev:agent"])
            .stdin(Stdio::null())
            .stdout(fs::File::create(dir.join("qemu.log")).unwrap())
            .stderr(fs::File::create(dir.join("qemu.err")).unwrap())
            .spawn()
            .expect("run qemu-system-x86_64");
        Guest {
            name: name.into(),
            site,
            router_ns: router.name.clone(),
            dir,
            qemu,
            tcpdump,
            agent: None,
            _slots: slots,
        }
    }

    /// The guest's own address on its site.
    pub fn addr(&self) -> String {
        self.site.addr()
    }

    /// The packets on the guest's tap so far, one line each as `tcpdump -n`
    /// prints them, that match the pcap `filter` (the ring's files in order;
    /// a test's capture stays in the first one unless it moves ~256 MB).
    pub fn capture(&self, filter: &str) -> String {
        let mut all = String::new();
        for i in 0..4 {
            let file = self.dir.join(format!("tap.pcap{i}"));
            if !file.exists() {
                break;
            }
            let out = Command::new("tcpdump")
                .args(["-n", "-r"])
                .arg(&file)
                .arg(filter)
                .stderr(Stdio::null())
                .output()
                .expect("run tcpdump -r");
            all.push_str(&String::from_utf8_lossy(&out.stdout));
        }
        all
    }

    /// Runs a bash script in the guest, stopped after `timeout`.
    /// Panics only when the guest itself is lost (hung or QEMU gone).
    pub fn run(&mut self, script: &str, timeout: Duration) -> ScriptRun {
        let agent = self.agent.as_mut().expect("guest is booted");
        match agent.run(script, timeout) {
            Ok(r) => r,
            Err(e) => panic!("{}", self.report(&e, script)),
        }
    }

    /// Runs a script that must exit 0; returns its output. On failure the
    /// panic message holds the output, the console's tail and where the
    /// console log and packet capture were kept.
    pub fn must(&mut self, script: &str, timeout: Duration) -> String {
        let r = self.run(script, timeout);
        if r.code != 0 {
            let what = if r.code == 124 {
                format!("timed out after {timeout:?}")
            } else {
                format!("exited with code {}", r.code)
            };
            let state = self.network_state();
            panic!(
                "{}",
                self.report(
                    &format!("{what}\n{state}--- output ---\n{}", shorten(&r.output)),
                    script
                )
            );
        }
        r.output
    }

    /// The guest's and its tap's network state, for a failure report: what
    /// tells a stalled receive path, an unresolved neighbour or a dead
    /// client process apart.
    fn network_state(&mut self) -> String {
        let guest = match self.agent.as_mut() {
            Some(a) => match a.run(GUEST_STATE_SCRIPT, Duration::from_secs(20)) {
                Ok(r) => r.output,
                Err(e) => format!("(guest state not read: {e})\n"),
            },
            None => String::new(),
        };
        let tap = Command::new("ip")
            .args([
                "-n",
                &self.router_ns,
                "-s",
                "link",
                "show",
                &self.site.tap(),
            ])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        format!("--- guest network state ---\n{guest}--- its tap, host side ---\n{tap}")
    }

    fn report(&self, what: &str, script: &str) -> String {
        let console = fs::read_to_string(self.dir.join("console.log")).unwrap_or_default();
        let tail: Vec<&str> = console.lines().rev().take(30).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        format!(
            "guest {} ({}): script\n{}\n{what}\n--- guest console (last lines) ---\n{}\n\
             --- console log, packet capture and QEMU logs kept in {} ---",
            self.name,
            self.addr(),
            script.trim(),
            tail.join("\n"),
            self.dir.display()
        )
    }
}

/// virtio-net without transmit NAPI (the guest's modprobe reads it from the
/// kernel command line). With it, the guest's eth0 now and then stopped
/// transmitting for good under load (two CI failures; docs/interop.md), most
/// likely a stopped queue waiting on a completion interrupt it never asked
/// for. Without it, completions are reaped as packets are sent.
const GUEST_NET_PARAMS: &str = "virtio_net.napi_tx=0";

/// Run in the guest when a script fails (busybox-level tools only).
const GUEST_STATE_SCRIPT: &str = "ip -s link show eth0; ip -s link show ppp0 2>/dev/null; \
     ip neigh show; grep -A1 '^Tcp:' /proc/net/snmp; grep virtio /proc/interrupts; \
     for p in pppd pptp xl2tpd charon iperf3; do pidof $p >/dev/null && echo \"$p running\"; done; \
     grep -E 'MemFree|MemAvailable' /proc/meminfo; tc -s qdisc show dev eth0 | head -4; \
     echo \"tx-0 inflight $(cat /sys/class/net/eth0/queues/tx-0/byte_queue_limits/inflight 2>/dev/null) \
     timeouts $(cat /sys/class/net/eth0/queues/tx-0/tx_timeout 2>/dev/null)\"; dmesg | tail -8; true";

/// A long output's first and last lines (a stalled iperf3 prints hundreds).
fn shorten(output: &str) -> String {
    let lines: Vec<&str> = output.lines().collect();
    if lines.len() <= 40 {
        return output.to_string();
    }
    format!(
        "{}\n[… {} lines …]\n{}",
        lines[..15].join("\n"),
        lines.len() - 30,
        lines[lines.len() - 15..].join("\n")
    )
}

/// tcpdump on the guest's tap, on the host side: kept on failure. Whole
/// packets, in a ring of four files of 256 MB (tap.pcap0..3), so a long
/// benchmark keeps its last gigabyte instead of filling the disk. `-Z
/// root`: with -C, tcpdump drops to its own user before it opens each
/// file, and target/interop is root's.
fn start_capture(router: &Netns, tap: &str, dir: &Path) -> Child {
    let mut child = router
        .cmd("tcpdump")
        .args([
            "-i", tap, "-n", "-U", "-s", "0", "-C", "256", "-W", "4", "-Z", "root", "-w",
        ])
        .arg(dir.join("tap.pcap"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run tcpdump");
    // Wait until it listens, so the capture holds the guest's first packets.
    let stderr = child.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    let listening = lines.any(|l| l.is_ok_and(|l| l.contains("listening on")));
    assert!(listening, "tcpdump on {tap} did not start");
    // Keep draining its stderr so it never blocks on a full pipe.
    std::thread::spawn(move || lines.for_each(drop));
    child
}

impl Drop for Guest {
    fn drop(&mut self) {
        let _ = self.qemu.kill();
        let _ = self.qemu.wait();
        // SIGINT lets tcpdump flush the capture.
        unsafe { libc::kill(self.tcpdump.id() as i32, libc::SIGINT) };
        let _ = self.tcpdump.wait();
        let _ = Command::new("ip")
            .args(["-n", &self.router_ns, "link", "del", &self.site.tap()])
            .output();
        if std::thread::panicking() {
            eprintln!(
                "guest {}: console log and capture kept in {}",
                self.name,
                self.dir.display()
            );
        } else {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}
