//! The qtum backend's local signer (`signer = "local"`) against a qtumd that has no wallet
//! at all (`-disablewallet`): every transaction is built and signed in Rust and sent with
//! `sendrawtransaction`. The test starts its own regtest node on a free loopback port in a
//! temp datadir, mines 2,100 blocks to the local key's address (coinbase matures after
//! 2,000), deploys the escrow, deposits 1.5 QTUM and claims it to a fresh P2PKH address,
//! then stops the node by its PID.
//!
//! qtumd comes from `$SPRINGMAIL_QTUMD`, then PATH, then the tarball
//! `../shared/qtum/bin/qtum-v27.1-linux-x86_64.tar.xz` (or `$SPRINGMAIL_QTUM_TARBALL`).
//! Run: `cargo test -p springmail-e2e --test qtum_local_signer -- --ignored --nocapture`.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use alloy::primitives::{Address, U256};
use serde_json::{json, Value};
use springmail_sdk::amount::{Amount, Asset};
use springmail_sdk::chain::qtum::{QtumChain, QtumConfig};
use springmail_sdk::chain::{Chain, ChainError};
use springmail_sdk::client::{ClientError, DepositStatus, SendRequest, SpringMail};
use springmail_sdk::keys::ClaimSecret;
use springmail_sdk::qtum::{qtum_address_of_secret, qtum_sender_of_secret, QtumNetwork};

const TARBALL: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../shared/qtum/bin/qtum-v27.1-linux-x86_64.tar.xz"
);

/// qtumd: `$SPRINGMAIL_QTUMD`, PATH, or unpacked from the tarball into `scratch`.
fn qtumd(scratch: &Path) -> PathBuf {
    if let Ok(p) = std::env::var("SPRINGMAIL_QTUMD") {
        return PathBuf::from(p);
    }
    if let Ok(path) = std::env::var("PATH") {
        for dir in std::env::split_paths(&path) {
            let p = dir.join("qtumd");
            if p.is_file() {
                return p;
            }
        }
    }
    let tarball = std::env::var("SPRINGMAIL_QTUM_TARBALL").unwrap_or_else(|_| TARBALL.into());
    let bin = scratch.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let st = Command::new("tar")
        .args(["-xJf", &tarball, "-C"])
        .arg(&bin)
        .status()
        .expect("tar runs");
    assert!(
        st.success(),
        "no qtumd: set SPRINGMAIL_QTUMD, put qtumd on PATH, or provide {tarball}"
    );
    bin.join("qtumd")
}

