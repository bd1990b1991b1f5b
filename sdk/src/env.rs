//! Every environment variable Spring Mail reads, and the one place that reads them.
//!
//! The CLI's flags name theirs here too (clap reads those), and the watcher's config
//! file names variables of its own choosing (`password_env = "…"`), read through
//! [`var`] as well. Tests and benchmarks read their own variables.

use std::ffi::OsString;

/// The config file (`--config`).
pub const CONFIG: &str = "SPRINGMAIL_CONFIG";
/// `[chain] backend` (`--backend`).
pub const BACKEND: &str = "SPRINGMAIL_BACKEND";
/// `[chain] url` (`--rpc`).
pub const RPC_URL: &str = "SPRINGMAIL_RPC_URL";
/// `[chain] chain_id` (`--chain-id`).
pub const CHAIN_ID: &str = "SPRINGMAIL_CHAIN_ID";
/// `[chain] escrow` (`--escrow`).
pub const ESCROW: &str = "SPRINGMAIL_ESCROW";
/// `[wallet] keystore` (`--keystore`).
pub const KEYSTORE: &str = "SPRINGMAIL_KEYSTORE";
/// `[chain] rpc_user`.
pub const QTUM_RPC_USER: &str = "SPRINGMAIL_QTUM_RPC_USER";
/// qtumd's RPC password: the default of `[chain] rpc_password_env`.
pub const QTUM_RPC_PASSWORD: &str = "SPRINGMAIL_QTUM_RPC_PASSWORD";
/// `[chain] sender`.
pub const QTUM_SENDER: &str = "SPRINGMAIL_QTUM_SENDER";
/// `[chain] signer`.
pub const QTUM_SIGNER: &str = "SPRINGMAIL_QTUM_SIGNER";
/// `[mail] address`.
pub const EMAIL: &str = "SPRINGMAIL_EMAIL";
/// `[mail] smtp_url`.
pub const SMTP_URL: &str = "SPRINGMAIL_SMTP_URL";
/// `[mail] smtp_user`.
pub const SMTP_USER: &str = "SPRINGMAIL_SMTP_USER";
/// The CLI's SMTP password.
pub const SMTP_PASSWORD: &str = "SPRINGMAIL_SMTP_PASSWORD";
/// `[watcher] address`.
pub const WATCHER: &str = "SPRINGMAIL_WATCHER";
/// `[watcher] email`.
pub const WATCHER_EMAIL: &str = "SPRINGMAIL_WATCHER_EMAIL";
/// A keystore's password (also the default of the watcher's `[watcher_key] password_env`).
pub const PASSWORD: &str = "SPRINGMAIL_PASSWORD";
/// Your signing key as hex or WIF, in place of the keystore.
pub const PRIVATE_KEY: &str = "SPRINGMAIL_PRIVATE_KEY";
/// A simulated crash point of `springmail watch` (crash tests only).
pub const CRASH_AT: &str = "SPRINGMAIL_CRASH_AT";

/// Every `SPRINGMAIL_*` variable above, for documentation checks.
pub const ALL: &[&str] = &[
    CONFIG,
    BACKEND,
    RPC_URL,
    CHAIN_ID,
    ESCROW,
    KEYSTORE,
    QTUM_RPC_USER,
    QTUM_RPC_PASSWORD,
    QTUM_SENDER,
    QTUM_SIGNER,
    EMAIL,
    SMTP_URL,
    SMTP_USER,
    SMTP_PASSWORD,
    WATCHER,
    WATCHER_EMAIL,
    PASSWORD,
    PRIVATE_KEY,
    CRASH_AT,
];

/// A variable's value; unset, empty and non-UTF-8 are all `None` (an empty variable
/// never overrides a configured value).
pub fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// A path-like variable (`HOME`, `XDG_*`), unset or empty as `None`.
pub fn var_os(name: &str) -> Option<OsString> {
    std::env::var_os(name).filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_variable_is_documented_and_listed_once() {
        let docs = ["CLI.md", "OPERATIONS.md", "RELIABILITY.md"]
            .iter()
            .map(|f| {
                let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/").to_string() + f;
                std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
            })
            .collect::<String>();
        for name in ALL {
            assert!(name.starts_with("SPRINGMAIL_"), "{name}");
            assert!(docs.contains(name), "{name} is not in docs/");
            assert_eq!(ALL.iter().filter(|n| *n == name).count(), 1, "{name}");
        }
    }
}
