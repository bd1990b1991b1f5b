//! Hostile and unusual counterparties: tokens that skim, return false or call back
//! into the escrow; recipients that call back or refuse payment; and a 2-of-3 multisig
//! watcher answering ERC-1271.
//!
//! Every re-entrancy test first proves that its payload *would* succeed outside the
//! escrow's own call (a dry run, or a twin of the same deterministic state), so the
//! re-entered call fails because of the escrow's ordering and checks, not because the
//! payload is wrong.

mod escrow_common;

use alloy::primitives::{Address, Bytes, B256, U256};
use alloy::sol_types::SolCall;
use escrow_common::*;
use springmail_sdk::chain::CallResult;
use springmail_sdk::contract::testing::{
    FalseToken, FeeOnTransferToken, MultisigWatcher, ReentrantRecipient, ReentrantToken,
    RejectingRecipient,
};
use springmail_sdk::contract::EmailEscrow::{self as E, EmailEscrowErrors as Err};
use springmail_sdk::deposit::Deposit;
use springmail_sdk::keys::ClaimSecret;

fn deploy_plain(w: &World, bytecode: &Bytes) -> Address {
    deploy(&w.chain, DEPLOYER, bytecode.to_vec())
}

fn assert_dry_run_succeeds(w: &World, from: Address, data: &Bytes, what: &str) {
    match w.simulate(from, w.escrow, data.clone()) {
        CallResult::Success(_) => {}
        CallResult::Reverted(d) => panic!(
            "control: {what} should succeed on its own, got {}",
            describe_revert(&d)
        ),
    }
}

fn deposit_call(k: Address, d: &Deposit) -> Bytes {
    E::depositCall {
        claimKey: k,
        d: d.to_sol(),
    }
    .abi_encode()
    .into()
}

fn refund_call(k: Address, d: &Deposit) -> Bytes {
    E::refundCall {
        claimKey: k,
        d: d.to_sol(),
    }
    .abi_encode()
    .into()
}

// ------------------------------------------------------------------ odd tokens

#[test]
fn fee_on_transfer_token_is_refused() {
    let w = World::new();
    let fot = deploy_plain(&w, &FeeOnTransferToken::BYTECODE);
    w.mint_and_approve(fot, w.sender, U256::from(100 * COIN));
    let k = key("fot");
    let d = w.deposit_fields(Asset::Token(fot), false, "fot");
    let before = (
        w.balance(Asset::Token(fot), w.sender),
        w.balance(Asset::Token(fot), w.escrow),
    );
    let r = w.deposit_raw(w.sender, k.address(), &d, U256::ZERO);
    let shortfall = Err::TokenShortfall(E::TokenShortfall {
        expected: U256::from(d.amount),
        received: U256::from(d.amount - d.amount / 100),
    });
    assert_eq!(revert_error(&r), shortfall);
    assert_eq!(
        (
            w.balance(Asset::Token(fot), w.sender),
            w.balance(Asset::Token(fot), w.escrow)
        ),
        before
    );
    assert_eq!(w.slot(k.address()), B256::ZERO);
}

#[test]
fn token_returning_false_is_refused_on_deposit_claim_and_refund() {
    let w = World::new();
    let ft = deploy_plain(&w, &FalseToken::BYTECODE);
    w.mint_and_approve(ft, w.sender, U256::from(100 * COIN));
    let set_refuse = |r: bool| {
        expect_ok(&w.send(
            DEPLOYER,
            ft,
            FalseToken::setRefuseCall { r }.abi_encode(),
            U256::ZERO,
        ));
    };
    let asset = Asset::Token(ft);
    let bob = actor("bob");

    // Deposit: transferFrom returns false and moves nothing.
    set_refuse(true);
    let k = key("false");
    let d = w.deposit_fields(asset, false, "false");
    let r = w.deposit_raw(w.sender, k.address(), &d, U256::ZERO);
    let failed = |to: Address, amount: u128| {
        Err::TransferFailed(E::TransferFailed {
            token: ft,
            to,
            amount: U256::from(amount),
        })
    };
    assert_eq!(revert_error(&r), failed(w.escrow, d.amount));
    assert_eq!(w.slot(k.address()), B256::ZERO);

    // An open deposit whose token starts refusing: claim and refund fail and the deposit stays.
    set_refuse(false);
    w.deposit(k.address(), &d);
    set_refuse(true);
    let args = w.claim_args(&k, &d, bob, 500, 500);
    let r = w.claim(w.relayer, &args);
    assert_eq!(revert_error(&r), failed(bob, d.amount - 500));
    let r = w.refund(w.sender, k.address(), &d);
    assert_eq!(revert_error(&r), failed(w.sender, d.amount));
    assert_eq!(w.slot(k.address()), d.hash());
    assert_eq!(w.balance(asset, w.escrow), U256::from(d.amount));

    // Once the token behaves, the same signed claim goes through.
    set_refuse(false);
    expect_ok(&w.claim(w.relayer, &args));
    assert_eq!(w.balance(asset, bob), U256::from(d.amount - 500));
    assert_eq!(w.fees(w.relayer, asset), U256::from(500), "the fee accrues");
}

