//! The qtumd backend against real qtumd v27.1 answers.
//!
//! A small HTTP/1.1 server replays the recordings in `shared/qtum/rpc`: it matches each
//! request's path, `method` and `params` with a recorded request (ignoring `id`), answers
//! with the recorded status, headers and body (echoing the request's id, as the node
//! does), and notes every request whose bytes differ from the recorded ones beyond the id.
//! `waitforlogs` answers are sent chunked with their leading keep-alive spaces, like the
//! node sends them. Where a test needs an answer the recording has no request for, it says
//! so (`answer_with`, `add_synthetic`) and explains why.
//!
//! Without the fixture folder the tests print a skip message and pass; CI has the folder.

use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use alloy::primitives::{address, b256, keccak256, Address, Bytes, B256, U256};
use alloy::sol_types::{SolError, SolValue};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{json, Value};
use springmail_sdk::chain::qtum::{QtumChain, QtumConfig};
use springmail_sdk::chain::{CallResult, Chain, ChainError, LogFilter, TxRequest, TxStatus};
use springmail_sdk::client::revert_reason;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/qtum/rpc");
const REF_ESCROW_BIN: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../shared/qtum/contracts/RefEscrow.bin"
);

/// The recording's wallet, sender and contract.
const SENDER: &str = "qSGMBbFXPcTYDSYbidwsaZzDSLDkQESm2e";
const SENDER_HEX: Address = address!("5f8069e453bd0d05e0221718658ad13f191a883a");
const ESCROW: Address = address!("e417f3dfe864f50b3f4797be06927389eb3f8c37");
/// `keccak256("Deposited(bytes32,address,uint256)")`, RefEscrow's deposit event.
const DEPOSITED: B256 = b256!("87d4c0b5e30d6808bc8a94ba1c4d839b29d664151551a31753387ee9ef48429b");
/// The first deposit's key (`deposit(key1)`, fixture 032).
const KEY1: B256 = b256!("ff8d9819fc0e12bf0d24892e45987e249a28dce836a85cad60e28eaaa8c6d976");
/// HTTP Basic `springmail:springmail`, as every recorded request carried.
const AUTH: &str = "Basic c3ByaW5nbWFpbDpzcHJpbmdtYWls";

alloy::sol! {
    /// RefEscrow's custom error (shared/qtum/contracts/RefEscrow.sol).
    error UnknownKey(bytes32 key);
}

// ------------------------------------------------------------------ fixtures

#[derive(Debug)]
struct Fixture {
    file: String,
    seq: u64,
    status: u16,
    path: String,
    headers: Vec<(String, String)>,
    /// The request body exactly as recorded.
    request_text: String,
    request: Value,
    /// The response body exactly as recorded; `None` for an empty body.
    response_text: Option<String>,
    /// Keep-alive spaces the node sent before the JSON (waitforlogs).
    leading_spaces: usize,
    raw_request: bool,
    without_auth: bool,
}

#[derive(Deserialize)]
struct RawFixture<'a> {
    seq: u64,
    file: String,
    http_status: u16,
    path: String,
    #[serde(default)]
    response_headers: serde_json::Map<String, Value>,
    #[serde(borrow)]
    request: &'a RawValue,
    #[serde(borrow)]
    response: &'a RawValue,
    #[serde(default)]
    request_is_raw_text: bool,
    #[serde(default)]
    request_without_auth: bool,
    #[serde(default)]
    response_body_empty: bool,
}

fn parse_fixture(name: &str, text: &str) -> Fixture {
    let raw: RawFixture = serde_json::from_str(text).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(raw.file, name, "{name}: the file field names another file");
    // The response member is written verbatim: the whitespace after `"response":` beyond
    // the one separating space is what the node sent before the JSON.
    let at = text
        .find("\"response\":")
        .unwrap_or_else(|| panic!("{name}: no response member"))
        + 11;
    let ws = text[at..].bytes().take_while(|b| *b == b' ').count();
    let request_text = if raw.request_is_raw_text {
        serde_json::from_str::<String>(raw.request.get())
            .expect("raw request text is a JSON string")
    } else {
        raw.request.get().to_string()
    };
    Fixture {
        file: raw.file,
        seq: raw.seq,
        status: raw.http_status,
        path: raw.path,
        headers: raw
            .response_headers
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
            .collect(),
        request: serde_json::from_str(&request_text).unwrap_or(Value::Null),
        request_text,
        response_text: (!raw.response_body_empty).then(|| raw.response.get().to_string()),
        leading_spaces: ws.saturating_sub(1),
        raw_request: raw.request_is_raw_text,
        without_auth: raw.request_without_auth,
    }
}

/// `shared/qtum/rpc`, or `$SPRINGMAIL_QTUM_FIXTURES` when the checkout is not beside shared/.
fn fixture_dir() -> std::path::PathBuf {
    std::env::var("SPRINGMAIL_QTUM_FIXTURES")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| Path::new(FIXTURES).to_path_buf())
}

/// Every `NNN-*.json` fixture in order. Panics when the folder is missing or holds no
/// fixture.
fn fixtures() -> Option<Arc<Vec<Fixture>>> {
    static ALL: OnceLock<Option<Arc<Vec<Fixture>>>> = OnceLock::new();
    ALL.get_or_init(|| {
        let dir = fixture_dir();
        let dir = dir.as_path();
        // A replay with no recordings must not pass: fail, naming where they belong.
        assert!(
            dir.is_dir(),
            "qtumd fixtures not found at {} (../shared/qtum/rpc beside the checkout, \
             or set SPRINGMAIL_QTUM_FIXTURES)",
            dir.display()
        );
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .expect("read the fixture folder")
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| {
                n.ends_with(".json")
                    && n.len() > 4
                    && n.as_bytes()[..3].iter().all(u8::is_ascii_digit)
            })
            .collect();
        names.sort();
        let all: Vec<Fixture> = names
            .iter()
            .map(|n| {
                parse_fixture(
                    n,
                    &std::fs::read_to_string(dir.join(n)).expect("read a fixture"),
                )
            })
            .collect();
        assert!(
            !all.is_empty(),
            "loaded zero fixtures from {}",
            dir.display()
        );
        Some(Arc::new(all))
    })
    .clone()
}

