//! Runs the protocol test vectors in `tests/vectors/*.json` (also published in
//! docs/PROTOCOL-TEXT.md). Each loader fails if it ran zero cases; markup cases run in
//! their LF form and again with CRLF line ends.

use std::path::PathBuf;

use serde_json::Value;
use springmail_sdk::amount::{Amount, Asset};
use springmail_sdk::email::{commitment, normalize, Salt};
use springmail_sdk::keys::{ClaimSecret, Signature};
use springmail_sdk::link::ClaimLink;
use springmail_sdk::markup::orders::{find_order, FoundOrder, Order, OrderError, Place, Recipient};
use springmail_sdk::markup::{ClaimBlock, MarkupError};
use springmail_sdk::qtum::{self, NetworkKind, QtumNetwork};
use springmail_sdk::{Address, B256};

fn load(name: &str) -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/vectors")
        .join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path:?}: {e}"))
}

fn s<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("missing string {key:?} in {v}"))
}

fn cases<'a>(v: &'a Value, key: &str) -> &'a [Value] {
    v[key]
        .as_array()
        .unwrap_or_else(|| panic!("missing array {key:?}"))
}

/// The variant name of an error: its `Debug` up to the first non-identifier character.
fn variant<E: std::fmt::Debug>(err: &E) -> String {
    format!("{err:?}")
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect()
}

fn addr(text: &str) -> Address {
    text.parse().unwrap_or_else(|e| panic!("{text}: {e}"))
}

fn bytes32(text: &str) -> [u8; 32] {
    hex::decode(text.trim_start_matches("0x"))
        .unwrap()
        .try_into()
        .unwrap()
}

fn asset(v: &Value) -> Asset {
    Asset::new(s(v, "symbol"), v["decimals"].as_u64().unwrap() as u8).unwrap()
}

#[test]
fn email_vectors() {
    let file = load("email.json");
    let mut ran = 0;
    for case in cases(&file, "cases") {
        let name = s(case, "name");
        let input = s(case, "input");
        match case.get("error") {
            Some(kind) => {
                let err = normalize(input).expect_err(name);
                assert_eq!(variant(&err), kind.as_str().unwrap(), "{name}: {err}");
            }
            None => {
                let normalized = normalize(input).unwrap_or_else(|e| panic!("{name}: {e}"));
                assert_eq!(normalized, s(case, "normalized"), "{name}");
                assert_eq!(
                    normalize(&normalized).unwrap(),
                    normalized,
                    "{name}: idempotent"
                );
                let salt = Salt::from_hex(s(case, "salt")).unwrap();
                let expected: B256 = s(case, "commitment").parse().unwrap();
                assert_eq!(commitment(input, &salt).unwrap(), expected, "{name}");
            }
        }
        ran += 1;
    }
    assert!(ran > 0, "no email vectors ran");
}

#[test]
fn qtum_vectors() {
    let file = load("qtum.json");
    let mut ran = 0;
    for case in cases(&file, "addresses") {
        let chain = case["chain_id"].as_u64().unwrap();
        let network = QtumNetwork::from_chain_id(chain).unwrap();
        let hex = addr(s(case, "hex"));
        let base58 = s(case, "base58");
        assert_eq!(qtum::encode_address(hex, network), base58, "{case}");
        assert_eq!(qtum::format_address(chain, hex), base58, "{case}");
        assert_eq!(qtum::parse_address(chain, base58).unwrap(), hex, "{case}");
        assert_eq!(
            qtum::decode_address(base58).unwrap(),
            (network.kind(), hex),
            "{case}"
        );
        ran += 1;
    }
    for case in cases(&file, "pubkeys") {
        let pubkey = hex::decode(s(case, "pubkey").trim_start_matches("0x")).unwrap();
        assert_eq!(
            qtum::hash160_of_pubkey(&pubkey),
            addr(s(case, "hash160")),
            "{case}"
        );
        ran += 1;
    }
    for case in cases(&file, "wifs") {
        let wif = qtum::decode_wif(s(case, "wif")).unwrap();
        let kind = match s(case, "network_kind") {
            "Main" => NetworkKind::Main,
            _ => NetworkKind::Test,
        };
        let compressed = case["compressed"].as_bool().unwrap();
        assert_eq!((wif.kind, wif.compressed), (kind, compressed), "{case}");
        assert_eq!(
            wif.secret.expose_bytes(),
            &bytes32(s(case, "secret")),
            "{case}"
        );
        let network = match kind {
            NetworkKind::Main => QtumNetwork::Mainnet,
            NetworkKind::Test => QtumNetwork::Regtest,
        };
        assert_eq!(
            qtum::encode_wif(&wif.secret, network, compressed),
            s(case, "wif")
        );
        if let Some(address) = case.get("qtum_address_regtest") {
            let got = qtum::qtum_address_of_secret(&wif.secret, QtumNetwork::Regtest);
            assert_eq!(got, address.as_str().unwrap());
            assert_eq!(
                qtum::qtum_sender_of_secret(&wif.secret),
                addr(s(case, "qtum_sender"))
            );
            assert_eq!(wif.secret.address(), addr(s(case, "evm_address")));
        }
        ran += 1;
    }
    for case in cases(&file, "errors") {
        let chain = case["chain_id"].as_u64().unwrap();
        let err = qtum::parse_address(chain, s(case, "input")).expect_err(&case.to_string());
        assert_eq!(variant(&err), s(case, "error"), "{case}: {err}");
        ran += 1;
    }
    assert!(ran > 0, "no qtum vectors ran");
}