// ------------------------------------------------------------------ re-entrant token

/// What an unrelated depositor keeps in the escrow during the re-entrancy tests.
const BYSTANDER: u128 = 40 * COIN;

struct Reentrant {
    w: World,
    re: Address,
}

impl Reentrant {
    fn new() -> Self {
        let w = World::new();
        let re = deploy_plain(&w, &ReentrantToken::BYTECODE);
        w.mint_and_approve(re, w.sender, U256::from(1000 * COIN));
        // The token also holds tokens of its own and has approved the escrow, so that
        // from inside a transfer it can deposit like any sender.
        let mint = ReentrantToken::mintCall {
            to: re,
            amount: U256::from(1000 * COIN),
        };
        expect_ok(&w.send(DEPLOYER, re, mint.abi_encode(), U256::ZERO));
        let me = Reentrant { w, re };
        me.arm(
            re,
            ReentrantToken::approveCall {
                spender: me.w.escrow,
                amount: U256::MAX,
            }
            .abi_encode()
            .into(),
        );
        me.poke();
        me.arm(Address::ZERO, Bytes::new());
        // Someone else's deposit in the same token: the escrow pools deposits, so a payout
        // twice would come out of it, not fail for want of funds.
        let d = me.fields("bystander", BYSTANDER);
        me.w.deposit(key("bystander").address(), &d);
        me
    }

    /// The escrow holds exactly the bystander's deposit, which is still open.
    /// The escrow holds the bystander's deposit and the relayer's accrued fees (v2: fees
    /// stay in the escrow until withdrawn), nothing more.
    fn only_bystander_left(&self) {
        assert_eq!(
            self.w.balance(self.asset(), self.w.escrow),
            U256::from(BYSTANDER) + self.w.fees(self.w.relayer, self.asset()),
            "escrow balance"
        );
        assert_ne!(
            self.w.slot(key("bystander").address()),
            B256::ZERO,
            "the bystander's deposit is open"
        );
    }

    fn arm(&self, target: Address, payload: Bytes) {
        let call = ReentrantToken::armCall {
            target_: target,
            payload_: payload,
        };
        expect_ok(
            &self
                .w
                .send(DEPLOYER, self.re, call.abi_encode(), U256::ZERO),
        );
    }

    /// A transfer between two outsiders, which runs the armed call-back.
    fn poke(&self) {
        let t = ReentrantToken::transferCall {
            to: self.w.stranger,
            amount: U256::from(1),
        };
        expect_ok(
            &self
                .w
                .send(self.w.sender, self.re, t.abi_encode(), U256::ZERO),
        );
    }

    fn last_call_succeeded(&self) -> bool {
        self.w
            .view(self.re, ReentrantToken::lastCallSucceededCall {})
    }

    fn asset(&self) -> Asset {
        Asset::Token(self.re)
    }

    fn fields(&self, label: &str, amount: u128) -> Deposit {
        Deposit {
            amount,
            ..self.w.deposit_fields(self.asset(), false, label)
        }
    }

    /// A cancellable deposit whose sender is the token itself (made from inside a transfer).
    fn deposit_by_token(&self, label: &str, amount: u128) -> (ClaimSecret, Deposit) {
        let k = key(label);
        let d = Deposit {
            sender: self.re,
            ..self.fields(label, amount)
        };
        self.arm(self.w.escrow, deposit_call(k.address(), &d));
        self.poke();
        self.arm(Address::ZERO, Bytes::new());
        assert_eq!(
            self.w.slot(k.address()),
            d.hash(),
            "the token made its deposit"
        );
        (k, d)
    }

