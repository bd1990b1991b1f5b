//! The contract's byte formats, cross-checked (STYLE.md item 12): the test vectors
//! published in docs/PROTOCOL.md are recomputed in Rust *and* in the EVM by the
//! contract's own view functions (`getDepositHash`, `domainSeparator`, `getClaimDigest`,
//! `getAttestHash`), on two chain ids, and the published signatures then claim the
//! published deposits for real. The typehashes, event topics and error selectors in the
//! document are recomputed too, and every hex value in its prose must come from the
//! checked vector block, so a table cannot go stale.
//!
//! To regenerate the block after an intended protocol change:
//! `SPRINGMAIL_PRINT_VECTORS=1 cargo test -p springmail-sdk --test escrow_vectors -- --nocapture`

mod escrow_common;

use alloy::primitives::aliases::{U40, U96};
use alloy::primitives::{address, keccak256, Address, Bytes, B256, U256};
use alloy::sol_types::{SolCall, SolError, SolEvent};
use escrow_common::*;
use serde_json::{json, Value};
use springmail_sdk::contract::EmailEscrow::{self as E, EmailEscrowCalls, EmailEscrowErrors};
use springmail_sdk::deposit::Deposit;
use springmail_sdk::eip712::{self, ClaimAuth, EscrowId};
use springmail_sdk::keys::ClaimSecret;
use springmail_sdk::qtum::qtum_sender_of_secret;

const DOC: &str = include_str!("../../docs/PROTOCOL.md");
const BEGIN: &str = "<!-- vectors:begin -->";
const END: &str = "<!-- vectors:end -->";

/// Where the escrow lands when anvil's dev account 0 deploys it first (nonce 0), on a
/// fresh anvil and on the embedded chain alike; the test token is its second contract.
const ESCROW: Address = address!("5FbDB2315678afecb367f032d93F642f64180aa3");
const TOKEN: Address = address!("e7f1725E7734CE288F8367e1Bb143E90bb3F0512");

fn secret(label: &str) -> ClaimSecret {
    ClaimSecret::from_bytes(keccak256(label).0).unwrap()
}

fn claim_key() -> ClaimSecret {
    secret("springmail/v1 test vector: claim key")
}

fn watcher_key() -> ClaimSecret {
    secret("springmail/v1 test vector: watcher key")
}

/// The recipient commitment of bob@example.com with salt 00 01 … 0f (the formula of
/// DESIGN.md "Email commitment"; the address is already in normal form).
fn bob_commitment() -> B256 {
    let salt: Vec<u8> = (0u8..16).collect();
    let mut pre = b"springmail/v1\x00bob@example.com\x00".to_vec();
    pre.extend(&salt);
    keccak256(pre)
}

struct Case {
    name: &'static str,
    chain_id: u64,
    deposit: Deposit,
    to: Address,
    max_fee: u128,
    deadline: u64,
    /// The watcher submits the claim itself (no attestation); else any relayer with it.
    self_submitted: bool,
}

fn cases() -> Vec<Case> {
    let email = Deposit {
        sender: DEPLOYER,
        token: Address::ZERO,
        amount: 150_000_000,   // 1.5 QTUM
        expiry: 1_767_225_600, // 2026-01-01T00:00:00Z
        flags: Deposit::CANCELLABLE,
        watcher: watcher_key().address(),
        recipient: bob_commitment(),
    };
    let to = address!("70997970C51812dc3A010C7d01b50e0d17dc79C8");
    vec![
        Case {
            name: "native, email mode, cancellable, Qtum regtest",
            chain_id: 8890,
            deposit: email,
            to,
            max_fee: 100_000,        // 0.001 QTUM
            deadline: 1_764_547_200, // 2025-12-01T00:00:00Z
            self_submitted: false,
        },
        Case {
            name: "the same deposit and claim on Qtum mainnet (chain id 81)",
            chain_id: 81,
            deposit: email,
            to,
            max_fee: 100_000,
            deadline: 1_764_547_200,
            self_submitted: false,
        },
        Case {
            name: "token, link mode, not cancellable, Qtum regtest",
            chain_id: 8890,
            deposit: Deposit {
                token: TOKEN,
                amount: 2_500_000_000, // 25 units of an 8-decimal token
                flags: 0,
                watcher: Address::ZERO,
                ..email
            },
            to,
            max_fee: 0,
            deadline: 1_764_547_200,
            self_submitted: false,
        },
        Case {
            name: "native, email mode, self-submitted by the watcher on Qtum, Qtum regtest",
            chain_id: 8890,
            // The watcher is named by the `msg.sender` of a Qtum transaction its key signs.
            deposit: Deposit {
                watcher: qtum_sender_of_secret(&watcher_key()),
                ..email
            },
            to,
            max_fee: 100_000,
            deadline: 1_764_547_200,
            self_submitted: true,
        },
    ]
}

