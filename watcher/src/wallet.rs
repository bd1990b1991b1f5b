//! Mailbox wallets, the broker's half: orders read from DKIM-proven mail
//! (`springmail_sdk::markup::orders`), judged against the account on chain, carried
//! out as the account's controller, and answered in the same thread.
//!
//! The flow beside the claim pipeline:
//!
//! 1. **Intake** ([`Wallet::intake`], called by the judge stage for mail that passed
//!    authentication and carries no CLAIM block): the order is read and checked for
//!    what needs no chain (its form, the PAY window of the mail's `Date`), and
//!    recorded with the message in the same commit (`wallet_orders`; the Message-ID
//!    and the hash of the raw mail are each recorded once, so a replay is a duplicate).
//! 2. **Orders** (`Watcher::wallet_pass`, once a pass, one order at a time, so
//!    movements of one account never race): each chain step is written to the
//!    journal (`acting`, with the account nonce it uses) before it is sent. After a
//!    crash the nonce tells whether it landed: the account's nonce moved past it →
//!    done; otherwise it is sent again, and a second landing is impossible (the
//!    escrow refuses a used nonce with `BadNonce`).
//! 3. **Replies**: one per order, DKIM-signed, threaded, text and HTML, queued in the
//!    journal's outbox in the commit that finishes the order.
//!
//! The account id's salt is kept in `wallet_accounts` and never logged or written in
//! a reply; neither is a claim link.

pub mod chain;
mod sdk;
mod store;
mod text;

use std::sync::Arc;

use alloy::primitives::{keccak256, Address, B256};
use serde::{Deserialize, Serialize};
use springmail_sdk::amount::{format_units, Asset};
use springmail_sdk::client::DepositStatus;
use springmail_sdk::email::Salt;
use springmail_sdk::link::ClaimLink;
use springmail_sdk::markup::orders::{find_order, ConfirmCode, Order, Recipient};
use tracing::{info, info_span, warn, Instrument};

use crate::authenticate::Authenticated;
use crate::journal::JournalError;
use crate::reply::{OutgoingMail, ReplyContext};
use crate::service::{unix_now, Watcher, WatcherError};

pub use chain::{AccountView, NewDeposit, Sent, WalletChain, WalletChainError};
pub use sdk::{SdkWallet, PAY_EMAIL_EXPIRY};
use store::{OrderRow, State};

/// The account id of a mailbox (docs/PROTOCOL.md, *Account commitment*).
fn account_id(normalized_email: &str, salt: &Salt) -> B256 {
    springmail_sdk::accounts::AccountId::commit(normalized_email, salt)
        .map(|a| a.0)
        .unwrap_or_default()
}

/// The broker's wallet policy (`[wallet]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalletSettings {
    /// The per-payment limit a new account is opened with, base units.
    pub per_payment: u128,
    /// The per-day limit a new account is opened with, base units.
    pub per_day: u128,
    /// Payments above this wait for a CONFIRM with a code, base units.
    pub confirm_above: u128,
    /// A PAY or CONFIRM mail older than this (by its `Date`) is refused, and a
    /// confirmation code expires after it, seconds.
    pub order_window: u64,
    /// How long a payment to a new email waits to be claimed before anyone may
    /// refund it into the paying account, seconds.
    pub pay_expiry: u64,
}

impl Default for WalletSettings {
    fn default() -> Self {
        WalletSettings {
            per_payment: 10 * 100_000_000,
            per_day: 50 * 100_000_000,
            confirm_above: 100_000_000,
            order_window: 86_400,
            pay_expiry: PAY_EMAIL_EXPIRY.as_secs(),
        }
    }
}

/// `[wallet]` as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWallet {
    /// Read orders at all (default false).
    pub enabled: Option<bool>,
    /// Per-payment limit of new accounts, decimal in the native asset.
    pub per_payment: Option<String>,
    /// Per-day limit of new accounts, decimal in the native asset.
    pub per_day: Option<String>,
    /// Payments above this wait for a confirmation code, decimal in the native asset.
    pub confirm_above: Option<String>,
    /// Oldest PAY or CONFIRM mail accepted, and a code's lifetime, seconds.
    pub order_window_secs: Option<u64>,
    /// Lifetime of a payment to a new email before it can come back, seconds.
    pub pay_expiry_secs: Option<u64>,
}

/// The most of a PAY's text forwarded with a payment to a name of ours.
const MAX_NOTE: usize = 16 * 1024;

/// The largest limit the escrow stores (`uint48`).
const MAX_LIMIT: u128 = (1 << 48) - 1;

impl RawWallet {
    /// The settings, or `None` when disabled; each bad value is pushed to `issues`
    /// under its key.
    pub fn validate(
        &self,
        asset: &Asset,
        issues: &mut Vec<springmail_sdk::config::ConfigIssue>,
    ) -> Option<WalletSettings> {
        let mut bad = |key: &str, problem: String| {
            issues.push(springmail_sdk::config::ConfigIssue {
                key: format!("wallet.{key}"),
                problem,
            })
        };
        let defaults = WalletSettings::default();
        let mut amount = |key: &str, v: &Option<String>, default: u128| match v {
            None => Some(default),
            Some(text) => match springmail_sdk::amount::parse_units(text.trim(), asset) {
                Ok(u) if u > MAX_LIMIT => {
                    bad(
                        key,
                        format!(
                            "is above the escrow's largest limit ({})",
                            format_units(MAX_LIMIT, asset.decimals())
                        ),
                    );
                    None
                }
                Ok(u) => Some(u),
                Err(e) => {
                    bad(key, e.to_string());
                    None
                }
            },
        };
        let per_payment = amount("per_payment", &self.per_payment, defaults.per_payment);
        let per_day = amount("per_day", &self.per_day, defaults.per_day);
        let confirm_above = amount("confirm_above", &self.confirm_above, defaults.confirm_above);
        let window = self.order_window_secs.unwrap_or(defaults.order_window);
        if !(60..=30 * 86_400).contains(&window) {
            bad(
                "order_window_secs",
                "must be between 60 and 2592000 (30 days)".into(),
            );
        }
        let pay_expiry = self.pay_expiry_secs.unwrap_or(defaults.pay_expiry);
        if !(60..=365 * 86_400).contains(&pay_expiry) {
            bad(
                "pay_expiry_secs",
                "must be between 60 and 31536000 (365 days)".into(),
            );
        }
        if let (Some(p), Some(d)) = (per_payment, per_day) {
            if p > d {
                bad(
                    "per_payment",
                    "is above per_day; no payment could use it".into(),
                );
            }
        }
        if !self.enabled.unwrap_or(false) {
            return None;
        }
        Some(WalletSettings {
            per_payment: per_payment?,
            per_day: per_day?,
            confirm_above: confirm_above?,
            order_window: window,
            pay_expiry,
        })
    }
}

/// The wallet: its policy and the chain it moves money on.
#[derive(Clone)]
pub struct Wallet {
    settings: WalletSettings,
    chain: Arc<dyn WalletChain>,
    /// Broker names (ours and our peers'), when the address layer runs.
    names: Option<crate::addresses::PayNames>,
}

impl std::fmt::Debug for Wallet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wallet")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// Where a payment goes, as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Target {
    Email(String),
    Address(Address),
}

