//! qtumd's JSON-RPC as a [`Chain`]. Who signs is [`QtumSigner`]: the node's wallet
//! (`sendtocontract`/`createcontract` with a `sender`), or a local key
//! ([`QtumSigner::Local`]): transactions are built and signed in Rust
//! ([`super::qtum_tx`]) and sent with `sendrawtransaction`, so the node needs no wallet,
//! only `-addrindex` (the sender's coins come from `getaddressutxos`).
//!
//! | trait            | qtumd                                                                    |
//! |------------------|--------------------------------------------------------------------------|
//! | [`Chain::call`]  | `callcontract(contract, data, sender)`; `excepted != "None"` is a revert  |
//! | [`Chain::submit`]| node signer: `sendtocontract(contract, data, amount QTUM, gasLimit, gasPrice QTUM, sender)`, or `createcontract(code, gasLimit, gasPrice, sender)`; local signer: `getaddressutxos` + `getaddressmempool`, then `sendrawtransaction` |
//! | [`Chain::receipt`]| `gettransactionreceipt(txid)`: an array, `[]` until mined               |
//! | [`Chain::logs`]  | `searchlogs(from, to or -1, {"addresses"}, {"topics"})`: full receipts    |
//! | [`Chain::head`]  | `getblockchaininfo`: `blocks` and the tip's `time`                        |
//! | [`Chain::balance`]| `getaccountinfo` for a contract; for a P2PKH address the wallet's UTXOs (node signer) or `getaddressbalance` less immature coins (local signer) |
//!
//! Units: the EVM inside Qtum counts native value in satoshi (1 QTUM = 10^8), and so does
//! [`TxRequest::value`]; the RPCs take QTUM, so amounts are written as exact decimal
//! numbers (`1.5`, `0.00000040`) with integer arithmetic, never through a float.
//! Hex on the wire has no `0x`. Wallet RPCs go to `/wallet/<name>` when a wallet is named.
//!
//! What qtumd cannot give: revert data of a mined transaction (receipts carry only
//! `excepted` and the decoded `Error(string)` reason), and the balance of a P2PKH address
//! outside the node's wallet. See `docs/PROTOCOL-BACKENDS.md`.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use alloy::primitives::{Address, Bytes, Log, LogData, B256, U256};
use async_trait::async_trait;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;

use crate::amount::{self, QTUM_DECIMALS};

use super::qtum_tx::{self, ContractOp, ContractTx, OutPoint, TxSigner, Utxo};
use super::{
    CallResult, Chain, ChainError, ChainLog, Head, LogFilter, Receipt, TxRequest, TxStatus,
};

/// Satoshi per QTUM.
const COIN: u64 = 10u64.pow(QTUM_DECIMALS as u32);

/// The longest coinbase maturity of any Qtum network (regtest; 500 × 4 on main and test
/// after the block-time reduction): an output at least this many blocks below the tip is
/// spendable whatever made it, so the local signer asks `gettxout` only about younger ones.
pub const MAX_COINBASE_MATURITY: u64 = 2000;

/// How many young outputs the local signer checks with `gettxout` in one selection.
const YOUNG_UTXO_CHECKS: usize = 100;

/// Who signs the transactions a [`QtumChain`] sends.
#[derive(Clone, Default)]
pub enum QtumSigner {
    /// The node's wallet holds the sender's key (`sendtocontract`/`createcontract`).
    #[default]
    Node,
    /// A local secp256k1 key: the backend builds, signs and broadcasts raw transactions.
    /// The sender is the key's compressed-pubkey hash160; the node needs `-addrindex`.
    Local(crate::keys::ClaimSecret),
}

impl std::fmt::Debug for QtumSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            QtumSigner::Node => f.write_str("Node"),
            QtumSigner::Local(_) => f.write_str("Local(<key redacted>)"),
        }
    }
}

/// How to reach and use a qtumd node.
#[derive(Clone)]
pub struct QtumConfig {
    /// The RPC endpoint, e.g. `http://127.0.0.1:3889` (no wallet path).
    pub url: String,
    /// The wallet holding the sender's key; wallet calls go to `/wallet/<name>`.
    /// `None` sends them to `/`, which works only while the node has a single wallet loaded.
    pub wallet: Option<String>,
    /// `-rpcuser`.
    pub user: String,
    /// `-rpcpassword`. Never printed.
    pub password: String,
    /// The sender's base58 P2PKH address (`q…` on testnet/regtest, `Q…` on mainnet). With
    /// [`QtumSigner::Node`] its key must be in the wallet; contract transactions need a P2PKH
    /// sender. With [`QtumSigner::Local`] it may be empty (the key's address is used) and
    /// otherwise must be the key's address.
    pub sender: String,
    /// Who signs.
    pub signer: QtumSigner,
    /// Size fee of locally signed transactions, satoshi per 1000 bytes; raised to the
    /// node's `relayfee` when that is higher.
    pub fee_per_kvb: u64,
    /// The sender's hash160 (its EVM address, `msg.sender`). `None` asks the node
    /// (`gethexaddress`) at connect.
    pub sender_hex: Option<Address>,
    /// Gas price in satoshi per gas. The DGP minimum is 40.
    pub gas_price_sat: u64,
    /// Gas limit of a contract call when [`TxRequest::gas_limit`] is `None`.
    pub default_gas: u64,
    /// Gas limit of a contract creation when [`TxRequest::gas_limit`] is `None`
    /// (qtumd's own `createcontract` default).
    pub create_gas: u64,
    /// Confirmations a block needs before [`Chain::logs`] reports its logs: 0 reads up to the
    /// tip, 1 leaves the tip out, and so on.
    pub log_confirmations: u64,
    /// Refuse to connect to another chain (81 mainnet, 8889 testnet, 8890 regtest).
    pub expected_chain_id: Option<u64>,
    /// Timeout of one HTTP request.
    pub timeout: Duration,
}

