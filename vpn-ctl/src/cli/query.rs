//! `status`, `sessions` and `kill`: questions to the running daemon.
use crate::{
    config::Config,
    control::{self, Request},
    report::{SessionRow, Status},
};

pub fn status(cfg: &Config, json: bool, verbose: bool) -> anyhow::Result<()> {
    let data = control::call(&cfg.paths.run_dir, &Request::Status)?;
    let s: Status = serde_json::from_value(data)?;
    if json {
        super::print_json(&[s])
    } else {
        print!("{}", s.render(verbose, crate::daemon::unix_now()));
        Ok(())
    }
}

pub fn sessions(cfg: &Config, json: bool) -> anyhow::Result<()> {
    let data = control::call(&cfg.paths.run_dir, &Request::Sessions)?;
    let rows: Vec<SessionRow> = serde_json::from_value(data)?;
    if json {
        return super::print_json(&rows);
    }
    if rows.is_empty() {
        println!("no sessions");
    }
    let now = crate::daemon::unix_now();
    let blocks: Vec<String> = rows.iter().map(|r| r.render(now)).collect();
    print!("{}", blocks.join("\n"));
    Ok(())
}

pub fn kill(cfg: &Config, id: u64) -> anyhow::Result<()> {
    control::call(&cfg.paths.run_dir, &Request::Kill { id })?;
    println!("session {id} ended");
    Ok(())
}