/// An order as recorded at intake.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub(crate) enum Request {
    /// Take the deposit of the answered notification into the wallet; the bare link
    /// (secret), forgotten once carried out.
    Claim {
        link: Option<String>,
    },
    Balance,
    Pay {
        /// Base units of the native coin, as a decimal string.
        amount: String,
        to: Target,
        /// A CONFIRM with its code came.
        confirmed: bool,
        /// The hash of the PAY mail, when a CONFIRM carries it out.
        ordered_by: Option<String>,
        /// A broker name as written (base58 local parts are case-sensitive).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
        /// The PAY's text, forwarded to the mailbox registered for a name of ours.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        note: Option<String>,
        /// The RESOLVE request asking a peer broker for the name's address.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        resolve: Option<String>,
    },
    Confirm {
        code: Option<String>,
        /// The Message-IDs the CONFIRM mail answers (`In-Reply-To`, `References`).
        thread: Vec<String>,
    },
    /// Bind this owner key (its signature checked at intake).
    Bind {
        owner: Address,
    },
    /// Answered with a sentence only.
    Refuse {
        sentence: String,
    },
}

impl Request {
    fn kind(&self) -> &'static str {
        match self {
            Request::Claim { .. } => "claim",
            Request::Balance => "balance",
            Request::Pay { .. } => "pay",
            Request::Confirm { .. } => "confirm",
            Request::Bind { .. } => "bind",
            Request::Refuse { .. } => "refused",
        }
    }
}

/// An order read from a mail, to be recorded with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Intake {
    pub(crate) email: String,
    pub(crate) mail_hash: String,
    pub(crate) request: Request,
}

impl Intake {
    /// The outcome code the message is recorded with.
    pub fn code(&self) -> String {
        format!("wallet-{}", self.request.kind())
    }
}

/// A chain step, recorded before it is sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case")]
enum Step {
    Claim {
        nonce: u32,
    },
    Transfer {
        nonce: u32,
        to_account: String,
        to_email: String,
    },
    PayEmail {
        nonce: u32,
        /// The new deposit's link (secret), made before sending so that a restart
        /// after the payment landed can still notify the recipient.
        link: String,
    },
    Withdraw {
        nonce: u32,
    },
    /// A withdrawal to the address a broker name stands for.
    PayName {
        nonce: u32,
        address: Address,
        name: String,
        /// The peer broker told by RECEIPT.
        peer: Option<String>,
        /// The registered mailbox the PAY's text is forwarded to.
        forward_to: Option<String>,
    },
    Bind {
        nonce: u32,
    },
}

impl Step {
    fn nonce(&self) -> u32 {
        match self {
            Step::Claim { nonce }
            | Step::Transfer { nonce, .. }
            | Step::PayEmail { nonce, .. }
            | Step::Withdraw { nonce }
            | Step::PayName { nonce, .. }
            | Step::Bind { nonce } => *nonce,
        }
    }
}

/// What to do with a PAY, judged from the account as the chain holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PayDecision {
    /// Refused with this sentence; nothing is sent to the chain.
    Refuse(String),
    /// Ask for a confirmation code first.
    AskConfirm,
    /// Carry it out.
    Act,
}

/// Judges a payment of `amount` from `view` at chain day `today`. `self_pay`: the
/// recipient is the payer's own mailbox.
pub(crate) fn judge_pay(
    settings: &WalletSettings,
    view: &AccountView,
    amount: u128,
    today: u64,
    confirmed: bool,
    self_pay: bool,
    asset: &Asset,
) -> PayDecision {
    let f = |units: u128| {
        format!(
            "{} {}",
            format_units(units, asset.decimals()),
            asset.symbol()
        )
    };
    if self_pay {
        return PayDecision::Refuse(
            "The payment names your own mailbox; a wallet does not pay itself.".into(),
        );
    }
    if amount > view.balance {
        return PayDecision::Refuse(format!(
            "Your wallet holds {}, less than the {} you asked to pay.",
            f(view.balance),
            f(amount)
        ));
    }
    if amount > view.per_payment {
        return PayDecision::Refuse(format!(
            "{} is above your wallet's limit of {} per payment.",
            f(amount),
            f(view.per_payment)
        ));
    }
    let left = view.left_today(today);
    if amount > left {
        return PayDecision::Refuse(format!(
            "{} is above what your wallet may still pay today ({} of its {} a day).",
            f(amount),
            f(left),
            f(view.per_day)
        ));
    }
    if amount > settings.confirm_above && !confirmed {
        return PayDecision::AskConfirm;
    }
    PayDecision::Act
}

pub use springmail_sdk::accounts::{bind_digest, bind_text};

/// True when `signature` over [`bind_text`] is `owner`'s key: its EVM address, or
/// on Qtum its hash160 (what `msg.sender` is there).
pub fn bind_signature_valid(
    normalized_email: &str,
    chain_id: u64,
    escrow: Address,
    owner: Address,
    signature: &springmail_sdk::keys::Signature,
) -> bool {
    let digest = bind_digest(&bind_text(normalized_email, chain_id, escrow, owner));
    signature
        .signed_by("Signature", &digest, owner)
        .unwrap_or(false)
}

/// Finds a claim link in the mail's texts (a reply quotes the notification's).
fn find_link(texts: &[String]) -> Option<ClaimLink> {
    texts.iter().find_map(|t| ClaimLink::find_in(t))
}

/// The mail's `Date`, unix seconds.
fn mail_date(raw: &[u8]) -> Option<u64> {
    let message = mail_parser::MessageParser::default().parse_headers(raw)?;
    let t = message.date()?.to_timestamp();
    (t > 0).then_some(t as u64)
}

impl Wallet {
    /// A wallet moving money on `chain` under `settings`.
    pub fn new(settings: WalletSettings, chain: Arc<dyn WalletChain>) -> Self {
        Wallet {
            settings,
            chain,
            names: None,
        }
    }

    /// Pays broker names through the address layer: `<q-address>@` and aliases of
    /// this broker from its book, names at peer brokers by RESOLVE, then RECEIPT.
    pub fn with_names(mut self, names: crate::addresses::PayNames) -> Self {
        self.names = Some(names);
        self
    }

    /// The policy.
    pub fn settings(&self) -> &WalletSettings {
        &self.settings
    }

    fn asset(&self) -> Asset {
        Asset::for_chain(self.chain.chain_id())
    }

    fn fmt(&self, units: u128) -> String {
        let a = self.asset();
        format!("{} {}", format_units(units, a.decimals()), a.symbol())
    }

