//! `springmail`: parse the flags, run, and turn an error into one line, a hint and an
//! exit code. Everything else lives in the library (`springmail_cli`).

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = match springmail_cli::args::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return springmail_cli::usage_error(e),
    };
    springmail_cli::init_logging(cli.global.verbose);
    let json = cli.global.json;
    match springmail_cli::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            let report = springmail_cli::report::report(&err);
            eprintln!("error: {}", report.line);
            if let Some(hint) = &report.hint {
                eprintln!("hint: {hint}");
            }
            if json {
                // --json promises one JSON object on stdout, failures included.
                println!("{}", report.to_json());
            }
            ExitCode::from(report.code)
        }
    }
}
