//! Shared fixtures for the `escrow_*` contract tests on the embedded chain.
//!
//! Every helper is synchronous: the embedded chain mines each transaction at once, so
//! the futures of the `Chain` trait are driven to completion on a per-thread runtime.
//! Each transaction is a block of its own whose timestamp is the previous one plus one
//! second (plus any `advance_time`), so [`World::next_ts`] is the `block.timestamp` the
//! next transaction runs at.
#![allow(dead_code)]

use std::future::Future;

use alloy::primitives::aliases::{U40, U96};
use alloy::primitives::{keccak256, Address, Bytes, B256, U256};
use alloy::sol_types::{SolCall, SolConstructor, SolEvent, SolInterface};
use springmail_sdk::chain::embedded::EmbeddedChain;
use springmail_sdk::chain::{CallResult, Chain, Receipt, TxRequest, TxStatus};
use springmail_sdk::contract::testing::TestToken;
use springmail_sdk::contract::EmailEscrow::{self, EmailEscrowErrors};
use springmail_sdk::deposit::Deposit;
use springmail_sdk::eip712::{ClaimAuth, EscrowId};
use springmail_sdk::keys::{ClaimSecret, Signature};

/// Qtum regtest's chain id, which the dev stack's anvil also uses.
pub const CHAIN_ID: u64 = 8890;
/// The embedded chain's genesis timestamp in these tests (2025-10-09).
pub const GENESIS: u64 = 1_760_000_000;
/// One QTUM in satoshi.
pub const COIN: u128 = 100_000_000;
/// How long a test deposit stays claimable.
pub const WEEK: u64 = 7 * 24 * 3600;

thread_local! {
    static RT: tokio::runtime::Runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a current-thread tokio runtime");
}

/// Runs a future of the `Chain` trait to completion.
pub fn block_on<F: Future>(f: F) -> F::Output {
    RT.with(|rt| rt.block_on(f))
}

/// An address from a label, so failures name who is who.
pub fn actor(label: &str) -> Address {
    Address::from_slice(&keccak256(format!("springmail test actor {label}"))[12..])
}

/// A key derived from a label (claim keys, watcher keys, multisig owners).
pub fn key(label: &str) -> ClaimSecret {
    ClaimSecret::from_bytes(keccak256(format!("springmail test key {label}")).0)
        .expect("a keccak output is a valid secret with overwhelming probability")
}

/// Which asset a deposit holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Asset {
    Native,
    Token(Address),
}

impl Asset {
    pub fn address(self) -> Address {
        match self {
            Asset::Native => Address::ZERO,
            Asset::Token(t) => t,
        }
    }
}

/// Everything a `claim` call takes, so tests can build a valid claim and then spoil one part.
#[derive(Debug, Clone)]
pub struct ClaimArgs {
    pub claim_key: Address,
    pub deposit: Deposit,
    pub to: Address,
    pub fee: u128,
    pub max_fee: u128,
    pub deadline: u64,
    pub link_sig: Bytes,
    pub attestation: Bytes,
}

impl ClaimArgs {
    /// The entry of a `claimBatch` these arguments make.
    pub fn to_sol(&self) -> EmailEscrow::ClaimArgs {
        EmailEscrow::ClaimArgs {
            claimKey: self.claim_key,
            d: self.deposit.to_sol(),
            to: self.to,
            fee: U96::from(self.fee),
            maxFee: U96::from(self.max_fee),
            deadline: U40::from(self.deadline),
            linkSig: self.link_sig.clone(),
            attestation: self.attestation.clone(),
        }
    }

    pub fn calldata(&self) -> Bytes {
        EmailEscrow::claimCall {
            claimKey: self.claim_key,
            d: self.deposit.to_sol(),
            to: self.to,
            fee: U96::from(self.fee),
            maxFee: U96::from(self.max_fee),
            deadline: U40::from(self.deadline),
            linkSig: self.link_sig.clone(),
            attestation: self.attestation.clone(),
        }
        .abi_encode()
        .into()
    }

    /// The claim key's authorization these arguments carry.
    pub fn auth(&self) -> ClaimAuth {
        ClaimAuth {
            claim_key: self.claim_key,
            deposit_hash: self.deposit.hash(),
            to: self.to,
            max_fee: self.max_fee,
            deadline: self.deadline,
        }
    }
}