impl QtumConfig {
    /// A configuration with the defaults: gas price 40 sat, call gas 250000, create gas
    /// 2500000, logs up to the tip, no wallet path, any chain, 60 s timeout.
    pub fn new(
        url: impl Into<String>,
        user: impl Into<String>,
        password: impl Into<String>,
        sender: impl Into<String>,
    ) -> Self {
        QtumConfig {
            url: url.into(),
            wallet: None,
            user: user.into(),
            password: password.into(),
            sender: sender.into(),
            signer: QtumSigner::Node,
            fee_per_kvb: qtum_tx::RELAY_FEE_PER_KVB,
            sender_hex: None,
            gas_price_sat: 40,
            default_gas: 250_000,
            create_gas: 2_500_000,
            log_confirmations: 0,
            expected_chain_id: None,
            timeout: Duration::from_secs(60),
        }
    }

    /// Sets the wallet name (`/wallet/<name>`).
    pub fn wallet(mut self, name: impl Into<String>) -> Self {
        self.wallet = Some(name.into());
        self
    }

    /// Signs locally with `key` instead of the node's wallet ([`QtumSigner::Local`]).
    pub fn local_key(mut self, key: crate::keys::ClaimSecret) -> Self {
        self.signer = QtumSigner::Local(key);
        self
    }

    /// Sets the chain id the node must be on.
    pub fn expect_chain_id(mut self, chain_id: u64) -> Self {
        self.expected_chain_id = Some(chain_id);
        self
    }
}

impl std::fmt::Debug for QtumConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QtumConfig")
            .field("url", &super::evm_rpc::redact_url(&self.url))
            .field("wallet", &self.wallet)
            .field("user", &self.user)
            .field("password", &"<redacted>")
            .field("sender", &self.sender)
            .field("signer", &self.signer)
            .field("fee_per_kvb", &self.fee_per_kvb)
            .field("sender_hex", &self.sender_hex)
            .field("gas_price_sat", &self.gas_price_sat)
            .field("default_gas", &self.default_gas)
            .field("create_gas", &self.create_gas)
            .field("log_confirmations", &self.log_confirmations)
            .field("expected_chain_id", &self.expected_chain_id)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// A connected qtumd node, sending from one wallet address.
#[derive(Clone)]
pub struct QtumChain {
    http: reqwest::Client,
    node_url: String,
    wallet_url: String,
    shown_url: String,
    user: String,
    password: String,
    sender: String,
    sender_hex: Address,
    chain_id: u64,
    network: String,
    gas_price_sat: u64,
    default_gas: u64,
    create_gas: u64,
    log_confirmations: u64,
    fee_per_kvb: u64,
    local: Option<Arc<LocalSigner>>,
    next_id: Arc<AtomicU64>,
}

/// The local key, and a lock so that two sends never pick the same coins.
struct LocalSigner {
    key: TxSigner,
    send_lock: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for QtumChain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QtumChain")
            .field("url", &self.shown_url)
            .field("network", &self.network)
            .field("chain_id", &self.chain_id)
            .field("sender", &self.sender)
            .field(
                "signer",
                &if self.local.is_some() {
                    "local"
                } else {
                    "node"
                },
            )
            .finish()
    }
}

/// The chain id of a qtumd network name (`getblockchaininfo.chain`).
pub fn chain_id_of_network(name: &str) -> Option<u64> {
    match name {
        "main" => Some(81),
        "test" => Some(8889),
        "regtest" => Some(8890),
        _ => None,
    }
}

