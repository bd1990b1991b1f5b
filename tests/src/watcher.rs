//! The watcher the end-to-end tests run on the dev stack: the mailbox
//! `watcher@broker.test` over IMAP (IDLE) and the stack's SMTP, DKIM keys pinned,
//! replies DKIM-signed for broker.test. Tests differ only in what [`DevWatcher`] holds.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use springmail_sdk::client::SpringMail;
use springmail_sdk::keys::ClaimSecret;
use springmail_watcher::authenticate::{AuthPolicy, DkimKeys, MailAuthenticator, PinnedRecords};
use springmail_watcher::ingest::imap::{ImapSecurity, ImapSettings, ImapSource};
use springmail_watcher::journal::Journal;
use springmail_watcher::metrics::Metrics;
use springmail_watcher::reply::{
    DkimSigningKey, ReplyComposer, SmtpSecurity, SmtpSettings, SmtpSink,
};
use springmail_watcher::service::{PipelineSettings, Watcher, WatcherParts};
use springmail_watcher::submit::SubmitPolicy;
use springmail_watcher::verify::VerifyPolicy;

use crate::Stack;

/// The watcher's mailbox on the dev stack.
pub const WATCHER_MAILBOX: &str = "watcher@broker.test";

/// What one test's watcher is made of.
pub struct DevWatcher<'a> {
    /// The escrow client, sending as the relayer.
    pub client: SpringMail,
    /// The key that attests claims (the deposits' watcher).
    pub watcher_key: Arc<ClaimSecret>,
    /// Where the journal lives.
    pub journal_dir: &'a Path,
    /// The IMAP folder read.
    pub folder: &'a str,
    /// IMAP timeout.
    pub imap_timeout: Duration,
    /// The DKIM records the authenticator trusts.
    pub pins: PinnedRecords,
    /// broker.test's DKIM key (PEM), to sign replies.
    pub broker_key_pem: &'a str,
    /// The watcher's fee on native claims, in base units.
    pub native_fee: u128,
    /// How long the submitter waits for a receipt.
    pub receipt_timeout: Duration,
    /// Poll interval, retries, crash point.
    pub pipeline: PipelineSettings,
}

impl Stack {
    /// A watcher over the dev stack's IMAP and SMTP.
    pub fn watcher(&self, w: DevWatcher<'_>) -> Watcher {
        let source = ImapSource::new(ImapSettings {
            host: self.imap_host.clone(),
            port: self.imap_port,
            security: ImapSecurity::Plain,
            user: WATCHER_MAILBOX.into(),
            password: self.password.clone(),
            mailbox: w.folder.into(),
            idle: true,
            timeout: w.imap_timeout,
        })
        .expect("IMAP settings");
        let sink = SmtpSink::new(&SmtpSettings {
            host: self.smtp_host.clone(),
            port: self.smtp_port,
            security: SmtpSecurity::Plain,
            credentials: None,
            connections: springmail_watcher::reply::DEFAULT_SMTP_CONNECTIONS,
        })
        .expect("SMTP settings");
        let dkim = DkimSigningKey::from_pem(w.broker_key_pem, "broker").expect("broker key");
        Watcher::new(WatcherParts {
            client: w.client,
            watcher_key: w.watcher_key.clone(),
            journal: Arc::new(Journal::open_in(w.journal_dir).expect("journal")),
            sources: vec![Box::new(source)],
            sink: Arc::new(sink),
            authenticator: MailAuthenticator::new(
                DkimKeys::pinned(w.pins),
                AuthPolicy {
                    max_message_bytes: 1 << 20,
                    own_addresses: vec![WATCHER_MAILBOX.into()],
                },
            ),
            composer: ReplyComposer::new(
                WATCHER_MAILBOX,
                "Spring Mail watcher",
                Some((dkim, "broker.test".into(), "sm".into())),
            ),
            verify: VerifyPolicy {
                watcher: w.watcher_key.address(),
                native_fee: w.native_fee,
                tokens: vec![],
                min_time_left: 60,
            },
            submit: SubmitPolicy {
                receipt_timeout: w.receipt_timeout,
                gas_limit: Some(300_000),
                resend_guard: Duration::from_secs(2),
            },
            pipeline: w.pipeline,
            metrics: Metrics::new(),
        })
        .expect("watcher parts fit together")
    }
}
