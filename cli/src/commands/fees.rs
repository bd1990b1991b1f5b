//! `springmail fees [--token ADDR] [--withdraw [--to ADDR]]`: the relayer fees this
//! account has accrued in the escrow, and their withdrawal in one transfer.

use anyhow::Context;
use springmail_sdk::amount::Amount;
use springmail_sdk::Address;

use crate::chain::{asset_for, client, connect_signing, escrow, show};
use crate::config::parse_address;
use crate::output::Summary;
use crate::Ctx;

/// Runs `fees`.
pub async fn run(ctx: &Ctx, a: &crate::args::FeesArgs) -> anyhow::Result<()> {
    let escrow = escrow(&ctx.settings)?;
    // Parse every address before connecting: bad input changes nothing and costs nothing.
    let token = match &a.token {
        Some(t) => parse_address(ctx.settings.chain.chain_id, t).map_err(|e| {
            crate::report::input_error(format!("--token {t}: {e}"), "give the token's address")
        })?,
        None => Address::ZERO,
    };
    let to = match &a.to {
        Some(t) => Some(parse_address(ctx.settings.chain.chain_id, t).map_err(|e| {
            crate::report::input_error(format!("--to {t}: {e}"), "give an address to pay")
        })?),
        None => None,
    };
    let chain = connect_signing(&ctx.settings, None).await?;
    let id = chain.chain_id();
    let client = client(&ctx.settings, chain.clone(), escrow);
    let asset = asset_for(chain.as_ref(), Some(token)).await?;
    let me = chain.account();
    let accrued = client
        .accrued_fees(me, token)
        .await
        .context("cannot read the accrued fees")?;
    if !a.withdraw {
        let mut s = Summary::new("Relayer fees accrued in the escrow");
        s.row("relayer", "relayer", show(&ctx.settings, id, me));
        s.row(
            "accrued",
            "accrued",
            Amount::from_units(accrued, asset)?.to_string(),
        );
        s.row("accrued_units", "base units", accrued.to_string());
        if accrued != 0 {
            s.note("\nWithdraw them with `springmail fees --withdraw`.");
        }
        s.print(ctx.json);
        return Ok(());
    }
    if accrued == 0 {
        return Err(crate::report::input_error(
            format!(
                "{} has no accrued fees in {asset} to withdraw",
                show(&ctx.settings, id, me)
            ),
            "fees accrue when this account submits claims with a fee (a watcher does)",
        ));
    }
    let to = to.unwrap_or(me);
    let (receipt, amount) = client
        .withdraw_fees(token, to)
        .await
        .context("cannot withdraw the fees")?;
    let mut s = Summary::new("Withdrew the relayer fees");
    s.row(
        "amount",
        "amount",
        Amount::from_units(amount, asset)?.to_string(),
    );
    s.row("amount_units", "base units", amount.to_string());
    s.row("to", "paid to", show(&ctx.settings, id, to));
    s.row("tx", "transaction", receipt.tx_hash.to_string());
    s.print(ctx.json);
    Ok(())
}
