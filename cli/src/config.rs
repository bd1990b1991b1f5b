//! The CLI's configuration, in two steps (STYLE.md §5):
//!
//! 1. [`RawConfig`]: what the TOML file, the environment and the flags say, with no I/O
//!    beyond reading the one file. Later sources override earlier ones:
//!    file < `SPRINGMAIL_*` environment < flags.
//! 2. [`Settings`]: every value parsed and checked. [`Settings::resolve`] reports every
//!    bad key by its name in one pass ([`ConfigErrors`]), a flag or variable by its own
//!    name. Connecting to the chain and unlocking keys happen later, in the commands, and
//!    only for what they need.
//!
//! `[chain]` is the watcher's section too: its keys and checks are
//! [`springmail_sdk::config::ChainConfig`]'s.
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
//! rpc_user = "qtum"                # qtum: -rpcuser (password: SPRINGMAIL_QTUM_RPC_PASSWORD,
//!                                  #   or the variable rpc_password_env names)
//! wallet = "alice"                 # qtum: wallet name (/wallet/<name>; also spelled node_wallet)
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
//! wallet = false                   # it keeps mailbox wallets: notifications offer a plain reply
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

use serde::Deserialize;
use springmail_sdk::amount::{check_amount_text, Amount, AmountError, Asset};
pub use springmail_sdk::config::{
    parse_address, Backend, ConfigErrors, ConfigIssue, QtumSignerKind, DEFAULT_RPC_URL,
};
use springmail_sdk::config::{take_section, ChainConfig, ChainSettings, Need};
use springmail_sdk::env;
use springmail_sdk::qtum;
use springmail_sdk::Address;

use crate::args::GlobalArgs;

/// The config file looked for in the working directory.
pub const LOCAL_CONFIG: &str = "springmail.toml";
/// Default claim window.
pub const DEFAULT_EXPIRES: &str = "30d";

/// `[wallet]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WalletSection {
    /// Keystore file.
    pub keystore: Option<String>,
}

/// `[mail]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MailSection {
    /// Your mailbox.
    pub address: Option<String>,
    /// Your display name.
    pub name: Option<String>,
    /// `smtp://` or `smtps://` URL.
    pub smtp_url: Option<String>,
    /// SMTP login, when not in the URL.
    pub smtp_user: Option<String>,
    /// Your claim page's host.
    pub claim_host: Option<String>,
}

/// `[watcher]`: the watcher you use.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WatcherSection {
    /// Its attestation key's 0x address.
    pub address: Option<String>,
    /// Its mailbox.
    pub email: Option<String>,
    /// It keeps mailbox wallets (`[wallet] enabled` on its side).
    pub wallet: Option<bool>,
}

/// `[send]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SendSection {
    /// Default claim window (`30d`).
    pub expires: Option<String>,
    /// Default cancellable flag.
    pub cancellable: Option<bool>,
}

/// `[claim]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClaimSection {
    /// The most a watcher may keep.
    pub max_fee: Option<String>,
}

/// Step 1: the values set by file, environment and flags.
#[derive(Debug, Clone, Default)]
pub struct RawConfig {
    /// The file read, if any.
    pub file: Option<PathBuf>,
    /// `[chain]`.
    pub chain: ChainConfig,
    /// `[wallet]`.
    pub wallet: WalletSection,
    /// `[mail]`.
    pub mail: MailSection,
    /// `[watcher]`.
    pub watcher: WatcherSection,
    /// `[send]`.
    pub send: SendSection,
    /// `[claim]`.
    pub claim: ClaimSection,
    /// Keys set by a variable or a flag, by the name to report them with.
    origins: BTreeMap<&'static str, String>,
    /// Unknown and mistyped keys found while reading.
    issues: Vec<ConfigIssue>,
}

