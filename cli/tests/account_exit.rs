//! The mailbox wallet's way out, with the `springmail` binary against anvil: the owner
//! makes the BIND line with `account bind`, and once bound withdraws with `account
//! withdraw`, with no broker. The broker's part (opening the account, paying a deposit
//! into it, binding) is played through the SDK with a funded key. Run by `scripts/test`.

mod common;
mod stack;

use std::time::Duration;

use alloy::primitives::Address;
use common::Sandbox;
use springmail_sdk::accounts::{mail_hash, AccountId, Limits, Movement};
use springmail_sdk::amount::{Amount, Asset};
use springmail_sdk::client::{SendRequest, SpringMail};
use springmail_sdk::email::Salt;
use springmail_sdk::keys::{ClaimSecret, Signature};

const COIN: u128 = 100_000_000;

fn sandbox(url: &str, escrow: Address, key: &ClaimSecret) -> Sandbox {
    let mut sb = Sandbox::new();
    sb.env("SPRINGMAIL_RPC_URL", url).env(
        "SPRINGMAIL_PRIVATE_KEY",
        &format!("0x{}", hex::encode(key.expose_bytes())),
    );
    sb.write(
        "springmail.toml",
        &format!(
            "[chain]\nbackend = \"evm-rpc\"\nchain_id = {}\nescrow = \"{escrow}\"\n",
            stack::chain_id()
        ),
    );
    sb
}

#[tokio::test]
#[ignore = "needs anvil from the dev stack: run scripts/test"]
async fn a_bound_owner_withdraws_with_the_command_and_no_broker() {
    let url = stack::var("SPRINGMAIL_ANVIL_URL");
    let (_, deployer) = stack::funded(&url, 10u128.pow(20)).await;
    let escrow = SpringMail::deploy(deployer).await.unwrap().escrow();
    let (broker_key, broker_chain) = stack::funded(&url, 10u128.pow(20)).await;
    let broker = SpringMail::new(broker_chain, escrow);
    let (owner_key, _) = stack::funded(&url, 10u128.pow(19)).await;
    let (stranger_key, _) = stack::funded(&url, 10u128.pow(19)).await;

    // The broker opens Bob's account and pays a deposit into it.
    let bob = AccountId::commit("bob@example.com", &Salt::random()).unwrap();
    let limits = Limits::new(COIN as u64, (2 * COIN) as u64).unwrap();
    broker
        .open_account(bob, broker_key.address(), limits)
        .await
        .unwrap();
    let amount = Amount::parse("3 QTUM", &Asset::qtum()).unwrap();
    let mut req = SendRequest::native("bob@example.com", amount, Duration::from_secs(86_400));
    req.watcher = Some(broker_key.address());
    let ticket = broker.send(req).await.unwrap();
    let mv = |nonce, mail: &str| Movement {
        nonce,
        mail_hash: mail_hash(mail.as_bytes()),
    };
    broker
        .claim_into(&ticket.link, &ticket.deposit, None, bob, 0, mv(1, "claim"))
        .await
        .unwrap();

    // Bob's key makes the BIND line; the broker checks it the way the watcher does.
    let sb = sandbox(&url, escrow, &owner_key);
    let line = sb
        .run(&["--json", "account", "bind", "--mailbox", "Bob@Example.com"])
        .json()["line"]
        .as_str()
        .unwrap()
        .to_string();
    let words: Vec<&str> = line.split(' ').collect();
    assert_eq!(words[0], "bind");
    let chain_id = stack::chain_id();
    let owner = springmail_sdk::qtum::parse_address(chain_id, words[1]).unwrap();
    assert_eq!(owner, owner_key.address());
    let sig_bytes = hex::decode(words[2].trim_start_matches("0x")).unwrap();
    let sig = Signature::from_slice("Signature", &sig_bytes).unwrap();
    assert!(springmail_watcher::wallet::bind_signature_valid(
        "bob@example.com",
        chain_id,
        escrow,
        owner,
        &sig
    ));
    assert!(
        !springmail_watcher::wallet::bind_signature_valid(
            "carol@example.net",
            chain_id,
            escrow,
            owner,
            &sig
        ),
        "the line binds this mailbox only"
    );

    // Before binding, the command refuses and nothing moves.
    let id = bob.to_string();
    let err = sb.run(&["account", "withdraw", &id, "--all"]).fails(2);
    assert!(err.contains("is not the owner key"), "{err}");
    assert_eq!(broker.account(bob).await.unwrap().balance, 3 * COIN);

    broker.bind_owner(bob, owner, mv(2, "bind")).await.unwrap();
    let shown = sb.run(&["--json", "account", "show", &id]).json();
    assert_eq!(shown["balance_units"], (3 * COIN).to_string());
    let shown_owner = shown["owner"].as_str().unwrap();
    assert_eq!(
        springmail_sdk::qtum::parse_address(chain_id, shown_owner).unwrap(),
        owner
    );

    // A stranger's key is refused; more than the balance is refused; both unsent.
    let other = sandbox(&url, escrow, &stranger_key);
    let err = other.run(&["account", "withdraw", &id, "--all"]).fails(2);
    assert!(err.contains("is not the owner key"), "{err}");
    let err = sb
        .run(&["account", "withdraw", &id, "--amount", "4 QTUM"])
        .fails(2);
    assert!(err.contains("cannot withdraw 4 QTUM"), "{err}");

    // Above the broker's limits, with the owner key alone: no limits apply to it.
    let payee = ClaimSecret::random().address();
    let out = sb
        .run(&[
            "--json",
            "account",
            "withdraw",
            &id,
            "--amount",
            "2.5 QTUM",
            "--to",
            &springmail_sdk::qtum::format_address(chain_id, payee),
        ])
        .json();
    assert!(out["tx"].as_str().unwrap().starts_with("0x"));
    let chain = broker.chain();
    assert_eq!(
        chain.balance(payee).await.unwrap(),
        alloy::primitives::U256::from(25 * COIN / 10)
    );
    let after = broker.account(bob).await.unwrap();
    assert_eq!(after.balance, COIN / 2);
    assert_eq!(after.nonce, 4);
}
