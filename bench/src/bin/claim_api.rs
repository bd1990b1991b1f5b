//! `POST /api/claims` verification on one core: parse the JSON, check the claim as the
//! contract will (the deposit read from the chain and its logs, expiry and deadline,
//! the claim key's EIP-712 signature, the fee), and simulate it — against an instant
//! in-memory chain, so the figure is the broker's own work. Recording the claim in the
//! journal is not included (that is the watcher's pipeline, measured by `pipeline`).
//!
//! Run on one core: `taskset -c 1 target/release/claim_api`.

use std::sync::Arc;
use std::time::Instant;

use anyhow::{ensure, Result};
use clap::Parser;
use springmail_bench::instant::InstantChain;
use springmail_sdk::client::SpringMail;
use springmail_sdk::deposit::Deposit;
use springmail_sdk::eip712::ClaimAuth;
use springmail_sdk::keys::ClaimSecret;
use springmail_sdk::Address;
use springmail_watcher::http::{verify_claim, Checked, ClaimBackend};
use springmail_watcher::journal::Journal;
use springmail_watcher::metrics::Metrics;
use springmail_watcher::verify::VerifyPolicy;

#[derive(Parser, Debug)]
#[command(about = "POST /api/claims verification throughput on one core")]
struct Args {
    /// Claims (each for its own deposit).
    #[arg(long, default_value_t = 20_000)]
    claims: usize,
    /// Runs (the median is reported).
    #[arg(long, default_value_t = 3)]
    runs: usize,
}

const CHAIN_ID: u64 = springmail_sdk::protocol::REGTEST_CHAIN_ID;
const T0: u64 = 1_767_225_600;

fn main() -> Result<()> {
    let args = Args::parse();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let escrow = Address::repeat_byte(0xee);
    let relayer = ClaimSecret::random();
    let mut bodies = Vec::with_capacity(args.claims);
    let mut deposits = Vec::with_capacity(args.claims);
    for i in 0..args.claims {
        let key = ClaimSecret::random();
        let d = Deposit {
            sender: Address::repeat_byte(1),
            token: Address::ZERO,
            amount: 150_000_000 + i as u128,
            expiry: T0 + 86_400,
            flags: 0,
            watcher: Address::ZERO,
            recipient: alloy::primitives::B256::repeat_byte(9),
        };
        let auth = ClaimAuth {
            claim_key: key.address(),
            deposit_hash: d.hash(),
            to: Address::repeat_byte(2),
            max_fee: 100_000,
            deadline: T0 + 3600,
        };
        let sig = auth.sign_claim(
            springmail_sdk::eip712::EscrowId {
                chain_id: CHAIN_ID,
                escrow,
            },
            &key,
        );
        bodies.push(
            serde_json::json!({
                "chainId": CHAIN_ID, "escrow": escrow.to_string(), "claimKey": key.address().to_string(),
                "depositHash": d.hash().to_string(), "to": auth.to.to_string(), "maxFee": "100000",
                "deadline": auth.deadline, "signature": format!("0x{}", hex::encode(sig.0)),
            })
            .to_string(),
        );
        deposits.push((key.address(), d));
    }
    let chain = InstantChain::new(CHAIN_ID, escrow, relayer.address(), 100, T0);
    chain.add_deposits(deposits.iter().map(|(k, d)| (*k, d)), 10);
    let dir = tempfile::tempdir()?;
    let backend = ClaimBackend {
        client: SpringMail::new(Arc::new(chain), escrow).with_start_block(1),
        journal: Arc::new(Journal::open_in(dir.path())?),
        policy: VerifyPolicy {
            watcher: relayer.address(),
            native_fee: 100_000,
            tokens: vec![],
            min_time_left: 60,
        },
        metrics: Metrics::new(),
        wake: Arc::new(tokio::sync::Notify::new()),
    };
    let mut rates = Vec::new();
    for run in 0..args.runs {
        let t = Instant::now();
        let mut ok = 0usize;
        for b in &bodies {
            if let Ok(Checked::New(_)) = rt.block_on(verify_claim(&backend, b.as_bytes())) {
                ok += 1;
            }
        }
        let secs = t.elapsed().as_secs_f64();
        ensure!(
            ok == bodies.len(),
            "only {ok} of {} claims verified",
            bodies.len()
        );
        let rate = bodies.len() as f64 / secs;
        println!(
            "run {run}: {} claims in {secs:.3}s = {rate:.0} verifications/s",
            bodies.len()
        );
        rates.push(rate);
    }
    let median = springmail_bench::median(rates);
    println!("POST /api/claims verification (parse, check, simulate; instant chain), one core: {median:.0}/s (target ≥ 2000/s)");
    ensure!(median >= 2000.0, "below 2,000 verifications/s");
    Ok(())
}
