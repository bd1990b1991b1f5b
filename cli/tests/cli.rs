//! The `springmail` binary without any service: help, the demo, wallets, and the one
//! clear line (plus a hint, plus a non-zero exit code) for every kind of bad input.

mod common;

use common::Sandbox;

const SUBCOMMANDS: &[&[&str]] = &[
    &["wallet", "new"],
    &["wallet", "import"],
    &["wallet", "show"],
    &["deploy"],
    &["send"],
    &["claim"],
    &["refund"],
    &["status"],
    &["watch"],
    &["demo"],
];

/// A valid link for a deposit that does not exist anywhere (chain 8890).
const SOME_LINK: &str =
    "sm1.AAAAAAAAIrpfvbIxVniv7LNn8DLZP2QvZBgKo15d2L_n6of9xllM1WomXDUfnVSSbt43cLOMYKIA2UbmPElgITs1P2E4I2eQSrrVww";

#[test]
fn top_level_help_lists_every_command_with_examples() {
    let sb = Sandbox::new();
    let out = sb.run(&["--help"]);
    let text = out.ok();
    for cmd in [
        "wallet", "deploy", "send", "claim", "refund", "status", "watch", "demo",
    ] {
        assert!(text.contains(cmd), "--help does not mention {cmd}:\n{text}");
    }
    assert!(text.contains("Examples:"), "{text}");
    assert!(text.contains("Exit codes"), "{text}");
}

#[test]
fn every_subcommand_help_has_an_example() {
    let sb = Sandbox::new();
    for cmd in SUBCOMMANDS {
        let mut args = cmd.to_vec();
        args.push("--help");
        let out = sb.run(&args);
        let text = out.ok();
        assert!(
            text.contains("Example"),
            "`springmail {}` has no example:\n{text}",
            cmd.join(" ")
        );
        assert!(
            text.contains("springmail "),
            "`springmail {}`'s example shows no command:\n{text}",
            cmd.join(" ")
        );
    }
}

#[test]
fn no_arguments_prints_help_and_fails() {
    let out = Sandbox::new().run(&[]);
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("Usage"), "{}", out.stderr);
}

#[test]
fn demo_tells_the_whole_story_offline() {
    let sb = Sandbox::new();
    let started = std::time::Instant::now();
    let out = sb.run(&["demo"]);
    let text = out.ok();
    for milestone in [
        "embedded development chain",
        "escrow contract is deployed",
        "Alice sends 1.5 QTUM to bob@example.com (link mode",
        "Alice sends 2.5 QTUM to carol@example.net (email mode",
        "Reply-To watcher@broker.test",
        "bob now has      1.5 QTUM",
        "Carol's claim    claimed",
        "the forged claim dropped",
        "threaded: yes, DKIM-signed by broker.test: yes",
        "carol now has    2.499 QTUM",
        "dave's deposit   refunded: 0.5 QTUM back to alice",
        // The mailbox wallet: 2 QTUM in, less the watcher's fee; 0.5 paid to Carol
        // after the code; the rest withdrawn with Bob's own key.
        "Alice sends 2 QTUM to bob@example.com (email mode",
        "bob's wallet     1.999 QTUM\n",
        "bob's wallet     1.999 QTUM (nothing moved yet)",
        "reply to this mail with: confirm ",
        "bob's wallet     1.499 QTUM\n",
        "broker mails     to carol@example.net",
        "is now your wallet's owner key",
        "bob now has      2.999 QTUM (was 1.5 QTUM)",
        "bob's wallet     0 QTUM at the broker",
        "carol's new      open: 0.5 QTUM",
        "alice            94 QTUM",
        "bob              2.999 QTUM",
        "Done in",
    ] {
        assert!(
            text.contains(milestone),
            "the demo did not print {milestone:?}:\n{text}"
        );
    }
    assert!(
        started.elapsed().as_secs() < 60,
        "the demo took {:?}",
        started.elapsed()
    );
}

