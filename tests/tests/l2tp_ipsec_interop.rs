//! L2TP/IPsec with real clients: strongSwan (IKEv1, transport mode) +
//! xl2tpd + pppd in QEMU guests against `vpn-ctl up`, with the proposal
//! lists of the OS clients they stand in for. Needs root.
use std::time::Duration;

use vpn_tests::{
    gateway::Gateway,
    guest::{Guest, Site},
    l2tp_client::{
        dhcp_inform, IkeClient, IpsecProfile, L2tpClient, ANDROID_ESP, ANDROID_IKE, APPLE_ESP,
        APPLE_IKE, DISCONNECT_SCRIPT, WINDOWS_ESP, WINDOWS_IKE,
    },
    native_client::add_user,
    topology::{Topology, GW_WAN, LAN_HOST, NAT_WAN},
    wait,
};

const T: Duration = Duration::from_secs(60);
const CONFIG: &str = "[gateway]\ndns = [\"172.16.10.2\"]\n";

fn client<'a>(user: &'a str, password: &'a str, ipsec: IpsecProfile<'a>) -> L2tpClient<'a> {
    L2tpClient {
        user,
        password,
        secret: None,
        ipsec: Some(ipsec),
    }
}

/// `count` pings to the LAN host, 0.2 s apart, through the guest's tunnel:
/// (sent, received, ping's summary line); charon's log is printed when
/// some were lost.
fn ping_lan(g: &mut Guest, count: u32) -> (u64, u64, String) {
    let out = g.must(
        &format!("ping -q -c {count} -i 0.2 -W 5 {LAN_HOST}"),
        Duration::from_secs(u64::from(count) / 5 + 30),
    );
    let stats = out
        .lines()
        .find(|l| l.contains("packets transmitted"))
        .unwrap_or(&out)
        .to_string();
    let number = |field: Option<&str>| -> u64 {
        field
            .and_then(|f| f.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    let sent = number(stats.split(", ").next());
    let got = number(stats.split(", ").nth(1));
    if got != sent {
        let charon = g.run("tail -150 /tmp/charon.log", T);
        eprintln!("charon log:\n{}", charon.output);
    }
    (sent, got, stats)
}

fn iperf_both_ways(t: &Topology, g: &mut Guest) {
    for reverse in [false, true] {
        vpn_tests::guest_iperf::tcp_to_lan(t, g, "4M", reverse);
    }
}

#[test]
fn windows_proposals_behind_nat_connect_with_esp_in_udp() {
    let t = Topology::build();
    let gw = Gateway::start(&t.gw, CONFIG);
    add_user(&gw, "alice", "alice-password-1", None);
    let psk = gw.ipsec_psk();
    let mut g = Guest::start(&t, "c2", Site::BehindNat(1));
    let c = client(
        "alice",
        "alice-password-1",
        IpsecProfile {
            psk: &psk,
            ike: WINDOWS_IKE,
            esp: WINDOWS_ESP,
            ..Default::default()
        },
    );
    let out = g.must(&c.connect_script(40), Duration::from_secs(90));
    assert!(out.contains("inet 10.99.0."), "address on ppp0:\n{out}");
    assert!(out.contains("nameserver 172.16.10.2"), "DNS pushed:\n{out}");
    // The gateway chose P-256 by its own preference, although the client
    // listed P-384 first.
    let log = gw.log();
    assert!(log.contains("Main Mode (aes128-sha1-ecp256)"), "{log}");
    let sas = g.must("ipsec statusall", T);
    assert!(sas.contains("ECP_256"), "{sas}");
    assert!(
        sas.contains("ESP in UDP SPIs"),
        "ESP in UDP behind NAT:\n{sas}"
    );
    g.must(
        &format!("ping -c 3 -W 5 10.99.0.1 && ping -c 3 -W 5 {LAN_HOST}"),
        T,
    );
    // Windows asks for its routes with a DHCPINFORM after IPCP.
    let opts = dhcp_inform(&mut g, &out);
    assert_eq!(opts.get(&249), Some(&vec![24, 172, 16, 10, 10, 99, 0, 1]));
    assert_eq!(gw.count("counters", "l2tp_dhcp_informs"), 1);

    let rows = gw.sessions();
    assert_eq!(rows.len(), 1, "{rows:?}");
    let r = &rows[0];
    assert_eq!(r["protocol"], "l2tp-ipsec");
    assert_eq!(r["user"], "alice");
    assert_eq!(r["state"], "up");
    // AES-128 before AES-256 in the gateway's ESP preference (both offered).
    assert_eq!(r["encryption"], "esp aes128-sha1 in udp", "{r}");
    assert!(
        r["peer"]
            .as_str()
            .unwrap()
            .starts_with(&format!("{NAT_WAN}:")),
        "{r}"
    );
    assert_eq!(r["fast_path"], false, "{r}");

    iperf_both_ways(&t, &mut g);
    assert_eq!(gw.count("counters", "ike_sas"), 1);
    assert_eq!(gw.count("counters", "esp_sas"), 1);
    assert_eq!(gw.count("drops", "daemon_esp_integrity"), 0);

    // `vpn-ctl restart` with pings running: the ISAKMP SA, the ESP pair
    // and the L2TP call go on in the new image (the hang-up below is read
    // with the carried IKE keys).
    vpn_tests::restart::ping_across_restart(&gw, &mut g, LAN_HOST);
    assert_eq!(gw.sessions()[0]["id"], r["id"]);
    assert_eq!(gw.count("counters", "ike_sas"), 1);
    assert_eq!(gw.count("counters", "esp_sas"), 1);

    // Hang-up: xl2tpd and pppd end, then strongSwan deletes its SAs.
    g.must(DISCONNECT_SCRIPT, T);
    g.must("ipsec down gw >/dev/null; ipsec stop >/dev/null", T);
    wait::until("the session and the SAs to go", T, || {
        (gw.sessions().is_empty() && gw.count("counters", "esp_sas") == 0).then_some(())
    });
}

#[test]
fn apple_proposals_without_nat_use_raw_esp_and_sha256() {
    let t = Topology::build();
    let gw = Gateway::start(&t.gw, CONFIG);
    add_user(&gw, "bob", "bob-password-22", None);
    let psk = gw.ipsec_psk();
    let mut g = Guest::start(&t, "c1", Site::Internet(1));
    let c = client(
        "bob",
        "bob-password-22",
        IpsecProfile {
            psk: &psk,
            ike: APPLE_IKE,
            esp: APPLE_ESP,
            ike_lifetime: "1h",
            lifetime: "1h",
            ..Default::default()
        },
    );
    let out = g.must(&c.connect_script(40), Duration::from_secs(90));
    assert!(out.contains("inet 10.99.0."), "{out}");
    g.must(&format!("ping -c 3 -W 5 {LAN_HOST}"), T);
    let r = &gw.sessions()[0];
    assert_eq!(r["protocol"], "l2tp-ipsec");
    // Raw ESP (protocol 50): no NAT on the way.
    assert_eq!(r["encryption"], "esp aes128-sha1", "{r}");
    assert!(
        gw.log().contains("Main Mode (aes256-sha256-modp2048)"),
        "{}",
        gw.log()
    );
    iperf_both_ways(&t, &mut g);
}

#[test]
fn wrong_psk_password_and_proposal_are_refused_then_aes_gcm_connects() {
    let t = Topology::build();
    let gw = Gateway::start(&t.gw, &format!("{CONFIG}[ipsec]\nlegacy = false\n"));
    add_user(&gw, "carol", "carol-password-3", None);
    let psk = gw.ipsec_psk();
    let mut g = Guest::start(&t, "c2", Site::BehindNat(1));

    let wrong = IpsecProfile {
        psk: "not-the-gateway-psk-at-all",
        ike: WINDOWS_IKE,
        esp: WINDOWS_ESP,
        ..Default::default()
    };
    let r = g.run(
        &client("carol", "carol-password-3", wrong).connect_script(10),
        T,
    );
    assert!(r.code != 0, "a wrong PSK connected:\n{}", r.output);
    assert!(
        gw.count("drops", "daemon_ike_auth_failed") >= 1,
        "{}",
        gw.log()
    );
    g.must("ipsec stop >/dev/null 2>&1; true", T);

    let android = IpsecProfile {
        psk: &psk,
        ike: ANDROID_IKE,
        esp: ANDROID_ESP,
        ..Default::default()
    };
    let r = g.run(
        &client("carol", "carol-password-3", android).connect_script(10),
        T,
    );
    assert!(
        r.code != 0,
        "MODP1024 accepted with legacy off:\n{}",
        r.output
    );
    assert!(
        gw.count("drops", "daemon_ike_no_proposal") >= 1,
        "{}",
        gw.log()
    );
    assert!(
        gw.log()
            .contains("no acceptable Phase 1 proposal (legacy off)"),
        "{}",
        gw.log()
    );
    g.must("ipsec stop >/dev/null 2>&1; true", T);

    // The right PSK and a current proposal still work afterwards.
    // A wrong password is PPP's refusal, inside a working SA.
    let good = IpsecProfile {
        psk: &psk,
        ike: WINDOWS_IKE,
        // AES-GCM (RFC 4106), as libreswan-based clients offer first.
        esp: "aes256gcm16,aes128gcm16!",
        ..Default::default()
    };
    let r = g.run(
        &client("carol", "wrong-password-9", good.clone()).connect_script(10),
        T,
    );
    assert!(r.code != 0, "a wrong password connected:\n{}", r.output);
    wait::until("the failed login to be counted", T, || {
        (gw.count("drops", "daemon_l2tp_ipsec_login_failed") >= 1).then_some(())
    });
    g.must(
        "kill $(pidof xl2tpd) 2>/dev/null; ipsec stop >/dev/null 2>&1; true",
        T,
    );
    let out = g.must(
        &client("carol", "carol-password-3", good).connect_script(40),
        Duration::from_secs(90),
    );
    assert!(out.contains("inet 10.99.0."), "{out}");
    let rows = gw.sessions();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(
        rows[0]["encryption"], "esp aes128gcm16 in udp",
        "{}",
        rows[0]
    );
    g.must(&format!("ping -c 3 -W 5 {LAN_HOST}"), T);
}

/// The famous L2TP/IPsec failure of kernel-based servers: two clients
/// behind one NAT, both with inner UDP 1701 from the same public address.
/// Here each SA's client is its own L2TP link.
#[test]
fn two_clients_behind_one_nat_are_separate_and_outlive_each_other() {
    let t = Topology::build();
    let gw = Gateway::start(&t.gw, CONFIG);
    add_user(&gw, "alice", "alice-password-1", None);
    add_user(&gw, "bob", "bob-password-22", None);
    let psk = gw.ipsec_psk();
    let mut guests = Guest::start_all(
        &t,
        &[("n1", Site::BehindNat(1)), ("n2", Site::BehindNat(2))],
    );
    let profile = IpsecProfile {
        psk: &psk,
        ike: WINDOWS_IKE,
        esp: WINDOWS_ESP,
        ..Default::default()
    };
    let a = guests[0].must(
        &client("alice", "alice-password-1", profile.clone()).connect_script(40),
        Duration::from_secs(90),
    );
    // Bob with Android's MODP1024-only list (accepted: `legacy` is on by default).
    let android = IpsecProfile {
        ike: ANDROID_IKE,
        esp: ANDROID_ESP,
        ..profile.clone()
    };
    let b = guests[1].must(
        &client("bob", "bob-password-22", android).connect_script(40),
        Duration::from_secs(90),
    );
    let addr = |out: &str| {
        let at = out.find("inet 10.99.0.").expect("an address on ppp0");
        out[at + 5..].split(['/', ' ']).next().unwrap().to_string()
    };
    let (a_ip, b_ip) = (addr(&a), addr(&b));
    assert_ne!(a_ip, b_ip);
    let rows = gw.sessions();
    assert_eq!(rows.len(), 2, "{rows:?}");
    let peers: Vec<&str> = rows.iter().map(|r| r["peer"].as_str().unwrap()).collect();
    assert!(
        peers.iter().all(|p| p.starts_with(&format!("{NAT_WAN}:"))),
        "{peers:?}"
    );
    assert_ne!(peers[0], peers[1], "one NAT address, two client ports");
    assert_eq!(gw.count("counters", "ipsec_clients"), 2);
    assert!(
        gw.log().contains("Main Mode (aes256-sha1-modp1024)"),
        "{}",
        gw.log()
    );

    // Both at once to the LAN, and to each other through the gateway.
    guests[0].must(
        &format!("ping -c 5 -i 0.2 -W 5 {LAN_HOST} && ping -c 3 -W 5 {b_ip}"),
        T,
    );
    guests[1].must(
        &format!("ping -c 5 -i 0.2 -W 5 {LAN_HOST} && ping -c 3 -W 5 {a_ip}"),
        T,
    );
    // Each session's traffic arrived on its own link: a ping flood from
    // alice moves only alice's counters.
    let rx = |user: &str| {
        gw.sessions()
            .iter()
            .find(|r| r["user"] == user)
            .map(|r| r["rx_packets"].as_u64().unwrap())
            .unwrap()
    };
    let (a0, b0) = (rx("alice"), rx("bob"));
    guests[0].must(&format!("ping -c 50 -i 0.02 -W 5 {LAN_HOST}"), T);
    let (a1, b1) = (rx("alice"), rx("bob"));
    assert!(a1 - a0 >= 50, "alice {a0} → {a1}");
    assert!(
        b1 - b0 < 10,
        "bob's counters moved with alice's pings: {b0} → {b1}"
    );

    // Alice hangs up and reconnects (a fresh IKE SA with INITIAL-CONTACT
    // from her endpoint); bob's session is untouched throughout.
    guests[0].must(DISCONNECT_SCRIPT, T);
    guests[0].must("ipsec stop >/dev/null 2>&1; true", T);
    wait::until("alice's session to end", T, || {
        (gw.sessions().len() == 1).then_some(())
    });
    guests[1].must(&format!("ping -c 3 -W 5 {LAN_HOST}"), T);
    guests[0].must(
        &client("alice", "alice-password-1", profile).connect_script(40),
        Duration::from_secs(90),
    );
    assert_eq!(gw.sessions().len(), 2);
    guests[1].must(&format!("ping -c 3 -W 5 {LAN_HOST}"), T);
    assert!(gw
        .sessions()
        .iter()
        .any(|r| r["user"] == "bob" && r["state"] == "up"));
}

/// Quick Mode every ~25 s and Main Mode (strongSwan's IKEv1
/// reauthentication) at ~75 s under a 100 s ping (counted, not cut by a
/// deadline that would lose the last reply): make-before-break
/// loses nothing and the L2TP session survives both.
#[test]
fn rekeys_of_both_phases_lose_no_packet() {
    let t = Topology::build();
    let gw = Gateway::start(&t.gw, &format!("{CONFIG}[log]\nlevel = \"debug\"\n"));
    add_user(&gw, "alice", "alice-password-1", None);
    let psk = gw.ipsec_psk();
    let mut g = Guest::start(&t, "c2", Site::BehindNat(1));
    let c = client(
        "alice",
        "alice-password-1",
        IpsecProfile {
            psk: &psk,
            ike: WINDOWS_IKE,
            esp: WINDOWS_ESP,
            ike_lifetime: "90s",
            lifetime: "40s",
            ..Default::default()
        },
    );
    // strongSwan rekeys `margintime` before expiry; DPD every 5 s
    // exercises R-U-THERE on the gateway too.
    let script = c
        .connect_script(40)
        .replace("  auto=add\n", "  margintime=15s\n  rekeyfuzz=0%\n  dpddelay=5s\n  dpdtimeout=30s\n  dpdaction=clear\n  auto=add\n");
    g.must(&script, Duration::from_secs(90));
    let row = gw.sessions()[0]["id"].clone();
    let (sent, got, stats) = ping_lan(&mut g, 500);
    assert_eq!(sent, 500, "{stats}");
    assert_eq!(got, sent, "packets lost across rekeys: {stats}");
    let log = gw.log();
    assert!(
        log.matches("ESP SA in").count() >= 3,
        "Quick Mode rekeys:\n{log}"
    );
    assert!(
        log.matches("ISAKMP SA up").count() >= 2,
        "Main Mode reauthentication:\n{log}"
    );
    let rows = gw.sessions();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["id"], row, "the same session throughout");
    // Old SAs are deleted by the client, not left to pile up (a rekey
    // may have just added a pair whose predecessor's Delete is on its way).
    wait::until("old ESP SAs to be deleted", Duration::from_secs(30), || {
        (gw.count("counters", "esp_sas") <= 2).then_some(())
    });
}

/// A client that does not rekey (strongSwan with `rekey=no`, its ESP SA
/// proposed for an hour) under the gateway's 60 s ceiling: the gateway
/// starts the Quick Mode itself before the SA ends, moves traffic to the
/// new pair and deletes the old one; a continuous ping loses nothing.
#[test]
fn the_gateway_rekeys_an_esp_sa_the_client_lets_expire() {
    let t = Topology::build();
    let gw = Gateway::start(
        &t.gw,
        &format!("{CONFIG}[ipsec]\nmax_esp_lifetime_secs = 60\n"),
    );
    add_user(&gw, "alice", "alice-password-1", None);
    let psk = gw.ipsec_psk();
    let mut g = Guest::start(&t, "c2", Site::BehindNat(1));
    let c = client(
        "alice",
        "alice-password-1",
        IpsecProfile {
            psk: &psk,
            ike: WINDOWS_IKE,
            esp: WINDOWS_ESP,
            ike_lifetime: "8h",
            lifetime: "1h",
            ..Default::default()
        },
    );
    let script = c
        .connect_script(40)
        .replace("  auto=add\n", "  rekey=no\n  auto=add\n");
    g.must(&script, Duration::from_secs(90));
    let row = gw.sessions()[0]["id"].clone();
    let (sent, got, stats) = ping_lan(&mut g, 400);
    assert!(
        sent == 400 && got == 400,
        "packets lost across the gateway's rekey: {stats}"
    );
    let log = gw.log();
    assert!(
        log.contains("the gateway starts a Quick Mode"),
        "no gateway rekey:\n{log}"
    );
    assert!(log.matches("ESP SA in").count() >= 2, "{log}");
    assert!(
        log.contains("expired"),
        "the old pair ends at its time:\n{log}"
    );
    // The gateway moved to the new pair once the client had it (its first
    // packet on it, or the grace after QM3), not when the old one ended.
    let started = log.find("the gateway starts a Quick Mode").unwrap();
    let moved = log[started..]
        .find("(the client has the pair)")
        .map(|at| started + at);
    assert!(
        moved.is_some_and(|m| m < log.find("expired").unwrap()),
        "the new outbound SA taken into use before the old pair expired:\n{log}"
    );
    let sas = g.must("ipsec statusall", T);
    assert!(sas.contains("INSTALLED"), "{sas}");
    let rows = gw.sessions();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["id"], row, "the same session throughout");
    assert!(gw.count("counters", "esp_sas") <= 2);
}

