//! The broker's HTTP service (axum): `/healthz` and `/metrics` always; with a
//! [`ClaimBackend`] (`[http]` in the watcher's configuration) also the claim page and
//! its API:
//!
//! | route | what |
//! |---|---|
//! | `GET /claim`, `/claim/claim.js`, `/claim/claim.css` | the static page (web/dist, built in) — the same bytes for every link |
//! | `GET /api/deposits/{claimKey}` | the deposit's public state, read from the chain (and the page's own submission) |
//! | `POST /api/claims` | a claim signed in the browser with the link key (link mode) |
//!
//! A link's secret is in its URL fragment, which browsers never send: the server sees
//! `GET /claim` and the claim key's *address*. A GET changes nothing anywhere. A POST is
//! checked as the contract will check it (chain, escrow, the stored deposit hash, link
//! mode, expiry and deadline by the chain's clock, the claim key's signature, the fee
//! within the signed maximum), simulated (no gas is spent on a claim that would revert),
//! and then recorded in the journal as an accepted claim in the [`WEB_MAILBOX`]
//! pseudo-mailbox, taking the deposit's claim slot; the watcher's submitter sends it
//! like a mail claim, so a crash neither loses nor repeats it, and a second POST for the
//! same claim key answers with the first one's state instead of submitting again.
//!
//! Errors are RFC 9457 `application/problem+json` with a sentence a person can act on.
//! No cookies, no sessions. Every response carries a strict Content-Security-Policy
//! (scripts and styles from this origin only, no inline script, no connection but to
//! this origin). `/api/` requests are rate-limited per client address.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use alloy::primitives::{Address, Bytes, B256};
use axum::body::Body;
use axum::extract::rejection::BytesRejection;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Path, State};
use axum::http::{header, HeaderValue, Request, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;
use serde_json::json;
use springmail_sdk::amount::{format_units, Asset};
use springmail_sdk::chain::TxRequest;
use springmail_sdk::client::{ClientError, DepositStatus, SignedClaim, SpringMail};
use springmail_sdk::deposit::{Deposit, MAX_AMOUNT, MAX_TIMESTAMP};
use springmail_sdk::eip712::ClaimAuth;
use springmail_sdk::keys::Signature;
use tokio::sync::Notify;
use tracing::{info, warn};

use crate::journal::{Journal, MessageRecord, MessageState, WEB_MAILBOX};
use crate::metrics::Metrics;
use crate::verify::{format_time, ClaimPlan, VerifyPolicy};

/// The page, built by `npm run build` in web/ (committed, so `cargo build` needs no Node).
const INDEX_HTML: &[u8] = include_bytes!("../../web/dist/index.html");
const CLAIM_JS: &[u8] = include_bytes!("../../web/dist/claim.js");
const CLAIM_CSS: &[u8] = include_bytes!("../../web/dist/claim.css");
/// Longest a request may take, body included (tower-http answers 408 after it).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// The Content-Security-Policy of every response.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
     connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// What the claim API needs from the watcher ([`crate::Watcher::claim_backend`]).
#[derive(Clone)]
pub struct ClaimBackend {
    /// The escrow on its chain, as the relayer account.
    pub client: SpringMail,
    /// The watcher's journal (claims go through it).
    pub journal: Arc<Journal>,
    /// Fees and margins.
    pub policy: VerifyPolicy,
    /// Counters.
    pub metrics: Arc<Metrics>,
    /// Wakes the pipeline when a claim was recorded.
    pub wake: Arc<Notify>,
}

impl std::fmt::Debug for ClaimBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClaimBackend")
            .field("client", &self.client)
            .finish()
    }
}

/// Settings of the claim page and its API (`[http]`).
#[derive(Debug, Clone)]
pub struct ClaimSettings {
    /// The watcher's mailbox, for the page's `mailto:` in email mode.
    pub reply_to: Option<String>,
    /// `/api/` requests per client address per minute.
    pub rate_limit_per_minute: u32,
    /// The largest request body.
    pub max_body_bytes: usize,
    /// How long `POST /api/claims` waits for the transaction id before answering without it.
    pub answer_wait: Duration,
    /// Tests: every request line the server received (`GET /claim`, with any query), as
    /// the request log has it — to show that no link data reaches the server.
    pub request_log: Option<RequestLog>,
}