impl QtumChain {
    /// Connects: reads the network (and so the chain id) with `getblockchaininfo`, checks it
    /// against `expected_chain_id`, and asks `gethexaddress` for the sender's hash160 when
    /// the config does not carry it.
    pub async fn connect(cfg: QtumConfig) -> Result<Self, ChainError> {
        if cfg.sender.trim().is_empty() && matches!(cfg.signer, QtumSigner::Node) {
            return Err(ChainError::Invalid(
                "qtum: the sender address is empty".into(),
            ));
        }
        if cfg.gas_price_sat == 0 {
            return Err(ChainError::Invalid(
                "qtum: the gas price must be at least 1 satoshi".into(),
            ));
        }
        let base = cfg.url.trim_end_matches('/').to_string();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(ChainError::Invalid(format!(
                "qtum: the node URL must start with http:// or https://, got {}",
                super::evm_rpc::redact_url(&base)
            )));
        }
        let wallet_url = match &cfg.wallet {
            Some(name) => format!("{base}/wallet/{}", crate::link::percent_encode(name)),
            None => format!("{base}/"),
        };
        let http = reqwest::Client::builder()
            .timeout(cfg.timeout)
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| ChainError::Invalid(format!("qtum: cannot build the HTTP client: {e}")))?;
        let mut chain = QtumChain {
            http,
            node_url: format!("{base}/"),
            wallet_url,
            shown_url: super::evm_rpc::redact_url(&base),
            user: cfg.user,
            password: cfg.password,
            sender: cfg.sender.trim().to_string(),
            sender_hex: Address::ZERO,
            chain_id: 0,
            network: String::new(),
            gas_price_sat: cfg.gas_price_sat,
            default_gas: cfg.default_gas,
            create_gas: cfg.create_gas,
            log_confirmations: cfg.log_confirmations,
            fee_per_kvb: cfg.fee_per_kvb,
            local: None,
            next_id: Arc::new(AtomicU64::new(1)),
        };

        #[derive(Deserialize)]
        struct Info {
            chain: String,
        }
        let info: Info = chain.node_call("getblockchaininfo", &[]).await?;
        let got = chain_id_of_network(&info.chain).ok_or_else(|| ChainError::BadResponse {
            method: "getblockchaininfo".into(),
            reason: format!(
                "unknown network {:?} (expected main, test or regtest)",
                info.chain
            ),
        })?;
        if let Some(expected) = cfg.expected_chain_id {
            if expected != got {
                return Err(ChainError::ChainIdMismatch { expected, got });
            }
        }
        chain.chain_id = got;
        chain.network = info.chain;
        if let QtumSigner::Local(secret) = cfg.signer {
            chain.connect_local(TxSigner::new(secret)).await?;
            return Ok(chain);
        }
        chain.sender_hex = match cfg.sender_hex {
            Some(a) => a,
            None => {
                let hex: String = chain
                    .node_call("gethexaddress", &[json(&chain.sender)])
                    .await?;
                parse_address("gethexaddress", &hex)?
            }
        };
        Ok(chain)
    }

    /// Sets up the local signer: the sender is the key's address (a configured one must
    /// match), the node must answer address-index queries, and the size fee is at least
    /// the node's `relayfee`.
    async fn connect_local(&mut self, key: TxSigner) -> Result<(), ChainError> {
        let network = crate::qtum::QtumNetwork::from_chain_id(self.chain_id)
            .expect("chain ids come from chain_id_of_network");
        let own = crate::qtum::encode_address(key.hash160(), network);
        if !self.sender.is_empty() && self.sender != own {
            return Err(ChainError::Invalid(format!(
                "qtum: sender {} is not the local key's address {own}; leave the sender empty \
                 or set it to {own}",
                self.sender
            )));
        }
        self.sender = own;
        self.sender_hex = key.hash160();
        // Without -addrindex the node cannot list the key's coins: say so now.
        match self
            .node_call::<Value>("getaddressbalance", &[self.address_arg(&self.sender)])
            .await
        {
            Ok(_) => {}
            Err(ChainError::Rpc { code, message, .. }) => {
                return Err(ChainError::Invalid(format!(
                    "qtum: signer = \"local\" needs qtumd started with -addrindex \
                     (getaddressbalance answered {code}: {message})"
                )))
            }
            Err(e) => return Err(e),
        }
        #[derive(Deserialize)]
        struct Net {
            relayfee: Box<RawValue>,
        }
        let net: Net = self.node_call("getnetworkinfo", &[]).await?;
        let relay = parse_qtum(net.relayfee.get()).ok_or_else(|| ChainError::BadResponse {
            method: "getnetworkinfo".into(),
            reason: format!("relayfee {} is not a QTUM amount", net.relayfee.get()),
        })?;
        self.fee_per_kvb = self.fee_per_kvb.max(relay);
        self.local = Some(Arc::new(LocalSigner {
            key,
            send_lock: tokio::sync::Mutex::new(()),
        }));
        Ok(())
    }

    fn address_arg(&self, address: &str) -> String {
        format!(r#"{{"addresses":[{}]}}"#, json(address))
    }

    /// Whether transactions are signed here rather than by the node's wallet.
    pub fn signs_locally(&self) -> bool {
        self.local.is_some()
    }

    /// The sender's coins that can be spent now, in the order the builder should take them.
    ///
    /// `getaddressutxos` lists the confirmed outputs of the address; outputs spent by a
    /// transaction in the mempool (`getaddressmempool`) are left out, and so are outputs
    /// whose script is not the key's P2PKH script. An output at least
    /// [`MAX_COINBASE_MATURITY`] blocks deep is mature whatever made it; a younger one is
    /// used only if `gettxout` says it is not a coinbase (gas refunds are coinbase outputs)
    /// and not a coinstake, and only when the old ones do not cover `target`. Unconfirmed
    /// change is not spent: wait for a block between sends when the old coins run out.
    async fn spendable_utxos(&self, owner: Address, target: u64) -> Result<Vec<Utxo>, ChainError> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct AddrUtxo {
            txid: String,
            output_index: u32,
            script: String,
            satoshis: u64,
            height: u64,
            #[serde(default)]
            is_stake: bool,
        }
        #[derive(Deserialize)]
        struct WithTip {
            utxos: Vec<AddrUtxo>,
            height: u64,
        }
        #[derive(Deserialize)]
        struct Delta {
            #[serde(default)]
            prevtxid: Option<String>,
            #[serde(default)]
            prevout: Option<u32>,
        }
        let network = crate::qtum::QtumNetwork::from_chain_id(self.chain_id)
            .expect("chain ids come from chain_id_of_network");
        let address = crate::qtum::encode_address(owner, network);
        let arg = format!(r#"{{"addresses":[{}],"chainInfo":true}}"#, json(&address));
        let listed: WithTip = self.node_call("getaddressutxos", &[arg]).await?;
        let deltas: Vec<Delta> = self
            .node_call("getaddressmempool", &[self.address_arg(&address)])
            .await?;
        let spent: HashSet<(String, u32)> = deltas
            .into_iter()
            .filter_map(|d| Some((d.prevtxid?, d.prevout?)))
            .collect();
        let own = hex::encode(qtum_tx::p2pkh_script(owner));
        let mut old = Vec::new();
        let mut young = Vec::new();
        for u in listed.utxos {
            if u.script != own
                || u.satoshis == 0
                || spent.contains(&(u.txid.clone(), u.output_index))
            {
                continue;
            }
            let utxo = Utxo {
                outpoint: OutPoint {
                    txid: parse_b256("getaddressutxos", &u.txid)?,
                    vout: u.output_index,
                },
                value: u.satoshis,
            };
            if listed.height.saturating_sub(u.height) >= MAX_COINBASE_MATURITY {
                old.push(utxo);
            } else if !u.is_stake {
                young.push((u.height, utxo));
            }
        }
        // Largest first: fewest inputs, smallest fee.
        old.sort_by_key(|u| std::cmp::Reverse(u.value));
        let mut total: u64 = old.iter().map(|u| u.value).fold(0, u64::saturating_add);
        if total < target {
            // Newest first: recent non-coinbase outputs are change.
            young.sort_by(|a, b| b.0.cmp(&a.0).then(b.1.value.cmp(&a.1.value)));
            for (_, u) in young.into_iter().take(YOUNG_UTXO_CHECKS) {
                #[derive(Deserialize)]
                struct TxOutInfo {
                    coinbase: bool,
                }
                let info: Option<TxOutInfo> = self
                    .node_call(
                        "gettxout",
                        &[
                            json(&hex::encode(u.outpoint.txid)),
                            json(&u.outpoint.vout),
                            json(&true),
                        ],
                    )
                    .await?;
                if matches!(info, Some(TxOutInfo { coinbase: false })) {
                    old.push(u);
                    total = total.saturating_add(u.value);
                    if total >= target {
                        break;
                    }
                }
            }
        }
        Ok(old)
    }

    /// Builds, signs and broadcasts a contract transaction with the local key.
    async fn submit_local(
        &self,
        local: &LocalSigner,
        tx: &TxRequest,
        value: u64,
    ) -> Result<B256, ChainError> {
        let (op, gas_limit) = match tx.to {
            None => (
                ContractOp::Create { code: &tx.data },
                tx.gas_limit.unwrap_or(self.create_gas),
            ),
            Some(contract) => (
                ContractOp::Call {
                    contract,
                    data: &tx.data,
                },
                tx.gas_limit.unwrap_or(self.default_gas),
            ),
        };
        let req = ContractTx {
            op,
            value,
            gas_limit,
            gas_price: self.gas_price_sat,
            fee_per_kvb: self.fee_per_kvb,
        };
        // One send at a time: the next one must see this one's inputs in the mempool.
        let _guard = local.send_lock.lock().await;
        // Value, gas, and a generous size fee: how much the coins must cover.
        let target = value
            .saturating_add(gas_limit.saturating_mul(self.gas_price_sat))
            .saturating_add(COIN / 10);
        let utxos = self.spendable_utxos(local.key.hash160(), target).await?;
        let built = qtum_tx::build_contract_tx(&local.key, &utxos, &req)
            .map_err(|e| ChainError::Invalid(format!("qtum: {} cannot pay: {e}", self.sender)))?;
        let raw = hex::encode(built.tx.serialize());
        let sent: String = self.node_call("sendrawtransaction", &[json(&raw)]).await?;
        let txid = parse_b256("sendrawtransaction", &sent)?;
        if txid != built.tx.txid() {
            return Err(ChainError::BadResponse {
                method: "sendrawtransaction".into(),
                reason: format!(
                    "the node named the transaction {sent}, expected {}",
                    built.tx.txid()
                ),
            });
        }
        tracing::debug!(
            %txid,
            inputs = built.tx.inputs.len(),
            fee = built.fee,
            change = built.change,
            "qtum: sent a locally signed transaction"
        );
        Ok(txid)
    }

    /// The balance of a P2PKH address from the address index: what
    /// [`Self::spendable_utxos`] finds spendable (`getaddressbalance` counts immature
    /// coinbase outputs as balance, and so does not tell).
    async fn address_balance_of(&self, who: Address) -> Result<U256, ChainError> {
        let utxos = self.spendable_utxos(who, u64::MAX).await?;
        Ok(U256::from(
            utxos.iter().map(|u| u128::from(u.value)).sum::<u128>(),
        ))
    }

    /// The sender's base58 address.
    pub fn sender(&self) -> &str {
        &self.sender
    }

    /// The network name the node reported (`main`, `test`, `regtest`).
    pub fn network(&self) -> &str {
        &self.network
    }

    /// A read-only `callcontract` with an explicit sender (base58 or hex), or none at all.
    /// [`Chain::call`] is this with the configured sender, so `msg.sender` is the account.
    pub async fn call_from(
        &self,
        to: Address,
        data: Bytes,
        from: Option<&str>,
    ) -> Result<CallResult, ChainError> {
        let mut params = vec![json(&hex::encode(to)), json(&hex::encode(&data))];
        if let Some(from) = from {
            params.push(json(from));
        }
        self.call_params(&params).await
    }

    async fn call_params(&self, params: &[String]) -> Result<CallResult, ChainError> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Exec {
            excepted: String,
            output: String,
        }
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Out {
            execution_result: Exec,
        }
        let out: Out = self.node_call("callcontract", params).await?;
        let output = parse_hex_bytes("callcontract", &out.execution_result.output)?;
        Ok(if out.execution_result.excepted == "None" {
            CallResult::Success(output)
        } else {
            CallResult::Reverted(output)
        })
    }

    /// Any node RPC at `/`, for what the trait does not cover (`generatetoaddress` on
    /// regtest, `waitforlogs`, diagnostics). Errors map like the trait's calls.
    pub async fn rpc(&self, method: &str, params: Vec<Value>) -> Result<Value, ChainError> {
        let params: Vec<String> = params.iter().map(json).collect();
        self.node_call(method, &params).await
    }

    /// Any wallet RPC, at `/wallet/<name>` when a wallet is configured.
    pub async fn wallet_rpc(&self, method: &str, params: Vec<Value>) -> Result<Value, ChainError> {
        let params: Vec<String> = params.iter().map(json).collect();
        self.wallet_call(method, &params).await
    }

    async fn node_call<T: serde::de::DeserializeOwned>(
        &self,
        method: &str,
        params: &[String],
    ) -> Result<T, ChainError> {
        let raw = self.request(&self.node_url, method, params).await?;
        decode(method, &raw)
    }

    async fn wallet_call<T: serde::de::DeserializeOwned>(
        &self,
        method: &str,
        params: &[String],
    ) -> Result<T, ChainError> {
        let raw = self.request(&self.wallet_url, method, params).await?;
        decode(method, &raw)
    }

    /// One JSON-RPC 1.0 exchange. `params` are JSON texts, written as they are so that
    /// amounts keep their exact decimal digits. Returns the raw text of `result`.
    async fn request(
        &self,
        url: &str,
        method: &str,
        params: &[String],
    ) -> Result<String, ChainError> {
        let id = format!("sm-{}", self.next_id.fetch_add(1, Ordering::Relaxed));
        let body = format!(
            r#"{{"jsonrpc":"1.0","id":{},"method":{},"params":[{}]}}"#,
            json(&id),
            json(method),
            params.join(",")
        );
        let unreachable = |reason: String| ChainError::Unreachable {
            endpoint: self.shown_url.clone(),
            reason,
        };
        let resp = self
            .http
            .post(url)
            .basic_auth(&self.user, Some(&self.password))
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body)
            .send()
            .await
            .map_err(|e| unreachable(format!("{method}: {}", error_chain(&e))))?;
        let status = resp.status();
        // waitforlogs answers with keep-alive spaces before the JSON: read to the end, trim.
        let text = resp
            .text()
            .await
            .map_err(|e| unreachable(format!("{method}: {}", error_chain(&e))))?;
        parse_response(method, status.as_u16(), text.trim(), &id).map_err(|e| match e {
            Parsed::Chain(e) => e,
            Parsed::Transient(reason) => unreachable(reason),
            Parsed::Http { status, body } => ChainError::Http {
                endpoint: self.shown_url.clone(),
                status,
                body,
            },
        })
    }

    fn gas_price_qtum(&self) -> String {
        format_qtum_fixed(self.gas_price_sat)
    }

    fn parse_receipt(&self, r: &QReceipt) -> Result<Receipt, ChainError> {
        const M: &str = "gettransactionreceipt";
        let status = if r.excepted == "None" {
            TxStatus::Success
        } else {
            let message = if !r.excepted_message.is_empty() {
                Some(r.excepted_message.clone())
            } else if r.excepted == "Revert" {
                // A custom error or a bare revert: qtumd keeps no revert data.
                None
            } else {
                Some(r.excepted.clone())
            };
            TxStatus::Reverted {
                data: None,
                message,
            }
        };
        let logs = r
            .log
            .iter()
            .map(|l| l.to_log(M))
            .collect::<Result<Vec<_>, _>>()?;
        let to = parse_address(M, &r.to)?;
        let contract_address = if to == Address::ZERO && !r.contract_address.is_empty() {
            let created = parse_address(M, &r.contract_address)?;
            (created != Address::ZERO).then_some(created)
        } else {
            None
        };
        Ok(Receipt {
            tx_hash: parse_b256(M, &r.transaction_hash)?,
            block_number: r.block_number,
            gas_used: r.gas_used,
            status,
            logs,
            contract_address,
        })
    }

    async fn wallet_balance_of(&self, who: Address) -> Result<U256, ChainError> {
        let address: String = if who == self.sender_hex {
            self.sender.clone()
        } else {
            // The node computes the base58 form for its own network. (It does not check
            // its input, but an Address is always 40 hex digits.)
            self.node_call("fromhexaddress", &[json(&hex::encode(who))])
                .await?
        };
        #[derive(Deserialize)]
        struct AddrInfo {
            #[serde(default)]
            ismine: bool,
            #[serde(default)]
            iswatchonly: bool,
        }
        let info: AddrInfo = self
            .wallet_call("getaddressinfo", &[json(&address)])
            .await?;
        if !info.ismine && !info.iswatchonly {
            return Err(ChainError::Invalid(format!(
                "qtum: the node can only tell the balance of its wallet's addresses and contracts; \
                 {address} is neither"
            )));
        }
        #[derive(Deserialize)]
        struct Unspent {
            amount: Box<RawValue>,
        }
        let utxos: Vec<Unspent> = self
            .wallet_call(
                "listunspent",
                &[json(&1), json(&9_999_999), json(&[&address])],
            )
            .await?;
        let mut total: u128 = 0;
        for u in &utxos {
            let sat = parse_qtum(u.amount.get()).ok_or_else(|| ChainError::BadResponse {
                method: "listunspent".into(),
                reason: format!("amount {} is not a QTUM amount", u.amount.get()),
            })?;
            total += u128::from(sat);
        }
        Ok(U256::from(total))
    }
}

