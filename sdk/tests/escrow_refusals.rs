//! Every refusal of the escrow, each with the exact custom error (and its values)
//! decoded from the revert data, and with proof that nothing moved: the balances of
//! everyone involved and the stored deposit are the same afterwards.

mod escrow_common;

use alloy::primitives::{keccak256, Address, Bytes, B256, U256};
use alloy::sol_types::SolCall;
use escrow_common::*;
use springmail_sdk::chain::Receipt;
use springmail_sdk::contract::EmailEscrow::{self as E, EmailEscrowErrors as Err};
use springmail_sdk::deposit::Deposit;
use springmail_sdk::eip712::EscrowId;
use springmail_sdk::keys::{ClaimSecret, Signature};

/// Runs `act`, then checks it reverted with `expected` and that no balance and no
/// listed slot changed.
fn refused(w: &World, slots: &[Address], expected: Err, act: impl FnOnce() -> Receipt) {
    let who = [w.sender, w.relayer, w.stranger, actor("bob")];
    let before = w.snapshot(&who);
    let slots_before: Vec<B256> = slots.iter().map(|&k| w.slot(k)).collect();
    let r = act();
    assert_eq!(revert_error(&r), expected);
    assert_eq!(
        w.snapshot(&who),
        before,
        "a refused transaction moved funds"
    );
    let slots_after: Vec<B256> = slots.iter().map(|&k| w.slot(k)).collect();
    assert_eq!(
        slots_after, slots_before,
        "a refused transaction changed a deposit"
    );
}

fn bad_claim_sig(k: Address) -> Err {
    Err::BadClaimSignature(E::BadClaimSignature { claimKey: k })
}

fn bad_attestation(watcher: Address) -> Err {
    Err::BadAttestation(E::BadAttestation { watcher })
}

fn unknown(k: Address, d: &Deposit) -> Err {
    Err::UnknownDeposit(E::UnknownDeposit {
        claimKey: k,
        depositHash: d.hash(),
    })
}

/// An open link-mode native deposit and valid claim arguments paying bob.
fn open_link(w: &World) -> (ClaimSecret, Deposit, ClaimArgs) {
    let (k, d) = w.open(Asset::Native, false, "link");
    let args = w.claim_args(&k, &d, actor("bob"), 1000, 1000);
    (k, d, args)
}

fn open_email(w: &World) -> (ClaimSecret, Deposit, ClaimArgs) {
    let (k, d) = w.open(Asset::Native, true, "email");
    let args = w.claim_args(&k, &d, actor("bob"), 1000, 1000);
    (k, d, args)
}

// ------------------------------------------------------------------ claim signature

#[test]
fn claim_signed_by_another_key_is_refused() {
    let w = World::new();
    let (k, _, mut args) = open_link(&w);
    let auth = args.auth();
    args.link_sig = auth.sign_claim(w.id, &key("not the claim key")).to_bytes();
    refused(&w, &[k.address()], bad_claim_sig(k.address()), || {
        w.claim(w.relayer, &args)
    });
}

#[test]
fn malleable_high_s_twin_of_a_valid_signature_is_refused() {
    let w = World::new();
    let (k, _, mut args) = open_link(&w);
    let sig = Signature(args.link_sig.as_ref().try_into().unwrap());
    let twin = high_s_twin(&sig);
    // The twin is a valid ECDSA signature by the same key (ecrecover alone would accept it).
    assert_ne!(twin, sig);
    args.link_sig = twin.to_bytes();
    refused(&w, &[k.address()], bad_claim_sig(k.address()), || {
        w.claim(w.relayer, &args)
    });
    // The original still works afterwards.
    args.link_sig = sig.to_bytes();
    expect_ok(&w.claim(w.relayer, &args));
}

#[test]
fn signature_with_v_other_than_27_or_28_is_refused() {
    let w = World::new();
    let (k, _, args) = open_link(&w);
    let v = args.link_sig[64];
    for bad_v in [v - 27, v + 4, 0, 1, 29, 255] {
        let mut spoiled = args.clone();
        let mut sig = args.link_sig.to_vec();
        sig[64] = bad_v;
        spoiled.link_sig = sig.into();
        refused(&w, &[k.address()], bad_claim_sig(k.address()), || {
            w.claim(w.relayer, &spoiled)
        });
    }
}

