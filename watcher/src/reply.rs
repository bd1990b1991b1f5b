//! Stage 5: answer the claimant in the same thread.
//!
//! A reply goes to the authenticated `From` address (never `Reply-To`), carries
//! `In-Reply-To` and `References` so mail clients thread it under the claim,
//! `Auto-Submitted: auto-replied` (RFC 3834) so auto-responders do not answer it, and
//! a DKIM signature of the broker's domain made with mail-auth. Its `Message-ID` is
//! derived from the claim's, so a reply resent after a crash is recognizably the same
//! mail.
//!
//! Replies are composed when the outcome is decided and stored in the journal's
//! outbox in the same transaction; a [`ReplySink`] delivers them: [`SmtpSink`]
//! through lettre in production, [`MemorySink`] and [`DirSink`] for tests and the demo.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use base64::Engine;
use mail_auth::common::crypto::{DkimKey, Ed25519Key, RsaKey, Sha256};
use mail_auth::common::headers::HeaderWriter;
use mail_auth::dkim::{DkimSigner, Done};
use mail_builder::headers::message_id::MessageId;
use mail_builder::MessageBuilder;

use crate::authenticate::Authenticated;

/// Errors of reply composition and key loading.
#[derive(Debug, thiserror::Error)]
pub enum ReplyError {
    /// The DKIM key does not load.
    #[error("the DKIM key {what} cannot be used: {reason}")]
    BadKey {
        /// Which key (file path or "generated").
        what: String,
        /// Why.
        reason: String,
    },
    /// Building or signing the message failed.
    #[error("cannot build the reply: {0}")]
    Build(String),
}

/// A delivery failure.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct SinkError {
    /// What failed (never the message body).
    pub message: String,
    /// True when a later attempt may succeed.
    pub transient: bool,
}

/// A reply ready to send.
#[derive(Clone, PartialEq, Eq)]
pub struct OutgoingMail {
    /// Envelope sender (the watcher's address).
    pub mail_from: String,
    /// Envelope recipient (the claimant).
    pub rcpt: String,
    /// The signed RFC 5322 message.
    pub bytes: Vec<u8>,
}

impl std::fmt::Debug for OutgoingMail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutgoingMail")
            .field("bytes", &self.bytes.len())
            .finish_non_exhaustive()
    }
}

/// Where replies go. One required method; implementations decide transport.
#[async_trait]
pub trait ReplySink: Send + Sync {
    /// Hands one message to the transport.
    async fn send(&self, mail: &OutgoingMail) -> Result<(), SinkError>;

    /// A short description for logs.
    fn describe(&self) -> String {
        "reply sink".into()
    }

    /// How many replies the outbox hands over at once.
    fn concurrency(&self) -> usize {
        16
    }
}

/// Keeps replies in memory (tests, the demo).
#[derive(Debug, Clone, Default)]
pub struct MemorySink {
    sent: Arc<Mutex<Vec<OutgoingMail>>>,
    fail: Arc<Mutex<Option<SinkError>>>,
}

impl MemorySink {
    /// An empty sink.
    pub fn new() -> Self {
        Self::default()
    }

    /// Everything sent so far.
    pub fn sent(&self) -> Vec<OutgoingMail> {
        self.sent.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Makes every send fail with `err` (or succeed again with `None`).
    pub fn fail_with(&self, err: Option<SinkError>) {
        *self.fail.lock().unwrap_or_else(|p| p.into_inner()) = err;
    }
}

#[async_trait]
impl ReplySink for MemorySink {
    async fn send(&self, mail: &OutgoingMail) -> Result<(), SinkError> {
        if let Some(err) = self.fail.lock().unwrap_or_else(|p| p.into_inner()).clone() {
            return Err(err);
        }
        self.sent
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(mail.clone());
        Ok(())
    }

    fn describe(&self) -> String {
        "memory".into()
    }
}

/// Writes each reply as an `.eml` file into a directory (the demo's outbox).
#[derive(Debug, Clone)]
pub struct DirSink {
    dir: PathBuf,
}

impl DirSink {
    /// Replies go into `dir` (created if missing).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        DirSink { dir: dir.into() }
    }
}

