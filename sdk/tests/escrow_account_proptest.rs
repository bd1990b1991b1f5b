//! Property test of the mailbox wallets: random sequences of fundings (claims into an
//! account), transfers, withdrawals, payments to an email (and their claims into an
//! account or refunds into the payer), owner bindings, controller and limit changes and
//! clock moves, by the controller, another broker, the owners and a stranger, against a
//! model of what the escrow must do.
//!
//! After every step:
//! * the transaction succeeded exactly when the model says it may (right caller, nonce,
//!   limits of the day, balance, open deposit before its expiry);
//! * every account's words (balance, spent today, day, nonce, limits, controller, owner)
//!   equal the model's, so a refused step changed nothing;
//! * no account's balance went down in a step whose caller was neither its controller
//!   nor its owner;
//! * the escrow's native balance equals the open deposits plus the account balances plus
//!   the accrued fees.
//!
//! `cargo test` runs 128 sequences from a fixed seed; `PROPTEST_CASES` raises it.

mod account_common;
mod escrow_common;

use account_common::*;
use alloy::primitives::{Address, U256};
use escrow_common::*;
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{Config, TestRunner};
use springmail_sdk::accounts::AccountId;
use springmail_sdk::deposit::Deposit;
use springmail_sdk::keys::ClaimSecret;

const ACCOUNTS: usize = 3;
/// Callers: 0 the broker (the accounts' first controller and every deposit's watcher),
/// 1 another broker, 2..5 the owner keys of accounts 0..2, 5 a stranger.
const CALLERS: usize = 6;
const BROKER: usize = 0;
const DAY: u64 = 86_400;
/// Stands for the owner key of the account a step is about.
const OWNER_OF: usize = 99;

/// Successful steps of each kind over all sequences: each kind must happen.
static DONE: [std::sync::atomic::AtomicUsize; 10] =
    [const { std::sync::atomic::AtomicUsize::new(0) }; 10];

#[derive(Debug, Clone)]
enum Op {
    Fund {
        to: usize,
        amount: u128,
        fee: u128,
    },
    Transfer {
        from: usize,
        to: usize,
        amount: u128,
        by: usize,
        stale: bool,
    },
    Withdraw {
        from: usize,
        amount: u128,
        by: usize,
        stale: bool,
    },
    Pay {
        from: usize,
        amount: u128,
        by: usize,
        stale: bool,
    },
    ClaimPaid {
        which: Index,
        into: usize,
    },
    RefundPaid {
        which: Index,
    },
    Bind {
        account: usize,
        by: usize,
        stale: bool,
    },
    SetController {
        account: usize,
        by: usize,
        other: bool,
        stale: bool,
    },
    SetLimits {
        account: usize,
        by: usize,
        pp: u64,
        pd: u64,
    },
    Advance {
        hours: u64,
    },
}

fn amount() -> impl Strategy<Value = u128> {
    prop_oneof![1 => Just(0u128), 6 => 1u128..=2 * COIN, 2 => Just(COIN / 2), 1 => 3 * COIN..=4 * COIN]
}

fn op() -> impl Strategy<Value = Op> {
    let acct = 0..ACCOUNTS;
    let by = prop_oneof![3 => Just(BROKER), 2 => Just(OWNER_OF), 1 => 0..CALLERS];
    prop_oneof![
        3 => (acct.clone(), 1u128..=5 * COIN, 0u128..=1000).prop_map(|(to, amount, fee)| Op::Fund { to, amount, fee }),
        4 => (acct.clone(), acct.clone(), amount(), by.clone(), stale())
            .prop_map(|(from, to, amount, by, stale)| Op::Transfer { from, to, amount, by, stale }),
        2 => (acct.clone(), amount(), by.clone(), stale())
            .prop_map(|(from, amount, by, stale)| Op::Withdraw { from, amount, by, stale }),
        2 => (acct.clone(), amount(), by.clone(), stale())
            .prop_map(|(from, amount, by, stale)| Op::Pay { from, amount, by, stale }),
        2 => (any::<Index>(), acct.clone()).prop_map(|(which, into)| Op::ClaimPaid { which, into }),
        2 => any::<Index>().prop_map(|which| Op::RefundPaid { which }),
        2 => (acct.clone(), by.clone(), stale()).prop_map(|(account, by, stale)| Op::Bind { account, by, stale }),
        1 => (acct.clone(), by.clone(), any::<bool>(), stale())
            .prop_map(|(account, by, other, stale)| Op::SetController { account, by, other, stale }),
        1 => (acct.clone(), by.clone(), 0u64..=4 * COIN as u64, 0u64..=8 * COIN as u64)
            .prop_map(|(account, by, pp, pd)| Op::SetLimits { account, by, pp, pd }),
        2 => (1u64..=60).prop_map(|hours| Op::Advance { hours }),
    ]
}

