//! Driving the real L2TP client (xl2tpd as LAC + pppd) in a guest: its
//! config files and the control pipe, in one place for tests and the
//! benchmark.
use crate::topology::GW_WAN;

/// Options of one connection.
#[derive(Clone, Default)]
pub struct L2tpClient<'a> {
    pub user: &'a str,
    pub password: &'a str,
    /// Tunnel secret: challenge/response and hidden AVPs on the client too.
    pub secret: Option<&'a str>,
    /// L2TP inside IPsec (strongSwan in the guest), with these proposals.
    pub ipsec: Option<IpsecProfile<'a>>,
}

/// strongSwan's side of L2TP/IPsec: the PSK and the proposals a client OS
/// sends (strongSwan's `ike=`/`esp=` syntax, `!` = only these).
#[derive(Clone, Default)]
pub struct IpsecProfile<'a> {
    pub psk: &'a str,
    pub ike: &'a str,
    pub esp: &'a str,
    /// Lifetimes (`ikelifetime`, `lifetime`), e.g. "8h".
    pub ike_lifetime: &'a str,
    pub lifetime: &'a str,
    /// Which IKE implementation dials.
    pub client: IkeClient,
}

/// The IKEv1 implementations the guest can run.
#[derive(Clone, Copy, Default, PartialEq, Eq, Debug)]
pub enum IkeClient {
    /// strongSwan's charon, started by `ipsec start` (installed in the image).
    #[default]
    StrongSwan,
    /// libreswan's pluto, installed in this guest from the image's staged
    /// package (it conflicts with strongSwan). `ike`/`esp` are then in
    /// libreswan's syntax (`ike=`/`phase2alg=`); empty means its defaults.
    Libreswan,
}

/// A Windows 10/11 client's list (../shared/L2TP-IPSEC-NOTES.md §2): the
/// curves first (P-384 before P-256), MODP1024 before MODP2048, so the
/// gateway's own preference shows.
pub const WINDOWS_IKE: &str = "aes256-sha1-ecp384,aes128-sha1-ecp256,aes256-sha1-modp1024,aes128-sha1-modp1024,3des-sha1-modp1024,aes256-sha1-modp2048,aes128-sha1-modp2048,3des-sha1-modp2048!";
pub const WINDOWS_ESP: &str = "aes256-sha1,aes128-sha1,3des-sha1!";
/// Android up to 11: MODP1024 only.
pub const ANDROID_IKE: &str = "aes256-sha1-modp1024,aes128-sha1-modp1024,3des-sha1-modp1024!";
pub const ANDROID_ESP: &str = "aes256-sha1,aes128-sha1,3des-sha1!";
/// macOS/iOS (Apple's racoon list, MD5 left out: strongSwan still sends it
/// but every Apple proposal also has a SHA variant).
pub const APPLE_IKE: &str = "aes256-sha256-modp2048,aes256-sha1-modp2048,aes256-sha256-modp1536,aes256-sha1-modp1536,aes256-sha256-modp1024,aes256-sha1-modp1024,aes128-sha1-modp1024,3des-sha1-modp1024!";
pub const APPLE_ESP: &str =
    "aes256-sha256,aes256-sha1,aes128-sha256,aes128-sha1,3des-sha256,3des-sha1!";

