//! Every command-line type in one place.
use std::{net::Ipv4Addr, path::PathBuf};

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "vpn-ctl",
    version,
    about = "VPN gateway with an in-kernel (XDP/TC) data plane"
)]
pub struct Cli {
    /// Configuration file (TOML). Without it: the embedded defaults.
    #[arg(short = 'c', long = "config", global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gateway in the foreground (until SIGINT/SIGTERM or `down`).
    Up {
        /// Enable a protocol that is off in the configuration (e.g. pptp).
        #[arg(long = "enable", value_name = "PROTOCOL")]
        enable: Vec<Protocol>,
    },
    /// Stop the running gateway and restore the host.
    Down,
    /// Replace the running daemon by the vpn-ctl binary on disk (after an
    /// upgrade, say) without dropping sessions: native, PPTP, L2TP and
    /// L2TP/IPsec sessions keep their keys, sequence numbers, IPsec SAs
    /// and PPP state. The configuration is read again, except the pool,
    /// WAN, VPN interface and ports.
    Restart,
    /// The handoff format this build reads, once it has checked the
    /// configuration (`restart` asks its successor).
    #[command(hide = true)]
    HandoffFormat,
    /// Interfaces, attach modes, programs, ports, maps, counters, drops.
    Status {
        #[arg(long)]
        json: bool,
        /// Also counters at zero, and the BPF maps' fill.
        #[arg(short, long)]
        verbose: bool,
    },
    /// Connected sessions.
    Sessions {
        #[arg(long)]
        json: bool,
    },
    /// End a session.
    Kill {
        /// Session id (from `sessions`).
        id: u64,
    },
    /// Connect to a vpn-ctl gateway with the native protocol (runs until
    /// Ctrl-C or SIGTERM; reconnects after network loss).
    Connect(ConnectArgs),
    /// What native clients need to pin this gateway: its public key, the
    /// key's fingerprint, and a `vpn-ctl connect` line (reads the secrets: root).
    GatewayKey {
        #[arg(long)]
        json: bool,
    },
    /// What USER needs to connect from one client OS: a PowerShell line,
    /// a .mobileconfig profile, the fields to type, an nmcli line, or the
    /// native client's command (reads the secrets: root).
    ClientConfig {
        user: String,
        #[arg(long, value_enum)]
        os: ClientOs,
        /// The gateway's public name or address, as users reach it.
        #[arg(long, default_value = "GATEWAY")]
        server: String,
        /// Put the user's password in too (by default the user types it).
        /// The gateway does not store passwords: it is asked for (or read
        /// from --password-file) and checked against the user's verifier.
        #[arg(long)]
        with_password: bool,
        /// File whose first line is the password, with --with-password ("-": stdin).
        #[arg(long, value_name = "FILE", requires = "with_password")]
        password_file: Option<PathBuf>,
        /// Also print a QR code for a phone to scan: the pre-shared key
        /// (android, ios: the part that is hard to type), or the native
        /// client's command line.
        #[arg(long)]
        qr: bool,
    },
    /// The L2TP/IPsec pre-shared key users type into their VPN settings,
    /// with its fingerprint (reads the secrets: root).
    IpsecPsk {
        #[arg(long)]
        json: bool,
        /// Replace the key with the first line of FILE ("-": standard input;
        /// 16 to 255 characters, no control characters). Takes effect at
        /// the next start.
        #[arg(long, value_name = "FILE")]
        set: Option<PathBuf>,
    },
    /// Check the host and the path from the internet for what stops
    /// clients (firewall, ports, routes, forwarding, rp_filter, BTF, XDP
    /// mode, MTU, NAT in front of the gateway, a weak PSK): one line per
    /// problem with the command that fixes it; exit status 1 if any.
    Doctor {
        #[arg(long)]
        json: bool,
    },
    /// Read an existing pptpd / xl2tpd / strongSwan setup and turn it into
    /// vpn-ctl's configuration (written to -c FILE, or
    /// /etc/vpn-ctl/vpn-ctl.toml), users and pre-shared key; prints what
    /// it could not carry over. A dry run unless --apply.
    Import {
        /// Where the old setup's /etc is (a mounted disk, a copy).
        #[arg(long, default_value = "/")]
        root: PathBuf,
        /// Write the configuration, users and PSK.
        #[arg(long)]
        apply: bool,
        /// Replace an existing configuration file, users of the same name
        /// and another PSK.
        #[arg(long)]
        force: bool,
    },
    /// Manage the user database.
    Users {
        #[command(subcommand)]
        command: UsersCommand,
    },
}

