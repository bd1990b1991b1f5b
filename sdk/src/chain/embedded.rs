//! An in-process EVM (revm) as a development chain: the demo's default and the fast
//! contract tests' chain. Every transaction is mined at once in a block of its own
//! (like anvil's automine). Accounts are funded by decree and send without signatures,
//! so it is only ever a development chain, and [`Chain::describe`] says so.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use alloy::primitives::{keccak256, Address, Bytes, B256, U256};
use async_trait::async_trait;
use revm::context::result::{ExecutionResult, Output};
use revm::context::{Context, TxEnv};
use revm::database::{CacheDB, EmptyDB};
use revm::primitives::hardfork::SpecId;
use revm::primitives::TxKind;
use revm::state::AccountInfo;
use revm::{DatabaseRef, ExecuteCommitEvm, ExecuteEvm, MainBuilder, MainContext};

use super::{
    CallResult, Chain, ChainError, ChainLog, Head, LogFilter, Receipt, TxRequest, TxStatus,
};

/// Gas limit of each embedded block and default transaction gas.
const BLOCK_GAS_LIMIT: u64 = 30_000_000;

struct State {
    db: CacheDB<EmptyDB>,
    chain_id: u64,
    number: u64,
    timestamp: u64,
    receipts: HashMap<B256, Receipt>,
    logs: Vec<ChainLog>,
}

/// A handle on the embedded chain that sends as one account. Clones and
/// [`EmbeddedChain::as_account`] handles share the same chain.
#[derive(Clone)]
pub struct EmbeddedChain {
    state: Arc<Mutex<State>>,
    account: Address,
}

impl std::fmt::Debug for EmbeddedChain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedChain")
            .field("account", &self.account)
            .finish()
    }
}

impl EmbeddedChain {
    /// A fresh chain with the given id, its clock starting at the wall clock's now.
    pub fn new(chain_id: u64) -> Self {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(1_700_000_000);
        Self::with_genesis_time(chain_id, now)
    }

    /// A fresh chain whose genesis block has this timestamp (tests pin the clock).
    pub fn with_genesis_time(chain_id: u64, timestamp: u64) -> Self {
        EmbeddedChain {
            state: Arc::new(Mutex::new(State {
                db: CacheDB::new(EmptyDB::default()),
                chain_id,
                number: 0,
                timestamp,
                receipts: HashMap::new(),
                logs: Vec::new(),
            })),
            account: Address::ZERO,
        }
    }

    /// A handle on the same chain that sends as `account`.
    pub fn as_account(&self, account: Address) -> Self {
        EmbeddedChain {
            state: self.state.clone(),
            account,
        }
    }

    /// Adds `amount` base units to an account's native balance.
    pub fn fund(&self, who: Address, amount: U256) {
        let mut st = self.lock();
        let mut info = st.db.basic_ref(who).ok().flatten().unwrap_or_default();
        info.balance = info.balance.saturating_add(amount);
        st.db.insert_account_info(who, info);
    }

    /// Moves the clock forward; the next block is at least this much later.
    pub fn advance_time(&self, seconds: u64) {
        self.lock().timestamp += seconds;
    }

    /// Installs runtime code at an address (for precompile-like fixtures in tests).
    pub fn set_code(&self, at: Address, code: Bytes) {
        let mut st = self.lock();
        let mut info = st.db.basic_ref(at).ok().flatten().unwrap_or_default();
        info.code_hash = keccak256(&code);
        info.code = Some(revm::bytecode::Bytecode::new_raw(code));
        st.db.insert_account_info(at, info);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the state half-written: every
        // mutation below completes before the guard drops.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn tx_env(&self, st: &State, tx: &TxRequest, nonce: u64) -> Result<TxEnv, ChainError> {
        let kind = match tx.to {
            Some(to) => TxKind::Call(to),
            None => TxKind::Create,
        };
        TxEnv::builder()
            .caller(self.account)
            .kind(kind)
            .data(tx.data.clone())
            .value(tx.value)
            .gas_limit(tx.gas_limit.unwrap_or(BLOCK_GAS_LIMIT))
            .gas_price(0)
            .nonce(nonce)
            .chain_id(Some(st.chain_id))
            .build()
            .map_err(|e| ChainError::Invalid(format!("bad transaction: {e:?}")))
    }

    fn context(
        st: &mut State,
        number: u64,
        timestamp: u64,
    ) -> Context<revm::context::BlockEnv, TxEnv, revm::context::CfgEnv, CacheDB<EmptyDB>> {
        let db = std::mem::replace(&mut st.db, CacheDB::new(EmptyDB::default()));
        let chain_id = st.chain_id;
        Context::mainnet()
            .modify_cfg_chained(|c| {
                c.set_spec_and_mainnet_gas_params(SpecId::SHANGHAI);
                c.chain_id = chain_id;
                c.disable_base_fee = true;
            })
            .modify_block_chained(|b| {
                b.number = U256::from(number);
                b.timestamp = U256::from(timestamp);
                b.gas_limit = BLOCK_GAS_LIMIT;
                b.basefee = 0;
            })
            .with_db(db)
    }
}

fn nonce_of(db: &CacheDB<EmptyDB>, who: Address) -> u64 {
    db.basic_ref(who)
        .ok()
        .flatten()
        .map(|i: AccountInfo| i.nonce)
        .unwrap_or(0)
}

#[async_trait]
impl Chain for EmbeddedChain {
    fn chain_id(&self) -> u64 {
        self.lock().chain_id
    }

    fn account(&self) -> Address {
        self.account
    }

    fn describe(&self) -> String {
        format!(
            "embedded development chain (revm, chain id {}), not a real network",
            self.chain_id()
        )
    }

