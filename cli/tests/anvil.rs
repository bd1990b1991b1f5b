//! The `springmail` binary against a real dev chain (anvil with chain id 8890, so
//! amounts are QTUM and addresses base58). Run by `scripts/test`, which starts the
//! dev stack and sets SPRINGMAIL_ANVIL_URL; by hand:
//!
//! ```text
//! contracts/node_modules/.bin/anvil --hardfork shanghai --chain-id 8890 --port 18547 --silent &
//! SPRINGMAIL_ANVIL_URL=http://127.0.0.1:18547 cargo test -p springmail-cli --test anvil -- --ignored
//! ```

mod common;

use common::Sandbox;

/// anvil's funded dev accounts. Each test sends from an account of its own: tests run in
/// parallel, and two processes sending from one account race for its nonces.
const ACCOUNT_0: &str = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";
const ACCOUNT_1: &str = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d";
const ACCOUNT_2: &str = "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a";
const ACCOUNT_3: &str = "0x7c852118294e51e653712a81e05800f419141751be58f605c371e15141b007a6";
const ACCOUNT_4: &str = "0x47e179ec197488593b187f80a00eb0da91f1b9d0b13f8733639f19c30a34926a";
const ACCOUNT_5: &str = "0x8b3a350cf5c34c9194ca85829a2df0ec3153be0318b5e2d3348e872092edffba";
const ACCOUNT_6: &str = "0x92db14e403b83dfe3df233f83dfa3a0d7096f21ca9b0d6d6b8d88b2b4ec1564e";
const ACCOUNT_7: &str = "0x4bbbf85ce3377467afe5d46f804f221813b2bb87f24d81f60f1fcdbf7cbf4356";
const ACCOUNT_8: &str = "0xdbda1821b80551c9d65939329250298aa3472ba22feea921c0cf5d620ea67b97";
const ACCOUNT_9: &str = "0x2a871d0798f97d79848a013d4936a73bf4cc922c825d33c1cf7073dff6d409c6";

fn anvil_url() -> String {
    std::env::var("SPRINGMAIL_ANVIL_URL")
        .expect("set SPRINGMAIL_ANVIL_URL to an anvil with --chain-id 8890 (scripts/test does)")
}

/// A sandbox with a fresh escrow deployed by Alice and a springmail.toml naming it.
fn deployed(alice_key: &str) -> Sandbox {
    let mut sb = Sandbox::new();
    sb.env("SPRINGMAIL_RPC_URL", &anvil_url())
        .env("SPRINGMAIL_PRIVATE_KEY", alice_key);
    let d = sb.run(&["--json", "deploy"]).json();
    let escrow = d["escrow"].as_str().unwrap();
    let block = d["block"].as_str().unwrap();
    sb.write(
        "springmail.toml",
        &format!(
            "[chain]\nbackend = \"evm-rpc\"\nchain_id = 8890\nescrow = \"{escrow}\"\nstart_block = {block}\n\
             [mail]\naddress = \"alice@example.org\"\nname = \"Alice\"\n"
        ),
    );
    sb
}

fn bob_address(sb: &Sandbox, bob_key: &str) -> String {
    let w = sb
        .run_env(
            &["--json", "wallet", "import", "--keystore", "bob.json"],
            &[
                ("SPRINGMAIL_PRIVATE_KEY", bob_key),
                ("SPRINGMAIL_PASSWORD", "bob"),
            ],
        )
        .json();
    // On an EVM chain the account is the keccak address, shown and accepted as 0x only.
    w["evm_account"].as_str().unwrap().to_string()
}

