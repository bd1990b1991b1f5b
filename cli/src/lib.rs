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
    raw.apply_env(|k| std::env::var(k).ok());
    raw.apply_flags(global);
    Ok(Settings::resolve(&raw)?)
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
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
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
        Command::Status(a) => commands::status::run(&ctx, &a).await,
        Command::Demo(_) | Command::Watch(_) => unreachable!("handled above"),
    }
}
