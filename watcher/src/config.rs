//! The watcher's configuration: one TOML file, read in two steps.
//!
//! 1. [`RawConfig`]: the file as written, parsed without any I/O; unknown and mistyped
//!    keys are all named at once. [`RawConfig::validate`] checks every value, reads the
//!    secrets' environment variables through the function it is given, and reports
//!    **every** problem in one [`ConfigErrors`], each naming its key (`[imap] port: …`).
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
//! [chain]                          # the CLI's keys: springmail_sdk::config
//! backend = "evm-rpc"              # or "qtum"
//! url = "http://127.0.0.1:8545"    # required
//! chain_id = 8890                  # required
//! escrow = "0x…"                   # required
//! start_block = 0                  # the escrow's deployment block
//! gas_limit = 300000
//! receipt_timeout_secs = 120
//! # qtum only: rpc_user (or rpc_user_env), rpc_password_env (default
//! #   SPRINGMAIL_QTUM_RPC_PASSWORD), wallet, signer = "node" | "local", sender (the node
//! #   wallet's q… address; with signer = "local" the watcher key's Qtum address signs
//! #   and pays gas, qtumd needs -addrindex and no wallet)
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
//!
//! [smtp_ingress]                   # the watcher as its domain's MX (docs/OPERATIONS.md);
//! listen = "0.0.0.0:25"            # its spool is a door (mailbox "SMTP"); [imap] is then optional
//! hostname = "mx.broker.example"   # banner, EHLO, trace headers (default: first domain)
//! domains = ["broker.example"]     # mail for any other domain is refused (no relay)
//! recipients = ["watcher@broker.example"]   # default: smtp.from
//! qtum_addresses = false           # true: also <q-address>@domain (Qtum chains)
//! addresses = false                # true: broker@domain, registered q-addresses and aliases
//!                                  # (forwarding, REGISTER, RESOLVE, RECEIPT; needs [dkim])
//! peers = ["brokerb.example"]      # domains run by Spring Mail brokers: wallet payments to
//!                                  # names there are resolved and reported broker to broker
//! resolve_timeout_secs = 300       # a payment waiting longer for RESOLVED fails, nothing paid
//! spool_dir = "spool"              # default: data_dir/spool
//! max_message_bytes = 1048576      # default: limits.max_message_bytes
//! max_recipients = 10
//! max_connections_per_client = 10
//! max_messages_per_connection = 100
//! timeout_secs = 60
//! tls_cert = "/etc/springmail/mx.crt"   # both or neither: STARTTLS
//! tls_key = "/etc/springmail/mx.key"
//!
//! [wallet]                         # mailbox wallets (docs/OPERATIONS.md)
//! enabled = true
//! per_payment = "10"               # limits new accounts are opened with, native asset
//! per_day = "50"
//! confirm_above = "1"              # larger payments wait for a CONFIRM with a code
//! order_window_secs = 86400        # older PAY/CONFIRM mail is refused; codes expire
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
use springmail_sdk::config::{
    one_of, secret, take_section, take_value, ChainConfig, ChainSettings, Need,
};
pub use springmail_sdk::config::{ConfigErrors, ConfigIssue};
use springmail_sdk::keys::ClaimSecret;

use crate::authenticate::{AuthPolicy, DkimKeys, MailAuthenticator, PinnedRecords};
use crate::ingest::imap::{is_loopback, ImapSecurity, ImapSettings, ImapSource};
use crate::journal::Journal;
use crate::metrics::Metrics;
use crate::reply::{
    DkimSigningKey, ReplyComposer, SmtpSecurity, SmtpSettings, SmtpSink, DEFAULT_SMTP_CONNECTIONS,
};
use crate::service::{PipelineSettings, WatcherParts};
use crate::smtp_ingress::{IngressSettings, Spool};
use crate::submit::SubmitPolicy;

/// The address layer, once made.
type AddressLayer =
    Arc<std::sync::OnceLock<(crate::addresses::Routes, Arc<crate::addresses::AddressDesk>)>>;
use crate::verify::{TokenFee, VerifyPolicy};

/// The file as written.
#[derive(Debug, Clone, Default)]
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
    pub dns: RawDns,
    /// Chain and escrow (the section the CLI reads too).
    pub chain: Option<ChainConfig>,
    /// The watcher's attestation key.
    pub watcher_key: Option<RawKey>,
    /// Fee policy.
    pub fees: RawFees,
    /// Limits.
    pub limits: RawLimits,
    /// Health and metrics endpoint.
    pub metrics: RawMetrics,
    /// The claim page and its API.
    pub http: Option<RawHttp>,
    /// The SMTP ingress (the watcher as the MX).
    pub smtp_ingress: Option<RawSmtpIngress>,
    /// Mailbox wallets.
    pub wallet: Option<crate::wallet::RawWallet>,
    /// The directory of the file read, for relative paths in it (`dns.pinned_file`).
    pub base_dir: Option<PathBuf>,
    /// Unknown and mistyped keys found while parsing.
    pub issues: Vec<ConfigIssue>,
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
    /// Connections open at once to the server (replies in flight), 1–64.
    pub connections: Option<u32>,
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

