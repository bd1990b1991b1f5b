//! The client never spends gas on a transaction that would fail, gives the caller the
//! link before anything is broadcast, and counts expiries from the real "now"
//! (issue 12, items 1, 2, 3, 6, 17 and 21), on the embedded chain.

use std::sync::Arc;
use std::time::Duration;

use alloy::sol_types::SolConstructor;
use springmail_sdk::amount::{Amount, Asset};
use springmail_sdk::chain::embedded::EmbeddedChain;
use springmail_sdk::chain::Chain;
use springmail_sdk::client::{ClientError, DepositStatus, SendRequest, SpringMail};
use springmail_sdk::contract::testing::TestToken;
use springmail_sdk::keys::ClaimSecret;
use springmail_sdk::{Address, PrivateKeySigner, U256};

const GENESIS: u64 = 1_800_000_000;
const ALICE: Address = Address::repeat_byte(0xa1);
const MALLORY: Address = Address::repeat_byte(0x66);

fn qtum(units: u128) -> Amount {
    Amount::from_units(units, Asset::qtum()).unwrap()
}

async fn world() -> (EmbeddedChain, SpringMail) {
    let chain = EmbeddedChain::with_genesis_time(8890, GENESIS);
    chain.fund(ALICE, U256::from(100_000_000_000u64));
    chain.fund(MALLORY, U256::from(100_000_000_000u64));
    let alice = SpringMail::deploy(Arc::new(chain.as_account(ALICE)))
        .await
        .unwrap();
    (chain, alice)
}

/// Every submitted transaction mines a block on the embedded chain, so an unchanged
/// height means nothing was sent.
async fn height(chain: &EmbeddedChain) -> u64 {
    chain.head().await.unwrap().number
}

#[tokio::test]
async fn a_refund_that_would_revert_is_refused_before_anything_is_sent() {
    let (chain, alice) = world().await;
    let ticket = alice
        .send(SendRequest::native(
            "bob@example.com",
            qtum(150_000_000),
            Duration::from_secs(30 * 86_400),
        ))
        .await
        .unwrap();
    let key = ticket.link.claim_key();
    let before = height(&chain).await;
    // The sender, before expiry, of a deposit that is not cancellable.
    let err = alice.refund(key).await.unwrap_err();
    assert!(
        matches!(&err, ClientError::WouldRevert { reason, .. } if reason.contains("may not refund")),
        "{err}"
    );
    assert!(err.to_string().contains("nothing was sent"), "{err}");
    // A third party, the same.
    let mallory = SpringMail::new(Arc::new(chain.as_account(MALLORY)), alice.escrow());
    let err = mallory.refund(key).await.unwrap_err();
    assert!(matches!(err, ClientError::WouldRevert { .. }), "{err}");
    assert_eq!(height(&chain).await, before, "no transaction was mined");
    assert!(matches!(
        alice.status(key).await.unwrap(),
        DepositStatus::Open { .. }
    ));
    // After expiry the same refund goes through.
    chain.advance_time(31 * 86_400);
    alice.refund(key).await.unwrap();
}

#[tokio::test]
async fn a_second_deposit_under_a_used_claim_key_is_refused_unsent() {
    let (chain, alice) = world().await;
    let link = alice.new_link();
    let req = SendRequest::native(
        "bob@example.com",
        qtum(1_000_000),
        Duration::from_secs(86_400),
    );
    alice
        .send_with_link(req.clone(), link.clone())
        .await
        .unwrap();
    let before = height(&chain).await;
    let err = alice.send_with_link(req, link).await.unwrap_err();
    assert!(
        matches!(&err, ClientError::WouldRevert { reason, .. } if reason.contains("already uses claim key")),
        "{err}"
    );
    assert_eq!(height(&chain).await, before);
}