/// A deployed escrow on a fresh embedded chain, with funded actors and a test token.
pub struct World {
    pub chain: EmbeddedChain,
    pub escrow: Address,
    pub id: EscrowId,
    /// Pays into the escrow; holds native coin and `token` (approved to the escrow for uint max).
    pub sender: Address,
    /// Submits claims and takes the fee.
    pub relayer: Address,
    /// Anyone else.
    pub stranger: Address,
    /// The deposits' watcher in email mode (an EOA key).
    pub watcher: ClaimSecret,
    /// A plain ERC-20.
    pub token: Address,
}

/// What the sender starts with, of the native coin and of the token.
pub const START_BALANCE: u128 = 1_000_000 * COIN;

/// The deployer of the escrow: anvil's dev account 0, so that on a fresh chain the
/// escrow lands at the same address as on a fresh anvil (0x5FbDB231…).
pub const DEPLOYER: Address =
    alloy::primitives::address!("f39Fd6e51aad88F6F4ce6aB8827279cffFb92266");

impl World {
    pub fn new() -> Self {
        Self::on_chain(CHAIN_ID)
    }

    pub fn on_chain(chain_id: u64) -> Self {
        let chain = EmbeddedChain::with_genesis_time(chain_id, GENESIS);
        let sender = actor("sender");
        chain.fund(sender, U256::from(START_BALANCE));
        chain.fund(DEPLOYER, U256::from(START_BALANCE));
        let escrow = deploy(&chain, DEPLOYER, escrow_init_code());
        let token = deploy_token(&chain, DEPLOYER, "Test", "TST");
        let world = World {
            id: EscrowId { chain_id, escrow },
            chain,
            escrow,
            sender,
            relayer: actor("relayer"),
            stranger: actor("stranger"),
            watcher: key("watcher"),
            token,
        };
        world.mint_and_approve(token, sender, U256::from(START_BALANCE));
        world
    }

    /// Mints `amount` of a TestToken-like token to `who` and approves the escrow for uint max.
    pub fn mint_and_approve(&self, token: Address, who: Address, amount: U256) {
        expect_ok(&self.send(
            DEPLOYER,
            token,
            TestToken::mintCall { to: who, amount }.abi_encode(),
            U256::ZERO,
        ));
        let approve = TestToken::approveCall {
            spender: self.escrow,
            amount: U256::MAX,
        };
        expect_ok(&self.send(who, token, approve.abi_encode(), U256::ZERO));
    }

    /// Sends a transaction from `from`.
    pub fn send(&self, from: Address, to: Address, data: impl Into<Bytes>, value: U256) -> Receipt {
        let tx = TxRequest {
            to: Some(to),
            data: data.into(),
            value,
            gas_limit: None,
        };
        block_on(self.chain.as_account(from).send(tx))
            .expect("the embedded chain accepts the transaction")
    }

    /// A read-only call that must succeed, decoded.
    pub fn view<C: SolCall>(&self, to: Address, call: C) -> C::Return {
        match block_on(self.chain.call(to, call.abi_encode().into())).expect("call") {
            CallResult::Success(out) => C::abi_decode_returns(&out).expect("decodable return data"),
            CallResult::Reverted(data) => panic!("view call reverted: {}", describe_revert(&data)),
        }
    }

    /// A read-only call from `from`, as a dry run of a transaction (nothing is committed).
    pub fn simulate(&self, from: Address, to: Address, data: impl Into<Bytes>) -> CallResult {
        block_on(self.chain.as_account(from).call(to, data.into())).expect("call")
    }

    /// The `block.timestamp` the next transaction runs at.
    pub fn next_ts(&self) -> u64 {
        block_on(self.chain.head()).expect("head").timestamp + 1
    }

    /// Moves the clock so that the next transaction runs at exactly `ts`.
    pub fn next_tx_at(&self, ts: u64) {
        let next = self.next_ts();
        assert!(ts >= next, "cannot move the clock back from {next} to {ts}");
        self.chain.advance_time(ts - next);
    }

    /// Native or token balance.
    pub fn balance(&self, asset: Asset, who: Address) -> U256 {
        match asset {
            Asset::Native => block_on(self.chain.balance(who)).expect("balance"),
            Asset::Token(t) => block_on(self.chain.token_balance(t, who)).expect("token balance"),
        }
    }

    /// The stored hash under a claim key (zero when no deposit is open).
    pub fn slot(&self, claim_key: Address) -> B256 {
        self.view(
            self.escrow,
            EmailEscrow::depositsCall {
                claimKey: claim_key,
            },
        )
    }

    /// A realistic deposit from `self.sender`: 1.5 units, a week, cancellable, with a
    /// random-looking recipient commitment; email mode when `email` is set.
    pub fn deposit_fields(&self, asset: Asset, email: bool, label: &str) -> Deposit {
        Deposit {
            sender: self.sender,
            token: asset.address(),
            amount: 150_000_000,
            expiry: self.next_ts() + WEEK,
            flags: Deposit::CANCELLABLE,
            watcher: if email {
                self.watcher.address()
            } else {
                Address::ZERO
            },
            recipient: keccak256(format!("recipient commitment {label}")),
        }
    }

