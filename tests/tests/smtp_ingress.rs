//! The watcher as the MX, over the dev stack: a real Postfix (the stack's `mta`)
//! relays mail for broker.test to the watcher's SMTP ingress, which runs in a process
//! of its own (`springmail-e2e-watch`, the watcher from a config file with
//! `[smtp_ingress]`), so that a test can SIGKILL it mid-DATA and start it again.
//!
//! The ingress listens on the port the stack chose (`SPRINGMAIL_INGRESS_PORT`), which
//! is where Postfix's transport map sends broker.test mail.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use alloy::primitives::{Address, U256};
use springmail_e2e::{fresh_address, Stack};
use springmail_sdk::client::{DepositStatus, SendRequest, SpringMail, Ticket};
use springmail_sdk::keys::ClaimSecret;
use springmail_sdk::mail::{claim_mail, ClaimMail};
use springmail_watcher::journal::{Journal, OutcomeKind};
use springmail_watcher::testkit::{claim_block, TestDomain};

const WATCHER: &str = "watcher@broker.test";
const BOB: &str = "bob@example.com";
const AMOUNT: u128 = 150_000_000;
const FEE: u128 = 100_000;

/// One ingress port and one Postfix queue: one scenario at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

struct Mta {
    port: u16,
    conf: String,
    ingress_port: u16,
}

/// Postfix's coordinates, or `None` (SKIPPED) when the stack has no `mta` (not root).
fn mta() -> Option<Mta> {
    let port = std::env::var("SPRINGMAIL_POSTFIX_PORT")
        .ok()?
        .parse()
        .ok()?;
    let conf = std::env::var("SPRINGMAIL_POSTFIX_CONF").ok()?;
    let ingress_port = std::env::var("SPRINGMAIL_INGRESS_PORT")
        .expect("SPRINGMAIL_INGRESS_PORT: run through scripts/test")
        .parse()
        .unwrap();
    Some(Mta {
        port,
        conf,
        ingress_port,
    })
}