/// `claim(...)` calldata taking the whole `max_fee` as the fee.
fn claim_call(
    auth: &ClaimAuth,
    d: &Deposit,
    fee: u128,
    link_sig: Bytes,
    attestation: Bytes,
) -> Bytes {
    E::claimCall {
        claimKey: auth.claim_key,
        d: d.to_sol(),
        to: auth.to,
        fee: U96::from(fee),
        maxFee: U96::from(auth.max_fee),
        deadline: U40::from(auth.deadline),
        linkSig: link_sig,
        attestation,
    }
    .abi_encode()
    .into()
}

fn hex32(b: B256) -> String {
    format!("{b}")
}

/// Everything the document publishes, computed in Rust.
fn rust_vectors() -> Value {
    let ck = claim_key();
    let wk = watcher_key();
    let vectors: Vec<Value> = cases()
        .iter()
        .map(|c| {
            let id = EscrowId {
                chain_id: c.chain_id,
                escrow: ESCROW,
            };
            let d = c.deposit;
            let auth = ClaimAuth {
                claim_key: ck.address(),
                deposit_hash: d.hash(),
                to: c.to,
                max_fee: c.max_fee,
                deadline: c.deadline,
            };
            let (attest_digest, attest_sig) = if d.is_link_mode() || c.self_submitted {
                (Value::Null, Value::Null)
            } else {
                (
                    json!(hex32(auth.attest_digest(id))),
                    json!(format!("{}", auth.sign_attest(id, &wk).to_bytes())),
                )
            };
            let attestation = attest_sig
                .as_str()
                .map(|a| a.parse::<Bytes>().unwrap())
                .unwrap_or_default();
            let calldata = format!(
                "{}",
                claim_call(&auth, &d, c.max_fee, auth.sign_claim(id, &ck).to_bytes(), attestation)
            );
            json!({
                "name": c.name,
                "chain_id": c.chain_id,
                "escrow": ESCROW.to_checksum(None),
                "deposit": {
                    "sender": d.sender.to_checksum(None),
                    "token": d.token.to_checksum(None),
                    "amount": d.amount.to_string(),
                    "expiry": d.expiry,
                    "flags": d.flags,
                    "watcher": d.watcher.to_checksum(None),
                    "recipient": hex32(d.recipient),
                },
                "claim": {
                    "claim_key": ck.address().to_checksum(None),
                    "to": c.to.to_checksum(None),
                    "max_fee": c.max_fee.to_string(),
                    "deadline": c.deadline,
                },
                "deposit_encoding": format!("0x{}", hex::encode(d.encode())),
                "deposit_hash": hex32(d.hash()),
                "domain_separator": hex32(eip712::domain(c.chain_id, ESCROW).separator()),
                "claim_digest": hex32(auth.claim_digest(id)),
                "claim_signature": format!("{}", auth.sign_claim(id, &ck).to_bytes()),
                "attest_digest": attest_digest,
                "attest_signature": attest_sig,
                "submitter": if c.self_submitted { json!(d.watcher.to_checksum(None)) } else { Value::Null },
                "claim_calldata": calldata,
            })
        })
        .collect();
    json!({
        "keys": {
            "claim_key_secret": format!("0x{}", hex::encode(ck.expose_bytes())),
            "claim_key": ck.address().to_checksum(None),
            "watcher_secret": format!("0x{}", hex::encode(wk.expose_bytes())),
            "watcher": wk.address().to_checksum(None),
        },
        "constants": constants(),
        "vectors": vectors,
    })
}

