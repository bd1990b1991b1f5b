//! Every way money leaves the escrow on purpose: claims (native and token, link and
//! email mode, with and without a relayer fee) and refunds, with the balances of
//! everyone involved and every field of the events checked.

mod escrow_common;

use alloy::primitives::U256;
use alloy::sol_types::SolEvent;
use escrow_common::*;
use springmail_sdk::contract::EmailEscrow;
use springmail_sdk::deposit::Deposit;

const MAX_FEE: u128 = 1_000_000; // 0.01 QTUM

#[derive(Clone, Copy, Debug)]
enum Fee {
    Zero,
    AtCap,
}

/// Deposits, checks the `Deposited` event and the stored hash, then claims to a fresh
/// address through the relayer and checks who got what.
fn deposit_then_claim(token: bool, email: bool, fee: Fee) {
    let w = World::new();
    let asset = if token {
        Asset::Token(w.token)
    } else {
        Asset::Native
    };
    let label = format!("{asset:?} email={email} {fee:?}");
    let k = key(&label);
    let d = w.deposit_fields(asset, email, &label);
    let to = actor(&format!("fresh recipient {label}"));

    let sender_before = w.balance(asset, w.sender);
    let r = w.deposit(k.address(), &d);
    assert_eq!(
        w.balance(asset, w.sender),
        sender_before - U256::from(d.amount),
        "sender paid"
    );
    assert_eq!(
        w.balance(asset, w.escrow),
        U256::from(d.amount),
        "escrow holds the deposit"
    );
    assert_eq!(
        w.slot(k.address()),
        d.hash(),
        "the slot holds the deposit's hash"
    );

    // The event carries every field and decodes back to the same deposit.
    let log = r
        .logs
        .iter()
        .find(|l| l.address == w.escrow)
        .expect("the escrow logged the deposit");
    assert_eq!(log.topics().len(), 3);
    assert_eq!(log.topics()[0], EmailEscrow::Deposited::SIGNATURE_HASH);
    assert_eq!(
        log.topics()[1],
        k.address().into_word(),
        "topic 1 is the claim key"
    );
    assert_eq!(
        log.topics()[2],
        w.sender.into_word(),
        "topic 2 is the sender"
    );
    assert_eq!(
        log.data.data.as_ref(),
        d.encode().as_slice(),
        "data is abi.encode(d)"
    );
    let ev: EmailEscrow::Deposited = event(&r);
    assert_eq!(ev.claimKey, k.address());
    assert_eq!(ev.sender, w.sender);
    assert_eq!(Deposit::from_sol(&ev.deposit), d);

    let fee = match fee {
        Fee::Zero => 0,
        Fee::AtCap => MAX_FEE,
    };
    let args = w.claim_args(&k, &d, to, fee, MAX_FEE);
    let relayer_before = w.balance(asset, w.relayer);
    let r = w.claim(w.relayer, &args);
    expect_ok(&r);

    assert_eq!(
        w.balance(asset, to),
        U256::from(d.amount - fee),
        "recipient gets amount - fee"
    );
    assert_eq!(
        w.balance(asset, w.relayer),
        relayer_before + U256::from(fee),
        "relayer gets the fee"
    );
    assert_eq!(
        w.balance(asset, w.escrow),
        U256::ZERO,
        "escrow paid out everything"
    );
    assert_eq!(
        w.balance(asset, w.sender),
        sender_before - U256::from(d.amount),
        "sender unchanged by the claim"
    );
    assert_eq!(
        w.slot(k.address()),
        alloy::primitives::B256::ZERO,
        "slot deleted"
    );

    let ev: EmailEscrow::Claimed = event(&r);
    assert_eq!(ev.claimKey, k.address());
    assert_eq!(ev.to, to);
    assert_eq!(ev.amount, U256::from(d.amount));
    assert_eq!(ev.fee, U256::from(fee));
    assert_eq!(ev.relayer, w.relayer);
    let log = r
        .logs
        .iter()
        .find(|l| l.topics()[0] == EmailEscrow::Claimed::SIGNATURE_HASH)
        .unwrap();
    assert_eq!(log.address, w.escrow);
}

#[test]
fn claim_native_link_mode_fee_zero() {
    deposit_then_claim(false, false, Fee::Zero);
}

#[test]
fn claim_native_link_mode_fee_at_max() {
    deposit_then_claim(false, false, Fee::AtCap);
}

#[test]
fn claim_native_email_mode_fee_zero() {
    deposit_then_claim(false, true, Fee::Zero);
}

#[test]
fn claim_native_email_mode_fee_at_max() {
    deposit_then_claim(false, true, Fee::AtCap);
}

#[test]
fn claim_token_link_mode_fee_zero() {
    deposit_then_claim(true, false, Fee::Zero);
}

#[test]
fn claim_token_link_mode_fee_at_max() {
    deposit_then_claim(true, false, Fee::AtCap);
}

#[test]
fn claim_token_email_mode_fee_zero() {
    deposit_then_claim(true, true, Fee::Zero);
}

#[test]
fn claim_token_email_mode_fee_at_max() {
    deposit_then_claim(true, true, Fee::AtCap);
}

#[test]
fn recipient_claims_alone_without_relayer_or_watcher() {
    let w = World::new();
    let (k, d) = w.open(Asset::Native, false, "self-claim");
    let bob = actor("bob");
    let r = w.claim(bob, &w.claim_args(&k, &d, bob, 0, 0));
    expect_ok(&r);
    assert_eq!(w.balance(Asset::Native, bob), U256::from(d.amount));
    assert_eq!(event::<EmailEscrow::Claimed>(&r).relayer, bob);
}

