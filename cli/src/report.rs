//! From an error chain to what the user sees: one line naming what is wrong, one hint
//! line saying what to do, and an exit code.
//!
//! Exit codes: 0 done; 1 the operation failed (refused, reverted, not delivered);
//! 2 bad input or configuration; 3 a service could not be reached (try again later).

use std::fmt;

use springmail_sdk::amount::AmountError;
use springmail_sdk::chain::ChainError;
use springmail_sdk::client::ClientError;
use springmail_sdk::email::EmailError;
use springmail_sdk::keystore::KeystoreError;
use springmail_sdk::link::LinkError;
use springmail_sdk::mail::MailError;
use springmail_sdk::markup::MarkupError;
use springmail_sdk::qtum::{AddressError, WifError};

use springmail_sdk::config::ConfigErrors as ConfigError;

/// What kind of failure, which decides the exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitKind {
    /// The operation was tried and failed (exit 1).
    Failed,
    /// The input or configuration is wrong (exit 2).
    Input,
    /// A service could not be reached; retrying may work (exit 3).
    Unavailable,
}

impl ExitKind {
    /// The name in `--json` output: `failed`, `input` or `unavailable`.
    pub fn name(self) -> &'static str {
        match self {
            ExitKind::Failed => "failed",
            ExitKind::Input => "input",
            ExitKind::Unavailable => "unavailable",
        }
    }

    /// The process exit code.
    pub fn code(self) -> u8 {
        match self {
            ExitKind::Failed => 1,
            ExitKind::Input => 2,
            ExitKind::Unavailable => 3,
        }
    }
}

/// An error with a hint attached. Its `Display` is the wrapped error's, its `source`
/// the wrapped error's source, so the chain reads as if it were not there.
#[derive(Debug)]
pub struct Hinted {
    error: anyhow::Error,
    /// What to do about it.
    pub hint: String,
    /// Exit kind.
    pub kind: ExitKind,
    /// What `--json` adds to the failure object (e.g. the claim link of a deposit that
    /// was broadcast but not confirmed), beside `ok` and `error`.
    pub data: Option<serde_json::Map<String, serde_json::Value>>,
}

impl fmt::Display for Hinted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.error, f)
    }
}

impl std::error::Error for Hinted {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.error.source()
    }
}

/// Attaches a hint and an exit kind to an error.
pub fn hinted(
    error: impl Into<anyhow::Error>,
    hint: impl Into<String>,
    kind: ExitKind,
) -> anyhow::Error {
    anyhow::Error::new(Hinted {
        error: error.into(),
        hint: hint.into(),
        kind,
        data: None,
    })
}

/// [`hinted`], with values that `--json` prints in the failure object.
pub fn hinted_with_data(
    error: impl Into<anyhow::Error>,
    hint: impl Into<String>,
    kind: ExitKind,
    data: serde_json::Map<String, serde_json::Value>,
) -> anyhow::Error {
    anyhow::Error::new(Hinted {
        error: error.into(),
        hint: hint.into(),
        kind,
        data: Some(data),
    })
}

/// A plain input error with a hint.
pub fn input_error(message: impl fmt::Display, hint: impl Into<String>) -> anyhow::Error {
    hinted(anyhow::anyhow!("{message}"), hint, ExitKind::Input)
}

/// A plain failure with a hint.
pub fn failure(message: impl fmt::Display, hint: impl Into<String>) -> anyhow::Error {
    hinted(anyhow::anyhow!("{message}"), hint, ExitKind::Failed)
}

/// What to print and how to exit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// The error chain on one line.
    pub line: String,
    /// The hint, if one applies.
    pub hint: Option<String>,
    /// The exit code.
    pub code: u8,
    /// What kind of failure (decides the code).
    pub kind: ExitKind,
    /// Values the failure object carries beside `ok` and `error`.
    pub data: Option<serde_json::Map<String, serde_json::Value>>,
}

impl Report {
    /// The one JSON object `--json` prints on stdout for a failure:
    /// `{"ok":false,"error":{"kind":…,"message":…,"hint":…,"exit_code":…}}`.
    pub fn to_json(&self) -> serde_json::Value {
        let mut v = serde_json::json!({
            "ok": false,
            "error": {
                "kind": self.kind.name(),
                "message": self.line,
                "hint": self.hint,
                "exit_code": self.code,
            }
        });
        if let (Some(data), Some(obj)) = (&self.data, v.as_object_mut()) {
            for (k, val) in data {
                if k != "ok" && k != "error" {
                    obj.insert(k.clone(), val.clone());
                }
            }
        }
        v
    }
}