#[test]
fn amount_vectors() {
    let file = load("amount.json");
    let mut ran = 0;
    for case in cases(&file, "cases") {
        let asset = asset(&case["asset"]);
        let input = s(case, "input");
        match case.get("error") {
            Some(kind) => {
                let err = Amount::parse(input, &asset).expect_err(input);
                assert_eq!(variant(&err), kind.as_str().unwrap(), "{input}: {err}");
            }
            None => {
                let amount =
                    Amount::parse(input, &asset).unwrap_or_else(|e| panic!("{input}: {e}"));
                assert_eq!(amount.units().to_string(), s(case, "units"), "{input}");
                assert_eq!(amount.to_string(), s(case, "canonical"), "{input}");
                assert_eq!(Amount::parse(s(case, "canonical"), &asset).unwrap(), amount);
            }
        }
        ran += 1;
    }
    assert!(ran > 0, "no amount vectors ran");
}

fn link_of(case: &Value) -> ClaimLink {
    ClaimLink {
        chain_id: case["chain_id"].as_u64().unwrap(),
        escrow: addr(s(case, "escrow")),
        secret: ClaimSecret::from_bytes(bytes32(s(case, "secret"))).unwrap(),
        salt: Salt::from_hex(s(case, "salt")).unwrap(),
    }
}

#[test]
fn link_vectors() {
    let file = load("link.json");
    let mut ran = 0;
    for case in cases(&file, "encode") {
        let link = link_of(case);
        assert_eq!(link.to_bare(), s(case, "bare"), "{case}");
        assert_eq!(link.to_url("claim.example"), s(case, "url"), "{case}");
        assert_eq!(ClaimLink::parse(s(case, "url")).unwrap(), link);
        if let Some(key) = case.get("claim_key") {
            assert_eq!(link.claim_key(), addr(key.as_str().unwrap()));
        }
        ran += 1;
    }
    for case in cases(&file, "parse") {
        let name = s(case, "name");
        let result = ClaimLink::parse(s(case, "input"));
        match case.get("error") {
            Some(kind) => {
                let err = result.expect_err(name);
                assert_eq!(variant(&err), kind.as_str().unwrap(), "{name}: {err}");
                if let Some(position) = case.get("position") {
                    let shown = format!("{err:?}");
                    assert!(
                        shown.contains(&format!("position: {position}")),
                        "{name}: {shown}"
                    );
                }
                if let Some(got) = case.get("got") {
                    assert!(
                        format!("{err:?}").contains(&format!("got: {got}")),
                        "{name}"
                    );
                }
            }
            None => {
                let link = result.unwrap_or_else(|e| panic!("{name}: {e}"));
                let expected = &case["expected"];
                assert_eq!(link, link_of(expected), "{name}");
                assert_eq!(link.claim_key(), addr(s(expected, "claim_key")), "{name}");
            }
        }
        ran += 1;
    }
    assert!(ran > 0, "no link vectors ran");
}