/// The request lines a server received ([`ClaimSettings::request_log`]).
pub type RequestLog = Arc<Mutex<Vec<String>>>;

impl Default for ClaimSettings {
    fn default() -> Self {
        ClaimSettings {
            reply_to: None,
            rate_limit_per_minute: 60,
            max_body_bytes: 4096,
            answer_wait: Duration::from_secs(10),
            request_log: None,
        }
    }
}

struct AppState {
    metrics: Arc<Metrics>,
    max_loop_age: u64,
    claim: Option<(ClaimBackend, ClaimSettings)>,
    limiter: RateLimiter,
    request_log: Option<RequestLog>,
}

/// Fixed one-minute windows per client address.
struct RateLimiter {
    per_minute: u32,
    windows: Mutex<HashMap<IpAddr, (Instant, u32)>>,
}

impl RateLimiter {
    fn allow(&self, ip: IpAddr) -> bool {
        let now = Instant::now();
        let mut w = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        if w.len() > 100_000 {
            w.retain(|_, (start, _)| now.duration_since(*start) < Duration::from_secs(60));
        }
        let e = w.entry(ip).or_insert((now, 0));
        if now.duration_since(e.0) >= Duration::from_secs(60) {
            *e = (now, 0);
        }
        e.1 = e.1.saturating_add(1);
        e.1 <= self.per_minute
    }
}

/// An RFC 9457 problem.
#[derive(Debug)]
pub struct Problem {
    status: StatusCode,
    code: &'static str,
    title: &'static str,
    detail: String,
    extra: serde_json::Value,
}

impl Problem {
    fn new(
        status: StatusCode,
        code: &'static str,
        title: &'static str,
        detail: impl Into<String>,
    ) -> Self {
        Problem {
            status,
            code,
            title,
            detail: detail.into(),
            extra: serde_json::Value::Null,
        }
    }

    fn with(mut self, extra: serde_json::Value) -> Self {
        self.extra = extra;
        self
    }

    fn bad(code: &'static str, detail: impl Into<String>) -> Self {
        Problem::new(
            StatusCode::BAD_REQUEST,
            code,
            "The request is not valid",
            detail,
        )
    }

    fn refused(code: &'static str, detail: impl Into<String>) -> Self {
        Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            code,
            "The claim cannot be paid",
            detail,
        )
    }

    fn conflict(code: &'static str, detail: impl Into<String>) -> Self {
        Problem::new(
            StatusCode::CONFLICT,
            code,
            "The deposit is not open",
            detail,
        )
    }

    fn chain(e: ClientError) -> Self {
        warn!(error = %e, "reading the chain failed");
        Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "chain-unavailable",
            "The chain cannot be read",
            "The broker cannot read the chain right now. Nothing was changed; please try again in a minute.",
        )
    }

    fn internal(what: &str) -> Self {
        warn!(error = what, "internal error");
        Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "The broker failed",
            "The broker could not record the claim. Nothing was sent; please try again later.",
        )
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let mut body = json!({
            "type": format!("urn:springmail:problem:{}", self.code),
            "title": self.title,
            "status": self.status.as_u16(),
            "detail": self.detail,
            "code": self.code,
        });
        if let (Some(obj), serde_json::Value::Object(extra)) = (body.as_object_mut(), self.extra) {
            obj.extend(extra);
        }
        let mut res = (self.status, body.to_string()).into_response();
        res.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        res
    }
}

fn json_response(status: StatusCode, value: serde_json::Value) -> Response {
    let mut res = (status, value.to_string()).into_response();
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    res
}