    fn holdings(&self) -> Vec<U256> {
        [
            self.w.sender,
            self.re,
            self.w.escrow,
            self.w.relayer,
            actor("bob"),
            actor("mallory"),
        ]
        .iter()
        .map(|&a| self.w.balance(self.asset(), a))
        .collect()
    }

    /// With the token armed, deposits `amount` from the sender and expects
    /// `TokenShortfall(amount, received)` with nothing changed.
    fn deposit_expecting_shortfall(&self, amount: u128, received: u128) {
        let before = self.holdings();
        let k = key("outer deposit");
        let d = self.fields("outer", amount);
        let r = self
            .w
            .deposit_raw(self.w.sender, k.address(), &d, U256::ZERO);
        let shortfall = Err::TokenShortfall(E::TokenShortfall {
            expected: U256::from(amount),
            received: U256::from(received),
        });
        assert_eq!(revert_error(&r), shortfall);
        assert_eq!(self.holdings(), before, "funds moved");
        assert_eq!(self.w.slot(k.address()), B256::ZERO);
    }
}

/// The control for a re-entrancy test: in a twin of the armed state (the fixtures are
/// deterministic), the armed call, run from a plain transfer between outsiders,
/// succeeds. So when it fails from inside the escrow, the escrow's ordering is why.
fn assert_armed_call_works_alone(twin: Reentrant) {
    twin.poke();
    assert!(
        twin.last_call_succeeded(),
        "control: the armed call should succeed outside the escrow"
    );
}

#[test]
fn reentrant_token_reentering_deposit_during_deposit_fails() {
    let armed = || {
        let t = Reentrant::new();
        let inner_key = key("inner");
        let inner = Deposit {
            sender: t.re,
            ..t.fields("inner", 3 * COIN)
        };
        t.arm(t.w.escrow, deposit_call(inner_key.address(), &inner));
        (t, inner_key.address())
    };
    assert_armed_call_works_alone(armed().0);
    let (t, inner_key) = armed();
    // The inner deposit pulls 3 more into the escrow during the outer pull of 2: the
    // escrow sees 5 arrive for a deposit of 2.
    t.deposit_expecting_shortfall(2 * COIN, 5 * COIN);
    assert_eq!(
        t.w.slot(inner_key),
        B256::ZERO,
        "the inner deposit was undone too"
    );
}

#[test]
fn reentrant_token_reentering_claim_during_deposit_fails() {
    let armed = || {
        let t = Reentrant::new();
        let (k, x) = t.w.open(t.asset(), false, "victim");
        let args = t.w.claim_args(&k, &x, actor("mallory"), 0, 0);
        t.arm(t.w.escrow, args.calldata());
        (t, x, args)
    };
    assert_armed_call_works_alone(armed().0);
    let (t, x, args) = armed();
    // Paying out x from inside the pull of 2x: only x net arrives.
    t.deposit_expecting_shortfall(2 * x.amount, x.amount);
    assert_eq!(
        t.w.slot(args.claim_key),
        x.hash(),
        "the other deposit is still open"
    );
    t.arm(Address::ZERO, Bytes::new());
    expect_ok(&t.w.claim(t.w.relayer, &args));
    assert_eq!(
        t.w.balance(t.asset(), actor("mallory")),
        U256::from(x.amount)
    );
}

#[test]
fn reentrant_token_reentering_refund_during_deposit_fails() {
    let armed = || {
        let t = Reentrant::new();
        let (k, r) = t.deposit_by_token("token's own", COIN);
        t.arm(t.w.escrow, refund_call(k.address(), &r));
        (t, k.address(), r)
    };
    assert_armed_call_works_alone(armed().0);
    let (t, k, r) = armed();
    t.deposit_expecting_shortfall(3 * COIN, 2 * COIN);
    assert_eq!(t.w.slot(k), r.hash(), "the token's deposit is still open");
}