#[async_trait]
impl ReplySink for DirSink {
    async fn send(&self, mail: &OutgoingMail) -> Result<(), SinkError> {
        let io = |e: std::io::Error| SinkError {
            message: format!("writing to {}: {e}", self.dir.display()),
            transient: true,
        };
        tokio::fs::create_dir_all(&self.dir).await.map_err(io)?;
        let name = format!("{}.eml", crate::authenticate::short_hash(&mail.bytes));
        let tmp = self.dir.join(format!(".{name}.tmp"));
        tokio::fs::write(&tmp, &mail.bytes).await.map_err(io)?;
        tokio::fs::rename(&tmp, self.dir.join(name))
            .await
            .map_err(io)?;
        Ok(())
    }

    fn describe(&self) -> String {
        format!("directory {}", self.dir.display())
    }
}

/// How to reach the SMTP server.
#[derive(Clone, PartialEq, Eq)]
pub struct SmtpSettings {
    /// Host name (also the TLS server name).
    pub host: String,
    /// Port.
    pub port: u16,
    /// `tls` (implicit, 465), `starttls` (587) or `plain` (loopback only).
    pub security: SmtpSecurity,
    /// Login and password, if the server wants them.
    pub credentials: Option<(String, String)>,
    /// Connections open at once (replies in flight), kept open between replies.
    pub connections: u32,
}

/// `[smtp] connections` when not set.
pub const DEFAULT_SMTP_CONNECTIONS: u32 = 16;

impl std::fmt::Debug for SmtpSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpSettings")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("security", &self.security)
            .field("connections", &self.connections)
            .field(
                "credentials",
                &self.credentials.as_ref().map(|(u, _)| (u, "<redacted>")),
            )
            .finish()
    }
}

/// Transport security of a mail connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpSecurity {
    /// TLS from the first byte.
    Tls,
    /// Plain, upgraded with STARTTLS (required).
    StartTls,
    /// No TLS at all: only allowed to a loopback address.
    Plain,
}

/// Sends replies through an SMTP server with lettre, over pooled connections.
#[derive(Clone)]
pub struct SmtpSink {
    builder: lettre::transport::smtp::AsyncSmtpTransportBuilder,
    connections: u32,
    // Built at the first send: the pool starts a task on the runtime that sends.
    transport: Arc<std::sync::OnceLock<lettre::AsyncSmtpTransport<lettre::Tokio1Executor>>>,
    describe: String,
}

impl std::fmt::Debug for SmtpSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe)
    }
}

impl SmtpSink {
    /// A sink for these settings (connects at the first reply).
    pub fn new(settings: &SmtpSettings) -> Result<Self, SinkError> {
        use lettre::transport::smtp::authentication::Credentials;
        use lettre::AsyncSmtpTransport;
        let err = |e: lettre::transport::smtp::Error| SinkError {
            message: e.to_string(),
            transient: false,
        };
        let builder = match settings.security {
            SmtpSecurity::Tls => {
                AsyncSmtpTransport::<lettre::Tokio1Executor>::relay(&settings.host).map_err(err)?
            }
            SmtpSecurity::StartTls => {
                AsyncSmtpTransport::<lettre::Tokio1Executor>::starttls_relay(&settings.host)
                    .map_err(err)?
            }
            SmtpSecurity::Plain => {
                AsyncSmtpTransport::<lettre::Tokio1Executor>::builder_dangerous(&settings.host)
            }
        };
        let mut builder = builder
            .port(settings.port)
            .timeout(Some(std::time::Duration::from_secs(30)))
            .pool_config(
                lettre::transport::smtp::PoolConfig::new()
                    .max_size(settings.connections.max(1))
                    .idle_timeout(std::time::Duration::from_secs(30)),
            );
        if let Some((user, pass)) = &settings.credentials {
            builder = builder.credentials(Credentials::new(user.clone(), pass.clone()));
        }
        Ok(SmtpSink {
            builder,
            connections: settings.connections.max(1),
            transport: Arc::default(),
            describe: format!(
                "smtp {}:{} ({:?})",
                settings.host, settings.port, settings.security
            ),
        })
    }
}

