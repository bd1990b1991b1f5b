//! A fixed world for the hostile-mail corpus and the `verify_pipeline` fuzz target:
//! an embedded chain with a pinned clock, the escrow deployed by a fixed key, one open
//! email-mode deposit to bob@example.com with a fixed claim key and salt, and DKIM keys
//! for made-up domains read from `tests/corpus/keys/` (test keys, published nowhere).
//!
//! Everything is deterministic, so a mail generated once (a fuzz seed, a corpus file)
//! still names the same escrow and deposit when the world is built again. Included by
//! path from `tests/tests/reliability_corpus.rs` and `watcher/fuzz/`.

#![allow(dead_code)]

use std::sync::Arc;

use springmail_sdk::amount::{Amount, Asset};
use springmail_sdk::chain::embedded::EmbeddedChain;
use springmail_sdk::chain::TxRequest;
use springmail_sdk::client::SpringMail;
use springmail_sdk::contract::EmailEscrow;
use springmail_sdk::deposit::Deposit;
use springmail_sdk::email::{commitment, Salt};
use springmail_sdk::keys::ClaimSecret;
use springmail_sdk::link::ClaimLink;
use springmail_sdk::markup::ClaimBlock;
use springmail_sdk::{Address, U256};
use springmail_watcher::authenticate::{AuthPolicy, DkimKeys, MailAuthenticator, PinnedRecords};
use springmail_watcher::testkit::TestDomain;
use springmail_watcher::verify::{Verifier, VerifyPolicy};

/// The chain id (Qtum regtest).
pub const CHAIN_ID: u64 = 8890;
/// Genesis time: 2026-01-01 00:00 UTC.
pub const GENESIS: u64 = 1_767_225_600;
/// The recipient of the one deposit.
pub const BOB: &str = "bob@example.com";
/// The watcher's address.
pub const WATCHER_EMAIL: &str = "watcher@broker.test";
/// The deposit.
pub const AMOUNT: u128 = 150_000_000;
/// The watcher's fee.
pub const FEE: u128 = 100_000;

/// A DKIM test domain from `tests/corpus/keys/<domain>.{pem,txt}`.
fn domain(name: &str, pem: &str, record: &str) -> TestDomain {
    TestDomain {
        domain: name.into(),
        selector: "sm".into(),
        key_pem: pem.into(),
        record: record.trim().into(),
    }
}

/// example.com: Bob's provider (pinned in the watcher).
pub fn example_com() -> TestDomain {
    domain(
        "example.com",
        include_str!("keys/example.com.pem"),
        include_str!("keys/example.com.txt"),
    )
}

/// evil.example: a real domain with a real key, not Bob's (pinned in the watcher).
pub fn evil_example() -> TestDomain {
    domain(
        "evil.example",
        include_str!("keys/evil.example.pem"),
        include_str!("keys/evil.example.txt"),
    )
}

/// broker.test: the watcher's own domain (signs replies).
pub fn broker_test() -> TestDomain {
    domain(
        "broker.test",
        include_str!("keys/broker.test.pem"),
        include_str!("keys/broker.test.txt"),
    )
}

/// A key that claims to be example.com's but was never published.
pub fn example_com_unpublished() -> TestDomain {
    domain(
        "example.com",
        include_str!("keys/evil.example.pem"),
        include_str!("keys/evil.example.txt"),
    )
}

/// The world.
pub struct World {
    /// The chain (shared state; handles per account).
    pub chain: EmbeddedChain,
    /// The sender's client (it deployed the escrow).
    pub sender: SpringMail,
    /// The watcher's key (the deposit names it).
    pub watcher_key: Arc<ClaimSecret>,
    /// The watcher's client (sends as the watcher key).
    pub relayer: SpringMail,
    /// The open deposit to Bob.
    pub deposit: Deposit,
    /// Its link (claim key secret and salt).
    pub link: ClaimLink,
    /// Where Bob wants the money.
    pub payee: Address,
    /// The block Bob's wallet signs: valid, pays `payee`, max fee 0.002 QTUM.
    pub block: ClaimBlock,
    /// Pinned DKIM records: example.com, evil.example, broker.test.
    pub pins: PinnedRecords,
}

