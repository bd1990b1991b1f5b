//! Stage 5 and the end of a message, as the watcher runs them: replies in the
//! journal's outbox are handed to the [`crate::reply::ReplySink`], and decided
//! messages are filed in their folder by the door they came through.
//!
//! Replies go out at least once: a group is marked `sending` (committed) before the
//! hand-over and `sent` after; a crash in between sends them again at the next start,
//! with the same bytes and so the same Message-ID (derived from the claim's), which
//! mail clients fold into the first copy.

use futures::StreamExt;
use tracing::{debug, warn};

use crate::journal::ReplyRetry;
use crate::service::{unix_now, CrashPoint, ToFile, Watcher, WatcherError};
use crate::transition::Transition;

/// How long a pass sends replies at most (a group is never cut): the rest wait for
/// the next pass, which comes at once, so that settling, fetching and submitting are
/// not held up by a long outbox behind a slow mail server.
const REPLY_PASS_BUDGET: std::time::Duration = std::time::Duration::from_millis(250);
/// Replies marked `sending` (and then `sent`) per commit: two commits per group,
/// and at most this many second copies after a crash during the hand-over.
const REPLY_GROUP: usize = 64;

impl Watcher {
    /// Sends the due replies, as many at a time as the sink takes (`[smtp]
    /// connections`): a reply costs tens of ms at the mail server (which stores it
    /// before its 250), and one by one they held up the next fetch under load.
    pub(crate) async fn flush_outbox(&mut self) -> Result<bool, WatcherError> {
        let now = unix_now();
        let mut after = 0;
        let mut any = false;
        let started = std::time::Instant::now();
        self.outbox_more = false;
        loop {
            let group = self.journal.outbox_due_page(now, after, REPLY_GROUP)?;
            let Some(last) = group.last() else {
                break;
            };
            after = last.id;
            crate::transition::commit(
                &self.journal,
                group
                    .iter()
                    .map(|item| Transition::ReplySending { id: item.id })
                    .collect(),
                Default::default(),
            )
            .await?;
            self.crash(CrashPoint::AfterReplyMarked)?;
            let sink = self.sink.clone();
            let mut sends = Vec::with_capacity(group.len());
            for item in &group {
                let sink = sink.clone();
                let mail = crate::reply::OutgoingMail {
                    mail_from: item.mail_from.clone(),
                    rcpt: item.rcpt.clone(),
                    bytes: item.bytes.clone(),
                };
                sends.push(async move { sink.send(&mail).await });
            }
            let results: Vec<_> = futures::stream::iter(sends)
                .buffered(self.sink.concurrency().max(1))
                .collect()
                .await;
            if results.iter().any(Result::is_ok) {
                self.crash(CrashPoint::AfterReplySent)?;
            }
            let mut transitions = Vec::with_capacity(group.len());
            for (item, result) in group.iter().zip(&results) {
                match result {
                    Ok(()) => {
                        self.metrics.reply(true);
                        self.report.replies_sent += 1;
                        any = true;
                        transitions.push(Transition::ReplySent { id: item.id });
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
                        transitions.push(Transition::ReplyFailed {
                            id: item.id,
                            error: e.message.clone(),
                            next,
                        });
                    }
                }
            }
            self.commit(transitions).await?;
            if group.len() < REPLY_GROUP {
                break;
            }
            if any && started.elapsed() >= REPLY_PASS_BUDGET {
                // A full group may have more behind it: the next pass comes at once.
                self.outbox_more = true;
                break;
            }
        }
        Ok(any)
    }

    /// Files decided messages through the door they came from, then records them
    /// `done` in one commit. A message no door serves (a claim from the claim page,
    /// or a door no longer configured) has nothing to move.
    pub(crate) async fn file_decided(
        &mut self,
        decided: Vec<ToFile>,
    ) -> Result<bool, WatcherError> {
        if decided.is_empty() {
            return Ok(false);
        }
        let mut transitions = Vec::with_capacity(decided.len());
        for (id, key, folder) in decided {
            match self.sources.iter_mut().find(|s| s.mailbox() == key.mailbox) {
                Some(door) => door.file(&key, folder).await?,
                None => debug!(%key, "no door serves this mailbox; nothing to file"),
            }
            self.crash(CrashPoint::AfterFiling)?;
            transitions.push(Transition::Filed { id });
            self.report.filed += 1;
        }
        self.commit(transitions).await?;
        Ok(true)
    }
}
