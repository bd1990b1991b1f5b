//! Every refusal of the mailbox-wallet operations on the embedded chain, each with the
//! error the contract names and a check that nothing changed; and the paths between
//! accounts and deposits that the SDK tests do not take (expiry refunds, batches,
//! signatures of the wrong type).

mod account_common;
mod escrow_common;

use account_common::*;
use alloy::primitives::{Address, U256};
use escrow_common::*;
use springmail_sdk::accounts::{funded_deposit_hash, AccountId};
use springmail_sdk::contract::EmailEscrow::{self as E, EmailEscrowErrors as Err};

const DAY: u64 = 86_400;

/// A world with Bob's account open under the world's watcher, funded with 10 QTUM,
/// limits 2 QTUM a payment and 3 QTUM a day; Carol's open and empty.
fn bob_and_carol() -> (World, AccountId, AccountId, Address) {
    let w = World::new();
    let bob = account("bob");
    let carol = account("carol");
    let s = w.funded(bob, 10 * COIN, (2 * COIN) as u64, (3 * COIN) as u64);
    assert_eq!((s.balance, s.nonce), (10 * COIN, 2));
    let c = w.watcher.address();
    expect_ok(&w.create(c, carol, c, (2 * COIN) as u64, (3 * COIN) as u64));
    (w, bob, carol, c)
}

/// Runs a refused transaction and checks that neither account nor any balance changed.
fn refused(
    w: &World,
    accounts: &[AccountId],
    f: impl FnOnce() -> springmail_sdk::chain::Receipt,
) -> Err {
    let before: Vec<State> = accounts.iter().map(|a| w.state(*a)).collect();
    let money = w.snapshot(&[w.sender, w.relayer, w.stranger]);
    let r = f();
    let e = revert_error(&r);
    assert_eq!(
        accounts.iter().map(|a| w.state(*a)).collect::<Vec<_>>(),
        before,
        "{e:?} changed an account"
    );
    assert_eq!(
        w.snapshot(&[w.sender, w.relayer, w.stranger]),
        money,
        "{e:?} moved money"
    );
    e
}

#[test]
fn a_wrong_or_replayed_nonce_is_refused() {
    let (w, bob, carol, c) = bob_and_carol();
    let e = refused(&w, &[bob, carol], || w.transfer(c, bob, carol, COIN, 1));
    assert!(
        matches!(e, Err::BadNonce(ref x) if x.expected == U256::from(2) && x.got == U256::from(1)),
        "{e:?}"
    );
    expect_ok(&w.transfer(c, bob, carol, COIN, 2));
    // The same transaction again: the nonce has moved on.
    let e = refused(&w, &[bob, carol], || w.transfer(c, bob, carol, COIN, 2));
    assert!(matches!(e, Err::BadNonce(_)), "{e:?}");
    assert_eq!(w.state(carol).balance, COIN, "paid once");
    // A nonce ahead is refused too.
    let e = refused(&w, &[bob, carol], || w.withdraw(c, bob, w.stranger, 1, 9));
    assert!(matches!(e, Err::BadNonce(_)), "{e:?}");
}

#[test]
fn the_controller_stays_within_the_limits_and_the_day_rolls_over() {
    let (w, bob, carol, c) = bob_and_carol();
    // Above the per-payment limit.
    let e = refused(&w, &[bob, carol], || {
        w.transfer(c, bob, carol, 2 * COIN + 1, 2)
    });
    assert!(
        matches!(e, Err::LimitExceeded(ref x) if x.amount == U256::from(2 * COIN + 1) && x.allowed == U256::from(2 * COIN)),
        "{e:?}"
    );
    // Two payments fill the day: 2 + 1 QTUM; a third of one satoshi is over.
    expect_ok(&w.transfer(c, bob, carol, 2 * COIN, 2));
    expect_ok(&w.withdraw(c, bob, w.stranger, COIN, 3));
    let s = w.state(bob);
    assert_eq!((s.spent, s.day), (3 * COIN as u64, w.next_ts() / DAY));
    let e = refused(&w, &[bob, carol], || w.transfer(c, bob, carol, 1, 4));
    assert!(
        matches!(e, Err::LimitExceeded(ref x) if x.allowed == U256::ZERO),
        "{e:?}"
    );
    // The next UTC day the controller may spend again.
    let tomorrow = (w.next_ts() / DAY + 1) * DAY;
    w.next_tx_at(tomorrow);
    expect_ok(&w.transfer(c, bob, carol, 2 * COIN, 4));
    let s = w.state(bob);
    assert_eq!(
        (s.spent, s.day, s.balance),
        (2 * COIN as u64, tomorrow / DAY, 10 * COIN - 5 * COIN)
    );
}