#[test]
fn signature_of_the_wrong_length_is_refused() {
    let w = World::new();
    let (k, _, args) = open_link(&w);
    let full = args.link_sig.to_vec();
    let mut longer = full.clone();
    longer.push(0);
    for sig in [Vec::new(), full[..64].to_vec(), longer] {
        let spoiled = ClaimArgs {
            link_sig: Bytes::from(sig),
            ..args.clone()
        };
        refused(&w, &[k.address()], bad_claim_sig(k.address()), || {
            w.claim(w.relayer, &spoiled)
        });
    }
}

#[test]
fn unrecoverable_signature_is_refused() {
    // ecrecover returns nothing for r = 0; the contract must not read a stale word (the
    // claim key itself sits in scratch memory after the slot lookup) as the signer.
    let w = World::new();
    let (k, _, args) = open_link(&w);
    for v in [27u8, 28] {
        let mut sig = [0u8; 65];
        sig[64] = v;
        let spoiled = ClaimArgs {
            link_sig: Bytes::copy_from_slice(&sig),
            ..args.clone()
        };
        refused(&w, &[k.address()], bad_claim_sig(k.address()), || {
            w.claim(w.relayer, &spoiled)
        });
        // And a valid-looking s with r = 0.
        let mut sig = args.link_sig.to_vec();
        sig[..32].fill(0);
        sig[64] = v;
        let spoiled = ClaimArgs {
            link_sig: sig.into(),
            ..args.clone()
        };
        refused(&w, &[k.address()], bad_claim_sig(k.address()), || {
            w.claim(w.relayer, &spoiled)
        });
    }
}

#[test]
fn signature_for_another_chain_id_is_refused() {
    let w = World::new();
    let (k, _, mut args) = open_link(&w);
    let other = EscrowId {
        chain_id: 81,
        ..w.id
    };
    args.link_sig = args.auth().sign_claim(other, &k).to_bytes();
    refused(&w, &[k.address()], bad_claim_sig(k.address()), || {
        w.claim(w.relayer, &args)
    });
}

#[test]
fn signature_for_another_escrow_contract_is_refused() {
    let w = World::new();
    let (k, _, mut args) = open_link(&w);
    let other = EscrowId {
        escrow: actor("another escrow"),
        ..w.id
    };
    args.link_sig = args.auth().sign_claim(other, &k).to_bytes();
    refused(&w, &[k.address()], bad_claim_sig(k.address()), || {
        w.claim(w.relayer, &args)
    });
}

#[test]
fn relayer_cannot_change_what_the_claim_key_signed() {
    let w = World::new();
    let (k, _, args) = open_link(&w);
    let spoils = [
        ClaimArgs {
            to: actor("thief"),
            ..args.clone()
        },
        ClaimArgs {
            max_fee: args.max_fee + 1,
            ..args.clone()
        },
        ClaimArgs {
            deadline: args.deadline + 1,
            ..args.clone()
        },
    ];
    for spoiled in spoils {
        refused(&w, &[k.address()], bad_claim_sig(k.address()), || {
            w.claim(w.relayer, &spoiled)
        });
    }
    expect_ok(&w.claim(w.relayer, &args));
}

#[test]
fn claim_for_a_key_that_has_no_deposit_is_refused() {
    let w = World::new();
    let (_, d, args) = open_link(&w);
    let stray = key("no deposit");
    let mut spoiled = ClaimArgs {
        claim_key: stray.address(),
        ..args
    };
    w.sign(&mut spoiled, &stray);
    refused(&w, &[], unknown(stray.address(), &d), || {
        w.claim(w.relayer, &spoiled)
    });
}

// ------------------------------------------------------------------ attestation

