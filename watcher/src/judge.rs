//! Stages 1–3 as the watcher runs them: fetch new mail from every door, authenticate
//! and verify it ([`crate::authenticate`], [`crate::verify`]), and record it with its
//! [`Decision`] and the door's checkpoint in one commit. The bytes of a judged
//! message are never written; a crash before the commit leaves the checkpoint where
//! it was, so the mail is fetched and judged again. Only mail whose judgement hit a
//! transient failure is stored with its bytes, and judged again when due.

use std::collections::HashMap;

use tracing::{debug, info, info_span, warn, Instrument};

use crate::authenticate::{AuthOutcome, Authenticated, DropReason};
use crate::ingest::FetchLimits;
use crate::journal::{Checkpoint, JournalError, MessageRecord, MessageState, Outcome};
use crate::reply::{ReplyBody, ReplyContext};
use crate::service::{unix_now, Inflight, ToFile, Watcher, WatcherError};
use crate::transition::{AcceptedClaim, Applied, Decision, Transition};
use crate::verify::{ClaimPlan, RefusalReason, Verdict};

/// Batches fetched from one door in one pass at most.
const FETCH_ROUNDS: usize = 4;
/// Fetched batches whose commit may be in flight while the next is judged.
const FETCH_DEPTH: usize = 2;

/// What a judged message becomes, before its decision is built.
enum Judgement {
    Dropped(DropReason),
    Refused(Box<Authenticated>, RefusalReason),
    Accepted(Box<Authenticated>, Box<ClaimPlan>),
    Deferred(String),
    Wallet(Box<Authenticated>, Box<crate::wallet::Intake>),
}

/// A claim to hand to the submitter.
pub(crate) struct ClaimWork {
    pub(crate) id: i64,
    pub(crate) state: MessageState,
    pub(crate) tx_hash: Option<String>,
    pub(crate) msgid: Option<String>,
    pub(crate) inflight: Inflight,
}

/// A pass's work, sorted from its one read of the journal.
#[derive(Default)]
pub(crate) struct Work {
    /// Recorded messages whose deferred judgement is due.
    pub(crate) received: Vec<MessageRecord>,
    /// Claims to submit (accepted, or interrupted while submitting).
    pub(crate) claims: Vec<ClaimWork>,
    /// Decided messages to file.
    pub(crate) decided: Vec<ToFile>,
}

impl Work {
    /// Sorts the unfinished messages: those due and not in flight, by state.
    pub(crate) fn sort(
        unfinished: Vec<MessageRecord>,
        now: u64,
        inflight: &HashMap<i64, Inflight>,
        journal: &std::path::Path,
    ) -> Result<Self, JournalError> {
        let mut work = Work::default();
        for m in unfinished {
            if inflight.contains_key(&m.id) {
                continue;
            }
            match m.state {
                MessageState::Decided => {
                    let folder = m.folder.unwrap_or(crate::journal::Folder::Rejected);
                    work.decided.push((m.id, m.key, folder));
                }
                _ if m.next_attempt_at > now => {}
                MessageState::Received => work.received.push(m),
                MessageState::Accepted | MessageState::Submitting | MessageState::Submitted => {
                    let corrupt = |reason| JournalError::Corrupt {
                        path: journal.to_path_buf(),
                        what: "claim plan",
                        reason,
                    };
                    let plan = m.plan.as_deref().ok_or_else(|| {
                        corrupt(format!(
                            "message {} is {} without a plan",
                            m.id,
                            m.state.as_str()
                        ))
                    })?;
                    let plan = ClaimPlan::from_json(plan).map_err(corrupt)?;
                    work.claims.push(ClaimWork {
                        id: m.id,
                        state: m.state,
                        tx_hash: m.tx_hash,
                        msgid: m.msgid_hash,
                        inflight: Inflight {
                            key: m.key,
                            plan: Box::new(plan),
                            ctx: m
                                .reply_ctx
                                .as_deref()
                                .and_then(|c| serde_json::from_str(c).ok()),
                            attempts: m.attempts,
                        },
                    })
                }
                MessageState::Done => {}
            }
        }
        Ok(work)
    }

    /// Adds what judging stored messages decided.
    pub(crate) fn add(&mut self, applied: Applied) {
        self.decided.extend(applied.to_file);
        for AcceptedClaim {
            id,
            key,
            msgid,
            plan,
            ctx,
        } in applied.accepted
        {
            self.claims.push(ClaimWork {
                id,
                state: MessageState::Accepted,
                tx_hash: None,
                msgid: Some(msgid),
                inflight: Inflight {
                    key,
                    plan,
                    ctx,
                    attempts: 0,
                },
            });
        }
    }
}