/// `[smtp_ingress]`: the watcher as its domain's MX.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSmtpIngress {
    /// Listen address (`0.0.0.0:25`); required.
    pub listen: Option<String>,
    /// Name in the banner, EHLO and trace headers (default: the first domain).
    pub hostname: Option<String>,
    /// Domains mail is accepted for; required.
    #[serde(default)]
    pub domains: Vec<String>,
    /// Mailboxes accepted (default: `smtp.from`).
    #[serde(default)]
    pub recipients: Vec<String>,
    /// Also accept `<q-address>@<domain>` for valid addresses of the chain's network.
    pub qtum_addresses: Option<bool>,
    /// The address layer: `broker@`, registered addresses and aliases
    /// ([`crate::addresses`]).
    pub addresses: Option<bool>,
    /// Domains run by Spring Mail brokers: wallet payments to names there are
    /// resolved (RESOLVE) and reported (RECEIPT) broker to broker.
    #[serde(default)]
    pub peers: Vec<String>,
    /// How long a payment waits for a peer's RESOLVED (default 300 seconds).
    pub resolve_timeout_secs: Option<u64>,
    /// Spool directory (default `data_dir/spool`; relative to `data_dir`).
    pub spool_dir: Option<PathBuf>,
    /// Larger messages are refused (default `limits.max_message_bytes`).
    pub max_message_bytes: Option<u64>,
    /// Recipients per message (default 10).
    pub max_recipients: Option<usize>,
    /// Connections per client IP address (default 10).
    pub max_connections_per_client: Option<usize>,
    /// Messages per connection (default 100).
    pub max_messages_per_connection: Option<usize>,
    /// Idle timeout in seconds (default 60).
    pub timeout_secs: Option<u64>,
    /// STARTTLS certificate chain (PEM).
    pub tls_cert: Option<PathBuf>,
    /// STARTTLS private key (PEM).
    pub tls_key: Option<PathBuf>,
}

/// The claim page's service, validated.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    /// Listen address.
    pub listen: SocketAddr,
    /// Page and API settings.
    pub claim: crate::http::ClaimSettings,
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
    /// The IMAP door; `None` when only the SMTP ingress brings mail.
    pub imap: Option<ImapSettings>,
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
    /// Chain backend, chain id (set), escrow (set) and first block.
    pub chain: ChainSettings,
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
    /// The SMTP ingress (`[smtp_ingress]`); mail is then read from its spool.
    pub smtp_ingress: Option<IngressSettings>,
    /// Mailbox wallets (`[wallet]`, when enabled).
    pub wallet: Option<crate::wallet::WalletSettings>,
    /// The ingress's spool, opened once and shared by the source and the server.
    spool: Arc<std::sync::OnceLock<Arc<Spool>>>,
    /// The address layer, made once for the ingress and the wallet.
    desk: AddressLayer,
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
        secret(self.env, key, var.as_deref(), required, &mut self.issues)
    }
}

impl RawConfig {
    /// Parses TOML text (no I/O), naming every unknown or mistyped key at once.
    pub fn parse(text: &str) -> Result<Self, ConfigErrors> {
        let raw = Self::parse_keeping_issues(text)?;
        match raw.issues.is_empty() {
            true => Ok(raw),
            false => Err(ConfigErrors {
                file: None,
                issues: raw.issues,
            }),
        }
    }

    /// Parses TOML text, keeping unknown and mistyped keys for [`RawConfig::validate`] to
    /// report with the bad values (one pass names them all). Only bad TOML is an error.
    pub fn parse_keeping_issues(text: &str) -> Result<Self, ConfigErrors> {
        let mut t = springmail_sdk::config::parse_table(text).map_err(|i| ConfigErrors {
            file: None,
            issues: vec![i],
        })?;
        let mut issues = Vec::new();
        let i = &mut issues;
        let raw = RawConfig {
            data_dir: take_value(&mut t, "data_dir", "data_dir", i),
            imap: take_section(&mut t, "imap", i),
            smtp: take_section(&mut t, "smtp", i),
            dkim: take_section(&mut t, "dkim", i),
            dns: take_section(&mut t, "dns", i).unwrap_or_default(),
            chain: take_section(&mut t, "chain", i),
            watcher_key: take_section(&mut t, "watcher_key", i),
            fees: take_section(&mut t, "fees", i).unwrap_or_default(),
            limits: take_section(&mut t, "limits", i).unwrap_or_default(),
            metrics: take_section(&mut t, "metrics", i).unwrap_or_default(),
            http: take_section(&mut t, "http", i),
            smtp_ingress: take_section(&mut t, "smtp_ingress", i),
            wallet: take_section(&mut t, "wallet", i),
            base_dir: None,
            issues: Vec::new(),
        };
        springmail_sdk::config::unknown_keys(
            t,
            "data_dir, imap, smtp, dkim, dns, chain, watcher_key, fees, limits, metrics, http, smtp_ingress, wallet",
            i,
        );
        Ok(RawConfig { issues, ..raw })
    }

