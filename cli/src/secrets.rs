//! Your key and its password: from the environment, the keystore, or a prompt.
//! Nothing here prints or logs a secret.

use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;

use anyhow::Context;
use springmail_sdk::keys::ClaimSecret;
use springmail_sdk::keystore::{self, KdfParams, KeystoreFile};
use springmail_sdk::qtum;
use zeroize::Zeroizing;

use crate::report::input_error;

/// A private key given in the environment instead of a keystore (hex or WIF).
pub const PRIVATE_KEY_ENV: &str = springmail_sdk::env::PRIVATE_KEY;

/// Parses a private key: `0x` + 64 hex digits, 64 hex digits, or WIF.
pub fn parse_private_key(text: &str) -> anyhow::Result<ClaimSecret> {
    let t = text.trim();
    let hex_digits = t
        .strip_prefix("0x")
        .or_else(|| t.strip_prefix("0X"))
        .unwrap_or(t);
    if hex_digits.len() == 64 && hex_digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        let mut bytes = Zeroizing::new([0u8; 32]);
        hex::decode_to_slice(hex_digits, &mut bytes[..]).expect("checked hex");
        return ClaimSecret::from_bytes(*bytes).map_err(|_| {
            input_error(
                "the private key is not a valid secp256k1 key",
                "check that it was copied whole",
            )
        });
    }
    // All hex digits (or a 0x prefix) is a hex key of the wrong length, not a WIF:
    // say so rather than report base58 trouble. Only the count is shown, never the key.
    let prefixed = hex_digits.len() != t.len();
    if !hex_digits.is_empty() && (prefixed || hex_digits.bytes().all(|b| b.is_ascii_hexdigit())) {
        let n = hex_digits.chars().count();
        let what = if hex_digits.bytes().all(|b| b.is_ascii_hexdigit()) {
            format!("the private key looks like a hex key of {n} digits, but 64 are needed")
        } else {
            format!(
                "the private key starts with 0x but is not 64 hex digits ({n} characters follow)"
            )
        };
        return Err(input_error(
            what,
            "copy the whole key: 0x followed by 64 hex digits (or a WIF key c…/K…/L…)",
        ));
    }
    Ok(qtum::decode_wif(t)?.secret)
}

/// Reads a password: `SPRINGMAIL_PASSWORD`, else a prompt on the terminal (no echo).
pub fn password(prompt: &str) -> anyhow::Result<Zeroizing<String>> {
    if let Some(p) = keystore::password_from_env() {
        return Ok(p);
    }
    prompt_hidden(prompt)
}

/// A new password: `SPRINGMAIL_PASSWORD`, else asked twice on the terminal.
pub fn new_password() -> anyhow::Result<Zeroizing<String>> {
    if let Some(p) = keystore::password_from_env() {
        return Ok(p);
    }
    let first = prompt_hidden("New keystore password: ")?;
    if first.is_empty() {
        return Err(input_error(
            "the password is empty",
            "choose a password (or set SPRINGMAIL_PASSWORD)",
        ));
    }
    let second = prompt_hidden("Repeat the password: ")?;
    if *first != *second {
        return Err(input_error(
            "the two passwords differ",
            "type the same password twice",
        ));
    }
    Ok(first)
}

/// Asks on the terminal with echo off (`stty -echo`). Refuses when stdin is not a terminal.
pub fn prompt_hidden(prompt: &str) -> anyhow::Result<Zeroizing<String>> {
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        return Err(input_error(
            format!(
                "a password is needed but {} is not set and there is no terminal to ask on",
                keystore::PASSWORD_ENV
            ),
            format!("set {} (or run this in a terminal)", keystore::PASSWORD_ENV),
        ));
    }
    eprint!("{prompt}");
    std::io::stderr().flush().ok();
    let echo_off = std::process::Command::new("stty")
        .arg("-echo")
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    let mut line = Zeroizing::new(String::new());
    let read = stdin.lock().read_line(&mut line);
    if echo_off {
        let _ = std::process::Command::new("stty").arg("echo").status();
    }
    eprintln!();
    read.context("cannot read the password")?;
    let trimmed = Zeroizing::new(line.trim_end_matches(['\n', '\r']).to_string());
    Ok(trimmed)
}

/// Reads a secret line (a private key) from the terminal without echo.
pub fn prompt_key() -> anyhow::Result<ClaimSecret> {
    let text = prompt_hidden("Private key (0x-hex or WIF): ")?;
    parse_private_key(&text)
}

/// Your signing key: `SPRINGMAIL_PRIVATE_KEY`, else the keystore (password from
/// `SPRINGMAIL_PASSWORD` or a prompt).
pub fn signing_key(keystore_path: &Path) -> anyhow::Result<ClaimSecret> {
    if let Some(text) = springmail_sdk::env::var(PRIVATE_KEY_ENV).filter(|v| !v.trim().is_empty()) {
        return parse_private_key(&text)
            .with_context(|| format!("{PRIVATE_KEY_ENV} is not a private key"));
    }
    unlock(keystore_path)
}

/// Whether a key is available without asking (env key, or a keystore file exists).
pub fn key_available(keystore_path: &Path) -> bool {
    springmail_sdk::env::var(PRIVATE_KEY_ENV).is_some_and(|v| !v.trim().is_empty())
        || keystore_path.is_file()
}

/// Opens the keystore at `path`.
pub fn unlock(path: &Path) -> anyhow::Result<ClaimSecret> {
    let file = KeystoreFile::load(path)?;
    let pw = password(&format!("Password for {}: ", path.display()))?;
    let secret = file
        .decrypt(pw.as_bytes())
        .with_context(|| format!("cannot open keystore {}", path.display()))?;
    Ok(secret)
}

/// Seals a key into a new keystore file.
pub fn save_new(
    secret: &ClaimSecret,
    path: &Path,
    password: &str,
    params: KdfParams,
) -> anyhow::Result<()> {
    let file = KeystoreFile::encrypt(secret, password.as_bytes(), params)?;
    file.save_new(path)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_short_hex_key_is_called_a_hex_key_not_a_bad_wif() {
        let key = "4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f36231"; // 63
        for text in [key.to_string(), format!("0x{key}")] {
            let err = parse_private_key(&text).unwrap_err();
            let r = crate::report::report(&err);
            assert!(
                r.line.contains("hex key of 63 digits") && r.line.contains("64"),
                "{}",
                r.line
            );
            assert!(!r.line.to_lowercase().contains("base58"), "{}", r.line);
            assert!(!r.line.contains(key), "the key leaked: {}", r.line);
            assert_eq!(r.code, 2);
        }
        // A whole hex key still parses.
        assert!(parse_private_key(&format!("{key}7")).is_ok());
    }

    #[test]
    fn private_keys_in_every_form() {
        let hex_key = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";
        let k = parse_private_key(hex_key).unwrap();
        assert_eq!(
            k.address().to_string().to_lowercase(),
            "0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266"
        );
        assert_eq!(parse_private_key(&hex_key[2..]).unwrap(), k);
        let wif = qtum::encode_wif(&k, qtum::QtumNetwork::Regtest, true);
        assert_eq!(parse_private_key(&wif).unwrap(), k);
        assert!(parse_private_key("0x1234").is_err());
    }
}
