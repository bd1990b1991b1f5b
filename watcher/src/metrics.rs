//! The watcher's counters and gauges, rendered as Prometheus text for `GET /metrics`
//! (served with `GET /healthz` by [`crate::http`]).
//!
//! Counters live in atomics updated by the pipeline.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::journal::OutcomeKind;

/// The watcher's counters and gauges.
#[derive(Debug, Default)]
pub struct Metrics {
    outcomes: Mutex<BTreeMap<(&'static str, String), u64>>,
    claims_submitted: AtomicU64,
    replies_sent: AtomicU64,
    replies_failed: AtomicU64,
    last_checkpoint_uid: AtomicU64,
    last_checkpoint_at: AtomicU64,
    chain_head: AtomicU64,
    chain_head_lag: AtomicI64,
    last_loop_at: AtomicU64,
    mail_connected: AtomicU64,
    unfinished: AtomicU64,
    reply_attempts: AtomicU64,
    replies_pending: AtomicU64,
    replies_oldest_pending_at: AtomicU64,
    replies_resent: AtomicU64,
    replies_given_up: AtomicU64,
    replies_unconfirmed: AtomicU64,
    errors: AtomicU64,
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl Metrics {
    /// Fresh counters.
    pub fn new() -> Arc<Self> {
        Arc::new(Metrics::default())
    }

    /// A message reached a final outcome.
    pub fn outcome(&self, kind: OutcomeKind, code: &str) {
        let mut m = self.outcomes.lock().unwrap_or_else(|p| p.into_inner());
        *m.entry((kind.as_str(), code.to_string())).or_default() += 1;
    }

    /// Outcome counts so far, by kind.
    pub fn outcome_count(&self, kind: OutcomeKind) -> u64 {
        let m = self.outcomes.lock().unwrap_or_else(|p| p.into_inner());
        m.iter()
            .filter(|((k, _), _)| *k == kind.as_str())
            .map(|(_, v)| v)
            .sum()
    }

    /// A claim transaction was broadcast.
    pub fn claim_submitted(&self) {
        self.claims_submitted.fetch_add(1, Ordering::Relaxed);
    }

    /// Claim transactions broadcast so far.
    pub fn claims_submitted(&self) -> u64 {
        self.claims_submitted.load(Ordering::Relaxed)
    }

    /// A reply was handed to the mail server (or the attempt failed).
    pub fn reply(&self, ok: bool) {
        self.reply_attempts.fetch_add(1, Ordering::Relaxed);
        if ok {
            &self.replies_sent
        } else {
            &self.replies_failed
        }
        .fetch_add(1, Ordering::Relaxed);
    }

    /// Attempts to hand a reply over so far (delivered or failed).
    pub fn reply_attempts(&self) -> u64 {
        self.reply_attempts.load(Ordering::Relaxed)
    }

    /// Failed attempts to hand a reply over so far.
    pub fn replies_failed(&self) -> u64 {
        self.replies_failed.load(Ordering::Relaxed)
    }

    /// The checkpoint moved.
    pub fn checkpoint(&self, uid: u32) {
        self.last_checkpoint_uid
            .store(u64::from(uid), Ordering::Relaxed);
        self.last_checkpoint_at.store(now(), Ordering::Relaxed);
    }

    /// The chain head was read.
    pub fn chain_head(&self, number: u64, timestamp: u64) {
        self.chain_head.store(number, Ordering::Relaxed);
        self.chain_head_lag
            .store(now() as i64 - timestamp as i64, Ordering::Relaxed);
    }

    /// The main loop completed a pass.
    pub fn loop_pass(&self, unfinished: u64) {
        self.last_loop_at.store(now(), Ordering::Relaxed);
        self.unfinished.store(unfinished, Ordering::Relaxed);
    }

    /// The outbox as the journal counts it.
    pub fn outbox(&self, stats: &crate::journal::JournalStats) {
        self.replies_pending
            .store(stats.outbox_pending, Ordering::Relaxed);
        self.replies_oldest_pending_at.store(
            stats.outbox_oldest_pending_at.unwrap_or(0),
            Ordering::Relaxed,
        );
        self.replies_resent
            .store(stats.outbox_resent, Ordering::Relaxed);
        self.replies_given_up
            .store(stats.outbox_given_up, Ordering::Relaxed);
        self.replies_unconfirmed
            .store(stats.outbox_unconfirmed, Ordering::Relaxed);
    }

    /// The mail source is (not) connected.
    pub fn mail_connected(&self, yes: bool) {
        self.mail_connected.store(u64::from(yes), Ordering::Relaxed);
    }

    /// A pass failed.
    pub fn error(&self) {
        self.errors.fetch_add(1, Ordering::Relaxed);
    }

    /// Healthy when the loop ran within `max_age` seconds.
    pub fn healthy(&self, max_age: u64) -> bool {
        let last = self.last_loop_at.load(Ordering::Relaxed);
        last != 0 && now().saturating_sub(last) <= max_age
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        out.push_str("# HELP springmail_messages_total Messages by final outcome.\n# TYPE springmail_messages_total counter\n");
        let m = self
            .outcomes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        for kind in OutcomeKind::ALL {
            if !m.keys().any(|(k, _)| *k == kind.as_str()) {
                out.push_str(&format!(
                    "springmail_messages_total{{outcome=\"{}\",reason=\"\"}} 0\n",
                    kind.as_str()
                ));
            }
        }
        for ((kind, code), n) in &m {
            out.push_str(&format!(
                "springmail_messages_total{{outcome=\"{kind}\",reason=\"{code}\"}} {n}\n"
            ));
        }
        let gauge = |out: &mut String, name: &str, help: &str, kind: &str, v: String| {
            out.push_str(&format!(
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}\n"
            ));
        };
        gauge(
            &mut out,
            "springmail_claims_submitted_total",
            "Claim transactions broadcast.",
            "counter",
            self.claims_submitted().to_string(),
        );
        gauge(
            &mut out,
            "springmail_replies_sent_total",
            "Replies delivered to the mail server.",
            "counter",
            self.replies_sent.load(Ordering::Relaxed).to_string(),
        );
        gauge(
            &mut out,
            "springmail_replies_failed_total",
            "Reply delivery attempts that failed.",
            "counter",
            self.replies_failed.load(Ordering::Relaxed).to_string(),
        );
        gauge(
            &mut out,
            "springmail_last_checkpoint_uid",
            "Highest mailbox UID recorded in the journal.",
            "gauge",
            self.last_checkpoint_uid.load(Ordering::Relaxed).to_string(),
        );
        gauge(
            &mut out,
            "springmail_last_checkpoint_timestamp_seconds",
            "When the checkpoint last moved (unix seconds).",
            "gauge",
            self.last_checkpoint_at.load(Ordering::Relaxed).to_string(),
        );
        gauge(
            &mut out,
            "springmail_chain_head_block",
            "Newest block seen.",
            "gauge",
            self.chain_head.load(Ordering::Relaxed).to_string(),
        );
        gauge(
            &mut out,
            "springmail_chain_head_lag_seconds",
            "Wall clock minus the newest block's timestamp.",
            "gauge",
            self.chain_head_lag.load(Ordering::Relaxed).to_string(),
        );
        gauge(
            &mut out,
            "springmail_unfinished_messages",
            "Messages not yet filed.",
            "gauge",
            self.unfinished.load(Ordering::Relaxed).to_string(),
        );
        gauge(
            &mut out,
            "springmail_reply_attempts_total",
            "Attempts to hand a reply to the mail server (delivered or failed).",
            "counter",
            self.reply_attempts().to_string(),
        );
        gauge(
            &mut out,
            "springmail_replies_pending",
            "Replies waiting to be sent or retried.",
            "gauge",
            self.replies_pending.load(Ordering::Relaxed).to_string(),
        );
        let oldest = self.replies_oldest_pending_at.load(Ordering::Relaxed);
        gauge(
            &mut out,
            "springmail_replies_oldest_pending_age_seconds",
            "Age of the oldest reply not yet sent (0 when none waits).",
            "gauge",
            if oldest == 0 {
                0
            } else {
                now().saturating_sub(oldest)
            }
            .to_string(),
        );
        gauge(
            &mut out,
            "springmail_replies_resent",
            "Times a reply was sent again after a crash interrupted its hand-over (the claimant may hold two copies with one Message-ID).",
            "gauge",
            self.replies_resent.load(Ordering::Relaxed).to_string(),
        );
        gauge(
            &mut out,
            "springmail_replies_given_up",
            "Replies refused for good by the mail server or expired unsent (springmail watch --resend-replies sends them again).",
            "gauge",
            self.replies_given_up.load(Ordering::Relaxed).to_string(),
        );
        gauge(
            &mut out,
            "springmail_replies_unconfirmed",
            "Replies an older watcher left unconfirmed after a crash (springmail watch --resend-replies sends them).",
            "gauge",
            self.replies_unconfirmed.load(Ordering::Relaxed).to_string(),
        );
        gauge(
            &mut out,
            "springmail_mail_connected",
            "1 when the mail source is connected.",
            "gauge",
            self.mail_connected.load(Ordering::Relaxed).to_string(),
        );
        gauge(
            &mut out,
            "springmail_loop_errors_total",
            "Main loop passes that failed (and were retried).",
            "counter",
            self.errors.load(Ordering::Relaxed).to_string(),
        );
        gauge(
            &mut out,
            "springmail_last_loop_timestamp_seconds",
            "When the main loop last completed a pass.",
            "gauge",
            self.last_loop_at.load(Ordering::Relaxed).to_string(),
        );
        out
    }
}