#[test]
fn attestation_from_another_key_than_the_watcher_is_refused() {
    let w = World::new();
    let (k, d, mut args) = open_email(&w);
    args.attestation = args
        .auth()
        .sign_attest(w.id, &key("some other watcher"))
        .to_bytes();
    refused(&w, &[k.address()], bad_attestation(d.watcher), || {
        w.claim(w.relayer, &args)
    });
}

#[test]
fn missing_attestation_in_email_mode_is_refused() {
    let w = World::new();
    let (k, d, mut args) = open_email(&w);
    args.attestation = Bytes::new();
    refused(&w, &[k.address()], bad_attestation(d.watcher), || {
        w.claim(w.relayer, &args)
    });
}

#[test]
fn only_the_watcher_itself_may_leave_the_attestation_out() {
    // Without attestation, neither a stranger, nor the claim key's holder, nor the
    // deposit's sender can claim an email-mode deposit: only `d.watcher` as the caller.
    let w = World::new();
    let (k, d, mut args) = open_email(&w);
    args.attestation = Bytes::new();
    for caller in [w.stranger, k.address(), w.sender, actor("bob")] {
        refused(&w, &[k.address()], bad_attestation(d.watcher), || {
            w.claim(caller, &args)
        });
    }
    // A deposit naming another watcher is not claimable by this one without its attestation.
    let other = Deposit {
        watcher: actor("another watcher"),
        ..w.deposit_fields(Asset::Native, true, "other watcher")
    };
    let k2 = key("claim key other watcher");
    w.deposit(k2.address(), &other);
    let mut args2 = w.claim_args(&k2, &other, actor("bob"), 0, 0);
    args2.attestation = Bytes::new();
    refused(&w, &[k2.address()], bad_attestation(other.watcher), || {
        w.claim(w.watcher.address(), &args2)
    });
}

#[test]
fn attestation_of_another_payee_or_deadline_is_refused() {
    let w = World::new();
    let (k, d, args) = open_email(&w);
    // The claim key signs a claim to mallory; the watcher attested the claim to bob.
    let mut to_mallory = ClaimArgs {
        to: actor("mallory"),
        ..args.clone()
    };
    w.sign(&mut to_mallory, &k);
    to_mallory.attestation = args.attestation.clone();
    refused(&w, &[k.address()], bad_attestation(d.watcher), || {
        w.claim(w.relayer, &to_mallory)
    });
    let mut later = ClaimArgs {
        deadline: args.deadline + 60,
        ..args.clone()
    };
    w.sign(&mut later, &k);
    later.attestation = args.attestation.clone();
    refused(&w, &[k.address()], bad_attestation(d.watcher), || {
        w.claim(w.relayer, &later)
    });
}

#[test]
fn claim_signature_cannot_stand_in_for_the_attestation() {
    // Typed data binds the type: an Attest digest differs from a Claim digest even for
    // the same fields, so a watcher's key used as a claim key cannot attest its own claim.
    let w = World::new();
    let k = w.watcher.clone();
    let d = w.deposit_fields(Asset::Native, true, "watcher is claim key");
    w.deposit(k.address(), &d);
    let mut args = w.claim_args(&k, &d, actor("bob"), 0, 0);
    args.attestation = args.link_sig.clone();
    refused(&w, &[k.address()], bad_attestation(d.watcher), || {
        w.claim(w.relayer, &args)
    });
}

#[test]
fn high_s_attestation_is_refused() {
    let w = World::new();
    let (k, d, mut args) = open_email(&w);
    let sig = Signature(args.attestation.as_ref().try_into().unwrap());
    args.attestation = high_s_twin(&sig).to_bytes();
    refused(&w, &[k.address()], bad_attestation(d.watcher), || {
        w.claim(w.relayer, &args)
    });
}

// ------------------------------------------------------------------ time and fee

#[test]
fn claim_at_expiry_is_refused() {
    let w = World::new();
    let (k, d, mut args) = open_link(&w);
    args.deadline = d.expiry + 3600;
    w.sign(&mut args, &k);
    w.next_tx_at(d.expiry);
    let expired = Err::Expired(E::Expired {
        expiry: d.to_sol().expiry,
        nowTs: U256::from(d.expiry),
    });
    refused(&w, &[k.address()], expired, || w.claim(w.relayer, &args));
}

