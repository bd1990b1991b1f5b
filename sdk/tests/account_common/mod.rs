//! Account calls on the embedded chain's escrow, for the `escrow_account*` tests: raw
//! contract calls (no simulation first), so refusals come back as reverted receipts.
#![allow(dead_code)]

use alloy::primitives::aliases::{U40, U48, U96};
use alloy::primitives::{keccak256, Address, Bytes, B256, U256};
use alloy::sol_types::SolCall;
use springmail_sdk::accounts::{
    compact, funded_deposit_hash, AccountId, ClaimIntoAuth, FROM_ACCOUNT,
};
use springmail_sdk::chain::Receipt;
use springmail_sdk::contract::EmailEscrow;
use springmail_sdk::deposit::Deposit;
use springmail_sdk::keys::ClaimSecret;

use crate::escrow_common::*;

/// An account id from a label.
pub fn account(label: &str) -> AccountId {
    AccountId(keccak256(format!("springmail test account {label}")))
}

pub fn mail(label: &str) -> B256 {
    keccak256(format!("From: someone\r\n\r\n{label}\r\n"))
}

/// The unpacked account, as `accountOf_s` returns it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct State {
    pub balance: u128,
    pub spent: u64,
    pub day: u64,
    pub nonce: u32,
    pub per_payment: u64,
    pub per_day: u64,
    pub controller: Address,
    pub owner: Address,
}

pub trait Accounts {
    fn state(&self, a: AccountId) -> State;
    fn create(&self, from: Address, a: AccountId, controller: Address, pp: u64, pd: u64)
        -> Receipt;
    fn transfer(
        &self,
        from: Address,
        a: AccountId,
        b: AccountId,
        amount: u128,
        nonce: u32,
    ) -> Receipt;
    fn withdraw(
        &self,
        from: Address,
        a: AccountId,
        to: Address,
        amount: u128,
        nonce: u32,
    ) -> Receipt;
    fn bind(&self, from: Address, a: AccountId, owner: Address, nonce: u32) -> Receipt;
    fn set_controller(&self, from: Address, a: AccountId, c: Address, nonce: u32) -> Receipt;
    fn set_limits(&self, from: Address, a: AccountId, pp: u64, pd: u64) -> Receipt;
    /// A FROM_ACCOUNT deposit paying `amount` from `a` under a fresh claim key.
    fn account_deposit(
        &self,
        amount: u128,
        cancellable: bool,
        watcher: Address,
        label: &str,
    ) -> Deposit;
    fn pay(&self, from: Address, a: AccountId, k: Address, d: &Deposit, nonce: u32) -> Receipt;
    /// `claimIntoAccount_195w` of `d` (paid from `paid_from` when set) into `a`, signed by `k`.
    #[allow(clippy::too_many_arguments)]
    fn claim_into(
        &self,
        from: Address,
        k: &ClaimSecret,
        d: &Deposit,
        paid_from: Option<AccountId>,
        a: AccountId,
        fee: u128,
        nonce: u32,
    ) -> Receipt;
    /// `claimFromAccount_fjv`: a FROM_ACCOUNT deposit to an address.
    fn claim_from(
        &self,
        from: Address,
        k: &ClaimSecret,
        d: &Deposit,
        paid_from: AccountId,
        to: Address,
    ) -> Receipt;
    /// `refund` of a FROM_ACCOUNT deposit, with the paying account after the arguments.
    fn refund_into(&self, from: Address, k: Address, d: &Deposit, paid_from: AccountId) -> Receipt;
    /// Opens `a` under the world's watcher and funds it with an email-mode deposit of `amount`.
    fn funded(&self, a: AccountId, amount: u128, pp: u64, pd: u64) -> State;
}

impl Accounts for World {
    fn state(&self, a: AccountId) -> State {
        let r = self.view(self.escrow, EmailEscrow::accountOf_sCall { account: a.0 });
        State {
            balance: r.balance.to(),
            spent: r.spentToday.to(),
            day: r.day.to(),
            nonce: r.nonce.to(),
            per_payment: r.perPayment.to(),
            per_day: r.perDay.to(),
            controller: r.controller,
            owner: r.owner,
        }
    }

    fn create(
        &self,
        from: Address,
        a: AccountId,
        controller: Address,
        pp: u64,
        pd: u64,
    ) -> Receipt {
        let c = EmailEscrow::createAccount_1sCall {
            account: a.0,
            controller,
            perPayment: U48::from(pp),
            perDay: U48::from(pd),
        };
        self.send(from, self.escrow, c.abi_encode(), U256::ZERO)
    }

    fn transfer(
        &self,
        from: Address,
        a: AccountId,
        b: AccountId,
        amount: u128,
        nonce: u32,
    ) -> Receipt {
        let c = EmailEscrow::transferToAccount_1q11Call {
            from: a.0,
            to: b.0,
            amount: U96::from(amount),
            nonce,
            mailHash: mail("transfer"),
        };
        self.send(from, self.escrow, c.abi_encode(), U256::ZERO)
    }

