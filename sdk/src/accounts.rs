//! Mailbox wallets (docs/PROTOCOL.md, "Mailbox wallets"): a native-coin balance the
//! escrow holds under an account commitment, moved by the account's controller (the
//! broker) within limits, or by the owner's own key without them.
//!
//! Every movement the controller orders names the account's current nonce and the
//! keccak256 of the raw mail that ordered it ([`mail_hash`]); both go into the event.
//! The calls here simulate first and send nothing when the contract would refuse.

use std::time::Duration;

use alloy::primitives::aliases::{U40, U48, U96};
use alloy::primitives::{keccak256, Address, Bytes, B256, U256};
use alloy::sol_types::{SolCall, SolEvent, SolValue};

use crate::chain::{CallResult, ChainLog, Receipt, TxRequest};
use crate::client::{describe_revert, ClientError, SpringMail, Ticket, DEFAULT_WAIT};
use crate::contract::EmailEscrow;
use crate::deposit::{Deposit, MAX_AMOUNT, MAX_TIMESTAMP};
use crate::eip712::EscrowId;
use crate::email::{self, EmailError, Salt};
use crate::keys::{ClaimSecret, Signature};
use crate::link::ClaimLink;

/// The account commitment's domain tag (the deposit recipient's is `springmail/v1`).
pub const ACCOUNT_TAG: &[u8] = b"springmail/account/v1";
/// The EIP-712 type the claim key signs to let a deposit be paid into an account.
pub const CLAIM_INTO_TYPE: &str =
    "ClaimInto(address claimKey,bytes32 deposit,bytes32 account,uint96 maxFee,uint40 deadline)";
/// keccak256(CLAIM_INTO_TYPE), as the contract's `CLAIM_INTO_TYPEHASH`.
pub const CLAIM_INTO_TYPEHASH: B256 =
    alloy::primitives::b256!("3f4836e6451bb6d2b509c77db86cf9460443ae03fdcbe757d7eb4c9cfd83cf97");
/// Deposit flag bit 1: paid from an account; its hash binds the account too.
pub const FROM_ACCOUNT: u8 = 2;
/// The largest limit: limits are uint48 base units.
pub const MAX_LIMIT: u64 = (1 << 48) - 1;
/// Seconds in the contract's day (`block.timestamp / 86400`).
pub const DAY: u64 = 86_400;

/// An account commitment: the only thing the chain knows of a mailbox wallet.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct AccountId(pub B256);

impl AccountId {
    /// `keccak256("springmail/account/v1" ‖ 0x00 ‖ normalized email ‖ 0x00 ‖ salt)`.
    pub fn commit(email: &str, salt: &Salt) -> Result<Self, EmailError> {
        let normalized = email::normalize(email)?;
        let mut pre = Vec::with_capacity(ACCOUNT_TAG.len() + normalized.len() + 18);
        pre.extend_from_slice(ACCOUNT_TAG);
        pre.push(0);
        pre.extend_from_slice(normalized.as_bytes());
        pre.push(0);
        pre.extend_from_slice(salt.expose_bytes());
        Ok(AccountId(keccak256(pre)))
    }

    /// The 32-byte id.
    pub fn as_b256(&self) -> B256 {
        self.0
    }
}

impl std::fmt::Display for AccountId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// What an account's controller may move: per payment and per day, in base units.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct Limits {
    /// The largest single movement.
    pub per_payment: u64,
    /// The most in one UTC day (`timestamp / 86400`).
    pub per_day: u64,
}

impl Limits {
    /// Limits, checked to fit the contract's uint48.
    pub fn new(per_payment: u64, per_day: u64) -> Result<Self, ClientError> {
        for (name, v) in [("per-payment", per_payment), ("per-day", per_day)] {
            if v > MAX_LIMIT {
                return Err(ClientError::Decode(format!(
                    "the {name} limit {v} is above the largest the contract holds ({MAX_LIMIT} base units)"
                )));
            }
        }
        Ok(Limits {
            per_payment,
            per_day,
        })
    }
}