#[test]
#[ignore = "needs anvil from the dev stack: run scripts/test"]
fn send_status_claim_status_on_anvil() {
    let sb = deployed(ACCOUNT_0);
    let bob = bob_address(&sb, ACCOUNT_1);
    assert!(bob.starts_with("0x"), "{bob}");
    let sent = sb
        .run(&[
            "--json",
            "send",
            "--to",
            "Bob@Example.com",
            "--amount",
            "1.5 QTUM",
            "--link-only",
            "--out",
            "bob.eml",
        ])
        .json();
    assert_eq!(sent["amount"], "1.5 QTUM");
    assert_eq!(sent["units"], "150000000");
    assert!(sent["notification"].as_str().unwrap().contains("bob.eml"));
    let link = sent["bare_link"].as_str().unwrap().to_string();
    let eml = std::fs::read_to_string(sb.file("bob.eml")).unwrap();
    assert!(
        eml.contains("To: <Bob@Example.com>") && eml.contains("Alice sent you 1.5 QTUM"),
        "{eml}"
    );

    let open = sb.run(&["--json", "status", &link]).json();
    assert_eq!(open["state"], "open");
    assert_eq!(open["amount"], "1.5 QTUM");

    // Bob claims with his own key (from his keystore), paying his own gas.
    let claimed = sb
        .run_env(
            &[
                "--json",
                "--keystore",
                "bob.json",
                "claim",
                &link,
                "--to",
                &bob,
            ],
            &[
                ("SPRINGMAIL_PRIVATE_KEY", ""),
                ("SPRINGMAIL_PASSWORD", "bob"),
            ],
        )
        .json();
    assert_eq!(claimed["to"], bob.as_str());
    let done = sb
        .run(&["--json", "status", sent["claim_key"].as_str().unwrap()])
        .json();
    assert_eq!(done["state"], "claimed");
    assert_eq!(done["to"], bob.as_str());
    assert_eq!(done["tx"], claimed["tx"]);

    // Claiming again is one clear line, exit 1.
    let again = sb.run_env(
        &["claim", &link, "--to", &bob],
        &[("SPRINGMAIL_PRIVATE_KEY", ACCOUNT_1)],
    );
    assert!(again.fails(1).contains("claimed"));
}

#[test]
#[ignore = "needs anvil from the dev stack: run scripts/test"]
fn email_mode_claim_writes_a_threaded_claim_mail_and_checks_the_address() {
    let sb = deployed(ACCOUNT_2);
    let watcher = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8";
    let sent = sb
        .run(&[
            "--json",
            "send",
            "--to",
            "carol@example.net",
            "--amount",
            "2 QTUM",
            "--watcher",
            watcher,
            "--watcher-email",
            "watcher@broker.test",
            "--out",
            "carol.eml",
        ])
        .json();
    let link = sent["bare_link"].as_str().unwrap().to_string();
    let notification = std::fs::read_to_string(sb.file("carol.eml")).unwrap();
    assert!(
        notification.contains("Reply-To: <watcher@broker.test>"),
        "{notification}"
    );
    // On an EVM backend --to is a 0x account (a q… is refused there).
    let to = "0x90F79bf6EB2c4f870365E785982E1f101E93b906";
    // Not her address: refused before anything is written.
    let wrong = sb.run(&[
        "claim",
        &link,
        "--to",
        to,
        "--email",
        "eve@example.net",
        "--watcher-email",
        "watcher@broker.test",
        "--out",
        "x.eml",
    ]);
    assert!(wrong.fails(2).contains("not sent to eve@example.net"));
    assert!(!sb.file("x.eml").exists());
    // Direct claiming is impossible in email mode; the claim mail is written instead.
    let out = sb
        .run(&[
            "--json",
            "claim",
            &link,
            "--to",
            to,
            "--email",
            "carol@example.net",
            "--watcher-email",
            "watcher@broker.test",
            "--out",
            "claim.eml",
        ])
        .json();
    assert_eq!(out["max_fee"], "0.01 QTUM");
    let claim = std::fs::read_to_string(sb.file("claim.eml")).unwrap();
    let parent = notification
        .lines()
        .find(|l| l.starts_with("Message-ID:"))
        .unwrap()
        .trim_start_matches("Message-ID:")
        .trim();
    assert!(
        claim.contains(&format!("In-Reply-To: {parent}")),
        "threads under the notification:\n{claim}"
    );
    assert!(claim.contains("application/bismtp"));
    assert!(claim.contains("-----BEGIN BISMTP CLAIM-----"));
    assert!(
        !claim.contains(&link[4..30]),
        "the link's secret never goes into the claim mail"
    );
    // Without a watcher mailbox or SMTP, the block is printed to paste into a reply.
    let printed = sb.run(&["claim", &link, "--to", to, "--email", "carol@example.net"]);
    assert!(printed.ok().contains("-----END BISMTP CLAIM-----"));
    // The deposit is still open: nothing was claimed by signing.
    assert_eq!(sb.run(&["--json", "status", &link]).json()["state"], "open");
}