#[async_trait]
impl ReplySink for SmtpSink {
    async fn send(&self, mail: &OutgoingMail) -> Result<(), SinkError> {
        use lettre::AsyncTransport;
        let addr = |a: &str| {
            a.parse::<lettre::Address>().map_err(|e| SinkError {
                message: format!("invalid address: {e}"),
                transient: false,
            })
        };
        let envelope =
            lettre::address::Envelope::new(Some(addr(&mail.mail_from)?), vec![addr(&mail.rcpt)?])
                .map_err(|e| SinkError {
                message: e.to_string(),
                transient: false,
            })?;
        self.transport
            .get_or_init(|| self.builder.clone().build())
            .send_raw(&envelope, &mail.bytes)
            .await
            .map(|_| ())
            .map_err(|e| SinkError {
                message: e.to_string(),
                transient: !e.is_permanent(),
            })
    }

    fn describe(&self) -> String {
        self.describe.clone()
    }

    fn concurrency(&self) -> usize {
        self.connections as usize
    }
}

/// A DKIM signing key (RSA or Ed25519). `Debug` is redacted.
pub struct DkimSigningKey {
    key: DkimKey,
}

impl std::fmt::Debug for DkimSigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DkimSigningKey(<redacted>)")
    }
}

impl DkimSigningKey {
    /// Loads a PEM private key: PKCS#8 Ed25519, PKCS#8 RSA or PKCS#1 RSA.
    pub fn from_pem(pem: &str, what: &str) -> Result<Self, ReplyError> {
        use rustls_pki_types::pem::PemObject;
        use rustls_pki_types::PrivateKeyDer;
        let bad = |reason: String| ReplyError::BadKey {
            what: what.to_string(),
            reason,
        };
        let der = PrivateKeyDer::from_pem_slice(pem.as_bytes()).map_err(|e| bad(e.to_string()))?;
        if let PrivateKeyDer::Pkcs8(p8) = &der {
            if let Ok(k) = Ed25519Key::from_pkcs8_maybe_unchecked_der(p8.secret_pkcs8_der()) {
                return Ok(DkimSigningKey {
                    key: DkimKey::Ed25519(k),
                });
            }
        }
        let rsa = RsaKey::<Sha256>::from_key_der(der).map_err(|e| bad(e.to_string()))?;
        Ok(DkimSigningKey {
            key: DkimKey::Rsa(rsa),
        })
    }
}

/// A fresh Ed25519 DKIM key: the PKCS#8 PEM and the DNS TXT record to publish
/// (`v=DKIM1; k=ed25519; p=…`). For tests, the demo and first setup.
pub fn generate_ed25519_dkim_key() -> (String, String) {
    let der = Ed25519Key::generate_pkcs8().expect("the system RNG works");
    let key = Ed25519Key::from_pkcs8_der(&der).expect("a generated key loads");
    let b64 = base64::engine::general_purpose::STANDARD;
    let body = b64.encode(&der);
    let mut pem = String::from("-----BEGIN PRIVATE KEY-----\n");
    for chunk in body.as_bytes().chunks(64) {
        pem.push_str(std::str::from_utf8(chunk).expect("base64 is ASCII"));
        pem.push('\n');
    }
    pem.push_str("-----END PRIVATE KEY-----\n");
    let record = format!("v=DKIM1; k=ed25519; p={}", b64.encode(key.public_key()));
    (pem, record)
}

/// The headers the broker signs.
pub use springmail_sdk::protocol::DKIM_REPLY_HEADERS as SIGNED_HEADERS;

/// Who to answer, in which thread: stored with the message until the reply is composed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ReplyContext {
    /// The authenticated `From` address.
    pub to: String,
    /// The claim's subject.
    pub subject: String,
    /// The claim's Message-ID (without brackets).
    pub message_id: Option<String>,
    /// The claim's References (without brackets).
    pub references: Vec<String>,
    /// The short hash of the claim's Message-ID.
    pub msgid_hash: String,
}

