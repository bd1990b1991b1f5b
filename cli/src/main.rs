//! `springmail`: parse the flags, run, and turn an error into one line, a hint and an
//! exit code. Everything else lives in the library (`springmail_cli`).

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = springmail_cli::args::Cli::parse();
    springmail_cli::init_logging(cli.global.verbose);
    match springmail_cli::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            let report = springmail_cli::report::report(&err);
            eprintln!("error: {}", report.line);
            if let Some(hint) = report.hint {
                eprintln!("hint: {hint}");
            }
            ExitCode::from(report.code)
        }
    }
}
