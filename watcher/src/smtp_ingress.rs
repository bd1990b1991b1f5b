//! SMTP ingress: the watcher as its domain's MX.
//!
//! A small SMTP server on tokio. Commands and DATA are parsed by `smtp-proto`;
//! STARTTLS is tokio-rustls. It is never a relay: RCPT is accepted only for the
//! configured recipients at the configured domains (`550 5.7.1` for any other
//! domain, `550 5.1.1` for an unknown mailbox at ours).
//!
//! Each accepted message gets `Return-Path`, `Received` and an
//! `Authentication-Results` header with the SPF, DKIM and DMARC verdicts computed
//! here with mail-auth, and is written to the [`Spool`] and fsync'd (file, then
//! directory) **before** the `250`: a crash earlier means the sending MTA still
//! holds the message and retries. The verdicts are a record only; the pipeline
//! re-checks DKIM itself and pays only on `Pass` (SPF on a loopback hop is `none`).
//!
//! The spool is a [`DirSource`] layout (`INBOX/`, `Processed/`, `Rejected/`);
//! [`SpoolSource`] reads it as the mailbox [`SPOOL_MAILBOX`] (beside an IMAP door's
//! `INBOX`, when the watcher has both) and is woken by the ingress the moment a message is
//! durable, so there is no polling delay between the `250` and the claim.
//!
//! Per-client limits: connections per IP address, messages per connection,
//! recipients per message, bad commands per connection, and an idle timeout.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use mail_auth::common::headers::HeaderWriter;
use mail_auth::{dmarc::verify::DmarcParameters, spf::verify::SpfParameters};
use mail_auth::{
    AuthenticatedMessage, AuthenticationResults, DkimResult, DmarcResult, Parameters, SpfResult,
};
use smtp_proto::request::receiver::{DataReceiver, DummyDataReceiver, RequestReceiver};
use smtp_proto::{EhloResponse, Request, Response};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio_rustls::TlsAcceptor;
use tracing::{debug, info, warn};

use crate::addresses::{Route, Routes};
use crate::authenticate::DkimKeys;
use crate::ingest::{DirSource, FetchBatch, FetchLimits, IngestError, MailSource};
use crate::journal::{Checkpoint, Folder, MailKey};
use springmail_sdk::markup::broker::looks_like_phone_number;

/// The `[smtp_ingress]` section, validated.
#[derive(Debug, Clone)]
pub struct IngressSettings {
    /// Where to listen (`0.0.0.0:25` as the MX).
    pub listen: SocketAddr,
    /// The name in the banner, EHLO and the trace headers.
    pub hostname: String,
    /// Domains mail is accepted for (lowercase).
    pub domains: Vec<String>,
    /// Mailboxes accepted at those domains (normalized, lowercase).
    pub recipients: Vec<String>,
    /// With a network, `<q-address>@<domain>` is accepted for any valid P2PKH address
    /// of that network (the local part is then case-sensitive, as base58 is).
    pub qtum_addresses: Option<springmail_sdk::qtum::QtumNetwork>,
    /// The address layer ([`crate::addresses`]): `broker@`, registered addresses and
    /// aliases go to its spool (`<spool_dir>/addresses`), read by its desk.
    pub addresses: bool,
    /// Domains whose mail is received by Spring Mail brokers (lowercase): a wallet
    /// payment to a name there is resolved by RESOLVE and reported by RECEIPT.
    pub peers: Vec<String>,
    /// How long a payment waits for a peer's RESOLVED before it fails.
    pub resolve_timeout: Duration,
    /// The spool directory.
    pub spool_dir: PathBuf,
    /// Larger messages are refused (`552`).
    pub max_message_bytes: u64,
    /// Recipients per message.
    pub max_recipients: usize,
    /// Open connections per client IP address.
    pub max_connections_per_client: usize,
    /// Messages per connection.
    pub max_messages_per_connection: usize,
    /// A client silent this long is disconnected; also bounds the verdicts' DNS.
    pub timeout: Duration,
    /// STARTTLS certificate chain and key (PEM).
    pub tls: Option<(PathBuf, PathBuf)>,
}

impl IngressSettings {
    /// Defaults for `hostname`, with everything else given.
    pub fn new(listen: SocketAddr, domains: Vec<String>, recipients: Vec<String>) -> Self {
        let hostname = domains
            .first()
            .cloned()
            .unwrap_or_else(|| "localhost".into());
        IngressSettings {
            listen,
            hostname,
            domains,
            recipients,
            qtum_addresses: None,
            addresses: false,
            peers: Vec::new(),
            resolve_timeout: Duration::from_secs(300),
            spool_dir: PathBuf::from("spool"),
            max_message_bytes: 1 << 20,
            max_recipients: 10,
            max_connections_per_client: 10,
            max_messages_per_connection: 100,
            timeout: Duration::from_secs(60),
            tls: None,
        }
    }
}

/// Trouble starting the ingress.
#[derive(Debug, thiserror::Error)]
pub enum IngressError {
    /// Binding the listen address failed.
    #[error("cannot listen on {addr}: {reason}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// Why.
        reason: String,
    },
    /// The certificate or key could not be loaded.
    #[error("{reason}")]
    Tls {
        /// `smtp_ingress.tls_cert` or `smtp_ingress.tls_key`.
        key: &'static str,
        /// Why.
        reason: String,
    },
    /// The spool directory could not be set up.
    #[error("{0}")]
    Spool(#[from] IngestError),
}

impl IngressError {
    /// The configuration key at fault.
    pub fn key(&self) -> &'static str {
        match self {
            IngressError::Listen { .. } => "smtp_ingress.listen",
            IngressError::Tls { key, .. } => key,
            IngressError::Spool(_) => "smtp_ingress.spool_dir",
        }
    }
}

/// The durable spool the ingress writes and [`SpoolSource`] reads.
#[derive(Debug)]
pub struct Spool {
    root: PathBuf,
    arrived: Arc<Notify>,
    seq: AtomicU64,
}