#[test]
fn a_short_balance_or_a_closed_receiver_is_refused() {
    let (w, bob, carol, c) = bob_and_carol();
    let owner = actor("bob's key");
    expect_ok(&w.bind(c, bob, owner, 2));
    // The owner has no limits, but not more than the balance.
    let e = refused(&w, &[bob], || {
        w.withdraw(owner, bob, owner, 10 * COIN + 1, 3)
    });
    assert!(
        matches!(e, Err::InsufficientBalance(ref x) if x.balance == U256::from(10 * COIN) && x.amount == U256::from(10 * COIN + 1)),
        "{e:?}"
    );
    let e = refused(&w, &[carol], || w.transfer(c, carol, bob, 1, 1));
    assert!(matches!(e, Err::InsufficientBalance(_)), "{e:?}");
    let nobody = account("nobody");
    let e = refused(&w, &[bob, nobody], || w.transfer(c, bob, nobody, 1, 3));
    assert!(
        matches!(e, Err::AccountNotOpen(ref x) if x.account == nobody.0),
        "{e:?}"
    );
    let e = refused(&w, &[nobody], || w.withdraw(c, nobody, c, 1, 1));
    assert!(matches!(e, Err::AccountNotOpen(_)), "{e:?}");
    // Zero amounts and a zero payee say so.
    assert!(matches!(
        refused(&w, &[bob], || w.transfer(c, bob, carol, 0, 3)),
        Err::ZeroAmount(_)
    ));
    assert!(matches!(
        refused(&w, &[bob], || w.withdraw(c, bob, Address::ZERO, 1, 3)),
        Err::ZeroPayee(_)
    ));
}

#[test]
fn opening_twice_or_without_a_controller_is_refused() {
    let (w, bob, _, c) = bob_and_carol();
    let e = refused(&w, &[bob], || w.create(w.stranger, bob, w.stranger, 1, 1));
    assert!(matches!(e, Err::AccountExists(_)), "{e:?}");
    let e = refused(&w, &[], || {
        w.create(w.stranger, AccountId(Default::default()), c, 1, 1)
    });
    assert!(matches!(e, Err::AccountExists(_)), "{e:?}");
    let e = refused(&w, &[], || {
        w.create(w.stranger, account("new"), Address::ZERO, 1, 1)
    });
    assert!(matches!(e, Err::ZeroAddress(_)), "{e:?}");
    // Anyone may open an account (naming any controller).
    expect_ok(&w.create(w.stranger, account("new"), c, 1, 1));
    assert_eq!(w.state(account("new")).controller, c);
}

#[test]
fn only_the_controller_or_the_owner_moves_money() {
    let (w, bob, carol, c) = bob_and_carol();
    for who in [w.stranger, w.sender, w.relayer] {
        let e = refused(&w, &[bob, carol], || w.transfer(who, bob, carol, 1, 2));
        assert!(
            matches!(e, Err::NotController(ref x) if x.caller == who),
            "{e:?}"
        );
        let e = refused(&w, &[bob], || w.withdraw(who, bob, who, 1, 2));
        assert!(matches!(e, Err::NotController(_)), "{e:?}");
        let e = refused(&w, &[bob], || w.bind(who, bob, who, 2));
        assert!(matches!(e, Err::NotController(_)), "{e:?}");
        let e = refused(&w, &[bob], || w.set_controller(who, bob, who, 2));
        assert!(matches!(e, Err::NotController(_)), "{e:?}");
        let e = refused(&w, &[bob], || w.set_limits(who, bob, 1 << 40, 1 << 40));
        assert!(matches!(e, Err::NotController(_)), "{e:?}");
        let k = key(&format!("pay by {who}"));
        let d = w.account_deposit(COIN, false, c, "pay");
        let e = refused(&w, &[bob], || w.pay(who, bob, k.address(), &d, 2));
        assert!(matches!(e, Err::NotController(_)), "{e:?}");
    }
    // Before an owner is bound the controller may raise its own limits.
    expect_ok(&w.set_limits(c, bob, (5 * COIN) as u64, (5 * COIN) as u64));
    assert_eq!(w.state(bob).per_payment, 5 * COIN as u64);
}

