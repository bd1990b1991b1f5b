use super::*;

fn book() -> (tempfile::TempDir, Arc<AddressBook>) {
    let dir = tempfile::tempdir().unwrap();
    let b = AddressBook::open(dir.path().join("addresses.sqlite")).unwrap();
    (dir, b)
}

#[test]
fn a_registration_is_recorded_once_and_an_older_or_conflicting_one_changes_nothing() {
    let (_d, b) = book();
    let alice = Address::repeat_byte(0xa1);
    let mallory = Address::repeat_byte(0x66);
    let r = b
        .register(alice, "alice@example.org", Some("alice"), 100, 1)
        .unwrap()
        .unwrap();
    assert_eq!(r.names, vec!["alice".to_string()]);
    // The same again is a no-op that succeeds (a message handled twice).
    assert!(b
        .register(alice, "alice@example.org", Some("alice"), 100, 2)
        .unwrap()
        .is_ok());
    // Older, or as old with another mailbox: refused.
    assert!(b
        .register(alice, "x@example.org", None, 99, 3)
        .unwrap()
        .is_err());
    assert!(b
        .register(alice, "x@example.org", None, 100, 3)
        .unwrap()
        .is_err());
    // Another address cannot take the name.
    let why = b
        .register(mallory, "m@example.org", Some("alice"), 200, 4)
        .unwrap()
        .unwrap_err();
    assert!(why.contains("another address"), "{why}");
    assert_eq!(b.mailbox_of(mallory).unwrap(), None);
    assert_eq!(b.counts().unwrap(), (1, 1));
    assert_eq!(b.alias("ALICE").unwrap(), Some(alice));
    assert_eq!(b.mailbox_of(alice).unwrap().unwrap(), "alice@example.org");
    assert_eq!(
        b.address_of_mailbox("alice@example.org").unwrap(),
        Some(alice)
    );
    // A newer one moves the mailbox.
    b.register(alice, "alice@new.example", None, 300, 5)
        .unwrap()
        .unwrap();
    assert_eq!(b.mailbox_of(alice).unwrap().unwrap(), "alice@new.example");
}

#[test]
fn answers_count_only_for_a_pending_request_of_that_name() {
    let (_d, b) = book();
    b.ask("r-1", "alice@brokerb.test", 1).unwrap();
    assert_eq!(b.resolution("r-1").unwrap(), Some(Resolution::Pending));
    let a = Address::repeat_byte(7);
    assert!(!b.answer("r-1", "bob@brokerb.test", Some(a), 2).unwrap());
    assert!(!b.answer("r-2", "alice@brokerb.test", Some(a), 2).unwrap());
    assert!(b.answer("r-1", "alice@brokerb.test", Some(a), 2).unwrap());
    assert!(!b.answer("r-1", "alice@brokerb.test", None, 3).unwrap());
    assert_eq!(b.resolution("r-1").unwrap(), Some(Resolution::Address(a)));
    assert_eq!(b.resolution("r-9").unwrap(), None);
}

#[test]
fn a_payment_is_reported_by_one_mail_only() {
    let (_d, b) = book();
    assert!(b.claim_receipt("0xab", "1.1", 1).unwrap());
    assert!(
        b.claim_receipt("0xab", "1.1", 2).unwrap(),
        "the same mail again"
    );
    assert!(!b.claim_receipt("0xab", "1.2", 3).unwrap());
}

/// One broker (brokerb.test) in process: ingress with the address layer, desk,
/// a memory relay, and a chain reader that knows one payment.
mod desk {
    use super::super::*;
    use crate::authenticate::PinnedRecords;
    use crate::dkim_domain::DkimDomain;
    use crate::receipt::NativePayment;
    use crate::reply::{DkimSigningKey, MemorySink};
    use crate::smtp_ingress::{serve_with_routes, IngressSettings};
    use alloy::primitives::{B256, U256};
    use springmail_sdk::keys::ClaimSecret;
    use springmail_sdk::markup::broker::Registration;