impl Spool {
    /// Opens (creating) the spool under `root`.
    pub fn open(root: impl Into<PathBuf>) -> Result<Arc<Self>, IngestError> {
        let root = root.into();
        // DirSource creates INBOX/Processed/Rejected; tmp/ holds half-written files.
        DirSource::open(&root)?;
        let tmp = root.join("tmp");
        std::fs::create_dir_all(&tmp).map_err(|e| IngestError::Io {
            path: tmp.clone(),
            reason: e.to_string(),
        })?;
        // Leftovers of a crash mid-write were never acknowledged: the sender retries.
        // Recent files may be another process's write in progress (`watch --once`
        // beside a running watcher), so only older ones go.
        if let Ok(rd) = std::fs::read_dir(&tmp) {
            for e in rd.flatten() {
                let old = e
                    .metadata()
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| t.elapsed().ok())
                    .is_some_and(|age| age > Duration::from_secs(60));
                if old {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
        Ok(Arc::new(Spool {
            root,
            arrived: Arc::new(Notify::new()),
            seq: AtomicU64::new(0),
        }))
    }

    /// The directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// A mail source over this spool, woken by every [`Spool::store`].
    pub fn source(&self) -> Result<SpoolSource, IngestError> {
        Ok(SpoolSource {
            dir: DirSource::open(&self.root)?,
            arrived: self.arrived.clone(),
        })
    }

    /// Writes `raw` durably (temp file, fsync, rename into `INBOX/`, fsync of the
    /// directory) and wakes the source. Returns the file name.
    pub async fn store(&self, raw: Vec<u8>) -> std::io::Result<String> {
        let micros = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_micros())
            .unwrap_or(0);
        let seq = self.seq.fetch_add(1, Ordering::Relaxed);
        // Names sort in arrival order, which is the order UIDs are given in.
        let name = format!("{micros:020}-{}-{seq:06}.eml", std::process::id());
        let tmp = self.root.join("tmp").join(&name);
        let inbox = self.root.join("INBOX");
        let dest = inbox.join(&name);
        tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            use std::io::Write;
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&raw)?;
            f.sync_all()?;
            drop(f);
            std::fs::rename(&tmp, &dest)?;
            std::fs::File::open(&inbox)?.sync_all()
        })
        .await
        .map_err(std::io::Error::other)??;
        self.arrived.notify_one();
        Ok(name)
    }
}

/// The spool as a [`MailSource`]: a [`DirSource`] whose `wait` returns as soon as
/// the ingress stored a message.
#[derive(Debug)]
pub struct SpoolSource {
    dir: DirSource,
    arrived: Arc<Notify>,
}

/// The spool's mailbox name in the journal (its checkpoint's key), distinct from an
/// IMAP door's `INBOX` so that both doors can feed one watcher.
pub const SPOOL_MAILBOX: &str = "SMTP";

#[async_trait]
impl MailSource for SpoolSource {
    fn mailbox(&self) -> &str {
        SPOOL_MAILBOX
    }

    fn describe(&self) -> String {
        format!("SMTP ingress spool {}", self.dir.root().display())
    }

    async fn fetch_new(
        &mut self,
        after: Option<Checkpoint>,
        limits: FetchLimits,
    ) -> Result<FetchBatch, IngestError> {
        let mut batch = self.dir.fetch_new(after, limits).await?;
        for m in &mut batch.mails {
            m.key.mailbox = SPOOL_MAILBOX.into();
        }
        Ok(batch)
    }

    async fn file(&mut self, key: &MailKey, folder: Folder) -> Result<(), IngestError> {
        self.dir.file(key, folder).await
    }

    async fn wait(&mut self, max: Duration, wake: &Notify) -> Result<(), IngestError> {
        tokio::select! {
            _ = tokio::time::sleep(max) => {}
            _ = wake.notified() => {}
            _ = self.arrived.notified() => {}
        }
        Ok(())
    }
}

/// The verdicts recorded for one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdicts {
    /// `pass`, `fail`, `softfail`, `neutral`, `none`, `temperror`, `permerror`.
    pub spf: &'static str,
    /// The best DKIM result: `pass`, `fail`, `neutral`, `none`, `temperror`, `permerror`.
    pub dkim: &'static str,
    /// `pass`, `fail`, `none`, `temperror`, `permerror`.
    pub dmarc: &'static str,
    /// The `Authentication-Results` header (with CRLF).
    pub header: String,
}

fn spf_word(r: SpfResult) -> &'static str {
    match r {
        SpfResult::Pass => "pass",
        SpfResult::Fail => "fail",
        SpfResult::SoftFail => "softfail",
        SpfResult::Neutral => "neutral",
        SpfResult::TempError => "temperror",
        SpfResult::PermError => "permerror",
        SpfResult::None => "none",
    }
}

fn dkim_word(r: &DkimResult) -> &'static str {
    match r {
        DkimResult::Pass => "pass",
        DkimResult::Neutral(_) => "neutral",
        DkimResult::Fail(_) => "fail",
        DkimResult::PermError(_) => "permerror",
        DkimResult::TempError(_) => "temperror",
        DkimResult::None => "none",
    }
}

fn dmarc_word(r: &DmarcResult) -> &'static str {
    match r {
        DmarcResult::Pass => "pass",
        DmarcResult::Fail(_) => "fail",
        DmarcResult::TempError(_) => "temperror",
        DmarcResult::PermError(_) => "permerror",
        DmarcResult::None => "none",
    }
}

/// SPF (of the envelope sender, or the HELO name for a null sender), DKIM and
/// DMARC for one message, with the keys the pipeline uses.
pub async fn verdicts(
    keys: &DkimKeys,
    hostname: &str,
    ip: IpAddr,
    helo: &str,
    mail_from: &str,
    raw: &[u8],
) -> Verdicts {
    let (resolver, pins) = keys.parts();
    let spf = if mail_from.is_empty() {
        resolver
            .verify_spf(
                Parameters::new(SpfParameters::verify_ehlo(ip, helo, hostname))
                    .with_txt_cache(pins),
            )
            .await
    } else {
        resolver
            .verify_spf(
                Parameters::new(SpfParameters::verify_mail_from(
                    ip, helo, hostname, mail_from,
                ))
                .with_txt_cache(pins),
            )
            .await
    };
    let mut results = AuthenticationResults::new(hostname);
    let Some(am) = AuthenticatedMessage::parse(raw) else {
        results = results.with_spf_mailfrom_result(&spf, ip, mail_from, helo);
        return Verdicts {
            spf: spf_word(spf.result()),
            dkim: "permerror",
            dmarc: "none",
            header: results.to_header(),
        };
    };
    let dkim = resolver
        .verify_dkim(Parameters::new(&am).with_txt_cache(pins))
        .await;
    let from_domain = mail_from.rsplit_once('@').map_or(helo, |(_, d)| d);
    let dmarc = resolver
        .verify_dmarc(
            Parameters::new(DmarcParameters::new(&am, &dkim, from_domain, &spf))
                .with_txt_cache(pins),
        )
        .await;
    let header_from = am.from.first().map(String::as_str).unwrap_or("");
    let best = dkim
        .iter()
        .map(|o| o.result())
        .min_by_key(|r| match r {
            DkimResult::Pass => 0,
            DkimResult::Neutral(_) => 1,
            DkimResult::Fail(_) => 2,
            DkimResult::TempError(_) => 3,
            DkimResult::PermError(_) => 4,
            DkimResult::None => 5,
        })
        .map_or("none", dkim_word);
    results = results
        .with_dkim_results(&dkim, header_from)
        .with_spf_mailfrom_result(&spf, ip, mail_from, helo)
        .with_dmarc_result(&dmarc);
    Verdicts {
        spf: spf_word(spf.result()),
        dkim: best,
        dmarc: dmarc_word(&dmarc.result()),
        header: results.to_header(),
    }
}