/// A wrong nonce (one ahead) in one step of five.
fn stale() -> impl Strategy<Value = bool> {
    prop::bool::weighted(0.2)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Model {
    balance: u128,
    spent: u64,
    day: u64,
    nonce: u32,
    pp: u64,
    pd: u64,
    controller: Address,
    owner: Address,
}

struct Paid {
    key: ClaimSecret,
    deposit: Deposit,
    from: usize,
    open: bool,
}

struct Run {
    w: World,
    ids: [AccountId; ACCOUNTS],
    callers: [Address; CALLERS],
    m: [Model; ACCOUNTS],
    paid: Vec<Paid>,
    /// Email-mode deposits the broker could not claim (the account had another controller).
    stuck: u128,
    fees: u128,
    n: usize,
}

impl Run {
    fn new() -> Self {
        let w = World::new();
        let broker = w.watcher.address();
        let callers: [Address; CALLERS] = std::array::from_fn(|i| match i {
            BROKER => broker,
            1 => actor("broker two"),
            5 => actor("stranger"),
            i => actor(&format!("owner {}", i - 2)),
        });
        for c in callers {
            w.chain.fund(c, U256::from(COIN));
        }
        let ids: [AccountId; ACCOUNTS] = std::array::from_fn(|i| account(&format!("prop {i}")));
        let m = std::array::from_fn(|i| {
            let pp = 3 * COIN as u64;
            let pd = 8 * COIN as u64;
            expect_ok(&w.create(broker, ids[i], broker, pp, pd));
            Model {
                balance: 0,
                spent: 0,
                day: 0,
                nonce: 1,
                pp,
                pd,
                controller: broker,
                owner: Address::ZERO,
            }
        });
        Run {
            w,
            ids,
            callers,
            m,
            paid: Vec::new(),
            stuck: 0,
            fees: 0,
            n: 0,
        }
    }

    /// The model's debit by `by`: the new state, or None when the contract refuses.
    fn debit(&self, a: usize, amount: u128, by: Address, nonce: u32, ts: u64) -> Option<Model> {
        let mut s = self.m[a];
        if nonce != s.nonce || amount == 0 {
            return None;
        }
        if by == s.controller {
            let today = ts / DAY;
            let spent = if s.day == today { s.spent } else { 0 };
            if amount > s.pp as u128 || spent as u128 + amount > s.pd as u128 || amount > s.balance
            {
                return None;
            }
            s.spent = spent + amount as u64;
            s.day = today;
        } else if by != s.owner || by == Address::ZERO || amount > s.balance {
            return None;
        }
        s.balance -= amount;
        s.nonce += 1;
        Some(s)
    }

    /// Owner once bound, else controller: who changes an account's settings.
    fn governor(&self, a: usize) -> Address {
        let s = self.m[a];
        if s.owner != Address::ZERO {
            s.owner
        } else {
            s.controller
        }
    }

    fn caller(&self, by: usize, a: usize) -> Address {
        self.callers[if by == OWNER_OF { 2 + a } else { by }]
    }

    fn nonce(&self, a: usize, stale: bool) -> u32 {
        if stale {
            self.m[a].nonce + 1
        } else {
            self.m[a].nonce
        }
    }

    fn step(&mut self, op: &Op) {
        self.n += 1;
        let w = &self.w;
        let ts = w.next_ts();
        let before: Vec<State> = self.ids.iter().map(|a| w.state(*a)).collect();
        let broker = self.callers[BROKER];
        let (sender, r, ok, next): (Address, _, bool, Option<[Model; ACCOUNTS]>) = match op.clone()
        {
            Op::Fund { to, amount, fee } => {
                let label = format!("fund {}", self.n);
                let k = key(&label);
                let mut d = w.deposit_fields(Asset::Native, true, &label);
                d.amount = amount;
                w.deposit(k.address(), &d);
                let r = w.claim_into(broker, &k, &d, None, self.ids[to], fee, self.m[to].nonce);
                let ok = self.m[to].controller == broker && fee <= amount;
                let mut m = self.m;
                if ok {
                    m[to].balance += amount - fee;
                    m[to].nonce += 1;
                    self.fees += fee;
                } else {
                    self.stuck += amount;
                }
                (broker, r, ok, ok.then_some(m))
            }
            Op::Transfer {
                from,
                to,
                amount,
                by,
                stale,
            } => {
                let by = self.caller(by, from);
                let nonce = self.nonce(from, stale);
                let r = w.transfer(by, self.ids[from], self.ids[to], amount, nonce);
                let next = self.debit(from, amount, by, nonce, ts).map(|s| {
                    let mut m = self.m;
                    m[from] = s;
                    m[to].balance += amount;
                    m
                });
                (by, r, next.is_some(), next)
            }
            Op::Withdraw {
                from,
                amount,
                by,
                stale,
            } => {
                let by = self.caller(by, from);
                let nonce = self.nonce(from, stale);
                let r = w.withdraw(by, self.ids[from], actor("payee"), amount, nonce);
                let next = self.debit(from, amount, by, nonce, ts).map(|s| {
                    let mut m = self.m;
                    m[from] = s;
                    m
                });
                (by, r, next.is_some(), next)
            }
            Op::Pay {
                from,
                amount,
                by,
                stale,
            } => {
                let by = self.caller(by, from);
                let nonce = self.nonce(from, stale);
                let k = key(&format!("pay {}", self.n));
                let mut d = w.account_deposit(amount, false, broker, &format!("pay {}", self.n));
                // Two days, so that some expire within a sequence.
                d.expiry = ts + 2 * DAY;
                let r = w.pay(by, self.ids[from], k.address(), &d, nonce);
                let next = self.debit(from, amount, by, nonce, ts).map(|s| {
                    let mut m = self.m;
                    m[from] = s;
                    m
                });
                if next.is_some() {
                    self.paid.push(Paid {
                        key: k,
                        deposit: d,
                        from,
                        open: true,
                    });
                }
                (by, r, next.is_some(), next)
            }
            Op::ClaimPaid { which, into } => {
                if self.paid.is_empty() {
                    return;
                }
                let i = which.index(self.paid.len());
                let p = &self.paid[i];
                let r = w.claim_into(
                    broker,
                    &p.key,
                    &p.deposit,
                    Some(self.ids[p.from]),
                    self.ids[into],
                    0,
                    self.m[into].nonce,
                );
                let ok = p.open && ts < p.deposit.expiry && self.m[into].controller == broker;
                let mut m = self.m;
                if ok {
                    m[into].balance += p.deposit.amount;
                    m[into].nonce += 1;
                    self.paid[i].open = false;
                }
                (broker, r, ok, ok.then_some(m))
            }
            Op::RefundPaid { which } => {
                if self.paid.is_empty() {
                    return;
                }
                let i = which.index(self.paid.len());
                let p = &self.paid[i];
                let by = self.callers[5];
                let r = w.refund_into(by, p.key.address(), &p.deposit, self.ids[p.from]);
                let ok = p.open && ts >= p.deposit.expiry;
                let mut m = self.m;
                if ok {
                    m[p.from].balance += p.deposit.amount;
                    self.paid[i].open = false;
                }
                (by, r, ok, ok.then_some(m))
            }
            Op::Bind {
                account: a,
                by,
                stale,
            } => {
                let by = self.caller(by, a);
                let owner = self.callers[2 + a];
                let nonce = self.nonce(a, stale);
                let r = w.bind(by, self.ids[a], owner, nonce);
                let ok = by == self.governor(a) && nonce == self.m[a].nonce;
                let mut m = self.m;
                m[a].owner = owner;
                m[a].nonce += 1;
                (by, r, ok, ok.then_some(m))
            }
            Op::SetController {
                account: a,
                by,
                other,
                stale,
            } => {
                let by = self.caller(by, a);
                let to = self.callers[if other { 1 } else { BROKER }];
                let nonce = self.nonce(a, stale);
                let r = w.set_controller(by, self.ids[a], to, nonce);
                let ok = by == self.governor(a) && nonce == self.m[a].nonce;
                let mut m = self.m;
                m[a].controller = to;
                m[a].nonce += 1;
                (by, r, ok, ok.then_some(m))
            }
            Op::SetLimits {
                account: a,
                by,
                pp,
                pd,
            } => {
                let by = self.caller(by, a);
                let r = w.set_limits(by, self.ids[a], pp, pd);
                let s = self.m[a];
                let ok = (s.owner != Address::ZERO && by == s.owner)
                    || (by == s.controller
                        && (s.owner == Address::ZERO || (pp <= s.pp && pd <= s.pd)));
                let mut m = self.m;
                m[a].pp = pp;
                m[a].pd = pd;
                (by, r, ok, ok.then_some(m))
            }
            Op::Advance { hours } => {
                w.chain.advance_time(hours * 3600);
                return;
            }
        };
        assert_eq!(
            r.succeeded(),
            ok,
            "step {}: {op:?}: the escrow {} but the model says {ok}",
            self.n,
            if r.succeeded() { "accepted" } else { "refused" }
        );
        if let Some(m) = next {
            self.m = m;
        }
        if ok {
            let kind = match op {
                Op::Fund { .. } => 0,
                Op::Transfer { .. } => 1,
                Op::Withdraw { .. } => 2,
                Op::Pay { .. } => 3,
                Op::ClaimPaid { .. } => 4,
                Op::RefundPaid { .. } => 5,
                Op::Bind { .. } => 6,
                Op::SetController { .. } => 7,
                Op::SetLimits { .. } => 8,
                Op::Advance { .. } => 9,
            };
            DONE[kind].fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        // Every account as the model says; nothing went down without its controller or owner.
        for (i, id) in self.ids.iter().enumerate() {
            let s = w.state(*id);
            let m = self.m[i];
            assert_eq!(
                (
                    s.balance,
                    s.nonce,
                    s.per_payment,
                    s.per_day,
                    s.controller,
                    s.owner
                ),
                (m.balance, m.nonce, m.pp, m.pd, m.controller, m.owner),
                "step {}: account {i} after {op:?}",
                self.n
            );
            assert_eq!(
                (s.spent, s.day),
                (m.spent, m.day),
                "step {}: account {i}'s day",
                self.n
            );
            if s.balance < before[i].balance {
                assert!(
                    sender == before[i].controller
                        || (sender == before[i].owner && sender != Address::ZERO),
                    "step {}: account {i} lost money to a step by {sender}",
                    self.n
                );
            }
        }
        // What the escrow holds.
        let open_paid: u128 = self
            .paid
            .iter()
            .filter(|p| p.open)
            .map(|p| p.deposit.amount)
            .sum();
        let balances: u128 = self.m.iter().map(|m| m.balance).sum();
        assert_eq!(
            w.fees(self.callers[BROKER], Asset::Native),
            U256::from(self.fees)
        );
        assert_eq!(
            w.balance(Asset::Native, w.escrow),
            U256::from(self.stuck + open_paid + balances + self.fees),
            "step {}: the escrow's balance after {op:?}",
            self.n
        );
    }
}

#[test]
fn accounts_follow_the_model() {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(128);
    let mut runner = TestRunner::new_with_rng(
        Config {
            cases,
            failure_persistence: None,
            ..Config::default()
        },
        proptest::test_runner::TestRng::deterministic_rng(
            proptest::test_runner::RngAlgorithm::ChaCha,
        ),
    );
    runner
        .run(&proptest::collection::vec(op(), 5..60), |ops| {
            let mut run = Run::new();
            for op in &ops {
                run.step(op);
            }
            Ok(())
        })
        .unwrap();
    let done: Vec<usize> = DONE[..9]
        .iter()
        .map(|d| d.load(std::sync::atomic::Ordering::Relaxed))
        .collect();
    println!("successful steps by kind: {done:?}");
    assert!(
        done.iter().all(|&n| n > 0),
        "some kind of step never succeeded: {done:?}"
    );
}
