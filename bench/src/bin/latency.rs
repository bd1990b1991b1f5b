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
//!
//! `--ingress smtp`: the claims go straight to the watcher's own SMTP ingress (the
//! watcher as the MX) instead of the relay and dovecot; the clock starts at the
//! ingress's 250 to DATA (given only once the message is fsync'd in its spool).
//! `--ingress both`: one run, IMAP then SMTP, each with its own escrow and deposits,
//! reported side by side (results `latency_ingress`).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use clap::Parser;
use rand::Rng;
use springmail_bench::corpus::WATCHER_EMAIL;
use springmail_bench::stack::{self, Replies, RunningWatcher, Stack, BOB};
use springmail_bench::{percentile, Results, Target};

/// Where the watcher reads mail from.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum Ingress {
    /// dovecot over IMAP IDLE, mail delivered by the stack's SMTP relay.
    Imap,
    /// The watcher's own SMTP ingress.
    Smtp,
    /// IMAP, then SMTP, side by side.
    Both,
}

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
    /// How mail reaches the watcher.
    #[arg(long, value_enum, default_value = "imap")]
    ingress: Ingress,
}

/// One mode's samples.
struct Measured {
    lat: Vec<f64>,
    to_fetch: Vec<f64>,
    in_watcher: Vec<f64>,
    took: Duration,
    moved: usize,
    total: usize,
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
    let poisson = args.mean_gap_ms.is_some();
    let modes = match args.ingress {
        Ingress::Both => vec![Ingress::Imap, Ingress::Smtp],
        one => vec![one],
    };
    let results_name = match (args.ingress, poisson) {
        (Ingress::Both, _) => "latency_ingress",
        (Ingress::Smtp, false) => "latency_smtp",
        (Ingress::Smtp, true) => "latency_smtp_poisson",
        (Ingress::Imap, false) => "latency",
        (Ingress::Imap, true) => "latency_poisson",
    };
    let mut res = Results::new(results_name);
    let stack = Stack::from_env()?;
    if args.gap_max_ms < args.gap_min_ms {
        bail!("--gap-max-ms must be at least --gap-min-ms");
    }
    for mode in modes {
        let m = measure(&stack, &args, mode).await?;
        report(&mut res, &args, mode, &m);
    }
    res.write(args.json.as_deref())
}

async fn measure(stack: &Stack, args: &Args, mode: Ingress) -> Result<Measured> {
    let total = args.claims + args.warmup;
    if mode == Ingress::Imap {
        let moved = stack.clear_inbox(WATCHER_EMAIL, "Leftovers").await?;
        if moved > 0 {
            eprintln!("moved {moved} old messages out of the watcher's INBOX");
        }
    }
    eprintln!(
        "{mode:?}: deploying an escrow and making {total} deposits on {} ...",
        stack.anvil_url
    );
    let fx = stack::fixture(stack, total, args.seed).await?;
    let poll = Duration::from_secs(args.poll_secs);
    let (watcher, ingress_port) = match mode {
        Ingress::Smtp => {
            let (w, addr) = RunningWatcher::start_smtp_ingress(stack, &fx, poll, Replies::Relay)?;
            (w, Some(addr.port()))
        }
        _ => (
            RunningWatcher::start(stack, &fx, poll, Replies::Relay)?,
            None,
        ),
    };
    // Let it connect, make its first pass and enter IDLE.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut lat = Vec::with_capacity(args.claims);
    let mut to_fetch = Vec::with_capacity(args.claims);
    let mut in_watcher = Vec::with_capacity(args.claims);
    let mut rng = rand::thread_rng();
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
        match ingress_port {
            Some(port) => stack::smtp_send_to(port, BOB, WATCHER_EMAIL, raw).await?,
            None => stack.smtp_send(BOB, WATCHER_EMAIL, raw).await?,
        }
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
        bail!("{mode:?}: {f}");
    }
    stopped?;
    if submitted != total || repeated != 0 {
        bail!("{mode:?}: {submitted} claim transactions for {total} claims ({repeated} deposits claimed more than once)");
    }
    let on_chain = stack::claimed_on_chain(&fx.client).await?;
    if on_chain.len() != total || on_chain.values().any(|(n, _)| *n != 1) {
        bail!(
            "{mode:?}: the chain shows {} claimed deposits of {total}",
            on_chain.len()
        );
    }
    Ok(Measured {
        lat,
        to_fetch,
        in_watcher,
        took,
        moved,
        total,
    })
}