#[test]
fn claim_after_expiry_is_refused() {
    let w = World::new();
    let (k, d, mut args) = open_link(&w);
    args.deadline = d.expiry + 10 * WEEK;
    w.sign(&mut args, &k);
    let at = d.expiry + WEEK;
    w.next_tx_at(at);
    let expired = Err::Expired(E::Expired {
        expiry: d.to_sol().expiry,
        nowTs: U256::from(at),
    });
    refused(&w, &[k.address()], expired, || w.claim(w.relayer, &args));
}

#[test]
fn claim_after_its_deadline_is_refused() {
    let w = World::new();
    let (k, _, args) = open_link(&w);
    w.next_tx_at(args.deadline + 1);
    let passed = Err::DeadlinePassed(E::DeadlinePassed {
        deadline: alloy::primitives::aliases::U40::from(args.deadline),
        nowTs: U256::from(args.deadline + 1),
    });
    refused(&w, &[k.address()], passed, || w.claim(w.relayer, &args));
}

#[test]
fn fee_above_max_fee_is_refused() {
    let w = World::new();
    let (k, _, args) = open_link(&w);
    let greedy = ClaimArgs {
        fee: args.max_fee + 1,
        ..args.clone()
    };
    let too_high = Err::FeeTooHigh(E::FeeTooHigh {
        fee: alloy::primitives::aliases::U96::from(greedy.fee),
        maxFee: alloy::primitives::aliases::U96::from(args.max_fee),
    });
    refused(&w, &[k.address()], too_high, || w.claim(w.relayer, &greedy));
}

#[test]
fn fee_above_the_amount_is_refused_even_under_max_fee() {
    let w = World::new();
    let (k, d) = w.open(Asset::Native, false, "small");
    let args = w.claim_args(&k, &d, actor("bob"), d.amount + 1, u128::from(u64::MAX));
    let too_high = Err::FeeTooHigh(E::FeeTooHigh {
        fee: alloy::primitives::aliases::U96::from(args.fee),
        maxFee: alloy::primitives::aliases::U96::from(args.max_fee),
    });
    refused(&w, &[k.address()], too_high, || w.claim(w.relayer, &args));
}

// ------------------------------------------------------------------ refunds

fn refund_not_allowed(caller: Address, d: &Deposit, now: u64) -> Err {
    Err::RefundNotAllowed(E::RefundNotAllowed {
        caller,
        expiry: d.to_sol().expiry,
        nowTs: U256::from(now),
    })
}

#[test]
fn refund_before_expiry_by_a_stranger_is_refused() {
    let w = World::new();
    let (k, d, _) = open_link(&w);
    let now = w.next_ts();
    refused(
        &w,
        &[k.address()],
        refund_not_allowed(w.stranger, &d, now),
        || w.refund(w.stranger, k.address(), &d),
    );
    // Not even one second before expiry.
    w.next_tx_at(d.expiry - 1);
    refused(
        &w,
        &[k.address()],
        refund_not_allowed(w.relayer, &d, d.expiry - 1),
        || w.refund(w.relayer, k.address(), &d),
    );
}

#[test]
fn refund_before_expiry_by_the_sender_of_a_non_cancellable_deposit_is_refused() {
    let w = World::new();
    let k = key("nc");
    let d = Deposit {
        flags: 0,
        ..w.deposit_fields(Asset::Native, false, "nc")
    };
    w.deposit(k.address(), &d);
    w.next_tx_at(d.expiry - 1);
    refused(
        &w,
        &[k.address()],
        refund_not_allowed(w.sender, &d, d.expiry - 1),
        || w.refund(w.sender, k.address(), &d),
    );
}

// ------------------------------------------------------------------ paying twice