#[test]
fn fee_may_equal_the_whole_amount() {
    let w = World::new();
    let (k, d) = w.open(Asset::Native, false, "all fee");
    let to = actor("gets nothing");
    expect_ok(&w.claim(w.relayer, &w.claim_args(&k, &d, to, d.amount, d.amount)));
    assert_eq!(w.balance(Asset::Native, w.relayer), U256::from(d.amount));
    assert_eq!(w.balance(Asset::Native, to), U256::ZERO);
}

#[test]
fn claim_in_the_last_second_before_expiry_and_at_the_deadline() {
    let w = World::new();
    let (k, d) = w.open(Asset::Native, true, "last second");
    let to = actor("late bob");
    let mut args = w.claim_args(&k, &d, to, 0, 0);
    args.deadline = d.expiry - 1;
    w.sign(&mut args, &k);
    w.next_tx_at(d.expiry - 1);
    expect_ok(&w.claim(w.relayer, &args));
    assert_eq!(w.balance(Asset::Native, to), U256::from(d.amount));
}

fn refund_pays_sender(asset_is_token: bool, by_sender_before_expiry: bool) {
    let w = World::new();
    let asset = if asset_is_token {
        Asset::Token(w.token)
    } else {
        Asset::Native
    };
    let (k, d) = w.open(asset, false, "refund");
    let before = w.balance(asset, w.sender);
    let caller = if by_sender_before_expiry {
        w.sender
    } else {
        // Anyone may return an expired deposit to its sender, from the expiry second on.
        w.next_tx_at(d.expiry);
        w.stranger
    };
    let r = w.refund(caller, k.address(), &d);
    expect_ok(&r);
    assert_eq!(
        w.balance(asset, w.sender),
        before + U256::from(d.amount),
        "sender got it back"
    );
    assert_eq!(w.balance(asset, w.escrow), U256::ZERO);
    assert_eq!(
        w.balance(asset, w.stranger),
        U256::ZERO,
        "the caller gets nothing"
    );
    assert_eq!(w.slot(k.address()), alloy::primitives::B256::ZERO);
    let ev: EmailEscrow::Refunded = event(&r);
    assert_eq!(
        (ev.claimKey, ev.sender, ev.amount),
        (k.address(), w.sender, U256::from(d.amount))
    );
}

#[test]
fn refund_native_by_anyone_at_expiry() {
    refund_pays_sender(false, false);
}

#[test]
fn refund_token_by_anyone_at_expiry() {
    refund_pays_sender(true, false);
}

#[test]
fn cancel_native_by_sender_before_expiry() {
    refund_pays_sender(false, true);
}

#[test]
fn cancel_token_by_sender_before_expiry() {
    refund_pays_sender(true, true);
}

#[test]
fn non_cancellable_deposit_refunds_to_sender_after_expiry() {
    let w = World::new();
    let k = key("non-cancellable");
    let d = Deposit {
        flags: 0,
        ..w.deposit_fields(Asset::Native, false, "nc")
    };
    w.deposit(k.address(), &d);
    w.next_tx_at(d.expiry + 1000);
    expect_ok(&w.refund(w.sender, k.address(), &d));
    assert_eq!(
        w.balance(Asset::Native, w.sender),
        U256::from(START_BALANCE)
    );
}

#[test]
fn a_closed_claim_key_may_be_used_again_for_a_new_deposit() {
    let w = World::new();
    let (k, d) = w.open(Asset::Native, false, "reuse after close");
    expect_ok(&w.refund(w.sender, k.address(), &d));
    let d2 = Deposit {
        amount: 2 * d.amount,
        ..d
    };
    w.deposit(k.address(), &d2);
    assert_eq!(w.slot(k.address()), d2.hash());
    let to = actor("second");
    expect_ok(&w.claim(w.relayer, &w.claim_args(&k, &d2, to, 0, 0)));
    assert_eq!(w.balance(Asset::Native, to), U256::from(d2.amount));
}

#[test]
fn deposits_of_many_senders_and_assets_stay_apart() {
    let w = World::new();
    let (k1, d1) = w.open(Asset::Native, false, "one");
    let (k2, d2) = w.open(Asset::Token(w.token), true, "two");
    let carol = actor("carol");
    w.chain.fund(carol, U256::from(10 * COIN));
    let k3 = key("three");
    let d3 = Deposit {
        sender: carol,
        amount: 3 * COIN,
        ..w.deposit_fields(Asset::Native, false, "three")
    };
    w.deposit(k3.address(), &d3);
    assert_eq!(
        w.balance(Asset::Native, w.escrow),
        U256::from(d1.amount + d3.amount)
    );
    assert_eq!(
        w.balance(Asset::Token(w.token), w.escrow),
        U256::from(d2.amount)
    );

    expect_ok(&w.refund(carol, k3.address(), &d3));
    assert_eq!(w.balance(Asset::Native, carol), U256::from(10 * COIN));
    assert_eq!(w.balance(Asset::Native, w.escrow), U256::from(d1.amount));
    let bob = actor("bob");
    expect_ok(&w.claim(w.relayer, &w.claim_args(&k2, &d2, bob, 0, 0)));
    assert_eq!(w.balance(Asset::Token(w.token), bob), U256::from(d2.amount));
    assert_eq!(
        w.balance(Asset::Native, w.escrow),
        U256::from(d1.amount),
        "the native deposit is untouched"
    );
    assert_eq!(w.slot(k1.address()), d1.hash());
}