#[test]
#[ignore = "needs anvil from the dev stack: run scripts/test"]
fn csv_rerun_never_pays_twice() {
    let sb = deployed(ACCOUNT_3);
    let escrow = escrow_of(&sb);
    sb.write(
        "pay.csv",
        "email,amount\nbob@example.com,1 QTUM\ncarol@example.net,0.25 QTUM\ndave@example.org,3\n",
    );
    let first = sb
        .run(&[
            "--json",
            "send",
            "--csv",
            "pay.csv",
            "--link-only",
            "--out",
            "mails",
        ])
        .json();
    assert_eq!(first["sent"], "3", "{first}");
    assert_eq!(std::fs::read_dir(sb.file("mails")).unwrap().count(), 3);
    let held = balance(&escrow);
    assert_eq!(held, 425_000_000, "1 + 0.25 + 3 QTUM in satoshi");

    // The same command again: everything is done, nothing is paid.
    let again = sb
        .run(&[
            "--json",
            "send",
            "--csv",
            "pay.csv",
            "--link-only",
            "--out",
            "mails",
        ])
        .json();
    assert_eq!(
        (again["sent"].as_str(), again["skipped"].as_str()),
        (Some("0"), Some("3")),
        "{again}"
    );

    // A crash after row 1 was submitted but before its transaction id was recorded.
    let results = sb.file("pay.results.csv");
    let mut lines = read_rows(&results);
    let row1_tx = std::mem::take(&mut lines[1][6]);
    lines[1][8].clear(); // and its notification was not sent either
    write_rows(&results, &lines);
    let third = sb
        .run(&[
            "--json",
            "send",
            "--csv",
            "pay.csv",
            "--link-only",
            "--out",
            "mails",
        ])
        .json();
    assert_eq!(
        (third["sent"].as_str(), third["recovered"].as_str()),
        (Some("0"), Some("1")),
        "{third}"
    );
    assert_eq!(
        read_rows(&results)[1][6],
        row1_tx,
        "the recovered row gets its original transaction"
    );
    assert_eq!(balance(&escrow), held, "nothing was paid twice");
    let st = sb
        .run(&["--json", "status", "--csv", "pay.results.csv"])
        .json();
    let states: Vec<&str> = st
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["open", "open", "open"]);
}

#[test]
#[ignore = "needs anvil from the dev stack: run scripts/test"]
fn csv_row_recorded_but_never_submitted_is_sent_under_its_recorded_key() {
    use springmail_sdk::email::Salt;
    use springmail_sdk::keys::ClaimSecret;
    use springmail_sdk::link::ClaimLink;
    let sb = deployed(ACCOUNT_4);
    let escrow = escrow_of(&sb);
    sb.write("pay.csv", "bob@example.com,1 QTUM\n");
    // The state a crash between "write the key down" and "submit" leaves: key and link, no tx.
    let link = ClaimLink {
        chain_id: 8890,
        escrow: escrow.parse().unwrap(),
        secret: ClaimSecret::random(),
        salt: Salt::random(),
    };
    let key = link.claim_key().to_checksum(None);
    let header = "row,email,amount,watcher,claim_key,link,tx,expiry,notified,error";
    sb.write(
        "pay.results.csv",
        &format!(
            "{header}\n1,bob@example.com,1 QTUM,,{key},{},,,,\n",
            link.to_bare()
        ),
    );
    let run = sb
        .run(&[
            "--json",
            "send",
            "--csv",
            "pay.csv",
            "--link-only",
            "--no-mail",
        ])
        .json();
    assert_eq!(run["sent"], "1", "{run}");
    assert_eq!(balance(&escrow), 100_000_000);
    let st = sb.run(&["--json", "status", &link.to_bare()]).json();
    assert_eq!(
        st["state"], "open",
        "the deposit is under exactly the recorded key"
    );
    // The link recorded before submitting is the one that claims it.
    let bob = bob_address(&sb, ACCOUNT_5);
    sb.run_env(
        &["claim", &link.to_bare(), "--to", &bob],
        &[("SPRINGMAIL_PRIVATE_KEY", ACCOUNT_5)],
    )
    .ok();
    assert_eq!(balance(&escrow), 0);
}

