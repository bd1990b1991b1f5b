//! Stage 4: release a verified deposit on chain.
//!
//! One submitter task owns the watcher key and the chain account (and so the
//! account's nonce order): jobs come in over a channel, are broadcast one after the
//! other, and each receipt is awaited in a task of its own, so no confirmation ever
//! blocks the next submission and no lock is held while waiting.
//!
//! At-most-once per deposit: before anything is broadcast — the first time, after a
//! crash, after an RPC error — the submitter re-reads the deposit on chain: the
//! stored hash, which settles the common case (still this very deposit, open), else
//! [`SpringMail::status`] from the logs. A deposit already paid by this watcher to
//! this payee is finished from the chain's `Claimed` log instead of being resent;
//! one paid otherwise is refused. The journal records `submitting` before the broadcast and
//! `submitted` with the transaction hash after it, so a claim in flight is finished,
//! not forgotten: a restart waits for the recorded transaction's receipt.
//! (The escrow itself pays a deposit at most once; a duplicate transaction could
//! only revert and waste gas.)
//!
//! Batching: when several new claims (`Accepted`) wait in the queue at once, the
//! submitter sends them in one `claimBatch` transaction (at most [`MAX_BATCH`]): each is
//! re-read and marked `submitting` as above, the batch is simulated and the claims the
//! contract would skip are left out (each then settles from the chain, or is refused
//! with the contract's reason), and every row of the batch records the same
//! transaction. Its receipt settles each claim by its own `Claimed` log; a claim the
//! contract skipped (the chain changed after the simulation) is re-read. The fees
//! accrue to the submitting account inside the escrow.

use std::sync::Arc;
use std::time::Duration;

use alloy::primitives::{Bytes, B256};
use alloy::sol_types::SolEvent;
use springmail_sdk::chain::{ChainError, Receipt, TxRequest, TxStatus};
use springmail_sdk::client::{describe_revert, BatchClaim, ClientError, DepositStatus, SpringMail};
use springmail_sdk::contract::EmailEscrow;
use springmail_sdk::keys::ClaimSecret;
use tokio::sync::{mpsc, Notify};
use tracing::{info, warn, Instrument};

use crate::crash::{CrashPoint, CrashSwitch};
use crate::journal::{Journal, JournalError, MessageState};
use crate::metrics::Metrics;
use crate::transition::Transition;
use crate::verify::{ClaimPlan, RefusalReason};

/// The most claims one `claimBatch` transaction carries.
pub const MAX_BATCH: usize = 50;

/// Gas for a batch of `n` claims: about 55,000 a claim at most (a fresh payee, two
/// signatures) plus the bounded 100,000 each payee may burn, and the transaction.
fn batch_gas(n: usize) -> u64 {
    100_000 + 160_000 * n as u64
}

/// Submitter settings.
#[derive(Debug, Clone)]
pub struct SubmitPolicy {
    /// How long to wait for a receipt before retrying later (the transaction stays recorded).
    pub receipt_timeout: Duration,
    /// Gas limit for the claim; `None` lets the backend decide.
    pub gas_limit: Option<u64>,
    /// After an uncertain broadcast (crash or RPC error before the hash was recorded),
    /// how long to watch the chain for that transaction before sending again.
    pub resend_guard: Duration,
}

impl Default for SubmitPolicy {
    fn default() -> Self {
        SubmitPolicy {
            receipt_timeout: Duration::from_secs(120),
            gas_limit: Some(300_000),
            resend_guard: Duration::from_secs(30),
        }
    }
}

/// A claim to release.
#[derive(Debug, Clone)]
pub struct SubmitJob {
    /// The message's journal row.
    pub row: i64,
    /// What to submit.
    pub plan: ClaimPlan,
    /// Where the message stands: `Accepted`, `Submitting` (uncertain) or `Submitted`.
    pub state: MessageState,
    /// The recorded transaction, for `Submitted`.
    pub tx_hash: Option<B256>,
    /// The span of the message, so the submitter's logs carry its uid and hash.
    pub span: tracing::Span,
}

