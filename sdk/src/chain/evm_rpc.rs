//! Ethereum JSON-RPC with locally signed transactions (alloy): anvil in development, any
//! EVM chain otherwise.
//!
//! * **Nonces** are managed here: the handle keeps the next nonce (the node's `pending`
//!   count on first use), so one submitter task can fire transactions back to back
//!   without waiting for each to be mined. A "nonce too low" answer refetches the count
//!   and retries once; "already known" means the node has this very transaction, so its
//!   hash is returned. After a send whose outcome is unknown (the node went away) the
//!   next submit refetches the count. [`EvmRpcChain::reset_nonce`] forces that too.
//! * **Gas**: `eth_estimateGas` against the pending state plus a 20% margin unless the
//!   request carries a gas limit. A transaction the node says would revert is not sent
//!   (`Err(Rpc)` with the revert data in the message); pass a gas limit to send it anyway.
//!   Fees are EIP-1559 when the latest block has a base fee, legacy otherwise.
//! * **Receipts** have no revert data, so for a reverted transaction the call is replayed
//!   with `eth_call` at its block to recover it.
//! * **Logs** are read with `eth_getLogs` in ranges of at most 10,000 blocks
//!   ([`EvmRpcChain::with_log_chunk`]).

use std::time::Duration;

use alloy::consensus::Transaction as _;
use alloy::eips::eip2718::Encodable2718;
use alloy::eips::{BlockId, BlockNumberOrTag};
use alloy::network::{EthereumWallet, NetworkTransactionBuilder, TransactionBuilder};
use alloy::primitives::{Address, Bytes, TxKind, B256, U256};
use alloy::providers::{Provider, ProviderBuilder, RootProvider};
use alloy::rpc::types::{Filter, TransactionRequest};
use alloy::signers::local::PrivateKeySigner;
use alloy::transports::{RpcError, TransportErrorKind};
use async_trait::async_trait;

use super::{
    CallResult, Chain, ChainError, ChainLog, Head, LogFilter, Receipt, TxRequest, TxStatus,
};

/// Default largest block range of one `eth_getLogs` request.
pub const DEFAULT_LOG_CHUNK: u64 = 10_000;

/// An EVM chain over JSON-RPC, sending from one local key.
pub struct EvmRpcChain {
    provider: RootProvider,
    wallet: EthereumWallet,
    account: Address,
    chain_id: u64,
    shown_url: String,
    eip1559: bool,
    log_chunk: u64,
    gas_margin_percent: u64,
    /// The next nonce to use; `None` until fetched or after a reset. Held across the
    /// send of one transaction (never across waiting for it to be mined).
    nonce: tokio::sync::Mutex<Option<u64>>,
}

impl std::fmt::Debug for EvmRpcChain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EvmRpcChain")
            .field("url", &self.shown_url)
            .field("chain_id", &self.chain_id)
            .field("account", &self.account)
            .finish_non_exhaustive()
    }
}

impl EvmRpcChain {
    /// Connects to `url`, reads the chain id (refusing another than `expected_chain_id`)
    /// and whether the chain has EIP-1559 fees.
    pub async fn connect(
        url: &str,
        signer: PrivateKeySigner,
        expected_chain_id: Option<u64>,
    ) -> Result<Self, ChainError> {
        Self::connect_with_timeout(url, signer, expected_chain_id, Duration::from_secs(30)).await
    }

