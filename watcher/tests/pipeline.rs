//! The whole pipeline in process: embedded chain, memory mailbox, memory sink, DKIM
//! keys pinned (no network), the chain clock pinned.

use std::sync::Arc;
use std::time::Duration;

use alloy::primitives::{Address, U256};
use springmail_sdk::chain::embedded::EmbeddedChain;
use springmail_sdk::chain::Chain;
use springmail_sdk::client::{DepositStatus, SendRequest, SpringMail, Ticket};
use springmail_sdk::keys::ClaimSecret;
use springmail_watcher::authenticate::{AuthPolicy, DkimKeys, MailAuthenticator, PinnedRecords};
use springmail_watcher::journal::{Folder, Journal, MessageState, OutcomeKind};
use springmail_watcher::metrics::Metrics;
use springmail_watcher::reply::{
    DkimSigningKey, MemorySink, OutgoingMail, ReplyComposer, ReplySink, SinkError,
};
use springmail_watcher::service::{
    CrashPoint, PipelineSettings, Watcher, WatcherError, WatcherParts,
};
use springmail_watcher::submit::SubmitPolicy;
use springmail_watcher::testkit::{claim_block, claim_body, mail, TestDomain};
use springmail_watcher::verify::VerifyPolicy;
use springmail_watcher::{MailSource, MemorySource};

const T0: u64 = 1_767_225_600;
const AMOUNT: u128 = 150_000_000; // 1.5 QTUM
const FEE: u128 = 100_000; // 0.001 QTUM
const BOB: &str = "bob@example.com";

struct World {
    chain: EmbeddedChain,
    sender: SpringMail,
    watcher_key: Arc<ClaimSecret>,
    example: TestDomain,
    other: TestDomain,
    broker: TestDomain,
    pins: PinnedRecords,
    dir: tempfile::TempDir,
    source: MemorySource,
    sink: MemorySink,
    bob_wallet: Address,
}

impl World {
    async fn new() -> Self {
        let chain = EmbeddedChain::with_genesis_time(8890, T0);
        let alice = Address::repeat_byte(0xa1);
        chain.fund(alice, U256::from(100_000_000_000u64));
        let sender = SpringMail::deploy(Arc::new(chain.as_account(alice)))
            .await
            .unwrap();
        let example = TestDomain::new("example.com");
        let other = TestDomain::new("example.net");
        let broker = TestDomain::new("broker.test");
        let mut pins = PinnedRecords::new();
        example.pin(&mut pins);
        other.pin(&mut pins);
        broker.pin(&mut pins);
        World {
            chain,
            sender,
            watcher_key: Arc::new(ClaimSecret::random()),
            example,
            other,
            broker,
            pins,
            dir: tempfile::tempdir().unwrap(),
            source: MemorySource::new(),
            sink: MemorySink::new(),
            bob_wallet: Address::repeat_byte(0xb0),
        }
    }

    async fn deposit_to(&self, email: &str, watcher: Option<Address>, expires_in: u64) -> Ticket {
        let mut req = SendRequest::native(
            email,
            springmail_sdk::amount::Amount::from_units(
                AMOUNT,
                springmail_sdk::amount::Asset::qtum(),
            )
            .unwrap(),
            std::time::Duration::from_secs(expires_in),
        );
        req.watcher = watcher;
        self.sender.send(req).await.unwrap()
    }

    async fn deposit(&self) -> Ticket {
        self.deposit_to(BOB, Some(self.watcher_key.address()), 7 * 86_400)
            .await
    }

    fn claim_text(&self, ticket: &Ticket, max_fee: u128) -> String {
        let block = claim_block(
            &self.sender,
            ticket,
            self.bob_wallet,
            max_fee,
            T0 + 30 * 86_400,
        );
        claim_body(&block)
    }

    fn bob_mail(&self, id: &str, body: &str) -> Vec<u8> {
        self.example.sign(&mail(
            BOB,
            "watcher@broker.test",
            "Re: You have been sent 1.5 QTUM",
            id,
            Some("notify-1@sender.test"),
            body,
        ))
    }

    fn watcher(&self, crash_at: Option<CrashPoint>) -> Watcher {
        self.watcher_with(
            Arc::new(self.sink.clone()),
            PipelineSettings {
                retry_base: Duration::from_secs(1),
                crash_at,
                ..Default::default()
            },
        )
    }

    fn watcher_with(&self, sink: Arc<dyn ReplySink>, pipeline: PipelineSettings) -> Watcher {
        self.watcher_doors(sink, pipeline, vec![Box::new(self.source.clone())])
    }

