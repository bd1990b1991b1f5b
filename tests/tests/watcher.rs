//! The watcher end to end over the dev stack: dovecot (IMAP), the SMTP relay into it,
//! and anvil. A sender deposits to bob@example.com naming this watcher; Bob's
//! DKIM-signed claim reaches the watcher's mailbox over SMTP; the watcher reads it over
//! IMAP, releases the deposit on anvil and answers Bob in thread over SMTP.
//!
//! DKIM keys of example.com, example.net and broker.test are generated per run and
//! pinned in the watcher's resolver: no DNS.

use std::sync::Arc;
use std::time::Duration;

use alloy::primitives::{Address, U256};
use springmail_e2e::watcher::DevWatcher;
use springmail_e2e::{fresh_address, Stack};
use springmail_sdk::client::{DepositStatus, SendRequest, SpringMail, Ticket};
use springmail_sdk::keys::ClaimSecret;
use springmail_sdk::mail::{claim_mail, ClaimMail};
use springmail_watcher::authenticate::PinnedRecords;
use springmail_watcher::journal::{Folder, Journal, OutcomeKind};
use springmail_watcher::service::{PipelineSettings, Watcher};
use springmail_watcher::testkit::{claim_block, dkim_passes, mail, TestDomain};

const WATCHER: &str = "watcher@broker.test";
const BOB: &str = "bob@example.com";
const CAROL: &str = "carol@example.net";
const AMOUNT: u128 = 150_000_000;
const FEE: u128 = 100_000;

/// The dev stack's mailboxes are shared: one scenario at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

struct World {
    stack: Stack,
    sender: SpringMail,
    watcher_key: Arc<ClaimSecret>,
    relayer: Arc<dyn springmail_sdk::chain::Chain>,
    example: TestDomain,
    net: TestDomain,
    broker: TestDomain,
    pins: PinnedRecords,
    dir: tempfile::TempDir,
}

impl World {
    async fn new() -> Self {
        let stack = Stack::from_env().unwrap();
        stack.clear_inbox(WATCHER).await.unwrap();
        let (_, sender_chain) = stack.funded_chain(10u128.pow(21)).await.unwrap();
        let sender = SpringMail::deploy(sender_chain).await.unwrap();
        let (watcher_key, relayer) = stack.funded_chain(10u128.pow(20)).await.unwrap();
        let example = TestDomain::new("example.com");
        let net = TestDomain::new("example.net");
        let broker = TestDomain::new("broker.test");
        let mut pins = PinnedRecords::new();
        for d in [&example, &net, &broker] {
            d.pin(&mut pins);
        }
        World {
            stack,
            sender,
            watcher_key: Arc::new(watcher_key),
            relayer,
            example,
            net,
            broker,
            pins,
            dir: tempfile::tempdir().unwrap(),
        }
    }

    async fn deposit(&self, watcher: Address, expires_in: u64) -> Ticket {
        let mut req = SendRequest::native(
            BOB,
            springmail_sdk::amount::Amount::from_units(
                AMOUNT,
                springmail_sdk::amount::Asset::qtum(),
            )
            .unwrap(),
            std::time::Duration::from_secs(expires_in),
        );
        req.watcher = Some(watcher);
        self.sender.send(req).await.unwrap()
    }

    async fn claim_bytes(
        &self,
        t: &Ticket,
        from: &str,
        payee: Address,
        max_fee: u128,
    ) -> (String, Vec<u8>) {
        let head = self.sender.chain().head().await.unwrap();
        let block = claim_block(&self.sender, t, payee, max_fee, head.timestamp + 86_400);
        let built = claim_mail(&ClaimMail {
            from,
            watcher_email: WATCHER,
            block: &block,
            in_reply_to: Some("sm.notification@sender.example.org"),
            subject: None,
            date: None,
        })
        .unwrap();
        (built.message_id, built.bytes)
    }

    fn watcher(&self) -> Watcher {
        self.stack.watcher(DevWatcher {
            client: SpringMail::new(self.relayer.clone(), self.sender.escrow())
                .with_start_block(self.sender.start_block()),
            watcher_key: self.watcher_key.clone(),
            journal_dir: self.dir.path(),
            folder: "INBOX",
            imap_timeout: Duration::from_secs(30),
            pins: self.pins.clone(),
            broker_key_pem: &self.broker.key_pem,
            native_fee: FEE,
            receipt_timeout: Duration::from_secs(30),
            pipeline: PipelineSettings {
                poll_interval: Duration::from_secs(2),
                retry_base: Duration::from_secs(1),
                ..Default::default()
            },
        })
    }

