//! Connecting to the configured chain, and reading what a command needs from it.

use std::sync::Arc;

use alloy::sol_types::SolCall;
use anyhow::Context;
use springmail_sdk::amount::Asset;
use springmail_sdk::chain::{CallResult, Chain};
use springmail_sdk::client::SpringMail;
use springmail_sdk::keys::ClaimSecret;
use springmail_sdk::Address;

use crate::config::{Backend, QtumSignerKind, Settings};
use crate::report::input_error;

/// Connects to the configured node. `key` signs transactions on `evm-rpc` and on `qtum`
/// with `[chain] signer = "local"` (a throwaway key is used for read-only work when
/// `None`); with the node signer the node's wallet signs for `[chain] sender`.
/// `chain_id` (e.g. a link's) must match the node and the config.
pub async fn connect(
    settings: &Settings,
    key: Option<&ClaimSecret>,
    chain_id: Option<u64>,
) -> anyhow::Result<Arc<dyn Chain>> {
    let chain = &settings.chain;
    if let (Some(a), Some(b)) = (chain.chain_id, chain_id) {
        if a != b {
            return Err(input_error(
                format!("the claim link is for chain {b}, but the configuration says chain {a}"),
                "point --rpc and --chain-id at the chain the link was made on",
            ));
        }
    }
    let what = match chain.backend {
        Backend::Embedded => return Err(input_error(
            "the embedded chain lives inside one springmail process only, so nothing sent on it would last",
            "use `springmail demo` to see it, or set [chain] backend = \"evm-rpc\" or \"qtum\" with a url",
        )),
        Backend::Qtum if chain.signer == QtumSignerKind::Node && chain.sender.is_none() => {
            return Err(input_error(
                "the qtum backend needs your sender address ([chain] sender or SPRINGMAIL_QTUM_SENDER)",
                "use an address whose key is in the node's wallet (qtum-cli getnewaddress), or let your keystore key sign with [chain] signer = \"local\" (qtumd with -addrindex; no node wallet needed)",
            ))
        }
        Backend::Qtum => "cannot connect to the Qtum node",
        Backend::EvmRpc => "cannot connect to the chain",
    };
    chain.connect(key, chain_id).await.context(what)
}

/// Connects to send transactions as you: with your key on `evm-rpc` and on `qtum` with
/// `[chain] signer = "local"` (`SPRINGMAIL_PRIVATE_KEY` or the keystore), through the
/// node's wallet on `qtum` otherwise (`[chain] sender`; no local key is needed).
pub async fn connect_signing(
    settings: &Settings,
    chain_id: Option<u64>,
) -> anyhow::Result<Arc<dyn Chain>> {
    if settings.chain.backend == Backend::Qtum && settings.chain.signer == QtumSignerKind::Node {
        return connect(settings, None, chain_id).await;
    }
    let key = crate::secrets::signing_key(&settings.keystore)?;
    connect(settings, Some(&key), chain_id).await
}

/// The configured escrow, or an error that says how to get one.
pub fn escrow(settings: &Settings) -> anyhow::Result<Address> {
    settings.chain.escrow.ok_or_else(|| {
        input_error(
            "no escrow contract is configured",
            "deploy one with `springmail deploy`, then set [chain] escrow in springmail.toml (or --escrow ADDR)",
        )
    })
}

/// Refuses a claim link whose escrow is not the configured one (`--escrow` or
/// `[chain] escrow`), as a chain-id mismatch is refused: the link must not silently win.
pub fn check_link_escrow(settings: &Settings, link_escrow: Address) -> anyhow::Result<()> {
    match settings.chain.escrow {
        Some(configured) if configured != link_escrow => Err(input_error(
            format!(
                "the claim link is for escrow {}, but the configuration says escrow {}",
                link_escrow.to_checksum(None),
                configured.to_checksum(None)
            ),
            "point --escrow and [chain] escrow at the escrow the link was made on, or leave them unset",
        )),
        _ => Ok(()),
    }
}

/// A client on the configured escrow.
/// Expiries count from the wall clock when the newest block is older (`--expires 45s`
/// means 45 s from now even when the chain's last block is minutes old).
pub fn client(settings: &Settings, chain: Arc<dyn Chain>, escrow: Address) -> SpringMail {
    SpringMail::new(chain, escrow)
        .with_start_block(settings.chain.start_block)
        .with_clock(wall_clock)
}

/// Unix seconds now.
pub fn wall_clock() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The asset of a deposit: the chain's coin, or a token's symbol and decimals read from it.
pub async fn asset_for(chain: &dyn Chain, token: Option<Address>) -> anyhow::Result<Asset> {
    let Some(token) = token.filter(|t| *t != Address::ZERO) else {
        return Ok(Asset::for_chain(chain.chain_id()));
    };
    alloy::sol! {
        function symbol() external view returns (string);
        function decimals() external view returns (uint8);
    }
    let not_token = || {
        input_error(
            format!("{token} does not answer symbol() and decimals() like a QRC20/ERC20 token"),
            "check the --token address",
        )
    };
    let symbol = match chain.call(token, symbolCall {}.abi_encode().into()).await? {
        CallResult::Success(out) => {
            symbolCall::abi_decode_returns(&out).map_err(|_| not_token())?
        }
        CallResult::Reverted(_) => return Err(not_token()),
    };
    let decimals = match chain
        .call(token, decimalsCall {}.abi_encode().into())
        .await?
    {
        CallResult::Success(out) => {
            decimalsCall::abi_decode_returns(&out).map_err(|_| not_token())?
        }
        CallResult::Reverted(_) => return Err(not_token()),
    };
    Asset::new(symbol.trim(), decimals).with_context(|| format!("token {token}"))
}

/// Prints an address in the one form that is spendable where it is used: base58 on a
/// qtumd node, `0x` on an EVM backend (anvil keeps Qtum's chain id, but a base58 form
/// there invites paying a key's Qtum address, which no key controls on that chain).
pub fn show(settings: &Settings, chain_id: u64, address: Address) -> String {
    match settings.chain.backend {
        Backend::Qtum => springmail_sdk::qtum::format_address(chain_id, address),
        Backend::EvmRpc | Backend::Embedded => address.to_checksum(None),
    }
}
