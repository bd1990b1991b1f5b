//! Mail-to-transaction latency on the dev stack: from the SMTP server accepting Bob's
//! claim mail to anvil accepting the claim transaction.
//!
//! The watcher runs as `springmail watch` would (see `springmail_bench::stack`): IMAP
//! IDLE on watcher@broker.test with polling only every 5 minutes, so IDLE alone
//! carries the latency; replies over SMTP; anvil with automine. Bob's claims (5–50 KB,
//! RSA-2048 DKIM) go out over a fresh SMTP connection each, in one of two patterns:
//!
//! - back to back (default): one at a time, the next 50–500 ms after the previous
//!   claim's transaction was accepted;
//! - `--mean-gap-ms M`: open loop, at the times of a Poisson process with a mean
//!   gap of M ms, whatever the watcher is doing (claims as independent users send
//!   them; results are named `latency_poisson`).
//!
//! The clock starts when the relay answers 250 to
//! DATA (it does so only after dovecot stored the message) and stops when anvil
//! answered `eth_sendRawTransaction` for that claim (automine: mined by then), seen
//! through a wrapper around the watcher's chain backend. The first `--warmup` claims
//! are not counted (connections, caches).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use clap::Parser;
use rand::Rng;
use springmail_bench::corpus::WATCHER_EMAIL;
use springmail_bench::stack::{self, RunningWatcher, Stack, BOB};
use springmail_bench::{percentile, Results, Target};

#[derive(Parser, Debug)]
#[command(about = "SMTP accept to claim transaction accepted, on the dev stack")]
struct Args {
    /// Claims measured.
    #[arg(long, default_value_t = 300)]
    claims: usize,
    /// Claims sent first and not measured.
    #[arg(long, default_value_t = 5)]
    warmup: usize,
    /// Seconds between the watcher's polls (IDLE has to do the work).
    #[arg(long, default_value_t = 300)]
    poll_secs: u64,
    /// Longest wait for one claim, seconds.
    #[arg(long, default_value_t = 20)]
    timeout_secs: u64,
    /// Shortest pause after one claim is accepted before the next is sent, ms.
    #[arg(long, default_value_t = 50)]
    gap_min_ms: u64,
    /// Longest such pause, ms (the pause is drawn uniformly in between).
    #[arg(long, default_value_t = 500)]
    gap_max_ms: u64,
    /// Print each claim's gap to the previous one and its latency (stderr).
    #[arg(long)]
    samples: bool,
    /// Open loop: send at Poisson arrival times with this mean gap, ms.
    #[arg(long)]
    mean_gap_ms: Option<u64>,
    /// Corpus seed.
    #[arg(long, default_value_t = 3)]
    seed: u64,
    /// Write results as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
}

fn main() -> Result<()> {
    let args = Args::parse();
    springmail_bench::init_logs();
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?
        .block_on(run(args))
}

