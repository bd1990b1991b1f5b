//! Mailbox wallets through the SDK's calls on the embedded chain: every operation's
//! path, with balances, nonces, limits and events checked, and the exit without the
//! broker.

use std::sync::Arc;
use std::time::Duration;

use alloy::primitives::{keccak256, Address, B256, U256};
use springmail_sdk::accounts::{
    mail_hash, AccountEvent, AccountId, Limits, Movement, PayRequest, DAY,
};
use springmail_sdk::amount::{Amount, Asset};
use springmail_sdk::chain::embedded::EmbeddedChain;
use springmail_sdk::chain::Chain;
use springmail_sdk::client::{ClientError, DepositStatus, SendRequest, SpringMail};
use springmail_sdk::email::Salt;

const COIN: u128 = 100_000_000;
const GENESIS: u64 = 1_760_000_000;

fn addr(label: &str) -> Address {
    Address::from_slice(&keccak256(format!("springmail accounts test {label}"))[12..])
}

struct Setup {
    chain: EmbeddedChain,
    /// Alice deposits the old way.
    alice: SpringMail,
    /// The broker: controller of the accounts and watcher of the deposits.
    broker: SpringMail,
    broker_addr: Address,
    bob: AccountId,
    carol: AccountId,
}

fn client(chain: &EmbeddedChain, who: Address, escrow: Address) -> SpringMail {
    SpringMail::new(Arc::new(chain.as_account(who)), escrow)
}

async fn setup() -> Setup {
    let chain = EmbeddedChain::with_genesis_time(8890, GENESIS);
    let alice_addr = addr("alice");
    let broker_addr = addr("broker");
    chain.fund(alice_addr, U256::from(1_000 * COIN));
    chain.fund(broker_addr, U256::from(10 * COIN));
    let alice = SpringMail::deploy(Arc::new(chain.as_account(alice_addr)))
        .await
        .unwrap();
    let broker = client(&chain, broker_addr, alice.escrow());
    let bob = AccountId::commit("Bob@Example.com", &Salt::from_bytes([1; 16])).unwrap();
    let carol = AccountId::commit("carol@example.net", &Salt::from_bytes([2; 16])).unwrap();
    Setup {
        chain,
        alice,
        broker,
        broker_addr,
        bob,
        carol,
    }
}

fn mv(nonce: u32, mail: &str) -> Movement {
    Movement {
        nonce,
        mail_hash: mail_hash(mail.as_bytes()),
    }
}

fn limits() -> Limits {
    Limits::new((10 * COIN) as u64, (20 * COIN) as u64).unwrap()
}

/// Alice sends 3 QTUM to bob@example.com with the broker as watcher.
async fn email_deposit(s: &Setup, qtum: &str) -> springmail_sdk::client::Ticket {
    let amount = Amount::parse(qtum, &Asset::qtum()).unwrap();
    let mut req = SendRequest::native("bob@example.com", amount, Duration::from_secs(7 * DAY));
    req.watcher = Some(s.broker_addr);
    s.alice.send(req).await.unwrap()
}