fn report(res: &mut Results, args: &Args, mode: Ingress, m: &Measured) {
    let poisson = args.mean_gap_ms.is_some();
    let (name, via, fetched) = match (mode, poisson) {
        (Ingress::Smtp, false) => ("latency_smtp", "SMTP ingress", "spooled → fetched"),
        (Ingress::Smtp, true) => ("latency_smtp_poisson", "SMTP ingress", "spooled → fetched"),
        (_, false) => ("latency", "IMAP", "fetched over IMAP"),
        (_, true) => ("latency_poisson", "IMAP", "fetched over IMAP"),
    };
    let tag = match args.mean_gap_ms {
        Some(_) => format!("{via}, Poisson arrivals"),
        None => format!("{via}, back to back"),
    };
    // The targets: 100/250 ms for the ingress (the watcher as the MX), 300/1000 ms
    // behind dovecot (whose IDLE notification alone waits 500 ms).
    let (p50_target, p99_target) = match mode {
        Ingress::Smtp => (100.0, 250.0),
        _ => (300.0, 1000.0),
    };
    let (lat, to_fetch, in_watcher) = (&m.lat, &m.to_fetch, &m.in_watcher);
    let note = |k: &str| match mode {
        Ingress::Smtp => format!("smtp_ingress.{k}"),
        _ => k.to_string(),
    };
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
        &note("claims"),
        format!(
            "{} measured after {} warm-up claims, {pattern}; {:.0} s in all",
            args.claims,
            args.warmup,
            m.took.as_secs_f64()
        ),
    );
    res.note(
        &note("checked"),
        format!(
            "{} deposits claimed exactly once on chain; {} replies reached Bob",
            m.total, m.moved
        ),
    );
    res.note(
        &note("watcher"),
        format!(
            "{}, polling every {} s; anvil automine; 2 runtime workers",
            match mode {
                Ingress::Smtp => "SMTP ingress, spool fsync'd before 250, source woken at once",
                _ => "IMAP IDLE",
            },
            args.poll_secs
        ),
    );
    res.figure(
        &format!("{name}.p50"),
        &format!("{tag}: SMTP accept → claim tx accepted, p50"),
        "ms",
        vec![percentile(lat, 50.0)],
        Target::AtMost(p50_target),
    );
    res.figure(
        &format!("{name}.p90"),
        &format!("{tag}: SMTP accept → claim tx accepted, p90"),
        "ms",
        vec![percentile(lat, 90.0)],
        Target::None,
    );
    res.figure(
        &format!("{name}.p99"),
        &format!("{tag}: SMTP accept → claim tx accepted, p99"),
        "ms",
        vec![percentile(lat, 99.0)],
        Target::AtMost(p99_target),
    );
    res.figure(
        &format!("{name}.max"),
        &format!("{tag}: SMTP accept → claim tx accepted, max"),
        "ms",
        vec![percentile(lat, 100.0)],
        Target::None,
    );
    for (key, label, sample, p) in [
        (
            "fetch_p50",
            format!("of which SMTP accept → {fetched}, p50"),
            to_fetch,
            50.0,
        ),
        (
            "fetch_p99",
            format!("of which SMTP accept → {fetched}, p99"),
            to_fetch,
            99.0,
        ),
        (
            "watcher_p50",
            "of which fetched → claim tx accepted (the watcher), p50".to_string(),
            in_watcher,
            50.0,
        ),
        (
            "watcher_p99",
            "of which fetched → claim tx accepted (the watcher), p99".to_string(),
            in_watcher,
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
        vec![percentile(lat, 0.0)],
        Target::None,
    );
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