    /// [`EvmRpcChain::connect`] with a timeout for each HTTP request.
    pub async fn connect_with_timeout(
        url: &str,
        signer: PrivateKeySigner,
        expected_chain_id: Option<u64>,
        timeout: Duration,
    ) -> Result<Self, ChainError> {
        use alloy::transports::http::reqwest;
        let shown_url = redact_url(url);
        let parsed: reqwest::Url = url
            .parse()
            .map_err(|e| ChainError::Invalid(format!("evm-rpc: bad node URL {shown_url}: {e}")))?;
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| {
                ChainError::Invalid(format!("evm-rpc: cannot build the HTTP client: {e}"))
            })?;
        let provider = ProviderBuilder::new()
            .disable_recommended_fillers()
            .connect_reqwest(client, parsed);
        let got = provider
            .get_chain_id()
            .await
            .map_err(|e| map_err(&shown_url, "eth_chainId", e))?;
        if let Some(expected) = expected_chain_id {
            if expected != got {
                return Err(ChainError::ChainIdMismatch { expected, got });
            }
        }
        let latest = provider
            .get_block_by_number(BlockNumberOrTag::Latest)
            .await
            .map_err(|e| map_err(&shown_url, "eth_getBlockByNumber", e))?
            .ok_or_else(|| ChainError::BadResponse {
                method: "eth_getBlockByNumber".into(),
                reason: "no latest block".into(),
            })?;
        let eip1559 = latest.header.base_fee_per_gas.is_some();
        let account = signer.address();
        Ok(EvmRpcChain {
            provider,
            wallet: EthereumWallet::from(signer),
            account,
            chain_id: got,
            shown_url,
            eip1559,
            log_chunk: DEFAULT_LOG_CHUNK,
            gas_margin_percent: 20,
            nonce: tokio::sync::Mutex::new(None),
        })
    }

    /// Sets the largest block range of one `eth_getLogs` request (at least 1).
    pub fn with_log_chunk(mut self, blocks: u64) -> Self {
        self.log_chunk = blocks.max(1);
        self
    }

    /// Sets the margin added to gas estimates, in percent (default 20).
    pub fn with_gas_margin_percent(mut self, percent: u64) -> Self {
        self.gas_margin_percent = percent;
        self
    }

    /// True when transactions use EIP-1559 fees.
    pub fn uses_eip1559(&self) -> bool {
        self.eip1559
    }

    /// Forgets the managed nonce: the next submit asks the node for the `pending` count.
    /// Call it when a submitted transaction was dropped (never mined).
    pub async fn reset_nonce(&self) {
        *self.nonce.lock().await = None;
    }

    /// The nonce the next submit will use, if the handle has one.
    pub async fn next_nonce(&self) -> Option<u64> {
        *self.nonce.lock().await
    }

    /// The underlying alloy provider, for calls the trait does not cover.
    pub fn provider(&self) -> &RootProvider {
        &self.provider
    }

    fn err(&self, method: &str, e: RpcError<TransportErrorKind>) -> ChainError {
        map_err(&self.shown_url, method, e)
    }

    async fn pending_nonce(&self) -> Result<u64, ChainError> {
        self.provider
            .get_transaction_count(self.account)
            .pending()
            .await
            .map_err(|e| self.err("eth_getTransactionCount", e))
    }

    /// From, value, and the call or the creation: what a simulation and a send share.
    fn base_request(&self, tx: &TxRequest) -> TransactionRequest {
        let req = TransactionRequest::default()
            .with_from(self.account)
            .with_value(tx.value);
        match tx.to {
            Some(to) => req.with_to(to).with_input(tx.data.clone()),
            None => req.with_deploy_code(tx.data.clone()),
        }
    }

    /// The request without nonce: from, to or create, data, value, gas, fees, chain id.
    async fn prepare(&self, tx: &TxRequest) -> Result<TransactionRequest, ChainError> {
        let mut req = self.base_request(tx);
        let gas = match tx.gas_limit {
            Some(g) => g,
            None => {
                let estimate = self
                    .provider
                    .estimate_gas(req.clone())
                    .pending()
                    .await
                    .map_err(|e| {
                        let mut err = self.err("eth_estimateGas", e);
                        if let ChainError::Rpc { message, .. } = &mut err {
                            message.push_str(" (not sent: the node expects it to revert)");
                        }
                        err
                    })?;
                estimate.saturating_add(estimate.saturating_mul(self.gas_margin_percent) / 100)
            }
        };
        req = req.with_gas_limit(gas).with_chain_id(self.chain_id);
        if self.eip1559 {
            let fees = self
                .provider
                .estimate_eip1559_fees()
                .await
                .map_err(|e| self.err("eth_feeHistory", e))?;
            req = req
                .with_max_fee_per_gas(fees.max_fee_per_gas)
                .with_max_priority_fee_per_gas(fees.max_priority_fee_per_gas);
        } else {
            let price = self
                .provider
                .get_gas_price()
                .await
                .map_err(|e| self.err("eth_gasPrice", e))?;
            req = req.with_gas_price(price);
        }
        Ok(req)
    }

    /// Replays a reverted transaction with `eth_call` at its block to get the revert data.
    async fn revert_details(&self, tx_hash: B256, block: u64) -> Result<TxStatus, ChainError> {
        let Some(tx) = self
            .provider
            .get_transaction_by_hash(tx_hash)
            .await
            .map_err(|e| self.err("eth_getTransactionByHash", e))?
        else {
            return Ok(TxStatus::Reverted {
                data: None,
                message: Some("the node no longer has the transaction".into()),
            });
        };
        let mut req = TransactionRequest::default()
            .with_from(tx.inner.signer())
            .with_input(tx.input().clone())
            .with_value(tx.value())
            .with_gas_limit(tx.gas_limit());
        req = match tx.kind() {
            TxKind::Call(to) => req.with_to(to),
            TxKind::Create => req.with_kind(TxKind::Create),
        };
        match self.provider.call(req).block(BlockId::number(block)).await {
            Ok(_) => Ok(TxStatus::Reverted {
                data: None,
                message: Some(format!(
                    "the transaction reverted, but replaying it at block {block} did not"
                )),
            }),
            Err(RpcError::ErrorResp(p)) => {
                let data = p.as_revert_data();
                let message = match &data {
                    Some(d) if !d.is_empty() => Some(crate::client::describe_revert(d)),
                    _ => Some(p.message.to_string()),
                };
                Ok(TxStatus::Reverted { data, message })
            }
            Err(e) => match self.err("eth_call", e) {
                e @ ChainError::Unreachable { .. } => Err(e),
                other => Ok(TxStatus::Reverted {
                    data: None,
                    message: Some(format!("revert data unavailable: {other}")),
                }),
            },
        }
    }
}

