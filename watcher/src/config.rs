//! The watcher's configuration: one TOML file, read in two steps.
//!
//! 1. [`RawConfig`]: the file as written (unknown keys are errors), parsed without
//!    any I/O. [`RawConfig::validate`] checks every key, reads the secrets' environment
//!    variables through the function it is given, and reports **every** problem in one
//!    [`ConfigErrors`], each naming its key (`imap.port: …`).
//! 2. [`Settings`]: typed and checked. [`Settings::resolve`] does the I/O: creates the
//!    data directory, opens the journal, decrypts the watcher keystore, loads the DKIM
//!    key, connects to the chain and checks the escrow, and returns the
//!    [`WatcherParts`] to build a [`crate::Watcher`] from.
//!
//! Secrets are never in the file: passwords and keys come from environment variables
//! named in it, or from an encrypted keystore (sdk [`springmail_sdk::keystore`]).
//!
//! ```toml
//! data_dir = "/var/lib/springmail-watcher"
//!
//! [imap]
//! host = "imap.broker.example"
//! port = 993
//! security = "tls"                 # "plain" is accepted only for a loopback host
//! user = "watcher@broker.example"
//! password_env = "SPRINGMAIL_IMAP_PASSWORD"
//! mailbox = "INBOX"
//! idle = true
//! poll_interval_secs = 60
//!
//! [smtp]
//! host = "smtp.broker.example"
//! port = 465
//! security = "tls"                 # "starttls", or "plain" (loopback only)
//! user = "watcher@broker.example"  # optional; login with password_env
//! password_env = "SPRINGMAIL_SMTP_PASSWORD"
//! from = "watcher@broker.example"
//! display_name = "Spring Mail watcher"
//!
//! [dkim]                           # signs the replies
//! domain = "broker.example"
//! selector = "sm"
//! key_file = "/etc/springmail/dkim.pem"
//!
//! [dns]
//! resolver = "system"              # or "pinned": only the records below, no DNS at all
//! pinned_file = "keys.zone"        # more pins: a zone file, or .json {"name": "TXT"}
//! [dns.pinned]
//! "sm._domainkey.example.com" = "v=DKIM1; k=ed25519; p=…"
//!
//! [chain]
//! backend = "evm-rpc"              # or "qtum"
//! url = "http://127.0.0.1:8545"
//! chain_id = 8890
//! escrow = "0x…"
//! start_block = 0                  # the escrow's deployment block
//! gas_limit = 300000
//! receipt_timeout_secs = 120
//! # qtum only: rpc_user_env, rpc_password_env, wallet, signer = "node" | "local",
//! #   sender (the node wallet's q… address; with signer = "local" the watcher key's
//! #   Qtum address signs and pays gas, qtumd needs -addrindex and no wallet)
//!
//! [watcher_key]                    # exactly one of:
//! keystore = "/etc/springmail/watcher.json"   # password in password_env (default SPRINGMAIL_PASSWORD)
//! # env = "SPRINGMAIL_WATCHER_KEY"            # 0x + 64 hex digits in this variable
//!
//! [fees]
//! native = "0.001"                 # in the chain's native asset (QTUM on Qtum chains)
//! min_time_left_secs = 600
//! # [[fees.tokens]]
//! # address = "0x…"; symbol = "USDT"; decimals = 6; fee = "0.5"
//!
//! [limits]
//! max_message_bytes = 1048576
//! batch_size = 256
//!
//! [metrics]
//! listen = "127.0.0.1:9464"        # GET /healthz, GET /metrics only
//!
//! [http]                           # the claim page and its API (docs/CLAIM-PAGE.md),
//! listen = "127.0.0.1:8080"        # with /healthz and /metrics; put TLS in front of it
//! reply_to = "watcher@broker.example"   # email mode's mailto (default: smtp.from, else imap.user)
//! rate_limit_per_minute = 60       # /api/ requests per client address
//! ```
//!
//! `springmail watch` serves one HTTP service (axum, [`crate::http`]) per address:
//! `[http] listen` serves the claim page, its API, `/healthz` and `/metrics`;
//! `[metrics] listen` (when it is another address) only `/healthz` and `/metrics`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use alloy::primitives::Address;
use serde::Deserialize;
use springmail_sdk::amount::{parse_units, Asset};
use springmail_sdk::chain::Chain;
use springmail_sdk::client::SpringMail;
use springmail_sdk::keys::ClaimSecret;

use crate::authenticate::{AuthPolicy, DkimKeys, MailAuthenticator, PinnedRecords};
use crate::ingest::imap::{is_loopback, ImapSecurity, ImapSettings, ImapSource};
use crate::journal::Journal;
use crate::metrics::Metrics;
use crate::reply::{DkimSigningKey, ReplyComposer, SmtpSecurity, SmtpSettings, SmtpSink};
use crate::service::{PipelineSettings, WatcherParts};
use crate::submit::SubmitPolicy;
use crate::verify::{TokenFee, VerifyPolicy};

/// The file as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// Journal and state directory.
    pub data_dir: Option<PathBuf>,
    /// Mailbox to read.
    pub imap: Option<RawImap>,
    /// Server to send replies through.
    pub smtp: Option<RawSmtp>,
    /// Key that signs replies.
    pub dkim: Option<RawDkim>,
    /// DNS for verifying claimants' signatures.
    #[serde(default)]
    pub dns: RawDns,
    /// Chain and escrow.
    pub chain: Option<RawChain>,
    /// The watcher's attestation key.
    pub watcher_key: Option<RawKey>,
    /// Fee policy.
    #[serde(default)]
    pub fees: RawFees,
    /// Limits.
    #[serde(default)]
    pub limits: RawLimits,
    /// Health and metrics endpoint.
    #[serde(default)]
    pub metrics: RawMetrics,
    /// The claim page and its API.
    pub http: Option<RawHttp>,
    /// The directory of the file read, for relative paths in it (`dns.pinned_file`).
    #[serde(skip)]
    pub base_dir: Option<PathBuf>,
}

/// `[imap]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawImap {
    /// Host.
    pub host: Option<String>,
    /// Port (default 993 for tls, 143 for plain).
    pub port: Option<u16>,
    /// `tls` or `plain`.
    pub security: Option<String>,
    /// Login.
    pub user: Option<String>,
    /// Variable holding the password.
    pub password_env: Option<String>,
    /// Mailbox (default INBOX).
    pub mailbox: Option<String>,
    /// Use IDLE (default true).
    pub idle: Option<bool>,
    /// Seconds between polls / IDLE renewals (default 60).
    pub poll_interval_secs: Option<u64>,
}

/// `[smtp]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSmtp {
    /// Host.
    pub host: Option<String>,
    /// Port (default 465 tls, 587 starttls, 25 plain).
    pub port: Option<u16>,
    /// `tls`, `starttls` or `plain`.
    pub security: Option<String>,
    /// Login (optional).
    pub user: Option<String>,
    /// Variable holding the password.
    pub password_env: Option<String>,
    /// The watcher's address (From of replies; defaults to imap.user).
    pub from: Option<String>,
    /// Display name.
    pub display_name: Option<String>,
}

