//! A chain that answers at once: the escrow's storage and logs kept in maps, claims
//! applied without running an EVM. It stands in for the node when a benchmark
//! measures the watcher and not the chain ("chain submission excluded"): every read
//! the watcher makes is answered from memory in microseconds, every claim is
//! "mined" as it is submitted.
//!
//! It checks what the contract checks about the deposit (the stored hash matches the
//! fields, the slot is open) and emits `Claimed` like the contract; it does not check
//! signatures (the watcher already did, and the contract's own checks are covered by
//! the sdk's tests on anvil).

use std::collections::HashMap;
use std::sync::Mutex;

use alloy::primitives::{keccak256, Address, Bytes, FixedBytes, Log, B256, U256};
use alloy::sol_types::{SolCall, SolError, SolEvent};
use async_trait::async_trait;
use springmail_sdk::chain::{
    CallResult, Chain, ChainError, ChainLog, Head, LogFilter, Receipt, TxRequest, TxStatus,
};
use springmail_sdk::contract::EmailEscrow;
use springmail_sdk::deposit::Deposit;

#[derive(Default)]
struct State {
    number: u64,
    timestamp: u64,
    stored: HashMap<Address, B256>,
    logs: Vec<ChainLog>,
    by_key: HashMap<Address, Vec<usize>>,
    receipts: HashMap<B256, Receipt>,
    txs: u64,
    claims: u64,
}

/// The escrow on an instant chain. Clones share it.
#[derive(Clone)]
pub struct InstantChain {
    state: std::sync::Arc<Mutex<State>>,
    chain_id: u64,
    escrow: Address,
    account: Address,
}

impl std::fmt::Debug for InstantChain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InstantChain")
            .field("escrow", &self.escrow)
            .finish()
    }
}

