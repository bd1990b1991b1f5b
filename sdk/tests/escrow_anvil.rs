//! The escrow's main path over JSON-RPC on anvil (`--hardfork shanghai --chain-id 8890`,
//! at `SPRINGMAIL_ANVIL_URL`), through the SDK's evm-rpc backend: deploy, native deposits,
//! a claim in link mode (with a relayer fee), a claim in email mode, a refused second
//! claim with its custom error recovered from the node, a cancel by the sender and a
//! refund by a stranger after expiry. `scripts/test` starts anvil and runs it with
//! `--include-ignored`.
//!
//! Every actor is a fresh key funded with `anvil_setBalance`, and the test deploys its
//! own escrow, so it shares no nonce and no deposit with other suites on the same anvil.
//! It does not move anvil's clock (others rely on it): the expiry it waits for is a few
//! seconds of wall time away.

mod escrow_common;

use std::time::Duration;

use alloy::primitives::aliases::{U40, U96};
use alloy::primitives::{keccak256, Address, Bytes, B256, U256};
use alloy::providers::Provider;
use alloy::sol_types::{SolCall, SolEvent};
use escrow_common::{describe_revert, revert_error, ClaimArgs};
use springmail_sdk::chain::evm_rpc::EvmRpcChain;
use springmail_sdk::chain::{CallResult, Chain, LogFilter, Receipt, TxRequest, TxStatus};
use springmail_sdk::contract::EmailEscrow::{self as E, EmailEscrowErrors};
use springmail_sdk::deposit::Deposit;
use springmail_sdk::eip712::{self, ClaimAuth, EscrowId};
use springmail_sdk::keys::ClaimSecret;

const CHAIN_ID: u64 = 8890;
const NEEDS_ANVIL: &str = "needs anvil from the dev stack: run scripts/test";
const AMOUNT: u128 = 150_000_000;

fn anvil_url() -> String {
    std::env::var("SPRINGMAIL_ANVIL_URL").unwrap_or_else(|_| {
        panic!("SPRINGMAIL_ANVIL_URL is not set; {NEEDS_ANVIL} (or start anvil and export it)")
    })
}

async fn funded() -> EvmRpcChain {
    let chain = EvmRpcChain::connect(&anvil_url(), ClaimSecret::random().signer(), Some(CHAIN_ID))
        .await
        .expect("connect to anvil");
    let funds = U256::from(10u64).pow(U256::from(21u64));
    let _: serde_json::Value = chain
        .provider()
        .raw_request("anvil_setBalance".into(), (chain.account(), funds))
        .await
        .expect("anvil_setBalance");
    chain
}

async fn ok(chain: &EvmRpcChain, to: Option<Address>, data: Vec<u8>, value: U256) -> Receipt {
    let r = chain
        .send(TxRequest {
            to,
            data: data.into(),
            value,
            gas_limit: None,
        })
        .await
        .expect("the node takes the transaction");
    if let TxStatus::Reverted { data, message } = &r.status {
        panic!(
            "reverted: {:?} {message:?}",
            data.as_ref().map(|d| describe_revert(d))
        );
    }
    r
}

async fn view<C: SolCall>(chain: &EvmRpcChain, to: Address, call: C) -> C::Return {
    match chain
        .call(to, call.abi_encode().into())
        .await
        .expect("eth_call")
    {
        CallResult::Success(out) => C::abi_decode_returns(&out).expect("decodable"),
        CallResult::Reverted(d) => panic!("view reverted: {}", describe_revert(&d)),
    }
}

struct Anvil {
    sender: EvmRpcChain,
    relayer: EvmRpcChain,
    stranger: EvmRpcChain,
    escrow: Address,
    id: EscrowId,
    watcher: ClaimSecret,
}

impl Anvil {
    async fn new() -> Self {
        let (sender, relayer, stranger) = (funded().await, funded().await, funded().await);
        let r = ok(&sender, None, E::BYTECODE.to_vec(), U256::ZERO).await;
        let escrow = r.contract_address.expect("the escrow's address");
        Anvil {
            id: EscrowId {
                chain_id: CHAIN_ID,
                escrow,
            },
            sender,
            relayer,
            stranger,
            escrow,
            watcher: ClaimSecret::random(),
        }
    }

    async fn now(&self) -> u64 {
        self.sender.head().await.expect("head").timestamp
    }