/// `[dkim]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDkim {
    /// Signing domain (`d=`).
    pub domain: Option<String>,
    /// Selector (`s=`).
    pub selector: Option<String>,
    /// PEM private key file (Ed25519 PKCS#8, or RSA).
    pub key_file: Option<PathBuf>,
}

/// `[dns]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDns {
    /// `system` (default) or `pinned`.
    pub resolver: Option<String>,
    /// Records answered without DNS: name → TXT.
    #[serde(default)]
    pub pinned: BTreeMap<String, String>,
    /// More pinned records from a file: a zone file of TXT records, or (`.json`) a JSON
    /// object of name → TXT. Relative to the config file's directory.
    pub pinned_file: Option<PathBuf>,
}

/// `[chain]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawChain {
    /// `evm-rpc` or `qtum`.
    pub backend: Option<String>,
    /// Node URL.
    pub url: Option<String>,
    /// Expected chain id.
    pub chain_id: Option<u64>,
    /// Escrow contract.
    pub escrow: Option<String>,
    /// First block with escrow events.
    pub start_block: Option<u64>,
    /// Claim gas limit.
    pub gas_limit: Option<u64>,
    /// Receipt wait.
    pub receipt_timeout_secs: Option<u64>,
    /// Seconds to watch for an uncertain broadcast before resending (default 30).
    pub resend_guard_secs: Option<u64>,
    /// qtum: variable with the RPC user.
    pub rpc_user_env: Option<String>,
    /// qtum: variable with the RPC password.
    pub rpc_password_env: Option<String>,
    /// qtum: the node wallet's sender address (with `signer = "local"`: optional, and
    /// then it must be the watcher key's address).
    pub sender: Option<String>,
    /// qtum: wallet name.
    pub wallet: Option<String>,
    /// qtum: `"node"` (the node's wallet signs, the default) or `"local"` (the watcher key
    /// signs raw transactions; the node needs `-addrindex`, no wallet).
    pub signer: Option<String>,
}

/// `[watcher_key]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawKey {
    /// Encrypted keystore file.
    pub keystore: Option<PathBuf>,
    /// Variable with the keystore password (default SPRINGMAIL_PASSWORD).
    pub password_env: Option<String>,
    /// Variable with the hex secret.
    pub env: Option<String>,
}

/// `[fees]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFees {
    /// Fee for native deposits, decimal in the native asset.
    pub native: Option<String>,
    /// Seconds that must remain before expiry and deadline.
    pub min_time_left_secs: Option<u64>,
    /// Tokens handled.
    #[serde(default)]
    pub tokens: Vec<RawToken>,
}

/// `[[fees.tokens]]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawToken {
    /// Contract.
    pub address: Option<String>,
    /// Symbol.
    pub symbol: Option<String>,
    /// Decimals.
    pub decimals: Option<u8>,
    /// Fee, decimal in the token.
    pub fee: Option<String>,
}

/// `[limits]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLimits {
    /// Larger mail is not read.
    pub max_message_bytes: Option<u64>,
    /// Messages per pass.
    pub batch_size: Option<usize>,
}

/// `[metrics]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMetrics {
    /// Listen address; absent = no endpoint.
    pub listen: Option<String>,
}

/// `[http]`: the claim page and its API.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHttp {
    /// Listen address (`127.0.0.1:8080`); required in `[http]`.
    pub listen: Option<String>,
    /// The watcher's mailbox for the page's `mailto:` (default: `smtp.from`).
    pub reply_to: Option<String>,
    /// `/api/` requests per client address per minute (default 60).
    pub rate_limit_per_minute: Option<u32>,
}

/// The claim page's service, validated.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    /// Listen address.
    pub listen: SocketAddr,
    /// Page and API settings.
    pub claim: crate::http::ClaimSettings,
}

/// One bad key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigIssue {
    /// The key path, e.g. `imap.port`.
    pub key: String,
    /// What is wrong.
    pub problem: String,
}

/// Every problem found in a configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", .issues.iter().map(|i| format!("{}: {}", i.key, i.problem)).collect::<Vec<_>>().join("\n"))]
pub struct ConfigErrors {
    /// The file, when read from one.
    pub file: Option<PathBuf>,
    /// The problems, in file order.
    pub issues: Vec<ConfigIssue>,
}

/// Errors of [`Settings::resolve`] (I/O, keys, chain).
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    /// A named key's value failed when used.
    #[error("{key}: {problem}")]
    Key {
        /// The key path.
        key: &'static str,
        /// What failed.
        problem: String,
    },
    /// A service a key points at could not be reached now; starting again later may work.
    #[error("{key}: {problem}")]
    Unreachable {
        /// The key path.
        key: &'static str,
        /// What failed.
        problem: String,
    },
}

impl ResolveError {
    /// True when the failure is a service that could not be reached (retry later), not
    /// a bad value.
    pub fn is_transient(&self) -> bool {
        matches!(self, ResolveError::Unreachable { .. })
    }

    fn chain(key: &'static str, problem: String, transient: bool) -> Self {
        if transient {
            ResolveError::Unreachable { key, problem }
        } else {
            ResolveError::Key { key, problem }
        }
    }
}

/// The chain backend.
#[derive(Clone, PartialEq, Eq)]
pub enum ChainSettings {
    /// Ethereum JSON-RPC, signing locally with the watcher key.
    EvmRpc {
        /// Node URL.
        url: String,
    },
    /// qtumd JSON-RPC; the node's wallet sends, or the watcher key when `local`.
    Qtum {
        /// Node URL.
        url: String,
        /// RPC user.
        user: String,
        /// RPC password.
        password: String,
        /// Sender address in the node's wallet (may be empty when `local`).
        sender: String,
        /// Wallet name.
        wallet: Option<String>,
        /// The watcher key signs transactions (`signer = "local"`).
        local: bool,
    },
}

impl std::fmt::Debug for ChainSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ChainSettings::EvmRpc { url } => f.debug_struct("EvmRpc").field("url", url).finish(),
            ChainSettings::Qtum {
                url, sender, local, ..
            } => f
                .debug_struct("Qtum")
                .field("url", url)
                .field("sender", sender)
                .field("local", local)
                .finish_non_exhaustive(),
        }
    }
}

/// Where the watcher key comes from.
#[derive(Clone, PartialEq, Eq)]
pub enum KeySource {
    /// A keystore file and its password.
    Keystore {
        /// The file.
        path: PathBuf,
        /// The password (read from the environment).
        password: String,
    },
    /// The hex secret (read from the environment).
    Hex(String),
}

impl std::fmt::Debug for KeySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeySource::Keystore { path, .. } => write!(f, "Keystore({})", path.display()),
            KeySource::Hex(_) => f.write_str("Hex(<redacted>)"),
        }
    }
}