    const ALICE: &str = "alice@example.org";

    struct Payments(Vec<(B256, NativePayment)>);

    #[async_trait::async_trait]
    impl PaymentCheck for Payments {
        async fn native_payment(&self, tx: B256) -> Result<Option<NativePayment>, String> {
            Ok(self
                .0
                .iter()
                .find(|(t, _)| *t == tx)
                .map(|(_, p)| p.clone()))
        }
    }

    pub(super) struct World {
        pub addr: std::net::SocketAddr,
        pub desk: Arc<AddressDesk>,
        pub sink: MemorySink,
        pub example: DkimDomain,
        pub peer: DkimDomain,
        pub key: ClaimSecret,
        task: tokio::task::JoinHandle<()>,
        _dir: tempfile::TempDir,
    }

    impl Drop for World {
        fn drop(&mut self) {
            self.task.abort();
        }
    }

    pub(super) const PAID_TX: B256 = B256::repeat_byte(0xab);

    impl World {
        pub async fn new() -> Self {
            let dir = tempfile::tempdir().unwrap();
            let key = ClaimSecret::random();
            let example = DkimDomain::new("example.org");
            let peer = DkimDomain::new("brokera.test");
            let own = DkimDomain::new("brokerb.test");
            let mut pins = PinnedRecords::new();
            for d in [&example, &peer, &own] {
                d.pin(&mut pins);
            }
            let network = Some(QtumNetwork::Regtest);
            let book = AddressBook::open(dir.path().join("addresses.sqlite")).unwrap();
            let spool = Spool::open(dir.path().join("spool")).unwrap();
            let desk_spool = Spool::open(dir.path().join("addresses")).unwrap();
            let mut s = IngressSettings::new(
                "127.0.0.1:0".parse().unwrap(),
                vec!["brokerb.test".into()],
                vec!["watcher@brokerb.test".into()],
            );
            s.qtum_addresses = network;
            let routes = Routes {
                book: book.clone(),
                spool: desk_spool.clone(),
                network,
            };
            let (addr, task) =
                serve_with_routes(s, spool, DkimKeys::pinned(pins.clone()), Some(routes))
                    .await
                    .unwrap();
            let sink = MemorySink::new();
            let dkim = DkimSigningKey::from_pem(&own.key_pem, "brokerb key").unwrap();
            let paid_to = qtum::qtum_sender_of_secret(&key);
            let desk = AddressDesk::new(
                DeskSettings {
                    domains: vec!["brokerb.test".into()],
                    chain_id: 8890,
                    network,
                    reserved: vec!["watcher".into()],
                    max_message_bytes: 1 << 20,
                    poll_interval: Duration::from_secs(60),
                },
                book,
                &desk_spool,
                DkimKeys::pinned(pins),
                ReplyComposer::new(
                    "broker@brokerb.test",
                    "Spring Mail broker",
                    Some((dkim, "brokerb.test".into(), own.selector.clone())),
                ),
                Arc::new(sink.clone()),
                Arc::new(Payments(vec![(
                    PAID_TX,
                    NativePayment {
                        succeeded: true,
                        paid: vec![crate::receipt::Paid {
                            to: paid_to,
                            value: U256::from(50_000_000u64),
                        }],
                    },
                )])),
            )
            .unwrap();
            World {
                addr,
                desk: Arc::new(desk),
                sink,
                example,
                peer,
                key,
                task,
                _dir: dir,
            }
        }

        pub fn q(&self) -> String {
            qtum::encode_address(qtum::qtum_sender_of_secret(&self.key), QtumNetwork::Regtest)
        }

        /// Alice's REGISTER, signed by `signer`.
        pub fn register_text(&self, name: Option<&str>, signer: &ClaimSecret) -> String {
            let registration = Registration {
                chain_id: 8890,
                domain: "brokerb.test".into(),
                address: qtum::qtum_sender_of_secret(&self.key),
                mailbox: ALICE.into(),
                name: name.map(str::to_string),
                time: unix_now(),
            };
            RegisterBlock {
                signature: registration.sign(signer),
                registration,
            }
            .render()
        }

