//! Stage 2: authenticate a raw message.
//!
//! A claim is only as good as the proof that it came from the address the deposit
//! was made to. That proof is DKIM: the watcher accepts a message only when a
//! signature verifies (`Pass`, never `Neutral`: mail-auth reports a body altered
//! after signing as `Neutral`), its `d=` domain aligns with the `From` domain
//! (DMARC relaxed alignment, see [`aligned`]), it covers the `From` header, and it
//! signs the whole body (`l=` partial-body signatures are refused, since anything
//! could be appended after the signed length).
//!
//! Everything that fails here is [`AuthOutcome::Dropped`]: filed with a reason and
//! never answered (no backscatter to forged senders). Auto-replies and bounces are
//! dropped before DKIM is even looked at.
//!
//! DNS is injected: [`DkimKeys::system`] resolves through the system resolver,
//! [`DkimKeys::pinned`] answers only from records given up front (tests and the
//! demo, no network).

use std::collections::HashMap;

use mail_auth::common::parse::TxtRecordParser;
use mail_auth::common::verify::DomainKey;
use mail_auth::hickory_resolver::config::{ResolverConfig, ResolverOpts};
use mail_auth::{
    AuthenticatedMessage, DkimResult, MessageAuthenticator, Parameters, ResolverCache, Txt,
};
use mail_parser::{MessageParser, MimeHeaders};
use sha2::{Digest, Sha256};

/// Errors setting the authenticator up.
#[derive(Debug, thiserror::Error)]
pub enum AuthSetupError {
    /// A pinned record does not parse as a DKIM key record.
    #[error("dkim.pinned: the record for {name} is not a valid DKIM key record: {reason}")]
    BadPinnedRecord {
        /// The DNS name.
        name: String,
        /// Why.
        reason: String,
    },
    /// The system resolver could not be configured.
    #[error("cannot set up DNS resolution for DKIM: {0}")]
    Resolver(String),
}

/// A failure that says nothing about the message: retry later.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// DNS answered with a temporary error for the signer's key.
    #[error("temporary DNS failure looking up the DKIM key of {domain}: {reason}")]
    TempDns {
        /// The signing domain.
        domain: String,
        /// What the resolver said.
        reason: String,
    },
}

/// DKIM key records known in advance, answered without DNS.
#[derive(Clone, Default)]
pub struct PinnedRecords {
    records: HashMap<Box<str>, Txt>,
}

impl std::fmt::Debug for PinnedRecords {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PinnedRecords")
            .field("names", &self.records.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl PinnedRecords {
    /// No records.
    pub fn new() -> Self {
        Self::default()
    }

    /// Pins `name` (`selector._domainkey.domain`) to a DKIM key record
    /// (`v=DKIM1; k=ed25519; p=…`).
    pub fn pin(&mut self, name: &str, record: &str) -> Result<(), AuthSetupError> {
        let key =
            DomainKey::parse(record.as_bytes()).map_err(|e| AuthSetupError::BadPinnedRecord {
                name: name.to_string(),
                reason: e.to_string(),
            })?;
        let mut fqdn = name.trim().to_ascii_lowercase();
        if !fqdn.ends_with('.') {
            fqdn.push('.');
        }
        self.records.insert(
            fqdn.into_boxed_str(),
            Txt::DomainKey(std::sync::Arc::new(key)),
        );
        Ok(())
    }

    /// Builder form of [`PinnedRecords::pin`].
    pub fn with(mut self, name: &str, record: &str) -> Result<Self, AuthSetupError> {
        self.pin(name, record)?;
        Ok(self)
    }

    /// How many records are pinned.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// True when nothing is pinned.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }
}

impl ResolverCache<Box<str>, Txt> for PinnedRecords {
    fn get<Q>(&self, name: &Q) -> Option<Txt>
    where
        Box<str>: std::borrow::Borrow<Q>,
        Q: std::hash::Hash + Eq + ?Sized,
    {
        self.records.get(name).cloned()
    }

    fn remove<Q>(&self, _name: &Q) -> Option<Txt>
    where
        Box<str>: std::borrow::Borrow<Q>,
        Q: std::hash::Hash + Eq + ?Sized,
    {
        None
    }

    fn insert(&self, _key: Box<str>, _value: Txt, _valid_until: std::time::Instant) {}
}

/// Where DKIM keys come from.
#[derive(Clone)]
pub struct DkimKeys {
    resolver: MessageAuthenticator,
    pins: PinnedRecords,
    network: bool,
}

impl std::fmt::Debug for DkimKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DkimKeys")
            .field("pins", &self.pins)
            .field("network", &self.network)
            .finish()
    }
}

