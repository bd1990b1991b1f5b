//! Every crash point, in process and without services (the fast companion of
//! `cli/tests/crash_restart.rs`, which kills the real binary): the watcher stops at the
//! point, a new one starts on the same journal, and the claim is paid exactly once, with
//! exactly one claim transaction and at most one reply.
//!
//! In process a "crash" drops the watcher (and its submitter task) at the point, which
//! loses everything not in the journal, as SIGKILL does. The submitter's points
//! (`after-attest`, `after-broadcast`) end the job as a transient failure there, the
//! way a restart finds it. `journal-commit` only exists as a real abort; the binary
//! harness covers it.

#[path = "../corpus/corpus.rs"]
mod corpus;
#[path = "../corpus/world.rs"]
mod world;

use std::sync::Arc;
use std::time::{Duration, Instant};

use alloy::primitives::U256;
use springmail_watcher::crash::CrashPoint;
use springmail_watcher::journal::{Journal, OutcomeKind};
use springmail_watcher::metrics::Metrics;
use springmail_watcher::reply::{DkimSigningKey, MemorySink, ReplyComposer};
use springmail_watcher::service::{PipelineSettings, Watcher, WatcherError, WatcherParts};
use springmail_watcher::submit::SubmitPolicy;
use springmail_watcher::MemorySource;

fn watcher(
    w: &world::World,
    data: &std::path::Path,
    source: &MemorySource,
    sink: &MemorySink,
    crash_at: Option<CrashPoint>,
) -> (Watcher, Arc<Metrics>) {
    let broker = world::broker_test();
    let metrics = Metrics::new();
    let watcher = Watcher::new(WatcherParts {
        client: w.relayer.clone(),
        watcher_key: w.watcher_key.clone(),
        journal: Arc::new(Journal::open_in(data).unwrap()),
        source: Box::new(source.clone()),
        sink: Arc::new(sink.clone()),
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_at_every_point_then_a_restart_pays_once_and_answers_at_most_once() {
    for point in CrashPoint::ALL
        .into_iter()
        .filter(|p| *p != CrashPoint::JournalCommit)
    {
        let w = world::World::new().await;
        let data = tempfile::tempdir().unwrap();
        let source = MemorySource::new();
        let sink = MemorySink::new();
        source.deliver(corpus::valid_claim(
            &w,
            &world::example_com(),
            "crash-claim",
        ));

        let (mut first, m1) = watcher(&w, data.path(), &source, &sink, Some(point));
        match first.run_once().await {
            Err(WatcherError::Crashed(p)) => assert_eq!(p, point),
            // The submitter's points end the job as a transient failure (no Err).
            Ok(_) if matches!(point, CrashPoint::AfterAttest | CrashPoint::AfterBroadcast) => {}
            other => panic!("{point}: {other:?}"),
        }
        drop(first);

        let (mut second, m2) = watcher(&w, data.path(), &source, &sink, None);
        let t0 = Instant::now();
        loop {
            second.run_once().await.unwrap();
            if second.journal().unfinished().unwrap().is_empty() {
                break;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(20),
                "{point}: not finished: {:?}",
                second.journal().unfinished()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let rows = second.journal().all_messages().unwrap();
        assert_eq!(rows.len(), 1, "{point}");
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
        let replies = sink.sent().len();
        let outbox = second.journal().outbox_for(rows[0].id).unwrap();
        let states: Vec<&str> = outbox.iter().map(|(s, _)| s.as_str()).collect();
        assert_eq!(outbox.len(), 1, "{point}: one reply queued");
        if point == CrashPoint::AfterReplySent {
            // Handed over, then the crash: never sent again.
            assert_eq!((replies, states), (1, vec!["unconfirmed"]), "{point}");
        } else {
            assert_eq!((replies, states), (1, vec!["sent"]), "{point}");
        }
        assert_eq!(source.inbox_len(), 0, "{point}: filed");
        eprintln!("{point}: paid once, one claim transaction, {replies} reply");
    }
}
