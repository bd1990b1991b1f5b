//! Throughput of the watcher's verification pipeline on one core, stage by stage.
//!
//! A corpus of `--mails` generated claim mails (see `springmail_bench::corpus`), each
//! for its own deposit, known to the watcher from `Deposited` logs of an instant
//! in-memory chain. Every stage runs over the whole corpus, single-threaded, `--runs`
//! times; the figure is the median. Then the pipeline end to end as the watcher runs
//! it (authenticate, verify, group-committed journal writes per batch of 256), and the
//! whole watcher (`Watcher::run_once` over a memory mailbox: that adds the submitter's
//! bookkeeping, the replies and the filing; the chain answers instantly).
//!
//! Run on one core: `taskset -c 1 target/release/pipeline` (scripts/bench does).

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use clap::Parser;
use mail_auth::hickory_resolver::config::{ResolverConfig, ResolverOpts};
use mail_auth::{AuthenticatedMessage, DkimResult, MessageAuthenticator, Parameters};
use springmail_bench::corpus::{self, CorpusSpec};
use springmail_bench::instant::InstantChain;
use springmail_bench::{rig, Results, Target};
use springmail_sdk::client::SpringMail;
use springmail_sdk::eip712::{ClaimAuth, EscrowId};
use springmail_sdk::email::{commitment, Salt};
use springmail_sdk::Address;
use springmail_watcher::authenticate::{AuthOutcome, Authenticated};
use springmail_watcher::deposits::{DepositIndex, IndexSettings, Indexed};
use springmail_watcher::journal::{
    Checkpoint, Folder, Journal, MailKey, Outcome, OutcomeKind, QueuedReply,
};
use springmail_watcher::reply::{MemorySink, ReplyContext};
use springmail_watcher::service::Watcher;
use springmail_watcher::transition::{self, Applied, Decision, Env, Transition};
use springmail_watcher::verify::{find_claim_block, Verdict, Verifier};
use springmail_watcher::MemorySource;

#[derive(Parser, Debug)]
#[command(about = "Watcher verification throughput on one core, per stage")]
struct Args {
    /// Claim mails in the corpus.
    #[arg(long, default_value_t = 10_000)]
    mails: usize,
    /// Runs of each measurement (the median is reported).
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Corpus RNG seed.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Mail provider domains (DKIM keys).
    #[arg(long, default_value_t = 40)]
    providers: usize,
    /// Messages per journal transaction (the watcher's batch size).
    #[arg(long, default_value_t = 256)]
    batch: usize,
    /// Skip the whole-watcher run.
    #[arg(long)]
    no_watcher: bool,
    /// Only the end-to-end pipeline (for profiling: `perf record -- pipeline --only-total`).
    #[arg(long)]
    only_total: bool,
    /// Only the whole-watcher run (for profiling).
    #[arg(long)]
    only_watcher: bool,
    /// With --only-watcher: the journal already holds this many handled messages
    /// (filed, replies sent) when the clock starts, as a broker's does after months.
    #[arg(long, default_value_t = 0, requires = "only_watcher")]
    history: usize,
    /// Write results as JSON here.
    #[arg(long)]
    json: Option<std::path::PathBuf>,
}

const CHAIN_ID: u64 = springmail_sdk::protocol::REGTEST_CHAIN_ID;
/// Whether the watcher composes the claim-in-progress reply for every accepted claim
/// (it did before it composed that reply only for a deposit whose claim slot is taken).
const BUSY_REPLY: bool = false;
const T0: u64 = 1_767_225_600;

fn rate(n: usize, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64()
}

fn main() -> Result<()> {
    let args = Args::parse();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(run(args))
}