impl Mta {
    fn postfix(&self, cmd: &str, args: &[&str]) -> String {
        let out = Command::new(cmd)
            .arg("-c")
            .arg(&self.conf)
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("{cmd}: {e}"));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Empties the queue (an earlier run's deferred mail).
    fn purge(&self) {
        self.postfix("postsuper", &["-d", "ALL"]);
    }

    fn queue_is_empty(&self) -> bool {
        self.postfix("postqueue", &["-j"]).trim().is_empty()
    }

    /// Submits a message to Postfix over SMTP (as a provider's MTA receives it).
    async fn submit(&self, from: &str, to: &str, bytes: &[u8]) -> anyhow::Result<()> {
        use lettre::AsyncTransport;
        let transport =
            lettre::AsyncSmtpTransport::<lettre::Tokio1Executor>::builder_dangerous("127.0.0.1")
                .port(self.port)
                .timeout(Some(Duration::from_secs(30)))
                .build();
        let envelope = lettre::address::Envelope::new(Some(from.parse()?), vec![to.parse()?])?;
        transport.send_raw(&envelope, bytes).await?;
        Ok(())
    }
}

struct World {
    stack: Stack,
    mta: Mta,
    sender: SpringMail,
    watcher_key: Arc<ClaimSecret>,
    example: TestDomain,
    dir: tempfile::TempDir,
    config: PathBuf,
}

impl World {
    /// With `tls`, the ingress offers STARTTLS with a self-signed certificate (made
    /// with openssl; `false` back when openssl cannot make one).
    async fn new(mta: Mta, tls: bool) -> (Self, bool) {
        let stack = Stack::from_env().unwrap();
        stack.clear_inbox(BOB).await.unwrap();
        mta.purge();
        let (_, sender_chain) = stack.funded_chain(10u128.pow(21)).await.unwrap();
        let sender = SpringMail::deploy(sender_chain).await.unwrap();
        let (watcher_key, _) = stack.funded_chain(10u128.pow(20)).await.unwrap();
        let example = TestDomain::new("example.com");
        let broker = TestDomain::new("broker.test");
        let dir = tempfile::tempdir().unwrap();
        let mut pins = serde_json::Map::new();
        for d in [&example, &broker] {
            pins.insert(d.record_name(), d.record.clone().into());
        }
        let pins = serde_json::Value::Object(pins);
        std::fs::write(dir.path().join("pins.json"), pins.to_string()).unwrap();
        std::fs::write(dir.path().join("broker.pem"), &broker.key_pem).unwrap();
        let (cert, key) = (dir.path().join("mx.crt"), dir.path().join("mx.key"));
        let tls = tls
            && Command::new("openssl")
                .args([
                    "req",
                    "-x509",
                    "-newkey",
                    "ec",
                    "-pkeyopt",
                    "ec_paramgen_curve:P-256",
                ])
                .args([
                    "-nodes",
                    "-days",
                    "1",
                    "-subj",
                    "/CN=broker.test",
                    "-keyout",
                ])
                .arg(&key)
                .arg("-out")
                .arg(&cert)
                .output()
                .is_ok_and(|o| o.status.success());
        let tls_keys = if tls {
            format!(
                "tls_cert = \"{}\"\ntls_key = \"{}\"\n",
                cert.display(),
                key.display()
            )
        } else {
            String::new()
        };
        let config = dir.path().join("watcher.toml");
        std::fs::write(
            &config,
            format!(
                r#"data_dir = "{data}"

# No [imap]: the ingress's spool is the only door.
[smtp]
host = "127.0.0.1"
port = {smtp_port}
security = "plain"
from = "{WATCHER}"

[dkim]
domain = "broker.test"
selector = "sm"
key_file = "broker.pem"

[dns]
resolver = "pinned"
pinned_file = "pins.json"

[chain]
url = "{anvil}"
chain_id = {chain_id}
escrow = "{escrow}"
start_block = {start_block}
receipt_timeout_secs = 30
resend_guard_secs = 2

[watcher_key]
env = "SPRINGMAIL_E2E_WATCHER_KEY"

[fees]
native = "0.001"
min_time_left_secs = 60

[smtp_ingress]
listen = "127.0.0.1:{ingress}"
domains = ["broker.test"]
recipients = ["{WATCHER}"]
qtum_addresses = true
addresses = true
max_message_bytes = 65536
{tls_keys}"#,
                data = dir.path().join("data").display(),
                smtp_port = stack.smtp_port,
                anvil = stack.anvil_url,
                chain_id = stack.chain_id,
                escrow = sender.escrow(),
                start_block = sender.start_block(),
                ingress = mta.ingress_port,
            ),
        )
        .unwrap();
        // The key path is relative to the config file's directory only for pins; make
        // the DKIM key absolute.
        let text = std::fs::read_to_string(&config).unwrap().replace(
            "key_file = \"broker.pem\"",
            &format!("key_file = \"{}\"", dir.path().join("broker.pem").display()),
        );
        std::fs::write(&config, text).unwrap();
        (
            World {
                stack,
                mta,
                sender,
                watcher_key: Arc::new(watcher_key),
                example,
                dir,
                config,
            },
            tls,
        )
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Starts the watcher process and waits for the ingress's banner.
    fn start_watcher(&self) -> Child {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("watcher.log"))
            .unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_springmail-e2e-watch"))
            .arg(&self.config)
            .env(
                "SPRINGMAIL_E2E_WATCHER_KEY",
                hex::encode(self.watcher_key.expose_bytes()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                panic!("the watcher exited ({status}): {}", self.log());
            }
            if let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.mta.ingress_port)) {
                let mut banner = [0u8; 64];
                s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                if s.read(&mut banner)
                    .is_ok_and(|n| banner[..n].starts_with(b"220"))
                {
                    let _ = s.write_all(b"QUIT\r\n");
                    return child;
                }
            }
            assert!(
                Instant::now() < deadline,
                "no ingress banner: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("watcher.log")).unwrap_or_default()
    }