#[test]
fn second_claim_is_refused() {
    let w = World::new();
    let (k, d, args) = open_link(&w);
    expect_ok(&w.claim(w.relayer, &args));
    refused(&w, &[k.address()], unknown(k.address(), &d), || {
        w.claim(w.relayer, &args)
    });
    refused(&w, &[k.address()], unknown(k.address(), &d), || {
        w.refund(w.sender, k.address(), &d)
    });
}

#[test]
fn claim_after_refund_is_refused() {
    let w = World::new();
    let (k, d, args) = open_link(&w);
    expect_ok(&w.refund(w.sender, k.address(), &d));
    refused(&w, &[k.address()], unknown(k.address(), &d), || {
        w.claim(w.relayer, &args)
    });
    refused(&w, &[k.address()], unknown(k.address(), &d), || {
        w.refund(w.sender, k.address(), &d)
    });
}

#[test]
fn old_signature_does_not_pay_a_new_deposit_under_the_same_key() {
    let w = World::new();
    let (k, d, args) = open_link(&w);
    expect_ok(&w.refund(w.sender, k.address(), &d));
    let d2 = Deposit {
        recipient: keccak256("another recipient"),
        ..d
    };
    w.deposit(k.address(), &d2);
    let replay = ClaimArgs {
        deposit: d2,
        ..args
    };
    refused(&w, &[k.address()], bad_claim_sig(k.address()), || {
        w.claim(w.relayer, &replay)
    });
}

// ------------------------------------------------------------------ tampered fields

/// Each field of the deposit changed in turn; the claim and the refund both miss the
/// stored hash.
fn tampered(d: &Deposit) -> Vec<(&'static str, Deposit)> {
    vec![
        (
            "sender",
            Deposit {
                sender: actor("other sender"),
                ..*d
            },
        ),
        (
            "token",
            Deposit {
                token: actor("other token"),
                ..*d
            },
        ),
        (
            "amount up",
            Deposit {
                amount: d.amount + 1,
                ..*d
            },
        ),
        (
            "amount down",
            Deposit {
                amount: d.amount - 1,
                ..*d
            },
        ),
        (
            "expiry",
            Deposit {
                expiry: d.expiry + 1,
                ..*d
            },
        ),
        (
            "flags",
            Deposit {
                flags: d.flags ^ Deposit::CANCELLABLE,
                ..*d
            },
        ),
        (
            "watcher",
            Deposit {
                watcher: Address::ZERO,
                ..*d
            },
        ),
        (
            "recipient",
            Deposit {
                recipient: keccak256("someone else"),
                ..*d
            },
        ),
    ]
}

#[test]
fn claim_with_any_tampered_deposit_field_is_refused() {
    let w = World::new();
    let (k, d) = w.open(Asset::Native, true, "tamper");
    for (field, t) in tampered(&d) {
        // Even re-signed by the claim key and re-attested: the fields are not the deposit's.
        let args = w.claim_args(&k, &t, actor("bob"), 0, 0);
        let r = w.claim(w.relayer, &args);
        assert_eq!(
            revert_error(&r),
            unknown(k.address(), &t),
            "tampered {field}"
        );
    }
    assert_eq!(w.slot(k.address()), d.hash());
    assert_eq!(w.balance(Asset::Native, w.escrow), U256::from(d.amount));
}

#[test]
fn refund_with_any_tampered_deposit_field_is_refused() {
    let w = World::new();
    let (k, d) = w.open(Asset::Native, true, "tamper");
    w.next_tx_at(d.expiry + 1);
    for (_, t) in tampered(&d) {
        refused(&w, &[k.address()], unknown(k.address(), &t), || {
            w.refund(t.sender, k.address(), &t)
        });
    }
    expect_ok(&w.refund(w.stranger, k.address(), &d));
}

