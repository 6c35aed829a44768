//! `vpn-ctl users add/passwd/del/list`: edits the database under its lock, then asks
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
            native_only,
        } => {
            let password = read_secret(password_file.as_deref(), "Password", true)?;
            let user = User::new(&name, &password, ip, !native_only)?;
            UserDb::modify(state_dir, |db| db.add(user))?;
            println!("user {name} added");
            reload(cfg)
        }
        UsersCommand::Passwd {
            name,
            password_file,
            native_only,
        } => {
            let password = read_secret(password_file.as_deref(), "New password", true)?;
            UserDb::modify(state_dir, |db| {
                db.find_mut(&name)?.set_password(&password, !native_only)
            })?;
            UserDb::forget_initial_password(state_dir, &name)?;
            println!("password of {name} changed");
            reload(cfg)
        }
        UsersCommand::Del { name } => {
            UserDb::modify(state_dir, |db| db.remove(&name))?;
            UserDb::forget_initial_password(state_dir, &name)?;
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
