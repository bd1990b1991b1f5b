//! Configuration shared by the CLI's `springmail.toml` and the watcher's file: the
//! `[chain]` section ([`ChainConfig`] → [`ChainSettings`] → [`ChainSettings::connect`]),
//! and the reporting of bad keys ([`ConfigIssue`], [`ConfigErrors`]).
//!
//! A file is read section by section and key by key ([`take_section`]), so one pass
//! names every bad key, `[section] key`, instead of stopping at the first.
//!
//! ```toml
//! [chain]
//! backend = "evm-rpc"              # "evm-rpc" | "qtum" | "embedded" (the CLI's demo only)
//! url = "http://127.0.0.1:8545"    # node JSON-RPC
//! chain_id = 8890                  # refuse a node on another chain
//! escrow = "0x…"                   # the EmailEscrow contract (base58 too on Qtum chains)
//! start_block = 0                  # its deployment block: event scans start here
//! # qtum only:
//! rpc_user = "qtum"                # or rpc_user_env = "VARIABLE"
//! rpc_password_env = "SPRINGMAIL_QTUM_RPC_PASSWORD"   # the default
//! wallet = "alice"                 # the node wallet's name (also spelled node_wallet)
//! signer = "node"                  # "node" (the node's wallet signs) | "local" (our key signs)
//! sender = "q…"                    # signer = "node": the address in the node's wallet
//! gas_price = 40                   # satoshi per gas
//! # the watcher's submissions:
//! gas_limit = 300000
//! receipt_timeout_secs = 120
//! resend_guard_secs = 30
//! ```

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use alloy::primitives::Address;
use serde::de::DeserializeOwned;
use serde::Deserialize;

use crate::chain::evm_rpc::EvmRpcChain;
use crate::chain::qtum::{QtumChain, QtumConfig};
use crate::chain::{Chain, ChainError};
use crate::keys::ClaimSecret;
use crate::qtum::{self as qtum_addr, QtumNetwork};

/// The default node URL (anvil's default port).
pub const DEFAULT_RPC_URL: &str = "http://127.0.0.1:8545";

/// One bad key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigIssue {
    /// Dotted path (`chain.url`, `fees.tokens[0].fee`), or the flag or variable that set it.
    pub key: String,
    /// What is wrong.
    pub problem: String,
}

impl ConfigIssue {
    /// An issue.
    pub fn new(key: impl Into<String>, problem: impl Into<String>) -> Self {
        ConfigIssue {
            key: key.into(),
            problem: problem.into(),
        }
    }

    /// The key as written in the file: `[chain] url`; flags, variables and top-level keys
    /// as they are.
    pub fn shown_key(&self) -> String {
        match self.key.split_once('.') {
            Some((section, key)) if !self.key.starts_with('-') => format!("[{section}] {key}"),
            _ => self.key.clone(),
        }
    }
}

impl std::fmt::Display for ConfigIssue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.shown_key(), self.problem)
    }
}

/// Every bad key found in one pass, shown on one line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad configuration{} ({} problem(s)): {}",
    .file.as_ref().map(|f| format!(" in {}", f.display())).unwrap_or_default(),
    .issues.len(),
    .issues.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
pub struct ConfigErrors {
    /// The file read, if any.
    pub file: Option<PathBuf>,
    /// The problems, in file order.
    pub issues: Vec<ConfigIssue>,
}

impl ConfigErrors {
    /// The keys named, for tests and callers that branch on them.
    pub fn keys(&self) -> Vec<&str> {
        self.issues.iter().map(|i| i.key.as_str()).collect()
    }
}

/// Parses TOML text into a table; a syntax error is one issue that names its line.
pub fn parse_table(text: &str) -> Result<toml::Table, ConfigIssue> {
    text.parse::<toml::Table>().map_err(|e| {
        let at = e
            .span()
            .map(|s| format!("line {}", text[..s.start].lines().count().max(1)))
            .unwrap_or_else(|| "(file)".into());
        ConfigIssue::new(at, format!("not valid TOML: {}", e.message()))
    })
}

