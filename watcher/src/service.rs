//! The pipeline: ingest → authenticate → verify → submit → reply, with the journal
//! written before every effect.
//!
//! [`Watcher::run_once`] processes everything that is there until nothing is left in
//! flight (tests, the demo, a cron-style run); [`Watcher::run`] loops until shutdown,
//! waiting for new mail with IDLE (or polling) between passes and reconnecting with
//! backoff when the mail server or the chain goes away.
//!
//! One pass, stage by stage, each in its own module and each writing
//! [`crate::transition::Transition`]s: finished submissions are settled
//! ([`crate::settle`]); new mail is fetched from every door, judged and recorded with
//! its decision and the door's checkpoint in one commit ([`crate::judge`]; the bytes
//! of a judged message are never written); the journal's unfinished messages are read
//! once; messages whose judgement was deferred are judged again; accepted claims go
//! to the submitter task ([`crate::settle`]); replies in the outbox are sent and
//! decided messages filed ([`crate::outbox`]). Each message is handled inside a
//! tracing span with its UID and a hash of its Message-ID.
//!
//! A door is a [`MailSource`]: IMAP, a directory, memory, SMTP ingress. The claim
//! page writes its claims into the journal directly (accepted rows of the `web`
//! pseudo-mailbox) and they follow the same path from the submitter on.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use springmail_sdk::client::SpringMail;
use springmail_sdk::keys::ClaimSecret;
use tokio::sync::{mpsc, Notify};
use tracing::{debug, info, warn};

use crate::authenticate::MailAuthenticator;
use crate::crash::CrashSwitch;
use crate::deposits::{DepositIndex, IndexSettings};
use crate::ingest::{IngestError, MailSource};
use crate::journal::{Folder, Journal, JournalError, MailKey, OutcomeKind};
use crate::metrics::Metrics;
use crate::reply::{ReplyComposer, ReplyContext, ReplySink};
use crate::submit::{SubmitDone, SubmitPolicy, Submitter, SubmitterHandle};
use crate::transition::{Applied, Env, Transition};
use crate::verify::{ClaimPlan, Verifier, VerifyPolicy};

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
    /// Where mail comes from: one or more doors (IMAP, a directory, SMTP ingress),
    /// each with its own mailbox name and checkpoint.
    pub sources: Vec<Box<dyn MailSource>>,
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

/// A claim handed to the submitter: what settling it needs, so that it is not read
/// back from the journal.
pub(crate) struct Inflight {
    pub(crate) key: MailKey,
    pub(crate) plan: Box<ClaimPlan>,
    pub(crate) ctx: Option<ReplyContext>,
    pub(crate) attempts: u32,
}

/// A running watcher.
pub struct Watcher {
    pub(crate) client: SpringMail,
    pub(crate) journal: Arc<Journal>,
    pub(crate) sources: Vec<Box<dyn MailSource>>,
    pub(crate) sink: Arc<dyn ReplySink>,
    pub(crate) authenticator: MailAuthenticator,
    pub(crate) composer: Arc<ReplyComposer>,
    pub(crate) verifier: Verifier,
    pub(crate) pipeline: PipelineSettings,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) submitter: SubmitterHandle,
    pub(crate) done: mpsc::UnboundedReceiver<SubmitDone>,
    submitter_task: tokio::task::JoinHandle<()>,
    pub(crate) wake: Arc<Notify>,
    pub(crate) inflight: HashMap<i64, Inflight>,
    pub(crate) report: RunReport,
    /// Mailbox wallets, when enabled ([`Watcher::with_wallet`]).
    pub(crate) wallet: Option<Arc<crate::wallet::Wallet>>,
    crash: Arc<CrashSwitch>,
    index: Arc<DepositIndex>,
    /// The earliest deferred retry of a message, from the pass's journal read.
    next_due: Option<u64>,
    /// When the journal's counts were last read for the metrics.
    stats_at: Option<std::time::Instant>,
    /// Claims this pass's fetch accepted, committed, not yet handed to the submitter.
    pub(crate) fresh: Vec<crate::transition::AcceptedClaim>,
    /// The last pass left due replies for the next one.
    pub(crate) outbox_more: bool,
}

