//! The CLI's configuration, in two steps (STYLE.md §5):
//!
//! 1. [`RawConfig`]: what the TOML file, the environment and the flags say, as text,
//!    with no I/O beyond reading the one file. Later sources override earlier ones:
//!    file < `SPRINGMAIL_*` environment < flags.
//! 2. [`Settings`]: every value parsed and checked. [`Settings::resolve`] reports every
//!    bad key by its path in one pass ([`ConfigError`]). Connecting to the chain and
//!    unlocking keys happen later, in the commands, and only for what they need.
//!
//! The file (`springmail.toml`; every key optional):
//!
//! ```toml
//! [chain]
//! backend = "evm-rpc"              # "evm-rpc" (anvil, any EVM node) | "qtum" (qtumd) | "embedded" (demo only)
//! url = "http://127.0.0.1:8545"    # node JSON-RPC
//! chain_id = 8890                  # refuse a node on another chain
//! escrow = "0x…"                   # the EmailEscrow contract (springmail deploy prints it)
//! start_block = 0                  # its deployment block: event scans start here
//! rpc_user = "qtum"                # qtum: -rpcuser (password: SPRINGMAIL_QTUM_RPC_PASSWORD)
//! node_wallet = "alice"            # qtum: wallet name (/wallet/<name>)
//! signer = "node"                  # qtum: "node" (the node's wallet signs) | "local" (your keystore key signs; qtumd needs -addrindex, no wallet)
//! sender = "q…"                    # qtum, signer = "node": your address in the node's wallet
//! gas_price = 40                   # qtum: satoshi per gas
//!
//! [wallet]
//! keystore = "~/.local/share/springmail/wallet.json"
//!
//! [mail]
//! address = "alice@example.org"    # your mailbox: From of notifications and claim mails
//! name = "Alice"                   # shown to recipients
//! smtp_url = "smtp://127.0.0.1:2525"   # smtp:// (STARTTLS when offered), smtps://; user in the URL or smtp_user
//! smtp_user = "alice@example.org"  # password: SPRINGMAIL_SMTP_PASSWORD
//! claim_host = "claim.example.org"   # your claim page, if you run one (none by default)
//!
//! [watcher]                        # the watcher (mail server broker) you use
//! address = "q…"                   # its attestation key's address: email-mode deposits name it
//! email = "claims@broker.example"  # its mailbox: Reply-To of notifications, To of claim mails
//!
//! [send]
//! expires = "30d"                  # default claim window
//! cancellable = false
//!
//! [claim]
//! max_fee = "0.01 QTUM"            # the most a watcher may keep when relaying your claim
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use springmail_sdk::amount::{check_amount_text, Amount, AmountError, Asset};
use springmail_sdk::qtum::{self, QtumNetwork};
use springmail_sdk::Address;

use crate::args::GlobalArgs;

/// The config file looked for in the working directory.
pub const LOCAL_CONFIG: &str = "springmail.toml";
/// Default claim window.
pub const DEFAULT_EXPIRES: &str = "30d";
/// Default node URL (anvil's default port).
pub const DEFAULT_RPC_URL: &str = "http://127.0.0.1:8545";

/// Known keys per section, for the unknown-key check.
const KNOWN: &[(&str, &[&str])] = &[
    (
        "chain",
        &[
            "backend",
            "url",
            "chain_id",
            "escrow",
            "start_block",
            "rpc_user",
            "node_wallet",
            "signer",
            "sender",
            "gas_price",
        ],
    ),
    ("wallet", &["keystore"]),
    (
        "mail",
        &["address", "name", "smtp_url", "smtp_user", "claim_host"],
    ),
    ("watcher", &["address", "email"]),
    ("send", &["expires", "cancellable"]),
    ("claim", &["max_fee"]),
];

/// One bad key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigIssue {
    /// `chain.escrow`, or the flag/variable that set it.
    pub path: String,
    /// What is wrong.
    pub message: String,
}