async fn run(args: Args) -> Result<()> {
    let mut res = Results::new("pipeline");
    let work = springmail_bench::work_dir();
    let escrow = Address::repeat_byte(0xe5);
    let id = EscrowId {
        chain_id: CHAIN_ID,
        escrow,
    };
    let watcher_key = Arc::new(corpus::watcher_key());
    let sender = Address::repeat_byte(0xa1);
    eprintln!("generating {} claim mails ...", args.mails);
    let corpus = corpus::generate(
        &CorpusSpec {
            mails: args.mails,
            seed: args.seed,
            providers: args.providers,
            min_size: 5 * 1024,
            max_size: 50 * 1024,
            cache: work.join("cache"),
            now: T0,
        },
        id,
        sender,
        watcher_key.address(),
    )?;
    let (min, med, max, mean, attached) = corpus::size_stats(&corpus.cases);
    let total_bytes: usize = corpus.cases.iter().map(|c| c.raw.len()).sum();
    eprintln!(
        "corpus: {} mails in {:.1}s; sizes min {min} median {med} mean {mean} max {max} bytes; {attached} with attachments",
        corpus.cases.len(),
        corpus.generated_in.as_secs_f64()
    );
    res.note("mails", corpus.cases.len());
    res.note(
        "sizes",
        format!("min {min} B, median {med} B, mean {mean} B, max {max} B; {attached} with an image attachment"),
    );
    res.note(
        "providers",
        format!(
            "{} domains: 80% RSA-2048, 15% Ed25519, 5% both",
            args.providers
        ),
    );
    res.note("runs", args.runs);
    res.note("batch", args.batch);
    let n = corpus.cases.len();

    let chain = || {
        let c = InstantChain::new(CHAIN_ID, escrow, watcher_key.address(), 100, T0);
        c.add_deposits(
            corpus.cases.iter().map(|k| (k.claim_key, &k.spec.deposit)),
            10,
        );
        c
    };
    let client = SpringMail::new(Arc::new(chain()), escrow).with_start_block(1);
    let authenticator = rig::authenticator(corpus.pins.clone());
    // A journal whose deposit index knows every deposit, as the watcher's would after
    // catching up with the chain, and a verifier that reads it.
    let fresh = || -> Result<(tempfile::TempDir, Arc<Journal>, Arc<DepositIndex>, Verifier)> {
        let dir = tempfile::tempdir_in(work_tmp(&work)?)?;
        let journal = Arc::new(Journal::open_in(dir.path())?);
        let index = Arc::new(DepositIndex::open(
            journal.clone(),
            client.clone(),
            watcher_key.address(),
            IndexSettings::default(),
        )?);
        let verifier = Verifier::new(client.clone(), rig::verify_policy(&watcher_key))
            .with_index(index.clone());
        Ok((dir, journal, index, verifier))
    };
    let (_dir, _journal, index, verifier) = fresh()?;
    let head = client.chain().head().await?.number;
    let t = Instant::now();
    let done = index.catch_up(head).await?;
    eprintln!(
        "deposit index: {} deposits from {} logs in {} requests, {:.2}s",
        done.deposits,
        done.logs,
        done.requests,
        t.elapsed().as_secs_f64()
    );

    // Authenticate once to have the stage outputs the later stages take.
    let mut authed: Vec<Box<Authenticated>> = Vec::with_capacity(n);
    for c in &corpus.cases {
        match authenticator.authenticate(&c.raw).await? {
            AuthOutcome::Authenticated(a) => authed.push(a),
            AuthOutcome::Dropped(r) => anyhow::bail!("corpus mail dropped: {}", r.explain()),
        }
    }

    let runs = args.runs.max(1);
    if args.only_total {
        eprintln!("PROFILE-START");
        let (total, cpu) = end_to_end(
            &corpus,
            &authenticator,
            &fresh,
            head,
            runs,
            args.batch,
            BUSY_REPLY,
        )
        .await?;
        res.figure(
            "pipeline.total",
            "verification pipeline end to end",
            "mails/s",
            total,
            Target::AtLeast(5000.0),
        );
        res.figure(
            "pipeline.total_cpu",
            "verification pipeline end to end, per CPU second",
            "mails/s",
            cpu,
            Target::None,
        );
        return res.write(args.json.as_deref());
    }
    if args.only_watcher {
        eprintln!("PROFILE-START");
        let (w, cpu) = whole_watcher(&corpus, &watcher_key, &work, runs, args.history).await?;
        let (key, label) = if args.history > 0 {
            (
                "watcher.history",
                format!(
                    "whole watcher run_once, instant chain, the journal holding {} handled messages",
                    args.history
                ),
            )
        } else {
            (
                "watcher.total",
                "whole watcher run_once, instant chain".to_string(),
            )
        };
        res.figure(key, &label, "mails/s", w, Target::AtLeast(3000.0));
        res.figure(
            &format!("{key}_cpu"),
            "the same, per CPU second",
            "mails/s",
            cpu,
            Target::None,
        );
        return res.write(args.json.as_deref());
    }
    // ---- stage by stage
    let measure = |f: &mut dyn FnMut() -> Result<Duration>| -> Result<Vec<f64>> {
        (0..runs).map(|_| f().map(|d| rate(n, d))).collect()
    };

    let parse = measure(&mut || {
        let t = Instant::now();
        for c in &corpus.cases {
            let m = mail_parser::MessageParser::default().parse(&c.raw);
            ensure!(m.is_some(), "unparseable");
        }
        Ok(t.elapsed())
    })?;
    res.figure(
        "stage.parse",
        "MIME parse (mail-parser, whole message)",
        "mails/s",
        parse,
        Target::None,
    );

    let resolver = MessageAuthenticator::new(
        ResolverConfig::from_parts(None, vec![], vec![]),
        ResolverOpts::default(),
    )?;
    let mut dkim_runs = Vec::new();
    for _ in 0..runs {
        let t = Instant::now();
        for c in &corpus.cases {
            let am = AuthenticatedMessage::parse(&c.raw).context("dkim parse")?;
            let out = resolver
                .verify_dkim(Parameters::new(&am).with_txt_cache(&corpus.pins))
                .await;
            ensure!(
                out.iter().any(|o| *o.result() == DkimResult::Pass),
                "dkim did not pass"
            );
        }
        dkim_runs.push(rate(n, t.elapsed()));
    }
    res.figure(
        "stage.dkim",
        "DKIM verify (header parse, body hash, signature)",
        "mails/s",
        dkim_runs,
        Target::None,
    );

    let mut auth_runs = Vec::new();
    for _ in 0..runs {
        let t = Instant::now();
        for c in &corpus.cases {
            let out = authenticator.authenticate(&c.raw).await?;
            ensure!(matches!(out, AuthOutcome::Authenticated(_)));
        }
        auth_runs.push(rate(n, t.elapsed()));
    }
    res.figure(
        "stage.authenticate",
        "stage 2 authenticate (parse + DKIM + From/alignment policy)",
        "mails/s",
        auth_runs,
        Target::None,
    );

    let bismtp = measure(&mut || {
        let t = Instant::now();
        for a in &authed {
            find_claim_block(&a.texts, &[]).map_err(|r| anyhow::anyhow!(r.explain()))?;
        }
        Ok(t.elapsed())
    })?;
    res.figure(
        "stage.bismtp",
        "BiSMTP parse (CLAIM block in the text parts)",
        "mails/s",
        bismtp,
        Target::None,
    );

    let blocks: Vec<_> = authed
        .iter()
        .map(|a| find_claim_block(&a.texts, &[]).expect("parsed above"))
        .collect();
    let lookup = measure(&mut || {
        let t = Instant::now();
        for b in &blocks {
            let s = index.get(b.claim_key)?;
            ensure!(
                matches!(s, Some(Indexed::Open { .. })),
                "deposit not indexed as open"
            );
        }
        Ok(t.elapsed())
    })?;
    res.figure(
        "stage.lookup",
        "deposit lookup (the watcher's deposit index)",
        "mails/s",
        lookup,
        Target::None,
    );

    let commit_check = measure(&mut || {
        let t = Instant::now();
        for (a, c) in authed.iter().zip(&corpus.cases) {
            let salt = Salt::from_bytes(c.spec.salt);
            ensure!(commitment(&a.from, &salt)? == c.spec.deposit.recipient);
        }
        Ok(t.elapsed())
    })?;
    res.figure(
        "stage.commitment",
        "commitment check (normalize + keccak)",
        "mails/s",
        commit_check,
        Target::None,
    );

    let recover = measure(&mut || {
        let t = Instant::now();
        for (b, c) in blocks.iter().zip(&corpus.cases) {
            let auth = ClaimAuth {
                claim_key: b.claim_key,
                deposit_hash: c.spec.deposit.hash(),
                to: b.to,
                max_fee: b.max_fee.units(),
                deadline: b.deadline,
            };
            ensure!(auth.claim_signature_valid(id, &b.signature));
        }
        Ok(t.elapsed())
    })?;
    res.figure(
        "stage.recover",
        "claim signature recovery (secp256k1 + EIP-712)",
        "mails/s",
        recover,
        Target::None,
    );

    let mut verify_runs = Vec::new();
    let mut plans = Vec::with_capacity(n);
    for run in 0..runs {
        let t = Instant::now();
        for a in &authed {
            match verifier.verify(a, T0).await? {
                Verdict::Accepted(p) => {
                    if run == 0 {
                        plans.push(p)
                    }
                }
                Verdict::Refused(r) => anyhow::bail!("refused: {}", r.explain()),
            }
        }
        verify_runs.push(rate(n, t.elapsed()));
    }
    res.figure(
        "stage.verify",
        "stage 3 verify (BiSMTP + lookup + commitment + recovery + policy)",
        "mails/s",
        verify_runs,
        Target::None,
    );

    let composer = rig::composer();
    let busy = springmail_watcher::reply::ReplyBody::Refused {
        reason: springmail_watcher::verify::RefusalReason::ClaimInProgress.explain(),
    };
    let compose = measure(&mut || {
        let t = Instant::now();
        for a in &authed {
            composer.compose(&ReplyContext::of(a), &busy, T0)?;
        }
        Ok(t.elapsed())
    })?;
    res.figure(
        "stage.busy_reply",
        "compose the claim-in-progress reply (DKIM-signed)",
        "mails/s",
        compose,
        Target::None,
    );

    // Journal writes as the watcher makes them: the fetched batch with the checkpoint,
    // then the verdicts, each batch in one transaction.
    let ctxs: Vec<String> = authed
        .iter()
        .map(|a| serde_json::to_string(&ReplyContext::of(a)).expect("json"))
        .collect();
    let plan_json: Vec<String> = plans.iter().map(|p| p.to_json()).collect();
    let mut journal_runs = Vec::new();
    for _ in 0..runs {
        let (_dir, journal, _, _) = fresh()?;
        let t = Instant::now();
        journal_batches(
            &journal,
            &corpus.cases,
            &authed,
            &plan_json,
            &ctxs,
            args.batch,
        )?;
        journal_runs.push(rate(n, t.elapsed()));
    }
    res.figure(
        "stage.journal",
        &format!(
            "journal commits (record + verdict, {} per transaction)",
            args.batch
        ),
        "mails/s",
        journal_runs,
        Target::None,
    );

    // ---- end to end, as the watcher's fetch + judge do it, one core.
    let (e2e_runs, e2e_cpu) = end_to_end(
        &corpus,
        &authenticator,
        &fresh,
        head,
        runs,
        args.batch,
        BUSY_REPLY,
    )
    .await?;
    res.figure(
        "pipeline.total",
        "verification pipeline end to end (stages 2-3 + journal), one core",
        "mails/s",
        e2e_runs,
        Target::AtLeast(5000.0),
    );
    res.figure(
        "pipeline.total_cpu",
        "the same, per CPU second (user + system time of the process)",
        "mails/s",
        e2e_cpu,
        Target::None,
    );

    if !args.no_watcher {
        let (w_runs, w_cpu) = whole_watcher(&corpus, &watcher_key, &work, runs, 0).await?;
        res.figure(
            "watcher.total",
            "whole watcher run_once (+ submit bookkeeping, replies, filing), instant chain",
            "mails/s",
            w_runs,
            Target::AtLeast(3000.0),
        );
        res.figure(
            "watcher.total_cpu",
            "the same, per CPU second (user + system time of the process)",
            "mails/s",
            w_cpu,
            Target::None,
        );
    }
    res.note("corpus bytes", total_bytes);
    res.write(args.json.as_deref())
}