        /// Sends a mail over SMTP; the RCPT replies in order, and the final reply.
        pub async fn smtp(&self, from: &str, rcpts: &[&str], raw: &[u8]) -> Vec<String> {
            use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
            let (r, mut w) = tokio::net::TcpStream::connect(self.addr)
                .await
                .unwrap()
                .into_split();
            let mut r = BufReader::new(r);
            async fn read(r: &mut BufReader<tokio::net::tcp::OwnedReadHalf>) -> String {
                let mut all = String::new();
                loop {
                    let mut line = String::new();
                    r.read_line(&mut line).await.unwrap();
                    all.push_str(&line);
                    if line.as_bytes().get(3) != Some(&b'-') {
                        return all;
                    }
                }
            }
            read(&mut r).await;
            let mut out = Vec::new();
            async fn say(
                w: &mut tokio::net::tcp::OwnedWriteHalf,
                r: &mut BufReader<tokio::net::tcp::OwnedReadHalf>,
                line: String,
            ) -> String {
                w.write_all(line.as_bytes()).await.unwrap();
                read(r).await
            }
            macro_rules! cmd {
                ($line:expr) => {
                    say(&mut w, &mut r, $line).await
                };
            }
            cmd!("EHLO client.test\r\n".into());
            cmd!(format!("MAIL FROM:<{from}>\r\n"));
            let mut any = false;
            for rcpt in rcpts {
                let reply = cmd!(format!("RCPT TO:<{rcpt}>\r\n"));
                any |= reply.starts_with("250");
                out.push(reply);
            }
            if any {
                cmd!("DATA\r\n".into());
                let mut data = raw.to_vec();
                data.extend_from_slice(b"\r\n.\r\n");
                out.push(cmd!(String::from_utf8(data).unwrap()));
            }
            out
        }

        pub fn mail(&self, from: &str, to: &str, subject: &str, body: &str) -> Vec<u8> {
            MessageBuilder::new()
                .from(from)
                .to(to)
                .subject(subject)
                .message_id(format!("{}@test", short_hash(body.as_bytes())))
                .text_body(body.to_string())
                .write_to_vec()
                .unwrap()
        }

        pub fn sent_text(&self) -> Vec<(String, String)> {
            self.sink
                .sent()
                .iter()
                .map(|m| {
                    // The headers as sent, then the body decoded.
                    let raw = String::from_utf8_lossy(&m.bytes).into_owned();
                    let head = raw.split("\r\n\r\n").next().unwrap_or("").to_string();
                    let body = mail_parser::MessageParser::default()
                        .parse(&m.bytes)
                        .and_then(|p| p.body_text(0).map(|t| t.into_owned()))
                        .unwrap_or_default();
                    (m.rcpt.clone(), format!("{head}\r\n\r\n{body}"))
                })
                .collect()
        }
    }

