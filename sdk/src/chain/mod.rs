//! Chain backends behind one trait.
//!
//! * [`evm_rpc`]: Ethereum JSON-RPC with locally signed transactions (anvil, any EVM chain).
//! * [`qtum`]: qtumd's JSON-RPC (`callcontract`, `sendtocontract`, `searchlogs`, ...).
//! * [`embedded`]: an in-process EVM (revm) for the demo and fast tests. It is a
//!   development chain and says so in [`Chain::describe`].
//!
//! A backend implements a few primitives (read call, submit, receipt, logs, head,
//! balance); everything else, such as [`Chain::send`] (submit then wait), has a default.
//! A reverted transaction is an `Ok` [`Receipt`] with [`TxStatus::Reverted`]; `Err` is
//! for the machinery and tells with [`ChainError::is_transient`] whether to retry.

use std::time::Duration;

use alloy::primitives::{Address, Bytes, Log, B256, U256};
use async_trait::async_trait;

pub mod embedded;
pub mod evm_rpc;
pub mod qtum;
pub mod qtum_tx;

/// A transaction to send from the backend's account.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TxRequest {
    /// `None` creates a contract from `data`.
    pub to: Option<Address>,
    /// Calldata, or init code for a create.
    pub data: Bytes,
    /// Native value in the chain's base units (satoshi on Qtum).
    pub value: U256,
    /// Gas limit; `None` lets the backend estimate or use its default.
    pub gas_limit: Option<u64>,
}

/// How a mined transaction ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TxStatus {
    /// It ran to completion.
    Success,
    /// It reverted. `data` is the revert data where the backend has it (qtumd has none);
    /// `message` a decoded reason where one exists.
    Reverted {
        data: Option<Bytes>,
        message: Option<String>,
    },
}

/// A mined transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    /// The transaction id.
    pub tx_hash: B256,
    /// The block it was mined in.
    pub block_number: u64,
    /// Gas it used.
    pub gas_used: u64,
    /// Success or revert.
    pub status: TxStatus,
    /// The logs it emitted (empty on revert).
    pub logs: Vec<Log>,
    /// The created contract, for a create.
    pub contract_address: Option<Address>,
}

impl Receipt {
    /// True when the transaction succeeded.
    pub fn succeeded(&self) -> bool {
        self.status == TxStatus::Success
    }
}

/// The result of a read-only call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallResult {
    /// Return data.
    Success(Bytes),
    /// Revert data (may be empty).
    Reverted(Bytes),
}

/// Which logs to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogFilter {
    /// The emitting contract.
    pub address: Address,
    /// Positional topic filter; `None` matches anything.
    pub topics: Vec<Option<B256>>,
    /// First block, inclusive.
    pub from_block: u64,
    /// Last block, inclusive; `None` for the head.
    pub to_block: Option<u64>,
}

/// A log with where it was emitted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainLog {
    /// The block number.
    pub block_number: u64,
    /// The transaction.
    pub tx_hash: B256,
    /// Position of the log in its block, for a stable order.
    pub log_index: u64,
    /// Emitter, topics and data.
    pub log: Log,
}

/// The chain's newest block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Head {
    /// Block number.
    pub number: u64,
    /// Block timestamp, unix seconds.
    pub timestamp: u64,
}

/// Failures of the machinery (not of a transaction: a revert is a [`Receipt`]).
#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    /// The node could not be reached, timed out or answered garbage; retry later.
    #[error("cannot reach the chain node at {endpoint}: {reason}")]
    Unreachable { endpoint: String, reason: String },
    /// The node answered an error.
    #[error("the node refused {method}: {message} (code {code})")]
    Rpc {
        method: String,
        code: i64,
        message: String,
    },
    /// The chain id differs from the one configured.
    #[error("the node is on chain {got}, expected {expected}")]
    ChainIdMismatch { expected: u64, got: u64 },
    /// A transaction was not mined in time; it may still be.
    #[error("transaction {tx_hash} was not mined within {waited:?}")]
    NotMined { tx_hash: B256, waited: Duration },
    /// The answer did not have the expected shape.
    #[error("unexpected answer to {method}: {reason}")]
    BadResponse { method: String, reason: String },
    /// The request is invalid for this backend (e.g. a value it cannot carry).
    #[error("{0}")]
    Invalid(String),
    /// The URL answered an HTTP error that is not JSON-RPC (a wrong path or port, a proxy).
    #[error("the RPC endpoint {endpoint} answered HTTP {status}{}: is the URL right?", http_body(.body))]
    Http {
        endpoint: String,
        status: u16,
        body: String,
    },
}

/// ` (body text)` for an HTTP error message, or nothing for an empty body.
fn http_body(body: &str) -> String {
    let t: String = body.trim().chars().take(200).collect();
    if t.is_empty() {
        String::new()
    } else {
        format!(" ({t})")
    }
}