    async fn deposit(&self) -> Ticket {
        let mut req = SendRequest::native(
            BOB,
            springmail_sdk::amount::Amount::from_units(
                AMOUNT,
                springmail_sdk::amount::Asset::qtum(),
            )
            .unwrap(),
            Duration::from_secs(7 * 86_400),
        );
        req.watcher = Some(self.watcher_key.address());
        self.sender.send(req).await.unwrap()
    }

    /// Bob's DKIM-signed claim of `t`, paid to `payee`.
    async fn signed_claim(&self, t: &Ticket, payee: Address) -> (String, Vec<u8>) {
        let head = self.sender.chain().head().await.unwrap();
        let block = claim_block(&self.sender, t, payee, 200_000, head.timestamp + 86_400);
        let built = claim_mail(&ClaimMail {
            from: BOB,
            watcher_email: WATCHER,
            block: &block,
            in_reply_to: Some("sm.notification@sender.example.org"),
            subject: None,
            date: None,
        })
        .unwrap();
        (built.message_id, self.example.sign(&built.bytes))
    }

    async fn wait_claimed(&self, t: &Ticket, within: Duration) -> DepositStatus {
        let deadline = Instant::now() + within;
        loop {
            let st = self.sender.status(t.link.claim_key()).await.unwrap();
            if matches!(st, DepositStatus::Claimed { .. }) {
                return st;
            }
            assert!(
                Instant::now() < deadline,
                "not claimed within {within:?}: {st:?}\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn wait_reply(&self, message_id: &str) -> Vec<u8> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(r) = self.stack.reply_to(BOB, message_id).await.unwrap() {
                return r;
            }
            assert!(Instant::now() < deadline, "no reply: {}", self.log());
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }

    async fn balance(&self, who: Address) -> U256 {
        self.sender.chain().balance(who).await.unwrap()
    }

    fn spooled(&self, folder: &str) -> Vec<Vec<u8>> {
        let dir = self.data().join("spool").join(folder);
        let mut paths: Vec<_> = std::fs::read_dir(&dir)
            .map(|rd| rd.map(|e| e.unwrap().path()).collect())
            .unwrap_or_default();
        paths.sort();
        paths.iter().map(|p| std::fs::read(p).unwrap()).collect()
    }

    fn outcomes(&self) -> Vec<OutcomeKind> {
        Journal::open_in(&self.data())
            .unwrap()
            .all_messages()
            .unwrap()
            .into_iter()
            .filter_map(|m| m.outcome.map(|o| o.kind))
            .collect()
    }
}

struct Killed(Option<Child>);

impl Drop for Killed {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn kill9(guard: &mut Killed) {
    let mut c = guard.0.take().expect("running");
    c.kill().unwrap(); // SIGKILL
    c.wait().unwrap();
}

/// One raw SMTP exchange with the ingress: sends `line`, returns the reply line(s).
fn say(s: &mut TcpStream, line: &str) -> String {
    s.write_all(format!("{line}\r\n").as_bytes()).unwrap();
    read_reply(s)
}

fn read_reply(s: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let mut b = [0u8; 1];
    loop {
        match s.read(&mut b) {
            Ok(0) | Err(_) => break,
            Ok(_) => out.push(b[0]),
        }
        if out.ends_with(b"\r\n") {
            let text = String::from_utf8_lossy(&out).into_owned();
            let last = text
                .trim_end()
                .rsplit("\r\n")
                .next()
                .unwrap_or("")
                .to_string();
            if last.as_bytes().get(3) != Some(&b'-') {
                break;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn connect(port: u16) -> TcpStream {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let banner = read_reply(&mut s);
    assert!(banner.starts_with("220"), "{banner}");
    s
}

#[tokio::test]
#[ignore = "needs the dev stack (Postfix, dovecot, SMTP, anvil): run scripts/test"]
async fn a_claim_relayed_by_postfix_is_paid_and_answered() {
    let _serial = SERIAL.lock().await;
    let Some(mta) = mta() else {
        eprintln!("SKIPPED: the dev stack has no Postfix (mta needs root)");
        return;
    };
    let (w, tls) = World::new(mta, true).await;
    let mut watcher = Killed(Some(w.start_watcher()));
    let t = w.deposit().await;
    let payee = fresh_address();
    let (id, signed) = w.signed_claim(&t, payee).await;
    w.mta.submit(BOB, WATCHER, &signed).await.unwrap();
    let st = w.wait_claimed(&t, Duration::from_secs(60)).await;
    assert_eq!(w.balance(payee).await, U256::from(AMOUNT - FEE));
    let DepositStatus::Claimed { tx_hash, .. } = st else {
        unreachable!()
    };
    let reply = w.wait_reply(&id).await;
    let text = String::from_utf8_lossy(&reply).replace("=\r\n", "");
    assert!(text.contains(&tx_hash.to_string()), "{text}");
    // The spooled copy carries Postfix's trace and the ingress's verdicts.
    let done = w.spooled("Processed");
    assert_eq!(done.len(), 1);
    let spooled = String::from_utf8_lossy(&done[0]);
    assert!(
        spooled.contains("by broker.test (Spring Mail)"),
        "{spooled}"
    );
    if tls {
        // Postfix (smtp_tls_security_level = may) took the STARTTLS offered.
        assert!(spooled.contains("with ESMTPS"), "{spooled}");
    } else {
        eprintln!("SKIPPED: STARTTLS with Postfix (openssl cannot make a certificate)");
    }
    assert!(
        spooled.contains("by mta.example.org"),
        "relayed by Postfix: {spooled}"
    );
    assert!(spooled.contains("dkim=pass"), "{spooled}");
    assert!(w.mta.queue_is_empty(), "Postfix delivered it");
    kill9(&mut watcher);
    assert_eq!(w.outcomes(), vec![OutcomeKind::Claimed]);
}

#[tokio::test]
#[ignore = "needs the dev stack (Postfix, dovecot, SMTP, anvil): run scripts/test"]
async fn relay_unknown_recipient_and_oversize_mail_are_refused_and_nothing_is_stored() {
    let _serial = SERIAL.lock().await;
    let Some(mta) = mta() else {
        eprintln!("SKIPPED: the dev stack has no Postfix (mta needs root)");
        return;
    };
    let (w, _) = World::new(mta, false).await;
    let _watcher = Killed(Some(w.start_watcher()));
    let t = w.deposit().await;
    let (_, signed) = w.signed_claim(&t, fresh_address()).await;

    let mut s = connect(w.mta.ingress_port);
    assert!(say(&mut s, "EHLO attacker.example").starts_with("250"));
    assert!(say(&mut s, "MAIL FROM:<bob@example.com>").starts_with("250"));
    // An open relay would take these.
    for rcpt in [
        "alice@example.org",
        "bob@example.com",
        "watcher@broker.test.example.net",
    ] {
        let r = say(&mut s, &format!("RCPT TO:<{rcpt}>"));
        assert!(r.starts_with("550 5.7.1"), "{rcpt}: {r}");
    }
    let r = say(&mut s, "RCPT TO:<nobody@broker.test>");
    assert!(r.starts_with("550 5.1.1"), "{r}");
    let r = say(&mut s, "DATA");
    assert!(r.starts_with("554"), "{r}");
    // Oversize: the claim padded past max_message_bytes (65536).
    assert!(say(&mut s, "RSET").starts_with("250"));
    assert!(say(&mut s, "MAIL FROM:<bob@example.com>").starts_with("250"));
    assert!(say(&mut s, "RCPT TO:<watcher@broker.test>").starts_with("250"));
    assert!(say(&mut s, "DATA").starts_with("354"));
    s.write_all(&signed).unwrap();
    for _ in 0..1000 {
        s.write_all(&[b'x'; 98]).unwrap();
        s.write_all(b"\r\n").unwrap();
    }
    let r = say(&mut s, ".");
    assert!(r.starts_with("552 5.3.4"), "{r}");
    assert!(say(&mut s, "QUIT").starts_with("221"));

    // Through Postfix (which hands the ingress only broker.test mail), an unknown
    // mailbox is refused too: Postfix gets the 550 and bounces (the bounce goes nowhere).
    w.mta
        .submit(BOB, "nobody@broker.test", &signed)
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !w.mta.queue_is_empty() {
        assert!(Instant::now() < deadline, "Postfix still holds the mail");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Nothing was stored, nothing paid.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(w.spooled("INBOX").is_empty());
    assert!(w.spooled("Processed").is_empty());
    assert!(w.spooled("Rejected").is_empty());
    assert!(matches!(
        w.sender.status(t.link.claim_key()).await.unwrap(),
        DepositStatus::Open { .. }
    ));
}

#[tokio::test]
#[ignore = "needs the dev stack (Postfix, dovecot, SMTP, anvil): run scripts/test"]
async fn kill_9_mid_data_then_postfix_retries_and_the_claim_is_paid_exactly_once() {
    let _serial = SERIAL.lock().await;
    let Some(mta) = mta() else {
        eprintln!("SKIPPED: the dev stack has no Postfix (mta needs root)");
        return;
    };
    let (w, _) = World::new(mta, false).await;
    let mut watcher = Killed(Some(w.start_watcher()));
    let t = w.deposit().await;
    let payee = fresh_address();
    let (id, signed) = w.signed_claim(&t, payee).await;

    // Half the claim, then the watcher dies: no 250, nothing stored.
    let mut s = connect(w.mta.ingress_port);
    assert!(say(&mut s, "EHLO mta.example.org").starts_with("250"));
    assert!(say(&mut s, "MAIL FROM:<bob@example.com>").starts_with("250"));
    assert!(say(&mut s, "RCPT TO:<watcher@broker.test>").starts_with("250"));
    assert!(say(&mut s, "DATA").starts_with("354"));
    s.write_all(&signed[..signed.len() / 2]).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    kill9(&mut watcher);
    let after = read_reply(&mut s);
    assert!(
        !after.starts_with("250"),
        "no 250 after the kill: {after:?}"
    );
    assert!(w.spooled("INBOX").is_empty());
    assert!(w.spooled("tmp").len() <= 1, "at most the half-written file");

    // Postfix takes the claim while the watcher is down and keeps it queued.
    w.mta.submit(BOB, WATCHER, &signed).await.unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        !w.mta.queue_is_empty(),
        "deferred while the ingress is down"
    );

    // Back up: Postfix's retry delivers, the claim is paid.
    watcher.0 = Some(w.start_watcher());
    w.wait_claimed(&t, Duration::from_secs(60)).await;
    assert_eq!(w.balance(payee).await, U256::from(AMOUNT - FEE));
    w.wait_reply(&id).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while !w.mta.queue_is_empty() {
        assert!(Instant::now() < deadline, "Postfix still holds the mail");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(w.spooled("tmp").is_empty(), "the half-written file is gone");

    // The same claim delivered again (a sender that never saw the 250) pays nothing more.
    w.mta.submit(BOB, WATCHER, &signed).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while w.spooled("Processed").len() + w.spooled("Rejected").len() < 2 {
        assert!(
            Instant::now() < deadline,
            "second copy not handled: {}",
            w.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    kill9(&mut watcher);
    assert_eq!(w.balance(payee).await, U256::from(AMOUNT - FEE));
    let outcomes = w.outcomes();
    assert_eq!(
        outcomes
            .iter()
            .filter(|k| **k == OutcomeKind::Claimed)
            .count(),
        1,
        "{outcomes:?}"
    );
    assert_eq!(outcomes.len(), 2, "{outcomes:?}");
}

#[test]
fn the_child_binary_refuses_a_bad_config_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        "data_dir = \"x\"\n[smtp_ingress]\nlisten = \"nowhere\"\ndomains = [\"broker.test\"]\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_springmail-e2e-watch"))
        .arg(&path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("[smtp_ingress] listen: not an address:port"),
        "{err}"
    );
}

/// The address layer of a watcher run from its config file (`addresses = true`),
/// behind Postfix: Bob registers his address and the alias `bobby` by a DKIM-signed
/// mail to broker@broker.test; mail for bobby@broker.test is then forwarded to his
/// mailbox, through the watcher's [smtp] relay. An unregistered Qtum address is
/// refused at RCPT.
#[tokio::test]
#[ignore = "needs the dev stack (Postfix, dovecot, SMTP, anvil): run scripts/test"]
async fn registration_and_forwarding_through_postfix() {
    use springmail_sdk::markup::broker::{RegisterBlock, Registration};
    use springmail_sdk::qtum::{self, QtumNetwork};
    let _serial = SERIAL.lock().await;
    let Some(mta) = mta() else {
        eprintln!("SKIPPED: the dev stack has no Postfix (mta needs root)");
        return;
    };
    let (w, _) = World::new(mta, false).await;
    let _watcher = Killed(Some(w.start_watcher()));
    let network = QtumNetwork::from_chain_id(w.stack.chain_id).unwrap();
    let key = ClaimSecret::random();
    let address = qtum::qtum_sender_of_secret(&key);
    let q = qtum::encode_address(address, network);

    // Unregistered: refused at RCPT, with the reason.
    let mut s = connect(w.mta.ingress_port);
    assert!(say(&mut s, "EHLO client.example").starts_with("250"));
    assert!(say(&mut s, "MAIL FROM:<carol@example.net>").starts_with("250"));
    let r = say(&mut s, &format!("RCPT TO:<{q}@broker.test>"));
    assert!(
        r.starts_with("550 5.1.1") && r.contains("no mailbox registered"),
        "{r}"
    );
    let r = say(&mut s, "RCPT TO:<bobby@broker.test>");
    assert!(r.starts_with("550 5.1.1 No such mailbox"), "{r}");
    say(&mut s, "QUIT");

    let registration = Registration {
        chain_id: w.stack.chain_id,
        domain: "broker.test".into(),
        address,
        mailbox: BOB.into(),
        name: Some("bobby".into()),
        time: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    };
    let block = RegisterBlock {
        signature: registration.sign(&key),
        registration,
    }
    .render();
    let raw = w.example.sign(&springmail_watcher::testkit::mail(
        BOB,
        "broker@broker.test",
        "register",
        "register-1@example.com",
        None,
        &block,
    ));
    w.mta.submit(BOB, "broker@broker.test", &raw).await.unwrap();
    let texts = |mails: Vec<Vec<u8>>| -> Vec<String> {
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
    };
    let wait_for = |needle: &'static str| {
        let w = &w;
        async move {
            let deadline = Instant::now() + Duration::from_secs(60);
            loop {
                let found = texts(w.stack.mailbox(BOB, "INBOX").await.unwrap())
                    .into_iter()
                    .find(|t| t.contains(needle));
                if let Some(t) = found {
                    return t;
                }
                assert!(
                    Instant::now() < deadline,
                    "no mail with {needle:?}: {}",
                    w.log()
                );
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        }
    };
    let registered = wait_for("Registered at broker.test").await;
    assert!(registered.contains("bobby@broker.test"), "{registered}");

    let hello = springmail_watcher::testkit::mail(
        "carol@example.net",
        "bobby@broker.test",
        "lunch?",
        "lunch-1@example.net",
        None,
        "Lunch on Friday?",
    );
    w.mta
        .submit("carol@example.net", "bobby@broker.test", &hello)
        .await
        .unwrap();
    let forwarded = wait_for("[bobby@broker.test] lunch?").await;
    assert!(forwarded.contains("Lunch on Friday?"), "{forwarded}");
    assert!(forwarded.contains("sender NOT verified"), "{forwarded}");
    assert!(w.mta.queue_is_empty(), "Postfix delivered both");
}