    fn watcher_doors(
        &self,
        sink: Arc<dyn ReplySink>,
        pipeline: PipelineSettings,
        sources: Vec<Box<dyn MailSource>>,
    ) -> Watcher {
        self.try_watcher_doors(sink, pipeline, sources).unwrap()
    }

    fn try_watcher_doors(
        &self,
        sink: Arc<dyn ReplySink>,
        pipeline: PipelineSettings,
        sources: Vec<Box<dyn MailSource>>,
    ) -> Result<Watcher, springmail_watcher::WatcherError> {
        let journal = Arc::new(Journal::open_in(self.dir.path()).unwrap());
        let relayer = Arc::new(self.chain.as_account(self.watcher_key.address()));
        let client = SpringMail::new(relayer, self.sender.escrow())
            .with_start_block(self.sender.start_block());
        let dkim = DkimSigningKey::from_pem(&self.broker.key_pem, "broker key").unwrap();
        Watcher::new(WatcherParts {
            client,
            watcher_key: self.watcher_key.clone(),
            journal,
            sources,
            sink,
            authenticator: MailAuthenticator::new(
                DkimKeys::pinned(self.pins.clone()),
                AuthPolicy {
                    max_message_bytes: 1 << 20,
                    own_addresses: vec!["watcher@broker.test".into()],
                },
            ),
            composer: ReplyComposer::new(
                "watcher@broker.test",
                "Spring Mail watcher",
                Some((dkim, "broker.test".into(), "sm".into())),
            ),
            verify: VerifyPolicy {
                watcher: self.watcher_key.address(),
                native_fee: FEE,
                tokens: vec![],
                min_time_left: 60,
            },
            submit: SubmitPolicy {
                receipt_timeout: Duration::from_secs(5),
                gas_limit: None,
                resend_guard: Duration::ZERO,
            },
            pipeline,
            metrics: Metrics::new(),
        })
    }

    async fn balance(&self, who: Address) -> U256 {
        self.chain.balance(who).await.unwrap()
    }

    fn replies_text(&self) -> Vec<String> {
        self.sink
            .sent()
            .iter()
            .map(|m| String::from_utf8_lossy(&m.bytes).into_owned())
            .collect()
    }
}

async fn status(w: &World, t: &Ticket) -> DepositStatus {
    w.sender.status(t.link.claim_key()).await.unwrap()
}

#[tokio::test]
async fn a_signed_claim_is_paid_and_answered_in_thread() {
    let w = World::new().await;
    let t = w.deposit().await;
    let before = w.balance(w.bob_wallet).await;
    w.source
        .deliver(w.bob_mail("claim-1@example.com", &w.claim_text(&t, 200_000)));
    let mut watcher = w.watcher(None);
    let report = watcher.run_once().await.unwrap();
    assert_eq!(
        report.decided,
        vec![(OutcomeKind::Claimed, "claimed".to_string())]
    );
    assert_eq!(
        w.balance(w.bob_wallet).await - before,
        U256::from(AMOUNT - FEE)
    );
    let tx = match status(&w, &t).await {
        DepositStatus::Claimed {
            tx_hash,
            fee,
            relayer,
            ..
        } => {
            assert_eq!(fee, FEE);
            assert_eq!(relayer, w.watcher_key.address());
            tx_hash
        }
        other => panic!("{other:?}"),
    };
    // One reply, threaded, DKIM-signed by the broker, with the transaction id and amounts.
    let replies = w.replies_text();
    assert_eq!(replies.len(), 1);
    let r = &replies[0];
    assert!(r.starts_with("DKIM-Signature:"), "{r}");
    assert!(r.contains("In-Reply-To: <claim-1@example.com>"), "{r}");
    assert!(
        r.contains("References: <notify-1@sender.test> <claim-1@example.com>"),
        "{r}"
    );
    assert!(
        r.contains("Subject: Re: You have been sent 1.5 QTUM"),
        "{r}"
    );
    assert!(r.contains(&tx.to_string()), "{r}");
    assert!(r.contains("1.499 QTUM") && r.contains("0.001 QTUM"), "{r}");
    assert!(r.contains("Auto-Submitted: auto-replied"));
    assert_eq!(w.sink.sent()[0].rcpt, BOB);
    // The reply itself verifies against the broker's pinned key.
    assert!(
        springmail_watcher::testkit::dkim_passes(&w.sink.sent()[0].bytes, &w.pins, "broker.test")
            .await
    );
    // Filed after the outcome was committed.
    assert_eq!(w.source.inbox_len(), 0);
    assert_eq!(w.source.folder(Folder::Processed).len(), 1);
    assert!(watcher.journal().unfinished().unwrap().is_empty());
    assert_eq!(watcher.metrics().claims_submitted(), 1);
    // Nothing more happens on another pass.
    assert_eq!(watcher.run_once().await.unwrap().decided, vec![]);
    assert_eq!(w.sink.sent().len(), 1);
}

