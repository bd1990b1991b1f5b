//! `springmail account bind|show|withdraw`: a mailbox wallet's owner side, the way out
//! that needs no broker (docs/MAILBOX-WALLET.md).

use anyhow::Context;
use springmail_sdk::accounts::{bind_digest, bind_text, AccountId, Movement};
use springmail_sdk::amount::Amount;
use springmail_sdk::{Address, B256};

use crate::args::AccountCommand;
use crate::chain::{asset_for, client, connect, connect_signing, escrow, show};
use crate::config::{parse_address, Backend, QtumSignerKind};
use crate::output::Summary;
use crate::report::input_error;
use crate::Ctx;

/// Runs `account`.
pub async fn run(ctx: &Ctx, c: &AccountCommand) -> anyhow::Result<()> {
    match c {
        AccountCommand::Bind { mailbox } => bind(ctx, mailbox),
        AccountCommand::Show { account } => show_account(ctx, account).await,
        AccountCommand::Withdraw {
            account,
            amount,
            all,
            to,
        } => withdraw(ctx, account, amount.as_deref(), *all, to.as_deref()).await,
    }
}

/// Prints the BIND line for a mail to the broker: the owner address and its key's
/// signature of *BIND's signed text*. Nothing is sent and no chain is needed.
fn bind(ctx: &Ctx, mailbox: &str) -> anyhow::Result<()> {
    let normalized = springmail_sdk::email::normalize(mailbox).map_err(|e| {
        input_error(
            format!("--mailbox {mailbox}: {e}"),
            "give the address your wallet is kept for",
        )
    })?;
    let escrow = escrow(&ctx.settings)?;
    let chain = &ctx.settings.chain;
    let chain_id = chain.chain_id.ok_or_else(|| {
        input_error(
            "the chain id is not configured",
            "set [chain] chain_id (or --chain-id): the signed text names the chain",
        )
    })?;
    if chain.signer == QtumSignerKind::Node && chain.backend == Backend::Qtum {
        return Err(input_error(
            "binding needs a key of your own, and [chain] signer = \"node\" signs with the node's wallet",
            "use your keystore or SPRINGMAIL_PRIVATE_KEY with [chain] signer = \"local\"",
        ));
    }
    let key = crate::secrets::signing_key(&ctx.settings.keystore)?;
    let owner = chain
        .sending_account(&key)
        .context("cannot tell which account your key's transactions come from")?;
    let text = bind_text(&normalized, chain_id, escrow, owner);
    let signature = key.sign_digest(&bind_digest(&text));
    let owner_shown = show(&ctx.settings, chain_id, owner);
    let line = format!("bind {owner_shown} 0x{}", hex::encode(signature.0));
    let mut s = Summary::new("Your BIND order");
    s.row("mailbox", "mailbox", normalized.clone());
    s.row("owner", "owner key", owner_shown);
    s.row("line", "line", line);
    s.note(format!(
        "\nSend that line from {normalized} to your broker (a mail of its own, or a reply to one of its mails). \
         Once it is bound, `springmail account withdraw` moves your balance with this key alone."
    ));
    s.print(ctx.json);
    Ok(())
}

fn parse_account(text: &str) -> anyhow::Result<AccountId> {
    text.trim().parse::<B256>().map(AccountId).map_err(|_| {
        input_error(
            format!("{text}: not an account id (0x and 64 hex digits)"),
            "the broker's replies name your account id (a BALANCE reply shows it)",
        )
    })
}