/// The variables that set a key (clap reads those of the flags).
const ENV_KEYS: [(&str, &str); 8] = [
    (env::EMAIL, "mail.address"),
    (env::SMTP_URL, "mail.smtp_url"),
    (env::SMTP_USER, "mail.smtp_user"),
    (env::WATCHER, "watcher.address"),
    (env::WATCHER_EMAIL, "watcher.email"),
    (env::QTUM_SENDER, "chain.sender"),
    (env::QTUM_SIGNER, "chain.signer"),
    (env::QTUM_RPC_USER, "chain.rpc_user"),
];

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

    /// Parses config text (no I/O). Bad keys are kept for [`Settings::resolve`] to report
    /// with the rest; only text that is not TOML fails here.
    pub fn from_toml(text: &str, file: Option<PathBuf>) -> anyhow::Result<Self> {
        let shown = file
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "config".into());
        let mut t = springmail_sdk::config::parse_table(text).map_err(|e| {
            crate::report::hinted(
                anyhow::anyhow!("{shown} is not valid TOML ({}): {}", e.key, e.problem),
                "see docs/CLI.md for the config file format",
                crate::report::ExitKind::Input,
            )
        })?;
        let mut issues = Vec::new();
        let i = &mut issues;
        let raw = RawConfig {
            file,
            chain: take_section(&mut t, "chain", i).unwrap_or_default(),
            wallet: take_section(&mut t, "wallet", i).unwrap_or_default(),
            mail: take_section(&mut t, "mail", i).unwrap_or_default(),
            watcher: take_section(&mut t, "watcher", i).unwrap_or_default(),
            send: take_section(&mut t, "send", i).unwrap_or_default(),
            claim: take_section(&mut t, "claim", i).unwrap_or_default(),
            ..Default::default()
        };
        springmail_sdk::config::unknown_keys(t, "chain, wallet, mail, watcher, send, claim", i);
        Ok(RawConfig { issues, ..raw })
    }

    /// The text field of `key`, for the variables and flags that set one.
    fn slot(&mut self, key: &str) -> &mut Option<String> {
        match key {
            "mail.address" => &mut self.mail.address,
            "mail.smtp_url" => &mut self.mail.smtp_url,
            "mail.smtp_user" => &mut self.mail.smtp_user,
            "watcher.address" => &mut self.watcher.address,
            "watcher.email" => &mut self.watcher.email,
            "chain.sender" => &mut self.chain.sender,
            "chain.signer" => &mut self.chain.signer,
            "chain.rpc_user" => &mut self.chain.rpc_user,
            "chain.backend" => &mut self.chain.backend,
            "chain.url" => &mut self.chain.url,
            "chain.escrow" => &mut self.chain.escrow,
            "wallet.keystore" => &mut self.wallet.keystore,
            other => unreachable!("no variable or flag sets {other}"),
        }
    }

    fn set(&mut self, key: &'static str, value: Option<String>, origin: &str) {
        if let Some(v) = value {
            *self.slot(key) = Some(v);
            self.origins.insert(key, origin.to_string());
        }
    }

    /// Applies `SPRINGMAIL_*` variables that have no flag (`get` reads one variable).
    pub fn apply_env(&mut self, get: impl Fn(&str) -> Option<String>) {
        for (var, key) in ENV_KEYS {
            self.set(key, get(var).filter(|v| !v.is_empty()), var);
        }
    }

    /// Applies the global flags (clap has already folded their variables in).
    pub fn apply_flags(&mut self, g: &GlobalArgs) {
        self.set("chain.backend", g.backend.clone(), "--backend");
        self.set("chain.url", g.rpc.clone(), "--rpc");
        if let Some(id) = g.chain_id {
            self.chain.chain_id = Some(id);
            self.origins.insert("chain.chain_id", "--chain-id".into());
        }
        self.set("chain.escrow", g.escrow.clone(), "--escrow");
        let keystore = g.keystore.as_ref().map(|p| p.display().to_string());
        self.set("wallet.keystore", keystore, "--keystore");
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
    env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| home().map(|h| h.join(".config")))
}

fn home() -> Option<PathBuf> {
    env::var_os("HOME").map(PathBuf::from)
}

