//! Sustained load on the dev stack: `--claims` claim mails delivered as fast as the
//! SMTP server takes them; every deposit must be released exactly once.
//!
//! The watcher runs as in `latency` (IMAP IDLE, replies over SMTP, anvil automine).
//! `--senders` concurrent senders each take the next claim and deliver it over a fresh
//! SMTP connection until all are delivered. Each delivery (the relay's 250 after DATA,
//! given only once dovecot stored the message) and each claim transaction anvil
//! accepted is timed; every 100 ms the benchmark also samples the watcher's journal
//! (messages not yet filed, replies not yet sent). Reported: the delivery time and
//! rate, the time from the start of delivery to the last claim transaction and to the
//! drain (every message decided, replied to and filed), the peak queue (delivered, claim
//! not yet accepted: exact, from the timings) and the peak of unfinished messages in
//! the journal. Checked, and the run fails otherwise: one claim transaction per deposit
//! (at the node and in the escrow's `Claimed` logs), every outcome `claimed`, and with
//! replies over SMTP one reply per claim in Bob's INBOX. A run where nothing moves for
//! `--stall-secs` fails at once, saying whether anvil still answers. Transactions
//! anvil's automine leaves pending for 200 ms (foundry-rs/foundry#10122) are mined
//! with `evm_mine`, and counted in the notes.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Result};
use clap::Parser;
use serde_json::json;
use springmail_bench::anvil;
use springmail_bench::corpus::WATCHER_EMAIL;
use springmail_bench::stack::{self, Replies, RunningWatcher, Stack, BOB};
use springmail_bench::{fmt_num, Results, Target};
use springmail_watcher::journal::OutcomeKind;

#[derive(Parser, Debug)]
#[command(about = "2,000 claims at once on the dev stack: drain time, peak queue, exactly once")]
struct Args {
    /// Claims.
    #[arg(long, default_value_t = 2_000)]
    claims: usize,
    /// Concurrent SMTP senders.
    #[arg(long, default_value_t = 8)]
    senders: usize,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 900)]
    timeout_secs: u64,
    /// Fail when nothing moved (deliveries, claims, outcomes, replies, filing) for this
    /// many seconds.
    #[arg(long, default_value_t = 150)]
    stall_secs: u64,
    /// Seconds between the watcher's polls (IDLE has to do the work).
    #[arg(long, default_value_t = 300)]
    poll_secs: u64,
    /// Corpus seed.
    #[arg(long, default_value_t = 5)]
    seed: u64,
    /// Where the claims are delivered: `imap` (the dev relay, which stores them in
    /// dovecot, read by the watcher over IMAP IDLE) or `smtp` (the watcher's own SMTP
    /// ingress, its spool fsync'd before the 250).
    #[arg(long, value_enum, default_value_t = Door::Imap)]
    door: Door,
    /// Where the watcher sends its replies: `relay` (the dev relay, whose 250 waits
    /// for dovecot to store each), `mta` (the dev stack's Postfix, which queues each
    /// and relays it on; the run then also waits for every reply to reach Bob) or
    /// `count` (a sink that only counts them, to see what the replies cost).
    #[arg(long, value_enum, default_value_t = Replies::Relay)]
    replies: Replies,
    /// Run on a private anvil started from this binary, fresh for the run, instead of
    /// the dev stack's: anvil rehashes its whole state for every block (about 80% of
    /// its time under this load, in a profile), so on a dev chain that earlier runs
    /// and tests filled each run is slower than the one before.
    #[arg(long)]
    anvil_bin: Option<PathBuf>,
    /// Write results as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum Door {
    /// The relay and dovecot, read over IMAP.
    Imap,
    /// The watcher's own SMTP ingress.
    Smtp,
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

#[derive(Debug, Default, Clone, Copy)]
struct Sample {
    at: f64,
    delivered: usize,
    submitted: usize,
    decided: u64,
    unfinished: u64,
    outbox: u64,
}

/// The largest number of claims delivered whose transaction was not yet accepted, at
/// any instant: a sweep over both sets of timings.
fn peak_queue(delivered: &[Instant], submitted: &[Instant]) -> usize {
    let mut events: Vec<(Instant, i64)> = delivered
        .iter()
        .map(|t| (*t, 1))
        .chain(submitted.iter().map(|t| (*t, -1)))
        .collect();
    // At equal instants the claim counts first: it cannot precede its own delivery.
    events.sort_by_key(|&(t, d)| (t, d));
    let (mut q, mut peak) = (0i64, 0i64);
    for (_, d) in events {
        q += d;
        peak = peak.max(q);
    }
    peak as usize
}