/// What a `send` error means for the managed nonce.
enum SendFailure {
    /// The node already has this exact transaction.
    AlreadyKnown,
    /// The nonce was used by another transaction.
    NonceTooLow,
    /// Other failures.
    Other,
}

fn classify(err: &ChainError) -> SendFailure {
    match err {
        ChainError::Rpc { message, .. } => {
            let m = message.to_ascii_lowercase();
            if m.contains("already known")
                || m.contains("already imported")
                || m.contains("known transaction")
            {
                SendFailure::AlreadyKnown
            } else if m.contains("nonce too low") || m.contains("nonce is too low") {
                SendFailure::NonceTooLow
            } else {
                SendFailure::Other
            }
        }
        _ => SendFailure::Other,
    }
}

#[async_trait]
impl Chain for EvmRpcChain {
    fn chain_id(&self) -> u64 {
        self.chain_id
    }

    fn account(&self) -> Address {
        self.account
    }

    fn describe(&self) -> String {
        format!(
            "EVM JSON-RPC at {} (chain id {})",
            self.shown_url, self.chain_id
        )
    }

    async fn call(&self, to: Address, data: Bytes) -> Result<CallResult, ChainError> {
        let req = TransactionRequest::default()
            .with_from(self.account)
            .with_to(to)
            .with_input(data);
        match self.provider.call(req).block(BlockId::latest()).await {
            Ok(out) => Ok(CallResult::Success(out)),
            Err(RpcError::ErrorResp(p)) => match p.as_revert_data() {
                Some(data) => Ok(CallResult::Reverted(data)),
                None if p.message.contains("revert") => Ok(CallResult::Reverted(Bytes::new())),
                None => Err(ChainError::Rpc {
                    method: "eth_call".into(),
                    code: p.code,
                    message: p.message.to_string(),
                }),
            },
            Err(e) => Err(self.err("eth_call", e)),
        }
    }

    async fn simulate(&self, tx: &TxRequest) -> Result<CallResult, ChainError> {
        let mut req = self.base_request(tx);
        if let Some(g) = tx.gas_limit {
            req = req.with_gas_limit(g);
        }
        match self.provider.call(req).block(BlockId::pending()).await {
            Ok(out) => Ok(CallResult::Success(out)),
            Err(RpcError::ErrorResp(p)) => match p.as_revert_data() {
                Some(data) => Ok(CallResult::Reverted(data)),
                // "insufficient funds", "execution reverted" without data: it would fail too.
                None if p.message.contains("revert") || p.message.contains("insufficient") => Ok(
                    CallResult::Reverted(super::revert_data(p.message.to_string())),
                ),
                None => Err(ChainError::Rpc {
                    method: "eth_call".into(),
                    code: p.code,
                    message: p.message.to_string(),
                }),
            },
            Err(e) => Err(self.err("eth_call", e)),
        }
    }

    async fn is_pending(&self, tx_hash: B256) -> Result<bool, ChainError> {
        let tx = self
            .provider
            .get_transaction_by_hash(tx_hash)
            .await
            .map_err(|e| self.err("eth_getTransactionByHash", e))?;
        Ok(tx.is_some_and(|t| t.block_number.is_none()))
    }