/// A validated configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    /// State directory.
    pub data_dir: PathBuf,
    /// Mailbox.
    pub imap: ImapSettings,
    /// Poll / IDLE renewal interval.
    pub poll_interval: Duration,
    /// Reply transport.
    pub smtp: SmtpSettings,
    /// The watcher's address.
    pub from: String,
    /// Display name of replies.
    pub display_name: String,
    /// Reply signing: domain, selector, key file.
    pub dkim: Option<(String, String, PathBuf)>,
    /// Only pinned DKIM records (no DNS).
    pub pinned_only: bool,
    /// Pinned records.
    pub pinned: PinnedRecords,
    /// Chain backend.
    pub chain: ChainSettings,
    /// Chain id.
    pub chain_id: u64,
    /// Escrow.
    pub escrow: Address,
    /// First block with escrow events.
    pub start_block: u64,
    /// Submission.
    pub submit: SubmitPolicy,
    /// Watcher key.
    pub key: KeySource,
    /// Native fee in base units.
    pub native_fee: u128,
    /// Token fees.
    pub tokens: Vec<TokenFee>,
    /// Margin before expiry and deadline.
    pub min_time_left: u64,
    /// Larger mail is not read.
    pub max_message_bytes: u64,
    /// Messages per pass.
    pub batch_size: usize,
    /// Metrics endpoint.
    pub metrics_listen: Option<SocketAddr>,
    /// The claim page and its API (`[http]`).
    pub http: Option<HttpSettings>,
}

/// A pinned record read from a file: its line, name and TXT text.
type PinnedLine = (usize, String, String);

/// Pins the TXT records of a file: JSON (`.json`: `{"name": "TXT"}`, a value may be a
/// list of strings to join) or a zone file. Errors name the file and the line.
fn pin_file(path: &Path, pinned: &mut PinnedRecords) -> Result<(), String> {
    let shown = path.display();
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {shown}: {e}"))?;
    let records: Vec<PinnedLine> = if path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("json"))
    {
        parse_json_records(&text).map_err(|(line, e)| format!("{shown} line {line}: {e}"))?
    } else {
        parse_zone_txt(&text).map_err(|(line, e)| format!("{shown} line {line}: {e}"))?
    };
    if records.is_empty() {
        return Err(format!("{shown} has no TXT records"));
    }
    for (line, name, txt) in records {
        pinned
            .pin(&name, &txt)
            .map_err(|e| format!("{shown} line {line}: {e}"))?;
    }
    Ok(())
}

/// `{"name": "TXT" | ["part", "part"]}` with the line of each name.
fn parse_json_records(text: &str) -> Result<Vec<PinnedLine>, (usize, String)> {
    let map: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(text).map_err(|e| (e.line(), e.to_string()))?;
    let line_of = |name: &str| {
        let quoted = serde_json::to_string(name).unwrap_or_default();
        text.find(&quoted)
            .map(|at| text[..at].lines().count().max(1))
            .unwrap_or(1)
    };
    let mut out = Vec::new();
    for (name, v) in map {
        let line = line_of(&name);
        let txt = match v {
            serde_json::Value::String(s) => s,
            serde_json::Value::Array(parts) => parts
                .iter()
                .map(|p| p.as_str().map(str::to_string))
                .collect::<Option<Vec<_>>>()
                .ok_or((line, format!("{name:?}: a list must hold only strings")))?
                .concat(),
            _ => {
                return Err((
                    line,
                    format!("{name:?}: the TXT record must be a string or a list of strings"),
                ))
            }
        };
        out.push((line, name, txt));
    }
    Ok(out)
}

/// The TXT records of a DNS zone file (RFC 1035 §5): `$ORIGIN`, `$TTL`, `;` comments,
/// `( … )` across lines, `@` and names relative to the origin, a blank owner for the
/// previous one, and quoted strings (joined). Records of other types are skipped.
fn parse_zone_txt(text: &str) -> Result<Vec<PinnedLine>, (usize, String)> {
    #[derive(Debug)]
    enum Tok {
        Word(String),
        Quoted(String),
    }
    // Tokenize one logical record (which may span lines inside parentheses).
    let mut out = Vec::new();
    let mut origin: Option<String> = None;
    let mut last_owner: Option<String> = None;
    let mut lines = text.lines().enumerate().peekable();
    while let Some((idx, first)) = lines.next() {
        let start_line = idx + 1;
        let mut toks: Vec<Tok> = Vec::new();
        let mut depth = 0usize;
        let blank_owner = first.starts_with([' ', '\t']);
        let mut line = first.to_string();
        let mut line_no = start_line;
        loop {
            let mut chars = line.chars().peekable();
            while let Some(c) = chars.next() {
                match c {
                    ';' => break,
                    '(' => depth += 1,
                    ')' => {
                        depth = depth
                            .checked_sub(1)
                            .ok_or((line_no, "a ')' without its '('".to_string()))?
                    }
                    '"' => {
                        let mut s = String::new();
                        let mut closed = false;
                        while let Some(c) = chars.next() {
                            match c {
                                '"' => {
                                    closed = true;
                                    break;
                                }
                                '\\' => {
                                    let digits: String = std::iter::from_fn(|| {
                                        chars.next_if(|d| d.is_ascii_digit())
                                    })
                                    .take(3)
                                    .collect();
                                    if digits.is_empty() {
                                        match chars.next() {
                                            Some(e) => s.push(e),
                                            None => break,
                                        }
                                    } else {
                                        let code: u32 = digits.parse().unwrap_or(256);
                                        let ch = u8::try_from(code).map_err(|_| {
                                            (line_no, format!("bad escape \\{digits}"))
                                        })?;
                                        s.push(char::from(ch));
                                    }
                                }
                                other => s.push(other),
                            }
                        }
                        if !closed {
                            return Err((
                                line_no,
                                "a quoted string is not closed on its line".into(),
                            ));
                        }
                        toks.push(Tok::Quoted(s));
                    }
                    c if c.is_whitespace() => {}
                    c => {
                        let mut w = String::from(c);
                        while let Some(n) = chars
                            .next_if(|n| !n.is_whitespace() && !matches!(n, ';' | '(' | ')' | '"'))
                        {
                            w.push(n);
                        }
                        toks.push(Tok::Word(w));
                    }
                }
            }
            if depth == 0 {
                break;
            }
            match lines.next() {
                Some((i, next)) => {
                    line = next.to_string();
                    line_no = i + 1;
                }
                None => return Err((start_line, "a '(' is never closed".into())),
            }
        }
        if toks.is_empty() {
            continue;
        }
        let err = |m: String| (start_line, m);
        let word = |t: &Tok| match t {
            Tok::Word(w) => Some(w.clone()),
            Tok::Quoted(_) => None,
        };
        let first_word = word(&toks[0]);
        match first_word.as_deref() {
            Some(d) if d.eq_ignore_ascii_case("$ORIGIN") => {
                let o = toks
                    .get(1)
                    .and_then(word)
                    .ok_or_else(|| err("$ORIGIN needs a domain name".into()))?;
                origin = Some(o.trim_end_matches('.').to_string());
                continue;
            }
            Some(d) if d.eq_ignore_ascii_case("$TTL") => continue,
            Some(d) if d.starts_with('$') => {
                return Err(err(format!("the directive {d} is not supported")))
            }
            _ => {}
        }
        let mut rest = toks.iter();
        let owner_raw = if blank_owner {
            last_owner
                .clone()
                .ok_or_else(|| err("the record has no owner name".into()))?
        } else {
            rest.next()
                .and_then(word)
                .ok_or_else(|| err("the record must start with a name".into()))?
        };
        let owner = if owner_raw == "@" {
            origin
                .clone()
                .ok_or_else(|| err("@ needs a $ORIGIN before it".into()))?
        } else if owner_raw.ends_with('.') || blank_owner {
            owner_raw.trim_end_matches('.').to_string()
        } else {
            match &origin {
                Some(o) => format!("{owner_raw}.{o}"),
                None => owner_raw.clone(),
            }
        };
        last_owner = Some(format!("{owner}."));
        // [TTL] [class] TYPE, in either order of TTL and class.
        let mut rtype = None;
        for t in rest.by_ref() {
            let w = word(t).ok_or_else(|| err("a quoted string before the record type".into()))?;
            if w.bytes().all(|b| b.is_ascii_digit())
                || ["IN", "CH", "HS", "CS"]
                    .iter()
                    .any(|c| w.eq_ignore_ascii_case(c))
            {
                continue;
            }
            rtype = Some(w);
            break;
        }
        let rtype = rtype.ok_or_else(|| err(format!("the record for {owner} has no type")))?;
        if !rtype.eq_ignore_ascii_case("TXT") {
            continue;
        }
        let mut txt = String::new();
        for t in rest {
            match t {
                Tok::Quoted(s) => txt.push_str(s),
                Tok::Word(w) => txt.push_str(w),
            }
        }
        if txt.is_empty() {
            return Err(err(format!("the TXT record for {owner} is empty")));
        }
        out.push((start_line, owner, txt));
    }
    Ok(out)
}

