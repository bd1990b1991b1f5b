//! `springmail claim LINK --to ADDR`: sign locally; submit directly (link mode, your key
//! pays the gas) or mail the signed CLAIM block to the deposit's watcher.

use anyhow::Context;
use springmail_sdk::amount::{Amount, Asset};
use springmail_sdk::client::SpringMail;
use springmail_sdk::deposit::Deposit;
use springmail_sdk::email;
use springmail_sdk::link::ClaimLink;
use springmail_sdk::mail::{self, ClaimMail};
use springmail_sdk::markup::ClaimBlock;
use springmail_sdk::{qtum, Address};

use crate::args::ClaimArgs;
use crate::chain::{asset_for, connect, show};
use crate::notify::{self, Delivery};
use crate::output::Summary;
use crate::report::input_error;
use crate::{secrets, Ctx};

/// How long a mailed claim stays valid (capped at the deposit's expiry).
pub const CLAIM_VALIDITY_SECS: u64 = 7 * 86_400;

/// The default most a relayer may keep: 0.01 of the coin (10^(decimals-2) base units),
/// never more than the deposit.
pub fn default_max_fee(asset: &Asset, amount: u128) -> u128 {
    let unit = 10u128.saturating_pow(u32::from(asset.decimals().saturating_sub(2)));
    unit.min(amount)
}

fn client_for(
    ctx: &Ctx,
    chain: std::sync::Arc<dyn springmail_sdk::chain::Chain>,
    link: &ClaimLink,
) -> SpringMail {
    // Event scans start at the configured block only when the link is for the configured escrow.
    let start = if ctx.settings.chain.escrow == Some(link.escrow) {
        ctx.settings.chain.start_block
    } else {
        0
    };
    SpringMail::new(chain, link.escrow).with_start_block(start)
}

/// Runs `claim`.
pub async fn run(ctx: &Ctx, a: &ClaimArgs) -> anyhow::Result<()> {
    let link = ClaimLink::parse(&a.link).context("the claim link")?;
    crate::chain::check_link_escrow(&ctx.settings, link.escrow)?;
    let to = parse_payee(&ctx.settings, link.chain_id, &a.to)?;
    if to == Address::ZERO {
        return Err(input_error(
            "--to is the zero address",
            "give your own address",
        ));
    }
    let reader = connect(&ctx.settings, None, Some(link.chain_id)).await?;
    let ro = client_for(ctx, reader.clone(), &link);
    let deposit = ro
        .open_deposit_for(&link)
        .await
        .context("cannot claim this deposit")?;
    let asset = asset_for(reader.as_ref(), Some(deposit.token)).await?;
    let amount = Amount::from_units(deposit.amount, asset.clone())?;
    if deposit.is_link_mode() {
        return claim_directly(ctx, &link, to, &amount).await;
    }
    claim_by_mail(ctx, a, &ro, &link, &deposit, to, &asset, &amount).await
}

/// `--to`. On an EVM backend only a `0x` account is accepted: a base58 `q…` there is
/// ambiguous (for a key, its Qtum address is the hash160 of the public key, which that
/// key does not control on an EVM chain), and paying it would lose the money.
fn parse_payee(
    settings: &crate::config::Settings,
    chain_id: u64,
    text: &str,
) -> anyhow::Result<Address> {
    let t = text.trim();
    let is_hex = t.starts_with("0x") || t.starts_with("0X");
    if settings.chain.backend == crate::config::Backend::EvmRpc && !is_hex {
        // Known keys: the keystore's (readable without its password) and the env key's.
        let mut known: Vec<(String, Address, Address)> = Vec::new();
        if let Ok(f) = springmail_sdk::keystore::KeystoreFile::load(&settings.keystore) {
            let name = format!("your key {}", settings.keystore.display());
            known.push((name, f.qtum_hash160(), f.address()));
        }
        if let Some(k) = springmail_sdk::env::var(secrets::PRIVATE_KEY_ENV)
            .and_then(|v| secrets::parse_private_key(&v).ok())
        {
            let name = format!("your key {}", secrets::PRIVATE_KEY_ENV);
            known.push((name, qtum::qtum_sender_of_secret(&k), k.address()));
        }
        let given = qtum::decode_address(t).ok().map(|(_, a)| a);
        let hit = known.into_iter().find(|(_, h160, _)| Some(*h160) == given);
        return Err(match hit {
            Some((name, _, account)) => input_error(
                format!(
                    "--to {t} is the Qtum address of {name}; on this EVM chain that key controls {} instead",
                    account.to_checksum(None)
                ),
                format!("pass --to {}", account.to_checksum(None)),
            ),
            None => input_error(
                format!("--to {t:?}: on an EVM chain (backend evm-rpc) give the 0x account"),
                "`springmail wallet show` prints your EVM account (0x…); a q… Qtum address is not spendable here",
            ),
        });
    }
    qtum::parse_address(chain_id, t).with_context(|| format!("--to {t:?}"))
}