fn work_tmp(work: &std::path::Path) -> Result<std::path::PathBuf> {
    let d = work.join("tmp");
    std::fs::create_dir_all(&d)?;
    Ok(d)
}

fn journal_batches(
    journal: &Journal,
    cases: &[corpus::ClaimCase],
    authed: &[Box<Authenticated>],
    plans: &[String],
    ctxs: &[String],
    batch: usize,
) -> Result<()> {
    let mut offset = 0;
    while offset < cases.len() {
        let end = (offset + batch).min(cases.len());
        journal_batch(
            journal,
            &cases[offset..end],
            offset,
            &authed[offset..end],
            &plans[offset..end],
            &ctxs[offset..end],
        )?;
        offset = end;
    }
    Ok(())
}

/// The watcher's journal writes for one fetched and judged batch, in one
/// transaction: each message recorded (without its bytes: it is judged), its
/// Message-ID remembered, its claim accepted with plan and reply context, and the
/// mailbox checkpoint moved.
fn journal_batch(
    journal: &Journal,
    cases: &[corpus::ClaimCase],
    offset: usize,
    authed: &[Box<Authenticated>],
    plans: &[String],
    ctxs: &[String],
) -> Result<()> {
    journal.write(|tx| {
        for (i, c) in cases.iter().enumerate() {
            let key = MailKey {
                mailbox: "INBOX".into(),
                uid_validity: 1,
                uid: (offset + i + 1) as u32,
            };
            let id = tx
                .insert_received(&key, c.raw.len() as u64, None)?
                .expect("new");
            assert!(tx.mark_seen(id, &authed[i].msgid_hash)?.is_none());
            assert!(tx
                .accept(id, &c.claim_key.to_string(), &plans[i], &ctxs[i])?
                .is_none());
        }
        tx.set_checkpoint(
            "INBOX",
            Checkpoint {
                uid_validity: 1,
                last_uid: (offset + cases.len()) as u32,
            },
        )
    })?;
    Ok(())
}