#[test]
fn reentrant_token_reentering_claim_during_claim_payout_fails() {
    let armed = || {
        let t = Reentrant::new();
        let (k, d) = t.w.open(t.asset(), false, "claimed once");
        let args = t.w.claim_args(&k, &d, actor("bob"), 700, 700);
        t.arm(t.w.escrow, args.calldata());
        (t, d, args)
    };
    assert_armed_call_works_alone(armed().0);
    let (t, d, args) = armed();
    expect_ok(&t.w.claim(t.w.relayer, &args));
    assert!(!t.last_call_succeeded(), "the re-entered claim must fail");
    assert_eq!(
        t.w.balance(t.asset(), actor("bob")),
        U256::from(d.amount - 700)
    );
    assert_eq!(
        t.w.fees(t.w.relayer, t.asset()),
        U256::from(700),
        "the fee accrues"
    );
    t.only_bystander_left();
}

#[test]
fn reentrant_token_reentering_refund_during_claim_payout_fails() {
    // The deposit's sender is the token: its refund would be allowed (cancellable, before
    // expiry) if the slot were still there while the claim pays out.
    let armed = || {
        let t = Reentrant::new();
        let (k, d) = t.deposit_by_token("refund inside claim", COIN);
        let args = t.w.claim_args(&k, &d, actor("bob"), 0, 0);
        t.arm(t.w.escrow, refund_call(k.address(), &d));
        (t, d, args)
    };
    assert_armed_call_works_alone(armed().0);
    let (t, d, args) = armed();
    let token_before = t.w.balance(t.asset(), t.re);
    expect_ok(&t.w.claim(t.w.relayer, &args));
    assert!(!t.last_call_succeeded(), "the re-entered refund must fail");
    assert_eq!(t.w.balance(t.asset(), actor("bob")), U256::from(d.amount));
    assert_eq!(
        t.w.balance(t.asset(), t.re),
        token_before,
        "the sender got nothing back"
    );
    t.only_bystander_left();
}

#[test]
fn reentrant_token_reentering_claim_during_refund_payout_fails() {
    let armed = || {
        let t = Reentrant::new();
        let (k, d) = t.w.open(t.asset(), false, "refunded once");
        let args = t.w.claim_args(&k, &d, actor("mallory"), 0, 0);
        t.arm(t.w.escrow, args.calldata());
        (t, k.address(), d)
    };
    assert_armed_call_works_alone(armed().0);
    let (t, k, d) = armed();
    let sender_before = t.w.balance(t.asset(), t.w.sender);
    expect_ok(&t.w.refund(t.w.sender, k, &d));
    assert!(!t.last_call_succeeded(), "the re-entered claim must fail");
    assert_eq!(t.w.balance(t.asset(), actor("mallory")), U256::ZERO);
    assert_eq!(
        t.w.balance(t.asset(), t.w.sender),
        sender_before + U256::from(d.amount)
    );
    t.only_bystander_left();
}

#[test]
fn reentrant_token_reentering_refund_during_refund_payout_fails() {
    // Anyone may refund an expired deposit; the re-entered second refund must not pay again.
    let armed = || {
        let t = Reentrant::new();
        let (k, d) = t.w.open(t.asset(), false, "double refund");
        t.w.next_tx_at(d.expiry);
        t.arm(t.w.escrow, refund_call(k.address(), &d));
        (t, k.address(), d)
    };
    assert_armed_call_works_alone(armed().0);
    let (t, k, d) = armed();
    let sender_before = t.w.balance(t.asset(), t.w.sender);
    expect_ok(&t.w.refund(t.w.stranger, k, &d));
    assert!(!t.last_call_succeeded(), "the re-entered refund must fail");
    assert_eq!(
        t.w.balance(t.asset(), t.w.sender),
        sender_before + U256::from(d.amount),
        "refunded once"
    );
    t.only_bystander_left();
}

// ------------------------------------------------------------------ recipients

