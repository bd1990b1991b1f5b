//! The dev stack's qtumd (regtest, `-logevents`, a wallet with mature coins): funded
//! senders whose keys the node's wallet holds, and a miner, since regtest mines nothing
//! by itself and every client waits for its transactions.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use serde_json::{json, Value};
use springmail_sdk::chain::qtum::{QtumChain, QtumConfig};

/// Where the dev stack's qtumd listens (`SPRINGMAIL_QTUM_*` in `.dev-stack/env`).
#[derive(Debug, Clone)]
pub struct QtumNode {
    /// JSON-RPC URL, no wallet path.
    pub url: String,
    /// `-rpcuser`.
    pub user: String,
    /// `-rpcpassword`.
    pub password: String,
    /// The wallet holding the mature coins and every sender made here.
    pub wallet: String,
    /// A legacy address of that wallet that blocks are mined to.
    pub miner: String,
}

fn var(name: &str) -> Result<String> {
    std::env::var(name)
        .with_context(|| format!("{name} is not set: run the tests through scripts/test"))
}

impl QtumNode {
    /// Reads the stack's environment.
    pub fn from_env() -> Result<Self> {
        Ok(QtumNode {
            url: var("SPRINGMAIL_QTUM_URL")?,
            user: var("SPRINGMAIL_QTUM_RPC_USER")?,
            password: var("SPRINGMAIL_QTUM_RPC_PASSWORD")?,
            wallet: var("SPRINGMAIL_QTUM_WALLET")?,
            miner: var("SPRINGMAIL_QTUM_MINER")?,
        })
    }

    /// A chain handle sending from `sender` (an address of the node's wallet).
    pub async fn chain(&self, sender: &str) -> Result<QtumChain> {
        let cfg = QtumConfig::new(&self.url, &self.user, &self.password, sender)
            .wallet(&self.wallet)
            .expect_chain_id(springmail_sdk::protocol::REGTEST_CHAIN_ID);
        QtumChain::connect(cfg)
            .await
            .map_err(|e| anyhow!("connecting to qtumd: {e}"))
    }

    /// A fresh legacy address of the node's wallet holding `qtum` QTUM (mined in).
    pub async fn funded_sender(&self, qtum: u64) -> Result<(String, Arc<QtumChain>)> {
        let miner = self.chain(&self.miner).await?;
        let addr = miner
            .wallet_rpc("getnewaddress", vec![json!(""), json!("legacy")])
            .await
            .map_err(|e| anyhow!("getnewaddress: {e}"))?;
        let addr = addr
            .as_str()
            .context("getnewaddress gave no string")?
            .to_string();
        miner
            .wallet_rpc("sendtoaddress", vec![json!(addr), json!(qtum)])
            .await
            .map_err(|e| anyhow!("sendtoaddress: {e}"))?;
        self.mine(1).await?;
        Ok((addr.clone(), Arc::new(self.chain(&addr).await?)))
    }

    /// A chain handle signing locally with `key` (`signer = "local"`), whose Qtum address
    /// the node's wallet first pays `qtum` QTUM (mined in). The node's wallet never holds
    /// the key.
    pub async fn funded_local(
        &self,
        key: &springmail_sdk::keys::ClaimSecret,
        qtum: u64,
    ) -> Result<Arc<QtumChain>> {
        let addr = springmail_sdk::qtum::qtum_address_of_secret(
            key,
            springmail_sdk::qtum::QtumNetwork::Regtest,
        );
        let miner = self.chain(&self.miner).await?;
        miner
            .wallet_rpc("sendtoaddress", vec![json!(addr), json!(qtum)])
            .await
            .map_err(|e| anyhow!("sendtoaddress: {e}"))?;
        self.mine(1).await?;
        let cfg = QtumConfig::new(&self.url, &self.user, &self.password, "")
            .local_key(key.clone())
            .expect_chain_id(springmail_sdk::protocol::REGTEST_CHAIN_ID);
        let chain = QtumChain::connect(cfg)
            .await
            .map_err(|e| anyhow!("connecting to qtumd with a local key: {e}"))?;
        Ok(Arc::new(chain))
    }

    /// Mines `n` blocks to the miner address.
    pub async fn mine(&self, n: u32) -> Result<()> {
        let c = self.chain(&self.miner).await?;
        c.rpc("generatetoaddress", vec![json!(n), json!(self.miner)])
            .await
            .map_err(|e| anyhow!("generatetoaddress: {e}"))?;
        Ok(())
    }

    /// A legacy address that no loaded wallet holds: made in a scratch wallet that is
    /// then unloaded.
    pub async fn outside_address(&self) -> Result<String> {
        let c = self.chain(&self.miner).await?;
        let name = format!("scratch-{}", rand::random::<u64>());
        c.rpc("createwallet", vec![json!(name)])
            .await
            .map_err(|e| anyhow!("createwallet: {e}"))?;
        let scratch = QtumChain::connect(
            QtumConfig::new(&self.url, &self.user, &self.password, &self.miner)
                .wallet(&name)
                .expect_chain_id(springmail_sdk::protocol::REGTEST_CHAIN_ID),
        )
        .await
        .map_err(|e| anyhow!("{e}"))?;
        let addr = scratch
            .wallet_rpc("getnewaddress", vec![json!(""), json!("legacy")])
            .await
            .map_err(|e| anyhow!("getnewaddress: {e}"))?;
        c.rpc("unloadwallet", vec![json!(name)])
            .await
            .map_err(|e| anyhow!("unloadwallet: {e}"))?;
        Ok(addr.as_str().context("address")?.to_string())
    }

    /// The balance of any address in satoshi, from the node's address index.
    pub async fn address_balance(&self, addr: &str) -> Result<u64> {
        let c = self.chain(&self.miner).await?;
        let v: Value = c
            .rpc("getaddressbalance", vec![json!({ "addresses": [addr] })])
            .await
            .map_err(|e| anyhow!("getaddressbalance: {e}"))?;
        v["balance"].as_u64().context("balance in satoshi")
    }

    /// Mines a block every 250 ms until the returned guard is dropped.
    pub fn miner(&self) -> Miner {
        let node = self.clone();
        let task = tokio::spawn(async move {
            loop {
                let _ = node.mine(1).await;
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        });
        Miner { task }
    }
}

/// Stops mining when dropped.
pub struct Miner {
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Miner {
    fn drop(&mut self) {
        self.task.abort();
    }
}
