//! The command-line front end: one file per subcommand.
pub mod args;
mod client_config;
mod connect;
mod doctor;
mod down;
mod gateway_key;
mod import;
mod ipsec_psk;
mod query;
mod restart;
mod secret_input;
mod up;
mod users;

use crate::config::Config;

/// Runs the parsed command line.
pub fn run(cli: args::Cli) -> anyhow::Result<()> {
    let (cfg, source) = Config::load(cli.config.as_deref())?;
    match cli.command {
        args::Command::Up { enable } => up::run(cfg, source, &enable),
        args::Command::Down => down::run(&cfg),
        args::Command::Restart => restart::run(&cfg),
        // What a restarting daemon asks its successor: can you read my
        // handoff, and the configuration as it is now?
        args::Command::HandoffFormat => {
            cfg.validate()?;
            println!("{}", crate::daemon::handoff::FORMAT);
            Ok(())
        }
        args::Command::Status { json, verbose } => query::status(&cfg, json, verbose),
        args::Command::Sessions { json } => query::sessions(&cfg, json),
        args::Command::Kill { id } => query::kill(&cfg, id),
        args::Command::Connect(a) => connect::run(&cfg, a),
        args::Command::Users { command } => users::run(&cfg, command),
        args::Command::GatewayKey { json } => gateway_key::run(&cfg, json),
        args::Command::Doctor { json } => doctor::run(&cfg, json),
        args::Command::Import { root, apply, force } => {
            import::run(cfg, cli.config.as_deref(), &root, apply, force)
        }
        args::Command::IpsecPsk { json, set } => match set {
            Some(file) => ipsec_psk::set(&cfg, &file),
            None => ipsec_psk::run(&cfg, json),
        },
        args::Command::ClientConfig {
            user,
            os,
            server,
            with_password,
            password_file,
            qr,
        } => {
            let password = with_password.then_some(password_file.as_deref());
            client_config::run(&cfg, &user, os, &server, password, qr)
        }
    }
}

/// Prints `items` as one JSON array (like `ip -j`).
pub fn print_json<T: serde::Serialize>(items: &[T]) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(items)?);
    Ok(())
}

/// The daemon's and the client's log: to stderr, at `log.level` (or
/// RUST_LOG).
pub(crate) fn init_logging(cfg: &Config) {
    let level = crate::config::log_level(&cfg.log.level).unwrap_or(log::LevelFilter::Info);
    env_logger::Builder::new()
        .filter_level(level)
        // It warns about replies to dumps we stopped reading; not actionable.
        .filter_module("netlink_proto", log::LevelFilter::Error)
        .parse_env("RUST_LOG")
        .format_target(false)
        .init();
}