/// Removes `key` from `table` and reads it as a `T`; a bad value is an issue at `path`.
pub fn take_value<T: DeserializeOwned>(
    table: &mut toml::Table,
    key: &str,
    path: &str,
    issues: &mut Vec<ConfigIssue>,
) -> Option<T> {
    let value = table.remove(key)?;
    match value.try_into() {
        Ok(v) => Some(v),
        Err(e) => {
            issues.push(ConfigIssue::new(path, plain(&e)));
            None
        }
    }
}

/// Removes the section `name` from `table` and reads it key by key, so that every bad or
/// unknown key is an issue of its own and the good ones are kept. `T` must deny unknown
/// fields and have every field optional (or defaulted).
pub fn take_section<T: DeserializeOwned + Default>(
    table: &mut toml::Table,
    name: &str,
    issues: &mut Vec<ConfigIssue>,
) -> Option<T> {
    let value = table.remove(name)?;
    let toml::Value::Table(section) = value else {
        issues.push(ConfigIssue::new(
            name,
            format!("expected a [{name}] section, got {}", value.type_str()),
        ));
        return Some(T::default());
    };
    let mut good = toml::Table::new();
    for (key, value) in section {
        let mut one = toml::Table::new();
        one.insert(key.clone(), value.clone());
        match toml::Value::Table(one).try_into::<T>() {
            Ok(_) => {
                good.insert(key, value);
            }
            Err(e) => issues.push(ConfigIssue::new(format!("{name}.{key}"), plain(&e))),
        }
    }
    Some(
        toml::Value::Table(good)
            .try_into()
            .expect("each key was read alone"),
    )
}

/// Issues for what is left in a table once every known key was taken.
pub fn unknown_keys(table: toml::Table, known: &str, issues: &mut Vec<ConfigIssue>) {
    for (key, value) in table {
        let what = if value.is_table() { "section" } else { "key" };
        issues.push(ConfigIssue::new(
            key,
            format!("unknown {what} (known: {known})"),
        ));
    }
}

/// `value` (or `default` when absent) as one of `choices`; anything else is an issue at
/// `key` that names them.
pub fn one_of<T: Copy>(
    key: &str,
    value: Option<&str>,
    default: &str,
    choices: &[(&str, T)],
    issues: &mut Vec<ConfigIssue>,
) -> Option<T> {
    let v = value.map(str::trim).unwrap_or(default);
    if let Some((_, t)) = choices.iter().find(|(name, _)| *name == v) {
        return Some(*t);
    }
    let names: Vec<String> = choices.iter().map(|(n, _)| format!("{n:?}")).collect();
    let problem = format!("{v:?} is not one of {}", names.join(", "));
    issues.push(ConfigIssue::new(key, problem));
    None
}

/// The secret in the environment variable `var` that the key `key` names. An unset or
/// empty variable is an issue when it was named or the secret is `required`.
pub fn secret(
    env: &dyn Fn(&str) -> Option<String>,
    key: &str,
    var: Option<&str>,
    required: bool,
    issues: &mut Vec<ConfigIssue>,
) -> Option<String> {
    let Some(name) = var else {
        if required {
            let problem = "is required (the name of an environment variable holding the secret)";
            issues.push(ConfigIssue::new(key, problem));
        }
        return None;
    };
    let value = env(name).filter(|v| !v.is_empty());
    if value.is_none() {
        issues.push(ConfigIssue::new(
            key,
            format!("environment variable {name} is not set"),
        ));
    }
    value
}

/// A deserializer's message in the words of the config docs.
fn plain(e: &toml::de::Error) -> String {
    let m = e.message().trim().replace('`', "");
    if let Some(rest) = m.strip_prefix("unknown field ") {
        let known = rest.split_once("expected one of ").map(|(_, k)| k);
        return match known {
            Some(k) => format!("unknown key (known: {k})"),
            None => "unknown key".into(),
        };
    }
    // "invalid type: string \"x\", expected u64" → "…, expected a whole number".
    let whole = ["u8", "u16", "u32", "u64", "usize"];
    match m.rsplit_once(", expected ") {
        Some((head, ty)) if whole.contains(&ty) => format!("{head}, expected a whole number"),
        Some((head, "a boolean")) => format!("{head}, expected true or false"),
        _ => m,
    }
}