fn check_markup(name: &str, case: &Value, input: &str) {
    let tokens: Vec<Asset> = case
        .get("tokens")
        .and_then(Value::as_array)
        .map(|t| t.iter().map(asset).collect())
        .unwrap_or_default();
    let result = ClaimBlock::parse_with_assets(input, &tokens);
    if let Some(error) = case.get("error") {
        let err: MarkupError = result.expect_err(name);
        assert_eq!(variant(&err), s(error, "kind"), "{name}: {err}");
        if let Some(field) = error.get("field") {
            assert_eq!(err.field(), field.as_str(), "{name}: {err}");
        }
        if let Some(line) = error.get("line") {
            assert_eq!(
                err.line(),
                line.as_u64().map(|l| l as usize),
                "{name}: {err}"
            );
        }
        if let Some(reason) = error.get("reason") {
            let MarkupError::InvalidField { reason: got, .. } = &err else {
                panic!("{name}: expected InvalidField, got {err:?}");
            };
            assert_eq!(variant(got), reason.as_str().unwrap(), "{name}: {err}");
        }
        return;
    }
    let block = result.unwrap_or_else(|e| panic!("{name}: {e}"));
    let e = &case["expected"];
    let fee = &e["max_fee"];
    let expected = ClaimBlock {
        chain_id: e["chain_id"].as_u64().unwrap(),
        escrow: addr(s(e, "escrow")),
        claim_key: addr(s(e, "claim_key")),
        to: addr(s(e, "to")),
        max_fee: Amount::from_units(s(fee, "units").parse().unwrap(), asset(fee)).unwrap(),
        deadline: e["deadline"].as_u64().unwrap(),
        salt: Salt::from_hex(s(e, "salt")).unwrap(),
        signature: Signature::from_slice(
            "Signature",
            &hex::decode(s(e, "signature").trim_start_matches("0x")).unwrap(),
        )
        .unwrap(),
    };
    assert_eq!(block, expected, "{name}");
    // Whatever was accepted renders to a canonical block that parses back the same.
    assert_eq!(
        ClaimBlock::parse_with_assets(&block.render(), &tokens).unwrap(),
        block,
        "{name}"
    );
}

#[test]
fn markup_vectors_lf_and_crlf() {
    let file = load("markup.json");
    let mut ran = 0;
    for case in cases(&file, "cases") {
        let name = s(case, "name");
        let input = s(case, "input");
        assert!(
            !input.contains('\r'),
            "{name}: vectors are stored with LF line ends"
        );
        check_markup(name, case, input);
        check_markup(
            &format!("{name} (CRLF)"),
            case,
            &input.replace('\n', "\r\n"),
        );
        if case.get("canonical").and_then(Value::as_bool) == Some(true) {
            let tokens: Vec<Asset> = case
                .get("tokens")
                .and_then(Value::as_array)
                .map(|t| t.iter().map(asset).collect())
                .unwrap_or_default();
            let block = ClaimBlock::parse_with_assets(input, &tokens).unwrap();
            assert_eq!(
                block.render(),
                input,
                "{name}: render() must reproduce the vector"
            );
        }
        ran += 1;
    }
    assert!(ran > 0, "no markup vectors ran");
}

fn describe_order(found: &FoundOrder, chain_id: u64) -> Value {
    let place = match found.place {
        Place::Block { line } => serde_json::json!({"kind": "Block", "line": line}),
        Place::Body { line } => serde_json::json!({"kind": "Body", "line": line}),
        Place::Subject => serde_json::json!({"kind": "Subject"}),
    };
    let mut v = serde_json::json!({"order": found.order.kind(), "place": place});
    match &found.order {
        Order::Pay(pay) => {
            assert_eq!(pay.chain_id, chain_id);
            v["amount"] = serde_json::json!({
                "units": pay.amount.units().to_string(),
                "symbol": pay.amount.asset().symbol(),
                "decimals": pay.amount.asset().decimals(),
            });
            v["to"] = match &pay.to {
                Recipient::Email(email) => serde_json::json!({ "email": email }),
                Recipient::Address(a) => serde_json::json!({ "address": format!("{a:#x}") }),
            };
        }
        Order::Confirm(code) => v["code"] = serde_json::json!(code.map(|c| c.to_string())),
        Order::Bind(bind) => {
            v["owner"] = serde_json::json!(format!("{:#x}", bind.owner));
            v["signature"] = serde_json::json!(format!("0x{}", hex::encode(bind.signature.0)));
        }
        Order::Balance | Order::Claim => {}
    }
    v
}

