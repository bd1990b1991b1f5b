//! cargo-fuzz entry point: the property lives in `targets/broker.rs`.
#![no_main]

#[path = "../targets/broker.rs"]
mod broker;

libfuzzer_sys::fuzz_target!(|data: &[u8]| broker::run(data));