impl DkimKeys {
    /// The system resolver (`/etc/resolv.conf`), with `pins` answered first.
    pub fn system(pins: PinnedRecords) -> Result<Self, AuthSetupError> {
        let resolver = MessageAuthenticator::new_system_conf()
            .map_err(|e| AuthSetupError::Resolver(e.to_string()))?;
        Ok(DkimKeys {
            resolver,
            pins,
            network: true,
        })
    }

    /// Only the pinned records; any other name fails at once (no network at all).
    pub fn pinned(pins: PinnedRecords) -> Self {
        let resolver = MessageAuthenticator::new(
            ResolverConfig::from_parts(None, vec![], vec![]),
            ResolverOpts::default(),
        )
        .expect("an empty resolver configuration is valid");
        DkimKeys {
            resolver,
            pins,
            network: false,
        }
    }

    /// True when names outside the pins are looked up in DNS.
    pub fn uses_network(&self) -> bool {
        self.network
    }

    /// The resolver and the pins (the SMTP ingress's SPF, DKIM and DMARC verdicts).
    pub(crate) fn parts(&self) -> (&MessageAuthenticator, &PinnedRecords) {
        (&self.resolver, &self.pins)
    }
}

/// What authentication needs besides the keys.
#[derive(Debug, Clone)]
pub struct AuthPolicy {
    /// Larger messages are dropped unread.
    pub max_message_bytes: u64,
    /// The watcher's own addresses (normalized): mail from them is a loop and dropped.
    pub own_addresses: Vec<String>,
}

/// A message whose sender is proven.
#[derive(Debug, Clone)]
pub struct Authenticated {
    /// The `From` address, normalized (the sdk's [`springmail_sdk::email::normalize`]).
    pub from: String,
    /// The `From` domain.
    pub from_domain: String,
    /// The `d=` of the signature that passed.
    pub signer_domain: String,
    /// The `Message-ID`, without angle brackets.
    pub message_id: Option<String>,
    /// A short hash of the Message-ID (or of the bytes when there is none), for logs and replay detection.
    pub msgid_hash: String,
    /// The `Subject`.
    pub subject: String,
    /// The `References` chain, without angle brackets.
    pub references: Vec<String>,
    /// Texts that may hold a BiSMTP block: `application/bismtp` parts first, then `text/plain` bodies.
    pub texts: Vec<String>,
}

/// Why a message was dropped (filed in Rejected, never answered).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DropReason {
    /// Larger than the configured limit; not read.
    TooLarge {
        /// Its size.
        size: u64,
        /// The limit.
        max: u64,
    },
    /// Not a parseable RFC 5322 message.
    Unparseable,
    /// No `From`, several `From` headers, or several addresses in it.
    BadFrom(String),
    /// From the watcher itself (a mail loop).
    FromSelf,
    /// A bounce (delivery status notification, null return path).
    Bounce(String),
    /// An auto-reply (`Auto-Submitted`, vacation responders).
    AutoReply(String),
    /// No DKIM signature at all.
    NoSignature,
    /// Signatures exist but none verifies.
    DkimFailed(String),
    /// A signature verifies but for a domain that does not align with `From`.
    NotAligned {
        /// The `d=` that passed.
        signer: String,
        /// The `From` domain.
        from_domain: String,
    },
    /// The only aligned passing signature covers part of the body (`l=`).
    PartialBody,
    /// Handling the message panicked (a bug here or in a parser): filed so that one
    /// message can never stop the watcher, or stop it again after every restart.
    Internal,
}

