//! The high-level client: deposit to an email address, sign and submit claims, refund,
//! and read a deposit's status back from the chain.
//!
//! ```
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! use std::sync::Arc;
//! use std::time::Duration;
//! use springmail_sdk::amount::{Amount, Asset};
//! use springmail_sdk::chain::embedded::EmbeddedChain;
//! use springmail_sdk::client::{DepositStatus, SendRequest, SpringMail};
//! use springmail_sdk::{Address, U256};
//!
//! // A development chain with a funded sender.
//! let chain = EmbeddedChain::new(8890);
//! let alice = Address::repeat_byte(0xa1);
//! chain.fund(alice, U256::from(10_000_000_000u64));
//! let client = SpringMail::deploy(Arc::new(chain.as_account(alice))).await.unwrap();
//!
//! // 1.5 QTUM to bob@example.com, claimable with the link alone (no watcher).
//! let amount = Amount::parse("1.5 QTUM", &Asset::qtum()).unwrap();
//! let month = Duration::from_secs(30 * 24 * 3600);
//! let ticket = client
//!     .send(SendRequest::native("bob@example.com", amount, month))
//!     .await
//!     .unwrap();
//!
//! // Bob, with the link and a funded key of his own, claims to his address.
//! let bob = Address::repeat_byte(0xb0);
//! chain.fund(bob, U256::from(1_000_000u64));
//! let bobs = SpringMail::new(Arc::new(chain.as_account(bob)), client.escrow());
//! bobs.claim_with_link(&ticket.link, bob).await.unwrap();
//! assert!(matches!(bobs.status(ticket.link.claim_key()).await.unwrap(), DepositStatus::Claimed { .. }));
//! # });
//! ```

use std::sync::Arc;
use std::time::Duration;

use alloy::primitives::{Address, Bytes, B256, U256};
use alloy::sol_types::{SolCall, SolError, SolEvent, SolInterface};

use crate::amount::Amount;
use crate::chain::{
    CallResult, Chain, ChainError, ChainLog, LogFilter, Receipt, TxRequest, TxStatus,
};
use crate::contract::EmailEscrow;
pub use crate::date::utc_date;
use crate::deposit::{Deposit, DepositError, MAX_TIMESTAMP};
use crate::eip712::{ClaimAuth, EscrowId};
use crate::email::{self, EmailError, Salt};
use crate::keys::{ClaimSecret, Signature};
use crate::link::ClaimLink;

/// Largest block range one log query covers; larger scans are split.
pub const LOG_RANGE: u64 = 10_000;

/// The gas limit of the escrow's deployment: its code is about 15 KB (200 gas a byte),
/// above qtumd's default `createcontract` limit of 2,500,000; it uses about 3.1 million.
pub const ESCROW_DEPLOY_GAS: u64 = 4_000_000;

/// How long the client waits for a transaction it sent to be mined.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(120);

/// What can go wrong in a client operation.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The chain backend failed (see [`ChainError::is_transient`]).
    #[error(transparent)]
    Chain(#[from] ChainError),
    /// The transaction was mined but reverted.
    #[error("{action} was refused by the escrow contract: {reason} (transaction {tx_hash})")]
    Reverted {
        action: &'static str,
        reason: String,
        tx_hash: B256,
    },
    /// The email address is not valid.
    #[error(transparent)]
    Email(#[from] EmailError),
    /// A deposit field is out of range.
    #[error(transparent)]
    Deposit(#[from] DepositError),
    /// No deposit was ever made with this claim key at this escrow.
    #[error("no deposit with claim key {claim_key} exists at escrow {escrow}")]
    NotFound { claim_key: Address, escrow: Address },
    /// The deposit exists but is no longer open.
    #[error("the deposit is {state}, so it cannot be {action}")]
    NotOpen {
        state: &'static str,
        action: &'static str,
    },
    /// The link is for another chain or escrow.
    #[error("the claim link is for chain {link_chain} escrow {link_escrow}, but this client is on chain {chain} escrow {escrow}")]
    WrongEscrow {
        link_chain: u64,
        link_escrow: Address,
        chain: u64,
        escrow: Address,
    },
    /// The deposit names a watcher, so a claim needs its attestation (claim by email).
    #[error("this deposit must be claimed through its watcher {watcher} (reply to the notification email)")]
    NeedsWatcher { watcher: Address },
    /// The deposit has expired.
    #[error("the deposit expired on {} (the chain's time is {}); it can no longer be claimed, but anyone can now return it to its sender", utc_date(*.expiry), utc_date(*.now))]
    Expired { expiry: u64, now: u64 },
    /// The chain answered something that does not decode.
    #[error("unexpected answer from the escrow contract: {0}")]
    Decode(String),
    /// The escrow address holds no contract: a call to it returned nothing.
    #[error("no escrow contract at {escrow} on chain {chain_id} (the address has no code)")]
    NoContract { escrow: Address, chain_id: u64 },
    /// The simulation of a transaction reverted, so it was not sent (no gas was spent).
    #[error("{action} would be refused: {reason} (simulated, nothing was sent)")]
    WouldRevert {
        action: &'static str,
        reason: String,
    },
    /// A transaction was broadcast but waiting for it failed: it may still be mined.
    #[error(
        "{action} was broadcast as transaction {tx_hash}, but waiting for it failed: {source}"
    )]
    Unconfirmed {
        action: &'static str,
        tx_hash: B256,
        source: ChainError,
    },
    /// The sender holds less of the token than the deposit needs.
    #[error(
        "the sender {sender} holds {have} base units of token {token}; the deposit needs {need}"
    )]
    InsufficientTokenBalance {
        token: Address,
        sender: Address,
        have: U256,
        need: u128,
    },
}

impl ClientError {
    /// True when retrying the same operation later may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, ClientError::Chain(e) if e.is_transient())
    }
}

/// A deposit to make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendRequest {
    /// The recipient's email address (normalized before committing).
    pub email: String,
    /// How much, in the asset's base units (the coin's, or the token's).
    pub amount: Amount,
    /// `None` for the native coin.
    pub token: Option<Address>,
    /// Time from now until the deposit expires ("now" is the later of the chain's time
    /// and the client's clock, see [`SpringMail::with_clock`]); whole seconds count.
    pub expires_in: Duration,
    /// `None` for link mode; else the watcher that must attest claims.
    pub watcher: Option<Address>,
    /// Whether the sender may refund before expiry.
    pub cancellable: bool,
}

impl SendRequest {
    /// A native-coin deposit in link mode, not cancellable.
    pub fn native(email: impl Into<String>, amount: Amount, expires_in: Duration) -> Self {
        SendRequest {
            email: email.into(),
            amount,
            token: None,
            expires_in,
            watcher: None,
            cancellable: false,
        }
    }
}

