//! The claim page's API over HTTP against the dev stack: every bad request gets a clear
//! RFC 9457 problem and nothing is recorded or sent; a good claim is paid once, and
//! replaying it answers with the same transaction; a burst from one client is limited.

use alloy::primitives::{Address, B256, U256};
use serde_json::{json, Value};
use springmail_e2e::fresh_address;
use springmail_e2e::page::{PageWorld, AMOUNT, FEE, RATE_LIMIT};
use springmail_sdk::keys::ClaimSecret;

async fn post(w: &PageWorld, body: String) -> (u16, String, Value) {
    let res = reqwest::Client::new()
        .post(format!("http://{}/api/claims", w.http))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    let ctype = res
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let v: Value = res.json().await.unwrap_or(Value::Null);
    (status, ctype, v)
}

#[tokio::test]
#[ignore = "needs the dev stack (dovecot, SMTP, anvil): run scripts/test"]
async fn bad_claims_are_refused_clearly_and_a_good_one_is_paid_once() {
    let w = PageWorld::new().await;
    let t = w.deposit(86_400, false).await;
    let key = t.link.claim_key();
    let open = w.stored(key).await;
    let head = w.sender.chain().head().await.unwrap().timestamp;
    let to = fresh_address();
    let id = w.sender.escrow_id();
    let body = |to: Address,
                max_fee: u128,
                secret: &ClaimSecret,
                chain: u64,
                escrow: Address,
                dh: B256| {
        let auth = springmail_sdk::eip712::ClaimAuth {
            claim_key: key,
            deposit_hash: dh,
            to,
            max_fee,
            deadline: head + 3600,
        };
        let sig = auth.sign_claim(id, secret);
        json!({
            "chainId": chain, "escrow": escrow.to_string(), "claimKey": key.to_string(),
            "depositHash": dh.to_string(), "to": to.to_string(), "maxFee": max_fee.to_string(),
            "deadline": head + 3600, "signature": format!("0x{}", hex::encode(sig.0)),
        })
        .to_string()
    };
    let secret = &t.link.secret;
    let dh = t.deposit.hash();
    let good = body(to, FEE, secret, id.chain_id, id.escrow, dh);

    // GET: the public state; problem+json for an unknown key and a malformed one.
    let res = reqwest::get(format!("http://{}/api/deposits/{key}", w.http))
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["state"], "open");
    assert_eq!(v["mode"], "link");
    assert_eq!(v["amount"], AMOUNT.to_string());
    assert_eq!(v["fee"], FEE.to_string());
    let res = reqwest::get(format!(
        "http://{}/api/deposits/{}",
        w.http,
        fresh_address()
    ))
    .await
    .unwrap();
    assert_eq!(res.status().as_u16(), 404);
    let res = reqwest::get(format!("http://{}/api/deposits/nope", w.http))
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 400);

    let other = ClaimSecret::random();
    let cases: Vec<(&str, String, u16, &str)> = vec![
        ("malformed JSON", "{\"chainId\": ".into(), 400, "malformed"),
        (
            "unknown field",
            r#"{"chainId":1,"x":2}"#.into(),
            400,
            "malformed",
        ),
        (
            "oversized body",
            format!("{{\"pad\":\"{}\"}}", "a".repeat(10_000)),
            413,
            "too-large",
        ),
        (
            "wrong chain",
            body(to, FEE, secret, 81, id.escrow, dh),
            422,
            "wrong-chain",
        ),
        (
            "wrong escrow",
            body(to, FEE, secret, id.chain_id, fresh_address(), dh),
            422,
            "wrong-escrow",
        ),
        (
            "signed by another key",
            body(to, FEE, &other, id.chain_id, id.escrow, dh),
            422,
            "bad-signature",
        ),
        (
            "fee above the signed maximum",
            body(to, FEE - 1, secret, id.chain_id, id.escrow, dh),
            422,
            "fee-too-low",
        ),
        (
            "other deposit fields",
            body(
                to,
                FEE,
                secret,
                id.chain_id,
                id.escrow,
                B256::repeat_byte(7),
            ),
            422,
            "deposit-mismatch",
        ),
        (
            "payee changed after signing",
            good.replace(&to.to_string(), &fresh_address().to_string()),
            422,
            "bad-signature",
        ),
        (
            "high-s signature",
            {
                let mut v: Value = serde_json::from_str(&good).unwrap();
                let sig = v["signature"].as_str().unwrap().to_string();
                v["signature"] = json!(format!("{}ff{}", &sig[..66], &sig[68..]));
                v.to_string()
            },
            400,
            "bad-signature",
        ),
    ];
    for (name, b, status, code) in &cases {
        let (s, ctype, v) = post(&w, b.clone()).await;
        assert_eq!(s, *status, "{name}: {v}");
        assert_eq!(ctype, "application/problem+json", "{name}");
        assert_eq!(v["code"], *code, "{name}: {v}");
        assert!(
            v["detail"].as_str().is_some_and(|d| d.len() > 20),
            "{name}: {v}"
        );
        assert_eq!(w.journal_rows(), 0, "{name} was recorded");
        assert_eq!(w.stored(key).await, open, "{name} moved the deposit");
    }
    // An unknown claim key.
    let stray = w.sender.new_link();
    let mut v: Value = serde_json::from_str(&good).unwrap();
    v["claimKey"] = json!(stray.claim_key().to_string());
    let (s, _, v) = post(&w, v.to_string()).await;
    assert_eq!(
        (s, v["code"].as_str()),
        (404, Some("unknown-deposit")),
        "{v}"
    );

    // The good claim: accepted once, paid, and a replay answers with the same transaction.
    let (s, _, first) = post(&w, good.clone()).await;
    assert!(s == 202 || s == 200, "{s} {first}");
    let (s2, _, again) = post(&w, good.clone()).await;
    assert!(s2 == 202 || s2 == 200, "{s2} {again}");
    assert_eq!(w.journal_rows(), 1, "a replay recorded a second claim");
    let mut paid = false;
    for _ in 0..150 {
        if w.stored(key).await == B256::ZERO {
            paid = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert!(paid, "the claim was not paid");
    assert_eq!(w.balance(to).await, U256::from(AMOUNT - FEE));
    let mut done = Value::Null;
    for _ in 0..50 {
        let (s, _, v) = post(&w, good.clone()).await;
        if s == 200 {
            done = v;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert_eq!(done["state"], "claimed", "{done}");
    assert!(
        done["txId"].as_str().is_some_and(|t| t.starts_with("0x")),
        "{done}"
    );
    assert_eq!(w.journal_rows(), 1);
    // Another payee for the paid deposit: a conflict, nothing sent.
    let (s, _, v) = post(
        &w,
        body(fresh_address(), FEE, secret, id.chain_id, id.escrow, dh),
    )
    .await;
    assert_eq!(s, 409, "{v}");

    // A burst of 1,000 requests from one client: the rate limit answers 429.
    let client = reqwest::Client::new();
    let mut limited = 0;
    for _ in 0..1000 {
        let res = client
            .get(format!("http://{}/api/deposits/{key}", w.http))
            .send()
            .await
            .unwrap();
        if res.status().as_u16() == 429 {
            limited += 1;
            assert_eq!(res.headers()["content-type"], "application/problem+json");
        }
    }
    assert!(
        limited >= 1000 - RATE_LIMIT as usize,
        "only {limited} of 1000 were limited"
    );
}