impl DropReason {
    /// A stable code for the journal and metrics.
    pub fn code(&self) -> &'static str {
        match self {
            DropReason::TooLarge { .. } => "too-large",
            DropReason::Unparseable => "unparseable",
            DropReason::BadFrom(_) => "bad-from",
            DropReason::FromSelf => "from-self",
            DropReason::Bounce(_) => "bounce",
            DropReason::AutoReply(_) => "auto-reply",
            DropReason::NoSignature => "dkim-missing",
            DropReason::DkimFailed(_) => "dkim-failed",
            DropReason::NotAligned { .. } => "dkim-not-aligned",
            DropReason::PartialBody => "dkim-partial-body",
            DropReason::Internal => "internal-error",
        }
    }

    /// A sentence for the journal (these are never mailed).
    pub fn explain(&self) -> String {
        match self {
            DropReason::TooLarge { size, max } => {
                format!("the message is {size} bytes, more than the {max} bytes this watcher reads")
            }
            DropReason::Unparseable => "the message is not a readable email message".into(),
            DropReason::BadFrom(why) => format!("the From header is unusable: {why}"),
            DropReason::FromSelf => "the message comes from the watcher's own address (a mail loop)".into(),
            DropReason::Bounce(why) => format!("the message is a bounce ({why})"),
            DropReason::AutoReply(why) => format!("the message is an automatic reply ({why})"),
            DropReason::NoSignature => "the message has no DKIM signature, so its sender cannot be verified".into(),
            DropReason::DkimFailed(why) => format!("no DKIM signature verifies ({why})"),
            DropReason::NotAligned { signer, from_domain } => {
                format!("the DKIM signature is from {signer}, which is not the sender's domain {from_domain}")
            }
            DropReason::PartialBody => {
                "the only valid DKIM signature covers only part of the body (l= tag), which is not accepted".into()
            }
            DropReason::Internal => {
                "the watcher failed while handling this message (a bug, logged); it was filed unanswered".into()
            }
        }
    }
}

/// The result of authentication.
#[derive(Debug, Clone)]
pub enum AuthOutcome {
    /// The sender is proven.
    Authenticated(Box<Authenticated>),
    /// Filed with a reason, never answered.
    Dropped(DropReason),
}

/// A short, non-reversible tag for a Message-ID (or any bytes) for logs and dedupe.
pub fn short_hash(bytes: &[u8]) -> String {
    hex::encode(&Sha256::digest(bytes)[..12])
}

/// DMARC relaxed alignment without a public-suffix list: the signing domain is the
/// `From` domain or a parent of it with at least two labels (`example.com` signs for
/// `mail.example.com`). A signer that is a *sub*domain of `From`, or a sibling, does
/// not align: without the public-suffix list the watcher cannot tell a sibling in the
/// same organization from an unrelated tenant of a shared suffix, so it refuses.
pub fn aligned(signer: &str, from_domain: &str) -> bool {
    let signer = signer.trim_end_matches('.').to_ascii_lowercase();
    let from = from_domain.trim_end_matches('.').to_ascii_lowercase();
    if signer == from {
        return true;
    }
    signer.contains('.') && from.ends_with(&format!(".{signer}"))
}

/// Authenticates messages with one key source and policy.
#[derive(Clone)]
pub struct MailAuthenticator {
    keys: DkimKeys,
    policy: AuthPolicy,
    parser: std::sync::Arc<MessageParser>,
}

impl std::fmt::Debug for MailAuthenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MailAuthenticator")
            .field("keys", &self.keys)
            .field("policy", &self.policy)
            .finish()
    }
}

/// A parser of only the headers the watcher reads (the MIME ones, From, Subject,
/// Message-ID, References); the rest stay raw. Parsing every header (three or more
/// `Received`, dates, recipients) cost more than the parts read, per message.
fn claim_mail_parser() -> MessageParser {
    MessageParser::new()
        .with_mime_headers()
        .header_address(mail_parser::HeaderName::From)
        .header_text(mail_parser::HeaderName::Subject)
        .header_id(mail_parser::HeaderName::MessageId)
        .header_id(mail_parser::HeaderName::References)
}

impl MailAuthenticator {
    /// An authenticator.
    pub fn new(keys: DkimKeys, policy: AuthPolicy) -> Self {
        MailAuthenticator {
            keys,
            policy,
            parser: std::sync::Arc::new(claim_mail_parser()),
        }
    }

    /// The size limit.
    pub fn max_message_bytes(&self) -> u64 {
        self.policy.max_message_bytes
    }

