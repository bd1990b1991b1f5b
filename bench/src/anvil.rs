//! A private anvil for the chain-scale benchmarks, and a fast way to fill it with
//! deposits.
//!
//! [`Anvil::spawn`] starts anvil like the dev stack does (`--hardfork shanghai
//! --chain-id 8890`, plus `--prune-history`) on a free loopback port and stops it (its own PID) when dropped.
//! [`populate`] deploys an escrow and makes deposits the way a sender's SDK makes them,
//! but without waiting for each: automine off, a block's worth of locally signed
//! `deposit` transactions sent as one JSON-RPC batch, `evm_mine`, and optionally
//! `anvil_mine` to leave empty blocks between. (Empty blocks are not cheap: anvil
//! recomputes the state root for each, about 0.2 s per block once the escrow holds
//! 70,000 deposits, so the default is dense blocks.)

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use alloy::consensus::{SignableTransaction, TxEnvelope, TxLegacy};
use alloy::eips::eip2718::Encodable2718;
use alloy::network::TxSignerSync;
use alloy::primitives::{Address, TxKind, U256};
use alloy::sol_types::SolCall;
use anyhow::{anyhow, bail, Context, Result};
use serde_json::{json, Value};
use springmail_sdk::chain::evm_rpc::EvmRpcChain;
use springmail_sdk::client::SpringMail;
use springmail_sdk::contract::EmailEscrow;
use springmail_sdk::keys::ClaimSecret;

use crate::corpus::DepositSpec;

/// The dev chain's id.
pub const CHAIN_ID: u64 = springmail_sdk::protocol::REGTEST_CHAIN_ID;

/// An anvil this process started (stopped on drop), or one given by URL.
pub struct Anvil {
    /// JSON-RPC URL on 127.0.0.1.
    pub url: String,
    child: Option<Child>,
}

impl std::fmt::Debug for Anvil {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Anvil").field("url", &self.url).finish()
    }
}

fn free_port() -> Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

impl Anvil {
    /// Starts `bin` on a free loopback port and waits until it answers.
    pub async fn spawn(bin: &Path) -> Result<Self> {
        // No historical states: without this anvil writes a snapshot of the whole
        // state to ~/.foundry/anvil/tmp for every block past its memory limit
        // (tens of GB for 100,000 deposits). Logs and receipts are kept.
        Self::spawn_with(bin, &["--prune-history"], None).await
    }

    /// As [`Anvil::spawn`], with `history` (anvil's `--prune-history` and its
    /// value) and, when `max_bytes` is given, its address space limited to that
    /// (with `prlimit`): an anvil that runs away fails alone instead of making the
    /// kernel's OOM killer pick among the machine's processes.
    pub async fn spawn_with(bin: &Path, history: &[&str], max_bytes: Option<u64>) -> Result<Self> {
        let port = free_port()?;
        let mut command = match max_bytes {
            Some(max) => {
                let mut c = Command::new("prlimit");
                c.arg(format!("--as={max}")).arg("--").arg(bin);
                c
            }
            None => Command::new(bin),
        };
        let child = command
            .args([
                "--hardfork",
                "shanghai",
                "--chain-id",
                &CHAIN_ID.to_string(),
            ])
            .args([
                "--host",
                "127.0.0.1",
                "--port",
                &port.to_string(),
                "--silent",
            ])
            .args(history)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let anvil = Anvil {
            url: format!("http://127.0.0.1:{port}"),
            child: Some(child),
        };
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if rpc(&http, &anvil.url, "eth_chainId", json!([]))
                .await
                .is_ok()
            {
                return Ok(anvil);
            }
            if Instant::now() > deadline {
                bail!("anvil did not answer on {} within 30 s", anvil.url);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// An anvil that runs already (not stopped on drop). Only loopback URLs.
    pub fn external(url: &str) -> Result<Self> {
        let host = url
            .trim_start_matches("http://")
            .split([':', '/'])
            .next()
            .unwrap_or("");
        if !matches!(host, "127.0.0.1" | "localhost" | "[::1]") {
            bail!("benchmarks only talk to 127.0.0.1, not {url}");
        }
        Ok(Anvil {
            url: url.to_string(),
            child: None,
        })
    }
}

impl Drop for Anvil {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// One JSON-RPC call.
pub async fn rpc(http: &reqwest::Client, url: &str, method: &str, params: Value) -> Result<Value> {
    let v: Value = http
        .post(url)
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}))
        .send()
        .await?
        .json()
        .await?;
    if let Some(e) = v.get("error") {
        bail!("{method}: {e}");
    }
    Ok(v.get("result").cloned().unwrap_or(Value::Null))
}

/// Several calls in one JSON-RPC batch; fails if any failed.
pub async fn rpc_batch(
    http: &reqwest::Client,
    url: &str,
    calls: Vec<(&str, Value)>,
) -> Result<Vec<Value>> {
    let body: Vec<Value> = calls
        .iter()
        .enumerate()
        .map(|(i, (m, p))| json!({"jsonrpc": "2.0", "id": i, "method": m, "params": p}))
        .collect();
    let v: Vec<Value> = http.post(url).json(&body).send().await?.json().await?;
    let mut out = vec![Value::Null; calls.len()];
    for r in v {
        if let Some(e) = r.get("error") {
            bail!("batch call failed: {e}");
        }
        let id = r.get("id").and_then(|i| i.as_u64()).unwrap_or(0) as usize;
        if id < out.len() {
            out[id] = r.get("result").cloned().unwrap_or(Value::Null);
        }
    }
    Ok(out)
}