impl ReplyContext {
    /// The context of an authenticated message.
    pub fn of(mail: &Authenticated) -> Self {
        ReplyContext {
            to: mail.from.clone(),
            subject: mail.subject.clone(),
            message_id: mail.message_id.clone(),
            references: mail.references.clone(),
            msgid_hash: mail.msgid_hash.clone(),
        }
    }
}

/// What the reply says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplyBody {
    /// The deposit was released.
    Claimed {
        /// What the payee received, e.g. `1.499 QTUM`.
        paid: String,
        /// The watcher's fee.
        fee: String,
        /// The payee, as users of the chain write it.
        to: String,
        /// The transaction id.
        tx_hash: String,
    },
    /// The claim was refused, with the sentence why.
    Refused {
        /// The reason, in words.
        reason: String,
    },
}

impl ReplyBody {
    fn text(&self, from: &str) -> String {
        match self {
            ReplyBody::Claimed { paid, fee, to, tx_hash } => format!(
                "Hello,\n\nyour claim was paid.\n\n  Paid to you:   {paid}\n  Address:       {to}\n  Watcher fee:   {fee}\n\n\
                 Transaction id:\n  {tx_hash}\n\nThe funds are at your address now.\n\nSpring Mail watcher <{from}>\n"
            ),
            ReplyBody::Refused { reason } => format!(
                "Hello,\n\nyour claim was not paid.\n\n{reason}\n\nThe deposit was left as it was.\n\nSpring Mail watcher <{from}>\n"
            ),
        }
    }

    fn tag(&self) -> &'static str {
        match self {
            ReplyBody::Claimed { .. } => "claimed",
            ReplyBody::Refused { .. } => "refused",
        }
    }
}

/// The subject of a reply to a mail with `subject`: `Re: ` once.
pub fn reply_subject(subject: &str) -> String {
    if subject.trim().is_empty() {
        "Re: your Spring Mail claim".to_string()
    } else if subject.trim_start().to_ascii_lowercase().starts_with("re:") {
        subject.to_string()
    } else {
        format!("Re: {subject}")
    }
}

/// Composes and signs replies as the broker.
pub struct ReplyComposer {
    from: String,
    display_name: String,
    signer: Option<(DkimSigner<DkimKey, Done>, String)>,
}

impl std::fmt::Debug for ReplyComposer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplyComposer")
            .field("from", &self.from)
            .field("dkim_domain", &self.signer.as_ref().map(|(_, d)| d))
            .finish()
    }
}

impl ReplyComposer {
    /// Replies from `from`, signed with `dkim` (key, domain, selector) when given.
    pub fn new(
        from: &str,
        display_name: &str,
        dkim: Option<(DkimSigningKey, String, String)>,
    ) -> Self {
        let signer = dkim.map(|(key, domain, selector)| {
            let signer = DkimSigner::from_key(key.key)
                .domain(domain.clone())
                .selector(selector)
                .headers(SIGNED_HEADERS);
            (signer, domain)
        });
        ReplyComposer {
            from: from.to_string(),
            display_name: display_name.to_string(),
            signer,
        }
    }

    /// The watcher's address.
    pub fn from_address(&self) -> &str {
        &self.from
    }

    /// DKIM-signs a message built elsewhere (the broker's address mail), when a key is set.
    pub fn sign(&self, mut bytes: Vec<u8>) -> Result<Vec<u8>, ReplyError> {
        let Some((signer, _)) = &self.signer else {
            return Ok(bytes);
        };
        let sig = signer
            .sign(&bytes)
            .map_err(|e| ReplyError::Build(format!("DKIM signing failed: {e}")))?;
        let mut signed = sig.to_header().into_bytes();
        signed.append(&mut bytes);
        Ok(signed)
    }

    /// Builds and signs the reply; `date` is unix seconds.
    pub fn compose(
        &self,
        ctx: &ReplyContext,
        body: &ReplyBody,
        date: u64,
    ) -> Result<OutgoingMail, ReplyError> {
        let subject = reply_subject(&ctx.subject);
        self.compose_parts(
            ctx,
            body.tag(),
            &subject,
            &body.text(&self.from),
            None,
            date,
        )
        .map(|(mail, _)| mail)
    }