    /// Reads the order of an authenticated mail, at wall-clock `now`. `None`: not a
    /// wallet mail (a CLAIM block, or nothing the wallet reads), left to the claim path.
    pub fn intake(&self, mail: &Authenticated, raw: &[u8], now: u64) -> Option<Intake> {
        if !matches!(
            crate::verify::find_claim_block(&mail.texts, &[]),
            Err(crate::verify::RefusalReason::NoClaimBlock)
        ) {
            return None;
        }
        // HTML-only mail carries no order: the claim path answers it as today.
        let body = mail
            .texts
            .iter()
            .find(|t| !t.trim().is_empty())
            .or(mail.texts.first())?;
        let chain_id = self.chain.chain_id();
        let found = find_order(Some(&mail.subject), body, chain_id, &[]);
        let request = match found {
            Err(e) => Request::Refuse {
                sentence: format!("The order could not be read: {e}."),
            },
            Ok(None) => {
                // A plain reply to a notification takes its deposit (the design the
                // notification states); anything else is not the wallet's.
                find_link(&mail.texts)?;
                self.claim_request(&mail.texts)
            }
            Ok(Some(found)) => match found.order {
                Order::Claim => self.claim_request(&mail.texts),
                Order::Balance => Request::Balance,
                Order::Pay(pay) => match self.window(raw, now) {
                    Some(refusal) => refusal,
                    None if pay.amount.asset().symbol() != self.asset().symbol() => {
                        Request::Refuse {
                            sentence: format!(
                                "Mailbox wallets hold {} only.",
                                self.asset().symbol()
                            ),
                        }
                    }
                    None => {
                        let (name, note) = match &pay.to {
                            Recipient::Email(e) => self.name_of(mail, body, e),
                            Recipient::Address(_) => (None, None),
                        };
                        Request::Pay {
                            amount: pay.amount.units().to_string(),
                            to: match pay.to {
                                Recipient::Email(e) => Target::Email(e),
                                Recipient::Address(a) => Target::Address(a),
                            },
                            confirmed: false,
                            ordered_by: None,
                            name,
                            note,
                            resolve: None,
                        }
                    }
                },
                Order::Confirm(code) => match self.window(raw, now) {
                    Some(refusal) => refusal,
                    None => Request::Confirm {
                        code: code.map(|c| c.to_string()),
                        thread: mail.references.clone(),
                    },
                },
                Order::Bind(bind) => {
                    if bind_signature_valid(
                        &mail.from,
                        chain_id,
                        self.chain.escrow(),
                        bind.owner,
                        &bind.signature,
                    ) {
                        Request::Bind { owner: bind.owner }
                    } else {
                        Request::Refuse {
                            sentence: format!(
                                "The signature is not {}'s signature of the binding text for {} at this broker's escrow (docs/PROTOCOL-TEXT.md, BIND's signed text).",
                                springmail_sdk::qtum::format_address(chain_id, bind.owner),
                                mail.from
                            ),
                        }
                    }
                }
            },
        };
        Some(Intake {
            email: mail.from.clone(),
            mail_hash: format!("0x{}", hex::encode(keccak256(raw))),
            request,
        })
    }

    /// For a payment to a broker name (ours or a peer's): the name as written, and
    /// for ours the text to forward to its registered mailbox.
    fn name_of(
        &self,
        mail: &Authenticated,
        body: &str,
        normalized: &str,
    ) -> (Option<String>, Option<String>) {
        let Some(names) = &self.names else {
            return (None, None);
        };
        let domain = normalized.rsplit_once('@').map_or("", |(_, d)| d);
        let ours = names.is_ours(domain);
        if !ours && !names.is_peer(domain) {
            return (None, None);
        }
        let written = std::iter::once(mail.subject.as_str())
            .chain(std::iter::once(body))
            .flat_map(|t| t.split(|c: char| c.is_whitespace() || "<>,;:()\"'".contains(c)))
            .map(|w| w.trim_end_matches('.'))
            .find(|w| w.to_ascii_lowercase() == normalized)
            .unwrap_or(normalized)
            .to_string();
        let note = ours.then(|| {
            let mut t = body.to_string();
            let mut cut = MAX_NOTE.min(t.len());
            while !t.is_char_boundary(cut) {
                cut -= 1;
            }
            t.truncate(cut);
            t
        });
        (Some(written), note)
    }

    fn claim_request(&self, texts: &[String]) -> Request {
        match find_link(texts) {
            Some(link) => Request::Claim {
                link: Some(link.to_bare()),
            },
            None => Request::Refuse {
                sentence: "There is no notification in your reply to take a deposit from: answer the notification mail itself, keeping its text quoted.".into(),
            },
        }
    }

    /// The refusal of a PAY or CONFIRM mail outside the order window.
    fn window(&self, raw: &[u8], now: u64) -> Option<Request> {
        let window = self.settings.order_window;
        let refuse = |sentence: String| Some(Request::Refuse { sentence });
        match mail_date(raw) {
            None => refuse("The order has no readable Date; it was not carried out.".into()),
            Some(date) if date > now + 600 => refuse(format!(
                "The order is dated {}, in the future; it was not carried out.",
                springmail_sdk::mail::human_date(date)
            )),
            Some(date) if now.saturating_sub(date) > window => refuse(format!(
                "The order was written at {}, longer ago than the {} minutes this broker accepts; it was not carried out. Send it again if you still want it.",
                springmail_sdk::mail::human_date(date),
                window / 60
            )),
            Some(_) => None,
        }
    }
}

/// Records an order with its message (inside the judge's commit). `false` when a mail
/// with the same bytes was recorded before.
pub(crate) fn record(
    tx: &mut crate::journal::JournalTx<'_>,
    message_id: i64,
    ctx: &ReplyContext,
    intake: &Intake,
) -> Result<bool, JournalError> {
    tx.sql(|c| {
        store::insert_order(
            c,
            message_id,
            &intake.email,
            &intake.mail_hash,
            &intake.request,
            ctx,
            unix_now(),
        )
    })
}

/// How one order's handling ended in this pass.
enum Progress {
    /// Its state moved.
    Moved,
    /// The chain could not be reached; tried again in a later pass.
    Waiting,
    /// Waiting for another broker's answer: later orders of the same mailbox wait,
    /// others go on.
    Pending,
}

/// A movement to list in a mailbox's history: whose, which order, `in`/`out`, what,
/// how much, with whom.
type Moved = (
    String,
    Option<i64>,
    &'static str,
    &'static str,
    u128,
    String,
);

/// A finished order's effects, written in one commit.
#[derive(Default)]
struct Finish {
    state: Option<State>,
    tx_hash: Option<String>,
    outcome: String,
    request: Option<Request>,
    movements: Vec<Moved>,
    mails: Vec<OutgoingMail>,
}

impl crate::config::Settings {
    /// The mailbox wallet `[wallet]` asks for, moving money as `parts`' client.
    pub fn wallet_for(&self, parts: &crate::service::WatcherParts) -> Option<Wallet> {
        let settings = self.wallet.clone()?;
        let chain = SdkWallet::new(parts.client.clone(), self.native_fee)
            .with_pay_expiry(std::time::Duration::from_secs(settings.pay_expiry));
        let mut wallet = Wallet::new(settings, Arc::new(chain));
        // Without the address layer (or if it cannot be made: the ingress reports
        // why at its start), names are paid as ordinary emails.
        if let (Ok(Some((_, desk))), Some(ingress)) = (self.address_layer(), &self.smtp_ingress) {
            wallet = wallet.with_names(crate::addresses::PayNames::new(
                desk,
                ingress.peers.clone(),
                ingress.resolve_timeout,
            ));
        }
        Some(wallet)
    }
}

impl Watcher {
    /// Adds the mailbox wallet: orders in mail are read and carried out.
    pub fn with_wallet(mut self, wallet: Wallet) -> Result<Self, WatcherError> {
        self.journal.with_conn(|c| store::create(c))?;
        self.wallet = Some(Arc::new(wallet));
        Ok(self)
    }

    /// Carries out recorded orders, oldest first, one at a time. Returns whether any
    /// moved on.
    pub(crate) async fn wallet_pass(&mut self) -> Result<bool, WatcherError> {
        let Some(wallet) = self.wallet.clone() else {
            return Ok(false);
        };
        let orders = self.journal.with_conn(|c| store::open_orders(c))?;
        let mut progressed = false;
        let mut held = std::collections::HashSet::new();
        for order in orders {
            if held.contains(&order.email) {
                continue;
            }
            let span = info_span!("order", id = order.id, kind = order.request.kind());
            let email = order.email.clone();
            match self.wallet_one(&wallet, order).instrument(span).await? {
                Progress::Moved => progressed = true,
                // Later orders of the same mailbox must not overtake it.
                Progress::Waiting => break,
                Progress::Pending => {
                    held.insert(email);
                }
            }
        }
        Ok(progressed)
    }