/// A deposit checked and encoded but not yet broadcast: its link and fields are final,
/// so the caller can record them before any money moves (see [`SpringMail::prepare_deposit`]).
#[derive(Debug, Clone)]
pub struct PreparedDeposit {
    /// The claim link (holds the secret).
    pub link: ClaimLink,
    /// The deposit as it will be stored.
    pub deposit: Deposit,
    /// The normalized recipient address.
    pub email: String,
    tx: TxRequest,
}

/// A made deposit: the link for the recipient and the fields for anyone.
#[derive(Debug, Clone)]
pub struct Ticket {
    /// The claim link (holds the secret: give it only to the recipient).
    pub link: ClaimLink,
    /// The deposit as stored.
    pub deposit: Deposit,
    /// The normalized recipient address.
    pub email: String,
    /// The deposit transaction.
    pub tx_hash: B256,
    /// Its block.
    pub block_number: u64,
    /// Gas it used.
    pub gas_used: u64,
}

/// Where a deposit stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DepositStatus {
    /// Waiting to be claimed.
    Open { deposit: Deposit, block_number: u64 },
    /// Past expiry, not yet refunded: only a refund is possible.
    Expired { deposit: Deposit, block_number: u64 },
    /// Paid to `to`.
    Claimed {
        to: Address,
        amount: u128,
        fee: u128,
        relayer: Address,
        tx_hash: B256,
        block_number: u64,
    },
    /// Returned to the sender.
    Refunded {
        sender: Address,
        amount: u128,
        tx_hash: B256,
        block_number: u64,
    },
    /// No deposit with this claim key.
    Unknown,
}

impl DepositStatus {
    /// A one-word name for messages.
    pub fn name(&self) -> &'static str {
        match self {
            DepositStatus::Open { .. } => "open",
            DepositStatus::Expired { .. } => "expired",
            DepositStatus::Claimed { .. } => "claimed",
            DepositStatus::Refunded { .. } => "refunded",
            DepositStatus::Unknown => "unknown",
        }
    }
}

/// An escrow event, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EscrowEvent {
    /// `Deposited`.
    Deposited {
        claim_key: Address,
        deposit: Deposit,
    },
    /// `Claimed`.
    Claimed {
        claim_key: Address,
        to: Address,
        amount: u128,
        fee: u128,
        relayer: Address,
    },
    /// `Refunded`.
    Refunded {
        claim_key: Address,
        sender: Address,
        amount: u128,
    },
}

impl EscrowEvent {
    /// The claim key the event is about.
    pub fn claim_key(&self) -> Address {
        match self {
            EscrowEvent::Deposited { claim_key, .. }
            | EscrowEvent::Claimed { claim_key, .. }
            | EscrowEvent::Refunded { claim_key, .. } => *claim_key,
        }
    }

    /// Decodes one of the escrow's logs; `None` for any other log.
    pub fn decode(log: &alloy::primitives::Log) -> Option<Self> {
        let topic0 = *log.topics().first()?;
        if topic0 == EmailEscrow::Deposited::SIGNATURE_HASH {
            let e = EmailEscrow::Deposited::decode_log_data(&log.data).ok()?;
            Some(EscrowEvent::Deposited {
                claim_key: e.claimKey,
                deposit: Deposit::from_sol(&e.deposit),
            })
        } else if topic0 == EmailEscrow::Claimed::SIGNATURE_HASH {
            let e = EmailEscrow::Claimed::decode_log_data(&log.data).ok()?;
            Some(EscrowEvent::Claimed {
                claim_key: e.claimKey,
                to: e.to,
                amount: e.amount.saturating_to(),
                fee: e.fee.saturating_to(),
                relayer: e.relayer,
            })
        } else if topic0 == EmailEscrow::Refunded::SIGNATURE_HASH {
            let e = EmailEscrow::Refunded::decode_log_data(&log.data).ok()?;
            Some(EscrowEvent::Refunded {
                claim_key: e.claimKey,
                sender: e.sender,
                amount: e.amount.saturating_to(),
            })
        } else {
            None
        }
    }
}

/// A signed claim, ready to submit by anyone (the recipient, or a watcher as relayer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedClaim {
    /// What was signed.
    pub auth: ClaimAuth,
    /// The claim key's signature.
    pub signature: Signature,
}

/// One escrow contract on one chain, used through one account.
#[derive(Clone)]
pub struct SpringMail {
    chain: Arc<dyn Chain>,
    escrow: Address,
    start_block: u64,
    clock: Option<fn() -> u64>,
}

impl std::fmt::Debug for SpringMail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpringMail")
            .field("chain", &self.chain.describe())
            .field("escrow", &self.escrow)
            .finish()
    }
}

/// Solidity's own revert data.
enum Standard {
    /// `Error(string)`.
    Message(String),
    /// `Panic(uint256)`.
    Panic(U256),
}

fn standard_revert(data: &[u8]) -> Option<Standard> {
    use alloy::sol_types::{Panic, Revert, SolError};
    if let Ok(r) = Revert::abi_decode(data) {
        return Some(Standard::Message(r.reason));
    }
    Panic::abi_decode(data)
        .ok()
        .map(|p| Standard::Panic(p.code))
}

/// The reason in standard revert data, short: the `Error(string)` message, or
/// `panic 0x…`; `None` for other data (an escrow error: see [`describe_revert`]).
pub fn revert_reason(data: &[u8]) -> Option<String> {
    standard_revert(data).map(|s| match s {
        Standard::Message(m) => m,
        Standard::Panic(code) => format!("panic 0x{code:x}"),
    })
}

/// What a `Panic(uint256)` code means (Solidity's list).
fn panic_meaning(code: U256) -> &'static str {
    match code.saturating_to::<u64>() {
        0x01 => "an assertion failed",
        0x11 => "an arithmetic overflow or underflow",
        0x12 => "a division by zero",
        0x21 => "an invalid enum value",
        0x22 => "a badly encoded storage byte array",
        0x31 => "pop() on an empty array",
        0x32 => "an array index out of bounds",
        0x41 => "too much memory allocated",
        0x51 => "a call to an uninitialized function",
        _ => "an unknown panic code",
    }
}

