//! qtumd's JSON-RPC as a [`Chain`]: the node's wallet holds the sender's key and signs.
//!
//! | trait            | qtumd                                                                    |
//! |------------------|--------------------------------------------------------------------------|
//! | [`Chain::call`]  | `callcontract(contract, data, sender)`; `excepted != "None"` is a revert  |
//! | [`Chain::submit`]| `sendtocontract(contract, data, amount QTUM, gasLimit, gasPrice QTUM, sender)`, or `createcontract(code, gasLimit, gasPrice, sender)` |
//! | [`Chain::receipt`]| `gettransactionreceipt(txid)`: an array, `[]` until mined               |
//! | [`Chain::logs`]  | `searchlogs(from, to or -1, {"addresses"}, {"topics"})`: full receipts    |
//! | [`Chain::head`]  | `getblockchaininfo`: `blocks` and the tip's `time`                        |
//! | [`Chain::balance`]| `getaccountinfo` for a contract; the wallet's UTXOs for a P2PKH address |
//!
//! Units: the EVM inside Qtum counts native value in satoshi (1 QTUM = 10^8), and so does
//! [`TxRequest::value`]; the RPCs take QTUM, so amounts are written as exact decimal
//! numbers (`1.5`, `0.00000040`) with integer arithmetic, never through a float.
//! Hex on the wire has no `0x`. Wallet RPCs go to `/wallet/<name>` when a wallet is named.
//!
//! What qtumd cannot give: revert data of a mined transaction (receipts carry only
//! `excepted` and the decoded `Error(string)` reason), and the balance of a P2PKH address
//! outside the node's wallet. See `docs/PROTOCOL-BACKENDS.md`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use alloy::primitives::{Address, Bytes, Log, LogData, B256, U256};
use async_trait::async_trait;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;

use super::{
    CallResult, Chain, ChainError, ChainLog, Head, LogFilter, Receipt, TxRequest, TxStatus,
};

/// Satoshi per QTUM.
const COIN: u64 = 100_000_000;

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
    /// The sender's base58 P2PKH address (`q…` on testnet/regtest, `Q…` on mainnet). Its key
    /// must be in the wallet; contract transactions need a P2PKH sender.
    pub sender: String,
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
    next_id: Arc<AtomicU64>,
}

impl std::fmt::Debug for QtumChain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QtumChain")
            .field("url", &self.shown_url)
            .field("network", &self.network)
            .field("chain_id", &self.chain_id)
            .field("sender", &self.sender)
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
        if cfg.sender.trim().is_empty() {
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
            Some(name) => format!("{base}/wallet/{}", percent_encode_path(name)),
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
            "qtumd JSON-RPC at {} ({}, chain id {}), sending from {}",
            self.shown_url, self.network, self.chain_id, self.sender
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
        #[derive(Deserialize)]
        struct Sent {
            txid: String,
        }
        let (method, sent) = match tx.to {
            None => {
                if value != 0 {
                    return Err(ChainError::Invalid(
                        "qtum: createcontract cannot carry value; deploy first, then send to the contract".into(),
                    ));
                }
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

fn percent_encode_path(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
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

/// Satoshi as an exact QTUM decimal with no trailing zeros: `150000000` → `1.5`,
/// `100000000` → `1`, `1` → `0.00000001`, `0` → `0`.
pub fn format_qtum(sat: u64) -> String {
    let whole = sat / COIN;
    let frac = sat % COIN;
    if frac == 0 {
        return whole.to_string();
    }
    let digits = format!("{frac:08}");
    format!("{whole}.{}", digits.trim_end_matches('0'))
}

/// Satoshi as a QTUM decimal with all eight places, the way qtum-cli writes a gas
/// price: `40` → `0.00000040`.
pub fn format_qtum_fixed(sat: u64) -> String {
    format!("{}.{:08}", sat / COIN, sat % COIN)
}

/// A QTUM decimal as the node writes it (`2220000.00000000`, `0.5`, `3`) to satoshi, exactly.
/// Refuses signs, exponents and more than eight decimals.
pub fn parse_qtum(text: &str) -> Option<u64> {
    let text = text.trim();
    let (whole, frac) = match text.split_once('.') {
        Some((w, f)) => (w, f),
        None => (text, ""),
    };
    if whole.is_empty() || frac.len() > 8 {
        return None;
    }
    if !whole.bytes().all(|b| b.is_ascii_digit()) || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if text.contains('.') && frac.is_empty() {
        return None;
    }
    let whole: u64 = whole.parse().ok()?;
    let frac_sat: u64 = if frac.is_empty() {
        0
    } else {
        format!("{frac:0<8}").parse().ok()?
    };
    whole.checked_mul(COIN)?.checked_add(frac_sat)
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
