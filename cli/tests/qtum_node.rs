//! The `springmail` binary against a live qtumd v27.1 regtest node (the node's wallet
//! signs). Run by `scripts/test`, whose dev stack starts qtumd with mature coins and
//! exports SPRINGMAIL_QTUM_*; by hand: `scripts/dev-stack start`, source
//! `.dev-stack/env`, then `cargo test -p springmail-cli --test qtum_node -- --ignored`.
//!
//! Regtest mines nothing by itself and the CLI waits for its transactions, so every test
//! runs a miner thread (one block every 250 ms) while the command under test runs.

mod common;

use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::Sandbox;

fn var(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("set {name} (scripts/dev-stack writes it)"))
}

/// `qtum-cli` against the dev stack's node; `wallet` routes to `/wallet/<name>`.
fn qcli(wallet: Option<&str>, args: &[&str]) -> String {
    let mut c = Command::new(var("SPRINGMAIL_QTUM_CLI"));
    c.args(var("SPRINGMAIL_QTUM_CLI_ARGS").split(' '));
    if let Some(w) = wallet {
        c.arg(format!("-rpcwallet={w}"));
    }
    let out = c.args(args).output().expect("qtum-cli runs");
    assert!(
        out.status.success(),
        "qtum-cli {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

fn mine(n: u32) {
    qcli(
        None,
        &[
            "generatetoaddress",
            &n.to_string(),
            &var("SPRINGMAIL_QTUM_MINER"),
        ],
    );
}

/// Mines a block every 250 ms until dropped.
struct Miner {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Miner {
    fn start() -> Miner {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                mine(1);
                std::thread::sleep(Duration::from_millis(250));
            }
        });
        Miner {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Miner {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A fresh legacy address in the node's wallet, funded with `qtum` QTUM in a mined block.
/// Each test sends from an address of its own, so parallel tests never share UTXOs.
fn funded_sender(qtum: u32) -> String {
    let wallet = var("SPRINGMAIL_QTUM_WALLET");
    let addr = qcli(Some(&wallet), &["getnewaddress", "", "legacy"]);
    qcli(Some(&wallet), &["sendtoaddress", &addr, &qtum.to_string()]);
    mine(1);
    addr
}

/// The balance of any address, from the node's address index, in satoshi.
fn address_balance(addr: &str) -> u64 {
    let out = qcli(
        None,
        &[
            "getaddressbalance",
            &format!(r#"{{"addresses":["{addr}"]}}"#),
        ],
    );
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    v["balance"].as_u64().expect("balance in satoshi")
}

/// A sandbox whose springmail.toml points at the node, with `sender` as the sender,
/// and a fresh escrow deployed by it.
fn deployed(sender: &str) -> Sandbox {
    let mut sb = Sandbox::new();
    sb.env(
        "SPRINGMAIL_QTUM_RPC_PASSWORD",
        &var("SPRINGMAIL_QTUM_RPC_PASSWORD"),
    );
    let base = format!(
        "[chain]\nbackend = \"qtum\"\nurl = \"{}\"\nchain_id = 8890\nrpc_user = \"{}\"\n\
         node_wallet = \"{}\"\nsender = \"{sender}\"\n",
        var("SPRINGMAIL_QTUM_URL"),
        var("SPRINGMAIL_QTUM_RPC_USER"),
        var("SPRINGMAIL_QTUM_WALLET"),
    );
    sb.write("springmail.toml", &base);
    let d = {
        let _m = Miner::start();
        sb.run(&["--json", "deploy"]).json()
    };
    let escrow = d["escrow"].as_str().expect("deploy prints the escrow");
    let block = d["block"].as_str().expect("deploy prints its block");
    sb.write(
        "springmail.toml",
        &format!(
            "{base}escrow = \"{escrow}\"\nstart_block = {block}\n\
             [mail]\naddress = \"alice@example.org\"\nname = \"Alice\"\n"
        ),
    );
    sb
}

/// `send` in link mode to bob@example.com, mining while it waits; its JSON summary.
fn send_to_bob(sb: &Sandbox, amount: &str) -> serde_json::Value {
    let _m = Miner::start();
    sb.run(&[
        "--json",
        "send",
        "--to",
        "bob@example.com",
        "--amount",
        amount,
        "--link-only",
        "--out",
        "bob.eml",
    ])
    .json()
}

#[test]
#[ignore = "needs qtumd from the dev stack: run scripts/test"]
fn native_send_then_link_claim_to_a_fresh_p2pkh_address_on_qtumd() {
    let alice = funded_sender(50);
    let sb = deployed(&alice);
    let sent = send_to_bob(&sb, "1.5 QTUM");
    assert_eq!(sent["units"], "150000000", "{sent}");
    let link = sent["bare_link"].as_str().unwrap().to_string();
    let open = sb.run(&["--json", "status", &link]).json();
    assert_eq!(open["state"], "open", "{open}");
    assert_eq!(open["amount"], "1.5 QTUM");

    // Bob's address is in no loaded wallet (a scratch wallet made it and was unloaded);
    // Alice's node pays the gas.
    let fresh = {
        let scratch = format!("scratch-{}", std::process::id());
        let _ = Command::new(var("SPRINGMAIL_QTUM_CLI"))
            .args(var("SPRINGMAIL_QTUM_CLI_ARGS").split(' '))
            .args(["createwallet", &scratch])
            .output();
        let a = qcli(Some(&scratch), &["getnewaddress", "", "legacy"]);
        qcli(None, &["unloadwallet", &scratch]);
        a
    };
    assert_eq!(address_balance(&fresh), 0);
    let claimed = {
        let _m = Miner::start();
        sb.run(&["--json", "claim", &link, "--to", &fresh]).json()
    };
    assert_eq!(claimed["to"], fresh.as_str(), "{claimed}");
    assert_eq!(
        address_balance(&fresh),
        150_000_000,
        "the whole deposit reached the fresh P2PKH address"
    );
    let done = sb.run(&["--json", "status", &link]).json();
    assert_eq!(done["state"], "claimed", "{done}");
    assert_eq!(done["tx"], claimed["tx"]);
}

#[test]
#[ignore = "needs qtumd from the dev stack: run scripts/test"]
fn refund_of_an_unexpired_deposit_is_refused_before_any_gas_is_spent_on_qtumd() {
    let alice = funded_sender(50);
    let sb = deployed(&alice);
    let sent = send_to_bob(&sb, "1 QTUM");
    let key = sent["claim_key"].as_str().unwrap().to_string();
    let before = address_balance(&alice);
    let refused = {
        let _m = Miner::start();
        sb.run(&["refund", &key])
    };
    let err = refused.fails(1);
    assert!(
        err.contains("expire") || err.contains("not allowed"),
        "a clear reason: {err}"
    );
    mine(1);
    assert_eq!(
        address_balance(&alice),
        before,
        "no transaction was broadcast, so no gas was paid"
    );
    assert_eq!(sb.run(&["--json", "status", &key]).json()["state"], "open");
}

#[test]
#[ignore = "needs qtumd from the dev stack: run scripts/test"]
fn csv_batch_pays_each_row_once_on_qtumd() {
    let alice = funded_sender(50);
    let sb = deployed(&alice);
    sb.write(
        "pay.csv",
        "email,amount\nbob@example.com,1 QTUM\ncarol@example.net,0.25 QTUM\n",
    );
    let args = [
        "--json",
        "send",
        "--csv",
        "pay.csv",
        "--link-only",
        "--out",
        "mails",
    ];
    let first = {
        let _m = Miner::start();
        sb.run(&args).json()
    };
    assert_eq!(first["sent"], "2", "{first}");
    let again = {
        let _m = Miner::start();
        sb.run(&args).json()
    };
    assert_eq!(
        (again["sent"].as_str(), again["skipped"].as_str()),
        (Some("0"), Some("2")),
        "{again}"
    );
    let st = sb
        .run(&["--json", "status", "--csv", "pay.results.csv"])
        .json();
    let states: Vec<&str> = st
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["open", "open"]);
}

/// The hash160 (EVM address on Qtum) of a `q…` address, as 40 hex characters.
fn hex_address(addr: &str) -> String {
    qcli(None, &["gethexaddress", addr])
}

/// Deploys TestToken("Spring Test", "STT", 8) from `sender` and mints `units` to it;
/// the token's address as `0x…`.
fn token_with_balance(sender: &str, units: u64) -> String {
    use alloy::primitives::{Address, U256};
    use alloy::sol_types::{SolCall, SolConstructor};
    use springmail_sdk::contract::testing::TestToken;

    let wallet = var("SPRINGMAIL_QTUM_WALLET");
    let args = TestToken::constructorCall {
        name_: "Spring Test".into(),
        symbol_: "STT".into(),
        decimals_: 8,
    }
    .abi_encode();
    let code = format!("{}{}", hex::encode(&TestToken::BYTECODE), hex::encode(args));
    let made = qcli(
        Some(&wallet),
        &["createcontract", &code, "2500000", "0.0000004", sender],
    );
    let made: serde_json::Value = serde_json::from_str(&made).unwrap();
    let token = made["address"]
        .as_str()
        .expect("createcontract prints the address")
        .to_string();
    mine(1);
    let owner: Address = hex_address(sender).parse().unwrap();
    let mint = TestToken::mintCall {
        to: owner,
        amount: U256::from(units),
    }
    .abi_encode();
    qcli(
        Some(&wallet),
        &[
            "sendtocontract",
            &token,
            &hex::encode(mint),
            "0",
            "250000",
            "0.0000004",
            sender,
        ],
    );
    mine(1);
    format!("0x{token}")
}

/// `balanceOf(holder)` on `token` through `callcontract`, in base units.
fn token_balance(token: &str, holder_q: &str) -> u64 {
    use alloy::sol_types::SolCall;
    use springmail_sdk::contract::testing::TestToken;

    let holder = hex_address(holder_q).parse().unwrap();
    let data = TestToken::balanceOfCall::new((holder,)).abi_encode();
    let out = qcli(
        None,
        &[
            "callcontract",
            token.trim_start_matches("0x"),
            &hex::encode(data),
        ],
    );
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let word = v["executionResult"]["output"]
        .as_str()
        .expect("callcontract output");
    u64::from_str_radix(word.trim_start_matches('0').max("0"), 16).expect("a small balance")
}

#[test]
#[ignore = "needs qtumd from the dev stack: run scripts/test"]
fn qrc20_send_then_link_claim_to_a_fresh_p2pkh_address_on_qtumd() {
    let alice = funded_sender(50);
    let sb = deployed(&alice);
    let token = token_with_balance(&alice, 1_000_000_000);
    let sent = {
        let _m = Miner::start();
        sb.run(&[
            "--json",
            "send",
            "--to",
            "bob@example.com",
            "--amount",
            "2.5 STT",
            "--token",
            &token,
            "--link-only",
            "--out",
            "bob.eml",
        ])
        .json()
    };
    assert_eq!(sent["units"], "250000000", "{sent}");
    assert_eq!(
        token_balance(&token, &alice),
        750_000_000,
        "the escrow took 2.5 STT"
    );
    let link = sent["bare_link"].as_str().unwrap().to_string();
    let open = sb.run(&["--json", "status", &link]).json();
    assert_eq!(open["state"], "open", "{open}");
    assert_eq!(open["amount"], "2.5 STT", "{open}");

    let fresh = qcli(
        Some(&var("SPRINGMAIL_QTUM_WALLET")),
        &["getnewaddress", "", "legacy"],
    );
    let claimed = {
        let _m = Miner::start();
        sb.run(&["--json", "claim", &link, "--to", &fresh]).json()
    };
    assert_eq!(claimed["to"], fresh.as_str(), "{claimed}");
    assert_eq!(
        token_balance(&token, &fresh),
        250_000_000,
        "the tokens reached Bob"
    );
    let done = sb.run(&["--json", "status", &link]).json();
    assert_eq!(done["state"], "claimed", "{done}");
}

#[test]
#[ignore = "needs qtumd from the dev stack: run scripts/test"]
fn cancellable_deposit_is_refunded_to_its_sender_and_status_says_so_on_qtumd() {
    let alice = funded_sender(50);
    let sb = deployed(&alice);
    let sent = {
        let _m = Miner::start();
        sb.run(&[
            "--json",
            "send",
            "--to",
            "bob@example.com",
            "--amount",
            "3 QTUM",
            "--cancellable",
            "--link-only",
            "--out",
            "bob.eml",
        ])
        .json()
    };
    let key = sent["claim_key"].as_str().unwrap().to_string();
    let before = address_balance(&alice);
    let refunded = {
        let _m = Miner::start();
        sb.run(&["--json", "refund", &key]).json()
    };
    assert!(refunded["tx"].is_string(), "{refunded}");
    let after = address_balance(&alice);
    // The 3 QTUM come back; the refund's gas (at most its limit × 40 sat) is the only cost.
    assert!(
        after > before + 300_000_000 - 10_000_000 && after <= before + 300_000_000,
        "alice got her deposit back: before {before}, after {after}"
    );
    let st = sb.run(&["--json", "status", &key]).json();
    assert_eq!(st["state"], "refunded", "{st}");
    let listed = sb.run(&["--json", "status"]).json();
    assert!(
        listed.to_string().contains(&key),
        "`status` with no argument lists the sender's deposit: {listed}"
    );
}