    #[tokio::test]
    async fn registration_with_a_bad_signature_changes_nothing_and_says_why() {
        let w = World::new().await;
        let other = ClaimSecret::random();
        let raw = w.example.sign(&w.mail(
            ALICE,
            "broker@brokerb.test",
            "register",
            &w.register_text(Some("alice"), &other),
        ));
        let r = w.smtp(ALICE, &["broker@brokerb.test"], &raw).await;
        assert!(r.last().unwrap().starts_with("250"), "{r:?}");
        let report = w.desk.run_once().await.unwrap();
        assert_eq!((report.handled, report.sent), (1, 1), "{report:?}");
        assert_eq!(w.desk.book().counts().unwrap(), (0, 0));
        let sent = w.sent_text();
        assert_eq!(sent[0].0, ALICE);
        assert!(
            sent[0].1.contains("signature is not by the key"),
            "{}",
            sent[0].1
        );
        assert!(sent[0].1.contains("Nothing was changed"), "{}", sent[0].1);
        // Mail for the address is still refused at RCPT.
        let q = format!("{}@brokerb.test", w.q());
        let r = w
            .smtp("bob@example.org", &[&q], b"Subject: x\r\n\r\nx")
            .await;
        assert!(
            r[0].starts_with("550 5.1.1") && r[0].contains("no mailbox registered"),
            "{r:?}"
        );

        // A phone-number name is refused too, and changes nothing.
        let phone = w
            .register_text(Some("x"), &w.key)
            .replace("Name: x", "Name: +41791234567");
        let raw = w
            .example
            .sign(&w.mail(ALICE, "broker@brokerb.test", "register phone", &phone));
        w.smtp(ALICE, &["broker@brokerb.test"], &raw).await;
        w.desk.run_once().await.unwrap();
        assert_eq!(w.desk.book().counts().unwrap(), (0, 0));
        assert!(
            w.sent_text()[1].1.contains("phone-number"),
            "{}",
            w.sent_text()[1].1
        );

        // Signed by the owner, but not sent from the mailbox it names.
        let good = w.register_text(Some("alice"), &w.key);
        let raw = w.example.sign(&w.mail(
            "mallory@example.org",
            "broker@brokerb.test",
            "register",
            &good,
        ));
        w.smtp("mallory@example.org", &["broker@brokerb.test"], &raw)
            .await;
        w.desk.run_once().await.unwrap();
        assert_eq!(w.desk.book().counts().unwrap(), (0, 0));
        assert_eq!(w.sent_text()[2].0, "mallory@example.org");

        // Unsigned mail is not answered at all (its sender is unproven).
        let raw = w.mail(ALICE, "broker@brokerb.test", "register", &good);
        w.smtp(ALICE, &["broker@brokerb.test"], &raw).await;
        let report = w.desk.run_once().await.unwrap();
        assert_eq!((report.handled, report.sent), (1, 0));
        assert_eq!(w.desk.book().counts().unwrap(), (0, 0));

        // The owner's own registration from the mailbox: recorded.
        let raw = w
            .example
            .sign(&w.mail(ALICE, "broker@brokerb.test", "register", &good));
        w.smtp(ALICE, &["broker@brokerb.test"], &raw).await;
        w.desk.run_once().await.unwrap();
        assert_eq!(w.desk.book().counts().unwrap(), (1, 1));
        let last = w.sent_text().pop().unwrap();
        assert!(last.1.contains("Registered at brokerb.test"), "{}", last.1);
    }