fn escrow_of(sb: &Sandbox) -> String {
    let cfg = std::fs::read_to_string(sb.file("springmail.toml")).unwrap();
    cfg.lines()
        .find_map(|l| l.strip_prefix("escrow = "))
        .unwrap()
        .trim_matches('"')
        .to_string()
}

fn read_rows(path: &std::path::Path) -> Vec<Vec<String>> {
    // The rows written here have no quoted commas (links and hex only).
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| l.split(',').map(String::from).collect())
        .collect()
}

fn write_rows(path: &std::path::Path, rows: &[Vec<String>]) {
    std::fs::write(
        path,
        rows.iter().map(|l| l.join(",") + "\n").collect::<String>(),
    )
    .unwrap();
}

/// The native balance of an address, straight from the node (one HTTP request).
fn balance(address: &str) -> u128 {
    use std::io::{Read, Write};
    let url = anvil_url();
    let host = url.trim_start_matches("http://").trim_end_matches('/');
    let body = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"eth_getBalance","params":["{address}","latest"]}}"#
    );
    let mut s = std::net::TcpStream::connect(host).expect("anvil");
    write!(
        s,
        "POST / HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    let json = resp.split("\r\n\r\n").nth(1).unwrap();
    let v: serde_json::Value = serde_json::from_str(json.trim()).unwrap();
    u128::from_str_radix(v["result"].as_str().unwrap().trim_start_matches("0x"), 16).unwrap()
}

/// A one-message SMTP server on 127.0.0.1: returns its port and a handle yielding
/// (envelope sender, recipients, message).
fn smtp_once() -> (u16, std::thread::JoinHandle<(String, Vec<String>, String)>) {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let handle = std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let mut out = stream.try_clone().unwrap();
        let mut input = BufReader::new(stream);
        let (mut from, mut rcpt, mut data) = (String::new(), Vec::new(), String::new());
        out.write_all(b"220 test ESMTP\r\n").unwrap();
        let mut line = String::new();
        loop {
            line.clear();
            if input.read_line(&mut line).unwrap() == 0 {
                break;
            }
            let upper = line.to_ascii_uppercase();
            if upper.starts_with("EHLO") || upper.starts_with("HELO") {
                out.write_all(b"250-test\r\n250 8BITMIME\r\n").unwrap();
            } else if upper.starts_with("MAIL FROM:") {
                from = line[10..].trim().to_string();
                out.write_all(b"250 ok\r\n").unwrap();
            } else if upper.starts_with("RCPT TO:") {
                rcpt.push(line[8..].trim().to_string());
                out.write_all(b"250 ok\r\n").unwrap();
            } else if upper.starts_with("DATA") {
                out.write_all(b"354 go\r\n").unwrap();
                loop {
                    line.clear();
                    input.read_line(&mut line).unwrap();
                    if line == ".\r\n" {
                        break;
                    }
                    data.push_str(&line);
                }
                out.write_all(b"250 queued\r\n").unwrap();
            } else if upper.starts_with("QUIT") {
                out.write_all(b"221 bye\r\n").unwrap();
                break;
            } else {
                out.write_all(b"250 ok\r\n").unwrap();
            }
        }
        (from, rcpt, data)
    });
    (port, handle)
}

#[test]
#[ignore = "needs anvil from the dev stack: run scripts/test"]
fn send_mails_the_notification_through_smtp() {
    let mut sb = deployed(ACCOUNT_6);
    let (port, server) = smtp_once();
    sb.env("SPRINGMAIL_SMTP_URL", &format!("smtp://127.0.0.1:{port}"));
    let sent = sb
        .run(&[
            "--json",
            "send",
            "--to",
            "bob@example.com",
            "--amount",
            "0.5 QTUM",
            "--link-only",
        ])
        .json();
    assert!(
        sent["notification"]
            .as_str()
            .unwrap()
            .contains("via smtp://127.0.0.1"),
        "{sent}"
    );
    let (from, rcpt, data) = server.join().unwrap();
    assert_eq!(from, "<alice@example.org>");
    assert_eq!(rcpt, ["<bob@example.com>"]);
    assert!(data.contains("Subject: Alice sent you 0.5 QTUM"), "{data}");
    // The link is in the mail (quoted-printable may wrap it: join soft line breaks).
    let body = data.replace("=\r\n", "");
    assert!(body.contains(sent["bare_link"].as_str().unwrap()));
}

