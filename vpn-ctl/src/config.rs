//! The gateway's configuration: a TOML file (`vpn-ctl up -c FILE`) or the
//! embedded defaults. Unknown keys are errors, reported on one line with their
//! line number. A commented example lives in docs/vpn-ctl.example.toml.
use std::{
    net::Ipv4Addr,
    path::{Path, PathBuf},
};

use anyhow::{bail, Context as _};
use serde::{Deserialize, Serialize};

use vpn_proto::native::crypto::Cipher;

use crate::net::prefix::Ipv4Prefix;

#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub gateway: GatewayConfig,
    pub paths: PathsConfig,
    pub nat: NatConfig,
    pub firewall: FirewallConfig,
    pub xdp: XdpConfig,
    pub l2tp: L2tpConfig,
    pub ipsec: IpsecConfig,
    pub pptp: PptpConfig,
    pub native: NativeConfig,
    pub metrics: MetricsConfig,
    #[serde(skip_serializing_if = "RadiusConfig::is_off")]
    pub radius: RadiusConfig,
    pub log: LogConfig,
}

/// RADIUS (docs/radius.md): when enabled, every login (PPP and native) is
/// decided by the servers, sessions are accounted to them, and they may end
/// sessions (Disconnect-Request, `dae_port`). The local users are not
/// consulted: a gateway with RADIUS has one source of truth.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct RadiusConfig {
    pub enabled: bool,
    /// Tried in this order; the next one when one does not answer.
    pub servers: Vec<RadiusServer>,
    /// NAS-Identifier in every request.
    pub nas_identifier: String,
    /// NAS-IP-Address in every request (omitted when unset).
    pub nas_ip: Option<Ipv4Addr>,
    /// Wait this long for an answer before retransmitting.
    pub timeout_ms: u32,
    /// Transmissions to one server before the next is tried.
    pub tries: u32,
    /// A server that did not answer is skipped this long.
    pub dead_time_secs: u32,
    /// Drop Access-Accepts and -Rejects that carry no Message-Authenticator
    /// (BlastRADIUS, CVE-2024-3596). Off by default: servers before the fix
    /// (Debian 12's FreeRADIUS 3.2.1 among them) do not send one.
    pub require_message_authenticator: bool,
    /// Accounting Start/Interim-Update/Stop for every session.
    pub accounting: bool,
    /// Interim-Update interval unless the server sets one
    /// (Acct-Interim-Interval); 0: none.
    pub interim_secs: u32,
    /// UDP port for Disconnect-Requests and CoA-Requests from the servers
    /// (RFC 5176; 3799 is the registered one); 0: not listened on.
    pub dae_port: u16,
}

#[derive(Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RadiusServer {
    pub address: Ipv4Addr,
    /// The shared secret. A configuration file holding one must be
    /// readable by root only.
    pub secret: String,
    #[serde(default = "default_auth_port")]
    pub auth_port: u16,
    #[serde(default = "default_acct_port")]
    pub acct_port: u16,
}

/// Without the secret.
impl std::fmt::Debug for RadiusServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RadiusServer")
            .field("address", &self.address)
            .field("auth_port", &self.auth_port)
            .field("acct_port", &self.acct_port)
            .finish_non_exhaustive()
    }
}

fn default_auth_port() -> u16 {
    vpn_proto::radius::consts::AUTH_PORT
}

fn default_acct_port() -> u16 {
    vpn_proto::radius::consts::ACCT_PORT
}

impl Default for RadiusConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            servers: Vec::new(),
            nas_identifier: "vpn-ctl".into(),
            nas_ip: None,
            timeout_ms: 3000,
            tries: 3,
            dead_time_secs: 30,
            require_message_authenticator: false,
            accounting: true,
            interim_secs: 300,
            dae_port: 0,
        }
    }
}

impl RadiusConfig {
    fn is_off(&self) -> bool {
        *self == RadiusConfig::default()
    }