    /// Sends `deposit(claimKey, d)` from `from` with `value`.
    pub fn deposit_raw(
        &self,
        from: Address,
        claim_key: Address,
        d: &Deposit,
        value: U256,
    ) -> Receipt {
        let call = EmailEscrow::depositCall {
            claimKey: claim_key,
            d: d.to_sol(),
        };
        self.send(from, self.escrow, call.abi_encode(), value)
    }

    /// Sends `deposit` from `d.sender` with the right value, expecting success.
    pub fn deposit(&self, claim_key: Address, d: &Deposit) -> Receipt {
        let value = if d.is_native() {
            U256::from(d.amount)
        } else {
            U256::ZERO
        };
        let r = self.deposit_raw(d.sender, claim_key, d, value);
        expect_ok(&r);
        r
    }

    /// A fresh claim key and an open deposit for it.
    pub fn open(&self, asset: Asset, email: bool, label: &str) -> (ClaimSecret, Deposit) {
        let k = key(&format!("claim key {label}"));
        let d = self.deposit_fields(asset, email, label);
        self.deposit(k.address(), &d);
        (k, d)
    }

    /// Valid claim arguments: signed by the claim key, attested by `self.watcher` when
    /// the deposit has a watcher, deadline an hour ahead.
    pub fn claim_args(
        &self,
        k: &ClaimSecret,
        d: &Deposit,
        to: Address,
        fee: u128,
        max_fee: u128,
    ) -> ClaimArgs {
        let mut args = ClaimArgs {
            claim_key: k.address(),
            deposit: *d,
            to,
            fee,
            max_fee,
            deadline: self.next_ts() + 3600,
            link_sig: Bytes::new(),
            attestation: Bytes::new(),
        };
        self.sign(&mut args, k);
        args
    }

    /// (Re)signs the claim with `k` and, in email mode, attests it with `self.watcher`.
    pub fn sign(&self, args: &mut ClaimArgs, k: &ClaimSecret) {
        let auth = args.auth();
        args.link_sig = auth.sign_claim(self.id, k).to_bytes();
        args.attestation = if args.deposit.is_link_mode() {
            Bytes::new()
        } else {
            auth.sign_attest(self.id, &self.watcher).to_bytes()
        };
    }

    pub fn claim(&self, from: Address, args: &ClaimArgs) -> Receipt {
        self.send(from, self.escrow, args.calldata(), U256::ZERO)
    }

    /// `claimBatch` of these claims, sent by `from`.
    pub fn claim_batch(&self, from: Address, claims: &[ClaimArgs]) -> Receipt {
        let call = EmailEscrow::claimBatchCall {
            claims: claims.iter().map(ClaimArgs::to_sol).collect(),
        };
        self.send(from, self.escrow, call.abi_encode(), U256::ZERO)
    }

    /// The fees `relayer` has accrued in `asset` and not withdrawn.
    pub fn fees(&self, relayer: Address, asset: Asset) -> U256 {
        self.view(
            self.escrow,
            EmailEscrow::feesAccruedCall {
                relayer,
                token: asset.address(),
            },
        )
    }

    /// `withdrawFees(asset, to)` sent by `from`.
    pub fn withdraw_fees(&self, from: Address, asset: Asset, to: Address) -> Receipt {
        let call = EmailEscrow::withdrawFeesCall {
            token: asset.address(),
            to,
        };
        self.send(from, self.escrow, call.abi_encode(), U256::ZERO)
    }

    pub fn refund(&self, from: Address, claim_key: Address, d: &Deposit) -> Receipt {
        let call = EmailEscrow::refundCall {
            claimKey: claim_key,
            d: d.to_sol(),
        };
        self.send(from, self.escrow, call.abi_encode(), U256::ZERO)
    }

    /// Balances of `who` (and the escrow) in both assets, to show that a refusal moved nothing.
    pub fn snapshot(&self, who: &[Address]) -> Vec<(Address, U256, U256)> {
        let mut all = who.to_vec();
        all.push(self.escrow);
        all.iter()
            .map(|&a| {
                (
                    a,
                    self.balance(Asset::Native, a),
                    self.balance(Asset::Token(self.token), a),
                )
            })
            .collect()
    }
}

impl Default for World {
    fn default() -> Self {
        Self::new()
    }
}