    async fn submit(&self, tx: TxRequest) -> Result<B256, ChainError> {
        let req = self.prepare(&tx).await?;
        let mut next = self.nonce.lock().await;
        let mut retried = false;
        loop {
            let nonce = match *next {
                Some(n) => n,
                None => self.pending_nonce().await?,
            };
            let envelope = req
                .clone()
                .with_nonce(nonce)
                .build(&self.wallet)
                .await
                .map_err(|e| {
                    ChainError::Invalid(format!("evm-rpc: cannot sign the transaction: {e}"))
                })?;
            let hash = *envelope.tx_hash();
            let raw = envelope.encoded_2718();
            match self.provider.send_raw_transaction(&raw).await {
                Ok(_) => {
                    *next = Some(nonce + 1);
                    return Ok(hash);
                }
                Err(e) => {
                    let err = self.err("eth_sendRawTransaction", e);
                    match classify(&err) {
                        SendFailure::AlreadyKnown => {
                            *next = Some(nonce + 1);
                            return Ok(hash);
                        }
                        SendFailure::NonceTooLow if !retried => {
                            tracing::debug!(nonce, "nonce too low; refetching the pending count");
                            retried = true;
                            *next = None;
                        }
                        _ => {
                            // The node may have taken it before the connection broke: ask again next time.
                            if err.is_transient() {
                                *next = None;
                            } else {
                                *next = Some(nonce);
                            }
                            return Err(err);
                        }
                    }
                }
            }
        }
    }

    async fn receipt(&self, tx_hash: B256) -> Result<Option<Receipt>, ChainError> {
        const M: &str = "eth_getTransactionReceipt";
        let Some(r) = self
            .provider
            .get_transaction_receipt(tx_hash)
            .await
            .map_err(|e| self.err(M, e))?
        else {
            return Ok(None);
        };
        // A receipt without a block is not mined yet.
        let Some(block_number) = r.block_number else {
            return Ok(None);
        };
        let status = if r.status() {
            TxStatus::Success
        } else {
            self.revert_details(tx_hash, block_number).await?
        };
        let logs = r.logs().iter().map(|l| l.inner.clone()).collect();
        Ok(Some(Receipt {
            tx_hash: r.transaction_hash,
            block_number,
            gas_used: r.gas_used,
            status,
            logs,
            contract_address: r.contract_address,
        }))
    }

    async fn logs(&self, filter: &LogFilter) -> Result<Vec<ChainLog>, ChainError> {
        const M: &str = "eth_getLogs";
        if filter.topics.iter().skip(4).any(Option::is_some) {
            return Err(ChainError::Invalid(
                "evm-rpc: a log has at most four topics".into(),
            ));
        }
        let to = match filter.to_block {
            Some(t) => t,
            None => self
                .provider
                .get_block_number()
                .await
                .map_err(|e| self.err("eth_blockNumber", e))?,
        };
        let mut base = Filter::new().address(filter.address);
        for (i, t) in filter.topics.iter().take(4).enumerate() {
            if let Some(t) = t {
                base.topics[i] = (*t).into();
            }
        }
        let mut out = Vec::new();
        let mut start = filter.from_block;
        while start <= to {
            let end = start.saturating_add(self.log_chunk - 1).min(to);
            let f = base.clone().from_block(start).to_block(end);
            for l in self
                .provider
                .get_logs(&f)
                .await
                .map_err(|e| self.err(M, e))?
            {
                let missing = |what: &str| ChainError::BadResponse {
                    method: M.into(),
                    reason: format!("a log without {what}"),
                };
                out.push(ChainLog {
                    block_number: l.block_number.ok_or_else(|| missing("blockNumber"))?,
                    tx_hash: l
                        .transaction_hash
                        .ok_or_else(|| missing("transactionHash"))?,
                    log_index: l.log_index.ok_or_else(|| missing("logIndex"))?,
                    log: l.inner,
                });
            }
            if end == u64::MAX {
                break;
            }
            start = end + 1;
        }
        Ok(out)
    }

    async fn head(&self) -> Result<Head, ChainError> {
        const M: &str = "eth_getBlockByNumber";
        let b = self
            .provider
            .get_block_by_number(BlockNumberOrTag::Latest)
            .await
            .map_err(|e| self.err(M, e))?
            .ok_or_else(|| ChainError::BadResponse {
                method: M.into(),
                reason: "no latest block".into(),
            })?;
        Ok(Head {
            number: b.header.number,
            timestamp: b.header.timestamp,
        })
    }

    async fn balance(&self, who: Address) -> Result<U256, ChainError> {
        self.provider
            .get_balance(who)
            .latest()
            .await
            .map_err(|e| self.err("eth_getBalance", e))
    }

    fn poll_interval(&self) -> Duration {
        Duration::from_millis(200)
    }
}

