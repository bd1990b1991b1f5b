//! cargo-fuzz entry point: the property lives in `targets/orders.rs`.
#![no_main]

#[path = "../targets/orders.rs"]
mod orders;

libfuzzer_sys::fuzz_target!(|data: &[u8]| orders::run(data));