#[test]
fn a_bound_owner_is_replaced_only_by_itself_and_exits_without_limits() {
    let (w, bob, carol, c) = bob_and_carol();
    let owner = actor("bob's key");
    let r = w.bind(c, bob, owner, 2);
    let ev = event::<E::OwnerBound>(&r);
    assert_eq!(
        (ev.account, ev.owner, ev.nonce),
        (bob.0, owner, U256::from(2))
    );
    assert_eq!(ev.mailHash, mail("bind"));
    // The controller cannot bind another owner, move the account or raise the limits.
    assert!(matches!(
        refused(&w, &[bob], || w.bind(c, bob, c, 3)),
        Err::NotController(_)
    ));
    assert!(matches!(
        refused(&w, &[bob], || w.set_controller(c, bob, c, 3)),
        Err::NotController(_)
    ));
    assert!(matches!(
        refused(&w, &[bob], || w.set_limits(
            c,
            bob,
            (2 * COIN) as u64 + 1,
            (3 * COIN) as u64
        )),
        Err::NotController(_)
    ));
    // It may lower them, and still moves within them.
    expect_ok(&w.set_limits(c, bob, COIN as u64, COIN as u64));
    expect_ok(&w.transfer(c, bob, carol, COIN, 3));
    assert!(matches!(
        refused(&w, &[bob], || w.transfer(c, bob, carol, 1, 4)),
        Err::LimitExceeded(_)
    ));
    // The owner: everything left at once, above every limit, then a new owner key and
    // a new controller; the old controller is locked out.
    let out = actor("bob's cold address");
    let r = w.withdraw(owner, bob, out, 9 * COIN, 4);
    expect_ok(&r);
    let ev = event::<E::Moved>(&r);
    assert_eq!(
        (ev.from, ev.to, ev.amount, ev.nonce),
        (bob.0, out.into_word(), U256::from(9 * COIN), U256::from(4))
    );
    assert_eq!(w.balance(Asset::Native, out), U256::from(9 * COIN));
    let owner2 = actor("bob's new key");
    expect_ok(&w.bind(owner, bob, owner2, 5));
    assert!(matches!(
        refused(&w, &[bob], || w.bind(owner, bob, owner, 6)),
        Err::NotController(_)
    ));
    let c2 = actor("broker two");
    let r = w.set_controller(owner2, bob, c2, 6);
    let ev = event::<E::ControllerChanged>(&r);
    assert_eq!((ev.controller, ev.nonce), (c2, U256::from(6)));
    expect_ok(&w.set_limits(owner2, bob, 1 << 47, 1 << 47));
    let s = w.state(bob);
    assert_eq!(
        (s.controller, s.owner, s.nonce, s.per_day),
        (c2, owner2, 7, 1 << 47)
    );
    assert!(matches!(
        refused(&w, &[bob], || w.transfer(c, bob, carol, 1, 7)),
        Err::NotController(_)
    ));
}

