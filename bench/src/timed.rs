//! A [`Chain`] wrapper that notes when each claim transaction was accepted by the
//! node: the instant `submit` returned its hash (anvil with automine has mined it by
//! then), by claim key, read from the calldata. The watcher runs unchanged on top.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use alloy::primitives::{Address, Bytes, B256, U256};
use alloy::sol_types::SolCall;
use async_trait::async_trait;
use springmail_sdk::chain::{
    CallResult, Chain, ChainError, ChainLog, Head, LogFilter, Receipt, TxRequest,
};
use springmail_sdk::contract::EmailEscrow;
use tokio::sync::Notify;

/// Claim submissions seen, shared with the benchmark.
#[derive(Debug, Default)]
pub struct Submissions {
    /// Claim key → instants its claim transactions were accepted (more than one
    /// would be a double submission).
    pub at: Mutex<HashMap<Address, Vec<Instant>>>,
    /// Notified on every accepted claim.
    pub notify: Notify,
}

impl Submissions {
    /// When the claim for `key` was first accepted.
    pub fn first(&self, key: &Address) -> Option<Instant> {
        self.at
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(key)
            .and_then(|v| v.first().copied())
    }

    /// Claim transactions accepted so far (all keys).
    pub fn count(&self) -> usize {
        self.at
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .map(Vec::len)
            .sum()
    }

    /// Keys with more than one accepted claim transaction.
    pub fn repeated(&self) -> usize {
        self.at
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .filter(|v| v.len() > 1)
            .count()
    }
}

/// The wrapper.
pub struct TimedChain {
    inner: Arc<dyn Chain>,
    seen: Arc<Submissions>,
}

impl TimedChain {
    /// Wraps `inner`, recording into `seen`.
    pub fn new(inner: Arc<dyn Chain>, seen: Arc<Submissions>) -> Self {
        TimedChain { inner, seen }
    }
}

#[async_trait]
impl Chain for TimedChain {
    fn chain_id(&self) -> u64 {
        self.inner.chain_id()
    }
    fn account(&self) -> Address {
        self.inner.account()
    }
    fn describe(&self) -> String {
        self.inner.describe()
    }
    async fn call(&self, to: Address, data: Bytes) -> Result<CallResult, ChainError> {
        self.inner.call(to, data).await
    }
    async fn simulate(&self, tx: &TxRequest) -> Result<CallResult, ChainError> {
        self.inner.simulate(tx).await
    }
    async fn is_pending(&self, tx_hash: B256) -> Result<bool, ChainError> {
        self.inner.is_pending(tx_hash).await
    }
    async fn submit(&self, tx: TxRequest) -> Result<B256, ChainError> {
        // The claim keys this transaction claims: one, or a claimBatch's.
        let keys: Vec<Address> = match EmailEscrow::claimCall::abi_decode(&tx.data) {
            Ok(c) => vec![c.claimKey],
            Err(_) => EmailEscrow::claimBatchCall::abi_decode(&tx.data)
                .map(|b| b.claims.iter().map(|a| a.claimKey).collect())
                .unwrap_or_default(),
        };
        let r = self.inner.submit(tx).await;
        if r.is_ok() && !keys.is_empty() {
            let now = Instant::now();
            let mut at = self.seen.at.lock().unwrap_or_else(|p| p.into_inner());
            for key in keys {
                at.entry(key).or_default().push(now);
            }
            drop(at);
            self.seen.notify.notify_waiters();
        }
        r
    }
    async fn receipt(&self, tx_hash: B256) -> Result<Option<Receipt>, ChainError> {
        self.inner.receipt(tx_hash).await
    }
    async fn logs(&self, filter: &LogFilter) -> Result<Vec<ChainLog>, ChainError> {
        self.inner.logs(filter).await
    }
    async fn head(&self) -> Result<Head, ChainError> {
        self.inner.head().await
    }
    async fn balance(&self, who: Address) -> Result<U256, ChainError> {
        self.inner.balance(who).await
    }
    fn poll_interval(&self) -> std::time::Duration {
        self.inner.poll_interval()
    }
}

/// When each claim reached the watcher: a [`MailSource`] wrapper noting, per claim
/// key (read from the `Claim-Key:` line of the fetched bytes), the instant the fetch
/// that brought it returned.
pub struct TimedSource {
    inner: Box<dyn springmail_watcher::ingest::MailSource>,
    /// Claim key → when it was fetched.
    pub fetched: Arc<Mutex<HashMap<Address, Instant>>>,
}

impl TimedSource {
    /// Wraps `inner`.
    pub fn new(inner: Box<dyn springmail_watcher::ingest::MailSource>) -> Self {
        TimedSource {
            inner,
            fetched: Arc::default(),
        }
    }
}

fn claim_key_in(raw: &[u8]) -> Option<Address> {
    let needle = b"Claim-Key: 0x";
    let at = raw.windows(needle.len()).position(|w| w == needle)? + needle.len();
    let hex = std::str::from_utf8(raw.get(at..at + 40)?).ok()?;
    format!("0x{hex}").parse().ok()
}

#[async_trait]
impl springmail_watcher::ingest::MailSource for TimedSource {
    fn mailbox(&self) -> &str {
        self.inner.mailbox()
    }
    fn describe(&self) -> String {
        self.inner.describe()
    }
    async fn fetch_new(
        &mut self,
        after: Option<springmail_watcher::journal::Checkpoint>,
        limits: springmail_watcher::ingest::FetchLimits,
    ) -> Result<springmail_watcher::ingest::FetchBatch, springmail_watcher::ingest::IngestError>
    {
        let batch = self.inner.fetch_new(after, limits).await?;
        let now = Instant::now();
        let mut map = self.fetched.lock().unwrap_or_else(|p| p.into_inner());
        for m in &batch.mails {
            if let Some(key) = m.raw.as_deref().and_then(claim_key_in) {
                map.entry(key).or_insert(now);
            }
        }
        Ok(batch)
    }
    async fn file(
        &mut self,
        key: &springmail_watcher::journal::MailKey,
        folder: springmail_watcher::journal::Folder,
    ) -> Result<(), springmail_watcher::ingest::IngestError> {
        self.inner.file(key, folder).await
    }
    async fn wait(
        &mut self,
        max: std::time::Duration,
        wake: &Notify,
    ) -> Result<(), springmail_watcher::ingest::IngestError> {
        self.inner.wait(max, wake).await
    }
}