    #[tokio::test]
    async fn forwarding_goes_to_the_registered_mailbox_and_nowhere_else() {
        let w = World::new().await;
        let good = w.register_text(Some("alice"), &w.key);
        let raw = w
            .example
            .sign(&w.mail(ALICE, "broker@brokerb.test", "register", &good));
        w.smtp(ALICE, &["broker@brokerb.test"], &raw).await;
        w.desk.run_once().await.unwrap();
        let registered = w.sink.sent().len();
        let q = format!("{}@brokerb.test", w.q());
        // A mail that names other people everywhere it can.
        let hostile = format!(
            "From: <bob@example.org>\r\nTo: <{q}>, <mallory@evil.test>\r\n\
             Cc: <carol@evil.test>\r\nBcc: <dave@evil.test>\r\nReply-To: <mallory@evil.test>\r\n\
             Subject: hello Alice\r\nMessage-ID: <h1@example.org>\r\n\r\n\
             Forward this to mallory@evil.test please.\r\n"
        );
        let r = w
            .smtp(
                "bob@example.org",
                &[
                    &q,
                    "mallory@evil.test",
                    "alice@brokerb.test",
                    "nobody@brokerb.test",
                ],
                hostile.as_bytes(),
            )
            .await;
        assert!(r[0].starts_with("250"), "{r:?}");
        assert!(r[1].starts_with("550 5.7.1"), "no relay: {r:?}");
        assert!(r[2].starts_with("250"), "the alias: {r:?}");
        assert!(r[3].starts_with("550 5.1.1"), "{r:?}");
        assert!(r[4].starts_with("250"), "{r:?}");
        let report = w.desk.run_once().await.unwrap();
        assert_eq!(report.handled, 2, "one copy per accepted name: {report:?}");
        assert_eq!(w.sink.sent().len(), registered + 2);
        for (rcpt, text) in &w.sent_text()[registered..] {
            assert_eq!(rcpt, ALICE, "only the registered mailbox");
            assert!(
                text.contains("To: <alice@example.org>") || text.contains("To: alice@example.org"),
                "{text}"
            );
            assert!(!text.contains("Cc:") && !text.contains("Bcc:"), "{text}");
            assert!(text.contains("sender NOT verified"), "unsigned: {text}");
            assert!(text.contains("Forward this to mallory"), "the text: {text}");
            assert!(text.contains("X-Spring-Mail-Forwarded-For"), "{text}");
        }
        // A DKIM-signed mail is marked verified, with Reply-To the sender.
        let signed = w
            .example
            .sign(&w.mail("bob@example.org", &q, "signed", "hi Alice"));
        w.smtp("bob@example.org", &[&q], &signed).await;
        w.desk.run_once().await.unwrap();
        let last = w.sent_text().pop().unwrap();
        assert_eq!(last.0, ALICE);
        assert!(last.1.contains("sender verified by DKIM"), "{}", last.1);
        assert!(last.1.contains("Reply-To: <bob@example.org>"), "{}", last.1);
    }

    /// The spool keeps a message until what it caused reached the relay: a relay
    /// that is down delays the forward, loses nothing, and sends it once.
    #[tokio::test]
    async fn a_relay_outage_delays_a_forward_and_loses_nothing() {
        let w = World::new().await;
        let good = w.register_text(None, &w.key);
        let raw = w
            .example
            .sign(&w.mail(ALICE, "broker@brokerb.test", "register", &good));
        w.smtp(ALICE, &["broker@brokerb.test"], &raw).await;
        w.desk.run_once().await.unwrap();
        let before = w.sink.sent().len();
        let q = format!("{}@brokerb.test", w.q());
        w.sink.fail_with(Some(crate::reply::SinkError {
            message: "451 try later".into(),
            transient: true,
        }));
        let hello = w.mail("bob@example.org", &q, "hello", "are you there?");
        let r = w.smtp("bob@example.org", &[&q], &hello).await;
        assert!(r[1].starts_with("250"), "{r:?}");
        for _ in 0..2 {
            let report = w.desk.run_once().await.unwrap();
            assert_eq!((report.handled, report.deferred), (0, 1), "{report:?}");
        }
        assert_eq!(w.sink.sent().len(), before);
        w.sink.fail_with(None);
        let report = w.desk.run_once().await.unwrap();
        assert_eq!((report.handled, report.sent), (1, 1), "{report:?}");
        assert!(w.desk.run_once().await.unwrap() == DeskReport::default());
        let (to, text) = w.sent_text().pop().unwrap();
        assert_eq!(to, ALICE);
        assert!(text.contains("are you there?"), "{text}");
        assert_eq!(w.sink.sent().len(), before + 1);
    }