    /// Reads and parses a file; bad keys are reported by [`RawConfig::validate`].
    pub fn load(path: &Path) -> Result<Self, ConfigErrors> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigErrors {
            file: Some(path.to_path_buf()),
            issues: vec![ConfigIssue {
                key: "(file)".into(),
                problem: e.to_string(),
            }],
        })?;
        let mut raw = Self::parse_keeping_issues(&text).map_err(|mut e| {
            e.file = Some(path.to_path_buf());
            e
        })?;
        raw.base_dir = path.parent().map(Path::to_path_buf);
        Ok(raw)
    }

    /// Checks every key; secrets' variables are read through `env`.
    pub fn validate(&self, env: &dyn Fn(&str) -> Option<String>) -> Result<Settings, ConfigErrors> {
        let mut c = Check {
            issues: self.issues.clone(),
            env,
        };
        let data_dir = c.required("data_dir", &self.data_dir);

        // IMAP: optional when the SMTP ingress brings mail; both may (two doors).
        let imap_wanted = self.imap.is_some() || self.smtp_ingress.is_none();
        let imap_raw = self.imap.clone().unwrap_or_default();
        if !imap_wanted {
            // Nothing of [imap] is read.
        } else if self.imap.is_none() {
            c.bad(
                "imap",
                "the [imap] section is required (or [smtp_ingress], the watcher as the MX)",
            );
        }
        let imap_host = if imap_wanted {
            c.required("imap.host", &imap_raw.host)
        } else {
            None
        };
        let imap_security = one_of(
            "imap.security",
            imap_raw.security.as_deref(),
            "tls",
            &[("tls", ImapSecurity::Tls), ("plain", ImapSecurity::Plain)],
            &mut c.issues,
        );
        if imap_security == Some(ImapSecurity::Plain)
            && imap_host.as_deref().is_some_and(|h| !is_loopback(h))
        {
            c.bad(
                "imap.security",
                "\"plain\" (unencrypted) is only allowed when imap.host is a loopback address",
            );
        }
        let imap_user = if imap_wanted {
            c.required("imap.user", &imap_raw.user)
        } else {
            None
        };
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
        let smtp_security = one_of(
            "smtp.security",
            smtp_raw.security.as_deref(),
            "tls",
            &[
                ("tls", SmtpSecurity::Tls),
                ("starttls", SmtpSecurity::StartTls),
                ("plain", SmtpSecurity::Plain),
            ],
            &mut c.issues,
        );
        if smtp_security == Some(SmtpSecurity::Plain)
            && smtp_host.as_deref().is_some_and(|h| !is_loopback(h))
        {
            c.bad(
                "smtp.security",
                "\"plain\" (unencrypted) is only allowed when smtp.host is a loopback address",
            );
        }
        let smtp_connections = smtp_raw.connections.unwrap_or(DEFAULT_SMTP_CONNECTIONS);
        if !(1..=64).contains(&smtp_connections) {
            c.bad("smtp.connections", "must be between 1 and 64");
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
        let resolvers = [("system", false), ("pinned", true)];
        let resolver = self.dns.resolver.as_deref();
        let pinned_only = one_of(
            "dns.resolver",
            resolver,
            "system",
            &resolvers,
            &mut c.issues,
        )
        .unwrap_or(false);
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
            if let Err(problem) = crate::pinned_file::pin_file(&path, &mut pinned) {
                c.bad("dns.pinned_file", problem);
            }
        }

        // Chain: the same section and checks as the CLI's.
        if self.chain.is_none() {
            c.bad("chain", "the [chain] section is required");
        }
        let chain =
            self.chain
                .clone()
                .unwrap_or_default()
                .resolve(Need::Service, c.env, &mut c.issues);
        let chain_id = self.chain.as_ref().and_then(|ch| ch.chain_id);

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
        let wallet = match (&self.wallet, &native_asset) {
            (Some(w), Some(asset)) => w.validate(asset, &mut c.issues),
            _ => None,
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

        if self
            .smtp_ingress
            .as_ref()
            .is_some_and(|i| i.addresses == Some(true))
        {
            if self.dkim.is_none() {
                c.bad(
                    "smtp_ingress.addresses",
                    "needs [dkim]: brokers and users trust the broker's mail by its DKIM signature",
                );
            }
            if self.chain.as_ref().and_then(|ch| ch.chain_id).is_none() {
                c.bad("smtp_ingress.addresses", "needs chain.chain_id");
            }
        }
        let smtp_ingress = self.smtp_ingress.as_ref().and_then(|raw| {
            validate_smtp_ingress(
                raw,
                &mut c,
                data_dir.as_deref(),
                from.as_deref(),
                max_message_bytes,
                chain_id,
            )
        });

        if !c.issues.is_empty() {
            return Err(ConfigErrors {
                file: None,
                issues: c.issues,
            });
        }
        let imap_security = imap_security.expect("checked");
        let chain = chain.expect("checked");
        let smtp_security = smtp_security.expect("checked");
        Ok(Settings {
            data_dir: data_dir.expect("checked"),
            imap: imap_wanted.then(|| ImapSettings {
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
            }),
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
                connections: smtp_connections,
            },
            from: from.expect("checked"),
            display_name: smtp_raw
                .display_name
                .clone()
                .unwrap_or_else(|| "Spring Mail watcher".into()),
            dkim,
            pinned_only,
            pinned,
            submit: SubmitPolicy {
                receipt_timeout: chain.receipt_timeout,
                gas_limit: Some(chain.gas_limit),
                resend_guard: chain.resend_guard,
            },
            chain,
            key: key.expect("checked"),
            native_fee: native_fee.expect("checked"),
            tokens,
            min_time_left: self.fees.min_time_left_secs.unwrap_or(600),
            max_message_bytes,
            batch_size,
            metrics_listen,
            http,
            smtp_ingress,
            wallet,
            spool: Default::default(),
            desk: Default::default(),
        })
    }
}

