//! Watcher memory and startup time at scale: 100,000 open deposits known from chain
//! logs and 10,000 messages in the journal.
//!
//! On a private anvil, an escrow gets `--deposits` + `--mails` deposits naming the
//! watcher (250 to a block, see `springmail_bench::anvil::populate`). `--mails` of them are claimed by generated
//! claim mails (the `pipeline` corpus) in a mail directory. Then the watcher runs as a
//! process of its own, as `springmail watch` does (multi-thread runtime, EvmRpcChain to
//! anvil, the journal in a data directory), with the mail directory as its source and a
//! counting reply sink:
//!
//! 1. **process**: a fresh data directory; the watcher indexes every `Deposited` event
//!    from the logs and works through the 10,000 claims (verify, submit on anvil, which
//!    now mines a block every second, reply, file). Its peak RSS (VmHWM) is reported; afterwards the journal holds
//!    10,000 messages and the index `--deposits` open deposits.
//! 2. **startup**, `--runs` times: a new process on that data directory, from exec to
//!    the end of its first pass (journal opened, identity checked, index caught up,
//!    mailbox read, nothing to do): the time, and the RSS then.
//!
//! Targets: RSS ≤ 64 MB, startup ≤ 2 s.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use clap::Parser;
use rand::rngs::StdRng;
use rand::SeedableRng;
use springmail_bench::anvil::{self, Anvil, CHAIN_ID};
use springmail_bench::{corpus, proc_status_kb, rig, Results, Target};
use springmail_sdk::chain::evm_rpc::EvmRpcChain;
use springmail_sdk::client::SpringMail;
use springmail_sdk::eip712::EscrowId;
use springmail_sdk::keys::ClaimSecret;
use springmail_sdk::Address;
use springmail_watcher::journal::Journal;
use springmail_watcher::service::Watcher;
use springmail_watcher::DirSource;

#[derive(Parser, Debug)]
#[command(about = "Watcher RSS and startup with 100k deposits and 10k journal messages")]
struct Args {
    /// anvil binary to start a private chain with.
    #[arg(long)]
    anvil_bin: Option<PathBuf>,
    /// Or a running anvil (127.0.0.1 only).
    #[arg(long)]
    anvil_url: Option<String>,
    /// Deposits that stay open (known to the watcher from the logs).
    #[arg(long, default_value_t = 100_000)]
    deposits: usize,
    /// Claim mails (and claimed deposits) that end up in the journal.
    #[arg(long, default_value_t = 10_000)]
    mails: usize,
    /// Startup measurements (the median is reported).
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Deposits per block.
    #[arg(long, default_value_t = 250)]
    per_block: usize,
    /// Empty blocks after each block of deposits.
    #[arg(long, default_value_t = 0)]
    gap: u64,
    /// Corpus seed.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Mail provider domains.
    #[arg(long, default_value_t = 40)]
    providers: usize,
    /// Write results as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,

    /// (internal) run as the watcher process: `process` or `startup`.
    #[arg(long, hide = true)]
    child: Option<String>,
    #[arg(long, hide = true)]
    data: Option<PathBuf>,
    #[arg(long, hide = true)]
    maildir: Option<PathBuf>,
    #[arg(long, hide = true)]
    escrow: Option<Address>,
    #[arg(long, hide = true)]
    start_block: Option<u64>,
    #[arg(long, hide = true)]
    pins: Option<PathBuf>,
}

fn main() -> Result<()> {
    let args = Args::parse();
    if let Some(mode) = args.child.clone() {
        return child(&mode, &args);
    }
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(parent(args))
}

fn status_line() -> String {
    format!(
        "rss_kb={} hwm_kb={}",
        proc_status_kb("self", "VmRSS").unwrap_or(0),
        proc_status_kb("self", "VmHWM").unwrap_or(0)
    )
}

