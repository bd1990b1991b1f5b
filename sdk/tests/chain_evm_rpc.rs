//! The evm-rpc backend against anvil from the dev stack (`--hardfork shanghai
//! --chain-id 8890`), at `SPRINGMAIL_ANVIL_URL`. `scripts/test` starts it and runs these
//! with `--include-ignored`. Each test uses a fresh key, funded with `anvil_setBalance`,
//! and deploys its own escrow, so tests (and other suites on the same anvil) never share
//! a nonce or a deposit slot.

use std::time::Duration;

use alloy::primitives::aliases::{U40, U96};
use alloy::primitives::{keccak256, Address, B256, U256};
use alloy::providers::Provider;
use alloy::signers::local::PrivateKeySigner;
use alloy::sol_types::{SolCall, SolEvent, SolInterface};
use springmail_sdk::chain::evm_rpc::EvmRpcChain;
use springmail_sdk::chain::{CallResult, Chain, ChainError, LogFilter, TxRequest, TxStatus};
use springmail_sdk::contract::EmailEscrow::{self, EmailEscrowErrors};

const CHAIN_ID: u64 = 8890;
const NEEDS_ANVIL: &str = "needs anvil from the dev stack: run scripts/test";

fn anvil_url() -> String {
    std::env::var("SPRINGMAIL_ANVIL_URL").unwrap_or_else(|_| {
        panic!("SPRINGMAIL_ANVIL_URL is not set; {NEEDS_ANVIL} (or start anvil and export it)")
    })
}

/// A handle for a fresh key holding 1000 ETH-units.
async fn funded_chain() -> EvmRpcChain {
    funded(PrivateKeySigner::random()).await
}

/// A handle for `signer`, funded with 1000 ETH-units.
async fn funded(signer: PrivateKeySigner) -> EvmRpcChain {
    let chain = EvmRpcChain::connect(&anvil_url(), signer, Some(CHAIN_ID))
        .await
        .expect("connect to anvil");
    let amount = U256::from(1000u64) * U256::from(10u64).pow(U256::from(18u64));
    let _: serde_json::Value = chain
        .provider()
        .raw_request("anvil_setBalance".into(), (chain.account(), amount))
        .await
        .expect("anvil_setBalance");
    chain
}

async fn deploy_escrow(chain: &EvmRpcChain) -> Address {
    let tx = TxRequest {
        to: None,
        data: EmailEscrow::BYTECODE.clone(),
        ..Default::default()
    };
    let r = chain.send(tx).await.expect("deploy");
    assert!(r.succeeded(), "{r:?}");
    r.contract_address.expect("a create has a contract address")
}

fn claim_key(i: u64) -> Address {
    Address::from_slice(&keccak256(format!("evm-rpc test claim key {i}"))[12..])
}

fn deposit_tx(
    chain: &EvmRpcChain,
    escrow: Address,
    claim_key: Address,
    amount: u64,
    now: u64,
) -> TxRequest {
    let d = EmailEscrow::Deposit {
        sender: chain.account(),
        token: Address::ZERO,
        amount: U96::from(amount),
        expiry: U40::from(now + 7 * 24 * 3600),
        flags: 0,
        watcher: Address::ZERO,
        recipient: keccak256(b"evm-rpc test recipient"),
    };
    let data = EmailEscrow::depositCall {
        claimKey: claim_key,
        d,
    }
    .abi_encode();
    TxRequest {
        to: Some(escrow),
        data: data.into(),
        value: U256::from(amount),
        gas_limit: None,
    }
}

#[tokio::test]
#[ignore = "needs anvil from the dev stack: run scripts/test"]
async fn deploys_reads_and_describes_the_chain() {
    let chain = funded_chain().await;
    assert_eq!(chain.chain_id(), CHAIN_ID);
    let d = chain.describe();
    assert!(
        d.starts_with("EVM JSON-RPC at ") && d.ends_with("(chain id 8890)"),
        "{d}"
    );
    let before = chain.balance(chain.account()).await.unwrap();

    let escrow = deploy_escrow(&chain).await;
    let head = chain.head().await.unwrap();
    assert!(
        head.number >= 1 && head.timestamp > 1_600_000_000,
        "{head:?}"
    );
    let spent = before - chain.balance(chain.account()).await.unwrap();
    assert!(spent > U256::ZERO, "the deploy paid gas");

    let out = chain
        .call(
            escrow,
            EmailEscrow::domainSeparatorCall {}.abi_encode().into(),
        )
        .await
        .unwrap();
    let CallResult::Success(out) = out else {
        panic!("{out:?}")
    };
    let sep = EmailEscrow::domainSeparatorCall::abi_decode_returns(&out).unwrap();
    assert_ne!(sep, B256::ZERO);
}

