//! RADIUS against a real FreeRADIUS on the LAN (issue 13 item 5): native
//! (PAP-style password), PPTP (MS-CHAPv2 with the server's MPPE keys, PAP,
//! CHAP-MD5), L2TP and L2TP/IPsec users log in with the server's passwords
//! and addresses, the first server is dead (failover, and `doctor` names
//! it), accounting Start/Stop reach the server with counters and causes, a
//! Disconnect-Request ends a session, a Session-Timeout ends another, and
//! `down` sends the last Stops and Accounting-Off. Needs root and Debian's freeradius and freeradius-utils.
use std::{net::Ipv4Addr, time::Duration};

use vpn_proto::ppp::lcp::Auth;

use vpn_tests::{
    freeradius::{FreeRadius, RadiusUser},
    gateway::Gateway,
    ipsec_peer::IpsecCall,
    l2tp_peer::L2tpCall,
    native_client::{gateway_creds, Client},
    netns::in_ns,
    packet::icmp_echo,
    pptp_peer::PptpCall,
    topology::{Topology, GW_LAN, GW_WAN, LAN_HOST},
    wait,
};

const SECRET: &str = "radius-shared-secret-7f3a";

fn config() -> String {
    format!(
        "[gateway]\npool = \"10.77.0.0/24\"\n\
         [pptp]\nenabled = true\nrequire_mppe = false\nallow_pap = true\n\
         [l2tp]\nallow_plain = true\n\
         [radius]\nenabled = true\ntimeout_ms = 300\ntries = 2\ninterim_secs = 60\ndae_port = 3799\n\
         [[radius.servers]]\naddress = \"172.16.10.9\"\nsecret = \"{SECRET}\"\n\
         [[radius.servers]]\naddress = \"{LAN_HOST}\"\nsecret = \"{SECRET}\"\n"
    )
}

fn record_for<'a>(
    server: &'a FreeRadius,
    user: &str,
    status: &str,
) -> impl Fn() -> Option<vpn_tests::freeradius::Record> + 'a {
    let (user, status) = (user.to_string(), status.to_string());
    move || {
        server.accounting().into_iter().find(|r| {
            r.get("User-Name").as_deref() == Some(user.as_str())
                && r.get("Acct-Status-Type").as_deref() == Some(status.as_str())
        })
    }
}