struct Shared {
    settings: IngressSettings,
    spool: Arc<Spool>,
    /// The address layer (`broker@`, registered addresses and aliases), if enabled.
    routes: Option<Routes>,
    keys: DkimKeys,
    tls: Option<TlsAcceptor>,
    clients: Mutex<HashMap<IpAddr, usize>>,
}

/// One connection slot of a client; released on drop.
struct Slot {
    shared: Arc<Shared>,
    ip: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut clients = self
            .shared
            .clients
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(n) = clients.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                clients.remove(&self.ip);
            }
        }
    }
}

fn load_tls(cert: &Path, key: &Path) -> Result<TlsAcceptor, IngressError> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| IngressError::Tls {
            key: "smtp_ingress.tls_cert",
            reason: format!("{}: {e}", cert.display()),
        })?;
    if certs.is_empty() {
        return Err(IngressError::Tls {
            key: "smtp_ingress.tls_cert",
            reason: format!("{}: no certificate in the file", cert.display()),
        });
    }
    let pk = PrivateKeyDer::from_pem_file(key).map_err(|e| IngressError::Tls {
        key: "smtp_ingress.tls_key",
        reason: format!("{}: {e}", key.display()),
    })?;
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let config = tokio_rustls::rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .and_then(|b| b.with_no_client_auth().with_single_cert(certs, pk))
        .map_err(|e| IngressError::Tls {
            key: "smtp_ingress.tls_key",
            reason: format!("does not match the certificate or is unusable: {e}"),
        })?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// Starts the ingress: binds `settings.listen` and serves until the handle is aborted.
/// Returns the bound address (useful with port 0).
pub async fn serve(
    settings: IngressSettings,
    spool: Arc<Spool>,
    keys: DkimKeys,
) -> Result<(SocketAddr, tokio::task::JoinHandle<()>), IngressError> {
    serve_with_routes(settings, spool, keys, None).await
}