    async fn wallet_commit(&self, order: &OrderRow, finish: Finish) -> Result<(), WatcherError> {
        let (id, message_id) = (order.id, order.message_id);
        self.journal
            .commit(move |tx| {
                tx.sql(|c| {
                    let now = unix_now();
                    if let Some(r) = &finish.request {
                        store::set_request(c, id, r)?;
                    }
                    for (who, order_id, dir, what, amount, party) in &finish.movements {
                        store::movement(
                            c,
                            who,
                            *order_id,
                            dir,
                            what,
                            *amount,
                            party,
                            finish.tx_hash.as_deref(),
                            now,
                        )?;
                    }
                    for m in &finish.mails {
                        store::queue_mail(c, message_id, m, now)?;
                    }
                    store::set_state(
                        c,
                        id,
                        finish.state.unwrap_or(State::Done),
                        None,
                        finish.tx_hash.as_deref(),
                        Some(&finish.outcome),
                        now,
                    )
                })
            })
            .await?;
        Ok(())
    }

    fn wallet_reply(
        &self,
        ctx: &ReplyContext,
        tag: &str,
        body: &text::Body,
    ) -> Result<(OutgoingMail, String), WatcherError> {
        // A mail that answers none (a credit to another wallet) keeps its subject.
        let subject = match ctx.message_id {
            Some(_) => crate::reply::reply_subject(&ctx.subject),
            None => ctx.subject.clone(),
        };
        self.composer
            .compose_parts(
                ctx,
                tag,
                &subject,
                &body.text(),
                Some(&body.html()),
                unix_now(),
            )
            .map_err(|e| WatcherError::Setup(e.to_string()))
    }

    /// Answers with a sentence and finishes the order.
    async fn wallet_refuse(
        &self,
        order: &OrderRow,
        sentence: String,
    ) -> Result<Progress, WatcherError> {
        // The sentence may name mailboxes: it goes to the journal and the reply, not the log.
        info!("order refused");
        let body = text::Body::new(&sentence).then("Nothing was moved.");
        let (mail, _) = self.wallet_reply(&order.ctx, "wallet-refused", &body)?;
        self.wallet_commit(
            order,
            Finish {
                outcome: format!("refused: {sentence}"),
                mails: vec![mail],
                ..Finish::default()
            },
        )
        .await?;
        Ok(Progress::Moved)
    }

    async fn wallet_one(&self, wallet: &Wallet, order: OrderRow) -> Result<Progress, WatcherError> {
        let outcome = match order.request.clone() {
            Request::Refuse { sentence } => return self.wallet_refuse(&order, sentence).await,
            Request::Balance => self.wallet_balance(wallet, &order).await,
            Request::Claim { link } => self.wallet_claim(wallet, &order, link).await,
            Request::Pay { .. } => self.wallet_pay(wallet, &order).await,
            Request::Confirm { code, thread } => {
                self.wallet_confirm(wallet, order.clone(), code, thread)
                    .await
            }
            Request::Bind { owner } => self.wallet_bind(wallet, &order, owner).await,
        };
        match outcome {
            Ok(p) => Ok(p),
            Err(Stop::Chain(WalletChainError::Unavailable(e))) => {
                warn!(error = %e, "the chain is unavailable; the order waits");
                Ok(Progress::Waiting)
            }
            Err(Stop::Chain(e)) => {
                self.wallet_refuse(&order, format!("The escrow refused it ({e})."))
                    .await
            }
            Err(Stop::Watcher(e)) => Err(e),
        }
    }

    async fn wallet_balance(&self, wallet: &Wallet, order: &OrderRow) -> Result<Progress, Stop> {
        let email = order.email.clone();
        let (acct, movements) = self.journal.with_conn(|c| {
            Ok((
                store::account_of(c, &email)?,
                store::recent_movements(c, &email, 10)?,
            ))
        })?;
        let Some(acct) = acct else {
            return Ok(self.wallet_refuse(order, text::NO_WALLET.into()).await?);
        };
        let view = wallet.chain.account(parse_b256(&acct.account)).await?;
        let balance = view.map(|v| v.balance).unwrap_or(0);
        // Refunds happen on chain without an order (anyone refunds an expired
        // deposit), so the journal has no row for them: the escrow's events tell.
        let refunds = wallet.chain.refunds_into(parse_b256(&acct.account)).await?;
        let mut body = text::Body::new(&format!(
            "Your mailbox wallet holds {}.",
            wallet.fmt(balance)
        ));
        if let Some(v) = view {
            body = body.then(&format!(
                "Limits: {} per payment, {} a day.",
                wallet.fmt(v.per_payment),
                wallet.fmt(v.per_day)
            ));
            body = body.then(&match v.owner {
                Some(owner) => format!(
                    "Owner key: {} (it withdraws without this broker).",
                    springmail_sdk::qtum::format_address(wallet.chain.chain_id(), owner)
                ),
                None => "No owner key is bound yet: reply \"bind\" with your address and its signature to be able to withdraw without this broker.".into(),
            });
        }
        if movements.is_empty() {
            body = body.then("No movements yet.");
        } else {
            body = body.then("Recent movements, newest first:");
            for m in &movements {
                let sign = if m.direction == "in" { "+" } else { "-" };
                body = body.item(&format!(
                    "{}  {sign}{}  {} {}  transaction {}",
                    springmail_sdk::mail::human_date(m.at),
                    wallet.fmt(m.amount),
                    m.what,
                    m.party,
                    m.tx_hash.as_deref().unwrap_or("(not recorded)")
                ));
            }
        }
        if !refunds.is_empty() {
            body = body.then("Payments nobody claimed in time, back in your wallet:");
            for (claim_key, amount, tx) in refunds.iter().rev().take(10) {
                body = body.item(&format!(
                    "+{}  refund of the payment with claim key {}  transaction {tx}",
                    wallet.fmt(*amount),
                    claim_key.to_checksum(None)
                ));
            }
        }
        let (mail, _) = self.wallet_reply(&order.ctx, "wallet-balance", &body)?;
        self.wallet_commit(
            order,
            Finish {
                outcome: format!("balance {balance}"),
                mails: vec![mail],
                ..Finish::default()
            },
        )
        .await?;
        Ok(Progress::Moved)
    }

    /// The mailbox's account, opened on chain if it is not yet (registered with its
    /// salt before the opening is sent, so a crash keeps the same id).
    async fn ensure_account(
        &self,
        wallet: &Wallet,
        email: &str,
    ) -> Result<(B256, AccountView, bool), Stop> {
        let e = email.to_string();
        let row = self.journal.with_conn(|c| store::account_of(c, &e))?;
        let row = match row {
            Some(r) => r,
            None => {
                let salt = Salt::random();
                let id = account_id(email, &salt);
                let (e, hex_salt, id_hex) = (email.to_string(), salt.expose_hex(), id.to_string());
                self.journal
                    .commit(move |tx| {
                        tx.sql(|c| store::register(c, &e, &id_hex, &hex_salt, unix_now()))
                    })
                    .await
                    .map_err(WatcherError::from)?;
                let e = email.to_string();
                self.journal
                    .with_conn(|c| store::account_of(c, &e))?
                    .expect("just registered")
            }
        };
        let id = parse_b256(&row.account);
        if let Some(view) = wallet.chain.account(id).await? {
            return Ok((id, view, false));
        }
        let s = &wallet.settings;
        let sent = wallet
            .chain
            .open_account(id, s.per_payment, s.per_day)
            .await?;
        info!(tx = %sent.tx_hash, "account opened");
        let (e, tx_hash) = (email.to_string(), sent.tx_hash.clone());
        self.journal
            .commit(move |tx| tx.sql(|c| store::opened(c, &e, &tx_hash)))
            .await
            .map_err(WatcherError::from)?;
        let view = wallet.chain.account(id).await?.ok_or_else(|| {
            Stop::Chain(WalletChainError::Unavailable(
                "the account is not open after its opening was mined".into(),
            ))
        })?;
        Ok((id, view, true))
    }