/// The watcher process: what `springmail watch` builds, with a mail directory.
fn child(mode: &str, a: &Args) -> Result<()> {
    let need = |what: &str| anyhow!("--child needs --{what}");
    let data = a.data.clone().ok_or_else(|| need("data"))?;
    let maildir = a.maildir.clone().ok_or_else(|| need("maildir"))?;
    let escrow = a.escrow.ok_or_else(|| need("escrow"))?;
    let start_block = a.start_block.ok_or_else(|| need("start-block"))?;
    let url = a.anvil_url.clone().ok_or_else(|| need("anvil-url"))?;
    let pins = rig::read_pins(&a.pins.clone().ok_or_else(|| need("pins"))?)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let t0 = Instant::now();
        let key = Arc::new(corpus::watcher_key());
        let chain = EvmRpcChain::connect(&url, key.signer(), Some(CHAIN_ID))
            .await
            .map_err(|e| anyhow!("{e}"))?;
        let client = SpringMail::new(Arc::new(chain), escrow).with_start_block(start_block);
        let journal = Arc::new(Journal::open_in(&data)?);
        let source = DirSource::open(&maildir)?;
        let sink = rig::CountingSink::default();
        let mut watcher = Watcher::new(rig::parts(
            client,
            key,
            journal.clone(),
            Box::new(source),
            Arc::new(sink.clone()),
            pins,
            Duration::from_secs(60),
        ))?;
        let report = watcher.run_once().await?;
        let claimed = report
            .decided
            .iter()
            .filter(|(k, _)| k.as_str() == "claimed")
            .count();
        let other: Vec<_> = report
            .decided
            .iter()
            .filter(|(k, _)| k.as_str() != "claimed")
            .take(3)
            .collect();
        let stats = watcher.deposit_index().stats()?;
        let messages = journal.all_messages()?.len();
        println!(
            "{} ms={} received={} claimed={claimed} replies={} open={} claimed_deposits={} messages={messages} {} other={other:?}",
            if mode == "startup" { "READY" } else { "DONE" },
            t0.elapsed().as_millis(),
            report.received,
            sink.sent(),
            stats.open,
            stats.claimed,
            status_line()
        );
        anyhow::Ok(())
    })
}

struct ChildRun {
    wall: Duration,
    fields: Vec<(String, String)>,
}

impl ChildRun {
    fn get(&self, k: &str) -> Result<u64> {
        self.fields
            .iter()
            .find(|(key, _)| key == k)
            .and_then(|(_, v)| v.parse().ok())
            .ok_or_else(|| anyhow!("the watcher process did not report {k}"))
    }
}

#[allow(clippy::too_many_arguments)]
fn run_child(
    mode: &str,
    data: &Path,
    maildir: &Path,
    url: &str,
    escrow: Address,
    start_block: u64,
    pins: &Path,
    timeout: Duration,
) -> Result<ChildRun> {
    let exe = std::env::current_exe()?;
    let t0 = Instant::now();
    let mut child = Command::new(exe)
        .args(["--child", mode])
        .arg("--data")
        .arg(data)
        .arg("--maildir")
        .arg(maildir)
        .args(["--anvil-url", url])
        .args(["--escrow", &escrow.to_string()])
        .args(["--start-block", &start_block.to_string()])
        .arg("--pins")
        .arg(pins)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()?;
    let stdout = child.stdout.take().expect("piped");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send((Instant::now(), line));
        }
    });
    let mut result = None;
    while result.is_none() {
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok((at, line)) if line.starts_with("READY") || line.starts_with("DONE") => {
                let fields = line
                    .split_whitespace()
                    .skip(1)
                    .filter_map(|f| f.split_once('='))
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect();
                result = Some(ChildRun {
                    wall: at - t0,
                    fields,
                });
            }
            Ok((_, line)) => eprintln!("watcher: {line}"),
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                if t0.elapsed() > timeout {
                    let _ = child.kill();
                    let _ = child.wait();
                    bail!("the watcher process ({mode}) did not finish within {timeout:?}");
                }
                if let Some(status) = child.try_wait()? {
                    if !status.success() {
                        bail!("the watcher process ({mode}) failed: {status}");
                    }
                }
            }
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                let status = child.wait()?;
                bail!("the watcher process ({mode}) ended without a result: {status}");
            }
        }
    }
    let status = child.wait()?;
    if !status.success() {
        bail!("the watcher process ({mode}) failed: {status}");
    }
    Ok(result.expect("set"))
}