/// An account as `accountOf_s` reads it.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct AccountState {
    /// Base units held.
    pub balance: u128,
    /// What the controller moved on `day`.
    pub spent_today: u64,
    /// The unix day `spent_today` counts for.
    pub day: u64,
    /// The nonce the next movement must name; zero: the account is not open.
    pub nonce: u32,
    /// The controller's limits.
    pub limits: Limits,
    /// The controller (on Qtum, the hash160 of its sending address).
    pub controller: Address,
    /// The bound owner key, if any.
    pub owner: Option<Address>,
}

impl AccountState {
    /// True once `createAccount_1s` ran.
    pub fn is_open(&self) -> bool {
        self.nonce != 0
    }

    /// What the controller has moved on the day containing `now` (unix seconds).
    pub fn spent_at(&self, now: u64) -> u64 {
        if self.day == now / DAY {
            self.spent_today
        } else {
            0
        }
    }

    /// The most the controller may move in one movement at `now`: the per-payment
    /// limit, what is left of the day's, and the balance.
    pub fn controller_allowance_at(&self, now: u64) -> u128 {
        let left = self.limits.per_day.saturating_sub(self.spent_at(now));
        u128::from(left.min(self.limits.per_payment)).min(self.balance)
    }
}

/// The keccak256 of a raw message exactly as received (headers and body, CRLF line ends):
/// what every movement records as the mail that ordered it.
pub fn mail_hash(raw: &[u8]) -> B256 {
    keccak256(raw)
}

/// The text an owner key signs to be bound to a mailbox's wallet
/// (docs/PROTOCOL-TEXT.md, *BIND's signed text*).
pub fn bind_text(normalized_email: &str, chain_id: u64, escrow: Address, owner: Address) -> String {
    format!(
        "Spring Mail: bind owner\nMailbox: {normalized_email}\nChain: {chain_id}\nEscrow: {}\nOwner: {}\n",
        escrow.to_checksum(None),
        crate::qtum::format_address(chain_id, owner)
    )
}

/// The digest an owner key signs: EIP-191 `personal_sign` of [`bind_text`].
pub fn bind_digest(text: &str) -> B256 {
    crate::keys::personal_digest(text.as_bytes())
}

/// The nonce and mail hash a movement carries.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Movement {
    /// The account's current nonce (see [`AccountState::nonce`]).
    pub nonce: u32,
    /// [`mail_hash`] of the mail that ordered the movement (zero when none did).
    pub mail_hash: B256,
}

/// The hash stored for a deposit paid from `from`: `keccak256(abi.encode(d) ‖ from)`.
pub fn funded_deposit_hash(d: &Deposit, from: AccountId) -> B256 {
    let mut pre = d.encode().to_vec();
    pre.extend_from_slice(from.0.as_slice());
    keccak256(pre)
}

/// What the claim key signs to let `deposit_hash` be paid into `account`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct ClaimIntoAuth {
    /// The deposit's claim key.
    pub claim_key: Address,
    /// The stored hash (for a deposit paid from an account, [`funded_deposit_hash`]).
    pub deposit_hash: B256,
    /// The account paid.
    pub account: AccountId,
    /// The most the caller may keep as its fee.
    pub max_fee: u128,
    /// Unix seconds; the signature is void after.
    pub deadline: u64,
}

impl ClaimIntoAuth {
    /// The EIP-712 digest in the escrow's domain.
    pub fn digest(&self, id: EscrowId) -> B256 {
        let sh = keccak256(
            (
                CLAIM_INTO_TYPEHASH,
                self.claim_key,
                self.deposit_hash,
                self.account.0,
                U256::from(self.max_fee & MAX_AMOUNT),
                U256::from(self.deadline & MAX_TIMESTAMP),
            )
                .abi_encode(),
        );
        let sep = crate::eip712::domain(id.chain_id, id.escrow).separator();
        let mut pre = Vec::with_capacity(66);
        pre.extend_from_slice(&[0x19, 0x01]);
        pre.extend_from_slice(sep.as_slice());
        pre.extend_from_slice(sh.as_slice());
        keccak256(pre)
    }