/// How a submission ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubmitOutcome {
    /// The deposit was released.
    Claimed {
        /// The claim transaction.
        tx_hash: B256,
        /// Its block.
        block_number: u64,
    },
    /// It was not, and will not be.
    Refused(RefusalReason),
    /// Something transient failed; the journal state says where to resume.
    Retry {
        /// What failed.
        error: String,
    },
}

/// A finished job.
#[derive(Debug)]
pub struct SubmitDone {
    /// The message's journal row.
    pub row: i64,
    /// The outcome.
    pub outcome: SubmitOutcome,
}

/// The submitter's state; [`Submitter::spawn`] moves it into its task.
pub struct Submitter {
    client: SpringMail,
    key: Arc<ClaimSecret>,
    journal: Arc<Journal>,
    policy: SubmitPolicy,
    metrics: Arc<Metrics>,
    wake: Arc<Notify>,
    crash: Arc<CrashSwitch>,
}

impl std::fmt::Debug for Submitter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Submitter")
            .field("client", &self.client)
            .field("watcher", &self.key.address())
            .finish()
    }
}

/// Handle to a running submitter.
#[derive(Debug, Clone)]
pub struct SubmitterHandle {
    jobs: mpsc::UnboundedSender<SubmitJob>,
}

impl SubmitterHandle {
    /// Queues a job; false when the submitter has stopped.
    pub fn submit(&self, job: SubmitJob) -> bool {
        self.jobs.send(job).is_ok()
    }
}

impl Submitter {
    /// A submitter that signs attestations with `key` and sends through `client`'s chain account.
    /// `wake` is notified whenever a job finishes, so the pipeline picks the outcome up.
    pub fn new(
        client: SpringMail,
        key: Arc<ClaimSecret>,
        journal: Arc<Journal>,
        policy: SubmitPolicy,
        metrics: Arc<Metrics>,
        wake: Arc<Notify>,
    ) -> Self {
        Submitter {
            client,
            key,
            journal,
            policy,
            metrics,
            wake,
            crash: Arc::new(CrashSwitch::off()),
        }
    }

    /// Arms the pipeline's simulated crash in the submitter too (crash tests).
    pub(crate) fn with_crash(mut self, crash: Arc<CrashSwitch>) -> Self {
        self.crash = crash;
        self
    }

    /// A simulated crash in the submitter: when it only fails (in-process tests), the
    /// job ends as a transient failure at the state the journal holds, which is what a
    /// restart would find.
    fn crashed(&self, point: CrashPoint) -> Option<Started> {
        self.crash.hit(point).err().map(|p| {
            Started::Done(SubmitOutcome::Retry {
                error: format!("simulated crash at {p}"),
            })
        })
    }

    /// Starts the task. Finished jobs arrive on the returned receiver.
    pub fn spawn(
        self,
    ) -> (
        SubmitterHandle,
        mpsc::UnboundedReceiver<SubmitDone>,
        tokio::task::JoinHandle<()>,
    ) {
        let (jobs_tx, mut jobs_rx) = mpsc::unbounded_channel::<SubmitJob>();
        let (done_tx, done_rx) = mpsc::unbounded_channel();
        let this = Arc::new(self);
        let task = tokio::spawn(async move {
            while let Some(job) = jobs_rx.recv().await {
                // Whatever else is already queued joins this round: new claims go out
                // together in one claimBatch; the others one by one, as before.
                let mut round = vec![job];
                while round.len() < MAX_BATCH {
                    match jobs_rx.try_recv() {
                        Ok(j) => round.push(j),
                        Err(_) => break,
                    }
                }
                let (fresh, others): (Vec<_>, Vec<_>) = round
                    .into_iter()
                    .partition(|j| j.state == MessageState::Accepted);
                let mut singles = others;
                if fresh.len() >= 2 {
                    this.batch(fresh, &done_tx).await;
                } else {
                    singles.extend(fresh);
                }
                for job in singles {
                    let span = job.span.clone();
                    let row = job.row;
                    match this.start(job).instrument(span.clone()).await {
                        Started::Done(outcome) => {
                            let _ = done_tx.send(SubmitDone { row, outcome });
                            this.wake.notify_one();
                        }
                        Started::Wait { tx_hash, plan } => {
                            let this = this.clone();
                            let done_tx = done_tx.clone();
                            tokio::spawn(
                                async move {
                                    let outcome = this.finish(&plan, tx_hash).await;
                                    let _ = done_tx.send(SubmitDone { row, outcome });
                                    this.wake.notify_one();
                                }
                                .instrument(span),
                            );
                        }
                    }
                }
            }
        });
        (SubmitterHandle { jobs: jobs_tx }, done_rx, task)
    }