/// Human words for revert data: every custom error of the escrow (decoded from the
/// `sol!` binding of the committed artifact, with its arguments), `Error(string)` and
/// `Panic(uint256)`. Unknown data is shown as hex.
pub fn describe_revert(data: &[u8]) -> String {
    use EmailEscrow::EmailEscrowErrors as E;
    let Ok(err) = E::abi_decode(data) else {
        match standard_revert(data) {
            Some(Standard::Message(m)) => {
                return format!("the contract reverted with the message {m:?}")
            }
            Some(Standard::Panic(code)) => {
                return format!(
                    "the contract panicked with code 0x{code:x} ({})",
                    panic_meaning(code)
                )
            }
            None => {}
        }
        return if data.is_empty() {
            "reverted without a reason".into()
        } else if data.len() >= 4 {
            format!(
                "reverted with an error this escrow does not define (selector 0x{}, data 0x{}): is the address an EmailEscrow?",
                hex::encode(&data[..4]),
                hex::encode(data)
            )
        } else {
            format!("reverted (0x{})", hex::encode(data))
        };
    };
    let date = |t: u64| utc_date(t);
    let big = |v: U256| v.saturating_to::<u64>();
    match err {
        E::ClaimKeyInUse(e) => format!(
            "a deposit already uses claim key {} (each link can be used for one deposit)",
            e.claimKey
        ),
        E::ZeroClaimKey(_) => "the claim key is the zero address".into(),
        E::ZeroAmount(_) => "the amount is zero".into(),
        E::SenderMismatch(e) => format!(
            "the deposit names sender {}, but it was sent by {}",
            e.sender, e.caller
        ),
        E::ValueMismatch(e) => format!(
            "the coin sent with the transaction ({} base units) is not the deposit's amount ({} base units)",
            e.got, e.expected
        ),
        E::ExpiryInPast(e) => format!(
            "the expiry {} is not after the chain's time {}",
            date(e.expiry.to::<u64>()),
            date(big(e.nowTs))
        ),
        E::TokenShortfall(e) => format!(
            "the token delivered {} base units instead of {} (fee-on-transfer tokens are not supported)",
            e.received, e.expected
        ),
        E::UnknownDeposit(e) => format!(
            "no open deposit with claim key {} matches these fields (it was claimed or refunded already, or never made)",
            e.claimKey
        ),
        E::Expired(e) => format!(
            "the deposit expired on {} (the chain's time is {}); it can no longer be claimed, only refunded to its sender",
            date(e.expiry.to::<u64>()),
            date(big(e.nowTs))
        ),
        E::DeadlinePassed(e) => format!(
            "the signed claim's deadline {} has passed (the chain's time is {}); sign the claim again",
            date(e.deadline.to::<u64>()),
            date(big(e.nowTs))
        ),
        E::FeeTooHigh(e) => format!(
            "the fee of {} base units is above the signed maximum of {} base units (or above the amount)",
            e.fee, e.maxFee
        ),
        E::BadClaimSignature(e) => {
            format!("the claim signature is not from claim key {}", e.claimKey)
        }
        E::BadAttestation(e) => format!("the watcher {} did not attest this claim", e.watcher),
        E::RefundNotAllowed(e) => format!(
            "{} may not refund this deposit yet: until it expires on {} (the chain's time is {}) only its sender can, and only if it was sent cancellable; after that anyone can",
            e.caller,
            date(e.expiry.to::<u64>()),
            date(big(e.nowTs))
        ),
        E::TransferFailed(e) if e.token == Address::ZERO => format!(
            "paying {} base units of the coin to {} failed (the recipient is a contract that refuses payments?)",
            e.amount, e.to
        ),
        E::TransferFailed(e) => format!(
            "the token {} refused to transfer {} base units to {}",
            e.token, e.amount, e.to
        ),
        E::NoFees(e) => format!(
            "{} has no accrued fees in {} to withdraw",
            e.relayer,
            asset_name(e.token)
        ),
        E::ZeroPayee(_) => "fees or an account's coin cannot be paid to the zero address".into(),
        other => crate::accounts::describe_account_error(&other),
    }
}

fn asset_name(token: Address) -> String {
    if token == Address::ZERO {
        "the native coin".into()
    } else {
        format!("token {token}")
    }
}

/// The name of the escrow error whose selector a `ClaimSkipped` event (or a simulated
/// `claimBatch`) carries, e.g. `UnknownDeposit`.
pub fn skip_reason_name(reason: [u8; 4]) -> String {
    use EmailEscrow as E;
    let known: [([u8; 4], &str); 7] = [
        (E::UnknownDeposit::SELECTOR, "UnknownDeposit"),
        (E::Expired::SELECTOR, "Expired"),
        (E::DeadlinePassed::SELECTOR, "DeadlinePassed"),
        (E::FeeTooHigh::SELECTOR, "FeeTooHigh"),
        (E::BadClaimSignature::SELECTOR, "BadClaimSignature"),
        (E::BadAttestation::SELECTOR, "BadAttestation"),
        (E::TransferFailed::SELECTOR, "TransferFailed"),
    ];
    known
        .iter()
        .find(|(sel, _)| *sel == reason)
        .map(|(_, name)| (*name).to_string())
        .unwrap_or_else(|| format!("0x{}", hex::encode(reason)))
}

/// One claim for [`SpringMail::submit_claim_batch`]: what [`SpringMail::submit_claim`] takes.
#[derive(Debug, Clone)]
pub struct BatchClaim {
    /// The open deposit's fields.
    pub deposit: Deposit,
    /// The claim key's signed claim.
    pub signed: SignedClaim,
    /// What the submitter earns (accrues in the escrow); at most the signed maximum.
    pub fee: u128,
    /// The watcher's attestation in email mode; empty in link mode.
    pub attestation: Bytes,
}

/// What a batch did with one of its claims.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BatchOutcome {
    /// Paid in the batch's transaction.
    Paid,
    /// Left out before sending: the simulation said the contract would skip it.
    NotSent {
        /// The error `claim` would have reverted with, by name (e.g. `UnknownDeposit`).
        reason: String,
    },
    /// Sent, and skipped by the contract (the chain changed after the simulation).
    Skipped {
        /// The error `claim` would have reverted with, by name.
        reason: String,
    },
}

/// The result of [`SpringMail::submit_claim_batch`].
#[derive(Debug, Clone)]
pub struct BatchResult {
    /// The batch's receipt; `None` when no claim survived the simulation (nothing sent).
    pub receipt: Option<Receipt>,
    /// One outcome per claim, in the order given.
    pub outcomes: Vec<BatchOutcome>,
}

impl SpringMail {
    /// A client for an already deployed escrow.
    pub fn new(chain: Arc<dyn Chain>, escrow: Address) -> Self {
        SpringMail {
            chain,
            escrow,
            start_block: 0,
            clock: None,
        }
    }

    /// A clock (unix seconds) that "now" never falls behind when an expiry is computed.
    /// Without one, expiries count from the newest block's time, which on a slow chain
    /// can be minutes old: `expires_in` would then end that much early.
    pub fn with_clock(mut self, clock: fn() -> u64) -> Self {
        self.clock = Some(clock);
        self
    }