    /// The claim key's signature of [`Self::digest`].
    pub fn sign(&self, id: EscrowId, key: &ClaimSecret) -> Signature {
        key.sign_digest(&self.digest(id))
    }
}

/// A payment from an account to an email address: a new deposit the escrow holds for
/// the recipient, claimable with the returned link.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PayRequest {
    /// The recipient's address (normalized before committing).
    pub email: String,
    /// Base units of the native coin.
    pub amount: u128,
    /// From now until the deposit expires; at expiry anyone can refund it into the account.
    pub expires_in: Duration,
    /// `None`: link mode; else the watcher of the deposit (the broker, to claim it into
    /// the recipient's account or attest her claim).
    pub watcher: Option<Address>,
    /// Whether the account's controller or owner may refund it into the account early.
    pub cancellable: bool,
}

/// A decoded account event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AccountEvent {
    /// `AccountOpened`.
    Opened {
        account: AccountId,
        controller: Address,
        limits: Limits,
    },
    /// `Moved`: an id below 2^160 is a claim key (as `from`) or an address (as `to`).
    Moved {
        from: B256,
        to: B256,
        amount: u128,
        nonce: u64,
        mail_hash: B256,
    },
    /// `AccountDeposited`.
    Deposited {
        account: AccountId,
        claim_key: Address,
        deposit: Deposit,
        nonce: u64,
        mail_hash: B256,
    },
    /// `OwnerBound`.
    OwnerBound {
        account: AccountId,
        owner: Address,
        nonce: u64,
        mail_hash: B256,
    },
    /// `ControllerChanged`.
    ControllerChanged {
        account: AccountId,
        controller: Address,
        nonce: u64,
        mail_hash: B256,
    },
    /// `LimitsChanged`.
    LimitsChanged { account: AccountId, limits: Limits },
}

impl AccountEvent {
    /// Decodes one of the escrow's account logs; `None` for any other log.
    pub fn decode(log: &alloy::primitives::Log) -> Option<Self> {
        use EmailEscrow as E;
        let topic0 = *log.topics().first()?;
        let lim = |p: U256, d: U256| Limits {
            per_payment: p.saturating_to(),
            per_day: d.saturating_to(),
        };
        Some(if topic0 == E::AccountOpened::SIGNATURE_HASH {
            let e = E::AccountOpened::decode_log_data(&log.data).ok()?;
            AccountEvent::Opened {
                account: AccountId(e.account),
                controller: e.controller,
                limits: lim(e.perPayment, e.perDay),
            }
        } else if topic0 == E::Moved::SIGNATURE_HASH {
            let e = E::Moved::decode_log_data(&log.data).ok()?;
            AccountEvent::Moved {
                from: e.from,
                to: e.to,
                amount: e.amount.saturating_to(),
                nonce: e.nonce.saturating_to(),
                mail_hash: e.mailHash,
            }
        } else if topic0 == E::AccountDeposited::SIGNATURE_HASH {
            let e = E::AccountDeposited::decode_log_data(&log.data).ok()?;
            AccountEvent::Deposited {
                account: AccountId(e.account),
                claim_key: e.claimKey,
                deposit: Deposit::from_sol(&e.deposit),
                nonce: e.nonce.saturating_to(),
                mail_hash: e.mailHash,
            }
        } else if topic0 == E::OwnerBound::SIGNATURE_HASH {
            let e = E::OwnerBound::decode_log_data(&log.data).ok()?;
            AccountEvent::OwnerBound {
                account: AccountId(e.account),
                owner: e.owner,
                nonce: e.nonce.saturating_to(),
                mail_hash: e.mailHash,
            }
        } else if topic0 == E::ControllerChanged::SIGNATURE_HASH {
            let e = E::ControllerChanged::decode_log_data(&log.data).ok()?;
            AccountEvent::ControllerChanged {
                account: AccountId(e.account),
                controller: e.controller,
                nonce: e.nonce.saturating_to(),
                mail_hash: e.mailHash,
            }
        } else if topic0 == E::LimitsChanged::SIGNATURE_HASH {
            let e = E::LimitsChanged::decode_log_data(&log.data).ok()?;
            AccountEvent::LimitsChanged {
                account: AccountId(e.account),
                limits: lim(e.perPayment, e.perDay),
            }
        } else {
            return None;
        })
    }
}