#[tokio::test]
async fn open_claim_into_transfer_withdraw() {
    let s = setup().await;
    s.broker
        .open_account(s.bob, s.broker_addr, limits())
        .await
        .unwrap();
    s.broker
        .open_account(s.carol, s.broker_addr, limits())
        .await
        .unwrap();
    let bob = s.broker.account(s.bob).await.unwrap();
    assert!(bob.is_open());
    assert_eq!(
        (bob.balance, bob.nonce, bob.controller, bob.owner),
        (0, 1, s.broker_addr, None)
    );
    assert_eq!(bob.limits, limits());

    // Bob's reply makes the broker claim Alice's deposit into his account, fee 0.001.
    let ticket = email_deposit(&s, "3 QTUM").await;
    let reply = "From: bob@example.com\r\nSubject: Re: claim\r\n\r\nclaim\r\n";
    let r = s
        .broker
        .claim_into(
            &ticket.link,
            &ticket.deposit,
            None,
            s.bob,
            100_000,
            mv(1, reply),
        )
        .await
        .unwrap();
    let bob = s.broker.account(s.bob).await.unwrap();
    assert_eq!(bob.balance, 3 * COIN - 100_000);
    assert_eq!(bob.nonce, 2);
    assert_eq!(
        s.broker
            .accrued_fees(s.broker_addr, Address::ZERO)
            .await
            .unwrap(),
        100_000
    );
    assert!(matches!(
        s.alice.status(ticket.link.claim_key()).await.unwrap(),
        DepositStatus::Unknown | DepositStatus::Claimed { .. }
    ));
    assert_eq!(
        s.broker.stored_hash(ticket.link.claim_key()).await.unwrap(),
        B256::ZERO
    );
    let moved: Vec<_> = r.logs.iter().filter_map(AccountEvent::decode).collect();
    assert_eq!(
        moved,
        vec![AccountEvent::Moved {
            from: ticket.link.claim_key().into_word(),
            to: s.bob.0,
            amount: 3 * COIN - 100_000,
            nonce: 1,
            mail_hash: mail_hash(reply.as_bytes()),
        }]
    );

    // Bob pays Carol 1 QTUM, account to account.
    s.broker
        .transfer_between(s.bob, s.carol, COIN, mv(2, "pay 1 QTUM to carol"))
        .await
        .unwrap();
    assert_eq!(
        s.broker.account(s.bob).await.unwrap().balance,
        2 * COIN - 100_000
    );
    assert_eq!(s.broker.account(s.carol).await.unwrap().balance, COIN);
    assert_eq!(
        s.broker.account(s.carol).await.unwrap().nonce,
        1,
        "receiving does not step the nonce"
    );

    // Carol withdraws 0.4 QTUM to an address.
    let payee = addr("carol's address");
    s.broker
        .withdraw_from(s.carol, payee, 40_000_000, mv(1, "pay 0.4 QTUM to q..."))
        .await
        .unwrap();
    assert_eq!(
        s.chain.balance(payee).await.unwrap(),
        U256::from(40_000_000u64)
    );
    let carol = s.broker.account(s.carol).await.unwrap();
    assert_eq!((carol.balance, carol.nonce), (60_000_000, 2));
    assert_eq!(
        carol.spent_at(s.chain.head().await.unwrap().timestamp),
        40_000_000
    );

    // The escrow holds exactly the balances plus the fee.
    let held = s.chain.balance(s.alice.escrow()).await.unwrap();
    assert_eq!(held, U256::from(2 * COIN - 100_000 + 60_000_000 + 100_000));

    // The history of Bob's account: the claim in, the transfer out.
    let h = s.broker.account_history(s.bob).await.unwrap();
    let kinds: Vec<_> = h
        .iter()
        .map(|(_, e)| match e {
            AccountEvent::Opened { .. } => "opened",
            AccountEvent::Moved { to, .. } if *to == s.bob.0 => "in",
            AccountEvent::Moved { .. } => "out",
            _ => "other",
        })
        .collect();
    assert_eq!(kinds, ["opened", "in", "out"]);
}

#[tokio::test]
async fn a_refused_movement_is_not_sent_and_names_the_error() {
    let s = setup().await;
    s.broker
        .open_account(s.bob, s.broker_addr, limits())
        .await
        .unwrap();
    let head = s.chain.head().await.unwrap().number;
    // Wrong nonce, no balance, over the limit; Bob's empty balance is refused before
    // the receiver (not open) is looked at.
    let cases: Vec<(Result<_, ClientError>, &str)> = vec![
        (
            s.broker
                .withdraw_from(s.bob, addr("x"), 1, mv(5, "m"))
                .await,
            "nonce",
        ),
        (
            s.broker
                .withdraw_from(s.bob, addr("x"), 1, mv(1, "m"))
                .await,
            "holds 0 base units",
        ),
        (
            s.broker
                .withdraw_from(s.bob, addr("x"), 11 * COIN, mv(1, "m"))
                .await,
            "above what the controller may still move",
        ),
        (
            s.broker
                .transfer_between(s.bob, s.carol, 1, mv(1, "m"))
                .await,
            "holds 0 base units",
        ),
    ];
    for (i, (res, words)) in cases.into_iter().enumerate() {
        let err = res.expect_err("refused");
        let text = err.to_string();
        assert!(
            matches!(err, ClientError::WouldRevert { .. }),
            "case {i}: {text}"
        );
        assert!(text.contains(words), "case {i}: {text}");
    }
    assert_eq!(
        s.chain.head().await.unwrap().number,
        head,
        "nothing was sent"
    );
    // A stranger cannot open Bob's account twice.
    let err = s
        .broker
        .open_account(s.bob, addr("stranger"), limits())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("is open already"), "{err}");
}