    /// The time expiries count from: the newest block's, or the clock's when later.
    pub async fn now(&self) -> Result<u64, ClientError> {
        let chain = self.chain.head().await?.timestamp;
        Ok(self.clock.map_or(chain, |c| c().max(chain)))
    }

    /// Sets the first block to search for events (the escrow's deployment block).
    pub fn with_start_block(mut self, block: u64) -> Self {
        self.start_block = block;
        self
    }

    /// Deploys a new escrow from the committed artifact.
    pub async fn deploy(chain: Arc<dyn Chain>) -> Result<Self, ClientError> {
        let receipt = chain
            .send(TxRequest {
                to: None,
                data: EmailEscrow::BYTECODE.clone(),
                gas_limit: Some(ESCROW_DEPLOY_GAS),
                ..Default::default()
            })
            .await?;
        let escrow = match (&receipt.status, receipt.contract_address) {
            (TxStatus::Success, Some(a)) => a,
            _ => {
                return Err(ClientError::Reverted {
                    action: "deploying the escrow",
                    reason: receipt_reason(&receipt),
                    tx_hash: receipt.tx_hash,
                })
            }
        };
        Ok(SpringMail {
            chain,
            escrow,
            start_block: receipt.block_number,
            clock: None,
        })
    }

    /// The escrow contract.
    pub fn escrow(&self) -> Address {
        self.escrow
    }

    /// The first block searched for events.
    pub fn start_block(&self) -> u64 {
        self.start_block
    }

    /// The chain backend.
    pub fn chain(&self) -> &Arc<dyn Chain> {
        &self.chain
    }

    /// Chain id and escrow, as bound into every signature.
    pub fn escrow_id(&self) -> EscrowId {
        EscrowId {
            chain_id: self.chain.chain_id(),
            escrow: self.escrow,
        }
    }

    /// Deposits to an email address: a fresh claim key and salt, the commitment, and for a
    /// token an approval first when the allowance is short.
    pub async fn send(&self, req: SendRequest) -> Result<Ticket, ClientError> {
        self.send_with_link(req, self.new_link()).await
    }

    /// A fresh claim key and salt for this escrow, to record before depositing under it.
    pub fn new_link(&self) -> ClaimLink {
        ClaimLink {
            chain_id: self.chain.chain_id(),
            escrow: self.escrow,
            secret: ClaimSecret::random(),
            salt: Salt::random(),
        }
    }

    /// The deposits `sender` made at this escrow (from their `Deposited` events, oldest
    /// first): claim key, deposit, block and transaction.
    pub async fn deposits_by(
        &self,
        sender: Address,
    ) -> Result<Vec<(Address, Deposit, u64, B256)>, ClientError> {
        let logs = self
            .logs_matching(vec![
                Some(EmailEscrow::Deposited::SIGNATURE_HASH),
                None,
                Some(sender.into_word()),
            ])
            .await?;
        let mut out = Vec::new();
        for log in logs {
            if let Some(EscrowEvent::Deposited { claim_key, deposit }) =
                EscrowEvent::decode(&log.log)
            {
                if deposit.sender == sender {
                    out.push((claim_key, deposit, log.block_number, log.tx_hash));
                }
            }
        }
        Ok(out)
    }

    /// Deposits under a claim key and salt the caller chose (and recorded) beforehand, so
    /// that an interrupted batch can tell from the chain whether a row was already paid.
    /// The key must be fresh: the contract refuses a key with an open deposit.
    /// [`Self::prepare_deposit`], [`Self::submit_deposit`] and [`Self::confirm_deposit`] in turn.
    pub async fn send_with_link(
        &self,
        req: SendRequest,
        link: ClaimLink,
    ) -> Result<Ticket, ClientError> {
        let prepared = self.prepare_deposit(req, link).await?;
        let tx_hash = self.submit_deposit(&prepared).await?;
        self.confirm_deposit(prepared, tx_hash, DEFAULT_WAIT).await
    }

    /// Checks a deposit and encodes it without sending anything (reads only): the link,
    /// the commitment, the expiry, the sender's token balance.
    pub async fn prepare_deposit(
        &self,
        req: SendRequest,
        link: ClaimLink,
    ) -> Result<PreparedDeposit, ClientError> {
        self.check_link(&link)?;
        let normalized = email::normalize(&req.email)?;
        let amount = req.amount.units();
        let expiry = self
            .now()
            .await?
            .saturating_add(req.expires_in.as_secs())
            .min(MAX_TIMESTAMP);
        let deposit = Deposit {
            sender: self.chain.account(),
            token: req.token.unwrap_or(Address::ZERO),
            amount,
            expiry,
            flags: if req.cancellable {
                Deposit::CANCELLABLE
            } else {
                0
            },
            watcher: req.watcher.unwrap_or(Address::ZERO),
            recipient: email::commitment(&normalized, &link.salt)?,
        };
        deposit.validate()?;
        if let Some(token) = req.token {
            // Before any approval: an approval for money that is not there wastes gas.
            let have = self.chain.token_balance(token, deposit.sender).await?;
            if have < U256::from(amount) {
                return Err(ClientError::InsufficientTokenBalance {
                    token,
                    sender: deposit.sender,
                    have,
                    need: amount,
                });
            }
        }
        let data = EmailEscrow::depositCall {
            claimKey: link.claim_key(),
            d: deposit.to_sol(),
        }
        .abi_encode();
        let value = if req.token.is_none() {
            U256::from(amount)
        } else {
            U256::ZERO
        };
        Ok(PreparedDeposit {
            link,
            deposit,
            email: normalized,
            tx: TxRequest {
                to: Some(self.escrow),
                data: data.into(),
                value,
                gas_limit: None,
            },
        })
    }

    /// Broadcasts a prepared deposit (a token's approval first when the allowance is
    /// short), each transaction simulated before it is sent. Returns the deposit's
    /// transaction id without waiting for it to be mined.
    pub async fn submit_deposit(&self, prepared: &PreparedDeposit) -> Result<B256, ClientError> {
        if prepared.deposit.token != Address::ZERO {
            self.ensure_allowance(prepared.deposit.token, prepared.deposit.amount)
                .await?;
        }
        self.broadcast("the deposit", prepared.tx.clone()).await
    }

    /// Waits up to `timeout` for a submitted deposit and checks that it succeeded.
    pub async fn confirm_deposit(
        &self,
        prepared: PreparedDeposit,
        tx_hash: B256,
        timeout: Duration,
    ) -> Result<Ticket, ClientError> {
        let receipt = self.wait("the deposit", tx_hash, timeout).await?;
        check(&receipt, "the deposit")?;
        Ok(Ticket {
            link: prepared.link,
            deposit: prepared.deposit,
            email: prepared.email,
            tx_hash: receipt.tx_hash,
            block_number: receipt.block_number,
            gas_used: receipt.gas_used,
        })
    }