    async fn last_outcome(&self) -> (OutcomeKind, String, Option<Folder>) {
        let j = Journal::open_in(self.dir.path()).unwrap();
        let m = j.all_messages().unwrap().pop().expect("a message");
        let o = m.outcome.expect("decided");
        (o.kind, o.code, m.folder)
    }

    async fn balance(&self, who: Address) -> U256 {
        self.sender.chain().balance(who).await.unwrap()
    }
}

/// Delivers one message, runs the watcher once, and checks the deposit did not move,
/// the mail was filed in Rejected with `code`, and a reply went out iff `reply_to` is set.
async fn refused(
    w: &World,
    t: &Ticket,
    from: &str,
    message_id: &str,
    raw: &[u8],
    code: &str,
    reply_to: Option<(&str, &str)>,
) {
    let before = w.sender.status(t.link.claim_key()).await.unwrap();
    w.stack.smtp_send(from, WATCHER, raw).await.unwrap();
    let report = w.watcher().run_once().await.unwrap();
    assert_eq!(report.received, 1, "{code}: {report:?}");
    let (_, got, folder) = w.last_outcome().await;
    assert_eq!(got, code, "{report:?}");
    assert_eq!(folder, Some(Folder::Rejected), "{code}");
    assert_eq!(
        w.sender.status(t.link.claim_key()).await.unwrap(),
        before,
        "{code}: the deposit must not move"
    );
    assert!(
        w.stack.mailbox(WATCHER, "INBOX").await.unwrap().is_empty(),
        "{code}: filed"
    );
    let reply = w.stack.reply_to(from, message_id).await.unwrap();
    match reply_to {
        Some((_, words)) => {
            let reply =
                String::from_utf8_lossy(&reply.unwrap_or_else(|| panic!("{code}: no reply")))
                    .into_owned();
            assert!(reply.contains("your claim was not paid"), "{code}: {reply}");
            assert!(
                reply.replace("=\r\n", "").contains(words),
                "{code}: {reply}"
            );
        }
        None => assert!(
            reply.is_none(),
            "{code}: no reply expected (no backscatter)"
        ),
    }
}

