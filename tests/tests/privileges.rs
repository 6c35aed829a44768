//! After setup the daemon keeps only the documented capabilities, in every
//! thread (docs/decisions.md #43), and still restores the host on `down`.
//! Needs root.
use vpn_tests::{
    gateway::{Gateway, GatewayFiles},
    snapshot::Snapshot,
    topology::Topology,
};

const NET_ADMIN: u64 = 1 << 12;
const NET_RAW: u64 = 1 << 13;
const SYS_ADMIN: u64 = 1 << 21;
const BPF: u64 = 1 << 39;

fn field(status: &str, name: &str) -> u64 {
    let v = status
        .lines()
        .find_map(|l| l.strip_prefix(name))
        .unwrap_or_else(|| panic!("no {name} in {status}"));
    u64::from_str_radix(v.trim(), 16).unwrap()
}

#[test]
fn every_thread_keeps_only_the_documented_capabilities_and_down_still_restores_the_host() {
    let t = Topology::build();
    let files = GatewayFiles::new(
        &t.gw,
        "[pptp]\nenabled = true\n[l2tp]\nenabled = true\nallow_plain = true\n",
    );
    let pin_dir = files.pin_dir.clone();
    let before = Snapshot::take(&t.gw, &pin_dir);
    let mut gw = Gateway::start_with(&t.gw, files);
    let status = gw.status();
    let kept: Vec<&str> = status["capabilities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    let mut want = 0u64;
    for c in &kept {
        want |= match *c {
            "net_admin" => NET_ADMIN,
            "net_raw" => NET_RAW,
            "bpf" => BPF,
            "sys_admin" => SYS_ADMIN,
            other => panic!("undocumented capability {other}"),
        };
    }
    assert!(
        want & (NET_ADMIN | NET_RAW | BPF) == NET_ADMIN | NET_RAW | BPF,
        "{kept:?}"
    );

    let pid = status["pid"].as_u64().unwrap();
    let tasks: Vec<_> = std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    // tokio's workers, the TUN, GRE, L2TP and IKE threads: all of them.
    assert!(tasks.len() >= 4, "{} threads", tasks.len());
    for task in &tasks {
        let s = std::fs::read_to_string(task.join("status")).unwrap();
        let name = s.lines().next().unwrap_or_default();
        assert_eq!(field(&s, "CapEff:"), want, "{task:?} {name}");
        assert_eq!(field(&s, "CapPrm:"), want, "{task:?} {name}");
        assert_eq!(field(&s, "CapBnd:"), want, "{task:?} {name}");
        assert_eq!(field(&s, "CapInh:"), 0, "{task:?} {name}");
        assert_eq!(field(&s, "CapAmb:"), 0, "{task:?} {name}");
    }
    assert!(gw.log().contains("capabilities after setup: "));

    // Teardown (netlink, nftables, pins) works with what is left.
    assert!(gw.down().success(), "{}", gw.log());
    let after = Snapshot::take(&t.gw, &pin_dir);
    assert!(before == after, "residue:\n{}", before.diff(&after));
}
