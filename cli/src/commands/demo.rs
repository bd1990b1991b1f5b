//! `springmail demo`: the whole story in one process, with no setup and no network.
//!
//! An embedded development chain (revm) with the real escrow contract; the SDK's client
//! for deposits, claims and refunds; the SDK's mail builders for the notification and
//! the claim mail; the watcher's own pipeline (DKIM with pinned demo keys, verify,
//! submit, threaded reply) reading a mail directory. Nothing here is a script of its own:
//! it calls the same code as `send`, `claim`, `refund` and `watch`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use springmail_sdk::amount::{Amount, Asset};
use springmail_sdk::chain::embedded::EmbeddedChain;
use springmail_sdk::chain::Chain;
use springmail_sdk::client::{DepositStatus, SendRequest, SpringMail, Ticket};
use springmail_sdk::keys::ClaimSecret;
use springmail_sdk::link::ClaimLink;
use springmail_sdk::mail::{self, ClaimMail, Notification};
use springmail_sdk::{qtum, Address, U256};
use springmail_watcher::authenticate::{AuthPolicy, DkimKeys, MailAuthenticator, PinnedRecords};
use springmail_watcher::dkim_domain::DkimDomain;
use springmail_watcher::journal::Journal;
use springmail_watcher::metrics::Metrics;
use springmail_watcher::reply::{DirSink, DkimSigningKey, ReplyComposer};
use springmail_watcher::service::{PipelineSettings, Watcher, WatcherParts};
use springmail_watcher::submit::SubmitPolicy;
use springmail_watcher::verify::VerifyPolicy;
use springmail_watcher::DirSource;

use super::claim::sign_claim_block;
use crate::args::DemoArgs;
use crate::notify;

const CHAIN_ID: u64 = springmail_sdk::protocol::REGTEST_CHAIN_ID;
const WATCHER_EMAIL: &str = "watcher@broker.test";
const ALICE_EMAIL: &str = "alice@example.org";
const BOB_EMAIL: &str = "bob@example.com";
const CAROL_EMAIL: &str = "carol@example.net";
const DAVE_EMAIL: &str = "dave@example.org";
/// The watcher's fee per claim: 0.001 QTUM.
const WATCHER_FEE: u128 = 100_000;

struct Demo {
    chain: EmbeddedChain,
    dir: PathBuf,
    step: usize,
    started: Instant,
}

fn qtum_amount(units: u128) -> String {
    Amount::from_units(units, Asset::qtum())
        .map(|a| a.to_string())
        .unwrap_or_else(|_| format!("{units} sat"))
}

/// `sm1.AAAAAAAA…k3Jx9QdA`: enough to recognize a link without printing it whole.
/// The public start of a claim link: `sm1.` and the first 12 payload bytes (chain id
/// and part of the escrow address). The rest holds the claim secret and the salt, so
/// none of it is shown.
fn abbrev(link: &str) -> String {
    let head: String = link.chars().take(4 + 16).collect();
    format!("{head}…")
}

fn short(text: &str, keep: usize) -> String {
    if text.chars().count() <= keep {
        text.to_string()
    } else {
        format!("{}…", text.chars().take(keep).collect::<String>())
    }
}

impl Demo {
    fn addr(&self, a: Address) -> String {
        qtum::format_address(CHAIN_ID, a)
    }

    fn step(&mut self, title: impl AsRef<str>) {
        self.step += 1;
        println!("\n{}. {}", self.step, title.as_ref());
    }

    fn line(&self, label: &str, value: impl AsRef<str>) {
        println!("   {label:<16} {}", value.as_ref());
    }

    fn rel(&self, p: &Path) -> String {
        p.strip_prefix(&self.dir)
            .map(|r| r.display().to_string())
            .unwrap_or_else(|_| p.display().to_string())
    }

    async fn balance(&self, who: Address) -> anyhow::Result<String> {
        let b: U256 = self.chain.balance(who).await?;
        Ok(qtum_amount(b.saturating_to()))
    }
}

/// A person with a wallet on the demo chain.
struct Person {
    key: ClaimSecret,
}

impl Person {
    fn new() -> Self {
        Person {
            key: ClaimSecret::random(),
        }
    }
    fn address(&self) -> Address {
        self.key.address()
    }
}