/// The router: `/healthz` and `/metrics`, plus the claim page and API when `claim` is given.
pub fn router(
    metrics: Arc<Metrics>,
    max_loop_age: u64,
    claim: Option<(ClaimBackend, ClaimSettings)>,
) -> Router {
    let per_minute = claim
        .as_ref()
        .map(|(_, s)| s.rate_limit_per_minute)
        .unwrap_or(60);
    let max_body = claim
        .as_ref()
        .map(|(_, s)| s.max_body_bytes)
        .unwrap_or(4096);
    let with_claims = claim.is_some();
    let request_log = claim.as_ref().and_then(|(_, s)| s.request_log.clone());
    let state = Arc::new(AppState {
        metrics,
        max_loop_age,
        claim,
        limiter: RateLimiter {
            per_minute,
            windows: Mutex::new(HashMap::new()),
        },
        request_log,
    });
    let mut r = Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics_text));
    if with_claims {
        r = r
            .route("/claim", get(page_html))
            .route("/claim/claim.js", get(page_js))
            .route("/claim/claim.css", get(page_css))
            .route("/api/deposits/{claim_key}", get(get_deposit))
            .route("/api/claims", post(post_claim));
    }
    // Inner: the JSON extractors' limit, refused as problem+json. Outer (tower-http): a
    // hard cap on any body and a deadline on any request, so a client that trickles
    // bytes cannot hold a connection's handler open.
    r.fallback(not_found)
        .layer(DefaultBodyLimit::max(max_body))
        .layer(axum::middleware::from_fn_with_state(state.clone(), guard))
        .layer(tower_http::limit::RequestBodyLimitLayer::new(
            max_body.saturating_mul(4),
        ))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            REQUEST_TIMEOUT,
        ))
        .with_state(state)
}

/// Serves [`router`] on `addr` until the task is dropped. Returns the bound address
/// (port 0 picks a free one).
pub async fn serve(
    addr: SocketAddr,
    metrics: Arc<Metrics>,
    max_loop_age: u64,
    claim: Option<(ClaimBackend, ClaimSettings)>,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let app =
        router(metrics, max_loop_age, claim).into_make_service_with_connect_info::<SocketAddr>();
    let task = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            warn!(error = %e, "the HTTP service stopped");
        }
    });
    info!(%bound, "HTTP service listening");
    Ok((bound, task))
}

/// Logs each request (method, path, status: never a query or body), rate-limits
/// `/api/`, and sets the security headers.
async fn guard(State(state): State<Arc<AppState>>, req: Request<Body>, next: Next) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    if let Some(log) = &state.request_log {
        log.lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(format!("{method} {}", req.uri()));
    }
    let ip = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    let mut res = if path.starts_with("/api/") && ip.is_some_and(|ip| !state.limiter.allow(ip)) {
        let mut res = Problem::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate-limited",
            "Too many requests",
            "Too many requests from your address. Wait a minute and try again.",
        )
        .into_response();
        res.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("60"));
        res
    } else {
        next.run(req).await
    };
    info!(target: "springmail::http", %method, %path, status = res.status().as_u16(), "request");
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    res
}

async fn healthz(State(state): State<Arc<AppState>>) -> Response {
    if state.metrics.healthy(state.max_loop_age) {
        (StatusCode::OK, "ok\n").into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "the watcher loop is not running\n",
        )
            .into_response()
    }
}

async fn metrics_text(State(state): State<Arc<AppState>>) -> Response {
    let mut res = state.metrics.render().into_response();
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(crate::metrics::CONTENT_TYPE),
    );
    res
}

fn asset_response(bytes: &'static [u8], content_type: &'static str) -> Response {
    let mut res = bytes.into_response();
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    res
}

async fn page_html() -> Response {
    asset_response(INDEX_HTML, "text/html; charset=utf-8")
}

async fn page_js() -> Response {
    asset_response(CLAIM_JS, "text/javascript; charset=utf-8")
}

async fn page_css() -> Response {
    asset_response(CLAIM_CSS, "text/css; charset=utf-8")
}

async fn not_found() -> Problem {
    Problem::new(
        StatusCode::NOT_FOUND,
        "not-found",
        "Not found",
        "There is nothing at this address.",
    )
}

fn backend(state: &AppState) -> Result<&(ClaimBackend, ClaimSettings), Problem> {
    state.claim.as_ref().ok_or_else(|| {
        Problem::new(
            StatusCode::NOT_FOUND,
            "not-found",
            "Not found",
            "This broker does not serve the claim page.",
        )
    })
}

fn parse_claim_key(text: &str) -> Result<Address, Problem> {
    let hex = text
        .strip_prefix("0x")
        .or_else(|| text.strip_prefix("0X"))
        .filter(|h| h.len() == 40 && h.bytes().all(|b| b.is_ascii_hexdigit()))
        .ok_or_else(|| {
            Problem::bad(
                "bad-claim-key",
                "The claim key must be 0x followed by 40 hex digits (the link's key address).",
            )
        })?;
    hex.parse::<Address>()
        .map_err(|_| Problem::bad("bad-claim-key", "The claim key is not an address."))
}

