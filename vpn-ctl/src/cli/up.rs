//! `vpn-ctl up`.
use super::args::Protocol;
use crate::config::{Config, Source};

pub fn run(mut cfg: Config, source: Source, enable: &[Protocol]) -> anyhow::Result<()> {
    for p in enable {
        match p {
            Protocol::L2tp => cfg.l2tp.enabled = true,
            Protocol::Pptp => cfg.pptp.enabled = true,
            Protocol::Native => cfg.native.enabled = true,
        }
    }
    cfg.validate()?;
    init_logging(&cfg);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(crate::daemon::run(cfg, source))
}

fn init_logging(cfg: &Config) {
    let level = crate::config::log_level(&cfg.log.level).unwrap_or(log::LevelFilter::Info);
    env_logger::Builder::new()
        .filter_level(level)
        // It warns about replies to dumps we stopped reading; not actionable.
        .filter_module("netlink_proto", log::LevelFilter::Error)
        .parse_env("RUST_LOG")
        .format_target(false)
        .init();
}