/// Runs the demo.
pub async fn run(a: &DemoArgs, _json: bool) -> anyhow::Result<()> {
    let (_temp, dir) = match &a.keep {
        Some(d) => {
            std::fs::create_dir_all(d).with_context(|| format!("cannot create {}", d.display()))?;
            if std::fs::read_dir(d)?.next().is_some() {
                return Err(crate::report::input_error(
                    format!("{} is not empty", d.display()),
                    "give --keep an empty or new directory",
                ));
            }
            (None, d.canonicalize()?)
        }
        None => {
            let t = tempfile::Builder::new()
                .prefix("springmail-demo-")
                .tempdir()?;
            let p = t.path().to_path_buf();
            (Some(t), p)
        }
    };
    let chain = EmbeddedChain::new(CHAIN_ID);
    let mut d = Demo {
        chain,
        dir: dir.clone(),
        step: 0,
        started: Instant::now(),
    };
    println!("Spring Mail demo: send QTUM to an email address; the recipient claims it from the mailbox.");
    println!(
        "Everything runs in this process, offline: {}.",
        d.chain.describe()
    );
    println!("Mail goes through the directory {}", dir.display());

    // ------------------------------------------------------------------ setup
    let alice = Person::new();
    let bob = Person::new();
    let carol = Person::new();
    let watcher_key = Arc::new(ClaimSecret::random());
    d.step("Alice, the sender, has 100 QTUM; the escrow contract is deployed");
    d.chain.fund(alice.address(), U256::from(10_000_000_000u64));
    let alice_chain: Arc<dyn Chain> = Arc::new(d.chain.as_account(alice.address()));
    let alice_client = SpringMail::deploy(alice_chain.clone())
        .await
        .context("deploying the escrow")?;
    d.line(
        "alice",
        format!(
            "{} ({ALICE_EMAIL}), {}",
            d.addr(alice.address()),
            d.balance(alice.address()).await?
        ),
    );
    d.line(
        "escrow",
        format!(
            "{} (block {})",
            alice_client.escrow().to_checksum(None),
            alice_client.start_block()
        ),
    );
    d.line(
        "watcher",
        format!(
            "{} ({WATCHER_EMAIL}), the mail server broker",
            d.addr(watcher_key.address())
        ),
    );

    // Mail providers' DKIM keys: made up for the demo and pinned, so no DNS is asked.
    let example_com = DkimDomain::new("example.com");
    let example_net = DkimDomain::new("example.net");
    let broker = DkimDomain::new("broker.test");
    let mut pins = PinnedRecords::new();
    for dom in [&example_com, &example_net, &broker] {
        dom.pin(&mut pins);
    }

    // ------------------------------------------------------------------ sends
    let outbox = dir.join("alice-outbox");
    let bob_ticket = send(
        &mut d,
        &alice_client,
        BOB_EMAIL,
        150_000_000,
        None,
        30 * 86_400,
        &outbox,
    )
    .await?;
    let carol_ticket = send(
        &mut d,
        &alice_client,
        CAROL_EMAIL,
        250_000_000,
        Some(watcher_key.address()),
        30 * 86_400,
        &outbox,
    )
    .await?;
    let dave_ticket = send(
        &mut d,
        &alice_client,
        DAVE_EMAIL,
        50_000_000,
        None,
        86_400,
        &outbox,
    )
    .await?;

    // ------------------------------------------------------------------ Bob: link mode
    d.step("Bob reads his mail and claims with the link, straight on chain (link mode)");
    let bob_link = link_from_mail(&outbox.join(format!("{BOB_EMAIL}.eml")))?;
    d.line(
        "he runs",
        format!(
            "springmail claim {} --to {}",
            abbrev(&bob_link.to_bare()),
            d.addr(bob.address())
        ),
    );
    let bob_client = SpringMail::new(Arc::new(d.chain.as_account(bob.address())), bob_link.escrow)
        .with_start_block(alice_client.start_block());
    let receipt = bob_client
        .claim_with_link(&bob_link, bob.address())
        .await
        .context("Bob's claim")?;
    d.line("transaction", receipt.tx_hash.to_string());
    d.line("bob now has", d.balance(bob.address()).await?);

    // ------------------------------------------------------------------ Carol: email mode
    d.step("Carol replies to her notification with a signed CLAIM block (email mode)");
    let carol_link = link_from_mail(&outbox.join(format!("{CAROL_EMAIL}.eml")))?;
    let reader = SpringMail::new(
        Arc::new(d.chain.as_account(Address::ZERO)),
        carol_link.escrow,
    )
    .with_start_block(alice_client.start_block());
    let carol_deposit = reader.open_deposit_for(&carol_link).await?;
    let max_fee = Amount::from_units(1_000_000, Asset::qtum())?; // at most 0.01 QTUM for the watcher
    let block = sign_claim_block(
        &reader,
        &carol_link,
        &carol_deposit,
        carol.address(),
        &max_fee,
    )
    .await?;
    let parent = mail::notification_message_id(&carol_link, CAROL_EMAIL)?;
    let claim = mail::claim_mail(&ClaimMail {
        from: CAROL_EMAIL,
        watcher_email: WATCHER_EMAIL,
        block: &block,
        in_reply_to: Some(&parent),
        subject: Some(&format!(
            "Re: {}",
            mail::notification_subject("Alice", &Amount::from_units(250_000_000, Asset::qtum())?)
        )),
        date: None,
    })?;
    let inbox_root = dir.join("watcher-mailbox");
    let inbox = inbox_root.join("INBOX");
    std::fs::create_dir_all(&inbox)?;
    // Her provider (example.net) signs outgoing mail with DKIM.
    let carol_file = inbox.join("0001-carol-claim.eml");
    std::fs::write(&carol_file, example_net.sign(&claim.bytes))?;
    d.line(
        "she runs",
        format!(
            "springmail claim {} --to {} --email {CAROL_EMAIL}",
            abbrev(&carol_link.to_bare()),
            d.addr(carol.address())
        ),
    );
    d.line(
        "claim mail",
        format!(
            "{} (DKIM d=example.net, In-Reply-To <{}>)",
            d.rel(&carol_file),
            short(&parent, 20)
        ),
    );
    d.line(
        "it carries",
        "the CLAIM block: a signature made with the link; the link itself stays with Carol",
    );
    // A forgery: someone else claims Carol's money with her address in From, but
    // cannot sign as example.net.
    let forged = mail::claim_mail(&ClaimMail {
        from: CAROL_EMAIL,
        watcher_email: WATCHER_EMAIL,
        block: &block,
        in_reply_to: Some(&parent),
        subject: Some("Re: claim"),
        date: None,
    })?;
    let impostor = DkimDomain::new("example.net");
    let forged_file = inbox.join("0002-forged-claim.eml");
    std::fs::write(&forged_file, impostor.sign(&forged.bytes))?;
    d.line(
        "also arriving",
        format!(
            "{} (From: {CAROL_EMAIL}, but signed with a key example.net never published)",
            d.rel(&forged_file)
        ),
    );

    // ------------------------------------------------------------------ the watcher
    d.step("The watcher reads its mailbox: DKIM, CLAIM block, chain state; then pays and replies");
    let replies_dir = dir.join("watcher-replies");
    let data_dir = dir.join("watcher-data");
    std::fs::create_dir_all(&data_dir)?;
    let relayer: Arc<dyn Chain> = Arc::new(d.chain.as_account(watcher_key.address()));
    let mut watcher = Watcher::new(WatcherParts {
        client: SpringMail::new(relayer, alice_client.escrow())
            .with_start_block(alice_client.start_block()),
        watcher_key: watcher_key.clone(),
        journal: Arc::new(Journal::open_in(&data_dir)?),
        sources: vec![Box::new(DirSource::open(&inbox_root)?)],
        sink: Arc::new(DirSink::new(&replies_dir)),
        authenticator: MailAuthenticator::new(
            DkimKeys::pinned(pins.clone()),
            AuthPolicy {
                max_message_bytes: 1 << 20,
                own_addresses: vec![WATCHER_EMAIL.into()],
            },
        ),
        composer: ReplyComposer::new(
            WATCHER_EMAIL,
            "Spring Mail watcher",
            Some((
                DkimSigningKey::from_pem(&broker.key_pem, "demo broker key")?,
                "broker.test".into(),
                "sm".into(),
            )),
        ),
        verify: VerifyPolicy {
            watcher: watcher_key.address(),
            native_fee: WATCHER_FEE,
            tokens: vec![],
            min_time_left: 60,
        },
        submit: SubmitPolicy {
            receipt_timeout: Duration::from_secs(10),
            gas_limit: None,
            resend_guard: Duration::ZERO,
        },
        pipeline: PipelineSettings {
            retry_base: Duration::from_millis(100),
            ..Default::default()
        },
        metrics: Metrics::new(),
    })?;
    let report = watcher.run_once().await.context("the watcher's run")?;
    let names = ["Carol's claim", "the forged claim"];
    let mut records = watcher.journal().all_messages()?;
    records.sort_by_key(|r| r.key.uid);
    for (i, r) in records.iter().enumerate() {
        let who = names.get(i).copied().unwrap_or("a mail");
        match &r.outcome {
            Some(o) => {
                let tx = o
                    .tx_hash
                    .as_deref()
                    .map(|t| format!(" (transaction {})", short(t, 18)))
                    .unwrap_or_default();
                d.line(
                    who,
                    format!("{}: {}{tx}", o.kind.as_str(), short(&o.text, 110)),
                );
            }
            None => d.line(who, format!("still {}", r.state.as_str())),
        }
    }
    d.line("replies sent", report.replies_sent.to_string());
    for reply in list_eml(&replies_dir)? {
        show_reply(&d, &reply)?;
    }
    d.line("carol now has", d.balance(carol.address()).await?);
    // Escrow v2: the watcher's fees accrue inside the escrow until it withdraws them.
    let accrued = alice_client
        .accrued_fees(watcher_key.address(), Address::ZERO)
        .await?;
    d.line(
        "watcher fees",
        format!("{} (accrued in the escrow)", qtum_amount(accrued)),
    );

    // ------------------------------------------------------------------ Dave: refund
    d.step("Dave never claims. A day later his deposit has expired, and Alice takes it back");
    d.chain.advance_time(86_400 + 60);
    let receipt = alice_client
        .refund(dave_ticket.link.claim_key())
        .await
        .context("the refund")?;
    d.line("refund", receipt.tx_hash.to_string());

    // ------------------------------------------------------------------ summary
    d.step("Where everything stands");
    for (who, t) in [
        ("bob", &bob_ticket),
        ("carol", &carol_ticket),
        ("dave", &dave_ticket),
    ] {
        let st = alice_client.status(t.link.claim_key()).await?;
        let detail = match &st {
            DepositStatus::Claimed {
                to,
                amount,
                fee,
                tx_hash,
                ..
            } => format!(
                "claimed: {} to {}{} in {}",
                qtum_amount(*amount - *fee),
                d.addr(*to),
                if *fee > 0 {
                    format!(
                        " (+{} fee, accrued to the watcher in the escrow)",
                        qtum_amount(*fee)
                    )
                } else {
                    String::new()
                },
                short(&tx_hash.to_string(), 18)
            ),
            DepositStatus::Refunded {
                amount, tx_hash, ..
            } => {
                format!(
                    "refunded: {} back to alice in {}",
                    qtum_amount(*amount),
                    short(&tx_hash.to_string(), 18)
                )
            }
            other => other.name().to_string(),
        };
        d.line(&format!("{who}'s deposit"), detail);
    }
    for (who, addr) in [
        ("alice", alice.address()),
        ("bob", bob.address()),
        ("carol", carol.address()),
        ("watcher", watcher_key.address()),
    ] {
        d.line(who, d.balance(addr).await?);
    }
    if let Some(path) = &a.dump_secrets {
        let keys: Vec<String> = [&alice.key, &bob.key, &carol.key, &*watcher_key]
            .iter()
            .map(|k| hex::encode(k.expose_bytes()))
            .collect();
        let tickets = [&bob_ticket, &carol_ticket, &dave_ticket];
        let claim_keys: Vec<String> = tickets
            .iter()
            .map(|t| hex::encode(t.link.secret.expose_bytes()))
            .collect();
        let salts: Vec<String> = tickets
            .iter()
            .map(|t| hex::encode(t.link.salt.expose_bytes()))
            .collect();
        let links: Vec<String> = tickets.iter().map(|t| t.link.to_bare()).collect();
        let dkim: Vec<&str> = [&example_com, &example_net, &broker, &impostor]
            .iter()
            .map(|d| d.key_pem.as_str())
            .collect();
        let dump = serde_json::json!({
            "private_keys": keys,
            "claim_keys": claim_keys,
            "salts": salts,
            "links": links,
            "dkim_keys": dkim,
            "recipients": [BOB_EMAIL, CAROL_EMAIL, DAVE_EMAIL],
        });
        std::fs::write(path, dump.to_string())
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    println!(
        "\nDone in {:.2} s. The same code runs against anvil or a Qtum node: see README.md.",
        d.started.elapsed().as_secs_f64()
    );
    if a.keep.is_some() {
        println!(
            "The mails (notifications, claims, replies) are in {}",
            dir.display()
        );
    }
    Ok(())
}

/// Alice sends: a deposit, then the notification written to her outbox.
async fn send(
    d: &mut Demo,
    client: &SpringMail,
    email: &str,
    amount: u128,
    watcher: Option<Address>,
    expires_in: u64,
    outbox: &Path,
) -> anyhow::Result<Ticket> {
    let mode = if watcher.is_some() {
        "email mode: only a mail from that address can claim"
    } else {
        "link mode: the link alone can claim"
    };
    d.step(format!(
        "Alice sends {} to {email} ({mode})",
        qtum_amount(amount)
    ));
    let ticket = client
        .send(SendRequest {
            email: email.into(),
            amount: Amount::from_units(amount, Asset::qtum())?,
            token: None,
            expires_in: std::time::Duration::from_secs(expires_in),
            watcher,
            cancellable: false,
        })
        .await
        .with_context(|| format!("sending to {email}"))?;
    let amount = Amount::from_units(amount, Asset::qtum())?;
    let built = mail::notification(&Notification {
        link: &ticket.link,
        from: ALICE_EMAIL,
        sender_name: Some("Alice"),
        recipient: email,
        amount: &amount,
        expiry: ticket.deposit.expiry,
        claim_host: None,
        watcher_email: watcher.map(|_| WATCHER_EMAIL),
        note: Some("Lunch is on me. Claim it whenever you like."),
        date: None,
    })?;
    let file = outbox.join(format!("{email}.eml"));
    notify::write_eml(&file, &built)?;
    d.line("transaction", ticket.tx_hash.to_string());
    d.line("claim key", ticket.link.claim_key().to_checksum(None));
    d.line("claim link", abbrev(&ticket.link.to_bare()));
    d.line(
        "notification",
        format!(
            "{} \"{}\"{}",
            d.rel(&file),
            built.subject,
            if watcher.is_some() {
                format!(", Reply-To {WATCHER_EMAIL}")
            } else {
                String::new()
            }
        ),
    );
    Ok(ticket)
}

/// What a recipient does: open the mail and take the link out of it.
fn link_from_mail(path: &Path) -> anyhow::Result<ClaimLink> {
    let raw = std::fs::read(path)?;
    let msg = mail_parser::MessageParser::default()
        .parse(&raw)
        .context("the notification does not parse")?;
    let text = msg.body_text(0).context("the notification has no text")?;
    let token = text
        .split_whitespace()
        .find(|w| w.starts_with("sm1."))
        .context("the notification carries no sm1. link")?;
    Ok(ClaimLink::parse(token)?)
}

fn list_eml(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut out: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(rd) => rd
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "eml"))
            .collect(),
        Err(_) => Vec::new(),
    };
    out.sort();
    Ok(out)
}

fn show_reply(d: &Demo, path: &Path) -> anyhow::Result<()> {
    let raw = std::fs::read(path)?;
    let Some(msg) = mail_parser::MessageParser::default().parse(&raw) else {
        return Ok(());
    };
    let to = msg
        .to()
        .and_then(|a| a.first())
        .and_then(|a| a.address())
        .unwrap_or("?")
        .to_string();
    d.line(
        "reply",
        format!(
            "{} to {to}: \"{}\"",
            d.rel(path),
            msg.subject().unwrap_or("")
        ),
    );
    let threaded =
        msg.in_reply_to().as_text().is_some() || msg.in_reply_to().as_text_list().is_some();
    let signed = msg.header("DKIM-Signature").is_some();
    d.line(
        "",
        format!(
            "threaded: {}, DKIM-signed by broker.test: {}",
            yes(threaded),
            yes(signed)
        ),
    );
    if let Some(body) = msg.body_text(0) {
        for l in body
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .take(4)
        {
            d.line("", format!("| {}", short(l, 100)));
        }
    }
    Ok(())
}

fn yes(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}