/// Typehashes, event topics and error selectors, from the type strings and the ABI.
fn constants() -> Value {
    let mut events = serde_json::Map::new();
    for (sig, topic) in [
        (E::Deposited::SIGNATURE, E::Deposited::SIGNATURE_HASH),
        (E::Claimed::SIGNATURE, E::Claimed::SIGNATURE_HASH),
        (E::Refunded::SIGNATURE, E::Refunded::SIGNATURE_HASH),
        (E::ClaimSkipped::SIGNATURE, E::ClaimSkipped::SIGNATURE_HASH),
        (
            E::FeesWithdrawn::SIGNATURE,
            E::FeesWithdrawn::SIGNATURE_HASH,
        ),
    ] {
        assert_eq!(keccak256(sig), topic);
        events.insert(sig.to_string(), json!(hex32(topic)));
    }
    let mut errors = serde_json::Map::new();
    macro_rules! errs {
        ($($e:ident),* $(,)?) => {{
            $( errors.insert(E::$e::SIGNATURE.to_string(), json!(format!("0x{}", hex::encode(E::$e::SELECTOR)))); )*
            [$( stringify!($e) ),*].len()
        }};
    }
    let n = errs!(
        ClaimKeyInUse,
        ZeroClaimKey,
        ZeroAmount,
        SenderMismatch,
        ValueMismatch,
        ExpiryInPast,
        TokenShortfall,
        UnknownDeposit,
        Expired,
        DeadlinePassed,
        FeeTooHigh,
        BadClaimSignature,
        BadAttestation,
        RefundNotAllowed,
        TransferFailed,
        NoFees,
        ZeroPayee,
    );
    // The account errors and functions (version 3) are listed in the mailbox wallets'
    // block, which wallet_vectors.rs checks against the ABI.
    let wallet = wallet_block();
    assert_eq!(
        n + wallet["errors"].as_object().expect("wallet errors").len(),
        EmailEscrowErrors::SELECTORS.len(),
        "every error of the ABI is listed"
    );
    let mut functions = serde_json::Map::new();
    macro_rules! fns {
        ($($f:ident),* $(,)?) => {{
            $( functions.insert(E::$f::SIGNATURE.to_string(), json!(format!("0x{}", hex::encode(E::$f::SELECTOR)))); )*
            [$( stringify!($f) ),*].len()
        }};
    }
    let n = fns!(
        depositCall,
        claimCall,
        claimBatchCall,
        withdrawFeesCall,
        feesAccruedCall,
        refundCall,
        depositsCall,
        getDepositHashCall,
        getClaimDigestCall,
        getAttestHashCall,
        domainSeparatorCall,
        eip712DomainCall,
    );
    assert_eq!(
        n + wallet["functions"]
            .as_object()
            .expect("wallet functions")
            .len(),
        EmailEscrowCalls::SELECTORS.len(),
        "every function of the ABI is listed"
    );
    let typehash = |s: &str| json!({ "type": s, "hash": hex32(keccak256(s)) });
    json!({
        "domain_type": typehash(eip712::DOMAIN_TYPE),
        "domain_name": { "value": eip712::DOMAIN_NAME, "hash": hex32(keccak256(eip712::DOMAIN_NAME)) },
        "domain_version": { "value": eip712::DOMAIN_VERSION, "hash": hex32(keccak256(eip712::DOMAIN_VERSION)) },
        "claim_type": typehash(eip712::CLAIM_TYPE),
        "attest_type": typehash(eip712::ATTEST_TYPE),
        "erc1271_magic": "0x1626ba7e",
        "secp256k1_half_n": format!("{:#066x}", springmail_sdk::keys::SECP256K1_HALF_N),
        "functions": functions,
        "events": events,
        "errors": errors,
    })
}

fn published() -> Value {
    let start = DOC.find(BEGIN).expect("the vector block's begin marker") + BEGIN.len();
    let end = DOC.find(END).expect("the vector block's end marker");
    let block = DOC[start..end].trim();
    let json = block
        .strip_prefix("```json")
        .and_then(|b| b.strip_suffix("```"))
        .expect("the vector block is one ```json fence");
    serde_json::from_str(json).expect("the vector block is valid JSON")
}