    /// Records the chain step an order is about to send.
    async fn begin_step(&self, order: &OrderRow, step: &Step) -> Result<(), WatcherError> {
        let (id, json) = (order.id, serde_json::to_string(step).expect("serializable"));
        self.journal
            .commit(move |tx| {
                tx.sql(|c| {
                    store::set_state(c, id, State::Acting, Some(&json), None, None, unix_now())
                })
            })
            .await?;
        self.crash(crate::crash::CrashPoint::WalletStepRecorded)?;
        Ok(())
    }

    /// The recorded step of an order that was acting when the watcher stopped, and
    /// whether it already landed (the account's nonce moved past it).
    async fn resumed_step(
        &self,
        wallet: &Wallet,
        order: &OrderRow,
        account: B256,
    ) -> Result<Option<(Step, bool)>, Stop> {
        let Some(step) = order
            .step
            .as_deref()
            .filter(|_| order.state == State::Acting)
            .and_then(|s| serde_json::from_str::<Step>(s).ok())
        else {
            return Ok(None);
        };
        let landed = wallet
            .chain
            .account(account)
            .await?
            .is_some_and(|v| v.nonce > step.nonce());
        Ok(Some((step, landed)))
    }

    async fn wallet_claim(
        &self,
        wallet: &Wallet,
        order: &OrderRow,
        link: Option<String>,
    ) -> Result<Progress, Stop> {
        let Some(link) = link.and_then(|l| ClaimLink::parse(&l).ok()) else {
            return Ok(self
                .wallet_refuse(order, "The claim link in your reply cannot be read.".into())
                .await?);
        };
        let chain = &wallet.chain;
        if link.chain_id != chain.chain_id() || link.escrow != chain.escrow() {
            return Ok(self
                .wallet_refuse(
                    order,
                    "The notification you answered is for another escrow than this broker's."
                        .into(),
                )
                .await?);
        }
        let resumed = match self
            .journal
            .with_conn(|c| store::account_of(c, &order.email))?
        {
            Some(row) => {
                self.resumed_step(wallet, order, parse_b256(&row.account))
                    .await?
            }
            None => None,
        };
        if !matches!(resumed, Some((_, true))) {
            let deposit = match chain.deposit(link.claim_key()).await? {
                DepositStatus::Open { deposit, .. } => deposit,
                DepositStatus::Expired { .. } => {
                    return Ok(self
                        .wallet_refuse(
                            order,
                            "The deposit has expired; its sender can take it back.".into(),
                        )
                        .await?)
                }
                DepositStatus::Claimed { tx_hash, .. } => {
                    return Ok(self
                        .wallet_refuse(
                            order,
                            format!("The deposit was already claimed (transaction {tx_hash})."),
                        )
                        .await?)
                }
                DepositStatus::Refunded { .. } => {
                    return Ok(self
                        .wallet_refuse(order, "The deposit was refunded to its sender.".into())
                        .await?)
                }
                DepositStatus::Unknown => {
                    return Ok(self
                        .wallet_refuse(order, "There is no open deposit for this notification: it was already claimed, refunded, or never made.".into())
                        .await?)
                }
            };
            let mine = springmail_sdk::email::commitment(&order.email, &link.salt)
                .is_ok_and(|c| c == deposit.recipient);
            if !mine {
                return Ok(self
                    .wallet_refuse(
                        order,
                        "This deposit was not sent to the address you wrote from.".into(),
                    )
                    .await?);
            }
        }
        let (account, view, opened) = self.ensure_account(wallet, &order.email).await?;
        let mail_hash = parse_b256(&order.mail_hash);
        let (tx_hash, credited) = match resumed {
            Some((_, true)) => (None, None),
            other => {
                let nonce = match other {
                    Some((step, false)) => step.nonce(),
                    _ => {
                        let step = Step::Claim { nonce: view.nonce };
                        self.begin_step(order, &step).await?;
                        view.nonce
                    }
                };
                match chain.claim_into(&link, account, nonce, mail_hash).await {
                    Ok((sent, credited)) => {
                        self.crash(crate::crash::CrashPoint::WalletAfterSend)?;
                        (Some(sent.tx_hash), Some(credited))
                    }
                    Err(WalletChainError::BadNonce) => (None, None),
                    Err(e) => return Err(e.into()),
                }
            }
        };
        let after = chain
            .account(account)
            .await?
            .map(|v| v.balance)
            .unwrap_or(0);
        let credited = credited.unwrap_or_else(|| after.saturating_sub(view.balance));
        info!(
            tx = tx_hash.as_deref().unwrap_or("-"),
            "claimed into the wallet"
        );
        let mut body = text::Body::new(&format!(
            "{} landed in your mailbox wallet; it now holds {}.",
            wallet.fmt(credited),
            wallet.fmt(after)
        ));
        if let Some(tx) = &tx_hash {
            body = body.then(&format!("Transaction id: {tx}"));
        }
        if opened {
            body = body
                .then(text::OPENED)
                .then(&format!("Your wallet's account id on chain: {account}"));
        }
        body = body.then(text::HOW_TO);
        let (mail, _) = self.wallet_reply(&order.ctx, "wallet-claimed", &body)?;
        self.wallet_commit(
            order,
            Finish {
                tx_hash: tx_hash.clone(),
                outcome: format!("claimed {credited}"),
                request: Some(Request::Claim { link: None }),
                movements: vec![(
                    order.email.clone(),
                    Some(order.id),
                    "in",
                    "claimed from",
                    credited,
                    "a notification".into(),
                )],
                mails: vec![mail],
                ..Finish::default()
            },
        )
        .await?;
        Ok(Progress::Moved)
    }

    async fn wallet_bind(
        &self,
        wallet: &Wallet,
        order: &OrderRow,
        owner: Address,
    ) -> Result<Progress, Stop> {
        let chain = &wallet.chain;
        let e = order.email.clone();
        let Some(row) = self.journal.with_conn(|c| store::account_of(c, &e))? else {
            return Ok(self.wallet_refuse(order, text::NO_WALLET.into()).await?);
        };
        let account = parse_b256(&row.account);
        let Some(view) = chain.account(account).await? else {
            return Ok(self.wallet_refuse(order, text::NO_WALLET.into()).await?);
        };
        let written = springmail_sdk::qtum::format_address(chain.chain_id(), owner);
        let resumed = self.resumed_step(wallet, order, account).await?;
        let tx_hash = match (resumed, view.owner) {
            (Some((_, true)), _) => None,
            (None, Some(bound)) if bound == owner => {
                return Ok(self
                    .wallet_refuse(
                        order,
                        format!("{written} is already your wallet's owner key."),
                    )
                    .await?)
            }
            (None, Some(bound)) => {
                return Ok(self
                    .wallet_refuse(
                        order,
                        format!(
                        "Your wallet already has an owner key, {}; only that key can change it.",
                        springmail_sdk::qtum::format_address(chain.chain_id(), bound)
                    ),
                    )
                    .await?)
            }
            (resumed, None) => {
                let nonce = match resumed {
                    Some((step, _)) => step.nonce(),
                    None => {
                        self.begin_step(order, &Step::Bind { nonce: view.nonce })
                            .await?;
                        view.nonce
                    }
                };
                match chain
                    .bind_owner(account, owner, nonce, parse_b256(&order.mail_hash))
                    .await
                {
                    Ok(sent) => {
                        self.crash(crate::crash::CrashPoint::WalletAfterSend)?;
                        Some(sent.tx_hash)
                    }
                    Err(WalletChainError::BadNonce) => None,
                    Err(e) => return Err(e.into()),
                }
            }
            (Some(_), Some(_)) => None,
        };
        info!(tx = tx_hash.as_deref().unwrap_or("-"), "owner key bound");
        let body = text::Body::new(&format!("{written} is now your wallet's owner key."))
            .then("With it you can withdraw your balance yourself, without this broker, even if it disappears; this broker can still pay on your mail within your limits, and can no longer change the owner.")
            .then(&format!(
                "Your wallet's account id, which your key's withdrawals name: {account}"
            ))
            .then(&format!(
                "Transaction id: {}",
                tx_hash.as_deref().unwrap_or("(sent before a restart)")
            ));
        let (mail, _) = self.wallet_reply(&order.ctx, "wallet-bound", &body)?;
        self.wallet_commit(
            order,
            Finish {
                tx_hash,
                outcome: format!("bound {written}"),
                mails: vec![mail],
                ..Finish::default()
            },
        )
        .await?;
        Ok(Progress::Moved)
    }