async fn run(args: Args) -> Result<()> {
    let mut res = Results::new(match (args.door, args.replies) {
        (Door::Imap, Replies::Mta) => "load_mta",
        (Door::Imap, _) => "load",
        (Door::Smtp, Replies::Mta) => "load_smtp_mta",
        (Door::Smtp, _) => "load_smtp",
    });
    let mut stack = Stack::from_env()?;
    let _private_anvil = match &args.anvil_bin {
        Some(bin) => {
            // As the dev stack runs it (the last 128 states in memory), and never
            // more than 8 GiB: one such anvil grew to 24 GB while the fixture was
            // made, once in a few dozen runs, and was killed by the kernel.
            let anvil =
                anvil::Anvil::spawn_with(bin, &["--prune-history", "128"], Some(8 << 30)).await?;
            stack.anvil_url = anvil.url.clone();
            Some(anvil)
        }
        None => None,
    };
    let n = args.claims;
    if args.door == Door::Imap {
        let moved = stack.clear_inbox(WATCHER_EMAIL, "Leftovers").await?;
        if moved > 0 {
            eprintln!("moved {moved} old messages out of the watcher's INBOX");
        }
    }
    eprintln!(
        "deploying an escrow and making {n} deposits on {} ...",
        stack.anvil_url
    );
    let t = Instant::now();
    let fx = Arc::new(stack::fixture(&stack, n, args.seed).await?);
    eprintln!("fixture ready in {:.1} s", t.elapsed().as_secs_f64());
    let poll = Duration::from_secs(args.poll_secs);
    let (watcher, ingress_port) = match args.door {
        Door::Imap => (
            RunningWatcher::start(&stack, &fx, poll, args.replies)?,
            None,
        ),
        Door::Smtp => {
            let (w, addr) = RunningWatcher::start_smtp_ingress(&stack, &fx, poll, args.replies)?;
            (w, Some(addr.port()))
        }
    };
    // anvil's automine now and then leaves an accepted transaction in its pool
    // (foundry-rs/foundry#10122: a transaction that arrives while the block of the one
    // before is being mined is not noticed); left alone it is never mined. The
    // watcher's submitter sends batches back to back, so this happens under load.
    // Something pending in two polls 20 ms apart (mining a claim batch takes a few
    // ms) is mined with `evm_mine`.
    let nudges = Arc::new(AtomicUsize::new(0));
    let nudger = {
        let (url, nudges) = (stack.anvil_url.clone(), nudges.clone());
        tokio::spawn(async move {
            let http = reqwest::Client::new();
            let mut pending_before = false;
            loop {
                tokio::time::sleep(Duration::from_millis(20)).await;
                let pending = match anvil::rpc(&http, &url, "txpool_status", json!([])).await {
                    Ok(pool) => pool["pending"] != json!("0x0"),
                    Err(_) => continue,
                };
                if pending && pending_before {
                    if anvil::rpc(&http, &url, "evm_mine", json!([])).await.is_ok() {
                        nudges.fetch_add(1, Ordering::SeqCst);
                    }
                    pending_before = false;
                } else {
                    pending_before = pending;
                }
            }
        })
    };
    // Let it connect, make its first pass and enter IDLE.
    tokio::time::sleep(Duration::from_secs(2)).await;

    let next = Arc::new(AtomicUsize::new(0));
    let retries = Arc::new(AtomicUsize::new(0));
    let delivered = Arc::new(Mutex::new(Vec::<Instant>::with_capacity(n)));
    let t0 = Instant::now();
    let deadline = t0 + Duration::from_secs(args.timeout_secs);
    let mut senders = Vec::new();
    for _ in 0..args.senders.max(1) {
        let (stack, fx, next, retries, delivered) = (
            stack.clone(),
            fx.clone(),
            next.clone(),
            retries.clone(),
            delivered.clone(),
        );
        senders.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                if i >= fx.claims.len() || Instant::now() > deadline {
                    return anyhow::Ok(());
                }
                let raw = &fx.claims[i].2;
                let mut tries = 0;
                loop {
                    let sent = match ingress_port {
                        Some(port) => stack::smtp_send_to(port, BOB, WATCHER_EMAIL, raw).await,
                        None => stack.smtp_send(BOB, WATCHER_EMAIL, raw).await,
                    };
                    match sent {
                        Ok(()) => break,
                        Err(e) if tries < 3 => {
                            tries += 1;
                            retries.fetch_add(1, Ordering::SeqCst);
                            eprintln!("claim {i}: {e:#}; retrying");
                            tokio::time::sleep(Duration::from_millis(200)).await;
                        }
                        Err(e) => return Err(e.context(format!("delivering claim {i}"))),
                    }
                }
                lock(&delivered).push(Instant::now());
            }
        }));
    }

    let mut samples: Vec<Sample> = Vec::new();
    let mut last_move = Instant::now();
    let http = reqwest::Client::new();
    let drained_at;
    let failure = loop {
        let stats = watcher.journal.stats()?;
        let s = Sample {
            at: t0.elapsed().as_secs_f64(),
            delivered: lock(&delivered).len(),
            submitted: watcher.seen.count(),
            decided: stats.decided(),
            unfinished: stats.unfinished,
            outbox: stats.outbox_pending,
        };
        if let Some(p) = samples.last() {
            if (p.delivered, p.submitted, p.decided, p.unfinished, p.outbox)
                != (s.delivered, s.submitted, s.decided, s.unfinished, s.outbox)
            {
                last_move = Instant::now();
            }
        }
        samples.push(s);
        if s.delivered >= n && s.decided >= n as u64 && s.unfinished == 0 && s.outbox == 0 {
            drained_at = s.at;
            break None;
        }
        // A sender that gave up ends the run at once.
        let mut gave_up = None;
        while let Some(i) = senders.iter().position(|h| h.is_finished()) {
            if let Err(e) = senders.swap_remove(i).await? {
                gave_up = Some(e);
                break;
            }
        }
        if gave_up.is_some() {
            drained_at = s.at;
            break gave_up;
        }
        if last_move.elapsed() > Duration::from_secs(args.stall_secs) {
            drained_at = s.at;
            let chain = match tokio::time::timeout(
                Duration::from_secs(5),
                anvil::head(&http, &stack.anvil_url),
            )
            .await
            {
                Ok(Ok((number, _))) => format!("anvil answers, head {number}"),
                Ok(Err(e)) => format!("anvil does not answer: {e:#}"),
                Err(_) => "anvil does not answer within 5 s".into(),
            };
            break Some(anyhow!(
                "stuck: nothing moved for {} s ({chain}): {s:?}",
                args.stall_secs
            ));
        }
        if Instant::now() > deadline {
            drained_at = s.at;
            break Some(anyhow!("not drained after {} s: {s:?}", args.timeout_secs));
        }
        if samples.len().is_multiple_of(10) {
            eprintln!(
                "{:>6.1} s  delivered {:>5}  submitted {:>5}  decided {:>5}  unfinished {:>5}  replies pending {:>5}",
                s.at, s.delivered, s.submitted, s.decided, s.unfinished, s.outbox
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    for h in senders {
        if let Err(e) = h.await? {
            eprintln!("{e:#}");
        }
    }
    nudger.abort();
    let nudges = nudges.load(Ordering::SeqCst);
    let submitted: Vec<Instant> = lock(&watcher.seen.at).values().flatten().copied().collect();
    let repeated = watcher.seen.repeated();
    let outcomes: Vec<(OutcomeKind, u64)> = OutcomeKind::ALL
        .iter()
        .map(|k| (*k, watcher.metrics.outcome_count(*k)))
        .collect();
    let metric_submits = watcher.metrics.claims_submitted();
    let stopped = watcher.stop();
    if let Some(e) = failure {
        return Err(e);
    }
    stopped?;
    // Through the MTA the replies are still on their way when the watcher is drained:
    // wait (at most a minute after the last one arrived) until all reached Bob.
    let mut replies = 0;
    let mut replies_at = t0.elapsed().as_secs_f64();
    let mut last_reply = Instant::now();
    loop {
        let moved = stack.move_replies(BOB, &fx.tag, "Bench").await?;
        if moved > 0 {
            replies += moved;
            replies_at = t0.elapsed().as_secs_f64();
            last_reply = Instant::now();
        }
        if args.replies != Replies::Mta
            || replies >= n
            || last_reply.elapsed() > Duration::from_secs(60)
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let on_chain = stack::claimed_on_chain(&fx.client).await?;
    let once = on_chain.len() == n
        && on_chain.values().all(|(c, _)| *c == 1)
        && fx.claims.iter().all(|(k, _, _)| on_chain.contains_key(k));
    if submitted.len() != n || repeated != 0 || metric_submits != n as u64 || !once {
        bail!(
            "not exactly once: {} claim transactions accepted by the node ({repeated} deposits more than once, the watcher counted {metric_submits}), {} deposits claimed on chain of {n}",
            submitted.len(),
            on_chain.len()
        );
    }
    let outcome_list = outcomes
        .iter()
        .map(|(k, c)| format!("{c} {}", k.as_str()))
        .collect::<Vec<_>>()
        .join(", ");
    if outcomes.iter().any(|(k, c)| {
        *c != if *k == OutcomeKind::Claimed {
            n as u64
        } else {
            0
        }
    }) {
        bail!("outcomes {outcome_list}: expected {n} claimed and nothing else");
    }
    if args.replies != Replies::Count && replies != n {
        bail!("{replies} replies reached Bob for {n} claims");
    }
    let delivered = lock(&delivered).clone();
    let since_t0 = |t: &Instant| t.saturating_duration_since(t0).as_secs_f64();
    let delivered_at = delivered.iter().map(since_t0).fold(0.0, f64::max);
    let claimed_at = submitted.iter().map(since_t0).fold(0.0, f64::max);
    let peak_queue = peak_queue(&delivered, &submitted);
    let peak_unfinished = samples.iter().map(|s| s.unfinished).max().unwrap_or(0);
    let peak_outbox = samples.iter().map(|s| s.outbox).max().unwrap_or(0);
    let retries = retries.load(Ordering::SeqCst);
    res.note(
        "checked",
        format!(
            "{n} deposits each claimed exactly once (claim transactions at the node and the escrow's Claimed logs); all {n} outcomes claimed; {}",
            match args.replies {
                Replies::Count => "replies counted, not sent".to_string(),
                _ => format!("{replies} replies reached Bob"),
            }
        ),
    );
    res.note(
        "senders",
        format!(
            "{} concurrent SMTP senders, a fresh connection per mail; {retries} retried deliveries",
            args.senders
        ),
    );
    res.note(
        "watcher",
        format!(
            "{}, polling every {} s; {}; anvil automine (evm_mine for transactions it left pending over two polls 20 ms apart: {nudges} times); 2 runtime workers; journal sampled every 100 ms (peak {peak_outbox} replies waiting)",
            match args.door {
                Door::Imap => "claims delivered to the relay (dovecot), read over IMAP IDLE",
                Door::Smtp => "claims delivered to the watcher's SMTP ingress (spool fsync'd before 250)",
            },
            args.poll_secs,
            match args.replies {
                Replies::Relay => "replies over SMTP to the dev relay (its 250 after dovecot stored each)",
                Replies::Mta => "replies over SMTP to the dev stack's Postfix (its 250 after queueing each; it relays them to the dev relay)",
                Replies::Count => "replies to a counting sink",
            }
        ),
    );
    let bench = res.bench.clone();
    let key = |k: &str| format!("{bench}.{k}");
    res.figure(
        &key("delivery"),
        &format!(
            "deliver {} claims over SMTP ({})",
            fmt_num(n as f64),
            match args.door {
                Door::Imap => "relay and dovecot",
                Door::Smtp => "the watcher's ingress",
            }
        ),
        "s",
        vec![delivered_at],
        Target::None,
    );
    res.figure(
        &key("delivery_rate"),
        "SMTP delivery rate",
        "mails/s",
        vec![n as f64 / delivered_at],
        Target::None,
    );
    res.figure(
        &key("claimed"),
        "start of delivery → last claim tx accepted",
        "s",
        vec![claimed_at],
        Target::None,
    );
    res.figure(
        &key("claim_rate"),
        "claim rate (claims / the time above)",
        "claims/s",
        vec![n as f64 / claimed_at],
        Target::AtLeast(300.0),
    );
    res.figure(
        &key("drain"),
        "start of delivery → drained (all replied and filed)",
        "s",
        vec![drained_at],
        Target::AtMost(10.0),
    );
    if args.replies == Replies::Mta {
        res.figure(
            &key("replies_in_inbox"),
            "start of delivery → every reply in Bob's INBOX (through Postfix)",
            "s",
            vec![replies_at],
            Target::None,
        );
    }
    res.figure(
        &key("after_delivery"),
        "drained after the last delivery",
        "s",
        vec![drained_at - delivered_at],
        Target::None,
    );
    res.figure(
        &key("peak_queue"),
        "peak queue: delivered, claim tx not yet accepted",
        "mails",
        vec![peak_queue as f64],
        Target::None,
    );
    res.figure(
        &key("peak_unfinished"),
        "peak unfinished messages in the journal (not yet filed)",
        "mails",
        vec![peak_unfinished as f64],
        Target::None,
    );
    res.write(args.json.as_deref())
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
