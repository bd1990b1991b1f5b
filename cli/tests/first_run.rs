//! What a new user is told to run: the claim command in a notification mail is one the
//! CLI accepts as it stands, and `wallet new` gives an import recipe that works on
//! qtumd's descriptor wallets (issue 12, items 19 and 20).

mod common;

use clap::Parser;
use common::Sandbox;
use springmail_cli::args::{Cli, Command};
use springmail_sdk::amount::{Amount, Asset};
use springmail_sdk::email::Salt;
use springmail_sdk::keys::ClaimSecret;
use springmail_sdk::link::ClaimLink;
use springmail_sdk::mail::{notification, Notification};
use springmail_sdk::Address;

fn link() -> ClaimLink {
    ClaimLink {
        chain_id: 8890,
        escrow: Address::repeat_byte(0xee),
        secret: ClaimSecret::from_bytes([0x42; 32]).unwrap(),
        salt: Salt::from_bytes([0x17; 16]),
    }
}

/// The `springmail claim …` line of the notification's text part, as argv.
fn command_in_mail(watcher_email: Option<&str>) -> Vec<String> {
    let link = link();
    let amount = Amount::parse("1.5 QTUM", &Asset::qtum()).unwrap();
    let mail = notification(&Notification {
        link: &link,
        from: "alice@example.org",
        sender_name: Some("Alice"),
        recipient: "bob@example.com",
        amount: &amount,
        expiry: 1_900_000_000,
        claim_host: None,
        watcher_email,
        note: None,
        date: Some(1_800_000_000),
    })
    .unwrap();
    let parsed = mail_parser::MessageParser::default()
        .parse(&mail.bytes)
        .unwrap();
    let text = parsed.body_text(0).unwrap().into_owned();
    let line = text
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("springmail claim "))
        .unwrap_or_else(|| panic!("no claim command in the mail:\n{text}"));
    line.split_whitespace().map(str::to_string).collect()
}

fn parse(argv: &[String]) -> Cli {
    Cli::try_parse_from(argv).unwrap_or_else(|e| panic!("{argv:?}: {e}"))
}

#[test]
fn email_mode_mail_gives_a_claim_command_the_cli_accepts_for_email_mode() {
    let argv = command_in_mail(Some("claims@broker.test"));
    let cli = parse(&argv);
    // An email-mode claim needs --email (the address the money was sent to) and the
    // watcher's mailbox; and every claim needs a node to read the deposit from.
    assert_eq!(cli.global.rpc.as_deref(), Some("NODE_URL"));
    let Command::Claim(a) = cli.command else {
        panic!("not a claim command: {argv:?}")
    };
    assert_eq!(ClaimLink::parse(&a.link).unwrap(), link());
    assert_eq!(a.email.as_deref(), Some("bob@example.com"));
    assert_eq!(a.watcher_email.as_deref(), Some("claims@broker.test"));
    assert_eq!(a.to, "YOUR_ADDRESS");
}

#[test]
fn link_mode_mail_gives_a_claim_command_the_cli_accepts() {
    let argv = command_in_mail(None);
    let cli = parse(&argv);
    assert_eq!(cli.global.rpc.as_deref(), Some("NODE_URL"));
    let Command::Claim(a) = cli.command else {
        panic!("not a claim command: {argv:?}")
    };
    assert_eq!(ClaimLink::parse(&a.link).unwrap(), link());
    assert_eq!(a.email, None);
    assert_eq!(a.watcher_email, None);
}

#[test]
fn wallet_new_tells_how_to_import_into_a_descriptor_wallet() {
    let mut sb = Sandbox::new();
    sb.env("SPRINGMAIL_PASSWORD", "correct horse battery staple");
    let out = sb.run(&[
        "--chain-id",
        "8890",
        "wallet",
        "new",
        "--keystore",
        "k.json",
    ]);
    let text = out.ok();
    // qtumd v27 has descriptor wallets only: importprivkey fails there.
    assert!(!text.contains("importprivkey"), "{text}");
    assert!(
        text.contains("qtum-cli -regtest getdescriptorinfo \"pkh(WIF)\""),
        "{text}"
    );
    assert!(
        text.contains(
            r#"qtum-cli -regtest importdescriptors '[{"desc":"pkh(WIF)#CHECKSUM","timestamp":"now"}]'"#
        ),
        "{text}"
    );
    let help = sb.run(&["wallet", "new", "--help"]);
    assert!(!help.ok().contains("importprivkey"), "{}", help.stdout);
}

#[test]
fn wallet_new_with_the_local_qtum_signer_asks_for_no_import_into_a_node() {
    let mut sb = Sandbox::new();
    sb.env("SPRINGMAIL_PASSWORD", "correct horse battery staple");
    sb.env("SPRINGMAIL_QTUM_SIGNER", "local");
    let out = sb.run(&[
        "--backend",
        "qtum",
        "--chain-id",
        "8890",
        "wallet",
        "new",
        "--keystore",
        "k.json",
    ]);
    let text = out.ok();
    for word in [
        "importdescriptors",
        "importprivkey",
        "getdescriptorinfo",
        "createwallet",
    ] {
        assert!(!text.contains(word), "{word} in {text}");
    }
    assert!(text.contains("signer = \"local\""), "{text}");
}

#[test]
fn docs_name_the_csv_result_file_the_code_writes() {
    let written =
        springmail_cli::commands::batch::results_path(std::path::Path::new("payroll.csv"));
    let name = written.file_name().unwrap().to_str().unwrap();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    for doc in ["docs/CLI.md", "README.md"] {
        let text = std::fs::read_to_string(root.join(doc)).unwrap();
        assert!(text.contains(name), "{doc} does not name {name}");
        assert!(
            !text.contains(".csv.results.csv") && !text.contains("FILE.results.csv"),
            "{doc} names a file the code does not write"
        );
    }
    let help = Sandbox::new().run(&["send", "--help"]);
    assert!(help.ok().contains(name), "{}", help.stdout);
}