/// Runs one message through a fresh watcher and checks funds stayed, the mail was
/// filed in Rejected, and whether a reply went out (and what it says).
async fn refused(w: &World, t: &Ticket, raw: Vec<u8>, code: &str, reply_contains: Option<&str>) {
    let before_replies = w.sink.sent().len();
    let before_rejected = w.source.folder(Folder::Rejected).len();
    let stat_before = status(w, t).await;
    w.source.deliver(raw);
    let mut watcher = w.watcher(None);
    let report = watcher.run_once().await.unwrap();
    assert_eq!(report.decided.len(), 1, "{report:?}");
    assert_eq!(report.decided[0].1, code, "{report:?}");
    assert_eq!(
        status(w, t).await,
        stat_before,
        "the deposit must be untouched"
    );
    assert_eq!(w.source.folder(Folder::Rejected).len(), before_rejected + 1);
    let replies = w.replies_text();
    match reply_contains {
        Some(words) => {
            assert_eq!(replies.len(), before_replies + 1, "one reply expected");
            assert!(
                replies.last().unwrap().contains(words),
                "{}",
                replies.last().unwrap()
            );
            assert!(replies.last().unwrap().contains("your claim was not paid"));
        }
        None => assert_eq!(replies.len(), before_replies, "no reply (no backscatter)"),
    }
}

#[tokio::test]
async fn unauthenticated_mail_is_filed_without_a_reply() {
    let w = World::new().await;
    let t = w.deposit().await;
    let body = w.claim_text(&t, 200_000);
    let unsigned = mail(
        BOB,
        "watcher@broker.test",
        "Re: x",
        "u-1@example.com",
        None,
        &body,
    );
    refused(&w, &t, unsigned, "dkim-missing", None).await;
    // Signed by another domain's valid key.
    let foreign = w.other.sign(&mail(
        BOB,
        "watcher@broker.test",
        "Re: x",
        "f-1@example.com",
        None,
        &body,
    ));
    refused(&w, &t, foreign, "dkim-not-aligned", None).await;
    // Body altered after signing (mail-auth says Neutral; only Pass counts).
    let mut tampered = w.bob_mail("t-1@example.com", &body);
    let pos = tampered.windows(3).position(|x| x == b"Yes").unwrap();
    tampered[pos] = b'N';
    refused(&w, &t, tampered, "dkim-failed", None).await;
    // A partial-body signature (l=) is refused even though it verifies.
    let partial = w.example.sign_opts(
        &mail(
            BOB,
            "watcher@broker.test",
            "Re: x",
            "l-1@example.com",
            None,
            &body,
        ),
        true,
    );
    refused(&w, &t, partial, "dkim-partial-body", None).await;
    // Auto-replies and bounces are never answered.
    let auto = w.example.sign(
        &String::from_utf8(mail(
            BOB,
            "watcher@broker.test",
            "Out of office",
            "a-1@example.com",
            None,
            "away",
        ))
        .unwrap()
        .replacen("From:", "Auto-Submitted: auto-replied\r\nFrom:", 1)
        .into_bytes(),
    );
    refused(&w, &t, auto, "auto-reply", None).await;
    // 20 MB: not even read.
    let mut huge = w.bob_mail("h-1@example.com", &body);
    huge.extend(std::iter::repeat_n(b'a', 20 << 20));
    refused(&w, &t, huge, "too-large", None).await;
    assert_eq!(w.balance(w.bob_wallet).await, U256::ZERO);
}