fn fixture<'a>(all: &'a [Fixture], file_prefix: &str) -> &'a Fixture {
    all.iter()
        .find(|f| f.file.starts_with(file_prefix))
        .unwrap_or_else(|| panic!("no fixture {file_prefix}"))
}

/// The recorded result of a fixture, parsed.
fn recorded_result(f: &Fixture) -> Value {
    let v: Value =
        serde_json::from_str(f.response_text.as_deref().expect("a body")).expect("JSON body");
    v["result"].clone()
}

/// A JSON-RPC request body without its `id` member, to compare bodies byte for byte.
fn without_id(body: &str) -> String {
    let Some(start) = body.find("\"id\":") else {
        return body.to_string();
    };
    let end = body[start..]
        .find(",\"method\":")
        .map(|i| start + i + 1)
        .unwrap_or(body.len());
    format!("{}{}", &body[..start], &body[end..])
}

/// A response body with its trailing `"id":…}` replaced by the request's id.
fn with_id(body: &str, id: &Value) -> String {
    match body.rfind("\"id\":") {
        Some(at) if body.trim_end().ends_with('}') => {
            format!(
                "{}\"id\":{}}}",
                &body[..at],
                serde_json::to_string(id).unwrap()
            )
        }
        _ => body.to_string(),
    }
}

// ------------------------------------------------------------------ replay server

struct Synthetic {
    path: String,
    method: String,
    params: Value,
    status: u16,
    body: String,
}

#[derive(Default)]
struct State {
    used: Vec<bool>,
    overrides: Vec<(String, usize)>,
    synthetic: Vec<Synthetic>,
    /// (path, body) of every request.
    received: Vec<(String, String)>,
    problems: Vec<String>,
}

struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Option<String>,
    leading_spaces: usize,
    chunked: bool,
}

struct Replay {
    url: String,
    fixtures: Arc<Vec<Fixture>>,
    state: Arc<Mutex<State>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Replay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Replay {
    async fn start() -> Option<Replay> {
        let fixtures = fixtures()?;
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", listener.local_addr().unwrap());
        let state = Arc::new(Mutex::new(State {
            used: vec![false; fixtures.len()],
            ..Default::default()
        }));
        let (fx, st) = (fixtures.clone(), state.clone());
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve(stream, fx.clone(), st.clone()));
            }
        });
        Some(Replay {
            url,
            fixtures,
            state,
            task,
        })
    }

    fn config(&self) -> QtumConfig {
        QtumConfig::new(self.url.clone(), "springmail", "springmail", SENDER).wallet("springmail")
    }

    async fn connect(&self) -> QtumChain {
        QtumChain::connect(self.config()).await.expect("connect")
    }

    fn fixture(&self, prefix: &str) -> &Fixture {
        fixture(&self.fixtures, prefix)
    }

    /// Answers every request for `method` with fixture `prefix`, whatever its params.
    fn answer_with(&self, method: &str, prefix: &str) {
        let i = self
            .fixtures
            .iter()
            .position(|f| f.file.starts_with(prefix))
            .expect("fixture");
        self.state
            .lock()
            .unwrap()
            .overrides
            .push((method.to_string(), i));
    }

    fn add_synthetic(&self, path: &str, method: &str, params: Value, status: u16, body: &str) {
        self.state.lock().unwrap().synthetic.push(Synthetic {
            path: path.into(),
            method: method.into(),
            params,
            status,
            body: body.into(),
        });
    }

    /// Bodies of the requests for `method`, in order.
    fn sent(&self, method: &str) -> Vec<String> {
        let st = self.state.lock().unwrap();
        st.received
            .iter()
            .filter(|(_, b)| serde_json::from_str::<Value>(b).is_ok_and(|v| v["method"] == method))
            .map(|(_, b)| b.clone())
            .collect()
    }

    /// Every request matched something and was byte-identical to the recording but for the id.
    fn assert_clean(&self) {
        let st = self.state.lock().unwrap();
        assert!(
            st.problems.is_empty(),
            "replay problems:\n{}",
            st.problems.join("\n")
        );
    }
}

