//! The pipeline's state machine: every change the watcher makes to the journal is a
//! [`Transition`], and [`apply`] is the one place that writes each. The stages
//! ([`crate::judge`], [`crate::settle`], [`crate::outbox`]) build transitions; the
//! journal's writer thread applies them, many in one group commit.
//!
//! Outcomes (the final word on a message) are built here too, by [`Outcome`]'s
//! constructors, so a message is described the same way whichever stage decides it.

use std::sync::Arc;

use crate::authenticate::DropReason;
use crate::journal::{
    Checkpoint, Folder, JournalError, JournalTx, MailKey, Outcome, OutcomeKind, QueuedReply,
    ReplyRetry,
};
use crate::reply::{OutgoingMail, ReplyBody, ReplyComposer, ReplyContext};
use crate::verify::{ClaimPlan, RefusalReason};

impl Outcome {
    /// The deposit was released to the claimant.
    pub fn claimed(plan: &ClaimPlan, chain_id: u64, tx_hash: &str) -> Self {
        Outcome {
            kind: OutcomeKind::Claimed,
            code: "claimed".into(),
            text: format!(
                "paid {} to {} (fee {})",
                plan.format(plan.payout()),
                springmail_sdk::qtum::format_address(chain_id, plan.signed.auth.to),
                plan.format(plan.fee)
            ),
            tx_hash: Some(tx_hash.to_string()),
        }
    }

    /// The claim was refused; the claimant is told why.
    pub fn refused(r: &RefusalReason) -> Self {
        Outcome {
            kind: OutcomeKind::Refused,
            code: r.code().into(),
            text: r.explain(),
            tx_hash: None,
        }
    }

    /// The mail was not answered (not proven, not a claim).
    pub fn dropped(r: &DropReason) -> Self {
        Outcome {
            kind: OutcomeKind::Dropped,
            code: r.code().into(),
            text: r.explain(),
            tx_hash: None,
        }
    }

    /// A copy of a message already handled.
    pub fn duplicate() -> Self {
        Outcome {
            kind: OutcomeKind::Duplicate,
            code: "duplicate".into(),
            text:
                "a copy of a message that was already handled (same Message-ID); not answered again"
                    .into(),
            tx_hash: None,
        }
    }
}

/// What judging a message decided, before it is written.
#[derive(Debug)]
pub enum Decision {
    /// A final outcome (filed in Rejected), with the reply if the sender is answered.
    Decide {
        /// The outcome.
        outcome: Outcome,
        /// The Message-ID hash, when the sender was proven (remembered against replays).
        msgid: Option<String>,
        /// Who to answer.
        ctx: Option<ReplyContext>,
        /// The reply.
        reply: Option<OutgoingMail>,
    },
    /// A verified claim: it takes the deposit's claim slot and goes to the submitter.
    Accept {
        /// What to submit.
        plan: Box<ClaimPlan>,
        /// The Message-ID hash.
        msgid: String,
        /// Who to answer once the claim is settled.
        ctx: ReplyContext,
    },
    /// A mailbox wallet order, recorded for [`crate::wallet`] to carry out and answer.
    Wallet {
        /// The Message-ID hash.
        msgid: String,
        /// Who to answer.
        ctx: ReplyContext,
        /// The order.
        intake: Box<crate::wallet::Intake>,
    },
    /// A copy of a message already handled (its Message-ID hash).
    Duplicate {
        /// The Message-ID hash.
        msgid: String,
    },
    /// A transient failure: judged again at `at` (unix seconds).
    Defer {
        /// What failed.
        error: String,
        /// When to try again.
        at: u64,
    },
}

/// How a submitted claim ended, to be written.
#[derive(Debug)]
pub enum Settlement {
    /// The final outcome, its folder, and the reply if any.
    Decide(Outcome, Folder, Option<OutgoingMail>),
    /// A transient failure: resubmitted at `at` after the chain is read again.
    Defer {
        /// What failed.
        error: String,
        /// When to try again.
        at: u64,
    },
}

