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
        format!(
            r#"mkdir -p /etc/xl2tpd /etc/ppp /var/run/xl2tpd
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
mtu 1400
mru 1400
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