    fn validate(&self) -> anyhow::Result<()> {
        if !self.enabled {
            return Ok(());
        }
        if self.servers.is_empty() {
            bail!("radius.enabled needs at least one [[radius.servers]]");
        }
        for s in &self.servers {
            if s.secret.len() < 8 || s.secret.len() > 128 || s.secret.chars().any(char::is_control)
            {
                bail!(
                    "radius server {}: the secret must be 8 to 128 characters without control characters",
                    s.address
                );
            }
            if s.auth_port == 0 || s.acct_port == 0 {
                bail!("radius server {}: port 0 is not allowed", s.address);
            }
        }
        if !(100..=60_000).contains(&self.timeout_ms) || !(1..=10).contains(&self.tries) {
            bail!("radius.timeout_ms must be between 100 and 60000, radius.tries between 1 and 10");
        }
        if self.nas_identifier.is_empty() || self.nas_identifier.len() > 253 {
            bail!("radius.nas_identifier must be 1 to 253 bytes");
        }
        if self.interim_secs != 0 && self.interim_secs < 60 {
            bail!("radius.interim_secs must be 0 (off) or at least 60");
        }
        Ok(())
    }
}

/// The Prometheus endpoint (`GET /metrics`): off unless enabled, on the
/// loopback address unless told otherwise (it has no authentication).
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    pub enabled: bool,
    pub listen: std::net::SocketAddr,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            listen: std::net::SocketAddr::from(([127, 0, 0, 1], 9477)),
        }
    }
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct GatewayConfig {
    /// WAN interface; `None` = the interface of the default route.
    pub wan: Option<String>,
    /// Name of the VPN interface (a multi-queue TUN device).
    pub vpn_interface: String,
    /// Client address pool; `None` = the first candidate that overlaps no
    /// network of the host. The pool's first address is the gateway's.
    pub pool: Option<Ipv4Prefix>,
    /// Limit on concurrent sessions (at most the data plane's table size).
    pub max_sessions: u32,
    /// Sessions one user may hold at once, over all protocols.
    pub max_sessions_per_user: u32,
    /// Clients may not reach each other through the gateway (only the LAN
    /// and the internet).
    pub client_isolation: bool,
    /// DNS servers pushed to clients (none: clients keep their own).
    pub dns: Vec<Ipv4Addr>,
    /// Routes pushed to split-tunnel clients; `None` = the networks directly
    /// connected to the gateway other than the WAN's (its LANs).
    pub push_routes: Option<Vec<Ipv4Prefix>>,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
            wan: None,
            vpn_interface: "vpn0".into(),
            pool: None,
            max_sessions: 1024,
            max_sessions_per_user: 8,
            client_isolation: false,
            dns: Vec::new(),
            push_routes: None,
        }
    }
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct PathsConfig {
    /// Secrets and the user database (root-only).
    pub state_dir: PathBuf,
    /// Control socket, lock and undo journal (root-only).
    pub run_dir: PathBuf,
    /// Where the BPF maps are pinned.
    pub bpf_pin_dir: PathBuf,
}

impl Default for PathsConfig {
    fn default() -> Self {
        Self {
            state_dir: "/var/lib/vpn-ctl".into(),
            run_dir: "/run/vpn-ctl".into(),
            bpf_pin_dir: "/sys/fs/bpf/vpn-ctl".into(),
        }
    }
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct NatConfig {
    /// Masquerade pool traffic leaving through the WAN.
    pub masquerade: bool,
}

impl Default for NatConfig {
    fn default() -> Self {
        Self { masquerade: true }
    }
}

#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct FirewallConfig {
    /// When the host firewall would reject our ports, insert ACCEPT rules
    /// (removed again on `down`). Off: only report the problem.
    pub open_ports: bool,
}

