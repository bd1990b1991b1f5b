//! Mailbox orders: `find_order` never panics on any subject and body; CRLF bodies
//! read as LF ones do; an order read renders to its human and block forms, and each
//! reads back to the same order. The input's first line is the subject, the rest the body.
//!
//! Shared by the cargo-fuzz binary (`fuzz_targets/orders.rs`) and the corpus replay test
//! that `cargo test` runs on stable.

use springmail_sdk::amount::Asset;
use springmail_sdk::markup::orders::find_order;

/// One fuzz input: panics on a violated property.
pub fn run(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (subject, body) = text.split_once('\n').unwrap_or((text, ""));
    let tokens = [Asset::new("TOKEN", 2).expect("a valid asset")];
    let found = find_order(Some(subject), body, 8890, &tokens);
    if !body.contains('\r') {
        let crlf = body.replace('\n', "\r\n");
        assert_eq!(find_order(Some(subject), &crlf, 8890, &tokens), found);
    }
    let Ok(Some(found)) = found else {
        return;
    };
    let human = find_order(Some(&found.order.human()), "", 8890, &tokens)
        .expect("the human form reads")
        .expect("the human form is an order");
    assert_eq!(human.order, found.order);
    if let Some(block) = found.order.render_block() {
        let again = find_order(None, &block, 8890, &tokens)
            .expect("the block form reads")
            .expect("the block form is an order");
        assert_eq!(again.order, found.order);
    }
}
