//! Broker blocks: `find_broker_block` never panics on any text; CRLF reads as LF; a
//! block read renders to its canonical form, which reads back equal; checking a
//! registration's signature never panics.
//!
//! Shared by the cargo-fuzz binary (`fuzz_targets/broker.rs`) and the corpus replay test
//! that `cargo test` runs on stable.

use springmail_sdk::amount::Asset;
use springmail_sdk::markup::broker::{find_broker_block, BrokerBlock};

/// One fuzz input: panics on a violated property.
pub fn run(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let tokens = [Asset::new("TOKEN", 2).expect("a valid asset")];
    let found = find_broker_block(text, &tokens);
    if !text.contains('\r') {
        assert_eq!(
            find_broker_block(&text.replace('\n', "\r\n"), &tokens),
            found
        );
    }
    let Ok(Some(block)) = found else {
        return;
    };
    if let BrokerBlock::Register(r) = &block {
        let _ = r.registration.signed_by_owner(&r.signature);
    }
    let again = find_broker_block(&block.render(), &tokens)
        .expect("the rendered block reads")
        .expect("the rendered block is a broker block");
    assert_eq!(again, block);
}
