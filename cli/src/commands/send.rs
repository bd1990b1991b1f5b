//! `springmail send`: deposit to an email address, then notify the recipient.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use springmail_sdk::amount::{Amount, AmountError, Asset};
use springmail_sdk::chain::Chain;
use springmail_sdk::client::{ClientError, SendRequest, Ticket, DEFAULT_WAIT};
use springmail_sdk::link::ClaimLink;
use springmail_sdk::mail::{self, BuiltMail, Notification};
use springmail_sdk::Address;

use crate::args::SendArgs;
use crate::chain::{asset_for, client, escrow, show};
use crate::config::{parse_address, parse_duration, parse_watcher, Settings, WATCHER_HINT};
use crate::notify::{self, Delivery};
use crate::output::{relative, Summary};
use crate::report::{hinted, hinted_with_data, input_error, ExitKind};
use crate::Ctx;

use super::sent::{self, SentRecord};

/// What every deposit of one `send` invocation shares.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The default watcher (`None`: link mode).
    pub watcher: Option<Address>,
    /// The watcher's mailbox (email mode).
    pub watcher_email: Option<String>,
    /// The watcher keeps mailbox wallets: the notification offers a plain reply.
    pub watcher_wallet: bool,
    /// Whether `--link-only` was given (a CSV row's watcher cannot override it).
    pub link_only: bool,
    /// Seconds until expiry.
    pub expires_in: u64,
    /// Cancellable flag.
    pub cancellable: bool,
    /// The token, `None` for the native coin.
    pub token: Option<Address>,
    /// The personal note.
    pub note: Option<String>,
}

impl Plan {
    /// Reads the flags and defaults, checking everything that needs no chain.
    pub fn from_args(settings: &Settings, a: &SendArgs) -> anyhow::Result<Plan> {
        let watcher = if a.link_only {
            None
        } else if let Some(w) = &a.watcher {
            Some(
                parse_watcher(w)
                    .map_err(|e| input_error(format!("--watcher: {e}"), WATCHER_HINT))?,
            )
        } else {
            settings.watcher
        };
        let watcher_email = match &a.watcher_email {
            Some(e) => {
                springmail_sdk::email::normalize(e).context("--watcher-email")?;
                Some(e.trim().to_string())
            }
            None => settings.watcher_email.clone(),
        };
        let expires_in = match &a.expires {
            Some(t) => parse_duration(t)
                .map_err(|e| input_error(format!("--expires: {e}"), "write e.g. 30d, 12h or 2w"))?,
            None => settings.expires,
        };
        let token = a
            .token
            .as_deref()
            .map(|t| {
                parse_address(settings.chain.chain_id, t)
                    .map_err(|e| input_error(format!("--token: {e}"), ADDRESS_HINT))
            })
            .transpose()?;
        if let Some(note) = &a.note {
            if note.len() > mail::MAX_NOTE_BYTES {
                return Err(input_error(
                    format!(
                        "the note is {} bytes; at most {} fit in the notification",
                        note.len(),
                        mail::MAX_NOTE_BYTES
                    ),
                    "shorten --note",
                ));
            }
        }
        Ok(Plan {
            watcher,
            watcher_email,
            watcher_wallet: a.watcher_wallet || settings.watcher_wallet,
            link_only: a.link_only,
            expires_in,
            cancellable: a.cancellable || settings.cancellable,
            token,
            note: a.note.clone(),
        })
    }

    /// Checks what email mode needs.
    pub fn check_watcher_email(&self, watcher: Option<Address>) -> anyhow::Result<()> {
        if watcher.is_some() && self.watcher_email.is_none() {
            return Err(input_error(
                "email mode needs the watcher's mailbox, where the recipient mails the claim",
                "set [watcher] email in springmail.toml or pass --watcher-email (or send in link mode with --link-only)",
            ));
        }
        Ok(())
    }
}

const ADDRESS_HINT: &str =
    "give a base58 address (q…/Q…) on Qtum chains, or 0x followed by 40 hex digits";

/// Checks that notifications can be built before any money moves.
pub fn check_delivery(settings: &Settings, delivery: &Delivery) -> anyhow::Result<()> {
    if *delivery != Delivery::None && settings.mail_address.is_none() {
        return Err(input_error(
            "the notification needs your email address as its sender",
            "set [mail] address in springmail.toml or SPRINGMAIL_EMAIL (or use --no-mail and pass the link on yourself)",
        ));
    }
    Ok(())
}