#[tokio::test]
#[ignore = "needs anvil from the dev stack: run scripts/test"]
async fn a_reverted_transaction_carries_its_custom_error() {
    let chain = funded_chain().await;
    let escrow = deploy_escrow(&chain).await;
    let now = chain.head().await.unwrap().timestamp;
    // Claim key zero: ZeroClaimKey().
    let mut tx = deposit_tx(&chain, escrow, Address::ZERO, 1000, now);

    // A read says so without a transaction.
    let CallResult::Reverted(data) = chain.call(escrow, tx.data.clone()).await.unwrap() else {
        panic!()
    };
    assert!(matches!(
        EmailEscrowErrors::abi_decode(&data).unwrap(),
        EmailEscrowErrors::ZeroClaimKey(_)
    ));

    // Without a gas limit the estimate fails and nothing is sent (nor a nonce used).
    let nonce = chain.next_nonce().await;
    let err = chain.submit(tx.clone()).await.unwrap_err();
    assert!(!err.is_transient(), "{err}");
    let ChainError::Rpc {
        method, message, ..
    } = &err
    else {
        panic!("{err:?}")
    };
    assert_eq!(method, "eth_estimateGas");
    assert!(message.contains("revert"), "{message}");
    assert_eq!(chain.next_nonce().await, nonce);

    // With a gas limit it is mined, reverts, and the receipt has the replayed revert data.
    tx.gas_limit = Some(200_000);
    let r = chain.send(tx).await.unwrap();
    let TxStatus::Reverted {
        data: Some(data),
        message,
    } = &r.status
    else {
        panic!("{r:?}")
    };
    assert!(matches!(
        EmailEscrowErrors::abi_decode(data).unwrap(),
        EmailEscrowErrors::ZeroClaimKey(_)
    ));
    // The escrow's custom error is decoded from its ABI into words (issue 12 item 12).
    assert_eq!(
        message.as_deref(),
        Some("the claim key is the zero address"),
        "a custom error reads as a sentence, not a selector"
    );
    assert!(r.logs.is_empty());
    assert!(r.gas_used > 21_000 && r.gas_used < 200_000);
}

#[tokio::test]
#[ignore = "needs anvil from the dev stack: run scripts/test"]
async fn logs_are_read_in_bounded_ranges() {
    let chain = funded_chain().await;
    let escrow = deploy_escrow(&chain).await;
    let now = chain.head().await.unwrap().timestamp;
    let first = chain.head().await.unwrap().number + 1;
    let mut blocks = Vec::new();
    for i in 0..5 {
        let r = chain
            .send(deposit_tx(&chain, escrow, claim_key(i), 1000 + i, now))
            .await
            .unwrap();
        assert!(r.succeeded(), "{r:?}");
        blocks.push(r.block_number);
    }
    let last = *blocks.last().unwrap();
    let all = LogFilter {
        address: escrow,
        topics: vec![Some(EmailEscrow::Deposited::SIGNATURE_HASH)],
        from_block: first,
        to_block: None,
    };
    let whole = chain.logs(&all).await.unwrap();
    assert_eq!(whole.len(), 5);
    assert_eq!(
        whole.iter().map(|l| l.block_number).collect::<Vec<_>>(),
        blocks
    );
    for (i, l) in whole.iter().enumerate() {
        let ev = EmailEscrow::Deposited::decode_log_data(&l.log.data).unwrap();
        assert_eq!(ev.claimKey, claim_key(i as u64));
        assert_eq!(ev.sender, chain.account());
        assert_eq!(ev.deposit.amount, U96::from(1000 + i as u64));
    }

    // The same logs in ranges of one and two blocks.
    let url = anvil_url();
    for chunk in [1, 2] {
        let signer = PrivateKeySigner::random();
        let small = EvmRpcChain::connect(&url, signer, Some(CHAIN_ID))
            .await
            .unwrap()
            .with_log_chunk(chunk);
        let got = small
            .logs(&LogFilter {
                to_block: Some(last),
                ..all.clone()
            })
            .await
            .unwrap();
        assert_eq!(got, whole, "chunk {chunk}");
    }

    // A positional topic filter with a wildcard: topic 1 is the claim key.
    let third = LogFilter {
        topics: vec![None, Some(claim_key(2).into_word())],
        ..all.clone()
    };
    let got = chain.logs(&third).await.unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].block_number, blocks[2]);

    // A bounded range.
    let middle = LogFilter {
        from_block: blocks[1],
        to_block: Some(blocks[3]),
        ..all
    };
    assert_eq!(chain.logs(&middle).await.unwrap().len(), 3);
}