fn disconnect(t: &Topology, attrs: &str) -> String {
    let out = t.lan.sh(&format!(
        "echo '{attrs}' | radclient -r 1 -t 3 -x {GW_LAN}:3799 disconnect '{SECRET}'"
    ));
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

#[test]
fn radius_logs_users_in_accounts_their_sessions_and_ends_them_on_request() {
    let t = Topology::build();
    let server = FreeRadius::start(
        &t.lan,
        GW_LAN,
        SECRET,
        &[
            RadiusUser {
                name: "alice",
                password: "alice-radius-pass",
                reply: &["Framed-IP-Address = 10.77.0.50", "Class = \"gold\""],
            },
            RadiusUser {
                name: "bob",
                password: "bob-radius-pass",
                reply: &["Framed-IP-Address = 10.77.0.60"],
            },
            RadiusUser {
                name: "carol",
                password: "carol-radius-pass",
                reply: &[],
            },
            RadiusUser {
                name: "frank",
                password: "frank-radius-pass",
                reply: &["Framed-IP-Address = 10.77.0.80"],
            },
            RadiusUser {
                name: "erin",
                password: "erin-radius-pass",
                reply: &["Framed-IP-Address = 10.77.0.70"],
            },
            RadiusUser {
                name: "dave",
                password: "dave-radius-pass",
                reply: &["Session-Timeout = 3"],
            },
        ],
    );
    let mut gw = Gateway::start(&t.gw, &config());
    let creds = gateway_creds(&gw);
    let timeout = Duration::from_secs(20);

    // Native: the server's password and address; a wrong password fails.
    let mut wrong = Client::start(&t.c1, "alice", "not-her-password", &creds, &[]);
    assert!(
        !wrong.wait_exit(timeout).success(),
        "a wrong password logged in"
    );
    let mut alice = Client::start(&t.c1, "alice", "alice-radius-pass", &creds, &[]);
    assert_eq!(alice.wait_connected(), "10.77.0.50");
    t.c1.must(&format!("ping -c 3 -i 0.2 -W 2 {LAN_HOST}"));

    // PPTP with MPPE-128: the keys come from the server; an echo through
    // the encrypted call is answered by the LAN host.
    let gw_wan: Ipv4Addr = GW_WAN.parse().unwrap();
    let lan: Ipv4Addr = LAN_HOST.parse().unwrap();
    let (bob, reply) = in_ns(&t.c1.name, move || {
        let mut call = PptpCall::connect(gw_wan, "bob", "bob-radius-pass", true, 11).unwrap();
        let me = call.ppp.address().unwrap();
        let echo = icmp_echo(me.octets(), lan.octets(), 7, 1);
        let got = call.exchange(&echo, Duration::from_secs(5)).unwrap();
        (call, got)
    });
    assert_eq!(bob.ppp.address(), Some(Ipv4Addr::new(10, 77, 0, 60)));
    assert!(
        reply
            .iter()
            .any(|ip| ip[9] == 1 && ip[20] == 0 && ip[12..16] == lan.octets()),
        "no echo reply through the MPPE call: {reply:02x?}"
    );
    // L2TP (MS-CHAPv2, no MPPE): an address from the pool.
    let carol = in_ns(&t.c1.name, move || {
        L2tpCall::connect(gw_wan, "carol", "carol-radius-pass", 21).unwrap()
    });
    assert!(carol.ppp.address().is_some());
    // L2TP/IPsec: IKE with the gateway's PSK, then the same PPP login.
    let psk = gw.ipsec_psk();
    let frank = in_ns(&t.c1.name, move || {
        let c = IpsecCall::connect(gw_wan, &psk, "frank", "frank-radius-pass", 22).unwrap();
        let addr = c.l2tp.ppp.address();
        c.hang_up().unwrap();
        addr
    });
    assert_eq!(frank, Some(Ipv4Addr::new(10, 77, 0, 80)));
    let sessions = gw.sessions();
    for user in ["alice", "bob", "carol"] {
        assert!(
            sessions
                .iter()
                .any(|s| s["user"] == user && s["state"] == "up"),
            "{user} is not up: {sessions:?}"
        );
    }
    // doctor's Status-Server probe: the dead server is a finding, the live
    // one (which knows our secret) is not.
    let out = gw.ctl(&["doctor", "--json"]);
    let findings: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let radius: Vec<String> = findings
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["check"] == "radius")
        .map(|f| f["problem"].as_str().unwrap().to_string())
        .collect();
    assert!(
        radius.len() == 1 && radius[0].contains("172.16.10.9 does not answer"),
        "{findings}"
    );
    // Every login went past the dead first server.
    assert_eq!(gw.count("counters", "radius_no_server"), 0);
    assert!(gw.count("counters", "radius_access_accepts") >= 3);
    assert!(gw.count("counters", "radius_access_rejects") >= 1);

    // Accounting: a Start per session, with the address and the Class.
    let start = wait::until(
        "alice's Start",
        timeout,
        record_for(&server, "alice", "Start"),
    );
    assert_eq!(
        start.get("Framed-IP-Address").as_deref(),
        Some("10.77.0.50")
    );
    assert_eq!(start.get("Class").as_deref(), Some("0x676f6c64"));
    assert_eq!(start.get("NAS-Identifier").as_deref(), Some("vpn-ctl"));
    for user in ["bob", "carol"] {
        let r = wait::until("a Start", timeout, record_for(&server, user, "Start"));
        assert_eq!(r.get("Framed-Protocol").as_deref(), Some("PPP"), "{user}");
    }

    // A restart hands the sessions over without the server hearing of it:
    // no second Accounting-On or Start, the same Acct-Session-Ids after.
    let carol_start = record_for(&server, "carol", "Start")().unwrap();
    let said = gw.restart_in_place();
    assert!(said.contains("3 of 3 sessions carried over"), "{said}");

    // Disconnect-Request: alice's session ends (ACK), and its Stop says so
    // with what the session carried; an unknown user gets a NAK.
    let out = disconnect(&t, "User-Name=nobody");
    assert!(out.contains("Disconnect-NAK"), "{out}");
    let out = disconnect(&t, "User-Name=alice");
    assert!(out.contains("Disconnect-ACK"), "{out}");
    let stop = wait::until(
        "alice's Stop",
        timeout,
        record_for(&server, "alice", "Stop"),
    );
    assert_eq!(
        stop.get("Acct-Terminate-Cause").as_deref(),
        Some("Admin-Reset")
    );
    assert!(stop.number("Acct-Input-Octets") > 0 && stop.number("Acct-Output-Octets") > 0);
    assert!(stop.number("Acct-Input-Packets") >= 3, "{stop:?}");
    assert_eq!(stop.get("Acct-Session-Id"), start.get("Acct-Session-Id"));
    alice.kill();

    // The client hangs up: Stop with User-Request and the echo counted.
    in_ns(&t.c1.name, move || bob.hang_up().unwrap());
    let stop = wait::until("bob's Stop", timeout, record_for(&server, "bob", "Stop"));
    assert_eq!(
        stop.get("Acct-Terminate-Cause").as_deref(),
        Some("User-Request")
    );
    assert!(stop.number("Acct-Input-Octets") >= 40, "{stop:?}");

    // Session-Timeout = 3: the gateway ends dave's call.
    let dave = in_ns(&t.c1.name, move || {
        PptpCall::connect(gw_wan, "dave", "dave-radius-pass", false, 31).unwrap()
    });
    assert!(dave.ppp.address().is_some());
    let stop = wait::until("dave's Stop", timeout, record_for(&server, "dave", "Stop"));
    assert_eq!(
        stop.get("Acct-Terminate-Cause").as_deref(),
        Some("Session-Timeout")
    );
    assert!(stop.number("Acct-Session-Time") >= 3, "{stop:?}");
    assert!(!gw.sessions().iter().any(|s| s["user"] == "dave"));

    // PAP and CHAP-MD5 (offered only with RADIUS: they need the clear
    // password the server has): logged in with the right password only.
    for (auth, call) in [(Auth::Pap, 41), (Auth::ChapMd5, 42)] {
        let (ok, bad) = in_ns(&t.c1.name, move || {
            let ok = PptpCall::connect_with(gw_wan, "erin", "erin-radius-pass", auth, false, call);
            let bad = PptpCall::connect_with(gw_wan, "erin", "wrong-pass", auth, false, call + 100);
            let addr = ok.as_ref().ok().and_then(|c| c.ppp.address());
            if let Ok(c) = ok {
                c.hang_up().unwrap();
            }
            (addr, bad.is_ok())
        });
        assert_eq!(ok, Some(Ipv4Addr::new(10, 77, 0, 70)), "{auth:?}");
        assert!(!bad, "{auth:?} logged in with a wrong password");
    }
    let log = server.log();
    assert!(
        log.contains("Login OK: [erin]") && log.contains("Login incorrect"),
        "{log}"
    );

    // `down`: the last session's Stop (Admin-Reboot), then Accounting-Off.
    assert!(gw.down().success());
    let stop = record_for(&server, "carol", "Stop")().expect("carol's Stop before down returned");
    assert_eq!(
        stop.get("Acct-Terminate-Cause").as_deref(),
        Some("Admin-Reboot")
    );
    assert!(server
        .accounting()
        .iter()
        .any(|r| r.get("Acct-Status-Type").as_deref() == Some("Accounting-Off")));
    assert_eq!(
        stop.get("Acct-Session-Id"),
        carol_start.get("Acct-Session-Id")
    );
    let records = server.accounting();
    let count = |user: Option<&str>, status: &str| {
        records
            .iter()
            .filter(|r| {
                r.get("Acct-Status-Type").as_deref() == Some(status)
                    && user.is_none_or(|u| r.get("User-Name").as_deref() == Some(u))
            })
            .count()
    };
    assert_eq!(count(None, "Accounting-On"), 1, "the restart was announced");
    assert_eq!(count(Some("carol"), "Start"), 1, "carol started twice");
    drop(carol);
    assert!(gw
        .log()
        .contains("RADIUS decides every login (172.16.10.9, 172.16.10.2)"));
    // The shared secret appears in neither the log nor the session list.
    assert!(!gw.log().contains(SECRET));
}
