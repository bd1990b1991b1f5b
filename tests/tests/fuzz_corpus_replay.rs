//! Every committed input of `watcher/fuzz/corpus/verify_pipeline/` through the fuzz
//! target's property (`watcher/fuzz/targets/verify_pipeline.rs`, included by path), on
//! stable and in `cargo test`: raw mail through DKIM, MIME, the CLAIM block and the chain
//! checks against the corpus world. Nothing panics, and nothing but Bob's own, correctly
//! signed claim for his deposit is ever accepted.

#[path = "../../watcher/fuzz/targets/verify_pipeline.rs"]
mod verify_pipeline;

use std::path::Path;

#[test]
fn verify_pipeline_corpus_replays_clean() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../watcher/fuzz/corpus/verify_pipeline");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("a directory entry").path())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no corpus in {}", dir.display());
    let mut failed = Vec::new();
    for file in &files {
        let data = std::fs::read(file).expect("a corpus file");
        if std::panic::catch_unwind(|| verify_pipeline::run(&data)).is_err() {
            failed.push(file.display().to_string());
        }
    }
    assert!(
        failed.is_empty(),
        "{} of {} corpus inputs broke the property: {failed:?}",
        failed.len(),
        files.len()
    );
    eprintln!("verify_pipeline: {} corpus inputs replayed", files.len());
}
