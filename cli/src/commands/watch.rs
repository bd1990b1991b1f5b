//! `springmail watch --config FILE`: the watcher service (the mail server broker).
//!
//! The file is the watcher's own (see `springmail_watcher::config` and
//! docs/OPERATIONS.md). This command reads it, resolves it (journal, keys, chain, IMAP,
//! SMTP), and runs the pipeline until Ctrl-C or SIGTERM, or once with `--once`.

use anyhow::Context;
use springmail_watcher::config::{ConfigErrors, RawConfig, ResolveError};
use springmail_watcher::crash::CrashPoint;
use springmail_watcher::service::Watcher;

use crate::args::{GlobalArgs, WatchArgs};
use crate::output::Summary;
use crate::report::{hinted, input_error, ExitKind};

/// Names a simulated crash, `<point>[:<nth>]` (see `springmail_watcher::crash`).
pub const CRASH_ENV: &str = springmail_sdk::env::CRASH_AT;

/// Runs the watcher.
pub async fn run(a: &WatchArgs, g: &GlobalArgs) -> anyhow::Result<()> {
    let path = g.config.as_deref().ok_or_else(|| {
        input_error(
            "springmail watch needs the watcher's config file",
            "pass --config watcher.toml (its keys are described in docs/OPERATIONS.md)",
        )
    })?;
    // Crash tests only (cli/tests/crash_restart.rs): read once, here, and handed to the
    // pipeline; the process then SIGKILLs itself at that point.
    let crash = match springmail_sdk::env::var(CRASH_ENV).ok_or(()) {
        Ok(_) if !springmail_watcher::crash::ENABLED => {
            return Err(input_error(
                format!("{CRASH_ENV} is set, but this build of springmail has no crash points"),
                format!(
                    "unset {CRASH_ENV}; crash tests build with the watcher's crash-points feature"
                ),
            ))
        }
        Ok(spec) => Some(CrashPoint::parse_spec(&spec).map_err(|e| {
            input_error(
                format!("{CRASH_ENV}: {e}"),
                format!("unset {CRASH_ENV}; it makes the watcher kill itself, for crash tests"),
            )
        })?),
        Err(_) => None,
    };
    let config_hint =
        "fix the keys named above; the watcher's config file is described in docs/OPERATIONS.md";
    let raw = RawConfig::load(path)
        .map_err(|e| hinted(with_file(e, path), config_hint, ExitKind::Input))?;
    let settings = raw
        .validate(&springmail_sdk::env::var)
        .map_err(|e| hinted(with_file(e, path), config_hint, ExitKind::Input))?;
    if a.print_address {
        return print_address(&settings, g.json);
    }
    let mut parts = settings.resolve().await.map_err(|e: ResolveError| {
        // A bad value is a configuration error (exit 2); a service down is exit 3.
        let kind = if e.is_transient() {
            ExitKind::Unavailable
        } else {
            ExitKind::Input
        };
        hinted(
            anyhow::Error::new(e).context("cannot start the watcher"),
            "check the key named above: its file, its environment variable, or the service it points at",
            kind,
        )
    })?;
    if let Some((point, nth)) = crash {
        eprintln!("springmail watch: {CRASH_ENV} is set: this watcher kills itself at {point} (hit {nth})");
        parts.pipeline.crash_at = Some(point);
        parts.pipeline.crash_nth = nth;
        parts.pipeline.crash_abort = true;
    }
    let wallet = settings.wallet_for(&parts);
    let mut watcher = Watcher::new(parts).context("cannot start the watcher")?;
    if let Some(w) = wallet {
        watcher = watcher
            .with_wallet(w)
            .context("cannot start the mailbox wallet")?;
    }
    if a.resend_replies {
        let n = watcher
            .resend_given_up_replies()
            .context("cannot queue the replies again")?;
        eprintln!("springmail watch: {n} replies given up earlier are queued again");
    }
    if a.once {
        let report = watcher
            .run_once()
            .await
            .context("the watcher's pass failed")?;
        let mut s = Summary::new("Watcher pass done");
        s.row("received", "new mail", report.received.to_string());
        for kind in ["claimed", "refused", "dropped", "duplicate", "order"] {
            let n = report
                .decided
                .iter()
                .filter(|(k, _)| k.as_str() == kind)
                .count();
            s.row(kind, kind, n.to_string());
        }
        s.row("replies", "replies sent", report.replies_sent.to_string());
        s.print(g.json);
        return Ok(());
    }
    let servers = settings
        .serve_http(&watcher)
        .await
        .context("cannot start the HTTP service ([http] listen or [metrics] listen)")?;
    for (addr, _) in &servers {
        eprintln!("springmail watch: HTTP service on http://{addr}");
    }
    let ingress = settings
        .serve_smtp_ingress()
        .await
        .context("cannot start the SMTP ingress ([smtp_ingress])")?;
    if let Some((addr, _)) = &ingress {
        eprintln!("springmail watch: SMTP ingress on {addr}");
    }
    eprintln!("springmail watch: running (Ctrl-C to stop)");
    watcher
        .run(shutdown_signal())
        .await
        .context("the watcher stopped")?;
    eprintln!("springmail watch: stopped");
    Ok(())
}

/// The watcher key's EVM address: what the escrow compares an attestation's signer with,
/// on Qtum chains too (it is not the key's base58 Qtum address).
fn print_address(
    settings: &springmail_watcher::config::Settings,
    json: bool,
) -> anyhow::Result<()> {
    let key = settings.load_key().map_err(|e| {
        hinted(
            anyhow::Error::new(e).context("cannot read the watcher key"),
            "check [watcher_key] in the watcher's config file",
            ExitKind::Input,
        )
    })?;
    let address = key.address().to_checksum(None);
    let mut s = Summary::new("The watcher's address");
    s.row("address", "address", address.clone());
    // On Qtum the transactions come from another number than the key's EVM address.
    let own = settings
        .chain
        .sending_account(&key)
        .filter(|a| *a != key.address())
        .map(|a| a.to_checksum(None));
    if let Some(own) = &own {
        s.row("self_submitting", "submits its own claims", own.clone());
    }
    s.note(format!(
        "\nSenders name this watcher with: springmail send --watcher {address} …\n\
         (or [watcher] address = \"{address}\" in springmail.toml). It is the key's EVM address,\n\
         which the escrow checks attestations against; the key's q… Qtum address would not work."
    ));
    if let Some(own) = own {
        s.note(format!(
            "Or with --watcher {own}: the hash160 of the address this watcher sends from.\n\
             Its claims then need no attestation and cost about 4,000 gas less, but no one\n\
             else can submit them (docs/PROTOCOL.md, \"Self-submitted claims\")."
        ));
    }
    s.print(json);
    Ok(())
}

fn with_file(mut e: ConfigErrors, path: &std::path::Path) -> anyhow::Error {
    if e.file.is_none() {
        e.file = Some(path.to_path_buf());
    }
    anyhow::Error::new(e)
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = match signal(SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
                return;
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