#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum XdpModeSetting {
    /// Native where the driver supports it, generic otherwise.
    #[default]
    Auto,
    Native,
    Generic,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct XdpConfig {
    pub mode: XdpModeSetting,
    /// LAN interfaces between which and the WAN XDP itself forwards the
    /// unencrypted fast paths' packets (decisions #54). Each gets an XDP
    /// program too, and must be able to send redirected frames (a NIC
    /// driver with XDP, or a veth whose peer has GRO or XDP on). Empty:
    /// the TC path only.
    pub forward_interfaces: Vec<String>,
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct L2tpConfig {
    pub enabled: bool,
    pub port: u16,
    pub ike_port: u16,
    pub natt_port: u16,
    /// Accept L2TP outside IPsec (its data is unencrypted). Off: plain
    /// tunnels are refused with StopCCN and counted.
    pub allow_plain: bool,
    /// Tunnel secret (challenge/response and hidden AVPs); clients must
    /// then be configured with the same one. Empty: no tunnel
    /// authentication (what Windows, macOS and iOS clients expect).
    pub secret: String,
    /// With a secret: hide the IDs we assign (RFC 2661 §4.3).
    pub hide_avps: bool,
    /// Accept PAP (the password in clear inside the tunnel) after MS-CHAPv2.
    pub allow_pap: bool,
    /// Carry plain L2TP sessions' data in the kernel (TC); off: the daemon
    /// carries everything (for comparison and debugging).
    pub fast_path: bool,
    /// HELLO after this many quiet seconds.
    pub hello_interval_secs: u16,
    /// LCP echo interval; a peer missing `echo_failures` echoes is dropped.
    pub echo_interval_secs: u16,
    pub echo_failures: u32,
    /// Tunnels from one public address (clients behind one NAT share it).
    pub max_tunnels_per_address: u32,
    pub max_sessions_per_tunnel: u32,
    /// Tunnels that have not completed set-up, at once.
    pub max_half_open: u32,
}

impl Default for L2tpConfig {
    fn default() -> Self {
        use vpn_common::wire::{PORT_IKE, PORT_L2TP, PORT_NATT};
        Self {
            enabled: true,
            port: PORT_L2TP,
            ike_port: PORT_IKE,
            natt_port: PORT_NATT,
            allow_plain: false,
            secret: String::new(),
            hide_avps: false,
            allow_pap: false,
            fast_path: true,
            hello_interval_secs: 60,
            echo_interval_secs: 10,
            echo_failures: 3,
            max_tunnels_per_address: 16,
            max_sessions_per_tunnel: 4,
            max_half_open: 32,
        }
    }
}

/// L2TP/IPsec (IKEv1 with the gateway's pre-shared key, ESP in userspace);
/// on whenever L2TP is. Ports are `l2tp.ike_port` and `l2tp.natt_port`.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct IpsecConfig {
    pub enabled: bool,
    /// Also accept MODP1536/MODP1024 and 3DES (older Android, macOS
    /// fallbacks); warned in `status` while on.
    pub legacy: bool,
    /// Lifetime ceilings: longer proposals are accepted and cut short.
    pub max_ike_lifetime_secs: u32,
    pub max_esp_lifetime_secs: u32,
    /// Main Modes that have not authenticated yet, at once (a quarter per
    /// address); each must finish within `setup_timeout_secs`.
    pub max_half_open: u32,
    pub setup_timeout_secs: u16,
    /// Accept ESP as IP protocol 50 (clients not behind NAT).
    pub raw_esp: bool,
}

impl Default for IpsecConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            legacy: true,
            max_ike_lifetime_secs: 86400,
            max_esp_lifetime_secs: 86400,
            max_half_open: 64,
            setup_timeout_secs: 30,
            raw_esp: true,
        }
    }
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct PptpConfig {
    /// Off by default: PPTP/MS-CHAPv2 is cryptographically weak.
    pub enabled: bool,
    pub port: u16,
    /// Refuse IP until MPPE-128 is up (the usual pptpd setup).
    pub require_mppe: bool,
    /// Accept PAP (the password in clear inside the tunnel) after MS-CHAPv2.
    pub allow_pap: bool,
    /// LCP echo interval; a peer missing `echo_failures` echoes is dropped.
    pub echo_interval_secs: u16,
    pub echo_failures: u32,
    /// Control connections that have not set up a call yet, at once.
    pub max_half_open: u32,
}

impl Default for PptpConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            port: vpn_common::wire::PORT_PPTP,
            require_mppe: true,
            allow_pap: false,
            echo_interval_secs: 10,
            echo_failures: 3,
            max_half_open: 32,
        }
    }
}

