use clap::Parser as _;

fn main() -> std::process::ExitCode {
    let cli = vpn_ctl::cli::args::Cli::parse();
    match vpn_ctl::cli::run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // One line: the context chain joined with ": ".
            eprintln!("vpn-ctl: error: {}", format!("{e:#}").replace('\n', " "));
            std::process::ExitCode::FAILURE
        }
    }
}