/// Human words for the account errors of the escrow (the rest: [`describe_revert`]).
pub(crate) fn describe_account_error(e: &EmailEscrow::EmailEscrowErrors) -> String {
    use EmailEscrow::EmailEscrowErrors as E;
    match e {
        E::AccountNotOpen(e) => format!("the account {} is not open", e.account),
        E::AccountExists(e) => format!(
            "the account {} is open already (or the id is zero)",
            e.account
        ),
        E::NotController(e) => format!(
            "{} may not do this for account {} (it is neither the account's controller nor its owner, or the controller may not do this once an owner is bound)",
            e.caller, e.account
        ),
        E::BadNonce(e) => format!(
            "the movement names nonce {} but account {} is at nonce {} (sent twice, or out of order)",
            e.got, e.account, e.expected
        ),
        E::LimitExceeded(e) => format!(
            "{} base units is above what the controller may still move from account {} now ({} base units: the per-payment limit or what is left of today's)",
            e.amount, e.account, e.allowed
        ),
        E::InsufficientBalance(e) => format!(
            "account {} holds {} base units, less than {}",
            e.account, e.balance, e.amount
        ),
        E::ZeroAddress(_) => "a controller or owner cannot be the zero address".into(),
        E::NotAccountDeposit(e) => format!(
            "accounts hold the native coin only, and a payment from an account must have the FROM_ACCOUNT flag (token {}, flags {})",
            e.token, e.flags
        ),
        other => format!("{other:?}"),
    }
}

/// The 64-byte EIP-2098 form of a signature: `r` and `yParity ‖ s`.
pub fn compact(sig: &Signature) -> (B256, B256) {
    let r = B256::from_slice(&sig.0[..32]);
    let mut vs = B256::from_slice(&sig.0[32..64]);
    if sig.0[64] == 28 {
        vs.0[0] |= 0x80;
    }
    (r, vs)
}

fn u96(v: u128) -> U96 {
    U96::from(v & MAX_AMOUNT)
}

fn u48(v: u64) -> U48 {
    U48::from(v & MAX_LIMIT)
}

/// Appends the paying account after a call's ABI arguments: how `claim`,
/// `claimIntoAccount_195w` and `refund` are told the account a FROM_ACCOUNT deposit binds.
fn with_account(data: Vec<u8>, from: Option<AccountId>) -> Bytes {
    let mut data = data;
    if let Some(a) = from {
        data.extend_from_slice(a.0.as_slice());
    }
    data.into()
}

impl SpringMail {
    fn account_tx(&self, data: impl Into<Bytes>) -> TxRequest {
        TxRequest {
            to: Some(self.escrow()),
            data: data.into(),
            ..Default::default()
        }
    }

    async fn run(
        &self,
        action: &'static str,
        data: impl Into<Bytes>,
    ) -> Result<Receipt, ClientError> {
        let receipt = self.execute(action, self.account_tx(data)).await?;
        crate::client::check(&receipt, action)?;
        Ok(receipt)
    }

    /// Opens `account` under `controller` (anyone may open an account not yet open).
    pub async fn open_account(
        &self,
        account: AccountId,
        controller: Address,
        limits: Limits,
    ) -> Result<Receipt, ClientError> {
        let data = EmailEscrow::createAccount_1sCall {
            account: account.0,
            controller,
            perPayment: u48(limits.per_payment),
            perDay: u48(limits.per_day),
        }
        .abi_encode();
        self.run("opening the account", data).await
    }