/// [`serve`], with the address layer: mail for `broker@`, registered addresses and
/// aliases of our domains goes to `routes.spool` (one copy per such recipient, its
/// first line `Delivered-To: <rcpt>`), for [`crate::addresses::AddressDesk`].
pub async fn serve_with_routes(
    settings: IngressSettings,
    spool: Arc<Spool>,
    keys: DkimKeys,
    routes: Option<Routes>,
) -> Result<(SocketAddr, tokio::task::JoinHandle<()>), IngressError> {
    let tls = match &settings.tls {
        Some((cert, key)) => Some(load_tls(cert, key)?),
        None => None,
    };
    let listener = TcpListener::bind(settings.listen)
        .await
        .map_err(|e| IngressError::Listen {
            addr: settings.listen,
            reason: e.to_string(),
        })?;
    let addr = listener.local_addr().map_err(|e| IngressError::Listen {
        addr: settings.listen,
        reason: e.to_string(),
    })?;
    info!(%addr, domains = ?settings.domains, starttls = tls.is_some(), "SMTP ingress listening");
    let shared = Arc::new(Shared {
        settings,
        spool,
        routes,
        keys,
        tls,
        clients: Mutex::new(HashMap::new()),
    });
    let task = tokio::spawn(async move {
        loop {
            let (stream, peer) = match listener.accept().await {
                Ok(x) => x,
                Err(e) => {
                    warn!(error = %e, "SMTP ingress accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let shared = shared.clone();
            tokio::spawn(async move {
                if let Err(e) = connection(shared, stream, peer).await {
                    debug!(%peer, error = %e, "SMTP session ended with an error");
                }
            });
        }
    });
    Ok((addr, task))
}

async fn connection(
    shared: Arc<Shared>,
    mut stream: TcpStream,
    peer: SocketAddr,
) -> std::io::Result<()> {
    let _ = stream.set_nodelay(true);
    let ip = peer.ip();
    let admitted = {
        let mut clients = shared.clients.lock().unwrap_or_else(|p| p.into_inner());
        let n = clients.entry(ip).or_insert(0);
        if *n >= shared.settings.max_connections_per_client {
            false
        } else {
            *n += 1;
            true
        }
    };
    if !admitted {
        warn!(%peer, "SMTP ingress: too many connections from this client");
        let msg = reply(
            421,
            [4, 7, 0],
            "Too many connections from your address, try later",
        );
        stream.write_all(&msg).await?;
        return Ok(());
    }
    let _slot = Slot {
        shared: shared.clone(),
        ip,
    };
    let mut session = Session::new(shared.clone(), peer);
    let banner = format!("{} ESMTP Spring Mail", shared.settings.hostname);
    stream.write_all(&reply(220, [0, 0, 0], &banner)).await?;
    match session.run(&mut stream).await? {
        Flow::Close => Ok(()),
        Flow::StartTls => {
            let acceptor = shared.tls.clone().expect("STARTTLS only offered with TLS");
            let mut tls = tokio::time::timeout(shared.settings.timeout, acceptor.accept(stream))
                .await
                .map_err(|_| std::io::Error::other("TLS handshake timed out"))??;
            session.secured();
            session.run(&mut tls).await?;
            tls.shutdown().await.ok();
            Ok(())
        }
    }
}

fn reply(code: u16, esc: [u8; 3], text: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len() + 16);
    if esc == [0, 0, 0] {
        out.extend_from_slice(format!("{code} {text}\r\n").as_bytes());
    } else {
        Response::new(code, esc[0], esc[1], esc[2], text)
            .write(&mut out)
            .expect("writing to a Vec");
    }
    out
}

enum Flow {
    Close,
    StartTls,
}

enum Mode {
    Command,
    Data(DataReceiver),
    Discard(DummyDataReceiver),
}

const MAX_BAD_COMMANDS: usize = 10;

struct Session {
    shared: Arc<Shared>,
    peer: SocketAddr,
    helo: Option<String>,
    mail_from: Option<String>,
    rcpts: Vec<String>,
    /// Recipients for the address layer, domain lowercased, local part as written.
    desk_rcpts: Vec<String>,
    data: Vec<u8>,
    messages: usize,
    bad: usize,
    tls: bool,
}

/// Where an accepted recipient's mail goes.
enum Dest {
    /// The watcher's spool (claims and orders).
    Watcher,
    /// The address spool.
    Desk,
}

/// What one command asks of the connection loop.
enum Next {
    Continue,
    Data,
    Close,
    StartTls,
}

impl Session {
    fn new(shared: Arc<Shared>, peer: SocketAddr) -> Self {
        Session {
            shared,
            peer,
            helo: None,
            mail_from: None,
            rcpts: Vec::new(),
            desk_rcpts: Vec::new(),
            data: Vec::new(),
            messages: 0,
            bad: 0,
            tls: false,
        }
    }

    /// After STARTTLS everything said before is forgotten (RFC 3207 §4.2).
    fn secured(&mut self) {
        self.tls = true;
        self.helo = None;
        self.reset();
    }

    fn reset(&mut self) {
        self.mail_from = None;
        self.rcpts.clear();
        self.desk_rcpts.clear();
        self.data = Vec::new();
    }

    async fn run<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        io: &mut S,
    ) -> std::io::Result<Flow> {
        let mut receiver = RequestReceiver::default();
        let mut mode = Mode::Command;
        let mut buf = vec![0u8; 16 * 1024];
        let max = self.shared.settings.max_message_bytes as usize;
        loop {
            let n =
                match tokio::time::timeout(self.shared.settings.timeout, io.read(&mut buf)).await {
                    Ok(r) => r?,
                    Err(_) => {
                        io.write_all(&reply(421, [4, 4, 2], "Idle too long, closing"))
                            .await?;
                        return Ok(Flow::Close);
                    }
                };
            if n == 0 {
                return Ok(Flow::Close);
            }
            let mut bytes = buf[..n].iter();
            let mut out = Vec::new();
            loop {
                match &mut mode {
                    Mode::Command => {
                        let req = match receiver.ingest(&mut bytes) {
                            Ok(req) => req.into_owned(),
                            Err(smtp_proto::Error::NeedsMoreData { .. }) => break,
                            Err(e) => {
                                self.bad += 1;
                                out.extend(parse_error(&e));
                                if self.bad >= MAX_BAD_COMMANDS {
                                    out.extend(reply(421, [4, 7, 0], "Too many errors, closing"));
                                    io.write_all(&out).await?;
                                    return Ok(Flow::Close);
                                }
                                continue;
                            }
                        };
                        match self.command(req, &mut out) {
                            Next::Continue => {}
                            Next::Data => mode = Mode::Data(DataReceiver::new()),
                            Next::Close => {
                                io.write_all(&out).await?;
                                return Ok(Flow::Close);
                            }
                            Next::StartTls => {
                                // Bytes pipelined after STARTTLS are dropped (RFC 3207 §5).
                                io.write_all(&out).await?;
                                io.flush().await?;
                                return Ok(Flow::StartTls);
                            }
                        }
                    }
                    Mode::Data(rx) => {
                        let done = rx.ingest(&mut bytes, &mut self.data);
                        if done && self.data.len() > max {
                            mode = Mode::Command;
                            self.reset();
                            out.extend(too_big(max));
                        } else if done {
                            mode = Mode::Command;
                            io.write_all(&out).await?;
                            out.clear();
                            let r = self.accept_message().await;
                            out.extend(r);
                        } else if self.data.len() > max {
                            // Keep reading to the final dot, storing nothing.
                            mode = Mode::Discard(DummyDataReceiver::new_data(rx));
                            self.data = Vec::new();
                        } else {
                            break;
                        }
                    }
                    Mode::Discard(rx) => {
                        if rx.ingest(&mut bytes) {
                            mode = Mode::Command;
                            info!(peer = %self.peer, max, "SMTP ingress refused an oversize message");
                            self.reset();
                            out.extend(too_big(max));
                        } else {
                            break;
                        }
                    }
                }
                if bytes.as_slice().is_empty() {
                    break;
                }
            }
            if !out.is_empty() {
                io.write_all(&out).await?;
            }
        }
    }

    fn command(&mut self, req: Request<String>, out: &mut Vec<u8>) -> Next {
        let shared = self.shared.clone();
        let s = &shared.settings;
        match req {
            Request::Ehlo { host } => {
                self.reset();
                self.helo = Some(host);
                let mut ehlo = EhloResponse::new(s.hostname.as_str());
                ehlo.capabilities = smtp_proto::EXT_8BIT_MIME
                    | smtp_proto::EXT_ENHANCED_STATUS_CODES
                    | smtp_proto::EXT_PIPELINING
                    | smtp_proto::EXT_SIZE;
                if self.shared.tls.is_some() && !self.tls {
                    ehlo.capabilities |= smtp_proto::EXT_START_TLS;
                }
                ehlo.size = s.max_message_bytes as usize;
                ehlo.write(&mut *out).expect("writing to a Vec");
            }
            Request::Helo { host } => {
                self.reset();
                self.helo = Some(host);
                out.extend(reply(250, [0, 0, 0], &s.hostname));
            }
            Request::Lhlo { .. } => {
                out.extend(reply(502, [5, 5, 1], "This is SMTP, not LMTP"));
            }
            Request::StartTls => {
                if self.tls {
                    out.extend(reply(503, [5, 5, 1], "TLS is already active"));
                } else if self.shared.tls.is_none() {
                    out.extend(reply(502, [5, 5, 1], "STARTTLS is not offered here"));
                } else {
                    out.extend(reply(220, [2, 0, 0], "Ready to start TLS"));
                    return Next::StartTls;
                }
            }
            Request::Mail { from } => {
                if self.helo.is_none() {
                    out.extend(reply(503, [5, 5, 1], "Say EHLO first"));
                } else if self.mail_from.is_some() {
                    out.extend(reply(503, [5, 5, 1], "A transaction is already open"));
                } else if self.messages >= s.max_messages_per_connection {
                    out.extend(reply(
                        421,
                        [4, 7, 0],
                        "Too many messages on this connection, reconnect",
                    ));
                    return Next::Close;
                } else if from.size as u64 > s.max_message_bytes {
                    out.extend(reply(
                        552,
                        [5, 3, 4],
                        &format!(
                            "Message too big (the limit is {} bytes)",
                            s.max_message_bytes
                        ),
                    ));
                } else {
                    self.mail_from = Some(from.address);
                    out.extend(reply(250, [2, 1, 0], "Sender OK"));
                }
            }
            Request::Rcpt { to } => {
                if self.mail_from.is_none() {
                    out.extend(reply(503, [5, 5, 1], "MAIL FROM first"));
                } else if self.rcpts.len() + self.desk_rcpts.len() >= s.max_recipients {
                    out.extend(reply(452, [4, 5, 3], "Too many recipients"));
                } else {
                    match self.recipient_refusal(&to.address) {
                        Err((code, esc, why)) => {
                            info!(peer = %self.peer, rcpt = %to.address, code, "SMTP ingress refused a recipient");
                            out.extend(reply(code, esc, &why));
                        }
                        Ok(Dest::Watcher) => {
                            let rcpt = to.address.to_ascii_lowercase();
                            if !self.rcpts.contains(&rcpt) {
                                self.rcpts.push(rcpt);
                            }
                            out.extend(reply(250, [2, 1, 5], "Recipient OK"));
                        }
                        Ok(Dest::Desk) => {
                            let (local, domain) = to.address.rsplit_once('@').unwrap_or(("", ""));
                            let rcpt = format!("{local}@{}", domain.to_ascii_lowercase());
                            if !self.desk_rcpts.contains(&rcpt) {
                                self.desk_rcpts.push(rcpt);
                            }
                            out.extend(reply(250, [2, 1, 5], "Recipient OK"));
                        }
                    }
                }
            }
            Request::Data => {
                if self.mail_from.is_none() {
                    out.extend(reply(503, [5, 5, 1], "MAIL FROM first"));
                } else if self.rcpts.is_empty() && self.desk_rcpts.is_empty() {
                    out.extend(reply(554, [5, 5, 1], "No valid recipients"));
                } else {
                    self.data = Vec::new();
                    out.extend(reply(354, [0, 0, 0], "End data with <CR><LF>.<CR><LF>"));
                    return Next::Data;
                }
            }
            Request::Bdat { .. } => {
                // CHUNKING is not offered; the chunk that follows cannot be framed.
                out.extend(reply(502, [5, 5, 1], "BDAT is not offered here"));
                return Next::Close;
            }
            Request::Rset => {
                self.reset();
                out.extend(reply(250, [2, 0, 0], "OK"));
            }
            Request::Noop { .. } => out.extend(reply(250, [2, 0, 0], "OK")),
            Request::Quit => {
                out.extend(reply(221, [2, 0, 0], "Bye"));
                return Next::Close;
            }
            Request::Vrfy { .. } => {
                out.extend(reply(252, [2, 5, 2], "Cannot verify, send the mail"))
            }
            Request::Auth { .. } => out.extend(reply(
                502,
                [5, 5, 1],
                "No authentication here: this server only receives mail for its domains",
            )),
            Request::Expn { .. }
            | Request::Help { .. }
            | Request::Etrn { .. }
            | Request::Atrn { .. }
            | Request::Burl { .. } => {
                out.extend(reply(502, [5, 5, 1], "Command not implemented"));
            }
        }
        Next::Continue
    }

    /// Where `rcpt` goes when it is one of ours; otherwise the refusal.
    fn recipient_refusal(&self, rcpt: &str) -> Result<Dest, (u16, [u8; 3], String)> {
        let s = &self.shared.settings;
        let lower = rcpt.to_ascii_lowercase();
        let Some((_, domain)) = lower.rsplit_once('@') else {
            return Err((
                550,
                [5, 1, 3],
                format!("{rcpt:?} is not an address user@domain"),
            ));
        };
        if !s.domains.iter().any(|d| d == domain) {
            return Err((
                550,
                [5, 7, 1],
                format!(
                    "Relaying denied: this server accepts mail only for {}",
                    s.domains.join(", ")
                ),
            ));
        }
        if s.recipients.iter().any(|r| r == &lower) {
            return Ok(Dest::Watcher);
        }
        let local = &rcpt[..rcpt.rfind('@').unwrap_or(0)];
        if looks_like_phone_number(local) {
            return Err((
                550,
                [5, 1, 1],
                format!(
                    "{rcpt}: phone-number addresses are not offered here (they need a check \
                     that the number's owner holds it, which this broker does not make)"
                ),
            ));
        }
        if let Some(routes) = &self.shared.routes {
            match routes.route(local) {
                Route::Desk => return Ok(Dest::Desk),
                Route::Refuse(why) => return Err((550, [5, 1, 1], format!("{rcpt}: {why}"))),
                Route::Later => {
                    return Err((
                        451,
                        [4, 3, 0],
                        "Cannot look the recipient up now, try again later".into(),
                    ))
                }
                Route::Other => {}
            }
        }
        if let Some(network) = s.qtum_addresses {
            match springmail_sdk::qtum::decode_address_for(local, network) {
                Ok(_) => return Ok(Dest::Watcher),
                Err(e) if local.len() >= 26 && local.starts_with(['q', 'Q']) => {
                    return Err((
                        550,
                        [5, 1, 1],
                        format!("{rcpt}: not a {} Qtum address: {e}", network.name()),
                    ));
                }
                Err(_) => {}
            }
        }
        Err((550, [5, 1, 1], format!("No such mailbox here: {rcpt}")))
    }

    /// DATA is complete: verdicts, trace headers, fsync, then the answer.
    async fn accept_message(&mut self) -> Vec<u8> {
        let body = std::mem::take(&mut self.data);
        let mail_from = self.mail_from.take().unwrap_or_default();
        let rcpts = std::mem::take(&mut self.rcpts);
        let desk_rcpts = std::mem::take(&mut self.desk_rcpts);
        let s = &self.shared.settings;
        let helo = self.helo.clone().unwrap_or_default();
        let ip = self.peer.ip();
        let v = match tokio::time::timeout(
            s.timeout,
            verdicts(&self.shared.keys, &s.hostname, ip, &helo, &mail_from, &body),
        )
        .await
        {
            Ok(v) => v,
            Err(_) => Verdicts {
                spf: "temperror",
                dkim: "temperror",
                dmarc: "temperror",
                header: format!(
                    "Authentication-Results: {}; none (verification timed out)\r\n",
                    s.hostname
                ),
            },
        };
        let date = mail_builder::headers::date::Date::new(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs() as i64)
                .unwrap_or(0),
        )
        .to_rfc822();
        let mut raw = Vec::with_capacity(body.len() + 512);
        raw.extend_from_slice(format!("Return-Path: <{}>\r\n", clean(&mail_from)).as_bytes());
        raw.extend_from_slice(
            format!(
                "Received: from {} ([{}])\r\n\tby {} (Spring Mail) with {}\r\n\tfor <{}>; {}\r\n",
                clean(&helo),
                ip,
                s.hostname,
                if self.tls { "ESMTPS" } else { "ESMTP" },
                clean(
                    rcpts
                        .first()
                        .or(desk_rcpts.first())
                        .map_or("", String::as_str)
                ),
                date
            )
            .as_bytes(),
        );
        raw.extend_from_slice(v.header.as_bytes());
        raw.extend_from_slice(&body);
        let size = raw.len();
        // Every copy is durable before the 250; a failure of any is a 451 (the
        // sender retries, and a copy stored twice is handled twice, idempotently).
        let mut stored = Ok(String::new());
        if let Some(routes) = &self.shared.routes {
            for rcpt in &desk_rcpts {
                let mut copy = crate::addresses::delivered_to_line(rcpt).into_bytes();
                copy.extend_from_slice(&raw);
                stored = routes.spool.store(copy).await;
                if stored.is_err() {
                    break;
                }
            }
        }
        if stored.is_ok() && !rcpts.is_empty() {
            stored = self.shared.spool.store(raw).await;
        }
        match stored {
            Ok(name) => {
                self.messages += 1;
                info!(peer = %self.peer, spool = %name, size, spf = v.spf, dkim = v.dkim, dmarc = v.dmarc, "SMTP ingress accepted a message");
                reply(250, [2, 0, 0], &format!("Queued as {name}"))
            }
            Err(e) => {
                warn!(peer = %self.peer, error = %e, "SMTP ingress cannot spool a message");
                reply(
                    451,
                    [4, 3, 0],
                    "Cannot store the message now, try again later",
                )
            }
        }
    }
}