#[async_trait]
impl Chain for QtumChain {
    fn chain_id(&self) -> u64 {
        self.chain_id
    }

    fn account(&self) -> Address {
        self.sender_hex
    }

    fn describe(&self) -> String {
        format!(
            "qtumd JSON-RPC at {} ({}, chain id {}), sending from {} ({})",
            self.shown_url,
            self.network,
            self.chain_id,
            self.sender,
            if self.local.is_some() {
                "signed locally"
            } else {
                "signed by the node's wallet"
            }
        )
    }

    async fn call(&self, to: Address, data: Bytes) -> Result<CallResult, ChainError> {
        self.call_from(to, data, Some(self.sender.as_str())).await
    }

    /// `callcontract(contract, data, sender, gasLimit, amount)`: the sender and the value
    /// as `sendtocontract` would carry them. A create cannot be simulated on qtumd and
    /// counts as succeeding.
    async fn simulate(&self, tx: &TxRequest) -> Result<CallResult, ChainError> {
        let Some(to) = tx.to else {
            return Ok(CallResult::Success(Bytes::new()));
        };
        let value: u64 = tx.value.try_into().map_err(|_| {
            ChainError::Invalid(format!(
                "qtum: value {} satoshi does not fit a Qtum amount",
                tx.value
            ))
        })?;
        let params = [
            json(&hex::encode(to)),
            json(&hex::encode(&tx.data)),
            json(&self.sender),
            json(&tx.gas_limit.unwrap_or(self.default_gas)),
            format_qtum(value),
        ];
        self.call_params(&params).await
    }

