#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

pub mod accounts;
pub mod amount;
pub mod chain;
pub mod client;
pub mod config;
pub mod contract;
pub mod date;
pub mod deposit;
pub mod eip712;
pub mod email;
pub mod env;
pub mod keys;
pub mod keystore;
pub mod link;
pub mod mail;
pub mod markup;
pub mod protocol;
pub mod qtum;

pub use alloy::primitives::{Address, B256, U256};
/// The local signer [`keys::ClaimSecret::signer`] returns, for
/// [`chain::evm_rpc::EvmRpcChain::connect`].
pub use alloy::signers::local::PrivateKeySigner;