/// Every bad key found in one pass.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", describe(.issues, .source_file.as_deref()))]
pub struct ConfigError {
    /// The file that was read, if any.
    pub source_file: Option<PathBuf>,
    /// The problems.
    pub issues: Vec<ConfigIssue>,
}

fn describe(issues: &[ConfigIssue], file: Option<&Path>) -> String {
    let list = issues
        .iter()
        .map(|i| format!("{}: {}", shown_path(&i.path), i.message))
        .collect::<Vec<_>>()
        .join("; ");
    match file {
        Some(f) => format!(
            "bad configuration in {} ({} problem(s)): {list}",
            f.display(),
            issues.len()
        ),
        None => format!("bad configuration ({} problem(s)): {list}", issues.len()),
    }
}

/// A key as written in the file (`[claim] max_fee`); flags and variables as they are.
fn shown_path(path: &str) -> String {
    match path.split_once('.') {
        Some((section, key)) if !path.starts_with('-') => format!("[{section}] {key}"),
        _ => path.to_string(),
    }
}

/// A text value and where it came from (a config key, a variable or a flag).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sourced<T> {
    /// The value.
    pub value: T,
    /// Where it was set, for error messages.
    pub origin: String,
}

type Field<T> = Option<Sourced<T>>;

/// Step 1: the raw values, as set by file, environment and flags.
#[derive(Debug, Clone, Default)]
pub struct RawConfig {
    /// The file read, if any.
    pub file: Option<PathBuf>,
    /// Keys by dotted path (`chain.url`), with their origin.
    values: BTreeMap<&'static str, Sourced<toml::Value>>,
    /// Problems found while reading (unknown keys, wrong types).
    issues: Vec<ConfigIssue>,
}

fn dotted(section: &str, key: &str) -> Option<&'static str> {
    const ALL: &[&str] = &[
        "chain.backend",
        "chain.url",
        "chain.chain_id",
        "chain.escrow",
        "chain.start_block",
        "chain.rpc_user",
        "chain.node_wallet",
        "chain.signer",
        "chain.sender",
        "chain.gas_price",
        "wallet.keystore",
        "mail.address",
        "mail.name",
        "mail.smtp_url",
        "mail.smtp_user",
        "mail.claim_host",
        "watcher.address",
        "watcher.email",
        "send.expires",
        "send.cancellable",
        "claim.max_fee",
    ];
    ALL.iter()
        .copied()
        .find(|p| p.split_once('.') == Some((section, key)))
}

impl RawConfig {
    /// Reads the config file: `explicit` (which must exist), else `./springmail.toml`,
    /// else `~/.config/springmail/springmail.toml`, else nothing.
    pub fn load(explicit: Option<&Path>) -> anyhow::Result<Self> {
        let path = match explicit {
            Some(p) => {
                if !p.exists() {
                    return Err(crate::report::hinted(
                        anyhow::anyhow!("the config file {} does not exist", p.display()),
                        "write one (see docs/CLI.md), or leave out --config / SPRINGMAIL_CONFIG",
                        crate::report::ExitKind::Input,
                    ));
                }
                Some(p.to_path_buf())
            }
            None => default_config_paths().into_iter().find(|p| p.is_file()),
        };
        let Some(path) = path else {
            return Ok(RawConfig::default());
        };
        let text = std::fs::read_to_string(&path).map_err(|e| {
            crate::report::hinted(
                anyhow::anyhow!("cannot read the config file {}: {e}", path.display()),
                "check the file's name and permissions (see docs/CLI.md for the config file)",
                crate::report::ExitKind::Input,
            )
        })?;
        Self::from_toml(&text, Some(path))
    }