/// One change to the journal.
#[derive(Debug)]
pub enum Transition {
    /// New mail, recorded with its decision; its bytes are kept only if it was deferred.
    Record {
        /// Where it came from.
        key: MailKey,
        /// Its size.
        size: u64,
        /// Its bytes (`None` when too large to fetch).
        raw: Option<Vec<u8>>,
        /// What judging it decided.
        decision: Decision,
    },
    /// A recorded message judged again (its earlier judgement was deferred).
    Judge {
        /// Its row.
        id: i64,
        /// Where it came from.
        key: MailKey,
        /// What judging it decided.
        decision: Decision,
    },
    /// A door's checkpoint moves past the mail recorded from it.
    Checkpoint {
        /// The door's mailbox.
        mailbox: String,
        /// The new checkpoint.
        cp: Checkpoint,
    },
    /// A claim from the claim page: accepted in the web pseudo-mailbox, if the
    /// deposit's claim slot is free.
    AcceptWeb {
        /// The deposit's claim key.
        claim_key: String,
        /// The claim plan (JSON).
        plan: String,
    },
    /// The claim transaction is about to be broadcast.
    Submitting {
        /// The message's row.
        id: i64,
    },
    /// The claim transaction was broadcast.
    Submitted {
        /// The message's row.
        id: i64,
        /// The transaction.
        tx_hash: String,
    },
    /// A submission ended.
    Settle {
        /// The message's row.
        id: i64,
        /// How.
        settlement: Settlement,
    },
    /// A reply is being handed to the mail server.
    ReplySending {
        /// The outbox row.
        id: i64,
    },
    /// The mail server took the reply.
    ReplySent {
        /// The outbox row.
        id: i64,
    },
    /// Sending the reply failed.
    ReplyFailed {
        /// The outbox row.
        id: i64,
        /// Why.
        error: String,
        /// Retry or give up.
        next: ReplyRetry,
    },
    /// The message was filed in its folder.
    Filed {
        /// The message's row.
        id: i64,
    },
}

/// A claim that took its deposit's slot, ready for the submitter.
#[derive(Debug)]
pub struct AcceptedClaim {
    /// Its row.
    pub id: i64,
    /// Where it came from.
    pub key: MailKey,
    /// The Message-ID hash.
    pub msgid: String,
    /// What to submit.
    pub plan: Box<ClaimPlan>,
    /// Who to answer.
    pub ctx: Option<ReplyContext>,
}

/// What a group of transitions did.
#[derive(Debug, Default)]
pub struct Applied {
    /// New messages recorded.
    pub received: usize,
    /// Final outcomes written, by kind and code.
    pub decided: Vec<(OutcomeKind, String)>,
    /// Messages decided (to be filed), with their folder.
    pub to_file: Vec<(i64, MailKey, Folder)>,
    /// Claims accepted.
    pub accepted: Vec<AcceptedClaim>,
    /// The claim page's claim: its row, or the row already holding the slot.
    pub web: Option<Result<i64, i64>>,
}

/// What [`apply`] needs besides the transition: the composer of the rare reply
/// written inside the transaction (a claim whose deposit's slot is taken).
#[derive(Clone, Default)]
pub struct Env {
    /// Composes the claim-in-progress refusal.
    pub composer: Option<Arc<ReplyComposer>>,
    /// Reply date (unix seconds).
    pub now: u64,
}

/// Writes transitions in order (in one journal write, so in one commit).
pub fn apply_all(
    tx: &mut JournalTx<'_>,
    transitions: Vec<Transition>,
    env: &Env,
) -> Result<Applied, JournalError> {
    let mut out = Applied::default();
    for t in transitions {
        apply(tx, t, env, &mut out)?;
    }
    Ok(out)
}

fn queued(r: &OutgoingMail) -> QueuedReply<'_> {
    QueuedReply {
        mail_from: &r.mail_from,
        rcpt: &r.rcpt,
        bytes: &r.bytes,
    }
}

/// The one function that writes each transition.
pub fn apply(
    tx: &mut JournalTx<'_>,
    t: Transition,
    env: &Env,
    out: &mut Applied,
) -> Result<(), JournalError> {
    match t {
        Transition::Record {
            key,
            size,
            raw,
            decision,
        } => {
            let keep = match decision {
                Decision::Defer { .. } => raw.as_deref(),
                _ => None,
            };
            if let Some(id) = tx.insert_received(&key, size, keep)? {
                out.received += 1;
                decide(tx, id, key, decision, env, out)?;
            }
        }
        Transition::Judge { id, key, decision } => decide(tx, id, key, decision, env, out)?,
        Transition::Checkpoint { mailbox, cp } => tx.set_checkpoint(&mailbox, cp)?,
        Transition::AcceptWeb { claim_key, plan } => {
            out.web = Some(tx.accept_web(&claim_key, &plan)?);
        }
        Transition::Submitting { id } => tx.mark_submitting(id)?,
        Transition::Submitted { id, tx_hash } => tx.mark_submitted(id, &tx_hash)?,
        Transition::Settle { id, settlement } => match settlement {
            Settlement::Defer { error, at } => tx.defer(id, at, &error)?,
            Settlement::Decide(outcome, folder, reply) => {
                tx.decide(id, &outcome, folder, None, reply.as_ref().map(queued))?;
                out.decided.push((outcome.kind, outcome.code));
            }
        },
        Transition::ReplySending { id } => tx.outbox_sending(id)?,
        Transition::ReplySent { id } => tx.outbox_sent(id)?,
        Transition::ReplyFailed { id, error, next } => tx.outbox_failed(id, &error, next)?,
        Transition::Filed { id } => tx.mark_done(id)?,
    }
    Ok(())
}