/// Builds the notification for a made deposit.
pub fn notification_for(
    settings: &Settings,
    plan: &Plan,
    link: &ClaimLink,
    recipient: &str,
    amount: &Amount,
    expiry: u64,
    watcher: Option<Address>,
) -> anyhow::Result<BuiltMail> {
    let from = settings
        .mail_address
        .as_deref()
        .unwrap_or("springmail@localhost");
    let watcher_email = watcher.and(plan.watcher_email.as_deref());
    let build = if plan.watcher_wallet {
        mail::notification_offering_wallet
    } else {
        mail::notification
    };
    Ok(build(&Notification {
        link,
        from,
        sender_name: settings.mail_name.as_deref(),
        recipient,
        amount,
        expiry,
        claim_host: settings.claim_host.as_deref(),
        watcher_email,
        note: plan.note.as_deref(),
        date: None,
    })?)
}

/// Connects with your key and reads the asset being sent.
pub async fn connect_sender(ctx: &Ctx, plan: &Plan) -> anyhow::Result<(Arc<dyn Chain>, Asset)> {
    let chain = crate::chain::connect_signing(&ctx.settings, None).await?;
    let asset = asset_for(chain.as_ref(), plan.token).await?;
    Ok((chain, asset))
}

/// Checks a native-coin amount before anything is unlocked or connected: against the
/// configured chain's coin, or (chain not configured) against QTUM and ETH.
pub fn precheck_amount(chain_id: Option<u64>, text: &str) -> Result<(), AmountError> {
    match chain_id {
        Some(id) => Amount::parse(text, &Asset::for_chain(id)).map(|_| ()),
        None => match Amount::parse_among(text, &[Asset::qtum(), Asset::eth()]) {
            Ok(_) | Err(AmountError::MissingSymbol { .. }) => Ok(()),
            Err(e) => Err(e),
        },
    }
}

/// Runs `send --to EMAIL --amount AMOUNT`.
pub async fn run(ctx: &Ctx, a: &SendArgs) -> anyhow::Result<()> {
    let settings = &ctx.settings;
    let to = a.to.as_deref().expect("clap requires --to without --csv");
    let amount_text = a
        .amount
        .as_deref()
        .expect("clap requires --amount without --csv");
    let normalized =
        springmail_sdk::email::normalize(to).with_context(|| format!("--to {to:?}"))?;
    let plan = Plan::from_args(settings, a)?;
    if plan.token.is_none() {
        precheck_amount(settings.chain.chain_id, amount_text)
            .with_context(|| format!("--amount {amount_text:?}"))?;
    }
    plan.check_watcher_email(plan.watcher)?;
    let delivery = Delivery::choose(settings, a.out.as_deref(), a.no_mail);
    check_delivery(settings, &delivery)?;
    let escrow = escrow(settings)?;
    let (chain, asset) = connect_sender(ctx, &plan).await?;
    let amount =
        Amount::parse(amount_text, &asset).with_context(|| format!("--amount {amount_text:?}"))?;
    if amount.units() == 0 {
        return Err(input_error("the amount is zero", "send more than nothing"));
    }
    let client = client(settings, chain.clone(), escrow);
    let prepared = client
        .prepare_deposit(
            SendRequest {
                email: normalized.clone(),
                amount: amount.clone(),
                token: plan.token,
                expires_in: Duration::from_secs(plan.expires_in),
                watcher: plan.watcher,
                cancellable: plan.cancellable,
            },
            client.new_link(),
        )
        .await
        .with_context(|| format!("cannot send {amount} to {normalized}"))?;
    // From here on money may move: the link is on disk before anything is broadcast.
    let mut record = SentRecord {
        claim_key: prepared.link.claim_key().to_checksum(None),
        link: prepared.link.to_bare(),
        url: printed_link(settings, &prepared.link),
        email: normalized.clone(),
        amount: amount.to_string(),
        chain_id: chain.chain_id(),
        escrow: escrow.to_checksum(None),
        expiry: prepared.deposit.expiry,
        tx: String::new(),
    };
    let record_path = sent::save(settings, &record)?;
    let tx_hash = match client.submit_deposit(&prepared).await {
        Ok(h) => h,
        Err(e) => {
            // A simulated revert: the deposit was not sent (a token approval may have been).
            if matches!(e, ClientError::WouldRevert { .. }) {
                let _ = std::fs::remove_file(&record_path);
                return Err(
                    anyhow::Error::from(e).context(format!("cannot send {amount} to {normalized}"))
                );
            }
            return Err(unconfirmed(ctx, &record, &record_path, e.into()));
        }
    };
    record.tx = tx_hash.to_string();
    let _ = sent::save(settings, &record);
    let ticket = match client
        .confirm_deposit(prepared, tx_hash, DEFAULT_WAIT)
        .await
    {
        Ok(t) => t,
        // Mined and reverted: no deposit exists, so the link is worth nothing.
        Err(e @ ClientError::Reverted { .. }) => {
            let _ = std::fs::remove_file(&record_path);
            return Err(
                anyhow::Error::from(e).context(format!("cannot send {amount} to {normalized}"))
            );
        }
        Err(e) => return Err(unconfirmed(ctx, &record, &record_path, e.into())),
    };
    let now = client.now().await.unwrap_or(ticket.deposit.expiry);
    let mut summary = ticket_summary(settings, chain.chain_id(), &ticket, &amount, to, now);
    let built = notification_for(
        settings,
        &plan,
        &ticket.link,
        to,
        &amount,
        ticket.deposit.expiry,
        plan.watcher,
    )?;
    let delivered = notify::deliver(settings, &delivery, &built).await;
    match &delivered {
        Ok(Some(where_)) => {
            summary.row("notification", "notification", where_.clone());
        }
        Ok(None) => {
            summary.row(
                "notification",
                "notification",
                "not sent: pass the claim link to the recipient yourself",
            );
        }
        Err(_) => {
            summary.row(
                "notification",
                "notification",
                "NOT DELIVERED (see the error below)",
            );
        }
    }
    summary.print(ctx.json);
    if let Err(e) = delivered {
        let fallback = std::path::PathBuf::from(format!(
            "springmail-notification-{}.eml",
            short_key(&ticket)
        ));
        let saved = notify::write_eml(&fallback, &built).is_ok();
        let hint = if saved {
            format!(
                "the money is deposited (nothing to redo): the notification was saved to {}; send it yourself or pass the link on",
                fallback.display()
            )
        } else {
            "the money is deposited (nothing to redo): pass the claim link above to the recipient yourself".to_string()
        };
        return Err(hinted(
            e.context("the notification email was not delivered"),
            hint,
            ExitKind::Failed,
        ));
    }
    Ok(())
}

