//! What the wallet needs from the chain: the version 3 escrow's account operations,
//! behind a trait so that the decisions can be tested without a node.

use alloy::primitives::{Address, B256};
use async_trait::async_trait;
use springmail_sdk::client::DepositStatus;
use springmail_sdk::link::ClaimLink;

/// An account as the escrow holds it (`accountOf`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AccountView {
    /// Balance, base units of the native coin.
    pub balance: u128,
    /// Spent on `day`.
    pub spent_today: u128,
    /// `block.timestamp / 86400` of the last movement.
    pub day: u64,
    /// The nonce the next movement must name (0: not open).
    pub nonce: u32,
    /// Largest movement the controller may order.
    pub per_payment: u128,
    /// Most the controller may move in a day.
    pub per_day: u128,
    /// The account's controller.
    pub controller: Address,
    /// The owner's key, once bound.
    pub owner: Option<Address>,
}

impl AccountView {
    /// What the controller may still move today, judged at chain day `today`.
    pub fn left_today(&self, today: u64) -> u128 {
        let spent = if self.day == today {
            self.spent_today
        } else {
            0
        };
        self.per_day.saturating_sub(spent)
    }
}

/// Why a chain operation did not happen.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WalletChainError {
    /// The account's nonce moved on: an earlier send of the same movement landed, or
    /// another movement did.
    #[error("the account's nonce moved on (BadNonce)")]
    BadNonce,
    /// The contract refused the operation (simulated before sending); nothing moved.
    #[error("the escrow refused it: {0}")]
    Refused(String),
    /// The node could not be reached or did not answer in time; try again.
    #[error("the chain is unavailable: {0}")]
    Unavailable(String),
}

/// A sent, mined movement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    /// Its transaction id.
    pub tx_hash: String,
}

/// A deposit made by paying a new email.
#[derive(Debug, Clone)]
pub struct NewDeposit {
    /// Its transaction id.
    pub tx_hash: String,
    /// The link the recipient claims it with (secret: only in the notification).
    pub link: ClaimLink,
    /// Its expiry, unix seconds.
    pub expiry: u64,
}

/// The escrow's account operations, as the controller (the watcher's sending account).
#[async_trait]
pub trait WalletChain: Send + Sync {
    /// The chain id.
    fn chain_id(&self) -> u64;
    /// The escrow.
    fn escrow(&self) -> Address;
    /// The chain's clock (unix seconds), which the contract's day follows.
    async fn now(&self) -> Result<u64, WalletChainError>;
    /// The account, or `None` when it is not open.
    async fn account(&self, account: B256) -> Result<Option<AccountView>, WalletChainError>;
    /// A deposit by its claim key (ordinary, or paid from an account).
    async fn deposit(&self, claim_key: Address) -> Result<DepositStatus, WalletChainError>;
    /// Opens an account with the watcher as controller.
    async fn open_account(
        &self,
        account: B256,
        per_payment: u128,
        per_day: u128,
    ) -> Result<Sent, WalletChainError>;
    /// Pays an email-mode deposit into the account; returns what was credited.
    async fn claim_into(
        &self,
        link: &ClaimLink,
        account: B256,
        nonce: u32,
        mail_hash: B256,
    ) -> Result<(Sent, u128), WalletChainError>;
    /// Account to account.
    async fn transfer(
        &self,
        from: B256,
        to: B256,
        amount: u128,
        nonce: u32,
        mail_hash: B256,
    ) -> Result<Sent, WalletChainError>;
    /// A new deposit to `email`, paid from the account, claimable with `link` (made
    /// and journaled by the caller before, so a restart can still notify).
    async fn pay_email(
        &self,
        from: B256,
        email: &str,
        amount: u128,
        nonce: u32,
        mail_hash: B256,
        link: &ClaimLink,
    ) -> Result<NewDeposit, WalletChainError>;
    /// Binds the owner's key (the controller may, while none is bound).
    async fn bind_owner(
        &self,
        account: B256,
        owner: Address,
        nonce: u32,
        mail_hash: B256,
    ) -> Result<Sent, WalletChainError>;
    /// Expired payments of the account that came back into it, as `(claim key,
    /// amount, transaction id)`, oldest first. None by default (a chain without logs).
    async fn refunds_into(
        &self,
        _account: B256,
    ) -> Result<Vec<(Address, u128, String)>, WalletChainError> {
        Ok(Vec::new())
    }
    /// Pays the account's money to an address.
    async fn withdraw(
        &self,
        from: B256,
        to: Address,
        amount: u128,
        nonce: u32,
        mail_hash: B256,
    ) -> Result<Sent, WalletChainError>;
}
