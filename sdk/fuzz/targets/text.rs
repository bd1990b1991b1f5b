//! The small text parsers: email normalization (idempotent, bounded), amounts
//! (print → parse round-trips), chain-aware addresses and WIF keys.
//!
//! Shared by the cargo-fuzz binary (`fuzz_targets/text.rs`) and the corpus replay test
//! that `cargo test` runs on stable.

use springmail_sdk::amount::{Amount, Asset};
use springmail_sdk::email::{normalize, MAX_EMAIL_BYTES};
use springmail_sdk::qtum::{decode_wif, format_address, parse_address};

/// One fuzz input: panics on a violated property.
pub fn run(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(normalized) = normalize(text) {
        assert!(normalized.len() <= MAX_EMAIL_BYTES);
        assert_eq!(
            normalize(&normalized).as_ref(),
            Ok(&normalized),
            "not idempotent"
        );
    }
    for asset in [Asset::qtum(), Asset::eth()] {
        if let Ok(amount) = Amount::parse(text, &asset) {
            assert_eq!(
                Amount::parse(&amount.to_string(), &asset).as_ref(),
                Ok(&amount)
            );
        }
    }
    for chain in [81, 8890, 1] {
        if let Ok(address) = parse_address(chain, text) {
            assert_eq!(
                parse_address(chain, &format_address(chain, address)),
                Ok(address)
            );
        }
    }
    let _ = decode_wif(text);
}