#[test]
fn dirty_high_bits_in_unread_fields_are_refused() {
    // `flags` and `watcher` are hashed from raw calldata: a dirty word would store a
    // hash no clean claim could match. The contract refuses it outright.
    let w = World::new();
    let k = key("dirty");
    let d = w.deposit_fields(Asset::Native, true, "dirty");
    let clean = E::depositCall {
        claimKey: k.address(),
        d: d.to_sol(),
    }
    .abi_encode();
    // selector (4) + claimKey (32) + sender, token, amount, expiry (4 x 32): flags is the next word.
    let flags_word = 4 + 32 + 4 * 32;
    let watcher_word = flags_word + 32;
    for (what, at) in [("flags", flags_word + 30), ("watcher", watcher_word + 11)] {
        let mut dirty = clean.clone();
        dirty[at] = 1;
        let before = w.snapshot(&[]);
        let r = w.send(w.sender, w.escrow, dirty, U256::from(d.amount));
        assert!(
            revert_data(&r).is_empty(),
            "dirty {what} reverts without data"
        );
        assert_eq!(w.snapshot(&[]), before);
        assert_eq!(w.slot(k.address()), B256::ZERO);
    }
    let r = w.send(w.sender, w.escrow, clean, U256::from(d.amount));
    expect_ok(&r);
}

// ------------------------------------------------------------------ deposit checks

#[test]
fn deposit_of_zero_is_refused() {
    let w = World::new();
    let k = key("zero");
    let d = Deposit {
        amount: 0,
        ..w.deposit_fields(Asset::Native, false, "zero")
    };
    refused(
        &w,
        &[k.address()],
        Err::ZeroAmount(E::ZeroAmount {}),
        || w.deposit_raw(w.sender, k.address(), &d, U256::ZERO),
    );
    let t = Deposit {
        amount: 0,
        ..w.deposit_fields(Asset::Token(w.token), false, "zero")
    };
    refused(
        &w,
        &[k.address()],
        Err::ZeroAmount(E::ZeroAmount {}),
        || w.deposit_raw(w.sender, k.address(), &t, U256::ZERO),
    );
}

#[test]
fn deposit_to_the_zero_claim_key_is_refused() {
    let w = World::new();
    let d = w.deposit_fields(Asset::Native, false, "zero key");
    refused(
        &w,
        &[Address::ZERO],
        Err::ZeroClaimKey(E::ZeroClaimKey {}),
        || w.deposit_raw(w.sender, Address::ZERO, &d, U256::from(d.amount)),
    );
}

#[test]
fn deposit_to_a_claim_key_in_use_is_refused() {
    let w = World::new();
    let (k, d) = w.open(Asset::Native, false, "in use");
    let again = Deposit {
        recipient: keccak256("second"),
        ..d
    };
    let in_use = Err::ClaimKeyInUse(E::ClaimKeyInUse {
        claimKey: k.address(),
    });
    refused(&w, &[k.address()], in_use.clone(), || {
        w.deposit_raw(w.sender, k.address(), &again, U256::from(again.amount))
    });
    // Also for another sender and the other asset.
    let carol = actor("carol");
    w.chain.fund(carol, U256::from(10 * COIN));
    let theirs = Deposit {
        sender: carol,
        ..again
    };
    refused(&w, &[k.address()], in_use.clone(), || {
        w.deposit_raw(carol, k.address(), &theirs, U256::from(theirs.amount))
    });
    let token = Deposit {
        token: w.token,
        ..again
    };
    refused(&w, &[k.address()], in_use, || {
        w.deposit_raw(w.sender, k.address(), &token, U256::ZERO)
    });
}

#[test]
fn deposit_in_the_name_of_another_sender_is_refused() {
    let w = World::new();
    let k = key("mismatch");
    let d = Deposit {
        sender: w.stranger,
        ..w.deposit_fields(Asset::Native, false, "mismatch")
    };
    let mismatch = Err::SenderMismatch(E::SenderMismatch {
        sender: w.stranger,
        caller: w.sender,
    });
    refused(&w, &[k.address()], mismatch, || {
        w.deposit_raw(w.sender, k.address(), &d, U256::from(d.amount))
    });
    // For a token this would pull from whoever approved the escrow: the stranger's tokens.
    w.mint_and_approve(w.token, w.stranger, U256::from(10 * COIN));
    let t = Deposit {
        sender: w.stranger,
        ..w.deposit_fields(Asset::Token(w.token), false, "mismatch")
    };
    let mismatch = Err::SenderMismatch(E::SenderMismatch {
        sender: w.stranger,
        caller: w.sender,
    });
    refused(&w, &[k.address()], mismatch, || {
        w.deposit_raw(w.sender, k.address(), &t, U256::ZERO)
    });
}