impl std::fmt::Debug for Watcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watcher")
            .field("client", &self.client)
            .field("sources", &self.describe_sources())
            .field("sink", &self.sink.describe())
            .finish()
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.submitter_task.abort();
    }
}

pub(crate) fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl Watcher {
    /// Assembles a watcher, checks the journal belongs to this chain, escrow and
    /// watcher, and starts the submitter task.
    pub fn new(parts: WatcherParts) -> Result<Self, WatcherError> {
        let WatcherParts {
            client,
            watcher_key,
            journal,
            sources,
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
        if sources.is_empty() {
            return Err(WatcherError::Setup("the watcher has no mail source".into()));
        }
        let mut mailboxes = std::collections::HashSet::new();
        for s in &sources {
            let name = s.mailbox();
            if name == crate::journal::WEB_MAILBOX || !mailboxes.insert(name.to_string()) {
                return Err(WatcherError::Setup(format!(
                    "two mail sources, or a source and the claim page, share the mailbox name {name:?}; each needs its own"
                )));
            }
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
            sources,
            sink,
            authenticator,
            composer: Arc::new(composer),
            verifier,
            pipeline,
            metrics,
            submitter,
            done,
            submitter_task,
            wake,
            inflight: HashMap::new(),
            report: RunReport::default(),
            wallet: None,
            crash,
            index,
            next_due: None,
            stats_at: None,
            fresh: Vec::new(),
            outbox_more: false,
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

    fn describe_sources(&self) -> String {
        self.sources
            .iter()
            .map(|s| s.describe())
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Handles everything available now and waits until no claim is in flight.
    pub async fn run_once(&mut self) -> Result<RunReport, WatcherError> {
        self.report = RunReport::default();
        loop {
            let progressed = self.pass().await?;
            if self.inflight.is_empty() && !progressed {
                break;
            }
            if !self.inflight.is_empty() && self.done.is_empty() {
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
        info!(source = %self.describe_sources(), sink = %self.sink.describe(), chain = %self.client.chain().describe(), "watcher started");
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
            // Something finished meanwhile, or replies are still due: another pass at once.
            if !self.done.is_empty() || self.outbox_more {
                continue;
            }
            let wait = self.next_wait();
            if let Err(e) = self.wait_for_mail(wait).await {
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

    /// Waits at every door at once, until one has mail, the watcher is woken, or
    /// `max` passed. The first door to return stops the others' waits (through
    /// their `wake`), so an IMAP IDLE is ended properly, not dropped.
    async fn wait_for_mail(&mut self, max: Duration) -> Result<(), IngestError> {
        if let [only] = &mut self.sources[..] {
            return only.wait(max, &self.wake).await;
        }
        let stops: Vec<Notify> = self.sources.iter().map(|_| Notify::new()).collect();
        let stops = &stops;
        let stop_all = move || stops.iter().for_each(Notify::notify_one);
        let waits = futures::future::join_all(self.sources.iter_mut().zip(stops).map(
            |(s, stop)| async move {
                let r = s.wait(max, stop).await;
                stop_all();
                r
            },
        ));
        tokio::pin!(waits);
        let results = tokio::select! {
            r = &mut waits => r,
            _ = self.wake.notified() => {
                stop_all();
                waits.await
            }
        };
        results
            .into_iter()
            .collect::<Result<Vec<()>, _>>()
            .map(|_| ())
    }

    fn next_wait(&self) -> Duration {
        // Come back in time for the earliest deferred retry, of a message or a reply.
        let now = unix_now();
        let reply = self.journal.outbox_next_attempt().ok().flatten();
        let earliest = match (self.next_due, reply) {
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

    pub(crate) fn crash(&self, at: CrashPoint) -> Result<(), WatcherError> {
        self.crash.hit(at).map_err(WatcherError::Crashed)
    }

    /// Brings the deposit index up to `head`. A failure only leaves it behind:
    /// verification reads the chain for keys the index does not hold.
    pub(crate) async fn catch_up_index(&self, head: u64) {
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

    /// When a message or reply that failed `attempts` times is tried again.
    pub(crate) fn backoff(&self, attempts: u32) -> u64 {
        let base = self.pipeline.retry_base.as_secs().max(1);
        unix_now() + base.saturating_mul(1u64 << attempts.min(16)).min(300)
    }

    /// What [`crate::transition::apply`] needs from the watcher.
    pub(crate) fn env(&self) -> Env {
        Env {
            composer: Some(self.composer.clone()),
            now: unix_now(),
        }
    }

    /// Applies transitions in one group commit and counts what they decided.
    pub(crate) async fn commit(
        &mut self,
        transitions: Vec<Transition>,
    ) -> Result<Applied, WatcherError> {
        let applied = crate::transition::commit(&self.journal, transitions, self.env()).await?;
        Ok(self.count(applied))
    }

    /// Counts what committed transitions decided (metrics and the run's report).
    pub(crate) fn count(&mut self, mut applied: Applied) -> Applied {
        self.report.received += applied.received;
        for (kind, code) in std::mem::take(&mut applied.decided) {
            self.metrics.outcome(kind, &code);
            self.report.decided.push((kind, code));
        }
        applied
    }

    /// One pass. Returns whether anything changed.
    async fn pass(&mut self) -> Result<bool, WatcherError> {
        let mut progressed = false;
        progressed |= self.collect_submissions().await?;
        progressed |= self.fetch().await?;
        self.crash(CrashPoint::AfterReceive)?;
        // The pass's one read of the journal's messages. The claims the fetch accepted
        // are in hand already (their plans need not be parsed back from it).
        let mut unfinished = self.journal.unfinished()?;
        let fresh = std::mem::take(&mut self.fresh);
        if !fresh.is_empty() {
            let ids: std::collections::HashSet<i64> = fresh.iter().map(|c| c.id).collect();
            unfinished.retain(|m| !ids.contains(&m.id));
        }
        let now = unix_now();
        self.next_due = unfinished
            .iter()
            .filter(|m| m.next_attempt_at > now)
            .map(|m| m.next_attempt_at)
            .min();
        let mut work =
            crate::judge::Work::sort(unfinished, now, &self.inflight, self.journal.path())?;
        work.add(Applied {
            accepted: fresh,
            ..Applied::default()
        });
        if !work.received.is_empty() {
            let received = std::mem::take(&mut work.received);
            let applied = self.judge_stored(received).await?;
            work.add(applied);
            progressed = true;
        }
        self.crash(CrashPoint::AfterJudge)?;
        // Hand accepted and in-flight claims to the submitter.
        for claim in std::mem::take(&mut work.claims) {
            self.dispatch(claim)?;
            progressed = true;
        }
        progressed |= self.wallet_pass().await?;
        self.crash(CrashPoint::BeforeReplies)?;
        progressed |= self.flush_outbox().await?;
        self.crash(CrashPoint::BeforeFiling)?;
        progressed |= self.file_decided(std::mem::take(&mut work.decided)).await?;
        // The journal's counts (kept counts and index reads): at most once a second,
        // and always when the pass did nothing (the last pass of `run_once`).
        let stale = self
            .stats_at
            .is_none_or(|t| t.elapsed() >= Duration::from_secs(1));
        if stale || !progressed {
            let stats = self.journal.stats().unwrap_or_default();
            self.metrics.outbox(&stats);
            self.metrics.loop_pass(stats.unfinished);
            self.stats_at = Some(std::time::Instant::now());
        }
        if let Ok(head) = self.client.chain().head().await {
            self.metrics.chain_head(head.number, head.timestamp);
            self.catch_up_index(head.number).await;
        }
        Ok(progressed)
    }
}

/// Where a decided message is filed (its row, door key and folder).
pub(crate) type ToFile = (i64, MailKey, Folder);