impl IpsecProfile<'_> {
    /// Brings the IKE SA and the transport-mode ESP SA for UDP 1701 up, or
    /// fails with the IKE daemon's log.
    pub fn up_script(&self) -> String {
        match self.client {
            IkeClient::StrongSwan => self.strongswan_up_script(),
            IkeClient::Libreswan => self.libreswan_up_script(),
        }
    }

    /// Takes the SAs down (Delete payloads to the gateway) and stops the
    /// IKE daemon.
    pub fn down_script(&self) -> &'static str {
        match self.client {
            IkeClient::StrongSwan => "ipsec down gw >/dev/null; ipsec stop >/dev/null",
            IkeClient::Libreswan => {
                "ipsec auto --down gw >/dev/null; ipsec whack --shutdown >/dev/null 2>&1; \
                 for i in $(seq 100); do pidof pluto >/dev/null || exit 0; sleep 0.1; done; exit 1"
            }
        }
    }

    /// The IKE daemon's log in the guest.
    pub fn log_path(&self) -> &'static str {
        match self.client {
            IkeClient::StrongSwan => "/tmp/charon.log",
            IkeClient::Libreswan => "/tmp/pluto.log",
        }
    }

    /// libreswan: swaps strongSwan out for the staged package (the guest's
    /// root filesystem is a snapshot, so this lasts one boot), then pluto
    /// with one connection like the Linux L2TP guides' `ipsec.conf`.
    fn libreswan_up_script(&self) -> String {
        let psk = self.psk;
        let line = |key: &str, v: &str| {
            if v.is_empty() {
                String::new()
            } else {
                format!("  {key}={v}\n")
            }
        };
        let algs = line("ike", self.ike) + &line("phase2alg", self.esp);
        let lifetimes = line("ikelifetime", self.ike_lifetime) + &line("salifetime", self.lifetime);
        format!(
            r#"if [ ! -x /usr/libexec/ipsec/pluto ]; then
  ipsec stop >/dev/null 2>&1
  # No service starts from maintainer scripts in the guest.
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d
  dpkg --remove --force-depends strongswan strongswan-charon strongswan-starter strongswan-libcharon charon-systemd >/tmp/dpkg.log 2>&1
  dpkg -i /var/cache/vpn-guest/libreswan.deb >>/tmp/dpkg.log 2>&1 || {{ echo "libreswan did not install"; tail -30 /tmp/dpkg.log; exit 1; }}
fi
mkdir -p /run/pluto /var/lib/ipsec/nss
cat > /etc/ipsec.conf <<'CONF'
config setup
  logfile=/tmp/pluto.log
  plutodebug=none
  # Debian's 4.10 drops IKEv1 unless told (as every L2TP guide says).
  ikev1-policy=accept
conn gw
  ikev2=no
  authby=secret
  type=transport
  left=%defaultroute
  leftprotoport=17/1701
  right={GW_WAN}
  rightprotoport=17/1701
{algs}{lifetimes}  auto=add
CONF
echo '%any {GW_WAN} : PSK "{psk}"' > /etc/ipsec.secrets
chmod 600 /etc/ipsec.secrets
rm -f /tmp/pluto.log
ipsec checknss >/tmp/nss.log 2>&1 || {{ echo "ipsec checknss failed"; cat /tmp/nss.log; exit 1; }}
ipsec pluto --config /etc/ipsec.conf || {{ echo "pluto did not start"; exit 1; }}
for i in $(seq 100); do [ -S /run/pluto/pluto.ctl ] && break; sleep 0.1; done
ipsec auto --add gw >/tmp/ipsec-add.log 2>&1 || {{ echo "ipsec auto --add failed"; cat /tmp/ipsec-add.log; tail -40 /tmp/pluto.log; exit 1; }}
ipsec auto --up gw > /tmp/ipsec-up.log 2>&1
grep -q "IPsec SA established" /tmp/ipsec-up.log || {{ echo "ipsec auto --up failed"; tail -40 /tmp/ipsec-up.log; tail -60 /tmp/pluto.log; exit 1; }}
"#
        )
    }

    /// strongSwan's starter and charon.
    fn strongswan_up_script(&self) -> String {
        let (psk, ike, esp) = (self.psk, self.ike, self.esp);
        let ikelife = if self.ike_lifetime.is_empty() {
            "8h"
        } else {
            self.ike_lifetime
        };
        let life = if self.lifetime.is_empty() {
            "1h"
        } else {
            self.lifetime
        };
        format!(
            r#"mkdir -p /etc/strongswan.d /var/run
cat > /etc/strongswan.d/zz-vpn-test.conf <<'CONF'
charon {{
  filelog {{
    test {{
      path = /tmp/charon.log
      default = 1
      ike = 2
      knl = 1
    }}
  }}
}}
CONF
cat > /etc/ipsec.conf <<'CONF'
config setup
conn gw
  keyexchange=ikev1
  authby=secret
  type=transport
  left=%defaultroute
  leftprotoport=17/1701
  right={GW_WAN}
  rightid=%any
  rightprotoport=17/1701
  ike={ike}
  esp={esp}
  ikelifetime={ikelife}
  lifetime={life}
  auto=add
CONF
echo ': PSK "{psk}"' > /etc/ipsec.secrets
chmod 600 /etc/ipsec.secrets
rm -f /tmp/charon.log
# A charon from an earlier connection would keep its old configuration.
ipsec stop >/dev/null 2>&1
ipsec start >/dev/null 2>&1
# charon is ready once it lists the connection.
for i in $(seq 100); do ipsec statusall 2>/dev/null | grep -q 'gw:.*IKEv1' && break; sleep 0.1; done
ipsec up gw > /tmp/ipsec-up.log 2>&1
grep -q "established successfully" /tmp/ipsec-up.log || {{ echo "ipsec up failed"; tail -40 /tmp/ipsec-up.log; tail -60 /tmp/charon.log; exit 1; }}
"#
        )
    }
}