    /// Runs `tx` without sending it; a revert becomes [`ClientError::WouldRevert`].
    pub async fn simulate(&self, action: &'static str, tx: &TxRequest) -> Result<(), ClientError> {
        match self.chain.simulate(tx).await? {
            CallResult::Success(_) => Ok(()),
            CallResult::Reverted(data) => Err(ClientError::WouldRevert {
                action,
                reason: describe_revert(&data),
            }),
        }
    }

    /// Waits for a broadcast transaction; a failure to wait says that it was broadcast.
    async fn wait(
        &self,
        action: &'static str,
        tx_hash: B256,
        timeout: Duration,
    ) -> Result<Receipt, ClientError> {
        self.chain
            .wait(tx_hash, timeout)
            .await
            .map_err(|source| ClientError::Unconfirmed {
                action,
                tx_hash,
                source,
            })
    }

    /// Every transaction is sent through here: simulated, then broadcast if it would pass.
    async fn broadcast(&self, action: &'static str, tx: TxRequest) -> Result<B256, ClientError> {
        self.simulate(action, &tx).await?;
        Ok(self.chain.submit(tx).await?)
    }

    /// [`Self::broadcast`], then wait for the receipt.
    pub(crate) async fn execute(
        &self,
        action: &'static str,
        tx: TxRequest,
    ) -> Result<Receipt, ClientError> {
        let tx_hash = self.broadcast(action, tx).await?;
        self.wait(action, tx_hash, DEFAULT_WAIT).await
    }

    async fn ensure_allowance(&self, token: Address, amount: u128) -> Result<(), ClientError> {
        alloy::sol! {
            function allowance(address owner, address spender) external view returns (uint256);
            function approve(address spender, uint256 amount) external returns (bool);
        }
        let data = allowanceCall {
            owner: self.chain.account(),
            spender: self.escrow,
        }
        .abi_encode();
        let current = match self.chain.call(token, data.into()).await? {
            CallResult::Success(out) => allowanceCall::abi_decode_returns(&out)
                .map_err(|e| ClientError::Decode(format!("allowance: {e}")))?,
            CallResult::Reverted(_) => U256::ZERO,
        };
        if current >= U256::from(amount) {
            return Ok(());
        }
        let data = approveCall {
            spender: self.escrow,
            amount: U256::from(amount),
        }
        .abi_encode();
        let receipt = self
            .execute(
                "the token approval",
                TxRequest {
                    to: Some(token),
                    data: data.into(),
                    ..Default::default()
                },
            )
            .await?;
        check(&receipt, "the token approval")
    }

    /// The hash stored for a claim key (zero when no deposit is open).
    pub async fn stored_hash(&self, claim_key: Address) -> Result<B256, ClientError> {
        let data = EmailEscrow::depositsCall {
            claimKey: claim_key,
        }
        .abi_encode();
        match self.chain.call(self.escrow, data.into()).await? {
            // A call to an address without code succeeds with no output.
            CallResult::Success(out) if out.is_empty() => Err(ClientError::NoContract {
                escrow: self.escrow,
                chain_id: self.chain.chain_id(),
            }),
            CallResult::Success(out) => EmailEscrow::depositsCall::abi_decode_returns(&out)
                .map_err(|_| {
                    ClientError::Decode(format!(
                        "deposits() at {} answered {} bytes, not one 32-byte hash: is it an EmailEscrow contract?",
                        self.escrow,
                        out.len()
                    ))
                }),
            CallResult::Reverted(d) => Err(ClientError::Decode(format!(
                "deposits() reverted: {}",
                describe_revert(&d)
            ))),
        }
    }

    /// Logs of the escrow with `topic0` and the claim key as first indexed topic, in bounded ranges.
    async fn logs_for(
        &self,
        topic0: B256,
        claim_key: Option<Address>,
    ) -> Result<Vec<ChainLog>, ClientError> {
        self.logs_matching(vec![Some(topic0), claim_key.map(|k| k.into_word())])
            .await
    }

    /// The escrow's logs matching `topics`, from the start block to the head, read in
    /// bounded ranges.
    async fn logs_matching(&self, topics: Vec<Option<B256>>) -> Result<Vec<ChainLog>, ClientError> {
        let head = self.chain.head().await?.number;
        let mut out = Vec::new();
        let mut from = self.start_block;
        while from <= head {
            let to = (from + LOG_RANGE - 1).min(head);
            let filter = LogFilter {
                address: self.escrow,
                topics: topics.clone(),
                from_block: from,
                to_block: Some(to),
            };
            out.extend(self.chain.logs(&filter).await?);
            from = to + 1;
        }
        Ok(out)
    }

    /// Decoded escrow events in `[from_block, to_block]`, split into bounded ranges.
    pub async fn scan(
        &self,
        from_block: u64,
        to_block: u64,
    ) -> Result<Vec<(ChainLog, EscrowEvent)>, ClientError> {
        let mut out = Vec::new();
        let mut from = from_block;
        while from <= to_block {
            let to = (from + LOG_RANGE - 1).min(to_block);
            let filter = LogFilter {
                address: self.escrow,
                topics: vec![],
                from_block: from,
                to_block: Some(to),
            };
            for log in self.chain.logs(&filter).await? {
                if let Some(ev) = EscrowEvent::decode(&log.log) {
                    out.push((log, ev));
                }
            }
            from = to + 1;
        }
        Ok(out)
    }

    /// The open deposit for a claim key, rebuilt from its `Deposited` event and checked
    /// against the stored hash. `None` when no deposit is open under this key.
    pub async fn find_open_deposit(
        &self,
        claim_key: Address,
    ) -> Result<Option<(Deposit, u64)>, ClientError> {
        let stored = self.stored_hash(claim_key).await?;
        if stored == B256::ZERO {
            return Ok(None);
        }
        let logs = self
            .logs_for(EmailEscrow::Deposited::SIGNATURE_HASH, Some(claim_key))
            .await?;
        for log in logs.iter().rev() {
            if let Some(EscrowEvent::Deposited { deposit, .. }) = EscrowEvent::decode(&log.log) {
                if deposit.hash() == stored {
                    return Ok(Some((deposit, log.block_number)));
                }
            }
        }
        Err(ClientError::Decode(format!(
            "claim key {claim_key} has an open deposit but no matching Deposited event after block {}",
            self.start_block
        )))
    }