struct Check<'a> {
    issues: Vec<ConfigIssue>,
    env: &'a dyn Fn(&str) -> Option<String>,
}

impl Check<'_> {
    fn bad(&mut self, key: &str, problem: impl Into<String>) {
        self.issues.push(ConfigIssue {
            key: key.into(),
            problem: problem.into(),
        });
    }

    fn required<T: Clone>(&mut self, key: &str, v: &Option<T>) -> Option<T> {
        if v.is_none() {
            self.bad(key, "is required");
        }
        v.clone()
    }

    fn secret_env(&mut self, key: &str, var: &Option<String>, required: bool) -> Option<String> {
        match var {
            None if required => {
                self.bad(
                    key,
                    "is required (the name of an environment variable holding the secret)",
                );
                None
            }
            None => None,
            Some(name) => match (self.env)(name) {
                Some(v) if !v.is_empty() => Some(v),
                _ => {
                    self.bad(key, format!("environment variable {name} is not set"));
                    None
                }
            },
        }
    }
}

impl RawConfig {
    /// Parses TOML text (no I/O).
    pub fn parse(text: &str) -> Result<Self, ConfigErrors> {
        toml::from_str(text).map_err(|e| {
            let key = e
                .span()
                .map(|s| format!("line {}", text[..s.start].lines().count().max(1)))
                .unwrap_or_default();
            ConfigErrors {
                file: None,
                issues: vec![ConfigIssue {
                    key,
                    problem: e.message().to_string(),
                }],
            }
        })
    }