/// The asset of a deposit and this broker's fee for it (`None`: a token it does not handle).
fn asset_and_fee(b: &ClaimBackend, d: &Deposit) -> Option<(Asset, u128)> {
    if d.is_native() {
        Some((
            Asset::for_chain(b.client.escrow_id().chain_id),
            b.policy.native_fee,
        ))
    } else {
        b.policy
            .tokens
            .iter()
            .find(|t| t.address == d.token)
            .map(|t| (t.asset.clone(), t.fee))
    }
}

/// The asset of a claimed or refunded deposit, from its `Deposited` event (the
/// settling events do not name the token): null for a token this broker does not list,
/// which the page then shows in base units.
async fn settled_asset_json(b: &ClaimBackend, key: Address) -> Result<serde_json::Value, Problem> {
    let deposit = b.client.deposited(key).await.map_err(Problem::chain)?;
    let asset = match &deposit {
        Some(d) => asset_and_fee(b, d).map(|(a, _)| a),
        None => Some(Asset::for_chain(b.client.escrow_id().chain_id)),
    };
    Ok(asset
        .map(|a| json!({"symbol": a.symbol(), "decimals": a.decimals()}))
        .unwrap_or(serde_json::Value::Null))
}

fn deposit_json(d: &Deposit) -> serde_json::Value {
    json!({
        "sender": d.sender.to_string(),
        "token": d.token.to_string(),
        "amount": d.amount.to_string(),
        "expiry": d.expiry,
        "flags": d.flags,
        "watcher": d.watcher.to_string(),
        "recipient": d.recipient.to_string(),
    })
}

/// The page's own submission (a claim recorded through this API), as JSON.
fn submission_json(m: &MessageRecord) -> serde_json::Value {
    let state = match (m.state, m.outcome.as_ref().map(|o| o.kind.as_str())) {
        (MessageState::Accepted | MessageState::Received, _) => "accepted",
        (MessageState::Submitting, _) => "submitting",
        (MessageState::Submitted, _) => "submitted",
        (_, Some("claimed")) => "claimed",
        (_, _) => "refused",
    };
    let error = match (&m.outcome, state) {
        (Some(o), "refused") => Some(o.text.clone()),
        _ => None,
    };
    json!({ "state": state, "txId": m.tx_hash, "error": error })
}

fn web_submission(b: &ClaimBackend, key: Address) -> Result<Option<MessageRecord>, Problem> {
    match b.journal.claim_holder(&key.to_string()) {
        Ok(m) => Ok(m.filter(|m| m.key.mailbox == WEB_MAILBOX)),
        Err(e) => Err(Problem::internal(&e.to_string())),
    }
}

async fn get_deposit(
    State(state): State<Arc<AppState>>,
    Path(claim_key): Path<String>,
) -> Result<Response, Problem> {
    let (b, settings) = backend(&state)?;
    let key = parse_claim_key(&claim_key)?;
    let status = b.client.status(key).await.map_err(Problem::chain)?;
    let now = b
        .client
        .chain()
        .head()
        .await
        .map_err(|e| Problem::chain(e.into()))?
        .timestamp;
    let id = b.client.escrow_id();
    let mut out = json!({
        "chainId": id.chain_id,
        "escrow": id.escrow.to_string(),
        "claimKey": key.to_string(),
        "now": now,
        "replyTo": settings.reply_to,
        "submission": web_submission(b, key)?.as_ref().map(submission_json),
    });
    let obj = out.as_object_mut().expect("an object");
    let mut put = |k: &str, v: serde_json::Value| {
        obj.insert(k.into(), v);
    };
    match status {
        DepositStatus::Open { deposit, .. } | DepositStatus::Expired { deposit, .. } => {
            let expired = now >= deposit.expiry;
            put("state", json!(if expired { "expired" } else { "open" }));
            put(
                "mode",
                json!(if deposit.is_link_mode() {
                    "link"
                } else {
                    "email"
                }),
            );
            let af = asset_and_fee(b, &deposit);
            put(
                "asset",
                af.as_ref()
                    .map(|(a, _)| json!({"symbol": a.symbol(), "decimals": a.decimals()}))
                    .unwrap_or(serde_json::Value::Null),
            );
            put("fee", json!(af.map(|(_, f)| f.to_string())));
            put("amount", json!(deposit.amount.to_string()));
            put("deposit", deposit_json(&deposit));
        }
        DepositStatus::Claimed {
            to,
            amount,
            fee,
            tx_hash,
            ..
        } => {
            put("state", json!("claimed"));
            put("amount", json!(amount.to_string()));
            put("paidFee", json!(fee.to_string()));
            put("claimedTo", json!(to.to_string()));
            put("claimTx", json!(tx_hash.to_string()));
            put("asset", settled_asset_json(b, key).await?);
        }
        DepositStatus::Refunded {
            amount, tx_hash, ..
        } => {
            put("state", json!("refunded"));
            put("amount", json!(amount.to_string()));
            put("asset", settled_asset_json(b, key).await?);
            put("refundTx", json!(tx_hash.to_string()));
        }
        DepositStatus::Unknown => {
            return Err(Problem::new(
                StatusCode::NOT_FOUND,
                "unknown-deposit",
                "No such deposit",
                "No payment exists for this link's key at this broker's escrow. If it was sent a moment ago, try again in a minute.",
            ));
        }
    }
    Ok(json_response(StatusCode::OK, out))
}

