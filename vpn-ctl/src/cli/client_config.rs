//! `vpn-ctl client-config USER --os OS`: what one user needs to connect
//! from one client system, in that system's own form. L2TP/IPsec for the
//! built-in clients (the gateway's PSK, the user's name; the password only
//! with `--with-password`), the native client's command line otherwise.
use super::secret_input::read_secret;
use crate::{cli::args::ClientOs, config::Config, secrets, users::UserDb};

/// The connection's name on the client.
const NAME: &str = "vpn-ctl";

pub fn run(
    cfg: &Config,
    user: &str,
    os: ClientOs,
    server: &str,
    with_password: Option<Option<&std::path::Path>>,
    qr: bool,
) -> anyhow::Result<()> {
    if qr && !matches!(os, ClientOs::Android | ClientOs::Ios | ClientOs::Native) {
        anyhow::bail!(
            "--qr is for phones (--os android or ios) and the native client's command line"
        );
    }
    let dir = &cfg.paths.state_dir;
    let s = secrets::Secrets::read(dir)?;
    let db = UserDb::load(dir)?;
    let Some(u) = db.find(user) else {
        anyhow::bail!("no user `{user}` (vpn-ctl users list)");
    };
    // The gateway keeps no password: the operator gives it, and a typo is
    // caught here rather than in the user's profile.
    let password = match with_password {
        Some(file) => {
            let pw = read_secret(file, &format!("Password of {user}"), false)?;
            if !crate::users::verifier::verify(u.verifier(), &pw) {
                anyhow::bail!("that is not the password of `{user}`");
            }
            Some(pw)
        }
        None => None,
    };
    let password = password.as_deref().map(String::as_str);
    let routes: Vec<String> = cfg
        .gateway
        .push_routes
        .iter()
        .flatten()
        .map(|r| r.to_string())
        .collect();
    let mut qr_text = s.psk.clone();
    let text = match os {
        ClientOs::Windows => windows(server, &s.psk, user, password, &routes),
        ClientOs::Macos | ClientOs::Ios => mobileconfig(server, &s.psk, user, password),
        ClientOs::Android => android(server, &s.psk, user, password),
        ClientOs::Linux => nmcli(server, &s.psk, user, password, &routes),
        ClientOs::Native => {
            let key = secrets::encode_key(&s.gateway_public()?);
            let port = cfg.native.port;
            let host = if port == crate::config::NATIVE_DEFAULT_PORT {
                server.to_string()
            } else {
                format!("{server}:{port}")
            };
            qr_text = format!("vpn-ctl connect {host} -u {user} --gateway-key {key}");
            format!(
                "{qr_text}\n# it asks for the pre-shared key ({}) and the password (or --psk-file, --password-file)\n",
                s.psk
            )
        }
    };
    print!("{text}");
    if qr {
        let what = if os == ClientOs::Native {
            "the command line"
        } else {
            "the pre-shared key (scan it with the camera, then copy it into the VPN settings)"
        };
        println!("\n{}\n^ {what}", qr_code(&qr_text)?);
    }
    if server == "GATEWAY" {
        eprintln!(
            "vpn-ctl: replace GATEWAY with the gateway's public name or address (or pass --server)"
        );
    }
    Ok(())
}

/// A QR code in the terminal, as `qrencode -t UTF8` draws it: dark modules
/// are blank and light ones are blocks (terminals are mostly dark), two
/// rows of modules per line, with the quiet zone.
fn qr_code(text: &str) -> anyhow::Result<String> {
    use qrcode::render::unicode::Dense1x2;
    let code = qrcode::QrCode::with_error_correction_level(text.as_bytes(), qrcode::EcLevel::M)
        .map_err(|e| anyhow::anyhow!("QR code: {e}"))?;
    Ok(code
        .render::<Dense1x2>()
        .dark_color(Dense1x2::Light)
        .light_color(Dense1x2::Dark)
        .quiet_zone(true)
        .build())
}