    async fn call(&self, to: Address, data: Bytes) -> Result<CallResult, ChainError> {
        let mut st = self.lock();
        let nonce = nonce_of(&st.db, self.account);
        let tx = self.tx_env(
            &st,
            &TxRequest {
                to: Some(to),
                data,
                ..Default::default()
            },
            nonce,
        )?;
        let (number, timestamp) = (st.number, st.timestamp);
        let mut evm = Self::context(&mut st, number, timestamp).build_mainnet();
        let res = evm.transact(tx);
        st.db = std::mem::replace(
            &mut evm.ctx.journaled_state.database,
            CacheDB::new(EmptyDB::default()),
        );
        let res = res.map_err(|e| ChainError::Invalid(format!("call rejected: {e:?}")))?;
        Ok(match res.result {
            ExecutionResult::Success { output, .. } => CallResult::Success(output.into_data()),
            ExecutionResult::Revert { output, .. } => CallResult::Reverted(output),
            ExecutionResult::Halt { reason, .. } => {
                CallResult::Reverted(Bytes::from(format!("halt: {reason:?}").into_bytes()))
            }
        })
    }

    /// Runs the transaction as the next block would (number and time one past the head),
    /// then throws the state away.
    async fn simulate(&self, tx: &TxRequest) -> Result<CallResult, ChainError> {
        let mut st = self.lock();
        let nonce = nonce_of(&st.db, self.account);
        let env = self.tx_env(&st, tx, nonce)?;
        let (number, timestamp) = (st.number + 1, st.timestamp + 1);
        let mut evm = Self::context(&mut st, number, timestamp).build_mainnet();
        let res = evm.transact(env);
        st.db = std::mem::replace(
            &mut evm.ctx.journaled_state.database,
            CacheDB::new(EmptyDB::default()),
        );
        Ok(match res {
            // Rejected before running (e.g. too little balance for the value): it would fail.
            Err(e) => CallResult::Reverted(super::revert_data(format!("rejected: {e:?}"))),
            Ok(r) => match r.result {
                ExecutionResult::Success { output, .. } => CallResult::Success(output.into_data()),
                ExecutionResult::Revert { output, .. } => CallResult::Reverted(output),
                ExecutionResult::Halt { reason, .. } => {
                    CallResult::Reverted(super::revert_data(format!("halt: {reason:?}")))
                }
            },
        })
    }

    async fn submit(&self, tx: TxRequest) -> Result<B256, ChainError> {
        let mut st = self.lock();
        let nonce = nonce_of(&st.db, self.account);
        let env = self.tx_env(&st, &tx, nonce)?;
        let number = st.number + 1;
        let timestamp = st.timestamp + 1;
        let mut evm = Self::context(&mut st, number, timestamp).build_mainnet();
        let res = evm.transact_commit(env);
        st.db = std::mem::replace(
            &mut evm.ctx.journaled_state.database,
            CacheDB::new(EmptyDB::default()),
        );
        let result = res.map_err(|e| ChainError::Rpc {
            method: "submit".into(),
            code: -32000,
            message: format!("transaction rejected: {e:?}"),
        })?;
        st.number = number;
        st.timestamp = timestamp;
        let mut id = Vec::with_capacity(72);
        id.extend_from_slice(&st.chain_id.to_be_bytes());
        id.extend_from_slice(self.account.as_slice());
        id.extend_from_slice(&nonce.to_be_bytes());
        id.extend_from_slice(keccak256(&tx.data).as_slice());
        let tx_hash = keccak256(&id);
        let gas_used = result.tx_gas_used();
        let (status, logs, contract_address) = match result {
            ExecutionResult::Success { logs, output, .. } => {
                let created = match output {
                    Output::Create(_, addr) => addr,
                    Output::Call(_) => None,
                };
                (TxStatus::Success, logs, created)
            }
            ExecutionResult::Revert { output, .. } => (
                TxStatus::Reverted {
                    data: Some(output),
                    message: None,
                },
                Vec::new(),
                None,
            ),
            ExecutionResult::Halt { reason, .. } => (
                TxStatus::Reverted {
                    data: None,
                    message: Some(format!("halted: {reason:?}")),
                },
                Vec::new(),
                None,
            ),
        };
        let base = st.logs.len() as u64;
        for (i, log) in logs.iter().enumerate() {
            st.logs.push(ChainLog {
                block_number: number,
                tx_hash,
                log_index: base + i as u64,
                log: log.clone(),
            });
        }
        st.receipts.insert(
            tx_hash,
            Receipt {
                tx_hash,
                block_number: number,
                gas_used,
                status,
                logs,
                contract_address,
            },
        );
        Ok(tx_hash)
    }

    async fn receipt(&self, tx_hash: B256) -> Result<Option<Receipt>, ChainError> {
        Ok(self.lock().receipts.get(&tx_hash).cloned())
    }

    async fn logs(&self, filter: &LogFilter) -> Result<Vec<ChainLog>, ChainError> {
        let st = self.lock();
        let to = filter.to_block.unwrap_or(u64::MAX);
        Ok(st
            .logs
            .iter()
            .filter(|l| l.block_number >= filter.from_block && l.block_number <= to)
            .filter(|l| l.log.address == filter.address)
            .filter(|l| {
                filter.topics.iter().enumerate().all(|(i, t)| match t {
                    None => true,
                    Some(t) => l.log.topics().get(i) == Some(t),
                })
            })
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

    async fn balance(&self, who: Address) -> Result<U256, ChainError> {
        let st = self.lock();
        Ok(st
            .db
            .basic_ref(who)
            .ok()
            .flatten()
            .map(|i| i.balance)
            .unwrap_or_default())
    }

    fn poll_interval(&self) -> std::time::Duration {
        std::time::Duration::from_millis(1)
    }
}