#[test]
fn claim_into_needs_the_controller_the_watcher_and_a_claim_into_signature() {
    let (w, bob, _, c) = bob_and_carol();
    let (k, d) = w.open(Asset::Native, true, "claim into");
    // Not the watcher (the deposit names `c`): refused as an unattested claim.
    w.chain.fund(w.relayer, U256::from(COIN));
    let e = refused(&w, &[bob], || {
        w.claim_into(w.relayer, &k, &d, None, bob, 0, 2)
    });
    assert!(matches!(e, Err::BadAttestation(_)), "{e:?}");
    // The watcher, but not the controller of the account.
    let other = account("other");
    expect_ok(&w.create(w.stranger, other, w.stranger, 1, 1));
    let e = refused(&w, &[other], || w.claim_into(c, &k, &d, None, other, 0, 1));
    assert!(matches!(e, Err::NotController(_)), "{e:?}");
    // Into an account that is not open.
    let e = refused(&w, &[], || {
        w.claim_into(c, &k, &d, None, account("closed"), 0, 1)
    });
    assert!(matches!(e, Err::AccountNotOpen(_)), "{e:?}");
    // Signed by another key.
    let e = refused(&w, &[bob], || {
        w.claim_into(c, &key("not the claim key"), &d, None, bob, 0, 2)
    });
    assert!(
        matches!(e, Err::UnknownDeposit(_) | Err::BadClaimSignature(_)),
        "{e:?}"
    );
    // A `Claim` signature (to an address) is not a `ClaimInto`: the same bytes, sent to
    // claimInto, recover to someone else.
    let args = w.claim_args(&k, &d, Address::from_slice(&bob.0[12..]), 0, 0);
    let sig = springmail_sdk::keys::Signature::from_slice("sig", &args.link_sig).unwrap();
    let (r, vs) = springmail_sdk::accounts::compact(&sig);
    let call = E::claimIntoAccount_195wCall {
        claimKey: k.address(),
        d: d.to_sol(),
        account: bob.0,
        fee: Default::default(),
        maxFee: Default::default(),
        deadline: alloy::primitives::aliases::U40::from(args.deadline),
        sigR: r,
        sigVS: vs,
        nonce: 2,
        mailHash: mail("claim"),
    };
    let e = refused(&w, &[bob], || {
        w.send(
            c,
            w.escrow,
            alloy::sol_types::SolCall::abi_encode(&call),
            U256::ZERO,
        )
    });
    assert!(matches!(e, Err::BadClaimSignature(_)), "{e:?}");
    // And a `ClaimInto` never pays an address: claim() with its signature is refused.
    let into = springmail_sdk::accounts::ClaimIntoAuth {
        claim_key: k.address(),
        deposit_hash: d.hash(),
        account: bob,
        max_fee: 0,
        deadline: args.deadline,
    }
    .sign(w.id, &k);
    let mut args = w.claim_args(&k, &d, c, 0, 0);
    args.link_sig = into.to_bytes();
    let e = refused(&w, &[bob], || w.claim(c, &args));
    assert!(matches!(e, Err::BadClaimSignature(_)), "{e:?}");
    // The proper claim, with a fee: the account gets the rest, the controller the fee.
    let r = w.claim_into(c, &k, &d, None, bob, 100_000, 2);
    expect_ok(&r);
    let ev = event::<E::Moved>(&r);
    assert_eq!(
        (ev.from, ev.to, ev.amount, ev.nonce, ev.mailHash),
        (
            k.address().into_word(),
            bob.0,
            U256::from(d.amount - 100_000),
            U256::from(2),
            mail("claim")
        )
    );
    assert_eq!(w.state(bob).balance, 10 * COIN + d.amount - 100_000);
    assert_eq!(w.fees(c, Asset::Native), U256::from(100_000));
    assert_eq!(w.slot(k.address()), alloy::primitives::B256::ZERO);
    // Claimed once: again is an unknown deposit.
    let e = refused(&w, &[bob], || w.claim_into(c, &k, &d, None, bob, 0, 3));
    assert!(matches!(e, Err::UnknownDeposit(_)), "{e:?}");
}

