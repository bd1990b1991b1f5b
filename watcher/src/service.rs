//! The pipeline: ingest → authenticate → verify → submit → reply, with the journal
//! written before every effect.
//!
//! [`Watcher::run_once`] processes everything that is there until nothing is left in
//! flight (tests, the demo, a cron-style run); [`Watcher::run`] loops until shutdown,
//! waiting for new mail with IDLE (or polling) between passes and reconnecting with
//! backoff when the mail server or the chain goes away.
//!
//! One pass: finished submissions are recorded; new mail is fetched, authenticated
//! and verified, and recorded with its verdicts and the mailbox checkpoint in one
//! transaction (group commit; the bytes of a judged message are never written);
//! messages whose judgement was deferred by a transient failure are judged again;
//! accepted claims go to the submitter task; replies in the outbox are sent;
//! decided messages are filed. Each message is handled inside a tracing span with its
//! UID and a hash of its Message-ID.

use std::collections::HashSet;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use alloy::primitives::B256;
use springmail_sdk::client::SpringMail;
use springmail_sdk::keys::ClaimSecret;
use tokio::sync::{mpsc, Notify};
use tracing::{debug, info, info_span, warn, Instrument};

use crate::authenticate::{AuthOutcome, Authenticated, DropReason, MailAuthenticator};
use crate::crash::CrashSwitch;
use crate::deposits::{DepositIndex, IndexSettings};
use crate::ingest::{FetchLimits, IngestError, MailSource};
use crate::journal::{
    Checkpoint, Folder, Journal, JournalError, JournalTx, MessageRecord, MessageState, Outcome,
    OutcomeKind, QueuedReply, ReplyRetry, WEB_MAILBOX,
};
use crate::metrics::Metrics;
use crate::reply::{ReplyBody, ReplyComposer, ReplyContext, ReplySink};
use crate::submit::{
    SubmitDone, SubmitJob, SubmitOutcome, SubmitPolicy, Submitter, SubmitterHandle,
};
use crate::verify::{RefusalReason, Verdict, Verifier, VerifyPolicy};

