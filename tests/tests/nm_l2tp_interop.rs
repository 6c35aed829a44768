//! NetworkManager-l2tp (what Linux desktops use for L2TP/IPsec) in a QEMU
//! guest, configured with nothing but the lines `vpn-ctl client-config
//! --os linux` prints: the connection comes up with its defaults (its
//! strongSwan, xl2tpd and pppd), and the LAN host answers through it
//! (issue 16's and issue 11's NetworkManager row). Needs root.
use std::time::Duration;

use vpn_tests::{
    gateway::Gateway,
    guest::{Guest, Site},
    native_client::add_user,
    topology::{Topology, GW_WAN, LAN_HOST},
};

/// D-Bus and NetworkManager started by hand (the guest has no systemd),
/// with the guest's own address kept as a managed connection: a VPN
/// connection needs one to ride on.
const START_NM: &str = r#"set -e
mkdir -p /run/dbus /etc/NetworkManager/conf.d /var/lib/NetworkManager /run/udev
cat > /etc/NetworkManager/conf.d/zz-vpn-test.conf <<'CONF'
[main]
auth-polkit=false
dns=none
no-auto-default=*
[logging]
level=INFO
CONF
[ -e /run/dbus/pid ] || dbus-daemon --system --fork
/lib/systemd/systemd-udevd --daemon >/dev/null 2>&1 || true
udevadm trigger --action=add >/dev/null 2>&1 || true
udevadm settle >/dev/null 2>&1 || true
ADDR=$(ip -4 -o addr show dev eth0 | awk '{print $4}')
GW=$(ip route show default | awk '{print $3}')
NetworkManager --no-daemon > /tmp/nm.log 2>&1 &
for i in $(seq 200); do nmcli -t -f RUNNING general 2>/dev/null | grep -q running && break; sleep 0.1; done
nmcli connection add type ethernet ifname eth0 con-name wan ipv4.method manual ipv4.addresses "$ADDR" ipv4.gateway "$GW" ipv6.method disabled >/dev/null
nmcli connection up wan >/dev/null || { tail -40 /tmp/nm.log; exit 1; }
"#;

#[test]
fn networkmanager_l2tp_with_the_client_config_lines_reaches_the_lan() {
    let t = Topology::build();
    let gw = Gateway::start(&t.gw, "[gateway]\npush_routes = [\"172.16.10.0/24\"]\n");
    add_user(&gw, "alice", "alice-password-1", None);
    let pw = gw.files.dir.join("alice.pw");
    let out = gw.ctl(&[
        "client-config",
        "alice",
        "--os",
        "linux",
        "--server",
        GW_WAN,
        "--with-password",
        "--password-file",
        pw.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines = String::from_utf8(out.stdout).unwrap();
    assert!(lines.contains("nmcli connection up"), "{lines}");

    let mut g = Guest::start(&t, "c1", Site::Internet(1));
    g.must(START_NM, Duration::from_secs(60));
    let up = g.run(
        &format!("set -e\n{lines}\nip -4 -o addr show; ip route"),
        Duration::from_secs(120),
    );
    if up.code != 0 {
        let logs = g.run(
            "tail -60 /tmp/nm.log; ls /run/nm-l2tp* 2>/dev/null",
            Duration::from_secs(10),
        );
        panic!(
            "nmcli failed ({}):\n{}\n--- NetworkManager ---\n{}\n--- gateway ---\n{}",
            up.code,
            up.output,
            logs.output,
            gw.log()
        );
    }
    assert!(up.output.contains("ppp0"), "{}", up.output);
    // The pushed route sends the LAN through the tunnel.
    g.must(
        &format!("ping -c 3 -W 5 {LAN_HOST}"),
        Duration::from_secs(30),
    );
    let rows = gw.sessions();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["protocol"], "l2tp-ipsec");
    assert_eq!(rows[0]["user"], "alice");
    assert!(rows[0]["rx_packets"].as_u64().unwrap() >= 3);
    g.must("nmcli connection down vpn-ctl", Duration::from_secs(30));
}
