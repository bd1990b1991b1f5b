#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

pub mod amount;
pub mod email;
pub mod keys;
pub mod link;
pub mod markup;
pub mod qtum;

pub use alloy::primitives::{Address, B256, U256};