    /// The newest deposit made under a claim key, from its `Deposited` event, open or
    /// settled: what a claimed or refunded deposit was (its token, its sender).
    pub async fn deposited(&self, claim_key: Address) -> Result<Option<Deposit>, ClientError> {
        let logs = self
            .logs_for(EmailEscrow::Deposited::SIGNATURE_HASH, Some(claim_key))
            .await?;
        Ok(logs
            .iter()
            .rev()
            .find_map(|log| match EscrowEvent::decode(&log.log) {
                Some(EscrowEvent::Deposited { deposit, .. }) => Some(deposit),
                _ => None,
            }))
    }

    /// Where the deposit under a claim key stands.
    pub async fn status(&self, claim_key: Address) -> Result<DepositStatus, ClientError> {
        if let Some((deposit, block_number)) = self.find_open_deposit(claim_key).await? {
            let now = self.chain.head().await?.timestamp;
            return Ok(if now >= deposit.expiry {
                DepositStatus::Expired {
                    deposit,
                    block_number,
                }
            } else {
                DepositStatus::Open {
                    deposit,
                    block_number,
                }
            });
        }
        let mut last: Option<(ChainLog, EscrowEvent)> = None;
        for topic in [
            EmailEscrow::Claimed::SIGNATURE_HASH,
            EmailEscrow::Refunded::SIGNATURE_HASH,
        ] {
            for log in self.logs_for(topic, Some(claim_key)).await? {
                if let Some(ev) = EscrowEvent::decode(&log.log) {
                    let newer = last.as_ref().is_none_or(|(l, _)| {
                        (log.block_number, log.log_index) > (l.block_number, l.log_index)
                    });
                    if newer {
                        last = Some((log, ev));
                    }
                }
            }
        }
        Ok(match last {
            Some((
                log,
                EscrowEvent::Claimed {
                    to,
                    amount,
                    fee,
                    relayer,
                    ..
                },
            )) => DepositStatus::Claimed {
                to,
                amount,
                fee,
                relayer,
                tx_hash: log.tx_hash,
                block_number: log.block_number,
            },
            Some((log, EscrowEvent::Refunded { sender, amount, .. })) => DepositStatus::Refunded {
                sender,
                amount,
                tx_hash: log.tx_hash,
                block_number: log.block_number,
            },
            _ => DepositStatus::Unknown,
        })
    }

    fn check_link(&self, link: &ClaimLink) -> Result<(), ClientError> {
        let id = self.escrow_id();
        if link.chain_id != id.chain_id || link.escrow != id.escrow {
            return Err(ClientError::WrongEscrow {
                link_chain: link.chain_id,
                link_escrow: link.escrow,
                chain: id.chain_id,
                escrow: id.escrow,
            });
        }
        Ok(())
    }

    /// Signs a claim locally with the link's secret: pay the open deposit to `to`, with at
    /// most `max_fee` for a relayer, valid until `deadline`. Nothing is sent anywhere.
    pub fn sign_claim(
        &self,
        link: &ClaimLink,
        deposit: &Deposit,
        to: Address,
        max_fee: u128,
        deadline: u64,
    ) -> Result<SignedClaim, ClientError> {
        self.check_link(link)?;
        let auth = ClaimAuth {
            claim_key: link.claim_key(),
            deposit_hash: deposit.hash(),
            to,
            max_fee,
            deadline,
        };
        Ok(SignedClaim {
            signature: auth.sign_claim(self.escrow_id(), &link.secret),
            auth,
        })
    }

    /// The open deposit a link is for, or an error that says why it cannot be claimed.
    pub async fn open_deposit_for(&self, link: &ClaimLink) -> Result<Deposit, ClientError> {
        self.check_link(link)?;
        let claim_key = link.claim_key();
        match self.status(claim_key).await? {
            DepositStatus::Open { deposit, .. } => Ok(deposit),
            DepositStatus::Expired { deposit, .. } => Err(ClientError::Expired {
                expiry: deposit.expiry,
                now: self.chain.head().await?.timestamp,
            }),
            DepositStatus::Unknown => Err(ClientError::NotFound {
                claim_key,
                escrow: self.escrow,
            }),
            other => Err(ClientError::NotOpen {
                state: other.name(),
                action: "claimed",
            }),
        }
    }

    /// Claims a link-mode deposit directly, paying the gas from this client's account.
    pub async fn claim_with_link(
        &self,
        link: &ClaimLink,
        to: Address,
    ) -> Result<Receipt, ClientError> {
        let deposit = self.open_deposit_for(link).await?;
        if !deposit.is_link_mode() {
            return Err(ClientError::NeedsWatcher {
                watcher: deposit.watcher,
            });
        }
        let now = self.chain.head().await?.timestamp;
        let deadline = (now + 3600).min(deposit.expiry);
        let signed = self.sign_claim(link, &deposit, to, 0, deadline)?;
        let receipt = self
            .submit_claim(&deposit, &signed, 0, Bytes::new())
            .await?;
        check(&receipt, "the claim")?;
        Ok(receipt)
    }

    /// Calldata for `claim`.
    pub fn claim_calldata(
        &self,
        deposit: &Deposit,
        signed: &SignedClaim,
        fee: u128,
        attestation: Bytes,
    ) -> Bytes {
        EmailEscrow::claimCall {
            claimKey: signed.auth.claim_key,
            d: deposit.to_sol(),
            to: signed.auth.to,
            fee: alloy::primitives::Uint::<96, 2>::from(fee & crate::deposit::MAX_AMOUNT),
            maxFee: alloy::primitives::Uint::<96, 2>::from(
                signed.auth.max_fee & crate::deposit::MAX_AMOUNT,
            ),
            deadline: alloy::primitives::Uint::<40, 1>::from(signed.auth.deadline & MAX_TIMESTAMP),
            linkSig: signed.signature.to_bytes(),
            attestation,
        }
        .abi_encode()
        .into()
    }

    /// Simulates a claim, then sends it and waits for its receipt. A simulated revert is
    /// [`ClientError::WouldRevert`] (nothing sent); one at mining time (the state changed
    /// in between) comes back as a receipt with [`TxStatus::Reverted`].
    pub async fn submit_claim(
        &self,
        deposit: &Deposit,
        signed: &SignedClaim,
        fee: u128,
        attestation: Bytes,
    ) -> Result<Receipt, ClientError> {
        let data = self.claim_calldata(deposit, signed, fee, attestation);
        self.execute(
            "the claim",
            TxRequest {
                to: Some(self.escrow),
                data,
                ..Default::default()
            },
        )
        .await
    }