/// The mailbox wallets' checked block (docs/PROTOCOL.md, "Mailbox wallets").
fn wallet_block() -> Value {
    let (begin, end) = (
        "<!-- wallet-vectors:begin -->",
        "<!-- wallet-vectors:end -->",
    );
    let start = DOC.find(begin).expect("the wallet block's begin marker") + begin.len();
    let end = DOC.find(end).expect("the wallet block's end marker");
    let json = DOC[start..end]
        .trim()
        .strip_prefix("```json")
        .and_then(|b| b.strip_suffix("```"))
        .expect("the wallet block is one ```json fence");
    serde_json::from_str(json).expect("the wallet block is valid JSON")
}

fn print_if_asked(v: &Value) {
    if std::env::var_os("SPRINGMAIL_PRINT_VECTORS").is_some() {
        println!("{}", serde_json::to_string_pretty(v).unwrap());
    }
}

#[test]
fn published_vectors_equal_the_rust_computation() {
    let mine = rust_vectors();
    print_if_asked(&mine);
    let doc = published();
    assert!(
        !doc["vectors"].as_array().expect("vectors").is_empty(),
        "no vectors ran"
    );
    assert_eq!(
        doc, mine,
        "docs/PROTOCOL.md differs from what the SDK computes"
    );
    // The SDK's constants are the published ones.
    assert_eq!(
        hex32(eip712::CLAIM_TYPEHASH),
        doc["constants"]["claim_type"]["hash"].as_str().unwrap()
    );
    assert_eq!(
        hex32(eip712::ATTEST_TYPEHASH),
        doc["constants"]["attest_type"]["hash"].as_str().unwrap()
    );
}

#[test]
fn the_vectors_recipient_is_the_sdks_commitment_of_bob() {
    let salt = springmail_sdk::email::Salt::from_bytes(std::array::from_fn(|i| i as u8));
    assert_eq!(
        springmail_sdk::email::commitment("Bob@Example.com", &salt).unwrap(),
        bob_commitment()
    );
}

fn b256(v: &Value) -> B256 {
    v.as_str()
        .expect("hex string")
        .parse()
        .expect("32 bytes of hex")
}

fn addr(v: &Value) -> Address {
    v.as_str()
        .expect("address string")
        .parse()
        .expect("an address")
}

fn deposit_of(v: &Value) -> Deposit {
    Deposit {
        sender: addr(&v["sender"]),
        token: addr(&v["token"]),
        amount: v["amount"].as_str().unwrap().parse().unwrap(),
        expiry: v["expiry"].as_u64().unwrap(),
        flags: v["flags"].as_u64().unwrap() as u8,
        watcher: addr(&v["watcher"]),
        recipient: b256(&v["recipient"]),
    }
}