/// The body of `POST /api/claims`: what the page signed (docs/CLAIM-PAGE.md).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClaimRequest {
    /// EIP-155 chain id.
    pub chain_id: u64,
    /// The escrow contract, 0x hex.
    pub escrow: String,
    /// The claim key's address, 0x hex.
    pub claim_key: String,
    /// The deposit hash the claim signs.
    pub deposit_hash: String,
    /// The payee: 0x hex, or base58 on Qtum chains.
    pub to: String,
    /// The signed fee cap, decimal base units.
    pub max_fee: String,
    /// The signed deadline, unix seconds.
    pub deadline: u64,
    /// 65 bytes r ‖ s ‖ v, 0x hex.
    pub signature: String,
}

/// A [`ClaimRequest`] whose fields parsed.
struct Parsed {
    chain_id: u64,
    escrow: Address,
    claim_key: Address,
    deposit_hash: B256,
    to: Address,
    max_fee: u128,
    deadline: u64,
    signature: Signature,
}

fn parse_request(body: &[u8]) -> Result<Parsed, Problem> {
    let req: ClaimRequest = serde_json::from_slice(body).map_err(|e| {
        Problem::bad(
            "malformed",
            format!("The request body is not a claim in JSON: {e}."),
        )
    })?;
    let escrow = req
        .escrow
        .parse::<Address>()
        .map_err(|_| Problem::bad("bad-escrow", "escrow must be 0x followed by 40 hex digits."))?;
    let claim_key = parse_claim_key(&req.claim_key)?;
    let deposit_hash = req.deposit_hash.parse::<B256>().map_err(|_| {
        Problem::bad(
            "bad-deposit-hash",
            "depositHash must be 0x followed by 64 hex digits.",
        )
    })?;
    let to = springmail_sdk::qtum::parse_address(req.chain_id, &req.to)
        .map_err(|e| Problem::bad("bad-to", format!("The payee address is not usable: {e}.")))?;
    if to == Address::ZERO {
        return Err(Problem::bad(
            "bad-to",
            "The payee is the zero address, which nobody can spend from.",
        ));
    }
    let max_fee = req
        .max_fee
        .parse::<u128>()
        .ok()
        .filter(|f| *f <= MAX_AMOUNT)
        .ok_or_else(|| {
            Problem::bad(
                "bad-max-fee",
                "maxFee must be a whole number of base units below 2^96.",
            )
        })?;
    if req.deadline > MAX_TIMESTAMP {
        return Err(Problem::bad("bad-deadline", "deadline must be below 2^40."));
    }
    let sig_hex = req
        .signature
        .strip_prefix("0x")
        .ok_or_else(|| Problem::bad("bad-signature", "signature must start with 0x."))?;
    let sig_bytes =
        hex::decode(sig_hex).map_err(|_| Problem::bad("bad-signature", "signature is not hex."))?;
    let signature = Signature::from_slice("signature", &sig_bytes)
        .map_err(|e| Problem::bad("bad-signature", format!("The signature is not valid: {e}.")))?;
    Ok(Parsed {
        chain_id: req.chain_id,
        escrow,
        claim_key,
        deposit_hash,
        to,
        max_fee,
        deadline: req.deadline,
        signature,
    })
}