impl State {
    fn answer(
        &mut self,
        fixtures: &[Fixture],
        path: &str,
        auth: Option<&str>,
        body: &str,
    ) -> Answer {
        self.received.push((path.to_string(), body.to_string()));
        let plain = |status: u16, text: String| Answer {
            status,
            headers: vec![("Content-Type".into(), "text/plain".into())],
            body: Some(text),
            leading_spaces: 0,
            chunked: false,
        };
        let from_fixture = |f: &Fixture, id: &Value| Answer {
            status: f.status,
            headers: f.headers.clone(),
            body: f.response_text.as_deref().map(|b| with_id(b, id)),
            leading_spaces: f.leading_spaces,
            chunked: f
                .headers
                .iter()
                .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v == "chunked"),
        };
        if auth != Some(AUTH) {
            let f = fixtures
                .iter()
                .find(|f| f.without_auth)
                .expect("the 401 fixture");
            return from_fixture(f, &Value::Null);
        }
        let Ok(req) = serde_json::from_str::<Value>(body) else {
            self.problems.push(format!("not JSON: {body}"));
            return plain(418, "not JSON".into());
        };
        let (id, method, params) = (
            req["id"].clone(),
            req["method"].clone(),
            req["params"].clone(),
        );
        if !matches!(id.as_str(), Some(s) if s.starts_with("sm-")) || req["jsonrpc"] != "1.0" {
            self.problems.push(format!(
                "not a JSON-RPC 1.0 request with an sm-N id: {body}"
            ));
        }
        if let Some(&(_, i)) = self.overrides.iter().find(|(m, _)| *m == method) {
            return from_fixture(&fixtures[i], &id);
        }
        if let Some(s) = self
            .synthetic
            .iter()
            .find(|s| s.path == path && s.method == method && s.params == params)
        {
            return Answer {
                status: s.status,
                headers: vec![("Content-Type".into(), "application/json".into())],
                body: Some(with_id(&s.body, &id)),
                leading_spaces: 0,
                chunked: false,
            };
        }
        let candidates: Vec<usize> = fixtures
            .iter()
            .enumerate()
            .filter(|(_, f)| {
                !f.raw_request
                    && !f.without_auth
                    && f.path == path
                    && f.request["method"] == method
                    && f.request["params"] == params
            })
            .map(|(i, _)| i)
            .collect();
        // Identical requests (getblockcount, generatetoaddress) replay in recorded order,
        // the last one again once all were used.
        let Some(&i) = candidates
            .iter()
            .find(|&&i| !self.used[i])
            .or(candidates.last())
        else {
            self.problems
                .push(format!("no recorded exchange for {path} {body}"));
            return plain(
                418,
                format!("no recorded exchange for {path} {method} {params}"),
            );
        };
        self.used[i] = true;
        let f = &fixtures[i];
        if without_id(body) != without_id(&f.request_text) {
            self.problems.push(format!(
                "{}: the request differs from the recording beyond the id\n  sent:     {}\n  recorded: {}",
                f.file,
                without_id(body),
                without_id(&f.request_text)
            ));
        }
        from_fixture(f, &id)
    }
}

