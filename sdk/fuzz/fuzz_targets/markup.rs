//! cargo-fuzz entry point: the property lives in `targets/markup.rs`.
#![no_main]

#[path = "../targets/markup.rs"]
mod markup;

libfuzzer_sys::fuzz_target!(|data: &[u8]| markup::run(data));