    async fn wallet_confirm(
        &self,
        wallet: &Wallet,
        order: OrderRow,
        code: Option<String>,
        thread: Vec<String>,
    ) -> Result<Progress, Stop> {
        let mut thread = thread;
        thread.extend(order.ctx.message_id.clone());
        let (email, c2) = (order.email.clone(), code.clone());
        let pending = self
            .journal
            .with_conn(move |c| store::awaiting(c, &email, c2.as_deref(), &thread))?;
        let Some(pending) = pending else {
            return Ok(self
                .wallet_refuse(
                    &order,
                    match code {
                        Some(code) => format!("No payment of yours waits for the code {code}."),
                        None => {
                            "No payment of yours waits for a confirmation in this thread.".into()
                        }
                    },
                )
                .await?);
        };
        let now = unix_now();
        if now.saturating_sub(pending.created_at) > wallet.settings.order_window {
            let pid = pending.id;
            self.journal
                .commit(move |tx| {
                    tx.sql(|c| {
                        store::set_state(c, pid, State::Done, None, None, Some("expired"), now)
                    })
                })
                .await
                .map_err(WatcherError::from)?;
            return Ok(self
                .wallet_refuse(
                    &order,
                    "The confirmation code has expired; send the payment again.".into(),
                )
                .await?);
        }
        let Request::Pay {
            amount,
            to,
            name,
            note,
            ..
        } = pending.request.clone()
        else {
            return Ok(self
                .wallet_refuse(&order, "The order that code names is not a payment.".into())
                .await?);
        };
        // The CONFIRM takes the payment over: it acts, and its receipt answers it.
        let request = Request::Pay {
            amount,
            to,
            confirmed: true,
            ordered_by: Some(pending.mail_hash.clone()),
            name,
            note,
            resolve: None,
        };
        let (pid, id, r) = (pending.id, order.id, request.clone());
        self.journal
            .commit(move |tx| {
                tx.sql(|c| {
                    store::set_state(c, pid, State::Confirmed, None, None, Some("confirmed"), now)?;
                    store::set_request(c, id, &r)
                })
            })
            .await
            .map_err(WatcherError::from)?;
        let order = OrderRow { request, ..order };
        self.wallet_pay(wallet, &order).await
    }

    async fn wallet_pay(&self, wallet: &Wallet, order: &OrderRow) -> Result<Progress, Stop> {
        let Request::Pay {
            amount,
            to,
            confirmed,
            ordered_by,
            name,
            resolve,
            ..
        } = order.request.clone()
        else {
            unreachable!("wallet_pay is called with a PAY");
        };
        let amount: u128 = amount.parse().unwrap_or(0);
        let chain = &wallet.chain;
        let e = order.email.clone();
        let Some(row) = self.journal.with_conn(|c| store::account_of(c, &e))? else {
            return Ok(self.wallet_refuse(order, text::NO_WALLET.into()).await?);
        };
        let account = parse_b256(&row.account);
        let Some(view) = chain.account(account).await? else {
            return Ok(self.wallet_refuse(order, text::NO_WALLET.into()).await?);
        };
        let mail_hash = parse_b256(ordered_by.as_deref().unwrap_or(&order.mail_hash));
        let to_text = match &to {
            Target::Email(e) => e.clone(),
            Target::Address(a) => springmail_sdk::qtum::format_address(chain.chain_id(), *a),
        };
        let resumed = self.resumed_step(wallet, order, account).await?;
        let step = match resumed {
            Some((step, true)) => {
                info!("the payment landed before the watcher stopped");
                return self
                    .wallet_paid(wallet, order, &step, amount, &to_text, None, None)
                    .await;
            }
            Some((step, false)) => step,
            None => {
                let today = chain.now().await? / 86_400;
                let asset = wallet.asset();
                let self_pay = to == Target::Email(order.email.clone());
                match judge_pay(
                    &wallet.settings,
                    &view,
                    amount,
                    today,
                    confirmed,
                    self_pay,
                    &asset,
                ) {
                    PayDecision::Refuse(sentence) => {
                        return Ok(self.wallet_refuse(order, sentence).await?)
                    }
                    PayDecision::AskConfirm => {
                        return Ok(self
                            .wallet_ask_confirm(wallet, order, amount, &to_text)
                            .await?)
                    }
                    PayDecision::Act => {}
                }
                let nonce = view.nonce;
                let routed = match (&to, &wallet.names) {
                    (Target::Email(email), Some(names)) => {
                        let written = name.clone().unwrap_or_else(|| email.clone());
                        match self
                            .route_name(wallet, names, order, &written, resolve.as_deref(), nonce)
                            .await?
                        {
                            Routed::Step(s) => Some(s),
                            Routed::Email => None,
                            Routed::Done(p) => return Ok(p),
                        }
                    }
                    _ => None,
                };
                let step = match routed {
                    Some(step) => step,
                    None => match &to {
                        Target::Address(_) => Step::Withdraw { nonce },
                        Target::Email(email) => {
                            let e = email.clone();
                            let other = self.journal.with_conn(|c| store::account_of(c, &e))?;
                            let open = match &other {
                                Some(r) => chain.account(parse_b256(&r.account)).await?.is_some(),
                                None => false,
                            };
                            match other {
                                Some(r) if open => Step::Transfer {
                                    nonce,
                                    to_account: r.account,
                                    to_email: email.clone(),
                                },
                                _ => Step::PayEmail {
                                    nonce,
                                    link: ClaimLink {
                                        chain_id: chain.chain_id(),
                                        escrow: chain.escrow(),
                                        secret: springmail_sdk::keys::ClaimSecret::random(),
                                        salt: Salt::random(),
                                    }
                                    .to_bare(),
                                },
                            }
                        }
                    },
                };
                self.begin_step(order, &step).await?;
                step
            }
        };
        let nonce = step.nonce();
        let result = match (&step, &to) {
            (Step::Withdraw { .. }, Target::Address(a)) | (Step::PayName { address: a, .. }, _) => {
                chain
                    .withdraw(account, *a, amount, nonce, mail_hash)
                    .await
                    .map(|s| (s.tx_hash, None))
            }
            (Step::Transfer { to_account, .. }, _) => chain
                .transfer(account, parse_b256(to_account), amount, nonce, mail_hash)
                .await
                .map(|s| (s.tx_hash, None)),
            (Step::PayEmail { link, .. }, Target::Email(email)) => {
                let Ok(link) = ClaimLink::parse(link) else {
                    return Ok(self
                        .wallet_refuse(order, "The recorded payment link cannot be read.".into())
                        .await?);
                };
                chain
                    .pay_email(account, email, amount, nonce, mail_hash, &link)
                    .await
                    .map(|d| (d.tx_hash.clone(), Some(d)))
            }
            _ => {
                return Ok(self
                    .wallet_refuse(order, "The recorded step does not fit the order.".into())
                    .await?)
            }
        };
        match result {
            Ok((tx_hash, deposit)) => {
                self.crash(crate::crash::CrashPoint::WalletAfterSend)?;
                self.wallet_paid(
                    wallet,
                    order,
                    &step,
                    amount,
                    &to_text,
                    Some(tx_hash),
                    deposit,
                )
                .await
            }
            Err(WalletChainError::BadNonce) => {
                let landed = chain
                    .account(account)
                    .await?
                    .is_some_and(|v| v.nonce > nonce);
                if landed {
                    self.wallet_paid(wallet, order, &step, amount, &to_text, None, None)
                        .await
                } else {
                    Err(WalletChainError::Unavailable(
                        "BadNonce, yet the nonce did not move".into(),
                    )
                    .into())
                }
            }
            Err(e) => Err(e.into()),
        }
    }