/// Writes a final outcome of a judged message (filed in Rejected) with its reply.
fn finish(
    tx: &mut JournalTx<'_>,
    id: i64,
    key: &MailKey,
    out: &mut Applied,
    outcome: Outcome,
    ctx: Option<&ReplyContext>,
    reply: Option<&OutgoingMail>,
) -> Result<(), JournalError> {
    let ctx_json = ctx.map(|c| serde_json::to_string(c).expect("serializable"));
    tx.decide(
        id,
        &outcome,
        Folder::Rejected,
        ctx_json.as_deref(),
        reply.map(queued),
    )?;
    out.decided.push((outcome.kind, outcome.code));
    out.to_file.push((id, key.clone(), Folder::Rejected));
    Ok(())
}

/// Writes a judged message's decision: outcome and reply, or its claim with the
/// deposit's slot, or a deferral. A Message-ID met before makes it a duplicate.
fn decide(
    tx: &mut JournalTx<'_>,
    id: i64,
    key: MailKey,
    decision: Decision,
    env: &Env,
    out: &mut Applied,
) -> Result<(), JournalError> {
    match decision {
        Decision::Defer { error, at } => tx.defer(id, at, &error)?,
        Decision::Duplicate { msgid } => {
            tx.mark_seen(id, &msgid)?;
            finish(tx, id, &key, out, Outcome::duplicate(), None, None)?;
        }
        Decision::Decide {
            outcome,
            msgid,
            ctx,
            reply,
        } => {
            if let Some(h) = &msgid {
                if tx.mark_seen(id, h)?.is_some() {
                    return finish(tx, id, &key, out, Outcome::duplicate(), None, None);
                }
            }
            finish(tx, id, &key, out, outcome, ctx.as_ref(), reply.as_ref())?;
        }
        Decision::Wallet { msgid, ctx, intake } => {
            // A copy (same Message-ID, or the same bytes under another) orders nothing.
            if tx.mark_seen(id, &msgid)?.is_some() || !crate::wallet::record(tx, id, &ctx, &intake)?
            {
                return finish(tx, id, &key, out, Outcome::duplicate(), None, None);
            }
            let outcome = Outcome {
                kind: OutcomeKind::Order,
                code: intake.code(),
                text: "a mailbox wallet order, carried out and answered by the wallet".into(),
                tx_hash: None,
            };
            let ctx_json = serde_json::to_string(&ctx).expect("serializable");
            tx.decide(id, &outcome, Folder::Processed, Some(&ctx_json), None)?;
            out.decided.push((outcome.kind, outcome.code));
            out.to_file.push((id, key, Folder::Processed));
        }
        Decision::Accept { plan, msgid, ctx } => {
            if tx.mark_seen(id, &msgid)?.is_some() {
                return finish(tx, id, &key, out, Outcome::duplicate(), None, None);
            }
            let ctx_json = serde_json::to_string(&ctx).expect("serializable");
            let claim_key = plan.claim_key().to_string();
            if tx
                .accept(id, &claim_key, &plan.to_json(), &ctx_json)?
                .is_some()
            {
                // Another message holds the deposit's slot (rare): refuse this one,
                // composing its reply here, inside the transaction.
                let r = RefusalReason::ClaimInProgress;
                let reply = env.composer.as_ref().and_then(|c| {
                    c.compose(
                        &ctx,
                        &ReplyBody::Refused {
                            reason: r.explain(),
                        },
                        env.now,
                    )
                    .map_err(|e| {
                        tracing::error!(error = %e, "cannot compose the claim-in-progress reply; refusing without one");
                    })
                    .ok()
                });
                finish(
                    tx,
                    id,
                    &key,
                    out,
                    Outcome::refused(&r),
                    Some(&ctx),
                    reply.as_ref(),
                )?;
            } else {
                out.accepted.push(AcceptedClaim {
                    id,
                    key,
                    msgid,
                    plan,
                    ctx: Some(ctx),
                });
            }
        }
    }
    Ok(())
}

/// Applies `transitions` in the journal's next group commit; returns once durable.
pub async fn commit(
    journal: &crate::journal::Journal,
    transitions: Vec<Transition>,
    env: Env,
) -> Result<Applied, JournalError> {
    if transitions.is_empty() {
        return Ok(Applied::default());
    }
    enqueue(journal, transitions, env)?.durable().await
}

/// Sends `transitions` to the journal now; see [`crate::journal::Journal::enqueue`].
pub fn enqueue(
    journal: &crate::journal::Journal,
    transitions: Vec<Transition>,
    env: Env,
) -> Result<crate::journal::Pending<Applied>, JournalError> {
    journal.enqueue(move |tx| apply_all(tx, transitions, &env))
}