#[tokio::test]
#[ignore = "needs the dev stack (dovecot, SMTP, anvil): run scripts/test"]
async fn claim_by_email_is_paid_and_every_bad_claim_is_refused() {
    let _serial = SERIAL.lock().await;
    let w = World::new().await;
    let t = w.deposit(w.watcher_key.address(), 7 * 86_400).await;
    let bob_wallet = fresh_address();

    // --- The good claim.
    let (claim_id, claim_raw) = w.claim_bytes(&t, BOB, bob_wallet, 200_000).await;
    let signed = w.example.sign(&claim_raw);
    w.stack.smtp_send(BOB, WATCHER, &signed).await.unwrap();
    let mut watcher = w.watcher();
    let report = watcher.run_once().await.unwrap();
    assert_eq!(
        report.decided,
        vec![(OutcomeKind::Claimed, "claimed".to_string())],
        "{report:?}"
    );
    assert_eq!(w.balance(bob_wallet).await, U256::from(AMOUNT - FEE));
    let DepositStatus::Claimed { tx_hash, .. } = w.sender.status(t.link.claim_key()).await.unwrap()
    else {
        panic!("not claimed")
    };
    let reply = w
        .stack
        .reply_to(BOB, &claim_id)
        .await
        .unwrap()
        .expect("Bob got a reply in thread");
    assert!(
        dkim_passes(&reply, &w.pins, "broker.test").await,
        "the reply is DKIM-signed by the broker"
    );
    let text = String::from_utf8_lossy(&reply).replace("=\r\n", "");
    assert!(text.contains(&tx_hash.to_string()), "{text}");
    assert!(
        text.contains("References: <sm.notification@sender.example.org>"),
        "{text}"
    );
    assert!(text.contains("1.499 QTUM"), "{text}");
    let processed = w.stack.mailbox(WATCHER, "Processed").await.unwrap();
    let needle = format!("<{claim_id}>");
    assert_eq!(
        processed
            .iter()
            .filter(|m| String::from_utf8_lossy(m).contains(&needle))
            .count(),
        1,
        "filed in Processed"
    );
    drop(watcher);

    // --- Refusals. The deposit under test is still open for each of them.
    let t2 = w.deposit(w.watcher_key.address(), 7 * 86_400).await;
    let (id, raw) = w.claim_bytes(&t2, BOB, bob_wallet, 200_000).await;
    // Unsigned.
    refused(&w, &t2, BOB, &id, &raw, "dkim-missing", None).await;
    // DKIM from another domain.
    let (id, raw) = w.claim_bytes(&t2, BOB, bob_wallet, 200_000).await;
    refused(
        &w,
        &t2,
        BOB,
        &id,
        &w.net.sign(&raw),
        "dkim-not-aligned",
        None,
    )
    .await;
    // Body altered after signing.
    let (id, raw) = w.claim_bytes(&t2, BOB, bob_wallet, 200_000).await;
    let mut tampered = w.example.sign(&raw);
    let text = String::from_utf8(tampered.clone()).unwrap();
    let pos = text
        .find("Max-Fee: 0.002")
        .expect("the block is in the text");
    tampered[pos + "Max-Fee: 0.00".len()] = b'9';
    refused(&w, &t2, BOB, &id, &tampered, "dkim-failed", None).await;
    // From another address than the commitment (Carol, properly signed by her domain).
    let (id, raw) = w.claim_bytes(&t2, CAROL, bob_wallet, 200_000).await;
    refused(
        &w,
        &t2,
        CAROL,
        &id,
        &w.net.sign(&raw),
        "not-recipient",
        Some((CAROL, "not sent to the address you wrote from")),
    )
    .await;
    // A valid block for a deposit of another watcher.
    let t3 = w.deposit(fresh_address(), 7 * 86_400).await;
    let (id, raw) = w.claim_bytes(&t3, BOB, bob_wallet, 200_000).await;
    refused(
        &w,
        &t3,
        BOB,
        &id,
        &w.example.sign(&raw),
        "other-watcher",
        Some((BOB, "another watcher")),
    )
    .await;
    // An expired deposit (its expiry is inside the watcher's safety margin).
    let t4 = w.deposit(w.watcher_key.address(), 30).await;
    let (id, raw) = w.claim_bytes(&t4, BOB, bob_wallet, 200_000).await;
    refused(
        &w,
        &t4,
        BOB,
        &id,
        &w.example.sign(&raw),
        "expired",
        Some((BOB, "expires on")),
    )
    .await;
    // An already-claimed deposit (a new mail for the first one).
    let (id, raw) = w.claim_bytes(&t, BOB, bob_wallet, 200_000).await;
    refused(
        &w,
        &t,
        BOB,
        &id,
        &w.example.sign(&raw),
        "already-claimed",
        Some((BOB, "already been claimed")),
    )
    .await;
    // A replay of the same (paid) mail: filed, not answered again.
    let replies_before = w.stack.mailbox(BOB, "INBOX").await.unwrap().len();
    refused(
        &w,
        &t,
        BOB,
        "replay-has-no-new-reply",
        &signed,
        "duplicate",
        None,
    )
    .await;
    assert_eq!(
        w.stack.mailbox(BOB, "INBOX").await.unwrap().len(),
        replies_before
    );
    // A malformed block.
    let bad = String::from_utf8(mail(
        BOB,
        WATCHER,
        "claim",
        "malformed-1@example.com",
        None,
        "-----BEGIN BISMTP CLAIM-----\nVersion: 1\nChain: 8890\n-----END BISMTP CLAIM-----\n",
    ))
    .unwrap();
    refused(
        &w,
        &t2,
        BOB,
        "malformed-1@example.com",
        &w.example.sign(bad.as_bytes()),
        "malformed-block",
        Some((BOB, "could not be read")),
    )
    .await;
    // A 20 MB message: not downloaded, filed, no reply.
    let (id, raw) = w.claim_bytes(&t2, BOB, bob_wallet, 200_000).await;
    let mut huge = w.example.sign(&raw);
    let filler = "x".repeat(998);
    let mut pad = String::new();
    while pad.len() < 20 << 20 {
        pad.push_str(&filler);
        pad.push_str("\r\n");
    }
    huge.extend_from_slice(pad.as_bytes());
    refused(&w, &t2, BOB, &id, &huge, "too-large", None).await;

    assert_eq!(
        w.balance(bob_wallet).await,
        U256::from(AMOUNT - FEE),
        "only the good claim paid"
    );
}