#[test]
fn demo_keeps_its_mails_when_asked() {
    let sb = Sandbox::new();
    sb.run(&["demo", "--keep", "kept"]).ok();
    let notes: Vec<_> = std::fs::read_dir(sb.file("kept/alice-outbox"))
        .unwrap()
        .collect();
    assert_eq!(notes.len(), 4);
    let replies: Vec<String> = std::fs::read_dir(sb.file("kept/watcher-replies"))
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .collect();
    // Carol's claim; Bob's claim, balance, confirmation request, receipt and bind
    // replies; and Carol's notification of Bob's payment.
    assert_eq!(replies.len(), 7);
    let to = |who: &str| {
        replies
            .iter()
            .filter(|m| m.contains(&format!("To: <{who}>")))
            .count()
    };
    assert_eq!(to("bob@example.com"), 5);
    assert_eq!(to("carol@example.net"), 2);
    // --keep refuses a directory with something in it.
    let again = sb.run(&["demo", "--keep", "kept"]);
    assert!(again.fails(2).contains("not empty"));
}

#[test]
fn malformed_link_is_one_clear_line() {
    let sb = Sandbox::new();
    let out = sb.run(&[
        "claim",
        "sm1.notalink",
        "--to",
        "qfmYqV4YKpsBcBZVfyH48Zr1nSdUT4GcW5",
    ]);
    let line = out.fails(2);
    assert!(line.contains("claim link"), "{line}");
    let out = sb.run(&[
        "claim",
        "https://claim.example/claim",
        "--to",
        "qfmYqV4YKpsBcBZVfyH48Zr1nSdUT4GcW5",
    ]);
    assert!(out.fails(2).contains("fragment"));
    let out = sb.run(&["status", "sm2.AAAA"]);
    assert!(out.fails(2).contains("version"));
}

#[test]
fn amount_with_nine_decimals_is_refused_before_anything_happens() {
    let sb = Sandbox::new();
    let out = sb.run(&[
        "send",
        "--to",
        "bob@example.com",
        "--amount",
        "1.123456789 QTUM",
    ]);
    let line = out.fails(2);
    assert!(line.contains("8 decimals"), "{line}");
    assert!(
        out.stderr.contains("1.5 QTUM"),
        "the hint shows the format: {}",
        out.stderr
    );
    for bad in ["-1 QTUM", "1e3 QTUM", "0x10", "one QTUM", "1.5 BTC"] {
        let out = sb.run(&[
            "--chain-id",
            "8890",
            "send",
            "--to",
            "bob@example.com",
            "--amount",
            bad,
        ]);
        out.fails(2);
    }
}

#[test]
fn bad_email_addresses_are_refused() {
    let sb = Sandbox::new();
    for bad in [
        "bob@exa_mple.com",
        "bob",
        "bob@",
        "@example.com",
        "bob@example..com",
        "bo b@example.com",
    ] {
        let out = sb.run(&["send", "--to", bad, "--amount", "1 QTUM"]);
        let line = out.fails(2);
        assert!(
            line.contains("email address") || line.contains("domain"),
            "{bad}: {line}"
        );
    }
}

#[test]
fn bad_recipient_address_in_claim_is_refused() {
    let sb = Sandbox::new();
    let out = sb.run(&["claim", SOME_LINK, "--to", "QNotAnAddress0"]);
    out.fails(2);
    let out = sb.run(&["claim", SOME_LINK, "--to", "0x1234"]);
    out.fails(2);
}