    /// Parses config text (no I/O).
    pub fn from_toml(text: &str, file: Option<PathBuf>) -> anyhow::Result<Self> {
        let shown = file
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "config".into());
        let table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
            crate::report::hinted(
                anyhow::anyhow!("{shown} is not valid TOML: {}", e.message()),
                "see docs/CLI.md for the config file format",
                crate::report::ExitKind::Input,
            )
        })?;
        let mut raw = RawConfig {
            file,
            ..Default::default()
        };
        for (section, value) in table {
            let Some(inner) = value.as_table() else {
                raw.issues.push(ConfigIssue {
                    path: section.clone(),
                    message: "unknown key (expected a [section]: chain, wallet, mail, watcher, send, claim)".into(),
                });
                continue;
            };
            if !KNOWN.iter().any(|(s, _)| *s == section) {
                raw.issues.push(ConfigIssue {
                    path: section.clone(),
                    message: "unknown section (known: chain, wallet, mail, watcher, send, claim)"
                        .into(),
                });
                continue;
            }
            for (key, v) in inner {
                match dotted(&section, key) {
                    Some(path) => {
                        raw.values.insert(
                            path,
                            Sourced {
                                value: v.clone(),
                                origin: path.to_string(),
                            },
                        );
                    }
                    None => raw.issues.push(ConfigIssue {
                        path: format!("{section}.{key}"),
                        message: "unknown key".into(),
                    }),
                }
            }
        }
        Ok(raw)
    }

    fn set_text(&mut self, path: &'static str, value: Option<String>, origin: &str) {
        if let Some(v) = value {
            self.values.insert(
                path,
                Sourced {
                    value: toml::Value::String(v),
                    origin: origin.to_string(),
                },
            );
        }
    }

    /// Applies `SPRINGMAIL_*` variables that have no flag (`get` reads one variable).
    pub fn apply_env(&mut self, get: impl Fn(&str) -> Option<String>) {
        for (var, path) in [
            ("SPRINGMAIL_EMAIL", "mail.address"),
            ("SPRINGMAIL_SMTP_URL", "mail.smtp_url"),
            ("SPRINGMAIL_SMTP_USER", "mail.smtp_user"),
            ("SPRINGMAIL_WATCHER", "watcher.address"),
            ("SPRINGMAIL_WATCHER_EMAIL", "watcher.email"),
            ("SPRINGMAIL_QTUM_SENDER", "chain.sender"),
            ("SPRINGMAIL_QTUM_SIGNER", "chain.signer"),
            ("SPRINGMAIL_QTUM_RPC_USER", "chain.rpc_user"),
        ] {
            let value = get(var).filter(|v| !v.is_empty());
            self.set_text(path, value, var);
        }
    }

    /// Applies the global flags (clap has already folded their variables in).
    pub fn apply_flags(&mut self, g: &GlobalArgs) {
        self.set_text("chain.backend", g.backend.clone(), "--backend");
        self.set_text("chain.url", g.rpc.clone(), "--rpc");
        if let Some(id) = g.chain_id {
            self.values.insert(
                "chain.chain_id",
                Sourced {
                    value: toml::Value::Integer(id as i64),
                    origin: "--chain-id".into(),
                },
            );
        }
        self.set_text("chain.escrow", g.escrow.clone(), "--escrow");
        self.set_text(
            "wallet.keystore",
            g.keystore.as_ref().map(|p| p.display().to_string()),
            "--keystore",
        );
    }

    fn text(&self, path: &'static str, issues: &mut Vec<ConfigIssue>) -> Field<String> {
        let s = self.values.get(path)?;
        match &s.value {
            toml::Value::String(v) => Some(Sourced {
                value: v.clone(),
                origin: s.origin.clone(),
            }),
            other => {
                issues.push(ConfigIssue {
                    path: s.origin.clone(),
                    message: format!("expected a string, got {}", other.type_str()),
                });
                None
            }
        }
    }

    fn integer(&self, path: &'static str, issues: &mut Vec<ConfigIssue>) -> Field<u64> {
        let s = self.values.get(path)?;
        let parsed = match &s.value {
            toml::Value::Integer(i) if *i >= 0 => Ok(*i as u64),
            toml::Value::String(t) => t
                .trim()
                .parse::<u64>()
                .map_err(|_| format!("{t:?} is not a whole number")),
            other => Err(format!("expected a whole number, got {}", other.type_str())),
        };
        match parsed {
            Ok(value) => Some(Sourced {
                value,
                origin: s.origin.clone(),
            }),
            Err(message) => {
                issues.push(ConfigIssue {
                    path: s.origin.clone(),
                    message,
                });
                None
            }
        }
    }

    fn boolean(&self, path: &'static str, issues: &mut Vec<ConfigIssue>) -> Field<bool> {
        let s = self.values.get(path)?;
        match &s.value {
            toml::Value::Boolean(b) => Some(Sourced {
                value: *b,
                origin: s.origin.clone(),
            }),
            other => {
                issues.push(ConfigIssue {
                    path: s.origin.clone(),
                    message: format!("expected true or false, got {}", other.type_str()),
                });
                None
            }
        }
    }
}