    /// Re-reads the deposit and broadcasts if (and only if) it is still open.
    async fn start(&self, job: SubmitJob) -> Started {
        let plan = job.plan;
        if job.state == MessageState::Submitted {
            if let Some(tx_hash) = job.tx_hash {
                return Started::Wait {
                    tx_hash,
                    plan: Box::new(plan),
                };
            }
        }
        match self.reread(&plan).await {
            Ok(Reread::Open) => {}
            Ok(Reread::Final(outcome)) => return Started::Done(outcome),
            Err(e) => {
                return Started::Done(SubmitOutcome::Retry {
                    error: e.to_string(),
                })
            }
        }
        if job.state == MessageState::Submitting && !self.policy.resend_guard.is_zero() {
            // A broadcast may have happened before the crash or error: watch for it
            // before sending again.
            let deadline = tokio::time::Instant::now() + self.policy.resend_guard;
            while tokio::time::Instant::now() < deadline {
                tokio::time::sleep(
                    self.client
                        .chain()
                        .poll_interval()
                        .max(Duration::from_millis(500)),
                )
                .await;
                match self.reread(&plan).await {
                    Ok(Reread::Open) => {}
                    Ok(Reread::Final(outcome)) => return Started::Done(outcome),
                    Err(e) => {
                        return Started::Done(SubmitOutcome::Retry {
                            error: e.to_string(),
                        })
                    }
                }
            }
        }
        if let Err(e) = self.record(Transition::Submitting { id: job.row }).await {
            return Started::Done(SubmitOutcome::Retry {
                error: e.to_string(),
            });
        }
        let id = self.client.escrow_id();
        let attestation = self.attestation(&plan);
        let data = self
            .client
            .claim_calldata(&plan.deposit, &plan.signed, plan.fee, attestation);
        if let Some(crashed) = self.crashed(CrashPoint::AfterAttest) {
            return crashed;
        }
        let req = TxRequest {
            to: Some(id.escrow),
            data,
            value: Default::default(),
            gas_limit: self.policy.gas_limit,
        };
        match self.client.chain().submit(req).await {
            Ok(tx_hash) => {
                info!(tx = %tx_hash, "claim transaction sent");
                self.metrics.claim_submitted();
                if let Some(crashed) = self.crashed(CrashPoint::AfterBroadcast) {
                    return crashed;
                }
                if let Err(e) = self.record_submitted(job.row, tx_hash).await {
                    // The transaction is out; the next attempt re-reads the chain first.
                    return Started::Done(SubmitOutcome::Retry {
                        error: e.to_string(),
                    });
                }
                Started::Wait {
                    tx_hash,
                    plan: Box::new(plan),
                }
            }
            Err(e) => Started::Done(self.classify_send_error(e)),
        }
    }