    async fn wallet_ask_confirm(
        &self,
        wallet: &Wallet,
        order: &OrderRow,
        amount: u128,
        to_text: &str,
    ) -> Result<Progress, WatcherError> {
        let code = ConfirmCode::random().to_string();
        let until = springmail_sdk::mail::human_date(unix_now() + wallet.settings.order_window);
        let body = text::Body::new(&format!(
            "Confirm: pay {} from your mailbox wallet to {to_text}?",
            wallet.fmt(amount)
        ))
        .then(&format!(
            "Nothing has moved yet. To carry it out, reply to this mail with: confirm {code}"
        ))
        .then(&format!(
            "The code is valid until {until}. If you did not ask for this payment, do not reply."
        ));
        let (mail, reply_msgid) = self.wallet_reply(&order.ctx, "wallet-confirm", &body)?;
        info!("payment waits for its confirmation");
        let (id, request) = (order.id, order.request.clone());
        let message_id = order.message_id;
        self.journal
            .commit(move |tx| {
                tx.sql(|c| {
                    let now = unix_now();
                    store::await_confirm(c, id, &request, &code, &reply_msgid, now)?;
                    store::queue_mail(c, message_id, &mail, now)
                })
            })
            .await?;
        Ok(Progress::Moved)
    }

    #[allow(clippy::too_many_arguments)]
    async fn wallet_paid(
        &self,
        wallet: &Wallet,
        order: &OrderRow,
        step: &Step,
        amount: u128,
        to_text: &str,
        tx_hash: Option<String>,
        deposit: Option<NewDeposit>,
    ) -> Result<Progress, Stop> {
        let account = {
            let e = order.email.clone();
            self.journal
                .with_conn(|c| store::account_of(c, &e))?
                .map(|r| parse_b256(&r.account))
        };
        let balance = match account {
            Some(a) => wallet
                .chain
                .account(a)
                .await?
                .map(|v| v.balance)
                .unwrap_or(0),
            None => 0,
        };
        let mut mails = Vec::new();
        let mut movements = vec![(
            order.email.clone(),
            Some(order.id),
            "out",
            "paid to",
            amount,
            to_text.to_string(),
        )];
        let what = match step {
            Step::Transfer { to_email, .. } => {
                movements.push((
                    to_email.clone(),
                    None,
                    "in",
                    "received from",
                    amount,
                    order.email.clone(),
                ));
                let ctx = ReplyContext {
                    to: to_email.clone(),
                    subject: format!("{} paid you {}", order.email, wallet.fmt(amount)),
                    message_id: None,
                    references: Vec::new(),
                    msgid_hash: order.ctx.msgid_hash.clone(),
                };
                let body = text::Body::new(&format!(
                    "{} paid {} into your mailbox wallet.",
                    order.email,
                    wallet.fmt(amount)
                ))
                .then(&format!(
                    "Transaction id: {}",
                    tx_hash.as_deref().unwrap_or("(not recorded)")
                ))
                .then(text::HOW_TO);
                mails.push(self.wallet_reply(&ctx, "wallet-credit", &body)?.0);
                "It landed in their mailbox wallet at this broker.".to_string()
            }
            Step::PayEmail { link, .. } => {
                let deposit = match deposit {
                    Some(d) => Some(d),
                    // Landed before a restart: the link was journaled, the expiry is on chain.
                    None => match ClaimLink::parse(link) {
                        Ok(link) => match wallet.chain.deposit(link.claim_key()).await? {
                            DepositStatus::Open { deposit, .. } => Some(NewDeposit {
                                tx_hash: String::new(),
                                link,
                                expiry: deposit.expiry,
                            }),
                            _ => None,
                        },
                        Err(_) => None,
                    },
                };
                match &deposit {
                    Some(d) => {
                        mails.push(self.wallet_notification(wallet, order, to_text, amount, d)?)
                    }
                    None => warn!("the payment's deposit is no longer open; no notification sent"),
                }
                "They got a notification with a claim link; unclaimed, it comes back to your wallet when it expires.".into()
            }
            Step::PayName {
                address,
                name,
                peer,
                forward_to,
                ..
            } => self.paid_name(
                wallet,
                order,
                amount,
                (*address, name, peer.as_deref(), forward_to.as_deref()),
                tx_hash.as_deref(),
                &mut mails,
            )?,
            _ => "The coins are at that address now.".into(),
        };
        let mut body = text::Body::new(&format!(
            "Paid {} from your mailbox wallet to {to_text}; it now holds {}.",
            wallet.fmt(amount),
            wallet.fmt(balance)
        ))
        .then(&what);
        body = body.then(&format!(
            "Transaction id: {}",
            tx_hash
                .as_deref()
                .unwrap_or("(sent before a restart; the account's nonce shows it landed)")
        ));
        let (mail, _) = self.wallet_reply(&order.ctx, "wallet-paid", &body)?;
        mails.insert(0, mail);
        info!(tx = tx_hash.as_deref().unwrap_or("-"), "paid");
        self.wallet_commit(
            order,
            Finish {
                tx_hash,
                outcome: format!("paid {amount}"),
                movements,
                mails,
                ..Finish::default()
            },
        )
        .await?;
        Ok(Progress::Moved)
    }

    /// The notification of a deposit paid to a new email, from the broker.
    fn wallet_notification(
        &self,
        wallet: &Wallet,
        order: &OrderRow,
        to: &str,
        amount: u128,
        d: &NewDeposit,
    ) -> Result<OutgoingMail, WatcherError> {
        let broker = self.composer.from_address().to_string();
        let amount = springmail_sdk::amount::Amount::from_units(amount, wallet.asset())
            .map_err(|e| WatcherError::Setup(e.to_string()))?;
        let name = format!("{} via Spring Mail", order.email);
        let built = springmail_sdk::mail::notification(&springmail_sdk::mail::Notification {
            link: &d.link,
            from: &broker,
            sender_name: Some(&name),
            recipient: to,
            amount: &amount,
            expiry: d.expiry,
            claim_host: None,
            watcher_email: Some(&broker),
            note: Some(text::NOTIFICATION_NOTE),
            date: None,
        })
        .map_err(|e| WatcherError::Setup(e.to_string()))?;
        let bytes = self
            .composer
            .sign(built.bytes)
            .map_err(|e| WatcherError::Setup(e.to_string()))?;
        Ok(OutgoingMail {
            mail_from: broker,
            rcpt: to.to_string(),
            bytes,
        })
    }
}

