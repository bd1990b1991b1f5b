//! End-to-end test support: the dev stack's addresses (from `.dev-stack/env`, sourced
//! by `scripts/test`), mail over real SMTP and IMAP, funded keys on anvil.
//!
//! Tests that need the stack are `#[ignore = "needs the dev stack …"]` and run with
//! `scripts/test` (which passes `--include-ignored`).

use std::sync::Arc;
use std::time::Duration;

use alloy::primitives::{Address, U256};
use alloy::providers::Provider;
use anyhow::{anyhow, Context, Result};
use futures::TryStreamExt;
use springmail_sdk::chain::evm_rpc::EvmRpcChain;
use springmail_sdk::chain::Chain;
use springmail_sdk::keys::ClaimSecret;

pub mod page;
pub mod qtum;
pub mod watcher;

/// The reason ignored tests give.
pub const NEEDS_STACK: &str = "needs the dev stack (dovecot, SMTP, anvil): run scripts/test";

/// Where the dev stack listens.
#[derive(Debug, Clone)]
pub struct Stack {
    /// anvil's JSON-RPC URL.
    pub anvil_url: String,
    /// The chain id anvil runs with.
    pub chain_id: u64,
    /// IMAP host.
    pub imap_host: String,
    /// IMAP port.
    pub imap_port: u16,
    /// SMTP host.
    pub smtp_host: String,
    /// SMTP port.
    pub smtp_port: u16,
    /// Every user's password.
    pub password: String,
    /// `scripts/dev-stack` (for restarts), if known.
    pub dev_stack_cmd: Option<String>,
}

fn var(name: &str) -> Result<String> {
    std::env::var(name)
        .with_context(|| format!("{name} is not set: run the tests through scripts/test"))
}

impl Stack {
    /// Reads the stack's environment.
    pub fn from_env() -> Result<Self> {
        Ok(Stack {
            anvil_url: var("SPRINGMAIL_ANVIL_URL")?,
            chain_id: std::env::var("SPRINGMAIL_CHAIN_ID")
                .ok()
                .and_then(|c| c.parse().ok())
                .unwrap_or(springmail_sdk::protocol::REGTEST_CHAIN_ID),
            imap_host: var("SPRINGMAIL_IMAP_HOST")?,
            imap_port: var("SPRINGMAIL_IMAP_PORT")?.parse()?,
            smtp_host: var("SPRINGMAIL_SMTP_HOST")?,
            smtp_port: var("SPRINGMAIL_SMTP_PORT")?.parse()?,
            password: var("SPRINGMAIL_MAIL_PASSWORD")?,
            dev_stack_cmd: std::env::var("SPRINGMAIL_DEV_STACK_CMD").ok(),
        })
    }

    /// A fresh key with `wei` native balance on anvil (`anvil_setBalance`), as a chain handle.
    pub async fn funded_chain(&self, wei: u128) -> Result<(ClaimSecret, Arc<dyn Chain>)> {
        let key = ClaimSecret::random();
        let provider =
            alloy::providers::ProviderBuilder::new().connect_http(self.anvil_url.parse()?);
        let _: serde_json::Value = provider
            .raw_request(
                "anvil_setBalance".into(),
                (key.address(), format!("0x{:x}", U256::from(wei))),
            )
            .await
            .context("anvil_setBalance")?;
        let chain = EvmRpcChain::connect(&self.anvil_url, key.signer(), Some(self.chain_id))
            .await
            .map_err(|e| anyhow!("connecting to anvil: {e}"))?;
        Ok((key, Arc::new(chain)))
    }

    /// Sends raw bytes over SMTP (no TLS: loopback dev server).
    pub async fn smtp_send(&self, from: &str, to: &str, bytes: &[u8]) -> Result<()> {
        use lettre::AsyncTransport;
        let transport = lettre::AsyncSmtpTransport::<lettre::Tokio1Executor>::builder_dangerous(
            &self.smtp_host,
        )
        .port(self.smtp_port)
        .timeout(Some(Duration::from_secs(60)))
        .build();
        let envelope = lettre::address::Envelope::new(Some(from.parse()?), vec![to.parse()?])?;
        transport
            .send_raw(&envelope, bytes)
            .await
            .context("SMTP send")?;
        Ok(())
    }

    async fn imap(&self, user: &str) -> Result<async_imap::Session<tokio::net::TcpStream>> {
        let tcp = tokio::net::TcpStream::connect((self.imap_host.as_str(), self.imap_port)).await?;
        let mut client = async_imap::Client::new(tcp);
        client
            .read_response()
            .await?
            .ok_or_else(|| anyhow!("no IMAP greeting"))?;
        client
            .login(user, &self.password)
            .await
            .map_err(|(e, _)| anyhow!("IMAP login {user}: {e}"))
    }

    /// Every message in `user`'s `folder` (missing folder = none).
    pub async fn mailbox(&self, user: &str, folder: &str) -> Result<Vec<Vec<u8>>> {
        let mut s = self.imap(user).await?;
        if s.select(folder).await.is_err() {
            return Ok(Vec::new());
        }
        let msgs: Vec<_> = s
            .fetch("1:*", "BODY.PEEK[]")
            .await?
            .try_collect()
            .await
            .unwrap_or_default();
        let out = msgs
            .iter()
            .filter_map(|m| m.body().map(|b| b.to_vec()))
            .collect();
        let _ = s.logout().await;
        Ok(out)
    }

    /// Moves everything in `user`'s INBOX to `Leftovers` (earlier runs' mail).
    pub async fn clear_inbox(&self, user: &str) -> Result<()> {
        let mut s = self.imap(user).await?;
        let mbox = s.select("INBOX").await?;
        if mbox.exists > 0 {
            let _ = s.create("Leftovers").await;
            s.mv("1:*", "Leftovers").await?;
        }
        let _ = s.logout().await;
        Ok(())
    }

    /// The message in `user`'s INBOX that answers `message_id` (its In-Reply-To), if any.
    pub async fn reply_to(&self, user: &str, message_id: &str) -> Result<Option<Vec<u8>>> {
        for raw in self.mailbox(user, "INBOX").await? {
            let parsed = mail_parser::MessageParser::default().parse(&raw);
            let irt = parsed
                .as_ref()
                .and_then(|m| m.in_reply_to().as_text().map(|s| s.to_string()));
            if irt.as_deref() == Some(message_id) {
                return Ok(Some(raw));
            }
        }
        Ok(None)
    }

    /// Runs `scripts/dev-stack ARGS`.
    pub fn dev_stack(&self, args: &[&str]) -> Result<()> {
        let cmd = self
            .dev_stack_cmd
            .clone()
            .ok_or_else(|| anyhow!("SPRINGMAIL_DEV_STACK_CMD is not set"))?;
        let status = std::process::Command::new(&cmd).args(args).status()?;
        if !status.success() {
            return Err(anyhow!("{cmd} {args:?} failed: {status}"));
        }
        Ok(())
    }
}

/// A random address (a payee wallet nobody uses).
pub fn fresh_address() -> Address {
    ClaimSecret::random().address()
}