/// A header value with no line breaks (trace fields carry client-chosen text).
fn clean(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).take(256).collect()
}

fn too_big(max: usize) -> Vec<u8> {
    reply(
        552,
        [5, 3, 4],
        &format!("Message too big (the limit is {max} bytes)"),
    )
}

fn parse_error(e: &smtp_proto::Error) -> Vec<u8> {
    use smtp_proto::Error as E;
    match e {
        E::UnknownCommand => reply(500, [5, 5, 1], "Unknown command"),
        E::InvalidSenderAddress => reply(501, [5, 1, 7], "Bad sender address syntax"),
        E::InvalidRecipientAddress => reply(501, [5, 1, 3], "Bad recipient address syntax"),
        E::SyntaxError { syntax } => reply(501, [5, 5, 4], &format!("Syntax: {syntax}")),
        E::InvalidParameter { param } => {
            reply(501, [5, 5, 4], &format!("Invalid parameter {param}"))
        }
        E::UnsupportedParameter { param } => reply(
            504,
            [5, 5, 4],
            &format!("Unsupported parameter {}", clean(param)),
        ),
        E::ResponseTooLong => reply(500, [5, 5, 2], "Line too long"),
        E::NeedsMoreData { .. } | E::InvalidResponse { .. } => {
            reply(500, [5, 5, 1], "Syntax error")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::authenticate::PinnedRecords;
    use crate::dkim_domain::DkimDomain;
    use tokio::io::{AsyncBufReadExt, BufReader};

    const LIMITS: FetchLimits = FetchLimits {
        max_messages: 100,
        max_bytes: 1 << 20,
    };

    struct Ingress {
        addr: SocketAddr,
        spool: Arc<Spool>,
        task: tokio::task::JoinHandle<()>,
        example: DkimDomain,
        _dir: tempfile::TempDir,
    }

    impl Drop for Ingress {
        fn drop(&mut self) {
            self.task.abort();
        }
    }

    impl Ingress {
        fn inbox(&self) -> Vec<Vec<u8>> {
            let mut names: Vec<_> = std::fs::read_dir(self.spool.root().join("INBOX"))
                .unwrap()
                .map(|e| e.unwrap().path())
                .collect();
            names.sort();
            names.iter().map(|p| std::fs::read(p).unwrap()).collect()
        }
    }

    async fn start(tune: impl FnOnce(&mut IngressSettings)) -> Ingress {
        let dir = tempfile::tempdir().unwrap();
        let mut s = IngressSettings::new(
            "127.0.0.1:0".parse().unwrap(),
            vec!["broker.test".into()],
            vec!["watcher@broker.test".into()],
        );
        s.max_message_bytes = 8192;
        s.timeout = Duration::from_secs(5);
        tune(&mut s);
        let example = DkimDomain::new("example.com");
        let mut pins = PinnedRecords::new();
        example.pin(&mut pins);
        let spool = Spool::open(dir.path().join("spool")).unwrap();
        let (addr, task) = serve(s, spool.clone(), DkimKeys::pinned(pins))
            .await
            .unwrap();
        Ingress {
            addr,
            spool,
            task,
            example,
            _dir: dir,
        }
    }

    /// A raw SMTP client: one line out, one (possibly multi-line) reply back.
    struct Raw {
        r: BufReader<tokio::net::tcp::OwnedReadHalf>,
        w: tokio::net::tcp::OwnedWriteHalf,
    }

    impl Raw {
        async fn connect(addr: SocketAddr) -> (Raw, String) {
            let (r, w) = TcpStream::connect(addr).await.unwrap().into_split();
            let mut c = Raw {
                r: BufReader::new(r),
                w,
            };
            let banner = c.read().await;
            (c, banner)
        }

        async fn read(&mut self) -> String {
            let mut all = String::new();
            loop {
                let mut line = String::new();
                if self.r.read_line(&mut line).await.unwrap() == 0 {
                    return all;
                }
                all.push_str(&line);
                if line.as_bytes().get(3) != Some(&b'-') {
                    return all;
                }
            }
        }

        async fn cmd(&mut self, line: &str) -> String {
            self.w
                .write_all(format!("{line}\r\n").as_bytes())
                .await
                .unwrap();
            self.read().await
        }

        async fn send(&mut self, bytes: &[u8]) {
            self.w.write_all(bytes).await.unwrap();
        }

        /// EHLO, then MAIL FROM bob@example.com; both must be accepted.
        async fn greet_and_mail_from_bob(&mut self) {
            let r = self.cmd("EHLO client.example").await;
            assert!(r.starts_with("250"), "EHLO: {r}");
            let r = self.cmd("MAIL FROM:<bob@example.com>").await;
            assert!(r.starts_with("250"), "MAIL FROM: {r}");
        }

        /// MAIL FROM Bob, RCPT the watcher, DATA: the server waits for the message.
        async fn envelope_from_bob(&mut self) {
            let r = self.cmd("MAIL FROM:<bob@example.com>").await;
            assert!(r.starts_with("250"), "MAIL FROM: {r}");
            let r = self.cmd("RCPT TO:<watcher@broker.test>").await;
            assert!(r.starts_with("250"), "RCPT TO: {r}");
            let r = self.cmd("DATA").await;
            assert!(r.starts_with("354"), "DATA: {r}");
        }
    }

    fn message(from: &str, body: &str) -> Vec<u8> {
        format!(
            "From: <{from}>\r\nTo: <watcher@broker.test>\r\nSubject: hi\r\nMessage-ID: <m1@example.com>\r\n\r\n{body}\r\n"
        )
        .into_bytes()
    }

    #[tokio::test]
    async fn a_message_for_our_recipient_is_spooled_with_verdicts_and_wakes_the_source() {
        use lettre::AsyncTransport;
        let ing = start(|_| {}).await;
        let signed = ing.example.sign(&message("bob@example.com", "claim"));
        let mut source = ing.spool.source().unwrap();
        let transport =
            lettre::AsyncSmtpTransport::<lettre::Tokio1Executor>::builder_dangerous("127.0.0.1")
                .port(ing.addr.port())
                .build();
        let envelope = lettre::address::Envelope::new(
            Some("bob@example.com".parse().unwrap()),
            vec!["Watcher@Broker.test".parse().unwrap()],
        )
        .unwrap();
        let waiter = tokio::spawn(async move {
            let t0 = std::time::Instant::now();
            source
                .wait(Duration::from_secs(10), &Notify::new())
                .await
                .unwrap();
            (t0.elapsed(), source)
        });
        let resp = transport.send_raw(&envelope, &signed).await.unwrap();
        assert_eq!(resp.code().to_string(), "250");
        let (waited, mut source) = waiter.await.unwrap();
        assert!(waited < Duration::from_secs(5), "woken, not timed out");
        let batch = source.fetch_new(None, LIMITS).await.unwrap();
        assert_eq!(batch.mails.len(), 1);
        let raw = batch.mails[0].raw.clone().unwrap();
        let text = String::from_utf8_lossy(&raw);
        assert!(
            text.starts_with("Return-Path: <bob@example.com>\r\n"),
            "{text}"
        );
        assert!(
            text.contains("by broker.test (Spring Mail) with ESMTP"),
            "{text}"
        );
        assert!(text.contains("dkim=pass"), "{text}");
        assert!(text.contains("spf="), "{text}");
        assert!(text.contains("dmarc="), "{text}");
        // lettre ends DATA with CRLF . CRLF after the message's own final CRLF.
        let mut sent = signed.clone();
        sent.extend_from_slice(b"\r\n");
        assert!(
            raw.ends_with(&sent),
            "the message itself is kept byte for byte:\n{:?}\n{:?}",
            String::from_utf8_lossy(&raw),
            String::from_utf8_lossy(&signed)
        );
        // The pipeline's own DKIM check still passes on the spooled bytes.
        let mut pins = PinnedRecords::new();
        ing.example.pin(&mut pins);
        let auth = crate::authenticate::MailAuthenticator::new(
            DkimKeys::pinned(pins),
            crate::authenticate::AuthPolicy {
                max_message_bytes: 1 << 20,
                own_addresses: vec!["watcher@broker.test".into()],
            },
        );
        assert!(matches!(
            auth.authenticate(&raw).await.unwrap(),
            crate::authenticate::AuthOutcome::Authenticated(_)
        ));
        source
            .file(&batch.mails[0].key, Folder::Processed)
            .await
            .unwrap();
        assert!(ing.inbox().is_empty());
    }

    #[tokio::test]
    async fn relaying_and_unknown_recipients_are_refused_and_nothing_is_stored() {
        let ing = start(|_| {}).await;
        let (mut c, banner) = Raw::connect(ing.addr).await;
        assert!(banner.starts_with("220 broker.test"), "{banner}");
        c.greet_and_mail_from_bob().await;
        for rcpt in [
            "alice@example.org",
            "watcher@broker.test.evil.example",
            "watcher@sub.broker.test",
            "\"watcher@broker.test\"@example.org",
        ] {
            let r = c.cmd(&format!("RCPT TO:<{rcpt}>")).await;
            assert!(r.starts_with("550 5.7.1"), "{rcpt}: {r}");
        }
        let r = c.cmd("RCPT TO:<nobody@broker.test>").await;
        assert!(r.starts_with("550 5.1.1"), "{r}");
        // No accepted recipient: DATA is refused, nothing reaches the spool.
        let r = c.cmd("DATA").await;
        assert!(r.starts_with("554"), "{r}");
        assert!(c.cmd("QUIT").await.starts_with("221"));
        assert!(ing.inbox().is_empty());
    }

    #[tokio::test]
    async fn commands_out_of_order_are_refused() {
        let ing = start(|_| {}).await;
        let (mut c, _) = Raw::connect(ing.addr).await;
        assert!(c.cmd("MAIL FROM:<a@example.com>").await.starts_with("503"));
        assert!(c.cmd("HELO client.example").await.starts_with("250"));
        assert!(c
            .cmd("RCPT TO:<watcher@broker.test>")
            .await
            .starts_with("503"));
        assert!(c.cmd("DATA").await.starts_with("503"));
        assert!(c.cmd("BOGUS").await.starts_with("500"));
        assert!(
            c.cmd("STARTTLS").await.starts_with("502"),
            "no TLS configured"
        );
        assert!(c.cmd("AUTH PLAIN AGJvYgBwdw==").await.starts_with("502"));
        assert!(c.cmd("NOOP").await.starts_with("250"));
        assert!(ing.inbox().is_empty());
    }

    #[tokio::test]
    async fn oversize_mail_is_refused_with_552_and_the_session_goes_on() {
        let ing = start(|_| {}).await;
        let (mut c, _) = Raw::connect(ing.addr).await;
        let ehlo = c.cmd("EHLO client.example").await;
        assert!(ehlo.contains("SIZE 8192"), "{ehlo}");
        // Declared too big.
        let r = c.cmd("MAIL FROM:<bob@example.com> SIZE=9000").await;
        assert!(r.starts_with("552 5.3.4"), "{r}");
        // Undeclared, and too big once sent.
        c.envelope_from_bob().await;
        let body = "x".repeat(100);
        for _ in 0..200 {
            c.send(format!("{body}\r\n").as_bytes()).await;
        }
        let r = c.cmd(".").await;
        assert!(r.starts_with("552 5.3.4"), "{r}");
        assert!(ing.inbox().is_empty());
        // A small message on the same connection still goes through.
        c.envelope_from_bob().await;
        c.send(&message("bob@example.com", "..dot-stuffed line"))
            .await;
        let r = c.cmd(".").await;
        assert!(r.starts_with("250"), "{r}");
        let inbox = ing.inbox();
        assert_eq!(inbox.len(), 1);
        let text = String::from_utf8_lossy(&inbox[0]);
        assert!(
            text.contains("\r\n.dot-stuffed line\r\n"),
            "unstuffed: {text}"
        );
    }

    #[tokio::test]
    async fn per_client_limits_hold() {
        let ing = start(|s| {
            s.max_connections_per_client = 2;
            s.max_messages_per_connection = 1;
            s.max_recipients = 1;
        })
        .await;
        let (mut a, _) = Raw::connect(ing.addr).await;
        let (_b, banner) = Raw::connect(ing.addr).await;
        assert!(banner.starts_with("220"), "{banner}");
        let (_c, banner) = Raw::connect(ing.addr).await;
        assert!(
            banner.starts_with("421 4.7.0"),
            "third connection: {banner}"
        );
        // One recipient per message.
        a.greet_and_mail_from_bob().await;
        assert!(a
            .cmd("RCPT TO:<watcher@broker.test>")
            .await
            .starts_with("250"));
        assert!(a
            .cmd("RCPT TO:<watcher@broker.test>")
            .await
            .starts_with("452"));
        assert!(a.cmd("DATA").await.starts_with("354"));
        a.send(&message("bob@example.com", "one")).await;
        assert!(a.cmd(".").await.starts_with("250"));
        // One message per connection.
        let r = a.cmd("MAIL FROM:<bob@example.com>").await;
        assert!(r.starts_with("421"), "{r}");
        assert_eq!(ing.inbox().len(), 1);
        // A closed connection frees its slot.
        drop(a);
        tokio::time::sleep(Duration::from_millis(200)).await;
        let (_d, banner) = Raw::connect(ing.addr).await;
        assert!(banner.starts_with("220"), "{banner}");
    }

    #[tokio::test]
    async fn a_connection_dropped_mid_data_stores_nothing() {
        let ing = start(|_| {}).await;
        let (mut c, _) = Raw::connect(ing.addr).await;
        c.greet_and_mail_from_bob().await;
        assert!(c
            .cmd("RCPT TO:<watcher@broker.test>")
            .await
            .starts_with("250"));
        assert!(c.cmd("DATA").await.starts_with("354"));
        c.send(b"From: <bob@example.com>\r\nSubject: half\r\n\r\nhalf a bo")
            .await;
        drop(c);
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(ing.inbox().is_empty());
        let tmp: Vec<_> = std::fs::read_dir(ing.spool.root().join("tmp"))
            .unwrap()
            .collect();
        assert!(tmp.is_empty());
    }

    #[tokio::test]
    async fn pipelined_commands_are_answered_in_order() {
        let ing = start(|_| {}).await;
        let (mut c, _) = Raw::connect(ing.addr).await;
        assert!(c.cmd("EHLO client.example").await.contains("PIPELINING"));
        c.send(b"MAIL FROM:<bob@example.com>\r\nRCPT TO:<x@example.org>\r\nRCPT TO:<watcher@broker.test>\r\nDATA\r\n")
            .await;
        assert!(c.read().await.starts_with("250"));
        assert!(c.read().await.starts_with("550 5.7.1"));
        assert!(c.read().await.starts_with("250"));
        assert!(c.read().await.starts_with("354"));
        let mut msg = message("bob@example.com", "pipelined");
        msg.extend_from_slice(b".\r\nQUIT\r\n");
        c.send(&msg).await;
        assert!(c.read().await.starts_with("250"));
        assert!(c.read().await.starts_with("221"));
        assert_eq!(ing.inbox().len(), 1);
    }

    #[tokio::test]
    async fn starttls_is_offered_with_a_certificate_and_mail_goes_over_it() {
        use lettre::transport::smtp::client::{Tls, TlsParameters};
        use lettre::AsyncTransport;
        let certs = tempfile::tempdir().unwrap();
        let (cert, key) = (certs.path().join("c.pem"), certs.path().join("k.pem"));
        let made = std::process::Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
            ])
            .args(["-nodes", "-days", "1", "-subj", "/CN=localhost"])
            .args(["-addext", "subjectAltName=DNS:localhost", "-keyout"])
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .output();
        if !made.is_ok_and(|o| o.status.success()) {
            eprintln!("SKIPPED: openssl cannot make a test certificate here");
            return;
        }
        let ing = start(|s| s.tls = Some((cert.clone(), key.clone()))).await;
        let (mut c, _) = Raw::connect(ing.addr).await;
        assert!(c.cmd("EHLO client.example").await.contains("STARTTLS"));
        drop(c);
        let tls = TlsParameters::builder("localhost".into())
            .dangerous_accept_invalid_certs(true)
            .build_rustls()
            .unwrap();
        let transport =
            lettre::AsyncSmtpTransport::<lettre::Tokio1Executor>::builder_dangerous("127.0.0.1")
                .port(ing.addr.port())
                .tls(Tls::Required(tls))
                .build();
        let envelope = lettre::address::Envelope::new(
            Some("bob@example.com".parse().unwrap()),
            vec!["watcher@broker.test".parse().unwrap()],
        )
        .unwrap();
        transport
            .send_raw(&envelope, &message("bob@example.com", "secret"))
            .await
            .unwrap();
        let inbox = ing.inbox();
        assert_eq!(inbox.len(), 1);
        assert!(String::from_utf8_lossy(&inbox[0]).contains("with ESMTPS"));
    }

    #[tokio::test]
    async fn qtum_addresses_at_our_domain_are_accepted_and_phone_numbers_refused() {
        use springmail_sdk::qtum::{encode_address, QtumNetwork};
        let ing = start(|s| s.qtum_addresses = Some(QtumNetwork::Regtest)).await;
        let owner = alloy::primitives::Address::repeat_byte(0x5a);
        let q = encode_address(owner, QtumNetwork::Regtest);
        let main = encode_address(owner, QtumNetwork::Mainnet);
        let (mut c, _) = Raw::connect(ing.addr).await;
        c.greet_and_mail_from_bob().await;
        let r = c.cmd(&format!("RCPT TO:<{q}@broker.test>")).await;
        assert!(r.starts_with("250"), "{r}");
        // Base58 is case-sensitive: another case is another (invalid) address.
        let r = c
            .cmd(&format!("RCPT TO:<{}@broker.test>", q.to_ascii_lowercase()))
            .await;
        assert!(
            r.starts_with("550 5.1.1") && r.contains("Qtum address"),
            "{r}"
        );
        let r = c.cmd(&format!("RCPT TO:<{main}@broker.test>")).await;
        assert!(r.starts_with("550 5.1.1") && r.contains("regtest"), "{r}");
        // At another domain it is a relay attempt like any other.
        let r = c.cmd(&format!("RCPT TO:<{q}@example.org>")).await;
        assert!(r.starts_with("550 5.7.1"), "{r}");
        for phone in ["+41791234567", "0791234567", "+1-555-0100"] {
            let r = c.cmd(&format!("RCPT TO:<{phone}@broker.test>")).await;
            assert!(
                r.starts_with("550 5.1.1") && r.contains("phone-number addresses"),
                "{phone}: {r}"
            );
        }
        assert!(c.cmd("DATA").await.starts_with("354"));
        c.send(&message("bob@example.com", "to a Qtum address"))
            .await;
        assert!(c.cmd(".").await.starts_with("250"));
        assert_eq!(ing.inbox().len(), 1);
        // Without the setting the same address is unknown.
        let plain = start(|_| {}).await;
        let (mut c, _) = Raw::connect(plain.addr).await;
        c.greet_and_mail_from_bob().await;
        let r = c.cmd(&format!("RCPT TO:<{q}@broker.test>")).await;
        assert!(r.starts_with("550 5.1.1 No such mailbox"), "{r}");
    }

    #[test]
    fn reopening_the_spool_removes_only_old_half_written_files() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path()).unwrap();
        let tmp = spool.root().join("tmp");
        std::fs::write(tmp.join("old.eml"), b"half").unwrap();
        std::fs::write(tmp.join("new.eml"), b"half").unwrap();
        let hour_ago = std::time::SystemTime::now() - Duration::from_secs(3600);
        std::fs::File::options()
            .write(true)
            .open(tmp.join("old.eml"))
            .unwrap()
            .set_modified(hour_ago)
            .unwrap();
        drop(spool);
        let _spool = Spool::open(dir.path()).unwrap();
        assert!(!tmp.join("old.eml").exists());
        assert!(tmp.join("new.eml").exists());
    }

    #[test]
    fn bad_tls_files_name_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let cert = dir.path().join("missing.pem");
        let err = match load_tls(&cert, &cert) {
            Err(e) => e,
            Ok(_) => panic!("a missing certificate loads"),
        };
        assert_eq!(err.key(), "smtp_ingress.tls_cert");
        assert!(err.to_string().contains("missing.pem"), "{err}");
    }
}