/// `[chain]` as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChainConfig {
    /// `evm-rpc` (default), `qtum` or `embedded`.
    pub backend: Option<String>,
    /// Node URL.
    pub url: Option<String>,
    /// Expected chain id.
    pub chain_id: Option<u64>,
    /// Escrow contract.
    pub escrow: Option<String>,
    /// First block with escrow events.
    pub start_block: Option<u64>,
    /// qtum: the RPC user.
    pub rpc_user: Option<String>,
    /// qtum: the variable holding the RPC user (in place of `rpc_user`).
    pub rpc_user_env: Option<String>,
    /// qtum: the variable holding the RPC password (default SPRINGMAIL_QTUM_RPC_PASSWORD).
    pub rpc_password_env: Option<String>,
    /// qtum: the node wallet's name (`/wallet/<name>`).
    #[serde(alias = "node_wallet")]
    pub wallet: Option<String>,
    /// qtum: `node` (default) or `local`.
    pub signer: Option<String>,
    /// qtum: the sender's base58 address.
    pub sender: Option<String>,
    /// qtum: satoshi per gas.
    pub gas_price: Option<u64>,
    /// Gas limit of the watcher's claims.
    pub gas_limit: Option<u64>,
    /// The watcher's wait for a receipt, seconds.
    pub receipt_timeout_secs: Option<u64>,
    /// Seconds the watcher watches an uncertain broadcast before resending.
    pub resend_guard_secs: Option<u64>,
}

/// Which chain backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// Ethereum JSON-RPC with a local key (anvil, any EVM node).
    EvmRpc,
    /// qtumd JSON-RPC.
    Qtum,
    /// The in-process development chain (one process only: the demo).
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
    /// Our key signs raw transactions; the node needs `-addrindex` and no wallet.
    Local,
}

/// What a program needs of `[chain]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// The CLI: every key optional (commands ask for what they use), `embedded` allowed.
    Client,
    /// A service (the watcher): url, chain_id and escrow required, a real chain, and on
    /// qtum the RPC credentials.
    Service,
}

/// `[chain]`, checked.
#[derive(Clone, PartialEq, Eq)]
pub struct ChainSettings {
    /// The backend.
    pub backend: Backend,
    /// Node URL.
    pub url: String,
    /// Required chain id, if set.
    pub chain_id: Option<u64>,
    /// Escrow contract, if set.
    pub escrow: Option<Address>,
    /// First block of event scans.
    pub start_block: u64,
    /// qtum: RPC user.
    pub rpc_user: String,
    /// qtum: RPC password. Never printed.
    pub rpc_password: String,
    /// qtum: wallet name.
    pub wallet: Option<String>,
    /// qtum: who signs.
    pub signer: QtumSignerKind,
    /// qtum: the sender's base58 address.
    pub sender: Option<String>,
    /// qtum: satoshi per gas.
    pub gas_price: Option<u64>,
    /// Gas limit of the watcher's claims (default 300,000).
    pub gas_limit: u64,
    /// The watcher's receipt wait (default 120 s).
    pub receipt_timeout: Duration,
    /// The watcher's resend guard (default 30 s).
    pub resend_guard: Duration,
}

impl std::fmt::Debug for ChainSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChainSettings")
            .field("backend", &self.backend)
            .field("url", &self.url)
            .field("chain_id", &self.chain_id)
            .field("escrow", &self.escrow)
            .field("signer", &self.signer)
            .field("sender", &self.sender)
            .finish_non_exhaustive()
    }
}