    fn withdraw(
        &self,
        from: Address,
        a: AccountId,
        to: Address,
        amount: u128,
        nonce: u32,
    ) -> Receipt {
        let c = EmailEscrow::withdrawFromAccount_4gCall {
            from: a.0,
            to,
            amount: U96::from(amount),
            nonce,
            mailHash: mail("withdraw"),
        };
        self.send(from, self.escrow, c.abi_encode(), U256::ZERO)
    }

    fn bind(&self, from: Address, a: AccountId, owner: Address, nonce: u32) -> Receipt {
        let c = EmailEscrow::bindOwner_27Call {
            account: a.0,
            owner,
            nonce,
            mailHash: mail("bind"),
        };
        self.send(from, self.escrow, c.abi_encode(), U256::ZERO)
    }

    fn set_controller(&self, from: Address, a: AccountId, c: Address, nonce: u32) -> Receipt {
        let c = EmailEscrow::setController_5cCall {
            account: a.0,
            controller: c,
            nonce,
            mailHash: mail("controller"),
        };
        self.send(from, self.escrow, c.abi_encode(), U256::ZERO)
    }

    fn set_limits(&self, from: Address, a: AccountId, pp: u64, pd: u64) -> Receipt {
        let c = EmailEscrow::setLimits_6Call {
            account: a.0,
            perPayment: U48::from(pp),
            perDay: U48::from(pd),
        };
        self.send(from, self.escrow, c.abi_encode(), U256::ZERO)
    }

    fn account_deposit(
        &self,
        amount: u128,
        cancellable: bool,
        watcher: Address,
        label: &str,
    ) -> Deposit {
        Deposit {
            sender: self.escrow,
            token: Address::ZERO,
            amount,
            expiry: self.next_ts() + WEEK,
            flags: FROM_ACCOUNT | if cancellable { Deposit::CANCELLABLE } else { 0 },
            watcher,
            recipient: keccak256(format!("recipient commitment {label}")),
        }
    }

    fn pay(&self, from: Address, a: AccountId, k: Address, d: &Deposit, nonce: u32) -> Receipt {
        let c = EmailEscrow::payToEmail_3wqaCall {
            from: a.0,
            claimKey: k,
            d: d.to_sol(),
            nonce,
            mailHash: mail("pay"),
        };
        self.send(from, self.escrow, c.abi_encode(), U256::ZERO)
    }

    fn claim_into(
        &self,
        from: Address,
        k: &ClaimSecret,
        d: &Deposit,
        paid_from: Option<AccountId>,
        a: AccountId,
        fee: u128,
        nonce: u32,
    ) -> Receipt {
        let auth = ClaimIntoAuth {
            claim_key: k.address(),
            deposit_hash: paid_from.map_or_else(|| d.hash(), |p| funded_deposit_hash(d, p)),
            account: a,
            max_fee: fee,
            deadline: self.next_ts() + 3600,
        };
        let (r, vs) = compact(&auth.sign(self.id, k));
        let mut data = EmailEscrow::claimIntoAccount_195wCall {
            claimKey: k.address(),
            d: d.to_sol(),
            account: a.0,
            fee: U96::from(fee),
            maxFee: U96::from(fee),
            deadline: U40::from(auth.deadline),
            sigR: r,
            sigVS: vs,
            nonce,
            mailHash: mail("claim"),
        }
        .abi_encode();
        if let Some(p) = paid_from {
            data.extend_from_slice(p.0.as_slice());
        }
        self.send(from, self.escrow, data, U256::ZERO)
    }

    fn claim_from(
        &self,
        from: Address,
        k: &ClaimSecret,
        d: &Deposit,
        paid_from: AccountId,
        to: Address,
    ) -> Receipt {
        let auth = springmail_sdk::eip712::ClaimAuth {
            claim_key: k.address(),
            deposit_hash: funded_deposit_hash(d, paid_from),
            to,
            max_fee: 0,
            deadline: self.next_ts() + 3600,
        };
        let (r, vs) = compact(&auth.sign_claim(self.id, k));
        let c = EmailEscrow::claimFromAccount_fjvCall {
            from: paid_from.0,
            claimKey: k.address(),
            d: d.to_sol(),
            to,
            fee: U96::ZERO,
            maxFee: U96::ZERO,
            deadline: U40::from(auth.deadline),
            sigR: r,
            sigVS: vs,
        };
        self.send(from, self.escrow, c.abi_encode(), U256::ZERO)
    }

    fn refund_into(&self, from: Address, k: Address, d: &Deposit, paid_from: AccountId) -> Receipt {
        let mut data = EmailEscrow::refundCall {
            claimKey: k,
            d: d.to_sol(),
        }
        .abi_encode();
        data.extend_from_slice(paid_from.0.as_slice());
        self.send(from, self.escrow, Bytes::from(data), U256::ZERO)
    }

    fn funded(&self, a: AccountId, amount: u128, pp: u64, pd: u64) -> State {
        let c = self.watcher.address();
        self.chain.fund(c, U256::from(COIN));
        expect_ok(&self.create(c, a, c, pp, pd));
        if amount > 0 {
            let label = format!("fund {a}");
            let k = key(&format!("claim key {label}"));
            let mut d = self.deposit_fields(Asset::Native, true, &label);
            d.amount = amount;
            self.deposit(k.address(), &d);
            expect_ok(&self.claim_into(c, &k, &d, None, a, 0, 1));
        }
        self.state(a)
    }
}