    /// Calldata for `claimBatch` of `claims`, in order.
    pub fn claim_batch_calldata(&self, claims: &[BatchClaim]) -> Bytes {
        EmailEscrow::claimBatchCall {
            claims: claims
                .iter()
                .map(|c| EmailEscrow::ClaimArgs {
                    claimKey: c.signed.auth.claim_key,
                    d: c.deposit.to_sol(),
                    to: c.signed.auth.to,
                    fee: alloy::primitives::Uint::<96, 2>::from(c.fee & crate::deposit::MAX_AMOUNT),
                    maxFee: alloy::primitives::Uint::<96, 2>::from(
                        c.signed.auth.max_fee & crate::deposit::MAX_AMOUNT,
                    ),
                    deadline: alloy::primitives::Uint::<40, 1>::from(
                        c.signed.auth.deadline & MAX_TIMESTAMP,
                    ),
                    linkSig: c.signed.signature.to_bytes(),
                    attestation: c.attestation.clone(),
                })
                .collect(),
        }
        .abi_encode()
        .into()
    }

    /// What `claimBatch` of `claims` would do now, without sending it: per claim, `None`
    /// when it would be paid, else the name of the error it would be skipped with.
    pub async fn simulate_claim_batch(
        &self,
        claims: &[BatchClaim],
    ) -> Result<Vec<Option<String>>, ClientError> {
        let tx = TxRequest {
            to: Some(self.escrow),
            data: self.claim_batch_calldata(claims),
            ..Default::default()
        };
        match self.chain.simulate(&tx).await? {
            CallResult::Success(out) => {
                let reasons = EmailEscrow::claimBatchCall::abi_decode_returns(&out)
                    .map_err(|e| ClientError::Decode(format!("claimBatch's return: {e}")))?;
                if reasons.len() != claims.len() {
                    return Err(ClientError::Decode(format!(
                        "claimBatch returned {} reasons for {} claims",
                        reasons.len(),
                        claims.len()
                    )));
                }
                Ok(reasons
                    .iter()
                    .map(|r| (!r.is_zero()).then(|| skip_reason_name(r.0)))
                    .collect())
            }
            CallResult::Reverted(data) => Err(ClientError::WouldRevert {
                action: "the claim batch",
                reason: describe_revert(&data),
            }),
        }
    }

    /// Settles several claims in one `claimBatch` transaction; the fees accrue to this
    /// client's account in the escrow ([`Self::withdraw_fees`]). Simulates first and
    /// leaves out every claim the contract would skip ([`BatchOutcome::NotSent`]); when
    /// none is left, sends nothing. A claim that turns invalid between the simulation
    /// and the block is skipped by the contract ([`BatchOutcome::Skipped`]); the others
    /// are still paid.
    pub async fn submit_claim_batch(
        &self,
        claims: &[BatchClaim],
    ) -> Result<BatchResult, ClientError> {
        let mut outcomes = vec![BatchOutcome::Paid; claims.len()];
        let mut sent = Vec::new();
        let mut sent_ix = Vec::new();
        for (i, reason) in self
            .simulate_claim_batch(claims)
            .await?
            .into_iter()
            .enumerate()
        {
            match reason {
                Some(reason) => outcomes[i] = BatchOutcome::NotSent { reason },
                None => {
                    sent.push(claims[i].clone());
                    sent_ix.push(i);
                }
            }
        }
        if sent.is_empty() {
            return Ok(BatchResult {
                receipt: None,
                outcomes,
            });
        }
        let receipt = self
            .execute(
                "the claim batch",
                TxRequest {
                    to: Some(self.escrow),
                    data: self.claim_batch_calldata(&sent),
                    ..Default::default()
                },
            )
            .await?;
        check(&receipt, "the claim batch")?;
        // The escrow logs one Claimed or ClaimSkipped per claim, in order.
        let logs: Vec<_> = receipt
            .logs
            .iter()
            .filter(|l| l.address == self.escrow)
            .filter(|l| {
                let t = l.topics().first();
                t == Some(&EmailEscrow::Claimed::SIGNATURE_HASH)
                    || t == Some(&EmailEscrow::ClaimSkipped::SIGNATURE_HASH)
            })
            .collect();
        if logs.len() != sent.len() {
            return Err(ClientError::Decode(format!(
                "the claim batch {} logged {} outcomes for {} claims",
                receipt.tx_hash,
                logs.len(),
                sent.len()
            )));
        }
        for (&i, log) in sent_ix.iter().zip(logs) {
            if let Ok(e) = EmailEscrow::ClaimSkipped::decode_log_data(&log.data) {
                outcomes[i] = BatchOutcome::Skipped {
                    reason: skip_reason_name(e.reason.0),
                };
            }
        }
        Ok(BatchResult {
            receipt: Some(receipt),
            outcomes,
        })
    }

    /// The fees `relayer` has accrued in the escrow in `token` (`Address::ZERO`: the
    /// native coin) and not yet withdrawn, in base units.
    pub async fn accrued_fees(
        &self,
        relayer: Address,
        token: Address,
    ) -> Result<u128, ClientError> {
        let data = EmailEscrow::feesAccruedCall { relayer, token }.abi_encode();
        match self.chain.call(self.escrow, data.into()).await? {
            CallResult::Success(out) => {
                let v = EmailEscrow::feesAccruedCall::abi_decode_returns(&out)
                    .map_err(|e| ClientError::Decode(format!("feesAccrued: {e}")))?;
                u128::try_from(v).map_err(|_| {
                    ClientError::Decode(format!("feesAccrued returned {v}, above u128"))
                })
            }
            CallResult::Reverted(data) => Err(ClientError::Decode(format!(
                "feesAccrued reverted ({}): is {} a version 2 EmailEscrow?",
                describe_revert(&data),
                self.escrow
            ))),
        }
    }

    /// Withdraws all of this account's accrued fees in `token` (`Address::ZERO`: the
    /// native coin) to `to`, in one transfer. Returns the receipt and the amount paid.
    /// Simulated first: with nothing accrued it is refused before anything is sent.
    pub async fn withdraw_fees(
        &self,
        token: Address,
        to: Address,
    ) -> Result<(Receipt, u128), ClientError> {
        let data = EmailEscrow::withdrawFeesCall { token, to }.abi_encode();
        let receipt = self
            .execute(
                "the fee withdrawal",
                TxRequest {
                    to: Some(self.escrow),
                    data: data.into(),
                    ..Default::default()
                },
            )
            .await?;
        check(&receipt, "the fee withdrawal")?;
        let amount = receipt
            .logs
            .iter()
            .filter(|l| l.address == self.escrow)
            .find_map(|l| EmailEscrow::FeesWithdrawn::decode_log_data(&l.data).ok())
            .map(|e| e.amount.saturating_to::<u128>())
            .ok_or_else(|| {
                ClientError::Decode(format!(
                    "the fee withdrawal {} has no FeesWithdrawn log",
                    receipt.tx_hash
                ))
            })?;
        Ok((receipt, amount))
    }