#[tokio::test]
async fn authenticated_refusals_are_answered_with_the_reason() {
    let w = World::new().await;
    let t = w.deposit().await;
    let body = w.claim_text(&t, 200_000);

    // Carol (valid DKIM for her own domain) sends Bob's block: not the recipient.
    let carol = w.other.sign(&mail(
        "carol@example.net",
        "watcher@broker.test",
        "Re: x",
        "c-1@example.net",
        None,
        &body,
    ));
    refused(
        &w,
        &t,
        carol,
        "not-recipient",
        Some("was not sent to the address you wrote from"),
    )
    .await;

    // A malformed block.
    let broken = body.replace("Salt: 0x", "Salt: 0xzz");
    refused(
        &w,
        &t,
        w.bob_mail("m-1@example.com", &broken),
        "malformed-block",
        Some("could not be read"),
    )
    .await;

    // No block at all.
    refused(
        &w,
        &t,
        w.bob_mail("n-1@example.com", "thanks!"),
        "no-claim-block",
        Some("no BISMTP CLAIM block"),
    )
    .await;

    // Fee cap below the watcher's fee.
    let cheap = w.claim_text(&t, 1);
    refused(
        &w,
        &t,
        w.bob_mail("fee-1@example.com", &cheap),
        "fee-too-low",
        Some("charges 0.001 QTUM"),
    )
    .await;

    // A block whose signature was made for another payee.
    let forged = body.replace(
        &springmail_sdk::qtum::format_address(8890, w.bob_wallet),
        &springmail_sdk::qtum::format_address(8890, Address::repeat_byte(0xee)),
    );
    refused(
        &w,
        &t,
        w.bob_mail("s-1@example.com", &forged),
        "bad-signature",
        Some("signature"),
    )
    .await;

    // A valid block for a deposit that names another watcher.
    let other_watcher = ClaimSecret::random().address();
    let t2 = w.deposit_to(BOB, Some(other_watcher), 7 * 86_400).await;
    refused(
        &w,
        &t2,
        w.bob_mail("o-1@example.com", &w.claim_text(&t2, 200_000)),
        "other-watcher",
        Some("another watcher"),
    )
    .await;

    // An expired deposit.
    let t3 = w.deposit_to(BOB, Some(w.watcher_key.address()), 3600).await;
    w.chain.advance_time(7200);
    refused(
        &w,
        &t3,
        w.bob_mail("e-1@example.com", &w.claim_text(&t3, 200_000)),
        "expired",
        Some("expired on"),
    )
    .await;

    assert_eq!(w.balance(w.bob_wallet).await, U256::ZERO);
}

#[tokio::test]
async fn a_claimed_deposit_cannot_be_claimed_again_and_replays_are_ignored() {
    let w = World::new().await;
    let t = w.deposit().await;
    let first = w.bob_mail("claim-1@example.com", &w.claim_text(&t, 200_000));
    w.source.deliver(first.clone());
    w.watcher(None).run_once().await.unwrap();
    let paid = w.balance(w.bob_wallet).await;
    assert_eq!(paid, U256::from(AMOUNT - FEE));
    assert_eq!(w.sink.sent().len(), 1);

    // The same mail again (a replay): filed, not answered, nothing paid.
    refused(&w, &t, first, "duplicate", None).await;
    // A new mail for the same deposit: already claimed, answered.
    refused(
        &w,
        &t,
        w.bob_mail("claim-2@example.com", &w.claim_text(&t, 200_000)),
        "already-claimed",
        Some("already been claimed"),
    )
    .await;
    assert_eq!(w.balance(w.bob_wallet).await, paid);
}

#[tokio::test]
async fn two_claims_for_one_deposit_in_one_batch_pay_once() {
    let w = World::new().await;
    let t = w.deposit().await;
    w.source
        .deliver(w.bob_mail("c1@example.com", &w.claim_text(&t, 200_000)));
    w.source
        .deliver(w.bob_mail("c2@example.com", &w.claim_text(&t, 300_000)));
    let report = w.watcher(None).run_once().await.unwrap();
    let mut codes: Vec<_> = report.decided.iter().map(|(_, c)| c.as_str()).collect();
    codes.sort();
    assert_eq!(codes, vec!["claim-in-progress", "claimed"]);
    assert_eq!(w.balance(w.bob_wallet).await, U256::from(AMOUNT - FEE));
    assert_eq!(w.sink.sent().len(), 2);
}

/// A SIGKILL at each point of the pipeline, then a restart: the claim is paid exactly
/// once, answered exactly once, and the message is filed.
#[tokio::test]
async fn a_crash_anywhere_resumes_without_losing_or_repeating_the_claim() {
    for point in [
        CrashPoint::AfterReceive,
        CrashPoint::AfterJudge,
        CrashPoint::AfterSubmit,
        CrashPoint::BeforeReplies,
        CrashPoint::BeforeFiling,
    ] {
        let w = World::new().await;
        let t = w.deposit().await;
        w.source
            .deliver(w.bob_mail("claim-1@example.com", &w.claim_text(&t, 200_000)));
        {
            let mut watcher = w.watcher(Some(point));
            let err = watcher.run_once().await.unwrap_err();
            assert!(
                matches!(err, WatcherError::Crashed(p) if p == point),
                "{point:?}: {err}"
            );
        }
        let mut watcher = w.watcher(None);
        watcher.run_once().await.unwrap();
        assert_eq!(
            w.balance(w.bob_wallet).await,
            U256::from(AMOUNT - FEE),
            "{point:?}"
        );
        assert_eq!(w.sink.sent().len(), 1, "{point:?}: one reply");
        assert!(
            w.replies_text()[0].contains("your claim was paid"),
            "{point:?}"
        );
        assert_eq!(w.source.folder(Folder::Processed).len(), 1, "{point:?}");
        assert!(
            watcher.journal().unfinished().unwrap().is_empty(),
            "{point:?}"
        );
    }
}