#[test]
fn wallet_new_then_show_and_wrong_password() {
    let mut sb = Sandbox::new();
    sb.env("SPRINGMAIL_PASSWORD", "correct horse battery staple");
    let made = sb
        .run(&["--json", "wallet", "new", "--keystore", "me.json"])
        .json();
    let qtum = made["qtum_address"].as_str().unwrap().to_string();
    assert!(qtum.starts_with('q'), "{qtum}");
    assert!(made.get("wif").is_none(), "no key is printed unless asked");
    let ks = std::fs::read_to_string(sb.file("me.json")).unwrap();
    assert!(ks.contains("\"scrypt\"") && ks.contains("aes-256-gcm"));
    // Show needs no password for the addresses.
    let shown = sb
        .run_env(
            &["--json", "wallet", "show", "--keystore", "me.json"],
            &[("SPRINGMAIL_PASSWORD", "")],
        )
        .json();
    assert_eq!(shown["qtum_address"], made["qtum_address"]);
    // The WIF needs the password; a wrong one is one clear line.
    let wif = sb
        .run(&[
            "--json",
            "wallet",
            "show",
            "--keystore",
            "me.json",
            "--show-wif",
        ])
        .json();
    assert!(wif["wif"].as_str().unwrap().starts_with('c'));
    let wrong = sb.run_env(
        &["wallet", "show", "--keystore", "me.json", "--show-wif"],
        &[("SPRINGMAIL_PASSWORD", "wrong")],
    );
    let line = wrong.fails(2);
    assert!(line.contains("wrong password"), "{line}");
    assert!(
        wrong.stderr.contains("SPRINGMAIL_PASSWORD"),
        "{}",
        wrong.stderr
    );
    // A second `new` never overwrites.
    let again = sb.run(&["wallet", "new", "--keystore", "me.json"]);
    assert!(again.fails(2).contains("already exists"));
}

#[test]
fn wallet_without_password_or_terminal_says_how_to_give_one() {
    let sb = Sandbox::new();
    let out = sb.run(&["wallet", "new", "--keystore", "x.json"]);
    let line = out.fails(2);
    assert!(line.contains("SPRINGMAIL_PASSWORD"), "{line}");
    assert!(!sb.file("x.json").exists());
}

#[test]
fn wallet_import_takes_a_hex_key_from_the_environment() {
    let sb = Sandbox::new();
    let out = sb
        .run_env(
            &[
                "--json",
                "--chain-id",
                "8890",
                "wallet",
                "import",
                "--keystore",
                "dev.json",
            ],
            &[
                (
                    "SPRINGMAIL_PRIVATE_KEY",
                    "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80",
                ),
                ("SPRINGMAIL_PASSWORD", "pw"),
            ],
        )
        .json();
    // anvil's account 0, as an EVM account on chain 8890.
    assert!(
        out["evm_account"]
            .as_str()
            .unwrap()
            .contains("0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"),
        "{out}"
    );
}

#[test]
fn missing_keystore_says_how_to_make_one() {
    let sb = Sandbox::new();
    let out = sb.run(&["wallet", "show"]);
    let line = out.fails(2);
    assert!(line.contains("wallet.json"), "{line}");
    assert!(
        out.stderr.contains("springmail wallet new"),
        "{}",
        out.stderr
    );
}

#[test]
fn every_bad_config_key_is_named_at_once() {
    let sb = Sandbox::new();
    sb.write(
        "springmail.toml",
        "[chain]\nbackend = \"solana\"\nescrow = \"0x12\"\ncolour = 1\n[send]\nexpires = \"30\"\n",
    );
    let out = sb.run(&["status", "0x5FbDB2315678afecb367f032d93F642f64180aa3"]);
    let line = out.fails(2);
    // Keys are named as written in the file: `[section] key`.
    for key in [
        "[chain] backend",
        "[chain] escrow",
        "[chain] colour",
        "[send] expires",
    ] {
        assert!(line.contains(key), "{key} missing: {line}");
    }
}

#[test]
fn a_missing_config_file_named_on_the_command_line_is_an_error() {
    let sb = Sandbox::new();
    let out = sb.run(&["--config", "nope.toml", "status", SOME_LINK]);
    assert!(out.fails(2).contains("nope.toml"));
}

