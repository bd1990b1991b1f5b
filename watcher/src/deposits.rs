//! The deposit index: every deposit that names this watcher, rebuilt from the
//! escrow's `Deposited`, `Claimed` and `Refunded` logs, kept in the journal's SQLite
//! file next to the messages.
//!
//! Verification looks a claim's deposit up here (one primary-key read) instead of
//! asking the node for the stored hash and scanning its logs for every mail; a key
//! the index does not hold (another watcher's deposit, link mode, a deposit newer than
//! the cursor) falls back to the chain ([`springmail_sdk::client::SpringMail::status`]).
//! The index is a cache of what the logs say, never the last word: the submitter
//! re-reads the deposit on chain before it broadcasts anything, and the contract
//! checks the fields against the stored hash.
//!
//! * **Bounded ranges.** [`DepositIndex::catch_up`] reads logs from the cursor to the
//!   head in block ranges of at most [`IndexSettings::max_range`] blocks, starting
//!   small, halving the range when one answer carries more than
//!   [`IndexSettings::target_logs`] logs and doubling it while answers are small, so
//!   no single request (or the memory holding its answer) grows with the chain.
//! * **Persisted cursor.** Each range's rows and the next block to read are committed
//!   together (one write of the journal's writer thread), so a restart resumes where
//!   the last range ended; nothing is read twice and nothing skipped.
//! * **Small rows.** Only deposits naming this watcher are stored (about 170 bytes each
//!   with the key and the B-tree); nothing is held in memory but SQLite's page cache.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use alloy::primitives::{Address, B256};
use rusqlite::{params, Connection, OptionalExtension};
use springmail_sdk::chain::{ChainError, LogFilter};
use springmail_sdk::client::{EscrowEvent, SpringMail};
use springmail_sdk::deposit::Deposit;

use crate::journal::{Journal, JournalError};

/// Where the next block to read is kept (the `meta` table).
const CURSOR_KEY: &str = "deposits.next_block";

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS deposits (
    claim_key BLOB PRIMARY KEY,
    state     INTEGER NOT NULL,
    block     INTEGER NOT NULL,
    deposit   BLOB NOT NULL,
    tx_hash   BLOB
) WITHOUT ROWID;
"#;

/// A stored row: state, block, deposit bytes, transaction hash.
type Row = (i64, i64, Vec<u8>, Option<Vec<u8>>);

const OPEN: i64 = 0;
const CLAIMED: i64 = 1;
const REFUNDED: i64 = 2;

/// Index tuning.
#[derive(Debug, Clone)]
pub struct IndexSettings {
    /// The block range of the first log request; it grows from there while answers
    /// are small (starting small keeps the first answer small on a dense chain).
    pub initial_range: u64,
    /// The largest block range of one log request.
    pub max_range: u64,
    /// The range shrinks while answers carry more logs than this, and grows while they
    /// carry fewer than a quarter of it.
    pub target_logs: usize,
    /// Blocks behind the head that are not indexed yet (0 on an instant-finality dev
    /// chain; a few on a chain that reorganizes).
    pub confirmations: u64,
}

impl Default for IndexSettings {
    fn default() -> Self {
        IndexSettings {
            initial_range: 16,
            max_range: springmail_sdk::client::LOG_RANGE,
            target_logs: 5_000,
            confirmations: 0,
        }
    }
}

/// A failure to bring the index up to date (the index keeps what it has).
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    /// The chain could not be read.
    #[error("reading the escrow's logs: {0}")]
    Chain(#[from] ChainError),
    /// The journal failed.
    #[error(transparent)]
    Journal(#[from] JournalError),
}

impl IndexError {
    /// True when a later attempt may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, IndexError::Chain(e) if e.is_transient())
    }
}