#[test]
fn reentrant_recipient_cannot_claim_twice() {
    let w = World::new();
    let rr = deploy_plain(&w, &ReentrantRecipient::BYTECODE);
    // Another deposit in the pool: a second payout would come out of it.
    let (bystander, b) = w.open(Asset::Native, false, "bystander");
    let (k, d) = w.open(Asset::Native, true, "reentrant recipient");
    let args = w.claim_args(&k, &d, rr, 1000, 1000);
    let arm = ReentrantRecipient::armCall {
        target_: w.escrow,
        payload_: args.calldata(),
    };
    expect_ok(&w.send(DEPLOYER, rr, arm.abi_encode(), U256::ZERO));
    assert_dry_run_succeeds(&w, w.relayer, &args.calldata(), "the claim");

    let r = w.claim(w.relayer, &args);
    expect_ok(&r);
    assert!(
        !w.view(rr, ReentrantRecipient::lastCallSucceededCall {}),
        "the re-entered claim must fail"
    );
    assert_eq!(
        w.view(rr, ReentrantRecipient::receivedCall {}),
        U256::from(d.amount - 1000)
    );
    assert_eq!(w.balance(Asset::Native, rr), U256::from(d.amount - 1000));
    assert_eq!(
        w.fees(w.relayer, Asset::Native),
        U256::from(1000),
        "the fee accrues"
    );
    assert_eq!(
        w.balance(Asset::Native, w.escrow),
        U256::from(b.amount + 1000),
        "the other deposit is intact (and the accrued fee is there)"
    );
    assert_eq!(w.slot(bystander.address()), b.hash());
    assert_eq!(
        event::<E::Claimed>(&r).to,
        rr,
        "one Claimed event, the first claim"
    );
}

#[test]
fn recipient_that_rejects_payment_makes_the_claim_revert_and_funds_stay() {
    let w = World::new();
    let rej = deploy_plain(&w, &RejectingRecipient::BYTECODE);
    let (k, d) = w.open(Asset::Native, false, "rejected");
    let args = w.claim_args(&k, &d, rej, 1000, 1000);
    let before = w.snapshot(&[w.relayer, rej]);
    let r = w.claim(w.relayer, &args);
    let failed = Err::TransferFailed(E::TransferFailed {
        token: Address::ZERO,
        to: rej,
        amount: U256::from(d.amount - 1000),
    });
    assert_eq!(revert_error(&r), failed);
    assert_eq!(w.snapshot(&[w.relayer, rej]), before);
    assert_eq!(w.slot(k.address()), d.hash(), "the deposit is still open");
    // The sender can still take it back once it expires.
    w.next_tx_at(d.expiry);
    expect_ok(&w.refund(w.stranger, k.address(), &d));
    assert_eq!(
        w.balance(Asset::Native, w.sender),
        U256::from(START_BALANCE)
    );
}

// ------------------------------------------------------------------ multisig watcher

struct Multisig {
    w: World,
    watcher: Address,
    owners: Vec<ClaimSecret>,
}

impl Multisig {
    fn new() -> Self {
        let w = World::new();
        let owners: Vec<ClaimSecret> = (1..=3).map(|i| key(&format!("broker {i}"))).collect();
        let ctor = MultisigWatcher::constructorCall {
            owners: owners.iter().map(ClaimSecret::address).collect(),
            threshold_: U256::from(2),
        };
        let watcher = deploy(
            &w.chain,
            DEPLOYER,
            init_code(&MultisigWatcher::BYTECODE, &ctor),
        );
        Multisig { w, watcher, owners }
    }

    /// An open deposit watched by the multisig and a claim with an empty attestation.
    fn open(&self) -> (Deposit, ClaimArgs) {
        let k = key("multisig claim key");
        let d = Deposit {
            watcher: self.watcher,
            ..self.w.deposit_fields(Asset::Native, false, "multisig")
        };
        self.w.deposit(k.address(), &d);
        let mut args = self.w.claim_args(&k, &d, actor("bob"), 0, 0);
        args.attestation = Bytes::new();
        (d, args)
    }

    /// Concatenated attestations by these signers, in the given order.
    fn attest(&self, args: &ClaimArgs, signers: &[&ClaimSecret]) -> Bytes {
        let auth = args.auth();
        signers
            .iter()
            .flat_map(|s| auth.sign_attest(self.w.id, s).0)
            .collect::<Vec<u8>>()
            .into()
    }

    fn ascending(&self, a: usize, b: usize) -> [&ClaimSecret; 2] {
        let (x, y) = (&self.owners[a], &self.owners[b]);
        if x.address() < y.address() {
            [x, y]
        } else {
            [y, x]
        }
    }
}

