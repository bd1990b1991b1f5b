//! [`WalletChain`] over the SDK's account calls (`springmail_sdk::accounts`): the
//! watcher's sending account is the controller; each call is simulated first and a
//! revert comes back named.

use std::time::Duration;

use alloy::primitives::{Address, B256};
use async_trait::async_trait;
use springmail_sdk::accounts::{AccountId, Limits, Movement, PayRequest};
use springmail_sdk::client::{ClientError, DepositStatus, SpringMail};
use springmail_sdk::link::ClaimLink;

use super::chain::{AccountView, NewDeposit, Sent, WalletChain, WalletChainError};

/// How long a payment to a new email waits to be claimed before it can be refunded
/// into the paying account, unless `[wallet] pay_expiry_secs` says otherwise.
pub const PAY_EMAIL_EXPIRY: Duration = Duration::from_secs(30 * 86_400);

/// The escrow's accounts through the SDK, with the watcher's claim fee.
#[derive(Debug, Clone)]
pub struct SdkWallet {
    client: SpringMail,
    fee: u128,
    pay_expiry: Duration,
}

impl SdkWallet {
    /// Moves money as `client`'s sending account (the accounts' controller, which must
    /// also be the watcher that deposits name); `fee` is taken from each claim into an
    /// account, in base units.
    pub fn new(client: SpringMail, fee: u128) -> Self {
        SdkWallet {
            client,
            fee,
            pay_expiry: PAY_EMAIL_EXPIRY,
        }
    }

    /// Payments to new emails expire after `expiry` (default [`PAY_EMAIL_EXPIRY`]).
    pub fn with_pay_expiry(mut self, expiry: Duration) -> Self {
        self.pay_expiry = expiry;
        self
    }

    fn controller(&self) -> Address {
        self.client.chain().account()
    }

    /// The deposit behind a claim key, and the account that paid it, if one did (a
    /// payment to an email is found by its `AccountDeposited` log, which `status`
    /// does not read).
    async fn find(
        &self,
        claim_key: Address,
    ) -> Result<(DepositStatus, Option<AccountId>), WalletChainError> {
        if let Some((deposit, from)) = self
            .client
            .find_account_deposit(claim_key)
            .await
            .map_err(map)?
        {
            let now = self.client.now().await.map_err(map)?;
            let status = if now >= deposit.expiry {
                DepositStatus::Expired {
                    deposit,
                    block_number: 0,
                }
            } else {
                DepositStatus::Open {
                    deposit,
                    block_number: 0,
                }
            };
            return Ok((status, Some(from)));
        }
        Ok((self.client.status(claim_key).await.map_err(map)?, None))
    }
}

fn map(e: ClientError) -> WalletChainError {
    match &e {
        ClientError::WouldRevert { reason, .. }
            if reason.contains("names nonce") || reason.contains("BadNonce") =>
        {
            WalletChainError::BadNonce
        }
        ClientError::WouldRevert { .. } => WalletChainError::Refused(e.to_string()),
        ClientError::Chain(c) if c.is_transient() => WalletChainError::Unavailable(e.to_string()),
        ClientError::Unconfirmed { .. } => WalletChainError::Unavailable(e.to_string()),
        _ => WalletChainError::Refused(e.to_string()),
    }
}

fn sent(tx_hash: B256) -> Sent {
    Sent {
        tx_hash: tx_hash.to_string(),
    }
}

fn limit(v: u128) -> u64 {
    u64::try_from(v).unwrap_or(u64::MAX)
}

#[async_trait]
impl WalletChain for SdkWallet {
    fn chain_id(&self) -> u64 {
        self.client.escrow_id().chain_id
    }

    fn escrow(&self) -> Address {
        self.client.escrow()
    }

    async fn now(&self) -> Result<u64, WalletChainError> {
        self.client.now().await.map_err(map)
    }