/// Malformed IKE, unknown exchanges, Aggressive Mode, garbage ESP and a
/// flood of half-open Main Modes from spoofed addresses: each counted by
/// reason, and the established client keeps working.
#[test]
fn garbage_and_half_open_floods_are_counted_and_harmless() {
    let t = Topology::build();
    let gw = Gateway::start(&t.gw, &format!("{CONFIG}[ipsec]\nmax_half_open = 32\n"));
    add_user(&gw, "alice", "alice-password-1", None);
    let psk = gw.ipsec_psk();
    let mut g = Guest::start(&t, "c2", Site::BehindNat(1));
    let c = client(
        "alice",
        "alice-password-1",
        IpsecProfile {
            psk: &psk,
            ike: WINDOWS_IKE,
            esp: WINDOWS_ESP,
            ..Default::default()
        },
    );
    g.must(&c.connect_script(40), Duration::from_secs(90));
    // The client's outbound SPI is the gateway's inbound one.
    let spi = g.must(
        &format!("ip xfrm state | awk '/^src .* dst {GW_WAN}/ {{getline; print $4; exit}}'"),
        T,
    );
    let spi = spi.trim().trim_start_matches("0x").to_string();
    assert_eq!(spi.len(), 8, "SPI from ip xfrm state: {spi:?}");
    t.inet.must(&format!(
        "python3 {}/scripts/ike_garbage.py {GW_WAN} {spi} flood 1000",
        env!("CARGO_MANIFEST_DIR")
    ));
    for (name, at_least) in [
        ("daemon_ike_malformed", 9),
        ("daemon_ike_unexpected", 6),
        ("daemon_ike_half_open_limit", 900),
        // Unknown SPIs never reach the daemon: the WAN's XDP drops them.
        ("esp_unknown_spi", 6),
        ("daemon_esp_integrity", 3),
    ] {
        wait::until(&format!("{name} >= {at_least}"), T, || {
            (gw.count("drops", name) >= at_least).then_some(())
        });
    }
    assert!(gw.count("counters", "natt_keepalives") >= 3);
    assert_eq!(gw.count("drops", "daemon_esp_unknown_spi"), 0);
    assert!(gw.count("counters", "xdp_class_esp") > 0);
    assert!(gw.count("counters", "ike_half_open") <= 32);
    assert!(
        gw.log().contains("Aggressive Mode is not supported"),
        "{}",
        gw.log()
    );
    // The real client is unaffected.
    g.must(&format!("ping -c 5 -i 0.2 -W 5 {LAN_HOST}"), T);
    assert_eq!(gw.sessions().len(), 1);
    assert_eq!(gw.sessions()[0]["state"], "up");
}

