//! Simulated crashes, for the crash-safety tests.
//!
//! A [`CrashPoint`] names a place in the pipeline between a durable step and the next
//! one. A test sets [`crate::service::PipelineSettings::crash_at`] (and `crash_nth`):
//!
//! * in-process tests let the pass fail there with
//!   [`crate::WatcherError::Crashed`] and drop the watcher, which loses everything not
//!   in the journal, as a crash would;
//! * the crash harness (`cli/tests/crash_restart.rs`) runs the real `springmail watch`
//!   with `SPRINGMAIL_CRASH_AT=<point>[:<nth>]`; the command reads it once at start
//!   and sets `crash_abort`, so the process SIGKILLs itself at the `nth` time it
//!   reaches the point (`kill -KILL` on its own pid; `abort()` if that fails).
//!
//! Nothing here runs unless a crash was asked for, and nothing fires at all unless the
//! crate is built with the `crash-points` feature (the tests turn it on; a release
//! build of `springmail` has no crash points: [`ENABLED`] is false there).

use std::sync::atomic::{AtomicU32, Ordering};

/// True when this build can stop at a crash point (the `crash-points` feature).
pub const ENABLED: bool = cfg!(feature = "crash-points");

/// Places where a test can make the watcher stop dead, as a SIGKILL would.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CrashPoint {
    /// After new mail was fetched, judged and recorded (a message, its verdict and the
    /// checkpoint commit together), before claims were handed to the submitter.
    AfterReceive,
    /// After verdicts were committed, before claims were handed to the submitter.
    AfterJudge,
    /// In the submitter: `submitting` is committed and the attestation signed, nothing
    /// broadcast yet.
    AfterAttest,
    /// In the submitter: the node accepted the claim transaction; its hash is not
    /// recorded yet.
    AfterBroadcast,
    /// After a submission finished on chain, before its outcome was committed.
    AfterSubmit,
    /// After outcomes were committed, before replies were sent.
    BeforeReplies,
    /// A group of replies is marked `sending`; none was handed to the mail server yet.
    AfterReplyMarked,
    /// A reply was accepted by the mail server; that it was sent is not recorded yet.
    AfterReplySent,
    /// After replies were sent, before messages were filed.
    BeforeFiling,
    /// A message was moved to its folder; `done` is not recorded yet.
    AfterFiling,
    /// Inside a journal transaction, after its statements ran, before the commit
    /// (any write: fetch, verdicts, submitter states, outbox, filing). Abort only.
    JournalCommit,
    /// A mailbox wallet's chain step is recorded (`acting`, with its nonce), nothing sent.
    WalletStepRecorded,
    /// A wallet movement landed on chain; that it is done is not recorded yet.
    WalletAfterSend,
}

impl CrashPoint {
    /// Every point, in pipeline order.
    pub const ALL: [CrashPoint; 11] = [
        CrashPoint::AfterReceive,
        CrashPoint::AfterJudge,
        CrashPoint::AfterAttest,
        CrashPoint::AfterBroadcast,
        CrashPoint::AfterSubmit,
        CrashPoint::BeforeReplies,
        CrashPoint::AfterReplyMarked,
        CrashPoint::AfterReplySent,
        CrashPoint::BeforeFiling,
        CrashPoint::AfterFiling,
        CrashPoint::JournalCommit,
    ];

    /// The mailbox wallet's points (reached only by wallet orders, so not in `ALL`,
    /// which a claim reaches every one of).
    pub const WALLET: [CrashPoint; 2] =
        [CrashPoint::WalletStepRecorded, CrashPoint::WalletAfterSend];

