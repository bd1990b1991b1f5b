//! The mailbox-wallet formats of docs/PROTOCOL.md ("Mailbox wallets"), recomputed: the
//! account commitment, the packed account words, the account-funded deposit hash, the
//! EIP-712 `ClaimInto` type and digest, the event topics and the function selectors.
//! The document's `wallet-vectors` block must equal what this file computes.
//!
//! To regenerate the block after an intended change:
//! `SPRINGMAIL_PRINT_VECTORS=1 cargo test -p springmail-sdk --test wallet_vectors -- --nocapture`

use alloy::primitives::{address, keccak256, Address, B256, U256};
use alloy::sol_types::SolValue;
use serde_json::{json, Value};
use springmail_sdk::deposit::Deposit;
use springmail_sdk::email::{normalize, Salt};
use springmail_sdk::keys::ClaimSecret;

const DOC: &str = include_str!("../../docs/PROTOCOL.md");
const BEGIN: &str = "<!-- wallet-vectors:begin -->";
const END: &str = "<!-- wallet-vectors:end -->";

/// The account commitment's domain tag: distinct from the deposit recipient's
/// `springmail/v1`, so an account id is never a deposit's recipient commitment.
const ACCOUNT_TAG: &[u8] = b"springmail/account/v1";

const ESCROW: Address = address!("5FbDB2315678afecb367f032d93F642f64180aa3");
const CHAIN_ID: u64 = 8890;

fn hex32(b: B256) -> String {
    format!("{b}")
}

fn account_id(email: &str, salt: &Salt) -> B256 {
    let mut pre = ACCOUNT_TAG.to_vec();
    pre.push(0);
    pre.extend_from_slice(normalize(email).unwrap().as_bytes());
    pre.push(0);
    pre.extend_from_slice(salt.expose_bytes());
    keccak256(pre)
}

/// Word 0, the hot word: balance (96 bits) ‖ spent today (48) ‖ day (32) ‖ nonce (32),
/// from the high bits down; the low 48 bits are zero.
fn word0(balance: u128, spent: u64, day: u32, nonce: u32) -> B256 {
    let w = (U256::from(balance) << 160)
        | (U256::from(spent) << 112)
        | (U256::from(day) << 80)
        | (U256::from(nonce) << 48);
    B256::from(w)
}

/// Word 1: per-payment limit (48 bits) ‖ per-day limit (48) ‖ controller (160).
fn word1(per_payment: u64, per_day: u64, controller: Address) -> B256 {
    let w = (U256::from(per_payment) << 208)
        | (U256::from(per_day) << 160)
        | U256::from_be_slice(controller.as_slice());
    B256::from(w)
}

fn typehash(s: &str) -> Value {
    json!({ "type": s, "hash": hex32(keccak256(s)) })
}

fn selector(sig: &str) -> String {
    format!("0x{}", hex::encode(&keccak256(sig)[..4]))
}