    /// Authenticates one raw message. `Err` only for transient DNS failures.
    pub async fn authenticate(&self, raw: &[u8]) -> Result<AuthOutcome, AuthError> {
        let drop = |r| Ok(AuthOutcome::Dropped(r));
        if raw.len() as u64 > self.policy.max_message_bytes {
            return drop(DropReason::TooLarge {
                size: raw.len() as u64,
                max: self.policy.max_message_bytes,
            });
        }
        let Some(msg) = guarded(|| self.parser.parse(raw)) else {
            return drop(DropReason::Unparseable);
        };
        if msg.headers().is_empty() {
            return drop(DropReason::Unparseable);
        }

        // Exactly one From header with exactly one address.
        let from_headers = msg
            .headers()
            .iter()
            .filter(|h| h.name().eq_ignore_ascii_case("from"))
            .count();
        if from_headers != 1 {
            return drop(DropReason::BadFrom(format!("{from_headers} From headers")));
        }
        let addrs: Vec<_> = msg.from().map(|a| a.iter().collect()).unwrap_or_default();
        let [addr] = addrs.as_slice() else {
            return drop(DropReason::BadFrom(format!("{} addresses", addrs.len())));
        };
        let Some(raw_from) = addr.address() else {
            return drop(DropReason::BadFrom("no address".into()));
        };
        let from = match springmail_sdk::email::normalize(raw_from) {
            Ok(f) => f,
            Err(e) => return drop(DropReason::BadFrom(e.to_string())),
        };
        let from_domain = from
            .rsplit_once('@')
            .map(|(_, d)| d.to_string())
            .unwrap_or_default();
        if self.policy.own_addresses.iter().any(|a| a == &from) {
            return drop(DropReason::FromSelf);
        }

        // Bounces and auto-replies are never answered, whatever their signatures.
        if let Some(reason) = bounce_or_auto_reply(&msg) {
            return drop(reason);
        }

        // DKIM, over the headers parsed above (not a second parse).
        let Some(am) = guarded(|| Some(AuthenticatedMessage::from_parsed(&msg, raw, true))) else {
            return drop(DropReason::Unparseable);
        };
        if am.dkim_headers.is_empty() && !am.has_dkim_errors {
            return drop(DropReason::NoSignature);
        }
        let params = Parameters::new(&am).with_txt_cache(&self.keys.pins);
        let outputs = self.keys.resolver.verify_dkim(params).await;
        let mut partial = false;
        let mut misaligned: Option<String> = None;
        let mut failure: Option<String> = None;
        let mut temp: Option<(String, String)> = None;
        let mut signer_domain = None;
        for out in &outputs {
            let domain = out
                .signature()
                .map(|s| s.d.to_ascii_lowercase())
                .unwrap_or_default();
            match out.result() {
                DkimResult::Pass => {
                    let sig = out.signature().expect("a passing result has its signature");
                    let required = springmail_sdk::protocol::DKIM_REQUIRED_HEADER;
                    if !sig.h.iter().any(|h| h.eq_ignore_ascii_case(required)) {
                        failure.get_or_insert_with(|| "the signature does not cover From".into());
                    } else if !aligned(&domain, &from_domain) {
                        misaligned.get_or_insert(domain);
                    } else if sig.l != 0 {
                        partial = true;
                    } else {
                        signer_domain = Some(domain);
                        break;
                    }
                }
                DkimResult::Neutral(mail_auth::Error::Dkim(
                    mail_auth::dkim::DkimError::SignatureLength,
                ))
                | DkimResult::PermError(mail_auth::Error::Dkim(
                    mail_auth::dkim::DkimError::SignatureLength,
                ))
                | DkimResult::Fail(mail_auth::Error::Dkim(
                    mail_auth::dkim::DkimError::SignatureLength,
                )) => {
                    // mail-auth itself refuses `l=` signatures.
                    partial = true;
                }
                DkimResult::TempError(e) if self.keys.network => {
                    temp.get_or_insert((domain, e.to_string()));
                }
                DkimResult::Neutral(e)
                | DkimResult::Fail(e)
                | DkimResult::PermError(e)
                | DkimResult::TempError(e) => {
                    failure.get_or_insert_with(|| describe_dkim_error(&domain, e));
                }
                DkimResult::None => {}
            }
        }
        let Some(signer_domain) = signer_domain else {
            if let Some((domain, reason)) = temp {
                return Err(AuthError::TempDns { domain, reason });
            }
            return drop(if partial {
                DropReason::PartialBody
            } else if let Some(signer) = misaligned {
                DropReason::NotAligned {
                    signer,
                    from_domain,
                }
            } else if let Some(f) = failure {
                DropReason::DkimFailed(f)
            } else {
                DropReason::NoSignature
            });
        };

        let message_id = msg.message_id().map(|s| s.to_string());
        let msgid_hash = match &message_id {
            Some(id) => short_hash(id.as_bytes()),
            None => short_hash(raw),
        };
        let references = match msg.references() {
            mail_parser::HeaderValue::Text(t) => vec![t.to_string()],
            mail_parser::HeaderValue::TextList(l) => l.iter().map(|t| t.to_string()).collect(),
            _ => Vec::new(),
        };
        let mut texts = Vec::new();
        for part in &msg.parts {
            if part.is_content_type("application", "bismtp") {
                texts.push(String::from_utf8_lossy(part.contents()).into_owned());
            }
        }
        for part in msg.text_bodies() {
            if part.is_text() && !part.is_text_html() {
                if let Some(t) = part.text_contents() {
                    texts.push(t.to_string());
                }
            }
        }
        Ok(AuthOutcome::Authenticated(Box::new(Authenticated {
            from,
            from_domain,
            signer_domain,
            message_id,
            msgid_hash,
            subject: msg.subject().unwrap_or_default().to_string(),
            references,
            texts,
        })))
    }
}