    async fn deposit(&self, email: bool, expiry: u64) -> (ClaimSecret, Deposit) {
        let k = ClaimSecret::random();
        let d = Deposit {
            sender: self.sender.account(),
            token: Address::ZERO,
            amount: AMOUNT,
            expiry,
            flags: Deposit::CANCELLABLE,
            watcher: if email {
                self.watcher.address()
            } else {
                Address::ZERO
            },
            recipient: B256::from(rand::random::<[u8; 32]>()),
        };
        let call = E::depositCall {
            claimKey: k.address(),
            d: d.to_sol(),
        };
        let r = ok(
            &self.sender,
            Some(self.escrow),
            call.abi_encode(),
            U256::from(AMOUNT),
        )
        .await;
        // The Deposited log, read back through eth_getLogs by claim key, rebuilds the deposit.
        let filter = LogFilter {
            address: self.escrow,
            topics: vec![
                Some(E::Deposited::SIGNATURE_HASH),
                Some(k.address().into_word()),
            ],
            from_block: r.block_number,
            to_block: Some(r.block_number),
        };
        let logs = self.sender.logs(&filter).await.expect("eth_getLogs");
        assert_eq!(logs.len(), 1);
        let ev = E::Deposited::decode_log(&logs[0].log)
            .expect("a Deposited log")
            .data;
        assert_eq!(Deposit::from_sol(&ev.deposit), d);
        assert_eq!(ev.sender, self.sender.account());
        assert_eq!(
            keccak256(&logs[0].log.data.data),
            d.hash(),
            "the log data hashes to the stored hash"
        );
        assert_eq!(
            view(
                &self.sender,
                self.escrow,
                E::depositsCall {
                    claimKey: k.address()
                }
            )
            .await,
            d.hash()
        );
        (k, d)
    }

    async fn claim_args(&self, k: &ClaimSecret, d: &Deposit, to: Address, fee: u128) -> ClaimArgs {
        let auth = ClaimAuth {
            claim_key: k.address(),
            deposit_hash: d.hash(),
            to,
            max_fee: fee,
            deadline: self.now().await + 3600,
        };
        ClaimArgs {
            claim_key: k.address(),
            deposit: *d,
            to,
            fee,
            max_fee: fee,
            deadline: auth.deadline,
            link_sig: auth.sign_claim(self.id, k).to_bytes(),
            attestation: if d.is_link_mode() {
                Bytes::new()
            } else {
                auth.sign_attest(self.id, &self.watcher).to_bytes()
            },
        }
    }

    async fn balance(&self, who: Address) -> U256 {
        self.sender.balance(who).await.expect("eth_getBalance")
    }
}