    /// `getmempoolentry`: -5 means not in the mempool.
    async fn is_pending(&self, tx_hash: B256) -> Result<bool, ChainError> {
        match self
            .node_call::<Value>("getmempoolentry", &[json(&hex::encode(tx_hash))])
            .await
        {
            Ok(_) => Ok(true),
            Err(ChainError::Rpc { code: -5, .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    async fn submit(&self, tx: TxRequest) -> Result<B256, ChainError> {
        let value: u64 = tx.value.try_into().map_err(|_| {
            ChainError::Invalid(format!(
                "qtum: value {} satoshi does not fit a Qtum amount",
                tx.value
            ))
        })?;
        if tx.to.is_none() && value != 0 {
            return Err(ChainError::Invalid(
                "qtum: createcontract cannot carry value; deploy first, then send to the contract"
                    .into(),
            ));
        }
        if let Some(local) = &self.local {
            return self.submit_local(local, &tx, value).await;
        }
        #[derive(Deserialize)]
        struct Sent {
            txid: String,
        }
        let (method, sent) = match tx.to {
            None => {
                let gas = tx.gas_limit.unwrap_or(self.create_gas);
                let params = [
                    json(&hex::encode(&tx.data)),
                    json(&gas),
                    self.gas_price_qtum(),
                    json(&self.sender),
                ];
                (
                    "createcontract",
                    self.wallet_call::<Sent>("createcontract", &params).await?,
                )
            }
            Some(to) => {
                let gas = tx.gas_limit.unwrap_or(self.default_gas);
                let params = [
                    json(&hex::encode(to)),
                    json(&hex::encode(&tx.data)),
                    format_qtum(value),
                    json(&gas),
                    self.gas_price_qtum(),
                    json(&self.sender),
                ];
                (
                    "sendtocontract",
                    self.wallet_call::<Sent>("sendtocontract", &params).await?,
                )
            }
        };
        parse_b256(method, &sent.txid)
    }

    async fn receipt(&self, tx_hash: B256) -> Result<Option<Receipt>, ChainError> {
        let entries: Vec<QReceipt> = self
            .node_call("gettransactionreceipt", &[json(&hex::encode(tx_hash))])
            .await?;
        // One entry per contract output; this backend's transactions have exactly one.
        match entries.iter().min_by_key(|r| r.output_index) {
            None => Ok(None),
            Some(r) => self.parse_receipt(r).map(Some),
        }
    }

    async fn logs(&self, filter: &LogFilter) -> Result<Vec<ChainLog>, ChainError> {
        const M: &str = "searchlogs";
        let mut to = filter.to_block;
        if self.log_confirmations > 0 {
            let head = self.head().await?;
            let Some(last) = head.number.checked_sub(self.log_confirmations) else {
                return Ok(Vec::new());
            };
            to = Some(to.map_or(last, |t| t.min(last)));
        }
        if let Some(t) = to {
            if t < filter.from_block {
                return Ok(Vec::new());
            }
        }
        let mut params = vec![
            json(&filter.from_block),
            match to {
                Some(t) => json(&t),
                None => json(&-1),
            },
            format!(
                r#"{{"addresses":[{}]}}"#,
                json(&hex::encode(filter.address))
            ),
        ];
        // Trailing wildcards add nothing; the node takes `null` as a positional wildcard.
        let used = filter
            .topics
            .iter()
            .rposition(Option::is_some)
            .map_or(0, |i| i + 1);
        if used > 0 {
            let topics: Vec<String> = filter.topics[..used]
                .iter()
                .map(|t| match t {
                    Some(t) => json(&hex::encode(t)),
                    None => "null".to_string(),
                })
                .collect();
            params.push(format!(r#"{{"topics":[{}]}}"#, topics.join(",")));
        }
        let receipts: Vec<QReceipt> = self.node_call(M, &params).await?;
        let mut out = Vec::new();
        for r in &receipts {
            let tx_hash = parse_b256(M, &r.transaction_hash)?;
            for (i, l) in r.log.iter().enumerate() {
                let log = l.to_log(M)?;
                // searchlogs returns whole receipts: keep only the logs that match.
                if log.address != filter.address || !topics_match(&filter.topics, log.topics()) {
                    continue;
                }
                out.push(ChainLog {
                    block_number: r.block_number,
                    tx_hash,
                    log_index: qtum_log_index(r.transaction_index, r.output_index, i as u64),
                    log,
                });
            }
        }
        out.sort_by_key(|l| (l.block_number, l.log_index));
        out.dedup_by_key(|l| (l.block_number, l.log_index));
        Ok(out)
    }

    async fn head(&self) -> Result<Head, ChainError> {
        // One call gives a consistent pair: the tip's height and its block time.
        #[derive(Deserialize)]
        struct Info {
            blocks: u64,
            time: u64,
        }
        let info: Info = self.node_call("getblockchaininfo", &[]).await?;
        Ok(Head {
            number: info.blocks,
            timestamp: info.time,
        })
    }

    async fn balance(&self, who: Address) -> Result<U256, ChainError> {
        #[derive(Deserialize)]
        struct Account {
            balance: u64,
            #[serde(default)]
            code: String,
        }
        match self
            .node_call::<Account>("getaccountinfo", &[json(&hex::encode(who))])
            .await
        {
            // An EVM account with code: a contract, whose balance the node keeps in satoshi.
            Ok(acc) if !acc.code.is_empty() => Ok(U256::from(acc.balance)),
            Ok(_) | Err(ChainError::Rpc { code: -5, .. }) if self.local.is_some() => {
                self.address_balance_of(who).await
            }
            Ok(_) => self.wallet_balance_of(who).await,
            Err(ChainError::Rpc {
                code: -5, message, ..
            }) if message.contains("does not exist") => self.wallet_balance_of(who).await,
            Err(e) => Err(e),
        }
    }

    fn poll_interval(&self) -> Duration {
        Duration::from_millis(500)
    }
}

/// A receipt as `gettransactionreceipt` and `searchlogs` return it (hex without `0x`).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct QReceipt {
    block_number: u64,
    transaction_hash: String,
    transaction_index: u64,
    output_index: u64,
    to: String,
    gas_used: u64,
    #[serde(default)]
    contract_address: String,
    excepted: String,
    #[serde(default)]
    excepted_message: String,
    #[serde(default)]
    log: Vec<QLog>,
}

#[derive(Debug, Deserialize)]
struct QLog {
    address: String,
    topics: Vec<String>,
    data: String,
}

impl QLog {
    fn to_log(&self, method: &str) -> Result<Log, ChainError> {
        let address = parse_address(method, &self.address)?;
        let topics = self
            .topics
            .iter()
            .map(|t| parse_b256(method, t))
            .collect::<Result<Vec<_>, _>>()?;
        let data = parse_hex_bytes(method, &self.data)?;
        let data = LogData::new(topics, data).ok_or_else(|| ChainError::BadResponse {
            method: method.into(),
            reason: "a log with more than four topics".into(),
        })?;
        Ok(Log { address, data })
    }
}

/// A stable order key for a log in its block: qtumd numbers neither logs nor their
/// position in a block, so this packs the transaction's index in the block, the contract
/// output's index in the transaction and the log's position in that output's receipt.
/// It is the same whatever filter found the log, and sorts in execution order.
pub fn qtum_log_index(transaction_index: u64, output_index: u64, position: u64) -> u64 {
    (transaction_index << 32) | ((output_index & 0xfff) << 20) | (position & 0xf_ffff)
}

fn topics_match(filter: &[Option<B256>], topics: &[B256]) -> bool {
    filter.iter().enumerate().all(|(i, want)| match want {
        None => true,
        Some(t) => topics.get(i) == Some(t),
    })
}

enum Parsed {
    Chain(ChainError),
    Transient(String),
    Http { status: u16, body: String },
}

/// Reads one HTTP answer of qtumd. Errors come with a JSON body under HTTP 404
/// (method not found) and 500 (everything else); a refused login is a bare 401.
fn parse_response(method: &str, status: u16, body: &str, id: &str) -> Result<String, Parsed> {
    #[derive(Deserialize)]
    struct RpcErr {
        code: i64,
        message: String,
    }
    #[derive(Deserialize)]
    struct Envelope<'a> {
        #[serde(borrow, default)]
        result: Option<&'a RawValue>,
        #[serde(default)]
        error: Option<RpcErr>,
        #[serde(default)]
        id: Value,
    }
    let rpc = |code: i64, message: String| {
        Parsed::Chain(ChainError::Rpc {
            method: method.into(),
            code,
            message,
        })
    };
    match status {
        401 => {
            return Err(rpc(
                401,
                "HTTP 401: the node refused the RPC credentials (check rpcuser/rpcpassword)".into(),
            ))
        }
        403 => {
            return Err(rpc(
                403,
                "HTTP 403: the node does not accept RPC from this address (rpcallowip)".into(),
            ))
        }
        _ => {}
    }
    let env: Envelope = match serde_json::from_str(body) {
        Ok(env) => env,
        Err(e) => {
            let snippet: String = body.chars().take(200).collect();
            return Err(if status >= 500 || status == 429 {
                // e.g. 503 "Work queue depth exceeded": the node is busy.
                Parsed::Transient(format!("{method}: HTTP {status}: {snippet}"))
            } else if status >= 400 {
                // qtumd answers its own errors in JSON: this is another server, or a wrong path.
                Parsed::Http {
                    status,
                    body: snippet,
                }
            } else {
                Parsed::Chain(ChainError::BadResponse {
                    method: method.into(),
                    reason: format!("HTTP {status}, not JSON-RPC ({e}): {snippet}"),
                })
            });
        }
    };
    if let Some(err) = env.error {
        return Err(rpc(err.code, err.message));
    }
    if status != 200 {
        return Err(Parsed::Chain(ChainError::BadResponse {
            method: method.into(),
            reason: format!("HTTP {status} without an error object"),
        }));
    }
    if env.id != Value::String(id.to_string()) {
        return Err(Parsed::Chain(ChainError::BadResponse {
            method: method.into(),
            reason: format!("answer to request {} arrived for {id}", env.id),
        }));
    }
    Ok(env
        .result
        .map_or_else(|| "null".to_string(), |r| r.get().to_string()))
}

fn decode<T: serde::de::DeserializeOwned>(method: &str, raw: &str) -> Result<T, ChainError> {
    serde_json::from_str(raw).map_err(|e| {
        let snippet: String = raw.chars().take(200).collect();
        ChainError::BadResponse {
            method: method.into(),
            reason: format!("{e}: {snippet}"),
        }
    })
}

fn json<T: serde::Serialize + ?Sized>(v: &T) -> String {
    serde_json::to_string(v).expect("plain values always serialize")
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        src = inner.source();
    }
    s
}

fn strip0x(s: &str) -> &str {
    s.strip_prefix("0x").unwrap_or(s)
}

fn parse_address(method: &str, s: &str) -> Result<Address, ChainError> {
    let bytes = hex::decode(strip0x(s))
        .ok()
        .filter(|b| b.len() == 20)
        .ok_or_else(|| ChainError::BadResponse {
            method: method.into(),
            reason: format!("{s:?} is not a 20-byte hex address"),
        })?;
    Ok(Address::from_slice(&bytes))
}

fn parse_b256(method: &str, s: &str) -> Result<B256, ChainError> {
    let bytes = hex::decode(strip0x(s))
        .ok()
        .filter(|b| b.len() == 32)
        .ok_or_else(|| ChainError::BadResponse {
            method: method.into(),
            reason: format!("{s:?} is not a 32-byte hex value"),
        })?;
    Ok(B256::from_slice(&bytes))
}

fn parse_hex_bytes(method: &str, s: &str) -> Result<Bytes, ChainError> {
    hex::decode(strip0x(s))
        .map(Bytes::from)
        .map_err(|e| ChainError::BadResponse {
            method: method.into(),
            reason: format!("bad hex ({e})"),
        })
}

// QTUM amounts in JSON-RPC are the SDK's amount codec (crate::amount) at 8 decimals.

/// Satoshi as an exact QTUM decimal with no trailing zeros: `150000000` → `1.5`,
/// `100000000` → `1`, `1` → `0.00000001`, `0` → `0`.
pub fn format_qtum(sat: u64) -> String {
    amount::format_units(u128::from(sat), QTUM_DECIMALS)
}

/// Satoshi as a QTUM decimal with all eight places, the way qtumd and qtum-cli write
/// amounts: `40` → `0.00000040`.
pub fn format_qtum_fixed(sat: u64) -> String {
    amount::format_units_padded(u128::from(sat), QTUM_DECIMALS)
}

/// A QTUM decimal as the node writes it (`2220000.00000000`, `0.5`, `3`) to satoshi, exactly.
/// Refuses signs, exponents, significant digits past the eighth decimal, and more than
/// `u64` satoshi.
pub fn parse_qtum(text: &str) -> Option<u64> {
    let units = amount::parse_units(text.trim(), &amount::Asset::qtum()).ok()?;
    u64::try_from(units).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_are_exact_decimals() {
        assert_eq!(format_qtum(150_000_000), "1.5");
        assert_eq!(format_qtum(100_000_000), "1");
        assert_eq!(format_qtum(10_000_000_000_000_000), "100000000");
        assert_eq!(format_qtum(1), "0.00000001");
        assert_eq!(format_qtum(0), "0");
        assert_eq!(format_qtum(30_000_000), "0.3");
        assert_eq!(format_qtum(u64::MAX), "184467440737.09551615");
        assert_eq!(format_qtum_fixed(40), "0.00000040");
        assert_eq!(format_qtum_fixed(1), "0.00000001");
        assert_eq!(format_qtum_fixed(123_456_789), "1.23456789");
    }

    #[test]
    fn node_amounts_parse_exactly() {
        assert_eq!(parse_qtum("2220000.00000000"), Some(222_000_000_000_000));
        assert_eq!(parse_qtum("1.5"), Some(150_000_000));
        assert_eq!(parse_qtum("0.00000001"), Some(1));
        assert_eq!(parse_qtum("0"), Some(0));
        assert_eq!(parse_qtum("20000.00000000"), Some(2_000_000_000_000));
        for bad in [
            "",
            ".5",
            "1.",
            "-1",
            "1e-8",
            "0.000000001",
            "1.2.3",
            "4.656542373906925e-10",
            "abc",
            "184467440737.09551616",
        ] {
            assert_eq!(parse_qtum(bad), None, "{bad}");
        }
        for sat in [0u64, 1, 40, 150_000_000, 123_456_789_012, u64::MAX] {
            assert_eq!(parse_qtum(&format_qtum(sat)), Some(sat));
            assert_eq!(parse_qtum(&format_qtum_fixed(sat)), Some(sat));
        }
    }

    #[test]
    fn networks_map_to_chain_ids() {
        assert_eq!(chain_id_of_network("main"), Some(81));
        assert_eq!(chain_id_of_network("test"), Some(8889));
        assert_eq!(chain_id_of_network("regtest"), Some(8890));
        assert_eq!(chain_id_of_network("signet"), None);
    }

    #[test]
    fn log_index_orders_by_tx_then_output_then_position() {
        let a = qtum_log_index(1, 0, 5);
        let b = qtum_log_index(1, 1, 0);
        let c = qtum_log_index(2, 0, 0);
        assert!(a < b && b < c);
    }

    #[test]
    fn responses_map_to_errors() {
        let rpc = |status, body: &str| match parse_response("m", status, body, "sm-1") {
            Err(Parsed::Chain(ChainError::Rpc { code, message, .. })) => (code, message),
            Err(Parsed::Chain(e)) => panic!("{e}"),
            Err(Parsed::Transient(r)) => panic!("transient {r}"),
            Err(Parsed::Http { status, .. }) => panic!("http {status}"),
            Ok(r) => panic!("ok {r}"),
        };
        assert_eq!(rpc(401, "").0, 401);
        assert_eq!(
            rpc(
                404,
                r#"{"result":null,"error":{"code":-32601,"message":"Method not found"},"id":"sm-1"}"#
            ),
            (-32601, "Method not found".to_string())
        );
        // A wrong path on a web server: not JSON-RPC, so the URL is what to check.
        assert!(matches!(
            parse_response("m", 404, "", "sm-1"),
            Err(Parsed::Http { status: 404, .. })
        ));
        assert!(matches!(
            parse_response("m", 503, "Work queue depth exceeded", "sm-1"),
            Err(Parsed::Transient(_))
        ));
        assert!(matches!(
            parse_response("m", 200, r#"{"result":1,"error":null,"id":"sm-2"}"#, "sm-1"),
            Err(Parsed::Chain(ChainError::BadResponse { .. }))
        ));
        assert_eq!(
            parse_response(
                "m",
                200,
                r#"{"result":1.50000000,"error":null,"id":"sm-1"}"#,
                "sm-1"
            )
            .ok()
            .as_deref(),
            Some("1.50000000")
        );
    }
}