    /// Reads and parses a file.
    pub fn load(path: &Path) -> Result<Self, ConfigErrors> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigErrors {
            file: Some(path.to_path_buf()),
            issues: vec![ConfigIssue {
                key: "(file)".into(),
                problem: e.to_string(),
            }],
        })?;
        let mut raw = Self::parse(&text).map_err(|mut e| {
            e.file = Some(path.to_path_buf());
            e
        })?;
        raw.base_dir = path.parent().map(Path::to_path_buf);
        Ok(raw)
    }

    /// Checks every key; secrets' variables are read through `env`.
    pub fn validate(&self, env: &dyn Fn(&str) -> Option<String>) -> Result<Settings, ConfigErrors> {
        let mut c = Check {
            issues: Vec::new(),
            env,
        };
        let data_dir = c.required("data_dir", &self.data_dir);

        // IMAP
        let imap_raw = self.imap.clone().unwrap_or_default();
        if self.imap.is_none() {
            c.bad("imap", "the [imap] section is required");
        }
        let imap_host = c.required("imap.host", &imap_raw.host);
        let imap_security = match imap_raw.security.as_deref().unwrap_or("tls") {
            "tls" => Some(ImapSecurity::Tls),
            "plain" => Some(ImapSecurity::Plain),
            other => {
                c.bad(
                    "imap.security",
                    format!("{other:?} is not one of \"tls\", \"plain\""),
                );
                None
            }
        };
        if imap_security == Some(ImapSecurity::Plain)
            && imap_host.as_deref().is_some_and(|h| !is_loopback(h))
        {
            c.bad(
                "imap.security",
                "\"plain\" (unencrypted) is only allowed when imap.host is a loopback address",
            );
        }
        let imap_user = c.required("imap.user", &imap_raw.user);
        let imap_password = if self.imap.is_some() {
            c.secret_env("imap.password_env", &imap_raw.password_env, true)
        } else {
            None
        };
        let poll = imap_raw.poll_interval_secs.unwrap_or(60);
        if poll == 0 || poll > 29 * 60 {
            c.bad(
                "imap.poll_interval_secs",
                "must be between 1 and 1740 (IDLE must be renewed within 29 minutes)",
            );
        }

        // SMTP
        let smtp_raw = self.smtp.clone().unwrap_or_default();
        if self.smtp.is_none() {
            c.bad("smtp", "the [smtp] section is required");
        }
        let smtp_host = c.required("smtp.host", &smtp_raw.host);
        let smtp_security = match smtp_raw.security.as_deref().unwrap_or("tls") {
            "tls" => Some(SmtpSecurity::Tls),
            "starttls" => Some(SmtpSecurity::StartTls),
            "plain" => Some(SmtpSecurity::Plain),
            other => {
                c.bad(
                    "smtp.security",
                    format!("{other:?} is not one of \"tls\", \"starttls\", \"plain\""),
                );
                None
            }
        };
        if smtp_security == Some(SmtpSecurity::Plain)
            && smtp_host.as_deref().is_some_and(|h| !is_loopback(h))
        {
            c.bad(
                "smtp.security",
                "\"plain\" (unencrypted) is only allowed when smtp.host is a loopback address",
            );
        }
        let smtp_password = c.secret_env(
            "smtp.password_env",
            &smtp_raw.password_env,
            smtp_raw.user.is_some(),
        );
        let from = smtp_raw.from.clone().or_else(|| imap_user.clone());
        let from = match from.as_deref().map(springmail_sdk::email::normalize) {
            Some(Ok(f)) => Some(f),
            Some(Err(e)) => {
                c.bad("smtp.from", e.to_string());
                None
            }
            None => {
                c.bad("smtp.from", "is required (or set imap.user)");
                None
            }
        };

        // DKIM signing of replies.
        let dkim = match &self.dkim {
            None => None,
            Some(d) => {
                let domain = c.required("dkim.domain", &d.domain);
                let selector = c.required("dkim.selector", &d.selector);
                let key_file = c.required("dkim.key_file", &d.key_file);
                match (domain, selector, key_file) {
                    (Some(a), Some(b), Some(k)) => Some((a.to_ascii_lowercase(), b, k)),
                    _ => None,
                }
            }
        };

        // DNS
        let pinned_only = match self.dns.resolver.as_deref().unwrap_or("system") {
            "system" => false,
            "pinned" => true,
            other => {
                c.bad(
                    "dns.resolver",
                    format!("{other:?} is not one of \"system\", \"pinned\""),
                );
                false
            }
        };
        let mut pinned = PinnedRecords::new();
        for (name, record) in &self.dns.pinned {
            if let Err(e) = pinned.pin(name, record) {
                c.bad(&format!("dns.pinned.{name:?}"), e.to_string());
            }
        }
        if let Some(file) = &self.dns.pinned_file {
            let path = match &self.base_dir {
                Some(dir) if file.is_relative() => dir.join(file),
                _ => file.clone(),
            };
            if let Err(problem) = pin_file(&path, &mut pinned) {
                c.bad("dns.pinned_file", problem);
            }
        }

        // Chain
        let chain_raw = self.chain.clone().unwrap_or_default();
        if self.chain.is_none() {
            c.bad("chain", "the [chain] section is required");
        }
        let url = c.required("chain.url", &chain_raw.url);
        let chain_id = c.required("chain.chain_id", &chain_raw.chain_id);
        let escrow = match c.required("chain.escrow", &chain_raw.escrow) {
            Some(e) => match springmail_sdk::qtum::parse_hex_address(&e) {
                Ok(a) if a != Address::ZERO => Some(a),
                Ok(_) => {
                    c.bad("chain.escrow", "the zero address is no escrow");
                    None
                }
                Err(err) => {
                    c.bad("chain.escrow", err.to_string());
                    None
                }
            },
            None => None,
        };
        let chain = match chain_raw.backend.as_deref().unwrap_or("evm-rpc") {
            "evm-rpc" => url.clone().map(|url| ChainSettings::EvmRpc { url }),
            "qtum" => {
                let user = c.secret_env("chain.rpc_user_env", &chain_raw.rpc_user_env, true);
                let password =
                    c.secret_env("chain.rpc_password_env", &chain_raw.rpc_password_env, true);
                let local = match chain_raw.signer.as_deref().unwrap_or("node") {
                    "node" => Some(false),
                    "local" => Some(true),
                    other => {
                        c.bad(
                            "chain.signer",
                            format!("{other:?} is not one of \"node\", \"local\""),
                        );
                        None
                    }
                };
                // Only the node signer needs the wallet's sender (an unknown signer is
                // reported once, as itself).
                let sender = if local == Some(false) {
                    c.required("chain.sender", &chain_raw.sender)
                } else {
                    Some(chain_raw.sender.clone().unwrap_or_default())
                };
                match (url.clone(), user, password, sender, local) {
                    (Some(url), Some(user), Some(password), Some(sender), Some(local)) => {
                        Some(ChainSettings::Qtum {
                            url,
                            user,
                            password,
                            sender,
                            wallet: chain_raw.wallet.clone(),
                            local,
                        })
                    }
                    _ => None,
                }
            }
            other => {
                c.bad(
                    "chain.backend",
                    format!("{other:?} is not one of \"evm-rpc\", \"qtum\""),
                );
                None
            }
        };

        // Watcher key
        let key = match &self.watcher_key {
            None => {
                c.bad(
                    "watcher_key",
                    "the [watcher_key] section is required (keystore = \"…\" or env = \"…\")",
                );
                None
            }
            Some(k) => match (&k.keystore, &k.env) {
                (Some(path), None) => {
                    let var = k
                        .password_env
                        .clone()
                        .unwrap_or_else(|| springmail_sdk::keystore::PASSWORD_ENV.to_string());
                    c.secret_env("watcher_key.password_env", &Some(var), true)
                        .map(|password| KeySource::Keystore {
                            path: path.clone(),
                            password,
                        })
                }
                (None, Some(_)) => c
                    .secret_env("watcher_key.env", &k.env, true)
                    .map(KeySource::Hex),
                (Some(_), Some(_)) => {
                    c.bad("watcher_key", "set keystore or env, not both");
                    None
                }
                (None, None) => {
                    c.bad(
                        "watcher_key",
                        "set keystore = \"path\" or env = \"VARIABLE\"",
                    );
                    None
                }
            },
        };
        if let Some(KeySource::Hex(h)) = &key {
            if parse_secret(h).is_err() {
                c.bad(
                    "watcher_key.env",
                    "the variable does not hold 0x and 64 hex digits of a valid secp256k1 key",
                );
            }
        }

        // Fees
        let native_asset = chain_id.map(Asset::for_chain);
        let native_fee = match (&self.fees.native, &native_asset) {
            (None, _) => {
                c.bad("fees.native", "is required (e.g. \"0.001\")");
                None
            }
            (Some(text), Some(asset)) => match parse_units(text.trim(), asset) {
                Ok(u) => Some(u),
                Err(e) => {
                    c.bad("fees.native", e.to_string());
                    None
                }
            },
            (Some(_), None) => None,
        };
        let mut tokens = Vec::new();
        for (i, t) in self.fees.tokens.iter().enumerate() {
            let k = |f: &str| format!("fees.tokens[{i}].{f}");
            let address = c.required(&k("address"), &t.address).and_then(|a| {
                match springmail_sdk::qtum::parse_hex_address(&a) {
                    Ok(a) => Some(a),
                    Err(e) => {
                        c.bad(&k("address"), e.to_string());
                        None
                    }
                }
            });
            let symbol = c.required(&k("symbol"), &t.symbol);
            let decimals = c.required(&k("decimals"), &t.decimals);
            let asset = match (symbol, decimals) {
                (Some(s), Some(d)) => match Asset::new(s, d) {
                    Ok(a) => Some(a),
                    Err(e) => {
                        c.bad(&k("symbol"), e.to_string());
                        None
                    }
                },
                _ => None,
            };
            let fee = match (c.required(&k("fee"), &t.fee), &asset) {
                (Some(f), Some(a)) => match parse_units(f.trim(), a) {
                    Ok(u) => Some(u),
                    Err(e) => {
                        c.bad(&k("fee"), e.to_string());
                        None
                    }
                },
                _ => None,
            };
            if let (Some(address), Some(asset), Some(fee)) = (address, asset, fee) {
                tokens.push(TokenFee {
                    address,
                    asset,
                    fee,
                });
            }
        }

        let max_message_bytes = self.limits.max_message_bytes.unwrap_or(1 << 20);
        if !(4096..=64 << 20).contains(&max_message_bytes) {
            c.bad(
                "limits.max_message_bytes",
                "must be between 4096 and 67108864",
            );
        }
        let batch_size = self.limits.batch_size.unwrap_or(256);
        if !(1..=10_000).contains(&batch_size) {
            c.bad("limits.batch_size", "must be between 1 and 10000");
        }
        let http = match &self.http {
            None => None,
            Some(h) => {
                let listen = match h.listen.as_deref().map(str::parse::<SocketAddr>) {
                    Some(Ok(a)) => Some(a),
                    Some(Err(e)) => {
                        c.bad("http.listen", format!("not an address:port ({e})"));
                        None
                    }
                    None => {
                        c.bad(
                            "http.listen",
                            "missing: the address to serve the claim page on",
                        );
                        None
                    }
                };
                let per_minute = h.rate_limit_per_minute.unwrap_or(60);
                if per_minute == 0 {
                    c.bad("http.rate_limit_per_minute", "must be at least 1");
                }
                listen.map(|listen| HttpSettings {
                    listen,
                    claim: crate::http::ClaimSettings {
                        reply_to: h
                            .reply_to
                            .clone()
                            .or_else(|| self.smtp.as_ref().and_then(|s| s.from.clone()))
                            .or_else(|| self.imap.as_ref().and_then(|i| i.user.clone())),
                        rate_limit_per_minute: per_minute,
                        ..Default::default()
                    },
                })
            }
        };
        let metrics_listen = match &self.metrics.listen {
            None => None,
            Some(s) => match s.parse::<SocketAddr>() {
                Ok(a) => Some(a),
                Err(e) => {
                    c.bad(
                        "metrics.listen",
                        format!("{s:?} is not an address:port ({e})"),
                    );
                    None
                }
            },
        };

        if !c.issues.is_empty() {
            return Err(ConfigErrors {
                file: None,
                issues: c.issues,
            });
        }
        let imap_security = imap_security.expect("checked");
        let smtp_security = smtp_security.expect("checked");
        Ok(Settings {
            data_dir: data_dir.expect("checked"),
            imap: ImapSettings {
                host: imap_host.expect("checked"),
                port: imap_raw
                    .port
                    .unwrap_or(if imap_security == ImapSecurity::Tls {
                        993
                    } else {
                        143
                    }),
                security: imap_security,
                user: imap_user.expect("checked"),
                password: imap_password.expect("checked"),
                mailbox: imap_raw.mailbox.clone().unwrap_or_else(|| "INBOX".into()),
                idle: imap_raw.idle.unwrap_or(true),
                timeout: Duration::from_secs(60),
            },
            poll_interval: Duration::from_secs(poll),
            smtp: SmtpSettings {
                host: smtp_host.expect("checked"),
                port: smtp_raw.port.unwrap_or(match smtp_security {
                    SmtpSecurity::Tls => 465,
                    SmtpSecurity::StartTls => 587,
                    SmtpSecurity::Plain => 25,
                }),
                security: smtp_security,
                credentials: smtp_raw.user.clone().zip(smtp_password),
            },
            from: from.expect("checked"),
            display_name: smtp_raw
                .display_name
                .clone()
                .unwrap_or_else(|| "Spring Mail watcher".into()),
            dkim,
            pinned_only,
            pinned,
            chain: chain.expect("checked"),
            chain_id: chain_id.expect("checked"),
            escrow: escrow.expect("checked"),
            start_block: chain_raw.start_block.unwrap_or(0),
            submit: SubmitPolicy {
                receipt_timeout: Duration::from_secs(chain_raw.receipt_timeout_secs.unwrap_or(120)),
                gas_limit: Some(chain_raw.gas_limit.unwrap_or(300_000)),
                resend_guard: Duration::from_secs(chain_raw.resend_guard_secs.unwrap_or(30)),
            },
            key: key.expect("checked"),
            native_fee: native_fee.expect("checked"),
            tokens,
            min_time_left: self.fees.min_time_left_secs.unwrap_or(600),
            max_message_bytes,
            batch_size,
            metrics_listen,
            http,
        })
    }
}

