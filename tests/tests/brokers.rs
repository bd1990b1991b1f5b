//! Two brokers on one dev stack: brokera.test and brokerb.test, each a watcher's SMTP
//! ingress with its address layer (book, address spool, desk), on one anvil with the
//! version 3 escrow; Alice's own mailbox is alice@example.org, Bob's bob@example.com,
//! Carol's carol@example.net, in the stack's dovecot.
//!
//! Alice registers her Qtum address (and the alias `alice`) at broker B by a
//! DKIM-signed mail from her mailbox. Bob has a mailbox wallet at broker A (a
//! deposit claimed into it by replying to its notification) and writes "pay 0.5 QTUM
//! to alice@brokerb.test": A sends B a RESOLVE, B answers with Alice's address, A
//! withdraws from Bob's account to it and sends B a RECEIPT; B finds the withdrawal
//! in the escrow's logs on anvil and tells Alice in her mailbox; Bob gets his receipt
//! in his thread. A forged receipt (another amount) tells Alice nothing. A payment to
//! a registered `<q-address>@brokera.test` pays the address and forwards the mail's
//! text to its owner; one to a name B does not know pays nothing and says so.
//!
//! Mail between the brokers goes straight to the other's ingress: [`Mx`] plays the
//! MX lookup an ordinary relay makes (brokera.test → A's port, brokerb.test → B's),
//! and everything else goes to the stack's SMTP relay (dovecot).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use alloy::primitives::{Address, U256};
use async_trait::async_trait;
use springmail_e2e::Stack;
use springmail_sdk::amount::{Amount, Asset};
use springmail_sdk::client::{SendRequest, SpringMail};
use springmail_sdk::keys::ClaimSecret;
use springmail_sdk::markup::broker::{ReceiptBlock, RegisterBlock, Registration};
use springmail_sdk::qtum::{self, QtumNetwork};
use springmail_watcher::addresses::{
    escrow_withdrawals, AddressBook, AddressDesk, DeskSettings, PayNames, Routes,
};
use springmail_watcher::authenticate::AuthPolicy;
use springmail_watcher::journal::Journal;
use springmail_watcher::metrics::Metrics;
use springmail_watcher::receipt::EvmPayments;
use springmail_watcher::reply::{DkimSigningKey, OutgoingMail, ReplyComposer, SinkError};
use springmail_watcher::service::{PipelineSettings, Watcher, WatcherParts};
use springmail_watcher::smtp_ingress::{serve_with_routes, IngressSettings, Spool};
use springmail_watcher::submit::SubmitPolicy;
use springmail_watcher::testkit::TestDomain;
use springmail_watcher::verify::VerifyPolicy;
use springmail_watcher::wallet::{SdkWallet, Wallet, WalletSettings};
use springmail_watcher::{DkimKeys, MailAuthenticator, PinnedRecords, ReplySink};

const ALICE: &str = "alice@example.org";
const BOB: &str = "bob@example.com";
const CAROL: &str = "carol@example.net";
const WATCHER_A: &str = "watcher@brokera.test";
const COIN: u128 = 100_000_000;
const FEE: u128 = 100_000;
/// How long A's wallet waits for B's RESOLVED.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(8);

/// The relay's MX lookup for the two broker domains; the stack's relay otherwise.
struct Mx {
    a: u16,
    b: u16,
    relay: (String, u16),
}

#[async_trait]
impl ReplySink for Mx {
    async fn send(&self, mail: &OutgoingMail) -> Result<(), SinkError> {
        use lettre::AsyncTransport;
        let domain = mail.rcpt.rsplit_once('@').map_or("", |(_, d)| d);
        let (host, port) = match domain {
            "brokera.test" => ("127.0.0.1", self.a),
            "brokerb.test" => ("127.0.0.1", self.b),
            _ => (self.relay.0.as_str(), self.relay.1),
        };
        let transport =
            lettre::AsyncSmtpTransport::<lettre::Tokio1Executor>::builder_dangerous(host)
                .port(port)
                .timeout(Some(Duration::from_secs(30)))
                .build();
        let err = |message: String| SinkError {
            message,
            transient: false,
        };
        let envelope = lettre::address::Envelope::new(
            Some(mail.mail_from.parse().map_err(|e| err(format!("{e}")))?),
            vec![mail.rcpt.parse().map_err(|e| err(format!("{e}")))?],
        )
        .map_err(|e| err(e.to_string()))?;
        transport
            .send_raw(&envelope, &mail.bytes)
            .await
            .map(|_| ())
            .map_err(|e| SinkError {
                message: e.to_string(),
                transient: !e.is_permanent(),
            })
    }