#[test]
fn send_without_escrow_says_how_to_deploy() {
    let sb = Sandbox::new();
    let out = sb.run(&[
        "send",
        "--to",
        "bob@example.com",
        "--amount",
        "1 QTUM",
        "--link-only",
        "--no-mail",
    ]);
    out.fails(2);
    assert!(out.stderr.contains("springmail deploy"), "{}", out.stderr);
}

#[test]
fn email_mode_without_watcher_mailbox_is_refused_before_paying() {
    let sb = Sandbox::new();
    let out = sb.run(&[
        "--escrow",
        "0x5FbDB2315678afecb367f032d93F642f64180aa3",
        "send",
        "--to",
        "bob@example.com",
        "--amount",
        "1 QTUM",
        "--watcher",
        "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
    ]);
    assert!(out.fails(2).contains("watcher's mailbox"));
}

#[test]
fn unreachable_node_exits_3_with_a_hint() {
    let sb = Sandbox::new();
    // Port 9 (discard) on loopback: nothing listens there.
    let out = sb.run(&["--rpc", "http://127.0.0.1:9", "status", SOME_LINK]);
    let line = out.fails(3);
    assert!(line.contains("127.0.0.1:9"), "{line}");
    assert!(out.stderr.contains("--rpc"), "{}", out.stderr);
}

#[test]
fn embedded_backend_outside_the_demo_points_to_the_demo() {
    let sb = Sandbox::new();
    let out = sb.run(&["--backend", "embedded", "status", SOME_LINK]);
    out.fails(2);
    assert!(out.stderr.contains("springmail demo"), "{}", out.stderr);
}

#[test]
fn watch_without_a_config_file_says_what_to_pass() {
    let sb = Sandbox::new();
    let out = sb.run(&["watch"]);
    assert!(out.fails(2).contains("config file"));
    sb.write("w.toml", "data_dir = 3\n");
    let out = sb.run(&["watch", "--config", "w.toml"]);
    out.fails(2);
}

#[test]
fn csv_with_bad_rows_pays_nothing_and_names_the_rows() {
    let sb = Sandbox::new();
    sb.write("pay.csv", "email,amount\nbob@example.com,1 QTUM\nnot-an-email,2 QTUM\ncarol@example.net,1.123456789 QTUM\n");
    // No node is needed to refuse the file: the rows are checked before any key or chain is used
    // when the chain is known from the configuration.
    let out = sb.run(&[
        "--chain-id",
        "8890",
        "--rpc",
        "http://127.0.0.1:9",
        "--escrow",
        "0x5FbDB2315678afecb367f032d93F642f64180aa3",
        "send",
        "--csv",
        "pay.csv",
        "--link-only",
        "--no-mail",
    ]);
    let line = out.fails(2);
    assert!(
        line.contains("2 bad row(s)") && line.contains("row 2") && line.contains("row 3"),
        "{line}"
    );
    assert!(
        !sb.file("pay.results.csv").exists(),
        "nothing may be recorded for a refused file"
    );
}

/// Serves `status` to every HTTP request on a loopback port, for at most `n` requests.
fn http_stub(status: &str, n: usize) -> String {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let status = status.to_string();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(n) {
            let Ok(mut stream) = stream else { break };
            let _ = stream.set_read_timeout(Some(std::time::Duration::from_secs(5)));
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf);
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
            );
        }
    });
    format!("http://{addr}")
}

#[test]
fn a_wrong_rpc_path_says_the_url_answered_404() {
    let sb = Sandbox::new();
    let url = format!("{}/nope", http_stub("404 Not Found", 4));
    let out = sb.run(&["--rpc", &url, "status", SOME_LINK]);
    let line = out.fails(2);
    assert!(
        line.contains(&format!(
            "the RPC endpoint {url} answered HTTP 404: is the URL right?"
        )),
        "{line}"
    );
    assert!(!line.contains("(code 404)"), "{line}");
}