#[test]
fn published_vectors_equal_the_contract_computation_in_the_evm() {
    let doc = published();
    let vectors = doc["vectors"].as_array().unwrap();
    let mut checked = 0;
    for v in vectors {
        let chain_id = v["chain_id"].as_u64().unwrap();
        let w = World::on_chain(chain_id);
        assert_eq!(
            w.escrow,
            addr(&v["escrow"]),
            "the escrow's address on a fresh chain"
        );
        assert_eq!(w.token, TOKEN);
        let d = deposit_of(&v["deposit"]);
        let c = &v["claim"];
        let (claim_key, to) = (addr(&c["claim_key"]), addr(&c["to"]));
        let max_fee: u128 = c["max_fee"].as_str().unwrap().parse().unwrap();
        let deadline = c["deadline"].as_u64().unwrap();
        let name = v["name"].as_str().unwrap();

        let h = w.view(w.escrow, E::getDepositHashCall { d: d.to_sol() });
        assert_eq!(h, b256(&v["deposit_hash"]), "{name}: getDepositHash");
        assert_eq!(
            w.view(w.escrow, E::domainSeparatorCall {}),
            b256(&v["domain_separator"]),
            "{name}"
        );
        let claim_digest = w.view(
            w.escrow,
            E::getClaimDigestCall {
                claimKey: claim_key,
                depositHash: h,
                to,
                maxFee: U96::from(max_fee),
                deadline: U40::from(deadline),
            },
        );
        assert_eq!(
            claim_digest,
            b256(&v["claim_digest"]),
            "{name}: getClaimDigest"
        );
        let attest_digest = w.view(
            w.escrow,
            E::getAttestHashCall {
                claimKey: claim_key,
                depositHash: h,
                to,
                deadline: U40::from(deadline),
            },
        );
        if !v["attest_digest"].is_null() {
            assert_eq!(
                attest_digest,
                b256(&v["attest_digest"]),
                "{name}: getAttestHash"
            );
        }

        // ERC-5267 names the same domain.
        let dom = w.view(w.escrow, E::eip712DomainCall {});
        assert_eq!(dom.fields.0, [0x0f]);
        assert_eq!(
            (dom.name.as_str(), dom.version.as_str()),
            (eip712::DOMAIN_NAME, eip712::DOMAIN_VERSION)
        );
        assert_eq!(
            (dom.chainId, dom.verifyingContract),
            (U256::from(chain_id), w.escrow)
        );
        assert_eq!(dom.salt, B256::ZERO);
        assert!(dom.extensions.is_empty());

        // The contract's typehashes (internal constants since version 2: no getter) are
        // the published ones through the digests above, which hash them in.

        // The published signatures claim the published deposit for real.
        if !d.is_native() {
            w.mint_and_approve(d.token, d.sender, U256::from(d.amount));
        }
        let r = w.deposit(claim_key, &d);
        let log = r.logs.iter().find(|l| l.address == w.escrow).unwrap();
        assert_eq!(
            format!("0x{}", hex::encode(&log.data.data)),
            v["deposit_encoding"].as_str().unwrap()
        );
        let args = ClaimArgs {
            claim_key,
            deposit: d,
            to,
            fee: max_fee,
            max_fee,
            deadline,
            link_sig: v["claim_signature"]
                .as_str()
                .unwrap()
                .parse::<Bytes>()
                .unwrap(),
            attestation: v["attest_signature"]
                .as_str()
                .map(|s| s.parse::<Bytes>().unwrap())
                .unwrap_or_default(),
        };
        assert_eq!(
            format!("{}", args.calldata()),
            v["claim_calldata"].as_str().unwrap(),
            "{name}: claim calldata"
        );
        let submitter = match v["submitter"].as_str() {
            None => w.relayer,
            Some(s) => {
                // Only the watcher itself may leave the attestation out.
                let who: Address = s.parse().unwrap();
                assert_eq!(who, d.watcher, "{name}: the submitter is the watcher");
                assert!(args.attestation.is_empty());
                assert_eq!(
                    revert_error(&w.claim(w.relayer, &args)),
                    EmailEscrowErrors::BadAttestation(E::BadAttestation { watcher: d.watcher }),
                    "{name}: another caller without attestation"
                );
                who
            }
        };
        expect_ok(&w.claim(submitter, &args));
        assert_eq!(
            w.balance(
                if d.is_native() {
                    Asset::Native
                } else {
                    Asset::Token(d.token)
                },
                to
            ),
            U256::from(d.amount - max_fee)
        );
        checked += 1;
    }
    assert!(checked >= 4, "only {checked} vectors ran");
}

#[test]
fn published_constants_match_the_abi_and_the_contract_source() {
    let doc = published();
    let k = &doc["constants"];
    assert_eq!(k, &constants());
    // The contract's own comments and constants name the same preimages and hashes.
    let src = include_str!("../../contracts/src/EmailEscrow.sol");
    for name in [
        "domain_type",
        "domain_name",
        "domain_version",
        "claim_type",
        "attest_type",
    ] {
        let hash = k[name]["hash"].as_str().unwrap();
        assert!(
            src.contains(&hash[2..]),
            "EmailEscrow.sol does not contain the {name} hash {hash}"
        );
    }
    let half_n = k["secp256k1_half_n"].as_str().unwrap();
    assert!(
        src.contains(half_n),
        "EmailEscrow.sol's HALF_N is not {half_n}"
    );
    assert!(src.contains(&k["claim_type"]["type"].as_str().unwrap().to_string()));
    assert!(src.contains(&k["attest_type"]["type"].as_str().unwrap().to_string()));
}