#[tokio::test]
#[ignore = "needs anvil from the dev stack: run scripts/test"]
async fn escrow_main_path_over_json_rpc_on_anvil() {
    let a = Anvil::new().await;

    // The node computes the same domain and digests as the SDK (STYLE.md item 12, on a real node).
    let sep: B256 = view(&a.sender, a.escrow, E::domainSeparatorCall {}).await;
    assert_eq!(sep, eip712::domain(CHAIN_ID, a.escrow).separator());

    // Link mode: the relayer submits and takes a fee; a fresh address receives the rest.
    let now = a.now().await;
    let (k1, d1) = a.deposit(false, now + 7 * 24 * 3600).await;
    assert_eq!(a.balance(a.escrow).await, U256::from(AMOUNT));
    let bob = Address::from(rand::random::<[u8; 20]>());
    let args = a.claim_args(&k1, &d1, bob, 100_000).await;
    let digest: B256 = view(
        &a.sender,
        a.escrow,
        E::getClaimDigestCall {
            claimKey: args.claim_key,
            depositHash: d1.hash(),
            to: bob,
            maxFee: U96::from(args.max_fee),
            deadline: U40::from(args.deadline),
        },
    )
    .await;
    assert_eq!(digest, args.auth().claim_digest(a.id));
    let r = ok(
        &a.relayer,
        Some(a.escrow),
        args.calldata().to_vec(),
        U256::ZERO,
    )
    .await;
    let ev = E::Claimed::decode_log(&r.logs[0])
        .expect("a Claimed log")
        .data;
    assert_eq!(
        (ev.claimKey, ev.to, ev.amount, ev.fee, ev.relayer),
        (
            k1.address(),
            bob,
            U256::from(AMOUNT),
            U256::from(100_000),
            a.relayer.account()
        )
    );
    assert_eq!(a.balance(bob).await, U256::from(AMOUNT - 100_000));
    // v2: the fee accrues to the relayer inside the escrow.
    assert_eq!(a.balance(a.escrow).await, U256::from(100_000));
    let accrued: U256 = view(
        &a.sender,
        a.escrow,
        E::feesAccruedCall {
            relayer: a.relayer.account(),
            token: Address::ZERO,
        },
    )
    .await;
    assert_eq!(accrued, U256::from(100_000));

    // Email mode: the watcher attests; no fee.
    let (k2, d2) = a.deposit(true, now + 7 * 24 * 3600).await;
    let carol = Address::from(rand::random::<[u8; 20]>());
    let args = a.claim_args(&k2, &d2, carol, 0).await;
    let attest: B256 = view(
        &a.sender,
        a.escrow,
        E::getAttestHashCall {
            claimKey: k2.address(),
            depositHash: d2.hash(),
            to: carol,
            deadline: U40::from(args.deadline),
        },
    )
    .await;
    assert_eq!(attest, args.auth().attest_digest(a.id));
    ok(
        &a.relayer,
        Some(a.escrow),
        args.calldata().to_vec(),
        U256::ZERO,
    )
    .await;
    assert_eq!(a.balance(carol).await, U256::from(AMOUNT));

    // A second claim is refused; the backend recovers the custom error from the node.
    let tx = TxRequest {
        to: Some(a.escrow),
        data: args.calldata(),
        value: U256::ZERO,
        gas_limit: Some(300_000),
    };
    let r = a
        .relayer
        .send(tx)
        .await
        .expect("sent with a fixed gas limit");
    assert_eq!(
        revert_error(&r),
        EmailEscrowErrors::UnknownDeposit(E::UnknownDeposit {
            claimKey: k2.address(),
            depositHash: d2.hash()
        })
    );
    assert_eq!(a.balance(carol).await, U256::from(AMOUNT));

    // The sender cancels a CANCELLABLE deposit before expiry.
    let (k3, d3) = a.deposit(false, now + 7 * 24 * 3600).await;
    let r = ok(
        &a.sender,
        Some(a.escrow),
        E::refundCall {
            claimKey: k3.address(),
            d: d3.to_sol(),
        }
        .abi_encode(),
        U256::ZERO,
    )
    .await;
    let ev = E::Refunded::decode_log(&r.logs[0])
        .expect("a Refunded log")
        .data;
    assert_eq!(
        (ev.claimKey, ev.sender, ev.amount),
        (k3.address(), a.sender.account(), U256::from(AMOUNT))
    );
    assert_eq!(
        view(
            &a.sender,
            a.escrow,
            E::depositsCall {
                claimKey: k3.address()
            }
        )
        .await,
        B256::ZERO
    );

    // Anyone returns an expired deposit to its sender: wait out a 3-second expiry.
    let expiry = a.now().await.max(now) + 3;
    let (k4, d4) = a.deposit(false, expiry).await;
    while a.now().await < expiry {
        tokio::time::sleep(Duration::from_millis(500)).await;
        // anvil mines on demand; a block from a throwaway transfer moves its clock.
        let poke = TxRequest {
            to: Some(a.stranger.account()),
            value: U256::from(1),
            ..Default::default()
        };
        a.relayer.send(poke).await.expect("a transfer");
    }
    let sender_before = a.balance(a.sender.account()).await;
    let refund = E::refundCall {
        claimKey: k4.address(),
        d: d4.to_sol(),
    };
    ok(&a.stranger, Some(a.escrow), refund.abi_encode(), U256::ZERO).await;
    assert_eq!(
        a.balance(a.sender.account()).await,
        sender_before + U256::from(AMOUNT),
        "the sender got it back"
    );
    assert_eq!(
        a.balance(a.escrow).await,
        U256::from(100_000),
        "only the fee is left"
    );

    // The relayer withdraws its fee, in one transfer, to a fresh address.
    let payee = Address::from(rand::random::<[u8; 20]>());
    let r = ok(
        &a.relayer,
        Some(a.escrow),
        E::withdrawFeesCall {
            token: Address::ZERO,
            to: payee,
        }
        .abi_encode(),
        U256::ZERO,
    )
    .await;
    let ev = E::FeesWithdrawn::decode_log(&r.logs[0])
        .expect("a FeesWithdrawn log")
        .data;
    assert_eq!(
        (ev.relayer, ev.token, ev.to, ev.amount),
        (
            a.relayer.account(),
            Address::ZERO,
            payee,
            U256::from(100_000)
        )
    );
    assert_eq!(a.balance(payee).await, U256::from(100_000));
    assert_eq!(a.balance(a.escrow).await, U256::ZERO);
}
