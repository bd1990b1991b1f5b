//! `springmail demo` with every log at TRACE: nothing it prints (stdout) or logs
//! (stderr) contains a private key, a claim key's secret, a salt, a claim link's secret
//! part or a DKIM private key, whole or in part (any 16 hex digits, any 16 characters of
//! their base64 forms, any 8 characters of a link's secret part); and the logs never name a recipient's full address (what the
//! demo prints for its user may: it tells the story of who got paid).
//!
//! The demo makes its keys at random; a hidden flag, `--dump-secrets FILE`, writes them
//! out after the run so this test knows what to look for.

mod common;
mod stack;

use base64::Engine;
use common::Sandbox;

/// Every `n`-character window of `s`.
fn windows(s: &str, n: usize) -> Vec<String> {
    let chars: Vec<char> = s.chars().collect();
    if chars.len() < n {
        return vec![s.to_string()];
    }
    chars.windows(n).map(|w| w.iter().collect()).collect()
}

/// The forms a secret could leak in: hex windows and base64 windows.
fn needles(bytes: &[u8]) -> Vec<String> {
    let mut out = windows(&hex::encode(bytes), 16);
    for engine in [
        &base64::engine::general_purpose::STANDARD,
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
    ] {
        out.extend(windows(&engine.encode(bytes), 16));
    }
    out
}

/// Which needles occur in stdout or stderr (hex ones case-insensitively).
fn find_leaks(needles: &[(String, String)], stdout: &str, stderr: &str) -> Vec<String> {
    let mut leaks = Vec::new();
    for (kind, needle) in needles {
        let hexy = needle.chars().all(|c| c.is_ascii_hexdigit());
        for (stream, text) in [("stdout", stdout), ("stderr", stderr)] {
            let found = if hexy {
                text.to_ascii_lowercase()
                    .contains(&needle.to_ascii_lowercase())
            } else {
                text.contains(needle.as_str())
            };
            if found {
                leaks.push(format!("{kind} in {stream}: {needle}"));
            }
        }
    }
    leaks.sort();
    leaks.dedup();
    leaks
}

fn strings(v: &serde_json::Value, key: &str) -> Vec<String> {
    v[key]
        .as_array()
        .unwrap_or_else(|| panic!("{key} in the dump"))
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect()
}

#[test]
fn the_demo_at_trace_level_leaks_no_secret_and_logs_no_recipient_address() {
    let sb = Sandbox::new();
    let dump = sb.file("secrets.json");
    let run = sb.run_env(
        &["-vv", "demo", "--dump-secrets", dump.to_str().unwrap()],
        &[("RUST_LOG", "trace"), ("RUST_BACKTRACE", "0")],
    );
    run.ok();
    // Logging was on at every level, and the watcher's own events are in it.
    assert!(
        run.stderr.contains("DEBUG") && run.stderr.contains("claim paid"),
        "logging at TRACE was not on:\n{}",
        run.stderr
    );
    let secrets: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&dump).unwrap()).unwrap();

    let mut looked_for: Vec<(String, String)> = Vec::new();
    for kind in ["private_keys", "claim_keys", "salts"] {
        for s in strings(&secrets, kind) {
            let bytes = hex::decode(&s).unwrap();
            for n in needles(&bytes) {
                looked_for.push((kind.to_string(), n));
            }
        }
    }
    // A link's payload: chain id (8) ‖ escrow (20) ‖ claim key (32) ‖ salt (16); from
    // the 38th base64 character on, it is all secret. Links are printed abbreviated, so
    // even 8 characters of that part count as a leak.
    for link in strings(&secrets, "links") {
        let payload = link.strip_prefix("sm1.").expect("a bare link");
        for n in windows(&payload[38..], 8) {
            looked_for.push(("link".into(), n));
        }
    }
    for pem in strings(&secrets, "dkim_keys") {
        let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        let der = base64::engine::general_purpose::STANDARD
            .decode(&body)
            .unwrap();
        for n in windows(&body, 16)
            .into_iter()
            .chain(needles(&der[der.len() - 32..]))
        {
            looked_for.push(("dkim key".into(), n));
        }
    }
    assert!(looked_for.len() > 500, "the dump names the secrets");

    let leaks = find_leaks(&looked_for, &run.stdout, &run.stderr);
    assert!(leaks.is_empty(), "secrets leaked:\n{}", leaks.join("\n"));
    // The finder finds: a planted fragment of a secret is reported.
    let planted = format!("tx 0x{} done", looked_for[0].1);
    assert_eq!(find_leaks(&looked_for[..1], "", &planted).len(), 1);

    let stdout = run.stdout.to_ascii_lowercase();
    let stderr = run.stderr.to_ascii_lowercase();
    for r in strings(&secrets, "recipients") {
        let r = r.to_ascii_lowercase();
        assert!(
            !stderr.contains(&r),
            "the logs name the recipient {r}:\n{}",
            run.stderr
        );
        assert!(stdout.contains(&r), "the demo tells its user about {r}");
    }
    eprintln!(
        "checked {} needles against {} bytes of output and {} bytes of TRACE logs",
        looked_for.len(),
        run.stdout.len(),
        run.stderr.len()
    );
}

