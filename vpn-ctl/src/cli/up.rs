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
    super::init_logging(&cfg);
    // A restarting predecessor's state, read before any thread starts.
    let handoff = crate::daemon::handoff::take()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(crate::daemon::run(cfg, source, handoff))
}