impl Watcher {
    /// Fetches new mail from every door, judges it, and records it with its decisions
    /// and the door's checkpoint, one commit per door. Returns whether any came.
    pub(crate) async fn fetch(&mut self) -> Result<bool, WatcherError> {
        let mut any = false;
        for door in 0..self.sources.len() {
            any |= self.fetch_door(door).await?;
        }
        Ok(any)
    }

    /// Fetches up to [`FETCH_ROUNDS`] batches from one door. A batch's commit is in
    /// flight while the next is judged (its fsync overlaps that work); every commit
    /// is durable before this returns, and nothing acts on a batch before then.
    async fn fetch_door(&mut self, door: usize) -> Result<bool, WatcherError> {
        let mailbox = self.sources[door].mailbox().to_string();
        let mut cp = self.journal.checkpoint(&mailbox)?;
        let limits = FetchLimits {
            max_messages: self.pipeline.batch_size,
            max_bytes: self.authenticator.max_message_bytes(),
        };
        let mut in_flight = std::collections::VecDeque::new();
        let mut any = false;
        for _ in 0..FETCH_ROUNDS {
            let batch = self.sources[door].fetch_new(cp, limits).await?;
            if batch.mails.is_empty() {
                break;
            }
            any = true;
            if let Some(cp) = cp {
                if cp.uid_validity != batch.uid_validity {
                    warn!(
                        %mailbox,
                        old = cp.uid_validity,
                        new = batch.uid_validity,
                        "UIDVALIDITY changed; reading the mailbox again from the start"
                    );
                }
            }
            let full = batch.mails.len() >= limits.max_messages;
            let last_uid = batch.mails.iter().map(|m| m.key.uid).max().unwrap_or(0);
            let fetched: Vec<(MessageRecord, Option<Vec<u8>>)> = batch
                .mails
                .into_iter()
                .map(|m| (MessageRecord::fetched(m.key, m.size), m.raw))
                .collect();
            let mut transitions: Vec<Transition> = self
                .decide(fetched)
                .await?
                .into_iter()
                .map(|(m, raw, decision)| Transition::Record {
                    key: m.key,
                    size: m.size,
                    raw,
                    decision,
                })
                .collect();
            let next = Checkpoint {
                uid_validity: batch.uid_validity,
                last_uid,
            };
            transitions.push(Transition::Checkpoint {
                mailbox: mailbox.clone(),
                cp: next,
            });
            in_flight.push_back((
                crate::transition::enqueue(&self.journal, transitions, self.env())?,
                last_uid,
            ));
            if in_flight.len() >= FETCH_DEPTH {
                self.recorded(in_flight.pop_front()).await?;
            }
            cp = Some(next);
            if !full {
                break;
            }
        }
        while let Some(p) = in_flight.pop_front() {
            self.recorded(Some(p)).await?;
        }
        Ok(any)
    }

    /// Waits for a fetched batch's commit and counts it.
    async fn recorded(
        &mut self,
        pending: Option<(crate::journal::Pending<Applied>, u32)>,
    ) -> Result<(), WatcherError> {
        let Some((pending, last_uid)) = pending else {
            return Ok(());
        };
        let applied = pending.durable().await?;
        let mut applied = self.count(applied);
        // Handed to the submitter by this pass as they are, not read back from the journal.
        self.fresh.append(&mut applied.accepted);
        self.metrics.checkpoint(last_uid);
        debug!(last_uid, "recorded and judged new mail");
        Ok(())
    }

    /// Judges again recorded messages whose earlier judgement was deferred, and
    /// commits every decision together.
    pub(crate) async fn judge_stored(
        &mut self,
        batch: Vec<MessageRecord>,
    ) -> Result<Applied, WatcherError> {
        let mut with_raw = Vec::with_capacity(batch.len());
        for m in batch {
            let raw = self.journal.raw(m.id)?;
            with_raw.push((m, raw));
        }
        let transitions = self
            .decide(with_raw)
            .await?
            .into_iter()
            .map(|(m, _, decision)| Transition::Judge {
                id: m.id,
                key: m.key,
                decision,
            })
            .collect();
        self.commit(transitions).await
    }

