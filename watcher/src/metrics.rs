//! The watcher's counters and gauges for `GET /metrics` (served with `GET /healthz` by
//! [`crate::http`]), kept and rendered by `prometheus-client`.
//!
//! `prometheus-client` rather than the `metrics` facade: each [`Metrics`] owns its own
//! registry, so several watchers in one process (the tests, the demo) never share
//! counters, and nothing global is installed.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::journal::OutcomeKind;

/// The content type of [`Metrics::render`].
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
    reason: String,
}

/// The watcher's counters and gauges.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    messages: Family<OutcomeLabels, Counter>,
    by_kind: [Counter; OutcomeKind::ALL.len()],
    claims_submitted: Counter,
    replies_sent: Counter,
    replies_failed: Counter,
    reply_attempts: Counter,
    errors: Counter,
    last_checkpoint_uid: Gauge,
    last_checkpoint_at: Gauge,
    chain_head: Gauge,
    chain_head_lag: Gauge,
    last_loop_at: Gauge,
    last_loop: AtomicU64,
    mail_connected: Gauge,
    unfinished: Gauge,
    replies_pending: Gauge,
    replies_oldest_pending_age: Gauge,
    replies_oldest_pending_at: AtomicU64,
    replies_resent: Gauge,
    replies_given_up: Gauge,
    replies_unconfirmed: Gauge,
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn signed(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::default();
        let messages = Family::<OutcomeLabels, Counter>::default();
        // Every outcome has a series from the start, so rates work from the first scrape.
        for kind in OutcomeKind::ALL {
            let _ = messages.get_or_create(&OutcomeLabels {
                outcome: kind.as_str(),
                reason: String::new(),
            });
        }
        // Counters are named without `_total`: the encoder adds it.
        registry.register(
            "springmail_messages",
            "Messages by final outcome",
            messages.clone(),
        );
        let mut counter = |name: &str, help: &str| {
            let c = Counter::default();
            registry.register(name, help, c.clone());
            c
        };
        let claims_submitted = counter(
            "springmail_claims_submitted",
            "Claim transactions broadcast",
        );
        let replies_sent = counter(
            "springmail_replies_sent",
            "Replies delivered to the mail server",
        );
        let replies_failed = counter(
            "springmail_replies_failed",
            "Reply delivery attempts that failed",
        );
        let reply_attempts = counter(
            "springmail_reply_attempts",
            "Attempts to hand a reply to the mail server (delivered or failed)",
        );
        let errors = counter(
            "springmail_loop_errors",
            "Main loop passes that failed (and were retried)",
        );
        let mut gauge = |name: &str, help: &str| {
            let g = Gauge::default();
            registry.register(name, help, g.clone());
            g
        };
        let last_checkpoint_uid = gauge(
            "springmail_last_checkpoint_uid",
            "Highest mailbox UID recorded in the journal",
        );
        let last_checkpoint_at = gauge(
            "springmail_last_checkpoint_timestamp_seconds",
            "When the checkpoint last moved (unix seconds)",
        );
        let chain_head = gauge("springmail_chain_head_block", "Newest block seen");
        let chain_head_lag = gauge(
            "springmail_chain_head_lag_seconds",
            "Wall clock minus the newest block's timestamp",
        );
        let unfinished = gauge("springmail_unfinished_messages", "Messages not yet filed");
        let replies_pending = gauge(
            "springmail_replies_pending",
            "Replies waiting to be sent or retried",
        );
        let replies_oldest_pending_age = gauge(
            "springmail_replies_oldest_pending_age_seconds",
            "Age of the oldest reply not yet sent (0 when none waits)",
        );
        let replies_resent = gauge(
            "springmail_replies_resent",
            "Times a reply was sent again after a crash interrupted its hand-over (the claimant may hold two copies with one Message-ID)",
        );
        let replies_given_up = gauge(
            "springmail_replies_given_up",
            "Replies refused for good by the mail server or expired unsent (springmail watch --resend-replies sends them again)",
        );
        let replies_unconfirmed = gauge(
            "springmail_replies_unconfirmed",
            "Replies an older watcher left unconfirmed after a crash (springmail watch --resend-replies sends them)",
        );
        let mail_connected = gauge(
            "springmail_mail_connected",
            "1 when the mail source is connected",
        );
        let last_loop_at = gauge(
            "springmail_last_loop_timestamp_seconds",
            "When the main loop last completed a pass",
        );
        Metrics {
            registry,
            messages,
            by_kind: Default::default(),
            claims_submitted,
            replies_sent,
            replies_failed,
            reply_attempts,
            errors,
            last_checkpoint_uid,
            last_checkpoint_at,
            chain_head,
            chain_head_lag,
            last_loop_at,
            last_loop: AtomicU64::new(0),
            mail_connected,
            unfinished,
            replies_pending,
            replies_oldest_pending_age,
            replies_oldest_pending_at: AtomicU64::new(0),
            replies_resent,
            replies_given_up,
            replies_unconfirmed,
        }
    }
}

fn kind_index(kind: OutcomeKind) -> usize {
    OutcomeKind::ALL
        .iter()
        .position(|k| *k == kind)
        .expect("ALL lists every kind")
}

impl Metrics {
    /// Fresh counters.
    pub fn new() -> Arc<Self> {
        Arc::new(Metrics::default())
    }

    /// A message reached a final outcome.
    pub fn outcome(&self, kind: OutcomeKind, code: &str) {
        self.messages
            .get_or_create(&OutcomeLabels {
                outcome: kind.as_str(),
                reason: code.to_string(),
            })
            .inc();
        self.by_kind[kind_index(kind)].inc();
    }

