//! The `springmail` command's logic. `main.rs` only parses flags, calls [`run`] and turns
//! an error into one line, a hint and an exit code ([`report::report`]).

#![forbid(unsafe_code)]

pub mod args;
pub mod chain;
pub mod commands;
pub mod config;
pub mod csv;
pub mod notify;
pub mod output;
pub mod report;
pub mod secrets;

use args::{Cli, Command};
use config::{RawConfig, Settings};

/// What every command gets: the checked settings and how to print.
#[derive(Debug, Clone)]
pub struct Ctx {
    /// Checked settings.
    pub settings: Settings,
    /// The global flags as given.
    pub global: args::GlobalArgs,
    /// Print JSON instead of text.
    pub json: bool,
}

/// Reads the configuration (file, environment, flags) and checks it.
pub fn load_settings(global: &args::GlobalArgs) -> anyhow::Result<Settings> {
    let mut raw = RawConfig::load(global.config.as_deref())?;
    raw.apply_env(springmail_sdk::env::var);
    raw.apply_flags(global);
    Ok(Settings::resolve(&raw)?)
}

/// A command line clap refused (or `--help`/`--version`): clap's own text and exit code,
/// plus the one JSON object on stdout when `--json` was among the arguments.
pub fn usage_error(e: clap::Error) -> std::process::ExitCode {
    use clap::error::ErrorKind;
    let informational = matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion);
    let wants_json = std::env::args_os().skip(1).any(|a| a == "--json");
    if informational || !wants_json {
        e.exit();
    }
    let _ = e.print();
    let message = e
        .render()
        .to_string()
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("bad command line")
        .trim_start_matches("error: ")
        .to_string();
    let report = report::Report {
        line: message,
        hint: Some("see springmail --help".into()),
        code: report::ExitKind::Input.code(),
        kind: report::ExitKind::Input,
        data: None,
    };
    println!("{}", report.to_json());
    std::process::ExitCode::from(report.code)
}

/// Whether log lines get ANSI colours: only on a terminal, and never when `NO_COLOR` is
/// set to anything non-empty (<https://no-color.org>).
pub fn log_colour(stderr_is_terminal: bool, no_color: Option<&std::ffi::OsStr>) -> bool {
    stderr_is_terminal && no_color.is_none_or(|v| v.is_empty())
}

/// Log targets capped at `warn` because they log mail protocol traffic verbatim.
pub const PROTOCOL_LOG_CAPS: [&str; 3] = ["async_imap=warn", "imap_proto=warn", "lettre=warn"];

/// Sets up logging on stderr: warnings by default, `-v` debug, `-vv` trace; `RUST_LOG`
/// wins when set. Secrets are never logged at any level.
pub fn init_logging(verbose: u8) {
    use tracing_subscriber::EnvFilter;
    let default = match verbose {
        0 => "warn",
        1 => "springmail=debug,springmail_cli=debug,springmail_sdk=debug,springmail_watcher=debug,warn",
        _ => "trace",
    };
    let mut filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    // The mail protocol crates log what they send and receive verbatim at debug and
    // trace: async-imap the LOGIN command (the password) and every fetched message (the
    // CLAIM block with its salt, addresses), lettre every SMTP line. Never above warn,
    // whatever RUST_LOG says (cli/tests/secrets_in_logs.rs).
    for quiet in PROTOCOL_LOG_CAPS {
        filter = filter.add_directive(quiet.parse().expect("a valid directive"));
    }
    use std::io::IsTerminal;
    let colour = log_colour(
        std::io::stderr().is_terminal(),
        springmail_sdk::env::var_os("NO_COLOR").as_deref(),
    );
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colour)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}

/// Runs one command to completion.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(dispatch(cli))
}

async fn dispatch(cli: Cli) -> anyhow::Result<()> {
    // The demo and the watcher have configurations of their own.
    match &cli.command {
        Command::Demo(a) => return commands::demo::run(a, cli.global.json).await,
        Command::Watch(a) => return commands::watch::run(a, &cli.global).await,
        _ => {}
    }
    let settings = load_settings(&cli.global)?;
    let ctx = Ctx {
        settings,
        json: cli.global.json,
        global: cli.global,
    };
    match cli.command {
        Command::Wallet(c) => commands::wallet::run(&ctx, c).await,
        Command::Deploy(_) => commands::deploy::run(&ctx).await,
        Command::Send(a) if a.csv.is_some() => commands::batch::run(&ctx, &a).await,
        Command::Send(a) => commands::send::run(&ctx, &a).await,
        Command::Claim(a) => commands::claim::run(&ctx, &a).await,
        Command::Refund(a) => commands::refund::run(&ctx, &a).await,
        Command::Fees(a) => commands::fees::run(&ctx, &a).await,
        Command::Account(c) => commands::account::run(&ctx, &c).await,
        Command::Status(a) => commands::status::run(&ctx, &a).await,
        Command::Demo(_) | Command::Watch(_) => unreachable!("handled above"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsStr;

    #[test]
    fn logs_are_coloured_only_on_a_terminal_without_no_color() {
        assert!(log_colour(true, None));
        assert!(!log_colour(false, None));
        assert!(!log_colour(true, Some(OsStr::new("1"))));
        // NO_COLOR set but empty does not count (no-color.org).
        assert!(log_colour(true, Some(OsStr::new(""))));
    }
}