#[tokio::test]
#[ignore = "needs anvil from the dev stack: run scripts/test"]
async fn ten_submits_in_a_row_use_consecutive_nonces() {
    let chain = funded_chain().await;
    let escrow = deploy_escrow(&chain).await;
    let now = chain.head().await.unwrap().timestamp;
    let start = chain
        .next_nonce()
        .await
        .expect("the deploy fetched the nonce");
    let mut hashes = Vec::new();
    for i in 0..10 {
        hashes.push(
            chain
                .submit(deposit_tx(&chain, escrow, claim_key(100 + i), 500, now))
                .await
                .unwrap(),
        );
    }
    assert_eq!(chain.next_nonce().await, Some(start + 10));
    for (i, h) in hashes.iter().enumerate() {
        let r = chain.wait(*h, Duration::from_secs(30)).await.unwrap();
        assert!(r.succeeded(), "{r:?}");
        let tx = chain
            .provider()
            .get_transaction_by_hash(*h)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(alloy::consensus::Transaction::nonce(&tx), start + i as u64);
    }
    assert_eq!(chain.balance(escrow).await.unwrap(), U256::from(5000u64));
}

#[tokio::test]
#[ignore = "needs anvil from the dev stack: run scripts/test"]
async fn another_sender_on_the_same_key_costs_one_retry() {
    let signer = PrivateKeySigner::random();
    let a = funded(signer.clone()).await;
    let escrow = deploy_escrow(&a).await;
    let now = a.head().await.unwrap().timestamp;
    // B shares A's key and takes the nonce A has cached.
    let b = EvmRpcChain::connect(&anvil_url(), signer, Some(CHAIN_ID))
        .await
        .unwrap();
    let cached = a.next_nonce().await.unwrap();
    let rb = b
        .send(deposit_tx(&b, escrow, claim_key(200), 700, now))
        .await
        .unwrap();
    assert!(rb.succeeded());
    // A's cached nonce is now used: "nonce too low", refetch, retry once.
    let ra = a
        .send(deposit_tx(&a, escrow, claim_key(201), 700, now))
        .await
        .unwrap();
    assert!(ra.succeeded(), "{ra:?}");
    assert_eq!(a.next_nonce().await, Some(cached + 2));

    a.reset_nonce().await;
    assert_eq!(a.next_nonce().await, None);
    let r = a
        .send(deposit_tx(&a, escrow, claim_key(202), 700, now))
        .await
        .unwrap();
    assert!(r.succeeded());
    assert_eq!(a.next_nonce().await, Some(cached + 3));
}

#[tokio::test]
#[ignore = "needs anvil from the dev stack: run scripts/test"]
async fn a_wrong_chain_id_is_refused() {
    let err = EvmRpcChain::connect(&anvil_url(), PrivateKeySigner::random(), Some(81))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            ChainError::ChainIdMismatch {
                expected: 81,
                got: CHAIN_ID
            }
        ),
        "{err:?}"
    );
    assert!(!err.is_transient());
}

#[tokio::test]
async fn an_unreachable_node_is_transient() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let err = EvmRpcChain::connect(&url, PrivateKeySigner::random(), None)
        .await
        .unwrap_err();
    assert!(matches!(err, ChainError::Unreachable { .. }), "{err:?}");
    assert!(err.is_transient());
}
