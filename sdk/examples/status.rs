// Where a deposit stands: open, expired, claimed or refunded.
//
//     cargo run -p springmail-sdk --example status -- sm1.…
//     cargo run -p springmail-sdk --example status -- CLAIM_KEY ESCROW
//
// A claim link names its escrow; a claim key (0x…) needs the escrow's address too.
// The node is SPRINGMAIL_RPC_URL (default http://127.0.0.1:8545); reading needs no
// funded key, so a throwaway one connects.

use std::sync::Arc;

use springmail_sdk::chain::evm_rpc::EvmRpcChain;
use springmail_sdk::client::{DepositStatus, SpringMail};
use springmail_sdk::link::ClaimLink;
use springmail_sdk::{Address, PrivateKeySigner};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (claim_key, escrow) = match args.as_slice() {
        [link] => {
            let link = ClaimLink::parse(link)?;
            (link.claim_key(), link.escrow)
        }
        [key, escrow] => (key.parse::<Address>()?, escrow.parse::<Address>()?),
        _ => return Err("usage: status LINK | status CLAIM_KEY ESCROW".into()),
    };
    let url = springmail_sdk::env::var(springmail_sdk::env::RPC_URL)
        .unwrap_or_else(|| springmail_sdk::config::DEFAULT_RPC_URL.into());
    let chain = EvmRpcChain::connect(&url, PrivateKeySigner::random(), None).await?;
    let client = SpringMail::new(Arc::new(chain), escrow);

    match client.status(claim_key).await? {
        DepositStatus::Open { deposit, .. } => println!(
            "open: {} base units, claimable until {} (unix time)",
            deposit.amount, deposit.expiry
        ),
        DepositStatus::Expired { deposit, .. } => println!(
            "expired at {} (unix time): only a refund to the sender is possible",
            deposit.expiry
        ),
        DepositStatus::Claimed {
            to,
            amount,
            fee,
            tx_hash,
            ..
        } => println!("claimed: {amount} base units to {to} (fee {fee}) in transaction {tx_hash}"),
        DepositStatus::Refunded {
            sender,
            amount,
            tx_hash,
            ..
        } => {
            println!("refunded: {amount} base units to {sender} in transaction {tx_hash}")
        }
        DepositStatus::Unknown => println!("no deposit with claim key {claim_key} in {escrow}"),
    }
    Ok(())
}