#[test]
#[ignore = "needs anvil from the dev stack: run scripts/test"]
fn undelivered_notification_keeps_the_deposit_and_saves_the_mail() {
    let mut sb = deployed(ACCOUNT_8);
    // Nothing listens on port 9: the deposit is made, the mail cannot be sent.
    sb.env("SPRINGMAIL_SMTP_URL", "smtp://127.0.0.1:9");
    let out = sb.run(&[
        "send",
        "--to",
        "bob@example.com",
        "--amount",
        "0.5 QTUM",
        "--link-only",
    ]);
    let line = out.fails(1);
    assert!(line.contains("notification"), "{line}");
    assert!(
        out.stderr.contains("the money is deposited"),
        "{}",
        out.stderr
    );
    assert!(
        out.stdout.contains("claim link"),
        "the link is still handed over:\n{}",
        out.stdout
    );
    let saved: Vec<_> = std::fs::read_dir(sb.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("springmail-notification-")
        })
        .collect();
    assert_eq!(saved.len(), 1, "the notification is saved to send later");
}

#[test]
#[ignore = "needs anvil from the dev stack: run scripts/test"]
fn a_refund_that_would_revert_is_refused_unsent_and_expiry_counts_from_now() {
    let sb = deployed(ACCOUNT_7);
    let before_send = wall_clock();
    let sent = sb
        .run(&[
            "--json",
            "send",
            "--to",
            "bob@example.com",
            "--amount",
            "0.1 QTUM",
            "--link-only",
            "--no-mail",
            "--expires",
            "45s",
        ])
        .json();
    // 45 s from now, not from the last block's time (which may be long past).
    let expiry = sent["expiry"].as_u64().unwrap();
    assert!(expiry >= before_send + 45, "{expiry} vs {before_send}");
    assert!(sent["expires"].as_str().unwrap().contains("in 4"), "{sent}");
    let alice = account_of(&sb);
    let nonce = tx_count(&alice);
    // The sender, before expiry, of a deposit that is not cancellable: refused by the
    // simulation, no gas spent.
    let key = sent["claim_key"].as_str().unwrap();
    let out = sb.run(&["refund", key]);
    let line = out.fails(1);
    assert!(line.contains("may not refund"), "{line}");
    assert!(line.contains("nothing was sent"), "{line}");
    assert!(!out.stderr.contains("nothing was paid"), "{}", out.stderr);
    assert_eq!(tx_count(&alice), nonce, "no transaction was sent");
    // A third party: the same.
    let other = sb.run_env(&["refund", key], &[("SPRINGMAIL_PRIVATE_KEY", ACCOUNT_1)]);
    assert!(other.fails(1).contains("nothing was sent"));
}