fn parse_secret(hex_text: &str) -> Result<ClaimSecret, String> {
    let digits = hex_text.trim().trim_start_matches("0x");
    let mut bytes = [0u8; 32];
    hex::decode_to_slice(digits, &mut bytes).map_err(|e| e.to_string())?;
    ClaimSecret::from_bytes(bytes).map_err(|e| e.to_string())
}

impl Settings {
    /// Loads the watcher key.
    pub fn load_key(&self) -> Result<ClaimSecret, ResolveError> {
        match &self.key {
            KeySource::Hex(h) => parse_secret(h).map_err(|problem| ResolveError::Key {
                key: "watcher_key.env",
                problem,
            }),
            KeySource::Keystore { path, password } => {
                let file = springmail_sdk::keystore::KeystoreFile::load(path).map_err(|e| {
                    ResolveError::Key {
                        key: "watcher_key.keystore",
                        problem: e.to_string(),
                    }
                })?;
                file.decrypt(password.as_bytes())
                    .map_err(|e| ResolveError::Key {
                        key: "watcher_key.keystore",
                        problem: e.to_string(),
                    })
            }
        }
    }

    /// Connects the chain backend, sending as the watcher key (evm-rpc, and qtum with
    /// `signer = "local"`) or the node wallet's sender (qtum).
    pub async fn connect_chain(&self, key: &ClaimSecret) -> Result<Arc<dyn Chain>, ResolveError> {
        let err = |e: springmail_sdk::chain::ChainError| {
            ResolveError::chain("chain.url", e.to_string(), e.is_transient())
        };
        Ok(match &self.chain {
            ChainSettings::EvmRpc { url } => Arc::new(
                springmail_sdk::chain::evm_rpc::EvmRpcChain::connect(
                    url,
                    key.signer(),
                    Some(self.chain_id),
                )
                .await
                .map_err(err)?,
            ),
            ChainSettings::Qtum {
                url,
                user,
                password,
                sender,
                wallet,
                local,
            } => {
                let mut cfg = springmail_sdk::chain::qtum::QtumConfig::new(
                    url.clone(),
                    user.clone(),
                    password.clone(),
                    sender.clone(),
                )
                .expect_chain_id(self.chain_id);
                if *local {
                    cfg = cfg.local_key(key.clone());
                }
                if let Some(w) = wallet {
                    cfg = cfg.wallet(w.clone());
                }
                Arc::new(
                    springmail_sdk::chain::qtum::QtumChain::connect(cfg)
                        .await
                        .map_err(err)?,
                )
            }
        })
    }