type Fresh<'a> =
    dyn Fn() -> Result<(tempfile::TempDir, Arc<Journal>, Arc<DepositIndex>, Verifier)> + 'a;

/// Authenticate, verify and journal every mail, batch by batch, as the watcher's
/// fetch does: each batch's transitions (message recorded with its accepted claim,
/// and the checkpoint) go to the journal's writer thread, whose commit is in flight
/// while the next batch is judged; mails/s per run.
async fn end_to_end(
    corpus: &corpus::Corpus,
    authenticator: &springmail_watcher::authenticate::MailAuthenticator,
    fresh: &Fresh<'_>,
    head: u64,
    runs: usize,
    batch: usize,
    compose_busy: bool,
) -> Result<(Vec<f64>, Vec<f64>)> {
    let n = corpus.cases.len();
    let composer = rig::composer();
    let busy = springmail_watcher::reply::ReplyBody::Refused {
        reason: springmail_watcher::verify::RefusalReason::ClaimInProgress.explain(),
    };
    let mut e2e_runs = Vec::new();
    let mut cpu_runs = Vec::new();
    for _ in 0..runs {
        let (_dir, journal, index, verifier) = fresh()?;
        index.catch_up(head).await?;
        let t = Instant::now();
        let cpu = springmail_bench::cpu_time();
        let mut offset = 0;
        let mut in_flight = None;
        for chunk in corpus.cases.chunks(batch) {
            let mut transitions = Vec::with_capacity(chunk.len() + 1);
            for (i, c) in chunk.iter().enumerate() {
                let a = match authenticator.authenticate(&c.raw).await? {
                    AuthOutcome::Authenticated(a) => a,
                    AuthOutcome::Dropped(r) => anyhow::bail!("dropped: {}", r.explain()),
                };
                let plan = match verifier.verify(&a, T0).await? {
                    Verdict::Accepted(p) => p,
                    Verdict::Refused(r) => anyhow::bail!("refused: {}", r.explain()),
                };
                let ctx = ReplyContext::of(&a);
                if compose_busy {
                    composer.compose(&ctx, &busy, T0)?;
                }
                transitions.push(Transition::Record {
                    key: MailKey {
                        mailbox: "INBOX".into(),
                        uid_validity: 1,
                        uid: (offset + i + 1) as u32,
                    },
                    size: c.raw.len() as u64,
                    raw: None,
                    decision: Decision::Accept {
                        plan,
                        msgid: a.msgid_hash.clone(),
                        ctx,
                    },
                });
            }
            offset += chunk.len();
            transitions.push(Transition::Checkpoint {
                mailbox: "INBOX".into(),
                cp: Checkpoint {
                    uid_validity: 1,
                    last_uid: offset as u32,
                },
            });
            let pending = transition::enqueue(&journal, transitions, Env::default())?;
            if let Some(p) = in_flight.replace(pending) {
                let applied: Applied = p.durable().await?;
                ensure!(
                    applied.accepted.len() == batch,
                    "a batch was not accepted whole"
                );
            }
        }
        if let Some(p) = in_flight {
            p.durable().await?;
        }
        e2e_runs.push(rate(n, t.elapsed()));
        cpu_runs.push(cpu_rate(n, cpu));
    }
    Ok((e2e_runs, cpu_runs))
}