#[tokio::test]
async fn pay_email_is_claimed_with_the_link_or_refunded_into_the_account() {
    let s = setup().await;
    s.broker
        .open_account(s.bob, s.broker_addr, limits())
        .await
        .unwrap();
    let ticket = email_deposit(&s, "5 QTUM").await;
    s.broker
        .claim_into(
            &ticket.link,
            &ticket.deposit,
            None,
            s.bob,
            0,
            mv(1, "claim"),
        )
        .await
        .unwrap();

    // Bob pays dave@example.org 2 QTUM in link mode; Dave claims with the link.
    let pay = |cancellable: bool| PayRequest {
        email: "dave@example.org".into(),
        amount: 2 * COIN,
        expires_in: Duration::from_secs(DAY),
        watcher: None,
        cancellable,
    };
    let t = s
        .broker
        .pay_email(s.bob, pay(false), s.broker.new_link(), mv(2, "pay dave"))
        .await
        .unwrap();
    assert_eq!(t.deposit.sender, s.alice.escrow());
    assert_eq!(t.email, "dave@example.org");
    assert_eq!(s.broker.account(s.bob).await.unwrap().balance, 3 * COIN);
    let (d, from) = s
        .broker
        .find_account_deposit(t.link.claim_key())
        .await
        .unwrap()
        .expect("the payment is an open deposit");
    assert_eq!((d, from), (t.deposit, s.bob));
    let dave = addr("dave");
    s.chain.fund(dave, U256::from(COIN));
    let daves = client(&s.chain, dave, s.alice.escrow());
    daves
        .claim_account_deposit_with_link(&t.link, dave)
        .await
        .unwrap();
    assert!(s.chain.balance(dave).await.unwrap() > U256::from(COIN + COIN));
    assert!(s
        .broker
        .find_account_deposit(t.link.claim_key())
        .await
        .unwrap()
        .is_none());

    // A second payment, cancellable: the controller refunds it into Bob's account.
    let t = s
        .broker
        .pay_email(
            s.bob,
            pay(true),
            s.broker.new_link(),
            mv(3, "pay dave again"),
        )
        .await
        .unwrap();
    assert_eq!(s.broker.account(s.bob).await.unwrap().balance, COIN);
    // A stranger may not cancel it before expiry.
    let stranger = addr("stranger");
    s.chain.fund(stranger, U256::from(COIN));
    let err = client(&s.chain, stranger, s.alice.escrow())
        .refund_to_account(t.link.claim_key())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("may not refund"), "{err}");
    s.broker
        .refund_to_account(t.link.claim_key())
        .await
        .unwrap();
    let bob = s.broker.account(s.bob).await.unwrap();
    assert_eq!(
        (bob.balance, bob.nonce),
        (3 * COIN, 4),
        "refunds do not step the nonce"
    );
    assert_eq!(
        s.chain.balance(s.alice.escrow()).await.unwrap(),
        U256::from(3 * COIN)
    );
}

#[tokio::test]
async fn the_owner_exits_without_the_broker() {
    let s = setup().await;
    s.broker
        .open_account(s.bob, s.broker_addr, limits())
        .await
        .unwrap();
    let ticket = email_deposit(&s, "30 QTUM").await;
    s.broker
        .claim_into(
            &ticket.link,
            &ticket.deposit,
            None,
            s.bob,
            0,
            mv(1, "claim"),
        )
        .await
        .unwrap();
    let owner = addr("bob's own key");
    s.chain.fund(owner, U256::from(COIN));
    s.broker
        .bind_owner(s.bob, owner, mv(2, "bind q..."))
        .await
        .unwrap();
    assert_eq!(s.broker.account(s.bob).await.unwrap().owner, Some(owner));

    // The controller can no longer replace the owner, nor raise the limits.
    let err = s
        .broker
        .bind_owner(s.bob, s.broker_addr, mv(3, "bind"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("may not do this"), "{err}");
    let err = s
        .broker
        .set_limits(s.bob, Limits::new(u64::MAX >> 16, u64::MAX >> 16).unwrap())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("may not do this"), "{err}");
    // It may lower them.
    s.broker
        .set_limits(s.bob, Limits::new(COIN as u64, COIN as u64).unwrap())
        .await
        .unwrap();

    // The owner takes everything out at once, above every limit.
    let bobs = client(&s.chain, owner, s.alice.escrow());
    let out = addr("bob's cold address");
    bobs.withdraw_from(s.bob, out, 30 * COIN, mv(3, ""))
        .await
        .unwrap();
    assert_eq!(s.chain.balance(out).await.unwrap(), U256::from(30 * COIN));
    let st = bobs.account(s.bob).await.unwrap();
    assert_eq!((st.balance, st.nonce, st.spent_today), (0, 4, 0));

    // The owner moves the account to another broker; the old one is locked out.
    let broker2 = addr("broker two");
    bobs.set_controller(s.bob, broker2, mv(4, ""))
        .await
        .unwrap();
    assert_eq!(bobs.account(s.bob).await.unwrap().controller, broker2);
    let err = s
        .broker
        .withdraw_from(s.bob, out, 1, mv(5, "m"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("may not do this"), "{err}");
}
