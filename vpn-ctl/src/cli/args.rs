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
    /// Interfaces, attach modes, programs, ports, maps, counters, drops.
    Status {
        #[arg(long)]
        json: bool,
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
    /// Manage the user database.
    Users {
        #[command(subcommand)]
        command: UsersCommand,
    },
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
    },
    /// Delete a user.
    Del { name: String },
    /// List users (never their passwords).
    List {
        #[arg(long)]
        json: bool,
    },
}