impl ChainConfig {
    /// Checks every key, adding one issue per bad key to `issues`; variables named by
    /// the section are read through `env`. `None` when a required value is missing or bad.
    pub fn resolve(
        &self,
        need: Need,
        env: &dyn Fn(&str) -> Option<String>,
        issues: &mut Vec<ConfigIssue>,
    ) -> Option<ChainSettings> {
        let before = issues.len();
        let service = need == Need::Service;
        let mut backends = vec![("evm-rpc", Backend::EvmRpc), ("qtum", Backend::Qtum)];
        if !service {
            backends.push(("embedded", Backend::Embedded));
        }
        let backend = self.backend.as_deref().map(|b| match b.trim() {
            "evm_rpc" | "evm" => "evm-rpc",
            other => other,
        });
        let backend = one_of("chain.backend", backend, "evm-rpc", &backends, issues)
            .unwrap_or(Backend::EvmRpc);
        let mut bad = |key: &str, problem: String| issues.push(ConfigIssue::new(key, problem));
        let url = match self.url.as_deref().map(str::trim) {
            None if service => {
                bad("chain.url", "is required (the node's JSON-RPC URL)".into());
                String::new()
            }
            None => DEFAULT_RPC_URL.to_string(),
            Some(v) => {
                if !(v.starts_with("http://") || v.starts_with("https://")) {
                    bad(
                        "chain.url",
                        format!("{v:?} must start with http:// or https://"),
                    );
                }
                v.to_string()
            }
        };
        let chain_id = match self.chain_id {
            Some(0) => {
                bad("chain.chain_id", "0 is no chain id".into());
                None
            }
            None if service => {
                bad("chain.chain_id", "is required (e.g. 8890)".into());
                None
            }
            id => id,
        };
        if let (Some(id), Backend::Qtum) = (chain_id, backend) {
            if QtumNetwork::from_chain_id(id).is_none() {
                bad(
                    "chain.chain_id",
                    format!("{id} is not a Qtum chain (81, 8889 or 8890) but the backend is qtum"),
                );
            }
        }
        let escrow = match self.escrow.as_deref() {
            None if service => {
                bad("chain.escrow", "is required (the escrow's address)".into());
                None
            }
            None => None,
            Some(text) => match parse_address(chain_id, text) {
                Ok(a) if service && a == Address::ZERO => {
                    bad("chain.escrow", "the zero address is no escrow".into());
                    None
                }
                Ok(a) => Some(a),
                Err(e) => {
                    bad("chain.escrow", e);
                    None
                }
            },
        };
        let signer = match self.signer.as_deref().map(str::trim) {
            None | Some("node") => QtumSignerKind::Node,
            Some("local") => QtumSignerKind::Local,
            Some(other) => {
                bad(
                    "chain.signer",
                    format!(
                        "unknown signer {other:?} (use \"node\": the node's wallet signs, \
                         or \"local\": our own key signs)"
                    ),
                );
                QtumSignerKind::Node
            }
        };
        let sender = self.sender.as_deref().map(|s| s.trim().to_string());
        if let (Some(s), Some(net)) = (&sender, chain_id.and_then(QtumNetwork::from_chain_id)) {
            if let Err(e) = qtum_addr::decode_address_for(s, net) {
                bad("chain.sender", e.to_string());
            }
        }
        // The node signer needs the wallet's sender (an unknown signer is reported once,
        // as itself).
        let qtum_service = service && backend == Backend::Qtum;
        if qtum_service
            && self.signer.as_deref().is_none_or(|s| s.trim() == "node")
            && sender.is_none()
        {
            bad(
                "chain.sender",
                "is required with signer = \"node\" (an address in the node's wallet)".into(),
            );
        }
        let rpc_user = match (&self.rpc_user, self.rpc_user_env.as_deref()) {
            (Some(u), _) => u.clone(),
            (None, var) => {
                secret(env, "chain.rpc_user_env", var, false, issues).unwrap_or_default()
            }
        };
        // The default password variable is needed only by a qtumd service.
        let rpc_password = match self.rpc_password_env.as_deref() {
            Some(var) => secret(env, "chain.rpc_password_env", Some(var), true, issues),
            None if qtum_service => {
                let var = Some(crate::env::QTUM_RPC_PASSWORD);
                secret(env, "chain.rpc_password_env", var, true, issues)
            }
            None => env(crate::env::QTUM_RPC_PASSWORD),
        }
        .unwrap_or_default();
        if qtum_service && rpc_user.is_empty() && self.rpc_user_env.is_none() {
            issues.push(ConfigIssue::new(
                "chain.rpc_user",
                "is required (or rpc_user_env = \"VARIABLE\")",
            ));
        }
        if self.rpc_user.is_some() && self.rpc_user_env.is_some() {
            issues.push(ConfigIssue::new(
                "chain.rpc_user_env",
                "set rpc_user or rpc_user_env, not both",
            ));
        }
        if issues.len() > before {
            return None;
        }
        Some(ChainSettings {
            backend,
            url,
            chain_id,
            escrow,
            start_block: self.start_block.unwrap_or(0),
            rpc_user,
            rpc_password,
            wallet: self.wallet.clone(),
            signer,
            sender,
            gas_price: self.gas_price,
            gas_limit: self.gas_limit.unwrap_or(300_000),
            receipt_timeout: Duration::from_secs(self.receipt_timeout_secs.unwrap_or(120)),
            resend_guard: Duration::from_secs(self.resend_guard_secs.unwrap_or(30)),
        })
    }
}