fn fixed_key(byte: u8) -> ClaimSecret {
    ClaimSecret::from_bytes([byte; 32]).expect("a valid fixed key")
}

impl World {
    /// Builds the world (deterministic: same escrow, claim key and block every time).
    pub async fn new() -> World {
        let chain = EmbeddedChain::with_genesis_time(CHAIN_ID, GENESIS);
        let sender_key = fixed_key(0x11);
        let watcher_key = Arc::new(fixed_key(0x22));
        chain.fund(sender_key.address(), U256::from(10u128.pow(12)));
        chain.fund(watcher_key.address(), U256::from(10u128.pow(10)));
        let sender = SpringMail::deploy(Arc::new(chain.as_account(sender_key.address())))
            .await
            .expect("the escrow deploys");
        let link = ClaimLink {
            chain_id: CHAIN_ID,
            escrow: sender.escrow(),
            secret: fixed_key(0x33),
            salt: Salt::from_bytes([0x44; 16]),
        };
        let deposit = Deposit {
            sender: sender_key.address(),
            token: Address::ZERO,
            amount: AMOUNT,
            expiry: GENESIS + 30 * 86_400,
            flags: 0,
            watcher: watcher_key.address(),
            recipient: commitment(BOB, &link.salt).expect("commitment"),
        };
        let data = EmailEscrow::depositCall {
            claimKey: link.claim_key(),
            d: deposit.to_sol(),
        };
        use alloy::sol_types::SolCall;
        let receipt = sender
            .chain()
            .send(TxRequest {
                to: Some(sender.escrow()),
                data: data.abi_encode().into(),
                value: U256::from(AMOUNT),
                gas_limit: None,
            })
            .await
            .expect("the deposit is sent");
        assert!(receipt.succeeded(), "the deposit succeeds");
        let relayer = SpringMail::new(
            Arc::new(chain.as_account(watcher_key.address())),
            sender.escrow(),
        )
        .with_start_block(sender.start_block());
        let payee = Address::repeat_byte(0x55);
        let max_fee = 200_000;
        let deadline = GENESIS + 7 * 86_400;
        let signed = sender
            .sign_claim(&link, &deposit, payee, max_fee, deadline)
            .expect("the link matches");
        let block = ClaimBlock {
            chain_id: CHAIN_ID,
            escrow: sender.escrow(),
            claim_key: link.claim_key(),
            to: payee,
            max_fee: Amount::from_units(max_fee, Asset::for_chain(CHAIN_ID)).expect("fits"),
            deadline,
            salt: link.salt.clone(),
            signature: signed.signature,
        };
        let mut pins = PinnedRecords::new();
        for d in [example_com(), evil_example(), broker_test()] {
            d.pin(&mut pins);
        }
        World {
            chain,
            sender,
            watcher_key,
            relayer,
            deposit,
            link,
            payee,
            block,
            pins,
        }
    }

    /// The watcher's verification policy.
    pub fn verify_policy(&self) -> VerifyPolicy {
        VerifyPolicy {
            watcher: self.watcher_key.address(),
            native_fee: FEE,
            tokens: vec![],
            min_time_left: 60,
        }
    }

    /// A verifier as the watcher's.
    pub fn verifier(&self) -> Verifier {
        Verifier::new(self.relayer.clone(), self.verify_policy())
    }

    /// An authenticator with the pinned keys and a 1 MiB limit.
    pub fn authenticator(&self) -> MailAuthenticator {
        MailAuthenticator::new(
            DkimKeys::pinned(self.pins.clone()),
            AuthPolicy {
                max_message_bytes: 1 << 20,
                own_addresses: vec![WATCHER_EMAIL.into()],
            },
        )
    }
}