/// Default TCP (handshake) and UDP (data) port of the native protocol.
pub const NATIVE_DEFAULT_PORT: u16 = 7443;

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct NativeConfig {
    pub enabled: bool,
    pub port: u16,
    /// Data ciphers the gateway accepts, most preferred first.
    pub ciphers: Vec<String>,
    /// Clients send a keepalive after this many quiet seconds; a session
    /// with nothing for 3 intervals is over.
    pub keepalive_secs: u16,
    /// Clients renew the data keys (a fresh key exchange) this often.
    pub rekey_secs: u32,
    /// MTU of the tunnel (vpn0 and the clients' interfaces).
    pub mtu: u16,
    /// Handshakes in progress at once; more connections are refused.
    pub max_half_open: u32,
    /// A handshake must finish within this many seconds.
    pub handshake_timeout_secs: u16,
}

impl Default for NativeConfig {
    fn default() -> Self {
        use vpn_proto::native::consts;
        Self {
            enabled: true,
            port: NATIVE_DEFAULT_PORT,
            ciphers: Cipher::ALL.iter().map(|c| c.name().to_string()).collect(),
            keepalive_secs: consts::DEFAULT_KEEPALIVE.as_secs() as u16,
            rekey_secs: consts::DEFAULT_REKEY.as_secs() as u32,
            mtu: consts::DEFAULT_MTU,
            max_half_open: 64,
            handshake_timeout_secs: 10,
        }
    }
}

impl NativeConfig {
    pub fn cipher_list(&self) -> Vec<Cipher> {
        self.ciphers
            .iter()
            .filter_map(|c| Cipher::from_name(c))
            .collect()
    }
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// error, warn, info, debug or trace (RUST_LOG overrides it).
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            level: "info".into(),
        }
    }
}

/// Where the configuration came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    Defaults,
    File(PathBuf),
}

impl Config {
    /// Loads `path`, or the embedded defaults when `None`.
    pub fn load(path: Option<&Path>) -> anyhow::Result<(Config, Source)> {
        let Some(path) = path else {
            return Ok((Config::default(), Source::Defaults));
        };
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read config {}", path.display()))?;
        let cfg = Self::parse(&text).with_context(|| format!("config {}", path.display()))?;
        if !cfg.radius.servers.is_empty() {
            use std::os::unix::fs::MetadataExt as _;
            let meta = std::fs::metadata(path)?;
            if meta.mode() & 0o077 != 0 {
                bail!(
                    "config {} holds RADIUS secrets but others may read it: chmod 600 {0}",
                    path.display()
                );
            }
        }
        Ok((cfg, Source::File(path.to_path_buf())))
    }

    /// Parses and validates TOML text; errors are one line.
    pub fn parse(text: &str) -> anyhow::Result<Config> {
        let cfg: Config = toml::from_str(text).map_err(|e| {
            let line = e
                .span()
                .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1);
            let msg = e.message().replace('\n', " ");
            match line {
                Some(l) => anyhow::anyhow!("line {l}: {msg}"),
                None => anyhow::anyhow!("{msg}"),
            }
        })?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks what the types cannot express.
    fn check_forward_interfaces(&self) -> anyhow::Result<()> {
        let lan = &self.xdp.forward_interfaces;
        let max = vpn_common::maps::MAX_FORWARD_IFS as usize;
        if lan.len() > max {
            bail!("xdp.forward_interfaces: at most {max} interfaces");
        }
        for (i, name) in lan.iter().enumerate() {
            check_ifname("xdp.forward_interfaces", name)?;
            if lan[..i].contains(name) {
                bail!("xdp.forward_interfaces names `{name}` twice");
            }
            if *name == self.gateway.vpn_interface || self.gateway.wan.as_ref() == Some(name) {
                bail!("xdp.forward_interfaces: `{name}` is the WAN or the VPN interface, not a LAN one");
            }
        }
        Ok(())
    }