    /// Builds and signs a reply from its parts (`tag` makes its Message-ID differ from
    /// the other replies to the same mail); returns it with its Message-ID.
    pub fn compose_parts(
        &self,
        ctx: &ReplyContext,
        tag: &str,
        subject: &str,
        text: &str,
        html: Option<&str>,
        date: u64,
    ) -> Result<(OutgoingMail, String), ReplyError> {
        let domain = self
            .from
            .rsplit_once('@')
            .map(|(_, d)| d)
            .unwrap_or("localhost");
        let message_id = format!("springmail.{}.{}@{}", ctx.msgid_hash, tag, domain);
        let mut builder = MessageBuilder::new()
            .from((self.display_name.as_str(), self.from.as_str()))
            .to(ctx.to.as_str())
            .subject(subject)
            .date(date as i64)
            .message_id(message_id.clone())
            .header(
                "Auto-Submitted",
                mail_builder::headers::raw::Raw::new("auto-replied"),
            )
            .text_body(text.to_string());
        if let Some(html) = html {
            builder = builder.html_body(html.to_string());
        }
        if let Some(id) = &ctx.message_id {
            let mut refs: Vec<String> = ctx.references.clone();
            if !refs.contains(id) {
                refs.push(id.clone());
            }
            builder = builder
                .in_reply_to(id.clone())
                .references(MessageId::new_list(refs.into_iter()));
        }
        let bytes = builder
            .write_to_vec()
            .map_err(|e| ReplyError::Build(e.to_string()))?;
        let bytes = self.sign(bytes)?;
        Ok((
            OutgoingMail {
                mail_from: self.from.clone(),
                rcpt: ctx.to.clone(),
                bytes,
            },
            message_id,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(msgid_hash: &str) -> ReplyContext {
        ReplyContext {
            to: "alice@example.com".into(),
            subject: "claim".into(),
            message_id: Some(format!("{msgid_hash}@mail.example.com")),
            references: Vec::new(),
            msgid_hash: msgid_hash.into(),
        }
    }

    fn message_id(mail: &OutgoingMail) -> String {
        mail_parser::MessageParser::default()
            .parse(&mail.bytes)
            .and_then(|m| m.message_id().map(str::to_string))
            .expect("a Message-ID")
    }

    /// A reply composed again (after a crash, before its outcome was committed) has
    /// the same Message-ID, so a second copy folds into the first; each claim and
    /// each outcome has its own.
    #[test]
    fn the_message_id_of_a_reply_is_derived_from_the_claim_and_its_outcome() {
        let (pem, _) = generate_ed25519_dkim_key();
        let key = DkimSigningKey::from_pem(&pem, "test key").unwrap();
        let composer = ReplyComposer::new(
            "broker@springmail.example",
            "Spring Mail",
            Some((key, "springmail.example".into(), "s1".into())),
        );
        let refused = ReplyBody::Refused {
            reason: "no deposit".into(),
        };
        let first = composer.compose(&ctx("aa11"), &refused, 1_000).unwrap();
        let again = composer.compose(&ctx("aa11"), &refused, 9_000).unwrap();
        assert_ne!(first.bytes, again.bytes, "the date differs");
        assert_eq!(message_id(&first), message_id(&again));
        assert_eq!(
            message_id(&first),
            "springmail.aa11.refused@springmail.example"
        );
        let other = composer.compose(&ctx("bb22"), &refused, 1_000).unwrap();
        assert_ne!(message_id(&first), message_id(&other));
        let claimed = ReplyBody::Claimed {
            paid: "1 QTUM".into(),
            fee: "0.01 QTUM".into(),
            to: "qabc".into(),
            tx_hash: "0x01".into(),
        };
        let paid = composer.compose(&ctx("aa11"), &claimed, 1_000).unwrap();
        assert_ne!(message_id(&first), message_id(&paid));
    }
}