    /// Does the I/O and returns the parts of a watcher: data directory, journal,
    /// keys, chain (the escrow must have code), IMAP source, SMTP sink.
    pub async fn resolve(&self) -> Result<WatcherParts, ResolveError> {
        std::fs::create_dir_all(&self.data_dir).map_err(|e| ResolveError::Key {
            key: "data_dir",
            problem: e.to_string(),
        })?;
        let journal = Journal::open_in(&self.data_dir).map_err(|e| ResolveError::Key {
            key: "data_dir",
            problem: e.to_string(),
        })?;
        let key = Arc::new(self.load_key()?);
        let chain = self.connect_chain(&key).await?;
        let client = SpringMail::new(chain, self.escrow).with_start_block(self.start_block);
        client.stored_hash(Address::ZERO).await.map_err(|e| {
            ResolveError::chain(
                "chain.escrow",
                format!("cannot read the escrow contract: {e}"),
                e.is_transient(),
            )
        })?;
        let dkim = match &self.dkim {
            None => None,
            Some((domain, selector, file)) => {
                let pem = std::fs::read_to_string(file).map_err(|e| ResolveError::Key {
                    key: "dkim.key_file",
                    problem: format!("{}: {e}", file.display()),
                })?;
                let k =
                    DkimSigningKey::from_pem(&pem, &file.display().to_string()).map_err(|e| {
                        ResolveError::Key {
                            key: "dkim.key_file",
                            problem: e.to_string(),
                        }
                    })?;
                Some((k, domain.clone(), selector.clone()))
            }
        };
        let keys = if self.pinned_only {
            DkimKeys::pinned(self.pinned.clone())
        } else {
            DkimKeys::system(self.pinned.clone()).map_err(|e| ResolveError::Key {
                key: "dns.resolver",
                problem: e.to_string(),
            })?
        };
        let source = ImapSource::new(self.imap.clone()).map_err(|e| ResolveError::Key {
            key: "imap.security",
            problem: e.to_string(),
        })?;
        let sink = SmtpSink::new(&self.smtp).map_err(|e| ResolveError::Key {
            key: "smtp.host",
            problem: e.to_string(),
        })?;
        Ok(WatcherParts {
            client,
            watcher_key: key.clone(),
            journal: Arc::new(journal),
            sources: vec![Box::new(source)],
            sink: Arc::new(sink),
            authenticator: MailAuthenticator::new(
                keys,
                AuthPolicy {
                    max_message_bytes: self.max_message_bytes,
                    own_addresses: vec![self.from.clone()],
                },
            ),
            composer: ReplyComposer::new(&self.from, &self.display_name, dkim),
            verify: VerifyPolicy {
                watcher: key.address(),
                native_fee: self.native_fee,
                tokens: self.tokens.clone(),
                min_time_left: self.min_time_left,
            },
            submit: self.submit.clone(),
            pipeline: PipelineSettings {
                batch_size: self.batch_size,
                poll_interval: self.poll_interval,
                ..Default::default()
            },
            metrics: Metrics::new(),
        })
    }
}

impl Settings {
    /// Starts the HTTP services this configuration names (see the module docs): the
    /// claim page with its API on `[http] listen`, and `/healthz` + `/metrics` alone on
    /// `[metrics] listen` when that is another address. Each runs until its handle is dropped
    /// or aborted.
    pub async fn serve_http(
        &self,
        watcher: &crate::service::Watcher,
    ) -> std::io::Result<Vec<(SocketAddr, tokio::task::JoinHandle<()>)>> {
        let max_age = self.poll_interval.as_secs() * 3 + 60;
        let mut out = Vec::new();
        if let Some(h) = &self.http {
            out.push(
                crate::http::serve(
                    h.listen,
                    watcher.metrics().clone(),
                    max_age,
                    Some((watcher.claim_backend(), h.claim.clone())),
                )
                .await?,
            );
        }
        if let Some(addr) = self.metrics_listen {
            if self.http.as_ref().map(|h| h.listen) != Some(addr) {
                out.push(crate::http::serve(addr, watcher.metrics().clone(), max_age, None).await?);
            }
        }
        Ok(out)
    }
}