/// The config files looked for when none is named.
pub fn default_config_paths() -> Vec<PathBuf> {
    let mut out = vec![PathBuf::from(LOCAL_CONFIG)];
    if let Some(dir) = config_home() {
        out.push(dir.join("springmail").join(LOCAL_CONFIG));
    }
    out
}

fn config_home() -> Option<PathBuf> {
    std::env::var_os("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| home().map(|h| h.join(".config")))
}

fn home() -> Option<PathBuf> {
    std::env::var_os("HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// The default keystore: `$XDG_DATA_HOME/springmail/wallet.json` (`~/.local/share/…`).
pub fn default_keystore() -> PathBuf {
    std::env::var_os("XDG_DATA_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| home().map(|h| h.join(".local").join("share")))
        .unwrap_or_else(|| PathBuf::from("."))
        .join("springmail")
        .join("wallet.json")
}

fn expand_home(text: &str) -> PathBuf {
    match (text.strip_prefix("~/"), home()) {
        (Some(rest), Some(h)) => h.join(rest),
        _ => PathBuf::from(text),
    }
}

/// Which chain backend to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// Ethereum JSON-RPC with a local key (anvil, any EVM node).
    EvmRpc,
    /// qtumd JSON-RPC, the key in the node's wallet.
    Qtum,
    /// The in-process development chain (only inside one process: the demo).
    Embedded,
}

impl Backend {
    /// The config spelling.
    pub fn name(self) -> &'static str {
        match self {
            Backend::EvmRpc => "evm-rpc",
            Backend::Qtum => "qtum",
            Backend::Embedded => "embedded",
        }
    }
}

/// Who signs Qtum transactions (`[chain] signer`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum QtumSignerKind {
    /// The node's wallet holds the key (`sendtocontract` with a sender).
    #[default]
    Node,
    /// The keystore key signs raw transactions here; the node needs no wallet.
    Local,
}

/// qtumd specifics.
#[derive(Debug, Clone, Default)]
pub struct QtumSettings {
    /// `-rpcuser`.
    pub rpc_user: Option<String>,
    /// Wallet name.
    pub node_wallet: Option<String>,
    /// Who signs.
    pub signer: QtumSignerKind,
    /// The sender's base58 address: in the node's wallet (node signer), or the keystore
    /// key's address (local signer, optional).
    pub sender: Option<String>,
    /// Satoshi per gas.
    pub gas_price: Option<u64>,
}

/// Step 2: checked settings.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The config file read, if any.
    pub file: Option<PathBuf>,
    /// The backend.
    pub backend: Backend,
    /// Node URL.
    pub rpc_url: String,
    /// Required chain id, if set.
    pub chain_id: Option<u64>,
    /// Escrow contract, if set.
    pub escrow: Option<Address>,
    /// First block of event scans.
    pub start_block: u64,
    /// qtumd settings.
    pub qtum: QtumSettings,
    /// Keystore file.
    pub keystore: PathBuf,
    /// Your mailbox.
    pub mail_address: Option<String>,
    /// Your display name.
    pub mail_name: Option<String>,
    /// SMTP server URL.
    pub smtp_url: Option<String>,
    /// SMTP user (when not in the URL).
    pub smtp_user: Option<String>,
    /// Host of a claim page serving the https links; `None` (the default): there is
    /// none, so mails and output give the `sm1.…` link and the command only.
    pub claim_host: Option<String>,
    /// Your watcher's address.
    pub watcher: Option<Address>,
    /// Your watcher's mailbox.
    pub watcher_email: Option<String>,
    /// Default claim window, seconds.
    pub expires: u64,
    /// Default cancellable flag.
    pub cancellable: bool,
    /// Default max fee text for claims.
    pub max_fee: Option<String>,
}

