//! BiSMTP markup: `ClaimBlock::parse` and `find_all_armor` never panic, and a parsed
//! block renders to text that parses back to the same block (LF and CRLF).
//!
//! Shared by the cargo-fuzz binary (`fuzz_targets/markup.rs`) and the corpus replay test
//! that `cargo test` runs on stable.

use springmail_sdk::markup::{find_all_armor, ClaimBlock};

/// One fuzz input: panics on a violated property.
pub fn run(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = find_all_armor(text);
    if let Ok(block) = ClaimBlock::parse(text) {
        let rendered = block.render();
        assert_eq!(
            ClaimBlock::parse(&rendered).expect("rendered block parses"),
            block
        );
        let crlf = rendered.replace('\n', "\r\n");
        assert_eq!(ClaimBlock::parse(&crlf).expect("CRLF block parses"), block);
    }
}
