//! A claim from the claim page survives a crash at every point of the pipeline, in
//! process and without services (embedded EVM, memory mailbox): `POST /api/claims` is
//! answered once the claim is in the journal; the watcher then stops at the point; a new
//! watcher on the same journal pays it exactly once, with one claim transaction; and the
//! same POST again answers with that transaction instead of sending another.

#[path = "../corpus/world.rs"]
mod world;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use alloy::primitives::U256;
use serde_json::{json, Value};
use springmail_sdk::amount::{Amount, Asset};
use springmail_sdk::client::{SendRequest, Ticket};
use springmail_sdk::eip712::ClaimAuth;
use springmail_watcher::crash::CrashPoint;
use springmail_watcher::http::{serve, ClaimSettings};
use springmail_watcher::journal::{Journal, OutcomeKind, WEB_MAILBOX};
use springmail_watcher::metrics::Metrics;
use springmail_watcher::reply::{DkimSigningKey, MemorySink, ReplyComposer};
use springmail_watcher::service::{PipelineSettings, Watcher, WatcherError, WatcherParts};
use springmail_watcher::submit::SubmitPolicy;
use springmail_watcher::MemorySource;

fn watcher(
    w: &world::World,
    data: &std::path::Path,
    crash_at: Option<CrashPoint>,
) -> (Watcher, Arc<Metrics>) {
    let broker = world::broker_test();
    let metrics = Metrics::new();
    let watcher = Watcher::new(WatcherParts {
        client: w.relayer.clone(),
        watcher_key: w.watcher_key.clone(),
        journal: Arc::new(Journal::open_in(data).unwrap()),
        sources: vec![Box::new(MemorySource::new())],
        sink: Arc::new(MemorySink::new()),
        authenticator: w.authenticator(),
        composer: ReplyComposer::new(
            world::WATCHER_EMAIL,
            "Spring Mail watcher",
            Some((
                DkimSigningKey::from_pem(&broker.key_pem, "broker").unwrap(),
                "broker.test".into(),
                "sm".into(),
            )),
        ),
        verify: w.verify_policy(),
        submit: SubmitPolicy {
            receipt_timeout: Duration::from_secs(10),
            gas_limit: Some(300_000),
            resend_guard: Duration::ZERO,
        },
        pipeline: PipelineSettings {
            retry_base: Duration::from_secs(1),
            crash_at,
            ..Default::default()
        },
        metrics: metrics.clone(),
    })
    .unwrap();
    (watcher, metrics)
}

async fn http(watcher: &Watcher) -> (SocketAddr, tokio::task::JoinHandle<()>) {
    serve(
        "127.0.0.1:0".parse().unwrap(),
        watcher.metrics().clone(),
        60,
        Some((
            watcher.claim_backend(),
            ClaimSettings {
                answer_wait: Duration::ZERO,
                ..Default::default()
            },
        )),
    )
    .await
    .unwrap()
}

async fn link_deposit(w: &world::World) -> Ticket {
    w.sender
        .send(SendRequest::native(
            world::BOB,
            Amount::from_units(world::AMOUNT, Asset::for_chain(world::CHAIN_ID)).unwrap(),
            Duration::from_secs(86_400),
        ))
        .await
        .unwrap()
}

async fn claim_body(w: &world::World, t: &Ticket) -> String {
    let head = w.sender.chain().head().await.unwrap().timestamp;
    let auth = ClaimAuth {
        claim_key: t.link.claim_key(),
        deposit_hash: t.deposit.hash(),
        to: w.payee,
        max_fee: world::FEE,
        deadline: head + 3600,
    };
    let sig = auth.sign_claim(w.sender.escrow_id(), &t.link.secret);
    json!({
        "chainId": world::CHAIN_ID, "escrow": w.sender.escrow().to_string(),
        "claimKey": auth.claim_key.to_string(), "depositHash": auth.deposit_hash.to_string(),
        "to": w.payee.to_string(), "maxFee": world::FEE.to_string(), "deadline": auth.deadline,
        "signature": format!("0x{}", hex::encode(sig.0)),
    })
    .to_string()
}

async fn post(addr: SocketAddr, body: &str) -> (u16, Value) {
    let res = reqwest::Client::new()
        .post(format!("http://{addr}/api/claims"))
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    (res.status().as_u16(), res.json().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_claim_is_paid_once_across_a_crash_at_every_point() {
    for point in [
        CrashPoint::AfterJudge,
        CrashPoint::AfterAttest,
        CrashPoint::AfterBroadcast,
        CrashPoint::AfterSubmit,
        CrashPoint::BeforeReplies,
        CrashPoint::BeforeFiling,
        CrashPoint::AfterFiling,
    ] {
        let w = world::World::new().await;
        let t = link_deposit(&w).await;
        let body = claim_body(&w, &t).await;
        let data = tempfile::tempdir().unwrap();

        let (mut first, m1) = watcher(&w, data.path(), Some(point));
        let (addr, server) = http(&first).await;
        let (status, answer) = post(addr, &body).await;
        assert_eq!(status, 202, "{point}: {answer}");
        match first.run_once().await {
            Err(WatcherError::Crashed(p)) => assert_eq!(p, point),
            Ok(_) if matches!(point, CrashPoint::AfterAttest | CrashPoint::AfterBroadcast) => {}
            other => panic!("{point}: {other:?}"),
        }
        server.abort();
        drop(first);

        let (mut second, m2) = watcher(&w, data.path(), None);
        let t0 = Instant::now();
        loop {
            second.run_once().await.unwrap();
            if second.journal().unfinished().unwrap().is_empty() {
                break;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(20),
                "{point}: not finished"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let rows = second.journal().all_messages().unwrap();
        assert_eq!(rows.len(), 1, "{point}");
        assert_eq!(rows[0].key.mailbox, WEB_MAILBOX);
        assert_eq!(
            rows[0].outcome.as_ref().map(|o| o.kind),
            Some(OutcomeKind::Claimed),
            "{point}: {rows:?}"
        );
        assert_eq!(
            w.sender.chain().balance(w.payee).await.unwrap(),
            U256::from(world::AMOUNT - world::FEE),
            "{point}: paid once"
        );
        assert_eq!(
            m1.claims_submitted() + m2.claims_submitted(),
            1,
            "{point}: one claim transaction"
        );
        // The same POST after the restart: the recorded claim's answer, nothing new.
        let (addr, server) = http(&second).await;
        let (status, again) = post(addr, &body).await;
        assert_eq!(
            (status, again["state"].as_str()),
            (200, Some("claimed")),
            "{point}: {again}"
        );
        assert_eq!(
            again["txId"].as_str(),
            rows[0].tx_hash.as_deref(),
            "{point}"
        );
        assert_eq!(second.journal().all_messages().unwrap().len(), 1, "{point}");
        server.abort();
        eprintln!("{point}: a page claim paid once, one claim transaction");
    }
}