/// A crash between the journal's `submitting` and the broadcast being recorded: the
/// restarted submitter re-reads the chain, sees the deposit paid by this watcher, and
/// finishes from the chain instead of sending again.
#[tokio::test]
async fn an_uncertain_submission_is_finished_from_chain_state() {
    let w = World::new().await;
    let t = w.deposit().await;
    w.source
        .deliver(w.bob_mail("claim-1@example.com", &w.claim_text(&t, 200_000)));
    // Judge only.
    {
        let mut watcher = w.watcher(Some(CrashPoint::AfterJudge));
        assert!(watcher.run_once().await.is_err());
    }
    let journal = Journal::open_in(w.dir.path()).unwrap();
    let m = journal.unfinished().unwrap().pop().unwrap();
    assert_eq!(m.state, MessageState::Accepted);
    // Someone (this watcher, before "crashing") broadcast the claim; the journal says only `submitting`.
    let plan =
        springmail_watcher::verify::ClaimPlan::from_json(m.plan.as_deref().unwrap()).unwrap();
    let relayer = SpringMail::new(
        Arc::new(w.chain.as_account(w.watcher_key.address())),
        w.sender.escrow(),
    );
    let att = plan
        .signed
        .auth
        .sign_attest(relayer.escrow_id(), &w.watcher_key);
    relayer
        .submit_claim(&plan.deposit, &plan.signed, plan.fee, att.to_bytes())
        .await
        .unwrap();
    journal.write(|tx| tx.mark_submitting(m.id)).unwrap();
    drop(journal);
    let mut watcher = w.watcher(None);
    watcher.run_once().await.unwrap();
    assert_eq!(
        watcher.metrics().claims_submitted(),
        0,
        "nothing was sent again"
    );
    assert_eq!(w.balance(w.bob_wallet).await, U256::from(AMOUNT - FEE));
    assert!(w.replies_text()[0].contains("your claim was paid"));
}

#[tokio::test]
async fn a_failing_mail_server_delays_replies_but_loses_none() {
    let w = World::new().await;
    let t = w.deposit().await;
    w.source
        .deliver(w.bob_mail("claim-1@example.com", &w.claim_text(&t, 200_000)));
    w.sink.fail_with(Some(springmail_watcher::reply::SinkError {
        message: "451 try later".into(),
        transient: true,
    }));
    let mut watcher = w.watcher(None);
    watcher.run_once().await.unwrap();
    assert_eq!(w.sink.sent().len(), 0);
    assert_eq!(w.balance(w.bob_wallet).await, U256::from(AMOUNT - FEE));
    w.sink.fail_with(None);
    // The outbox retries after its backoff; a restart picks it up too.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let mut watcher = w.watcher(None);
    watcher.run_once().await.unwrap();
    assert_eq!(w.sink.sent().len(), 1);
}

/// A sink that notes when each attempt was made and refuses while `down` is set.
#[derive(Clone)]
struct OutageSink {
    inner: MemorySink,
    down: Arc<std::sync::atomic::AtomicBool>,
    attempts: Arc<std::sync::Mutex<Vec<std::time::Instant>>>,
}

#[async_trait::async_trait]
impl ReplySink for OutageSink {
    async fn send(&self, mail: &OutgoingMail) -> Result<(), SinkError> {
        self.attempts
            .lock()
            .unwrap()
            .push(std::time::Instant::now());
        if self.down.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(SinkError {
                message: "connection refused".into(),
                transient: true,
            });
        }
        self.inner.send(mail).await
    }
}

fn metric(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("{name} in {text}"))
}