fn check_order(name: &str, case: &Value, body: &str, chain_id: u64, tokens: &[Asset]) {
    let result = find_order(case["subject"].as_str(), body, chain_id, tokens);
    if let Some(error) = case.get("error") {
        let err: OrderError = result.expect_err(name);
        assert_eq!(variant(&err), s(error, "kind"), "{name}: {err}");
        let (field, line, reason) = match &err {
            OrderError::Markup(MarkupError::InvalidField {
                field,
                line,
                reason,
            }) => (Some(*field), Some(*line), Some(variant(reason))),
            OrderError::MissingField { field, .. } => (Some(*field), None, None),
            OrderError::WrongChain { line, .. } => (None, Some(*line), None),
            OrderError::Human { reason, .. } => (None, None, reason.as_ref().map(variant)),
            _ => (None, None, None),
        };
        if let Some(expected) = error.get("field") {
            assert_eq!(field, expected.as_str(), "{name}: {err}");
        }
        if let Some(expected) = error.get("line") {
            assert_eq!(line.map(|l| l as u64), expected.as_u64(), "{name}: {err}");
        }
        if let Some(expected) = error.get("reason") {
            assert_eq!(reason.as_deref(), expected.as_str(), "{name}: {err}");
        }
        return;
    }
    let found = result.unwrap_or_else(|e| panic!("{name}: {e}"));
    let got = found
        .as_ref()
        .map_or(Value::Null, |f| describe_order(f, chain_id));
    assert_eq!(got, case["expected"], "{name}");
    if let Some(found) = found {
        // Whatever was read reads back the same from its own forms.
        let human = find_order(Some(&found.order.human()), "", chain_id, tokens).unwrap();
        assert_eq!(human.map(|f| f.order), Some(found.order.clone()), "{name}");
        if let Some(block) = found.order.render_block() {
            let again = find_order(None, &block, chain_id, tokens).unwrap();
            assert_eq!(again.map(|f| f.order), Some(found.order), "{name}");
        }
    }
}

#[test]
fn order_vectors_lf_and_crlf() {
    let file = load("orders.json");
    let chain_id = file["chain_id"].as_u64().unwrap();
    let tokens: Vec<Asset> = cases(&file, "tokens").iter().map(asset).collect();
    let mut ran = 0;
    for case in cases(&file, "cases") {
        let name = s(case, "name");
        let body = s(case, "body");
        assert!(!body.contains('\r'), "{name}: stored with LF line ends");
        check_order(name, case, body, chain_id, &tokens);
        check_order(
            &format!("{name} (CRLF)"),
            case,
            &body.replace('\n', "\r\n"),
            chain_id,
            &tokens,
        );
        if case.get("canonical").and_then(Value::as_bool) == Some(true) {
            let found = find_order(None, body, chain_id, &tokens).unwrap().unwrap();
            assert_eq!(found.order.render_block().as_deref(), Some(body), "{name}");
        }
        ran += 1;
    }
    assert!(ran > 0, "no order vectors ran");
}

/// What a broker block reads as, in the vectors' terms.
fn describe_broker(block: &springmail_sdk::markup::broker::BrokerBlock) -> Value {
    use springmail_sdk::markup::broker::BrokerBlock;
    let q = |chain: u64, a: Address| Value::from(qtum::format_address(chain, a));
    match block {
        BrokerBlock::Register(b) => {
            let r = &b.registration;
            serde_json::json!({
                "kind": "REGISTER",
                "chain": r.chain_id,
                "domain": r.domain,
                "address": q(r.chain_id, r.address),
                "mailbox": r.mailbox,
                "name": r.name,
                "time": r.time,
                "owner_signed": r.signed_by_owner(&b.signature).unwrap(),
            })
        }
        BrokerBlock::Resolve(b) => {
            serde_json::json!({"kind": "RESOLVE", "name": b.name, "request": b.request})
        }
        BrokerBlock::Resolved(b) => serde_json::json!({
            "kind": "RESOLVED",
            "chain": b.chain_id,
            "name": b.name,
            "request": b.request,
            "address": b.address.map(|a| q(b.chain_id, a)),
        }),
        BrokerBlock::Receipt(b) => serde_json::json!({
            "kind": "RECEIPT",
            "chain": b.chain_id,
            "units": b.amount.units().to_string(),
            "symbol": b.amount.asset().symbol(),
            "tx": b.tx.to_string(),
            "to": q(b.chain_id, b.to),
            "from": b.from,
        }),
    }
}

