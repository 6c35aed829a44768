//! `vpn-ctl users add/del/list`: edits the database under its lock, then asks
//! a running daemon to reload it.
use std::{io::IsTerminal as _, path::Path};

use anyhow::Context as _;

use super::args::UsersCommand;
use crate::{
    config::Config,
    control::{self, NotRunning, Request},
    users::{User, UserDb},
};

pub fn run(cfg: &Config, cmd: UsersCommand) -> anyhow::Result<()> {
    let state_dir = &cfg.paths.state_dir;
    match cmd {
        UsersCommand::Add {
            name,
            password_file,
            ip,
        } => {
            let password = read_password(password_file.as_deref())?;
            UserDb::modify(state_dir, |db| {
                db.add(User {
                    name: name.clone(),
                    password,
                    ip,
                })
            })?;
            println!("user {name} added");
            reload(cfg)
        }
        UsersCommand::Del { name } => {
            UserDb::modify(state_dir, |db| db.remove(&name))?;
            println!("user {name} deleted");
            reload(cfg)
        }
        UsersCommand::List { json } => {
            let rows = UserDb::load(state_dir)?.rows();
            if json {
                return super::print_json(&rows);
            }
            for r in &rows {
                println!("{r}");
            }
            Ok(())
        }
    }
}

fn reload(cfg: &Config) -> anyhow::Result<()> {
    match control::call(&cfg.paths.run_dir, &Request::ReloadUsers) {
        Err(e) if e.is::<NotRunning>() => Ok(()),
        other => other.map(|_| ()),
    }
}

fn first_line(r: impl std::io::BufRead) -> anyhow::Result<String> {
    let line = r.lines().next().transpose()?.unwrap_or_default();
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

fn read_password(file: Option<&Path>) -> anyhow::Result<String> {
    match file {
        Some(p) if p == Path::new("-") => first_line(std::io::stdin().lock()),
        Some(p) => {
            let f =
                std::fs::File::open(p).with_context(|| format!("cannot read {}", p.display()))?;
            first_line(std::io::BufReader::new(f))
        }
        None if std::io::stdin().is_terminal() => {
            let a = rpassword::prompt_password("Password: ")?;
            let b = rpassword::prompt_password("Again: ")?;
            if a != b {
                anyhow::bail!("the passwords do not match");
            }
            Ok(a)
        }
        None => first_line(std::io::stdin().lock()),
    }
}