    #[tokio::test]
    async fn unknown_names_are_refused_at_rcpt_and_resolve_as_unknown() {
        let w = World::new().await;
        let q = format!("{}@brokerb.test", w.q());
        let r = w
            .smtp(
                "bob@example.org",
                &[
                    &q,
                    "nobody@brokerb.test",
                    "+41791234567@brokerb.test",
                    "watcher@brokerb.test",
                ],
                b"Subject: x\r\n\r\nx",
            )
            .await;
        assert!(
            r[0].starts_with("550 5.1.1") && r[0].contains("no mailbox registered"),
            "{r:?}"
        );
        assert!(r[1].starts_with("550 5.1.1 No such mailbox"), "{r:?}");
        assert!(
            r[2].starts_with("550 5.1.1") && r[2].contains("phone-number"),
            "{r:?}"
        );
        assert!(r[3].starts_with("250"), "the watcher's own mailbox: {r:?}");
        // Our own names resolve from the book, without mail.
        let own = w.desk.resolve(&q).await.unwrap();
        assert_eq!(
            w.desk.book().resolution(&own).unwrap(),
            Some(Resolution::Address(qtum::qtum_sender_of_secret(&w.key)))
        );
        let none = w.desk.resolve("nobody@BrokerB.test").await.unwrap();
        assert_eq!(
            w.desk.book().resolution(&none).unwrap(),
            Some(Resolution::Unknown)
        );
        assert!(w.sink.sent().is_empty());
        // A peer broker asks: a Qtum address resolves to itself, an unknown alias
        // to `unknown`, a name at another domain to `unknown`.
        for (name, expect) in [
            (q.clone(), format!("Address: {}", w.q())),
            (
                "nobody@brokerb.test".to_string(),
                "Address: unknown".to_string(),
            ),
            (
                "alice@elsewhere.test".to_string(),
                "Address: unknown".to_string(),
            ),
        ] {
            let block = ResolveBlock {
                name: name.clone(),
                request: "r-0001".into(),
            }
            .render();
            let raw = w.peer.sign(&w.mail(
                "broker@brokera.test",
                "broker@brokerb.test",
                "resolve",
                &block,
            ));
            w.smtp("broker@brokera.test", &["broker@brokerb.test"], &raw)
                .await;
            w.desk.run_once().await.unwrap();
            let (to, text) = w.sent_text().pop().unwrap();
            assert_eq!(to, "broker@brokera.test");
            assert!(
                text.contains("BEGIN BISMTP RESOLVED") && text.contains(&expect),
                "{name}: {text}"
            );
            assert!(
                !text.contains("\nAuto-Submitted:"),
                "a BiSMTP answer is not an auto-reply: {text}"
            );
        }
    }

    #[tokio::test]
    async fn a_receipt_is_believed_only_as_the_chain_says() {
        let w = World::new().await;
        let good = w.register_text(None, &w.key);
        let raw = w
            .example
            .sign(&w.mail(ALICE, "broker@brokerb.test", "register", &good));
        w.smtp(ALICE, &["broker@brokerb.test"], &raw).await;
        w.desk.run_once().await.unwrap();
        let receipt = |amount: &str, tx: B256| {
            format!(
                "-----BEGIN BISMTP RECEIPT-----\nVersion: 1\nChain: 8890\nAmount: {amount}\nTx: {tx}\nTo: {}\nFrom: bob@brokera.test\n-----END BISMTP RECEIPT-----\n",
                w.q()
            )
        };
        let send = |body: String, n: &str| {
            w.peer
                .sign(&w.mail("broker@brokera.test", "broker@brokerb.test", n, &body))
        };
        for (body, why) in [
            (receipt("0.4 QTUM", PAID_TX), "did not pay"),
            (receipt("0.5 QTUM", B256::repeat_byte(1)), "not mined"),
        ] {
            w.smtp(
                "broker@brokera.test",
                &["broker@brokerb.test"],
                &send(body, why),
            )
            .await;
            w.desk.run_once().await.unwrap();
            let (to, text) = w.sent_text().pop().unwrap();
            assert_eq!(
                to, "broker@brokera.test",
                "refused to the sender, Alice hears nothing"
            );
            assert!(text.contains(why), "{text}");
        }
        w.smtp(
            "broker@brokera.test",
            &["broker@brokerb.test"],
            &send(receipt("0.5 QTUM", PAID_TX), "paid"),
        )
        .await;
        w.desk.run_once().await.unwrap();
        let (to, text) = w.sent_text().pop().unwrap();
        assert_eq!(to, ALICE);
        assert!(text.contains("You have been paid 0.5 QTUM"), "{text}");
        // The same payment reported again by another mail tells no one.
        let before = w.sink.sent().len();
        w.smtp(
            "broker@brokera.test",
            &["broker@brokerb.test"],
            &send(receipt("0.5 QTUM", PAID_TX), "again"),
        )
        .await;
        let report = w.desk.run_once().await.unwrap();
        assert_eq!((report.handled, w.sink.sent().len()), (1, before));
    }
}