/// Mails per CPU second of this process since `before`.
fn cpu_rate(n: usize, before: Option<Duration>) -> f64 {
    match (before, springmail_bench::cpu_time()) {
        (Some(b), Some(a)) if a > b => rate(n, a - b),
        _ => f64::NAN,
    }
}

/// `Watcher::run_once` over a memory mailbox holding the whole corpus, against an
/// instant chain; mails/s per run.
async fn whole_watcher(
    corpus: &corpus::Corpus,
    watcher_key: &Arc<springmail_sdk::keys::ClaimSecret>,
    work: &std::path::Path,
    runs: usize,
    history: usize,
) -> Result<(Vec<f64>, Vec<f64>)> {
    let n = corpus.cases.len();
    let escrow = corpus.id.escrow;
    let mut w_runs = Vec::new();
    let mut cpu_runs = Vec::new();
    for _ in 0..runs {
        let dir = tempfile::tempdir_in(work_tmp(work)?)?;
        let chain = InstantChain::new(CHAIN_ID, escrow, watcher_key.address(), 100, T0);
        chain.add_deposits(
            corpus.cases.iter().map(|k| (k.claim_key, &k.spec.deposit)),
            10,
        );
        let client = SpringMail::new(Arc::new(chain.clone()), escrow).with_start_block(1);
        let source = MemorySource::new();
        for c in &corpus.cases {
            source.deliver(c.raw.clone());
        }
        let sink = MemorySink::new();
        let journal = Arc::new(Journal::open_in(dir.path())?);
        fill_history(&journal, history)?;
        let mut watcher = Watcher::new(rig::parts(
            client,
            watcher_key.clone(),
            journal,
            Box::new(source.clone()),
            Arc::new(sink.clone()),
            corpus.pins.clone(),
            Duration::from_secs(60),
        ))?;
        let t = Instant::now();
        let cpu = springmail_bench::cpu_time();
        let report = watcher.run_once().await?;
        let took = t.elapsed();
        let cpu = cpu_rate(n, cpu);
        let claimed = report
            .decided
            .iter()
            .filter(|(k, _)| k.as_str() == "claimed")
            .count();
        ensure!(
            claimed == n,
            "claimed {claimed} of {n}: {:?}",
            report.decided.iter().find(|(k, _)| k.as_str() != "claimed")
        );
        ensure!(
            chain.claims() == n as u64,
            "chain saw {} claims",
            chain.claims()
        );
        ensure!(sink.sent().len() == n, "replies {}", sink.sent().len());
        w_runs.push(rate(n, took));
        cpu_runs.push(cpu);
    }
    Ok((w_runs, cpu_runs))
}

