//! cargo-fuzz entry point: the property lives in `targets/link.rs`.
#![no_main]

#[path = "../targets/link.rs"]
mod link;

libfuzzer_sys::fuzz_target!(|data: &[u8]| link::run(data));
