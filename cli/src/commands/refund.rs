//! `springmail refund CLAIM_KEY|LINK`.

use anyhow::Context;

use super::status::{resolve_ref, DepositRef};
use crate::chain::{asset_for, client, show};
use crate::output::Summary;
use crate::Ctx;
use springmail_sdk::amount::Amount;

/// Runs `refund`.
pub async fn run(ctx: &Ctx, a: &crate::args::RefundArgs) -> anyhow::Result<()> {
    let DepositRef {
        claim_key,
        escrow,
        chain_id,
    } = resolve_ref(&ctx.settings, &a.deposit)?;
    let chain = crate::chain::connect_signing(&ctx.settings, chain_id).await?;
    let client = client(&ctx.settings, chain.clone(), escrow);
    let deposit = client.find_open_deposit(claim_key).await?.map(|(d, _)| d);
    let receipt = client.refund(claim_key).await.context("cannot refund")?;
    let id = chain.chain_id();
    let mut s = Summary::new("Refunded the deposit");
    if let Some(d) = deposit {
        let asset = asset_for(chain.as_ref(), Some(d.token)).await?;
        s.row(
            "amount",
            "amount",
            Amount::from_units(d.amount, asset)?.to_string(),
        );
        s.row("to", "paid back to", show(&ctx.settings, id, d.sender));
    }
    s.row("claim_key", "claim key", claim_key.to_checksum(None));
    s.row("tx", "transaction", receipt.tx_hash.to_string());
    s.print(ctx.json);
    Ok(())
}