/// Runs a parser over hostile bytes. A panic inside it (a parser bug: mail-parser
/// 0.11 has a debug assertion that some broken multiparts trip, found by the
/// verify_pipeline fuzz target) means "unparseable", not a dead watcher.
fn guarded<T>(parse: impl FnOnce() -> Option<T>) -> Option<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(parse))
        .ok()
        .flatten()
}

fn describe_dkim_error(domain: &str, e: &mail_auth::Error) -> String {
    use mail_auth::dkim::DkimError;
    match e {
        mail_auth::Error::Dkim(DkimError::FailedBodyHashMatch) => {
            format!("the body was changed after {domain} signed it")
        }
        mail_auth::Error::Crypto(_) => {
            format!("the signature of {domain} does not match the signed headers")
        }
        mail_auth::Error::Dns(_) => format!("no DKIM key is published for {domain}"),
        mail_auth::Error::Dkim(DkimError::SignatureExpired) => {
            format!("the signature of {domain} has expired")
        }
        other => format!("{domain}: {other}"),
    }
}

fn header_text<'a>(msg: &'a mail_parser::Message<'a>, name: &str) -> Option<String> {
    msg.header_raw(name).map(|v| v.trim().to_ascii_lowercase())
}

fn bounce_or_auto_reply(msg: &mail_parser::Message<'_>) -> Option<DropReason> {
    if let Some(ct) = msg.root_part().content_type() {
        if ct.ctype().eq_ignore_ascii_case("multipart")
            && ct
                .subtype()
                .is_some_and(|s| s.eq_ignore_ascii_case("report"))
        {
            return Some(DropReason::Bounce(
                "a multipart/report delivery or read report".into(),
            ));
        }
    }
    if let Some(rp) = msg.header_raw("Return-Path") {
        let rp = rp.trim();
        if rp == "<>" || rp.is_empty() {
            return Some(DropReason::Bounce("empty Return-Path".into()));
        }
    }
    if let Some(v) = header_text(msg, "Auto-Submitted") {
        if !v.starts_with("no") {
            return Some(DropReason::AutoReply(format!("Auto-Submitted: {v}")));
        }
    }
    for h in ["X-Autoreply", "X-Autorespond", "X-Auto-Response-Suppress"] {
        if let Some(v) = header_text(msg, h) {
            if h != "X-Auto-Response-Suppress" || v.contains("all") || v.contains("autoreply") {
                return Some(DropReason::AutoReply(format!("{h} header")));
            }
        }
    }
    if let Some(v) = header_text(msg, "Precedence") {
        if matches!(v.as_str(), "bulk" | "junk" | "list" | "auto_reply") {
            return Some(DropReason::AutoReply(format!("Precedence: {v}")));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relaxed_alignment_accepts_parents_not_children_or_siblings() {
        assert!(aligned("example.com", "example.com"));
        assert!(aligned("Example.COM.", "example.com"));
        assert!(aligned("example.com", "mail.example.com"));
        assert!(!aligned("mail.example.com", "example.com"));
        assert!(!aligned("a.example.com", "b.example.com"));
        assert!(!aligned("evil.com", "example.com"));
        assert!(!aligned("com", "example.com"));
        assert!(!aligned("ample.com", "example.com"));
    }

    #[test]
    fn pinned_records_must_be_dkim_keys() {
        let mut pins = PinnedRecords::new();
        assert!(pins.pin("s._domainkey.example.com", "not a key").is_err());
        pins.pin(
            "s._domainkey.Example.com",
            "v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=",
        )
        .unwrap();
        assert!(ResolverCache::get(&pins, "s._domainkey.example.com.").is_some());
    }
}