#[test]
#[ignore = "needs anvil from the dev stack: run scripts/test"]
fn a_send_whose_node_dies_after_broadcast_keeps_and_prints_the_link() {
    let mut sb = deployed(ACCOUNT_9);
    let escrow = escrow_of(&sb);
    let held = balance(&escrow);
    // The node answers until the deposit is broadcast, then only HTTP 503.
    let proxy = Proxy::start(Mode::DieAfterBroadcast);
    sb.env("SPRINGMAIL_RPC_URL", &proxy.url);
    let out = sb.run(&[
        "--json",
        "send",
        "--to",
        "bob@example.com",
        "--amount",
        "0.2 QTUM",
        "--link-only",
        "--no-mail",
    ]);
    assert_eq!(out.code, 3, "{}", out.stderr);
    // One JSON object: the failure, carrying what the sender needs to keep.
    let printed: serde_json::Value = serde_json::from_str(out.stdout.trim()).unwrap();
    assert_eq!(printed["ok"], false, "{printed}");
    assert_eq!(printed["error"]["exit_code"], 3, "{printed}");
    let link = printed["bare_link"].as_str().unwrap().to_string();
    let key = printed["claim_key"].as_str().unwrap().to_string();
    assert!(
        printed["tx"].as_str().unwrap().starts_with("0x"),
        "{printed}"
    );
    assert!(out.stderr.contains("springmail status"), "{}", out.stderr);
    // The record is on disk, owner-only, with the link.
    let record = std::fs::read_dir(sb.file(".local/share/springmail/sent"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    assert!(std::fs::read_to_string(&record).unwrap().contains(&link));
    // The deposit was mined meanwhile; `status` lists it with its link.
    sb.env("SPRINGMAIL_RPC_URL", &anvil_url());
    assert_eq!(balance(&escrow), held + 20_000_000);
    let mine = sb.run(&["--json", "status"]).json();
    let row = mine
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["claim_key"] == key.as_str())
        .unwrap_or_else(|| panic!("{mine}"))
        .clone();
    assert_eq!(row["state"], "open");
    assert!(row["link"].as_str().unwrap().contains(&link), "{row}");
    // And the link claims it.
    let bob = bob_address(&sb, ACCOUNT_5);
    sb.run_env(
        &["claim", &link, "--to", &bob],
        &[("SPRINGMAIL_PRIVATE_KEY", ACCOUNT_5)],
    )
    .ok();
    assert_eq!(balance(&escrow), held);

    // `send --csv`: the run dies after the deposit was broadcast ...
    sb.write("pay.csv", "carol@example.net,0.3 QTUM\n");
    let proxy = Proxy::start(Mode::DieAfterBroadcast);
    let first = sb.run_env(
        &["send", "--csv", "pay.csv", "--link-only", "--no-mail"],
        &[("SPRINGMAIL_RPC_URL", proxy.url.as_str())],
    );
    assert_ne!(first.code, 0);
    let rows = read_rows(&sb.file("pay.results.csv"));
    // The error column may hold quoted commas; pending_tx is the last column.
    let pending = rows[1].last().unwrap().clone();
    assert!(
        pending.starts_with("0x"),
        "the transaction id is recorded: {rows:?}"
    );
    // ... and while the node still holds it unmined, a re-run waits and sends nothing.
    let proxy = Proxy::start(Mode::PendingTx(pending.clone()));
    let second = sb.run_env(
        &["send", "--csv", "pay.csv", "--link-only", "--no-mail"],
        &[("SPRINGMAIL_RPC_URL", proxy.url.as_str())],
    );
    assert!(second.stderr.contains("failed"), "{}", second.stderr);
    let rows = read_rows(&sb.file("pay.results.csv"));
    assert!(
        rows[1].join(",").contains("still waiting to be mined"),
        "{rows:?}"
    );
    assert_eq!(proxy.broadcasts(), 0, "nothing was sent again");
    // Once it is seen mined, the row is recorded with that transaction.
    let third = sb
        .run(&[
            "--json",
            "send",
            "--csv",
            "pay.csv",
            "--link-only",
            "--no-mail",
        ])
        .json();
    assert_eq!(third["recovered"], "1", "{third}");
    assert_eq!(read_rows(&sb.file("pay.results.csv"))[1][6], pending);
    assert_eq!(balance(&escrow), held + 30_000_000, "paid once");
}

fn wall_clock() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// The sandbox's sending account (its SPRINGMAIL_PRIVATE_KEY's), from `wallet import`.
fn account_of(sb: &Sandbox) -> String {
    let key = sb
        .run_env(
            &["--json", "wallet", "import", "--keystore", "me.json"],
            &[("SPRINGMAIL_PASSWORD", "me")],
        )
        .json();
    let _ = std::fs::remove_file(sb.file("me.json"));
    key["evm_account"].as_str().unwrap().to_string()
}

fn rpc(method: &str, params: serde_json::Value) -> serde_json::Value {
    use std::io::{Read, Write};
    let url = anvil_url();
    let host = url.trim_start_matches("http://").trim_end_matches('/');
    let body =
        serde_json::json!({"jsonrpc":"2.0","id":1,"method":method,"params":params}).to_string();
    let mut s = std::net::TcpStream::connect(host).expect("anvil");
    write!(
        s,
        "POST / HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    let json = resp.split("\r\n\r\n").nth(1).unwrap();
    serde_json::from_str::<serde_json::Value>(json.trim()).unwrap()["result"].clone()
}

fn tx_count(address: &str) -> u64 {
    let n = rpc(
        "eth_getTransactionCount",
        serde_json::json!([address, "latest"]),
    );
    u64::from_str_radix(n.as_str().unwrap().trim_start_matches("0x"), 16).unwrap()
}

#[derive(Clone)]
enum Mode {
    /// Forward everything until an `eth_sendRawTransaction`, then answer HTTP 503.
    DieAfterBroadcast,
    /// Forward, but show this transaction as unmined (in the mempool) and count broadcasts.
    PendingTx(String),
}

/// A JSON-RPC proxy in front of anvil that plays a failing or lagging node.
struct Proxy {
    url: String,
    broadcasts: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl Proxy {
    fn start(mode: Mode) -> Proxy {
        use std::sync::atomic::{AtomicBool, AtomicUsize};
        use std::sync::Arc;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let broadcasts = Arc::new(AtomicUsize::new(0));
        let dead = Arc::new(AtomicBool::new(false));
        let counter = broadcasts.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (mode, dead, counter) = (mode.clone(), dead.clone(), counter.clone());
                std::thread::spawn(move || {
                    let _ = serve_proxy(stream, &mode, &dead, &counter);
                });
            }
        });
        Proxy { url, broadcasts }
    }

    fn broadcasts(&self) -> usize {
        self.broadcasts.load(std::sync::atomic::Ordering::SeqCst)
    }
}