    pub fn validate(&self) -> anyhow::Result<()> {
        check_ifname("gateway.vpn_interface", &self.gateway.vpn_interface)?;
        self.check_forward_interfaces()?;
        if let Some(wan) = &self.gateway.wan {
            check_ifname("gateway.wan", wan)?;
        }
        if let Some(pool) = self.gateway.pool {
            if !(8..=30).contains(&pool.prefix_len()) {
                bail!("gateway.pool {pool}: the prefix length must be between /8 and /30");
            }
        }
        let max = vpn_common::maps::MAX_SESSIONS;
        if self.gateway.max_sessions == 0 || self.gateway.max_sessions > max {
            bail!("gateway.max_sessions must be between 1 and {max}");
        }
        if self.gateway.max_sessions_per_user == 0 {
            bail!("gateway.max_sessions_per_user must be positive");
        }
        let n = &self.native;
        if n.ciphers.is_empty() {
            bail!("native.ciphers must name at least one cipher");
        }
        if let Some(c) = n.ciphers.iter().find(|c| Cipher::from_name(c).is_none()) {
            bail!("native.ciphers: unknown cipher `{c}` (aes-256-gcm or chacha20-poly1305)");
        }
        if !(1..=300).contains(&n.keepalive_secs) {
            bail!("native.keepalive_secs must be between 1 and 300");
        }
        if n.rekey_secs < 10 {
            bail!("native.rekey_secs must be at least 10");
        }
        if !(576..=9000).contains(&n.mtu) {
            bail!("native.mtu must be between 576 and 9000");
        }
        if n.max_half_open == 0 || n.handshake_timeout_secs == 0 {
            bail!("native.max_half_open and native.handshake_timeout_secs must be positive");
        }
        if self.pptp.echo_interval_secs == 0
            || self.pptp.echo_failures == 0
            || self.pptp.max_half_open == 0
        {
            bail!("pptp.echo_interval_secs, pptp.echo_failures and pptp.max_half_open must be positive");
        }
        let l = &self.l2tp;
        if l.hello_interval_secs == 0
            || l.echo_interval_secs == 0
            || l.echo_failures == 0
            || l.max_tunnels_per_address == 0
            || l.max_sessions_per_tunnel == 0
            || l.max_half_open == 0
        {
            bail!("l2tp.hello_interval_secs, echo_interval_secs, echo_failures, max_tunnels_per_address, max_sessions_per_tunnel and max_half_open must be positive");
        }
        if l.hide_avps && l.secret.is_empty() {
            bail!("l2tp.hide_avps needs l2tp.secret");
        }
        let i = &self.ipsec;
        if i.max_ike_lifetime_secs < 60 || i.max_esp_lifetime_secs < 60 {
            bail!("ipsec.max_ike_lifetime_secs and max_esp_lifetime_secs must be at least 60");
        }
        if i.max_half_open == 0 || i.setup_timeout_secs == 0 {
            bail!("ipsec.max_half_open and ipsec.setup_timeout_secs must be positive");
        }
        self.radius.validate()?;
        if log_level(&self.log.level).is_none() {
            bail!(
                "log.level `{}`: expected error, warn, info, debug or trace",
                self.log.level
            );
        }
        let mut seen: Vec<(&str, u16, &str)> = Vec::new();
        for l in self.listeners() {
            if l.port == 0 {
                bail!("{}: port 0 is not allowed", l.service);
            }
            if let Some((_, _, other)) = seen.iter().find(|(p, n, _)| *p == l.proto && *n == l.port)
            {
                bail!(
                    "{} and {} both use {} port {}",
                    other,
                    l.service,
                    l.proto.to_uppercase(),
                    l.port
                );
            }
            seen.push((l.proto, l.port, l.service));
        }
        Ok(())
    }

    /// L2TP/IPsec runs: it needs L2TP.
    pub fn ipsec_enabled(&self) -> bool {
        self.l2tp.enabled && self.ipsec.enabled
    }