fn vectors() -> Value {
    let salt = Salt::from_bytes(std::array::from_fn(|i| i as u8));
    let bob = account_id("Bob@Example.com", &salt);
    let carol_salt = Salt::from_bytes(std::array::from_fn(|i| 0x10 + i as u8));
    let carol = account_id("carol@example.net", &carol_salt);
    let controller = ClaimSecret::from_bytes(keccak256("springmail/v1 test vector: watcher key").0)
        .unwrap()
        .address();
    let claim_key =
        ClaimSecret::from_bytes(keccak256("springmail/v1 test vector: claim key").0).unwrap();

    // Carol's account pays a new email: a deposit whose sender is the escrow itself and
    // whose hash also binds the paying account.
    let d = Deposit {
        sender: ESCROW,
        token: Address::ZERO,
        amount: 50_000_000,
        expiry: 1_767_225_600,
        flags: 1 | 2, // CANCELLABLE | FROM_ACCOUNT
        watcher: controller,
        recipient: springmail_sdk::email::commitment("dave@example.org", &salt).unwrap(),
    };
    let mut pre = d.encode().to_vec();
    pre.extend_from_slice(carol.as_slice());
    let funded_hash = keccak256(&pre);

    // ClaimInto: the claim key lets deposit `deposit` be paid into `account`.
    let claim_into_type =
        "ClaimInto(address claimKey,bytes32 deposit,bytes32 account,uint96 maxFee,uint40 deadline)";
    let email_deposit = Deposit {
        sender: address!("f39Fd6e51aad88F6F4ce6aB8827279cffFb92266"),
        token: Address::ZERO,
        amount: 150_000_000,
        expiry: 1_767_225_600,
        flags: 1,
        watcher: controller,
        recipient: springmail_sdk::email::commitment("bob@example.com", &salt).unwrap(),
    };
    let struct_hash = keccak256(
        (
            keccak256(claim_into_type),
            claim_key.address(),
            email_deposit.hash(),
            bob,
            U256::from(100_000u64),
            U256::from(1_764_547_200u64),
        )
            .abi_encode(),
    );
    let sep = springmail_sdk::eip712::domain(CHAIN_ID, ESCROW).separator();
    let mut digest_pre = vec![0x19, 0x01];
    digest_pre.extend_from_slice(sep.as_slice());
    digest_pre.extend_from_slice(struct_hash.as_slice());
    let digest = keccak256(&digest_pre);
    let sig = claim_key.sign_digest(&digest);

    let mail = b"From: bob@example.com\r\nTo: wallet@broker.test\r\nSubject: pay 0.5 QTUM to carol@example.net\r\n\r\n";

    let events = [
        "AccountOpened(bytes32,address,uint256,uint256)",
        "Moved(bytes32,bytes32,uint256,uint256,bytes32)",
        "AccountDeposited(bytes32,address,(address,address,uint96,uint40,uint8,address,bytes32),uint256,bytes32)",
        "OwnerBound(bytes32,address,uint256,bytes32)",
        "ControllerChanged(bytes32,address,uint256,bytes32)",
        "LimitsChanged(bytes32,uint256,uint256)",
    ];
    // The names carry a suffix that sorts their selectors above `deposit`'s (0xfeea40db):
    // the dispatcher compares selectors in ascending order, so no existing function pays
    // for the new ones.
    let functions = [
        "createAccount_1s(bytes32,address,uint48,uint48)",
        "claimIntoAccount_195w(address,(address,address,uint96,uint40,uint8,address,bytes32),bytes32,uint96,uint96,uint40,bytes32,bytes32,uint32,bytes32)",
        "claimFromAccount_fjv(bytes32,address,(address,address,uint96,uint40,uint8,address,bytes32),address,uint96,uint96,uint40,bytes32,bytes32)",
        "transferToAccount_1q11(bytes32,bytes32,uint96,uint32,bytes32)",
        "payToEmail_3wqa(bytes32,address,(address,address,uint96,uint40,uint8,address,bytes32),uint32,bytes32)",
        "withdrawFromAccount_4g(bytes32,address,uint96,uint32,bytes32)",
        "bindOwner_27(bytes32,address,uint32,bytes32)",
        "setController_5c(bytes32,address,uint32,bytes32)",
        "setLimits_6(bytes32,uint48,uint48)",
        "accountOf_s(bytes32)",
    ];
    let errors = [
        "AccountNotOpen(bytes32)",
        "AccountExists(bytes32)",
        "NotController(bytes32,address)",
        "BadNonce(bytes32,uint256,uint256)",
        "LimitExceeded(bytes32,uint256,uint256)",
        "InsufficientBalance(bytes32,uint256,uint256)",
        "ZeroAddress()",
        "NotAccountDeposit(address,uint8)",
    ];
    json!({
        "account_tag": String::from_utf8(ACCOUNT_TAG.to_vec()).unwrap(),
        "accounts": [
            { "email": "Bob@Example.com", "salt": format!("0x{}", hex::encode(salt.expose_bytes())), "account": hex32(bob) },
            { "email": "carol@example.net", "salt": format!("0x{}", hex::encode(carol_salt.expose_bytes())), "account": hex32(carol) },
        ],
        "word0": {
            "balance": "150000000", "spent_today": "20000000", "day": 20454, "nonce": 7,
            "word": hex32(word0(150_000_000, 20_000_000, 20_454, 7)),
        },
        "word1": {
            "per_payment": "100000000", "per_day": "500000000",
            "controller": controller.to_checksum(None),
            "word": hex32(word1(100_000_000, 500_000_000, controller)),
        },
        "account_funded_deposit": {
            "account": hex32(carol),
            "deposit_encoding": format!("0x{}", hex::encode(d.encode())),
            "hash": hex32(funded_hash),
        },
        "claim_into": {
            "type": typehash(claim_into_type),
            "chain_id": CHAIN_ID,
            "escrow": ESCROW.to_checksum(None),
            "claim_key": claim_key.address().to_checksum(None),
            "deposit_hash": hex32(email_deposit.hash()),
            "account": hex32(bob),
            "max_fee": "100000",
            "deadline": 1_764_547_200u64,
            "digest": hex32(digest),
            "signature": format!("{}", sig.to_bytes()),
            "signature_eip2098": {
                "r": hex32(springmail_sdk::accounts::compact(&sig).0),
                "vs": hex32(springmail_sdk::accounts::compact(&sig).1),
            },
        },
        "mail_hash": {
            "message": String::from_utf8(mail.to_vec()).unwrap(),
            "keccak256": hex32(keccak256(mail)),
        },
        "events": events.iter().map(|e| (e.to_string(), json!(hex32(keccak256(e))))).collect::<serde_json::Map<_, _>>(),
        "functions": functions.iter().map(|f| (f.to_string(), json!(selector(f)))).collect::<serde_json::Map<_, _>>(),
        "errors": errors.iter().map(|f| (f.to_string(), json!(selector(f)))).collect::<serde_json::Map<_, _>>(),
        "slot_base": { "account": hex32(bob), "slot": hex32(keccak256(bob)) },
    })
}