    /// Sends several new claims in one `claimBatch` (see the module's documentation).
    async fn batch(
        self: &Arc<Self>,
        jobs: Vec<SubmitJob>,
        done_tx: &mpsc::UnboundedSender<SubmitDone>,
    ) {
        let done = |row: i64, outcome: SubmitOutcome| {
            let _ = done_tx.send(SubmitDone { row, outcome });
            self.wake.notify_one();
        };
        let id = self.client.escrow_id();
        // Re-read each deposit; mark the open ones `submitting` and attest them.
        let mut open: Vec<SubmitJob> = Vec::new();
        // The reads go out together: each is two round trips to the node, and one
        // after the other they held a batch of 50 up for a hundred.
        let rereads = futures::future::join_all(
            jobs.iter()
                .map(|job| self.reread(&job.plan).instrument(job.span.clone())),
        )
        .await;
        for (job, reread) in jobs.into_iter().zip(rereads) {
            match reread {
                Ok(Reread::Open) => {}
                Ok(Reread::Final(outcome)) => {
                    done(job.row, outcome);
                    continue;
                }
                Err(e) => {
                    done(
                        job.row,
                        SubmitOutcome::Retry {
                            error: e.to_string(),
                        },
                    );
                    continue;
                }
            }
            open.push(job);
        }
        // One commit for the batch's `submitting`.
        let submitting = open
            .iter()
            .map(|job| Transition::Submitting { id: job.row })
            .collect();
        if let Err(e) = self.record_all(submitting).await {
            for job in open {
                done(
                    job.row,
                    SubmitOutcome::Retry {
                        error: e.to_string(),
                    },
                );
            }
            return;
        }
        let mut ready: Vec<(SubmitJob, BatchClaim)> = Vec::new();
        for job in open {
            let claim = BatchClaim {
                deposit: job.plan.deposit,
                signed: job.plan.signed.clone(),
                fee: job.plan.fee,
                attestation: self.attestation(&job.plan),
            };
            ready.push((job, claim));
        }
        if ready.is_empty() {
            return;
        }
        // Simulate: leave out what the contract would skip.
        let claims: Vec<BatchClaim> = ready.iter().map(|r| r.1.clone()).collect();
        let reasons = match self.client.simulate_claim_batch(&claims).await {
            Ok(r) => r,
            Err(e) => {
                for (job, _) in ready {
                    done(
                        job.row,
                        SubmitOutcome::Retry {
                            error: e.to_string(),
                        },
                    );
                }
                return;
            }
        };
        let mut sending = Vec::new();
        for ((job, claim), reason) in ready.into_iter().zip(reasons) {
            match reason {
                None => sending.push((job, claim)),
                Some(reason) => {
                    let outcome = match self.reread(&job.plan).await {
                        Ok(Reread::Final(outcome)) => outcome,
                        _ => SubmitOutcome::Refused(RefusalReason::Reverted {
                            reason: format!("the escrow would refuse the claim ({reason})"),
                        }),
                    };
                    done(job.row, outcome);
                }
            }
        }
        if sending.is_empty() {
            return;
        }
        if let Some(Started::Done(outcome)) = self.crashed(CrashPoint::AfterAttest) {
            for (job, _) in sending {
                done(job.row, outcome.clone());
            }
            return;
        }
        let claims: Vec<BatchClaim> = sending.iter().map(|r| r.1.clone()).collect();
        let req = TxRequest {
            to: Some(id.escrow),
            data: self.client.claim_batch_calldata(&claims),
            value: Default::default(),
            gas_limit: Some(batch_gas(claims.len())),
        };
        let tx_hash = match self.client.chain().submit(req).await {
            Ok(h) => h,
            Err(e) => {
                let outcome = self.classify_send_error(e);
                for (job, _) in sending {
                    done(job.row, outcome.clone());
                }
                return;
            }
        };
        info!(tx = %tx_hash, claims = sending.len(), "claim batch sent");
        for _ in &sending {
            self.metrics.claim_submitted();
        }
        if let Some(Started::Done(outcome)) = self.crashed(CrashPoint::AfterBroadcast) {
            for (job, _) in sending {
                done(job.row, outcome.clone());
            }
            return;
        }
        let submitted = sending
            .iter()
            .map(|(job, _)| Transition::Submitted {
                id: job.row,
                tx_hash: tx_hash.to_string(),
            })
            .collect();
        // `submitted` is sent to the journal now and awaited by the receipt's waiter:
        // the next round's `submitting` joins its commit instead of waiting for it.
        let recorded =
            match crate::transition::enqueue(&self.journal, submitted, Default::default()) {
                Ok(p) => p,
                // The transaction is out; the next attempt re-reads the chain first.
                Err(e) => {
                    for (job, _) in sending {
                        done(
                            job.row,
                            SubmitOutcome::Retry {
                                error: e.to_string(),
                            },
                        );
                    }
                    return;
                }
            };
        let waiting: Vec<SubmitJob> = sending.into_iter().map(|(job, _)| job).collect();
        // One waiter for the batch's receipt; each claim settles from it.
        let this = self.clone();
        let done_tx = done_tx.clone();
        tokio::spawn(async move {
            if let Err(e) = recorded.durable().await {
                for job in waiting {
                    let _ = done_tx.send(SubmitDone {
                        row: job.row,
                        outcome: SubmitOutcome::Retry {
                            error: e.to_string(),
                        },
                    });
                }
                this.wake.notify_one();
                return;
            }
            let receipt = this
                .client
                .chain()
                .wait(tx_hash, this.policy.receipt_timeout)
                .await;
            for job in waiting {
                let outcome = match &receipt {
                    Ok(r) => {
                        this.settle(&job.plan, tx_hash, r)
                            .instrument(job.span.clone())
                            .await
                    }
                    Err(e) => match this.reread(&job.plan).await {
                        Ok(Reread::Final(outcome)) => outcome,
                        _ => SubmitOutcome::Retry {
                            error: e.to_string(),
                        },
                    },
                };
                let _ = done_tx.send(SubmitDone {
                    row: job.row,
                    outcome,
                });
                this.wake.notify_one();
            }
        });
    }