#[tokio::test]
async fn a_token_send_without_the_balance_approves_nothing() {
    let (chain, alice) = world().await;
    let deployer = SpringMail::new(Arc::new(chain.as_account(MALLORY)), alice.escrow());
    let mut code = TestToken::BYTECODE.to_vec();
    code.extend_from_slice(
        &TestToken::constructorCall {
            name_: "Test".into(),
            symbol_: "TST".into(),
            decimals_: 8,
        }
        .abi_encode(),
    );
    let r = deployer
        .chain()
        .send(springmail_sdk::chain::TxRequest {
            to: None,
            data: code.into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let token = r.contract_address.unwrap();
    let before = height(&chain).await;
    let mut req = SendRequest::native(
        "bob@example.com",
        Amount::from_units(5_000, Asset::new("TST", 8).unwrap()).unwrap(),
        Duration::from_secs(86_400),
    );
    req.token = Some(token);
    let err = alice.send(req).await.unwrap_err();
    assert!(
        matches!(
            err,
            ClientError::InsufficientTokenBalance { need: 5_000, .. }
        ),
        "{err}"
    );
    assert_eq!(height(&chain).await, before, "no approve was sent");
}

fn clock_ahead() -> u64 {
    GENESIS + 30
}

#[tokio::test]
async fn expiry_counts_from_the_clock_when_the_last_block_is_old() {
    let (_chain, alice) = world().await;
    let head = alice.chain().head().await.unwrap().timestamp;
    assert!(
        head < clock_ahead(),
        "the chain's last block is behind the clock"
    );
    let alice = alice.with_clock(clock_ahead);
    let req = SendRequest::native("bob@example.com", qtum(1_000_000), Duration::from_secs(45));
    let ticket = alice.send(req).await.unwrap();
    assert_eq!(ticket.deposit.expiry, clock_ahead() + 45);
    assert_eq!(alice.now().await.unwrap(), clock_ahead());
}

#[tokio::test]
async fn a_prepared_deposit_has_its_final_link_before_anything_is_broadcast() {
    let (chain, alice) = world().await;
    let before = height(&chain).await;
    let req = SendRequest::native("bob@example.com", qtum(2_000_000), Duration::from_secs(600));
    let prepared = alice.prepare_deposit(req, alice.new_link()).await.unwrap();
    assert_eq!(height(&chain).await, before, "preparing sends nothing");
    let tx = alice.submit_deposit(&prepared).await.unwrap();
    let key = prepared.link.claim_key();
    let ticket = alice
        .confirm_deposit(prepared, tx, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(ticket.link.claim_key(), key);
    assert_eq!(ticket.tx_hash, tx);
    let mine = alice.deposits_by(ALICE).await.unwrap();
    assert_eq!(mine.len(), 1);
    assert_eq!(mine[0].0, key);
    assert_eq!(mine[0].3, tx);
    assert!(alice.deposits_by(MALLORY).await.unwrap().is_empty());
}

#[test]
fn the_signer_type_is_reexported() {
    let signer: PrivateKeySigner = ClaimSecret::random().signer();
    let _ = signer.address();
}

/// The client's batch: the simulation drops the claim that would be skipped (nothing is
/// sent for it), the others are paid in one transaction, the fees accrue to the client's
/// account, and `withdraw_fees` takes them in one transfer; with nothing left, a second
/// withdrawal is refused before anything is sent.
#[tokio::test]
async fn a_claim_batch_drops_what_would_be_skipped_and_fees_are_withdrawn_at_once() {
    use springmail_sdk::client::{BatchClaim, BatchOutcome};
    let (chain, alice) = world().await;
    let relayer = SpringMail::new(Arc::new(chain.as_account(MALLORY)), alice.escrow());
    let mut claims = Vec::new();
    let payees: Vec<Address> = (1..=3u8).map(Address::repeat_byte).collect();
    let now = chain.head().await.unwrap().timestamp;
    for (i, &to) in payees.iter().enumerate() {
        let ticket = alice
            .send(SendRequest::native(
                format!("bob{i}@example.com"),
                qtum(150_000_000),
                Duration::from_secs(30 * 86_400),
            ))
            .await
            .unwrap();
        let deposit = relayer.open_deposit_for(&ticket.link).await.unwrap();
        let signed = relayer
            .sign_claim(&ticket.link, &deposit, to, 1_000, now + 3_600)
            .unwrap();
        claims.push(BatchClaim {
            deposit,
            signed,
            fee: 1_000,
            attestation: Default::default(),
        });
    }
    // The second one asks for more than its signed cap: the contract would skip it.
    claims[1].fee = 1_001;
    let before = height(&chain).await;
    let result = relayer.submit_claim_batch(&claims).await.unwrap();
    assert_eq!(height(&chain).await, before + 1, "one transaction");
    assert_eq!(
        result.outcomes,
        vec![
            BatchOutcome::Paid,
            BatchOutcome::NotSent {
                reason: "FeeTooHigh".into()
            },
            BatchOutcome::Paid
        ]
    );
    assert_eq!(
        chain.balance(payees[0]).await.unwrap(),
        U256::from(150_000_000 - 1_000)
    );
    assert_eq!(chain.balance(payees[1]).await.unwrap(), U256::ZERO);
    assert_eq!(
        chain.balance(payees[2]).await.unwrap(),
        U256::from(150_000_000 - 1_000)
    );
    assert_eq!(
        relayer.accrued_fees(MALLORY, Address::ZERO).await.unwrap(),
        2_000
    );

    let payee = Address::repeat_byte(0xfe);
    let (_, amount) = relayer.withdraw_fees(Address::ZERO, payee).await.unwrap();
    assert_eq!(amount, 2_000);
    assert_eq!(chain.balance(payee).await.unwrap(), U256::from(2_000));
    assert_eq!(
        relayer.accrued_fees(MALLORY, Address::ZERO).await.unwrap(),
        0
    );
    let before = height(&chain).await;
    let err = relayer
        .withdraw_fees(Address::ZERO, payee)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ClientError::WouldRevert { reason, .. } if reason.contains("no accrued fees")),
        "{err}"
    );
    assert_eq!(height(&chain).await, before, "nothing was sent");
}
