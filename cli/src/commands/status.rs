//! `springmail status CLAIM_KEY|LINK` and `status --csv RESULTS`.

use anyhow::Context;
use std::collections::HashMap;

use springmail_sdk::amount::{Amount, Asset};
use springmail_sdk::client::{DepositStatus, SpringMail};
use springmail_sdk::link::ClaimLink;
use springmail_sdk::mail::human_date;
use springmail_sdk::Address;

use super::batch::load_results;
use super::sent;
use crate::args::StatusArgs;
use crate::chain::{asset_for, connect, escrow, show};
use crate::config::{parse_address, Settings};
use crate::output::{relative, Summary};
use crate::report::input_error;
use crate::Ctx;

/// A deposit named on the command line.
#[derive(Debug, Clone, Copy)]
pub struct DepositRef {
    /// Its claim key.
    pub claim_key: Address,
    /// Its escrow.
    pub escrow: Address,
    /// The chain, when a link names it.
    pub chain_id: Option<u64>,
}

/// Reads a claim key (escrow from the config) or a link (escrow and chain from it).
pub fn resolve_ref(settings: &Settings, text: &str) -> anyhow::Result<DepositRef> {
    let t = text.trim();
    if t.starts_with("sm") || t.contains("://") || t.starts_with('<') {
        let link = ClaimLink::parse(t).context("the claim link")?;
        crate::chain::check_link_escrow(settings, link.escrow)?;
        if let Some(configured) = settings.chain.chain_id.filter(|c| *c != link.chain_id) {
            return Err(input_error(
                format!(
                    "the claim link is for chain {}, but the configuration says chain {configured}",
                    link.chain_id
                ),
                "point --rpc and --chain-id at the chain the link was made on",
            ));
        }
        return Ok(DepositRef {
            claim_key: link.claim_key(),
            escrow: link.escrow,
            chain_id: Some(link.chain_id),
        });
    }
    let claim_key = parse_address(settings.chain.chain_id, t).map_err(|e| {
        input_error(
            format!("{t:?} is neither a claim link nor a claim key: {e}"),
            "pass the claim key (0x…) that `send` printed, or the claim link",
        )
    })?;
    Ok(DepositRef {
        claim_key,
        escrow: escrow(settings)?,
        chain_id: None,
    })
}

/// Runs `status`.
pub async fn run(ctx: &Ctx, a: &StatusArgs) -> anyhow::Result<()> {
    if let Some(path) = &a.csv {
        return run_csv(ctx, path).await;
    }
    let Some(deposit) = a.deposit.as_deref() else {
        return run_mine(ctx).await;
    };
    let r = resolve_ref(&ctx.settings, deposit)?;
    let chain = connect(&ctx.settings, None, r.chain_id).await?;
    let start = if ctx.settings.chain.escrow == Some(r.escrow) {
        ctx.settings.chain.start_block
    } else {
        0
    };
    let client = SpringMail::new(chain, r.escrow).with_start_block(start);
    let s = describe(&ctx.settings, &client, r.claim_key).await?;
    s.print(ctx.json);
    Ok(())
}

/// `status` alone: the deposits this account sent at the configured escrow, from the
/// chain, each with its state and (when this machine recorded it) its claim link; then
/// recorded sends the chain does not show (not mined, or dropped).
async fn run_mine(ctx: &Ctx) -> anyhow::Result<()> {
    let settings = &ctx.settings;
    let escrow = escrow(settings)?;
    let chain = crate::chain::connect_signing(settings, None).await?;
    let client = crate::chain::client(settings, chain.clone(), escrow);
    let me = chain.account();
    let id = chain.chain_id();
    let mine = client.deposits_by(me).await?;
    // This machine's records by claim key; those the chain shows are taken out, the
    // rest are listed after as not on chain.
    let escrow_hex = escrow.to_string();
    let mut records: HashMap<Address, sent::SentRecord> = sent::load_all(settings)
        .into_iter()
        .filter(|r| r.chain_id == id && r.escrow.eq_ignore_ascii_case(&escrow_hex))
        .filter_map(|r| Some((r.claim_key.parse().ok()?, r)))
        .collect();
    // One symbol()/decimals() read per token, not per deposit.
    let mut assets: HashMap<Address, Asset> = HashMap::new();
    let mut lines = Vec::new();
    for (claim_key, deposit, block, tx) in &mine {
        let state = client.status(*claim_key).await?.name();
        let asset = match assets.get(&deposit.token) {
            Some(a) => a.clone(),
            None => {
                let a = asset_for(chain.as_ref(), Some(deposit.token)).await?;
                assets.insert(deposit.token, a.clone());
                a
            }
        };
        let amount = Amount::from_units(deposit.amount, asset)?.to_string();
        let link = records.remove(claim_key).map(|r| r.url).unwrap_or_default();
        lines.push(serde_json::json!({
            "claim_key": claim_key.to_checksum(None), "state": state, "amount": amount,
            "expiry": deposit.expiry, "block": block, "tx": tx.to_string(), "link": link,
        }));
    }
    let mut rest: Vec<_> = records.into_values().collect();
    rest.sort_by(|a, b| a.claim_key.cmp(&b.claim_key));
    for r in &rest {
        lines.push(serde_json::json!({
            "claim_key": r.claim_key, "state": "not on chain", "amount": r.amount,
            "expiry": r.expiry, "block": null, "tx": r.tx, "link": r.url,
        }));
    }
    if ctx.json {
        println!("{}", serde_json::Value::Array(lines));
        return Ok(());
    }
    println!(
        "Deposits sent by {} at escrow {}:",
        show(settings, id, me),
        escrow.to_checksum(None)
    );
    if lines.is_empty() {
        println!("  none");
    }
    for l in &lines {
        println!(
            "  {}  {:<12}  {:<16}  expires {}",
            l["claim_key"].as_str().unwrap_or_default(),
            l["state"].as_str().unwrap_or_default(),
            l["amount"].as_str().unwrap_or_default(),
            human_date(l["expiry"].as_u64().unwrap_or_default())
        );
        if let Some(link) = l["link"].as_str().filter(|s| !s.is_empty()) {
            println!("    link: {link}");
        }
    }
    Ok(())
}

