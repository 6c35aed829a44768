//! `vpn-ctl doctor [--json]`: runs the checks, prints one finding per
//! problem with its fix, and exits non-zero if there is any.
use crate::{
    config::Config,
    control::{self, NotRunning, Request},
    doctor::{self, Host, Inputs},
    report::Status,
    secrets::Secrets,
};

pub fn run(cfg: &Config, json: bool) -> anyhow::Result<()> {
    let running: Option<Status> = match control::call(&cfg.paths.run_dir, &Request::Status) {
        Ok(v) => Some(serde_json::from_value(v)?),
        Err(e) if e.is::<NotRunning>() => None,
        Err(e) => return Err(e.context("asking the running gateway for its status")),
    };
    let pool = running
        .as_ref()
        .and_then(|s| s.pool.parse().ok())
        .or(cfg.gateway.pool);
    let host = Host::gather(cfg, pool)?;
    // No secrets yet (first start to come) is not a problem.
    let secrets = Secrets::read(&cfg.paths.state_dir).ok();
    let findings = doctor::run(&Inputs {
        cfg,
        running: running.as_ref(),
        host: &host,
        psk: secrets.as_ref().map(|s| s.psk.as_str()),
    });
    if json {
        super::print_json(&findings)?;
    } else {
        let state = if running.is_some() {
            "running"
        } else {
            "not running"
        };
        println!("vpn-ctl doctor (gateway {state})");
        for f in &findings {
            println!("problem [{}]: {}\n  fix: {}", f.check, f.problem, f.fix);
        }
        if findings.is_empty() {
            println!("no problems found");
        }
    }
    match findings.len() {
        0 => Ok(()),
        n => anyhow::bail!("{n} problem(s) found"),
    }
}