#[test]
fn multisig_watcher_accepts_two_distinct_owners() {
    let m = Multisig::new();
    for (a, b) in [(0, 1), (1, 2), (0, 2)] {
        let (d, mut args) = m.open();
        args.attestation = m.attest(&args, &m.ascending(a, b));
        expect_ok(&m.w.claim(m.w.relayer, &args));
        assert_eq!(m.w.slot(args.claim_key), B256::ZERO);
        assert_eq!(
            m.w.balance(Asset::Native, m.w.escrow),
            U256::ZERO,
            "pair {a},{b} claimed {d:?}"
        );
    }
    assert_eq!(
        m.w.balance(Asset::Native, actor("bob")),
        U256::from(3 * 150_000_000u128)
    );
}

#[test]
fn multisig_watcher_refuses_one_owner_twice_a_non_owner_a_single_sig_or_bad_order() {
    let m = Multisig::new();
    let (d, args) = m.open();
    let outsider = key("not a broker");
    let [lo, hi] = m.ascending(0, 1);
    let mut outsider_pair = [lo, &outsider];
    outsider_pair.sort_by_key(|s| s.address());
    let cases: Vec<(&str, Bytes)> = vec![
        ("one owner twice", m.attest(&args, &[lo, lo])),
        ("an owner and a non-owner", m.attest(&args, &outsider_pair)),
        ("one owner's signature", m.attest(&args, &[lo])),
        ("descending order", m.attest(&args, &[hi, lo])),
        ("nothing", Bytes::new()),
        (
            "three owners for a threshold of two",
            m.attest(&args, &[lo, hi, &m.owners[2]]),
        ),
    ];
    let expected = Err::BadAttestation(E::BadAttestation { watcher: m.watcher });
    for (what, attestation) in cases {
        let spoiled = ClaimArgs {
            attestation,
            ..args.clone()
        };
        let r = m.w.claim(m.w.relayer, &spoiled);
        assert_eq!(revert_error(&r), expected, "{what}");
    }
    assert_eq!(m.w.slot(args.claim_key), d.hash());
    // Two owners' attestations of another payee do not carry over either.
    let mut to_mallory = ClaimArgs {
        to: actor("mallory"),
        ..args.clone()
    };
    m.w.sign(&mut to_mallory, &key("multisig claim key"));
    to_mallory.attestation = m.attest(&args, &[lo, hi]);
    assert_eq!(revert_error(&m.w.claim(m.w.relayer, &to_mallory)), expected);
    let good = ClaimArgs {
        attestation: m.attest(&args, &[lo, hi]),
        ..args
    };
    expect_ok(&m.w.claim(m.w.relayer, &good));
}

#[test]
fn a_contract_may_relay_a_claim_and_earns_the_fee_as_msg_sender() {
    // ReentrantRecipient as a forwarder: a payment to it makes it call the escrow, so the
    // claim's msg.sender is the contract while tx.origin is the stranger who paid it.
    let w = World::new();
    let forwarder = deploy_plain(&w, &ReentrantRecipient::BYTECODE);
    let (k, d) = w.open(Asset::Native, false, "relayed by a contract");
    let bob = actor("bob");
    let args = w.claim_args(&k, &d, bob, 1000, 1000);
    let arm = ReentrantRecipient::armCall {
        target_: w.escrow,
        payload_: args.calldata(),
    };
    expect_ok(&w.send(DEPLOYER, forwarder, arm.abi_encode(), U256::ZERO));
    w.chain.fund(w.stranger, U256::from(1));
    let r = w.send(w.stranger, forwarder, Bytes::new(), U256::from(1));
    expect_ok(&r);
    assert!(
        w.view(forwarder, ReentrantRecipient::lastCallSucceededCall {}),
        "the relayed claim went through"
    );
    let ev: E::Claimed = event(&r);
    assert_eq!(
        (ev.to, ev.relayer, ev.fee),
        (bob, forwarder, U256::from(1000))
    );
    assert_eq!(w.balance(Asset::Native, bob), U256::from(d.amount - 1000));
    assert_eq!(
        w.fees(forwarder, Asset::Native),
        U256::from(1000),
        "the fee accrued to msg.sender"
    );
    assert_eq!(
        w.fees(w.stranger, Asset::Native),
        U256::ZERO,
        "not to tx.origin"
    );
    assert_eq!(w.balance(Asset::Native, forwarder), U256::from(1));
}

