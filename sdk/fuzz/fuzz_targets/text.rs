//! cargo-fuzz entry point: the property lives in `targets/text.rs`.
#![no_main]

#[path = "../targets/text.rs"]
mod text;

libfuzzer_sys::fuzz_target!(|data: &[u8]| text::run(data));