#[test]
fn every_hex_value_in_the_document_comes_from_the_checked_block() {
    // The checked blocks: this file's and the mailbox wallets' (wallet_vectors.rs).
    let mut block = String::new();
    let mut prose = DOC.to_string();
    for (begin, end) in [
        (BEGIN, END),
        (
            "<!-- wallet-vectors:begin -->",
            "<!-- wallet-vectors:end -->",
        ),
    ] {
        let (b, e) = (prose.find(begin).unwrap(), prose.find(end).unwrap());
        block.push_str(&prose[b..e].to_ascii_lowercase());
        prose.replace_range(b..e, "");
    }
    let mut seen = 0;
    let bytes = prose.as_bytes();
    let mut i = 0;
    while i + 2 <= bytes.len() {
        if bytes[i] == b'0'
            && bytes[i + 1] == b'x'
            && (i == 0 || !bytes[i - 1].is_ascii_alphanumeric())
        {
            let mut j = i + 2;
            while j < bytes.len() && bytes[j].is_ascii_hexdigit() {
                j += 1;
            }
            let token = prose[i..j].to_ascii_lowercase();
            // Selectors (4 bytes), addresses (20) and words (32); short literals like 0x00 are prose.
            if matches!(token.len(), 10 | 42 | 66) {
                assert!(
                    block.contains(&token),
                    "{token} appears in the document but not in the vector block"
                );
                seen += 1;
            }
            i = j;
        } else {
            i += 1;
        }
    }
    assert!(seen > 10, "the tables name only {seen} values");
}

#[test]
fn after_a_fork_to_another_chain_id_the_domain_follows_the_chain() {
    // The escrow caches its domain separator at deployment. Copy its deployed code
    // (immutables included) to a chain with another id, as a chain split would, and check
    // the contract uses the new id: old-chain signatures fail there, new-chain ones work.
    let home = World::on_chain(8890);
    let copier = address!("00000000000000000000000000000000c0de0001");
    // Returns the code of the account named by a 32-byte calldata word:
    // PUSH1 0 CALLDATALOAD DUP1 EXTCODESIZE DUP1 PUSH1 0 PUSH1 0 DUP5 EXTCODECOPY PUSH1 0 RETURN
    let code = hex::decode("600035803b8060006000843c6000f3").unwrap();
    home.chain.set_code(copier, code.into());
    let runtime = match home.simulate(DEPLOYER, copier, home.escrow.into_word().to_vec()) {
        springmail_sdk::chain::CallResult::Success(code) => code,
        springmail_sdk::chain::CallResult::Reverted(d) => panic!("the copier reverted: {d}"),
    };
    assert!(
        runtime.len() > 1000,
        "copied {} bytes of runtime code",
        runtime.len()
    );

    let fork = World::on_chain(81);
    assert_eq!(fork.escrow, home.escrow);
    fork.chain.set_code(fork.escrow, runtime);
    let sep = fork.view(fork.escrow, E::domainSeparatorCall {});
    assert_eq!(
        sep,
        eip712::domain(81, fork.escrow).separator(),
        "the domain names the new chain id"
    );
    assert_ne!(sep, home.view(home.escrow, E::domainSeparatorCall {}));

    let (k, d) = fork.open(Asset::Native, false, "after the fork");
    let bob = actor("bob");
    let mut args = fork.claim_args(&k, &d, bob, 0, 0);
    let home_id = EscrowId {
        chain_id: 8890,
        escrow: fork.escrow,
    };
    args.link_sig = args.auth().sign_claim(home_id, &k).to_bytes();
    let r = fork.claim(fork.relayer, &args);
    assert_eq!(
        revert_error(&r),
        EmailEscrowErrors::BadClaimSignature(E::BadClaimSignature {
            claimKey: k.address()
        })
    );
    fork.sign(&mut args, &k);
    expect_ok(&fork.claim(fork.relayer, &args));
    assert_eq!(fork.balance(Asset::Native, bob), U256::from(d.amount));
}