#[test]
fn deposit_with_the_wrong_value_is_refused() {
    let w = World::new();
    let k = key("value");
    let d = w.deposit_fields(Asset::Native, false, "value");
    for value in [0, d.amount - 1, d.amount + 1] {
        let mismatch = Err::ValueMismatch(E::ValueMismatch {
            expected: U256::from(d.amount),
            got: U256::from(value),
        });
        refused(&w, &[k.address()], mismatch, || {
            w.deposit_raw(w.sender, k.address(), &d, U256::from(value))
        });
    }
    let t = w.deposit_fields(Asset::Token(w.token), false, "value");
    let mismatch = Err::ValueMismatch(E::ValueMismatch {
        expected: U256::ZERO,
        got: U256::from(1),
    });
    refused(&w, &[k.address()], mismatch, || {
        w.deposit_raw(w.sender, k.address(), &t, U256::from(1))
    });
}

#[test]
fn deposit_that_is_already_expired_is_refused() {
    let w = World::new();
    let k = key("past");
    let now = w.next_ts();
    for expiry in [now, now - 1, 0] {
        let d = Deposit {
            expiry,
            ..w.deposit_fields(Asset::Native, false, "past")
        };
        let past = Err::ExpiryInPast(E::ExpiryInPast {
            expiry: d.to_sol().expiry,
            nowTs: U256::from(w.next_ts()),
        });
        refused(&w, &[k.address()], past, || {
            w.deposit_raw(w.sender, k.address(), &d, U256::from(d.amount))
        });
    }
}

#[test]
fn token_deposit_without_allowance_or_balance_is_refused() {
    let w = World::new();
    let k = key("no allowance");
    // The stranger has tokens but approved nothing: TestToken reverts (underflow), the
    // escrow reports the failed pull.
    expect_ok(
        &w.send(
            DEPLOYER,
            w.token,
            springmail_sdk::contract::testing::TestToken::mintCall {
                to: w.stranger,
                amount: U256::from(COIN),
            }
            .abi_encode(),
            U256::ZERO,
        ),
    );
    let d = Deposit {
        sender: w.stranger,
        amount: 1000,
        ..w.deposit_fields(Asset::Token(w.token), false, "na")
    };
    let failed = Err::TransferFailed(E::TransferFailed {
        token: w.token,
        to: w.escrow,
        amount: U256::from(1000),
    });
    refused(&w, &[k.address()], failed, || {
        w.deposit_raw(w.stranger, k.address(), &d, U256::ZERO)
    });
    // The sender approved uint max but asks for more than it has.
    let big = Deposit {
        amount: START_BALANCE + 1,
        ..w.deposit_fields(Asset::Token(w.token), false, "big")
    };
    let failed = Err::TransferFailed(E::TransferFailed {
        token: w.token,
        to: w.escrow,
        amount: U256::from(START_BALANCE + 1),
    });
    refused(&w, &[k.address()], failed, || {
        w.deposit_raw(w.sender, k.address(), &big, U256::ZERO)
    });
}

#[test]
fn deposit_of_a_token_address_without_code_is_refused() {
    // A call to an address without code "succeeds" with no data; the balance check
    // catches it, so no deposit can be backed by nothing.
    let w = World::new();
    let k = key("codeless");
    let ghost = actor("not a token");
    let d = w.deposit_fields(Asset::Token(ghost), false, "codeless");
    let failed = Err::TransferFailed(E::TransferFailed {
        token: ghost,
        to: w.escrow,
        amount: U256::ZERO,
    });
    refused(&w, &[k.address()], failed, || {
        w.deposit_raw(w.sender, k.address(), &d, U256::ZERO)
    });
}