#[test]
fn a_payment_to_an_email_is_a_deposit_claimed_or_refunded_into_the_account() {
    let (w, bob, carol, c) = bob_and_carol();
    // A payment: the deposit's hash binds Bob's account; the account pays for it.
    let k = key("pay carol");
    let d = w.account_deposit(COIN, true, c, "carol");
    let r = w.pay(c, bob, k.address(), &d, 2);
    expect_ok(&r);
    let ev = event::<E::AccountDeposited>(&r);
    assert_eq!(
        (ev.account, ev.claimKey, ev.nonce),
        (bob.0, k.address(), U256::from(2))
    );
    assert_eq!(springmail_sdk::deposit::Deposit::from_sol(&ev.deposit), d);
    assert_eq!(w.slot(k.address()), funded_deposit_hash(&d, bob));
    assert_eq!(w.state(bob).balance, 9 * COIN);
    // A claim names the paying account: another account's does not match.
    let e = refused(&w, &[carol], || {
        w.claim_into(c, &k, &d, Some(carol), carol, 0, 1)
    });
    assert!(matches!(e, Err::UnknownDeposit(_)), "{e:?}");
    // The plain claim() does not know it (its hash has no account in it).
    let args = w.claim_args(&k, &d, w.stranger, 0, 0);
    let e = refused(&w, &[bob], || w.claim(c, &args));
    assert!(matches!(e, Err::UnknownDeposit(_)), "{e:?}");
    // A batch skips it with UnknownDeposit.
    let r = w.claim_batch(c, &[args]);
    expect_ok(&r);
    assert_eq!(
        event::<E::ClaimSkipped>(&r).reason,
        alloy::primitives::FixedBytes::<4>::from(
            <Err as alloy::sol_types::SolInterface>::selector(&e)
        )
    );
    // Into Carol's account, naming Bob's as the payer.
    expect_ok(&w.claim_into(c, &k, &d, Some(bob), carol, 0, 1));
    assert_eq!(w.state(carol).balance, COIN);

    // A second payment, link mode: claimed to an address with the link alone.
    let k2 = key("pay dave");
    let d2 = w.account_deposit(COIN, false, Address::ZERO, "dave");
    expect_ok(&w.pay(c, bob, k2.address(), &d2, 3));
    let dave = actor("dave");
    let e = refused(&w, &[bob], || {
        w.claim_from(w.stranger, &k2, &d2, carol, dave)
    });
    assert!(matches!(e, Err::UnknownDeposit(_)), "{e:?}");
    w.chain.fund(w.stranger, U256::from(COIN));
    let r = w.claim_from(w.stranger, &k2, &d2, bob, dave);
    expect_ok(&r);
    assert_eq!(w.balance(Asset::Native, dave), U256::from(COIN));
    let ev = event::<E::Claimed>(&r);
    assert_eq!(
        (ev.claimKey, ev.to, ev.amount),
        (k2.address(), dave, U256::from(COIN))
    );

    // A third, email mode: only its watcher claims it to an address.
    let k3 = key("pay erin");
    let d3 = w.account_deposit(COIN, false, c, "erin");
    expect_ok(&w.pay(c, bob, k3.address(), &d3, 4));
    let e = refused(&w, &[bob], || w.claim_from(w.stranger, &k3, &d3, bob, dave));
    assert!(matches!(e, Err::BadAttestation(_)), "{e:?}");
    // Not cancellable and before expiry: nobody refunds it, not even the controller.
    let e = refused(&w, &[bob], || w.refund_into(c, k3.address(), &d3, bob));
    assert!(matches!(e, Err::RefundNotAllowed(_)), "{e:?}");
    // At expiry anyone refunds it, into Bob's account, never to an address.
    w.next_tx_at(d3.expiry);
    let e = refused(&w, &[bob, carol], || {
        w.refund_into(w.stranger, k3.address(), &d3, carol)
    });
    assert!(matches!(e, Err::UnknownDeposit(_)), "{e:?}");
    let before = w.balance(Asset::Native, w.stranger);
    let r = w.refund_into(w.stranger, k3.address(), &d3, bob);
    expect_ok(&r);
    assert_eq!(
        w.balance(Asset::Native, w.stranger),
        before,
        "the refund pays no address"
    );
    let ev = event::<E::Refunded>(&r);
    assert_eq!(
        (ev.claimKey, ev.sender, ev.amount),
        (k3.address(), w.escrow, U256::from(COIN))
    );
    let ev = event::<E::Moved>(&r);
    assert_eq!(
        (ev.from, ev.to, ev.amount, ev.nonce),
        (
            k3.address().into_word(),
            bob.0,
            U256::from(COIN),
            U256::ZERO
        )
    );
    let s = w.state(bob);
    assert_eq!((s.balance, s.nonce), (10 * COIN - 3 * COIN + COIN, 5));
    // What the escrow holds: Bob's and Carol's balances and the fee (none here).
    assert_eq!(
        w.balance(Asset::Native, w.escrow),
        U256::from(s.balance + w.state(carol).balance)
    );
}

#[test]
fn a_payment_must_be_a_native_account_deposit() {
    let (w, bob, _, c) = bob_and_carol();
    let k = key("bad pay");
    let good = w.account_deposit(COIN, false, c, "bad");
    let mut d = good;
    d.sender = w.sender;
    assert!(matches!(
        refused(&w, &[bob], || w.pay(c, bob, k.address(), &d, 2)),
        Err::SenderMismatch(_)
    ));
    let mut d = good;
    d.flags = 0;
    assert!(matches!(
        refused(&w, &[bob], || w.pay(c, bob, k.address(), &d, 2)),
        Err::NotAccountDeposit(_)
    ));
    let mut d = good;
    d.token = w.token;
    assert!(matches!(
        refused(&w, &[bob], || w.pay(c, bob, k.address(), &d, 2)),
        Err::NotAccountDeposit(_)
    ));
    let mut d = good;
    d.amount = 0;
    assert!(matches!(
        refused(&w, &[bob], || w.pay(c, bob, k.address(), &d, 2)),
        Err::ZeroAmount(_)
    ));
    let mut d = good;
    d.expiry = w.next_ts();
    assert!(matches!(
        refused(&w, &[bob], || w.pay(c, bob, k.address(), &d, 2)),
        Err::ExpiryInPast(_)
    ));
    assert!(matches!(
        refused(&w, &[bob], || w.pay(c, bob, Address::ZERO, &good, 2)),
        Err::ZeroClaimKey(_)
    ));
    // Over the limit like any movement; and a key in use.
    let mut d = good;
    d.amount = 2 * COIN + 1;
    assert!(matches!(
        refused(&w, &[bob], || w.pay(c, bob, k.address(), &d, 2)),
        Err::LimitExceeded(_)
    ));
    let (k2, _) = w.open(Asset::Native, true, "in use");
    assert!(matches!(
        refused(&w, &[bob], || w.pay(c, bob, k2.address(), &good, 2)),
        Err::ClaimKeyInUse(_)
    ));
}