fn published() -> Value {
    let start = DOC
        .find(BEGIN)
        .expect("the wallet vector block's begin marker")
        + BEGIN.len();
    let end = DOC.find(END).expect("the wallet vector block's end marker");
    let json = DOC[start..end]
        .trim()
        .strip_prefix("```json")
        .and_then(|b| b.strip_suffix("```"))
        .expect("the wallet vector block is one ```json fence");
    serde_json::from_str(json).expect("the wallet vector block is valid JSON")
}

#[test]
fn published_wallet_vectors_equal_the_rust_computation() {
    let mine = vectors();
    if std::env::var_os("SPRINGMAIL_PRINT_VECTORS").is_some() {
        println!("{}", serde_json::to_string_pretty(&mine).unwrap());
    }
    assert_eq!(
        published(),
        mine,
        "docs/PROTOCOL.md (Mailbox wallets) differs from what this test computes"
    );
}

#[test]
fn the_packed_words_take_their_fields_apart_again() {
    let w = U256::from_be_bytes(word0(150_000_000, 20_000_000, 20_454, 7).0);
    let mask = |bits: usize| (U256::from(1) << bits) - U256::from(1);
    assert_eq!(w >> 160, U256::from(150_000_000u64));
    assert_eq!((w >> 112) & mask(48), U256::from(20_000_000u64));
    assert_eq!((w >> 80) & mask(32), U256::from(20_454u64));
    assert_eq!((w >> 48) & mask(32), U256::from(7u64));
    assert_eq!(w & mask(48), U256::ZERO);
    let c = address!("b8E3DdfEbE747dF2099041763C394d434042B7FE");
    let w = U256::from_be_bytes(word1(100_000_000, 500_000_000, c).0);
    assert_eq!(w >> 208, U256::from(100_000_000u64));
    assert_eq!((w >> 160) & mask(48), U256::from(500_000_000u64));
    assert_eq!(Address::from_word(B256::from(w & mask(160))), c);
}

#[test]
fn the_claim_into_signature_recovers_to_the_claim_key() {
    let v = published();
    let c = &v["claim_into"];
    let sig: alloy::primitives::Bytes = c["signature"].as_str().unwrap().parse().unwrap();
    let sig = springmail_sdk::keys::Signature::from_slice("signature", &sig).unwrap();
    let digest: B256 = c["digest"].as_str().unwrap().parse().unwrap();
    let signer = sig.recover("signature", &digest).unwrap();
    assert_eq!(signer.to_checksum(None), c["claim_key"].as_str().unwrap());
    // An account id is not the recipient commitment of the same address and salt.
    let salt = Salt::from_bytes(std::array::from_fn(|i| i as u8));
    assert_ne!(
        account_id("bob@example.com", &salt),
        springmail_sdk::email::commitment("bob@example.com", &salt).unwrap()
    );
}

