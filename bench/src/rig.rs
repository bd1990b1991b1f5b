//! Assembling a watcher the way `springmail watch` does, from parts a benchmark picks
//! (chain, mail source, reply sink), with production policies: 1 MB mail limit,
//! pinned DKIM keys (no DNS), an Ed25519-signed broker, batch size 256.

use std::sync::Arc;
use std::time::Duration;

use springmail_sdk::client::SpringMail;
use springmail_sdk::keys::ClaimSecret;
use springmail_watcher::authenticate::{AuthPolicy, DkimKeys, MailAuthenticator, PinnedRecords};
use springmail_watcher::ingest::MailSource;
use springmail_watcher::journal::Journal;
use springmail_watcher::metrics::Metrics;
use springmail_watcher::reply::{
    generate_ed25519_dkim_key, DkimSigningKey, ReplyComposer, ReplySink,
};
use springmail_watcher::service::{PipelineSettings, WatcherParts};
use springmail_watcher::submit::SubmitPolicy;
use springmail_watcher::verify::VerifyPolicy;

use crate::corpus::{FEE, WATCHER_EMAIL};

/// The authenticator a broker runs, with `pins` as its DNS.
pub fn authenticator(pins: PinnedRecords) -> MailAuthenticator {
    MailAuthenticator::new(
        DkimKeys::pinned(pins),
        AuthPolicy {
            max_message_bytes: 1 << 20,
            own_addresses: vec![WATCHER_EMAIL.into()],
        },
    )
}

/// The verification policy: native fee 0.001 QTUM, one minute of margin.
pub fn verify_policy(watcher: &ClaimSecret) -> VerifyPolicy {
    VerifyPolicy {
        watcher: watcher.address(),
        native_fee: FEE,
        tokens: vec![],
        min_time_left: 60,
    }
}

/// A reply composer signing as broker.test with a fresh Ed25519 key.
pub fn composer() -> ReplyComposer {
    let (pem, _record) = generate_ed25519_dkim_key();
    let key = DkimSigningKey::from_pem(&pem, "broker key").expect("generated key loads");
    ReplyComposer::new(
        WATCHER_EMAIL,
        "Spring Mail watcher",
        Some((key, "broker.test".into(), "sm".into())),
    )
}

/// Everything but the chain, source and sink, with production settings.
#[allow(clippy::too_many_arguments)]
pub fn parts(
    client: SpringMail,
    watcher_key: Arc<ClaimSecret>,
    journal: Arc<Journal>,
    source: Box<dyn MailSource>,
    sink: Arc<dyn ReplySink>,
    pins: PinnedRecords,
    poll_interval: Duration,
) -> WatcherParts {
    WatcherParts {
        client,
        verify: verify_policy(&watcher_key),
        watcher_key,
        journal,
        sources: vec![source],
        sink,
        authenticator: authenticator(pins),
        composer: composer(),
        submit: SubmitPolicy {
            receipt_timeout: Duration::from_secs(60),
            gas_limit: Some(300_000),
            resend_guard: Duration::from_secs(5),
        },
        pipeline: PipelineSettings {
            poll_interval,
            retry_base: Duration::from_secs(1),
            ..Default::default()
        },
        metrics: Metrics::new(),
    }
}

/// A reply sink that only counts (a benchmark's stand-in for the SMTP server: it keeps
/// nothing, as an SMTP connection keeps nothing).
#[derive(Debug, Clone, Default)]
pub struct CountingSink {
    sent: Arc<std::sync::atomic::AtomicU64>,
}

impl CountingSink {
    /// Replies handed over so far.
    pub fn sent(&self) -> u64 {
        self.sent.load(std::sync::atomic::Ordering::Relaxed)
    }
}

#[async_trait::async_trait]
impl ReplySink for CountingSink {
    async fn send(
        &self,
        _mail: &springmail_watcher::reply::OutgoingMail,
    ) -> Result<(), springmail_watcher::reply::SinkError> {
        self.sent.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }

    fn describe(&self) -> String {
        "counting sink (benchmark)".into()
    }
}

/// Writes the pinned DKIM records (`name<TAB>record` lines) for a child process.
pub fn write_pins(
    path: &std::path::Path,
    providers: &[crate::corpus::Provider],
) -> anyhow::Result<()> {
    let mut text = String::new();
    for p in providers {
        for (name, record) in p.records() {
            text.push_str(&format!("{name}\t{record}\n"));
        }
    }
    std::fs::write(path, text)?;
    Ok(())
}

/// Reads what [`write_pins`] wrote.
pub fn read_pins(path: &std::path::Path) -> anyhow::Result<PinnedRecords> {
    let mut pins = PinnedRecords::new();
    for line in std::fs::read_to_string(path)?.lines() {
        if let Some((name, record)) = line.split_once('\t') {
            pins.pin(name, record)?;
        }
    }
    Ok(pins)
}
