//! Dev-stack helpers shared by the reliability tests of the `springmail` binary
//! (crash_restart.rs, secrets_in_logs.rs): a minimal IMAP client, funded anvil keys,
//! and the watcher's config file.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use alloy::primitives::{Address, U256};
use alloy::providers::Provider;
use springmail_sdk::chain::evm_rpc::EvmRpcChain;
use springmail_sdk::chain::Chain;
use springmail_sdk::keys::ClaimSecret;
use springmail_watcher::testkit::TestDomain;

/// The watcher's mailbox on the dev stack.
pub const WATCHER: &str = "watcher@broker.test";
/// The variable the config names for the watcher key.
pub const KEY_ENV: &str = "RELIABILITY_TEST_WATCHER_KEY";
/// The variable the config names for the IMAP password.
pub const IMAP_PASSWORD_ENV: &str = "RELIABILITY_TEST_IMAP_PASSWORD";

/// A dev-stack variable (set by scripts/test).
pub fn var(name: &str) -> String {
    std::env::var(name)
        .unwrap_or_else(|_| panic!("{name} is not set: run through scripts/test (the dev stack)"))
}

/// Just enough IMAP to create a folder, APPEND to it and count what is left.
pub struct Imap {
    r: BufReader<TcpStream>,
    w: TcpStream,
    tag: u32,
}

impl Imap {
    pub fn login(host: &str, port: u16, user: &str, password: &str) -> Imap {
        let s = TcpStream::connect((host, port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let mut i = Imap {
            r: BufReader::new(s.try_clone().unwrap()),
            w: s,
            tag: 0,
        };
        let mut greeting = String::new();
        i.r.read_line(&mut greeting).unwrap();
        i.cmd(&format!("LOGIN {user} {password}"));
        i
    }

    fn tagged(&mut self) -> (String, Vec<String>) {
        let tag = format!("a{}", self.tag);
        let mut lines = Vec::new();
        loop {
            let mut l = String::new();
            assert!(
                self.r.read_line(&mut l).unwrap() > 0,
                "IMAP connection closed"
            );
            if l.starts_with(&format!("{tag} ")) {
                assert!(l[tag.len() + 1..].starts_with("OK"), "IMAP: {l}");
                return (l, lines);
            }
            lines.push(l);
        }
    }

    pub fn cmd(&mut self, c: &str) -> (String, Vec<String>) {
        self.tag += 1;
        write!(self.w, "a{} {c}\r\n", self.tag).unwrap();
        self.tagged()
    }

    /// APPENDs and returns the UID (UIDPLUS).
    pub fn append(&mut self, folder: &str, bytes: &[u8]) -> u32 {
        self.tag += 1;
        write!(
            self.w,
            "a{} APPEND {folder} {{{}}}\r\n",
            self.tag,
            bytes.len()
        )
        .unwrap();
        let mut l = String::new();
        self.r.read_line(&mut l).unwrap();
        assert!(l.starts_with('+'), "IMAP APPEND: {l}");
        self.w.write_all(bytes).unwrap();
        self.w.write_all(b"\r\n").unwrap();
        let (ok, _) = self.tagged();
        let i = ok.find("APPENDUID ").expect("UIDPLUS");
        ok[i + 10..]
            .split_whitespace()
            .nth(1)
            .unwrap()
            .trim_end_matches(']')
            .parse()
            .unwrap()
    }

    pub fn count(&mut self, folder: &str) -> u32 {
        let (_, lines) = self.cmd(&format!("STATUS {folder} (MESSAGES)"));
        let l = lines
            .iter()
            .find(|l| l.contains("MESSAGES"))
            .expect("STATUS");
        let i = l.find("MESSAGES ").unwrap();
        l[i + 9..].trim_end().trim_end_matches(')').parse().unwrap()
    }
}

/// What differs between the watcher configurations of the tests.
pub struct WatcherConfig<'a> {
    /// The journal's directory.
    pub data: &'a Path,
    /// The IMAP folder of watcher@broker.test to read.
    pub folder: &'a str,
    /// SMTP host and port for replies.
    pub smtp: (&'a str, u16),
    /// SMTP login (user, variable holding the password), if any.
    pub smtp_auth: Option<(&'a str, &'a str)>,
    /// broker.test's DKIM key file (signs replies).
    pub broker_pem: &'a Path,
    /// The claimants' domain, pinned.
    pub example: &'a TestDomain,
    /// The escrow and its first block.
    pub escrow: Address,
    pub start_block: u64,
}

/// Writes a `springmail watch` config for the dev stack: IMAP password in
/// `IMAP_PASSWORD_ENV`, watcher key in `KEY_ENV`.
pub fn write_config(path: &Path, c: &WatcherConfig<'_>) {
    let (data, folder, broker_pem, example, escrow, start_block) = (
        c.data,
        c.folder,
        c.broker_pem,
        c.example,
        c.escrow,
        c.start_block,
    );
    let (smtp_host, smtp_port) = c.smtp;
    let smtp_auth = match c.smtp_auth {
        Some((user, env)) => format!("user = \"{user}\"\npassword_env = \"{env}\"\n"),
        None => String::new(),
    };
    let key_env = KEY_ENV;
    let text = format!(
        r#"data_dir = "{data}"
[imap]
host = "{imap_host}"
port = {imap_port}
security = "plain"
user = "{WATCHER}"
password_env = "{IMAP_PASSWORD_ENV}"
mailbox = "{folder}"
idle = true
poll_interval_secs = 1
[smtp]
host = "{smtp_host}"
port = {smtp_port}
security = "plain"
from = "{WATCHER}"
{smtp_auth}
[dkim]
domain = "broker.test"
selector = "sm"
key_file = "{pem}"
[dns]
resolver = "pinned"
[dns.pinned]
"{rec_name}" = "{record}"
[chain]
url = "{anvil}"
chain_id = {chain_id}
escrow = "{escrow}"
start_block = {start_block}
receipt_timeout_secs = 10
resend_guard_secs = 1
[watcher_key]
env = "{key_env}"
[fees]
native = "0.001"
min_time_left_secs = 60
"#,
        data = data.display(),
        imap_host = var("SPRINGMAIL_IMAP_HOST"),
        imap_port = var("SPRINGMAIL_IMAP_PORT"),
        pem = broker_pem.display(),
        rec_name = example.record_name(),
        record = example.record,
        anvil = var("SPRINGMAIL_ANVIL_URL"),
        chain_id = chain_id(),
    );
    std::fs::write(path, text).unwrap();
}

pub fn chain_id() -> u64 {
    std::env::var("SPRINGMAIL_CHAIN_ID")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(8890)
}

/// A fresh key with `wei` on anvil, and a chain handle sending as it.
pub async fn funded(url: &str, wei: u128) -> (ClaimSecret, Arc<dyn Chain>) {
    let key = ClaimSecret::random();
    let provider = alloy::providers::ProviderBuilder::new().connect_http(url.parse().unwrap());
    let _: serde_json::Value = provider
        .raw_request(
            "anvil_setBalance".into(),
            (key.address(), format!("0x{:x}", U256::from(wei))),
        )
        .await
        .expect("anvil_setBalance");
    let chain = EvmRpcChain::connect(url, key.signer(), Some(chain_id()))
        .await
        .expect("anvil");
    (key, Arc::new(chain))
}
