//! Stage 4 as the watcher runs it: accepted claims go to the submitter task
//! ([`crate::submit`], which owns the nonce and batches claims), and finished
//! submissions are settled: each becomes a [`Settlement`] (outcome, folder, reply,
//! or a deferral) and all of a pass's are written in one commit.

use alloy::primitives::B256;
use tracing::{info, info_span, warn};

use crate::journal::{Folder, Outcome};
use crate::judge::ClaimWork;
use crate::reply::ReplyBody;
use crate::service::{unix_now, CrashPoint, Watcher, WatcherError};
use crate::submit::{SubmitJob, SubmitOutcome};
use crate::transition::{Settlement, Transition};

impl Watcher {
    /// Hands a claim to the submitter.
    pub(crate) fn dispatch(&mut self, claim: ClaimWork) -> Result<(), WatcherError> {
        let span = info_span!(
            "message",
            uid = claim.inflight.key.uid,
            msg = claim.msgid.as_deref().unwrap_or("")
        );
        let job = SubmitJob {
            row: claim.id,
            plan: (*claim.inflight.plan).clone(),
            state: claim.state,
            tx_hash: claim
                .tx_hash
                .as_deref()
                .and_then(|t| t.parse::<B256>().ok()),
            span,
        };
        if !self.submitter.submit(job) {
            return Err(WatcherError::Setup("the submitter task has stopped".into()));
        }
        self.inflight.insert(claim.id, claim.inflight);
        Ok(())
    }

    /// Settles finished submissions: outcome and reply of each, in one commit.
    pub(crate) async fn collect_submissions(&mut self) -> Result<bool, WatcherError> {
        let mut finished = Vec::new();
        while let Ok(done) = self.done.try_recv() {
            finished.push(done);
        }
        if finished.is_empty() {
            return Ok(false);
        }
        self.crash(CrashPoint::AfterSubmit)?;
        let chain_id = self.client.escrow_id().chain_id;
        let mut transitions = Vec::with_capacity(finished.len());
        for done in finished {
            let Some(claim) = self.inflight.remove(&done.row) else {
                continue;
            };
            let span = info_span!("message", uid = claim.key.uid);
            let _g = span.enter();
            let plan = &claim.plan;
            let settlement = match done.outcome {
                SubmitOutcome::Retry { error } => {
                    warn!(%error, "submission will be retried after re-reading the chain");
                    Settlement::Defer {
                        error,
                        at: self.backoff(claim.attempts),
                    }
                }
                SubmitOutcome::Claimed { tx_hash, .. } => {
                    info!(tx = %tx_hash, "claim paid");
                    // A claim from the claim page has no mail to answer: the page
                    // reads the outcome.
                    let reply = match &claim.ctx {
                        Some(ctx) => Some(
                            self.composer
                                .compose(
                                    ctx,
                                    &ReplyBody::Claimed {
                                        paid: plan.format(plan.payout()),
                                        fee: plan.format(plan.fee),
                                        to: springmail_sdk::qtum::format_address(
                                            chain_id,
                                            plan.signed.auth.to,
                                        ),
                                        tx_hash: tx_hash.to_string(),
                                    },
                                    unix_now(),
                                )
                                .map_err(|e| WatcherError::Setup(e.to_string()))?,
                        ),
                        None => None,
                    };
                    Settlement::Decide(
                        Outcome::claimed(plan, chain_id, &tx_hash.to_string()),
                        Folder::Processed,
                        reply,
                    )
                }
                SubmitOutcome::Refused(r) => {
                    info!(reason = r.code(), "claim not paid");
                    let reply = match &claim.ctx {
                        Some(ctx) => Some(self.compose_refusal(ctx, &r)?),
                        None => None,
                    };
                    Settlement::Decide(Outcome::refused(&r), Folder::Rejected, reply)
                }
            };
            transitions.push(Transition::Settle {
                id: done.row,
                settlement,
            });
        }
        self.commit(transitions).await?;
        Ok(true)
    }
}