impl InstantChain {
    /// An empty chain at block `number`, time `timestamp`.
    pub fn new(
        chain_id: u64,
        escrow: Address,
        account: Address,
        number: u64,
        timestamp: u64,
    ) -> Self {
        InstantChain {
            state: std::sync::Arc::new(Mutex::new(State {
                number,
                timestamp,
                ..Default::default()
            })),
            chain_id,
            escrow,
            account,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn push_log(st: &mut State, key: Address, log: Log, block: u64) {
        st.txs += 1;
        let tx_hash = keccak256(st.txs.to_be_bytes());
        let idx = st.logs.len();
        st.logs.push(ChainLog {
            block_number: block,
            tx_hash,
            log_index: 0,
            log,
        });
        st.by_key.entry(key).or_default().push(idx);
    }

    /// Records deposits as if made in consecutive blocks, `per_block` to a block.
    pub fn add_deposits<'a>(
        &self,
        deposits: impl IntoIterator<Item = (Address, &'a Deposit)>,
        per_block: usize,
    ) {
        let mut st = self.lock();
        let mut in_block = 0;
        st.number += 1;
        for (key, d) in deposits {
            if in_block == per_block.max(1) {
                st.number += 1;
                in_block = 0;
            }
            in_block += 1;
            let ev = EmailEscrow::Deposited {
                claimKey: key,
                sender: d.sender,
                deposit: d.to_sol(),
            };
            let log = Log {
                address: self.escrow,
                data: ev.encode_log_data(),
            };
            st.stored.insert(key, d.hash());
            let block = st.number;
            Self::push_log(&mut st, key, log, block);
        }
    }

    /// Claims applied so far.
    pub fn claims(&self) -> u64 {
        self.lock().claims
    }

    /// The newest block number.
    pub fn head_number(&self) -> u64 {
        self.lock().number
    }

    /// Pays an open deposit whose fields match, with its `Claimed` log; false (and
    /// nothing changed) otherwise.
    fn apply_claim(
        &self,
        st: &mut State,
        claim_key: Address,
        fields: &EmailEscrow::Deposit,
        to: Address,
        fee: u128,
        block: u64,
    ) -> bool {
        let d = Deposit::from_sol(fields);
        if st.stored.get(&claim_key) != Some(&d.hash()) {
            return false;
        }
        st.stored.remove(&claim_key);
        let ev = EmailEscrow::Claimed {
            claimKey: claim_key,
            to,
            amount: U256::from(d.amount - fee),
            fee: U256::from(fee),
            relayer: self.account,
        };
        let log = Log {
            address: self.escrow,
            data: ev.encode_log_data(),
        };
        Self::push_log(st, claim_key, log, block);
        st.claims += 1;
        true
    }

    /// A handle with another account (shares the chain).
    pub fn as_account(&self, account: Address) -> Self {
        InstantChain {
            account,
            ..self.clone()
        }
    }
}

#[async_trait]
impl Chain for InstantChain {
    fn chain_id(&self) -> u64 {
        self.chain_id
    }

    fn account(&self) -> Address {
        self.account
    }

    fn describe(&self) -> String {
        "instant in-memory escrow (benchmarks)".into()
    }

    async fn call(&self, to: Address, data: Bytes) -> Result<CallResult, ChainError> {
        if to != self.escrow {
            return Ok(CallResult::Reverted(Bytes::new()));
        }
        match EmailEscrow::depositsCall::abi_decode(&data) {
            Ok(c) => {
                let h = self
                    .lock()
                    .stored
                    .get(&c.claimKey)
                    .copied()
                    .unwrap_or_default();
                Ok(CallResult::Success(Bytes::from(h.0.to_vec())))
            }
            Err(_) => Ok(CallResult::Reverted(Bytes::new())),
        }
    }

    /// A claim of an open deposit with these fields succeeds; anything else reverts
    /// (what [`Chain::submit`] would do, without doing it).
    async fn simulate(&self, tx: &TxRequest) -> Result<CallResult, ChainError> {
        if let Ok(c) = EmailEscrow::claimCall::abi_decode(&tx.data) {
            let d = Deposit::from_sol(&c.d);
            let open = self.lock().stored.get(&c.claimKey) == Some(&d.hash());
            return Ok(if open {
                CallResult::Success(Bytes::new())
            } else {
                CallResult::Reverted(Bytes::new())
            });
        }
        if let Ok(c) = EmailEscrow::claimBatchCall::abi_decode(&tx.data) {
            // As the escrow: one reason per claim, zero when it would be paid.
            let st = self.lock();
            let mut taken = std::collections::HashSet::new();
            let reasons: Vec<FixedBytes<4>> = c
                .claims
                .iter()
                .map(|a| {
                    let open = st.stored.get(&a.claimKey) == Some(&Deposit::from_sol(&a.d).hash());
                    if open && taken.insert(a.claimKey) {
                        FixedBytes::ZERO
                    } else {
                        FixedBytes::from(EmailEscrow::UnknownDeposit::SELECTOR)
                    }
                })
                .collect();
            return Ok(CallResult::Success(Bytes::from(
                EmailEscrow::claimBatchCall::abi_encode_returns(&reasons),
            )));
        }
        match tx.to {
            Some(to) => self.call(to, tx.data.clone()).await,
            None => Ok(CallResult::Success(Bytes::new())),
        }
    }

    async fn submit(&self, tx: TxRequest) -> Result<B256, ChainError> {
        let mut st = self.lock();
        st.txs += 1;
        let tx_hash = keccak256([b"tx".as_slice(), &st.txs.to_be_bytes()].concat());
        st.number += 1;
        let block = st.number;
        let mut status = TxStatus::Reverted {
            data: None,
            message: Some("not a claim of an open deposit".into()),
        };
        if let Ok(c) = EmailEscrow::claimCall::abi_decode(&tx.data) {
            if self.apply_claim(&mut st, c.claimKey, &c.d, c.to, c.fee.to(), block) {
                status = TxStatus::Success;
            }
        } else if let Ok(c) = EmailEscrow::claimBatchCall::abi_decode(&tx.data) {
            // The escrow skips what it cannot pay and pays the rest.
            for a in &c.claims {
                self.apply_claim(&mut st, a.claimKey, &a.d, a.to, a.fee.to(), block);
            }
            status = TxStatus::Success;
        }
        st.receipts.insert(
            tx_hash,
            Receipt {
                tx_hash,
                block_number: block,
                gas_used: 73_000,
                status,
                logs: vec![],
                contract_address: None,
            },
        );
        Ok(tx_hash)
    }

    async fn receipt(&self, tx_hash: B256) -> Result<Option<Receipt>, ChainError> {
        Ok(self.lock().receipts.get(&tx_hash).cloned())
    }

    async fn logs(&self, filter: &LogFilter) -> Result<Vec<ChainLog>, ChainError> {
        let st = self.lock();
        let to = filter.to_block.unwrap_or(st.number);
        let matches = |l: &ChainLog| {
            l.block_number >= filter.from_block
                && l.block_number <= to
                && l.log.address == filter.address
                && filter.topics.iter().enumerate().all(|(i, t)| match t {
                    None => true,
                    Some(t) => l.log.topics().get(i) == Some(t),
                })
        };
        if let Some(Some(key)) = filter.topics.get(1) {
            let key = Address::from_word(*key);
            return Ok(st
                .by_key
                .get(&key)
                .map(|ix| {
                    ix.iter()
                        .map(|&i| &st.logs[i])
                        .filter(|l| matches(l))
                        .cloned()
                        .collect()
                })
                .unwrap_or_default());
        }
        // Logs are in block order: binary-search the range.
        let start = st
            .logs
            .partition_point(|l| l.block_number < filter.from_block);
        let end = st.logs.partition_point(|l| l.block_number <= to);
        Ok(st.logs[start..end.max(start)]
            .iter()
            .filter(|l| matches(l))
            .cloned()
            .collect())
    }

    async fn head(&self) -> Result<Head, ChainError> {
        let st = self.lock();
        Ok(Head {
            number: st.number,
            timestamp: st.timestamp,
        })
    }

    async fn balance(&self, _who: Address) -> Result<U256, ChainError> {
        Ok(U256::ZERO)
    }

    fn poll_interval(&self) -> std::time::Duration {
        std::time::Duration::from_millis(1)
    }
}
