//! Claim links: `ClaimLink::parse` never panics, and whatever it accepts
//! re-encodes to a link that parses back to the same value.
//!
//! Shared by the cargo-fuzz binary (`fuzz_targets/link.rs`) and the corpus replay test
//! that `cargo test` runs on stable.

use springmail_sdk::link::ClaimLink;

/// One fuzz input: panics on a violated property.
pub fn run(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(link) = ClaimLink::parse(text) {
        let bare = link.to_bare();
        assert_eq!(ClaimLink::parse(&bare).expect("bare form parses"), link);
        let url = link.to_url("claim.example");
        assert_eq!(ClaimLink::parse(&url).expect("URL form parses"), link);
    }
    // The payload decoder on raw bytes as well.
    if let Ok(link) = ClaimLink::from_payload(data) {
        assert_eq!(&link.to_payload()[..], data);
    }
}
