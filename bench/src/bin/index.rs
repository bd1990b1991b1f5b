//! Time to index 100,000 `Deposited` events from anvil.
//!
//! A private anvil gets an escrow and `--deposits` deposits naming the watcher, 250 to
//! a block (400 blocks for 100,000 deposits; see `springmail_bench::anvil::populate`,
//! and `--gap` for empty blocks between them). Each run opens a fresh journal
//! and times the watcher's `DepositIndex::catch_up` from the escrow's deployment block
//! to the head, over JSON-RPC (`eth_getLogs`) with the watcher's default settings:
//! ranges starting at 16 blocks, halved while an answer carries more than 5,000 logs
//! and doubled (up to 10,000 blocks) while answers are small, each range committed with
//! the persisted cursor. Then the catch-up of a restarted watcher on that journal (the
//! cursor is at the head: one request at most).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{anyhow, bail, Result};
use clap::Parser;
use rand::rngs::StdRng;
use rand::SeedableRng;
use springmail_bench::anvil::{self, Anvil, CHAIN_ID};
use springmail_bench::{corpus, proc_status_kb, Results, Target};
use springmail_sdk::chain::evm_rpc::EvmRpcChain;
use springmail_sdk::client::SpringMail;
use springmail_sdk::keys::ClaimSecret;
use springmail_watcher::deposits::{DepositIndex, IndexSettings};
use springmail_watcher::journal::Journal;

#[derive(Parser, Debug)]
#[command(about = "Time to index Deposited events from anvil")]
struct Args {
    /// anvil binary to start a private chain with.
    #[arg(long)]
    anvil_bin: Option<PathBuf>,
    /// Or a running anvil (127.0.0.1 only).
    #[arg(long)]
    anvil_url: Option<String>,
    /// Deposits to index.
    #[arg(long, default_value_t = 100_000)]
    deposits: usize,
    /// Runs (the median is reported).
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Deposits per block.
    #[arg(long, default_value_t = 250)]
    per_block: usize,
    /// Empty blocks after each block of deposits.
    #[arg(long, default_value_t = 0)]
    gap: u64,
    /// Write results as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
}

fn main() -> Result<()> {
    let args = Args::parse();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run(args))
}

async fn run(args: Args) -> Result<()> {
    let mut res = Results::new("index");
    let anvil = match (&args.anvil_url, &args.anvil_bin) {
        (Some(url), _) => Anvil::external(url)?,
        (None, Some(bin)) => Anvil::spawn(bin).await?,
        (None, None) => bail!("give --anvil-bin (scripts/bench does) or --anvil-url"),
    };
    let http = reqwest::Client::new();
    let (_, now) = anvil::head(&http, &anvil.url).await?;
    let sender = ClaimSecret::random();
    let watcher = corpus::watcher_key();
    let mut rng = StdRng::seed_from_u64(7);
    let specs = corpus::deposit_specs(
        &mut rng,
        args.deposits,
        40,
        sender.address(),
        watcher.address(),
        now + 60 * 86_400,
    );
    eprintln!("making {} deposits on {} ...", args.deposits, anvil.url);
    let escrow = anvil::populate(&anvil.url, &sender, &specs, args.per_block, args.gap).await?;
    drop(specs);
    let blocks = escrow.head - escrow.start_block + 1;
    eprintln!(
        "{} deposits in {} blocks (head {}) in {:.1}s",
        args.deposits,
        blocks,
        escrow.head,
        escrow.took.as_secs_f64()
    );
    res.note(
        "chain",
        format!(
            "{} deposits in {} blocks of {} with {} empty blocks after each: {blocks} blocks from the escrow's deployment to the head; {:.0} s to make",
            args.deposits, escrow.deposit_blocks, args.per_block, args.gap, escrow.took.as_secs_f64()
        ),
    );

    let chain = Arc::new(
        EvmRpcChain::connect(&anvil.url, watcher.signer(), Some(CHAIN_ID))
            .await
            .map_err(|e| anyhow!("{e}"))?,
    );
    let client = SpringMail::new(chain, escrow.address).with_start_block(escrow.start_block);
    let work = springmail_bench::work_dir().join("tmp");
    std::fs::create_dir_all(&work)?;
    let mut times = Vec::new();
    let mut rates = Vec::new();
    let mut requests = Vec::new();
    let mut resume = Vec::new();
    let hwm0 = proc_status_kb("self", "VmHWM").unwrap_or(0);
    for i in 0..args.runs.max(1) {
        let dir = tempfile::tempdir_in(&work)?;
        let journal = Arc::new(Journal::open_in(dir.path())?);
        let open = || {
            DepositIndex::open(
                journal.clone(),
                client.clone(),
                watcher.address(),
                IndexSettings::default(),
            )
        };
        let index = open()?;
        let t = Instant::now();
        let done = index.catch_up(escrow.head).await?;
        let took = t.elapsed();
        let stats = index.stats()?;
        if stats.open != args.deposits as u64 || done.deposits != args.deposits as u64 {
            bail!(
                "run {i}: indexed {} deposits ({} open), expected {}",
                done.deposits,
                stats.open,
                args.deposits
            );
        }
        eprintln!(
            "run {i}: {} logs over {} blocks in {} requests, {:.2}s",
            done.logs,
            done.blocks,
            done.requests,
            took.as_secs_f64()
        );
        times.push(took.as_secs_f64());
        rates.push(done.logs as f64 / took.as_secs_f64());
        requests.push(done.requests as f64);
        drop(index);
        // A restarted watcher: the cursor is persisted at the head.
        let index = open()?;
        let t = Instant::now();
        let again = index.catch_up(escrow.head).await?;
        resume.push(t.elapsed().as_secs_f64() * 1e3);
        if again.logs != 0 || again.requests != 0 {
            bail!("run {i}: a restart read logs again: {again:?}");
        }
    }
    res.figure(
        "index.time",
        &format!(
            "index {} Deposited events from anvil (fresh journal)",
            args.deposits
        ),
        "s",
        times,
        Target::None,
    );
    res.figure(
        "index.rate",
        "events indexed per second",
        "events/s",
        rates,
        Target::None,
    );
    res.figure(
        "index.requests",
        "eth_getLogs requests (adaptive ranges: 16 to 10,000 blocks, ~5,000 logs)",
        "requests",
        requests,
        Target::None,
    );
    res.figure(
        "index.resume",
        "catch-up after a restart (cursor persisted at the head)",
        "ms",
        resume,
        Target::None,
    );
    let hwm = proc_status_kb("self", "VmHWM").unwrap_or(0);
    res.note(
        "memory",
        format!(
            "peak RSS of the benchmark process {:.0} MB before indexing, {:.0} MB after (the index lives in SQLite, not in memory)",
            hwm0 as f64 / 1024.0,
            hwm as f64 / 1024.0
        ),
    );
    drop(anvil);
    res.write(args.json.as_deref())
}