impl L2tpClient<'_> {
    /// A script that writes xl2tpd's and pppd's configuration, starts
    /// xl2tpd and dials; it returns once ppp0 is up (or fails after
    /// `wait_secs`), with the gateway's LAN and the pool routed through it
    /// by pppd's ip-up hook (so renegotiation keeps them), and prints
    /// ppp0's address and the pushed DNS.
    pub fn connect_script(&self, wait_secs: u32) -> String {
        let (user, password) = (self.user, self.password);
        let auth = match self.secret {
            Some(_) => "challenge = yes\nhidden bit = yes\n",
            None => "challenge = no\n",
        };
        let secret = self.secret.unwrap_or("");
        let ipsec = self
            .ipsec
            .as_ref()
            .map(|p| p.up_script())
            .unwrap_or_default();
        // L2TP inside ESP in UDP: MTU below the plain case's 1400.
        let mtu = if self.ipsec.is_some() { 1360 } else { 1400 };
        format!(
            r#"{ipsec}mkdir -p /etc/xl2tpd /etc/ppp /var/run/xl2tpd
cat > /etc/xl2tpd/xl2tpd.conf <<CONF
[global]
access control = no
auth file = /etc/xl2tpd/l2tp-secrets
[lac gw]
lns = {GW_WAN}
name = {user}
pppoptfile = /etc/ppp/options.l2tp
length bit = yes
redial = no
autodial = yes
{auth}CONF
echo '* * {secret}' > /etc/xl2tpd/l2tp-secrets
chmod 600 /etc/xl2tpd/l2tp-secrets
cat > /etc/ppp/options.l2tp <<OPTS
name {user}
password {password}
refuse-pap
refuse-eap
refuse-chap
refuse-mschap
noccp
noauth
nodefaultroute
usepeerdns
mtu {mtu}
mru {mtu}
lcp-echo-interval 5
lcp-echo-failure 3
debug
logfile /tmp/pppd.log
OPTS
mkdir -p /etc/ppp/ip-up.d
# Routes in the hook: pppd runs it again whenever IPCP is renegotiated
# (after a lost Configure-Ack on a lossy link), and ip-down removed them.
cat > /etc/ppp/ip-up.d/zz-vpn-test <<'HOOK'
#!/bin/sh
ip route replace 172.16.10.0/24 dev "$1"
ip route replace 10.99.0.0/24 dev "$1"
echo "$1" > /tmp/ppp-up
HOOK
chmod +x /etc/ppp/ip-up.d/zz-vpn-test
rm -f /tmp/pppd.log /etc/ppp/resolv.conf /tmp/ppp-up
xl2tpd -D -c /etc/xl2tpd/xl2tpd.conf -p /var/run/xl2tpd.pid -C /var/run/xl2tpd/l2tp-control >/tmp/xl2tpd.log 2>&1 &
end=$(( $(date +%s) + {wait_secs} ))
while [ ! -s /tmp/ppp-up ] && [ $(date +%s) -lt $end ]; do sleep 0.1; done
[ -s /tmp/ppp-up ] || {{ echo "no ppp0"; tail -30 /tmp/xl2tpd.log; tail -30 /tmp/pppd.log; exit 1; }}
ip route show dev ppp0 | grep -q 172.16.10.0/24 || exit 1
ip -4 addr show dev ppp0
cat /etc/ppp/resolv.conf 2>/dev/null || true
"#
        )
    }
}

/// Hangs up in the guest: xl2tpd disconnects (CDN, StopCCN) and pppd ends.
pub const DISCONNECT_SCRIPT: &str = "kill $(pidof xl2tpd) 2>/dev/null; \
     for i in $(seq 100); do pidof pppd >/dev/null || pidof xl2tpd >/dev/null || exit 0; sleep 0.1; done; exit 1";

/// Sends a Windows-style DHCPINFORM from the guest's ppp0 address (taken
/// from `connect_output`) to the gateway over the call, and returns the
/// answer's DHCP options (panics if there is none).
pub fn dhcp_inform(
    g: &mut crate::guest::Guest,
    connect_output: &str,
) -> std::collections::HashMap<u8, Vec<u8>> {
    let at = connect_output
        .find("inet 10.99.0.")
        .expect("an address on ppp0");
    let addr: std::net::Ipv4Addr = connect_output[at + 5..]
        .split(['/', ' '])
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let req = vpn_proto::dhcp::inform_request(addr, 0x0bad_cafe, Some(&[6, 121, 249]));
    let escaped: String = req.iter().map(|b| format!("\\x{b:02x}")).collect();
    let hex = g.must(
        &format!("printf '{escaped}' | nc -u -w 3 -s {addr} -p 68 10.99.0.1 67 | od -An -v -tx1"),
        std::time::Duration::from_secs(30),
    );
    let reply: Vec<u8> = hex
        .split_whitespace()
        .map(|h| u8::from_str_radix(h, 16).unwrap())
        .collect();
    assert!(reply.len() > 240, "no DHCP answer: {hex:?}");
    assert_eq!(&reply[4..8], &0x0bad_cafeu32.to_be_bytes(), "xid");
    vpn_proto::dhcp::message_options(&reply)
        .expect("a DHCP message")
        .into_iter()
        .collect()
}