fn check_broker(name: &str, case: &Value, body: &str, tokens: &[Asset]) {
    use springmail_sdk::markup::broker::{find_broker_block, BrokerError};
    let result = find_broker_block(body, tokens);
    if let Some(error) = case.get("error") {
        let err = result.expect_err(name);
        match &err {
            BrokerError::Markup(m) => {
                assert_eq!(s(error, "kind"), "Markup", "{name}: {err}");
                assert_eq!(variant(m), s(error, "variant"), "{name}: {err}");
                if let Some(field) = error.get("field") {
                    assert_eq!(m.field(), field.as_str(), "{name}: {err}");
                }
                if let Some(reason) = error.get("reason") {
                    let MarkupError::InvalidField { reason: r, .. } = m else {
                        panic!("{name}: {err}")
                    };
                    let got = match r {
                        springmail_sdk::markup::FieldError::Signature(_) => "Signature".into(),
                        r => variant(r),
                    };
                    assert_eq!(got, reason.as_str().unwrap(), "{name}: {err}");
                }
            }
            other => assert_eq!(variant(other), s(error, "kind"), "{name}: {err}"),
        }
        return;
    }
    let found = result.unwrap_or_else(|e| panic!("{name}: {e}"));
    let got = found.as_ref().map_or(Value::Null, describe_broker);
    assert_eq!(got, case["expected"], "{name}");
    if let Some(block) = found {
        let again = find_broker_block(&block.render(), tokens).unwrap();
        assert_eq!(again, Some(block), "{name}: the rendered block reads back");
    }
}

#[test]
fn broker_vectors_lf_and_crlf() {
    use springmail_sdk::markup::broker::{find_broker_block, Registration};
    let file = load("broker.json");
    let tokens: Vec<Asset> = cases(&file, "tokens").iter().map(asset).collect();
    let mut ran = 0;
    for v in cases(&file, "registration") {
        let name = s(v, "name");
        let secret = ClaimSecret::from_bytes(bytes32(s(v, "secret"))).unwrap();
        let chain_id = v["chain"].as_u64().unwrap();
        let r = Registration {
            chain_id,
            domain: s(v, "domain").into(),
            address: qtum::parse_address(chain_id, s(v, "address")).unwrap(),
            mailbox: s(v, "mailbox").into(),
            name: v["alias"].as_str().map(str::to_string),
            time: v["time"].as_u64().unwrap(),
        };
        assert_eq!(r.text(), s(v, "text"), "{name}");
        assert_eq!(r.digest().to_string(), s(v, "digest"), "{name}");
        let sig = r.sign(&secret);
        assert_eq!(
            format!("0x{}", hex::encode(sig.0)),
            s(v, "signature"),
            "{name}"
        );
        assert!(r.signed_by_owner(&sig).unwrap(), "{name}");
        ran += 1;
    }
    for case in cases(&file, "cases") {
        let name = s(case, "name");
        let body = s(case, "body");
        assert!(!body.contains('\r'), "{name}: stored with LF line ends");
        check_broker(name, case, body, &tokens);
        check_broker(
            &format!("{name} (CRLF)"),
            case,
            &body.replace('\n', "\r\n"),
            &tokens,
        );
        if case.get("canonical").and_then(Value::as_bool) == Some(true) {
            let found = find_broker_block(body, &tokens).unwrap().unwrap();
            assert_eq!(found.render(), body, "{name}");
        }
        ran += 1;
    }
    assert!(ran > 2, "no broker vectors ran");
}
