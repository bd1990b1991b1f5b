// Deploy the escrow on anvil, send 1.5 QTUM to bob@example.com from anvil's account 0,
// and claim it with the link from account 1 to a fresh address.
//
//     anvil --hardfork shanghai --chain-id 8890 &      # or: scripts/dev-stack start
//     cargo run -p springmail-sdk --example send_and_claim_anvil
//
// The node is SPRINGMAIL_RPC_URL (default http://127.0.0.1:8545). anvil mines every
// transaction at once; on a node that does not, each step waits for its block.

use std::sync::Arc;
use std::time::Duration;

use springmail_sdk::amount::{Amount, Asset};
use springmail_sdk::chain::evm_rpc::EvmRpcChain;
use springmail_sdk::chain::Chain;
use springmail_sdk::client::{DepositStatus, SendRequest, SpringMail};
use springmail_sdk::link::ClaimLink;
use springmail_sdk::{PrivateKeySigner, U256};

/// anvil's well-known development keys: accounts 0 and 1. Never use them elsewhere.
const ALICE_KEY: &str = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";
const BOB_KEY: &str = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d";

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = springmail_sdk::env::var(springmail_sdk::env::RPC_URL)
        .unwrap_or_else(|| springmail_sdk::config::DEFAULT_RPC_URL.into());

    // Alice deploys the escrow and deposits 1.5 QTUM (150,000,000 base units).
    let alice: PrivateKeySigner = ALICE_KEY.parse()?;
    let alice_chain = EvmRpcChain::connect(&url, alice, Some(8890)).await?;
    let alice_client = SpringMail::deploy(Arc::new(alice_chain)).await?;
    println!("escrow deployed at {}", alice_client.escrow());
    let ticket = alice_client
        .send(SendRequest::native(
            "bob@example.com",
            Amount::parse("1.5 QTUM", &Asset::qtum())?,
            Duration::from_secs(30 * 24 * 3600),
        ))
        .await?;
    let link_text = ticket.link.to_bare(); // what Bob receives by mail
    println!("sent to {} in transaction {}", ticket.email, ticket.tx_hash);

    // Bob claims with the link; his key pays the gas, the money goes to `payout`.
    let link = ClaimLink::parse(&link_text)?;
    let bob: PrivateKeySigner = BOB_KEY.parse()?;
    let bob_chain = Arc::new(EvmRpcChain::connect(&url, bob, Some(link.chain_id)).await?);
    let payout = PrivateKeySigner::random().address();
    let bob_client = SpringMail::new(bob_chain.clone(), link.escrow)
        .with_start_block(alice_client.start_block());
    let receipt = bob_client.claim_with_link(&link, payout).await?;
    println!("claimed in transaction {}", receipt.tx_hash);

    assert_eq!(bob_chain.balance(payout).await?, U256::from(150_000_000u64));
    match bob_client.status(link.claim_key()).await? {
        DepositStatus::Claimed { to, amount, .. } => println!("{amount} base units went to {to}"),
        other => return Err(format!("the deposit is {}, not claimed", other.name()).into()),
    }
    Ok(())
}