/// The watcher runs in the background with IDLE; dovecot restarts under it; a claim
/// sent afterwards is still picked up and paid.
#[tokio::test]
#[ignore = "needs the dev stack (dovecot, SMTP, anvil): run scripts/test"]
async fn the_watcher_reconnects_when_the_imap_server_restarts() {
    let _serial = SERIAL.lock().await;
    let w = World::new().await;
    let t = w.deposit(w.watcher_key.address(), 7 * 86_400).await;
    let bob_wallet = fresh_address();
    let watcher = w.watcher();
    let metrics = watcher.metrics().clone();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(watcher.run(async move {
        let _ = stop_rx.await;
    }));
    // Let it connect and enter IDLE, then restart dovecot under it.
    tokio::time::sleep(Duration::from_secs(2)).await;
    w.stack.dev_stack(&["restart", "imap"]).unwrap();
    let (claim_id, raw) = w.claim_bytes(&t, BOB, bob_wallet, 200_000).await;
    let started = std::time::Instant::now();
    w.stack
        .smtp_send(BOB, WATCHER, &w.example.sign(&raw))
        .await
        .unwrap();
    let mut paid = false;
    for _ in 0..120 {
        if w.balance(bob_wallet).await == U256::from(AMOUNT - FEE) {
            paid = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(paid, "the claim was not paid after the IMAP restart");
    eprintln!(
        "claim paid {:?} after the mail was accepted",
        started.elapsed()
    );
    // The reply follows.
    let mut replied = false;
    for _ in 0..40 {
        if w.stack.reply_to(BOB, &claim_id).await.unwrap().is_some() {
            replied = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(replied, "no reply after the restart");
    assert_eq!(metrics.claims_submitted(), 1);
    let _ = stop_tx.send(());
    tokio::time::timeout(Duration::from_secs(30), task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

/// The configuration path a broker uses (`springmail watch --config`): a TOML file with
/// the secrets in environment variables, validated and resolved (journal, key, anvil,
/// IMAP, SMTP), then one pass that pays a claim.
#[tokio::test]
#[ignore = "needs the dev stack (dovecot, SMTP, anvil): run scripts/test"]
async fn a_watcher_built_from_its_config_file_pays_a_claim() {
    use springmail_watcher::config::RawConfig;
    let _serial = SERIAL.lock().await;
    let w = World::new().await;
    let t = w.deposit(w.watcher_key.address(), 7 * 86_400).await;
    let bob_wallet = fresh_address();
    let key_file = w.dir.path().join("dkim.pem");
    std::fs::write(&key_file, &w.broker.key_pem).unwrap();
    let toml = format!(
        r#"
data_dir = "{data}"
[imap]
host = "{ih}"
port = {ip}
security = "plain"
user = "{WATCHER}"
password_env = "E2E_IMAP_PASSWORD"
poll_interval_secs = 2
[smtp]
host = "{sh}"
port = {sp}
security = "plain"
[dkim]
domain = "broker.test"
selector = "sm"
key_file = "{key}"
[dns]
resolver = "pinned"
[dns.pinned]
"{en}" = "{er}"
[chain]
url = "{url}"
chain_id = {cid}
escrow = "{escrow}"
start_block = {start}
resend_guard_secs = 2
[watcher_key]
env = "E2E_WATCHER_KEY"
[fees]
native = "0.001"
min_time_left_secs = 60
[http]
listen = "127.0.0.1:0"
"#,
        data = w.dir.path().join("state").display(),
        ih = w.stack.imap_host,
        ip = w.stack.imap_port,
        sh = w.stack.smtp_host,
        sp = w.stack.smtp_port,
        key = key_file.display(),
        en = w.example.record_name(),
        er = w.example.record,
        url = w.stack.anvil_url,
        cid = w.stack.chain_id,
        escrow = w.sender.escrow(),
        start = w.sender.start_block(),
    );
    let password = w.stack.password.clone();
    let secret = format!("0x{}", hex::encode(w.watcher_key.expose_bytes()));
    let env = move |name: &str| match name {
        "E2E_IMAP_PASSWORD" => Some(password.clone()),
        "E2E_WATCHER_KEY" => Some(secret.clone()),
        _ => None,
    };
    let settings = RawConfig::parse(&toml).unwrap().validate(&env).unwrap();
    let mut watcher = Watcher::new(settings.resolve().await.unwrap()).unwrap();
    // [http]: the claim page, its API, /healthz and /metrics on one service.
    let servers = settings.serve_http(&watcher).await.unwrap();
    let http = servers[0].0;
    let get = |path: &'static str| async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut s = tokio::net::TcpStream::connect(http).await.unwrap();
        s.write_all(
            format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        out
    };
    assert!(get("/claim").await.starts_with("HTTP/1.1 200"));
    assert!(get("/healthz").await.starts_with("HTTP/1.1 503"));
    let (_, raw) = w.claim_bytes(&t, BOB, bob_wallet, 200_000).await;
    w.stack
        .smtp_send(BOB, WATCHER, &w.example.sign(&raw))
        .await
        .unwrap();
    let report = watcher.run_once().await.unwrap();
    assert_eq!(
        report.decided,
        vec![(OutcomeKind::Claimed, "claimed".to_string())],
        "{report:?}"
    );
    assert_eq!(w.balance(bob_wallet).await, U256::from(AMOUNT - FEE));
    assert_eq!(report.replies_sent, 1);
    assert!(get("/healthz").await.starts_with("HTTP/1.1 200"));
    assert!(get("/metrics")
        .await
        .contains("\nspringmail_claims_submitted_total 1\n"));
}
