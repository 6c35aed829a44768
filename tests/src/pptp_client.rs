//! Driving the real PPTP client (pppd + pptp-linux) in a guest: the peers
//! file and `pppd call`, in one place for tests and the benchmark.
use crate::topology::GW_WAN;

/// A script that writes `/etc/ppp/peers/gw` and runs `pppd call gw`,
/// returning once IPCP is up (`updetach`). With `mppe`, MPPE-128 is
/// required; without, CCP is refused (the gateway's fast path). Afterwards
/// it routes the gateway's LAN and the pool through ppp0 and prints ppp0's
/// address and the pushed DNS servers.
pub fn connect_script(user: &str, password: &str, mppe: bool) -> String {
    let enc = if mppe { "require-mppe-128" } else { "noccp" };
    format!(
        r#"mkdir -p /etc/ppp/peers
cat > /etc/ppp/peers/gw <<PEERS
pty "pptp {GW_WAN} --nolaunchpppd"
name {user}
password {password}
remotename vpn-ctl
{enc}
refuse-pap
refuse-eap
refuse-chap
refuse-mschap
noauth
nodefaultroute
usepeerdns
maxfail 1
lcp-echo-interval 5
lcp-echo-failure 3
PEERS
pppd call gw updetach debug logfd 2 || exit 1
ip route replace 172.16.10.0/24 dev ppp0
ip route replace 10.99.0.0/24 dev ppp0
ip -4 addr show dev ppp0
cat /etc/ppp/resolv.conf 2>/dev/null || true
"#
    )
}

/// Ends the client in the guest (pppd, then pptp with it).
pub const DISCONNECT_SCRIPT: &str = "ip route del 172.16.10.0/24 2>/dev/null; \
     kill $(pidof pppd) 2>/dev/null; \
     for i in $(seq 100); do pidof pppd >/dev/null || exit 0; sleep 0.1; done";

/// ppp0's address in the output of `connect_script`.
pub fn ppp_address(connect_output: &str) -> String {
    connect_output
        .split("inet ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .unwrap_or_else(|| panic!("no ppp0 address in:\n{connect_output}"))
        .to_string()
}