fn hex_u64(v: &Value) -> Result<u64> {
    let s = v.as_str().ok_or_else(|| anyhow!("not a hex number: {v}"))?;
    Ok(u64::from_str_radix(s.trim_start_matches("0x"), 16)?)
}

/// Gives `who` a balance by decree.
pub async fn fund(http: &reqwest::Client, url: &str, who: Address, wei: U256) -> Result<()> {
    rpc(
        http,
        url,
        "anvil_setBalance",
        json!([who, format!("0x{wei:x}")]),
    )
    .await?;
    Ok(())
}

/// The newest block's number and timestamp.
pub async fn head(http: &reqwest::Client, url: &str) -> Result<(u64, u64)> {
    let b = rpc(http, url, "eth_getBlockByNumber", json!(["latest", false])).await?;
    Ok((hex_u64(&b["number"])?, hex_u64(&b["timestamp"])?))
}

/// An escrow with deposits on anvil.
#[derive(Debug, Clone)]
pub struct Escrow {
    /// The escrow contract.
    pub address: Address,
    /// Its deployment block.
    pub start_block: u64,
    /// The head after the deposits.
    pub head: u64,
    /// Blocks that carry deposits.
    pub deposit_blocks: u64,
    /// How long making the deposits took.
    pub took: Duration,
}

/// Deploys an escrow from a fresh funded key and makes `specs` (whose `sender` must
/// be `sender`'s address) in blocks of `per_block`, with `gap` empty blocks after each.
pub async fn populate(
    url: &str,
    sender: &ClaimSecret,
    specs: &[DepositSpec],
    per_block: usize,
    gap: u64,
) -> Result<Escrow> {
    let http = reqwest::Client::new();
    fund(&http, url, sender.address(), U256::from(10u128.pow(30))).await?;
    let chain = EvmRpcChain::connect(url, sender.signer(), Some(CHAIN_ID))
        .await
        .map_err(|e| anyhow!("{e}"))?;
    let client = SpringMail::deploy(Arc::new(chain))
        .await
        .map_err(|e| anyhow!("deploying the escrow: {e}"))?;
    let escrow = client.escrow();
    let t0 = Instant::now();
    rpc(&http, url, "evm_setAutomine", json!([false])).await?;
    let nonce_v = rpc(
        &http,
        url,
        "eth_getTransactionCount",
        json!([sender.address(), "pending"]),
    )
    .await?;
    let mut nonce = hex_u64(&nonce_v)?;
    let signer = sender.signer();
    let mut blocks = 0;
    let result = async {
        for chunk in specs.chunks(per_block.max(1)) {
            let latest = rpc(&http, url, "eth_getBlockByNumber", json!(["latest", false])).await?;
            let base_fee = latest
                .get("baseFeePerGas")
                .map(hex_u64)
                .transpose()?
                .unwrap_or(0) as u128;
            let gas_price = (base_fee * 2).max(1_000_000_000);
            let mut calls = Vec::with_capacity(chunk.len());
            for spec in chunk {
                let data = EmailEscrow::depositCall {
                    claimKey: spec.claim_key(),
                    d: spec.deposit.to_sol(),
                }
                .abi_encode();
                let mut tx = TxLegacy {
                    chain_id: Some(CHAIN_ID),
                    nonce,
                    gas_price,
                    gas_limit: 120_000,
                    to: TxKind::Call(escrow),
                    value: U256::from(spec.deposit.amount),
                    input: data.into(),
                };
                nonce += 1;
                let sig = signer.sign_transaction_sync(&mut tx)?;
                let env: TxEnvelope = tx.into_signed(sig).into();
                calls.push((
                    "eth_sendRawTransaction",
                    json!([format!("0x{}", hex::encode(env.encoded_2718()))]),
                ));
            }
            rpc_batch(&http, url, calls).await?;
            rpc(&http, url, "evm_mine", json!([])).await?;
            blocks += 1;
            if gap > 0 {
                rpc(&http, url, "anvil_mine", json!([format!("0x{gap:x}")])).await?;
            }
        }
        anyhow::Ok(())
    }
    .await;
    rpc(&http, url, "evm_setAutomine", json!([true])).await?;
    result?;
    // Every deposit must have landed: check the stored hash of the first and the last.
    for spec in [specs.first(), specs.last()].into_iter().flatten() {
        let stored = client
            .stored_hash(spec.claim_key())
            .await
            .map_err(|e| anyhow!("{e}"))?;
        if stored != spec.deposit.hash() {
            bail!("deposit {} did not land", spec.claim_key());
        }
    }
    let (head_number, _) = head(&http, url).await?;
    Ok(Escrow {
        address: escrow,
        start_block: client.start_block(),
        head: head_number,
        deposit_blocks: blocks,
        took: t0.elapsed(),
    })
}