/// A failure after the deposit may have been broadcast: prints the link and claim key
/// (stdout, like a made deposit's) and says where the record is and how to follow it.
fn unconfirmed(
    ctx: &Ctx,
    record: &SentRecord,
    record_path: &std::path::Path,
    err: anyhow::Error,
) -> anyhow::Error {
    let mut s = Summary::new(format!(
        "The deposit of {} to {} is NOT confirmed",
        record.amount, record.email
    ));
    s.row("claim_key", "claim key", record.claim_key.clone());
    if !record.tx.is_empty() {
        s.row("tx", "transaction", record.tx.clone());
    }
    s.row("link", "claim link", record.url.clone());
    s.row("record", "saved in", record_path.display().to_string());
    s.data("bare_link", record.link.clone());
    s.data("confirmed", false);
    let hint = format!(
        "the deposit may still be mined: keep the claim link above (also in {}); \
         check with `springmail status {}` before sending again",
        record_path.display(),
        record.claim_key
    );
    if ctx.json {
        // One JSON object on stdout: the failure, carrying the link and key.
        return hinted_with_data(err, hint, ExitKind::Unavailable, s.json_values());
    }
    s.print(false);
    hinted(err, hint, ExitKind::Unavailable)
}

/// The link as the sender is shown it: on the claim page when one is configured, else bare.
fn printed_link(settings: &Settings, link: &ClaimLink) -> String {
    match &settings.claim_host {
        Some(host) => link.to_url(host),
        None => link.to_bare(),
    }
}

fn short_key(ticket: &Ticket) -> String {
    hex::encode(&ticket.link.claim_key().as_slice()[..6])
}

/// The printed summary of a made deposit. It includes the claim link: the sender's
/// terminal (or `--json` consumer) is where the link is handed over.
pub fn ticket_summary(
    settings: &Settings,
    chain_id: u64,
    ticket: &Ticket,
    amount: &Amount,
    to: &str,
    now: u64,
) -> Summary {
    let mode = if ticket.deposit.is_link_mode() {
        "link (the link alone can claim)".to_string()
    } else {
        format!(
            "email (watcher {} must attest)",
            show(settings, chain_id, ticket.deposit.watcher)
        )
    };
    let mut s = Summary::new(format!("Sent {amount} to {}", ticket.email));
    s.row("amount", "amount", amount.to_string());
    s.row("to", "to", to.trim().to_string());
    s.row("mode", "mode", mode);
    s.row("tx", "transaction", ticket.tx_hash.to_string());
    s.row(
        "claim_key",
        "claim key",
        ticket.link.claim_key().to_checksum(None),
    );
    s.row(
        "expires",
        "expires",
        format!(
            "{} ({})",
            mail::human_date(ticket.deposit.expiry),
            relative(ticket.deposit.expiry, now)
        ),
    );
    if ticket.deposit.is_cancellable() {
        s.row(
            "cancellable",
            "cancellable",
            "yes: you may refund before expiry",
        );
    }
    s.row("link", "claim link", printed_link(settings, &ticket.link));
    s.data("bare_link", ticket.link.to_bare());
    s.data("units", amount.units().to_string());
    s.data("expiry", ticket.deposit.expiry);
    s
}