/// In a batch, a recipient that refuses the coin is skipped with `TransferFailed`: its
/// deposit is put back, the other claims are paid, and the failed one's fee does not
/// accrue.
#[test]
fn a_refusing_recipient_in_a_batch_is_skipped_and_its_deposit_kept() {
    use alloy::sol_types::{SolError, SolEvent};
    let w = World::new();
    let rej = deploy_plain(&w, &RejectingRecipient::BYTECODE);
    let (k1, d1) = w.open(Asset::Native, true, "batch refused");
    let (k2, d2) = w.open(Asset::Native, true, "batch paid");
    let bob = actor("batch bob");
    let a1 = w.claim_args(&k1, &d1, rej, 300, 300);
    let a2 = w.claim_args(&k2, &d2, bob, 400, 400);
    let escrow_before = w.balance(Asset::Native, w.escrow);
    let r = w.claim_batch(w.relayer, &[a1, a2]);
    expect_ok(&r);
    assert_eq!(
        w.slot(k1.address()),
        d1.hash(),
        "the refused deposit is open again"
    );
    assert_eq!(w.slot(k2.address()), B256::ZERO);
    assert_eq!(w.balance(Asset::Native, rej), U256::ZERO);
    assert_eq!(w.balance(Asset::Native, bob), U256::from(d2.amount - 400));
    assert_eq!(
        w.fees(w.relayer, Asset::Native),
        U256::from(400),
        "only the paid claim's fee"
    );
    assert_eq!(
        w.balance(Asset::Native, w.escrow),
        escrow_before - U256::from(d2.amount - 400)
    );
    let skipped = r
        .logs
        .iter()
        .find_map(|l| E::ClaimSkipped::decode_log_data(&l.data).ok())
        .expect("a ClaimSkipped log");
    assert_eq!(
        (skipped.claimKey, skipped.reason),
        (k1.address(), E::TransferFailed::SELECTOR.into())
    );
}

/// A recipient contract that burns all the gas it gets cannot sink a batch: each payment
/// forwards a bounded amount, so the batch still pays the other claim.
#[test]
fn a_gas_burning_recipient_in_a_batch_cannot_sink_the_others() {
    let w = World::new();
    // Runtime code `INVALID` (0xfe): any call to it burns all the gas it is given.
    let burner = deploy(&w.chain, DEPLOYER, hex_init(&[0xfe]));
    let (k1, d1) = w.open(Asset::Native, false, "batch burner");
    let (k2, d2) = w.open(Asset::Native, false, "batch after burner");
    let bob = actor("batch bob 2");
    let a1 = w.claim_args(&k1, &d1, burner, 0, 0);
    let a2 = w.claim_args(&k2, &d2, bob, 0, 0);
    let call = E::claimBatchCall {
        claims: vec![a1.to_sol(), a2.to_sol()],
    };
    // 1,000,000 gas is plenty for two claims, but not for two if one payee got it all.
    let tx = springmail_sdk::chain::TxRequest {
        to: Some(w.escrow),
        data: call.abi_encode().into(),
        value: U256::ZERO,
        gas_limit: Some(1_000_000),
    };
    let r = block_on(springmail_sdk::chain::Chain::send(
        &w.chain.as_account(w.relayer),
        tx,
    ))
    .expect("sent");
    expect_ok(&r);
    assert_eq!(
        w.slot(k1.address()),
        d1.hash(),
        "the burner's deposit stays open"
    );
    assert_eq!(w.balance(Asset::Native, bob), U256::from(d2.amount));
    assert!(
        r.gas_used < 400_000,
        "the burner took at most the bounded gas: {}",
        r.gas_used
    );
}

/// Init code that deploys `runtime` as the contract's code.
fn hex_init(runtime: &[u8]) -> Vec<u8> {
    // PUSH1 len PUSH1 0x0c PUSH1 0 CODECOPY PUSH1 len PUSH1 0 RETURN, then the runtime.
    let n = runtime.len() as u8;
    let mut code = vec![
        0x60, n, 0x60, 0x0c, 0x60, 0x00, 0x39, 0x60, n, 0x60, 0x00, 0xf3,
    ];
    code.extend_from_slice(runtime);
    code
}