/// Failures of the machinery (never of a message: those are outcomes).
#[derive(Debug, thiserror::Error)]
pub enum WatcherError {
    /// The journal failed: nothing proceeds without it.
    #[error(transparent)]
    Journal(#[from] JournalError),
    /// The mail source failed.
    #[error(transparent)]
    Ingest(#[from] IngestError),
    /// The chain could not be read.
    #[error("chain: {0}")]
    Chain(String),
    /// Setup is inconsistent.
    #[error("{0}")]
    Setup(String),
    /// A simulated crash (tests of crash safety).
    #[error("simulated crash at {0:?}")]
    Crashed(CrashPoint),
}

impl WatcherError {
    /// True when the loop should back off and try again.
    pub fn is_transient(&self) -> bool {
        match self {
            WatcherError::Ingest(e) => e.is_transient(),
            WatcherError::Chain(_) => true,
            _ => false,
        }
    }
}

pub use crate::crash::CrashPoint;

/// Pipeline tuning.
#[derive(Debug, Clone)]
pub struct PipelineSettings {
    /// Messages fetched (and judged, and committed together) per pass.
    pub batch_size: usize,
    /// How long to wait for new mail between passes (IDLE is re-armed after it).
    pub poll_interval: Duration,
    /// Transient failures of one message before it gets a final outcome (DNS, chain reads).
    pub max_attempts: u32,
    /// First retry delay; doubles per attempt, capped at five minutes.
    pub retry_base: Duration,
    /// Simulated crash (tests): where ([`crate::crash`]).
    pub crash_at: Option<CrashPoint>,
    /// The simulated crash fires the `crash_nth` time its point is reached (from 1).
    pub crash_nth: u32,
    /// Kill the process there (as SIGKILL) instead of failing the pass.
    pub crash_abort: bool,
    /// A reply the mail server keeps refusing for a transient reason is retried with
    /// backoff (from `retry_base`, doubling, capped at five minutes) for this long
    /// after it was queued, then given up (`expired`).
    pub reply_expiry: Duration,
}

impl Default for PipelineSettings {
    fn default() -> Self {
        PipelineSettings {
            batch_size: 256,
            poll_interval: Duration::from_secs(60),
            max_attempts: 8,
            retry_base: Duration::from_secs(5),
            crash_at: None,
            crash_nth: 1,
            crash_abort: false,
            // As long as a mail server keeps a message it cannot deliver yet.
            reply_expiry: Duration::from_secs(5 * 86_400),
        }
    }
}

/// Everything a watcher is made of. The CLI builds this from the configuration
/// ([`crate::config`]); the demo and tests build it by hand.
pub struct WatcherParts {
    /// The escrow on its chain, sending as the relayer account (it receives the fees).
    pub client: SpringMail,
    /// The key whose address deposits name as their watcher; signs attestations.
    pub watcher_key: Arc<ClaimSecret>,
    /// The journal.
    pub journal: Arc<Journal>,
    /// Where mail comes from.
    pub source: Box<dyn MailSource>,
    /// Where replies go.
    pub sink: Arc<dyn ReplySink>,
    /// DKIM and mail policy.
    pub authenticator: MailAuthenticator,
    /// Builds and signs replies.
    pub composer: ReplyComposer,
    /// Fees and margins (its `watcher` must be the key's address).
    pub verify: VerifyPolicy,
    /// Submission settings.
    pub submit: SubmitPolicy,
    /// Pipeline tuning.
    pub pipeline: PipelineSettings,
    /// Shared counters (also served at `/metrics` by [`crate::http`]).
    pub metrics: Arc<Metrics>,
}

/// What one [`Watcher::run_once`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunReport {
    /// Messages newly recorded.
    pub received: usize,
    /// Messages that reached a final outcome, by kind.
    pub decided: Vec<(OutcomeKind, String)>,
    /// Replies delivered.
    pub replies_sent: usize,
    /// Messages filed.
    pub filed: usize,
}

/// A running watcher.
pub struct Watcher {
    client: SpringMail,
    journal: Arc<Journal>,
    source: Box<dyn MailSource>,
    sink: Arc<dyn ReplySink>,
    authenticator: MailAuthenticator,
    composer: ReplyComposer,
    verifier: Verifier,
    pipeline: PipelineSettings,
    metrics: Arc<Metrics>,
    submitter: SubmitterHandle,
    done: mpsc::UnboundedReceiver<SubmitDone>,
    submitter_task: tokio::task::JoinHandle<()>,
    wake: Arc<Notify>,
    inflight: HashSet<i64>,
    report: RunReport,
    crash: Arc<CrashSwitch>,
    index: Arc<DepositIndex>,
}

impl std::fmt::Debug for Watcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watcher")
            .field("client", &self.client)
            .field("source", &self.source.describe())
            .field("sink", &self.sink.describe())
            .finish()
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.submitter_task.abort();
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// What a judged message becomes, before it is committed.
enum Judgement {
    Dropped(DropReason),
    Refused(Box<Authenticated>, RefusalReason),
    Accepted(Box<Authenticated>, Box<crate::verify::ClaimPlan>),
    /// Same Message-ID (hash) as a message already handled.
    Duplicate(String),
    Deferred(String),
}

impl Watcher {
    /// Assembles a watcher, checks the journal belongs to this chain, escrow and
    /// watcher, and starts the submitter task.
    pub fn new(parts: WatcherParts) -> Result<Self, WatcherError> {
        let WatcherParts {
            client,
            watcher_key,
            journal,
            source,
            sink,
            authenticator,
            composer,
            verify,
            submit,
            pipeline,
            metrics,
        } = parts;
        if verify.watcher != watcher_key.address() {
            return Err(WatcherError::Setup(format!(
                "the fee policy is for watcher {}, but the watcher key is {}",
                verify.watcher,
                watcher_key.address()
            )));
        }
        let id = client.escrow_id();
        journal.bind_identity(&format!(
            "chain {} escrow {} watcher {}",
            id.chain_id,
            id.escrow,
            watcher_key.address()
        ))?;
        let crash = Arc::new(CrashSwitch::new(
            pipeline.crash_at,
            pipeline.crash_nth,
            pipeline.crash_abort,
        ));
        if pipeline.crash_at == Some(CrashPoint::JournalCommit) {
            if !pipeline.crash_abort {
                return Err(WatcherError::Setup(
                    "the journal-commit crash point only aborts (set crash_abort)".into(),
                ));
            }
            journal.abort_before_commit(pipeline.crash_nth.max(1));
        }
        // A reply whose hand-over to the mail server a crash interrupted may or may not
        // have gone out: it is sent again (at least once), with the same bytes and so
        // the same Message-ID, which lets mail clients fold a second copy into the first.
        let resumed = journal.write(|tx| tx.outbox_resume_interrupted())?;
        if resumed > 0 {
            warn!(
                count = resumed,
                "replies were being sent when the watcher stopped; sending them again (same Message-ID)"
            );
        }
        let wake = Arc::new(Notify::new());
        let (submitter, done, submitter_task) = Submitter::new(
            client.clone(),
            watcher_key,
            journal.clone(),
            submit,
            metrics.clone(),
            wake.clone(),
        )
        .with_crash(crash.clone())
        .spawn();
        let index = Arc::new(DepositIndex::open(
            journal.clone(),
            client.clone(),
            verify.watcher,
            IndexSettings::default(),
        )?);
        let verifier = Verifier::new(client.clone(), verify).with_index(index.clone());
        Ok(Watcher {
            client,
            journal,
            source,
            sink,
            authenticator,
            composer,
            verifier,
            pipeline,
            metrics,
            submitter,
            done,
            submitter_task,
            wake,
            inflight: HashSet::new(),
            report: RunReport::default(),
            crash,
            index,
        })
    }