async fn run(args: Args) -> Result<()> {
    let (name, tag) = match args.mean_gap_ms {
        Some(_) => ("latency_poisson", "Poisson arrivals"),
        None => ("latency", "back to back"),
    };
    let mut res = Results::new(name);
    let stack = Stack::from_env()?;
    let total = args.claims + args.warmup;
    let moved = stack.clear_inbox(WATCHER_EMAIL, "Leftovers").await?;
    if moved > 0 {
        eprintln!("moved {moved} old messages out of the watcher's INBOX");
    }
    eprintln!(
        "deploying an escrow and making {total} deposits on {} ...",
        stack.anvil_url
    );
    let fx = stack::fixture(&stack, total, args.seed).await?;
    let watcher = RunningWatcher::start(&stack, &fx, Duration::from_secs(args.poll_secs), false)?;
    // Let it connect, make its first pass and enter IDLE.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut lat = Vec::with_capacity(args.claims);
    let mut to_fetch = Vec::with_capacity(args.claims);
    let mut in_watcher = Vec::with_capacity(args.claims);
    let mut rng = rand::thread_rng();
    if args.gap_max_ms < args.gap_min_ms {
        bail!("--gap-max-ms must be at least --gap-min-ms");
    }
    let gap = args.gap_min_ms..=args.gap_max_ms;
    let started = Instant::now();
    let mut failure = None;
    // When each claim's SMTP DATA was accepted.
    let mut sent_at: Vec<Instant> = Vec::with_capacity(total);
    let mut next_send = Instant::now();
    for (i, (key, _mid, raw)) in fx.claims.iter().enumerate() {
        if let Some(mean) = args.mean_gap_ms {
            // Exponential gaps: 1 - U is in (0, 1], so its log is finite.
            let u: f64 = rng.gen();
            next_send += Duration::from_secs_f64(-(1.0 - u).ln() * mean as f64 / 1e3);
            tokio::time::sleep_until(next_send.into()).await;
        }
        stack.smtp_send(BOB, WATCHER_EMAIL, raw).await?;
        let t0 = Instant::now();
        sent_at.push(t0);
        if args.mean_gap_ms.is_some() {
            if (i + 1) % 50 == 0 {
                eprintln!("{} claims sent", i + 1);
            }
            continue;
        }
        let accepted =
            wait_claimed(&watcher, key, t0 + Duration::from_secs(args.timeout_secs)).await;
        let Some(t) = accepted else {
            failure = Some(format!(
                "claim {i} was not submitted within {} s",
                args.timeout_secs
            ));
            break;
        };
        if (i + 1) % 50 == 0 {
            eprintln!(
                "{} claims, last {:.0} ms",
                i + 1,
                t.saturating_duration_since(t0).as_secs_f64() * 1e3
            );
        }
        tokio::time::sleep(Duration::from_millis(rng.gen_range(gap.clone()))).await;
    }
    // Collect every sent claim's times (in open loop, wait for the last ones).
    for (i, ((key, _, _), t0)) in fx.claims.iter().zip(&sent_at).enumerate() {
        if failure.is_some() {
            break;
        }
        let Some(t) =
            wait_claimed(&watcher, key, *t0 + Duration::from_secs(args.timeout_secs)).await
        else {
            failure = Some(format!(
                "claim {i} was not submitted within {} s",
                args.timeout_secs
            ));
            break;
        };
        if i < args.warmup {
            continue;
        }
        lat.push(t.saturating_duration_since(*t0).as_secs_f64() * 1e3);
        if args.samples {
            let gap = if i > 0 {
                t0.saturating_duration_since(sent_at[i - 1]).as_secs_f64() * 1e3
            } else {
                0.0
            };
            eprintln!(
                "claim {i}: gap {gap:.0} ms, latency {:.1} ms",
                lat[lat.len() - 1]
            );
        }
        let f = watcher
            .fetched
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(key)
            .copied();
        if let Some(f) = f {
            to_fetch.push(f.saturating_duration_since(*t0).as_secs_f64() * 1e3);
            in_watcher.push(t.saturating_duration_since(f).as_secs_f64() * 1e3);
        }
    }
    let took = started.elapsed();
    // Let the last replies go out, then stop.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let submitted = watcher.seen.count();
    let repeated = watcher.seen.repeated();
    let stopped = watcher.stop();
    let moved = stack.move_replies(BOB, &fx.tag, "Bench").await.unwrap_or(0);
    if let Some(f) = failure {
        bail!("{f}");
    }
    stopped?;
    if submitted != total || repeated != 0 {
        bail!("{submitted} claim transactions for {total} claims ({repeated} deposits claimed more than once)");
    }
    let on_chain = stack::claimed_on_chain(&fx.client).await?;
    if on_chain.len() != total || on_chain.values().any(|(n, _)| *n != 1) {
        bail!(
            "the chain shows {} claimed deposits of {total}",
            on_chain.len()
        );
    }
    let pattern = match args.mean_gap_ms {
        Some(mean) => format!(
            "sent at Poisson arrival times, mean gap {mean} ms, whatever the watcher was doing"
        ),
        None => format!(
            "one at a time, each {}–{} ms after the previous claim's transaction",
            args.gap_min_ms, args.gap_max_ms
        ),
    };
    res.note(
        "claims",
        format!(
            "{} measured after {} warm-up claims, {pattern}; {:.0} s in all",
            args.claims,
            args.warmup,
            took.as_secs_f64()
        ),
    );
    res.note(
        "checked",
        format!("{total} deposits claimed exactly once on chain; {moved} replies reached Bob"),
    );
    res.note(
        "watcher",
        format!(
            "IMAP IDLE, polling every {} s; anvil automine; 2 runtime workers",
            args.poll_secs
        ),
    );
    res.figure(
        &format!("{name}.p50"),
        &format!("{tag}: SMTP accept → claim tx accepted, p50"),
        "ms",
        vec![percentile(&lat, 50.0)],
        Target::AtMost(300.0),
    );
    res.figure(
        &format!("{name}.p90"),
        &format!("{tag}: SMTP accept → claim tx accepted, p90"),
        "ms",
        vec![percentile(&lat, 90.0)],
        Target::None,
    );
    res.figure(
        &format!("{name}.p99"),
        &format!("{tag}: SMTP accept → claim tx accepted, p99"),
        "ms",
        vec![percentile(&lat, 99.0)],
        Target::AtMost(1000.0),
    );
    res.figure(
        &format!("{name}.max"),
        &format!("{tag}: SMTP accept → claim tx accepted, max"),
        "ms",
        vec![percentile(&lat, 100.0)],
        Target::None,
    );
    for (key, label, sample, p) in [
        (
            "fetch_p50",
            "of which SMTP accept → fetched over IMAP, p50",
            &to_fetch,
            50.0,
        ),
        (
            "fetch_p99",
            "of which SMTP accept → fetched over IMAP, p99",
            &to_fetch,
            99.0,
        ),
        (
            "watcher_p50",
            "of which fetched → claim tx accepted (the watcher), p50",
            &in_watcher,
            50.0,
        ),
        (
            "watcher_p99",
            "of which fetched → claim tx accepted (the watcher), p99",
            &in_watcher,
            99.0,
        ),
    ] {
        res.figure(
            &format!("{name}.{key}"),
            &format!("{tag}: {label}"),
            "ms",
            vec![percentile(sample, p)],
            Target::None,
        );
    }
    res.figure(
        &format!("{name}.min"),
        &format!("{tag}: SMTP accept → claim tx accepted, min"),
        "ms",
        vec![percentile(&lat, 0.0)],
        Target::None,
    );
    res.write(args.json.as_deref())
}

/// When the watcher's claim transaction for `key` was accepted, waiting until
/// `deadline` at most.
async fn wait_claimed(
    watcher: &RunningWatcher,
    key: &springmail_sdk::Address,
    deadline: Instant,
) -> Option<Instant> {
    loop {
        let notified = watcher.seen.notify.notified();
        if let Some(t) = watcher.seen.first(key) {
            return Some(t);
        }
        if Instant::now() > deadline {
            return None;
        }
        let _ = tokio::time::timeout(Duration::from_millis(20), notified).await;
    }
}