/// `springmail watch` at TRACE over the dev stack: IMAP login, SMTP login, a claim
/// fetched, verified, paid and answered. Third-party protocol crates log what they send
/// and receive (async-imap the LOGIN command and every fetched message at TRACE, lettre
/// every SMTP line including AUTH at DEBUG); none of it may reach the log: no password,
/// no key, no salt, no mail body, no recipient address.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the dev stack (dovecot, SMTP, anvil): run scripts/test"]
async fn the_watcher_at_trace_level_logs_no_password_key_salt_body_or_recipient() {
    use springmail_sdk::client::{SendRequest, SpringMail};
    use springmail_sdk::keys::ClaimSecret;
    use springmail_sdk::mail::{claim_mail, ClaimMail};
    use springmail_watcher::testkit::{claim_block, TestDomain};
    use stack::{
        funded, var, write_config, Imap, WatcherConfig, IMAP_PASSWORD_ENV, KEY_ENV, WATCHER,
    };

    const BOB: &str = "bob@example.com";
    const SMTP_PASSWORD_ENV: &str = "RELIABILITY_TEST_SMTP_PASSWORD";
    let anvil = var("SPRINGMAIL_ANVIL_URL");
    let password = var("SPRINGMAIL_MAIL_PASSWORD");
    let (_, sender_chain) = funded(&anvil, 10u128.pow(21)).await;
    let sender = SpringMail::deploy(sender_chain).await.unwrap();
    let (watcher_key, _) = funded(&anvil, 10u128.pow(20)).await;
    let mut req = SendRequest::native(
        BOB,
        springmail_sdk::amount::Amount::from_units(
            50_000_000,
            springmail_sdk::amount::Asset::qtum(),
        )
        .unwrap(),
        std::time::Duration::from_secs(86_400),
    );
    req.watcher = Some(watcher_key.address());
    let ticket = sender.send(req).await.unwrap();
    let example = TestDomain::new("example.com");
    let broker = TestDomain::new("broker.test");
    let block = claim_block(
        &sender,
        &ticket,
        ClaimSecret::random().address(),
        200_000,
        ticket.deposit.expiry - 3_600,
    );
    let built = claim_mail(&ClaimMail {
        from: BOB,
        watcher_email: WATCHER,
        block: &block,
        in_reply_to: None,
        subject: None,
        date: None,
    })
    .unwrap();
    let folder = format!("secrets-{}", hex::encode(rand::random::<[u8; 4]>()));
    let mut imap = Imap::login(
        &var("SPRINGMAIL_IMAP_HOST"),
        var("SPRINGMAIL_IMAP_PORT").parse().unwrap(),
        WATCHER,
        &password,
    );
    imap.cmd(&format!("CREATE {folder}"));
    imap.append(&folder, &example.sign(&built.bytes));

    let sb = Sandbox::new();
    let pem = sb.write("broker.pem", &broker.key_pem);
    let config = sb.file("watcher.toml");
    let smtp_host = var("SPRINGMAIL_SMTP_HOST");
    write_config(
        &config,
        &WatcherConfig {
            data: &sb.file("data"),
            folder: &folder,
            smtp: (&smtp_host, var("SPRINGMAIL_SMTP_PORT").parse().unwrap()),
            smtp_auth: Some((WATCHER, SMTP_PASSWORD_ENV)),
            broker_pem: &pem,
            example: &example,
            escrow: sender.escrow(),
            start_block: sender.start_block(),
        },
    );
    let key_hex = hex::encode(watcher_key.expose_bytes());
    let run = sb.run_env(
        &[
            "-vv",
            "watch",
            "--once",
            "--config",
            config.to_str().unwrap(),
        ],
        &[
            ("RUST_LOG", "trace"),
            (IMAP_PASSWORD_ENV, &password),
            (SMTP_PASSWORD_ENV, &password),
            (KEY_ENV, &format!("0x{key_hex}")),
        ],
    );
    let _ = imap.cmd(&format!("DELETE {folder}"));
    run.ok();
    assert!(
        run.stdout.contains("claimed") && run.stderr.contains("claim paid"),
        "the claim went through\n{}\n{}",
        run.stdout,
        run.stderr
    );
    assert!(run.stderr.contains("TRACE"), "logging at TRACE was on");

    let b64 = base64::engine::general_purpose::STANDARD;
    let mut looked_for: Vec<(String, String)> = vec![
        ("IMAP password".into(), format!("\"{password}\"")),
        ("IMAP password".into(), format!("{password}\\\"")),
        (
            "SMTP AUTH PLAIN".into(),
            b64.encode(format!("\0{WATCHER}\0{password}")),
        ),
        ("SMTP AUTH LOGIN".into(), b64.encode(&password)),
        ("mail body".into(), "BEGIN BISMTP CLAIM".into()),
        ("mail body".into(), "BISMTP".into()),
    ];
    for (kind, bytes) in [
        ("watcher key", watcher_key.expose_bytes().to_vec()),
        ("claim key", ticket.link.secret.expose_bytes().to_vec()),
        ("salt", ticket.link.salt.expose_bytes().to_vec()),
    ] {
        looked_for.extend(needles(&bytes).into_iter().map(|n| (kind.to_string(), n)));
    }
    let body: String = broker
        .key_pem
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    looked_for.extend(
        windows(&body, 16)
            .into_iter()
            .map(|n| ("DKIM key".to_string(), n)),
    );
    // Only the logs (stderr) here: stdout is the summary table.
    let leaks = find_leaks(&looked_for, "", &run.stderr);
    assert!(
        leaks.is_empty(),
        "leaked into the logs:\n{}",
        leaks.join("\n")
    );
    assert!(
        !run.stderr.to_ascii_lowercase().contains(BOB),
        "the logs name the recipient:\n{}",
        run.stderr
    );
    eprintln!(
        "checked {} needles against {} bytes of TRACE logs",
        looked_for.len(),
        run.stderr.len()
    );
}