    /// The claim's attestation: none when the deposit names the account this watcher
    /// sends from (the escrow takes the transaction itself as the attestation), else the
    /// watcher key's `Attest` signature.
    fn attestation(&self, plan: &ClaimPlan) -> Bytes {
        if plan.deposit.watcher == self.client.chain().account() {
            return Bytes::new();
        }
        plan.signed
            .auth
            .sign_attest(self.client.escrow_id(), &self.key)
            .to_bytes()
    }

    async fn record_submitted(&self, row: i64, tx_hash: B256) -> Result<(), JournalError> {
        self.record(Transition::Submitted {
            id: row,
            tx_hash: tx_hash.to_string(),
        })
        .await
    }

    async fn record(&self, t: Transition) -> Result<(), JournalError> {
        self.record_all(vec![t]).await
    }

    async fn record_all(&self, t: Vec<Transition>) -> Result<(), JournalError> {
        crate::transition::commit(&self.journal, t, Default::default())
            .await
            .map(|_| ())
    }

    fn classify_send_error(&self, e: ChainError) -> SubmitOutcome {
        if let ChainError::Rpc { message, .. } = &e {
            if message.to_ascii_lowercase().contains("revert") {
                return SubmitOutcome::Refused(RefusalReason::Reverted {
                    reason: message.clone(),
                });
            }
        }
        warn!(error = %e, transient = e.is_transient(), "sending the claim failed; will re-read the chain and retry");
        SubmitOutcome::Retry {
            error: e.to_string(),
        }
    }

    /// Waits for a broadcast claim's receipt.
    async fn finish(&self, plan: &ClaimPlan, tx_hash: B256) -> SubmitOutcome {
        match self
            .client
            .chain()
            .wait(tx_hash, self.policy.receipt_timeout)
            .await
        {
            Ok(receipt) => self.settle(plan, tx_hash, &receipt).await,
            Err(e) => {
                // Not mined yet or the node is away: see whether it landed anyway.
                if let Ok(Reread::Final(outcome)) = self.reread(plan).await {
                    return outcome;
                }
                SubmitOutcome::Retry {
                    error: e.to_string(),
                }
            }
        }
    }