async fn serve(mut stream: TcpStream, fixtures: Arc<Vec<Fixture>>, state: Arc<Mutex<State>>) {
    let mut buf: Vec<u8> = Vec::new();
    loop {
        let head_end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i;
            }
            match stream.read_buf(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
        let mut lines = head.split("\r\n");
        let request_line = lines.next().unwrap_or_default().to_string();
        let path = request_line.split(' ').nth(1).unwrap_or("/").to_string();
        let mut length = 0usize;
        let mut auth = None;
        for line in lines {
            if let Some((k, v)) = line.split_once(':') {
                let (k, v) = (k.trim().to_ascii_lowercase(), v.trim().to_string());
                if k == "content-length" {
                    length = v.parse().unwrap_or(0);
                } else if k == "authorization" {
                    auth = Some(v);
                }
            }
        }
        let start = head_end + 4;
        while buf.len() < start + length {
            match stream.read_buf(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
        let body = String::from_utf8_lossy(&buf[start..start + length]).to_string();
        buf.drain(..start + length);
        let answer = state
            .lock()
            .unwrap()
            .answer(&fixtures, &path, auth.as_deref(), &body);
        if write_answer(&mut stream, answer).await.is_err() {
            return;
        }
    }
}

/// Writes one response; returns `Err` when the connection is to be closed.
async fn write_answer(stream: &mut TcpStream, a: Answer) -> std::io::Result<()> {
    let reason = match a.status {
        200 => "OK",
        401 => "Unauthorized",
        404 => "Not Found",
        500 => "Internal Server Error",
        _ => "Teapot",
    };
    let mut head = format!("HTTP/1.1 {} {reason}\r\n", a.status);
    for (k, v) in &a.headers {
        if !["transfer-encoding", "connection", "content-length"]
            .contains(&k.to_ascii_lowercase().as_str())
        {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
    }
    // The node ends every JSON body with a newline.
    let body = a.body.map(|b| format!("{b}\n")).unwrap_or_default();
    if a.chunked {
        head.push_str("Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n");
        stream.write_all(head.as_bytes()).await?;
        for _ in 0..a.leading_spaces {
            stream.write_all(b"1\r\n \r\n").await?;
            stream.flush().await?;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        stream
            .write_all(format!("{:x}\r\n{body}\r\n0\r\n\r\n", body.len()).as_bytes())
            .await?;
        stream.shutdown().await?;
        return Err(std::io::ErrorKind::ConnectionAborted.into());
    }
    head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body.as_bytes()).await?;
    stream.flush().await
}

fn rpc_err(e: ChainError) -> (String, i64, String) {
    match e {
        ChainError::Rpc {
            method,
            code,
            message,
        } => (method, code, message),
        other => panic!("expected an RPC error, got {other:?}"),
    }
}

fn hexdata(s: &str) -> Bytes {
    Bytes::from(hex::decode(s).expect("hex"))
}

// ------------------------------------------------------------------ tests

#[test]
fn fixtures_load_and_agree_with_the_session_log() {
    let Some(all) = fixtures() else { return };
    let session =
        std::fs::read_to_string(fixture_dir().join("session.jsonl")).expect("session.jsonl");
    let lines: Vec<&str> = session.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(
        all.len(),
        lines.len(),
        "one file per exchange in session.jsonl"
    );
    for (f, line) in all.iter().zip(&lines) {
        let s: Value = serde_json::from_str(line).expect("session line");
        assert_eq!(s["seq"], f.seq, "{}", f.file);
        assert_eq!(s["file"], f.file.as_str());
        assert_eq!(s["http_status"], f.status, "{}", f.file);
    }
    assert!(
        all.iter().any(|f| f.leading_spaces > 0),
        "waitforlogs keep-alive spaces were found"
    );
}

/// Every QTUM amount in the recordings, as the JSON number text it was written in, with
/// its key and file: `"relayfee":0.00400000`, `"amount":-1.50000000`, and our own request
/// params (`"amount":0.75`).
fn recorded_amounts(all: &[Fixture]) -> Vec<(String, &'static str, String)> {
    const KEYS: &[&str] = &[
        "amount",
        "fee",
        "gasPrice",
        "immature",
        "incrementalfee",
        "relayfee",
        "stake",
        "trusted",
        "untrusted_pending",
        "value",
    ];
    let mut out = Vec::new();
    for f in all {
        for text in [Some(&f.request_text), f.response_text.as_ref()]
            .into_iter()
            .flatten()
        {
            for key in KEYS {
                let quoted = format!("\"{key}\":");
                for (at, _) in text.match_indices(&quoted) {
                    let rest = &text[at + quoted.len()..];
                    let number: String = rest
                        .chars()
                        .take_while(|c| {
                            c.is_ascii_digit() || matches!(c, '.' | '-' | 'e' | 'E' | '+')
                        })
                        .collect();
                    // A hex `value` or an object is no amount.
                    if number.contains('.') {
                        out.push((f.file.clone(), *key, number));
                    }
                }
            }
        }
    }
    out
}

#[test]
fn recorded_qtum_amounts_round_trip_through_the_amount_codec() {
    use springmail_sdk::chain::qtum::{format_qtum, format_qtum_fixed, parse_qtum};
    let Some(all) = fixtures() else { return };
    let amounts = recorded_amounts(&all);
    assert!(amounts.len() >= 30, "too few amounts found: {amounts:?}");
    let mut fixed = 0;
    for (file, key, text) in &amounts {
        // Debits are negative in gettransaction; the codec reads magnitudes.
        let magnitude = text.strip_prefix('-').unwrap_or(text);
        let sat =
            parse_qtum(magnitude).unwrap_or_else(|| panic!("{file}: {key} {text} does not parse"));
        // The node writes all eight places; our requests write the shortest form.
        let again = if magnitude.split_once('.').is_some_and(|(_, f)| f.len() == 8) {
            fixed += 1;
            format_qtum_fixed(sat)
        } else {
            format_qtum(sat)
        };
        assert_eq!(&again, magnitude, "{file}: {key}");
    }
    assert!(fixed > 0 && fixed < amounts.len(), "both forms occur");
    // Known values, to the satoshi.
    let find = |key: &str| {
        let (_, _, t) = amounts.iter().find(|(_, k, _)| *k == key).unwrap();
        parse_qtum(t.trim_start_matches('-')).unwrap()
    };
    assert_eq!(find("relayfee"), 400_000);
    assert_eq!(find("incrementalfee"), 10_000);
    assert_eq!(find("gasPrice"), 40);
    // qtumd's float fields (difficulty) are no amounts and are refused.
    assert_eq!(parse_qtum("4.656542373906925e-10"), None);
}

#[tokio::test]
async fn connect_reads_the_network_and_the_sender_hash160() {
    let Some(node) = Replay::start().await else {
        return;
    };
    let chain = node.connect().await;
    assert_eq!(chain.chain_id(), 8890);
    assert_eq!(chain.network(), "regtest");
    assert_eq!(chain.account(), SENDER_HEX);
    assert_eq!(chain.sender(), SENDER);
    let d = chain.describe();
    assert!(
        d.contains("regtest") && d.contains("8890") && d.contains(SENDER),
        "{d}"
    );
    assert!(format!("{:?}", node.config()).contains("<redacted>"));
    assert_eq!(node.sent("gethexaddress").len(), 1);
    node.assert_clean();
}

#[tokio::test]
async fn a_given_sender_hex_skips_gethexaddress() {
    let Some(node) = Replay::start().await else {
        return;
    };
    let mut cfg = node.config();
    cfg.sender_hex = Some(SENDER_HEX);
    let chain = QtumChain::connect(cfg).await.unwrap();
    assert_eq!(chain.account(), SENDER_HEX);
    assert!(node.sent("gethexaddress").is_empty());
    node.assert_clean();
}

#[tokio::test]
async fn a_regtest_node_is_not_mainnet() {
    let Some(node) = Replay::start().await else {
        return;
    };
    let err = QtumChain::connect(node.config().expect_chain_id(81))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            ChainError::ChainIdMismatch {
                expected: 81,
                got: 8890
            }
        ),
        "{err:?}"
    );
    assert!(!err.is_transient());
    node.assert_clean();
}

#[tokio::test]
async fn head_is_the_tip_height_and_its_block_time() {
    let Some(node) = Replay::start().await else {
        return;
    };
    let chain = node.connect().await;
    let head = chain.head().await.unwrap();
    let info = recorded_result(node.fixture("002-"));
    assert_eq!(head.number, info["blocks"].as_u64().unwrap());
    assert_eq!(head.timestamp, info["time"].as_u64().unwrap());
    assert_eq!((head.number, head.timestamp), (0, 1_504_695_029));
    node.assert_clean();
}

#[tokio::test]
async fn createcontract_then_receipt_gives_the_contract_address() {
    let Some(node) = Replay::start().await else {
        return;
    };
    let chain = node.connect().await;
    let code = hexdata(
        std::fs::read_to_string(
            std::env::var("SPRINGMAIL_QTUM_FIXTURES")
                .map(|d| format!("{d}/../contracts/RefEscrow.bin"))
                .unwrap_or_else(|_| REF_ESCROW_BIN.to_string()),
        )
        .expect("RefEscrow.bin")
        .trim(),
    );
    let txid = chain
        .submit(TxRequest {
            to: None,
            data: code,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        txid,
        b256!("1849155bea9625be793ac4d4a949cb540b9e1a40b196a2710cc3638b9ad842ad")
    );
    let sent = node.sent("createcontract");
    assert_eq!(
        without_id(&sent[0]),
        without_id(&node.fixture("027-").request_text)
    );
    assert!(
        sent[0].ends_with(",2500000,0.00000040,\"qSGMBbFXPcTYDSYbidwsaZzDSLDkQESm2e\"]}"),
        "{}",
        sent[0]
    );

    let r = chain.receipt(txid).await.unwrap().expect("mined");
    assert_eq!(r.tx_hash, txid);
    assert_eq!(r.block_number, 2112);
    assert_eq!(r.gas_used, 424_302);
    assert_eq!(r.status, TxStatus::Success);
    assert_eq!(r.contract_address, Some(ESCROW));
    assert!(r.logs.is_empty());
    node.assert_clean();
}

#[tokio::test]
async fn a_create_cannot_carry_value() {
    let Some(node) = Replay::start().await else {
        return;
    };
    let chain = node.connect().await;
    let tx = TxRequest {
        to: None,
        data: hexdata("6080"),
        value: U256::from(1),
        gas_limit: None,
    };
    assert!(matches!(
        chain.submit(tx).await,
        Err(ChainError::Invalid(_))
    ));
    assert!(node.sent("createcontract").is_empty());
    node.assert_clean();
}

#[tokio::test]
async fn a_deposit_of_1_5_qtum_sends_amount_1_5() {
    let Some(node) = Replay::start().await else {
        return;
    };
    let chain = node.connect().await;
    let data = hexdata("b214faa5ff8d9819fc0e12bf0d24892e45987e249a28dce836a85cad60e28eaaa8c6d976");
    let tx = TxRequest {
        to: Some(ESCROW),
        data,
        value: U256::from(150_000_000u64),
        gas_limit: None,
    };
    let txid = chain.submit(tx).await.unwrap();
    assert_eq!(
        txid,
        b256!("74c6f3a9ca3145c91cf53b320e91041b31528f7e1453a6d3e8893598f48f318b")
    );
    let sent = node.sent("sendtocontract");
    assert_eq!(sent.len(), 1);
    assert_eq!(
        without_id(&sent[0]),
        without_id(&node.fixture("032-").request_text)
    );
    assert!(sent[0].contains(",1.5,250000,0.00000040,"), "{}", sent[0]);
    assert!(
        sent[0].starts_with(r#"{"jsonrpc":"1.0","id":"sm-"#),
        "{}",
        sent[0]
    );

    let r = chain.receipt(txid).await.unwrap().expect("mined");
    assert_eq!((r.block_number, r.gas_used), (2113, 68_183));
    assert_eq!(r.status, TxStatus::Success);
    assert_eq!(r.contract_address, None, "a call creates nothing");
    assert_eq!(r.logs.len(), 1);
    let log = &r.logs[0];
    assert_eq!(log.address, ESCROW);
    assert_eq!(log.topics(), &[DEPOSITED, KEY1, SENDER_HEX.into_word()]);
    assert_eq!(
        U256::abi_decode(&log.data.data).unwrap(),
        U256::from(150_000_000u64),
        "msg.value is in satoshi"
    );
    node.assert_clean();
}

#[tokio::test]
async fn an_unknown_or_unmined_tx_has_no_receipt() {
    let Some(node) = Replay::start().await else {
        return;
    };
    let chain = node.connect().await;
    let unknown = B256::repeat_byte(0xab);
    assert_eq!(chain.receipt(unknown).await.unwrap(), None);
    node.assert_clean();
}

#[tokio::test]
async fn reverted_receipts_carry_the_reason_when_there_is_one() {
    let Some(node) = Replay::start().await else {
        return;
    };
    let chain = node.connect().await;

    // require(..., "key in use"): exceptedMessage holds the reason.
    let r = chain
        .receipt(b256!(
            "d3a9eb409360dd37cbd02b539d90f76dfbdbdc64fec56d5351dbd11e01cfb5dc"
        ))
        .await
        .unwrap()
        .expect("mined");
    assert_eq!(
        r.status,
        TxStatus::Reverted {
            data: None,
            message: Some("key in use".into())
        }
    );
    assert_eq!((r.block_number, r.gas_used), (2118, 24_153));
    assert!(r.logs.is_empty() && !r.succeeded());

    // A custom error: exceptedMessage is empty and qtumd keeps no revert data.
    let r = chain
        .receipt(b256!(
            "69a406ba0d51a7e3190e661177c9a3c0dde9cf4d3cf6d8c0dc29d52ad4a08bbe"
        ))
        .await
        .unwrap()
        .expect("mined");
    assert_eq!(
        r.status,
        TxStatus::Reverted {
            data: None,
            message: None
        }
    );
    assert_eq!((r.block_number, r.gas_used), (2116, 26_732));
    node.assert_clean();
}

#[tokio::test]
async fn callcontract_returns_output_or_revert_data() {
    let Some(node) = Replay::start().await else {
        return;
    };
    let chain = node.connect().await;
    let unknown_key = b256!("e788ea2014693dcdb86767aceb3860a432fc626c6477a6c53016aff40726842b");

    // amountOf(key1), no sender: 1.5 QTUM in satoshi.
    let out = chain
        .call_from(
            ESCROW,
            hexdata("8251eac9ff8d9819fc0e12bf0d24892e45987e249a28dce836a85cad60e28eaaa8c6d976"),
            None,
        )
        .await
        .unwrap();
    let CallResult::Success(out) = out else {
        panic!("{out:?}")
    };
    assert_eq!(U256::abi_decode(&out).unwrap(), U256::from(150_000_000u64));

    // mustAmountOf(unknown): require(..., "unknown key") gives Error(string) data.
    let mut data = hex::decode("72c08455").unwrap();
    data.extend_from_slice(unknown_key.as_slice());
    let CallResult::Reverted(out) = chain.call_from(ESCROW, data.into(), None).await.unwrap()
    else {
        panic!()
    };
    assert_eq!(revert_reason(&out).as_deref(), Some("unknown key"));

    // strictAmountOf(unknown): the custom error UnknownKey(bytes32).
    let mut data = hex::decode("7baf3bf6").unwrap();
    data.extend_from_slice(unknown_key.as_slice());
    let CallResult::Reverted(out) = chain.call_from(ESCROW, data.into(), None).await.unwrap()
    else {
        panic!()
    };
    assert_eq!(UnknownKey::abi_decode(&out).unwrap().key, unknown_key);
    assert_eq!(revert_reason(&out), None);
    node.assert_clean();
}

#[tokio::test]
async fn the_trait_call_simulates_as_the_sender() {
    let Some(node) = Replay::start().await else {
        return;
    };
    let chain = node.connect().await;
    // claim(unknown key, to), simulated with senderaddress = the configured sender (045).
    let data = hexdata(
        "96c144f0e788ea2014693dcdb86767aceb3860a432fc626c6477a6c53016aff40726842b\
         00000000000000000000000010e1251a038494c6494e349cb4bee0e6080d34a2",
    );
    let CallResult::Reverted(out) = chain.call(ESCROW, data).await.unwrap() else {
        panic!()
    };
    let err = UnknownKey::abi_decode(&out).unwrap();
    assert_eq!(
        err.key,
        b256!("e788ea2014693dcdb86767aceb3860a432fc626c6477a6c53016aff40726842b")
    );
    assert!(node.sent("callcontract")[0].contains(SENDER));
    node.assert_clean();
}

#[tokio::test]
async fn simulate_runs_callcontract_with_the_sender_gas_and_value_and_sends_nothing() {
    let Some(node) = Replay::start().await else {
        return;
    };
    let chain = node.connect().await;
    // Not recorded with gas and amount: 045's answer (claim of an unknown key) stands in
    // for what qtumd says to this five-parameter callcontract.
    node.answer_with("callcontract", "045-");
    let data = hexdata(
        "96c144f0e788ea2014693dcdb86767aceb3860a432fc626c6477a6c53016aff40726842b\
         00000000000000000000000010e1251a038494c6494e349cb4bee0e6080d34a2",
    );
    let tx = TxRequest {
        to: Some(ESCROW),
        data: data.clone(),
        value: U256::from(150_000_000u64),
        gas_limit: None,
    };
    let CallResult::Reverted(out) = chain.simulate(&tx).await.unwrap() else {
        panic!("the recorded answer reverts")
    };
    assert!(UnknownKey::abi_decode(&out).is_ok());
    let sent = node.sent("callcontract");
    assert_eq!(sent.len(), 1);
    let params = &serde_json::from_str::<Value>(&sent[0]).unwrap()["params"];
    assert_eq!(params[0], hex::encode(ESCROW));
    assert_eq!(params[1], hex::encode(&data));
    assert_eq!(params[2], SENDER, "msg.sender is the sending address");
    assert_eq!(params[3], 250_000, "the gas limit sendtocontract would use");
    assert_eq!(params[4], 1.5, "the value in QTUM");
    assert!(node.sent("sendtocontract").is_empty());
}

#[tokio::test]
async fn a_transaction_outside_the_mempool_is_not_pending() {
    let Some(node) = Replay::start().await else {
        return;
    };
    let chain = node.connect().await;
    let txid = b256!("7e4e000000000000000000000000000000000000000000000000000000000001");
    // Not recorded: qtumd's answer to getmempoolentry of a txid it does not hold
    // (RPC_INVALID_ADDRESS_OR_KEY, as for getrawtransaction of an unknown txid, 100).
    node.add_synthetic(
        "/",
        "getmempoolentry",
        json!([hex::encode(txid)]),
        500,
        r#"{"result":null,"error":{"code":-5,"message":"Transaction not in mempool"},"id":"sm-1"}"#,
    );
    assert!(!chain.is_pending(txid).await.unwrap());
}

/// All logs of a recorded searchlogs answer, as (block, topics) for comparison.
fn recorded_logs(f: &Fixture, keep: impl Fn(&[B256]) -> bool) -> Vec<(u64, Vec<B256>)> {
    let mut out = Vec::new();
    for r in recorded_result(f).as_array().unwrap() {
        for l in r["log"].as_array().unwrap() {
            let topics: Vec<B256> = l["topics"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t.as_str().unwrap().parse().unwrap())
                .collect();
            if keep(&topics) {
                out.push((r["blockNumber"].as_u64().unwrap(), topics));
            }
        }
    }
    out
}

#[tokio::test]
async fn searchlogs_by_topic_gives_the_deposits() {
    let Some(node) = Replay::start().await else {
        return;
    };
    let chain = node.connect().await;
    let filter = LogFilter {
        address: ESCROW,
        topics: vec![Some(DEPOSITED)],
        from_block: 0,
        to_block: None,
    };
    let logs = chain.logs(&filter).await.unwrap();
    let want = recorded_logs(node.fixture("070-"), |t| t.first() == Some(&DEPOSITED));
    assert_eq!(logs.len(), want.len());
    assert!(!logs.is_empty());
    for (l, (block, topics)) in logs.iter().zip(&want) {
        assert_eq!(l.block_number, *block);
        assert_eq!(l.log.address, ESCROW);
        assert_eq!(l.log.topics(), topics.as_slice());
        assert_eq!(l.log.topics()[0], DEPOSITED);
    }
    assert_eq!(
        logs[0].tx_hash,
        b256!("74c6f3a9ca3145c91cf53b320e91041b31528f7e1453a6d3e8893598f48f318b")
    );
    assert!(logs
        .windows(2)
        .all(|w| (w[0].block_number, w[0].log_index) < (w[1].block_number, w[1].log_index)));
    node.assert_clean();
}

#[tokio::test]
async fn searchlogs_over_a_range_gives_every_event() {
    let Some(node) = Replay::start().await else {
        return;
    };
    let chain = node.connect().await;
    let filter = LogFilter {
        address: ESCROW,
        topics: vec![],
        from_block: 2113,
        to_block: Some(2119),
    };
    let logs = chain.logs(&filter).await.unwrap();
    let want = recorded_logs(node.fixture("069-"), |_| true);
    assert_eq!(
        logs.iter()
            .map(|l| (l.block_number, l.log.topics().to_vec()))
            .collect::<Vec<_>>(),
        want
    );
    let claimed = keccak256("Claimed(bytes32,address,uint256)");
    let refunded = keccak256("Refunded(bytes32,address,uint256)");
    for sig in [DEPOSITED, claimed, refunded] {
        assert!(logs.iter().any(|l| l.log.topics()[0] == sig), "{sig}");
    }
    node.assert_clean();
}

#[tokio::test]
async fn a_positional_topic_filter_sends_null_wildcards_and_filters_the_receipts() {
    let Some(node) = Replay::start().await else {
        return;
    };
    let chain = node.connect().await;
    // No recording has searchlogs with [null, key]; answer with the range search (069)
    // and check that the client keeps only the matching logs of those whole receipts.
    node.answer_with("searchlogs", "069-");
    let filter = LogFilter {
        address: ESCROW,
        topics: vec![None, Some(KEY1), None],
        from_block: 2113,
        to_block: Some(2119),
    };
    let logs = chain.logs(&filter).await.unwrap();
    let sent = node.sent("searchlogs");
    assert!(
        sent[0].ends_with(&format!(
            r#""params":[2113,2119,{{"addresses":["{}"]}},{{"topics":[null,"{}"]}}]}}"#,
            hex::encode(ESCROW),
            hex::encode(KEY1)
        )),
        "{}",
        sent[0]
    );
    let want = recorded_logs(node.fixture("069-"), |t| t.get(1) == Some(&KEY1));
    assert_eq!(want.len(), 2, "the deposit and the claim of key1");
    assert_eq!(
        logs.iter()
            .map(|l| (l.block_number, l.log.topics().to_vec()))
            .collect::<Vec<_>>(),
        want
    );
    node.assert_clean();
}

#[tokio::test]
async fn log_confirmations_leave_out_young_blocks() {
    let Some(node) = Replay::start().await else {
        return;
    };
    let mut cfg = node.config();
    cfg.log_confirmations = 1;
    let chain = QtumChain::connect(cfg).await.unwrap();
    // The recorded tip (002) is block 0: nothing has a confirmation yet.
    let filter = LogFilter {
        address: ESCROW,
        topics: vec![],
        from_block: 0,
        to_block: None,
    };
    assert!(chain.logs(&filter).await.unwrap().is_empty());
    assert!(node.sent("searchlogs").is_empty());
    node.assert_clean();
}

#[tokio::test]
async fn waitforlogs_keepalive_spaces_are_trimmed() {
    let Some(node) = Replay::start().await else {
        return;
    };
    let chain = node.connect().await;
    assert!(node.fixture("073-").leading_spaces >= 1);
    let addresses = json!({"addresses": [hex::encode(ESCROW)]});
    let v = chain
        .rpc(
            "waitforlogs",
            vec![json!(2120), Value::Null, addresses.clone(), json!(0)],
        )
        .await
        .unwrap();
    assert_eq!(v["count"], 1);
    assert_eq!(v["entries"][0]["topics"][0], hex::encode(DEPOSITED));
    let v = chain
        .rpc(
            "waitforlogs",
            vec![json!(2113), json!(2119), addresses, json!(1)],
        )
        .await
        .unwrap();
    assert_eq!(
        v["nextblock"],
        recorded_result(node.fixture("071-"))["nextblock"]
    );
    node.assert_clean();
}

#[tokio::test]
async fn a_contract_balance_comes_from_getaccountinfo() {
    let Some(node) = Replay::start().await else {
        return;
    };
    let chain = node.connect().await;
    assert_eq!(chain.balance(ESCROW).await.unwrap(), U256::ZERO);
    assert_eq!(node.sent("getaccountinfo").len(), 1);
    node.assert_clean();
}

#[tokio::test]
async fn a_wallet_address_balance_sums_its_utxos_exactly() {
    let Some(node) = Replay::start().await else {
        return;
    };
    let chain = node.connect().await;
    // Not recorded: getaccountinfo of a P2PKH address. qtumd answers it like callcontract
    // does for an address without an account (097), so that answer is reused.
    let no_account = node.fixture("097-").response_text.clone().unwrap();
    node.add_synthetic(
        "/",
        "getaccountinfo",
        json!([hex::encode(SENDER_HEX)]),
        500,
        &no_account,
    );
    // Not recorded: listunspent without the `maximumCount` option the recording used (026);
    // its recorded answer stands in for the full list.
    let utxos = node.fixture("026-").response_text.clone().unwrap();
    node.add_synthetic(
        "/wallet/springmail",
        "listunspent",
        json!([1, 9_999_999, [SENDER]]),
        200,
        &utxos,
    );
    let want: u64 = recorded_result(node.fixture("026-"))
        .as_array()
        .unwrap()
        .iter()
        .map(|u| (u["amount"].as_f64().unwrap() * 1e8).round() as u64)
        .sum();
    assert_eq!(chain.balance(SENDER_HEX).await.unwrap(), U256::from(want));
    assert_eq!(
        want, 4_000_000_000_000,
        "two mature coinbases of 20000 QTUM"
    );
    // getaddressinfo (013) was recorded as is.
    assert_eq!(node.sent("getaddressinfo").len(), 1);
    node.assert_clean();
}

#[tokio::test]
async fn node_errors_keep_their_code_and_message() {
    let Some(node) = Replay::start().await else {
        return;
    };
    let chain = node.connect().await;

    // callcontract on an address without a contract (097).
    let data = hexdata("8251eac9ff8d9819fc0e12bf0d24892e45987e249a28dce836a85cad60e28eaaa8c6d976");
    let err = chain
        .call_from(Address::repeat_byte(0x11), data, None)
        .await
        .unwrap_err();
    assert!(!err.is_transient());
    assert_eq!(
        rpc_err(err),
        ("callcontract".into(), -5, "Address does not exist".into())
    );

    let data = hexdata("b214faa5e0d47ca1bc1eb62e650fc1fd660a9bfbf7cba8dc6337d81df7ea9aa9071a24a5");
    // sendtocontract to an address without a contract (095).
    let tx = TxRequest {
        to: Some(Address::ZERO),
        data: data.clone(),
        value: U256::from(10_000_000u64),
        gas_limit: None,
    };
    assert_eq!(
        rpc_err(chain.submit(tx).await.unwrap_err()),
        (
            "sendtocontract".into(),
            -5,
            "contract address does not exist".into()
        )
    );
    // A gas limit above the block gas limit (094).
    let tx = TxRequest {
        to: Some(ESCROW),
        data: data.clone(),
        value: U256::from(10_000_000u64),
        gas_limit: Some(100_000_000),
    };
    assert_eq!(
        rpc_err(chain.submit(tx).await.unwrap_err()),
        (
            "sendtocontract".into(),
            -3,
            "Invalid value for gasLimit (Maximum is: 40000000)".into()
        )
    );
    // More than the wallet has: 100000000 QTUM (092).
    let tx = TxRequest {
        to: Some(ESCROW),
        data: hexdata("b214faa5963e97a85edd78049a048fbdd799a1a3af646bce5d6b4c4aa8582a739db0a10b"),
        value: U256::from(10_000_000_000_000_000u64),
        gas_limit: None,
    };
    assert_eq!(
        rpc_err(chain.submit(tx).await.unwrap_err()),
        ("sendtocontract".into(), -6, "Insufficient funds".into())
    );

    // A method the node does not have: HTTP 404 with a JSON body (085).
    assert_eq!(
        rpc_err(chain.rpc("nosuchmethod", vec![]).await.unwrap_err()),
        ("nosuchmethod".into(), -32601, "Method not found".into())
    );
    node.assert_clean();
}

#[tokio::test]
async fn a_gas_price_below_the_minimum_is_refused_by_the_node() {
    let Some(node) = Replay::start().await else {
        return;
    };
    let mut cfg = node.config();
    cfg.gas_price_sat = 1;
    let chain = QtumChain::connect(cfg).await.unwrap();
    let data = hexdata("b214faa5e0d47ca1bc1eb62e650fc1fd660a9bfbf7cba8dc6337d81df7ea9aa9071a24a5");
    let tx = TxRequest {
        to: Some(ESCROW),
        data,
        value: U256::from(10_000_000u64),
        gas_limit: None,
    };
    let (_, code, message) = rpc_err(chain.submit(tx).await.unwrap_err());
    assert_eq!(
        (code, message.as_str()),
        (-3, "Invalid value for gasPrice (Minimum is: 0.0000004)")
    );
    assert!(node.sent("sendtocontract")[0].contains(",0.1,250000,0.00000001,"));
    node.assert_clean();
}

#[tokio::test]
async fn a_parse_error_answer_is_an_rpc_error() {
    let Some(node) = Replay::start().await else {
        return;
    };
    let chain = node.connect().await;
    // The client never sends broken JSON; replay the node's answer to it (109: HTTP 500, id null).
    node.answer_with("getblockcount", "109-");
    assert_eq!(
        rpc_err(chain.rpc("getblockcount", vec![]).await.unwrap_err()),
        ("getblockcount".into(), -32700, "Parse error".into())
    );
    node.assert_clean();
}

#[tokio::test]
async fn wallet_calls_go_to_the_wallet_path() {
    let Some(node) = Replay::start().await else {
        return;
    };
    let chain = node.connect().await;
    assert_eq!(
        chain.wallet_rpc("getbalance", vec![]).await.unwrap(),
        json!(2220000.0)
    );

    let mut cfg = node.config();
    cfg.wallet = None;
    let chain = QtumChain::connect(cfg).await.unwrap();
    let (_, code, message) = rpc_err(chain.wallet_rpc("getbalance", vec![]).await.unwrap_err());
    assert_eq!(code, -19, "{message}");
    assert!(message.starts_with("Wallet file not specified"));

    let chain = QtumChain::connect(node.config().wallet("nosuchwallet"))
        .await
        .unwrap();
    let (_, code, message) = rpc_err(chain.wallet_rpc("getbalance", vec![]).await.unwrap_err());
    assert_eq!(
        (code, message.as_str()),
        (-18, "Requested wallet does not exist or is not loaded")
    );
    node.assert_clean();
}

#[tokio::test]
async fn refused_credentials_are_an_rpc_error() {
    let Some(node) = Replay::start().await else {
        return;
    };
    let mut cfg = node.config();
    cfg.password = "not-the-password".into();
    let err = QtumChain::connect(cfg).await.unwrap_err();
    assert!(!err.is_transient());
    let (method, code, message) = rpc_err(err);
    assert_eq!((method.as_str(), code), ("getblockchaininfo", 401));
    assert!(message.contains("credentials"), "{message}");
    assert!(!message.contains("not-the-password"));
}

#[tokio::test]
async fn an_unreachable_node_is_transient() {
    // A port that was free a moment ago.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let cfg = QtumConfig::new(
        format!("http://user:secret@127.0.0.1:{port}"),
        "u",
        "secret",
        SENDER,
    );
    let err = QtumChain::connect(cfg).await.unwrap_err();
    assert!(matches!(err, ChainError::Unreachable { .. }), "{err:?}");
    assert!(err.is_transient());
    assert!(!err.to_string().contains("secret"), "{err}");
}