    /// The account's words, unpacked (all zero when it is not open).
    pub async fn account(&self, account: AccountId) -> Result<AccountState, ClientError> {
        let data = EmailEscrow::accountOf_sCall { account: account.0 }.abi_encode();
        match self.chain().call(self.escrow(), data.into()).await? {
            CallResult::Success(out) => {
                let r = EmailEscrow::accountOf_sCall::abi_decode_returns(&out).map_err(|_| {
                    ClientError::Decode(format!(
                        "accountOf_s at {} answered {} bytes: is it a version 3 EmailEscrow?",
                        self.escrow(),
                        out.len()
                    ))
                })?;
                Ok(AccountState {
                    balance: r.balance.saturating_to(),
                    spent_today: r.spentToday.saturating_to(),
                    day: r.day.saturating_to(),
                    nonce: r.nonce.saturating_to(),
                    limits: Limits {
                        per_payment: r.perPayment.saturating_to(),
                        per_day: r.perDay.saturating_to(),
                    },
                    controller: r.controller,
                    owner: (r.owner != Address::ZERO).then_some(r.owner),
                })
            }
            CallResult::Reverted(d) => Err(ClientError::Decode(format!(
                "accountOf_s reverted: {}",
                describe_revert(&d)
            ))),
        }
    }

    /// The claim key's `ClaimInto` signature for paying `deposit` into `account`, with
    /// the link's secret (nothing is sent). `paid_from`: the paying account of a
    /// FROM_ACCOUNT deposit.
    pub fn sign_claim_into(
        &self,
        link: &ClaimLink,
        deposit: &Deposit,
        paid_from: Option<AccountId>,
        account: AccountId,
        max_fee: u128,
        deadline: u64,
    ) -> (ClaimIntoAuth, Signature) {
        let auth = ClaimIntoAuth {
            claim_key: link.claim_key(),
            deposit_hash: paid_from
                .map_or_else(|| deposit.hash(), |a| funded_deposit_hash(deposit, a)),
            account,
            max_fee,
            deadline,
        };
        (auth, auth.sign(self.escrow_id(), &link.secret))
    }

    /// Calldata of `claimIntoAccount_195w` (with the paying account appended for a
    /// FROM_ACCOUNT deposit).
    #[allow(clippy::too_many_arguments)]
    pub fn claim_into_calldata(
        &self,
        deposit: &Deposit,
        paid_from: Option<AccountId>,
        auth: &ClaimIntoAuth,
        signature: &Signature,
        fee: u128,
        mv: Movement,
    ) -> Bytes {
        let data = EmailEscrow::claimIntoAccount_195wCall {
            claimKey: auth.claim_key,
            d: deposit.to_sol(),
            account: auth.account.0,
            fee: u96(fee),
            maxFee: u96(auth.max_fee),
            deadline: U40::from(auth.deadline & MAX_TIMESTAMP),
            sigR: compact(signature).0,
            sigVS: compact(signature).1,
            nonce: mv.nonce,
            mailHash: mv.mail_hash,
        }
        .abi_encode();
        with_account(data, paid_from)
    }

    /// Pays an email-mode deposit into `account`, keeping `fee` as the caller's fee. The
    /// caller must be the account's controller and the deposit's watcher; the link's
    /// key signs a `ClaimInto` valid for an hour (or until the expiry).
    pub async fn claim_into(
        &self,
        link: &ClaimLink,
        deposit: &Deposit,
        paid_from: Option<AccountId>,
        account: AccountId,
        fee: u128,
        mv: Movement,
    ) -> Result<Receipt, ClientError> {
        let now = self.chain().head().await?.timestamp;
        let deadline = (now + 3600).min(deposit.expiry);
        let (auth, sig) = self.sign_claim_into(link, deposit, paid_from, account, fee, deadline);
        let data = self.claim_into_calldata(deposit, paid_from, &auth, &sig, fee, mv);
        self.run("the claim into the account", data).await
    }

    /// Moves `amount` from `from` to the open account `to`.
    pub async fn transfer_between(
        &self,
        from: AccountId,
        to: AccountId,
        amount: u128,
        mv: Movement,
    ) -> Result<Receipt, ClientError> {
        let data = EmailEscrow::transferToAccount_1q11Call {
            from: from.0,
            to: to.0,
            amount: u96(amount),
            nonce: mv.nonce,
            mailHash: mv.mail_hash,
        }
        .abi_encode();
        self.run("the transfer between accounts", data).await
    }