/// Parses an address: `0x`-hex anywhere; base58 on Qtum chains (any Qtum network when
/// the chain is not known yet, else the network of `chain_id`).
pub fn parse_address(chain_id: Option<u64>, text: &str) -> Result<Address, String> {
    let text = text.trim();
    match chain_id {
        Some(id) => qtum_addr::parse_address(id, text).map_err(|e| e.to_string()),
        None if text.starts_with("0x") || text.starts_with("0X") => {
            qtum_addr::parse_hex_address(text).map_err(|e| e.to_string())
        }
        None => qtum_addr::decode_address(text)
            .map(|(_, a)| a)
            .map_err(|e| e.to_string()),
    }
}

impl ChainSettings {
    /// The account transactions signed with `key` come from (`msg.sender`), when the
    /// configuration alone tells: the key's address on EVM backends, its hash160 with the
    /// qtum local signer, the node wallet's `sender` otherwise. A deposit naming this
    /// account as its watcher is claimed without attestation (docs/PROTOCOL.md,
    /// "Self-submitted claims").
    pub fn sending_account(&self, key: &ClaimSecret) -> Option<Address> {
        match (self.backend, self.signer) {
            (Backend::Qtum, QtumSignerKind::Local) => Some(qtum_addr::qtum_sender_of_secret(key)),
            (Backend::Qtum, QtumSignerKind::Node) => {
                qtum_addr::parse_address(self.chain_id?, self.sender.as_deref()?).ok()
            }
            (Backend::EvmRpc | Backend::Embedded, _) => Some(key.address()),
        }
    }

    /// Connects to the node. `key` signs on `evm-rpc` and on `qtum` with
    /// `signer = "local"` (a throwaway key stands in for read-only work when `None`, and
    /// then no sender is matched); with the node signer the node's wallet signs for
    /// `sender`. `chain_id` (e.g. a link's) overrides the configured one; the caller
    /// checks that they agree.
    pub async fn connect(
        &self,
        key: Option<&ClaimSecret>,
        chain_id: Option<u64>,
    ) -> Result<Arc<dyn Chain>, ChainError> {
        let expected = chain_id.or(self.chain_id);
        let chain: Arc<dyn Chain> = match self.backend {
            Backend::Embedded => {
                return Err(ChainError::Invalid(
                    "the embedded chain lives inside one process only".into(),
                ))
            }
            Backend::EvmRpc => {
                let secret = key.cloned().unwrap_or_else(ClaimSecret::random);
                Arc::new(EvmRpcChain::connect(&self.url, secret.signer(), expected).await?)
            }
            Backend::Qtum => {
                let local = self.signer == QtumSignerKind::Local;
                let sender = match (local, key) {
                    (true, None) => String::new(),
                    _ => self.sender.clone().unwrap_or_default(),
                };
                let mut cfg = QtumConfig::new(
                    self.url.clone(),
                    self.rpc_user.clone(),
                    self.rpc_password.clone(),
                    sender,
                );
                if local {
                    cfg = cfg.local_key(key.cloned().unwrap_or_else(ClaimSecret::random));
                } else if let Some(w) = &self.wallet {
                    cfg = cfg.wallet(w.clone());
                }
                if let Some(p) = self.gas_price {
                    cfg.gas_price_sat = p;
                }
                if let Some(id) = expected {
                    cfg = cfg.expect_chain_id(id);
                }
                Arc::new(QtumChain::connect(cfg).await?)
            }
        };
        tracing::debug!(chain = %chain.describe(), "connected");
        Ok(chain)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str, need: Need) -> Result<ChainSettings, Vec<ConfigIssue>> {
        let env = |name: &str| (name == "PW").then(|| "secret".to_string());
        let mut table = parse_table(text).map_err(|i| vec![i])?;
        let mut issues = Vec::new();
        let raw: ChainConfig = take_section(&mut table, "chain", &mut issues).unwrap_or_default();
        unknown_keys(table, "chain", &mut issues);
        let s = raw.resolve(need, &env, &mut issues);
        match s {
            Some(s) if issues.is_empty() => Ok(s),
            _ => Err(issues),
        }
    }

