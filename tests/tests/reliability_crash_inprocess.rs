//! Every crash point, in process and without services (the fast companion of
//! `cli/tests/crash_restart.rs`, which kills the real binary): the watcher stops at the
//! point, a new one starts on the same journal, and the claim is paid exactly once, with
//! exactly one claim transaction and at least one reply (two, with one Message-ID, only
//! when the crash fell between the mail server's 250 and the journal's `sent`).
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
    watcher_nth(w, data, source, sink, crash_at, 1)
}

/// As [`watcher`], crashing the `crash_nth` time the point is reached.
fn watcher_nth(
    w: &world::World,
    data: &std::path::Path,
    source: &MemorySource,
    sink: &MemorySink,
    crash_at: Option<CrashPoint>,
    crash_nth: u32,
) -> (Watcher, Arc<Metrics>) {
    let broker = world::broker_test();
    let metrics = Metrics::new();
    let watcher = Watcher::new(WatcherParts {
        client: w.relayer.clone(),
        watcher_key: w.watcher_key.clone(),
        journal: Arc::new(Journal::open_in(data).unwrap()),
        sources: vec![Box::new(source.clone())],
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
            crash_nth,
            ..Default::default()
        },
        metrics: metrics.clone(),
    })
    .unwrap();
    (watcher, metrics)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_at_every_point_then_a_restart_pays_once_and_answers_at_least_once() {
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
            // Handed over, then the crash: sent again, the same mail (same Message-ID).
            assert_eq!((replies, states), (2, vec!["sent"]), "{point}");
            let sent = sink.sent();
            assert_eq!(
                sent[0].bytes, sent[1].bytes,
                "{point}: the same reply twice"
            );
        } else {
            assert_eq!((replies, states), (1, vec!["sent"]), "{point}");
        }
        assert_eq!(source.inbox_len(), 0, "{point}: filed");
        eprintln!("{point}: paid once, one claim transaction, {replies} reply");
    }
}

/// Message-ID and In-Reply-To of every reply the sink took.
fn reply_ids(sink: &MemorySink) -> Vec<(String, String)> {
    sink.sent()
        .iter()
        .map(|m| {
            let p = mail_parser::MessageParser::default()
                .parse(&m.bytes)
                .expect("a reply parses");
            (
                p.message_id().expect("a Message-ID").to_string(),
                p.in_reply_to().as_text().expect("In-Reply-To").to_string(),
            )
        })
        .collect()
}

/// Issue 12 item 9: with 20 claims queued, a crash while a group of 8 replies was being
/// handed over lost those 8 for good (marked `sending`, then `unconfirmed` and never
/// sent). Now every claimant is answered after the restart; a reply the mail server
/// had already taken comes a second time with the same Message-ID.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_while_a_group_of_replies_is_handed_over_loses_no_reply() {
    // The 19 refusals go out in the first pass, in one group (up to 64 are marked
    // `sending` in one commit); the paid claim's reply in a later one (the 2nd group).
    for (point, nth) in [
        (CrashPoint::AfterReplyMarked, 1),
        (CrashPoint::AfterReplySent, 1),
        (CrashPoint::AfterReplyMarked, 2),
        (CrashPoint::AfterReplySent, 2),
    ] {
        let w = world::World::new().await;
        let data = tempfile::tempdir().unwrap();
        let source = MemorySource::new();
        let sink = MemorySink::new();
        let ids: Vec<String> = (0..20).map(|i| format!("group-claim-{i}")).collect();
        for id in &ids {
            source.deliver(corpus::valid_claim(&w, &world::example_com(), id));
        }
        let (mut first, _) = watcher_nth(&w, data.path(), &source, &sink, Some(point), nth);
        let mut crashed = false;
        for _ in 0..50 {
            match first.run_once().await {
                Err(WatcherError::Crashed(p)) => {
                    assert_eq!(p, point);
                    crashed = true;
                    break;
                }
                Ok(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                Err(e) => panic!("{point}:{nth}: {e}"),
            }
        }
        assert!(crashed, "{point}:{nth} was reached");
        drop(first);
        let before = sink.sent().len();
        let handed_over = if point == CrashPoint::AfterReplySent {
            1
        } else {
            0
        };

        let (mut second, metrics) = watcher(&w, data.path(), &source, &sink, None);
        let t0 = Instant::now();
        loop {
            second.run_once().await.unwrap();
            let stats = second.journal().stats().unwrap();
            if second.journal().unfinished().unwrap().is_empty() && stats.outbox_pending == 0 {
                break;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(20),
                "{point}:{nth}: not finished"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let rows = second.journal().all_messages().unwrap();
        let claimed = rows
            .iter()
            .filter(|r| r.outcome.as_ref().map(|o| o.kind) == Some(OutcomeKind::Claimed))
            .count();
        assert_eq!(claimed, 1, "{point}:{nth}: one claim paid");
        assert_eq!(
            w.sender.chain().balance(w.payee).await.unwrap(),
            U256::from(world::AMOUNT - world::FEE),
            "{point}:{nth}: paid once"
        );
        // Every claimant got an answer; copies carry one Message-ID.
        let replies = reply_ids(&sink);
        let mut duplicates = 0;
        for id in &ids {
            let to_this: Vec<&String> = replies
                .iter()
                .filter(|(_, irt)| irt == &format!("{id}@corpus.example"))
                .map(|(mid, _)| mid)
                .collect();
            assert!(!to_this.is_empty(), "{point}:{nth}: {id} got no reply");
            assert!(
                to_this.iter().all(|m| *m == to_this[0]),
                "{point}:{nth}: {id}: copies differ: {to_this:?}"
            );
            duplicates += to_this.len() - 1;
        }
        let group = if nth == 1 { 19 } else { 1 };
        assert_eq!(
            duplicates,
            group * handed_over,
            "{point}:{nth}: a second copy only of what the mail server had taken"
        );
        let stats = second.journal().stats().unwrap();
        assert_eq!(
            stats.outbox_resent, group as u64,
            "{point}:{nth}: resent counted"
        );
        assert_eq!((stats.outbox_unconfirmed, stats.outbox_given_up), (0, 0));
        let text = metrics.render();
        assert!(
            text.contains(&format!("\nspringmail_replies_resent {group}\n")),
            "{point}:{nth}: {text}"
        );
        eprintln!(
            "{point}:{nth}: {} replies before the crash, {} in all, {duplicates} duplicates, every claimant answered",
            before,
            replies.len()
        );
    }
}
