//! `springmail demo`: the whole story in one process, with no setup and no network.
//!
//! An embedded development chain (revm) with the real escrow contract; the SDK's client
//! for deposits, claims and refunds; the SDK's mail builders for the notification and
//! the claim mail; the watcher's own pipeline (DKIM with pinned demo keys, verify,
//! submit, threaded reply) reading a mail directory; then Bob's mailbox wallet at that
//! watcher: a plain "claim" reply, "balance", "pay … to carol@…" with its confirmation
//! code, and his own key bound and used to withdraw without the broker. Nothing here is a
//! script of its own: it calls the same code as `send`, `claim`, `refund` and `watch`.

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
use springmail_sdk::{qtum, Address, B256, U256};
use springmail_watcher::authenticate::{AuthPolicy, DkimKeys, MailAuthenticator, PinnedRecords};
use springmail_watcher::dkim_domain::DkimDomain;
use springmail_watcher::journal::Journal;
use springmail_watcher::metrics::Metrics;
use springmail_watcher::reply::{DirSink, DkimSigningKey, ReplyComposer};
use springmail_watcher::service::{PipelineSettings, Watcher, WatcherParts};
use springmail_watcher::submit::SubmitPolicy;
use springmail_watcher::verify::VerifyPolicy;
use springmail_watcher::wallet::{self as mailbox_wallet, SdkWallet, Wallet, WalletSettings};
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
    })?
    .with_wallet(Wallet::new(
        wallet_settings(),
        Arc::new(SdkWallet::new(
            SpringMail::new(
                Arc::new(d.chain.as_account(watcher_key.address())),
                alice_client.escrow(),
            )
            .with_start_block(alice_client.start_block()),
            WATCHER_FEE,
        )),
    ))?;
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

    // ------------------------------------------------------------------ mailbox wallets
    let mut seen = list_eml(&replies_dir)?;
    let story = WalletStory {
        alice: &alice_client,
        bob: &bob,
        watcher: &mut watcher,
        watcher_address: watcher_key.address(),
        inbox: &inbox,
        replies: &replies_dir,
        data_dir: &data_dir,
        outbox: &outbox,
        example_com: &example_com,
        seen: &mut seen,
        sent: 0,
    };
    let wallet = story.run(&mut d).await?;

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
    d.line(
        "bob's second",
        format!(
            "taken into bob's mailbox wallet in {}",
            short(&wallet.claim_tx, 18)
        ),
    );
    if let Some(link) = &wallet.carol_link {
        let detail = match alice_client.find_account_deposit(link.claim_key()).await? {
            Some((deposit, _)) => format!(
                "open: {}, paid from bob's mailbox wallet; her reply takes it",
                qtum_amount(deposit.amount)
            ),
            None => "not found".to_string(),
        };
        d.line("carol's new", detail);
    }
    d.line(
        "bob's wallet",
        format!(
            "{} at the broker (he withdrew the rest with his own key)",
            qtum_amount(wallet_balance(&alice_client, wallet.account).await?)
        ),
    );
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
        let tickets = [&bob_ticket, &carol_ticket, &dave_ticket, &wallet.ticket];
        let claim_keys: Vec<String> = tickets
            .iter()
            .map(|t| hex::encode(t.link.secret.expose_bytes()))
            .collect();
        let mut salts: Vec<String> = tickets
            .iter()
            .map(|t| hex::encode(t.link.salt.expose_bytes()))
            .collect();
        // The broker's account salts (kept in its journal, never shown).
        salts.extend(
            journal_column(&data_dir, "SELECT salt FROM wallet_accounts")?
                .into_iter()
                .map(|s| s.trim_start_matches("0x").to_string()),
        );
        let mut links: Vec<String> = tickets.iter().map(|t| t.link.to_bare()).collect();
        links.extend(wallet.carol_link.iter().map(|l| l.to_bare()));
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
    let build = if watcher.is_some() {
        mail::notification_offering_wallet
    } else {
        mail::notification
    };
    let built = build(&Notification {
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
    let mut file = outbox.join(format!("{email}.eml"));
    for n in 2.. {
        if !file.exists() {
            break;
        }
        file = outbox.join(format!("{email}-{n}.eml"));
    }
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
    ClaimLink::find_in(&text).context("the notification carries no sm1. link")
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

/// The broker's wallet policy in the demo: payments above 0.1 QTUM wait for a code.
fn wallet_settings() -> WalletSettings {
    WalletSettings {
        per_payment: 1_000_000_000,
        per_day: 5_000_000_000,
        confirm_above: 10_000_000,
        order_window: 3_600,
        pay_expiry: 30 * 86_400,
    }
}

/// One column of the broker's journal (the demo reads its own broker's books).
fn journal_column(data_dir: &Path, sql: &str) -> anyhow::Result<Vec<String>> {
    let db = Journal::open_in(data_dir)?.path().to_path_buf();
    let conn = rusqlite::Connection::open(&db)?;
    let mut stmt = conn.prepare(sql)?;
    let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// A mailbox wallet's balance as the escrow holds it.
async fn wallet_balance(client: &SpringMail, account: B256) -> anyhow::Result<u128> {
    Ok(client
        .account(springmail_sdk::accounts::AccountId(account))
        .await?
        .balance)
}

/// What the wallet part of the demo leaves for the summary.
struct WalletOutcome {
    ticket: Ticket,
    claim_tx: String,
    account: B256,
    carol_link: Option<ClaimLink>,
}

/// Bob's mailbox wallet: receive by a plain reply, balance, pay by email with a
/// confirmation code, bind his own key and leave without the broker.
struct WalletStory<'a> {
    alice: &'a SpringMail,
    bob: &'a Person,
    watcher: &'a mut Watcher,
    watcher_address: Address,
    inbox: &'a Path,
    replies: &'a Path,
    data_dir: &'a Path,
    outbox: &'a Path,
    example_com: &'a DkimDomain,
    seen: &'a mut Vec<PathBuf>,
    sent: usize,
}

/// A mail as a mail client writes it: `first` as the body, then `quoted` quoted.
struct Plain<'a> {
    subject: &'a str,
    first: &'a str,
    in_reply_to: Option<&'a str>,
    quoted: Option<&'a str>,
}

impl WalletStory<'_> {
    async fn run(mut self, d: &mut Demo) -> anyhow::Result<WalletOutcome> {
        // Receive.
        let ticket = send(
            d,
            self.alice,
            BOB_EMAIL,
            200_000_000,
            Some(self.watcher_address),
            30 * 86_400,
            self.outbox,
        )
        .await?;
        d.step("Bob answers that notification with a plain reply, \"claim\": a mailbox wallet");
        let note_file = self.outbox.join(format!("{BOB_EMAIL}-2.eml"));
        let note = std::fs::read(&note_file)?;
        let parsed = mail_parser::MessageParser::default()
            .parse(&note)
            .context("the notification does not parse")?;
        let note_id = parsed.message_id().unwrap_or_default().to_string();
        let note_subject = parsed.subject().unwrap_or_default().to_string();
        let note_text = parsed.body_text(0).unwrap_or_default().into_owned();
        d.line(
            "the mail says",
            "reply \"claim\", or nothing at all, and the broker keeps it in a mailbox wallet",
        );
        let re = format!("Re: {note_subject}");
        self.mail(
            d,
            "bob's reply",
            Plain {
                subject: &re,
                first: "claim",
                in_reply_to: Some(&note_id),
                quoted: Some(&note_text),
            },
        )?;
        let claimed = self.answers(d).await?;
        let claim_tx = claimed
            .iter()
            .flat_map(|m| m.text.lines())
            .find_map(|l| l.trim().strip_prefix("Transaction id: "))
            .unwrap_or("-")
            .to_string();
        let account = self.account()?;
        d.line(
            "bob's wallet",
            qtum_amount(wallet_balance(self.alice, account).await?),
        );

        // Hold.
        d.step("Bob writes \"balance\"");
        self.mail(
            d,
            "bob's mail",
            Plain {
                subject: "balance",
                first: "",
                in_reply_to: None,
                quoted: None,
            },
        )?;
        self.answers(d).await?;

        // Send, above the confirmation threshold.
        d.step("Bob writes \"pay 0.5 QTUM to carol@example.net\" (above his 0.1 QTUM confirm threshold)");
        let order = format!("pay 0.5 QTUM to {CAROL_EMAIL}");
        self.mail(
            d,
            "bob's order",
            Plain {
                subject: &order,
                first: "For the concert tickets",
                in_reply_to: None,
                quoted: None,
            },
        )?;
        let asked = self.answers(d).await?;
        let request = asked
            .first()
            .context("the broker did not answer the payment")?;
        let code = confirm_code(&request.text).context("the answer carries no code")?;
        d.line(
            "bob's wallet",
            format!(
                "{} (nothing moved yet)",
                qtum_amount(wallet_balance(self.alice, account).await?)
            ),
        );
        d.step("Bob confirms with the code, replying in the same thread");
        let confirm = format!("confirm {code}");
        let re = format!("Re: {order}");
        self.mail(
            d,
            "bob's reply",
            Plain {
                subject: &re,
                first: &confirm,
                in_reply_to: Some(&request.message_id),
                quoted: Some(&request.text),
            },
        )?;
        let done = self.answers(d).await?;
        let carol_link = done
            .iter()
            .find(|m| m.to.eq_ignore_ascii_case(CAROL_EMAIL))
            .map(|m| link_from_mail(&m.path))
            .transpose()?;
        d.line(
            "bob's wallet",
            qtum_amount(wallet_balance(self.alice, account).await?),
        );

        // Exit.
        d.step("Bob binds a key of his own, then withdraws with it, without the broker");
        let owner = self.bob.address();
        let text = mailbox_wallet::bind_text(BOB_EMAIL, CHAIN_ID, self.alice.escrow(), owner);
        let sig = self
            .bob
            .key
            .sign_digest(&mailbox_wallet::bind_digest(&text));
        let bind = format!(
            "bind {} 0x{}",
            qtum::format_address(CHAIN_ID, owner),
            hex::encode(sig.0)
        );
        d.line(
            "he signs",
            "the binding text (mailbox, chain, escrow, owner) with his key",
        );
        self.mail(
            d,
            "bob's mail",
            Plain {
                subject: "my key",
                first: &bind,
                in_reply_to: None,
                quoted: None,
            },
        )?;
        self.answers(d).await?;
        // No broker from here on: Bob's own key, his own transaction.
        let own = SpringMail::new(Arc::new(d.chain.as_account(owner)), self.alice.escrow())
            .with_start_block(self.alice.start_block());
        let id = springmail_sdk::accounts::AccountId(account);
        let state = own.account(id).await?;
        anyhow::ensure!(state.owner == Some(owner), "the owner key was not bound");
        let before = d.balance(owner).await?;
        let receipt = own
            .withdraw_from(
                id,
                owner,
                state.balance,
                springmail_sdk::accounts::Movement {
                    nonce: state.nonce,
                    mail_hash: B256::ZERO,
                },
            )
            .await
            .context("Bob's withdrawal with his own key")?;
        d.line(
            "he withdraws",
            format!(
                "{} to {} with his own key, in {}",
                qtum_amount(state.balance),
                d.addr(owner),
                short(&receipt.tx_hash.to_string(), 18)
            ),
        );
        d.line(
            "bob now has",
            format!("{} (was {before})", d.balance(owner).await?),
        );
        d.line(
            "bob's wallet",
            qtum_amount(wallet_balance(self.alice, account).await?),
        );
        Ok(WalletOutcome {
            ticket,
            claim_tx,
            account,
            carol_link,
        })
    }

    /// Bob's account id, from the broker's books.
    fn account(&self) -> anyhow::Result<B256> {
        let rows = journal_column(
            self.data_dir,
            "SELECT account FROM wallet_accounts WHERE email = 'bob@example.com'",
        )?;
        let hex = rows
            .first()
            .context("the broker opened no wallet for bob")?;
        Ok(hex.parse()?)
    }

    /// Bob's mail client writes `m`, his provider signs it, it arrives at the broker.
    fn mail(&mut self, d: &Demo, label: &str, m: Plain<'_>) -> anyhow::Result<String> {
        self.sent += 1;
        let id = format!(
            "demo.{}.{}@example.com",
            self.sent,
            hex::encode(rand::random::<[u8; 6]>())
        );
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_secs() as i64;
        let mut raw = format!(
            "From: Bob <{BOB_EMAIL}>\r\nTo: {WATCHER_EMAIL}\r\nSubject: {}\r\nDate: {}\r\nMessage-ID: <{id}>\r\n",
            m.subject,
            mail_parser::DateTime::from_timestamp(now).to_rfc822()
        );
        if let Some(parent) = m.in_reply_to {
            raw.push_str(&format!(
                "In-Reply-To: <{parent}>\r\nReferences: <{parent}>\r\n"
            ));
        }
        raw.push_str("MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n");
        raw.push_str(m.first);
        raw.push_str("\r\n");
        if let Some(q) = m.quoted {
            raw.push_str("\r\nOn Monday, the sender wrote:\r\n");
            for l in q.lines() {
                raw.push_str(&format!("> {l}\r\n"));
            }
        }
        let file = self
            .inbox
            .join(format!("{:04}-bob-wallet.eml", 10 + self.sent));
        std::fs::write(&file, self.example_com.sign(raw.as_bytes()))?;
        let shown = if m.in_reply_to.is_some() || m.first.starts_with("bind") {
            format!("\"{}\"", short(m.first, 60))
        } else {
            format!("Subject \"{}\"", m.subject)
        };
        d.line(
            label,
            format!("{shown} ({}, DKIM d=example.com)", d.rel(&file)),
        );
        Ok(id)
    }

    /// Runs the watcher once and shows what it sent.
    async fn answers(&mut self, d: &Demo) -> anyhow::Result<Vec<Sent>> {
        self.watcher.run_once().await.context("the watcher's run")?;
        let mut out = Vec::new();
        for path in list_eml(self.replies)? {
            if self.seen.contains(&path) {
                continue;
            }
            self.seen.push(path.clone());
            let raw = std::fs::read(&path)?;
            let Some(msg) = mail_parser::MessageParser::default().parse(&raw) else {
                continue;
            };
            let sent = Sent {
                to: msg
                    .to()
                    .and_then(|a| a.first())
                    .and_then(|a| a.address())
                    .unwrap_or("?")
                    .to_string(),
                message_id: msg.message_id().unwrap_or_default().to_string(),
                text: msg.body_text(0).unwrap_or_default().into_owned(),
                path: path.clone(),
            };
            let signed = msg.header("DKIM-Signature").is_some();
            let threaded =
                msg.in_reply_to().as_text().is_some() || msg.in_reply_to().as_text_list().is_some();
            d.line(
                if sent.to.eq_ignore_ascii_case(BOB_EMAIL) {
                    "broker replies"
                } else {
                    "broker mails"
                },
                format!(
                    "to {}: \"{}\" ({}{})",
                    sent.to,
                    msg.subject().unwrap_or(""),
                    if threaded { "threaded, " } else { "" },
                    if signed { "DKIM-signed" } else { "unsigned" }
                ),
            );
            for l in key_lines(&sent.text) {
                d.line("", format!("| {}", short(&l, 100)));
            }
            out.push(sent);
        }
        Ok(out)
    }
}

/// A mail the broker sent.
struct Sent {
    to: String,
    message_id: String,
    text: String,
    path: PathBuf,
}

/// The lines of a broker's mail worth showing: what happened, balances, codes, ids.
fn key_lines(text: &str) -> Vec<String> {
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('>'))
        .collect();
    let mut out: Vec<String> = Vec::new();
    let first = lines
        .iter()
        .position(|l| !l.ends_with(','))
        .unwrap_or_default();
    for (i, l) in lines.iter().enumerate() {
        let wanted = i == first
            || [
                "holds",
                "confirm ",
                "Transaction id",
                "owner key",
                "received",
                "paid",
                "Paid",
            ]
            .iter()
            .any(|k| l.contains(k));
        if wanted && !l.contains("sm1.") && out.len() < 6 {
            out.push(l.to_string());
        }
    }
    out
}

/// The code in a confirmation request (`confirm XXXX-XXXX`).
fn confirm_code(text: &str) -> Option<String> {
    let at = text.find("confirm ")? + "confirm ".len();
    let code: String = text[at..].chars().take(9).collect();
    (code.len() == 9 && code.as_bytes()[4] == b'-').then_some(code)
}