    /// What a mined claim or claim batch did for this claim: paid when the receipt holds
    /// the escrow's `Claimed` log for its claim key (a batch that succeeded may have
    /// skipped it), else whatever the chain says.
    async fn settle(&self, plan: &ClaimPlan, tx_hash: B256, receipt: &Receipt) -> SubmitOutcome {
        let escrow = self.client.escrow();
        let key = plan.claim_key().into_word();
        let paid = receipt.succeeded()
            && receipt.logs.iter().any(|l| {
                l.address == escrow
                    && l.topics().first() == Some(&EmailEscrow::Claimed::SIGNATURE_HASH)
                    && l.topics().get(1) == Some(&key)
            });
        if paid {
            info!(tx = %tx_hash, block = receipt.block_number, "claim confirmed");
            return SubmitOutcome::Claimed {
                tx_hash,
                block_number: receipt.block_number,
            };
        }
        // Someone else may have won a race; report what the chain says.
        if let Ok(Reread::Final(outcome)) = self.reread(plan).await {
            return outcome;
        }
        let reason = match &receipt.status {
            TxStatus::Reverted { data: Some(d), .. } if !d.is_empty() => describe_revert(d),
            TxStatus::Reverted {
                message: Some(m), ..
            } => m.clone(),
            TxStatus::Reverted { .. } => "the transaction reverted".into(),
            TxStatus::Success => "the claim batch skipped this claim".into(),
        };
        warn!(tx = %tx_hash, %reason, "claim not paid");
        SubmitOutcome::Refused(RefusalReason::Reverted { reason })
    }

    /// The deposit's state on chain, as an outcome when it is settled.
    async fn reread(&self, plan: &ClaimPlan) -> Result<Reread, ClientError> {
        // The common case costs two reads: the slot still holds the hash of exactly
        // this deposit (so it is open with these fields), and the chain's clock says
        // whether it has expired. Anything else asks the logs what happened, which on
        // a long chain is many times dearer.
        if self.client.stored_hash(plan.claim_key()).await? == plan.deposit.hash() {
            let now = self.client.chain().head().await?.timestamp;
            return Ok(if now < plan.deposit.expiry {
                Reread::Open
            } else {
                Reread::Final(SubmitOutcome::Refused(RefusalReason::Expired {
                    expiry: plan.deposit.expiry,
                    too_soon: false,
                }))
            });
        }
        let status = self.client.status(plan.claim_key()).await?;
        Ok(match status {
            DepositStatus::Open { deposit, .. } if deposit == plan.deposit => Reread::Open,
            DepositStatus::Open { .. } => {
                Reread::Final(SubmitOutcome::Refused(RefusalReason::UnknownDeposit))
            }
            DepositStatus::Claimed {
                to,
                relayer,
                tx_hash,
                block_number,
                ..
            } => {
                if to == plan.signed.auth.to && relayer == self.client.chain().account() {
                    Reread::Final(SubmitOutcome::Claimed {
                        tx_hash,
                        block_number,
                    })
                } else {
                    Reread::Final(SubmitOutcome::Refused(RefusalReason::AlreadyClaimed {
                        tx_hash: Some(tx_hash),
                    }))
                }
            }
            DepositStatus::Expired { deposit, .. } => {
                Reread::Final(SubmitOutcome::Refused(RefusalReason::Expired {
                    expiry: deposit.expiry,
                    too_soon: false,
                }))
            }
            DepositStatus::Refunded { .. } => {
                Reread::Final(SubmitOutcome::Refused(RefusalReason::Refunded))
            }
            DepositStatus::Unknown => {
                Reread::Final(SubmitOutcome::Refused(RefusalReason::UnknownDeposit))
            }
        })
    }
}

enum Started {
    Done(SubmitOutcome),
    Wait { tx_hash: B256, plan: Box<ClaimPlan> },
}

enum Reread {
    Open,
    Final(SubmitOutcome),
}
