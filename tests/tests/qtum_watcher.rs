//! The watcher end to end on a live qtumd (regtest) instead of anvil: a deposit in email
//! mode naming the watcher's key, Bob's DKIM-signed claim mail over the
//! dev stack's SMTP, the watcher reading it over IMAP, paying Bob's fresh P2PKH address
//! through qtumd and answering in thread. Twice: with the node's wallet signing every
//! transaction, the deposit naming the watcher's sending address (its hash160), so the
//! watcher submits the claim without attestation; and with `signer = "local"`, the
//! deposit naming the watcher key's EVM address, where the watcher key both attests the
//! claim and signs the claim transaction (paying the gas from its own Qtum address,
//! which no node wallet holds) and the sender deposits with a local key too.

use std::sync::Arc;
use std::time::Duration;

use springmail_e2e::qtum::QtumNode;
use springmail_e2e::watcher::DevWatcher;
use springmail_e2e::Stack;
use springmail_sdk::amount::{Amount, Asset};
use springmail_sdk::chain::Chain;
use springmail_sdk::client::{DepositStatus, SendRequest, SpringMail};
use springmail_sdk::keys::ClaimSecret;
use springmail_sdk::mail::{claim_mail, ClaimMail};
use springmail_sdk::qtum::parse_address;
use springmail_watcher::authenticate::PinnedRecords;
use springmail_watcher::journal::OutcomeKind;
use springmail_watcher::service::PipelineSettings;
use springmail_watcher::testkit::{claim_block, TestDomain};

const WATCHER: &str = "watcher@broker.test";
const BOB: &str = "bob@example.com";
const AMOUNT: u128 = 150_000_000;
const FEE: u128 = 100_000;

#[tokio::test]
#[ignore = "needs the dev stack with qtumd: run scripts/test"]
async fn email_mode_claim_through_the_watcher_pays_a_fresh_address_on_qtumd() {
    email_mode_claim(false).await;
}

#[tokio::test]
#[ignore = "needs the dev stack with qtumd: run scripts/test"]
async fn watcher_signing_locally_claims_to_a_fresh_address_on_qtumd() {
    email_mode_claim(true).await;
}

/// One email-mode claim through the watcher; `local`: every key signs its own Qtum
/// transactions (`signer = "local"`), else the node's wallet does.
async fn email_mode_claim(local: bool) {
    // Both tests read the one watcher mailbox of the dev stack: one at a time.
    static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    let _serial = SERIAL.lock().await;
    let stack = Stack::from_env().unwrap();
    let node = QtumNode::from_env().unwrap();
    stack.clear_inbox(WATCHER).await.unwrap();

    let watcher_key = Arc::new(ClaimSecret::random());
    let (sender_chain, relayer): (Arc<dyn Chain>, Arc<dyn Chain>) = if local {
        let alice = node
            .funded_local(&ClaimSecret::random(), 100)
            .await
            .unwrap();
        assert!(alice.signs_locally());
        // The same key signs the watcher's Qtum transactions: its hash160 is the relayer.
        let relayer = node.funded_local(&watcher_key, 20).await.unwrap();
        (alice, relayer)
    } else {
        (
            node.funded_sender(100).await.unwrap().1,
            node.funded_sender(20).await.unwrap().1,
        )
    };
    let sender = {
        let _m = node.miner();
        SpringMail::deploy(sender_chain.clone()).await.unwrap()
    };
    // Node wallet: the deposit names the watcher's sending address (`msg.sender` of its
    // claims, a hash160), which no attestation can stand for: only a claim the watcher
    // submits without one can pay it. Local signer: the watcher key's EVM (keccak)
    // address, checked against its EIP-712 attestation; the sending address, another
    // number, only pays gas.
    let watcher_address = if local {
        watcher_key.address()
    } else {
        relayer.account()
    };
    assert_ne!(
        springmail_sdk::qtum::qtum_sender_of_secret(&watcher_key),
        watcher_key.address()
    );
    let ticket = {
        let _m = node.miner();
        let mut req = SendRequest::native(
            BOB,
            Amount::from_units(AMOUNT, Asset::qtum()).unwrap(),
            Duration::from_secs(7 * 86_400),
        );
        req.watcher = Some(watcher_address);
        sender.send(req).await.unwrap()
    };

    let example = TestDomain::new("example.com");
    let broker = TestDomain::new("broker.test");
    let mut pins = PinnedRecords::new();
    example.pin(&mut pins);
    broker.pin(&mut pins);

    let bob_address = node.outside_address().await.unwrap();
    let payee = parse_address(8890, &bob_address).unwrap();
    let head = sender_chain.head().await.unwrap();
    let block = claim_block(&sender, &ticket, payee, 200_000, head.timestamp + 86_400);
    let built = claim_mail(&ClaimMail {
        from: BOB,
        watcher_email: WATCHER,
        block: &block,
        in_reply_to: Some("sm.notification@sender.example.org"),
        subject: None,
        date: None,
    })
    .unwrap();
    stack
        .smtp_send(BOB, WATCHER, &example.sign(&built.bytes))
        .await
        .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let mut watcher = stack.watcher(DevWatcher {
        client: SpringMail::new(relayer.clone(), sender.escrow())
            .with_start_block(sender.start_block()),
        watcher_key: watcher_key.clone(),
        journal_dir: dir.path(),
        folder: "INBOX",
        imap_timeout: Duration::from_secs(30),
        pins,
        broker_key_pem: &broker.key_pem,
        native_fee: FEE,
        receipt_timeout: Duration::from_secs(60),
        pipeline: PipelineSettings {
            poll_interval: Duration::from_secs(2),
            retry_base: Duration::from_secs(1),
            ..Default::default()
        },
    });
    let report = {
        let _m = node.miner();
        watcher.run_once().await.unwrap()
    };
    assert_eq!(
        report.decided,
        vec![(OutcomeKind::Claimed, "claimed".to_string())],
        "{report:?}"
    );
    node.mine(1).await.unwrap();
    assert_eq!(
        node.address_balance(&bob_address).await.unwrap() as u128,
        AMOUNT - FEE,
        "Bob's fresh address holds the deposit less the watcher's fee"
    );
    let DepositStatus::Claimed {
        tx_hash,
        relayer: paid_by,
        ..
    } = sender.status(ticket.link.claim_key()).await.unwrap()
    else {
        panic!("not claimed on chain")
    };
    assert_eq!(
        paid_by,
        relayer.account(),
        "the watcher's sending address claimed"
    );
    if local {
        assert_eq!(
            paid_by,
            springmail_sdk::qtum::qtum_sender_of_secret(&watcher_key),
            "the watcher key's own Qtum address sent the claim"
        );
    }
    let reply = stack
        .reply_to(BOB, &built.message_id)
        .await
        .unwrap()
        .expect("Bob got a reply in thread");
    let text = String::from_utf8_lossy(&reply).replace("=\r\n", "");
    assert!(text.contains(&tx_hash.to_string()), "{text}");
}
