//! Mailbox wallets end to end over the dev stack: dovecot (IMAP), the SMTP relay into
//! it, and anvil with the version 3 escrow. Bob answers a notification with "claim"
//! and the deposit lands in his mailbox wallet; "balance" reports it; "pay … to
//! carol@…" pays a new email (Carol gets a notification signed by the broker) or,
//! once Carol has a wallet, her account; a payment above the confirmation threshold
//! waits for "confirm CODE". Every order mail is DKIM-signed by its sender's domain,
//! as a provider signs it; every refusal moves nothing.
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
use springmail_sdk::link::ClaimLink;
use springmail_watcher::authenticate::PinnedRecords;
use springmail_watcher::journal::{Journal, OutcomeKind};
use springmail_watcher::service::{CrashPoint, PipelineSettings, Watcher, WatcherError};
use springmail_watcher::testkit::{dkim_passes, TestDomain};
use springmail_watcher::wallet::{SdkWallet, Wallet, WalletSettings};

const WATCHER: &str = "watcher@broker.test";
const BOB: &str = "bob@example.com";
const CAROL: &str = "carol@example.net";
const COIN: u128 = 100_000_000;
const FEE: u128 = 100_000;

/// The dev stack's mailboxes are shared: one scenario at a time.
/// Payments to new emails expire after two minutes here, so the refund test moves
/// the shared anvil's clock by minutes, not by the production default's 30 days.
const PAY_EXPIRY_SECS: u64 = 120;

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
    settings: WalletSettings,
}

impl World {
    async fn new() -> Self {
        let stack = Stack::from_env().unwrap();
        for user in [WATCHER, BOB, CAROL] {
            stack.clear_inbox(user).await.unwrap();
        }
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
            settings: WalletSettings {
                per_payment: 5 * COIN,
                per_day: 8 * COIN,
                confirm_above: COIN,
                order_window: 3_600,
                pay_expiry: PAY_EXPIRY_SECS,
            },
        }
    }

    fn client(&self) -> SpringMail {
        SpringMail::new(self.relayer.clone(), self.sender.escrow())
            .with_start_block(self.sender.start_block())
    }

    fn watcher_at(&self, crash_at: Option<CrashPoint>) -> Watcher {
        self.stack
            .watcher(DevWatcher {
                client: self.client(),
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
                    crash_at,
                    ..Default::default()
                },
            })
            .with_wallet(Wallet::new(
                self.settings.clone(),
                Arc::new(
                    SdkWallet::new(self.client(), FEE)
                        .with_pay_expiry(Duration::from_secs(PAY_EXPIRY_SECS)),
                ),
            ))
            .unwrap()
    }

    fn watcher(&self) -> Watcher {
        self.watcher_at(None)
    }

    /// A deposit of `amount` to `to`, naming this watcher, and its notification.
    async fn deposit(&self, to: &str, amount: u128) -> (Ticket, Vec<u8>, String) {
        let asset = springmail_sdk::amount::Asset::qtum();
        let value = springmail_sdk::amount::Amount::from_units(amount, asset).unwrap();
        let mut req = SendRequest::native(to, value.clone(), Duration::from_secs(7 * 86_400));
        req.watcher = Some(self.watcher_key.address());
        let t = self.sender.send(req).await.unwrap();
        let n = springmail_sdk::mail::notification(&springmail_sdk::mail::Notification {
            link: &t.link,
            from: "alice@example.org",
            sender_name: Some("Alice"),
            recipient: to,
            amount: &value,
            expiry: t.deposit.expiry,
            claim_host: Some("claim.broker.test"),
            watcher_email: Some(WATCHER),
            note: None,
            date: None,
        })
        .unwrap();
        (t, n.bytes, n.message_id)
    }

    async fn run(&self) -> springmail_watcher::RunReport {
        self.watcher().run_once().await.unwrap()
    }

    /// Sends `raw` from `from`, signed by `domain` (unsigned when `None`), and runs
    /// the watcher once.
    async fn deliver(&self, from: &str, raw: &[u8], domain: Option<&TestDomain>) {
        let bytes = match domain {
            Some(d) => d.sign(raw),
            None => raw.to_vec(),
        };
        self.stack.smtp_send(from, WATCHER, &bytes).await.unwrap();
    }

    /// The reply in `user`'s INBOX to `message_id`, as text (soft line breaks joined).
    async fn reply(&self, user: &str, message_id: &str) -> Option<String> {
        let raw = self.stack.reply_to(user, message_id).await.unwrap()?;
        assert!(
            dkim_passes(&raw, &self.pins, "broker.test").await,
            "the reply is DKIM-signed by the broker"
        );
        let parsed = mail_parser::MessageParser::default().parse(&raw).unwrap();
        assert!(parsed.body_html(0).is_some(), "the reply has an HTML part");
        Some(parsed.body_text(0).unwrap().into_owned())
    }

    fn journal(&self) -> Journal {
        Journal::open_in(self.dir.path()).unwrap()
    }

    async fn native(&self, who: Address) -> U256 {
        self.sender.chain().head().await.unwrap();
        self.sender.chain().balance(who).await.unwrap()
    }
}