/// The default keystore: `$XDG_DATA_HOME/springmail/wallet.json` (`~/.local/share/…`).
pub fn default_keystore() -> PathBuf {
    env::var_os("XDG_DATA_HOME")
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

/// Step 2: checked settings.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The config file read, if any.
    pub file: Option<PathBuf>,
    /// `[chain]`: backend, node, chain id, escrow, qtumd specifics.
    pub chain: ChainSettings,
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
    /// Your watcher keeps mailbox wallets: email-mode notifications say that a plain
    /// reply keeps the money in one.
    pub watcher_wallet: bool,
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
    pub fn resolve(raw: &RawConfig) -> Result<Settings, ConfigErrors> {
        let mut issues = raw.issues.clone();
        let from_values = issues.len();
        let i = &mut issues;
        let chain = raw.chain.resolve(Need::Client, &env::var, i);
        let chain_id = raw.chain.chain_id.filter(|id| *id != 0);
        let mut check =
            |key: &str, value: &Option<String>, f: &dyn Fn(&str) -> Result<String, String>| {
                let v = value.as_deref()?;
                f(v).map_err(|e| i.push(ConfigIssue::new(key, e))).ok()
            };
        let watcher = check("watcher.address", &raw.watcher.address, &|v| {
            parse_watcher(v)
                .map(|_| v.trim().to_string())
                .map_err(|m| format!("{m} ({WATCHER_HINT})"))
        })
        .map(|v| parse_watcher(&v).expect("checked"));
        let mailbox = |v: &str| {
            springmail_sdk::email::normalize(v)
                .map(|_| v.trim().to_string())
                .map_err(|e| e.to_string())
        };
        let mail_address = check("mail.address", &raw.mail.address, &mailbox);
        let watcher_email = check("watcher.email", &raw.watcher.email, &mailbox);
        let smtp_url = check("mail.smtp_url", &raw.mail.smtp_url, &|v| {
            let v = v.trim();
            match v.starts_with("smtp://") || v.starts_with("smtps://") {
                true => Ok(v.to_string()),
                false => Err("must start with smtp:// or smtps://".into()),
            }
        });
        let expires = check("send.expires", &raw.send.expires, &|v| {
            parse_duration(v).map(|s| s.to_string())
        });
        let max_fee = check("claim.max_fee", &raw.claim.max_fee, &|v| {
            check_max_fee(v, chain_id)
                .map(|()| v.trim().to_string())
                .map_err(|e| e.to_string())
        });
        let claim_host = raw
            .mail
            .claim_host
            .as_deref()
            .map(|h| {
                h.trim()
                    .trim_start_matches("https://")
                    .trim_end_matches('/')
                    .to_string()
            })
            .filter(|h| !h.is_empty());
        // A key a variable or flag set is named by that variable or flag.
        for issue in &mut issues[from_values..] {
            if let Some(origin) = raw.origins.get(issue.key.as_str()) {
                issue.key = origin.clone();
            }
        }
        let Some(chain) = chain.filter(|_| issues.is_empty()) else {
            return Err(ConfigErrors {
                file: raw.file.clone(),
                issues,
            });
        };
        Ok(Settings {
            file: raw.file.clone(),
            chain,
            keystore: raw
                .wallet
                .keystore
                .as_deref()
                .map(expand_home)
                .unwrap_or_else(default_keystore),
            mail_address,
            mail_name: raw.mail.name.clone(),
            smtp_url,
            smtp_user: raw.mail.smtp_user.clone(),
            claim_host,
            watcher,
            watcher_email,
            watcher_wallet: raw.watcher.wallet.unwrap_or(false),
            expires: match expires {
                Some(s) => s.parse().expect("checked"),
                None => parse_duration(DEFAULT_EXPIRES).expect("valid default"),
            },
            cancellable: raw.send.cancellable.unwrap_or(false),
            max_fee,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(text: &str) -> Result<Settings, ConfigErrors> {
        Settings::resolve(&RawConfig::from_toml(text, None).unwrap())
    }

    #[test]
    fn empty_config_has_defaults() {
        let s = resolve("").unwrap();
        assert_eq!(s.chain.backend, Backend::EvmRpc);
        assert_eq!(s.chain.url, DEFAULT_RPC_URL);
        assert_eq!(s.expires, 30 * 86_400);
        assert!(s.chain.escrow.is_none());
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
                assert_eq!(s.chain.backend, Backend::Qtum);
                assert_eq!(s.expires, 14 * 86_400);
                assert!(s.cancellable);
            }
            Err(e) => assert!(e.issues.iter().all(|i| i.key == "chain.sender"), "{e}"),
        }
    }

    #[test]
    fn the_watchers_wallet_offer_is_off_unless_configured() {
        assert!(!resolve("").unwrap().watcher_wallet);
        let s = resolve("[watcher]\nemail = \"claims@broker.test\"\nwallet = true\n").unwrap();
        assert!(s.watcher_wallet);
        assert!(resolve("[watcher]\nwallet = \"yes\"\n").is_err());
    }

    #[test]
    fn qtum_signer_is_node_by_default_local_on_request_and_checked() {
        let s = resolve("[chain]\nbackend = \"qtum\"\n").unwrap();
        assert_eq!(s.chain.signer, QtumSignerKind::Node);
        let s = resolve("[chain]\nbackend = \"qtum\"\nsigner = \"local\"\n").unwrap();
        assert_eq!(s.chain.signer, QtumSignerKind::Local);
        let err = resolve("[chain]\nbackend = \"qtum\"\nsigner = \"hsm\"\n").unwrap_err();
        assert_eq!(err.issues.len(), 1, "{err}");
        assert_eq!(err.issues[0].key, "chain.signer");
        assert!(err.issues[0].problem.contains("\"hsm\""), "{err}");
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
        let paths: Vec<&str> = err.issues.iter().map(|i| i.key.as_str()).collect();
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
    fn three_bad_keys_in_three_sections_are_all_reported_in_one_pass() {
        let err = resolve(
            "[chain]\nchain_id = \"eighty\"\n[mail]\nadress = \"a@example.org\"\n\
             [send]\nexpires = \"soon\"\n",
        )
        .unwrap_err();
        assert_eq!(
            err.keys(),
            ["chain.chain_id", "mail.adress", "send.expires"],
            "{err}"
        );
        let text = err.to_string();
        for key in [
            "[chain] chain_id",
            "[mail] adress: unknown key",
            "[send] expires",
        ] {
            assert!(text.contains(key), "{key} missing: {text}");
        }
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
        assert_eq!(s.chain.url, "http://b:2");
        assert_eq!(s.mail_address.as_deref(), Some("b@example.org"));
        // A bad flag value names the flag.
        let mut raw = RawConfig::default();
        raw.apply_flags(&GlobalArgs {
            escrow: Some("nope".into()),
            ..Default::default()
        });
        let err = Settings::resolve(&raw).unwrap_err();
        assert_eq!(err.issues[0].key, "--escrow");
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