/// What the index knows about a claim key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Indexed {
    /// Deposited and neither claimed nor refunded (as of the cursor).
    Open {
        /// The deposit's fields from its `Deposited` log.
        deposit: Deposit,
        /// The block of that log.
        block: u64,
    },
    /// Paid out.
    Claimed {
        /// The `Claimed` log's transaction.
        tx_hash: B256,
        /// Its block.
        block: u64,
    },
    /// Returned to the sender.
    Refunded {
        /// The `Refunded` log's transaction.
        tx_hash: B256,
        /// Its block.
        block: u64,
    },
}

/// What one [`DepositIndex::catch_up`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CatchUp {
    /// Blocks read.
    pub blocks: u64,
    /// Escrow logs read.
    pub logs: u64,
    /// Deposits naming this watcher that were added.
    pub deposits: u64,
    /// Log requests made.
    pub requests: u64,
}

/// Counts of indexed deposits by state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IndexStats {
    /// Open.
    pub open: u64,
    /// Claimed.
    pub claimed: u64,
    /// Refunded.
    pub refunded: u64,
    /// The next block to read.
    pub next_block: u64,
}

/// The index of one escrow's deposits naming one watcher.
pub struct DepositIndex {
    journal: Arc<Journal>,
    client: SpringMail,
    watcher: Address,
    settings: IndexSettings,
    range: AtomicU64,
    catching_up: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for DepositIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DepositIndex")
            .field("watcher", &self.watcher)
            .field("settings", &self.settings)
            .finish()
    }
}

/// The stored deposit's length.
const ROW_BYTES: usize = 117;

/// Compact row encoding: sender, token, amount (16, BE), expiry (8, BE), flags,
/// watcher, recipient: [`ROW_BYTES`] bytes.
fn encode(d: &Deposit) -> [u8; ROW_BYTES] {
    let mut out = [0u8; ROW_BYTES];
    out[0..20].copy_from_slice(d.sender.as_slice());
    out[20..40].copy_from_slice(d.token.as_slice());
    out[40..56].copy_from_slice(&d.amount.to_be_bytes());
    out[56..64].copy_from_slice(&d.expiry.to_be_bytes());
    out[64] = d.flags;
    out[65..85].copy_from_slice(d.watcher.as_slice());
    out[85..117].copy_from_slice(d.recipient.as_slice());
    out
}

fn decode(b: &[u8]) -> Option<Deposit> {
    if b.len() != ROW_BYTES {
        return None;
    }
    Some(Deposit {
        sender: Address::from_slice(&b[0..20]),
        token: Address::from_slice(&b[20..40]),
        amount: u128::from_be_bytes(b[40..56].try_into().ok()?),
        expiry: u64::from_be_bytes(b[56..64].try_into().ok()?),
        flags: b[64],
        watcher: Address::from_slice(&b[65..85]),
        recipient: B256::from_slice(&b[85..117]),
    })
}

/// One row change of the index, read from the escrow's logs.
enum Change {
    Put {
        claim_key: Address,
        block: u64,
        deposit: [u8; ROW_BYTES],
    },
    Close {
        claim_key: Address,
        state: i64,
        block: u64,
        tx_hash: B256,
    },
}

/// Writes a range's changes and moves the cursor past it; returns the deposits added.
fn apply_changes(c: &Connection, changes: &[Change], cursor: &str) -> rusqlite::Result<u64> {
    let mut put = c.prepare_cached(
        "INSERT INTO deposits (claim_key, state, block, deposit, tx_hash) VALUES (?1, 0, ?2, ?3, NULL)
         ON CONFLICT (claim_key) DO UPDATE SET state = 0, block = excluded.block,
           deposit = excluded.deposit, tx_hash = NULL",
    )?;
    let mut close = c.prepare_cached(
        "UPDATE deposits SET state = ?2, block = ?3, tx_hash = ?4 WHERE claim_key = ?1",
    )?;
    let mut added = 0;
    for change in changes {
        match change {
            Change::Put {
                claim_key,
                block,
                deposit,
            } => {
                put.execute(params![claim_key.as_slice(), *block as i64, &deposit[..]])?;
                added += 1;
            }
            Change::Close {
                claim_key,
                state,
                block,
                tx_hash,
            } => {
                close.execute(params![
                    claim_key.as_slice(),
                    state,
                    *block as i64,
                    tx_hash.as_slice()
                ])?;
            }
        }
    }
    c.prepare_cached(
        "INSERT INTO meta (key, value) VALUES (?1, ?2)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
    )?
    .execute(params![CURSOR_KEY, cursor])?;
    Ok(added)
}

