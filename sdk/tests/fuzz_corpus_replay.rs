//! Every committed fuzz input of `sdk/fuzz/corpus/` through its target's property, on
//! stable and in `cargo test`: the claim link, BiSMTP markup, mailbox orders and small text parsers.
//! The properties are the fuzz targets' own (`sdk/fuzz/targets/`), included by path,
//! so a regression that the fuzzers once found fails here without a nightly toolchain.

#[path = "../fuzz/targets/broker.rs"]
mod broker;
#[path = "../fuzz/targets/link.rs"]
mod link;
#[path = "../fuzz/targets/markup.rs"]
mod markup;
#[path = "../fuzz/targets/orders.rs"]
mod orders;
#[path = "../fuzz/targets/text.rs"]
mod text;

use std::path::Path;

/// Runs `run` on every file of `sdk/fuzz/corpus/<target>/`; names each failing input.
fn replay(target: &str, run: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("a directory entry").path())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no corpus in {}", dir.display());
    let mut failed = Vec::new();
    for file in &files {
        let data = std::fs::read(file).expect("a corpus file");
        if std::panic::catch_unwind(|| run(&data)).is_err() {
            failed.push(file.display().to_string());
        }
    }
    assert!(
        failed.is_empty(),
        "{target}: {} of {} corpus inputs broke the property: {failed:?}",
        failed.len(),
        files.len()
    );
    eprintln!("{target}: {} corpus inputs replayed", files.len());
}

#[test]
fn claim_link_corpus_replays_clean() {
    replay("link", link::run);
}

#[test]
fn markup_corpus_replays_clean() {
    replay("markup", markup::run);
}

#[test]
fn text_parser_corpus_replays_clean() {
    replay("text", text::run);
}

#[test]
fn order_corpus_replays_clean() {
    replay("orders", orders::run);
}

#[test]
fn broker_block_corpus_replays_clean() {
    replay("broker", broker::run);
}