fn serve_proxy(
    stream: std::net::TcpStream,
    mode: &Mode,
    dead: &std::sync::atomic::AtomicBool,
    broadcasts: &std::sync::atomic::AtomicUsize,
) -> std::io::Result<()> {
    use std::io::{BufRead, BufReader, Read, Write};
    use std::sync::atomic::Ordering;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut out = stream;
    loop {
        let mut len = 0usize;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line)? == 0 {
                return Ok(());
            }
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            if let Some((k, v)) = l.split_once(':') {
                if k.eq_ignore_ascii_case("content-length") {
                    len = v.trim().parse().unwrap_or(0);
                }
            }
        }
        let mut body = vec![0u8; len];
        reader.read_exact(&mut body)?;
        let req: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        let method = req["method"].as_str().unwrap_or_default().to_string();
        if dead.load(Ordering::SeqCst) {
            out.write_all(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n")?;
            continue;
        }
        let answer = match (mode, method.as_str()) {
            (Mode::PendingTx(tx), "eth_getTransactionReceipt")
                if req["params"][0] == tx.as_str() =>
            {
                serde_json::json!({"jsonrpc":"2.0","id":req["id"],"result":null})
            }
            (Mode::PendingTx(tx), "eth_getTransactionByHash")
                if req["params"][0] == tx.as_str() =>
            {
                let mut t = rpc("eth_getTransactionByHash", req["params"].clone());
                t["blockHash"] = serde_json::Value::Null;
                t["blockNumber"] = serde_json::Value::Null;
                t["transactionIndex"] = serde_json::Value::Null;
                serde_json::json!({"jsonrpc":"2.0","id":req["id"],"result":t})
            }
            _ => {
                if method == "eth_sendRawTransaction" {
                    broadcasts.fetch_add(1, Ordering::SeqCst);
                }
                let mut a = serde_json::json!({"jsonrpc":"2.0","id":req["id"]});
                let full = forward(&body);
                a["result"] = full["result"].clone();
                if !full["error"].is_null() {
                    a["error"] = full["error"].clone();
                    a.as_object_mut().unwrap().remove("result");
                }
                if method == "eth_sendRawTransaction" && matches!(mode, Mode::DieAfterBroadcast) {
                    dead.store(true, Ordering::SeqCst);
                }
                a
            }
        };
        let text = answer.to_string();
        write!(
            out,
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{text}",
            text.len()
        )?;
    }
}

/// A new key holding 100 (anvil) coins, as `0x…` hex, set with `anvil_setBalance`.
fn funded_fresh_key() -> String {
    let key = springmail_sdk::keys::ClaimSecret::random();
    let address = key.address().to_string();
    rpc(
        "anvil_setBalance",
        serde_json::json!([address, "0x56bc75e2d63100000"]),
    );
    format!("0x{}", alloy::hex::encode(key.expose_bytes()))
}