/// Where a payment to a broker name goes, or how its handling ended for now.
enum Routed {
    /// Not a broker name: pay the email as any other.
    Email,
    /// This chain step.
    Step(Step),
    /// Answered (refused), or waiting for a peer broker.
    Done(Progress),
}

impl Watcher {
    /// Routes a payment to `name` through the address layer. A peer broker's name is
    /// resolved first: the request id is journaled in the order before the RESOLVE
    /// goes out, and the order stays open (`Pending`) until the answer or the timeout.
    async fn route_name(
        &self,
        wallet: &Wallet,
        names: &crate::addresses::PayNames,
        order: &OrderRow,
        name: &str,
        resolve: Option<&str>,
        nonce: u32,
    ) -> Result<Routed, Stop> {
        use crate::addresses::{PayRoute, Resolution};
        let book = |e: crate::addresses::AddressError| {
            Stop::Chain(WalletChainError::Unavailable(format!("address book: {e}")))
        };
        let refuse = async |sentence: String| -> Result<Routed, Stop> {
            Ok(Routed::Done(self.wallet_refuse(order, sentence).await?))
        };
        match names.route(name).map_err(book)? {
            PayRoute::Email => Ok(Routed::Email),
            PayRoute::UnknownLocal => {
                refuse(format!(
                    "There is no {name} at this broker: no such address or name is registered."
                ))
                .await
            }
            PayRoute::Local { address, mailbox } => {
                // Into the owner's mailbox wallet here, if they have one.
                if let Some(mb) = mailbox.as_ref().filter(|m| **m != order.email) {
                    let m = mb.clone();
                    if let Some(r) = self.journal.with_conn(|c| store::account_of(c, &m))? {
                        let acct = parse_b256(&r.account);
                        if wallet.chain.account(acct).await?.is_some() {
                            return Ok(Routed::Step(Step::Transfer {
                                nonce,
                                to_account: r.account,
                                to_email: mb.clone(),
                            }));
                        }
                    }
                }
                Ok(Routed::Step(Step::PayName {
                    nonce,
                    address,
                    name: name.to_string(),
                    peer: None,
                    forward_to: mailbox,
                }))
            }
            PayRoute::Peer(domain) => {
                let request = match resolve {
                    Some(r) => r.to_string(),
                    None => {
                        let request = crate::addresses::new_request_id();
                        let mut r = order.request.clone();
                        if let Request::Pay { resolve, .. } = &mut r {
                            *resolve = Some(request.clone());
                        }
                        let id = order.id;
                        self.journal
                            .commit(move |tx| tx.sql(|c| store::set_request(c, id, &r)))
                            .await
                            .map_err(WatcherError::from)?;
                        request
                    }
                };
                let answer = names.answer(&request).map_err(book)?;
                let ask = async || -> Result<Routed, Stop> {
                    match names.desk().resolve_as(name, &request).await {
                        Ok(()) => {
                            info!(%domain, "RESOLVE sent; the payment waits for the answer");
                            Ok(Routed::Done(Progress::Pending))
                        }
                        Err(e) => {
                            warn!(%domain, error = %e, "RESOLVE not sent");
                            refuse(format!(
                                "The broker of {domain} could not be asked for {name}'s address ({e}); nothing was paid. Send the payment again later."
                            ))
                            .await
                        }
                    }
                };
                match answer {
                    // Journaled, not asked yet (a crash between): ask now.
                    None => ask().await,
                    Some((Resolution::Pending, asked)) => {
                        let waited = unix_now().saturating_sub(asked);
                        if waited > names.timeout().as_secs() {
                            refuse(format!(
                                "The broker of {domain} did not answer within {} seconds which address {name} is; nothing was paid. Send the payment again later.",
                                names.timeout().as_secs()
                            ))
                            .await
                        } else {
                            Ok(Routed::Done(Progress::Pending))
                        }
                    }
                    Some((Resolution::Unknown, _)) => {
                        refuse(format!(
                            "The broker of {domain} does not know {name}; nothing was paid."
                        ))
                        .await
                    }
                    Some((Resolution::Address(address), _)) => Ok(Routed::Step(Step::PayName {
                        nonce,
                        address,
                        name: name.to_string(),
                        peer: Some(domain),
                        forward_to: None,
                    })),
                }
            }
        }
    }

    /// The mails a payment to a broker name causes beside the payer's receipt: the
    /// PAY's text to the registered mailbox, the RECEIPT to a peer broker. Returns
    /// the receipt's sentence about where the coins went.
    fn paid_name(
        &self,
        wallet: &Wallet,
        order: &OrderRow,
        amount: u128,
        (address, name, peer, forward_to): (Address, &str, Option<&str>, Option<&str>),
        tx_hash: Option<&str>,
        mails: &mut Vec<OutgoingMail>,
    ) -> Result<String, WatcherError> {
        let chain_id = wallet.chain.chain_id();
        let shown = springmail_sdk::qtum::format_address(chain_id, address);
        let mut what = format!("The coins are at {shown}, the address {name} stands for.");
        let Some(names) = &wallet.names else {
            return Ok(what);
        };
        let setup = |e: crate::addresses::AddressError| WatcherError::Setup(e.to_string());
        if let Some(mailbox) = forward_to {
            let note = match &order.request {
                Request::Pay { note, .. } => note.clone().unwrap_or_default(),
                _ => String::new(),
            };
            mails.push(
                names
                    .forward_note(
                        name,
                        mailbox,
                        &order.email,
                        &order.ctx.subject,
                        &note,
                        &order.ctx.msgid_hash,
                    )
                    .map_err(setup)?,
            );
            what.push_str(" Your mail's text was forwarded to its owner.");
        }
        if let Some(domain) = peer {
            match tx_hash.and_then(|t| t.parse::<B256>().ok()) {
                Some(tx) => {
                    let receipt = springmail_sdk::markup::broker::ReceiptBlock {
                        chain_id,
                        amount: springmail_sdk::amount::Amount::from_units(amount, wallet.asset())
                            .map_err(|e| WatcherError::Setup(e.to_string()))?,
                        tx,
                        to: address,
                        from: order.email.clone(),
                    };
                    mails.push(names.desk().receipt_mail(&receipt, domain).map_err(setup)?);
                    what.push_str(&format!(
                        " The broker of {domain} was sent a receipt and tells its owner."
                    ));
                }
                None => {
                    warn!(%domain, "paid before a restart: no transaction id, no RECEIPT");
                    what.push_str(&format!(
                        " The broker of {domain} was not sent a receipt: the transaction id was lost in a restart."
                    ));
                }
            }
        }
        Ok(what)
    }
}

fn parse_b256(text: &str) -> B256 {
    text.parse().unwrap_or_default()
}

/// Why an order's handling stopped early.
enum Stop {
    Chain(WalletChainError),
    Watcher(WatcherError),
}

impl From<WalletChainError> for Stop {
    fn from(e: WalletChainError) -> Self {
        Stop::Chain(e)
    }
}

impl From<WatcherError> for Stop {
    fn from(e: WatcherError) -> Self {
        Stop::Watcher(e)
    }
}

impl From<JournalError> for Stop {
    fn from(e: JournalError) -> Self {
        Stop::Watcher(e.into())
    }
}

#[cfg(test)]
mod tests;