    fn describe(&self) -> String {
        "MX of the test".into()
    }
}

struct Broker {
    book: Arc<AddressBook>,
    desk: Arc<AddressDesk>,
    addr: SocketAddr,
    /// The watcher's spool (mail for `watcher@<domain>`).
    spool: Arc<Spool>,
    address_spool: Arc<Spool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Broker {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Binds a port for a broker's ingress before the sink that needs both ports exists.
async fn free_port() -> u16 {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    l.local_addr().unwrap().port()
}

async fn broker(
    dir: &std::path::Path,
    domain: &TestDomain,
    port: u16,
    pins: &PinnedRecords,
    sink: Arc<dyn ReplySink>,
    stack: &Stack,
    escrow: Address,
) -> Broker {
    let name = &domain.domain;
    let root = dir.join(name);
    let network = QtumNetwork::from_chain_id(stack.chain_id);
    let book = AddressBook::open(root.join("addresses.sqlite").as_path()).unwrap();
    let spool = Spool::open(root.join("spool")).unwrap();
    let address_spool = Spool::open(root.join("spool/addresses")).unwrap();
    let mut settings = IngressSettings::new(
        format!("127.0.0.1:{port}").parse().unwrap(),
        vec![name.clone()],
        vec![format!("watcher@{name}")],
    );
    settings.qtum_addresses = network;
    settings.addresses = true;
    let routes = Routes {
        book: book.clone(),
        spool: address_spool.clone(),
        network,
    };
    let (addr, ingress) = serve_with_routes(
        settings,
        spool.clone(),
        DkimKeys::pinned(pins.clone()),
        Some(routes),
    )
    .await
    .unwrap();
    let key = DkimSigningKey::from_pem(&domain.key_pem, "test key").unwrap();
    let desk = Arc::new(
        AddressDesk::new(
            DeskSettings {
                domains: vec![name.clone()],
                chain_id: stack.chain_id,
                network,
                reserved: vec!["watcher".into()],
                max_message_bytes: 1 << 20,
                poll_interval: Duration::from_secs(30),
            },
            book.clone(),
            &address_spool,
            DkimKeys::pinned(pins.clone()),
            ReplyComposer::new(
                &format!("broker@{name}"),
                "Spring Mail broker",
                Some((key, name.clone(), domain.selector.clone())),
            ),
            sink,
            Arc::new(
                EvmPayments::new(&stack.anvil_url)
                    .unwrap()
                    .with_log_reader(escrow_withdrawals(escrow)),
            ),
        )
        .unwrap(),
    );
    let desk_task = desk.clone().spawn();
    Broker {
        book,
        desk,
        addr,
        spool,
        address_spool,
        tasks: vec![ingress, desk_task],
    }
}

/// Broker A's watcher: reads its spool, pays from mailbox wallets, sends through
/// the MX sink; names at brokerb.test are a peer's.
#[allow(clippy::too_many_arguments)]
fn watcher_a(
    a: &Broker,
    da: &TestDomain,
    pins: &PinnedRecords,
    sink: Arc<dyn ReplySink>,
    client: SpringMail,
    watcher_key: Arc<ClaimSecret>,
    journal_dir: &std::path::Path,
) -> Watcher {
    let key = DkimSigningKey::from_pem(&da.key_pem, "brokera").unwrap();
    let watcher = Watcher::new(WatcherParts {
        client: client.clone(),
        watcher_key: watcher_key.clone(),
        journal: Arc::new(Journal::open_in(journal_dir).unwrap()),
        sources: vec![Box::new(a.spool.source().unwrap())],
        sink,
        authenticator: MailAuthenticator::new(
            DkimKeys::pinned(pins.clone()),
            AuthPolicy {
                max_message_bytes: 1 << 20,
                own_addresses: vec![WATCHER_A.into()],
            },
        ),
        composer: ReplyComposer::new(
            WATCHER_A,
            "Spring Mail watcher",
            Some((key, "brokera.test".into(), da.selector.clone())),
        ),
        verify: VerifyPolicy {
            watcher: watcher_key.address(),
            native_fee: FEE,
            tokens: vec![],
            min_time_left: 60,
        },
        submit: SubmitPolicy {
            receipt_timeout: Duration::from_secs(30),
            gas_limit: Some(300_000),
            resend_guard: Duration::from_secs(2),
        },
        pipeline: PipelineSettings {
            poll_interval: Duration::from_millis(300),
            retry_base: Duration::from_secs(1),
            ..Default::default()
        },
        metrics: Metrics::new(),
    })
    .unwrap();
    let wallet = Wallet::new(
        WalletSettings {
            per_payment: 5 * COIN,
            per_day: 8 * COIN,
            confirm_above: COIN,
            order_window: 3_600,
            pay_expiry: 30 * 86_400,
        },
        Arc::new(SdkWallet::new(client, FEE)),
    )
    .with_names(PayNames::new(
        a.desk.clone(),
        vec!["brokerb.test".into()],
        RESOLVE_TIMEOUT,
    ));
    watcher.with_wallet(wallet).unwrap()
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// A plain-text order mail to A's watcher, dated now; its Message-ID and bytes.
fn order(from: &str, subject: &str, body: &str, in_reply_to: Option<&str>) -> (String, Vec<u8>) {
    let id = format!(
        "order.{}@{}",
        rand::random::<u64>(),
        from.rsplit_once('@').unwrap().1
    );
    let mut m = format!(
        "From: {from}\r\nTo: {WATCHER_A}\r\nSubject: {subject}\r\nDate: {}\r\nMessage-ID: <{id}>\r\n",
        mail_parser::DateTime::from_timestamp(now()).to_rfc822()
    );
    if let Some(parent) = in_reply_to {
        m.push_str(&format!(
            "In-Reply-To: <{parent}>\r\nReferences: <{parent}>\r\n"
        ));
    }
    m.push_str("MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n");
    m.push_str(&body.replace('\n', "\r\n"));
    (id, m.into_bytes())
}

/// The text of `user`'s reply to `message_id`, once it arrives.
async fn reply(stack: &Stack, user: &str, message_id: &str) -> String {
    let raw = until("the reply arrives", async || {
        stack.reply_to(user, message_id).await.unwrap()
    })
    .await;
    let parsed = mail_parser::MessageParser::default().parse(&raw).unwrap();
    parsed.body_text(0).unwrap().replace("\r\n", "\n")
}

/// A REGISTER of `key`'s address at `domain` for `mailbox`, signed by the key.
fn register(
    stack: &Stack,
    key: &ClaimSecret,
    domain: &str,
    mailbox: &str,
    name: Option<&str>,
) -> String {
    let registration = Registration {
        chain_id: stack.chain_id,
        domain: domain.into(),
        address: qtum::qtum_sender_of_secret(key),
        mailbox: mailbox.into(),
        name: name.map(Into::into),
        time: now() as u64,
    };
    RegisterBlock {
        signature: registration.sign(key),
        registration,
    }
    .render()
}

async fn until<T>(what: &str, mut f: impl AsyncFnMut() -> Option<T>) -> T {
    let t0 = Instant::now();
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(t0.elapsed() < Duration::from_secs(60), "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn smtp(addr: SocketAddr, from: &str, to: &str, bytes: &[u8]) {
    use lettre::AsyncTransport;
    let t = lettre::AsyncSmtpTransport::<lettre::Tokio1Executor>::builder_dangerous("127.0.0.1")
        .port(addr.port())
        .build();
    let env =
        lettre::address::Envelope::new(Some(from.parse().unwrap()), vec![to.parse().unwrap()])
            .unwrap();
    t.send_raw(&env, bytes).await.unwrap();
}

fn mail(from: &str, to: &str, subject: &str, id: &str, body: &str) -> Vec<u8> {
    springmail_watcher::testkit::mail(from, to, subject, id, None, body)
}

fn texts(mails: &[Vec<u8>]) -> Vec<String> {
    mails
        .iter()
        .map(|m| {
            let p = mail_parser::MessageParser::default().parse(m).unwrap();
            format!(
                "{}\n{}",
                p.subject().unwrap_or(""),
                p.body_text(0).unwrap_or_default()
            )
        })
        .collect()
}

fn count(dir: std::path::PathBuf) -> usize {
    std::fs::read_dir(dir).map_or(0, |d| d.count())
}

#[tokio::test]
#[ignore = "needs the dev stack (dovecot, SMTP, anvil): run scripts/test"]
async fn bob_at_a_pays_alice_at_b_resolve_withdraw_receipt_checked_on_chain() {
    let stack = Stack::from_env().unwrap();
    for user in [ALICE, BOB, CAROL] {
        stack.clear_inbox(user).await.unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let (example, com, net, da, db) = (
        TestDomain::new("example.org"),
        TestDomain::new("example.com"),
        TestDomain::new("example.net"),
        TestDomain::new("brokera.test"),
        TestDomain::new("brokerb.test"),
    );
    let mut pins = PinnedRecords::new();
    for d in [&example, &com, &net, &da, &db] {
        d.pin(&mut pins);
    }
    // The escrow (version 3, accounts), a depositor, and A's watcher key.
    let (_, sender_chain) = stack.funded_chain(10u128.pow(21)).await.unwrap();
    let sender = SpringMail::deploy(sender_chain).await.unwrap();
    let (watcher_key, relayer) = stack.funded_chain(10u128.pow(20)).await.unwrap();
    let watcher_key = Arc::new(watcher_key);
    let client = SpringMail::new(relayer, sender.escrow()).with_start_block(sender.start_block());

    let (pa, pb) = (free_port().await, free_port().await);
    let mx: Arc<dyn ReplySink> = Arc::new(Mx {
        a: pa,
        b: pb,
        relay: (stack.smtp_host.clone(), stack.smtp_port),
    });
    let escrow = sender.escrow();
    let a = broker(dir.path(), &da, pa, &pins, mx.clone(), &stack, escrow).await;
    let mut b = broker(dir.path(), &db, pb, &pins, mx.clone(), &stack, escrow).await;
    let journal = dir.path().join("journal-a");
    std::fs::create_dir_all(&journal).unwrap();
    let start_a = || {
        let watcher = watcher_a(
            &a,
            &da,
            &pins,
            mx.clone(),
            client.clone(),
            watcher_key.clone(),
            &journal,
        );
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let running = tokio::spawn(watcher.run(async move {
            let _ = stopped.await;
        }));
        (stop, running)
    };
    let (stop, running) = start_a();

    // Alice registers her address and the name `alice` at B, from her mailbox.
    let alice_key = ClaimSecret::random();
    let network = QtumNetwork::from_chain_id(stack.chain_id).expect("anvil runs as Qtum regtest");
    let alice_addr = qtum::qtum_sender_of_secret(&alice_key);
    let raw = example.sign(&mail(
        ALICE,
        "broker@brokerb.test",
        "register",
        "reg-1@example.org",
        &register(&stack, &alice_key, "brokerb.test", ALICE, Some("alice")),
    ));
    smtp(b.addr, ALICE, "broker@brokerb.test", &raw).await;
    until("B records the registration", async || {
        (b.book.mailbox_of(alice_addr).unwrap().as_deref() == Some(ALICE)).then_some(())
    })
    .await;
    assert_eq!(b.book.alias("alice").unwrap(), Some(alice_addr));
    let inbox = until("Alice hears she is registered", async || {
        let m = stack.mailbox(ALICE, "INBOX").await.unwrap();
        (!m.is_empty()).then_some(m)
    })
    .await;
    assert!(
        texts(&inbox)[0].contains("Registered at brokerb.test"),
        "{:?}",
        texts(&inbox)
    );

    // Bob's mailbox wallet at A: a deposit to him, claimed by replying "claim".
    let text = fund(&stack, &sender, &watcher_key, a.addr, BOB, &com, 2 * COIN).await;
    assert!(text.contains("landed in your mailbox wallet"), "{text}");
    let mut bob_balance = 2 * COIN - FEE;

    // --- Bob pays alice@brokerb.test: RESOLVE, RESOLVED, withdrawal, RECEIPT.
    let (pay_id, raw) = order(
        BOB,
        "pay 0.5 QTUM to alice@brokerb.test",
        "For the tickets\n",
        None,
    );
    smtp(a.addr, BOB, WATCHER_A, &com.sign(&raw)).await;
    let text = reply(&stack, BOB, &pay_id).await;
    let units = COIN / 2;
    bob_balance -= units;
    assert!(
        text.contains("Paid 0.5 QTUM from your mailbox wallet to alice@brokerb.test"),
        "{text}"
    );
    assert!(
        text.contains(&format!("it now holds {}", fmt(bob_balance))),
        "{text}"
    );
    assert!(
        text.contains(&qtum::encode_address(alice_addr, network)),
        "names the resolved address: {text}"
    );
    assert!(text.contains("brokerb.test was sent a receipt"), "{text}");
    let tx = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Transaction id: "))
        .expect("a transaction id")
        .trim()
        .to_string();
    assert_eq!(
        sender.chain().balance(alice_addr).await.unwrap(),
        U256::from(units),
        "the escrow paid Alice's address"
    );
    let inbox = until(
        "B checks the receipt on chain and tells Alice",
        async || {
            let m = stack.mailbox(ALICE, "INBOX").await.unwrap();
            (m.len() >= 2).then_some(m)
        },
    )
    .await;
    let notice = &texts(&inbox)[1];
    assert!(notice.contains("You have been paid 0.5 QTUM"), "{notice}");
    assert!(notice.contains(&tx), "{notice}");
    assert!(notice.contains(BOB), "names the payer: {notice}");
    assert!(
        notice.contains(&qtum::encode_address(alice_addr, network)),
        "{notice}"
    );
    assert!(
        notice.contains("brokera.test"),
        "names the payer's broker: {notice}"
    );
    // B signed it: Alice's provider can check it like any mail.
    assert!(
        springmail_watcher::testkit::dkim_passes(&inbox[1], &pins, "brokerb.test").await,
        "the notice carries brokerb.test's DKIM signature"
    );

    // A forged receipt for the same transaction (another amount) is refused, and the
    // true one sent again tells Alice nothing more.
    let receipt = |units: u128| ReceiptBlock {
        chain_id: stack.chain_id,
        amount: Amount::from_units(units, Asset::for_chain(stack.chain_id)).unwrap(),
        tx: tx.parse().unwrap(),
        to: alice_addr,
        from: BOB.into(),
    };
    let rejected = b.address_spool.root().join("Rejected");
    for (r, what) in [(receipt(units + 1), "forged"), (receipt(units), "repeated")] {
        let before = count(rejected.clone());
        a.desk.send_receipt(&r, "brokerb.test").await.unwrap();
        until(&format!("B files the {what} receipt"), async || {
            (count(rejected.clone()) > before).then_some(())
        })
        .await;
    }
    assert_eq!(stack.mailbox(ALICE, "INBOX").await.unwrap().len(), 2);

    // --- Carol registers her address at A; Bob pays <q-address>@brokera.test: the
    // address is paid and his text forwarded to her mailbox.
    let carol_key = ClaimSecret::random();
    let carol_addr = qtum::qtum_sender_of_secret(&carol_key);
    let carol_q = qtum::encode_address(carol_addr, network);
    let raw = net.sign(&mail(
        CAROL,
        "broker@brokera.test",
        "register",
        "reg-2@example.net",
        &register(&stack, &carol_key, "brokera.test", CAROL, Some("carol")),
    ));
    smtp(a.addr, CAROL, "broker@brokera.test", &raw).await;
    until("A records Carol's registration", async || {
        (a.book.mailbox_of(carol_addr).unwrap().as_deref() == Some(CAROL)).then_some(())
    })
    .await;
    let registered = until("Carol hears she is registered", async || {
        let m = stack.mailbox(CAROL, "INBOX").await.unwrap();
        (!m.is_empty()).then_some(m.len())
    })
    .await;
    let (pay_q, raw) = order(
        BOB,
        &format!("pay 0.2 QTUM to {carol_q}@brokera.test"),
        "The book you lent me, with thanks\n",
        None,
    );
    smtp(a.addr, BOB, WATCHER_A, &com.sign(&raw)).await;
    let text = reply(&stack, BOB, &pay_q).await;
    bob_balance -= COIN / 5;
    assert!(
        text.contains(&format!("it now holds {}", fmt(bob_balance))),
        "{text}"
    );
    assert!(text.contains("forwarded to its owner"), "{text}");
    assert_eq!(
        sender.chain().balance(carol_addr).await.unwrap(),
        U256::from(COIN / 5)
    );
    let inbox = until("Carol gets Bob's text", async || {
        let m = stack.mailbox(CAROL, "INBOX").await.unwrap();
        (m.len() > registered).then_some(m)
    })
    .await;
    let forwarded = texts(&inbox).pop().unwrap();
    assert!(forwarded.contains("The book you lent me"), "{forwarded}");
    assert!(forwarded.contains(BOB), "{forwarded}");
    assert!(
        forwarded.contains(&format!("{carol_q}@brokera.test")),
        "{forwarded}"
    );

    // --- Once Carol has a mailbox wallet at A, her alias pays into it.
    let text = fund(&stack, &sender, &watcher_key, a.addr, CAROL, &net, COIN).await;
    assert!(text.contains("landed in your mailbox wallet"), "{text}");
    let (pay_alias, raw) = order(BOB, "pay 0.1 QTUM to carol@brokera.test", "", None);
    smtp(a.addr, BOB, WATCHER_A, &com.sign(&raw)).await;
    let text = reply(&stack, BOB, &pay_alias).await;
    bob_balance -= COIN / 10;
    assert!(text.contains("landed in their mailbox wallet"), "{text}");
    assert!(
        text.contains(&format!("it now holds {}", fmt(bob_balance))),
        "{text}"
    );
    assert_eq!(
        sender.chain().balance(carol_addr).await.unwrap(),
        U256::from(COIN / 5),
        "not a withdrawal"
    );
    let (carol_bal, raw) = order(CAROL, "balance", "", None);
    smtp(a.addr, CAROL, WATCHER_A, &net.sign(&raw)).await;
    let text = reply(&stack, CAROL, &carol_bal).await;
    assert!(
        text.contains(&format!("holds {}.", fmt(COIN - FEE + COIN / 10))),
        "{text}"
    );

    // --- A name B does not know: nothing is paid, and Bob is told.
    let (pay_nobody, raw) = order(BOB, "pay 0.1 QTUM to nobody@brokerb.test", "", None);
    smtp(a.addr, BOB, WATCHER_A, &com.sign(&raw)).await;
    let text = reply(&stack, BOB, &pay_nobody).await;
    assert!(
        text.contains("does not know nobody@brokerb.test; nothing was paid"),
        "{text}"
    );
    assert!(text.contains("Nothing was moved."), "{text}");
    let (balance_id, raw) = order(BOB, "balance", "", None);
    smtp(a.addr, BOB, WATCHER_A, &com.sign(&raw)).await;
    let text = reply(&stack, BOB, &balance_id).await;
    assert!(
        text.contains(&format!("Your mailbox wallet holds {}.", fmt(bob_balance))),
        "{text}"
    );
    assert!(
        text.contains(&tx),
        "the movement to Alice is listed: {text}"
    );

    // --- A restart while the payment waits for B: the journaled request is resumed
    // and the payment made once. B's desk is down, so the RESOLVE waits in its spool.
    b.tasks[1].abort();
    let b_inbox = b.address_spool.root().join("INBOX");
    let (pay_again, raw) = order(BOB, "pay 0.1 QTUM to alice@brokerb.test", "", None);
    smtp(a.addr, BOB, WATCHER_A, &com.sign(&raw)).await;
    until("the RESOLVE waits at B", async || {
        (count(b_inbox.clone()) > 0).then_some(())
    })
    .await;
    let _ = stop.send(());
    running.await.unwrap().unwrap();
    assert!(stack.reply_to(BOB, &pay_again).await.unwrap().is_none());
    let (stop, running) = start_a();
    b.tasks.push(b.desk.clone().spawn());
    let text = reply(&stack, BOB, &pay_again).await;
    bob_balance -= COIN / 10;
    assert!(
        text.contains(&format!("it now holds {}", fmt(bob_balance))),
        "{text}"
    );
    assert_eq!(
        sender.chain().balance(alice_addr).await.unwrap(),
        U256::from(units + COIN / 10),
        "paid once"
    );
    until("Alice is told of the second payment", async || {
        (stack.mailbox(ALICE, "INBOX").await.unwrap().len() == 3).then_some(())
    })
    .await;

    // --- B does not answer in time: nothing is paid, and Bob is told.
    b.tasks.pop().unwrap().abort();
    let (pay_late, raw) = order(BOB, "pay 0.1 QTUM to alice@brokerb.test", "", None);
    smtp(a.addr, BOB, WATCHER_A, &com.sign(&raw)).await;
    let text = reply(&stack, BOB, &pay_late).await;
    assert!(
        text.contains(&format!(
            "did not answer within {} seconds",
            RESOLVE_TIMEOUT.as_secs()
        )),
        "{text}"
    );
    assert!(text.contains("nothing was paid"), "{text}");
    assert_eq!(
        sender.chain().balance(alice_addr).await.unwrap(),
        U256::from(units + COIN / 10)
    );

    let _ = stop.send(());
    running.await.unwrap().unwrap();
}

/// A deposit of `units` to `who` naming A's watcher, claimed into `who`'s mailbox
/// wallet at A by a "claim" reply to its notification; the watcher's answer.
async fn fund(
    stack: &Stack,
    sender: &SpringMail,
    watcher_key: &ClaimSecret,
    a: SocketAddr,
    who: &str,
    provider: &TestDomain,
    units: u128,
) -> String {
    let value = Amount::from_units(units, Asset::qtum()).unwrap();
    let mut req = SendRequest::native(who, value.clone(), Duration::from_secs(7 * 86_400));
    req.watcher = Some(watcher_key.address());
    let ticket = sender.send(req).await.unwrap();
    let notification = springmail_sdk::mail::notification(&springmail_sdk::mail::Notification {
        link: &ticket.link,
        from: "sender@example.org",
        sender_name: Some("A friend"),
        recipient: who,
        amount: &value,
        expiry: ticket.deposit.expiry,
        claim_host: None,
        watcher_email: Some(WATCHER_A),
        note: None,
        date: None,
    })
    .unwrap();
    let parsed = mail_parser::MessageParser::default()
        .parse(&notification.bytes)
        .unwrap();
    let quoted: String = parsed
        .body_text(0)
        .unwrap()
        .lines()
        .map(|l| format!("> {l}\n"))
        .collect();
    let (claim_id, raw) = order(
        who,
        &format!("Re: {}", parsed.subject().unwrap()),
        &format!("claim\n\nOn Mon, a friend wrote:\n{quoted}"),
        Some(&notification.message_id),
    );
    smtp(a, who, WATCHER_A, &provider.sign(&raw)).await;
    reply(stack, who, &claim_id).await
}

fn fmt(units: u128) -> String {
    format!("{} QTUM", springmail_sdk::amount::format_units(units, 8))
}
