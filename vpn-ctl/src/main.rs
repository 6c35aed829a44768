use clap::Parser as _;

fn main() -> std::process::ExitCode {
    let cli = vpn_ctl::cli::args::Cli::parse();
    if !matches!(cli.command, vpn_ctl::cli::args::Command::Up { .. }) {
        // Query commands end quietly when their reader goes away (`| head`),
        // like other Unix tools. The daemon keeps Rust's SIGPIPE-ignored default
        // so a vanished control client is an EPIPE error, not a death.
        // SAFETY: setting a signal disposition before any threads exist.
        unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    }
    match vpn_ctl::cli::run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // One line: the context chain joined with ": ".
            eprintln!("vpn-ctl: error: {}", format!("{e:#}").replace('\n', " "));
            std::process::ExitCode::FAILURE
        }
    }
}