#[test]
fn a_bad_claim_max_fee_is_named_when_the_config_loads() {
    let sb = Sandbox::new();
    sb.write("springmail.toml", "[claim]\nmax_fee = \"lots\"\n");
    // Any command loads the config; status needs no key.
    let out = sb.run(&["status", SOME_LINK]);
    let line = out.fails(2);
    assert!(line.contains("[claim] max_fee"), "{line}");
    assert!(!line.contains("--max-fee"), "{line}");
}

#[test]
fn configuration_errors_exit_2() {
    let sb = Sandbox::new();
    std::fs::create_dir(sb.file("conf.d")).unwrap();
    let cases: &[&[&str]] = &[
        // The config file is a directory.
        &["--config", "conf.d", "status", SOME_LINK],
        // A node URL that is not http(s).
        &["--rpc", "ftp://127.0.0.1", "status", SOME_LINK],
        // An unknown backend.
        &["--backend", "solana", "status", SOME_LINK],
        // An escrow that is no address.
        &["--escrow", "0x12", "status", SOME_LINK],
        // A flag clap refuses.
        &["--chain-id", "abc", "status", SOME_LINK],
    ];
    for args in cases {
        let out = sb.run(args);
        assert_eq!(out.code, 2, "{args:?}\n{}", out.stderr);
    }
    // The watcher's own config file.
    sb.write("w.toml", "data_dir = \"d\"\n[dns]\nresolver = \"maybe\"\n");
    let out = sb.run(&["watch", "--config", "w.toml"]);
    let line = out.fails(2);
    assert!(line.contains("[dns] resolver"), "{line}");
}

#[test]
fn three_bad_keys_are_named_in_one_pass_in_either_file() {
    let sb = Sandbox::new();
    // The CLI's file: a mistyped value, an unknown key, a bad value; three sections.
    sb.write(
        "springmail.toml",
        "[chain]\nchain_id = \"eighty\"\n[mail]\nadress = \"a@example.org\"\n\
         [send]\nexpires = \"soon\"\n",
    );
    let line = sb.run(&["status", SOME_LINK]).fails(2);
    for key in ["[chain] chain_id", "[mail] adress", "[send] expires"] {
        assert!(line.contains(key), "{key} missing: {line}");
    }
    assert!(line.contains("3 problem(s)"), "{line}");
    // The watcher's file: the same kinds of mistake, the [chain] ones in the same words.
    sb.write(
        "w.toml",
        "data_dir = \"d\"\n[imap]\nhost = \"127.0.0.1\"\nport = \"imap\"\n\
         [chain]\nurl = \"http://127.0.0.1:9\"\nchain_id = 8890\nescrow = \"0x12\"\ncolour = 1\n",
    );
    let line = sb.run(&["watch", "--config", "w.toml"]).fails(2);
    for key in ["[imap] port", "[chain] colour", "[chain] escrow", "w.toml"] {
        assert!(line.contains(key), "{key} missing: {line}");
    }
}

#[test]
fn json_failures_print_one_json_object_on_stdout() {
    let sb = Sandbox::new();
    let check = |args: &[&str], code: i32, kind: &str| {
        let out = sb.run(args);
        assert_eq!(out.code, code, "{args:?}\n{}", out.stderr);
        let v: serde_json::Value = serde_json::from_str(out.stdout.trim()).unwrap_or_else(|e| {
            panic!(
                "{args:?}: stdout is not one JSON object ({e}):\n{}",
                out.stdout
            )
        });
        assert_eq!(v["ok"], false, "{v}");
        assert_eq!(v["error"]["kind"], kind, "{v}");
        assert_eq!(v["error"]["exit_code"], code, "{v}");
        assert!(!v["error"]["message"].as_str().unwrap().is_empty(), "{v}");
        assert_eq!(out.stdout.trim().lines().count(), 1, "{}", out.stdout);
    };
    check(
        &["--json", "--rpc", "http://127.0.0.1:9", "status", SOME_LINK],
        3,
        "unavailable",
    );
    check(&["--json", "status", "sm1.nope"], 2, "input");
    check(
        &["--json", "--chain-id", "abc", "status", SOME_LINK],
        2,
        "input",
    );
    sb.write("springmail.toml", "[claim]\nmax_fee = \"lots\"\n");
    check(&["--json", "status", SOME_LINK], 2, "input");
}