/// The one-line message, hint and exit code for an error chain.
pub fn report(err: &anyhow::Error) -> Report {
    let line = one_line(&format!("{err:#}"));
    let (hint, kind) = hint_for(err);
    let data = err
        .chain()
        .find_map(|c| c.downcast_ref::<Hinted>())
        .and_then(|h| h.data.clone());
    Report {
        line,
        hint,
        code: kind.code(),
        kind,
        data,
    }
}

fn one_line(text: &str) -> String {
    text.split(['\n', '\r'])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

const AMOUNT_HINT: &str =
    "write the amount as a decimal with its unit, e.g. \"1.5 QTUM\" (QTUM has 8 decimals)";

/// The amount hint in the asset the amount was checked against (a token's own symbol
/// and decimals), when the error knows it.
fn amount_hint(e: &AmountError) -> String {
    match e {
        AmountError::WrongSymbol { expected, .. } | AmountError::MissingSymbol { expected }
            if !expected.starts_with("one of") =>
        {
            format!("write the amount as a decimal with its unit, e.g. \"1.5 {expected}\"")
        }
        AmountError::TooManyDecimals {
            symbol, allowed, ..
        } => format!(
            "{symbol} has {allowed} decimals: write at most {allowed} digits after the point, e.g. \"1.5 {symbol}\""
        ),
        _ => AMOUNT_HINT.to_string(),
    }
}
const LINK_HINT: &str =
    "copy the whole claim link from the email: it starts with sm1. or https://…/claim#sm1. (quote it in the shell)";
const ADDRESS_HINT: &str = "on Qtum chains give a base58 address (q… on testnet/regtest, Q… on mainnet) or 0x followed by 40 hex digits";

fn hint_for(err: &anyhow::Error) -> (Option<String>, ExitKind) {
    for cause in err.chain() {
        if let Some(h) = cause.downcast_ref::<Hinted>() {
            return (Some(h.hint.clone()), h.kind);
        }
        if let Some(found) = known(cause) {
            return (Some(found.0.to_string()), found.1);
        }
    }
    (None, ExitKind::Failed)
}

fn known(cause: &(dyn std::error::Error + 'static)) -> Option<(String, ExitKind)> {
    use ExitKind::*;
    let s = |t: &str, k| Some((t.to_string(), k));
    if let Some(e) = cause.downcast_ref::<AmountError>() {
        return Some((amount_hint(e), Input));
    }
    if cause.is::<LinkError>() {
        return s(LINK_HINT, Input);
    }
    if cause.is::<EmailError>() {
        return s("give a full email address like bob@example.com", Input);
    }
    if cause.is::<AddressError>() {
        return s(ADDRESS_HINT, Input);
    }
    if cause.is::<WifError>() {
        return s(
            "give the key as WIF (c…/K…/L…) or as 0x followed by 64 hex digits",
            Input,
        );
    }
    if cause.is::<MarkupError>() {
        return s("the CLAIM block must be copied whole, from -----BEGIN BISMTP CLAIM----- to -----END BISMTP CLAIM-----", Input);
    }
    if cause.is::<ConfigError>() {
        return s(
            "fix the keys named above (see docs/CLI.md for the config file)",
            Input,
        );
    }
    if let Some(e) = cause.downcast_ref::<MailError>() {
        return match e {
            MailError::Write(_) => None,
            _ => s(
                "check the email addresses in [mail] and [watcher], or the flags",
                Input,
            ),
        };
    }
    if let Some(e) = cause.downcast_ref::<KeystoreError>() {
        return match e {
            KeystoreError::WrongPassword => s(
                "set SPRINGMAIL_PASSWORD to the password the keystore was made with, or type it at the prompt",
                Input,
            ),
            KeystoreError::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => s(
                "make a key with `springmail wallet new` (or import one with `springmail wallet import`), \
                 pass --keystore FILE, or set SPRINGMAIL_PRIVATE_KEY",
                Input,
            ),
            KeystoreError::Exists { .. } => s("choose another file with --keystore, or move the old one away", Input),
            KeystoreError::EmptyPassword => s("choose a password (or set SPRINGMAIL_PASSWORD)", Input),
            _ => s("the keystore file is damaged; restore it from a backup", Input),
        };
    }
    if let Some(e) = cause.downcast_ref::<ChainError>() {
        return chain_hint(e);
    }
    if let Some(e) = cause.downcast_ref::<ClientError>() {
        return match e {
            ClientError::Chain(c) => chain_hint(c),
            ClientError::Expired { .. } => s(
                "anyone can return it to its sender with `springmail refund LINK`; ask the sender to send again",
                Failed,
            ),
            ClientError::NoContract { .. } => s(
                "point --rpc ([chain] url) at the chain the link or [chain] escrow was made on; \
                 `springmail deploy` prints the escrow's address",
                Input,
            ),
            ClientError::NeedsWatcher { .. } => s(
                "claim by mail: springmail claim LINK --to ADDR --email YOUR_EMAIL (it writes the claim mail to the watcher)",
                Input,
            ),
            ClientError::NotFound { .. } => s(
                "check that --rpc points at the chain the link was made on, and that the deposit transaction was mined",
                Failed,
            ),
            ClientError::NotOpen { .. } => s("see `springmail status` for where the money went", Failed),
            ClientError::WrongEscrow { .. } => s("point --rpc / [chain] at the chain named in the link", Input),
            ClientError::Email(_) => s("give a full email address like bob@example.com", Input),
            ClientError::Deposit(_) => s(AMOUNT_HINT, Input),
            ClientError::Reverted { .. } => s(
                "the transaction was mined but reverted: its gas was spent, the money did not move",
                Failed,
            ),
            ClientError::WouldRevert { .. } => s("nothing was sent (no gas spent); see the reason above", Failed),
            ClientError::Unconfirmed { .. } => s(
                "the transaction was broadcast and may still be mined: check with `springmail status` before trying again",
                Unavailable,
            ),
            ClientError::InsufficientTokenBalance { .. } => s("nothing was sent; get more of the token first", Input),
            ClientError::Decode(_) => s("is [chain] escrow really an EmailEscrow contract on this chain?", Failed),
        };
    }
    if let Some(e) = cause.downcast_ref::<lettre::transport::smtp::Error>() {
        return if e.is_transient() || e.is_timeout() || e.to_string().contains("Connection") {
            s("is the SMTP server at [mail] smtp_url running? nothing was paid twice: run the same command again, or use --out FILE", Unavailable)
        } else {
            s("check [mail] smtp_url, smtp_user and SPRINGMAIL_SMTP_PASSWORD; or write the mail to a file with --out", Failed)
        };
    }
    if let Some(e) = cause.downcast_ref::<std::io::Error>() {
        return match e.kind() {
            std::io::ErrorKind::NotFound => s("check the file name", Input),
            std::io::ErrorKind::PermissionDenied => s("check the file's permissions", Input),
            _ => None,
        };
    }
    None
}

fn chain_hint(e: &ChainError) -> Option<(String, ExitKind)> {
    use ExitKind::*;
    let (t, k) = match e {
        ChainError::Unreachable { .. } => (
            "is the node running? set [chain] url in springmail.toml, or --rpc URL (SPRINGMAIL_RPC_URL)".to_string(),
            Unavailable,
        ),
        ChainError::NotMined { .. } => (
            "the transaction may still be mined: check with `springmail status` before trying again".to_string(),
            Unavailable,
        ),
        ChainError::ChainIdMismatch { .. } => {
            ("set [chain] chain_id (or --chain-id) to the node's chain, or point --rpc at the right node".to_string(), Input)
        }
        ChainError::Rpc { message, .. } if message.to_lowercase().contains("insufficient funds") => (
            "your account cannot pay the amount and the gas: fund it (springmail wallet show prints its address)".to_string(),
            Failed,
        ),
        ChainError::Rpc { code: 401, .. } => (
            "set SPRINGMAIL_QTUM_RPC_PASSWORD to qtumd's -rpcpassword and [chain] rpc_user \
             (or SPRINGMAIL_QTUM_RPC_USER) to its -rpcuser"
                .to_string(),
            Input,
        ),
        ChainError::Rpc { code: -19, .. } => (
            "the node has several wallets loaded: set [chain] node_wallet to the one that holds \
             [chain] sender (qtum-cli listwallets shows them)"
                .to_string(),
            Input,
        ),
        ChainError::Http { .. } => (
            "check [chain] url, --rpc or SPRINGMAIL_RPC_URL: a node's JSON-RPC is usually at http://HOST:PORT with no path \
             (anvil: http://127.0.0.1:8545)"
                .to_string(),
            Input,
        ),
        ChainError::Rpc { .. } if e.is_transient() => ("the node is busy; try again in a moment".to_string(), Unavailable),
        ChainError::Rpc { .. } => ("the node refused the request; see its reason above".to_string(), Failed),
        ChainError::BadResponse { .. } => ("is the URL really a node of the configured backend?".to_string(), Failed),
        ChainError::Invalid(_) => ("check the [chain] settings".to_string(), Input),
    };
    Some((t, k))
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    #[test]
    fn hints_survive_context() {
        let err: anyhow::Result<()> = Err(input_error("bad thing", "do this"));
        let err = err.context("while sending").unwrap_err();
        let r = report(&err);
        assert_eq!(r.line, "while sending: bad thing");
        assert_eq!(r.hint.as_deref(), Some("do this"));
        assert_eq!(r.code, 2);
    }

    #[test]
    fn sdk_errors_get_hints() {
        let err = anyhow::Error::new(springmail_sdk::link::ClaimLink::parse("nope").unwrap_err())
            .context("reading the link");
        let r = report(&err);
        assert!(r.hint.unwrap().contains("sm1."));
        assert_eq!(r.code, 2);
        let err = anyhow::Error::new(ChainError::Unreachable {
            endpoint: "http://x".into(),
            reason: "refused".into(),
        });
        assert_eq!(report(&err).code, 3);
    }

    #[test]
    fn a_wrong_asset_hint_uses_the_tokens_symbol() {
        let asset = springmail_sdk::amount::Asset::new("USDT", 6).unwrap();
        let e = springmail_sdk::amount::Amount::parse("1.5 QTUM", &asset).unwrap_err();
        let r = report(&anyhow::Error::new(e).context("--amount \"1.5 QTUM\""));
        let hint = r.hint.unwrap();
        assert!(hint.contains("1.5 USDT"), "{hint}");
        assert!(!hint.contains("QTUM"), "{hint}");
        let e = springmail_sdk::amount::Amount::parse("1.1234567 USDT", &asset).unwrap_err();
        let hint = report(&anyhow::Error::new(e)).hint.unwrap();
        assert!(hint.contains("USDT has 6 decimals"), "{hint}");
    }

    fn rpc(code: i64, message: &str) -> anyhow::Error {
        anyhow::Error::new(ChainError::Rpc {
            method: "getblockchaininfo".into(),
            code,
            message: message.into(),
        })
    }

    #[test]
    fn a_refused_rpc_password_names_the_variable() {
        let r = report(&rpc(401, "HTTP 401: the node refused the RPC credentials"));
        assert!(r.hint.unwrap().contains("SPRINGMAIL_QTUM_RPC_PASSWORD"));
        assert_eq!(r.code, 2);
    }

    #[test]
    fn several_wallets_hint_names_node_wallet() {
        let r = report(&rpc(-19, "Wallet file not specified (must request wallet RPC through /wallet/<filename> uri-path)."));
        assert!(r.hint.unwrap().contains("node_wallet"));
        assert_eq!(r.code, 2);
    }

    #[test]
    fn configuration_errors_exit_2() {
        let config = anyhow::Error::new(ConfigError {
            file: None,
            issues: vec![crate::config::ConfigIssue::new("claim.max_fee", "bad")],
        });
        let http = anyhow::Error::new(ChainError::Http {
            endpoint: "http://host/nope".into(),
            status: 404,
            body: String::new(),
        })
        .context("cannot connect to the chain");
        let no_escrow = anyhow::Error::new(ClientError::NoContract {
            escrow: springmail_sdk::Address::ZERO,
            chain_id: 8890,
        });
        for err in [config, http, no_escrow, rpc(401, "x"), rpc(-19, "x")] {
            let r = report(&err);
            assert_eq!(r.code, 2, "{}", r.line);
            assert!(r.hint.is_some(), "{}", r.line);
        }
    }

    #[test]
    fn failures_as_json_are_one_object() {
        let r = report(&input_error("bad thing", "do this"));
        let v = r.to_json();
        assert_eq!(v["ok"], false);
        assert_eq!(v["error"]["kind"], "input");
        assert_eq!(v["error"]["message"], "bad thing");
        assert_eq!(v["error"]["hint"], "do this");
        assert_eq!(v["error"]["exit_code"], 2);
    }

    #[test]
    fn multi_line_messages_become_one_line() {
        let err = anyhow::anyhow!("first\nsecond\r\n third");
        assert_eq!(report(&err).line, "first second third");
    }
}