impl DepositIndex {
    /// The index of `client`'s escrow for `watcher`, stored in `journal` (the journal
    /// is bound to one chain, escrow and watcher, so the index is too).
    pub fn open(
        journal: Arc<Journal>,
        client: SpringMail,
        watcher: Address,
        settings: IndexSettings,
    ) -> Result<Self, JournalError> {
        journal.with_conn(|c| c.execute_batch(SCHEMA))?;
        let range = settings.initial_range.clamp(1, settings.max_range.max(1));
        Ok(DepositIndex {
            journal,
            client,
            watcher,
            settings,
            range: AtomicU64::new(range),
            catching_up: tokio::sync::Mutex::new(()),
        })
    }

    /// The next block [`DepositIndex::catch_up`] reads (the escrow's start block at first).
    pub fn next_block(&self) -> Result<u64, JournalError> {
        Ok(match self.journal.meta(CURSOR_KEY)? {
            Some(v) => v.parse().map_err(|e| JournalError::Corrupt {
                path: self.journal.path().to_path_buf(),
                what: "deposit index cursor",
                reason: format!("{v:?}: {e}"),
            })?,
            None => self.client.start_block(),
        })
    }

    /// Reads the escrow's logs from the cursor up to `head` (less the confirmations),
    /// in bounded ranges, committing each range with the moved cursor.
    pub async fn catch_up(&self, head: u64) -> Result<CatchUp, IndexError> {
        let _one = self.catching_up.lock().await;
        let mut done = CatchUp::default();
        let target = head.saturating_sub(self.settings.confirmations);
        let mut from = self.next_block()?;
        while from <= target {
            let range = self.range.load(Ordering::Relaxed).max(1);
            let to = from.saturating_add(range - 1).min(target);
            let logs = self
                .client
                .chain()
                .logs(&LogFilter {
                    address: self.client.escrow(),
                    topics: vec![],
                    from_block: from,
                    to_block: Some(to),
                })
                .await?;
            done.requests += 1;
            done.blocks += to - from + 1;
            done.logs += logs.len() as u64;
            let events: Vec<_> = logs
                .iter()
                .filter_map(|l| EscrowEvent::decode(&l.log).map(|e| (l, e)))
                .collect();
            // Written by the journal's writer thread, group-committed with the
            // pipeline's writes: no fsync blocks this task, and the writer's page cache
            // is not dropped for a write of the read connection.
            let (watcher, account) = (self.watcher, self.client.chain().account());
            let changes: Vec<Change> = events
                .iter()
                .filter_map(|(log, ev)| match ev {
                    // Deposits naming the watcher key (attested claims) or the account
                    // it sends from (self-submitted claims); never link mode.
                    EscrowEvent::Deposited { claim_key, deposit } => (!deposit.watcher.is_zero()
                        && (deposit.watcher == watcher || deposit.watcher == account))
                        .then(|| Change::Put {
                            claim_key: *claim_key,
                            block: log.block_number,
                            deposit: encode(deposit),
                        }),
                    EscrowEvent::Claimed { claim_key, .. } => Some(Change::Close {
                        claim_key: *claim_key,
                        state: CLAIMED,
                        block: log.block_number,
                        tx_hash: log.tx_hash,
                    }),
                    EscrowEvent::Refunded { claim_key, .. } => Some(Change::Close {
                        claim_key: *claim_key,
                        state: REFUNDED,
                        block: log.block_number,
                        tx_hash: log.tx_hash,
                    }),
                })
                .collect();
            let cursor = (to + 1).to_string();
            done.deposits += self
                .journal
                .commit(move |jtx| jtx.sql(|c| apply_changes(c, &changes, &cursor)))
                .await?;
            // Adapt the range to the density of the logs.
            let n = logs.len();
            let next = if n > self.settings.target_logs {
                (range / 2).max(1)
            } else if n < self.settings.target_logs / 4 {
                range.saturating_mul(2).min(self.settings.max_range.max(1))
            } else {
                range
            };
            self.range.store(next, Ordering::Relaxed);
            if to == u64::MAX {
                break;
            }
            from = to + 1;
        }
        Ok(done)
    }