    /// The deposit a payment from `from` will make (checked, not sent).
    pub async fn account_deposit(
        &self,
        req: &PayRequest,
        link: &ClaimLink,
    ) -> Result<(Deposit, String), ClientError> {
        let normalized = email::normalize(&req.email)?;
        let expiry = self
            .now()
            .await?
            .saturating_add(req.expires_in.as_secs())
            .min(MAX_TIMESTAMP);
        let deposit = Deposit {
            sender: self.escrow(),
            token: Address::ZERO,
            amount: req.amount,
            expiry,
            flags: FROM_ACCOUNT
                | if req.cancellable {
                    Deposit::CANCELLABLE
                } else {
                    0
                },
            watcher: req.watcher.unwrap_or(Address::ZERO),
            recipient: email::commitment(&normalized, &link.salt)?,
        };
        deposit.validate()?;
        Ok((deposit, normalized))
    }

    /// Pays `req.amount` from account `from` to an email address as a new deposit under
    /// `link` (make it with [`SpringMail::new_link`] and record it first). Returns the
    /// ticket whose link the recipient's notification carries.
    pub async fn pay_email(
        &self,
        from: AccountId,
        req: PayRequest,
        link: ClaimLink,
        mv: Movement,
    ) -> Result<Ticket, ClientError> {
        let id = self.escrow_id();
        if link.chain_id != id.chain_id || link.escrow != id.escrow {
            return Err(ClientError::WrongEscrow {
                link_chain: link.chain_id,
                link_escrow: link.escrow,
                chain: id.chain_id,
                escrow: id.escrow,
            });
        }
        let (deposit, email) = self.account_deposit(&req, &link).await?;
        let data = EmailEscrow::payToEmail_3wqaCall {
            from: from.0,
            claimKey: link.claim_key(),
            d: deposit.to_sol(),
            nonce: mv.nonce,
            mailHash: mv.mail_hash,
        }
        .abi_encode();
        let receipt = self.run("the payment to an email address", data).await?;
        Ok(Ticket {
            link,
            deposit,
            email,
            tx_hash: receipt.tx_hash,
            block_number: receipt.block_number,
            gas_used: receipt.gas_used,
        })
    }

    /// Pays `amount` from `from` to the address `to`.
    pub async fn withdraw_from(
        &self,
        from: AccountId,
        to: Address,
        amount: u128,
        mv: Movement,
    ) -> Result<Receipt, ClientError> {
        let data = EmailEscrow::withdrawFromAccount_4gCall {
            from: from.0,
            to,
            amount: u96(amount),
            nonce: mv.nonce,
            mailHash: mv.mail_hash,
        }
        .abi_encode();
        self.run("the withdrawal from the account", data).await
    }

    /// Binds the owner's key (the controller while none is bound; then only the owner).
    pub async fn bind_owner(
        &self,
        account: AccountId,
        owner: Address,
        mv: Movement,
    ) -> Result<Receipt, ClientError> {
        let data = EmailEscrow::bindOwner_27Call {
            account: account.0,
            owner,
            nonce: mv.nonce,
            mailHash: mv.mail_hash,
        }
        .abi_encode();
        self.run("binding the owner key", data).await
    }

    /// Moves the account to another controller (the owner; or the controller while no
    /// owner is bound).
    pub async fn set_controller(
        &self,
        account: AccountId,
        controller: Address,
        mv: Movement,
    ) -> Result<Receipt, ClientError> {
        let data = EmailEscrow::setController_5cCall {
            account: account.0,
            controller,
            nonce: mv.nonce,
            mailHash: mv.mail_hash,
        }
        .abi_encode();
        self.run("changing the controller", data).await
    }

    /// Sets the controller's limits (the owner; the controller only lower once an
    /// owner is bound).
    pub async fn set_limits(
        &self,
        account: AccountId,
        limits: Limits,
    ) -> Result<Receipt, ClientError> {
        let data = EmailEscrow::setLimits_6Call {
            account: account.0,
            perPayment: u48(limits.per_payment),
            perDay: u48(limits.per_day),
        }
        .abi_encode();
        self.run("setting the limits", data).await
    }

