// Send 1.5 QTUM to bob@example.com and claim it with the link, on the embedded
// development chain (revm inside this process: no node, no setup).
//
//     cargo run -p springmail-sdk --example send_and_claim

use std::sync::Arc;
use std::time::Duration;

use springmail_sdk::amount::{Amount, Asset};
use springmail_sdk::chain::embedded::EmbeddedChain;
use springmail_sdk::chain::Chain;
use springmail_sdk::client::{DepositStatus, SendRequest, SpringMail};
use springmail_sdk::link::ClaimLink;
use springmail_sdk::{Address, U256};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Chain id 8890 is Qtum regtest: amounts are QTUM, in satoshi (8 decimals).
    let chain = EmbeddedChain::new(8890);
    let alice = Address::repeat_byte(0xa1);
    chain.fund(alice, U256::from(10_000_000_000u64)); // 100 QTUM
    let alice_client = SpringMail::deploy(Arc::new(chain.as_account(alice))).await?;

    // 1.5 QTUM to bob@example.com, claimable with the link for 30 days.
    let ticket = alice_client
        .send(SendRequest::native(
            "bob@example.com",
            Amount::parse("1.5 QTUM", &Asset::qtum())?,
            Duration::from_secs(30 * 24 * 3600),
        ))
        .await?;
    let link_text = ticket.link.to_bare(); // what Bob receives by mail
    println!("sent to {} in transaction {}", ticket.email, ticket.tx_hash);

    // Bob parses the link (that alone changes nothing) and claims to his own address.
    let link = ClaimLink::parse(&link_text)?;
    let bob = Address::repeat_byte(0xb0);
    chain.fund(bob, U256::from(1_000_000u64)); // a little for the gas
    let bob_client = SpringMail::new(Arc::new(chain.as_account(bob)), link.escrow);
    let receipt = bob_client.claim_with_link(&link, bob).await?;
    println!("claimed in transaction {}", receipt.tx_hash);

    assert_eq!(
        chain.balance(bob).await?,
        U256::from(1_000_000u64 + 150_000_000)
    );
    match bob_client.status(link.claim_key()).await? {
        DepositStatus::Claimed { to, amount, .. } => println!("{amount} satoshi went to {to}"),
        other => return Err(format!("the deposit is {}, not claimed", other.name()).into()),
    }
    Ok(())
}
