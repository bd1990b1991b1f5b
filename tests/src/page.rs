//! The claim page's world on the dev stack: an escrow, a watcher running over the
//! stack's IMAP and SMTP, and its HTTP service (the page and its API) on a free port.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use alloy::primitives::{Address, B256, U256};
use alloy::providers::Provider;
use springmail_sdk::amount::{Amount, Asset};
use springmail_sdk::client::{SendRequest, SpringMail, Ticket};
use springmail_watcher::authenticate::PinnedRecords;
use springmail_watcher::http::{serve, ClaimSettings};
use springmail_watcher::journal::Journal;
use springmail_watcher::service::PipelineSettings;
use springmail_watcher::testkit::TestDomain;

use crate::watcher::DevWatcher;
use crate::Stack;

/// Each deposit's amount, in base units.
/// The sender as the notifications in these tests name them (`?from=` in the URL).
pub const SENDER_NAME: &str = "Alice <alice@example.org>";

pub const AMOUNT: u128 = 150_000_000;
/// The watcher's fee, in base units.
pub const FEE: u128 = 100_000;

/// `/api/` requests per minute per client in these tests.
pub const RATE_LIMIT: u32 = 200;

/// An escrow, a watcher and its HTTP service.
pub struct PageWorld {
    /// The dev stack.
    pub stack: Stack,
    /// The sender (deployed the escrow).
    pub sender: SpringMail,
    /// The watcher's HTTP service.
    pub http: SocketAddr,
    /// The journal's directory.
    pub dir: tempfile::TempDir,
    /// The watcher's attestation address (email-mode deposits name it).
    pub watcher: Address,
    /// example.com, whose DKIM key the watcher trusts (Bob's mail provider).
    pub example: TestDomain,
    /// Every request line the HTTP service received.
    pub request_log: springmail_watcher::http::RequestLog,
    _shutdown: tokio::sync::oneshot::Sender<()>,
}

impl PageWorld {
    /// Deploys an escrow, starts a watcher over the dev stack with its HTTP service.
    pub async fn new() -> PageWorld {
        let stack = Stack::from_env().unwrap();
        stack
            .clear_inbox(crate::watcher::WATCHER_MAILBOX)
            .await
            .unwrap();
        let (_, sender_chain) = stack.funded_chain(10u128.pow(21)).await.unwrap();
        let sender = SpringMail::deploy(sender_chain).await.unwrap();
        let (watcher_key, relayer) = stack.funded_chain(10u128.pow(20)).await.unwrap();
        let broker = TestDomain::new("broker.test");
        let example = TestDomain::new("example.com");
        let mut pins = PinnedRecords::new();
        broker.pin(&mut pins);
        example.pin(&mut pins);
        let watcher_address = watcher_key.address();
        let dir = tempfile::tempdir().unwrap();
        let watcher = stack.watcher(DevWatcher {
            client: SpringMail::new(relayer, sender.escrow())
                .with_start_block(sender.start_block()),
            watcher_key: Arc::new(watcher_key),
            journal_dir: dir.path(),
            folder: "INBOX",
            imap_timeout: Duration::from_secs(30),
            pins,
            broker_key_pem: &broker.key_pem,
            native_fee: FEE,
            receipt_timeout: Duration::from_secs(30),
            pipeline: PipelineSettings {
                poll_interval: Duration::from_secs(2),
                retry_base: Duration::from_secs(1),
                ..Default::default()
            },
        });
        let request_log = springmail_watcher::http::RequestLog::default();
        let (addr, _task) = serve(
            "127.0.0.1:0".parse().unwrap(),
            watcher.metrics().clone(),
            60,
            Some((
                watcher.claim_backend(),
                ClaimSettings {
                    reply_to: Some(crate::watcher::WATCHER_MAILBOX.into()),
                    rate_limit_per_minute: RATE_LIMIT,
                    request_log: Some(request_log.clone()),
                    ..Default::default()
                },
            )),
        )
        .await
        .unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            watcher
                .run(async move {
                    let _ = rx.await;
                })
                .await
                .unwrap();
        });
        PageWorld {
            stack,
            sender,
            http: addr,
            dir,
            watcher: watcher_address,
            example,
            request_log,
            _shutdown: tx,
        }
    }

    /// A native link-mode deposit of [`AMOUNT`] to bob@example.com.
    pub async fn deposit(&self, expires_in: u64, cancellable: bool) -> Ticket {
        self.deposit_to(expires_in, cancellable, None).await
    }

    /// A native deposit to bob@example.com; `watcher`: email mode with that watcher.
    pub async fn deposit_to(
        &self,
        expires_in: u64,
        cancellable: bool,
        watcher: Option<Address>,
    ) -> Ticket {
        let mut req = SendRequest::native(
            "bob@example.com",
            Amount::from_units(AMOUNT, Asset::qtum()).unwrap(),
            Duration::from_secs(expires_in),
        );
        req.cancellable = cancellable;
        req.watcher = watcher;
        self.sender.send(req).await.unwrap()
    }

    /// The deposit's claim link on this service (http, loopback), naming the sender
    /// as a notification does.
    pub fn url(&self, t: &Ticket) -> String {
        t.link
            .to_url_from(&self.http.to_string(), Some(SENDER_NAME))
            .replacen("https://", "http://", 1)
    }

    /// The deposit hash stored under a claim key (zero: none open).
    pub async fn stored(&self, key: Address) -> B256 {
        self.sender.stored_hash(key).await.unwrap()
    }

    /// A native balance on anvil.
    pub async fn balance(&self, who: Address) -> U256 {
        self.sender.chain().balance(who).await.unwrap()
    }

    /// Rows in the watcher's journal.
    pub fn journal_rows(&self) -> usize {
        Journal::open_in(self.dir.path())
            .unwrap()
            .all_messages()
            .unwrap()
            .len()
    }

    /// Moves anvil's clock `secs` forward and mines a block.
    pub async fn mine_after(&self, secs: u64) {
        let provider = alloy::providers::ProviderBuilder::new()
            .connect_http(self.stack.anvil_url.parse().unwrap());
        let _: serde_json::Value = provider
            .raw_request("evm_increaseTime".into(), (secs,))
            .await
            .unwrap();
        let _: serde_json::Value = provider.raw_request("evm_mine".into(), ()).await.unwrap();
    }
}