/// What [`verify_claim`] found: a claim to record, or the answer already given for this key.
pub enum Checked {
    /// Checked and simulated: record it.
    New(Box<ClaimPlan>),
    /// A claim for this key is already recorded: its answer.
    Answered(Response),
}

/// Parses and checks a `POST /api/claims` body as the contract will, and simulates the
/// claim: everything but recording it (the benchmark measures this).
pub async fn verify_claim(b: &ClaimBackend, body: &[u8]) -> Result<Checked, Problem> {
    let p = parse_request(body)?;
    let (escrow, claim_key, to) = (p.escrow, p.claim_key, p.to);
    let id = b.client.escrow_id();
    if p.chain_id != id.chain_id {
        return Err(Problem::refused(
            "wrong-chain",
            format!(
                "The claim is for chain {}, but this broker releases payments on chain {}.",
                p.chain_id, id.chain_id
            ),
        ));
    }
    if escrow != id.escrow {
        return Err(Problem::refused(
            "wrong-escrow",
            format!(
                "The claim names escrow contract {escrow}, but this broker serves {}.",
                id.escrow
            ),
        ));
    }
    // Idempotent per claim key: a claim already recorded answers with its state.
    if let Some(answer) = existing(b, claim_key, to)? {
        return Ok(Checked::Answered(answer));
    }
    let deposit = match b.client.status(claim_key).await.map_err(Problem::chain)? {
        DepositStatus::Open { deposit, .. } => deposit,
        DepositStatus::Expired { deposit, .. } => {
            return Err(Problem::refused(
                "expired",
                format!(
                    "This payment expired on {}, so it can no longer be claimed; it can only be returned to its sender.",
                    format_time(deposit.expiry)
                ),
            ))
        }
        DepositStatus::Claimed { tx_hash, .. } => {
            return Err(Problem::conflict(
                "already-claimed",
                format!("This payment has already been claimed (transaction {tx_hash})."),
            )
            .with(json!({ "txId": tx_hash.to_string() })))
        }
        DepositStatus::Refunded { .. } => {
            return Err(Problem::conflict(
                "refunded",
                "This payment was returned to its sender; there is nothing left to claim.",
            ))
        }
        DepositStatus::Unknown => {
            return Err(Problem::new(
                StatusCode::NOT_FOUND,
                "unknown-deposit",
                "No such deposit",
                "No payment exists for this claim key at this broker's escrow.",
            ))
        }
    };
    let plan = check_claim(b, &deposit, &p).await?;
    // Simulate: never pay gas for a claim the contract would refuse.
    let data = b
        .client
        .claim_calldata(&deposit, &plan.signed, plan.fee, Bytes::new());
    let tx = TxRequest {
        to: Some(id.escrow),
        data,
        value: Default::default(),
        gas_limit: None,
    };
    match b.client.simulate("the claim", &tx).await {
        Ok(()) => {}
        Err(ClientError::WouldRevert { reason, .. }) => {
            return Err(Problem::refused(
                "would-revert",
                format!("The escrow contract would refuse this claim: {reason}. Nothing was sent."),
            ))
        }
        Err(e) => return Err(Problem::chain(e)),
    }
    Ok(Checked::New(Box::new(plan)))
}