#[tokio::test]
async fn wallet_payments_route_our_names_from_the_book_and_peer_names_by_resolve() {
    use desk::World;
    const ALICE: &str = "alice@example.org";
    let w = World::new().await;
    let names = PayNames::new(
        w.desk.clone(),
        vec!["BrokerA.test".into()],
        Duration::from_secs(30),
    );
    let alice = qtum::qtum_sender_of_secret(&w.key);
    let q = format!("{}@brokerb.test", w.q());
    // Before registration: the q-address is payable, no mailbox; the alias unknown.
    assert_eq!(
        names.route(&q).unwrap(),
        PayRoute::Local {
            address: alice,
            mailbox: None
        }
    );
    assert_eq!(
        names.route("alice@brokerb.test").unwrap(),
        PayRoute::UnknownLocal
    );
    let raw = w.example.sign(&w.mail(
        ALICE,
        "broker@brokerb.test",
        "register",
        &w.register_text(Some("alice"), &w.key),
    ));
    w.smtp(ALICE, &["broker@brokerb.test"], &raw).await;
    w.desk.run_once().await.unwrap();
    let local = PayRoute::Local {
        address: alice,
        mailbox: Some(ALICE.into()),
    };
    assert_eq!(names.route(&q).unwrap(), local);
    assert_eq!(names.route("Alice@BrokerB.test").unwrap(), local);
    // A lowercased q-address is no address (base58 is case-sensitive).
    assert_eq!(
        names.route(&q.to_ascii_lowercase()).unwrap(),
        PayRoute::UnknownLocal
    );
    // Reserved local parts are never payees.
    for n in ["broker@brokerb.test", "watcher@brokerb.test"] {
        assert_eq!(names.route(n).unwrap(), PayRoute::UnknownLocal, "{n}");
    }
    assert_eq!(
        names.route("carol@brokera.test").unwrap(),
        PayRoute::Peer("brokera.test".into())
    );
    assert_eq!(names.route("carol@example.net").unwrap(), PayRoute::Email);
    // The forwarded text goes to the registered mailbox, marked, from the broker.
    let m = names
        .forward_note(&q, ALICE, "bob@example.com", "pay 1 QTUM", "Thanks!", "s1")
        .unwrap();
    assert_eq!(m.rcpt, ALICE);
    let text = String::from_utf8_lossy(&m.bytes).to_string();
    assert!(text.contains("Thanks!"), "{text}");
    assert!(text.contains("X-Spring-Mail-Forwarded-For"), "{text}");
    // A RESOLVE journaled under the caller's id, asked twice, is one request.
    names
        .desk()
        .resolve_as("carol@brokera.test", "r-0001")
        .await
        .unwrap();
    names
        .desk()
        .resolve_as("carol@brokera.test", "r-0001")
        .await
        .unwrap();
    assert!(matches!(
        names.answer("r-0001").unwrap(),
        Some((Resolution::Pending, _))
    ));
    assert_eq!(names.answer("r-none").unwrap(), None);
    assert_eq!(
        w.sink.sent().len(),
        3,
        "the registration answer and two RESOLVEs"
    );
    assert_eq!(w.sink.sent()[2].rcpt, "broker@brokera.test");
}