    /// The operator's resend: replies given up (refused for good, expired) or left
    /// `unconfirmed` by an older watcher are queued again with a fresh retry budget.
    /// Returns how many.
    pub fn resend_given_up_replies(&self) -> Result<usize, WatcherError> {
        let n = self.journal.write(|tx| tx.outbox_resend_given_up())?;
        if n > 0 {
            info!(count = n, "replies given up earlier are queued again");
        }
        Ok(n)
    }

    /// The deposit index (deposits naming this watcher, from the escrow's logs).
    pub fn deposit_index(&self) -> &Arc<DepositIndex> {
        &self.index
    }

    /// The journal.
    pub fn journal(&self) -> &Arc<Journal> {
        &self.journal
    }

    /// The counters.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// What the claim page's API needs to check claims as this watcher does and hand
    /// them to its pipeline (see [`crate::http`]).
    pub fn claim_backend(&self) -> crate::http::ClaimBackend {
        crate::http::ClaimBackend {
            client: self.client.clone(),
            journal: self.journal.clone(),
            policy: self.verifier.policy().clone(),
            metrics: self.metrics.clone(),
            wake: self.wake.clone(),
        }
    }

    /// Handles everything available now and waits until no claim is in flight.
    pub async fn run_once(&mut self) -> Result<RunReport, WatcherError> {
        self.report = RunReport::default();
        loop {
            let progressed = self.pass().await?;
            if self.inflight.is_empty() && !progressed {
                break;
            }
            if !self.inflight.is_empty() {
                // Wait for a submission to finish (or a safety timeout for the next pass).
                tokio::select! {
                    _ = self.wake.notified() => {}
                    _ = tokio::time::sleep(Duration::from_millis(200)) => {}
                }
            }
        }
        Ok(std::mem::take(&mut self.report))
    }