/// A PowerShell single-quoted string.
fn ps(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

fn windows(
    server: &str,
    psk: &str,
    user: &str,
    password: Option<&str>,
    routes: &[String],
) -> String {
    let split = if routes.is_empty() {
        ""
    } else {
        " -SplitTunneling"
    };
    let mut out = format!(
        "# PowerShell, as the user who connects: L2TP/IPsec with a pre-shared key, MS-CHAPv2\n\
         Add-VpnConnection -Name {} -ServerAddress {} -TunnelType L2tp -L2tpPsk {} -AuthenticationMethod MSChapv2 -EncryptionLevel Required{split} -RememberCredential -Force\n",
        ps(NAME),
        ps(server),
        ps(psk)
    );
    for r in routes {
        out += &format!(
            "Add-VpnConnectionRoute -ConnectionName {} -DestinationPrefix {r}\n",
            ps(NAME)
        );
    }
    out += &match password {
        Some(pw) => format!("rasdial {} {} {}\n", ps(NAME), ps(user), ps(pw)),
        None => format!(
            "# connect: rasdial {} {} (it asks for the password), or from the network menu\n",
            ps(NAME),
            ps(user)
        ),
    };
    out
}

fn xml(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn uuid() -> String {
    let b: [u8; 16] = rand::random();
    let h: String = b.iter().map(|x| format!("{x:02X}")).collect();
    format!(
        "{}-{}-4{}-A{}-{}",
        &h[..8],
        &h[8..12],
        &h[13..16],
        &h[17..20],
        &h[20..32]
    )
}

/// An Apple configuration profile: one L2TP/IPsec VPN with the shared
/// secret, sending all traffic through it (macOS and iOS take no routes
/// from the server).
fn mobileconfig(server: &str, psk: &str, user: &str, password: Option<&str>) -> String {
    use base64::Engine as _;
    let secret = base64::engine::general_purpose::STANDARD.encode(psk.as_bytes());
    let pw = password
        .map(|p| {
            format!(
                "\n          <key>AuthPassword</key>\n          <string>{}</string>",
                xml(p)
            )
        })
        .unwrap_or_default();
    let id = format!("net.vpn-ctl.{}.{}", xml(server), xml(user));
    let display = format!("{NAME} ({})", xml(server));
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0">
<dict>
  <key>PayloadContent</key>
  <array>
    <dict>
      <key>PayloadType</key>
      <string>com.apple.vpn.managed</string>
      <key>PayloadVersion</key>
      <integer>1</integer>
      <key>PayloadIdentifier</key>
      <string>{id}.vpn</string>
      <key>PayloadUUID</key>
      <string>{}</string>
      <key>PayloadDisplayName</key>
      <string>{display}</string>
      <key>UserDefinedName</key>
      <string>{display}</string>
      <key>VPNType</key>
      <string>L2TP</string>
      <key>PPP</key>
      <dict>
          <key>AuthName</key>
          <string>{}</string>{pw}
          <key>CommRemoteAddress</key>
          <string>{}</string>
      </dict>
      <key>IPSec</key>
      <dict>
          <key>AuthenticationMethod</key>
          <string>SharedSecret</string>
          <key>SharedSecret</key>
          <data>{secret}</data>
      </dict>
      <key>IPv4</key>
      <dict>
          <key>OverridePrimary</key>
          <integer>1</integer>
      </dict>
    </dict>
  </array>
  <key>PayloadDisplayName</key>
  <string>{display}</string>
  <key>PayloadIdentifier</key>
  <string>{id}</string>
  <key>PayloadType</key>
  <string>Configuration</string>
  <key>PayloadUUID</key>
  <string>{}</string>
  <key>PayloadVersion</key>
  <integer>1</integer>
</dict>
</plist>
"#,
        uuid(),
        xml(user),
        xml(server),
        uuid()
    )
}

fn android(server: &str, psk: &str, user: &str, password: Option<&str>) -> String {
    format!(
        "Android up to 11: Settings > Network & internet > VPN > +\n\
         Name:                  {NAME}\n\
         Type:                  L2TP/IPSec PSK\n\
         Server address:        {server}\n\
         L2TP secret:           (not used: leave empty)\n\
         IPSec identifier:      (leave empty: the gateway refuses Aggressive Mode)\n\
         IPSec pre-shared key:  {psk}\n\
         Username:              {user}\n\
         Password:              {}\n",
        password.unwrap_or("(the user's password)")
    )
}

/// NetworkManager-l2tp: a connection with IPsec on (the PSK as a secret),
/// MS-CHAPv2 only; with pushed routes, only those go through it.
fn nmcli(server: &str, psk: &str, user: &str, password: Option<&str>, routes: &[String]) -> String {
    let q = |s: &str| format!("'{}'", s.replace('\'', "'\\''"));
    let data = format!(
        "gateway={server}, user={user}, ipsec-enabled=yes, refuse-pap=yes, refuse-chap=yes, refuse-mschap=yes, refuse-eap=yes, mru=1360, mtu=1360"
    );
    let mut secrets = format!("ipsec-psk={psk}");
    if let Some(pw) = password {
        secrets += &format!(", password={pw}");
    }
    let mut out = format!(
        "nmcli connection add type vpn vpn-type l2tp con-name {NAME} vpn.data {} vpn.secrets {}",
        q(&data),
        q(&secrets)
    );
    if !routes.is_empty() {
        out += &format!(
            " ipv4.never-default yes ipv4.routes {}",
            q(&routes.join(","))
        );
    }
    out += &format!(
        "\nnmcli connection up {NAME}{}\n",
        if password.is_none() { " --ask" } else { "" }
    );
    out
}