async fn post_claim(
    State(state): State<Arc<AppState>>,
    body: Result<axum::body::Bytes, BytesRejection>,
) -> Result<Response, Problem> {
    let (b, settings) = backend(&state)?;
    let body = body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            Problem::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too-large",
                "The request is too large",
                format!(
                    "A claim is a few hundred bytes; this broker reads at most {} bytes.",
                    settings.max_body_bytes
                ),
            )
        } else {
            Problem::bad(
                "malformed",
                format!("The request body could not be read: {e}."),
            )
        }
    })?;
    let plan = match verify_claim(b, &body).await? {
        Checked::Answered(res) => return Ok(res),
        Checked::New(plan) => plan,
    };
    let claim_key = plan.claim_key();
    let to = plan.signed.auth.to;
    let key_text = claim_key.to_string();
    let plan_json = plan.to_json();
    let recorded = crate::transition::commit(
        &b.journal,
        vec![crate::transition::Transition::AcceptWeb {
            claim_key: key_text,
            plan: plan_json,
        }],
        Default::default(),
    )
    .await
    .map_err(|e| Problem::internal(&e.to_string()))?;
    let row = match recorded.web {
        Some(Ok(row)) => row,
        None => return Err(Problem::internal("the claim was not recorded")),
        // Another request took the slot in between: answer with its state.
        Some(Err(_)) => {
            return existing(b, claim_key, to)?
                .ok_or_else(|| Problem::internal("the claim slot holder vanished"))
        }
    };
    info!(claim_key = %claim_key, row, "claim from the claim page recorded");
    b.wake.notify_one();
    // Wait a little for the transaction id, so the page can show it at once.
    let until = Instant::now() + settings.answer_wait;
    loop {
        let m = b
            .journal
            .message(row)
            .map_err(|e| Problem::internal(&e.to_string()))?
            .ok_or_else(|| Problem::internal("the recorded claim vanished"))?;
        if m.tx_hash.is_some() || m.outcome.is_some() || Instant::now() >= until {
            return Ok(claim_answer(claim_key, &m));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn claim_answer(claim_key: Address, m: &MessageRecord) -> Response {
    let sub = submission_json(m);
    if sub["state"] == "refused" {
        return Problem::refused(
            "refused",
            format!(
                "The claim was not paid: {}",
                sub["error"].as_str().unwrap_or("refused")
            ),
        )
        .into_response();
    }
    let status = if sub["state"] == "claimed" {
        StatusCode::OK
    } else {
        StatusCode::ACCEPTED
    };
    json_response(
        status,
        json!({ "claimKey": claim_key.to_string(), "state": sub["state"], "txId": sub["txId"] }),
    )
}

/// A claim for this key already recorded (not refused): its answer, or a conflict
/// when it pays someone else or came by mail.
fn existing(
    b: &ClaimBackend,
    claim_key: Address,
    to: Address,
) -> Result<Option<Response>, Problem> {
    let holder = b
        .journal
        .claim_holder(&claim_key.to_string())
        .map_err(|e| Problem::internal(&e.to_string()))?;
    let Some(m) = holder else { return Ok(None) };
    let released = matches!(
        m.outcome.as_ref().map(|o| o.kind.as_str()),
        Some("refused" | "dropped" | "duplicate")
    );
    if released {
        return Ok(None);
    }
    let same_payee = m
        .plan
        .as_deref()
        .and_then(|p| ClaimPlan::from_json(p).ok())
        .is_some_and(|p| p.signed.auth.to == to);
    if m.key.mailbox == WEB_MAILBOX && same_payee {
        return Ok(Some(claim_answer(claim_key, &m)));
    }
    Err(Problem::conflict(
        "claim-in-progress",
        "Another claim for this payment is already under way; it cannot be claimed twice.",
    )
    .with(json!({ "txId": m.tx_hash })))
}

/// The checks the contract makes (and the broker's fee and margins), as [`crate::verify`]
/// makes them for mail claims.
async fn check_claim(
    b: &ClaimBackend,
    deposit: &Deposit,
    p: &Parsed,
) -> Result<ClaimPlan, Problem> {
    let (claim_key, deposit_hash, to, max_fee, deadline, signature) = (
        p.claim_key,
        p.deposit_hash,
        p.to,
        p.max_fee,
        p.deadline,
        p.signature,
    );
    if deposit.hash() != deposit_hash {
        return Err(Problem::refused(
            "deposit-mismatch",
            "The claim was signed for other payment details than the ones on chain. Reload the page and sign again.",
        ));
    }
    if !deposit.is_link_mode() {
        return Err(Problem::refused(
            "email-mode",
            "This payment is released by reply mail: reply to the notification with the claim the page makes.",
        ));
    }
    let now = b
        .client
        .chain()
        .head()
        .await
        .map_err(|e| Problem::chain(e.into()))?
        .timestamp;
    let margin = b.policy.min_time_left;
    if now.saturating_add(margin) >= deposit.expiry {
        return Err(Problem::refused(
            "expired",
            format!(
                "This payment expires on {}, too soon for a claim to be confirmed in time.",
                format_time(deposit.expiry)
            ),
        ));
    }
    if now > deadline {
        return Err(Problem::refused(
            "deadline-passed",
            format!(
                "The claim was valid only until {}. Reload the page and sign again.",
                format_time(deadline)
            ),
        ));
    }
    let auth = ClaimAuth {
        claim_key,
        deposit_hash,
        to,
        max_fee,
        deadline,
    };
    if !auth.claim_signature_valid(b.client.escrow_id(), &signature) {
        return Err(Problem::refused(
            "bad-signature",
            "The signature is not this payment's claim key signing this payee, fee limit and deadline.",
        ));
    }
    let (asset, fee) = asset_and_fee(b, deposit).ok_or_else(|| {
        Problem::refused(
            "unsupported-token",
            format!(
                "This broker does not release payments of token {}.",
                deposit.token
            ),
        )
    })?;
    let show = |units: u128| {
        format!(
            "{} {}",
            format_units(units, asset.decimals()),
            asset.symbol()
        )
    };
    if fee > max_fee {
        return Err(Problem::refused(
            "fee-too-low",
            format!(
                "This broker charges {} to send the claim, but it allows at most {}.",
                show(fee),
                show(max_fee)
            ),
        ));
    }
    if deposit.amount <= fee {
        return Err(Problem::refused(
            "amount-below-fee",
            format!(
                "The payment ({}) is not larger than the broker's fee ({}).",
                show(deposit.amount),
                show(fee)
            ),
        ));
    }
    Ok(ClaimPlan {
        deposit: *deposit,
        signed: SignedClaim { auth, signature },
        fee,
        asset,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn get(addr: SocketAddr, path: &str) -> String {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(
            format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        out
    }

    #[tokio::test]
    async fn serves_health_and_metrics_with_security_headers() {
        let m = Metrics::new();
        m.outcome(crate::journal::OutcomeKind::Claimed, "claimed");
        m.claim_submitted();
        let (addr, task) = serve("127.0.0.1:0".parse().unwrap(), m.clone(), 60, None)
            .await
            .unwrap();
        assert!(get(addr, "/healthz").await.starts_with("HTTP/1.1 503"));
        m.loop_pass(0);
        m.reply(false);
        m.outbox(&crate::journal::JournalStats {
            outbox_pending: 3,
            outbox_resent: 2,
            ..Default::default()
        });
        assert!(get(addr, "/healthz").await.starts_with("HTTP/1.1 200"));
        let metrics = get(addr, "/metrics").await;
        assert!(metrics.starts_with("HTTP/1.1 200"), "{metrics}");
        for line in [
            "springmail_messages_total{outcome=\"claimed\",reason=\"claimed\"} 1",
            "\nspringmail_claims_submitted_total 1\n",
            "\nspringmail_replies_pending 3\n",
            "\nspringmail_replies_resent 2\n",
            "\nspringmail_reply_attempts_total 1\n",
            "\nspringmail_replies_failed_total 1\n",
            "springmail_chain_head_lag_seconds",
        ] {
            assert!(metrics.contains(line), "{line} in {metrics}");
        }
        let lower = metrics.to_ascii_lowercase();
        assert!(
            lower.contains("content-security-policy: default-src 'none'"),
            "{metrics}"
        );
        assert!(!lower.contains("set-cookie"));
        // Without [http] the claim page is not served; errors are problem+json.
        let page = get(addr, "/claim").await;
        assert!(page.starts_with("HTTP/1.1 404"), "{page}");
        assert!(
            page.to_ascii_lowercase()
                .contains("content-type: application/problem+json"),
            "{page}"
        );
        task.abort();
    }

    #[test]
    fn the_built_page_has_no_inline_script_and_loads_only_from_this_origin() {
        let html = std::str::from_utf8(INDEX_HTML).unwrap();
        assert!(html.contains(r#"<script type="module" src="/claim/claim.js"></script>"#));
        assert_eq!(
            html.matches("<script").count(),
            1,
            "one external script, nothing inline"
        );
        assert!(
            !html.contains("http://") && !html.contains("https://"),
            "no third-party URL"
        );
        let handler = html.split(" on").skip(1).any(|rest| {
            let name: String = rest.chars().take_while(char::is_ascii_lowercase).collect();
            !name.is_empty() && rest[name.len()..].starts_with('=')
        });
        assert!(!handler, "no inline event handlers");
        let js = std::str::from_utf8(CLAIM_JS).unwrap();
        assert!(!js.contains("https://cdn") && !js.contains("eval("));
    }

    #[test]
    fn rate_limiter_counts_per_address_per_minute() {
        let l = RateLimiter {
            per_minute: 3,
            windows: Mutex::new(HashMap::new()),
        };
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        assert!((0..3).all(|_| l.allow(a)));
        assert!(!l.allow(a));
        assert!(l.allow(b));
    }
}