    fn keys(issues: &[ConfigIssue]) -> Vec<&str> {
        issues.iter().map(|i| i.key.as_str()).collect()
    }

    #[test]
    fn a_client_needs_nothing_and_a_service_needs_url_chain_and_escrow() {
        let s = read("", Need::Client).unwrap();
        assert_eq!(
            (s.backend, s.url.as_str()),
            (Backend::EvmRpc, DEFAULT_RPC_URL)
        );
        let err = read("[chain]\n", Need::Service).unwrap_err();
        assert_eq!(keys(&err), ["chain.url", "chain.chain_id", "chain.escrow"]);
    }

    #[test]
    fn three_bad_keys_are_three_issues_in_one_pass() {
        let text =
            "[chain]\nurl = \"ftp://x\"\nchain_id = \"abc\"\ncolour = 1\nescrow = \"0x12\"\n";
        for need in [Need::Client, Need::Service] {
            let err = read(text, need).unwrap_err();
            let k = keys(&err);
            for want in [
                "chain.url",
                "chain.chain_id",
                "chain.colour",
                "chain.escrow",
            ] {
                assert!(k.contains(&want), "{want} missing from {k:?}");
            }
            let shown: Vec<String> = err.iter().map(ToString::to_string).collect();
            assert!(
                shown
                    .iter()
                    .any(|s| s.starts_with("[chain] colour: unknown key")),
                "{shown:?}"
            );
        }
    }

    #[test]
    fn both_spellings_of_the_node_wallet_and_the_password_variable() {
        let t = "[chain]\nbackend = \"qtum\"\nurl = \"http://127.0.0.1:3889\"\nchain_id = 8890\n\
                 escrow = \"0x00000000000000000000000000000000000000e5\"\nsigner = \"local\"\n\
                 rpc_user = \"u\"\nrpc_password_env = \"PW\"\n";
        let s = read(&format!("{t}node_wallet = \"a\"\n"), Need::Service).unwrap();
        assert_eq!(s.wallet.as_deref(), Some("a"));
        assert_eq!(s.rpc_password, "secret");
        assert!(!format!("{s:?}").contains("secret"));
        let s = read(&format!("{t}wallet = \"b\"\n"), Need::Service).unwrap();
        assert_eq!(s.wallet.as_deref(), Some("b"));
        // A variable named but unset is named.
        let err = read(&t.replace("\"PW\"", "\"NOPE\""), Need::Service).unwrap_err();
        assert_eq!(keys(&err), ["chain.rpc_password_env"]);
        assert!(err[0].problem.contains("NOPE"), "{err:?}");
    }

    #[test]
    fn embedded_is_for_the_client_only_and_qtum_needs_a_qtum_chain() {
        assert_eq!(
            read("[chain]\nbackend = \"embedded\"\n", Need::Client)
                .unwrap()
                .backend,
            Backend::Embedded
        );
        let err = read("[chain]\nbackend = \"embedded\"\n", Need::Service).unwrap_err();
        assert!(keys(&err).contains(&"chain.backend"), "{err:?}");
        let err = read("[chain]\nbackend = \"qtum\"\nchain_id = 1\n", Need::Client).unwrap_err();
        assert_eq!(keys(&err), ["chain.chain_id"]);
    }
}