async fn show_account(ctx: &Ctx, account: &str) -> anyhow::Result<()> {
    let id = parse_account(account)?;
    let escrow = escrow(&ctx.settings)?;
    let chain = connect(&ctx.settings, None, None).await?;
    let chain_id = chain.chain_id();
    let client = client(&ctx.settings, chain.clone(), escrow);
    let state = client
        .account(id)
        .await
        .context("cannot read the account")?;
    if !state.is_open() {
        return Err(input_error(
            format!("no account {id} is open in the escrow {escrow}"),
            "check the id and that [chain] escrow is the broker's escrow",
        ));
    }
    let asset = asset_for(chain.as_ref(), None).await?;
    let amount = |u: u128| Amount::from_units(u, asset.clone()).map(|a| a.to_string());
    let mut s = Summary::new("Mailbox wallet account");
    s.row("account", "account", id.to_string());
    s.row("balance", "balance", amount(state.balance)?);
    s.row("balance_units", "base units", state.balance.to_string());
    s.row("nonce", "nonce", state.nonce.to_string());
    s.row(
        "per_payment",
        "broker may move, per payment",
        amount(u128::from(state.limits.per_payment))?,
    );
    s.row(
        "per_day",
        "broker may move, per day",
        amount(u128::from(state.limits.per_day))?,
    );
    s.row(
        "controller",
        "controller (broker)",
        show(&ctx.settings, chain_id, state.controller),
    );
    s.row(
        "owner",
        "owner key",
        match state.owner {
            Some(o) => show(&ctx.settings, chain_id, o),
            None => "none bound".into(),
        },
    );
    s.print(ctx.json);
    Ok(())
}

async fn withdraw(
    ctx: &Ctx,
    account: &str,
    amount: Option<&str>,
    all: bool,
    to: Option<&str>,
) -> anyhow::Result<()> {
    // Every input is checked before anything is sent.
    let id = parse_account(account)?;
    let escrow = escrow(&ctx.settings)?;
    let to = match to {
        Some(t) => Some(
            parse_address(ctx.settings.chain.chain_id, t)
                .map_err(|e| input_error(format!("--to {t}: {e}"), "give an address to pay"))?,
        ),
        None => None,
    };
    let chain = connect_signing(&ctx.settings, None).await?;
    let chain_id = chain.chain_id();
    let client = client(&ctx.settings, chain.clone(), escrow);
    let state = client
        .account(id)
        .await
        .context("cannot read the account")?;
    let me = chain.account();
    if state.owner != Some(me) {
        return Err(input_error(
            format!(
                "{} is not the owner key of account {id} (its owner: {})",
                show(&ctx.settings, chain_id, me),
                state
                    .owner
                    .map_or("none bound".into(), |o| show(&ctx.settings, chain_id, o))
            ),
            "bind this key first: `springmail account bind --mailbox YOU@…`, and mail the line to your broker",
        ));
    }
    let asset = asset_for(chain.as_ref(), None).await?;
    let units = match (amount, all) {
        (_, true) => state.balance,
        (Some(a), false) => Amount::parse(a, &asset)
            .map_err(|e| input_error(format!("--amount {a}: {e}"), "e.g. --amount \"0.5 QTUM\""))?
            .units(),
        (None, false) => {
            return Err(input_error(
                "say how much: --amount or --all",
                "e.g. --amount \"0.5 QTUM\"",
            ))
        }
    };
    if units == 0 || units > state.balance {
        return Err(input_error(
            format!(
                "the account holds {}; cannot withdraw {}",
                Amount::from_units(state.balance, asset.clone())?,
                Amount::from_units(units, asset.clone())?
            ),
            "withdraw at most the balance (--all takes all of it)",
        ));
    }
    let to: Address = to.unwrap_or(me);
    // The owner's own movement names no mail.
    let mv = Movement {
        nonce: state.nonce,
        mail_hash: B256::ZERO,
    };
    let receipt = client
        .withdraw_from(id, to, units, mv)
        .await
        .context("cannot withdraw from the account")?;
    let mut s = Summary::new("Withdrew from the mailbox wallet with the owner key");
    s.row("account", "account", id.to_string());
    s.row(
        "amount",
        "amount",
        Amount::from_units(units, asset.clone())?.to_string(),
    );
    s.row("to", "paid to", show(&ctx.settings, chain_id, to));
    s.row(
        "balance",
        "left",
        Amount::from_units(state.balance - units, asset)?.to_string(),
    );
    s.row("tx", "transaction", receipt.tx_hash.to_string());
    s.print(ctx.json);
    Ok(())
}