    /// The open deposit an account paid under `claim_key`, from its `AccountDeposited`
    /// log checked against the stored hash, with the paying account.
    pub async fn find_account_deposit(
        &self,
        claim_key: Address,
    ) -> Result<Option<(Deposit, AccountId)>, ClientError> {
        let stored = self.stored_hash(claim_key).await?;
        if stored == B256::ZERO {
            return Ok(None);
        }
        for log in self.account_deposit_logs(claim_key).await?.iter().rev() {
            if let Some(AccountEvent::Deposited {
                deposit, account, ..
            }) = AccountEvent::decode(&log.log)
            {
                if funded_deposit_hash(&deposit, account) == stored {
                    return Ok(Some((deposit, account)));
                }
            }
        }
        Ok(None)
    }

    async fn account_deposit_logs(&self, claim_key: Address) -> Result<Vec<ChainLog>, ClientError> {
        let head = self.chain().head().await?.number;
        let mut out = Vec::new();
        let mut from = self.start_block();
        while from <= head {
            let to = (from + crate::client::LOG_RANGE - 1).min(head);
            let filter = crate::chain::LogFilter {
                address: self.escrow(),
                topics: vec![
                    Some(EmailEscrow::AccountDeposited::SIGNATURE_HASH),
                    None,
                    Some(claim_key.into_word()),
                ],
                from_block: from,
                to_block: Some(to),
            };
            out.extend(self.chain().logs(&filter).await?);
            from = to + 1;
        }
        Ok(out)
    }

    /// Expired deposits the account paid that came back into it (`refund` of a
    /// FROM_ACCOUNT deposit): each `Moved(claimKey → account)` with nonce 0 and no mail
    /// hash, as `(claim key, amount, transaction)`, oldest first. A claim into the
    /// account carries the account's nonce (from 1) and the ordering mail's hash.
    pub async fn refunds_into(
        &self,
        account: AccountId,
    ) -> Result<Vec<(Address, u128, B256)>, ClientError> {
        let head = self.chain().head().await?.number;
        let mut out = Vec::new();
        let mut from = self.start_block();
        while from <= head {
            let to = (from + crate::client::LOG_RANGE - 1).min(head);
            let filter = crate::chain::LogFilter {
                address: self.escrow(),
                topics: vec![
                    Some(EmailEscrow::Moved::SIGNATURE_HASH),
                    None,
                    Some(account.0),
                ],
                from_block: from,
                to_block: Some(to),
            };
            for log in self.chain().logs(&filter).await? {
                if let Some(AccountEvent::Moved {
                    from,
                    amount,
                    nonce: 0,
                    mail_hash,
                    ..
                }) = AccountEvent::decode(&log.log)
                {
                    let claim_key = U256::from_be_bytes(from.0);
                    if mail_hash == B256::ZERO && claim_key < (U256::from(1) << 160) {
                        out.push((Address::from_word(from), amount, log.tx_hash));
                    }
                }
            }
            from = to + 1;
        }
        Ok(out)
    }

    /// Claims a link-mode deposit that an account paid, to the address `to`, with the
    /// link alone (`claimFromAccount_fjv`). An email-mode one only its watcher claims
    /// (to an address, or into an account with [`SpringMail::claim_into`]).
    pub async fn claim_account_deposit_with_link(
        &self,
        link: &ClaimLink,
        to: Address,
    ) -> Result<Receipt, ClientError> {
        let Some((deposit, from)) = self.find_account_deposit(link.claim_key()).await? else {
            return Err(ClientError::NotFound {
                claim_key: link.claim_key(),
                escrow: self.escrow(),
            });
        };
        if !deposit.is_link_mode() {
            return Err(ClientError::NeedsWatcher {
                watcher: deposit.watcher,
            });
        }
        let now = self.chain().head().await?.timestamp;
        let deadline = (now + 3600).min(deposit.expiry);
        let auth = crate::eip712::ClaimAuth {
            claim_key: link.claim_key(),
            deposit_hash: funded_deposit_hash(&deposit, from),
            to,
            max_fee: 0,
            deadline,
        };
        let signed = crate::client::SignedClaim {
            signature: auth.sign_claim(self.escrow_id(), &link.secret),
            auth,
        };
        let (sig_r, sig_vs) = compact(&signed.signature);
        let data = EmailEscrow::claimFromAccount_fjvCall {
            from: from.0,
            claimKey: signed.auth.claim_key,
            d: deposit.to_sol(),
            to,
            fee: u96(0),
            maxFee: u96(0),
            deadline: U40::from(deadline & MAX_TIMESTAMP),
            sigR: sig_r,
            sigVS: sig_vs,
        }
        .abi_encode();
        self.run("the claim", data).await
    }