/// libreswan 4.10 (a second, independent IKEv1 implementation) with its
/// own default proposals, behind NAT, beside a strongSwan client without
/// NAT: both up at once, each reaches the LAN and the other, and
/// libreswan's hang-up (its Deletes) ends only its own session.
#[test]
fn libreswan_with_its_defaults_behind_nat_beside_strongswan() {
    let t = Topology::build();
    let gw = Gateway::start(&t.gw, CONFIG);
    add_user(&gw, "alice", "alice-password-1", None);
    add_user(&gw, "bob", "bob-password-22", None);
    let psk = gw.ipsec_psk();
    let mut guests = Guest::start_all(&t, &[("n1", Site::BehindNat(1)), ("c1", Site::Internet(1))]);
    let libreswan = IpsecProfile {
        psk: &psk,
        client: IkeClient::Libreswan,
        ..Default::default()
    };
    let a = guests[0].must(
        &client("alice", "alice-password-1", libreswan.clone()).connect_script(40),
        Duration::from_secs(150),
    );
    let b = guests[1].must(
        &client(
            "bob",
            "bob-password-22",
            IpsecProfile {
                psk: &psk,
                ike: APPLE_IKE,
                esp: APPLE_ESP,
                ..Default::default()
            },
        )
        .connect_script(40),
        Duration::from_secs(90),
    );
    let addr = |out: &str| {
        let at = out.find("inet 10.99.0.").expect("an address on ppp0");
        out[at + 5..].split(['/', ' ']).next().unwrap().to_string()
    };
    let (a_ip, b_ip) = (addr(&a), addr(&b));
    let up = guests[0].must(
        "cat /tmp/ipsec-up.log; ipsec status | grep -i 'established'",
        T,
    );
    eprintln!("libreswan:\n{up}");
    // libreswan floated to 4500 behind the NAT: ESP in UDP, NAT-T detected
    // from the NAT-D payloads on both sides.
    let rows = gw.sessions();
    let row = |user: &str| rows.iter().find(|r| r["user"] == user).unwrap().clone();
    let (ra, rb) = (row("alice"), row("bob"));
    assert_eq!(ra["protocol"], "l2tp-ipsec", "{ra}");
    // The gateway's ESP preference among libreswan's defaults.
    assert_eq!(ra["encryption"], "esp aes128-sha1 in udp", "{ra}");
    assert!(
        ra["peer"]
            .as_str()
            .unwrap()
            .starts_with(&format!("{NAT_WAN}:4500")),
        "{ra}"
    );
    assert!(
        !rb["encryption"].as_str().unwrap().ends_with(" in udp"),
        "{rb}"
    );
    // libreswan's Quick Mode carries a KE payload (PFS with MODP2048 by
    // default), which the gateway answers; ESP goes over 4500.
    assert!(up.contains("pfsgroup=MODP2048"), "{up}");
    assert!(up.contains("ESPinUDP=>"), "{up}");
    assert!(up.contains(&format!("NATD={GW_WAN}:4500")), "{up}");
    // Its first default proposal is the gateway's first choice too.
    let log = gw.log();
    assert!(
        log.contains(&format!(
            "{NAT_WAN}:500: Main Mode (aes256-sha256-modp2048), NAT-T rfc3947"
        )),
        "{log}"
    );

    guests[0].must(
        &format!("ping -c 5 -i 0.2 -W 5 {LAN_HOST} && ping -c 3 -W 5 {b_ip}"),
        T,
    );
    guests[1].must(&format!("ping -c 3 -W 5 {a_ip}"), T);
    iperf_both_ways(&t, &mut guests[0]);
    assert_eq!(gw.count("drops", "daemon_esp_integrity"), 0);

    // libreswan's hang-up: xl2tpd ends the call, then `ipsec auto --down`
    // deletes the ESP SA and the ISAKMP SA; bob stays up.
    guests[0].must(DISCONNECT_SCRIPT, T);
    guests[0].must(libreswan.down_script(), T);
    wait::until("alice's session and SAs to go", T, || {
        (gw.sessions().len() == 1 && gw.count("counters", "ipsec_clients") == 1).then_some(())
    });
    assert_eq!(gw.sessions()[0]["user"], "bob");
    guests[1].must(&format!("ping -c 3 -W 5 {LAN_HOST}"), T);
}