static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// A plain-text mail dated `date` (unix seconds); returns its Message-ID.
fn order_mail(
    from: &str,
    subject: &str,
    body: &str,
    in_reply_to: Option<&str>,
    date: i64,
) -> (String, Vec<u8>) {
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let domain = from.rsplit_once('@').unwrap().1;
    let id = format!("order.{}.{n}@{domain}", rand::random::<u64>());
    let mut m = format!(
        "From: {from}\r\nTo: {WATCHER}\r\nSubject: {subject}\r\nDate: {}\r\nMessage-ID: <{id}>\r\n",
        mail_parser::DateTime::from_timestamp(date).to_rfc822()
    );
    if let Some(parent) = in_reply_to {
        m.push_str(&format!(
            "In-Reply-To: <{parent}>\r\nReferences: <{parent}>\r\n"
        ));
    }
    let kind = if body.starts_with("<html>") {
        "html"
    } else {
        "plain"
    };
    m.push_str(&format!(
        "MIME-Version: 1.0\r\nContent-Type: text/{kind}; charset=utf-8\r\n\r\n"
    ));
    m.push_str(&body.replace('\n', "\r\n"));
    (id, m.into_bytes())
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// A reply to a notification: `first` above the quoted notification text.
fn reply_to_notification(from: &str, notification: &[u8], first: &str) -> (String, Vec<u8>) {
    let parsed = mail_parser::MessageParser::default()
        .parse(notification)
        .unwrap();
    let parent = parsed.message_id().unwrap().to_string();
    let subject = format!("Re: {}", parsed.subject().unwrap());
    let quoted: String = parsed
        .body_text(0)
        .unwrap()
        .lines()
        .map(|l| format!("> {l}\n"))
        .collect();
    let body = format!("{first}\n\nOn Mon, Alice wrote:\n{quoted}");
    order_mail(from, &subject, &body, Some(&parent), now())
}

/// The claim link of a notification mail.
fn link_in(raw: &[u8]) -> ClaimLink {
    let text = String::from_utf8_lossy(raw).replace("=\r\n", "");
    let at = text.find("sm1.").expect("a link in the notification");
    let end = text[at..]
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.'))
        .map(|e| at + e)
        .unwrap_or(text.len());
    ClaimLink::parse(&text[at..end]).unwrap()
}

fn fmt(units: u128) -> String {
    format!("{} QTUM", springmail_sdk::amount::format_units(units, 8))
}

fn code_in(text: &str) -> String {
    let at = text.find("confirm ").expect("a code") + "confirm ".len();
    text[at..at + 9].to_string()
}

#[tokio::test]
#[ignore = "needs the dev stack (dovecot, SMTP, anvil): run scripts/test"]
async fn a_mailbox_receives_holds_and_pays_by_mail() {
    let _serial = SERIAL.lock().await;
    let logs = LogBuffer::default();
    let _logging = tracing_subscriber::util::SubscriberInitExt::set_default(
        tracing_subscriber::fmt()
            .with_max_level(tracing_subscriber::filter::LevelFilter::DEBUG)
            .with_ansi(false)
            .with_writer(logs.clone())
            .finish(),
    );
    let w = World::new().await;

    // --- Receive: a plain "claim" reply to the notification.
    let (t, notification, _) = w.deposit(BOB, 3 * COIN).await;
    let (claim_id, raw) = reply_to_notification(BOB, &notification, "claim");
    w.deliver(BOB, &raw, Some(&w.example)).await;
    let report = w.run().await;
    assert_eq!(
        report.decided,
        vec![(OutcomeKind::Order, "wallet-claim".to_string())],
        "{report:?}"
    );
    assert!(
        !matches!(
            w.sender.status(t.link.claim_key()).await.unwrap(),
            DepositStatus::Open { .. }
        ),
        "the deposit left the escrow's deposit slot"
    );
    let bob_balance = 3 * COIN - FEE;
    let text = w.reply(BOB, &claim_id).await.expect("Bob got a reply");
    assert!(
        text.contains(&format!(
            "{} landed in your mailbox wallet; it now holds {}.",
            fmt(bob_balance),
            fmt(bob_balance)
        )),
        "{text}"
    );
    assert!(text.contains("without this broker"), "{text}");
    let claim_tx = text
        .lines()
        .find_map(|l| l.strip_prefix("Transaction id: "))
        .expect("a transaction id")
        .trim()
        .to_string();

    // --- A reply to the same notification again takes nothing more.
    let (again_id, raw) = reply_to_notification(BOB, &notification, "claim");
    w.deliver(BOB, &raw, Some(&w.example)).await;
    w.run().await;
    let text = w.reply(BOB, &again_id).await.expect("answered");
    assert!(text.contains("already claimed"), "{text}");
    assert!(text.contains("Nothing was moved."), "{text}");

    // --- Hold: balance with the movement and its transaction id.
    let (balance_id, raw) = order_mail(BOB, "balance", "", None, now());
    w.deliver(BOB, &raw, Some(&w.example)).await;
    w.run().await;
    let text = w.reply(BOB, &balance_id).await.expect("balance reply");
    assert!(
        text.contains(&format!("Your mailbox wallet holds {}.", fmt(bob_balance))),
        "{text}"
    );
    assert!(text.contains(&claim_tx), "{text}");
    assert!(text.contains("No owner key is bound yet"), "{text}");

    // --- Send to a new email: Carol gets a notification signed by the broker.
    let (pay_id, raw) = order_mail(
        BOB,
        "pay 0.5 QTUM to carol@example.net",
        "Thanks for lunch\n",
        None,
        now(),
    );
    w.deliver(BOB, &raw, Some(&w.example)).await;
    w.run().await;
    let bob_balance = bob_balance - COIN / 2;
    let text = w.reply(BOB, &pay_id).await.expect("receipt");
    assert!(
        text.contains(&format!(
            "Paid 0.5 QTUM from your mailbox wallet to carol@example.net; it now holds {}.",
            fmt(bob_balance)
        )),
        "{text}"
    );
    let to_carol = w.stack.mailbox(CAROL, "INBOX").await.unwrap();
    assert_eq!(to_carol.len(), 1, "Carol got one notification");
    assert!(dkim_passes(&to_carol[0], &w.pins, "broker.test").await);
    let carol_link = link_in(&to_carol[0]);
    let (deposit, _) = w
        .sender
        .find_account_deposit(carol_link.claim_key())
        .await
        .unwrap()
        .expect("an open deposit paid from Bob's wallet");
    assert_eq!(deposit.amount, COIN / 2);
    assert_eq!(deposit.watcher, w.watcher_key.address());

    // --- Carol takes it into a wallet of her own by replying with nothing at all.
    let (carol_claim, raw) = reply_to_notification(CAROL, &to_carol[0], "");
    w.deliver(CAROL, &raw, Some(&w.net)).await;
    w.run().await;
    let text = w.reply(CAROL, &carol_claim).await.expect("Carol's reply");
    let carol_balance = COIN / 2 - FEE;
    assert!(
        text.contains(&format!("it now holds {}.", fmt(carol_balance))),
        "{text}"
    );

    // --- Now that Carol has a wallet, Bob's payment lands in it.
    let (pay2, raw) = order_mail(
        BOB,
        "Lunch",
        "pay 0.25 QTUM to Carol@Example.net\n",
        None,
        now(),
    );
    w.deliver(BOB, &raw, Some(&w.example)).await;
    w.run().await;
    let bob_balance = bob_balance - COIN / 4;
    let text = w.reply(BOB, &pay2).await.expect("receipt");
    assert!(text.contains("landed in their mailbox wallet"), "{text}");
    let carol_balance = carol_balance + COIN / 4;
    let credit = w
        .stack
        .mailbox(CAROL, "INBOX")
        .await
        .unwrap()
        .into_iter()
        .map(|m| String::from_utf8_lossy(&m).replace("=\r\n", ""))
        .find(|m| m.contains("Subject: bob@example.com paid you 0.25 QTUM"))
        .expect("Carol is told of the payment");
    assert!(
        credit.contains("paid 0.25 QTUM into your mailbox wallet"),
        "{credit}"
    );
    let (carol_bal, raw) = order_mail(CAROL, "balance", "", None, now());
    w.deliver(CAROL, &raw, Some(&w.net)).await;
    w.run().await;
    let text = w.reply(CAROL, &carol_bal).await.expect("balance");
    assert!(
        text.contains(&format!("holds {}.", fmt(carol_balance))),
        "{text}"
    );
    assert!(text.contains("received from bob@example.com"), "{text}");

    // --- Above the confirmation threshold to an address: a code first, then the payment.
    let payee = fresh_address();
    let amount = COIN + COIN / 5;
    let (pay3, raw) = order_mail(
        BOB,
        "withdrawal",
        &format!("pay 1.2 QTUM to {payee}\n"),
        None,
        now(),
    );
    w.deliver(BOB, &raw, Some(&w.example)).await;
    w.run().await;
    let text = w.reply(BOB, &pay3).await.expect("confirmation request");
    assert!(text.contains("Nothing has moved yet"), "{text}");
    assert_eq!(w.native(payee).await, U256::ZERO);
    let code = code_in(&text);
    // A wrong code confirms nothing.
    let (wrong, raw) = order_mail(BOB, "ok", "confirm AAAA-AAAA\n", None, now());
    w.deliver(BOB, &raw, Some(&w.example)).await;
    w.run().await;
    assert!(w.reply(BOB, &wrong).await.unwrap().contains("No payment"));
    assert_eq!(w.native(payee).await, U256::ZERO);
    // A bare "confirm" in the confirmation's thread carries it out.
    let request = w.stack.reply_to(BOB, &pay3).await.unwrap().unwrap();
    let request_id = mail_parser::MessageParser::default()
        .parse(&request)
        .unwrap()
        .message_id()
        .unwrap()
        .to_string();
    let (confirm, raw) = order_mail(
        BOB,
        "Re: withdrawal",
        &format!("Confirm\n\nOn Mon, Spring Mail wrote:\n> confirm {code}\n"),
        Some(&request_id),
        now(),
    );
    w.deliver(BOB, &raw, Some(&w.example)).await;
    w.run().await;
    let bob_balance = bob_balance - amount;
    let text = w.reply(BOB, &confirm).await.expect("receipt");
    assert!(
        text.contains(&format!("it now holds {}.", fmt(bob_balance))),
        "{text}"
    );
    assert_eq!(w.native(payee).await, U256::from(amount));
    // The same code again pays nothing more.
    let (again, raw) = order_mail(BOB, "ok", &format!("confirm {code}\n"), None, now());
    w.deliver(BOB, &raw, Some(&w.example)).await;
    w.run().await;
    assert!(w.reply(BOB, &again).await.unwrap().contains("No payment"));
    assert_eq!(w.native(payee).await, U256::from(amount));

    // The code itself, written anywhere, confirms too.
    let payee2 = fresh_address();
    let amount2 = COIN + COIN / 100;
    let (pay4, raw) = order_mail(BOB, &format!("pay 1.01 QTUM to {payee2}"), "", None, now());
    w.deliver(BOB, &raw, Some(&w.example)).await;
    w.run().await;
    let code = code_in(&w.reply(BOB, &pay4).await.expect("confirmation request"));
    let (confirm, raw) = order_mail(
        BOB,
        "yes",
        &format!("confirm {}\n", code.to_lowercase()),
        None,
        now(),
    );
    w.deliver(BOB, &raw, Some(&w.example)).await;
    w.run().await;
    let bob_balance = bob_balance - amount2;
    let text = w.reply(BOB, &confirm).await.expect("receipt");
    assert!(
        text.contains(&format!("it now holds {}.", fmt(bob_balance))),
        "{text}"
    );
    assert_eq!(w.native(payee2).await, U256::from(amount2));

    // Nothing secret in the logs or in Bob's replies: not the accounts' salts (kept
    // in the journal), not the claim links.
    let salts: Vec<String> = rusqlite::Connection::open(w.journal().path())
        .unwrap()
        .prepare("SELECT salt FROM wallet_accounts")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(salts.len(), 2, "Bob's and Carol's accounts");
    let logged = logs.text();
    assert!(
        logged.contains("wallet order recorded"),
        "the logs were captured"
    );
    let mut secrets = salts.clone();
    secrets.push(t.link.to_bare());
    secrets.push(carol_link.to_bare());
    for raw in w.stack.mailbox(BOB, "INBOX").await.unwrap() {
        let text = String::from_utf8_lossy(&raw).replace("=\r\n", "");
        for s in &secrets {
            assert!(
                !text.contains(s.as_str()),
                "a reply to Bob carries a secret"
            );
        }
    }
    for s in &secrets {
        assert!(!logged.contains(s.as_str()), "the logs carry a secret");
    }
}

/// Log lines, captured.
#[derive(Clone, Default)]
struct LogBuffer(Arc<std::sync::Mutex<Vec<u8>>>);

impl LogBuffer {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl std::io::Write for LogBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogBuffer {
    type Writer = LogBuffer;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

#[tokio::test]
#[ignore = "needs the dev stack (dovecot, SMTP, anvil): run scripts/test"]
async fn replayed_old_unsigned_and_oversized_pay_mail_moves_nothing() {
    let _serial = SERIAL.lock().await;
    let mut w = World::new().await;
    w.settings.per_payment = COIN / 2;
    let (_, notification, _) = w.deposit(BOB, 2 * COIN).await;
    let (_, raw) = reply_to_notification(BOB, &notification, "claim");
    w.deliver(BOB, &raw, Some(&w.example)).await;
    w.run().await;
    let payee = fresh_address();

    // A good payment, then its exact bytes again: paid once.
    let (pay, raw) = order_mail(BOB, "x", &format!("pay 0.1 QTUM to {payee}\n"), None, now());
    let signed = w.example.sign(&raw);
    w.stack.smtp_send(BOB, WATCHER, &signed).await.unwrap();
    w.run().await;
    assert!(w.reply(BOB, &pay).await.unwrap().contains("Paid 0.1 QTUM"));
    let inbox = w.stack.mailbox(BOB, "INBOX").await.unwrap().len();
    w.stack.smtp_send(BOB, WATCHER, &signed).await.unwrap();
    let report = w.run().await;
    assert_eq!(
        report.decided,
        vec![(OutcomeKind::Duplicate, "duplicate".to_string())]
    );
    assert_eq!(w.native(payee).await, U256::from(COIN / 10), "paid once");
    assert_eq!(w.stack.mailbox(BOB, "INBOX").await.unwrap().len(), inbox);

    // Older than the window: refused with a reply.
    let (old, raw) = order_mail(
        BOB,
        "x",
        &format!("pay 0.1 QTUM to {payee}\n"),
        None,
        now() - 7_200,
    );
    w.deliver(BOB, &raw, Some(&w.example)).await;
    w.run().await;
    assert!(w.reply(BOB, &old).await.unwrap().contains("longer ago"));

    // Unsigned, tampered and misaligned: dropped, unanswered.
    let (unsigned, raw) = order_mail(BOB, "x", &format!("pay 0.1 QTUM to {payee}\n"), None, now());
    w.deliver(BOB, &raw, None).await;
    let (tampered, raw) = order_mail(BOB, "x", &format!("pay 0.1 QTUM to {payee}\n"), None, now());
    let mut bytes = w.example.sign(&raw);
    let pos = String::from_utf8_lossy(&bytes).find("pay 0.1").unwrap();
    bytes[pos + "pay 0.".len()] = b'9';
    w.stack.smtp_send(BOB, WATCHER, &bytes).await.unwrap();
    let (misaligned, raw) =
        order_mail(BOB, "x", &format!("pay 0.1 QTUM to {payee}\n"), None, now());
    w.deliver(BOB, &raw, Some(&w.net)).await;
    let report = w.run().await;
    assert_eq!(report.received, 3);
    assert!(
        report
            .decided
            .iter()
            .all(|(k, _)| *k == OutcomeKind::Dropped),
        "{report:?}"
    );
    for id in [unsigned, tampered, misaligned] {
        assert!(
            w.stack.reply_to(BOB, &id).await.unwrap().is_none(),
            "no backscatter"
        );
    }

    // HTML-only: not an order; answered as a claim without a block is today.
    let (html, raw) = order_mail(
        BOB,
        &format!("pay 0.1 QTUM to {payee}"),
        &format!("<html><body><p>pay 0.1 QTUM to {payee}</p></body></html>\n"),
        None,
        now(),
    );
    w.deliver(BOB, &raw, Some(&w.example)).await;
    let report = w.run().await;
    assert_eq!(
        report.decided,
        vec![(OutcomeKind::Refused, "no-claim-block".to_string())]
    );
    let answer = w
        .stack
        .reply_to(BOB, &html)
        .await
        .unwrap()
        .expect("answered");
    assert!(String::from_utf8_lossy(&answer).contains("your claim was not paid"));

    // Above the balance, and above the per-payment limit: a clear reply, nothing sent.
    let (over, raw) = order_mail(BOB, "x", &format!("pay 4 QTUM to {payee}\n"), None, now());
    w.deliver(BOB, &raw, Some(&w.example)).await;
    w.run().await;
    assert!(w
        .reply(BOB, &over)
        .await
        .unwrap()
        .contains("less than the 4 QTUM"));
    let (over_limit, raw) =
        order_mail(BOB, "x", &format!("pay 0.6 QTUM to {payee}\n"), None, now());
    w.deliver(BOB, &raw, Some(&w.example)).await;
    w.run().await;
    let text = w.reply(BOB, &over_limit).await.unwrap();
    assert!(
        text.contains("0.6 QTUM is above your wallet's limit of 0.5 QTUM per payment."),
        "{text}"
    );
    assert_eq!(
        w.native(payee).await,
        U256::from(COIN / 10),
        "nothing more was paid"
    );
}

#[tokio::test]
#[ignore = "needs the dev stack (dovecot, SMTP, anvil): run scripts/test"]
async fn a_bound_owner_key_withdraws_without_the_broker() {
    let _serial = SERIAL.lock().await;
    let w = World::new().await;
    let (_, notification, _) = w.deposit(BOB, COIN).await;
    let (_, raw) = reply_to_notification(BOB, &notification, "claim");
    w.deliver(BOB, &raw, Some(&w.example)).await;
    w.run().await;
    let (owner_key, owner_chain) = w.stack.funded_chain(10u128.pow(18)).await.unwrap();
    let owner = owner_key.address();
    let chain_id = w.sender.escrow_id().chain_id;
    let text = springmail_watcher::wallet::bind_text(BOB, chain_id, w.sender.escrow(), owner);
    let sig = owner_key.sign_digest(&springmail_watcher::wallet::bind_digest(&text));

    // A signature of another mailbox's text binds nothing.
    let carol_text =
        springmail_watcher::wallet::bind_text(CAROL, chain_id, w.sender.escrow(), owner);
    let wrong = owner_key.sign_digest(&springmail_watcher::wallet::bind_digest(&carol_text));
    let (bad, raw) = order_mail(
        BOB,
        "key",
        &format!("bind {owner} 0x{}\n", hex::encode(wrong.0)),
        None,
        now(),
    );
    w.deliver(BOB, &raw, Some(&w.example)).await;
    w.run().await;
    assert!(w.reply(BOB, &bad).await.unwrap().contains("binding text"));

    let (bind, raw) = order_mail(
        BOB,
        "key",
        &format!("bind {owner} 0x{}\n", hex::encode(sig.0)),
        None,
        now(),
    );
    w.deliver(BOB, &raw, Some(&w.example)).await;
    w.run().await;
    let text = w.reply(BOB, &bind).await.expect("bound");
    assert!(text.contains("is now your wallet's owner key"), "{text}");
    let account: alloy::primitives::B256 = text
        .lines()
        .find_map(|l| l.split("withdrawals name: ").nth(1))
        .expect("the account id")
        .trim()
        .parse()
        .unwrap();

    let (balance, raw) = order_mail(BOB, "balance", "", None, now());
    w.deliver(BOB, &raw, Some(&w.example)).await;
    w.run().await;
    let text = w.reply(BOB, &balance).await.expect("balance");
    assert!(
        text.contains(&format!(
            "Owner key: {}",
            springmail_sdk::qtum::format_address(chain_id, owner)
        )),
        "{text}"
    );
    // Binding again is refused: the owner is bound once.
    let (again, raw) = order_mail(
        BOB,
        "key",
        &format!("bind {owner} 0x{}\n", hex::encode(sig.0)),
        None,
        now(),
    );
    w.deliver(BOB, &raw, Some(&w.example)).await;
    w.run().await;
    assert!(w
        .reply(BOB, &again)
        .await
        .unwrap()
        .contains("already your wallet's owner key"));

    // The owner withdraws with nothing but the key: no broker, no limits.
    let own =
        SpringMail::new(owner_chain, w.sender.escrow()).with_start_block(w.sender.start_block());
    let id = springmail_sdk::accounts::AccountId(account);
    let state = own.account(id).await.unwrap();
    assert_eq!(state.owner, Some(owner));
    let payee = fresh_address();
    own.withdraw_from(
        id,
        payee,
        state.balance,
        springmail_sdk::accounts::Movement {
            nonce: state.nonce,
            mail_hash: alloy::primitives::B256::ZERO,
        },
    )
    .await
    .unwrap();
    assert_eq!(w.native(payee).await, U256::from(COIN - FEE));
}

#[tokio::test]
#[ignore = "needs the dev stack (dovecot, SMTP, anvil): run scripts/test"]
async fn ten_payments_at_once_never_overspend() {
    let _serial = SERIAL.lock().await;
    let w = World::new().await;
    let (_, notification, _) = w.deposit(BOB, COIN + FEE).await;
    let (_, raw) = reply_to_notification(BOB, &notification, "claim");
    w.deliver(BOB, &raw, Some(&w.example)).await;
    w.run().await;
    let payee = fresh_address();
    // Half in words, half as the BiSMTP PAY block programs write.
    let block =
        springmail_sdk::markup::orders::Order::Pay(springmail_sdk::markup::orders::PayOrder {
            chain_id: w.sender.escrow_id().chain_id,
            amount: springmail_sdk::amount::Amount::from_units(
                3 * COIN / 10,
                springmail_sdk::amount::Asset::for_chain(w.sender.escrow_id().chain_id),
            )
            .unwrap(),
            to: springmail_sdk::markup::orders::Recipient::Address(payee),
        })
        .render_block()
        .unwrap();
    let mut ids = Vec::new();
    for i in 0..10 {
        let body = if i % 2 == 0 {
            format!("pay 0.3 QTUM to {payee}\n")
        } else {
            block.clone()
        };
        let (id, raw) = order_mail(BOB, "x", &body, None, now());
        w.deliver(BOB, &raw, Some(&w.example)).await;
        ids.push(id);
    }
    w.run().await;
    let mut paid = 0;
    for id in &ids {
        let text = w.reply(BOB, id).await.expect("every order is answered");
        if text.contains("Paid 0.3 QTUM") {
            paid += 1;
        } else {
            assert!(text.contains("less than the 0.3 QTUM"), "{text}");
        }
    }
    assert_eq!(paid, 3, "1 QTUM pays three payments of 0.3");
    assert_eq!(w.native(payee).await, U256::from(3 * (3 * COIN / 10)));
}

#[tokio::test]
#[ignore = "needs the dev stack (dovecot, SMTP, anvil): run scripts/test"]
async fn a_crash_around_a_payment_pays_exactly_once() {
    let _serial = SERIAL.lock().await;
    for point in CrashPoint::WALLET {
        let w = World::new().await;
        let (t, notification, _) = w.deposit(BOB, COIN).await;
        // Crashed while claiming into the new account: claimed once after the restart.
        let (claim, raw) = reply_to_notification(BOB, &notification, "claim");
        w.deliver(BOB, &raw, Some(&w.example)).await;
        match w.watcher_at(Some(point)).run_once().await {
            Err(WatcherError::Crashed(p)) => assert_eq!(p, point),
            other => panic!("{point}: {other:?}"),
        }
        assert!(
            w.stack.reply_to(BOB, &claim).await.unwrap().is_none(),
            "{point}"
        );
        w.run().await;
        let text = w
            .reply(BOB, &claim)
            .await
            .expect("the claim's reply after the restart");
        assert!(
            text.contains(&format!("it now holds {}.", fmt(COIN - FEE))),
            "{point}: {text}"
        );
        assert!(!matches!(
            w.sender.status(t.link.claim_key()).await.unwrap(),
            DepositStatus::Open { .. }
        ));

        // Crashed while paying: paid once after the restart.
        let payee = fresh_address();
        let (id, raw) = order_mail(BOB, "x", &format!("pay 0.4 QTUM to {payee}\n"), None, now());
        w.deliver(BOB, &raw, Some(&w.example)).await;
        match w.watcher_at(Some(point)).run_once().await {
            Err(WatcherError::Crashed(p)) => assert_eq!(p, point),
            other => panic!("{point}: {other:?}"),
        }
        assert!(
            w.stack.reply_to(BOB, &id).await.unwrap().is_none(),
            "{point}"
        );
        w.run().await;
        assert_eq!(
            w.native(payee).await,
            U256::from(4 * COIN / 10),
            "{point}: paid once"
        );
        let text = w
            .reply(BOB, &id)
            .await
            .expect("the receipt after the restart");
        assert!(
            text.contains(&format!(
                "Paid 0.4 QTUM from your mailbox wallet to {}; it now holds {}.",
                springmail_sdk::qtum::format_address(w.sender.escrow_id().chain_id, payee),
                fmt(COIN - FEE - 4 * COIN / 10)
            )),
            "{point}: {text}"
        );
        // A second run does nothing more.
        let report = w.run().await;
        assert!(report.decided.is_empty(), "{point}: {report:?}");
        assert_eq!(w.native(payee).await, U256::from(4 * COIN / 10), "{point}");
    }
}

/// Bob's wallet balance on chain, by the account id the broker recorded.
async fn bob_wallet(w: &World) -> u128 {
    let account: String = rusqlite::Connection::open(w.journal().path())
        .unwrap()
        .query_row(
            "SELECT account FROM wallet_accounts WHERE email = ?1",
            [BOB],
            |r| r.get(0),
        )
        .unwrap();
    let id = springmail_sdk::accounts::AccountId(account.parse().unwrap());
    w.sender.account(id).await.unwrap().balance
}

/// Bob's wallet, opened by a claim of `amount`, and a payee with nothing.
async fn bob_with_a_wallet(w: &World, amount: u128) -> Address {
    let (_, notification, _) = w.deposit(BOB, amount).await;
    let (_, raw) = reply_to_notification(BOB, &notification, "claim");
    w.deliver(BOB, &raw, Some(&w.example)).await;
    w.run().await;
    assert_eq!(bob_wallet(w).await, amount - FEE, "the wallet is open");
    fresh_address()
}

/// Runs the watcher over what was delivered; checks that nothing moved (Bob's wallet,
/// the payee) and returns the report.
async fn nothing_moves(w: &World, payee: Address, held: u128) -> springmail_watcher::RunReport {
    let report = w.run().await;
    assert_eq!(bob_wallet(w).await, held, "Bob's wallet is untouched");
    assert_eq!(w.native(payee).await, U256::ZERO, "the payee got nothing");
    report
}

#[tokio::test]
#[ignore = "needs the dev stack (dovecot, SMTP, anvil): run scripts/test"]
async fn a_pay_signed_with_a_body_length_moves_nothing_like_a_claim() {
    let _serial = SERIAL.lock().await;
    let w = World::new().await;
    let payee = bob_with_a_wallet(&w, COIN).await;
    let held = COIN - FEE;

    // Bob's own PAY, signed with l= (a partial-body signature): refused even though
    // it verifies, exactly as a claim signed so is (`dkim-partial-body`, no reply).
    let (whole, raw) = order_mail(BOB, "x", &format!("pay 0.1 QTUM to {payee}\n"), None, now());
    w.stack
        .smtp_send(BOB, WATCHER, &w.example.sign_opts(&raw, true))
        .await
        .unwrap();
    // The attack l= allows: Bob's harmless signed mail (only a quote, so no order of
    // its own) with a PAY appended after signing; the signature still verifies.
    let (appended, raw) = order_mail(BOB, "hello", "> see you at noon\n", None, now());
    let mut bytes = w.example.sign_opts(&raw, true);
    let unfolded = String::from_utf8_lossy(&bytes).replace("\r\n\t", " ");
    assert!(
        unfolded.lines().next().unwrap().contains("; l="),
        "an l= tag: {unfolded}"
    );
    bytes.extend_from_slice(format!("pay 0.2 QTUM to {payee}\r\n").as_bytes());
    w.stack.smtp_send(BOB, WATCHER, &bytes).await.unwrap();

    let report = nothing_moves(&w, payee, held).await;
    assert_eq!(
        report.decided,
        vec![
            (OutcomeKind::Dropped, "dkim-partial-body".to_string()),
            (OutcomeKind::Dropped, "dkim-partial-body".to_string())
        ],
        "{report:?}"
    );
    for id in [whole, appended] {
        assert!(
            w.stack.reply_to(BOB, &id).await.unwrap().is_none(),
            "no reply to a partial-body signature"
        );
    }
}

#[tokio::test]
#[ignore = "needs the dev stack (dovecot, SMTP, anvil): run scripts/test"]
async fn a_pay_from_a_look_alike_domain_moves_nothing_like_a_claim() {
    let _serial = SERIAL.lock().await;
    let mut w = World::new().await;
    // exarnple.com ("rn" for "m"): a real domain of its own with a valid DKIM key.
    let look_alike = TestDomain::new("exarnple.com");
    look_alike.pin(&mut w.pins);
    let payee = bob_with_a_wallet(&w, COIN).await;
    let held = COIN - FEE;
    let order = format!("pay 0.1 QTUM to {payee}\n");

    // From: Bob's real address, signed by the look-alike: not aligned, dropped
    // without a reply (a claim so signed is `dkim-not-aligned`).
    let (spoofed, raw) = order_mail(BOB, "x", &order, None, now());
    w.deliver(BOB, &raw, Some(&look_alike)).await;
    let report = nothing_moves(&w, payee, held).await;
    assert_eq!(
        report.decided,
        vec![(OutcomeKind::Dropped, "dkim-not-aligned".to_string())],
        "{report:?}"
    );
    assert!(w.stack.reply_to(BOB, &spoofed).await.unwrap().is_none());

    // From the look-alike mailbox itself, properly signed: a different mailbox, with
    // no wallet; Bob's is not touched, and no account is opened for it.
    let twin = "bob@exarnple.com";
    let (own, raw) = order_mail(twin, "x", &order, None, now());
    w.deliver(twin, &raw, Some(&look_alike)).await;
    let report = nothing_moves(&w, payee, held).await;
    assert_eq!(report.decided.len(), 1, "{report:?}");
    let accounts: i64 = rusqlite::Connection::open(w.journal().path())
        .unwrap()
        .query_row("SELECT count(*) FROM wallet_accounts", [], |r| r.get(0))
        .unwrap();
    assert_eq!(accounts, 1, "only Bob's wallet exists");
    let _ = own;

    // The same look-alike mail carrying Bob's claim: refused as today.
    let (t, notification, _) = w.deposit(BOB, COIN).await;
    let (claim, raw) = reply_to_notification(twin, &notification, "claim");
    w.deliver(twin, &raw, Some(&look_alike)).await;
    let report = nothing_moves(&w, payee, held).await;
    assert_eq!(report.decided.len(), 1, "{report:?}");
    let _ = claim;
    assert!(
        matches!(
            w.sender.status(t.link.claim_key()).await.unwrap(),
            DepositStatus::Open { .. }
        ),
        "Bob's deposit stays in the escrow for Bob"
    );
}

#[tokio::test]
#[ignore = "needs the dev stack (dovecot, SMTP, anvil): run scripts/test"]
async fn a_forwarded_pay_moves_nothing_like_a_claim() {
    let _serial = SERIAL.lock().await;
    let w = World::new().await;
    let payee = bob_with_a_wallet(&w, COIN).await;
    let held = COIN - FEE;
    let (_, original) = order_mail(BOB, "x", &format!("pay 0.1 QTUM to {payee}\n"), None, now());
    let original = w.example.sign(&original);

    // A forwarder (a list, an alias) that resends Bob's signed mail with its own
    // footer and subject tag: the body no longer matches the signature; dropped, no
    // reply, as a claim altered so is (`dkim-failed`).
    let text = String::from_utf8(original.clone()).unwrap();
    let relayed = text.replacen("Subject: x", "Subject: [friends] x", 1)
        + "\r\n-- \r\nfriends mailing list\r\n";
    let relayed_id = mail_parser::MessageParser::default()
        .parse(relayed.as_bytes())
        .unwrap()
        .message_id()
        .unwrap()
        .to_string();
    w.stack
        .smtp_send(BOB, WATCHER, relayed.as_bytes())
        .await
        .unwrap();
    let report = nothing_moves(&w, payee, held).await;
    assert_eq!(
        report.decided,
        vec![(OutcomeKind::Dropped, "dkim-failed".to_string())],
        "{report:?}"
    );
    assert!(w.stack.reply_to(BOB, &relayed_id).await.unwrap().is_none());

    // Carol forwards Bob's mail, inline and as an attachment, from her own signed
    // mailbox: the order is hers to give, not Bob's; his wallet is not touched.
    let quoted = String::from_utf8_lossy(&original)
        .split("\r\n\r\n")
        .nth(1)
        .unwrap()
        .to_string();
    let (inline, raw) = order_mail(
        CAROL,
        "Fwd: x",
        &format!("---------- Forwarded message ---------\nFrom: <{BOB}>\nSubject: x\n\n{quoted}"),
        None,
        now(),
    );
    w.deliver(CAROL, &raw, Some(&w.net)).await;
    let report = nothing_moves(&w, payee, held).await;
    assert_eq!(
        report.decided,
        vec![(OutcomeKind::Refused, "no-claim-block".to_string())],
        "answered as a mail without a claim block is today: {report:?}"
    );
    let answer = w.reply(CAROL, &inline).await.expect("Carol is answered");
    assert!(answer.contains("your claim was not paid"), "{answer}");

    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let attached_id = format!("fwd.{n}.{}@example.net", rand::random::<u64>());
    let attached = format!(
        "From: {CAROL}\r\nTo: {WATCHER}\r\nSubject: Fwd: x\r\nDate: {}\r\nMessage-ID: <{attached_id}>\r\n\
         MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"fwd\"\r\n\r\n\
         --fwd\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nSee below.\r\n\
         --fwd\r\nContent-Type: message/rfc822\r\n\r\n{}\r\n--fwd--\r\n",
        mail_parser::DateTime::from_timestamp(now()).to_rfc822(),
        String::from_utf8_lossy(&original)
    );
    w.deliver(CAROL, attached.as_bytes(), Some(&w.net)).await;
    let report = nothing_moves(&w, payee, held).await;
    assert_eq!(report.decided.len(), 1, "{report:?}");
    let answer = w
        .reply(CAROL, &attached_id)
        .await
        .expect("Carol is answered");
    assert!(answer.contains("your claim was not paid"), "{answer}");
}

#[tokio::test]
#[ignore = "needs the dev stack (dovecot, SMTP, anvil): run scripts/test"]
async fn balance_lists_an_unclaimed_payment_refunded_into_the_wallet() {
    let _serial = SERIAL.lock().await;
    let w = World::new().await;
    bob_with_a_wallet(&w, COIN).await;
    let held = COIN - FEE;
    let (_, raw) = order_mail(BOB, "x", &format!("pay 0.5 QTUM to {CAROL}\n"), None, now());
    w.deliver(BOB, &raw, Some(&w.example)).await;
    w.run().await;
    assert_eq!(bob_wallet(&w).await, held - COIN / 2, "paid to a new email");
    let to_carol = w.stack.mailbox(CAROL, "INBOX").await.unwrap();
    let claim_key = link_in(&to_carol[0]).claim_key();

    // Carol never claims; after the expiry anyone returns it to Bob's wallet, with no
    // order and no mail: only the chain knows.
    let provider =
        alloy::providers::ProviderBuilder::new().connect_http(w.stack.anvil_url.parse().unwrap());
    use alloy::providers::Provider;
    let secs = PAY_EXPIRY_SECS + 60;
    let _: serde_json::Value = provider
        .raw_request("evm_increaseTime".into(), (secs,))
        .await
        .unwrap();
    let _: serde_json::Value = provider.raw_request("evm_mine".into(), ()).await.unwrap();
    let refund = w.client().refund_to_account(claim_key).await.unwrap();
    assert_eq!(bob_wallet(&w).await, held, "the payment came back");

    let (balance, raw) = order_mail(BOB, "balance", "", None, now());
    w.deliver(BOB, &raw, Some(&w.example)).await;
    w.run().await;
    let text = w.reply(BOB, &balance).await.expect("balance");
    let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        flat.contains(&format!("Your mailbox wallet holds {}.", fmt(held))),
        "{text}"
    );
    assert!(
        flat.contains("Payments nobody claimed in time, back in your wallet:"),
        "{text}"
    );
    assert!(
        flat.contains(&format!(
            "+0.5 QTUM refund of the payment with claim key {} transaction {}",
            claim_key.to_checksum(None),
            refund.tx_hash
        )),
        "{text}"
    );
    // The claim into the wallet is not mistaken for a refund.
    assert_eq!(flat.matches("refund of the payment").count(), 1, "{text}");
}