/// A regtest qtumd without a wallet, stopped (by PID) when dropped.
struct Node {
    child: Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Node {
    fn start() -> Node {
        Node::start_with(&["-disablewallet", "-addrindex"])
    }

    fn start_with(extra: &[&str]) -> Node {
        let dir = tempfile::tempdir().unwrap();
        let exe = qtumd(dir.path());
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data).unwrap();
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(&exe)
            .args([
                "-regtest",
                "-server",
                "-logevents",
                "-txindex",
                "-staking=0",
                "-rpcuser=u",
                "-rpcpassword=p",
                "-rpcbind=127.0.0.1",
                "-rpcallowip=127.0.0.1",
                "-listen=0",
                "-dnsseed=0",
                "-connect=0",
                "-discover=0",
            ])
            .args(extra)
            .arg(format!("-rpcport={port}"))
            .arg(format!("-datadir={}", data.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", exe.display()));
        Node {
            child,
            url: format!("http://127.0.0.1:{port}"),
            _dir: dir,
        }
    }

    fn config(&self, key: &ClaimSecret) -> QtumConfig {
        QtumConfig::new(&self.url, "u", "p", "")
            .local_key(key.clone())
            .expect_chain_id(8890)
    }

    /// Connects once the node answers (it warms up for a few seconds).
    async fn connect(&mut self, key: &ClaimSecret) -> QtumChain {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            match QtumChain::connect(self.config(key)).await {
                Ok(c) => return c,
                Err(e) if Instant::now() < deadline => {
                    if let Some(status) = self.child.try_wait().unwrap() {
                        panic!("qtumd exited ({status}) before answering: {e}");
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => panic!("qtumd did not answer in 60 s: {e}"),
            }
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        // This test's own child, by its PID.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Mines a block every 250 ms to `to` until dropped.
struct Miner(tokio::task::JoinHandle<()>);

impl Miner {
    fn start(chain: QtumChain, to: String) -> Miner {
        Miner(tokio::spawn(async move {
            loop {
                let _ = chain
                    .rpc("generatetoaddress", vec![json!(1), json!(to)])
                    .await;
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }))
    }
}

impl Drop for Miner {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn rpc(chain: &QtumChain, method: &str, params: Vec<Value>) -> Value {
    chain
        .rpc(method, params)
        .await
        .unwrap_or_else(|e| panic!("{method}: {e}"))
}

/// The coinbase outputs paid to `address` in block `height`: the gas refunds.
async fn refunds_in_block(chain: &QtumChain, height: u64, address: &str) -> Vec<u64> {
    let hash = rpc(chain, "getblockhash", vec![json!(height)]).await;
    let block = rpc(chain, "getblock", vec![hash, json!(2)]).await;
    let coinbase = &block["tx"][0];
    coinbase["vout"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o["scriptPubKey"]["address"] == json!(address))
        .map(|o| {
            // serde_json prints the node's 0.07272680 as 0.0727268: still exact decimals.
            springmail_sdk::chain::qtum::parse_qtum(&o["value"].to_string())
                .unwrap_or_else(|| panic!("refund value {}", o["value"]))
        })
        .collect()
}

#[tokio::test]
#[ignore = "starts its own qtumd (-disablewallet): run with -- --ignored"]
async fn local_signer_deploys_deposits_and_claims_on_a_walletless_qtumd() {
    let started = Instant::now();
    let mut node = Node::start();
    let key = ClaimSecret::random();
    let me = qtum_address_of_secret(&key, QtumNetwork::Regtest);
    let chain = node.connect(&key).await;
    assert!(chain.signs_locally());
    assert_eq!(chain.sender(), me);
    assert_eq!(chain.account(), qtum_sender_of_secret(&key));

    // No wallet: the node cannot sign anything.
    match chain.rpc("getwalletinfo", vec![]).await {
        Err(ChainError::Rpc { code: -32601, .. }) => {}
        other => panic!("a -disablewallet node has no wallet RPCs, got {other:?}"),
    }

    // 2,100 blocks to the key's address: 100 mature coinbases of 20,000 QTUM.
    for _ in 0..21 {
        rpc(&chain, "generatetoaddress", vec![json!(100), json!(me)]).await;
    }
    let mined_in = started.elapsed();
    let spendable = chain.balance(chain.account()).await.unwrap();
    assert_eq!(spendable, U256::from(100u64 * 20_000 * 100_000_000));

    let chain = Arc::new(chain);
    let dyn_chain: Arc<dyn Chain> = chain.clone();

    // Deploy.
    let t = Instant::now();
    let client = {
        let _m = Miner::start((*chain).clone(), me.clone());
        SpringMail::deploy(dyn_chain.clone()).await.unwrap()
    };
    let deploy_receipt_block = client.start_block();
    let deploy_took = t.elapsed();

    // Deposit 1.5 QTUM: the OP_CALL output carries the value; msg.sender is the key.
    let t = Instant::now();
    let ticket = {
        let _m = Miner::start((*chain).clone(), me.clone());
        client
            .send(SendRequest::native(
                "bob@example.com",
                Amount::from_units(150_000_000, Asset::qtum()).unwrap(),
                Duration::from_secs(7 * 86_400),
            ))
            .await
            .unwrap()
    };
    let deposit_took = t.elapsed();
    assert_eq!(ticket.deposit.sender, chain.account());
    assert_eq!(ticket.deposit.amount, 150_000_000);
    let escrow_balance = chain.balance(client.escrow()).await.unwrap();
    assert_eq!(escrow_balance, U256::from(150_000_000u64));
    // Unused gas comes back to the OP_SENDER address as a coinbase output of that block.
    let refunds = refunds_in_block(&chain, ticket.block_number, &me).await;
    let expected_refund = (250_000 - ticket.gas_used) * 40;
    assert!(
        refunds.contains(&expected_refund),
        "refund of {expected_refund} sat to {me} in block {}: {refunds:?}",
        ticket.block_number
    );

    // Claim to a fresh P2PKH address nobody's wallet knows.
    let payee_key = ClaimSecret::random();
    let payee: Address = qtum_sender_of_secret(&payee_key);
    let payee_addr = qtum_address_of_secret(&payee_key, QtumNetwork::Regtest);
    let t = Instant::now();
    let claim = {
        let _m = Miner::start((*chain).clone(), me.clone());
        client.claim_with_link(&ticket.link, payee).await.unwrap()
    };
    let claim_took = t.elapsed();
    assert!(claim.succeeded());
    let paid = rpc(
        &chain,
        "getaddressbalance",
        vec![json!({ "addresses": [payee_addr] })],
    )
    .await;
    assert_eq!(paid["balance"], json!(150_000_000), "{paid}");
    assert_eq!(chain.balance(client.escrow()).await.unwrap(), U256::ZERO);
    match client.status(ticket.link.claim_key()).await.unwrap() {
        DepositStatus::Claimed { to, amount, .. } => {
            assert_eq!((to, amount), (payee, 150_000_000));
        }
        other => panic!("expected Claimed, got {other:?}"),
    }

    // A second claim would revert: simulated first, so nothing reaches the mempool.
    let before = rpc(&chain, "getrawmempool", vec![]).await;
    assert_eq!(before, json!([]));
    let again = client.claim_with_link(&ticket.link, payee).await;
    // Refused before anything is sent (by the client's own check or the simulation).
    assert!(again.is_err(), "{again:?}");
    if let Err(ClientError::Unconfirmed { .. }) = again {
        panic!("the second claim was broadcast: {again:?}");
    }
    assert_eq!(rpc(&chain, "getrawmempool", vec![]).await, json!([]));

    // A configured sender must be the key's own address.
    let other = qtum_address_of_secret(&ClaimSecret::random(), QtumNetwork::Regtest);
    let mut cfg = node.config(&key);
    cfg.sender = other.clone();
    let err = QtumChain::connect(cfg).await.unwrap_err().to_string();
    assert!(err.contains(&other) && err.contains(&me), "{err}");

    // A key without coins is refused before anything is sent, naming the shortfall.
    let broke = node.connect(&ClaimSecret::random()).await;
    let err = broke
        .submit(springmail_sdk::chain::TxRequest {
            to: Some(client.escrow()),
            data: alloy::primitives::Bytes::new(),
            value: U256::from(1u64),
            gas_limit: None,
        })
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ChainError::Invalid(m) if m.contains("insufficient funds") && m.contains(broke.sender())),
        "{err}"
    );
    assert_eq!(rpc(&chain, "getrawmempool", vec![]).await, json!([]));

    // Two deposits before a block: the second must not spend the first one's coins.
    let mut sent = Vec::new();
    for email in ["carol@example.com", "dave@example.com"] {
        let prepared = client
            .prepare_deposit(
                SendRequest::native(
                    email,
                    Amount::from_units(10_000_000, Asset::qtum()).unwrap(),
                    Duration::from_secs(86_400),
                ),
                client.new_link(),
            )
            .await
            .unwrap();
        let txid = client.submit_deposit(&prepared).await.unwrap();
        sent.push((prepared, txid));
    }
    let pool = rpc(&chain, "getrawmempool", vec![]).await;
    assert_eq!(pool.as_array().unwrap().len(), 2, "{pool}");
    {
        let _m = Miner::start((*chain).clone(), me.clone());
        for (prepared, txid) in sent {
            let t = client
                .confirm_deposit(prepared, txid, Duration::from_secs(60))
                .await
                .unwrap();
            assert_eq!(t.deposit.amount, 10_000_000);
        }
    }

    println!(
        "qtumd -disablewallet, local signer: mined 2,100 blocks in {:.1} s; deploy in block {} \
         ({:.1} s), deposit gas {} ({:.1} s), claim gas {} ({:.1} s)",
        mined_in.as_secs_f64(),
        deploy_receipt_block,
        deploy_took.as_secs_f64(),
        ticket.gas_used,
        deposit_took.as_secs_f64(),
        claim.gas_used,
        claim_took.as_secs_f64(),
    );
}

#[tokio::test]
#[ignore = "starts its own qtumd (-disablewallet): run with -- --ignored"]
async fn local_signer_refuses_a_node_without_the_address_index() {
    let mut node = Node::start_with(&["-disablewallet"]);
    let key = ClaimSecret::random();
    let deadline = Instant::now() + Duration::from_secs(60);
    let err = loop {
        match QtumChain::connect(node.config(&key)).await {
            Ok(_) => panic!("connected to a node without -addrindex"),
            Err(ChainError::Invalid(m)) => break m,
            Err(e) if Instant::now() < deadline => {
                assert!(
                    node.child.try_wait().unwrap().is_none(),
                    "qtumd exited: {e}"
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("qtumd did not answer in 60 s: {e}"),
        }
    };
    assert!(err.contains("-addrindex"), "{err}");
}

/// The node's wallet, holding the same key, signs the same transaction to the same bytes:
/// script layout, both sighashes and Core's low-R RFC 6979 signatures all agree.
#[tokio::test]
#[ignore = "starts its own qtumd (with a wallet): run with -- --ignored"]
async fn node_wallet_signs_our_transaction_to_the_same_bytes() {
    use springmail_sdk::chain::qtum::format_qtum;
    use springmail_sdk::chain::qtum_tx::{
        build_contract_tx, ContractOp, ContractTx, OutPoint, TxSigner, Utxo, RELAY_FEE_PER_KVB,
    };
    let mut node = Node::start_with(&["-addrindex"]);
    let key = ClaimSecret::random();
    let me = qtum_address_of_secret(&key, QtumNetwork::Regtest);
    let chain = node.connect(&key).await;
    let wallet = QtumChain::connect(
        QtumConfig::new(&node.url, "u", "p", me.clone())
            .wallet("w")
            .expect_chain_id(8890),
    );
    rpc(
        &chain,
        "createwallet",
        vec![json!("w"), json!(false), json!(true)],
    )
    .await;
    let wallet = wallet.await.unwrap();
    let wif = springmail_sdk::qtum::encode_wif(&key, QtumNetwork::Regtest, true);
    let desc = format!("pkh({wif})");
    let info = rpc(&chain, "getdescriptorinfo", vec![json!(desc)]).await;
    let checksum = info["checksum"].as_str().unwrap();
    let imported = wallet
        .wallet_rpc(
            "importdescriptors",
            vec![json!([{"desc": format!("{desc}#{checksum}"), "timestamp": "now"}])],
        )
        .await
        .unwrap();
    assert_eq!(imported[0]["success"], json!(true), "{imported}");
    for _ in 0..21 {
        rpc(&chain, "generatetoaddress", vec![json!(100), json!(me)]).await;
    }
    // createrawtransaction wants a contract that exists: deploy the escrow (locally signed).
    let contract = {
        let _m = Miner::start(chain.clone(), me.clone());
        SpringMail::deploy(Arc::new(chain.clone()))
            .await
            .unwrap()
            .escrow()
    };
    let utxos = rpc(
        &chain,
        "getaddressutxos",
        vec![json!({ "addresses": [me] })],
    )
    .await;
    let first = utxos
        .as_array()
        .unwrap()
        .iter()
        .rfind(|u| u["height"].as_u64().unwrap() <= 100)
        .expect("a mature coinbase");
    let utxo = Utxo {
        outpoint: OutPoint {
            txid: first["txid"].as_str().unwrap().parse().unwrap(),
            vout: first["outputIndex"].as_u64().unwrap() as u32,
        },
        value: first["satoshis"].as_u64().unwrap(),
    };
    let data =
        hex::decode("b214faa5e0d47ca1bc1eb62e650fc1fd660a9bfbf7cba8dc6337d81df7ea9aa9").unwrap();
    let ours = build_contract_tx(
        &TxSigner::new(key.clone()),
        &[utxo],
        &ContractTx {
            op: ContractOp::Call {
                contract,
                data: &data,
            },
            value: 75_000_000,
            gas_limit: 250_000,
            gas_price: 40,
            fee_per_kvb: RELAY_FEE_PER_KVB,
        },
    )
    .unwrap();
    assert!(ours.change > 0);

    let raw = rpc(
        &chain,
        "createrawtransaction",
        vec![
            json!([{"txid": first["txid"], "vout": utxo.outpoint.vout}]),
            json!([
                {"contract": {
                    "contractAddress": hex::encode(contract),
                    "data": hex::encode(&data),
                    "amount": format_qtum(75_000_000),
                    "gasLimit": 250_000,
                    "gasPrice": "0.00000040",
                    "senderAddress": me,
                }},
                { me.clone(): format_qtum(ours.change) },
            ]),
        ],
    )
    .await;
    let step1 = wallet
        .wallet_rpc("signrawsendertransactionwithwallet", vec![raw])
        .await
        .unwrap();
    let step2 = wallet
        .wallet_rpc("signrawtransactionwithwallet", vec![step1["hex"].clone()])
        .await
        .unwrap();
    assert_eq!(step2["complete"], json!(true), "{step2}");
    assert_eq!(
        step2["hex"].as_str().unwrap(),
        hex::encode(ours.tx.serialize()),
        "the node wallet's bytes, then ours"
    );
    let sent = rpc(
        &chain,
        "sendrawtransaction",
        vec![json!(hex::encode(ours.tx.serialize()))],
    )
    .await;
    assert_eq!(
        sent,
        json!(ours.tx.txid().to_string().trim_start_matches("0x"))
    );
    drop(node.child.kill());
}