    async fn account(&self, account: B256) -> Result<Option<AccountView>, WalletChainError> {
        let s = self.client.account(AccountId(account)).await.map_err(map)?;
        Ok(s.is_open().then_some(AccountView {
            balance: s.balance,
            spent_today: s.spent_today.into(),
            day: s.day,
            nonce: s.nonce,
            per_payment: s.limits.per_payment.into(),
            per_day: s.limits.per_day.into(),
            controller: s.controller,
            owner: s.owner,
        }))
    }

    async fn refunds_into(
        &self,
        account: B256,
    ) -> Result<Vec<(Address, u128, String)>, WalletChainError> {
        let found = self
            .client
            .refunds_into(AccountId(account))
            .await
            .map_err(map)?;
        Ok(found
            .into_iter()
            .map(|(key, amount, tx)| (key, amount, tx.to_string()))
            .collect())
    }

    async fn deposit(&self, claim_key: Address) -> Result<DepositStatus, WalletChainError> {
        Ok(self.find(claim_key).await?.0)
    }

    async fn open_account(
        &self,
        account: B256,
        per_payment: u128,
        per_day: u128,
    ) -> Result<Sent, WalletChainError> {
        let limits = Limits::new(limit(per_payment), limit(per_day)).map_err(map)?;
        let r = self
            .client
            .open_account(AccountId(account), self.controller(), limits)
            .await
            .map_err(map)?;
        Ok(sent(r.tx_hash))
    }

    async fn claim_into(
        &self,
        link: &ClaimLink,
        account: B256,
        nonce: u32,
        mail_hash: B256,
    ) -> Result<(Sent, u128), WalletChainError> {
        let (status, paid_from) = self.find(link.claim_key()).await?;
        let deposit = match status {
            DepositStatus::Open { deposit, .. } => deposit,
            other => {
                return Err(WalletChainError::Refused(format!(
                    "the deposit is {}",
                    other.name()
                )))
            }
        };
        let fee = self.fee.min(deposit.amount);
        let r = self
            .client
            .claim_into(
                link,
                &deposit,
                paid_from,
                AccountId(account),
                fee,
                Movement { nonce, mail_hash },
            )
            .await
            .map_err(map)?;
        Ok((sent(r.tx_hash), deposit.amount - fee))
    }

    async fn transfer(
        &self,
        from: B256,
        to: B256,
        amount: u128,
        nonce: u32,
        mail_hash: B256,
    ) -> Result<Sent, WalletChainError> {
        let r = self
            .client
            .transfer_between(
                AccountId(from),
                AccountId(to),
                amount,
                Movement { nonce, mail_hash },
            )
            .await
            .map_err(map)?;
        Ok(sent(r.tx_hash))
    }

    async fn pay_email(
        &self,
        from: B256,
        email: &str,
        amount: u128,
        nonce: u32,
        mail_hash: B256,
        link: &ClaimLink,
    ) -> Result<NewDeposit, WalletChainError> {
        let t = self
            .client
            .pay_email(
                AccountId(from),
                PayRequest {
                    email: email.to_string(),
                    amount,
                    expires_in: self.pay_expiry,
                    watcher: Some(self.controller()),
                    cancellable: false,
                },
                link.clone(),
                Movement { nonce, mail_hash },
            )
            .await
            .map_err(map)?;
        Ok(NewDeposit {
            tx_hash: t.tx_hash.to_string(),
            link: t.link,
            expiry: t.deposit.expiry,
        })
    }

    async fn bind_owner(
        &self,
        account: B256,
        owner: Address,
        nonce: u32,
        mail_hash: B256,
    ) -> Result<Sent, WalletChainError> {
        let r = self
            .client
            .bind_owner(AccountId(account), owner, Movement { nonce, mail_hash })
            .await
            .map_err(map)?;
        Ok(sent(r.tx_hash))
    }

    async fn withdraw(
        &self,
        from: B256,
        to: Address,
        amount: u128,
        nonce: u32,
        mail_hash: B256,
    ) -> Result<Sent, WalletChainError> {
        let r = self
            .client
            .withdraw_from(AccountId(from), to, amount, Movement { nonce, mail_hash })
            .await
            .map_err(map)?;
        Ok(sent(r.tx_hash))
    }
}
