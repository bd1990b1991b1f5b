//! Crash safety of the real watcher process: `springmail watch` is killed with SIGKILL
//! at chosen points of its pipeline and at random moments, over and over, while claim
//! mail keeps arriving; then it runs undisturbed until everything is handled. At the end:
//!
//! * **lost**: every delivered mail has exactly one journal entry, `done`, with the
//!   outcome its kind requires (valid claim → claimed; second claim for a deposit,
//!   tampered claim → refused; unsigned → dropped), and the mailbox is empty (filed);
//!   every valid claim's deposit is paid on chain to the payee Bob signed.
//! * **double-paid**: no payee holds more than one payout; no deposit has two
//!   `Claimed` events (the contract forbids it; this checks nobody got around it).
//! * **replies**: every authenticated mail is answered at least once (the test runs the
//!   SMTP server the watcher replies through and counts every message it accepts by
//!   `In-Reply-To`); a missing reply counts as lost. A crash during a hand-over sends
//!   the reply again, so a few mails are answered twice: those are counted
//!   (`duplicate-replies`), and every copy must carry the same Message-ID (so mail
//!   clients fold them); differing copies fail the test. `resent-replies` is the
//!   journal's count of times a reply was sent again after an interrupted hand-over (an upper
//!   bound on the duplicates).
//! * **duplicate submissions**: claim transactions the watcher's account sent per
//!   deposit (a second one could only revert and waste gas; the design says at most one).
//!
//! Chosen kills: `SPRINGMAIL_CRASH_AT=<point>:<nth>` makes the process SIGKILL itself
//! the nth time it reaches the point (watcher/src/crash.rs), cycling through every
//! point. Random kills: the test sends SIGKILL after a random delay (start-up, IMAP,
//! DKIM, journal writes, chain calls, SMTP: wherever it lands).
//!
//! Real services: anvil (a chain outlives the watcher, which the embedded one cannot),
//! dovecot (the watcher reads an IMAP folder of its own; the test APPENDs mail there)
//! and the test's own SMTP server. Run by scripts/test with 50 cycles;
//! `scripts/crash-soak` runs 1,000 (`SPRINGMAIL_CRASH_CYCLES`, `SPRINGMAIL_CRASH_SEED`).

mod stack;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use alloy::primitives::{Address, U256};
use alloy::providers::Provider;
use rand::{Rng, SeedableRng};
use springmail_sdk::client::{DepositStatus, SendRequest, SpringMail, Ticket};
use springmail_sdk::keys::ClaimSecret;
use springmail_sdk::mail::{claim_mail, ClaimMail};
use springmail_watcher::crash::CrashPoint;
use springmail_watcher::testkit::{claim_block, TestDomain};
use stack::{funded, var, write_config, Imap, WatcherConfig, IMAP_PASSWORD_ENV, KEY_ENV, WATCHER};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};

const BOB: &str = "bob@example.com";
const AMOUNT: u128 = 100_000_000;
const FEE: u128 = 100_000;

// ------------------------------------------------------------------ SMTP server

/// Every message the watcher handed over, as bytes.
#[derive(Clone, Default)]
struct Received(Arc<Mutex<Vec<Vec<u8>>>>);

impl Received {
    fn all(&self) -> Vec<Vec<u8>> {
        self.0.lock().unwrap().clone()
    }
}

