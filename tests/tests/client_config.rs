//! `vpn-ctl client-config`: each OS's form carries the gateway's PSK (or
//! key) and the user, never the password unless asked; the Apple profile
//! is read back with Python's plistlib. Needs root.
use vpn_tests::{gateway::Gateway, native_client::add_user, topology::Topology};

const SERVER: &str = "vpn.example.net";

#[test]
fn every_os_gets_the_psk_and_the_password_only_when_asked() {
    let t = Topology::build();
    let gw = Gateway::start(&t.gw, "[gateway]\npush_routes = [\"172.16.10.0/24\"]\n");
    add_user(&gw, "alice", "alice-password-1", None);
    let psk = gw.ipsec_psk();
    let cc = |os: &str, extra: &[&str]| {
        let mut args = vec!["client-config", "alice", "--os", os, "--server", SERVER];
        args.extend_from_slice(extra);
        let out = gw.ctl(&args);
        assert!(
            out.status.success(),
            "{os}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };

    let win = cc("windows", &[]);
    assert!(win.contains(&format!("-L2tpPsk '{psk}'")), "{win}");
    assert!(win.contains(&format!("-ServerAddress '{SERVER}'")), "{win}");
    assert!(
        win.contains("-TunnelType L2tp") && win.contains("-AuthenticationMethod MSChapv2"),
        "{win}"
    );
    assert!(
        win.contains("-SplitTunneling") && win.contains("-DestinationPrefix 172.16.10.0/24"),
        "{win}"
    );
    assert!(!win.contains("alice-password-1"), "{win}");
    let pw = gw.files.dir.join("alice.pw");
    let pw = pw.to_str().unwrap();
    let with_pw = ["--with-password", "--password-file", pw];
    assert!(cc("windows", &with_pw).contains("'alice-password-1'"));
    // The gateway keeps no password: a wrong one is caught, not printed.
    let wrong = gw.files.dir.join("wrong.pw");
    std::fs::write(&wrong, "alice-password-2\n").unwrap();
    let out = gw.ctl(&[
        "client-config",
        "alice",
        "--os",
        "windows",
        "--with-password",
        "--password-file",
        wrong.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not the password of `alice`"));

    // The profile is a well-formed plist with the values iOS and macOS read.
    let read = |profile: &str| {
        let path = gw.files.dir.join("profile.mobileconfig");
        std::fs::write(&path, profile).unwrap();
        let out = std::process::Command::new("python3")
            .arg("-c")
            .arg(
                "import plistlib, sys, json\n\
                 p = plistlib.load(open(sys.argv[1], 'rb'))\n\
                 v = p['PayloadContent'][0]\n\
                 print(json.dumps({'kind': p['PayloadType'], 'vpn': v['PayloadType'], 'type': v['VPNType'],\n\
                   'user': v['PPP']['AuthName'], 'password': v['PPP'].get('AuthPassword'),\n\
                   'server': v['PPP']['CommRemoteAddress'], 'method': v['IPSec']['AuthenticationMethod'],\n\
                   'psk': v['IPSec']['SharedSecret'].decode(), 'all': v['IPv4']['OverridePrimary']}))",
            )
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "plistlib: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    let mac = read(&cc("macos", &[]));
    assert_eq!(mac["kind"], "Configuration");
    assert_eq!(mac["vpn"], "com.apple.vpn.managed");
    assert_eq!(mac["type"], "L2TP");
    assert_eq!(mac["user"], "alice");
    assert_eq!(mac["server"], SERVER);
    assert_eq!(mac["method"], "SharedSecret");
    assert_eq!(mac["psk"], psk.as_str());
    assert_eq!(mac["all"], 1, "all traffic: Apple clients take no routes");
    assert!(mac["password"].is_null());
    let ios = read(&cc("ios", &with_pw));
    assert_eq!(ios["password"], "alice-password-1");

    let android = cc("android", &[]);
    assert!(
        android.contains("L2TP/IPSec PSK") && android.contains(&psk) && android.contains(SERVER)
    );
    assert!(!android.contains("alice-password-1"));
    let linux = cc("linux", &[]);
    assert!(
        linux.contains("vpn-type l2tp") && linux.contains("ipsec-enabled=yes"),
        "{linux}"
    );
    assert!(
        linux.contains(&format!("ipsec-psk={psk}"))
            && linux.contains("ipv4.routes '172.16.10.0/24'"),
        "{linux}"
    );
    assert!(!linux.contains("alice-password-1"));

    let key: serde_json::Value =
        serde_json::from_slice(&gw.ctl(&["gateway-key", "--json"]).stdout).unwrap();
    let native = cc("native", &[]);
    assert!(
        native.contains(&format!(
            "vpn-ctl connect {SERVER} -u alice --gateway-key {}",
            key["gateway_key"].as_str().unwrap()
        )),
        "{native}"
    );

    // The QR codes decode (zbarimg) to what a phone needs: the PSK, or
    // the native command line.
    assert_eq!(decode_qr(&gw, &cc("android", &["--qr"])), psk);
    assert_eq!(decode_qr(&gw, &cc("ios", &["--qr"])), psk);
    let line = native.lines().next().unwrap();
    assert_eq!(decode_qr(&gw, &cc("native", &["--qr"])), line);
    let out = gw.ctl(&["client-config", "alice", "--os", "windows", "--qr"]);
    assert!(!out.status.success(), "a QR code of a PowerShell line");

    let out = gw.ctl(&["client-config", "nobody", "--os", "windows"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no user `nobody`"));
}

/// Turns the terminal QR code (light modules drawn, two rows per line)
/// back into an image and decodes it with zbarimg.
fn decode_qr(gw: &Gateway, out: &str) -> String {
    let rows: Vec<&str> = out
        .lines()
        .filter(|l| !l.is_empty() && l.chars().all(|c| " █▀▄".contains(c)))
        .collect();
    assert!(rows.len() > 10, "no QR code in:\n{out}");
    let width = rows[0].chars().count();
    let mut bits: Vec<Vec<bool>> = Vec::new(); // true: dark
    for l in &rows {
        let chars: Vec<char> = l.chars().collect();
        assert_eq!(chars.len(), width);
        bits.push(chars.iter().map(|c| !matches!(c, '█' | '▀')).collect());
        bits.push(chars.iter().map(|c| !matches!(c, '█' | '▄')).collect());
    }
    // A PBM (P1) image, 4 pixels per module.
    let scale = 4;
    let mut pbm = format!("P1\n{} {}\n", width * scale, bits.len() * scale);
    for row in &bits {
        let line: String = row
            .iter()
            .flat_map(|d| std::iter::repeat_n(if *d { "1 " } else { "0 " }, scale))
            .collect();
        for _ in 0..scale {
            pbm += &line;
            pbm += "\n";
        }
    }
    let path = gw.files.dir.join("qr.pbm");
    std::fs::write(&path, pbm).unwrap();
    let out = std::process::Command::new("zbarimg")
        .args(["--quiet", "--raw"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "zbarimg: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .trim_end_matches('\n')
        .to_string()
}