    /// Runs until `shutdown` completes, then finishes the current pass and returns.
    pub async fn run(
        mut self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), WatcherError> {
        let stop = Arc::new(AtomicBool::new(false));
        {
            let stop = stop.clone();
            let wake = self.wake.clone();
            tokio::spawn(async move {
                shutdown.await;
                stop.store(true, Ordering::SeqCst);
                wake.notify_one();
            });
        }
        info!(source = %self.source.describe(), sink = %self.sink.describe(), chain = %self.client.chain().describe(), "watcher started");
        let mut backoff = Duration::from_secs(1);
        while !stop.load(Ordering::SeqCst) {
            match self.pass().await {
                Ok(_) => {
                    backoff = Duration::from_secs(1);
                    self.metrics.mail_connected(true);
                }
                Err(e) if e.is_transient() => {
                    self.metrics.error();
                    if matches!(e, WatcherError::Ingest(_)) {
                        self.metrics.mail_connected(false);
                    }
                    warn!(error = %e, retry_in = ?backoff, "pass failed; retrying");
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = self.wake.notified() => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(60));
                    continue;
                }
                Err(e) => return Err(e),
            }
            if stop.load(Ordering::SeqCst) {
                break;
            }
            // Something finished meanwhile: take another pass at once.
            if !self.done.is_empty() {
                continue;
            }
            let wait = self.next_wait();
            if let Err(e) = self.source.wait(wait, &self.wake).await {
                self.metrics.error();
                self.metrics.mail_connected(false);
                warn!(error = %e, "waiting for mail failed; reconnecting");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(60));
            }
        }
        info!("watcher stopped");
        Ok(())
    }

    fn next_wait(&self) -> Duration {
        // Come back in time for the earliest deferred retry, of a message or a reply.
        let now = unix_now();
        let message = self.journal.unfinished().ok().and_then(|v| {
            v.iter()
                .filter(|m| m.next_attempt_at > now)
                .map(|m| m.next_attempt_at)
                .min()
        });
        let reply = self.journal.outbox_next_attempt().ok().flatten();
        let earliest = match (message, reply) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
        .map(|t| t.max(now));
        match earliest {
            Some(t) => self
                .pipeline
                .poll_interval
                .min(Duration::from_secs(t - now))
                // Due already (the pass just failed to send it): not a busy loop.
                .max(Duration::from_millis(500)),
            None => self.pipeline.poll_interval,
        }
    }

    fn crash(&self, at: CrashPoint) -> Result<(), WatcherError> {
        self.crash.hit(at).map_err(WatcherError::Crashed)
    }

    /// Brings the deposit index up to `head`. A failure only leaves it behind:
    /// verification reads the chain for keys the index does not hold.
    async fn catch_up_index(&self, head: u64) {
        match self.index.catch_up(head).await {
            Ok(done) if done.deposits > 0 => {
                debug!(
                    deposits = done.deposits,
                    blocks = done.blocks,
                    "deposit index caught up"
                )
            }
            Ok(_) => {}
            Err(e) => {
                warn!(error = %e, "the deposit index could not catch up; reading deposits from the chain")
            }
        }
    }

    fn backoff(&self, attempts: u32) -> u64 {
        let base = self.pipeline.retry_base.as_secs().max(1);
        unix_now() + base.saturating_mul(1u64 << attempts.min(16)).min(300)
    }

    /// One pass. Returns whether anything changed.
    async fn pass(&mut self) -> Result<bool, WatcherError> {
        let mut progressed = false;
        progressed |= self.collect_submissions().await?;
        progressed |= self.fetch().await?;
        self.crash(CrashPoint::AfterReceive)?;
        let unfinished = self.journal.unfinished()?;
        let now = unix_now();
        let due: Vec<MessageRecord> = unfinished
            .into_iter()
            .filter(|m| !self.inflight.contains(&m.id) && m.next_attempt_at <= now)
            .collect();
        let received: Vec<MessageRecord> = due
            .iter()
            .filter(|m| m.state == MessageState::Received)
            .cloned()
            .collect();
        if !received.is_empty() {
            self.judge(received).await?;
            progressed = true;
        }
        self.crash(CrashPoint::AfterJudge)?;
        // Hand accepted and in-flight claims to the submitter.
        for m in self.journal.unfinished()? {
            if self.inflight.contains(&m.id) || m.next_attempt_at > now {
                continue;
            }
            if matches!(
                m.state,
                MessageState::Accepted | MessageState::Submitting | MessageState::Submitted
            ) {
                self.dispatch(&m)?;
                progressed = true;
            }
        }
        self.crash(CrashPoint::BeforeReplies)?;
        progressed |= self.flush_outbox().await?;
        self.crash(CrashPoint::BeforeFiling)?;
        progressed |= self.file_decided().await?;
        let stats = self.journal.stats().unwrap_or_default();
        self.metrics.outbox(&stats);
        self.metrics.loop_pass(stats.unfinished);
        if let Ok(head) = self.client.chain().head().await {
            self.metrics.chain_head(head.number, head.timestamp);
            self.catch_up_index(head.number).await;
        }
        Ok(progressed)
    }

    async fn fetch(&mut self) -> Result<bool, WatcherError> {
        let mailbox = self.source.mailbox().to_string();
        let cp = self.journal.checkpoint(&mailbox)?;
        let limits = FetchLimits {
            max_messages: self.pipeline.batch_size,
            max_bytes: self.authenticator.max_message_bytes(),
        };
        let batch = self.source.fetch_new(cp, limits).await?;
        if batch.mails.is_empty() {
            return Ok(false);
        }
        if let Some(cp) = cp {
            if cp.uid_validity != batch.uid_validity {
                warn!(
                    old = cp.uid_validity,
                    new = batch.uid_validity,
                    "UIDVALIDITY changed; reading the mailbox again from the start"
                );
            }
        }
        let last_uid = batch.mails.iter().map(|m| m.key.uid).max().unwrap_or(0);
        // New mail is judged before it is recorded, and recorded with its verdict and
        // the checkpoint in one transaction (group commit). So the bytes of a judged
        // message are never written, and a crash before the commit leaves the
        // checkpoint where it was: the mail is fetched and judged again. Only mail whose
        // judgement hit a transient failure is stored with its bytes, to be retried.
        let fetched: Vec<(MessageRecord, Option<Vec<u8>>)> = batch
            .mails
            .into_iter()
            .map(|m| (MessageRecord::fetched(m.key, m.size), m.raw))
            .collect();
        let rows = self.prepare(fetched).await?;
        let (n, decided) = self.journal.write(|tx| {
            let mut n = 0;
            let mut recorded = Vec::with_capacity(rows.len());
            for (mut m, raw, p) in rows {
                let keep = if matches!(p, Prepared::Defer(_)) {
                    raw.as_deref()
                } else {
                    None
                };
                if let Some(id) = tx.insert_received(&m.key, m.size, keep)? {
                    m.id = id;
                    n += 1;
                    recorded.push((m, p));
                }
            }
            let decided = self.record_verdicts(tx, &recorded)?;
            tx.set_checkpoint(
                &mailbox,
                Checkpoint {
                    uid_validity: batch.uid_validity,
                    last_uid,
                },
            )?;
            Ok((n, decided))
        })?;
        self.metrics.checkpoint(last_uid);
        self.report.received += n;
        self.count_decided(decided);
        debug!(count = n, last_uid, "recorded and judged new mail");
        Ok(true)
    }

    /// Authenticates and verifies recorded messages whose earlier judgement was
    /// deferred, then commits every verdict in one transaction.
    async fn judge(&mut self, batch: Vec<MessageRecord>) -> Result<(), WatcherError> {
        let mut with_raw = Vec::with_capacity(batch.len());
        for m in batch {
            let raw = self.journal.raw(m.id)?;
            with_raw.push((m, raw));
        }
        let rows = self.prepare(with_raw).await?;
        let decided = self.journal.write(|tx| {
            let rows: Vec<(MessageRecord, Prepared)> =
                rows.into_iter().map(|(m, _, p)| (m, p)).collect();
            self.record_verdicts(tx, &rows)
        })?;
        self.count_decided(decided);
        Ok(())
    }

    fn count_decided(&mut self, decided: Vec<(OutcomeKind, String)>) {
        for (kind, code) in decided {
            self.metrics.outcome(kind, &code);
            self.report.decided.push((kind, code));
        }
    }

    /// Authenticates and verifies messages (their bytes beside them; `None` when too
    /// large to fetch) and composes the replies: CPU and chain reads, nothing written.
    #[allow(clippy::type_complexity)]
    async fn prepare(
        &self,
        batch: Vec<(MessageRecord, Option<Vec<u8>>)>,
    ) -> Result<Vec<(MessageRecord, Option<Vec<u8>>, Prepared)>, WatcherError> {
        let mut judged = Vec::with_capacity(batch.len());
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        let head = self.client.chain().head().await;
        if let Ok(h) = &head {
            self.catch_up_index(h.number).await;
        }
        for (m, raw) in batch {
            let span = info_span!("message", uid = m.key.uid, msg = tracing::field::Empty);
            // One bad message is never fatal: a panic while judging it (a bug, here or
            // in a parser) files it unanswered instead of killing the watcher, which
            // would meet the same message again after every restart.
            let j = futures::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(
                self.judge_one(&m, raw.as_deref(), head.as_ref().ok().map(|h| h.timestamp)),
            ))
            .instrument(span.clone())
            .await
            .unwrap_or_else(|_| {
                tracing::error!(parent: &span, "judging the message panicked; filed without an answer");
                Judgement::Dropped(DropReason::Internal)
            });
            judged.push((m, raw, j, span));
        }
        // Compose replies outside the transaction (CPU only).
        let mut rows = Vec::with_capacity(judged.len());
        // Message-ID hashes met in this batch: a second copy in one batch is a duplicate too.
        let mut batch_seen = HashSet::new();
        for (m, raw, j, span) in judged {
            let _g = span.enter();
            // A copy of a message already handled is a duplicate whatever its verdict
            // would be now (a paid claim's copy would read `already-claimed`): say so.
            let j = match j {
                Judgement::Refused(mail, _) | Judgement::Accepted(mail, _)
                    if !batch_seen.insert(mail.msgid_hash.clone())
                        || self
                            .journal
                            .seen_owner(&mail.msgid_hash)?
                            .is_some_and(|owner| owner != m.id) =>
                {
                    Judgement::Duplicate(mail.msgid_hash.clone())
                }
                j => j,
            };
            let prepared = match j {
                Judgement::Duplicate(msgid) => {
                    let dup = duplicate_outcome();
                    info!(reason = %dup.code, "duplicate of a message already handled (same Message-ID); not answered");
                    Prepared::Duplicate { msgid }
                }
                Judgement::Dropped(r) => {
                    info!(reason = r.code(), "dropped (no reply)");
                    Prepared::Decide {
                        outcome: Outcome {
                            kind: OutcomeKind::Dropped,
                            code: r.code().into(),
                            text: r.explain(),
                            tx_hash: None,
                        },
                        msgid: None,
                        ctx: None,
                        reply: None,
                    }
                }
                Judgement::Refused(mail, r) => {
                    info!(reason = r.code(), "refused");
                    let ctx = ReplyContext::of(&mail);
                    let reply = self.compose_refusal(&ctx, &r)?;
                    Prepared::Decide {
                        outcome: Outcome {
                            kind: OutcomeKind::Refused,
                            code: r.code().into(),
                            text: r.explain(),
                            tx_hash: None,
                        },
                        msgid: Some(mail.msgid_hash.clone()),
                        ctx: Some(ctx),
                        reply: Some(reply),
                    }
                }
                Judgement::Accepted(mail, plan) => {
                    info!(amount = %plan.format(plan.deposit.amount), "claim verified");
                    // The claim-in-progress reply is composed only if the deposit's
                    // claim slot turns out to be taken (rare), in `record_verdicts`.
                    Prepared::Accept {
                        plan,
                        msgid: mail.msgid_hash.clone(),
                        ctx: ReplyContext::of(&mail),
                    }
                }
                Judgement::Deferred(error) => {
                    warn!(%error, attempts = m.attempts + 1, "transient failure; will retry");
                    Prepared::Defer(error)
                }
            };
            rows.push((m, raw, prepared));
        }
        Ok(rows)
    }

    /// Writes prepared verdicts of recorded messages in `tx`: outcomes with their
    /// replies, accepted claims with their plans (one claim per deposit), deferrals.
    fn record_verdicts(
        &self,
        tx: &mut JournalTx<'_>,
        rows: &[(MessageRecord, Prepared)],
    ) -> Result<Vec<(OutcomeKind, String)>, JournalError> {
        {
            let mut decided = Vec::new();
            for (m, p) in rows {
                match p {
                    Prepared::Defer(error) => {
                        tx.defer(m.id, self.backoff(m.attempts), error)?;
                    }
                    Prepared::Duplicate { msgid } => {
                        tx.mark_seen(m.id, msgid)?;
                        let dup = duplicate_outcome();
                        tx.decide(m.id, &dup, Folder::Rejected, None, None)?;
                        decided.push((dup.kind, dup.code));
                    }
                    Prepared::Decide {
                        outcome,
                        msgid,
                        ctx,
                        reply,
                    } => {
                        if let Some(h) = msgid {
                            if tx.mark_seen(m.id, h)?.is_some() {
                                let dup = duplicate_outcome();
                                tx.decide(m.id, &dup, Folder::Rejected, None, None)?;
                                decided.push((dup.kind, dup.code));
                                continue;
                            }
                        }
                        let ctx_json = ctx
                            .as_ref()
                            .map(|c| serde_json::to_string(c).expect("serializable"));
                        let folder = Folder::Rejected;
                        let q = reply.as_ref().map(|r| QueuedReply {
                            mail_from: &r.mail_from,
                            rcpt: &r.rcpt,
                            bytes: &r.bytes,
                        });
                        tx.decide(m.id, outcome, folder, ctx_json.as_deref(), q)?;
                        decided.push((outcome.kind, outcome.code.clone()));
                    }
                    Prepared::Accept { plan, msgid, ctx } => {
                        if tx.mark_seen(m.id, msgid)?.is_some() {
                            let dup = duplicate_outcome();
                            tx.decide(m.id, &dup, Folder::Rejected, None, None)?;
                            decided.push((dup.kind, dup.code));
                            continue;
                        }
                        let ctx_json = serde_json::to_string(ctx).expect("serializable");
                        let key = plan.claim_key().to_string();
                        if tx.accept(m.id, &key, &plan.to_json(), &ctx_json)?.is_some() {
                            let r = RefusalReason::ClaimInProgress;
                            let outcome = Outcome {
                                kind: OutcomeKind::Refused,
                                code: r.code().into(),
                                text: r.explain(),
                                tx_hash: None,
                            };
                            // CPU only, inside the transaction: this is the rare case.
                            let busy = self.compose_refusal(ctx, &r).map_err(|e| {
                                tracing::error!(error = %e, "cannot compose the claim-in-progress reply; refusing without one");
                            });
                            let q = busy.as_ref().ok().map(|b| QueuedReply {
                                mail_from: &b.mail_from,
                                rcpt: &b.rcpt,
                                bytes: &b.bytes,
                            });
                            tx.decide(m.id, &outcome, Folder::Rejected, Some(&ctx_json), q)?;
                            decided.push((outcome.kind, outcome.code));
                        }
                    }
                }
            }
            Ok(decided)
        }
    }

    async fn judge_one(
        &self,
        m: &MessageRecord,
        raw: Option<&[u8]>,
        chain_now: Option<u64>,
    ) -> Judgement {
        let Some(raw) = raw else {
            return Judgement::Dropped(DropReason::TooLarge {
                size: m.size,
                max: self.authenticator.max_message_bytes(),
            });
        };
        let give_up = m.attempts + 1 >= self.pipeline.max_attempts;
        let mail = match self.authenticator.authenticate(raw).await {
            Ok(AuthOutcome::Authenticated(mail)) => mail,
            Ok(AuthOutcome::Dropped(r)) => return Judgement::Dropped(r),
            Err(e) if give_up => return Judgement::Dropped(DropReason::DkimFailed(e.to_string())),
            Err(e) => return Judgement::Deferred(e.to_string()),
        };
        tracing::Span::current().record("msg", mail.msgid_hash.as_str());
        let Some(now) = chain_now else {
            return if give_up {
                Judgement::Refused(mail, RefusalReason::Unavailable)
            } else {
                Judgement::Deferred("cannot read the chain head".into())
            };
        };
        match self.verifier.verify(&mail, now).await {
            Ok(Verdict::Accepted(plan)) => Judgement::Accepted(mail, plan),
            Ok(Verdict::Refused(r)) => Judgement::Refused(mail, r),
            Err(e) if give_up || !e.is_transient() && m.attempts + 1 >= 2 => {
                Judgement::Refused(mail, RefusalReason::Unavailable)
            }
            Err(e) => Judgement::Deferred(e.to_string()),
        }
    }

    fn compose_refusal(
        &self,
        ctx: &ReplyContext,
        r: &RefusalReason,
    ) -> Result<crate::reply::OutgoingMail, WatcherError> {
        self.composer
            .compose(
                ctx,
                &ReplyBody::Refused {
                    reason: r.explain(),
                },
                unix_now(),
            )
            .map_err(|e| WatcherError::Setup(e.to_string()))
    }

    fn dispatch(&mut self, m: &MessageRecord) -> Result<(), WatcherError> {
        let plan_json = m.plan.as_deref().ok_or_else(|| JournalError::Corrupt {
            path: self.journal.path().to_path_buf(),
            what: "claim plan",
            reason: format!("message {} is {} without a plan", m.id, m.state.as_str()),
        })?;
        let plan = crate::verify::ClaimPlan::from_json(plan_json).map_err(|reason| {
            JournalError::Corrupt {
                path: self.journal.path().to_path_buf(),
                what: "claim plan",
                reason,
            }
        })?;
        let tx_hash = m.tx_hash.as_deref().and_then(|t| t.parse::<B256>().ok());
        let span = info_span!(
            "message",
            uid = m.key.uid,
            msg = m.msgid_hash.as_deref().unwrap_or("")
        );
        let job = SubmitJob {
            row: m.id,
            plan,
            state: m.state,
            tx_hash,
            span,
        };
        if !self.submitter.submit(job) {
            return Err(WatcherError::Setup("the submitter task has stopped".into()));
        }
        self.inflight.insert(m.id);
        Ok(())
    }

    /// Records finished submissions: outcome and reply in one transaction each batch.
    async fn collect_submissions(&mut self) -> Result<bool, WatcherError> {
        let mut finished = Vec::new();
        while let Ok(done) = self.done.try_recv() {
            finished.push(done);
        }
        if finished.is_empty() {
            return Ok(false);
        }
        self.crash(CrashPoint::AfterSubmit)?;
        let chain_id = self.client.escrow_id().chain_id;
        let mut prepared = Vec::new();
        for done in finished {
            self.inflight.remove(&done.row);
            let Some(m) = self.journal.message(done.row)? else {
                continue;
            };
            let ctx: Option<ReplyContext> = m
                .reply_ctx
                .as_deref()
                .and_then(|c| serde_json::from_str(c).ok());
            let plan = m
                .plan
                .as_deref()
                .and_then(|p| crate::verify::ClaimPlan::from_json(p).ok());
            let span = info_span!(
                "message",
                uid = m.key.uid,
                msg = m.msgid_hash.as_deref().unwrap_or("")
            );
            let _g = span.enter();
            match (done.outcome, ctx, plan) {
                (SubmitOutcome::Retry { error }, _, _) => {
                    warn!(%error, "submission will be retried after re-reading the chain");
                    prepared.push((m, PreparedSettle::Defer(error)));
                }
                (SubmitOutcome::Claimed { tx_hash, .. }, Some(ctx), Some(plan)) => {
                    info!(tx = %tx_hash, "claim paid");
                    let body = ReplyBody::Claimed {
                        paid: plan.format(plan.payout()),
                        fee: plan.format(plan.fee),
                        to: springmail_sdk::qtum::format_address(chain_id, plan.signed.auth.to),
                        tx_hash: tx_hash.to_string(),
                    };
                    let reply = self
                        .composer
                        .compose(&ctx, &body, unix_now())
                        .map_err(|e| WatcherError::Setup(e.to_string()))?;
                    let outcome = Outcome {
                        kind: OutcomeKind::Claimed,
                        code: "claimed".into(),
                        text: format!(
                            "paid {} to {} (fee {})",
                            plan.format(plan.payout()),
                            springmail_sdk::qtum::format_address(chain_id, plan.signed.auth.to),
                            plan.format(plan.fee)
                        ),
                        tx_hash: Some(tx_hash.to_string()),
                    };
                    prepared.push((
                        m,
                        PreparedSettle::Decide(outcome, Folder::Processed, Some(reply)),
                    ));
                }
                (SubmitOutcome::Refused(r), ctx, _) => {
                    info!(reason = r.code(), "claim not paid");
                    let reply = match &ctx {
                        Some(ctx) => Some(self.compose_refusal(ctx, &r)?),
                        None => None,
                    };
                    let outcome = Outcome {
                        kind: OutcomeKind::Refused,
                        code: r.code().into(),
                        text: r.explain(),
                        tx_hash: None,
                    };
                    prepared.push((m, PreparedSettle::Decide(outcome, Folder::Rejected, reply)));
                }
                (SubmitOutcome::Claimed { tx_hash, .. }, None, Some(plan))
                    if m.key.mailbox == WEB_MAILBOX =>
                {
                    // A claim from the claim page: no mail to answer; the page reads the outcome.
                    info!(tx = %tx_hash, "claim paid (claim page)");
                    let outcome = Outcome {
                        kind: OutcomeKind::Claimed,
                        code: "claimed".into(),
                        text: format!(
                            "paid {} to {} (fee {})",
                            plan.format(plan.payout()),
                            springmail_sdk::qtum::format_address(chain_id, plan.signed.auth.to),
                            plan.format(plan.fee)
                        ),
                        tx_hash: Some(tx_hash.to_string()),
                    };
                    prepared.push((m, PreparedSettle::Decide(outcome, Folder::Processed, None)));
                }
                (SubmitOutcome::Claimed { .. }, _, _) => {
                    return Err(WatcherError::Journal(JournalError::Corrupt {
                        path: self.journal.path().to_path_buf(),
                        what: "reply context",
                        reason: format!("message {} has no reply context or plan", m.id),
                    }))
                }
            }
        }
        let decided = self.journal.write(|tx| {
            let mut decided = Vec::new();
            for (m, p) in &prepared {
                match p {
                    PreparedSettle::Defer(error) => {
                        tx.defer(m.id, self.backoff(m.attempts), error)?
                    }
                    PreparedSettle::Decide(outcome, folder, reply) => {
                        let q = reply.as_ref().map(|r| QueuedReply {
                            mail_from: &r.mail_from,
                            rcpt: &r.rcpt,
                            bytes: &r.bytes,
                        });
                        tx.decide(m.id, outcome, *folder, None, q)?;
                        decided.push((outcome.kind, outcome.code.clone()));
                    }
                }
            }
            Ok(decided)
        })?;
        for (kind, code) in decided {
            self.metrics.outcome(kind, &code);
            self.report.decided.push((kind, code));
        }
        Ok(true)
    }

    /// Sends the due replies, [`REPLY_CONCURRENCY`] at a time: a reply costs a round
    /// trip to the mail server (tens of ms), and one by one they held up the next
    /// fetch under load.
    async fn flush_outbox(&mut self) -> Result<bool, WatcherError> {
        let mut due = self.journal.outbox_due(unix_now())?.into_iter().peekable();
        let mut any = false;
        while due.peek().is_some() {
            let group: Vec<_> = due.by_ref().take(REPLY_CONCURRENCY).collect();
            // `sending` marks the hand-over: a crash during it sends these again at the
            // next start (at least once; the same Message-ID, so a copy folds).
            self.journal
                .write(|tx| group.iter().try_for_each(|item| tx.outbox_sending(item.id)))?;
            self.crash(CrashPoint::AfterReplyMarked)?;
            let sink = self.sink.clone();
            let results = futures::future::join_all(group.iter().map(|item| {
                let sink = sink.clone();
                async move {
                    let mail = crate::reply::OutgoingMail {
                        mail_from: item.mail_from.clone(),
                        rcpt: item.rcpt.clone(),
                        bytes: item.bytes.clone(),
                    };
                    sink.send(&mail).await
                }
            }))
            .await;
            if results.iter().any(Result::is_ok) {
                self.crash(CrashPoint::AfterReplySent)?;
            }
            let mut failed = Vec::new();
            for (item, result) in group.iter().zip(&results) {
                match result {
                    Ok(()) => {
                        self.metrics.reply(true);
                        self.report.replies_sent += 1;
                        any = true;
                    }
                    Err(e) => {
                        self.metrics.reply(false);
                        let now = unix_now();
                        let age = now.saturating_sub(item.created_at);
                        let next = if !e.transient {
                            warn!(error = %e, outbox = item.id, attempts = item.attempts + 1, "the mail server refused a reply for good; given up");
                            ReplyRetry::Failed
                        } else if age >= self.pipeline.reply_expiry.as_secs() {
                            warn!(error = %e, outbox = item.id, attempts = item.attempts + 1, age_secs = age, "a reply could not be sent before it expired; given up");
                            ReplyRetry::Expired
                        } else {
                            let at = self.backoff(item.attempts);
                            warn!(error = %e, outbox = item.id, attempts = item.attempts + 1, retry_in_secs = at.saturating_sub(now), "sending a reply failed; will retry");
                            ReplyRetry::At(at)
                        };
                        failed.push((item.id, e.message.clone(), next));
                    }
                }
            }
            self.journal.write(|tx| {
                for (item, result) in group.iter().zip(&results) {
                    if result.is_ok() {
                        tx.outbox_sent(item.id)?;
                    }
                }
                for (id, message, next) in &failed {
                    tx.outbox_failed(*id, message, *next)?;
                }
                Ok(())
            })?;
        }
        Ok(any)
    }

    async fn file_decided(&mut self) -> Result<bool, WatcherError> {
        let mut any = false;
        for m in self.journal.unfinished()? {
            if m.state != MessageState::Decided {
                continue;
            }
            let folder = m.folder.unwrap_or(Folder::Rejected);
            if m.key.mailbox != WEB_MAILBOX {
                self.source.file(&m.key, folder).await?;
            }
            self.crash(CrashPoint::AfterFiling)?;
            self.journal.write(|tx| tx.mark_done(m.id))?;
            self.report.filed += 1;
            any = true;
        }
        Ok(any)
    }
}

/// Replies handed to the mail server at once, each over its own connection.
const REPLY_CONCURRENCY: usize = 8;

fn duplicate_outcome() -> Outcome {
    Outcome {
        kind: OutcomeKind::Duplicate,
        code: "duplicate".into(),
        text: "a copy of a message that was already handled (same Message-ID); not answered again"
            .into(),
        tx_hash: None,
    }
}

enum Prepared {
    Decide {
        outcome: Outcome,
        msgid: Option<String>,
        ctx: Option<ReplyContext>,
        reply: Option<crate::reply::OutgoingMail>,
    },
    Accept {
        plan: Box<crate::verify::ClaimPlan>,
        msgid: String,
        ctx: ReplyContext,
    },
    /// A copy of a message already handled (its Message-ID hash).
    Duplicate {
        msgid: String,
    },
    Defer(String),
}

enum PreparedSettle {
    Decide(Outcome, Folder, Option<crate::reply::OutgoingMail>),
    Defer(String),
}