#[test]
fn only_the_escrows_withdrawals_to_an_address_count_as_payments() {
    use alloy::primitives::{B256, U256};
    use alloy::sol_types::SolEvent;
    use springmail_sdk::contract::EmailEscrow;
    let escrow = Address::repeat_byte(0xe5);
    let payee = Address::repeat_byte(0x5a);
    let moved = |emitter: Address, to: B256| {
        let data = EmailEscrow::Moved {
            from: B256::repeat_byte(0xac),
            to,
            amount: U256::from(50_000_000u64),
            nonce: U256::from(3u64),
            mailHash: B256::repeat_byte(0x11),
        }
        .encode_log_data();
        alloy::primitives::Log {
            address: emitter,
            data,
        }
    };
    let read = escrow_withdrawals(escrow);
    assert_eq!(
        read(&moved(escrow, payee.into_word())),
        Some(crate::receipt::Paid {
            to: payee,
            value: U256::from(50_000_000u64)
        })
    );
    // Another contract emitting the same event pays nothing.
    assert_eq!(
        read(&moved(Address::repeat_byte(1), payee.into_word())),
        None
    );
    // A move to another account is no payment to an address.
    assert_eq!(read(&moved(escrow, B256::repeat_byte(0xbb))), None);
}

#[tokio::test]
async fn a_wallet_withdrawal_is_read_through_the_sdk_chain_as_on_qtum() {
    use crate::receipt::{ChainPayments, NativePayment, Paid, PaymentCheck};
    use alloy::primitives::{B256, U256};
    use springmail_sdk::accounts::{AccountId, Limits, Movement};
    use springmail_sdk::amount::{Amount, Asset};
    use springmail_sdk::chain::embedded::EmbeddedChain;
    use springmail_sdk::client::{SendRequest, SpringMail};
    let chain = EmbeddedChain::new(8890);
    let broker = Address::repeat_byte(0xb0);
    chain.fund(broker, U256::from(1_000_000_000_000u64));
    let client = SpringMail::deploy(Arc::new(chain.as_account(broker)))
        .await
        .unwrap();
    let escrow = client.escrow();
    let account = AccountId::commit(
        "bob@example.com",
        &springmail_sdk::email::Salt::from_bytes([7; 16]),
    )
    .unwrap();
    let limits = Limits::new(1_000_000_000, 1_000_000_000).unwrap();
    client.open_account(account, broker, limits).await.unwrap();
    let amount = Amount::parse("2 QTUM", &Asset::qtum()).unwrap();
    let mut req = SendRequest::native(
        "bob@example.com",
        amount,
        std::time::Duration::from_secs(86_400),
    );
    req.watcher = Some(broker);
    let ticket = client.send(req).await.unwrap();
    let mv = |nonce| Movement {
        nonce,
        mail_hash: B256::repeat_byte(nonce as u8),
    };
    client
        .claim_into(&ticket.link, &ticket.deposit, None, account, 0, mv(1))
        .await
        .unwrap();
    let payee = Address::repeat_byte(0x5a);
    let tx = client
        .withdraw_from(account, payee, 50_000_000, mv(2))
        .await
        .unwrap()
        .tx_hash;

    let reader = ChainPayments::new(Arc::new(chain.as_account(broker)))
        .with_log_reader(escrow_withdrawals(escrow));
    assert_eq!(
        reader.native_payment(tx).await.unwrap(),
        Some(NativePayment {
            succeeded: true,
            paid: vec![Paid {
                to: payee,
                value: U256::from(50_000_000u64)
            }],
        })
    );
    // Read as another escrow's: the same transaction paid nothing.
    let other = ChainPayments::new(Arc::new(chain.as_account(broker)))
        .with_log_reader(escrow_withdrawals(Address::repeat_byte(1)));
    assert!(other
        .native_payment(tx)
        .await
        .unwrap()
        .unwrap()
        .paid
        .is_empty());
    assert_eq!(
        reader.native_payment(B256::repeat_byte(9)).await.unwrap(),
        None
    );
}

#[test]
fn the_delivered_to_line_reads_back() {
    let line = delivered_to_line("q1@broker.test");
    let raw = format!("{line}Subject: x\r\n\r\nbody");
    assert_eq!(delivered_to(raw.as_bytes()).unwrap(), "q1@broker.test");
    assert_eq!(delivered_to(b"Subject: x\r\n"), None);
}