async fn claim_directly(
    ctx: &Ctx,
    link: &ClaimLink,
    to: Address,
    amount: &Amount,
) -> anyhow::Result<()> {
    if ctx.settings.chain.backend != crate::config::Backend::Qtum
        && !secrets::key_available(&ctx.settings.keystore)
    {
        return Err(input_error(
            "claiming directly needs a key with a little coin for the gas, and none is set up",
            "make one with `springmail wallet new` (or set SPRINGMAIL_PRIVATE_KEY), and put a little coin on it",
        ));
    }
    let chain = crate::chain::connect_signing(&ctx.settings, Some(link.chain_id)).await?;
    let client = client_for(ctx, chain, link);
    let receipt = client
        .claim_with_link(link, to)
        .await
        .context("the claim failed")?;
    let mut s = Summary::new(format!(
        "Claimed {amount} to {}",
        show(&ctx.settings, link.chain_id, to)
    ));
    s.row("amount", "amount", amount.to_string());
    s.row("to", "to", show(&ctx.settings, link.chain_id, to));
    s.row("tx", "transaction", receipt.tx_hash.to_string());
    s.row("block", "block", receipt.block_number.to_string());
    s.print(ctx.json);
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn claim_by_mail(
    ctx: &Ctx,
    a: &ClaimArgs,
    ro: &SpringMail,
    link: &ClaimLink,
    deposit: &Deposit,
    to: Address,
    asset: &Asset,
    amount: &Amount,
) -> anyhow::Result<()> {
    let settings = &ctx.settings;
    let my_email = a
        .email
        .clone()
        .or_else(|| settings.mail_address.clone())
        .ok_or_else(|| {
            input_error(
                "claiming by mail needs your email address: the one the money was sent to",
                "pass --email YOU@EXAMPLE.COM (or set [mail] address in springmail.toml)",
            )
        })?;
    let normalized =
        email::normalize(&my_email).with_context(|| format!("--email {my_email:?}"))?;
    if email::commitment(&normalized, &link.salt)? != deposit.recipient {
        return Err(input_error(
            format!("this deposit was not sent to {normalized}"),
            "use the address the notification email was sent to (--email)",
        ));
    }
    // Name where the value came from: the flag, or the config key.
    let fee_text = match (a.max_fee.as_deref(), settings.max_fee.as_deref()) {
        (Some(t), _) => Some((t, "--max-fee")),
        (None, Some(t)) => Some((t, "[claim] max_fee")),
        (None, None) => None,
    };
    let max_fee = match fee_text {
        Some((text, origin)) => {
            Amount::parse(text, asset).with_context(|| format!("{origin} {text:?}"))?
        }
        None => Amount::from_units(default_max_fee(asset, deposit.amount), asset.clone())?,
    };
    if max_fee.units() > deposit.amount {
        return Err(input_error(
            format!("the maximum fee {max_fee} is more than the deposit ({amount})"),
            "choose a smaller --max-fee",
        ));
    }
    let block = sign_claim_block(ro, link, deposit, to, &max_fee).await?;
    let deadline = block.deadline;
    let watcher_email = a
        .watcher_email
        .clone()
        .or_else(|| settings.watcher_email.clone());
    let delivery = match (&a.out, &settings.smtp_url) {
        (Some(p), _) => Delivery::File(p.clone()),
        (None, Some(url)) if watcher_email.is_some() => Delivery::Smtp(url.clone()),
        _ => Delivery::None,
    };
    let mut s = Summary::new(format!(
        "Signed a claim for {amount} to {}",
        show(&ctx.settings, link.chain_id, to)
    ));
    s.row("amount", "amount", amount.to_string());
    s.row("to", "to", show(&ctx.settings, link.chain_id, to));
    s.row("max_fee", "watcher fee at most", max_fee.to_string());
    s.row("deadline", "valid until", mail::human_date(deadline));
    if delivery == Delivery::None {
        s.data("claim_block", block.render());
        s.note(format!(
            "\nReply to the notification email from {normalized} and paste this block into the body:\n\n{}\n\
             (It holds a signature, not your link: the link stays here.)",
            block.render().trim_end()
        ));
        s.print(ctx.json);
        return Ok(());
    }
    let watcher_email = watcher_email.ok_or_else(|| {
        input_error(
            "the claim mail needs the watcher's mailbox: the Reply-To of the notification email",
            "pass --watcher-email (or set [watcher] email in springmail.toml)",
        )
    })?;
    let parent = match &a.in_reply_to {
        Some(id) => id.clone(),
        None => mail::notification_message_id(link, &normalized)?,
    };
    let built = mail::claim_mail(&ClaimMail {
        from: &my_email,
        watcher_email: &watcher_email,
        block: &block,
        in_reply_to: Some(&parent),
        subject: Some(&format!("Claim {amount}")),
        date: None,
    })?;
    let where_ = notify::deliver(settings, &delivery, &built)
        .await
        .context("the claim mail was not delivered")?;
    s.row("claim_mail", "claim mail", where_.unwrap_or_default());
    s.data("message_id", built.message_id.clone());
    s.note(format!(
        "\nThe watcher checks the mail and the chain, pays, and answers in the thread.\n\
         Follow it with: springmail status {}",
        link.claim_key().to_checksum(None)
    ));
    s.print(ctx.json);
    Ok(())
}

/// Signs a claim of `deposit` to `to` with the link's key, valid for
/// [`CLAIM_VALIDITY_SECS`] (at most until the deposit expires), as a CLAIM block.
pub async fn sign_claim_block(
    client: &SpringMail,
    link: &ClaimLink,
    deposit: &Deposit,
    to: Address,
    max_fee: &Amount,
) -> anyhow::Result<ClaimBlock> {
    let now = client.chain().head().await?.timestamp;
    let deadline = now.saturating_add(CLAIM_VALIDITY_SECS).min(deposit.expiry);
    let signed = client.sign_claim(link, deposit, to, max_fee.units(), deadline)?;
    Ok(ClaimBlock {
        chain_id: link.chain_id,
        escrow: link.escrow,
        claim_key: link.claim_key(),
        to,
        max_fee: max_fee.clone(),
        deadline,
        salt: link.salt.clone(),
        signature: signed.signature,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_fee_is_a_hundredth_capped_at_the_amount() {
        assert_eq!(default_max_fee(&Asset::qtum(), 150_000_000), 1_000_000);
        assert_eq!(default_max_fee(&Asset::qtum(), 10), 10);
        assert_eq!(default_max_fee(&Asset::new("T", 0).unwrap(), 5), 1);
    }
}
