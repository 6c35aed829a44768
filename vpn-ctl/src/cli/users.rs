//! `vpn-ctl users add/del/list`: edits the database under its lock, then asks
//! a running daemon to reload it.
use super::{args::UsersCommand, secret_input::read_secret};
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
            let password = read_secret(password_file.as_deref(), "Password", true)?;
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