    /// The name used in `SPRINGMAIL_CRASH_AT`, e.g. `after-reply-sent`.
    pub fn name(self) -> &'static str {
        match self {
            CrashPoint::AfterReceive => "after-receive",
            CrashPoint::AfterJudge => "after-judge",
            CrashPoint::AfterAttest => "after-attest",
            CrashPoint::AfterBroadcast => "after-broadcast",
            CrashPoint::AfterSubmit => "after-submit",
            CrashPoint::BeforeReplies => "before-replies",
            CrashPoint::AfterReplyMarked => "after-reply-marked",
            CrashPoint::AfterReplySent => "after-reply-sent",
            CrashPoint::BeforeFiling => "before-filing",
            CrashPoint::AfterFiling => "after-filing",
            CrashPoint::JournalCommit => "journal-commit",
            CrashPoint::WalletStepRecorded => "wallet-step-recorded",
            CrashPoint::WalletAfterSend => "wallet-after-send",
        }
    }

    /// Reads `<point>[:<nth>]` (`nth` counts from 1; default 1).
    pub fn parse_spec(spec: &str) -> Result<(CrashPoint, u32), String> {
        let (name, nth) = match spec.trim().split_once(':') {
            Some((n, k)) => (
                n,
                k.parse::<u32>()
                    .ok()
                    .filter(|k| *k >= 1)
                    .ok_or_else(|| format!("{k:?} is not a count from 1"))?,
            ),
            None => (spec.trim(), 1),
        };
        let point = CrashPoint::ALL
            .into_iter()
            .chain(CrashPoint::WALLET)
            .find(|p| p.name() == name)
            .ok_or_else(|| {
                format!(
                    "{name:?} is not a crash point (one of: {})",
                    CrashPoint::ALL.map(|p| p.name()).join(", ")
                )
            })?;
        Ok((point, nth))
    }
}

impl std::fmt::Display for CrashPoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The armed crash, shared by the pipeline and the submitter task.
#[derive(Debug)]
pub(crate) struct CrashSwitch {
    at: Option<CrashPoint>,
    nth: u32,
    abort: bool,
    hits: AtomicU32,
}

impl CrashSwitch {
    pub(crate) fn new(at: Option<CrashPoint>, nth: u32, abort: bool) -> Self {
        CrashSwitch {
            at,
            nth: nth.max(1),
            abort,
            hits: AtomicU32::new(0),
        }
    }

    /// Nothing armed.
    pub(crate) fn off() -> Self {
        Self::new(None, 1, false)
    }

    /// Called at `point`: `Err` (or no return at all, when aborting) once the armed
    /// point has been reached `nth` times.
    pub(crate) fn hit(&self, point: CrashPoint) -> Result<(), CrashPoint> {
        if !ENABLED || self.at != Some(point) {
            return Ok(());
        }
        let n = self.hits.fetch_add(1, Ordering::SeqCst) + 1;
        if n < self.nth {
            return Ok(());
        }
        if self.abort {
            die(point);
        }
        Err(point)
    }
}

/// Ends the process at once, as SIGKILL does: no destructors, no flushing.
pub(crate) fn die(point: CrashPoint) -> ! {
    eprintln!("springmail watcher: simulated crash at {point}");
    let pid = std::process::id().to_string();
    let _ = std::process::Command::new("kill")
        .args(["-KILL", &pid])
        .status();
    // `kill` was not there or did not work.
    std::process::abort()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_name_a_point_and_a_count() {
        assert_eq!(
            CrashPoint::parse_spec("after-reply-sent"),
            Ok((CrashPoint::AfterReplySent, 1))
        );
        assert_eq!(
            CrashPoint::parse_spec("journal-commit:7"),
            Ok((CrashPoint::JournalCommit, 7))
        );
        assert!(CrashPoint::parse_spec("after-lunch").is_err());
        assert!(CrashPoint::parse_spec("after-judge:0").is_err());
        for p in CrashPoint::ALL {
            assert_eq!(CrashPoint::parse_spec(p.name()), Ok((p, 1)));
        }
    }

    #[test]
    #[cfg(feature = "crash-points")]
    fn the_switch_fires_at_the_nth_hit_of_its_point_only() {
        let s = CrashSwitch::new(Some(CrashPoint::AfterJudge), 2, false);
        assert_eq!(s.hit(CrashPoint::AfterReceive), Ok(()));
        assert_eq!(s.hit(CrashPoint::AfterJudge), Ok(()));
        assert_eq!(s.hit(CrashPoint::AfterJudge), Err(CrashPoint::AfterJudge));
        assert_eq!(CrashSwitch::off().hit(CrashPoint::AfterJudge), Ok(()));
    }
}