#[test]
fn logs_carry_no_colour_codes_when_stderr_is_not_a_terminal() {
    let sb = Sandbox::new();
    let out = sb.run(&["-vv", "--rpc", "http://127.0.0.1:9", "status", SOME_LINK]);
    assert_eq!(out.code, 3, "{}", out.stderr);
    assert!(
        out.stderr.lines().count() > 2,
        "no logs were written:\n{}",
        out.stderr
    );
    assert!(
        !out.stderr.contains('\u{1b}'),
        "ANSI codes in a log file:\n{}",
        out.stderr
    );
}

#[test]
fn a_hex_key_one_digit_short_is_called_a_short_hex_key() {
    let sb = Sandbox::new();
    let out = sb.run_env(
        &["wallet", "import", "--keystore", "k.json"],
        &[
            (
                "SPRINGMAIL_PRIVATE_KEY",
                "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff8",
            ),
            ("SPRINGMAIL_PASSWORD", "pw"),
        ],
    );
    let line = out.fails(2);
    assert!(line.contains("hex key of 63 digits"), "{line}");
    assert!(!line.to_lowercase().contains("base58"), "{line}");
    assert!(!sb.file("k.json").exists());
}

#[test]
fn a_link_for_another_escrow_than_configured_is_refused() {
    let sb = Sandbox::new();
    let escrow = "0x00000000000000000000000000000000000000e5";
    for args in [
        vec!["--escrow", escrow, "status", SOME_LINK],
        vec!["--escrow", escrow, "refund", SOME_LINK],
        vec![
            "--escrow",
            escrow,
            "claim",
            SOME_LINK,
            "--to",
            "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
        ],
    ] {
        let out = sb.run(&args);
        let line = out.fails(2);
        assert!(
            line.contains("escrow") && line.to_lowercase().contains(escrow),
            "{args:?}: {line}"
        );
    }
}

#[test]
fn a_double_at_and_other_bad_local_parts_are_refused() {
    let sb = Sandbox::new();
    for bad in [
        "bob@@x.com",
        ".bob@example.com",
        "bob.@example.com",
        "bo..b@example.com",
    ] {
        let out = sb.run(&["send", "--to", bad, "--amount", "0.01 QTUM"]);
        let line = out.fails(2);
        assert!(line.contains("local part"), "{bad}: {line}");
    }
}

#[test]
fn a_base58_watcher_is_refused_with_the_form_to_use() {
    let sb = Sandbox::new();
    let out = sb.run(&[
        "--chain-id",
        "8890",
        "send",
        "--to",
        "bob@example.com",
        "--amount",
        "1 QTUM",
        "--watcher",
        "qfmYqV4YKpsBcBZVfyH48Zr1nSdUT4GcW5",
        "--watcher-email",
        "claims@broker.test",
    ]);
    let line = out.fails(2);
    assert!(line.contains("--watcher") && line.contains("0x"), "{line}");
    assert!(out.stderr.contains("--print-address"), "{}", out.stderr);
}