/// Writes `n` messages handled before, as a broker's journal holds them: claimed,
/// answered (a reply of the watcher's usual size, sent) and filed, in their own
/// mailbox. Not timed.
fn fill_history(journal: &Journal, n: usize) -> Result<()> {
    if n == 0 {
        return Ok(());
    }
    eprintln!("writing {n} handled messages into the journal ...");
    // The sizes of a claim's stored plan, reply context and reply in this corpus.
    let plan = format!("{{\"plan\":\"{}\"}}", "p".repeat(728));
    let ctx = format!("{{\"ctx\":\"{}\"}}", "c".repeat(256));
    let reply = vec![b'r'; 1_207];
    const CHUNK: usize = 5_000;
    for start in (0..n).step_by(CHUNK) {
        let end = (start + CHUNK).min(n);
        journal.write(|tx| {
            for i in start..end {
                let key = MailKey {
                    mailbox: "INBOX/history".into(),
                    uid_validity: 1,
                    uid: i as u32 + 1,
                };
                let id = tx.insert_received(&key, 21_000, None)?.expect("a new row");
                tx.mark_seen(id, &format!("{i:064x}"))?;
                tx.accept(id, &format!("0x{i:040x}"), &plan, &ctx)?;
                let outcome = Outcome {
                    kind: OutcomeKind::Claimed,
                    code: "claimed".into(),
                    text: "paid".into(),
                    tx_hash: Some(format!("0x{i:064x}")),
                };
                tx.decide(
                    id,
                    &outcome,
                    Folder::Processed,
                    None,
                    Some(QueuedReply {
                        mail_from: "watcher@broker.example",
                        rcpt: "claimant@example.com",
                        bytes: &reply,
                    }),
                )?;
                tx.mark_done(id)?;
            }
            Ok(())
        })?;
        let mut after = 0;
        loop {
            let due = journal.outbox_due_page(u64::MAX, after, CHUNK)?;
            let Some(last) = due.last() else { break };
            after = last.id;
            journal.write(|tx| {
                for item in &due {
                    tx.outbox_sending(item.id)?;
                    tx.outbox_sent(item.id)?;
                }
                Ok(())
            })?;
        }
    }
    Ok(())
}