#[test]
fn the_sdk_and_the_contract_agree_with_the_vectors() {
    use alloy::sol_types::{SolCall, SolError, SolEvent};
    use springmail_sdk::accounts::{AccountId, ClaimIntoAuth, CLAIM_INTO_TYPEHASH};
    use springmail_sdk::contract::EmailEscrow as E;
    let v = published();
    // Account ids.
    for a in v["accounts"].as_array().unwrap() {
        let salt = Salt::from_hex(a["salt"].as_str().unwrap().trim_start_matches("0x")).unwrap();
        let id = AccountId::commit(a["email"].as_str().unwrap(), &salt).unwrap();
        assert_eq!(hex32(id.0), a["account"].as_str().unwrap());
    }
    // The ClaimInto digest through the SDK.
    let c = &v["claim_into"];
    assert_eq!(
        hex32(CLAIM_INTO_TYPEHASH),
        c["type"]["hash"].as_str().unwrap()
    );
    let auth = ClaimIntoAuth {
        claim_key: c["claim_key"].as_str().unwrap().parse().unwrap(),
        deposit_hash: c["deposit_hash"].as_str().unwrap().parse().unwrap(),
        account: AccountId(c["account"].as_str().unwrap().parse().unwrap()),
        max_fee: c["max_fee"].as_str().unwrap().parse().unwrap(),
        deadline: c["deadline"].as_u64().unwrap(),
    };
    let id = springmail_sdk::eip712::EscrowId {
        chain_id: c["chain_id"].as_u64().unwrap(),
        escrow: c["escrow"].as_str().unwrap().parse().unwrap(),
    };
    assert_eq!(hex32(auth.digest(id)), c["digest"].as_str().unwrap());
    // The committed artifact's selectors and topics are the published ones.
    let sel = |s: [u8; 4]| format!("0x{}", hex::encode(s));
    let built = [
        (
            E::createAccount_1sCall::SIGNATURE,
            sel(E::createAccount_1sCall::SELECTOR),
        ),
        (
            E::claimIntoAccount_195wCall::SIGNATURE,
            sel(E::claimIntoAccount_195wCall::SELECTOR),
        ),
        (
            E::claimFromAccount_fjvCall::SIGNATURE,
            sel(E::claimFromAccount_fjvCall::SELECTOR),
        ),
        (
            E::transferToAccount_1q11Call::SIGNATURE,
            sel(E::transferToAccount_1q11Call::SELECTOR),
        ),
        (
            E::payToEmail_3wqaCall::SIGNATURE,
            sel(E::payToEmail_3wqaCall::SELECTOR),
        ),
        (
            E::withdrawFromAccount_4gCall::SIGNATURE,
            sel(E::withdrawFromAccount_4gCall::SELECTOR),
        ),
        (
            E::bindOwner_27Call::SIGNATURE,
            sel(E::bindOwner_27Call::SELECTOR),
        ),
        (
            E::setController_5cCall::SIGNATURE,
            sel(E::setController_5cCall::SELECTOR),
        ),
        (
            E::setLimits_6Call::SIGNATURE,
            sel(E::setLimits_6Call::SELECTOR),
        ),
        (
            E::accountOf_sCall::SIGNATURE,
            sel(E::accountOf_sCall::SELECTOR),
        ),
    ];
    let published_fns = v["functions"].as_object().unwrap();
    assert_eq!(published_fns.len(), built.len());
    for (sig, s) in built {
        assert_eq!(published_fns[sig].as_str().unwrap(), s, "{sig}");
        // Above deposit's selector: no existing function pays a comparison for it.
        assert!(s.as_str() > "0xfeea40db", "{sig} sorts below deposit");
    }
    let errs = v["errors"].as_object().unwrap();
    for (sig, s) in [
        (
            E::AccountNotOpen::SIGNATURE,
            sel(E::AccountNotOpen::SELECTOR),
        ),
        (E::AccountExists::SIGNATURE, sel(E::AccountExists::SELECTOR)),
        (E::NotController::SIGNATURE, sel(E::NotController::SELECTOR)),
        (E::BadNonce::SIGNATURE, sel(E::BadNonce::SELECTOR)),
        (E::LimitExceeded::SIGNATURE, sel(E::LimitExceeded::SELECTOR)),
        (
            E::InsufficientBalance::SIGNATURE,
            sel(E::InsufficientBalance::SELECTOR),
        ),
        (E::ZeroAddress::SIGNATURE, sel(E::ZeroAddress::SELECTOR)),
        (
            E::NotAccountDeposit::SIGNATURE,
            sel(E::NotAccountDeposit::SELECTOR),
        ),
    ] {
        assert_eq!(errs[sig].as_str().unwrap(), s, "{sig}");
    }
    let events = v["events"].as_object().unwrap();
    for (sig, t) in [
        (
            E::AccountOpened::SIGNATURE,
            E::AccountOpened::SIGNATURE_HASH,
        ),
        (E::Moved::SIGNATURE, E::Moved::SIGNATURE_HASH),
        (
            E::AccountDeposited::SIGNATURE,
            E::AccountDeposited::SIGNATURE_HASH,
        ),
        (E::OwnerBound::SIGNATURE, E::OwnerBound::SIGNATURE_HASH),
        (
            E::ControllerChanged::SIGNATURE,
            E::ControllerChanged::SIGNATURE_HASH,
        ),
        (
            E::LimitsChanged::SIGNATURE,
            E::LimitsChanged::SIGNATURE_HASH,
        ),
    ] {
        assert_eq!(events[sig].as_str().unwrap(), hex32(t), "{sig}");
    }
}