/// A deposit's status as a printable summary.
pub async fn describe(
    settings: &Settings,
    client: &SpringMail,
    claim_key: Address,
) -> anyhow::Result<Summary> {
    let chain = client.chain();
    let id = chain.chain_id();
    let status = client.status(claim_key).await?;
    let now = chain.head().await?.timestamp;
    let mut s = Summary::new(format!(
        "Deposit {}: {}",
        claim_key.to_checksum(None),
        status.name()
    ));
    s.row("state", "state", status.name());
    match &status {
        DepositStatus::Open {
            deposit,
            block_number,
        }
        | DepositStatus::Expired {
            deposit,
            block_number,
        } => {
            let asset = asset_for(chain.as_ref(), Some(deposit.token)).await?;
            s.row(
                "amount",
                "amount",
                Amount::from_units(deposit.amount, asset)?.to_string(),
            );
            s.row("sender", "from", show(settings, id, deposit.sender));
            s.row(
                "mode",
                "mode",
                if deposit.is_link_mode() {
                    "link".to_string()
                } else {
                    format!("email (watcher {})", show(settings, id, deposit.watcher))
                },
            );
            s.row(
                "expires",
                "expires",
                format!(
                    "{} ({})",
                    human_date(deposit.expiry),
                    relative(deposit.expiry, now)
                ),
            );
            s.row("block", "deposited in block", block_number.to_string());
            if matches!(status, DepositStatus::Expired { .. }) {
                s.note("\nOnly a refund is possible now: springmail refund CLAIM_KEY (anyone may send it; the money goes to the sender).");
            }
        }
        DepositStatus::Claimed {
            to,
            amount,
            fee,
            relayer,
            tx_hash,
            block_number,
        } => {
            let asset = asset_of(client, claim_key).await?;
            s.row("to", "paid to", show(settings, id, *to));
            s.row(
                "amount",
                "amount",
                Amount::from_units(*amount, asset.clone())?.to_string(),
            );
            if *fee > 0 {
                s.row(
                    "fee",
                    "of which the relayer kept",
                    Amount::from_units(*fee, asset)?.to_string(),
                );
                s.row("relayer", "relayer", show(settings, id, *relayer));
            }
            s.row("tx", "transaction", tx_hash.to_string());
            s.row("block", "block", block_number.to_string());
        }
        DepositStatus::Refunded {
            sender,
            amount,
            tx_hash,
            block_number,
        } => {
            let asset = asset_of(client, claim_key).await?;
            s.row("to", "paid back to", show(settings, id, *sender));
            s.row(
                "amount",
                "amount",
                Amount::from_units(*amount, asset)?.to_string(),
            );
            s.row("tx", "transaction", tx_hash.to_string());
            s.row("block", "block", block_number.to_string());
        }
        DepositStatus::Unknown => {
            s.note(format!(
                "\nNo deposit under this claim key at escrow {} on chain {id}.",
                client.escrow().to_checksum(None)
            ));
        }
    }
    Ok(s)
}

/// The asset of the deposit made under `claim_key`, from its `Deposited` event.
async fn asset_of(
    client: &SpringMail,
    claim_key: Address,
) -> anyhow::Result<springmail_sdk::amount::Asset> {
    let head = client.chain().head().await?.number;
    let mut token = None;
    for (_, ev) in client.scan(client.start_block(), head).await? {
        if let springmail_sdk::client::EscrowEvent::Deposited {
            claim_key: k,
            deposit,
        } = ev
        {
            if k == claim_key {
                token = Some(deposit.token);
            }
        }
    }
    asset_for(client.chain().as_ref(), token).await
}

async fn run_csv(ctx: &Ctx, path: &std::path::Path) -> anyhow::Result<()> {
    let rows = load_results(path)?;
    if rows.is_empty() {
        return Err(input_error(
            format!("{} holds no results", path.display()),
            "pass the .results.csv file that `send --csv` wrote",
        ));
    }
    let escrow = escrow(&ctx.settings)?;
    let chain = connect(&ctx.settings, None, None).await?;
    let client = crate::chain::client(&ctx.settings, chain, escrow);
    let mut lines = Vec::new();
    for r in rows.values() {
        let state = if r.claim_key.is_empty() {
            "not sent".to_string()
        } else {
            let key = springmail_sdk::qtum::parse_hex_address(&r.claim_key).map_err(|e| {
                input_error(
                    format!("row {}: claim key: {e}", r.row),
                    "restore the result file",
                )
            })?;
            client.status(key).await?.name().to_string()
        };
        lines.push(serde_json::json!({"row": r.row, "email": r.email, "amount": r.amount, "state": state, "tx": r.tx}));
        if !ctx.json {
            println!("{:>5}  {:<10}  {:<32}  {}", r.row, state, r.email, r.amount);
        }
    }
    if ctx.json {
        println!("{}", serde_json::Value::Array(lines));
    }
    Ok(())
}