/// What to give where a watcher is asked for.
pub const WATCHER_HINT: &str =
    "give the watcher's 0x address, as `springmail watch --print-address` prints it on the watcher's machine";

/// A watcher as the escrow compares it: the attestation key's EVM address, `0x`-hex only.
/// A base58 `q…` is refused: for a key it names the hash160 (Qtum address), which is not
/// the address the contract recovers from the watcher's signature, so no claim could pass.
pub fn parse_watcher(text: &str) -> Result<Address, String> {
    let t = text.trim();
    if !(t.starts_with("0x") || t.starts_with("0X")) {
        return Err(format!(
            "{t:?} is not a 0x address; the escrow checks the watcher key's EVM address, \
             not its base58 Qtum address"
        ));
    }
    qtum::parse_hex_address(t).map_err(|e| e.to_string())
}

/// Parses an address: `0x`-hex anywhere; base58 on Qtum chains (any Qtum network when
/// the chain is not known yet, else the network of `chain_id`).
pub fn parse_address(chain_id: Option<u64>, text: &str) -> Result<Address, String> {
    let text = text.trim();
    match chain_id {
        Some(id) => qtum::parse_address(id, text).map_err(|e| e.to_string()),
        None if text.starts_with("0x") || text.starts_with("0X") => {
            qtum::parse_hex_address(text).map_err(|e| e.to_string())
        }
        None => qtum::decode_address(text)
            .map(|(_, a)| a)
            .map_err(|e| e.to_string()),
    }
}

/// Parses a duration: a whole number followed by s, m, h, d or w (`30d`, `12h`).
pub fn parse_duration(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{text:?} is not a duration like 30d, 12h or 90m"))?;
    let scale = match unit.trim() {
        "s" | "sec" | "secs" | "seconds" => 1,
        "m" | "min" | "mins" | "minutes" => 60,
        "h" | "hour" | "hours" => 3600,
        "d" | "day" | "days" => 86_400,
        "w" | "week" | "weeks" => 604_800,
        "" => return Err(format!("{text:?} has no unit; write e.g. {num}d or {num}h")),
        other => {
            return Err(format!(
                "unknown unit {other:?} in {text:?}; use s, m, h, d or w"
            ))
        }
    };
    let secs = n
        .checked_mul(scale)
        .ok_or_else(|| format!("{text:?} is too long"))?;
    if secs == 0 {
        return Err("the duration must be more than zero".into());
    }
    if secs > 10 * 365 * 86_400 {
        return Err(format!("{text:?} is more than ten years"));
    }
    Ok(secs)
}

/// Checks `[claim] max_fee` as far as it can before the deposit's asset is known: a
/// decimal with an optional symbol; in the chain's coin, no more decimals than it has.
fn check_max_fee(text: &str, chain_id: Option<u64>) -> Result<(), AmountError> {
    let symbol = check_amount_text(text)?;
    if let Some(id) = chain_id {
        let coin = Asset::for_chain(id);
        if symbol.as_deref().is_none_or(|s| coin.matches_symbol(s)) {
            Amount::parse(text, &coin)?;
        }
    }
    Ok(())
}

