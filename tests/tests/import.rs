//! `vpn-ctl import`: a typical pptpd + xl2tpd + strongSwan install (the
//! fixtures under tests/fixtures/import/etc) becomes a gateway that accepts
//! those users with their old passwords and static addresses, and the
//! L2TP/IPsec PSK users already have. Needs root.
use vpn_tests::{
    gateway::{Gateway, GatewayFiles},
    native_client::{gateway_creds, Client},
    topology::Topology,
};

const PSK: &str = "imported-psk-from-strongswan-0123456789";

#[test]
fn an_old_setup_imports_into_a_gateway_that_accepts_its_users() {
    let t = Topology::build();
    let files = GatewayFiles::new(&t.gw, "");
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/import");
    let config_before = std::fs::read_to_string(&files.config).unwrap();

    // A dry run shows the plan and writes nothing.
    let out = files.ctl(&t.gw, &["import", "--root", root]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("alice\tstatic 172.20.0.50") && text.contains("bob\tpool"),
        "{text}"
    );
    assert!(text.contains("pool:      172.20.0.0/23"), "{text}");
    for note in [
        "`carol`: password shorter",
        "`dave`: for server `other-server`",
        "CHAP-MD5",
    ] {
        assert!(text.contains(note), "no note `{note}`:\n{text}");
    }
    assert!(
        !text.contains("alice-old-password") && !text.contains(PSK),
        "{text}"
    );
    assert_eq!(
        std::fs::read_to_string(&files.config).unwrap(),
        config_before
    );
    assert!(!files.dir.join("state/users.toml").exists());

    // The configuration file exists: replaced only with --force.
    let out = files.ctl(&t.gw, &["import", "--root", root, "--apply"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--force"));
    let out = files.ctl(&t.gw, &["import", "--root", root, "--apply", "--force"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let users = std::fs::read_to_string(files.dir.join("state/users.toml")).unwrap();
    assert!(!users.contains("alice-old-password"), "{users}");

    let gw = Gateway::start_with(&t.gw, files);
    let status = gw.status();
    assert_eq!(status["pool"], "172.20.0.0/23");
    let psk: serde_json::Value =
        serde_json::from_slice(&gw.ctl(&["ipsec-psk", "--json"]).stdout).unwrap();
    assert_eq!(psk["psk"], PSK, "{psk}");
    let listening: Vec<String> = status["listeners"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["service"].as_str().unwrap().to_string())
        .collect();
    assert!(listening.contains(&"pptp".into()) && listening.contains(&"ike".into()));

    // The users log in with their old passwords; alice gets her address.
    let creds = gateway_creds(&gw);
    let mut a = Client::start(&t.c1, "alice", "alice-old-password", &creds, &[]);
    assert_eq!(a.wait_connected(), "172.20.0.50");
    let mut b = Client::start(&t.c2, "bob", "bob-old-password", &creds, &[]);
    let bob_ip = b.wait_connected();
    assert!(bob_ip.starts_with("172.20."), "{bob_ip}");
}