#[test]
fn watch_print_address_gives_the_key_evm_address() {
    let sb = Sandbox::new();
    sb.write(
        "watcher.toml",
        r#"
data_dir = "wdata"
[imap]
host = "127.0.0.1"
port = 1143
security = "plain"
user = "watcher@broker.test"
password_env = "IMAP_PW"
[smtp]
host = "127.0.0.1"
port = 2525
security = "plain"
[dkim]
domain = "broker.test"
selector = "sm"
key_file = "dkim.pem"
[chain]
url = "http://127.0.0.1:9"
chain_id = 8890
escrow = "0x00000000000000000000000000000000000000e5"
[watcher_key]
env = "WKEY"
[fees]
native = "0.001"
"#,
    );
    let key = format!("0x{}", "11".repeat(32));
    let out = sb
        .run_env(
            &[
                "--json",
                "--config",
                "watcher.toml",
                "watch",
                "--print-address",
            ],
            &[("IMAP_PW", "x"), ("WKEY", key.as_str())],
        )
        .json();
    let want = springmail_sdk::keys::ClaimSecret::from_bytes([0x11; 32])
        .unwrap()
        .address()
        .to_checksum(None);
    assert_eq!(out["address"], want.as_str());
    // On an EVM chain the key also sends the claims: one address, nothing more to name.
    assert!(out.get("self_submitting").is_none(), "{out}");

    // On Qtum with the local signer the claims come from the key's hash160: printed too,
    // as the address that makes the watcher's own claims need no attestation.
    let conf = std::fs::read_to_string(sb.path().join("watcher.toml")).unwrap().replace(
        "[chain]\n",
        "[chain]\nbackend = \"qtum\"\nsigner = \"local\"\nrpc_user_env = \"QU\"\nrpc_password_env = \"QP\"\n",
    );
    sb.write("qtum.toml", &conf);
    let out = sb
        .run_env(
            &[
                "--json",
                "--config",
                "qtum.toml",
                "watch",
                "--print-address",
            ],
            &[
                ("IMAP_PW", "x"),
                ("WKEY", key.as_str()),
                ("QU", "u"),
                ("QP", "p"),
            ],
        )
        .json();
    let secret = springmail_sdk::keys::ClaimSecret::from_bytes([0x11; 32]).unwrap();
    assert_eq!(out["address"], want.as_str());
    assert_eq!(
        out["self_submitting"],
        springmail_sdk::qtum::qtum_sender_of_secret(&secret)
            .to_checksum(None)
            .as_str()
    );
}

#[test]
fn claim_on_an_evm_backend_refuses_a_qtum_address_and_names_the_key_account() {
    let sb = Sandbox::new();
    let made = sb
        .run_env(
            &["--json", "wallet", "new", "--keystore", "me.json"],
            &[("SPRINGMAIL_PASSWORD", "pw")],
        )
        .json();
    let qtum = made["qtum_address"].as_str().unwrap().to_string();
    let evm = made["evm_account"].as_str().unwrap().to_string();
    assert!(
        evm.starts_with("0x") && !evm.contains(' '),
        "one form: {evm}"
    );
    let out = sb.run(&["--keystore", "me.json", "claim", SOME_LINK, "--to", &qtum]);
    let line = out.fails(2);
    assert!(line.contains("Qtum address of your key"), "{line}");
    assert!(out.stderr.contains(&evm), "{}", out.stderr);
    // Any other base58 address is refused too on an EVM backend.
    let out = sb.run(&[
        "claim",
        SOME_LINK,
        "--to",
        "qfmYqV4YKpsBcBZVfyH48Zr1nSdUT4GcW5",
    ]);
    assert!(out.fails(2).contains("0x account"));
}

#[test]
fn a_base58_watcher_in_the_config_is_refused_by_its_key() {
    let sb = Sandbox::new();
    sb.write(
        "springmail.toml",
        "[chain]\nchain_id = 8890\n[watcher]\naddress = \"qfmYqV4YKpsBcBZVfyH48Zr1nSdUT4GcW5\"\n\
         email = \"claims@broker.test\"\n",
    );
    let out = sb.run(&["send", "--to", "bob@example.com", "--amount", "1 QTUM"]);
    let line = out.fails(2);
    assert!(
        line.contains("[watcher] address") && line.contains("0x address"),
        "{line}"
    );
}