/// Maps an alloy transport result: JSON-RPC errors to [`ChainError::Rpc`], a node that
/// cannot be reached (or answers 5xx/429) to the transient [`ChainError::Unreachable`].
fn map_err(endpoint: &str, method: &str, e: RpcError<TransportErrorKind>) -> ChainError {
    match e {
        RpcError::ErrorResp(p) => {
            // Nodes word a revert as "execution reverted: custom error 0x…"; say instead
            // what the escrow's error means, from its ABI.
            let message = match p.as_revert_data() {
                Some(data) if !data.is_empty() => format!(
                    "execution reverted: {}",
                    crate::client::describe_revert(&data)
                ),
                _ => p.message.to_string(),
            };
            ChainError::Rpc {
                method: method.into(),
                code: p.code,
                message,
            }
        }
        RpcError::Transport(kind) => match &kind {
            TransportErrorKind::HttpError(h)
                if (400..500).contains(&h.status) && h.status != 408 && h.status != 429 =>
            {
                ChainError::Http {
                    endpoint: endpoint.into(),
                    status: h.status,
                    body: h.body.chars().take(200).collect(),
                }
            }
            _ => ChainError::Unreachable {
                endpoint: endpoint.into(),
                reason: format!("{method}: {}", error_chain(&kind)),
            },
        },
        RpcError::NullResp => ChainError::BadResponse {
            method: method.into(),
            reason: "null result".into(),
        },
        RpcError::DeserError { err, text } => {
            let snippet: String = text.chars().take(200).collect();
            ChainError::BadResponse {
                method: method.into(),
                reason: format!("{err}: {snippet}"),
            }
        }
        RpcError::UnsupportedFeature(f) => ChainError::BadResponse {
            method: method.into(),
            reason: format!("unsupported feature {f}"),
        },
        other => ChainError::Invalid(format!("evm-rpc: {method}: {other}")),
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        let t = inner.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        src = inner.source();
    }
    s
}

/// A URL without its password, for messages and logs.
pub(crate) fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{scheme}://{user}:***@{host}{path}")
        }
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_lose_their_password() {
        assert_eq!(redact_url("http://127.0.0.1:8545"), "http://127.0.0.1:8545");
        assert_eq!(
            redact_url("http://u:secret@host:1/x"),
            "http://u:***@host:1/x"
        );
        assert_eq!(redact_url("https://u:p@ss@host"), "https://u:***@host");
    }

    fn rpc_error(code: i64, message: &str, data: Option<&str>) -> RpcError<TransportErrorKind> {
        let payload = serde_json::json!({"code": code, "message": message, "data": data});
        RpcError::ErrorResp(serde_json::from_str(&payload.to_string()).unwrap())
    }

    #[test]
    fn custom_errors_in_rpc_answers_are_decoded() {
        use crate::contract::EmailEscrow;
        use alloy::sol_types::SolError;
        let data = EmailEscrow::RefundNotAllowed {
            caller: Address::repeat_byte(0xca),
            expiry: alloy::primitives::Uint::from(1_800_000_000u64),
            nowTs: U256::from(1_700_000_000u64),
        }
        .abi_encode();
        let hex_data = format!("0x{}", hex::encode(&data));
        let e = map_err(
            "http://n",
            "eth_estimateGas",
            rpc_error(
                3,
                "execution reverted: custom error 0xed8f49f1",
                Some(&hex_data),
            ),
        );
        let text = e.to_string();
        assert!(!text.contains("ed8f49f1"), "{text}");
        assert!(
            text.contains("may not refund") && text.contains("2027-01-15"),
            "{text}"
        );
        // The watcher tells a refusal from a transient failure by "revert".
        assert!(text.contains("revert"), "{text}");
    }

    #[test]
    fn an_http_error_names_the_endpoint_and_asks_about_the_url() {
        let e = map_err(
            "http://host/nope",
            "eth_chainId",
            RpcError::Transport(TransportErrorKind::HttpError(
                alloy::transports::HttpError {
                    status: 404,
                    body: String::new(),
                },
            )),
        );
        let text = e.to_string();
        assert_eq!(
            text,
            "the RPC endpoint http://host/nope answered HTTP 404: is the URL right?"
        );
        assert!(!e.is_transient());
    }

    #[test]
    fn nonce_errors_are_classified() {
        let rpc = |m: &str| ChainError::Rpc {
            method: "x".into(),
            code: -32000,
            message: m.into(),
        };
        assert!(matches!(
            classify(&rpc("nonce too low")),
            SendFailure::NonceTooLow
        ));
        assert!(matches!(
            classify(&rpc("already known")),
            SendFailure::AlreadyKnown
        ));
        assert!(matches!(
            classify(&rpc("insufficient funds")),
            SendFailure::Other
        ));
    }
}