async fn parent(args: Args) -> Result<()> {
    let mut res = Results::new("memory");
    let work = springmail_bench::work_dir().join("memory");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work)?;
    let anvil = match (&args.anvil_url, &args.anvil_bin) {
        (Some(url), _) => Anvil::external(url)?,
        (None, Some(bin)) => Anvil::spawn(bin).await?,
        (None, None) => bail!("give --anvil-bin (scripts/bench does) or --anvil-url"),
    };
    let http = reqwest::Client::new();
    let (_, now) = anvil::head(&http, &anvil.url).await?;
    let sender = ClaimSecret::random();
    let watcher_key = corpus::watcher_key();
    anvil::fund(
        &http,
        &anvil.url,
        watcher_key.address(),
        alloy::primitives::U256::from(10u128.pow(24)),
    )
    .await?;

    // Deposits: the first `mails` get claimed, the rest stay open.
    let total = args.deposits + args.mails;
    eprintln!("making {total} deposits on {} ...", anvil.url);
    let mut rng = StdRng::seed_from_u64(args.seed);
    let specs = corpus::deposit_specs(
        &mut rng,
        total,
        args.providers,
        sender.address(),
        watcher_key.address(),
        now + 60 * 86_400,
    );
    let escrow = anvil::populate(&anvil.url, &sender, &specs, args.per_block, args.gap).await?;
    eprintln!(
        "{total} deposits in {} blocks (head {}) in {:.1}s",
        escrow.deposit_blocks,
        escrow.head,
        escrow.took.as_secs_f64()
    );
    let (_, chain_now) = anvil::head(&http, &anvil.url).await?;
    // From here a block every second, as on a real chain: with automine every claim
    // would be a block of its own, and anvil recomputes the state root of an escrow
    // holding 110,000 deposits for each (about 0.25 s).
    anvil::rpc(
        &http,
        &anvil.url,
        "evm_setAutomine",
        serde_json::json!([false]),
    )
    .await?;
    anvil::rpc(
        &http,
        &anvil.url,
        "evm_setIntervalMining",
        serde_json::json!([1]),
    )
    .await?;

    // The claim mails, in a mail directory.
    let providers = corpus::providers(args.providers, &springmail_bench::work_dir().join("cache"))?;
    let id = EscrowId {
        chain_id: CHAIN_ID,
        escrow: escrow.address,
    };
    let cases = corpus::mails_for(
        id,
        &specs[..args.mails],
        &providers,
        args.seed,
        chain_now,
        5 * 1024,
        50 * 1024,
    )?;
    let maildir = work.join("mail");
    std::fs::create_dir_all(maildir.join("INBOX"))?;
    for (i, c) in cases.iter().enumerate() {
        std::fs::write(maildir.join("INBOX").join(format!("{i:06}.eml")), &c.raw)?;
    }
    drop(cases);
    let pins = work.join("pins.txt");
    rig::write_pins(&pins, &providers)?;
    let data = work.join("data");
    std::fs::create_dir_all(&data)?;

    res.note("deposits", format!(
        "{total} made on anvil in {} blocks of {} with {} empty blocks after each (head {}), all naming the watcher; {:.0} s to make",
        escrow.deposit_blocks, args.per_block, args.gap, escrow.head, escrow.took.as_secs_f64()
    ));

    // 1. Index everything and work through the claims.
    eprintln!("watcher process: indexing and {} claims ...", args.mails);
    let p = run_child(
        "process",
        &data,
        &maildir,
        &anvil.url,
        escrow.address,
        escrow.start_block,
        &pins,
        Duration::from_secs(3600),
    )?;
    let claimed = p.get("claimed")?;
    if claimed != args.mails as u64 {
        bail!(
            "the watcher claimed {claimed} of {} (see the process's report: {:?})",
            args.mails,
            p.fields
        );
    }
    let open = p.get("open")?;
    let messages = p.get("messages")?;
    res.note(
        "after processing",
        format!(
            "{open} open deposits in the index, {} claimed; {messages} messages in the journal; journal file {:.1} MB",
            p.get("claimed_deposits")?,
            dir_size(&data)? as f64 / 1e6
        ),
    );
    res.figure(
        "memory.process_hwm",
        &format!(
            "peak RSS indexing {total} deposits and handling {} claims",
            args.mails
        ),
        "MB",
        vec![p.get("hwm_kb")? as f64 / 1024.0],
        Target::AtMost(64.0),
    );
    res.figure(
        "memory.process_time",
        &format!(
            "time to index and handle {} claims (anvil, a block per second)",
            args.mails
        ),
        "s",
        vec![p.wall.as_secs_f64()],
        Target::None,
    );

    // 2. Startup on that journal, several times.
    let mut startup = Vec::new();
    let mut rss = Vec::new();
    let mut hwm = Vec::new();
    for i in 0..args.runs.max(1) {
        let s = run_child(
            "startup",
            &data,
            &maildir,
            &anvil.url,
            escrow.address,
            escrow.start_block,
            &pins,
            Duration::from_secs(120),
        )?;
        if s.get("open")? != open || s.get("messages")? != messages {
            bail!(
                "startup {i}: the watcher sees another state: {:?}",
                s.fields
            );
        }
        startup.push(s.wall.as_secs_f64() * 1e3);
        rss.push(s.get("rss_kb")? as f64 / 1024.0);
        hwm.push(s.get("hwm_kb")? as f64 / 1024.0);
    }
    res.figure(
        "memory.startup",
        &format!("startup with {open} open deposits and {messages} journal messages (exec to first pass done)"),
        "ms",
        startup,
        Target::AtMost(2000.0),
    );
    res.figure(
        "memory.rss",
        "watcher RSS after startup, same state",
        "MB",
        rss,
        Target::AtMost(64.0),
    );
    res.figure(
        "memory.startup_hwm",
        "peak RSS during startup",
        "MB",
        hwm,
        Target::AtMost(64.0),
    );
    drop(anvil);
    res.write(args.json.as_deref())
}

fn dir_size(p: &Path) -> Result<u64> {
    let mut n = 0;
    for e in std::fs::read_dir(p).with_context(|| p.display().to_string())? {
        let e = e?;
        let m = e.metadata()?;
        n += if m.is_dir() {
            dir_size(&e.path())?
        } else {
            m.len()
        };
    }
    Ok(n)
}