/// Runs a watcher from a configuration file until `shutdown`: what `springmail watch` does.
pub async fn run_from_file(
    path: &Path,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let raw = RawConfig::load(path)?;
    let settings = raw
        .validate(&|name| std::env::var(name).ok())
        .map_err(|mut e| {
            e.file = Some(path.to_path_buf());
            e
        })?;
    let parts = settings.resolve().await?;
    let watcher = crate::service::Watcher::new(parts)?;
    let _servers = settings.serve_http(&watcher).await?;
    watcher.run(shutdown).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
data_dir = "/tmp/sm"
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
key_file = "/tmp/dkim.pem"
[dns]
resolver = "pinned"
[dns.pinned]
"sm._domainkey.example.com" = "v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="
[chain]
url = "http://127.0.0.1:8545"
chain_id = 8890
escrow = "0x00000000000000000000000000000000000000e5"
[watcher_key]
env = "WKEY"
[fees]
native = "0.001"
"#;

    fn env(name: &str) -> Option<String> {
        match name {
            "IMAP_PW" => Some("springmail".into()),
            "WKEY" => Some(format!("0x{}", "11".repeat(32))),
            _ => None,
        }
    }

    #[test]
    fn a_good_file_validates_with_defaults() {
        let s = RawConfig::parse(GOOD).unwrap().validate(&env).unwrap();
        assert_eq!(s.imap.mailbox, "INBOX");
        assert_eq!(s.from, "watcher@broker.test");
        assert_eq!(s.native_fee, 100_000);
        assert!(s.pinned_only && s.pinned.len() == 1);
        assert_eq!(s.metrics_listen, None);
        let shown = format!("{s:?}");
        assert!(
            !shown.contains("springmail\"") && !shown.contains(&"11".repeat(32)),
            "{shown}"
        );
    }

    #[test]
    fn every_bad_key_is_reported_by_name_in_one_pass() {
        let text = GOOD
            .replace(
                "host = \"127.0.0.1\"\nport = 1143",
                "host = \"imap.example.com\"\nport = 1143",
            )
            .replace("native = \"0.001\"", "native = \"0.000000001\"")
            .replace("env = \"WKEY\"", "env = \"NOPE\"")
            .replace(
                "escrow = \"0x00000000000000000000000000000000000000e5\"",
                "escrow = \"0x12\"",
            );
        let err = RawConfig::parse(&text).unwrap().validate(&env).unwrap_err();
        let keys: Vec<&str> = err.issues.iter().map(|i| i.key.as_str()).collect();
        assert_eq!(
            keys,
            vec![
                "imap.security",
                "chain.escrow",
                "watcher_key.env",
                "fees.native"
            ],
            "{err}"
        );
        assert!(err.to_string().contains("imap.security: \"plain\""));
    }

    #[test]
    fn qtum_local_signer_needs_no_sender_and_an_unknown_signer_is_named() {
        let qtum = |extra: &str| {
            GOOD.replace(
                "url = \"http://127.0.0.1:8545\"",
                &format!(
                    "backend = \"qtum\"\nurl = \"http://127.0.0.1:3889\"\n\
                     rpc_user_env = \"IMAP_PW\"\nrpc_password_env = \"IMAP_PW\"\n{extra}"
                ),
            )
        };
        let s = RawConfig::parse(&qtum("signer = \"local\"\n"))
            .unwrap()
            .validate(&env)
            .unwrap();
        assert!(
            matches!(&s.chain, ChainSettings::Qtum { local: true, sender, .. } if sender.is_empty()),
            "{:?}",
            s.chain
        );
        // The node signer still needs the wallet's sender.
        let err = RawConfig::parse(&qtum(""))
            .unwrap()
            .validate(&env)
            .unwrap_err();
        let keys: Vec<&str> = err.issues.iter().map(|i| i.key.as_str()).collect();
        assert_eq!(keys, vec!["chain.sender"], "{err}");
        let err = RawConfig::parse(&qtum("signer = \"hsm\"\n"))
            .unwrap()
            .validate(&env)
            .unwrap_err();
        let keys: Vec<&str> = err.issues.iter().map(|i| i.key.as_str()).collect();
        assert_eq!(keys, vec!["chain.signer"], "{err}");
        assert!(err.to_string().contains("\"hsm\""), "{err}");
    }

    #[test]
    fn the_http_section_serves_the_claim_page_and_names_its_mailbox() {
        let s = RawConfig::parse(GOOD).unwrap().validate(&env).unwrap();
        assert!(s.http.is_none(), "no [http]: no claim page");
        let text =
            format!("{GOOD}[http]\nlisten = \"127.0.0.1:8080\"\nrate_limit_per_minute = 30\n");
        let s = RawConfig::parse(&text).unwrap().validate(&env).unwrap();
        let h = s.http.expect("[http]");
        assert_eq!(h.listen, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(h.claim.rate_limit_per_minute, 30);
        assert_eq!(h.claim.reply_to.as_deref(), Some("watcher@broker.test"));
        let bad = format!("{GOOD}[http]\nlisten = \"nowhere\"\nrate_limit_per_minute = 0\n");
        let err = RawConfig::parse(&bad).unwrap().validate(&env).unwrap_err();
        let keys: Vec<&str> = err.issues.iter().map(|i| i.key.as_str()).collect();
        assert_eq!(
            keys,
            vec!["http.listen", "http.rate_limit_per_minute"],
            "{err}"
        );
        let missing = format!("{GOOD}[http]\nreply_to = \"a@b.example\"\n");
        let err = RawConfig::parse(&missing)
            .unwrap()
            .validate(&env)
            .unwrap_err();
        assert!(err.to_string().contains("http.listen: missing"), "{err}");
    }

    #[test]
    fn unknown_keys_and_missing_sections_are_errors() {
        let err = RawConfig::parse("data_dir = \"x\"\n[imap]\nhots = \"a\"\n").unwrap_err();
        assert!(err.to_string().contains("hots"), "{err}");
        let err = RawConfig::parse("").unwrap().validate(&env).unwrap_err();
        let keys: Vec<&str> = err.issues.iter().map(|i| i.key.as_str()).collect();
        for k in [
            "data_dir",
            "imap",
            "smtp",
            "chain",
            "watcher_key",
            "fees.native",
        ] {
            assert!(keys.contains(&k), "{k} missing from {keys:?}");
        }
    }

    const KEY_P: &str = "p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=";

    /// GOOD without its inline pins, reading `pinned_file = FILE` instead.
    fn with_pinned_file(dir: &Path, file: &str, body: &str) -> Result<Settings, ConfigErrors> {
        std::fs::write(dir.join(file), body).unwrap();
        let inline = GOOD
            .lines()
            .filter(|l| !l.starts_with("[dns.pinned]") && !l.starts_with("\"sm._domainkey"))
            .collect::<Vec<_>>()
            .join("\n")
            .replace(
                "resolver = \"pinned\"",
                &format!("resolver = \"pinned\"\npinned_file = \"{file}\""),
            );
        let config = dir.join("watcher.toml");
        std::fs::write(&config, inline).unwrap();
        // Run from elsewhere: the path is relative to the config file, not the cwd.
        RawConfig::load(&config)?.validate(&env)
    }

    #[test]
    fn pinned_records_come_from_a_zone_file() {
        let dir = tempfile::tempdir().unwrap();
        let zone = format!(
            "$ORIGIN example.com.\n$TTL 3600\n; the claimants' DKIM keys\n\
             sm._domainkey  IN TXT ( \"v=DKIM1; k=ed25519; \"\n      \"{KEY_P}\" )\n\
             other.example.org. 300 IN TXT \"v=DKIM1; k=ed25519; {KEY_P}\"\n\
             example.com. IN MX 10 mail.example.com.\n"
        );
        let s = with_pinned_file(dir.path(), "keys.zone", &zone).unwrap();
        assert!(s.pinned_only);
        assert_eq!(s.pinned.len(), 2);
    }

    #[test]
    fn pinned_records_come_from_a_json_map() {
        let dir = tempfile::tempdir().unwrap();
        let json = format!(
            "{{\n  \"sm._domainkey.example.com\": \"v=DKIM1; k=ed25519; {KEY_P}\",\n  \
             \"sm._domainkey.example.net\": [\"v=DKIM1; k=ed25519; \", \"{KEY_P}\"]\n}}\n"
        );
        let s = with_pinned_file(dir.path(), "keys.json", &json).unwrap();
        assert_eq!(s.pinned.len(), 2);
    }

    #[test]
    fn a_malformed_pinned_file_is_named_with_its_line() {
        let dir = tempfile::tempdir().unwrap();
        let zone = format!("; keys\nsm._domainkey.example.com. IN TXT \"v=DKIM1; k=ed25519; {KEY_P}\"\nbroken.example.com. IN TXT \"v=DKIM1; p=unclosed\n");
        let err = with_pinned_file(dir.path(), "keys.zone", &zone).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("dns.pinned_file") && text.contains("keys.zone line 3"),
            "{text}"
        );
        let json = "{\n  \"a.example.com\": \"v=DKIM1; k=ed25519; p=x\",\n  oops\n}\n";
        let err = with_pinned_file(dir.path(), "keys.json", json).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("keys.json line 3"), "{text}");
        // A record that is not a DKIM key names its line too.
        let zone = "\n\nbad._domainkey.example.com. IN TXT \"hello\"\n";
        let err = with_pinned_file(dir.path(), "bad.zone", zone).unwrap_err();
        assert!(err.to_string().contains("bad.zone line 3"), "{err}");
        // A missing file is named.
        std::fs::remove_file(dir.path().join("bad.zone")).unwrap();
        let err = RawConfig::load(&dir.path().join("watcher.toml"))
            .unwrap()
            .validate(&env)
            .unwrap_err();
        assert!(err.to_string().contains("bad.zone"), "{err}");
    }
}
