//! Every way money leaves the escrow on purpose: claims (native and token, link and
//! email mode, with and without a relayer fee) and refunds, with the balances of
//! everyone involved and every field of the events checked.

mod escrow_common;

use alloy::primitives::U256;
use alloy::sol_types::{SolError, SolEvent};
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
    // v2: the fee accrues to the relayer inside the escrow; nothing is paid to it yet.
    assert_eq!(
        w.balance(asset, w.relayer),
        relayer_before,
        "the relayer is not paid in the claim"
    );
    assert_eq!(
        w.fees(w.relayer, asset),
        U256::from(fee),
        "the fee accrues to the relayer"
    );
    assert_eq!(
        w.balance(asset, w.escrow),
        U256::from(fee),
        "escrow keeps exactly the accrued fee"
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

    // The relayer withdraws its fees in one transfer, to an address of its choosing.
    if fee != 0 {
        let payee = actor(&format!("fee payee {label}"));
        let r = w.withdraw_fees(w.relayer, asset, payee);
        expect_ok(&r);
        let ev: EmailEscrow::FeesWithdrawn = event(&r);
        assert_eq!(
            (ev.relayer, ev.token, ev.to, ev.amount),
            (w.relayer, asset.address(), payee, U256::from(fee))
        );
        assert_eq!(
            w.balance(asset, payee),
            U256::from(fee),
            "payee gets the fees"
        );
        assert_eq!(w.fees(w.relayer, asset), U256::ZERO, "nothing left accrued");
        assert_eq!(w.balance(asset, w.escrow), U256::ZERO, "escrow is empty");
    }
    // Nothing (left) to withdraw: refused, nothing moves.
    let r = w.withdraw_fees(w.relayer, asset, w.stranger);
    assert!(
        matches!(
            revert_error(&r),
            EmailEscrow::EmailEscrowErrors::NoFees(e) if e.relayer == w.relayer && e.token == asset.address()
        ),
        "second withdrawal refused with NoFees"
    );
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
    // v2: the whole amount accrues to the relayer in the escrow (was: paid to it).
    assert_eq!(w.fees(w.relayer, Asset::Native), U256::from(d.amount));
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

#[test]
fn withdrawing_fees_to_the_zero_address_is_refused() {
    let w = World::new();
    let (k, d) = w.open(Asset::Native, false, "zero payee");
    let to = actor("zero payee recipient");
    expect_ok(&w.claim(w.relayer, &w.claim_args(&k, &d, to, 7, 7)));
    let r = w.withdraw_fees(w.relayer, Asset::Native, alloy::primitives::Address::ZERO);
    assert!(matches!(
        revert_error(&r),
        EmailEscrow::EmailEscrowErrors::ZeroPayee(_)
    ));
    assert_eq!(
        w.fees(w.relayer, Asset::Native),
        U256::from(7u64),
        "fees stay accrued"
    );
}

/// A batch of four: two valid claims (native and token), one whose deposit was already
/// claimed, one with a bad attestation. The valid ones are paid, the others skipped with
/// their reason, and their deposits left as they were.
#[test]
fn claim_batch_pays_the_valid_claims_and_skips_the_others() {
    let w = World::new();
    let (k1, d1) = w.open(Asset::Native, true, "batch 1");
    let (k2, d2) = w.open(Asset::Token(w.token), false, "batch 2");
    let (k3, d3) = w.open(Asset::Native, false, "batch 3");
    let (k4, d4) = w.open(Asset::Native, true, "batch 4");
    let to: Vec<_> = (1..=4)
        .map(|i| actor(&format!("batch payee {i}")))
        .collect();
    let a1 = w.claim_args(&k1, &d1, to[0], 1_000, 1_000);
    let a2 = w.claim_args(&k2, &d2, to[1], 2_000, 5_000);
    let a3 = w.claim_args(&k3, &d3, to[2], 0, 0);
    let mut a4 = w.claim_args(&k4, &d4, to[3], 0, 0);
    a4.attestation = a4
        .auth()
        .sign_attest(w.id, &key("not the watcher"))
        .to_bytes();
    // Deposit 3 is claimed directly first: in the batch it is stale.
    expect_ok(&w.claim(w.stranger, &a3));

    let batch = [a1.clone(), a2.clone(), a3.clone(), a4.clone()];
    let call = EmailEscrow::claimBatchCall {
        claims: batch.iter().map(ClaimArgs::to_sol).collect(),
    };
    // The simulation names the claims that would be skipped.
    let sim = w.simulate(
        w.relayer,
        w.escrow,
        alloy::sol_types::SolCall::abi_encode(&call),
    );
    let reasons = match sim {
        springmail_sdk::chain::CallResult::Success(out) => {
            <EmailEscrow::claimBatchCall as alloy::sol_types::SolCall>::abi_decode_returns(&out)
                .expect("decodable")
        }
        springmail_sdk::chain::CallResult::Reverted(d) => {
            panic!("batch reverted: {}", describe_revert(&d))
        }
    };
    let zero = alloy::primitives::FixedBytes::<4>::ZERO;
    assert_eq!(
        reasons,
        vec![
            zero,
            zero,
            alloy::primitives::FixedBytes::from(EmailEscrow::UnknownDeposit::SELECTOR),
            alloy::primitives::FixedBytes::from(EmailEscrow::BadAttestation::SELECTOR),
        ]
    );

    let escrow_native = w.balance(Asset::Native, w.escrow);
    let r = w.claim_batch(w.relayer, &batch);
    expect_ok(&r);
    assert_eq!(
        w.balance(Asset::Native, to[0]),
        U256::from(d1.amount - 1_000)
    );
    assert_eq!(
        w.balance(Asset::Token(w.token), to[1]),
        U256::from(d2.amount - 2_000)
    );
    assert_eq!(
        w.balance(Asset::Native, to[3]),
        U256::ZERO,
        "the unattested claim is not paid"
    );
    assert_eq!(w.fees(w.relayer, Asset::Native), U256::from(1_000u64));
    assert_eq!(
        w.fees(w.relayer, Asset::Token(w.token)),
        U256::from(2_000u64)
    );
    assert_eq!(
        w.balance(Asset::Native, w.escrow),
        escrow_native - U256::from(d1.amount - 1_000),
        "only the paid claim left the escrow"
    );
    assert_eq!(w.slot(k1.address()), alloy::primitives::B256::ZERO);
    assert_eq!(w.slot(k2.address()), alloy::primitives::B256::ZERO);
    assert_eq!(
        w.slot(k4.address()),
        d4.hash(),
        "the skipped deposit stays open"
    );

    // The logs: Claimed, Claimed, ClaimSkipped(3, UnknownDeposit), ClaimSkipped(4, BadAttestation).
    let logs: Vec<_> = r.logs.iter().filter(|l| l.address == w.escrow).collect();
    assert_eq!(logs.len(), 4);
    let skipped: Vec<_> = logs
        .iter()
        .filter_map(|l| EmailEscrow::ClaimSkipped::decode_log_data(&l.data).ok())
        .map(|e| (e.claimKey, e.reason))
        .collect();
    assert_eq!(
        skipped,
        vec![(k3.address(), reasons[2]), (k4.address(), reasons[3]),]
    );
    let claimed: Vec<_> = logs
        .iter()
        .filter_map(|l| EmailEscrow::Claimed::decode_log_data(&l.data).ok())
        .map(|e| (e.claimKey, e.to, e.fee, e.relayer))
        .collect();
    assert_eq!(
        claimed,
        vec![
            (k1.address(), to[0], U256::from(1_000u64), w.relayer),
            (k2.address(), to[1], U256::from(2_000u64), w.relayer),
        ]
    );

    // The skipped claim, fixed, still goes through on its own.
    let mut a4 = a4;
    w.sign(&mut a4, &k4);
    expect_ok(&w.claim(w.relayer, &a4));
}

/// The same claim key twice in one batch is paid once.
#[test]
fn claim_batch_pays_a_repeated_claim_once() {
    let w = World::new();
    let (k, d) = w.open(Asset::Native, false, "batch twice");
    let to = actor("batch twice payee");
    let a = w.claim_args(&k, &d, to, 5, 5);
    let r = w.claim_batch(w.relayer, &[a.clone(), a]);
    expect_ok(&r);
    assert_eq!(w.balance(Asset::Native, to), U256::from(d.amount - 5));
    assert_eq!(w.fees(w.relayer, Asset::Native), U256::from(5u64));
    let ev: EmailEscrow::ClaimSkipped = event(&r);
    assert_eq!(ev.claimKey, k.address());
    assert_eq!(ev.reason, EmailEscrow::UnknownDeposit::SELECTOR);
}

// ------------------------------------------------------------------ self-submitted claims

/// The deposit's watcher submitting its own email-mode claim needs no attestation:
/// empty bytes pass, and the fee accrues to the watcher as the relayer.
#[test]
fn watcher_submitting_its_own_claim_needs_no_attestation() {
    let w = World::new();
    let watcher = w.watcher.address();
    for asset in [Asset::Native, Asset::Token(w.token)] {
        let (k, d) = w.open(asset, true, &format!("self-submitted {asset:?}"));
        let bob = actor(&format!("self-submitted payee {asset:?}"));
        let mut args = w.claim_args(&k, &d, bob, 1_000, 1_000);
        args.attestation = alloy::primitives::Bytes::new();
        let r = w.claim(watcher, &args);
        expect_ok(&r);
        assert_eq!(w.balance(asset, bob), U256::from(d.amount - 1_000));
        assert_eq!(w.fees(watcher, asset), U256::from(1_000u64));
        assert_eq!(w.slot(k.address()), alloy::primitives::B256::ZERO);
        let ev: EmailEscrow::Claimed = event(&r);
        assert_eq!(
            (ev.claimKey, ev.to, ev.relayer),
            (k.address(), bob, watcher)
        );
    }
}

/// When the caller is the watcher the attestation is not read at all: bytes that would
/// fail for anyone else do not matter.
#[test]
fn watchers_own_claim_ignores_whatever_attestation_it_carries() {
    let w = World::new();
    let (k, d) = w.open(Asset::Native, true, "self-submitted junk");
    let bob = actor("self-submitted junk payee");
    let mut args = w.claim_args(&k, &d, bob, 0, 0);
    args.attestation = vec![0xab; 65].into();
    expect_ok(&w.claim(w.watcher.address(), &args));
    assert_eq!(w.balance(Asset::Native, bob), U256::from(d.amount));
}

/// A watcher's own batch carries no attestations; the same batch from another caller
/// is skipped claim by claim with `BadAttestation`, and link-mode claims in it are paid.
#[test]
fn claim_batch_by_the_watcher_needs_no_attestations() {
    let w = World::new();
    let watcher = w.watcher.address();
    let mut batch = Vec::new();
    let mut deposits = Vec::new();
    for i in 0..3 {
        let (k, d) = w.open(Asset::Native, i != 2, &format!("self batch {i}"));
        let mut a = w.claim_args(&k, &d, actor(&format!("self batch payee {i}")), 7, 7);
        a.attestation = alloy::primitives::Bytes::new();
        deposits.push((k, d));
        batch.push(a);
    }
    // From the relayer: the two email-mode claims are skipped, the link-mode one paid.
    let r = w.claim_batch(w.relayer, &batch);
    expect_ok(&r);
    let skipped: Vec<_> = r
        .logs
        .iter()
        .filter_map(|l| EmailEscrow::ClaimSkipped::decode_log_data(&l.data).ok())
        .map(|e| (e.claimKey, e.reason))
        .collect();
    let bad = alloy::primitives::FixedBytes::from(EmailEscrow::BadAttestation::SELECTOR);
    assert_eq!(
        skipped,
        vec![
            (deposits[0].0.address(), bad),
            (deposits[1].0.address(), bad)
        ]
    );
    assert_eq!(w.slot(deposits[0].0.address()), deposits[0].1.hash());
    assert_eq!(
        w.slot(deposits[2].0.address()),
        alloy::primitives::B256::ZERO
    );
    // From the watcher: the two open ones are paid.
    let r = w.claim_batch(watcher, &batch[..2]);
    expect_ok(&r);
    for (i, (k, d)) in deposits.iter().enumerate().take(2) {
        assert_eq!(w.slot(k.address()), alloy::primitives::B256::ZERO);
        assert_eq!(
            w.balance(Asset::Native, actor(&format!("self batch payee {i}"))),
            U256::from(d.amount - 7)
        );
    }
    assert_eq!(w.fees(watcher, Asset::Native), U256::from(14u64));
    assert_eq!(w.fees(w.relayer, Asset::Native), U256::from(7u64));
}