#[derive(Debug, clap::Args)]
pub struct ConnectArgs {
    /// The gateway: HOST or HOST:PORT (default port 7443).
    pub server: String,
    /// User name.
    #[arg(short, long, default_value = "vpn")]
    pub user: String,
    /// The gateway's public key (base64), as `vpn-ctl gateway-key` on the
    /// gateway prints it. The password goes only to the holder of this key.
    #[arg(long, value_name = "KEY")]
    pub gateway_key: String,
    /// File whose first line is the gateway's pre-shared key ("-": stdin).
    /// Without it: asked on the terminal.
    #[arg(long, value_name = "FILE")]
    pub psk_file: Option<PathBuf>,
    /// File whose first line is the password ("-": stdin).
    /// Without it: asked on the terminal.
    #[arg(long, value_name = "FILE")]
    pub password_file: Option<PathBuf>,
    /// Send all traffic through the tunnel (the gateway stays reachable by a host route).
    #[arg(long, conflicts_with = "route")]
    pub full_tunnel: bool,
    /// Route this network through the tunnel, besides what the gateway pushes (repeatable).
    #[arg(long = "route", value_name = "CIDR")]
    pub route: Vec<crate::net::prefix::Ipv4Prefix>,
    /// Name of the tunnel interface.
    #[arg(long, default_value = "vpnc0")]
    pub interface: String,
    /// Leave DNS alone even if the gateway pushes servers.
    #[arg(long)]
    pub no_dns: bool,
    /// The resolver file to point at the pushed DNS servers (restored on exit).
    #[arg(long, default_value = "/etc/resolv.conf", value_name = "FILE")]
    pub resolv_conf: PathBuf,
    /// Offer only this data cipher (aes-256-gcm or chacha20-poly1305).
    #[arg(long)]
    pub cipher: Option<String>,
    /// Exit instead of reconnecting when the connection is lost.
    #[arg(long)]
    pub no_reconnect: bool,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Protocol {
    L2tp,
    Pptp,
    Native,
}

#[derive(Debug, Subcommand)]
pub enum UsersCommand {
    /// Add a user. The password comes from --password-file, the terminal
    /// (asked twice) or the first line of standard input.
    Add {
        name: String,
        /// File whose first line is the password ("-" for standard input).
        #[arg(long, value_name = "FILE")]
        password_file: Option<PathBuf>,
        /// Static address for this user (otherwise one from the pool).
        #[arg(long, value_name = "ADDR")]
        ip: Option<Ipv4Addr>,
        /// Native protocol only: store no NT hash, so no PPTP or L2TP login
        /// (MS-CHAPv2 needs that password-equivalent hash).
        #[arg(long)]
        native_only: bool,
    },
    /// Change a user's password (same sources as `add`).
    Passwd {
        name: String,
        #[arg(long, value_name = "FILE")]
        password_file: Option<PathBuf>,
        /// Native protocol only from now on (see `add`).
        #[arg(long)]
        native_only: bool,
    },
    /// Delete a user.
    Del { name: String },
    /// List users (never their passwords).
    List {
        #[arg(long)]
        json: bool,
    },
}

/// Client systems `client-config` writes for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ClientOs {
    Windows,
    Macos,
    Ios,
    Android,
    Linux,
    Native,
}