    /// Refunds a deposit an account paid back into that account (at expiry anyone may;
    /// before, the account's controller or owner when it is cancellable).
    pub async fn refund_to_account(&self, claim_key: Address) -> Result<Receipt, ClientError> {
        let Some((deposit, from)) = self.find_account_deposit(claim_key).await? else {
            return Err(ClientError::NotFound {
                claim_key,
                escrow: self.escrow(),
            });
        };
        let data = EmailEscrow::refundCall {
            claimKey: claim_key,
            d: deposit.to_sol(),
        }
        .abi_encode();
        self.run(
            "the refund into the account",
            with_account(data, Some(from)),
        )
        .await
    }

    /// The account events that name `account` (as account, `from` or `to`), oldest first.
    pub async fn account_history(
        &self,
        account: AccountId,
    ) -> Result<Vec<(ChainLog, AccountEvent)>, ClientError> {
        let head = self.chain().head().await?.number;
        let mut out = Vec::new();
        for topics in [
            vec![None, Some(account.0)],
            vec![
                Some(EmailEscrow::Moved::SIGNATURE_HASH),
                None,
                Some(account.0),
            ],
        ] {
            let mut from = self.start_block();
            while from <= head {
                let to = (from + crate::client::LOG_RANGE - 1).min(head);
                let filter = crate::chain::LogFilter {
                    address: self.escrow(),
                    topics: topics.clone(),
                    from_block: from,
                    to_block: Some(to),
                };
                for log in self.chain().logs(&filter).await? {
                    if let Some(ev) = AccountEvent::decode(&log.log) {
                        out.push((log, ev));
                    }
                }
                from = to + 1;
            }
        }
        out.sort_by_key(|(l, _)| (l.block_number, l.log_index));
        out.dedup_by_key(|(l, _)| (l.block_number, l.log_index));
        Ok(out)
    }
}

/// How long the account calls wait for their receipts.
pub const ACCOUNT_WAIT: Duration = DEFAULT_WAIT;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_ids_bind_the_normalized_address_and_the_salt() {
        let salt = Salt::from_bytes([7; 16]);
        let a = AccountId::commit("Bob@Example.com", &salt).unwrap();
        assert_eq!(a, AccountId::commit("bob@example.com", &salt).unwrap());
        assert_ne!(
            a,
            AccountId::commit("bob@example.com", &Salt::from_bytes([8; 16])).unwrap()
        );
        assert_ne!(a.0, email::commitment("bob@example.com", &salt).unwrap());
        assert!(AccountId::commit("not an address", &salt).is_err());
    }

    #[test]
    fn limits_above_48_bits_are_refused() {
        assert!(Limits::new(MAX_LIMIT, MAX_LIMIT).is_ok());
        assert!(Limits::new(MAX_LIMIT + 1, 0).is_err());
        assert!(Limits::new(0, MAX_LIMIT + 1).is_err());
    }

    #[test]
    fn the_allowance_restarts_on_a_new_day() {
        let s = AccountState {
            balance: 1_000,
            spent_today: 300,
            day: 10,
            nonce: 1,
            limits: Limits {
                per_payment: 200,
                per_day: 400,
            },
            ..Default::default()
        };
        assert_eq!(s.controller_allowance_at(10 * DAY + 5), 100);
        assert_eq!(s.controller_allowance_at(11 * DAY), 200);
    }
}