fn validate_smtp_ingress(
    raw: &RawSmtpIngress,
    c: &mut Check<'_>,
    data_dir: Option<&Path>,
    from: Option<&str>,
    default_max: u64,
    chain_id: Option<u64>,
) -> Option<IngressSettings> {
    let listen = match raw.listen.as_deref().map(str::parse::<SocketAddr>) {
        Some(Ok(a)) => Some(a),
        Some(Err(e)) => {
            c.bad("smtp_ingress.listen", format!("not an address:port ({e})"));
            None
        }
        None => {
            c.bad(
                "smtp_ingress.listen",
                "missing: the address to receive mail on (0.0.0.0:25 as the MX)",
            );
            None
        }
    };
    let mut domains = Vec::new();
    for d in &raw.domains {
        let d = d.trim().trim_end_matches('.').to_ascii_lowercase();
        if d.is_empty() || d.contains('@') || !d.contains('.') {
            c.bad(
                "smtp_ingress.domains",
                format!("{d:?} is not a domain name like broker.example"),
            );
        } else {
            domains.push(d);
        }
    }
    if raw.domains.is_empty() {
        c.bad(
            "smtp_ingress.domains",
            "is required: the domains this server receives mail for",
        );
    }
    let mut recipients = Vec::new();
    let named: Vec<String> = if raw.recipients.is_empty() {
        from.map(str::to_string).into_iter().collect()
    } else {
        raw.recipients.clone()
    };
    for r in &named {
        match springmail_sdk::email::normalize(r) {
            Ok(r) => {
                let domain = r.rsplit_once('@').map(|(_, d)| d).unwrap_or("");
                if !domains.is_empty() && !domains.iter().any(|d| d == domain) {
                    c.bad(
                        "smtp_ingress.recipients",
                        format!("{r} is not at one of smtp_ingress.domains"),
                    );
                }
                recipients.push(r);
            }
            Err(e) => c.bad("smtp_ingress.recipients", format!("{r:?}: {e}")),
        }
    }
    let max_message_bytes = raw.max_message_bytes.unwrap_or(default_max);
    if !(4096..=64 << 20).contains(&max_message_bytes) {
        c.bad(
            "smtp_ingress.max_message_bytes",
            "must be between 4096 and 67108864",
        );
    }
    let positive = |c: &mut Check<'_>, key: &str, v: Option<usize>, default: usize| {
        let v = v.unwrap_or(default);
        if !(1..=10_000).contains(&v) {
            c.bad(key, "must be between 1 and 10000");
        }
        v
    };
    let max_recipients = positive(c, "smtp_ingress.max_recipients", raw.max_recipients, 10);
    let max_connections_per_client = positive(
        c,
        "smtp_ingress.max_connections_per_client",
        raw.max_connections_per_client,
        10,
    );
    let max_messages_per_connection = positive(
        c,
        "smtp_ingress.max_messages_per_connection",
        raw.max_messages_per_connection,
        100,
    );
    let timeout = raw.timeout_secs.unwrap_or(60);
    if !(1..=3600).contains(&timeout) {
        c.bad("smtp_ingress.timeout_secs", "must be between 1 and 3600");
    }
    let tls = match (&raw.tls_cert, &raw.tls_key) {
        (Some(cert), Some(key)) => Some((cert.clone(), key.clone())),
        (None, None) => None,
        (Some(_), None) => {
            c.bad("smtp_ingress.tls_key", "is required with tls_cert");
            None
        }
        (None, Some(_)) => {
            c.bad("smtp_ingress.tls_cert", "is required with tls_key");
            None
        }
    };
    let qtum_addresses = match (raw.qtum_addresses, chain_id) {
        (Some(true), Some(id)) => match springmail_sdk::qtum::QtumNetwork::from_chain_id(id) {
            Some(n) => Some(n),
            None => {
                c.bad(
                    "smtp_ingress.qtum_addresses",
                    format!("chain.chain_id {id} is not a Qtum chain (81, 8889, 8890)"),
                );
                None
            }
        },
        _ => None,
    };
    let mut peers = Vec::new();
    for p in &raw.peers {
        let d = p.trim().to_ascii_lowercase();
        let label_ok =
            |l: &str| !l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
        if !d.contains('.') || !d.split('.').all(label_ok) {
            c.bad("smtp_ingress.peers", format!("{p:?} is not a domain name"));
        } else if domains.contains(&d) {
            c.bad(
                "smtp_ingress.peers",
                format!("{d} is one of this broker's own domains"),
            );
        } else {
            peers.push(d);
        }
    }
    if !raw.peers.is_empty() && raw.addresses != Some(true) {
        c.bad("smtp_ingress.peers", "needs addresses = true");
    }
    let resolve_timeout = raw.resolve_timeout_secs.unwrap_or(300);
    if !(5..=86_400).contains(&resolve_timeout) {
        c.bad(
            "smtp_ingress.resolve_timeout_secs",
            "must be between 5 and 86400",
        );
    }
    let spool_dir = match (&raw.spool_dir, data_dir) {
        (Some(p), Some(d)) if p.is_relative() => d.join(p),
        (Some(p), _) => p.clone(),
        (None, Some(d)) => d.join("spool"),
        (None, None) => PathBuf::from("spool"),
    };
    let listen = listen?;
    let hostname = raw
        .hostname
        .clone()
        .or_else(|| domains.first().cloned())
        .unwrap_or_default();
    Some(IngressSettings {
        listen,
        hostname,
        domains,
        recipients,
        qtum_addresses,
        addresses: raw.addresses.unwrap_or(false),
        peers,
        resolve_timeout: Duration::from_secs(resolve_timeout),
        spool_dir,
        max_message_bytes,
        max_recipients,
        max_connections_per_client,
        max_messages_per_connection,
        timeout: Duration::from_secs(timeout),
        tls,
    })
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
        self.chain
            .connect(Some(key), None)
            .await
            .map_err(|e| ResolveError::chain("chain.url", e.to_string(), e.is_transient()))
    }

    /// The escrow (required in the file).
    pub fn escrow(&self) -> Address {
        self.chain.escrow.expect("checked")
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
        let client = SpringMail::new(chain, self.escrow()).with_start_block(self.chain.start_block);
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
        let keys = self.dkim_keys()?;
        // Each door has its own mailbox name (the spool's is `SMTP`), so both can run.
        let mut sources: Vec<Box<dyn crate::ingest::MailSource>> = Vec::new();
        if let Some(imap) = &self.imap {
            sources.push(Box::new(ImapSource::new(imap.clone()).map_err(|e| {
                ResolveError::Key {
                    key: "imap.security",
                    problem: e.to_string(),
                }
            })?));
        }
        if let Some(spool) = self.smtp_spool()? {
            sources.push(Box::new(spool.source().map_err(|e| ResolveError::Key {
                key: "smtp_ingress.spool_dir",
                problem: e.to_string(),
            })?));
        }
        let sink = SmtpSink::new(&self.smtp).map_err(|e| ResolveError::Key {
            key: "smtp.host",
            problem: e.to_string(),
        })?;
        Ok(WatcherParts {
            client,
            watcher_key: key.clone(),
            journal: Arc::new(journal),
            sources,
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
    /// The keys that verify DKIM signatures: pinned records, then DNS unless pinned only.
    fn dkim_keys(&self) -> Result<DkimKeys, ResolveError> {
        if self.pinned_only {
            Ok(DkimKeys::pinned(self.pinned.clone()))
        } else {
            DkimKeys::system(self.pinned.clone()).map_err(|e| ResolveError::Key {
                key: "dns.resolver",
                problem: e.to_string(),
            })
        }
    }

    /// The SMTP ingress's spool (`None` without `[smtp_ingress]`), opened on first use.
    pub fn smtp_spool(&self) -> Result<Option<Arc<Spool>>, ResolveError> {
        let Some(ingress) = &self.smtp_ingress else {
            return Ok(None);
        };
        if let Some(s) = self.spool.get() {
            return Ok(Some(s.clone()));
        }
        let spool = Spool::open(&ingress.spool_dir).map_err(|e| ResolveError::Key {
            key: "smtp_ingress.spool_dir",
            problem: e.to_string(),
        })?;
        Ok(Some(self.spool.get_or_init(|| spool).clone()))
    }

    /// The address layer of `[smtp_ingress] addresses = true` (`None` without it),
    /// made on first use: the ingress routes to its desk, the wallet pays through it.
    pub fn address_layer(
        &self,
    ) -> Result<Option<(crate::addresses::Routes, Arc<crate::addresses::AddressDesk>)>, ResolveError>
    {
        let Some(ingress) = self.smtp_ingress.as_ref().filter(|i| i.addresses) else {
            return Ok(None);
        };
        if let Some(l) = self.desk.get() {
            return Ok(Some(l.clone()));
        }
        let made = crate::addresses::from_settings(self, ingress, self.dkim_keys()?)?;
        Ok(Some(self.desk.get_or_init(|| made).clone()))
    }

    /// Starts the SMTP ingress of `[smtp_ingress]`, writing to the spool that
    /// [`Settings::resolve`] made the watcher's source. `None` without the section.
    pub async fn serve_smtp_ingress(
        &self,
    ) -> Result<Option<(SocketAddr, tokio::task::JoinHandle<()>)>, ResolveError> {
        let (Some(ingress), Some(spool)) = (&self.smtp_ingress, self.smtp_spool()?) else {
            return Ok(None);
        };
        let keys = self.dkim_keys()?;
        let (routes, desk) = match self.address_layer()? {
            Some((r, d)) => (Some(r), Some(d)),
            None => (None, None),
        };
        let (addr, task) =
            crate::smtp_ingress::serve_with_routes(ingress.clone(), spool, keys, routes)
                .await
                .map_err(|e| ResolveError::Key {
                    key: e.key(),
                    problem: e.to_string(),
                })?;
        Ok(Some((addr, crate::addresses::with_desk(task, desk))))
    }

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
    let settings = raw.validate(&springmail_sdk::env::var).map_err(|mut e| {
        e.file = Some(path.to_path_buf());
        e
    })?;
    let parts = settings.resolve().await?;
    let wallet = settings.wallet_for(&parts);
    let mut watcher = crate::service::Watcher::new(parts)?;
    if let Some(w) = wallet {
        watcher = watcher.with_wallet(w)?;
    }
    let _servers = settings.serve_http(&watcher).await?;
    let _ingress = settings.serve_smtp_ingress().await?;
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
    fn the_address_layer_needs_dkim_and_a_chain_id() {
        let ingress = "[smtp_ingress]\nlisten = \"127.0.0.1:2525\"\ndomains = [\"broker.test\"]\naddresses = true\n";
        let s = RawConfig::parse(&format!("{GOOD}{ingress}"))
            .unwrap()
            .validate(&env)
            .unwrap();
        assert!(s.smtp_ingress.unwrap().addresses);
        let no_dkim = GOOD.replace(
            "[dkim]\ndomain = \"broker.test\"\nselector = \"sm\"\nkey_file = \"/tmp/dkim.pem\"\n",
            "",
        );
        assert_ne!(no_dkim, GOOD);
        let err = RawConfig::parse(&format!("{no_dkim}{ingress}"))
            .unwrap()
            .validate(&env)
            .unwrap_err();
        assert_eq!(err.keys(), ["smtp_ingress.addresses"], "{err}");
        assert!(err.to_string().contains("[dkim]"), "{err}");
    }

    #[test]
    fn peer_brokers_are_domains_other_than_ours_and_need_the_address_layer() {
        let ingress = |extra: &str| {
            format!("{GOOD}[smtp_ingress]\nlisten = \"127.0.0.1:2525\"\ndomains = [\"broker.test\"]\n{extra}")
        };
        let s = RawConfig::parse(&ingress(
            "addresses = true\npeers = [\"BrokerB.test\"]\nresolve_timeout_secs = 30\n",
        ))
        .unwrap()
        .validate(&env)
        .unwrap();
        let i = s.smtp_ingress.unwrap();
        assert_eq!(i.peers, ["brokerb.test"]);
        assert_eq!(i.resolve_timeout, Duration::from_secs(30));
        let d = RawConfig::parse(&ingress("addresses = true\n"))
            .unwrap()
            .validate(&env)
            .unwrap()
            .smtp_ingress
            .unwrap();
        assert!(d.peers.is_empty());
        assert_eq!(d.resolve_timeout, Duration::from_secs(300));
        for (extra, key, says) in [
            (
                "addresses = true\npeers = [\"broker.test\"]\n",
                "smtp_ingress.peers",
                "own domains",
            ),
            (
                "addresses = true\npeers = [\"no_dot\"]\n",
                "smtp_ingress.peers",
                "not a domain",
            ),
            (
                "peers = [\"brokerb.test\"]\n",
                "smtp_ingress.peers",
                "addresses = true",
            ),
            (
                "addresses = true\nresolve_timeout_secs = 1\n",
                "smtp_ingress.resolve_timeout_secs",
                "between",
            ),
        ] {
            let err = RawConfig::parse(&ingress(extra))
                .unwrap()
                .validate(&env)
                .unwrap_err();
            assert_eq!(err.keys(), [key], "{extra}: {err}");
            assert!(err.to_string().contains(says), "{err}");
        }
    }

    /// The MX needs no IMAP server; a broker may also run both doors.
    #[test]
    fn imap_is_optional_with_smtp_ingress_and_both_doors_may_run() {
        let ingress = "[smtp_ingress]\nlisten = \"127.0.0.1:2525\"\ndomains = [\"broker.test\"]\n";
        let imap = GOOD.find("[imap]").unwrap();
        let smtp = GOOD.find("[smtp]").unwrap();
        let without_imap = format!(
            "{}{}from = \"watcher@broker.test\"\n{}",
            &GOOD[..imap],
            &GOOD[smtp..smtp + 7],
            &GOOD[smtp + 7..]
        );
        let s = RawConfig::parse(&format!("{without_imap}{ingress}"))
            .unwrap()
            .validate(&env)
            .unwrap();
        assert!(s.imap.is_none());
        assert_eq!(
            s.smtp_ingress.unwrap().recipients,
            vec!["watcher@broker.test".to_string()]
        );
        let both = RawConfig::parse(&format!("{GOOD}{ingress}"))
            .unwrap()
            .validate(&env)
            .unwrap();
        assert!(both.imap.is_some() && both.smtp_ingress.is_some());
        // Without either door, [imap] is what is missing.
        let err = RawConfig::parse(&without_imap)
            .unwrap()
            .validate(&env)
            .unwrap_err();
        assert!(err.keys().contains(&"imap"), "{err}");
    }

    #[test]
    fn smtp_ingress_defaults_and_every_bad_key_named() {
        let s = RawConfig::parse(&format!(
            "{GOOD}[smtp_ingress]\nlisten = \"127.0.0.1:2525\"\ndomains = [\"Broker.Test\"]\n"
        ))
        .unwrap()
        .validate(&env)
        .unwrap();
        let i = s.smtp_ingress.clone().unwrap();
        assert_eq!(i.domains, vec!["broker.test".to_string()]);
        // The watcher's own address (imap.user, as smtp.from is unset) is the mailbox.
        assert_eq!(i.recipients, vec!["watcher@broker.test".to_string()]);
        assert_eq!(i.hostname, "broker.test");
        assert_eq!(i.spool_dir, PathBuf::from("/tmp/sm/spool"));
        assert_eq!(i.max_message_bytes, s.max_message_bytes);
        assert!(i.tls.is_none());
        assert!(i.qtum_addresses.is_none());
        let with_q = |chain_id: u64| {
            RawConfig::parse(
                &format!(
                    "{GOOD}[smtp_ingress]\nlisten = \"127.0.0.1:2525\"\n\
                     domains = [\"broker.test\"]\nqtum_addresses = true\n"
                )
                .replace("chain_id = 8890", &format!("chain_id = {chain_id}")),
            )
            .unwrap()
            .validate(&env)
        };
        let q = with_q(8890).unwrap().smtp_ingress.unwrap().qtum_addresses;
        assert_eq!(q, Some(springmail_sdk::qtum::QtumNetwork::Regtest));
        let err = with_q(31337).unwrap_err();
        assert!(
            err.issues
                .iter()
                .any(|i| i.key == "smtp_ingress.qtum_addresses"),
            "{err}"
        );

        let err = RawConfig::parse(&format!(
            "{GOOD}[smtp_ingress]\nlisten = \"port 25\"\ndomains = [\"@x\"]\n\
             recipients = [\"alice@example.org\"]\nmax_recipients = 0\ntls_cert = \"c.pem\"\n"
        ))
        .unwrap()
        .validate(&env)
        .unwrap_err();
        let keys: Vec<&str> = err.issues.iter().map(|i| i.key.as_str()).collect();
        for key in [
            "smtp_ingress.listen",
            "smtp_ingress.domains",
            "smtp_ingress.max_recipients",
            "smtp_ingress.tls_key",
        ] {
            assert!(keys.contains(&key), "{key} not in {keys:?}");
        }
        let err = RawConfig::parse(&format!(
            "{GOOD}[smtp_ingress]\nlisten = \"127.0.0.1:25\"\ndomains = [\"broker.test\"]\n\
             recipients = [\"alice@example.org\"]\n"
        ))
        .unwrap()
        .validate(&env)
        .unwrap_err();
        assert_eq!(err.issues.len(), 1, "{err}");
        assert_eq!(err.issues[0].key, "smtp_ingress.recipients");
        assert!(err.issues[0].problem.contains("alice@example.org"));
    }

    #[test]
    fn a_good_file_validates_with_defaults() {
        let s = RawConfig::parse(GOOD).unwrap().validate(&env).unwrap();
        assert_eq!(s.imap.as_ref().unwrap().mailbox, "INBOX");
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
    fn the_wallet_section_is_off_by_default_and_its_bad_keys_are_named() {
        let s = RawConfig::parse(GOOD).unwrap().validate(&env).unwrap();
        assert_eq!(s.wallet, None);
        let s = RawConfig::parse(&format!(
            "{GOOD}[wallet]\nenabled = true\nper_payment = \"2\"\nconfirm_above = \"0.5\"\n"
        ))
        .unwrap()
        .validate(&env)
        .unwrap();
        let w = s.wallet.expect("enabled");
        assert_eq!((w.per_payment, w.confirm_above), (200_000_000, 50_000_000));
        let err = RawConfig::parse(&format!(
            "{GOOD}[wallet]\nenabled = true\nper_day = \"x\"\norder_window_secs = 1\n"
        ))
        .unwrap()
        .validate(&env)
        .unwrap_err();
        let keys: Vec<&str> = err.issues.iter().map(|i| i.key.as_str()).collect();
        assert_eq!(
            keys,
            ["wallet.per_day", "wallet.order_window_secs"],
            "{err}"
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
        assert!(
            err.to_string().contains("[imap] security: \"plain\""),
            "{err}"
        );
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
        let c = &s.chain;
        assert_eq!(
            (c.backend, c.signer, c.sender.as_deref()),
            (
                springmail_sdk::config::Backend::Qtum,
                springmail_sdk::config::QtumSignerKind::Local,
                None
            ),
            "{c:?}"
        );
        assert_eq!(
            (c.rpc_user.as_str(), c.rpc_password.as_str()),
            ("springmail", "springmail")
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
        assert!(err.to_string().contains("[http] listen: missing"), "{err}");
    }

    #[test]
    fn smtp_connections_default_and_range() {
        let s = RawConfig::parse(GOOD).unwrap().validate(&env).unwrap();
        assert_eq!(s.smtp.connections, DEFAULT_SMTP_CONNECTIONS);
        let with = |n: &str| {
            GOOD.replace(
                "security = \"plain\"\n[dkim]",
                &format!("security = \"plain\"\nconnections = {n}\n[dkim]"),
            )
        };
        let s = RawConfig::parse(&with("32"))
            .unwrap()
            .validate(&env)
            .unwrap();
        assert_eq!(s.smtp.connections, 32);
        for bad in ["0", "65"] {
            let err = RawConfig::parse(&with(bad))
                .unwrap()
                .validate(&env)
                .unwrap_err();
            let keys: Vec<&str> = err.issues.iter().map(|i| i.key.as_str()).collect();
            assert_eq!(keys, vec!["smtp.connections"], "{err}");
        }
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

    #[test]
    fn three_bad_keys_in_one_file_are_all_named_in_one_pass() {
        // A mistyped value, an unknown key and a bad value, in three sections: serde alone
        // would stop at the first.
        let text = GOOD
            .replace("port = 1143", "port = \"imap\"")
            .replace("chain_id = 8890", "chain_id = 8890\ncolour = \"blue\"")
            .replace("native = \"0.001\"", "native = \"lots\"");
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("watcher.toml");
        std::fs::write(&file, &text).unwrap();
        let err = RawConfig::load(&file).unwrap().validate(&env).unwrap_err();
        assert_eq!(
            err.keys(),
            ["imap.port", "chain.colour", "fees.native"],
            "{err}"
        );
        let shown = err.to_string();
        for key in ["[imap] port", "[chain] colour", "[fees] native"] {
            assert!(shown.contains(key), "{key} missing: {shown}");
        }
        assert!(!shown.contains('\n'), "one line: {shown}");
        // parse() alone refuses the two it can see.
        let err = RawConfig::parse(&text).unwrap_err();
        assert_eq!(err.keys(), ["imap.port", "chain.colour"], "{err}");
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
            text.contains("[dns] pinned_file") && text.contains("keys.zone line 3"),
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