    /// What the index holds for `claim_key` (`None`: not a deposit of this watcher, as
    /// far as the logs up to the cursor say).
    pub fn get(&self, claim_key: Address) -> Result<Option<Indexed>, JournalError> {
        let row: Option<Row> = self.journal.with_conn(|c| {
            c.prepare_cached(
                "SELECT state, block, deposit, tx_hash FROM deposits WHERE claim_key = ?1",
            )?
            .query_row(params![claim_key.as_slice()], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
            })
            .optional()
        })?;
        let Some((state, block, deposit, tx_hash)) = row else {
            return Ok(None);
        };
        let corrupt = |reason: String| JournalError::Corrupt {
            path: self.journal.path().to_path_buf(),
            what: "deposit index row",
            reason,
        };
        let block = block as u64;
        let tx = || {
            tx_hash
                .as_deref()
                .filter(|h| h.len() == 32)
                .map(B256::from_slice)
                .ok_or_else(|| corrupt(format!("{claim_key}: no transaction hash")))
        };
        Ok(Some(match state {
            OPEN => Indexed::Open {
                deposit: decode(&deposit)
                    .ok_or_else(|| corrupt(format!("{claim_key}: bad deposit bytes")))?,
                block,
            },
            CLAIMED => Indexed::Claimed {
                tx_hash: tx()?,
                block,
            },
            REFUNDED => Indexed::Refunded {
                tx_hash: tx()?,
                block,
            },
            other => return Err(corrupt(format!("{claim_key}: state {other}"))),
        }))
    }

    /// Counts by state and the cursor.
    pub fn stats(&self) -> Result<IndexStats, JournalError> {
        let next_block = self.next_block()?;
        let counts = self.journal.with_conn(|c| {
            let mut s = c.prepare_cached("SELECT state, COUNT(*) FROM deposits GROUP BY state")?;
            let rows = s.query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)))?;
            rows.collect::<Result<Vec<_>, _>>()
        })?;
        let mut st = IndexStats {
            next_block,
            ..Default::default()
        };
        for (state, n) in counts {
            match state {
                OPEN => st.open = n as u64,
                CLAIMED => st.claimed = n as u64,
                REFUNDED => st.refunded = n as u64,
                _ => {}
            }
        }
        Ok(st)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy::primitives::U256;
    use springmail_sdk::chain::embedded::EmbeddedChain;
    use springmail_sdk::chain::Chain;
    use springmail_sdk::client::SendRequest;

    #[test]
    fn rows_round_trip() {
        let d = Deposit {
            sender: Address::repeat_byte(1),
            token: Address::repeat_byte(2),
            amount: u128::from(u64::MAX) * 3,
            expiry: 1_767_225_600,
            flags: 1,
            watcher: Address::repeat_byte(3),
            recipient: B256::repeat_byte(4),
        };
        assert_eq!(decode(&encode(&d)), Some(d));
        assert_eq!(decode(&[0u8; 116]), None);
    }

    #[tokio::test]
    async fn the_index_follows_deposits_claims_and_refunds_in_small_ranges_and_resumes() {
        let chain = EmbeddedChain::new(8890);
        let alice = Address::repeat_byte(0xa1);
        chain.fund(alice, U256::from(100_000_000_000u64));
        let sender = SpringMail::deploy(Arc::new(chain.as_account(alice)))
            .await
            .unwrap();
        let watcher_key = springmail_sdk::keys::ClaimSecret::random();
        let watcher = watcher_key.address();
        // The account the watcher sends from: deposits naming it are its own too.
        let own = Address::repeat_byte(0x77);
        let mut tickets = Vec::new();
        for i in 0..6 {
            let mut req = SendRequest::native(
                "bob@example.com",
                springmail_sdk::amount::Amount::from_units(
                    1_000_000,
                    springmail_sdk::amount::Asset::qtum(),
                )
                .unwrap(),
                std::time::Duration::from_secs(86_400),
            );
            // One deposit in link mode and one for another watcher: not indexed.
            req.watcher = Some(match i {
                0 => Address::ZERO,
                1 => Address::repeat_byte(0x66),
                5 => own,
                _ => watcher,
            });
            req.cancellable = true;
            tickets.push(sender.send(req).await.unwrap());
        }
        // Claim one of ours (with the watcher's attestation), refund another.
        let t = &tickets[3];
        let now = chain.head().await.unwrap().timestamp;
        let signed = sender
            .sign_claim(
                &t.link,
                &t.deposit,
                Address::repeat_byte(0xb0),
                0,
                now + 3600,
            )
            .unwrap();
        let att = signed.auth.sign_attest(sender.escrow_id(), &watcher_key);
        let receipt = sender
            .submit_claim(&t.deposit, &signed, 0, att.to_bytes())
            .await
            .unwrap();
        assert!(receipt.succeeded());
        sender.refund(tickets[4].link.claim_key()).await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let journal = Arc::new(Journal::open_in(dir.path()).unwrap());
        let head = chain.head().await.unwrap().number;
        let settings = IndexSettings {
            initial_range: 1,
            max_range: 2,
            target_logs: 1,
            confirmations: 0,
        };
        let index = DepositIndex::open(
            journal.clone(),
            SpringMail::new(Arc::new(chain.as_account(own)), sender.escrow())
                .with_start_block(sender.start_block()),
            watcher,
            settings.clone(),
        )
        .unwrap();
        // Stop half way: the cursor is persisted.
        let half = sender.start_block() + (head - sender.start_block()) / 2;
        index.catch_up(half).await.unwrap();
        assert_eq!(index.next_block().unwrap(), half + 1);
        drop(index);
        let index = DepositIndex::open(
            journal,
            SpringMail::new(Arc::new(chain.as_account(own)), sender.escrow())
                .with_start_block(sender.start_block()),
            watcher,
            settings,
        )
        .unwrap();
        let done = index.catch_up(head).await.unwrap();
        assert!(done.requests >= 2, "{done:?}");
        assert_eq!(index.next_block().unwrap(), head + 1);
        assert_eq!(index.get(tickets[0].link.claim_key()).unwrap(), None);
        assert_eq!(index.get(tickets[1].link.claim_key()).unwrap(), None);
        assert!(matches!(
            index.get(tickets[2].link.claim_key()).unwrap(),
            Some(Indexed::Open { deposit, .. }) if deposit == tickets[2].deposit
        ));
        assert!(matches!(
            index.get(tickets[3].link.claim_key()).unwrap(),
            Some(Indexed::Claimed { tx_hash, .. }) if tx_hash == receipt.tx_hash
        ));
        assert!(matches!(
            index.get(tickets[4].link.claim_key()).unwrap(),
            Some(Indexed::Refunded { .. })
        ));
        let stats = index.stats().unwrap();
        assert!(matches!(
            index.get(tickets[5].link.claim_key()).unwrap(),
            Some(Indexed::Open { deposit, .. }) if deposit.watcher == own
        ));
        assert_eq!((stats.open, stats.claimed, stats.refunded), (2, 1, 1));
        // Nothing new: no request beyond the head.
        assert_eq!(index.catch_up(head).await.unwrap().requests, 0);
    }
}