/// A minimal SMTP server on loopback: accepts everything, records each DATA.
async fn smtp_server() -> (u16, Received) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let received = Received::default();
    let store = received.clone();
    tokio::spawn(async move {
        loop {
            let Ok((sock, _)) = listener.accept().await else {
                continue;
            };
            let store = store.clone();
            tokio::spawn(async move {
                let (r, mut w) = sock.into_split();
                let mut r = tokio::io::BufReader::new(r);
                if w.write_all(b"220 crash-test ESMTP\r\n").await.is_err() {
                    return;
                }
                let mut line = String::new();
                loop {
                    line.clear();
                    match r.read_line(&mut line).await {
                        Ok(0) | Err(_) => return,
                        Ok(_) => {}
                    }
                    let cmd = line.trim_end().to_ascii_uppercase();
                    let reply: &[u8] = if cmd.starts_with("EHLO") {
                        b"250-crash-test\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n"
                    } else if cmd.starts_with("DATA") {
                        if w.write_all(b"354 go on\r\n").await.is_err() {
                            return;
                        }
                        let mut data = Vec::new();
                        loop {
                            let mut l = Vec::new();
                            match r.read_until(b'\n', &mut l).await {
                                Ok(0) | Err(_) => return,
                                Ok(_) => {}
                            }
                            if l == b".\r\n" || l == b".\n" {
                                break;
                            }
                            let l = if l.starts_with(b"..") {
                                &l[1..]
                            } else {
                                &l[..]
                            };
                            data.extend_from_slice(l);
                        }
                        store.0.lock().unwrap().push(data);
                        b"250 stored\r\n"
                    } else if cmd.starts_with("QUIT") {
                        let _ = w.write_all(b"221 bye\r\n").await;
                        return;
                    } else {
                        b"250 ok\r\n"
                    };
                    if w.write_all(reply).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (port, received)
}

// ------------------------------------------------------------------ the world

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// The first claim for a deposit: must be paid.
    Valid,
    /// A second mail claiming the same deposit.
    Second,
    /// The payee changed after signing: bad signature.
    Tampered,
    /// No DKIM.
    Unsigned,
}

struct Sent {
    kind: Kind,
    message_id: String,
    uid: u32,
    /// For Valid: the deposit and its payee.
    paid: Option<(Address, Address)>,
}

struct World {
    sender: SpringMail,
    watcher_key: ClaimSecret,
    example: TestDomain,
    imap: Imap,
    folder: String,
    sent: Vec<Sent>,
}

impl World {
    async fn deliver_cycle(&mut self, i: usize) {
        let mut req = SendRequest::native(
            BOB,
            springmail_sdk::amount::Amount::from_units(
                AMOUNT + i as u128,
                springmail_sdk::amount::Asset::qtum(),
            )
            .unwrap(),
            std::time::Duration::from_secs(7 * 86_400),
        );
        req.watcher = Some(self.watcher_key.address());
        let ticket = self.sender.send(req).await.expect("deposit");
        let payee = ClaimSecret::random().address();
        self.claim(&ticket, payee, Kind::Valid);
        if i.is_multiple_of(3) {
            self.claim(&ticket, ClaimSecret::random().address(), Kind::Second);
        }
        if i % 4 == 1 {
            self.claim(&ticket, payee, Kind::Unsigned);
        }
        if i % 5 == 2 {
            self.claim(&ticket, payee, Kind::Tampered);
        }
    }

    fn claim(&mut self, ticket: &Ticket, payee: Address, kind: Kind) {
        let deadline = ticket.deposit.expiry - 3_600;
        let mut block = claim_block(&self.sender, ticket, payee, 200_000, deadline);
        if kind == Kind::Tampered {
            block.to = Address::repeat_byte(0x66);
        }
        let built = claim_mail(&ClaimMail {
            from: BOB,
            watcher_email: WATCHER,
            block: &block,
            in_reply_to: Some("sm.notification@sender.example.org"),
            subject: None,
            date: None,
        })
        .unwrap();
        let bytes = if kind == Kind::Unsigned {
            built.bytes
        } else {
            self.example.sign(&built.bytes)
        };
        let uid = self.imap.append(&self.folder, &bytes);
        self.sent.push(Sent {
            kind,
            message_id: built.message_id,
            uid,
            paid: (kind == Kind::Valid).then_some((ticket.link.claim_key(), payee)),
        });
    }
}

// ------------------------------------------------------------------ the journal, read-only

struct Row {
    id: i64,
    uid: u32,
    state: String,
    outcome: Option<String>,
    code: Option<String>,
}

/// Messages of the folder, and the outbox as (message row, state).
type Snapshot = (Vec<Row>, Vec<(i64, String)>);

fn journal_rows(path: &Path, folder: &str) -> Option<Snapshot> {
    if !path.exists() {
        return None;
    }
    let c = rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .ok()?;
    c.busy_timeout(Duration::from_secs(5)).ok()?;
    let mut s = c
        .prepare("SELECT id, uid, state, outcome, outcome_code FROM messages WHERE mailbox = ?1 ORDER BY id")
        .ok()?;
    let rows = s
        .query_map([folder], |r| {
            Ok(Row {
                id: r.get(0)?,
                uid: r.get(1)?,
                state: r.get(2)?,
                outcome: r.get(3)?,
                code: r.get(4)?,
            })
        })
        .ok()?
        .collect::<Result<Vec<_>, _>>()
        .ok()?;
    let mut s = c
        .prepare("SELECT message_id, state FROM outbox ORDER BY id")
        .ok()?;
    let outbox = s
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .ok()?
        .collect::<Result<Vec<_>, _>>()
        .ok()?;
    Some((rows, outbox))
}

/// Times the watcher sent a reply again after a crash interrupted its hand-over.
fn resent_replies(path: &Path) -> usize {
    let c = rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .expect("the journal");
    c.query_row("SELECT COALESCE(SUM(resends), 0) FROM outbox", [], |r| {
        r.get::<_, i64>(0)
    })
    .expect("the outbox has resends") as usize
}

/// Everything delivered is done and no reply is waiting.
fn idle(path: &Path, folder: &str, delivered: usize) -> bool {
    match journal_rows(path, folder) {
        Some((rows, outbox)) => {
            rows.len() == delivered
                && rows.iter().all(|r| r.state == "done")
                && outbox.iter().all(|(_, s)| s != "pending" && s != "sending")
        }
        None => false,
    }
}

// ------------------------------------------------------------------ the process

fn spawn(
    bin: &Path,
    config: &Path,
    dir: &Path,
    key: &str,
    crash: Option<&str>,
    log: &Path,
) -> Child {
    let mut c = Command::new(bin);
    c.args(["watch", "--config"])
        .arg(config)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    for (k, _) in std::env::vars() {
        if k.starts_with("SPRINGMAIL_") || k == "RUST_LOG" {
            c.env_remove(k);
        }
    }
    c.env("HOME", dir)
        .env(IMAP_PASSWORD_ENV, var("SPRINGMAIL_MAIL_PASSWORD"))
        .env(KEY_ENV, key);
    if let Some(spec) = crash {
        c.env("SPRINGMAIL_CRASH_AT", spec);
    }
    let logf = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    c.stderr(logf);
    c.spawn().expect("springmail watch starts")
}

fn signal_of(status: std::process::ExitStatus) -> Option<i32> {
    use std::os::unix::process::ExitStatusExt;
    status.signal()
}

fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Claim transactions from `from` to `escrow`, by claim key, in blocks `start..=head`.
async fn claim_txs(
    url: &str,
    from: Address,
    escrow: Address,
    start: u64,
) -> HashMap<Address, usize> {
    use alloy::sol_types::SolCall;
    use springmail_sdk::contract::EmailEscrow;
    let provider = alloy::providers::ProviderBuilder::new().connect_http(url.parse().unwrap());
    let head = provider.get_block_number().await.unwrap();
    let mut out = HashMap::new();
    for n in start..=head {
        let Some(block) = provider.get_block_by_number(n.into()).full().await.unwrap() else {
            continue;
        };
        for tx in block.transactions.txns() {
            use alloy::consensus::Transaction;
            use alloy::network::TransactionResponse;
            if tx.from() != from || tx.to() != Some(escrow) {
                continue;
            }
            if let Ok(call) = EmailEscrow::claimCall::abi_decode(tx.input()) {
                *out.entry(call.claimKey).or_default() += 1;
            }
            // The submitter sends claims verified together in one claimBatch.
            if let Ok(batch) = EmailEscrow::claimBatchCall::abi_decode(tx.input()) {
                for claim in &batch.claims {
                    *out.entry(claim.claimKey).or_default() += 1;
                }
            }
        }
    }
    out
}

// ------------------------------------------------------------------ the test

#[derive(Default, Debug)]
struct Counts {
    cycles: usize,
    chosen: usize,
    random: usize,
    not_reached: usize,
    mails: usize,
    lost: usize,
    double_paid: usize,
    duplicate_replies: usize,
    duplicate_submissions: usize,
    resent_replies: usize,
    by_point: BTreeMap<String, usize>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the dev stack (dovecot, SMTP, anvil): run scripts/test"]
async fn sigkill_anywhere_loses_nothing_and_pays_once() {
    let cycles: usize = std::env::var("SPRINGMAIL_CRASH_CYCLES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(50);
    let seed: u64 = std::env::var("SPRINGMAIL_CRASH_SEED")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(rand::random);
    eprintln!(
        "crash harness: {cycles} cycles, seed {seed} (SPRINGMAIL_CRASH_SEED={seed} repeats it)"
    );
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_springmail"));
    let anvil = var("SPRINGMAIL_ANVIL_URL");
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();

    let (_, sender_chain) = funded(&anvil, 10u128.pow(24)).await;
    let sender = SpringMail::deploy(sender_chain).await.unwrap();
    let (watcher_key, _) = funded(&anvil, 10u128.pow(22)).await;
    let example = TestDomain::new("example.com");
    let broker = TestDomain::new("broker.test");
    let broker_pem = dir.join("broker.pem");
    std::fs::write(&broker_pem, &broker.key_pem).unwrap();
    let (smtp_port, received) = smtp_server().await;
    let folder = format!("crash-{}", hex::encode(rand::random::<[u8; 4]>()));
    let mut imap = Imap::login(
        &var("SPRINGMAIL_IMAP_HOST"),
        var("SPRINGMAIL_IMAP_PORT").parse().unwrap(),
        WATCHER,
        &var("SPRINGMAIL_MAIL_PASSWORD"),
    );
    imap.cmd(&format!("CREATE {folder}"));
    let data = dir.join("data");
    let config = dir.join("watcher.toml");
    write_config(
        &config,
        &WatcherConfig {
            data: &data,
            folder: &folder,
            smtp: ("127.0.0.1", smtp_port),
            smtp_auth: None,
            broker_pem: &broker_pem,
            example: &example,
            escrow: sender.escrow(),
            start_block: sender.start_block(),
        },
    );
    let key = format!("0x{}", hex::encode(watcher_key.expose_bytes()));
    let journal = data.join("journal.sqlite3");
    let log = dir.join("watcher.log");
    let mut w = World {
        sender,
        watcher_key,
        example,
        imap,
        folder: folder.clone(),
        sent: Vec::new(),
    };
    let mut counts = Counts {
        cycles,
        ..Default::default()
    };
    let started = Instant::now();

    for i in 0..cycles {
        w.deliver_cycle(i).await;
        // Two of every three cycles kill at a chosen point, the third at a random moment.
        let chosen = i % 3 != 2;
        let spec = chosen.then(|| {
            let point = CrashPoint::ALL[(i / 3 * 2 + i % 3) % CrashPoint::ALL.len()];
            let nth = match point {
                CrashPoint::JournalCommit => rng.gen_range(1..=12),
                CrashPoint::AfterReceive
                | CrashPoint::AfterJudge
                | CrashPoint::BeforeReplies
                | CrashPoint::BeforeFiling => rng.gen_range(1..=3),
                _ => rng.gen_range(1..=2),
            };
            format!("{}:{nth}", point.name())
        });
        let delay = Duration::from_millis(rng.gen_range(30..1_500));
        let mut child = spawn(&bin, &config, dir, &key, spec.as_deref(), &log);
        let t0 = Instant::now();
        let mut last_check = Instant::now();
        let how = loop {
            if let Some(status) = child.try_wait().unwrap() {
                assert_eq!(
                    signal_of(status),
                    Some(9),
                    "cycle {i}: the watcher exited by itself ({status}) instead of being killed\n{}",
                    tail(&log, 30)
                );
                break "self";
            }
            let elapsed = t0.elapsed();
            let done_early = last_check.elapsed() > Duration::from_millis(250) && {
                last_check = Instant::now();
                elapsed > Duration::from_millis(400) && idle(&journal, &folder, w.sent.len())
            };
            if (!chosen && elapsed >= delay) || elapsed > Duration::from_secs(8) || done_early {
                child.kill().unwrap();
                child.wait().unwrap();
                break if chosen { "not reached" } else { "random" };
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        match (how, &spec) {
            ("self", Some(s)) => {
                counts.chosen += 1;
                *counts
                    .by_point
                    .entry(s.split(':').next().unwrap().to_string())
                    .or_default() += 1;
            }
            ("random", _) => counts.random += 1,
            _ => counts.not_reached += 1,
        }
    }
    let kills = counts.chosen + counts.random + counts.not_reached;

    // Undisturbed: until every mail is handled.
    let mut child = spawn(&bin, &config, dir, &key, None, &log);
    let deadline = Instant::now() + Duration::from_secs(180);
    while !idle(&journal, &folder, w.sent.len()) {
        assert!(
            Instant::now() < deadline,
            "the watcher did not finish after the last crash\n{}",
            tail(&log, 40)
        );
        if let Some(status) = child.try_wait().unwrap() {
            panic!(
                "the watcher stopped by itself: {status}\n{}",
                tail(&log, 40)
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Let a last filing or reply that raced the check land, then stop it.
    tokio::time::sleep(Duration::from_millis(300)).await;
    child.kill().unwrap();
    child.wait().unwrap();

    // ---- the checks
    let (rows, outbox) = journal_rows(&journal, &folder).expect("the journal");
    counts.mails = w.sent.len();
    counts.resent_replies = resent_replies(&journal);
    let by_uid: HashMap<u32, &Row> = rows.iter().map(|r| (r.uid, r)).collect();
    let mut problems = Vec::new();
    if rows.len() != w.sent.len() {
        problems.push(format!(
            "{} journal entries for {} mails",
            rows.len(),
            w.sent.len()
        ));
    }
    // (In-Reply-To, Message-ID) of every reply the SMTP server took.
    let replies: Vec<(String, String)> = received
        .all()
        .iter()
        .filter_map(|raw| {
            let m = mail_parser::MessageParser::default().parse(raw)?;
            Some((
                m.in_reply_to().as_text()?.to_string(),
                m.message_id().unwrap_or_default().to_string(),
            ))
        })
        .collect();
    let mut reply_ids: HashMap<&str, Vec<&str>> = HashMap::new();
    for (irt, mid) in &replies {
        reply_ids
            .entry(irt.as_str())
            .or_default()
            .push(mid.as_str());
    }
    let outbox_state: HashMap<i64, Vec<&str>> =
        outbox.iter().fold(HashMap::new(), |mut m, (id, s)| {
            m.entry(*id).or_default().push(s.as_str());
            m
        });
    for s in &w.sent {
        let Some(row) = by_uid.get(&s.uid) else {
            counts.lost += 1;
            problems.push(format!(
                "{:?} mail uid {} has no journal entry",
                s.kind, s.uid
            ));
            continue;
        };
        let want = match s.kind {
            Kind::Valid => "claimed",
            Kind::Second | Kind::Tampered => "refused",
            Kind::Unsigned => "dropped",
        };
        if row.state != "done" || row.outcome.as_deref() != Some(want) {
            counts.lost += 1;
            problems.push(format!(
                "{:?} mail uid {}: {} {:?} {:?}, want {want}",
                s.kind, s.uid, row.state, row.outcome, row.code
            ));
        }
        let ids = reply_ids
            .get(s.message_id.as_str())
            .cloned()
            .unwrap_or_default();
        let n = ids.len();
        let states = outbox_state.get(&row.id).cloned().unwrap_or_default();
        if n > 1 {
            counts.duplicate_replies += n - 1;
            if ids.iter().any(|m| *m != ids[0]) {
                problems.push(format!(
                    "{:?} mail uid {}: {n} replies with different Message-IDs {ids:?}",
                    s.kind, s.uid
                ));
            }
        }
        if s.kind == Kind::Unsigned && (n > 0 || !states.is_empty()) {
            problems.push(format!("unsigned mail uid {} was answered", s.uid));
        }
        if s.kind != Kind::Unsigned && n == 0 {
            counts.lost += 1;
            problems.push(format!(
                "{:?} mail uid {}: no reply (outbox {states:?})",
                s.kind, s.uid
            ));
        }
    }
    let submissions = claim_txs(
        &anvil,
        w.watcher_key.address(),
        w.sender.escrow(),
        w.sender.start_block(),
    )
    .await;
    for s in &w.sent {
        let Some((claim_key, payee)) = s.paid else {
            continue;
        };
        let balance = w.sender.chain().balance(payee).await.unwrap();
        let amount = match w.sender.status(claim_key).await.unwrap() {
            DepositStatus::Claimed { amount, to, .. } if to == payee => amount,
            other => {
                counts.lost += 1;
                problems.push(format!(
                    "deposit {claim_key} is {}, not claimed to {payee}",
                    other.name()
                ));
                continue;
            }
        };
        let payout = U256::from(amount - FEE);
        if balance > payout {
            counts.double_paid += 1;
            problems.push(format!(
                "payee {payee} holds {balance}, more than the payout {payout}"
            ));
        } else if balance != payout {
            counts.lost += 1;
            problems.push(format!(
                "payee {payee} holds {balance}, not the payout {payout}"
            ));
        }
        let n = submissions.get(&claim_key).copied().unwrap_or(0);
        if n > 1 {
            counts.duplicate_submissions += 1;
        }
    }
    let left = w.imap.count(&folder);
    if left != 0 {
        problems.push(format!("{left} mails left unfiled in {folder}"));
    }
    let _ = w.imap.cmd(&format!("DELETE {folder}"));

    let points: Vec<String> = counts
        .by_point
        .iter()
        .map(|(p, n)| format!("{p}={n}"))
        .collect();
    println!(
        "crash harness: cycles={} kills={} (at chosen points {}, random {}, chosen point not reached {}) mails={} \
         lost={} double-paid={} duplicate-replies={} resent-replies={} duplicate-submissions={} in {:.0}s, seed {seed}\n  chosen kills by point: {}",
        counts.cycles,
        kills,
        counts.chosen,
        counts.random,
        counts.not_reached,
        counts.mails,
        counts.lost,
        counts.double_paid,
        counts.duplicate_replies,
        counts.resent_replies,
        counts.duplicate_submissions,
        started.elapsed().as_secs_f64(),
        points.join(" ")
    );
    assert!(
        problems.is_empty(),
        "{} problems:\n{}\n--- watcher log\n{}",
        problems.len(),
        problems.join("\n"),
        tail(&log, 30)
    );
    assert_eq!(
        counts.duplicate_submissions, 0,
        "a deposit got two claim transactions"
    );
    assert!(kills >= cycles, "every cycle ends in a kill");
}