    /// The sockets the enabled services listen on.
    pub fn listeners(&self) -> Vec<ListenerSpec> {
        let mut v = Vec::new();
        if self.l2tp.enabled {
            v.push(ListenerSpec::new("l2tp", "udp", self.l2tp.port));
        }
        if self.ipsec_enabled() {
            v.push(ListenerSpec::new("ike", "udp", self.l2tp.ike_port));
            v.push(ListenerSpec::new("ike-natt", "udp", self.l2tp.natt_port));
        }
        if self.pptp.enabled {
            v.push(ListenerSpec::new("pptp", "tcp", self.pptp.port));
        }
        if self.native.enabled {
            v.push(ListenerSpec::new("native", "tcp", self.native.port));
            v.push(ListenerSpec::new("native", "udp", self.native.port));
        }
        if self.radius.enabled && self.radius.dae_port != 0 {
            v.push(ListenerSpec::new("radius-dae", "udp", self.radius.dae_port));
        }
        v
    }
}

/// One listening socket of a service.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct ListenerSpec {
    pub service: &'static str,
    pub proto: &'static str,
    pub port: u16,
}

impl ListenerSpec {
    const fn new(service: &'static str, proto: &'static str, port: u16) -> Self {
        Self {
            service,
            proto,
            port,
        }
    }
}

pub fn log_level(s: &str) -> Option<log::LevelFilter> {
    s.parse().ok()
}

fn check_ifname(key: &str, name: &str) -> anyhow::Result<()> {
    let ok = !name.is_empty()
        && name.len() < libc::IFNAMSIZ
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
    if !ok {
        bail!("{key} `{name}` is not a valid interface name (1-15 of a-z A-Z 0-9 - _ .)");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_file_is_the_defaults() {
        let text = include_str!("../../docs/vpn-ctl.example.toml");
        vpn_proto::fuzz_seed::save("config_file", text.as_bytes());
        assert_eq!(Config::parse(text).unwrap(), Config::default());
    }

    #[test]
    fn unknown_key_is_one_line_with_its_line() {
        let err = Config::parse("[gateway]\nvpn_interface = \"vpn0\"\npoool = \"x\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("line 3: unknown field `poool`"), "{err}");
        assert!(!err.contains('\n'));
    }

    #[test]
    fn rejects_bad_values() {
        for (text, want) in [
            ("[gateway]\npool = \"10.0.0.0/31\"", "between /8 and /30"),
            ("[gateway]\npool = \"10.0.0.1/24\"", "host bits"),
            (
                "[gateway]\nvpn_interface = \"a-very-long-ifname\"",
                "not a valid interface",
            ),
            ("[native]\nport = 1701", "both use UDP port 1701"),
            ("[log]\nlevel = \"loud\"", "log.level"),
            ("[gateway]\nmax_sessions = 0", "max_sessions"),
        ] {
            let err = Config::parse(text).unwrap_err().to_string();
            assert!(err.contains(want), "{text}: {err}");
        }
    }

    #[test]
    fn radius_settings_are_checked_and_secrets_need_a_private_file() {
        let server =
            "[[radius.servers]]\naddress = \"10.0.0.5\"\nsecret = \"long-enough-secret\"\n";
        for (text, want) in [
            ("[radius]\nenabled = true\n".to_string(), "at least one"),
            (
                "[radius]\nenabled = true\n[[radius.servers]]\naddress = \"10.0.0.5\"\nsecret = \"short\"\n".into(),
                "8 to 128",
            ),
            (format!("[radius]\nenabled = true\ntries = 0\n{server}"), "radius.tries"),
            (format!("[radius]\nenabled = true\ninterim_secs = 5\n{server}"), "interim_secs"),
            (format!("[radius]\nenabled = true\ndae_port = 1701\n{server}"), "both use UDP port 1701"),
        ] {
            let err = Config::parse(&text).unwrap_err().to_string();
            assert!(err.contains(want), "{text}: {err}");
        }
        let text = format!("[radius]\nenabled = true\ndae_port = 3799\n{server}");
        let cfg = Config::parse(&text).unwrap();
        assert!(cfg
            .listeners()
            .iter()
            .any(|l| l.service == "radius-dae" && l.port == 3799));
        // A file others can read may not hold the secret.
        use std::os::unix::fs::PermissionsExt as _;
        let dir = std::env::temp_dir().join(format!("vpn-ctl-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("radius.toml");
        std::fs::write(&path, &text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = Config::load(Some(&path)).unwrap_err().to_string();
        assert!(err.contains("chmod 600"), "{err}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(Config::load(Some(&path)).is_ok());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