/// Issue 12 item 10: with the mail server down, a reply was tried once per poll
/// interval (or new mail), whatever its backoff said. The running watcher now wakes for
/// the reply's retry: several attempts, further and further apart, shown in /metrics,
/// and the reply goes out soon after the server is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_is_retried_with_backoff_while_the_mail_server_is_down_and_sent_when_it_returns() {
    let w = World::new().await;
    let t = w.deposit().await;
    let sink = OutageSink {
        inner: w.sink.clone(),
        down: Arc::new(true.into()),
        attempts: Default::default(),
    };
    let watcher = w.watcher_with(
        Arc::new(sink.clone()),
        PipelineSettings {
            // Far longer than the test: only the reply's own backoff can wake the loop.
            poll_interval: Duration::from_secs(600),
            retry_base: Duration::from_secs(1),
            ..Default::default()
        },
    );
    let metrics = watcher.metrics().clone();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(watcher.run(async move {
        let _ = stop_rx.await;
    }));
    w.source
        .deliver(w.bob_mail("claim-1@example.com", &w.claim_text(&t, 200_000)));
    // The delivery itself does not wake a memory mailbox: the first pass finds it.
    let t0 = std::time::Instant::now();
    while sink.attempts.lock().unwrap().len() < 4 {
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "retries while the server is down: {:?}",
            sink.attempts.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(w.balance(w.bob_wallet).await, U256::from(AMOUNT - FEE));
    let text = metrics.render();
    assert_eq!(metric(&text, "springmail_replies_pending"), 1, "{text}");
    assert!(
        metric(&text, "springmail_replies_failed_total") >= 3,
        "{text}"
    );
    assert!(
        metric(&text, "springmail_reply_attempts_total") >= 3,
        "{text}"
    );
    assert!(
        metric(&text, "springmail_replies_oldest_pending_age_seconds") >= 2,
        "{text}"
    );
    let gaps: Vec<Duration> = sink
        .attempts
        .lock()
        .unwrap()
        .windows(2)
        .map(|p| p[1] - p[0])
        .collect();
    // 1 s, 2 s, 4 s (whole seconds: each may come up to a second early or late).
    assert!(
        gaps[0] < Duration::from_millis(2500) && gaps[2] > gaps[0] + Duration::from_millis(500),
        "backoff grows: {gaps:?}"
    );
    assert!(w.sink.sent().is_empty());

    sink.down.store(false, std::sync::atomic::Ordering::SeqCst);
    let back = std::time::Instant::now();
    while w.sink.sent().is_empty() {
        assert!(
            back.elapsed() < Duration::from_secs(20),
            "the reply goes out once the server is back"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(w.replies_text()[0].contains("your claim was paid"));
    // The gauges follow on the next pass.
    tokio::time::sleep(Duration::from_millis(700)).await;
    let _ = stop_tx.send(());
    task.await.unwrap().unwrap();
    let text = metrics.render();
    assert_eq!(metric(&text, "springmail_replies_pending"), 0, "{text}");
    assert_eq!(
        metric(&text, "springmail_replies_oldest_pending_age_seconds"),
        0,
        "{text}"
    );
    assert_eq!(w.sink.sent().len(), 1, "sent once");
}

/// A reply the mail server keeps refusing is given up once it is older than
/// `reply_expiry`, counted, and `resend_given_up_replies` queues it again.
#[tokio::test]
async fn a_reply_that_cannot_be_sent_expires_and_the_operator_can_resend_it() {
    let w = World::new().await;
    let t = w.deposit().await;
    w.source
        .deliver(w.bob_mail("claim-1@example.com", &w.claim_text(&t, 200_000)));
    w.sink.fail_with(Some(SinkError {
        message: "421 try later".into(),
        transient: true,
    }));
    let mut watcher = w.watcher_with(
        Arc::new(w.sink.clone()),
        PipelineSettings {
            retry_base: Duration::from_secs(1),
            reply_expiry: Duration::ZERO,
            ..Default::default()
        },
    );
    watcher.run_once().await.unwrap();
    let stats = watcher.journal().stats().unwrap();
    assert_eq!((stats.outbox_pending, stats.outbox_given_up), (0, 1));
    w.sink.fail_with(None);
    assert_eq!(watcher.resend_given_up_replies().unwrap(), 1);
    drop(watcher);
    let mut watcher = w.watcher(None);
    watcher.run_once().await.unwrap();
    assert_eq!(w.sink.sent().len(), 1);
    assert_eq!(watcher.journal().stats().unwrap().outbox_given_up, 0);
}

/// What the log subscriber writes on one thread.
#[derive(Clone, Default)]
struct LogBuf(Arc<std::sync::Mutex<Vec<u8>>>);

thread_local! {
    static CAPTURE: std::cell::RefCell<Option<LogBuf>> = const { std::cell::RefCell::new(None) };
}

/// Writes into the current thread's capture buffer, if any.
struct ThreadWriter;

impl std::io::Write for ThreadWriter {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        CAPTURE.with(|c| {
            if let Some(buf) = &*c.borrow() {
                buf.0.lock().unwrap().extend_from_slice(b);
            }
        });
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Captures this thread's INFO logs from now on. One global subscriber for the test
/// binary: a scoped one (`set_default`) missed events when other tests ran beside it.
fn capture_logs() -> LogBuf {
    static INIT: std::sync::Once = std::sync::Once::new();
    INIT.call_once(|| {
        tracing_subscriber::fmt()
            .with_writer(|| ThreadWriter)
            .with_ansi(false)
            .with_max_level(tracing::Level::INFO)
            .try_init()
            .expect("no other global subscriber");
    });
    let buf = LogBuf::default();
    CAPTURE.with(|c| *c.borrow_mut() = Some(buf.clone()));
    buf
}

/// Issue 12 item 11: a paid claim's mail appended again (same Message-ID) was counted
/// `duplicate` but logged `refused reason="already-claimed"`. It is logged a duplicate.
#[tokio::test]
async fn a_copy_of_a_handled_claim_is_logged_as_a_duplicate_not_as_refused() {
    let w = World::new().await;
    let t = w.deposit().await;
    let first = w.bob_mail("claim-1@example.com", &w.claim_text(&t, 200_000));
    w.source.deliver(first.clone());
    w.watcher(None).run_once().await.unwrap();
    assert_eq!(w.sink.sent().len(), 1);

    // `#[tokio::test]` runs the watcher on this thread.
    let buf = capture_logs();
    w.source.deliver(first);
    let report = w.watcher(None).run_once().await.unwrap();
    CAPTURE.with(|c| c.borrow_mut().take());
    let log = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
    assert_eq!(
        report.decided.iter().map(|(k, _)| *k).collect::<Vec<_>>(),
        vec![OutcomeKind::Duplicate]
    );
    assert!(log.contains("duplicate"), "{log}");
    assert!(
        !log.contains("already-claimed") && !log.contains("refused"),
        "a duplicate is not logged as a refusal:\n{log}"
    );
    assert_eq!(w.sink.sent().len(), 1, "not answered again");
}

/// Claims that are ready together go out in one `claimBatch`: three deposits, three
/// claim mails, one pass: all three are paid by the same transaction, each answered,
/// and the watcher's three fees accrue to it inside the escrow.
#[tokio::test]
async fn claims_ready_together_are_paid_in_one_batch_and_fees_accrue() {
    let w = World::new().await;
    let tickets = [w.deposit().await, w.deposit().await, w.deposit().await];
    for (i, t) in tickets.iter().enumerate() {
        w.source
            .deliver(w.bob_mail(&format!("batch-{i}@example.com"), &w.claim_text(t, 200_000)));
    }
    let mut watcher = w.watcher(None);
    let report = watcher.run_once().await.unwrap();
    assert_eq!(
        report.decided,
        vec![(OutcomeKind::Claimed, "claimed".to_string()); 3]
    );
    assert_eq!(
        w.balance(w.bob_wallet).await,
        U256::from(3 * (AMOUNT - FEE))
    );
    let mut txs = Vec::new();
    for t in &tickets {
        match status(&w, t).await {
            DepositStatus::Claimed {
                tx_hash,
                fee,
                relayer,
                ..
            } => {
                assert_eq!((fee, relayer), (FEE, w.watcher_key.address()));
                txs.push(tx_hash);
            }
            other => panic!("{other:?}"),
        }
    }
    txs.dedup();
    assert_eq!(txs.len(), 1, "one transaction paid all three");
    assert_eq!(
        w.sender
            .accrued_fees(w.watcher_key.address(), Address::ZERO)
            .await
            .unwrap(),
        3 * FEE
    );
    assert_eq!(w.sink.sent().len(), 3);
    assert!(watcher.journal().unfinished().unwrap().is_empty());
}

/// A memory mailbox under another name: a second door.
struct Door(MemorySource, &'static str);

#[async_trait::async_trait]
impl MailSource for Door {
    fn mailbox(&self) -> &str {
        self.1
    }
    fn describe(&self) -> String {
        format!("door {}", self.1)
    }
    async fn fetch_new(
        &mut self,
        after: Option<springmail_watcher::journal::Checkpoint>,
        limits: springmail_watcher::ingest::FetchLimits,
    ) -> Result<springmail_watcher::ingest::FetchBatch, springmail_watcher::ingest::IngestError>
    {
        let mut batch = self.0.fetch_new(after, limits).await?;
        for m in &mut batch.mails {
            m.key.mailbox = self.1.to_string();
        }
        Ok(batch)
    }
    async fn file(
        &mut self,
        key: &springmail_watcher::journal::MailKey,
        folder: Folder,
    ) -> Result<(), springmail_watcher::ingest::IngestError> {
        let mut inner = key.clone();
        inner.mailbox = self.0.mailbox().to_string();
        self.0.file(&inner, folder).await
    }
}

/// Two doors feed one pipeline: a claim through each is paid and answered, each is
/// filed by its own door, and each door keeps its own checkpoint. Two doors with one
/// mailbox name are refused (their checkpoints would collide).
#[tokio::test]
async fn claims_through_two_doors_share_one_pipeline() {
    let w = World::new().await;
    let (a, b) = (w.deposit().await, w.deposit().await);
    let second = MemorySource::new();
    w.source
        .deliver(w.bob_mail("door-1@example.com", &w.claim_text(&a, 200_000)));
    second.deliver(w.bob_mail("door-2@example.com", &w.claim_text(&b, 200_000)));
    let settings = || PipelineSettings {
        retry_base: Duration::from_secs(1),
        ..Default::default()
    };
    let mut watcher = w.watcher_doors(
        Arc::new(w.sink.clone()),
        settings(),
        vec![
            Box::new(w.source.clone()),
            Box::new(Door(second.clone(), "smtp")),
        ],
    );
    let report = watcher.run_once().await.unwrap();
    assert_eq!(report.received, 2, "{report:?}");
    assert_eq!(
        report.decided,
        vec![(OutcomeKind::Claimed, "claimed".to_string()); 2]
    );
    assert!(matches!(
        status(&w, &a).await,
        DepositStatus::Claimed { .. }
    ));
    assert!(matches!(
        status(&w, &b).await,
        DepositStatus::Claimed { .. }
    ));
    assert_eq!(w.sink.sent().len(), 2);
    for door in [&w.source, &second] {
        assert_eq!(door.inbox_len(), 0);
        assert_eq!(door.folder(Folder::Processed).len(), 1);
    }
    let journal = watcher.journal().clone();
    assert_eq!(journal.checkpoint("INBOX").unwrap().unwrap().last_uid, 1);
    assert_eq!(journal.checkpoint("smtp").unwrap().unwrap().last_uid, 1);
    drop(watcher);

    let clash = w
        .try_watcher_doors(
            Arc::new(w.sink.clone()),
            settings(),
            vec![Box::new(w.source.clone()), Box::new(MemorySource::new())],
        )
        .expect_err("two doors named INBOX");
    assert!(clash.to_string().contains("mailbox name"), "{clash}");
}

/// The MX and an IMAP mailbox at once: the SMTP ingress's spool is its own door
/// (mailbox `SMTP`), so it no longer displaces IMAP's `INBOX`. A claim through each is
/// paid, each is filed by its own door, each door keeps its own checkpoint.
#[tokio::test]
async fn the_smtp_spool_and_imap_run_together() {
    use springmail_watcher::smtp_ingress::{Spool, SPOOL_MAILBOX};
    let w = World::new().await;
    let (a, b) = (w.deposit().await, w.deposit().await);
    let spool_dir = tempfile::tempdir().unwrap();
    let spool = Spool::open(spool_dir.path()).unwrap();
    w.source
        .deliver(w.bob_mail("imap-1@example.com", &w.claim_text(&a, 200_000)));
    spool
        .store(w.bob_mail("smtp-1@example.com", &w.claim_text(&b, 200_000)))
        .await
        .unwrap();
    let mut watcher = w.watcher_doors(
        Arc::new(w.sink.clone()),
        PipelineSettings {
            retry_base: Duration::from_secs(1),
            ..Default::default()
        },
        vec![
            Box::new(w.source.clone()),
            Box::new(spool.source().unwrap()),
        ],
    );
    let report = watcher.run_once().await.unwrap();
    assert_eq!(
        report.decided,
        vec![(OutcomeKind::Claimed, "claimed".to_string()); 2],
        "{report:?}"
    );
    for t in [&a, &b] {
        assert!(matches!(status(&w, t).await, DepositStatus::Claimed { .. }));
    }
    assert_eq!(w.source.folder(Folder::Processed).len(), 1);
    let processed = std::fs::read_dir(spool_dir.path().join("Processed")).unwrap();
    assert_eq!(processed.count(), 1);
    let journal = watcher.journal().clone();
    assert_eq!(journal.checkpoint("INBOX").unwrap().unwrap().last_uid, 1);
    assert_eq!(
        journal.checkpoint(SPOOL_MAILBOX).unwrap().unwrap().last_uid,
        1
    );
}