    /// Authenticates and verifies messages (their bytes beside them; `None` when too
    /// large to fetch) and composes the replies: CPU and chain reads, nothing written.
    #[allow(clippy::type_complexity)]
    async fn decide(
        &self,
        batch: Vec<(MessageRecord, Option<Vec<u8>>)>,
    ) -> Result<Vec<(MessageRecord, Option<Vec<u8>>, Decision)>, WatcherError> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        let head = self.client.chain().head().await;
        if let Ok(h) = &head {
            self.catch_up_index(h.number).await;
        }
        let chain_now = head.as_ref().ok().map(|h| h.timestamp);
        let mut judged = Vec::with_capacity(batch.len());
        for (m, raw) in batch {
            let span = info_span!("message", uid = m.key.uid, msg = tracing::field::Empty);
            // One bad message is never fatal: a panic while judging it (a bug, here or
            // in a parser) files it unanswered instead of killing the watcher, which
            // would meet the same message again after every restart.
            let j = futures::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(
                self.judge_one(&m, raw.as_deref(), chain_now),
            ))
            .instrument(span.clone())
            .await
            .unwrap_or_else(|_| {
                tracing::error!(parent: &span, "judging the message panicked; filed without an answer");
                Judgement::Dropped(DropReason::Internal)
            });
            judged.push((m, raw, j, span));
        }
        // Message-IDs handled before (one read for the batch), and met twice in it.
        let hashes: Vec<&str> = judged
            .iter()
            .filter_map(|(_, _, j, _)| match j {
                Judgement::Refused(mail, _)
                | Judgement::Accepted(mail, _)
                | Judgement::Wallet(mail, _) => Some(mail.msgid_hash.as_str()),
                _ => None,
            })
            .collect();
        let owners = self.journal.seen_owners(&hashes)?;
        let mut batch_seen = std::collections::HashSet::new();
        let mut rows = Vec::with_capacity(judged.len());
        for (m, raw, j, span) in judged {
            let _g = span.enter();
            // A copy of a message already handled is a duplicate whatever its verdict
            // would be now (a paid claim's copy would read `already-claimed`): say so.
            let copy = match &j {
                Judgement::Refused(mail, _)
                | Judgement::Accepted(mail, _)
                | Judgement::Wallet(mail, _) => {
                    let h = &mail.msgid_hash;
                    (!batch_seen.insert(h.clone())
                        || owners.get(h).is_some_and(|owner| *owner != m.id))
                    .then(|| h.clone())
                }
                _ => None,
            };
            let decision = match (copy, j) {
                (Some(msgid), _) => {
                    info!(
                        reason = "duplicate",
                        "duplicate of a message already handled (same Message-ID); not answered"
                    );
                    Decision::Duplicate { msgid }
                }
                (None, Judgement::Dropped(r)) => {
                    info!(reason = r.code(), "dropped (no reply)");
                    Decision::Decide {
                        outcome: Outcome::dropped(&r),
                        msgid: None,
                        ctx: None,
                        reply: None,
                    }
                }
                (None, Judgement::Refused(mail, r)) => {
                    info!(reason = r.code(), "refused");
                    let ctx = ReplyContext::of(&mail);
                    let reply = self.compose_refusal(&ctx, &r)?;
                    Decision::Decide {
                        outcome: Outcome::refused(&r),
                        msgid: Some(mail.msgid_hash.clone()),
                        ctx: Some(ctx),
                        reply: Some(reply),
                    }
                }
                (None, Judgement::Accepted(mail, plan)) => {
                    info!(amount = %plan.format(plan.deposit.amount), "claim verified");
                    // The claim-in-progress reply is composed only if the deposit's
                    // claim slot turns out to be taken (rare), when it is written.
                    Decision::Accept {
                        plan,
                        msgid: mail.msgid_hash.clone(),
                        ctx: ReplyContext::of(&mail),
                    }
                }
                (None, Judgement::Wallet(mail, intake)) => {
                    info!(code = %intake.code(), "wallet order recorded");
                    Decision::Wallet {
                        msgid: mail.msgid_hash.clone(),
                        ctx: ReplyContext::of(&mail),
                        intake,
                    }
                }
                (None, Judgement::Deferred(error)) => {
                    warn!(%error, attempts = m.attempts + 1, "transient failure; will retry");
                    Decision::Defer {
                        error,
                        at: self.backoff(m.attempts),
                    }
                }
            };
            drop(_g);
            rows.push((m, raw, decision));
        }
        Ok(rows)
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
        if let Some(intake) = self
            .wallet
            .as_ref()
            .and_then(|w| w.intake(&mail, raw, unix_now()))
        {
            return Judgement::Wallet(mail, Box::new(intake));
        }
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

    pub(crate) fn compose_refusal(
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
}