    /// Outcome counts so far, by kind.
    pub fn outcome_count(&self, kind: OutcomeKind) -> u64 {
        self.by_kind[kind_index(kind)].get()
    }

    /// A claim transaction was broadcast.
    pub fn claim_submitted(&self) {
        self.claims_submitted.inc();
    }

    /// Claim transactions broadcast so far.
    pub fn claims_submitted(&self) -> u64 {
        self.claims_submitted.get()
    }

    /// A reply was handed to the mail server (or the attempt failed).
    pub fn reply(&self, ok: bool) {
        self.reply_attempts.inc();
        if ok {
            self.replies_sent.inc();
        } else {
            self.replies_failed.inc();
        }
    }

    /// Attempts to hand a reply over so far (delivered or failed).
    pub fn reply_attempts(&self) -> u64 {
        self.reply_attempts.get()
    }

    /// Failed attempts to hand a reply over so far.
    pub fn replies_failed(&self) -> u64 {
        self.replies_failed.get()
    }

    /// The checkpoint moved.
    pub fn checkpoint(&self, uid: u32) {
        self.last_checkpoint_uid.set(i64::from(uid));
        self.last_checkpoint_at.set(signed(now()));
    }

    /// The chain head was read.
    pub fn chain_head(&self, number: u64, timestamp: u64) {
        self.chain_head.set(signed(number));
        self.chain_head_lag.set(signed(now()) - signed(timestamp));
    }

    /// The main loop completed a pass.
    pub fn loop_pass(&self, unfinished: u64) {
        let t = now();
        self.last_loop.store(t, Ordering::Relaxed);
        self.last_loop_at.set(signed(t));
        self.unfinished.set(signed(unfinished));
    }

    /// The outbox as the journal counts it.
    pub fn outbox(&self, stats: &crate::journal::JournalStats) {
        self.replies_pending.set(signed(stats.outbox_pending));
        self.replies_oldest_pending_at.store(
            stats.outbox_oldest_pending_at.unwrap_or(0),
            Ordering::Relaxed,
        );
        self.replies_resent.set(signed(stats.outbox_resent));
        self.replies_given_up.set(signed(stats.outbox_given_up));
        self.replies_unconfirmed
            .set(signed(stats.outbox_unconfirmed));
    }

    /// The mail source is (not) connected.
    pub fn mail_connected(&self, yes: bool) {
        self.mail_connected.set(i64::from(yes));
    }

    /// A pass failed.
    pub fn error(&self) {
        self.errors.inc();
    }

    /// Healthy when the loop ran within `max_age` seconds.
    pub fn healthy(&self, max_age: u64) -> bool {
        let last = self.last_loop.load(Ordering::Relaxed);
        last != 0 && now().saturating_sub(last) <= max_age
    }

    /// The OpenMetrics text exposition ([`CONTENT_TYPE`]).
    pub fn render(&self) -> String {
        // An age is only right at the moment it is read.
        let oldest = self.replies_oldest_pending_at.load(Ordering::Relaxed);
        let age = match oldest {
            0 => 0,
            t => now().saturating_sub(t),
        };
        self.replies_oldest_pending_age.set(signed(age));
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(text: &str, series: &str) -> Option<i64> {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
    }

    #[test]
    fn every_metric_keeps_its_name_and_counts() {
        let m = Metrics::new();
        let text = m.render();
        assert_eq!(
            value(
                &text,
                "springmail_messages_total{outcome=\"claimed\",reason=\"\"}"
            ),
            Some(0),
            "{text}"
        );
        m.outcome(OutcomeKind::Claimed, "claimed");
        m.outcome(OutcomeKind::Refused, "expired");
        m.outcome(OutcomeKind::Refused, "expired");
        m.reply(true);
        m.reply(false);
        m.error();
        m.checkpoint(42);
        m.chain_head(7, now() - 5);
        m.loop_pass(3);
        m.outbox(&crate::journal::JournalStats {
            outbox_pending: 2,
            outbox_oldest_pending_at: Some(now() - 30),
            ..Default::default()
        });
        let text = m.render();
        for (series, want) in [
            (
                "springmail_messages_total{outcome=\"claimed\",reason=\"claimed\"}",
                1,
            ),
            (
                "springmail_messages_total{outcome=\"refused\",reason=\"expired\"}",
                2,
            ),
            ("springmail_reply_attempts_total", 2),
            ("springmail_replies_sent_total", 1),
            ("springmail_replies_failed_total", 1),
            ("springmail_loop_errors_total", 1),
            ("springmail_claims_submitted_total", 0),
            ("springmail_last_checkpoint_uid", 42),
            ("springmail_chain_head_block", 7),
            ("springmail_unfinished_messages", 3),
            ("springmail_replies_pending", 2),
        ] {
            assert_eq!(value(&text, series), Some(want), "{series} in {text}");
        }
        let lag = value(&text, "springmail_chain_head_lag_seconds").unwrap();
        assert!((5..10).contains(&lag), "{text}");
        let age = value(&text, "springmail_replies_oldest_pending_age_seconds").unwrap();
        assert!((30..35).contains(&age), "{text}");
        assert!(
            text.contains("# TYPE springmail_replies_sent counter"),
            "{text}"
        );
        assert_eq!(m.outcome_count(OutcomeKind::Refused), 2);
        assert_eq!(m.outcome_count(OutcomeKind::Dropped), 0);
        assert!(m.healthy(60));
    }

    #[test]
    fn two_watchers_count_apart() {
        let (a, b) = (Metrics::new(), Metrics::new());
        a.claim_submitted();
        assert_eq!((a.claims_submitted(), b.claims_submitted()), (1, 0));
        assert!(!b.healthy(60), "no pass yet");
    }
}
