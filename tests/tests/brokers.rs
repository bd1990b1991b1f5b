//! Two brokers on one dev stack: brokera.test and brokerb.test, each a watcher's SMTP
//! ingress with its address layer (book, address spool, desk), on one anvil; Alice's
//! own mailbox is alice@example.org in the stack's dovecot.
//!
//! Alice registers her Qtum address (and the alias `alice`) at broker B by a
//! DKIM-signed mail from her mailbox. Broker A resolves alice@brokerb.test with a
//! BiSMTP RESOLVE to B and gets her address in B's RESOLVED. A payment of that address
//! is made on chain, then A sends B a RECEIPT; B checks the transaction on anvil and
//! tells Alice in her mailbox. A forged receipt (another amount) tells her nothing.
//!
//! Mail between the brokers goes straight to the other's ingress: [`Mx`] plays the
//! MX lookup an ordinary relay makes (brokera.test → A's port, brokerb.test → B's),
//! and everything else goes to the stack's SMTP relay (dovecot).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use alloy::primitives::U256;
use async_trait::async_trait;
use springmail_e2e::Stack;
use springmail_sdk::amount::{Amount, Asset};
use springmail_sdk::chain::TxRequest;
use springmail_sdk::keys::ClaimSecret;
use springmail_sdk::markup::broker::{ReceiptBlock, RegisterBlock, Registration};
use springmail_sdk::qtum::{self, QtumNetwork};
use springmail_watcher::addresses::{AddressBook, AddressDesk, DeskSettings, Resolution, Routes};
use springmail_watcher::receipt::EvmPayments;
use springmail_watcher::reply::{DkimSigningKey, OutgoingMail, ReplyComposer, SinkError};
use springmail_watcher::smtp_ingress::{serve_with_routes, IngressSettings, Spool};
use springmail_watcher::testkit::TestDomain;
use springmail_watcher::{DkimKeys, PinnedRecords, ReplySink};

const ALICE: &str = "alice@example.org";

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
        spool,
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
            Arc::new(EvmPayments::new(&stack.anvil_url).unwrap()),
        )
        .unwrap(),
    );
    let desk_task = desk.clone().spawn();
    Broker {
        book,
        desk,
        addr,
        address_spool,
        tasks: vec![ingress, desk_task],
    }
}

async fn until<T>(what: &str, mut f: impl AsyncFnMut() -> Option<T>) -> T {
    let t0 = Instant::now();
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(t0.elapsed() < Duration::from_secs(20), "timed out: {what}");
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
async fn a_pays_alice_at_b_resolve_then_receipt_checked_on_chain() {
    let stack = Stack::from_env().unwrap();
    stack.clear_inbox(ALICE).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (example, da, db) = (
        TestDomain::new("example.org"),
        TestDomain::new("brokera.test"),
        TestDomain::new("brokerb.test"),
    );
    let mut pins = PinnedRecords::new();
    for d in [&example, &da, &db] {
        d.pin(&mut pins);
    }
    let (pa, pb) = (free_port().await, free_port().await);
    let mx: Arc<dyn ReplySink> = Arc::new(Mx {
        a: pa,
        b: pb,
        relay: (stack.smtp_host.clone(), stack.smtp_port),
    });
    let a = broker(dir.path(), &da, pa, &pins, mx.clone(), &stack).await;
    let b = broker(dir.path(), &db, pb, &pins, mx.clone(), &stack).await;

    // Alice registers her address and the name `alice` at B, from her mailbox.
    let alice_key = ClaimSecret::random();
    let network = QtumNetwork::from_chain_id(stack.chain_id).expect("anvil runs as Qtum regtest");
    let alice_addr = qtum::qtum_sender_of_secret(&alice_key);
    let registration = Registration {
        chain_id: stack.chain_id,
        domain: "brokerb.test".into(),
        address: alice_addr,
        mailbox: ALICE.into(),
        name: Some("alice".into()),
        time: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    };
    let block = RegisterBlock {
        signature: registration.sign(&alice_key),
        registration,
    }
    .render();
    let raw = example.sign(&mail(
        ALICE,
        "broker@brokerb.test",
        "register",
        "reg-1@example.org",
        &block,
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

    // A resolves alice@brokerb.test: B answers with her address.
    let request = a.desk.resolve("alice@brokerb.test").await.unwrap();
    let resolved = until("B's RESOLVED reaches A", async || {
        match a.book.resolution(&request).unwrap() {
            Some(Resolution::Pending) | None => None,
            Some(r) => Some(r),
        }
    })
    .await;
    assert_eq!(resolved, Resolution::Address(alice_addr));
    let Resolution::Address(pay_to) = resolved else {
        unreachable!()
    };
    // A name B does not know resolves as unknown.
    let unknown = a.desk.resolve("nobody@brokerb.test").await.unwrap();
    let r = until("B answers unknown", async || {
        match a.book.resolution(&unknown).unwrap() {
            Some(Resolution::Pending) | None => None,
            Some(r) => Some(r),
        }
    })
    .await;
    assert_eq!(r, Resolution::Unknown);

    // The payment. An ordinary transfer from a funded test account stands in for the
    // mailbox wallet's PAY at A (built elsewhere; it will send this same RECEIPT).
    let (_, payer) = stack.funded_chain(10u128.pow(18)).await.unwrap();
    let units = 50_000_000u128; // 0.5 QTUM
    let before = payer.balance(pay_to).await.unwrap();
    let paid = payer
        .send(TxRequest {
            to: Some(pay_to),
            data: Default::default(),
            value: U256::from(units),
            gas_limit: Some(21_000),
        })
        .await
        .unwrap();
    assert!(paid.succeeded());
    assert_eq!(
        payer.balance(pay_to).await.unwrap() - before,
        U256::from(units)
    );

    // A forged receipt first (another amount): B refuses it, Alice hears nothing.
    let receipt = |units: u128| ReceiptBlock {
        chain_id: stack.chain_id,
        amount: Amount::from_units(units, Asset::for_chain(stack.chain_id)).unwrap(),
        tx: paid.tx_hash,
        to: pay_to,
        from: "bob@brokera.test".into(),
    };
    let rejected = b.address_spool.root().join("Rejected");
    let rejected_before = count(rejected.clone());
    a.desk
        .send_receipt(&receipt(units + 1), "brokerb.test")
        .await
        .unwrap();
    until("B refuses the forged receipt", async || {
        (count(rejected.clone()) > rejected_before).then_some(())
    })
    .await;
    assert_eq!(stack.mailbox(ALICE, "INBOX").await.unwrap().len(), 1);

    // The true receipt: checked on anvil, Alice is told.
    a.desk
        .send_receipt(&receipt(units), "brokerb.test")
        .await
        .unwrap();
    let inbox = until("Alice hears she was paid", async || {
        let m = stack.mailbox(ALICE, "INBOX").await.unwrap();
        (m.len() >= 2).then_some(m)
    })
    .await;
    assert_eq!(inbox.len(), 2, "one notice, not one per receipt");
    let notice = &texts(&inbox)[1];
    assert!(notice.contains("You have been paid 0.5 QTUM"), "{notice}");
    assert!(notice.contains(&paid.tx_hash.to_string()), "{notice}");
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
}