impl ChainError {
    /// True when the same request may succeed later (network, node busy, not mined yet).
    pub fn is_transient(&self) -> bool {
        match self {
            ChainError::Unreachable { .. } | ChainError::NotMined { .. } => true,
            // -28: node warming up; -32603: internal; nonce races show up as RPC errors
            // that a resubmission with a fresh nonce fixes.
            ChainError::Rpc { code, message, .. } => {
                *code == -28
                    || *code == -32603
                    || message.contains("nonce too low")
                    || message.contains("replacement transaction underpriced")
            }
            _ => false,
        }
    }
}

/// `Error(string)` revert data carrying `reason`, for failures a backend finds before the
/// EVM runs (too little balance, a halt) so that callers decode every refusal one way.
pub(crate) fn revert_data(reason: String) -> Bytes {
    use alloy::sol_types::SolError;
    alloy::sol_types::Revert { reason }.abi_encode().into()
}

/// One chain, as seen by one account.
#[async_trait]
pub trait Chain: Send + Sync {
    /// EIP-155 chain id (the value of the CHAINID opcode).
    fn chain_id(&self) -> u64;

    /// The account this handle sends transactions from.
    fn account(&self) -> Address;

    /// A short human description ("anvil at http://…", "embedded development chain").
    fn describe(&self) -> String;

    /// A read-only call against the newest state.
    async fn call(&self, to: Address, data: Bytes) -> Result<CallResult, ChainError>;

    /// Runs `tx` against the newest state as this account would send it (sender, value,
    /// calldata), without broadcasting anything: what it would return, or its revert data.
    /// Every backend here overrides it; the default, for wrappers, is a plain
    /// [`Chain::call`] (no value) and treats a create as succeeding.
    async fn simulate(&self, tx: &TxRequest) -> Result<CallResult, ChainError> {
        match tx.to {
            Some(to) => self.call(to, tx.data.clone()).await,
            None => Ok(CallResult::Success(Bytes::new())),
        }
    }

    /// Whether the node holds `tx_hash` unmined (in its mempool). A backend that cannot
    /// tell answers `false`.
    async fn is_pending(&self, tx_hash: B256) -> Result<bool, ChainError> {
        let _ = tx_hash;
        Ok(false)
    }

    /// Signs and broadcasts a transaction, returning its id without waiting for it.
    async fn submit(&self, tx: TxRequest) -> Result<B256, ChainError>;

    /// The receipt of a transaction, `None` while it is unknown or not yet mined.
    async fn receipt(&self, tx_hash: B256) -> Result<Option<Receipt>, ChainError>;

    /// Logs matching a filter, in chain order.
    async fn logs(&self, filter: &LogFilter) -> Result<Vec<ChainLog>, ChainError>;

    /// The newest block.
    async fn head(&self) -> Result<Head, ChainError>;

    /// Native balance in base units.
    async fn balance(&self, who: Address) -> Result<U256, ChainError>;

    /// How often [`Chain::send`] polls for a receipt.
    fn poll_interval(&self) -> Duration {
        Duration::from_millis(100)
    }

    /// Submits and waits for the receipt, up to `timeout`.
    async fn send_with_timeout(
        &self,
        tx: TxRequest,
        timeout: Duration,
    ) -> Result<Receipt, ChainError> {
        let tx_hash = self.submit(tx).await?;
        self.wait(tx_hash, timeout).await
    }

    /// Submits and waits up to two minutes for the receipt.
    async fn send(&self, tx: TxRequest) -> Result<Receipt, ChainError> {
        self.send_with_timeout(tx, Duration::from_secs(120)).await
    }

    /// Waits for a submitted transaction's receipt.
    async fn wait(&self, tx_hash: B256, timeout: Duration) -> Result<Receipt, ChainError> {
        let start = std::time::Instant::now();
        loop {
            if let Some(r) = self.receipt(tx_hash).await? {
                return Ok(r);
            }
            if start.elapsed() >= timeout {
                return Err(ChainError::NotMined {
                    tx_hash,
                    waited: start.elapsed(),
                });
            }
            tokio::time::sleep(self.poll_interval()).await;
        }
    }

    /// An ERC-20/QRC20 balance, through `balanceOf`.
    async fn token_balance(&self, token: Address, who: Address) -> Result<U256, ChainError> {
        use alloy::sol_types::SolCall;
        alloy::sol! { function balanceOf(address who) external view returns (uint256); }
        let data = balanceOfCall { who }.abi_encode();
        match self.call(token, data.into()).await? {
            CallResult::Success(out) => {
                balanceOfCall::abi_decode_returns(&out).map_err(|e| ChainError::BadResponse {
                    method: "balanceOf".into(),
                    reason: e.to_string(),
                })
            }
            CallResult::Reverted(_) => Err(ChainError::BadResponse {
                method: "balanceOf".into(),
                reason: format!("token {token} reverted"),
            }),
        }
    }
}