/// One request to anvil, its whole JSON answer.
fn forward(body: &[u8]) -> serde_json::Value {
    use std::io::{Read, Write};
    let url = anvil_url();
    let host = url.trim_start_matches("http://").trim_end_matches('/');
    let mut s = std::net::TcpStream::connect(host).expect("anvil");
    write!(
        s,
        "POST / HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .unwrap();
    s.write_all(body).unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    let json = resp.split("\r\n\r\n").nth(1).unwrap_or_default();
    serde_json::from_str(json.trim()).unwrap_or_default()
}

/// `springmail fees`: a relayer's accrued fees shown, withdrawn in one transfer to the
/// address given, and refused (exit 1, nothing sent) when there is nothing to withdraw.
#[test]
#[ignore = "needs anvil from the dev stack: run scripts/test"]
fn fees_shows_and_withdraws_what_a_relayer_earned() {
    use springmail_sdk::chain::evm_rpc::EvmRpcChain;
    use springmail_sdk::client::SpringMail;
    use springmail_sdk::keys::ClaimSecret;
    use springmail_sdk::link::ClaimLink;
    use std::sync::Arc;

    // Keys of its own: the other tests of this file run at the same time from anvil's
    // ten accounts, and two senders sharing one race for its nonce.
    let (alice, relayer) = (funded_fresh_key(), funded_fresh_key());
    let sb = deployed(&alice);
    let sent = sb
        .run(&[
            "--json",
            "send",
            "--to",
            "bob@example.com",
            "--amount",
            "1 QTUM",
            "--link-only",
            "--out",
            "bob.eml",
        ])
        .json();
    let link = ClaimLink::parse(sent["bare_link"].as_str().unwrap()).unwrap();
    let escrow: alloy::primitives::Address = escrow_of(&sb).parse().unwrap();

    // Nothing earned yet: shown as zero; a withdrawal is refused before anything is sent.
    let relayer_env = [("SPRINGMAIL_PRIVATE_KEY", relayer.as_str())];
    let none = sb.run_env(&["--json", "fees"], &relayer_env).json();
    assert_eq!(none["accrued_units"], "0");
    let relayer_account = none["relayer"].as_str().unwrap().to_string();
    let txs = tx_count(&relayer_account);
    let refused = sb.run_env(&["fees", "--withdraw"], &relayer_env);
    assert!(
        refused.fails(2).contains("no accrued fees"),
        "refused as bad input"
    );
    assert_eq!(tx_count(&relayer_account), txs, "nothing was sent");

    // The relayer submits Bob's signed claim and earns 0.001 QTUM.
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let bytes: [u8; 32] = alloy::hex::decode(&relayer).unwrap().try_into().unwrap();
        let key = ClaimSecret::from_bytes(bytes).unwrap();
        let chain = EvmRpcChain::connect(&anvil_url(), key.signer(), Some(8890))
            .await
            .unwrap();
        let relayer = SpringMail::new(Arc::new(chain), escrow);
        let deposit = relayer.open_deposit_for(&link).await.unwrap();
        let bob = alloy::primitives::Address::repeat_byte(0xb0);
        let now = relayer.now().await.unwrap();
        let signed = relayer
            .sign_claim(&link, &deposit, bob, 100_000, now + 3600)
            .unwrap();
        let r = relayer
            .submit_claim(&deposit, &signed, 100_000, Default::default())
            .await
            .unwrap();
        assert!(r.succeeded());
    });
    let shown = sb.run_env(&["--json", "fees"], &relayer_env).json();
    assert_eq!(shown["accrued_units"], "100000");
    assert_eq!(shown["accrued"], "0.001 QTUM");

    let payee = "0x00000000000000000000000000000000000fee01";
    let before = balance(payee);
    let w = sb
        .run_env(
            &["--json", "fees", "--withdraw", "--to", payee],
            &relayer_env,
        )
        .json();
    assert_eq!(w["amount_units"], "100000");
    assert_eq!(balance(payee), before + 100_000);
    let after = sb.run_env(&["--json", "fees"], &relayer_env).json();
    assert_eq!(after["accrued_units"], "0");
}