/// The escrow's init code: the committed artifact, or the hex in the file named by
/// `SPRINGMAIL_ESCROW_INIT_CODE`, to run the embedded suites against another build of the
/// contract with the same ABI (a candidate gas optimization, or a deliberately broken
/// mutant to show that the suites notice).
pub fn escrow_init_code() -> Vec<u8> {
    match std::env::var_os("SPRINGMAIL_ESCROW_INIT_CODE") {
        None => EmailEscrow::BYTECODE.to_vec(),
        Some(path) => {
            let text = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("SPRINGMAIL_ESCROW_INIT_CODE {path:?}: {e}"));
            let text = text.trim();
            hex::decode(text.strip_prefix("0x").unwrap_or(text))
                .unwrap_or_else(|e| panic!("SPRINGMAIL_ESCROW_INIT_CODE {path:?} is not hex: {e}"))
        }
    }
}

/// Deploys init code from `from` and returns the new contract's address.
pub fn deploy(chain: &EmbeddedChain, from: Address, init_code: Vec<u8>) -> Address {
    let tx = TxRequest {
        to: None,
        data: init_code.into(),
        value: U256::ZERO,
        gas_limit: None,
    };
    let r = block_on(chain.as_account(from).send(tx)).expect("deploy");
    expect_ok(&r);
    r.contract_address
        .expect("a create receipt has the contract address")
}

/// Deploys a TestToken with 8 decimals.
pub fn deploy_token(chain: &EmbeddedChain, from: Address, name: &str, symbol: &str) -> Address {
    let mut code = TestToken::BYTECODE.to_vec();
    code.extend(
        TestToken::constructorCall {
            name_: name.into(),
            symbol_: symbol.into(),
            decimals_: 8,
        }
        .abi_encode(),
    );
    deploy(chain, from, code)
}

/// Init code with constructor arguments.
pub fn init_code<C: SolConstructor>(bytecode: &Bytes, args: &C) -> Vec<u8> {
    let mut code = bytecode.to_vec();
    code.extend(args.abi_encode());
    code
}

/// Revert data as the escrow's custom error, or a readable description.
pub fn describe_revert(data: &[u8]) -> String {
    match EmailEscrowErrors::abi_decode(data) {
        Ok(e) => format!("{e:?}"),
        Err(_) => format!("undecodable revert data 0x{}", hex::encode(data)),
    }
}

/// Panics with the decoded revert reason unless the transaction succeeded.
pub fn expect_ok(r: &Receipt) {
    if let TxStatus::Reverted { data, message } = &r.status {
        let why = data
            .as_ref()
            .map(|d| describe_revert(d))
            .or(message.clone())
            .unwrap_or_default();
        panic!("transaction reverted: {why}");
    }
}

/// The revert data of a failed transaction; panics if it succeeded.
pub fn revert_data(r: &Receipt) -> Bytes {
    match &r.status {
        TxStatus::Success => panic!(
            "expected a revert, but the transaction succeeded (logs: {:?})",
            r.logs
        ),
        TxStatus::Reverted { data, message } => data
            .clone()
            .unwrap_or_else(|| panic!("revert without data ({message:?})")),
    }
}

/// The escrow's custom error a transaction reverted with.
pub fn revert_error(r: &Receipt) -> EmailEscrowErrors {
    let data = revert_data(r);
    EmailEscrowErrors::abi_decode(&data).unwrap_or_else(|e| {
        panic!(
            "revert data 0x{} is no EmailEscrow error: {e}",
            hex::encode(&data)
        )
    })
}

/// The single log of event `E` in a receipt.
pub fn event<E: SolEvent>(r: &Receipt) -> E {
    let found: Vec<E> = r
        .logs
        .iter()
        .filter(|l| l.topics().first() == Some(&E::SIGNATURE_HASH))
        .map(|l| E::decode_log(l).expect("decodable event").data)
        .collect();
    assert_eq!(
        found.len(),
        1,
        "expected exactly one {} event, got {}",
        E::SIGNATURE,
        found.len()
    );
    found.into_iter().next().unwrap()
}

/// The high-s twin of a signature: same signer, s' = n - s, v flipped.
pub fn high_s_twin(sig: &Signature) -> Signature {
    let n = springmail_sdk::keys::SECP256K1_HALF_N * U256::from(2) + U256::from(1);
    let s = U256::from_be_slice(&sig.0[32..64]);
    let mut twin = sig.0;
    twin[32..64].copy_from_slice(&(n - s).to_be_bytes::<32>());
    twin[64] = if sig.0[64] == 27 { 28 } else { 27 };
    Signature(twin)
}
