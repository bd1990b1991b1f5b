//! cargo-fuzz entry point: the property lives in `targets/verify_pipeline.rs`.
#![no_main]

#[path = "../targets/verify_pipeline.rs"]
mod verify_pipeline;

libfuzzer_sys::fuzz_target!(|data: &[u8]| verify_pipeline::run(data));