impl Settings {
    /// Checks every value, reporting all problems at once.
    pub fn resolve(raw: &RawConfig) -> Result<Settings, ConfigError> {
        let mut issues = raw.issues.clone();
        let i = &mut issues;
        let backend = match raw.text("chain.backend", i) {
            None => Backend::EvmRpc,
            Some(s) => match s.value.trim() {
                "evm-rpc" | "evm_rpc" | "evm" => Backend::EvmRpc,
                "qtum" => Backend::Qtum,
                "embedded" => Backend::Embedded,
                other => {
                    i.push(ConfigIssue {
                        path: s.origin,
                        message: format!(
                            "unknown backend {other:?} (use evm-rpc, qtum or embedded)"
                        ),
                    });
                    Backend::EvmRpc
                }
            },
        };
        let rpc_url = match raw.text("chain.url", i) {
            None => DEFAULT_RPC_URL.to_string(),
            Some(s) => {
                let v = s.value.trim().to_string();
                if !(v.starts_with("http://") || v.starts_with("https://")) {
                    i.push(ConfigIssue {
                        path: s.origin,
                        message: format!("{v:?} must start with http:// or https://"),
                    });
                }
                v
            }
        };
        let chain_id = raw.integer("chain.chain_id", i).and_then(|s| {
            if s.value == 0 {
                i.push(ConfigIssue {
                    path: s.origin,
                    message: "0 is no chain id".into(),
                });
                None
            } else {
                Some(s.value)
            }
        });
        let address = |path: &'static str, i: &mut Vec<ConfigIssue>| -> Option<Address> {
            let s = raw.text(path, i)?;
            match parse_address(chain_id, &s.value) {
                Ok(a) => Some(a),
                Err(e) => {
                    i.push(ConfigIssue {
                        path: s.origin,
                        message: e,
                    });
                    None
                }
            }
        };
        let escrow = address("chain.escrow", i);
        let watcher = raw
            .text("watcher.address", i)
            .and_then(|s| match parse_watcher(&s.value) {
                Ok(a) => Some(a),
                Err(message) => {
                    i.push(ConfigIssue {
                        path: s.origin,
                        message: format!("{message} ({WATCHER_HINT})"),
                    });
                    None
                }
            });
        let start_block = raw
            .integer("chain.start_block", i)
            .map(|s| s.value)
            .unwrap_or(0);
        let qtum_settings = QtumSettings {
            rpc_user: raw.text("chain.rpc_user", i).map(|s| s.value),
            node_wallet: raw.text("chain.node_wallet", i).map(|s| s.value),
            signer: match raw.text("chain.signer", i) {
                None => QtumSignerKind::Node,
                Some(s) => match s.value.trim() {
                    "node" => QtumSignerKind::Node,
                    "local" => QtumSignerKind::Local,
                    other => {
                        i.push(ConfigIssue {
                            path: s.origin,
                            message: format!(
                                "unknown signer {other:?} (use \"node\": the node's wallet signs, \
                                 or \"local\": your keystore key signs)"
                            ),
                        });
                        QtumSignerKind::Node
                    }
                },
            },
            sender: raw
                .text("chain.sender", i)
                .map(|s| s.value.trim().to_string()),
            gas_price: raw.integer("chain.gas_price", i).map(|s| s.value),
        };
        if let (Some(sender), Some(id)) = (&qtum_settings.sender, chain_id) {
            if let Some(net) = QtumNetwork::from_chain_id(id) {
                if let Err(e) = qtum::decode_address_for(sender, net) {
                    i.push(ConfigIssue {
                        path: "chain.sender".into(),
                        message: e.to_string(),
                    });
                }
            }
        }
        let keystore = raw
            .text("wallet.keystore", i)
            .map(|s| expand_home(&s.value))
            .unwrap_or_else(default_keystore);
        let mailbox = |path: &'static str, i: &mut Vec<ConfigIssue>| -> Option<String> {
            let s = raw.text(path, i)?;
            match springmail_sdk::email::normalize(&s.value) {
                Ok(_) => Some(s.value.trim().to_string()),
                Err(e) => {
                    i.push(ConfigIssue {
                        path: s.origin,
                        message: e.to_string(),
                    });
                    None
                }
            }
        };
        let mail_address = mailbox("mail.address", i);
        let watcher_email = mailbox("watcher.email", i);
        let mail_name = raw.text("mail.name", i).map(|s| s.value);
        let smtp_url = raw.text("mail.smtp_url", i).and_then(|s| {
            let v = s.value.trim().to_string();
            if v.starts_with("smtp://") || v.starts_with("smtps://") {
                Some(v)
            } else {
                i.push(ConfigIssue {
                    path: s.origin,
                    message: "must start with smtp:// or smtps://".into(),
                });
                None
            }
        });
        let smtp_user = raw.text("mail.smtp_user", i).map(|s| s.value);
        let claim_host = raw
            .text("mail.claim_host", i)
            .map(|s| {
                s.value
                    .trim()
                    .trim_start_matches("https://")
                    .trim_end_matches('/')
                    .to_string()
            })
            .filter(|h| !h.is_empty());
        let expires = match raw.text("send.expires", i) {
            None => parse_duration(DEFAULT_EXPIRES).expect("valid default"),
            Some(s) => parse_duration(&s.value).unwrap_or_else(|e| {
                i.push(ConfigIssue {
                    path: s.origin,
                    message: e,
                });
                0
            }),
        };
        let cancellable = raw
            .boolean("send.cancellable", i)
            .map(|s| s.value)
            .unwrap_or(false);
        let max_fee =
            raw.text("claim.max_fee", i)
                .and_then(|s| match check_max_fee(&s.value, chain_id) {
                    Ok(()) => Some(s.value.trim().to_string()),
                    Err(e) => {
                        i.push(ConfigIssue {
                            path: s.origin,
                            message: e.to_string(),
                        });
                        None
                    }
                });
        if let (Some(id), Backend::Qtum) = (chain_id, backend) {
            if QtumNetwork::from_chain_id(id).is_none() {
                i.push(ConfigIssue {
                    path: "chain.chain_id".into(),
                    message: format!(
                        "{id} is not a Qtum chain (81, 8889 or 8890) but the backend is qtum"
                    ),
                });
            }
        }
        if !issues.is_empty() {
            return Err(ConfigError {
                source_file: raw.file.clone(),
                issues,
            });
        }
        Ok(Settings {
            file: raw.file.clone(),
            backend,
            rpc_url,
            chain_id,
            escrow,
            start_block,
            qtum: qtum_settings,
            keystore,
            mail_address,
            mail_name,
            smtp_url,
            smtp_user,
            claim_host,
            watcher,
            watcher_email,
            expires,
            cancellable,
            max_fee,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(text: &str) -> Result<Settings, ConfigError> {
        Settings::resolve(&RawConfig::from_toml(text, None).unwrap())
    }

    #[test]
    fn empty_config_has_defaults() {
        let s = resolve("").unwrap();
        assert_eq!(s.backend, Backend::EvmRpc);
        assert_eq!(s.rpc_url, DEFAULT_RPC_URL);
        assert_eq!(s.expires, 30 * 86_400);
        assert!(s.escrow.is_none());
    }

    #[test]
    fn full_config_parses() {
        let s = resolve(
            r#"
            [chain]
            backend = "qtum"
            url = "http://127.0.0.1:3889"
            chain_id = 8890
            escrow = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
            rpc_user = "qtum"
            sender = "qUbJ2pD6yGBKX6rLBFPgKZ5AkvrNBi3XG8"
            [mail]
            address = "alice@example.org"
            smtp_url = "smtp://127.0.0.1:2525"
            [watcher]
            email = "claims@broker.test"
            [send]
            expires = "2w"
            cancellable = true
            "#,
        );
        // The sender above may not be a valid regtest address; only check the shape.
        match s {
            Ok(s) => {
                assert_eq!(s.backend, Backend::Qtum);
                assert_eq!(s.expires, 14 * 86_400);
                assert!(s.cancellable);
            }
            Err(e) => assert!(e.issues.iter().all(|i| i.path == "chain.sender"), "{e}"),
        }
    }

    #[test]
    fn qtum_signer_is_node_by_default_local_on_request_and_checked() {
        let s = resolve("[chain]\nbackend = \"qtum\"\n").unwrap();
        assert_eq!(s.qtum.signer, QtumSignerKind::Node);
        let s = resolve("[chain]\nbackend = \"qtum\"\nsigner = \"local\"\n").unwrap();
        assert_eq!(s.qtum.signer, QtumSignerKind::Local);
        let err = resolve("[chain]\nbackend = \"qtum\"\nsigner = \"hsm\"\n").unwrap_err();
        assert_eq!(err.issues.len(), 1, "{err}");
        assert_eq!(err.issues[0].path, "chain.signer");
        assert!(err.issues[0].message.contains("\"hsm\""), "{err}");
    }

    #[test]
    fn every_bad_key_is_reported_in_one_pass() {
        let err = resolve(
            r#"
            colour = "blue"
            [chain]
            backend = "solana"
            url = "ftp://x"
            chain_id = "abc"
            escrow = "0x12"
            speed = 3
            [send]
            expires = "30"
            cancellable = "yes"
            [mail]
            address = "not-an-address"
            "#,
        )
        .unwrap_err();
        let paths: Vec<&str> = err.issues.iter().map(|i| i.path.as_str()).collect();
        for want in [
            "colour",
            "chain.speed",
            "chain.backend",
            "chain.url",
            "chain.chain_id",
            "chain.escrow",
            "send.expires",
            "send.cancellable",
            "mail.address",
        ] {
            assert!(paths.contains(&want), "{want} missing from {paths:?}");
        }
        assert!(!err.to_string().contains('\n'));
    }

    #[test]
    fn a_bad_max_fee_is_reported_at_load_by_its_key() {
        let err = resolve(
            "[chain]\nchain_id = 8890\n[claim]\nmax_fee = \"lots\"\n[send]\nexpires = \"soon\"",
        )
        .unwrap_err();
        let text = err.to_string();
        assert!(text.contains("[claim] max_fee"), "{text}");
        assert!(text.contains("[send] expires"), "{text}");
        assert!(!text.contains("--max-fee"), "{text}");
        assert_eq!(err.issues.len(), 2, "{text}");
        // Too many decimals for the chain's coin.
        let err = resolve("[chain]\nchain_id = 8890\n[claim]\nmax_fee = \"0.000000001 QTUM\"")
            .unwrap_err();
        assert!(err.to_string().contains("[claim] max_fee"), "{err}");
        // A token's fee cannot be checked against the coin: only its shape.
        assert!(resolve("[chain]\nchain_id = 8890\n[claim]\nmax_fee = \"0.5 USDT\"").is_ok());
        assert!(resolve("[claim]\nmax_fee = \"0.01 QTUM\"").is_ok());
    }

    #[test]
    fn flags_and_env_override_the_file() {
        let mut raw = RawConfig::from_toml(
            "[chain]\nurl = \"http://a:1\"\n[mail]\naddress = \"a@example.org\"",
            None,
        )
        .unwrap();
        raw.apply_env(|k| (k == "SPRINGMAIL_EMAIL").then(|| "b@example.org".to_string()));
        raw.apply_flags(&GlobalArgs {
            rpc: Some("http://b:2".into()),
            ..Default::default()
        });
        let s = Settings::resolve(&raw).unwrap();
        assert_eq!(s.rpc_url, "http://b:2");
        assert_eq!(s.mail_address.as_deref(), Some("b@example.org"));
        // A bad flag value names the flag.
        let mut raw = RawConfig::default();
        raw.apply_flags(&GlobalArgs {
            escrow: Some("nope".into()),
            ..Default::default()
        });
        let err = Settings::resolve(&raw).unwrap_err();
        assert_eq!(err.issues[0].path, "--escrow");
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30d"), Ok(30 * 86_400));
        assert_eq!(parse_duration("90m"), Ok(5400));
        assert_eq!(parse_duration("2w"), Ok(1_209_600));
        assert!(parse_duration("30").unwrap_err().contains("no unit"));
        assert!(parse_duration("1y").is_err());
        assert!(parse_duration("0h").is_err());
        assert!(parse_duration("-1d").is_err());
    }
}