    /// Returns the deposit under `claim_key` to its sender (after expiry anyone may; before,
    /// only the sender of a cancellable deposit).
    pub async fn refund(&self, claim_key: Address) -> Result<Receipt, ClientError> {
        let (deposit, _) = match self.find_open_deposit(claim_key).await? {
            Some(d) => d,
            None => {
                let state = self.status(claim_key).await?;
                return Err(match state {
                    DepositStatus::Unknown => ClientError::NotFound {
                        claim_key,
                        escrow: self.escrow,
                    },
                    other => ClientError::NotOpen {
                        state: other.name(),
                        action: "refunded",
                    },
                });
            }
        };
        let data = EmailEscrow::refundCall {
            claimKey: claim_key,
            d: deposit.to_sol(),
        }
        .abi_encode();
        let receipt = self
            .execute(
                "the refund",
                TxRequest {
                    to: Some(self.escrow),
                    data: data.into(),
                    ..Default::default()
                },
            )
            .await?;
        check(&receipt, "the refund")?;
        Ok(receipt)
    }
}

fn receipt_reason(receipt: &Receipt) -> String {
    match &receipt.status {
        TxStatus::Success => "succeeded".into(),
        TxStatus::Reverted { data: Some(d), .. } if !d.is_empty() => describe_revert(d),
        TxStatus::Reverted {
            message: Some(m), ..
        } if !m.is_empty() => m.clone(),
        TxStatus::Reverted { .. } => "reverted (the node gave no reason)".into(),
    }
}

pub(crate) fn check(receipt: &Receipt, action: &'static str) -> Result<(), ClientError> {
    if receipt.succeeded() {
        Ok(())
    } else {
        Err(ClientError::Reverted {
            action,
            reason: receipt_reason(receipt),
            tx_hash: receipt.tx_hash,
        })
    }
}

/// The reason a receipt reverted, in words (empty for success).
pub fn receipt_revert_reason(receipt: &Receipt) -> Option<String> {
    (!receipt.succeeded()).then(|| receipt_reason(receipt))
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy::sol_types::SolInterface;
    use EmailEscrow::EmailEscrowErrors as E;

    #[test]
    fn standard_reverts_decode_short_and_in_words_from_one_decoder() {
        use alloy::sol_types::SolError;
        let data = alloy::sol_types::Revert::from("key in use").abi_encode();
        assert_eq!(revert_reason(&data).as_deref(), Some("key in use"));
        assert_eq!(
            describe_revert(&data),
            "the contract reverted with the message \"key in use\""
        );
        let data = alloy::sol_types::Panic {
            code: U256::from(0x11),
        }
        .abi_encode();
        assert_eq!(revert_reason(&data).as_deref(), Some("panic 0x11"));
        assert!(describe_revert(&data).contains("0x11 (an arithmetic overflow"));
        // An escrow error is not a standard revert.
        let data = EmailEscrow::ZeroAmount {}.abi_encode();
        assert_eq!(revert_reason(&data), None);
        assert_eq!(describe_revert(&data), "the amount is zero");
        assert_eq!(revert_reason(&[0x6d, 0xc3, 0xba, 0x9d]), None);
    }

    #[test]
    fn every_escrow_error_decodes_to_words_not_a_selector() {
        let mut seen = 0;
        for selector in E::SELECTORS {
            // The shortest all-zero argument list that decodes (0 to 4 words).
            let text = (0..=4)
                .map(|words| [selector.as_slice(), &vec![0u8; 32 * words]].concat())
                .find(|d| E::abi_decode(d).is_ok())
                .map(|d| describe_revert(&d))
                .unwrap_or_else(|| panic!("no argument list decodes 0x{}", hex::encode(selector)));
            let raw = hex::encode(selector);
            assert!(!text.contains(&raw), "0x{raw} shown raw: {text}");
            assert!(!text.contains("does not define"), "{text}");
            seen += 1;
        }
        assert_eq!(seen, E::SELECTORS.len());
        assert!(seen >= 15, "only {seen} errors in the binding");
    }

    #[test]
    fn refund_not_allowed_and_transfer_failed_read_as_sentences() {
        let data = EmailEscrow::RefundNotAllowed {
            caller: Address::repeat_byte(0xca),
            expiry: alloy::primitives::Uint::from(1_800_000_000u64),
            nowTs: U256::from(1_700_000_000u64),
        }
        .abi_encode();
        assert_eq!(hex::encode(&data[..4]), "ed8f49f1");
        let text = describe_revert(&data);
        assert!(text.contains("2027-01-15 08:00:00 UTC"), "{text}");
        assert!(text.contains("2023-11-14 22:13:20 UTC"), "{text}");
        assert!(text.contains("anyone can"), "{text}");
        let data = EmailEscrow::TransferFailed {
            token: Address::ZERO,
            to: Address::repeat_byte(0xbb),
            amount: U256::from(150_000_000u64),
        }
        .abi_encode();
        assert_eq!(hex::encode(&data[..4]), "bf182be8");
        let text = describe_revert(&data);
        assert!(
            text.contains("150000000") && text.contains("failed"),
            "{text}"
        );
    }

    #[test]
    fn error_string_and_panic_are_decoded() {
        let data = alloy::sol_types::Revert::from("no way").abi_encode();
        assert!(describe_revert(&data).contains("\"no way\""));
        let data = alloy::sol_types::Panic {
            code: U256::from(0x11),
        }
        .abi_encode();
        let text = describe_revert(&data);
        assert!(text.contains("0x11") && text.contains("overflow"), "{text}");
        let text = describe_revert(&[0xde, 0xad, 0xbe, 0xef]);
        assert!(text.contains("does not define"), "{text}");
    }

    #[test]
    fn expired_names_dates_and_that_anyone_may_refund() {
        let text = ClientError::Expired {
            expiry: 1_700_000_000,
            now: 1_800_000_000,
        }
        .to_string();
        assert!(text.contains("2023-11-14 22:13:20 UTC"), "{text}");
        assert!(!text.contains("1700000000"), "{text}");
        assert!(!text.contains("only the sender"), "{text}");
        assert!(text.contains("anyone"), "{text}");
    }

    #[test]
    fn an_address_without_code_is_named_as_no_escrow() {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let chain = crate::chain::embedded::EmbeddedChain::new(8890);
        let nowhere = Address::repeat_byte(0x42);
        let client = SpringMail::new(Arc::new(chain), nowhere);
        let err = rt
            .block_on(client.status(Address::repeat_byte(0x01)))
            .unwrap_err();
        assert!(
            matches!(err, ClientError::NoContract { escrow, chain_id: 8890 } if escrow == nowhere),
            "{err:?}"
        );
        let text = err.to_string();
        assert!(
            text.contains("no escrow contract at 0x4242") && text.contains("no code"),
            "{text}"
        );
        assert!(!text.contains("buffer overrun"), "{text}");
    }
}
