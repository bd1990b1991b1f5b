//! The broker's addresses: `<q-address>@domain` and aliases `name@domain`, the
//! registrations that give them a mailbox, and the BiSMTP exchange with other brokers
//! (docs/PROTOCOL-TEXT.md, "Broker addresses"; docs/OPERATIONS.md, "Running as the MX").
//!
//! * [`AddressBook`] is a SQLite file of its own (`addresses.sqlite`): registrations
//!   (address → mailbox), aliases (name → address), the RESOLVE requests this broker
//!   sent with their answers, and the RECEIPT transactions already reported.
//! * [`Routes`] is what the SMTP ingress asks at `RCPT`: `broker@domain`, a registered
//!   `<q-address>@domain` and a registered alias go to the address spool; an
//!   unregistered Qtum address is refused there (`550 5.1.1`, saying why).
//! * [`AddressDesk`] reads the address spool: mail for an address or alias is
//!   forwarded to the registered mailbox (and only there); mail to `broker@domain` is
//!   read for one REGISTER, RESOLVE, RESOLVED or RECEIPT block and acted on. What it
//!   sends goes through the watcher's outbound relay ([`ReplySink`]), DKIM-signed with
//!   the watcher's key. A spooled message stays in the spool until everything it
//!   caused was handed to the relay, so a crash means doing it again (every effect on
//!   the book is idempotent; resent mail carries the same Message-ID).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use alloy::primitives::Address;
use mail_builder::headers::message_id::MessageId;
use mail_builder::headers::raw::Raw;
use mail_builder::MessageBuilder;
use rusqlite::{params, Connection, OptionalExtension};
use springmail_sdk::markup::broker::{
    find_broker_block, parse_alias, BrokerBlock, ReceiptBlock, RegisterBlock, ResolveBlock,
    ResolvedBlock,
};
use springmail_sdk::qtum::{self, QtumNetwork};
use tracing::{debug, info, warn};

use crate::authenticate::{short_hash, AuthOutcome, Authenticated, DkimKeys, DropReason};
use crate::authenticate::{AuthPolicy, MailAuthenticator};
use crate::ingest::{FetchLimits, MailSource};
use crate::journal::Folder;
use crate::receipt::PaymentCheck;
use crate::reply::{OutgoingMail, ReplyComposer, ReplySink};
use crate::smtp_ingress::{Spool, SpoolSource};

/// The local part of each domain's broker mailbox (registrations and BiSMTP).
pub const BROKER_LOCAL: &str = "broker";
/// A registration older than this is refused (sign it again).
pub const MAX_AGE_SECS: u64 = 86_400;
/// A registration signed further ahead of the broker's clock is refused.
pub const MAX_AHEAD_SECS: u64 = 600;
/// Local parts never given as aliases.
pub const RESERVED: [&str; 6] = [
    BROKER_LOCAL,
    "postmaster",
    "abuse",
    "hostmaster",
    "mailer-daemon",
    "noreply",
];
/// Forwarded text beyond this is cut (the mail says so).
const MAX_FORWARDED_TEXT: usize = 256 * 1024;

/// Failures of the machinery.
#[derive(Debug, thiserror::Error)]
pub enum AddressError {
    /// The book's database failed.
    #[error("address book {path}: {reason}")]
    Db {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A BiSMTP request could not be built or handed to the relay.
    #[error("{0}")]
    Send(String),
    /// The caller's input is not usable.
    #[error("{0}")]
    Invalid(String),
}

/// The addresses registered at this broker, and its BiSMTP bookkeeping.
#[derive(Debug)]
pub struct AddressBook {
    path: PathBuf,
    conn: Mutex<Connection>,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS registrations (
    address TEXT PRIMARY KEY,      -- 0x + 40 lowercase hex
    mailbox TEXT NOT NULL,         -- normalized
    signed_at INTEGER NOT NULL,    -- the registration's Time
    recorded_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS registrations_by_mailbox ON registrations(mailbox);
CREATE TABLE IF NOT EXISTS aliases (
    name TEXT PRIMARY KEY,         -- lowercase local part, valid at every domain
    address TEXT NOT NULL,
    recorded_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS resolves (
    request TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    asked_at INTEGER NOT NULL,
    answered_at INTEGER,
    address TEXT                   -- NULL with answered_at: unknown
);
CREATE TABLE IF NOT EXISTS receipts (
    tx TEXT PRIMARY KEY,
    mail TEXT NOT NULL,            -- the spool file that reported it
    recorded_at INTEGER NOT NULL
);
";

fn hex_of(a: Address) -> String {
    format!("{a:#x}")
}

/// What a registration recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registered {
    /// The mailbox mail is forwarded to.
    pub mailbox: String,
    /// Every alias of the address.
    pub names: Vec<String>,
}

/// The answer to a RESOLVE this broker sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolution {
    /// No answer yet.
    Pending,
    /// The name's address.
    Address(Address),
    /// The other broker does not know the name.
    Unknown,
}

impl AddressBook {
    /// Opens (creating) the book at `path`.
    pub fn open(path: impl Into<PathBuf>) -> Result<Arc<Self>, AddressError> {
        let path = path.into();
        let err = |e: rusqlite::Error| AddressError::Db {
            path: path.clone(),
            reason: e.to_string(),
        };
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| AddressError::Db {
                path: path.clone(),
                reason: e.to_string(),
            })?;
        }
        let conn = Connection::open(&path).map_err(err)?;
        conn.execute_batch("PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;")
            .map_err(err)?;
        conn.execute_batch(SCHEMA).map_err(err)?;
        Ok(Arc::new(AddressBook {
            path,
            conn: Mutex::new(conn),
        }))
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn db<T>(
        &self,
        f: impl FnOnce(&mut Connection) -> rusqlite::Result<T>,
    ) -> Result<T, AddressError> {
        let mut conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut conn).map_err(|e| AddressError::Db {
            path: self.path.clone(),
            reason: e.to_string(),
        })
    }

    /// The mailbox registered for `address`.
    pub fn mailbox_of(&self, address: Address) -> Result<Option<String>, AddressError> {
        self.db(|c| {
            c.query_row(
                "SELECT mailbox FROM registrations WHERE address = ?1",
                [hex_of(address)],
                |r| r.get(0),
            )
            .optional()
        })
    }

    /// The address an alias names.
    pub fn alias(&self, name: &str) -> Result<Option<Address>, AddressError> {
        let hex: Option<String> = self.db(|c| {
            c.query_row(
                "SELECT address FROM aliases WHERE name = ?1",
                [name.to_ascii_lowercase()],
                |r| r.get(0),
            )
            .optional()
        })?;
        Ok(hex.and_then(|h| h.parse().ok()))
    }

    /// The address whose registration names `mailbox` (the email alias: the mailbox
    /// proved itself with the DKIM-signed registration mail).
    pub fn address_of_mailbox(&self, mailbox: &str) -> Result<Option<Address>, AddressError> {
        let hex: Option<String> = self.db(|c| {
            c.query_row(
                "SELECT address FROM registrations WHERE mailbox = ?1 ORDER BY signed_at DESC LIMIT 1",
                [mailbox],
                |r| r.get(0),
            )
            .optional()
        })?;
        Ok(hex.and_then(|h| h.parse().ok()))
    }

    /// Counts of registrations and aliases (for tests and the operator).
    pub fn counts(&self) -> Result<(u64, u64), AddressError> {
        self.db(|c| {
            let r = c.query_row("SELECT COUNT(*) FROM registrations", [], |r| r.get(0))?;
            let a = c.query_row("SELECT COUNT(*) FROM aliases", [], |r| r.get(0))?;
            Ok((r, a))
        })
    }

    /// Records a checked registration in one transaction. `Ok(Err(why))` when it
    /// conflicts with what is recorded (then nothing changes). Recording the same
    /// registration again is a no-op that succeeds.
    pub fn register(
        &self,
        address: Address,
        mailbox: &str,
        name: Option<&str>,
        signed_at: u64,
        now: u64,
    ) -> Result<Result<Registered, String>, AddressError> {
        let addr = hex_of(address);
        self.db(|c| {
            let tx = c.transaction()?;
            let current: Option<(String, u64)> = tx
                .query_row(
                    "SELECT mailbox, signed_at FROM registrations WHERE address = ?1",
                    [&addr],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?;
            if let Some((m, t)) = &current {
                if *t > signed_at || (*t == signed_at && m != mailbox) {
                    return Ok(Err(format!(
                        "a newer registration of this address is recorded (signed at {t}); sign a new one"
                    )));
                }
            }
            if let Some(name) = name {
                let owner: Option<String> = tx
                    .query_row("SELECT address FROM aliases WHERE name = ?1", [name], |r| {
                        r.get(0)
                    })
                    .optional()?;
                if owner.as_ref().is_some_and(|o| o != &addr) {
                    return Ok(Err(format!(
                        "the name {name:?} belongs to another address here"
                    )));
                }
                tx.execute(
                    "INSERT OR IGNORE INTO aliases (name, address, recorded_at) VALUES (?1, ?2, ?3)",
                    params![name, addr, now],
                )?;
            }
            tx.execute(
                "INSERT INTO registrations (address, mailbox, signed_at, recorded_at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT(address) DO UPDATE SET mailbox = ?2, signed_at = ?3, recorded_at = ?4",
                params![addr, mailbox, signed_at, now],
            )?;
            let mut names = Vec::new();
            {
                let mut q = tx.prepare("SELECT name FROM aliases WHERE address = ?1 ORDER BY name")?;
                for n in q.query_map([&addr], |r| r.get(0))? {
                    names.push(n?);
                }
            }
            tx.commit()?;
            Ok(Ok(Registered {
                mailbox: mailbox.to_string(),
                names,
            }))
        })
    }

    /// Records a RESOLVE about to be sent.
    pub fn ask(&self, request: &str, name: &str, now: u64) -> Result<(), AddressError> {
        self.db(|c| {
            c.execute(
                "INSERT OR IGNORE INTO resolves (request, name, asked_at) VALUES (?1, ?2, ?3)",
                params![request, name, now],
            )
            .map(|_| ())
        })
    }

    /// Records the answer to a pending request for `name`; false when there is no such
    /// pending request (a forged, late or repeated answer: nothing changes).
    pub fn answer(
        &self,
        request: &str,
        name: &str,
        address: Option<Address>,
        now: u64,
    ) -> Result<bool, AddressError> {
        self.db(|c| {
            c.execute(
                "UPDATE resolves SET answered_at = ?3, address = ?4
                 WHERE request = ?1 AND name = ?2 AND answered_at IS NULL",
                params![request, name, now, address.map(hex_of)],
            )
            .map(|n| n == 1)
        })
    }

    /// The state of a request this broker sent; `None` for a request it never sent.
    pub fn resolution(&self, request: &str) -> Result<Option<Resolution>, AddressError> {
        let row: Option<(Option<u64>, Option<String>)> = self.db(|c| {
            c.query_row(
                "SELECT answered_at, address FROM resolves WHERE request = ?1",
                [request],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
        })?;
        Ok(row.map(|(at, address)| match (at, address) {
            (None, _) => Resolution::Pending,
            (Some(_), None) => Resolution::Unknown,
            (Some(_), Some(a)) => a.parse().map_or(Resolution::Unknown, Resolution::Address),
        }))
    }

    /// When a request this broker sent was asked (unix seconds).
    pub fn asked_at(&self, request: &str) -> Result<Option<u64>, AddressError> {
        self.db(|c| {
            c.query_row(
                "SELECT asked_at FROM resolves WHERE request = ?1",
                [request],
                |r| r.get(0),
            )
            .optional()
        })
    }

    /// Claims the right to report transaction `tx` for spool mail `mail`: true when
    /// no other mail reported it (a second RECEIPT for one payment tells no one).
    pub fn claim_receipt(&self, tx: &str, mail: &str, now: u64) -> Result<bool, AddressError> {
        self.db(|c| {
            c.execute(
                "INSERT OR IGNORE INTO receipts (tx, mail, recorded_at) VALUES (?1, ?2, ?3)",
                params![tx, mail, now],
            )?;
            let owner: String =
                c.query_row("SELECT mail FROM receipts WHERE tx = ?1", [tx], |r| {
                    r.get(0)
                })?;
            Ok(owner == mail)
        })
    }

    /// The address a local part names at this broker: a Qtum address of `network`
    /// (registered or not), or a registered alias.
    pub fn resolve_local(
        &self,
        local: &str,
        network: Option<QtumNetwork>,
    ) -> Result<Option<Address>, AddressError> {
        if let Some(n) = network {
            if let Ok(a) = qtum::decode_address_for(local, n) {
                return Ok(Some(a));
            }
        }
        self.alias(local)
    }
}

/// Where the ingress sends a recipient of its domains.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// To the address spool ([`AddressDesk`]).
    Desk,
    /// Refused with this sentence (`550 5.1.1`).
    Refuse(String),
    /// Try again later (`451`): the book could not be read.
    Later,
    /// Not an address-layer name: the ingress decides.
    Other,
}

/// The ingress's view of the address layer.
#[derive(Debug, Clone)]
pub struct Routes {
    /// The book.
    pub book: Arc<AddressBook>,
    /// The address spool the desk reads.
    pub spool: Arc<Spool>,
    /// The network of `<q-address>@domain` names.
    pub network: Option<QtumNetwork>,
}

impl Routes {
    /// Routes `local@<one of our domains>` (`local` as written: base58 is case-sensitive).
    pub fn route(&self, local: &str) -> Route {
        if local.eq_ignore_ascii_case(BROKER_LOCAL) {
            return Route::Desk;
        }
        if let Some(n) = self.network {
            if let Ok(a) = qtum::decode_address_for(local, n) {
                return match self.book.mailbox_of(a) {
                    Ok(Some(_)) => Route::Desk,
                    Ok(None) => Route::Refuse(format!(
                        "{local} has no mailbox registered at this broker (payments to it \
                         need none; mail does: its owner registers one, see docs/OPERATIONS.md)"
                    )),
                    Err(e) => {
                        warn!(error = %e, "address book unreadable at RCPT");
                        Route::Later
                    }
                };
            }
        }
        match self.book.alias(local) {
            Ok(Some(_)) => Route::Desk,
            Ok(None) => Route::Other,
            Err(e) => {
                warn!(error = %e, "address book unreadable at RCPT");
                Route::Later
            }
        }
    }
}

/// The desk's settings.
#[derive(Debug, Clone)]
pub struct DeskSettings {
    /// The broker's domains (lowercase); the first names its broker mailbox.
    pub domains: Vec<String>,
    /// The chain.
    pub chain_id: u64,
    /// The network of `<q-address>@domain` names (Qtum chains).
    pub network: Option<QtumNetwork>,
    /// Local parts that are not aliases (the watcher's own mailboxes).
    pub reserved: Vec<String>,
    /// Larger spooled mail is not read.
    pub max_message_bytes: u64,
    /// How long to wait for new mail between passes (the spool wakes it sooner).
    pub poll_interval: Duration,
}

/// What one pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeskReport {
    /// Spooled messages handled (filed).
    pub handled: usize,
    /// Messages left in the spool for a transient reason.
    pub deferred: usize,
    /// Mails handed to the relay.
    pub sent: usize,
}

/// Reads the address spool and acts on it.
pub struct AddressDesk {
    settings: DeskSettings,
    book: Arc<AddressBook>,
    source: tokio::sync::Mutex<SpoolSource>,
    auth: MailAuthenticator,
    composer: ReplyComposer,
    sink: Arc<dyn ReplySink>,
    payments: Arc<dyn PaymentCheck>,
}

impl std::fmt::Debug for AddressDesk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AddressDesk")
            .field("domains", &self.settings.domains)
            .field("book", &self.book.path)
            .finish()
    }
}

/// What handling one spooled message decided.
struct Handled {
    folder: Folder,
    mails: Vec<OutgoingMail>,
}

impl Handled {
    fn filed(folder: Folder) -> Self {
        Handled {
            folder,
            mails: Vec::new(),
        }
    }
}

fn unix_now() -> u64 {
    crate::service::unix_now()
}

impl AddressDesk {
    /// A desk over `spool`, answering as `broker@<first domain>`, signing with the
    /// composer's DKIM key (build it with that address as its `from`).
    pub fn new(
        settings: DeskSettings,
        book: Arc<AddressBook>,
        spool: &Spool,
        keys: DkimKeys,
        composer: ReplyComposer,
        sink: Arc<dyn ReplySink>,
        payments: Arc<dyn PaymentCheck>,
    ) -> Result<Self, AddressError> {
        if settings.domains.is_empty() {
            return Err(AddressError::Invalid("the desk needs a domain".into()));
        }
        let source = spool
            .source()
            .map_err(|e| AddressError::Invalid(e.to_string()))?;
        let me = format!("{BROKER_LOCAL}@{}", settings.domains[0]);
        if composer.from_address() != me {
            return Err(AddressError::Invalid(format!(
                "the desk's mail must come from {me}, not {}",
                composer.from_address()
            )));
        }
        let auth = MailAuthenticator::new(
            keys,
            AuthPolicy {
                max_message_bytes: settings.max_message_bytes,
                own_addresses: vec![me],
            },
        );
        Ok(AddressDesk {
            settings,
            book,
            source: tokio::sync::Mutex::new(source),
            auth,
            composer,
            sink,
            payments,
        })
    }

    /// `broker@<first domain>`.
    pub fn broker_address(&self) -> &str {
        self.composer.from_address()
    }

    /// The book.
    pub fn book(&self) -> &Arc<AddressBook> {
        &self.book
    }

    /// Runs passes until the task is aborted.
    pub fn spawn(self: Arc<Self>) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let idle = tokio::sync::Notify::new();
            let mut failures = 0u32;
            loop {
                let wait = match self.run_once().await {
                    Ok(r) if r.deferred > 0 => {
                        failures = failures.saturating_add(1);
                        Duration::from_secs(1 << failures.min(8))
                    }
                    Ok(_) => {
                        failures = 0;
                        self.settings.poll_interval
                    }
                    Err(e) => {
                        warn!(error = %e, "the address desk failed a pass; retrying");
                        failures = failures.saturating_add(1);
                        Duration::from_secs(1 << failures.min(8))
                    }
                };
                let mut source = self.source.lock().await;
                let _ = source.wait(wait, &idle).await;
            }
        })
    }

    /// Handles everything in the address spool once.
    pub async fn run_once(&self) -> Result<DeskReport, AddressError> {
        let mut source = self.source.lock().await;
        let batch = source
            .fetch_new(
                None,
                FetchLimits {
                    max_messages: 256,
                    max_bytes: self.settings.max_message_bytes,
                },
            )
            .await
            .map_err(|e| AddressError::Invalid(e.to_string()))?;
        let mut report = DeskReport::default();
        for m in batch.mails {
            let name = format!("{}.{}", m.key.uid_validity, m.key.uid);
            let handled = match &m.raw {
                None => Ok(Handled::filed(Folder::Rejected)),
                Some(raw) => self.handle(&name, raw).await,
            };
            let handled = match handled {
                Ok(h) => h,
                Err(why) => {
                    info!(mail = %name, %why, "address mail deferred");
                    report.deferred += 1;
                    continue;
                }
            };
            let mut transient = false;
            for mail in &handled.mails {
                match self.sink.send(mail).await {
                    Ok(()) => report.sent += 1,
                    Err(e) if e.transient => {
                        warn!(error = %e, "the relay refused address mail for now; will retry");
                        transient = true;
                    }
                    Err(e) => warn!(error = %e, "the relay refused address mail for good"),
                }
            }
            if transient {
                report.deferred += 1;
                continue;
            }
            source
                .file(&m.key, handled.folder)
                .await
                .map_err(|e| AddressError::Invalid(e.to_string()))?;
            report.handled += 1;
        }
        Ok(report)
    }

    /// One spooled message. `Err` is transient: it stays in the spool.
    async fn handle(&self, id: &str, raw: &[u8]) -> Result<Handled, String> {
        let Some(rcpt) = delivered_to(raw) else {
            warn!(mail = %id, "address spool mail without its Delivered-To line");
            return Ok(Handled::filed(Folder::Rejected));
        };
        let (local, domain) = rcpt.rsplit_once('@').unwrap_or((rcpt.as_str(), ""));
        let auth = self
            .auth
            .authenticate(raw)
            .await
            .map_err(|e| e.to_string())?;
        let db = |e: AddressError| e.to_string();
        let seed = short_hash(raw);
        if local.eq_ignore_ascii_case(BROKER_LOCAL) {
            return self.control(auth, &seed, id).await;
        }
        let Some(address) = self
            .book
            .resolve_local(local, self.settings.network)
            .map_err(db)?
        else {
            info!(%rcpt, "no such name any more; not forwarded");
            return Ok(Handled::filed(Folder::Rejected));
        };
        let Some(mailbox) = self.book.mailbox_of(address).map_err(db)? else {
            info!(%rcpt, "no registered mailbox any more; not forwarded");
            return Ok(Handled::filed(Folder::Rejected));
        };
        let verified = match &auth {
            AuthOutcome::Authenticated(_) => true,
            AuthOutcome::Dropped(
                DropReason::NoSignature
                | DropReason::DkimFailed(_)
                | DropReason::NotAligned { .. }
                | DropReason::PartialBody,
            ) => false,
            AuthOutcome::Dropped(r) => {
                info!(%rcpt, reason = r.code(), "not forwarded");
                return Ok(Handled::filed(Folder::Rejected));
            }
        };
        let forward = self
            .forward(&rcpt, domain, &mailbox, raw, verified, &seed)
            .map_err(|e| e.to_string())?;
        info!(%rcpt, verified, "forwarded to the registered mailbox");
        Ok(Handled {
            folder: Folder::Processed,
            mails: vec![forward],
        })
    }

    /// Mail for a name, rewritten as a new mail from the broker to the one mailbox
    /// the name's owner registered (`to` comes from the book, never from the mail).
    fn forward(
        &self,
        rcpt: &str,
        domain: &str,
        to: &str,
        raw: &[u8],
        verified: bool,
        seed: &str,
    ) -> Result<OutgoingMail, AddressError> {
        let parsed = mail_parser::MessageParser::default().parse(raw);
        let (from, subject, date, text) = match &parsed {
            Some(m) => (
                m.from()
                    .and_then(|a| a.first())
                    .and_then(|a| a.address())
                    .unwrap_or("(no sender)")
                    .to_string(),
                m.subject().unwrap_or("").to_string(),
                m.date().map(|d| d.to_rfc822()).unwrap_or_default(),
                m.body_text(0).map(|t| t.into_owned()).unwrap_or_default(),
            ),
            None => (
                "(unreadable)".into(),
                String::new(),
                String::new(),
                String::new(),
            ),
        };
        self.forward_text(
            rcpt,
            domain,
            to,
            (&from, &subject, &date),
            text,
            verified,
            seed,
        )
    }

    /// The forward of a text already read: `(from, subject, date)` of the mail.
    #[allow(clippy::too_many_arguments)]
    fn forward_text(
        &self,
        rcpt: &str,
        domain: &str,
        to: &str,
        (from, subject, date): (&str, &str, &str),
        mut text: String,
        verified: bool,
        seed: &str,
    ) -> Result<OutgoingMail, AddressError> {
        if text.len() > MAX_FORWARDED_TEXT {
            let mut cut = MAX_FORWARDED_TEXT;
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            text.truncate(cut);
            text.push_str("\n[… cut: the text was longer than the broker forwards]\n");
        }
        let body = format!(
            "Forwarded by {domain}: mail for {rcpt}, which you registered.\n\
             From: {from} ({})\nSubject: {subject}\nDate: {date}\n\n{text}",
            if verified {
                "sender verified by DKIM"
            } else {
                "sender NOT verified: no valid DKIM signature"
            }
        );
        let mut b = MessageBuilder::new()
            .from(("Spring Mail broker", self.broker_address()))
            .to(to)
            .subject(format!("[{rcpt}] {subject}"))
            .date(unix_now() as i64)
            .message_id(format!("springmail.fwd.{seed}@{domain}"))
            .header("Auto-Submitted", Raw::new("auto-generated"))
            .header("X-Spring-Mail-Forwarded-For", Raw::new(rcpt.to_string()))
            .text_body(body);
        if verified {
            b = b.reply_to(from);
        }
        self.seal(b, to)
    }

    fn seal(&self, b: MessageBuilder<'_>, to: &str) -> Result<OutgoingMail, AddressError> {
        let bytes = b
            .write_to_vec()
            .map_err(|e| AddressError::Send(e.to_string()))?;
        let bytes = self
            .composer
            .sign(bytes)
            .map_err(|e| AddressError::Send(e.to_string()))?;
        Ok(OutgoingMail {
            mail_from: self.broker_address().to_string(),
            rcpt: to.to_string(),
            bytes,
        })
    }

    /// A notice to `mail`'s sender in its thread, marked automatic (so that a peer
    /// broker's desk files it without answering: no loops).
    fn notice(
        &self,
        mail: &Authenticated,
        tag: &str,
        text: String,
    ) -> Result<OutgoingMail, AddressError> {
        let domain = &self.settings.domains[0];
        let subject = if mail.subject.to_ascii_lowercase().starts_with("re:") {
            mail.subject.clone()
        } else {
            format!("Re: {}", mail.subject)
        };
        let mut b = MessageBuilder::new()
            .from(("Spring Mail broker", self.broker_address()))
            .to(mail.from.as_str())
            .subject(subject)
            .date(unix_now() as i64)
            .message_id(format!("springmail.{tag}.{}@{domain}", mail.msgid_hash))
            .header("Auto-Submitted", Raw::new("auto-replied"))
            .text_body(text);
        if let Some(id) = &mail.message_id {
            b = b
                .in_reply_to(id.clone())
                .references(MessageId::new(id.clone()));
        }
        self.seal(b, &mail.from)
    }

    /// A BiSMTP request or answer to a peer broker: no `Auto-Submitted`, because the
    /// peer's desk files automatic mail unread. Loops cannot start: RESOLVED and
    /// notices are never answered with a request.
    fn bismtp(
        &self,
        to: &str,
        subject: &str,
        block: String,
        id: &str,
    ) -> Result<OutgoingMail, AddressError> {
        let domain = &self.settings.domains[0];
        let b = MessageBuilder::new()
            .from(("Spring Mail broker", self.broker_address()))
            .to(to)
            .subject(subject)
            .date(unix_now() as i64)
            .message_id(format!("springmail.{id}@{domain}"))
            .text_body(block);
        self.seal(b, to)
    }

    /// Mail to `broker@domain`: one broker block, acted on.
    async fn control(&self, auth: AuthOutcome, seed: &str, id: &str) -> Result<Handled, String> {
        let mail = match auth {
            AuthOutcome::Authenticated(m) => m,
            AuthOutcome::Dropped(r) => {
                // Its sender is unproven: it is not answered (no backscatter).
                info!(
                    reason = r.code(),
                    "broker mail without a proven sender; filed"
                );
                return Ok(Handled::filed(Folder::Rejected));
            }
        };
        let mut found = None;
        let mut error = None;
        for text in &mail.texts {
            match find_broker_block(text, &[]) {
                Ok(Some(b)) => {
                    found = Some(b);
                    break;
                }
                Ok(None) => {}
                Err(e) => {
                    error.get_or_insert(e);
                }
            }
        }
        let refuse = |why: String| -> Result<Handled, String> {
            info!(from_domain = %mail.from_domain, %why, "broker mail refused");
            let text = format!(
                "Your mail to {} was not acted on: {why}\n\nNothing was changed.\n",
                self.broker_address()
            );
            let n = self
                .notice(&mail, "refused", text)
                .map_err(|e| e.to_string())?;
            Ok(Handled {
                folder: Folder::Rejected,
                mails: vec![n],
            })
        };
        let block = match (found, error) {
            (Some(b), _) => b,
            (None, Some(e)) => return refuse(e.to_string()),
            (None, None) => {
                return refuse(
                    "it holds no BiSMTP REGISTER, RESOLVE, RESOLVED or RECEIPT block (docs/PROTOCOL-TEXT.md)"
                        .into(),
                )
            }
        };
        let db = |e: AddressError| e.to_string();
        match block {
            BrokerBlock::Register(b) => match self.register(&mail, &b).map_err(db)? {
                Ok(text) => {
                    let n = self
                        .notice(&mail, "registered", text)
                        .map_err(|e| e.to_string())?;
                    Ok(Handled {
                        folder: Folder::Processed,
                        mails: vec![n],
                    })
                }
                Err(why) => refuse(why),
            },
            BrokerBlock::Resolve(b) => {
                let answer = self.answer_resolve(&b).map_err(db)?;
                info!(from_domain = %mail.from_domain, known = answer.address.is_some(), "RESOLVE answered");
                let m = self
                    .bismtp(
                        &mail.from,
                        &format!("BiSMTP RESOLVED {}", b.name),
                        answer.render(),
                        &format!("resolved.{seed}"),
                    )
                    .map_err(|e| e.to_string())?;
                Ok(Handled {
                    folder: Folder::Processed,
                    mails: vec![m],
                })
            }
            BrokerBlock::Resolved(b) => {
                // Only the asked domain's own broker answers for it.
                let asked = b.name.rsplit_once('@').map_or("", |(_, d)| d);
                let matched = asked == mail.from_domain
                    && b.chain_id == self.settings.chain_id
                    && self
                        .book
                        .answer(&b.request, &b.name, b.address, unix_now())
                        .map_err(db)?;
                if matched {
                    info!(name = %b.name, known = b.address.is_some(), "RESOLVED recorded");
                    Ok(Handled::filed(Folder::Processed))
                } else {
                    info!(from_domain = %mail.from_domain, "RESOLVED for no pending request of that domain; ignored");
                    Ok(Handled::filed(Folder::Rejected))
                }
            }
            BrokerBlock::Receipt(b) => self.receipt(&mail, &b, id).await,
        }
    }

    /// Checks a REGISTER (docs/PROTOCOL-TEXT.md) and records it. `Ok(Err(why))` is a
    /// refusal; `Ok(Ok(text))` the confirmation.
    fn register(
        &self,
        mail: &Authenticated,
        b: &RegisterBlock,
    ) -> Result<Result<String, String>, AddressError> {
        let r = &b.registration;
        let now = unix_now();
        let shown = qtum::format_address(r.chain_id, r.address);
        if mail.from != r.mailbox {
            return Ok(Err(format!(
                "the mail comes from {}, but the registration names the mailbox {}; send it from that mailbox",
                mail.from, r.mailbox
            )));
        }
        if r.chain_id != self.settings.chain_id {
            return Ok(Err(format!(
                "the registration is for chain {}; this broker is on chain {}",
                r.chain_id, self.settings.chain_id
            )));
        }
        if !self.settings.domains.contains(&r.domain) {
            return Ok(Err(format!(
                "the registration is for {}; this broker serves {}",
                r.domain,
                self.settings.domains.join(", ")
            )));
        }
        if r.time > now + MAX_AHEAD_SECS {
            return Ok(Err(format!(
                "the registration's Time {} is ahead of this broker's clock ({now}); check your clock",
                r.time
            )));
        }
        if r.time + MAX_AGE_SECS < now {
            return Ok(Err(format!(
                "the registration's Time {} is more than 24 hours old; sign a new one",
                r.time
            )));
        }
        if let Some(name) = &r.name {
            // parse_alias refused phone numbers already; check again for registrations
            // built in code rather than parsed.
            if let Err(e) = parse_alias(name) {
                return Ok(Err(format!("Name: {e}")));
            }
            if RESERVED.contains(&name.as_str()) || self.settings.reserved.contains(name) {
                return Ok(Err(format!("the name {name:?} is reserved at this broker")));
            }
        }
        match r.signed_by_owner(&b.signature) {
            Ok(true) => {}
            Ok(false) | Err(_) => {
                return Ok(Err(format!(
                    "the signature is not by the key of {shown} (it must sign the registration text of docs/PROTOCOL-TEXT.md, with this Domain, Mailbox, Name and Time)"
                )))
            }
        }
        let done =
            match self
                .book
                .register(r.address, &r.mailbox, r.name.as_deref(), r.time, now)?
            {
                Ok(d) => d,
                Err(why) => return Ok(Err(why)),
            };
        info!(address = %shown, names = done.names.len(), "address registered");
        let domain = &r.domain;
        let mut names = vec![format!("{shown}@{domain}")];
        names.extend(done.names.iter().map(|n| format!("{n}@{domain}")));
        Ok(Ok(format!(
            "Registered at {domain}: mail for {} is forwarded to {}, and brokers resolving these names get {shown}.\n",
            names.join(" and "),
            done.mailbox
        )))
    }

    fn answer_resolve(&self, b: &ResolveBlock) -> Result<ResolvedBlock, AddressError> {
        let (local, domain) = b.name.rsplit_once('@').unwrap_or(("", ""));
        let address = if self.settings.domains.iter().any(|d| d == domain) {
            self.book.resolve_local(local, self.settings.network)?
        } else {
            None
        };
        Ok(ResolvedBlock {
            chain_id: self.settings.chain_id,
            name: b.name.clone(),
            request: b.request.clone(),
            address,
        })
    }

    async fn receipt(
        &self,
        mail: &Authenticated,
        b: &ReceiptBlock,
        id: &str,
    ) -> Result<Handled, String> {
        let db = |e: AddressError| e.to_string();
        let mailbox = self.book.mailbox_of(b.to).map_err(db)?;
        let payment = if !self.payments.supported() {
            None
        } else if mailbox.is_some() && b.chain_id == self.settings.chain_id {
            self.payments.native_payment(b.tx).await?
        } else {
            None
        };
        let refuse = |why: String| -> Result<Handled, String> {
            info!(from_domain = %mail.from_domain, %why, "RECEIPT refused");
            let n = self
                .notice(
                    mail,
                    "receipt-refused",
                    format!("Your RECEIPT was not accepted: {why}\n\nNo one was told.\n"),
                )
                .map_err(|e| e.to_string())?;
            Ok(Handled {
                folder: Folder::Rejected,
                mails: vec![n],
            })
        };
        if let Err(r) = crate::receipt::check(
            b,
            self.settings.chain_id,
            mailbox.is_some(),
            if self.payments.supported() {
                Ok(payment.as_ref())
            } else {
                Err(crate::receipt::ReceiptRefusal::Unsupported)
            },
        ) {
            return refuse(r.to_string());
        }
        let mailbox = mailbox.expect("checked: registered");
        if !self
            .book
            .claim_receipt(&b.tx.to_string(), id, unix_now())
            .map_err(db)?
        {
            info!(tx = %b.tx, "a second RECEIPT for a payment already reported; filed");
            return Ok(Handled::filed(Folder::Rejected));
        }
        let to = qtum::format_address(b.chain_id, b.to);
        let domain = &self.settings.domains[0];
        let text = format!(
            "You have been paid {} at {to}@{domain}.\n\nFrom: {} (through the broker {}, \
             which signed this receipt)\nTransaction: {} (checked on chain {} by {domain})\n",
            b.amount, b.from, mail.from_domain, b.tx, b.chain_id
        );
        let m = MessageBuilder::new()
            .from(("Spring Mail broker", self.broker_address()))
            .to(mailbox.as_str())
            .subject(format!("You have been paid {}", b.amount))
            .date(unix_now() as i64)
            .message_id(format!("springmail.paid.{}@{domain}", b.tx))
            .header("Auto-Submitted", Raw::new("auto-generated"))
            .text_body(text);
        let m = self.seal(m, &mailbox).map_err(|e| e.to_string())?;
        info!(tx = %b.tx, "RECEIPT checked on chain; the payee is told");
        Ok(Handled {
            folder: Folder::Processed,
            mails: vec![m],
        })
    }

    /// Asks the broker of `name`'s domain which address it names: records the request
    /// and hands a RESOLVE to the relay. Returns the request id; the answer arrives as
    /// mail ([`AddressBook::resolution`]).
    pub async fn resolve(&self, name: &str) -> Result<String, AddressError> {
        let name = springmail_sdk::markup::broker::parse_broker_name(name)
            .map_err(|e| AddressError::Invalid(format!("{name:?}: {e}")))?;
        let request = new_request_id();
        self.resolve_as(&name, &request).await?;
        Ok(request)
    }

    /// Asks as [`AddressDesk::resolve`] under a request id chosen (and journaled) by
    /// the caller. Asking again under the same id sends the RESOLVE again and changes
    /// nothing else.
    pub async fn resolve_as(&self, name: &str, request: &str) -> Result<(), AddressError> {
        let name = springmail_sdk::markup::broker::parse_broker_name(name)
            .map_err(|e| AddressError::Invalid(format!("{name:?}: {e}")))?;
        let request = request.to_string();
        let domain = name.rsplit_once('@').map_or("", |(_, d)| d).to_string();
        self.book.ask(&request, &name, unix_now())?;
        if self.settings.domains.contains(&domain) {
            // Our own name: this book is the authority (and our desk would file a
            // mail from itself unread).
            let local = name.rsplit_once('@').map_or("", |(l, _)| l);
            let address = self.book.resolve_local(local, self.settings.network)?;
            self.book.answer(&request, &name, address, unix_now())?;
            return Ok(());
        }
        let block = ResolveBlock {
            name: name.clone(),
            request: request.clone(),
        };
        let mail = self.bismtp(
            &format!("{BROKER_LOCAL}@{domain}"),
            &format!("BiSMTP RESOLVE {name}"),
            block.render(),
            &format!("resolve.{request}"),
        )?;
        self.sink
            .send(&mail)
            .await
            .map_err(|e| AddressError::Send(format!("RESOLVE to {domain}: {e}")))?;
        debug!(%name, %request, "RESOLVE sent");
        Ok(())
    }

    /// Tells the payee's broker (`broker@<payee_domain>`) of a payment made on chain.
    pub async fn send_receipt(
        &self,
        receipt: &ReceiptBlock,
        payee_domain: &str,
    ) -> Result<(), AddressError> {
        let mail = self.bismtp(
            &format!("{BROKER_LOCAL}@{}", payee_domain.to_ascii_lowercase()),
            &format!("BiSMTP RECEIPT {}", receipt.amount),
            receipt.render(),
            &format!("receipt.{}", receipt.tx),
        )?;
        self.sink
            .send(&mail)
            .await
            .map_err(|e| AddressError::Send(format!("RECEIPT to {payee_domain}: {e}")))
    }
}

/// A fresh RESOLVE request id (`r-` and 24 hex digits).
pub fn new_request_id() -> String {
    let mut bytes = [0u8; 12];
    rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut bytes);
    format!("r-{}", hex::encode(bytes))
}

impl AddressDesk {
    /// A RECEIPT for the payee's broker, built for the caller's outbox (sent once the
    /// payment it reports is journaled).
    pub fn receipt_mail(
        &self,
        receipt: &ReceiptBlock,
        payee_domain: &str,
    ) -> Result<OutgoingMail, AddressError> {
        self.bismtp(
            &format!("{BROKER_LOCAL}@{}", payee_domain.to_ascii_lowercase()),
            &format!("BiSMTP RECEIPT {}", receipt.amount),
            receipt.render(),
            &format!("receipt.{}", receipt.tx),
        )
    }
}

/// What a PAY's email recipient is to the address layer ([`PayNames::route`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PayRoute {
    /// Not a broker's name: an ordinary email (a deposit and a notification).
    Email,
    /// A name at this broker: its address, and the mailbox its owner registered.
    Local {
        /// The address the name stands for.
        address: Address,
        /// Where its mail goes, if registered.
        mailbox: Option<String>,
    },
    /// A local part this broker does not know.
    UnknownLocal,
    /// A name at a peer broker (this domain), resolved by RESOLVE.
    Peer(String),
}

/// How mailbox-wallet payments reach broker names: this broker's own (from its book)
/// and its peers' (`smtp_ingress.peers`, by RESOLVE and RECEIPT).
#[derive(Debug, Clone)]
pub struct PayNames {
    desk: Arc<AddressDesk>,
    peers: Vec<String>,
    timeout: Duration,
}

impl PayNames {
    /// Payments through `desk`; `peers` are the domains run by brokers; a RESOLVE
    /// not answered within `timeout` fails the payment.
    pub fn new(desk: Arc<AddressDesk>, peers: Vec<String>, timeout: Duration) -> Self {
        let peers = peers.into_iter().map(|p| p.to_ascii_lowercase()).collect();
        PayNames {
            desk,
            peers,
            timeout,
        }
    }

    /// The desk.
    pub fn desk(&self) -> &Arc<AddressDesk> {
        &self.desk
    }

    /// How long a RESOLVE may stay unanswered.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Whether `domain` is one of this broker's.
    pub fn is_ours(&self, domain: &str) -> bool {
        self.desk
            .settings
            .domains
            .iter()
            .any(|d| d.eq_ignore_ascii_case(domain))
    }

    /// Whether `domain` is a configured peer broker's.
    pub fn is_peer(&self, domain: &str) -> bool {
        self.peers.iter().any(|p| p.eq_ignore_ascii_case(domain))
    }

    /// Routes `name` (the local part as written: base58 is case-sensitive).
    pub fn route(&self, name: &str) -> Result<PayRoute, AddressError> {
        let Some((local, domain)) = name.rsplit_once('@') else {
            return Ok(PayRoute::Email);
        };
        let domain = domain.to_ascii_lowercase();
        if self.is_ours(&domain) {
            if local.eq_ignore_ascii_case(BROKER_LOCAL)
                || self
                    .desk
                    .settings
                    .reserved
                    .iter()
                    .any(|r| r.eq_ignore_ascii_case(local))
            {
                return Ok(PayRoute::UnknownLocal);
            }
            let book = &self.desk.book;
            return Ok(
                match book.resolve_local(local, self.desk.settings.network)? {
                    Some(address) => PayRoute::Local {
                        address,
                        mailbox: book.mailbox_of(address)?,
                    },
                    None => PayRoute::UnknownLocal,
                },
            );
        }
        if self.peers.contains(&domain) {
            return Ok(PayRoute::Peer(domain));
        }
        Ok(PayRoute::Email)
    }

    /// The answer to `request` and when it was asked; `None` if it was never asked.
    pub fn answer(&self, request: &str) -> Result<Option<(Resolution, u64)>, AddressError> {
        let book = &self.desk.book;
        Ok(match (book.resolution(request)?, book.asked_at(request)?) {
            (Some(r), Some(at)) => Some((r, at)),
            _ => None,
        })
    }

    /// Forwards the text of a PAY to the mailbox registered for the name it paid.
    pub fn forward_note(
        &self,
        name: &str,
        mailbox: &str,
        payer: &str,
        subject: &str,
        text: &str,
        seed: &str,
    ) -> Result<OutgoingMail, AddressError> {
        let domain = name
            .rsplit_once('@')
            .map_or("", |(_, d)| d)
            .to_ascii_lowercase();
        let date = mail_parser::DateTime::from_timestamp(unix_now() as i64).to_rfc822();
        self.desk.forward_text(
            name,
            &domain,
            mailbox,
            (payer, subject, &date),
            text.to_string(),
            true,
            seed,
        )
    }
}

/// The escrow's withdrawals from mailbox wallets as payments, for
/// [`crate::receipt::EvmPayments::with_log_reader`]: a `Moved` log emitted by
/// `escrow` whose `to` is an address (below 2^160) paid it `amount`.
pub fn escrow_withdrawals(escrow: Address) -> crate::receipt::LogReader {
    Arc::new(move |log: &alloy::primitives::Log| {
        if log.address != escrow {
            return None;
        }
        match springmail_sdk::accounts::AccountEvent::decode(log)? {
            springmail_sdk::accounts::AccountEvent::Moved { to, amount, .. }
                if to.0[..12].iter().all(|&b| b == 0) =>
            {
                Some(crate::receipt::Paid {
                    to: Address::from_slice(&to.0[12..]),
                    value: alloy::primitives::U256::from(amount),
                })
            }
            _ => None,
        }
    })
}

/// The address layer of a configuration: the book (`data_dir/addresses.sqlite`), the
/// address spool (`<spool_dir>/addresses`), the routes the ingress asks and the desk,
/// which answers as `broker@<first domain>` through `[smtp]`, signed with `[dkim]`.
pub fn from_settings(
    settings: &crate::config::Settings,
    ingress: &crate::smtp_ingress::IngressSettings,
    keys: DkimKeys,
) -> Result<(Routes, Arc<AddressDesk>), crate::config::ResolveError> {
    use crate::config::ResolveError;
    let bad = |key: &'static str| move |e: String| ResolveError::Key { key, problem: e };
    let book = AddressBook::open(settings.data_dir.join("addresses.sqlite"))
        .map_err(|e| bad("data_dir")(e.to_string()))?;
    let spool = Spool::open(ingress.spool_dir.join("addresses"))
        .map_err(|e| bad("smtp_ingress.spool_dir")(e.to_string()))?;
    let chain_id = settings
        .chain
        .chain_id
        .ok_or_else(|| bad("chain.chain_id")("is required with smtp_ingress.addresses".into()))?;
    let dkim = match &settings.dkim {
        Some((domain, selector, file)) => {
            let pem = std::fs::read_to_string(file)
                .map_err(|e| bad("dkim.key_file")(format!("{}: {e}", file.display())))?;
            let key = crate::reply::DkimSigningKey::from_pem(&pem, &file.display().to_string())
                .map_err(|e| bad("dkim.key_file")(e.to_string()))?;
            (key, domain.clone(), selector.clone())
        }
        None => {
            return Err(bad("dkim")(
                "is required with smtp_ingress.addresses".into(),
            ))
        }
    };
    let sink =
        crate::reply::SmtpSink::new(&settings.smtp).map_err(|e| bad("smtp.host")(e.to_string()))?;
    let payments: Arc<dyn PaymentCheck> = match settings.chain.backend {
        springmail_sdk::config::Backend::EvmRpc => Arc::new(
            crate::receipt::EvmPayments::new(&settings.chain.url)
                .map_err(bad("chain.url"))?
                .with_log_reader(escrow_withdrawals(settings.escrow())),
        ),
        springmail_sdk::config::Backend::Qtum => Arc::new(
            crate::receipt::ChainPayments::connecting(settings.chain.clone())
                .with_log_reader(escrow_withdrawals(settings.escrow())),
        ),
        springmail_sdk::config::Backend::Embedded => Arc::new(crate::receipt::NoPayments),
    };
    let reserved = ingress
        .recipients
        .iter()
        .filter_map(|r| r.split_once('@').map(|(l, _)| l.to_string()))
        .collect();
    let desk = AddressDesk::new(
        DeskSettings {
            domains: ingress.domains.clone(),
            chain_id,
            network: QtumNetwork::from_chain_id(chain_id),
            reserved,
            max_message_bytes: ingress.max_message_bytes,
            poll_interval: settings.poll_interval,
        },
        book.clone(),
        &spool,
        keys,
        ReplyComposer::new(
            &format!("{BROKER_LOCAL}@{}", ingress.domains[0]),
            &settings.display_name,
            Some(dkim),
        ),
        Arc::new(sink),
        payments,
    )
    .map_err(|e| bad("smtp_ingress.addresses")(e.to_string()))?;
    let routes = Routes {
        book,
        spool,
        network: QtumNetwork::from_chain_id(chain_id),
    };
    Ok((routes, Arc::new(desk)))
}

/// One handle for the ingress and its desk: aborting it stops both.
pub fn with_desk(
    ingress: tokio::task::JoinHandle<()>,
    desk: Option<Arc<AddressDesk>>,
) -> tokio::task::JoinHandle<()> {
    struct AbortAll(Vec<tokio::task::JoinHandle<()>>);
    impl Drop for AbortAll {
        fn drop(&mut self) {
            for t in &self.0 {
                t.abort();
            }
        }
    }
    let Some(desk) = desk else {
        return ingress;
    };
    let tasks = AbortAll(vec![ingress, desk.spawn()]);
    tokio::spawn(async move {
        let _tasks = tasks;
        std::future::pending::<()>().await
    })
}

/// The recipient the ingress wrote on the first line of an address-spool file.
fn delivered_to(raw: &[u8]) -> Option<String> {
    let rest = raw.strip_prefix(b"Delivered-To: <")?;
    let end = rest.iter().position(|&b| b == b'>')?;
    let rcpt = std::str::from_utf8(&rest[..end]).ok()?;
    rest[end..].starts_with(b">\r\n").then(|| rcpt.to_string())
}

/// The first line the ingress writes on a message it spools for `rcpt`.
pub(crate) fn delivered_to_line(rcpt: &str) -> String {
    format!("Delivered-To: <{rcpt}>\r\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn book() -> (tempfile::TempDir, Arc<AddressBook>) {
        let dir = tempfile::tempdir().unwrap();
        let b = AddressBook::open(dir.path().join("addresses.sqlite")).unwrap();
        (dir, b)
    }

    #[test]
    fn a_registration_is_recorded_once_and_an_older_or_conflicting_one_changes_nothing() {
        let (_d, b) = book();
        let alice = Address::repeat_byte(0xa1);
        let mallory = Address::repeat_byte(0x66);
        let r = b
            .register(alice, "alice@example.org", Some("alice"), 100, 1)
            .unwrap()
            .unwrap();
        assert_eq!(r.names, vec!["alice".to_string()]);
        // The same again is a no-op that succeeds (a message handled twice).
        assert!(b
            .register(alice, "alice@example.org", Some("alice"), 100, 2)
            .unwrap()
            .is_ok());
        // Older, or as old with another mailbox: refused.
        assert!(b
            .register(alice, "x@example.org", None, 99, 3)
            .unwrap()
            .is_err());
        assert!(b
            .register(alice, "x@example.org", None, 100, 3)
            .unwrap()
            .is_err());
        // Another address cannot take the name.
        let why = b
            .register(mallory, "m@example.org", Some("alice"), 200, 4)
            .unwrap()
            .unwrap_err();
        assert!(why.contains("another address"), "{why}");
        assert_eq!(b.mailbox_of(mallory).unwrap(), None);
        assert_eq!(b.counts().unwrap(), (1, 1));
        assert_eq!(b.alias("ALICE").unwrap(), Some(alice));
        assert_eq!(b.mailbox_of(alice).unwrap().unwrap(), "alice@example.org");
        assert_eq!(
            b.address_of_mailbox("alice@example.org").unwrap(),
            Some(alice)
        );
        // A newer one moves the mailbox.
        b.register(alice, "alice@new.example", None, 300, 5)
            .unwrap()
            .unwrap();
        assert_eq!(b.mailbox_of(alice).unwrap().unwrap(), "alice@new.example");
    }

    #[test]
    fn answers_count_only_for_a_pending_request_of_that_name() {
        let (_d, b) = book();
        b.ask("r-1", "alice@brokerb.test", 1).unwrap();
        assert_eq!(b.resolution("r-1").unwrap(), Some(Resolution::Pending));
        let a = Address::repeat_byte(7);
        assert!(!b.answer("r-1", "bob@brokerb.test", Some(a), 2).unwrap());
        assert!(!b.answer("r-2", "alice@brokerb.test", Some(a), 2).unwrap());
        assert!(b.answer("r-1", "alice@brokerb.test", Some(a), 2).unwrap());
        assert!(!b.answer("r-1", "alice@brokerb.test", None, 3).unwrap());
        assert_eq!(b.resolution("r-1").unwrap(), Some(Resolution::Address(a)));
        assert_eq!(b.resolution("r-9").unwrap(), None);
    }

    #[test]
    fn a_payment_is_reported_by_one_mail_only() {
        let (_d, b) = book();
        assert!(b.claim_receipt("0xab", "1.1", 1).unwrap());
        assert!(
            b.claim_receipt("0xab", "1.1", 2).unwrap(),
            "the same mail again"
        );
        assert!(!b.claim_receipt("0xab", "1.2", 3).unwrap());
    }

    /// One broker (brokerb.test) in process: ingress with the address layer, desk,
    /// a memory relay, and a chain reader that knows one payment.
    mod desk {
        use super::super::*;
        use crate::authenticate::PinnedRecords;
        use crate::dkim_domain::DkimDomain;
        use crate::receipt::NativePayment;
        use crate::reply::{DkimSigningKey, MemorySink};
        use crate::smtp_ingress::{serve_with_routes, IngressSettings};
        use alloy::primitives::{B256, U256};
        use springmail_sdk::keys::ClaimSecret;
        use springmail_sdk::markup::broker::Registration;

        const ALICE: &str = "alice@example.org";

        struct Payments(Vec<(B256, NativePayment)>);

        #[async_trait::async_trait]
        impl PaymentCheck for Payments {
            async fn native_payment(&self, tx: B256) -> Result<Option<NativePayment>, String> {
                Ok(self
                    .0
                    .iter()
                    .find(|(t, _)| *t == tx)
                    .map(|(_, p)| p.clone()))
            }
        }

        pub(super) struct World {
            pub addr: std::net::SocketAddr,
            pub desk: Arc<AddressDesk>,
            pub sink: MemorySink,
            pub example: DkimDomain,
            pub peer: DkimDomain,
            pub key: ClaimSecret,
            task: tokio::task::JoinHandle<()>,
            _dir: tempfile::TempDir,
        }

        impl Drop for World {
            fn drop(&mut self) {
                self.task.abort();
            }
        }

        pub(super) const PAID_TX: B256 = B256::repeat_byte(0xab);

        impl World {
            pub async fn new() -> Self {
                let dir = tempfile::tempdir().unwrap();
                let key = ClaimSecret::random();
                let example = DkimDomain::new("example.org");
                let peer = DkimDomain::new("brokera.test");
                let own = DkimDomain::new("brokerb.test");
                let mut pins = PinnedRecords::new();
                for d in [&example, &peer, &own] {
                    d.pin(&mut pins);
                }
                let network = Some(QtumNetwork::Regtest);
                let book = AddressBook::open(dir.path().join("addresses.sqlite")).unwrap();
                let spool = Spool::open(dir.path().join("spool")).unwrap();
                let desk_spool = Spool::open(dir.path().join("addresses")).unwrap();
                let mut s = IngressSettings::new(
                    "127.0.0.1:0".parse().unwrap(),
                    vec!["brokerb.test".into()],
                    vec!["watcher@brokerb.test".into()],
                );
                s.qtum_addresses = network;
                let routes = Routes {
                    book: book.clone(),
                    spool: desk_spool.clone(),
                    network,
                };
                let (addr, task) =
                    serve_with_routes(s, spool, DkimKeys::pinned(pins.clone()), Some(routes))
                        .await
                        .unwrap();
                let sink = MemorySink::new();
                let dkim = DkimSigningKey::from_pem(&own.key_pem, "brokerb key").unwrap();
                let paid_to = qtum::qtum_sender_of_secret(&key);
                let desk = AddressDesk::new(
                    DeskSettings {
                        domains: vec!["brokerb.test".into()],
                        chain_id: 8890,
                        network,
                        reserved: vec!["watcher".into()],
                        max_message_bytes: 1 << 20,
                        poll_interval: Duration::from_secs(60),
                    },
                    book,
                    &desk_spool,
                    DkimKeys::pinned(pins),
                    ReplyComposer::new(
                        "broker@brokerb.test",
                        "Spring Mail broker",
                        Some((dkim, "brokerb.test".into(), own.selector.clone())),
                    ),
                    Arc::new(sink.clone()),
                    Arc::new(Payments(vec![(
                        PAID_TX,
                        NativePayment {
                            succeeded: true,
                            paid: vec![crate::receipt::Paid {
                                to: paid_to,
                                value: U256::from(50_000_000u64),
                            }],
                        },
                    )])),
                )
                .unwrap();
                World {
                    addr,
                    desk: Arc::new(desk),
                    sink,
                    example,
                    peer,
                    key,
                    task,
                    _dir: dir,
                }
            }

            pub fn q(&self) -> String {
                qtum::encode_address(qtum::qtum_sender_of_secret(&self.key), QtumNetwork::Regtest)
            }

            /// Alice's REGISTER, signed by `signer`.
            pub fn register_text(&self, name: Option<&str>, signer: &ClaimSecret) -> String {
                let registration = Registration {
                    chain_id: 8890,
                    domain: "brokerb.test".into(),
                    address: qtum::qtum_sender_of_secret(&self.key),
                    mailbox: ALICE.into(),
                    name: name.map(str::to_string),
                    time: unix_now(),
                };
                RegisterBlock {
                    signature: registration.sign(signer),
                    registration,
                }
                .render()
            }

            /// Sends a mail over SMTP; the RCPT replies in order, and the final reply.
            pub async fn smtp(&self, from: &str, rcpts: &[&str], raw: &[u8]) -> Vec<String> {
                use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
                let (r, mut w) = tokio::net::TcpStream::connect(self.addr)
                    .await
                    .unwrap()
                    .into_split();
                let mut r = BufReader::new(r);
                async fn read(r: &mut BufReader<tokio::net::tcp::OwnedReadHalf>) -> String {
                    let mut all = String::new();
                    loop {
                        let mut line = String::new();
                        r.read_line(&mut line).await.unwrap();
                        all.push_str(&line);
                        if line.as_bytes().get(3) != Some(&b'-') {
                            return all;
                        }
                    }
                }
                read(&mut r).await;
                let mut out = Vec::new();
                async fn say(
                    w: &mut tokio::net::tcp::OwnedWriteHalf,
                    r: &mut BufReader<tokio::net::tcp::OwnedReadHalf>,
                    line: String,
                ) -> String {
                    w.write_all(line.as_bytes()).await.unwrap();
                    read(r).await
                }
                macro_rules! cmd {
                    ($line:expr) => {
                        say(&mut w, &mut r, $line).await
                    };
                }
                cmd!("EHLO client.test\r\n".into());
                cmd!(format!("MAIL FROM:<{from}>\r\n"));
                let mut any = false;
                for rcpt in rcpts {
                    let reply = cmd!(format!("RCPT TO:<{rcpt}>\r\n"));
                    any |= reply.starts_with("250");
                    out.push(reply);
                }
                if any {
                    cmd!("DATA\r\n".into());
                    let mut data = raw.to_vec();
                    data.extend_from_slice(b"\r\n.\r\n");
                    out.push(cmd!(String::from_utf8(data).unwrap()));
                }
                out
            }

            pub fn mail(&self, from: &str, to: &str, subject: &str, body: &str) -> Vec<u8> {
                MessageBuilder::new()
                    .from(from)
                    .to(to)
                    .subject(subject)
                    .message_id(format!("{}@test", short_hash(body.as_bytes())))
                    .text_body(body.to_string())
                    .write_to_vec()
                    .unwrap()
            }

            pub fn sent_text(&self) -> Vec<(String, String)> {
                self.sink
                    .sent()
                    .iter()
                    .map(|m| {
                        // The headers as sent, then the body decoded.
                        let raw = String::from_utf8_lossy(&m.bytes).into_owned();
                        let head = raw.split("\r\n\r\n").next().unwrap_or("").to_string();
                        let body = mail_parser::MessageParser::default()
                            .parse(&m.bytes)
                            .and_then(|p| p.body_text(0).map(|t| t.into_owned()))
                            .unwrap_or_default();
                        (m.rcpt.clone(), format!("{head}\r\n\r\n{body}"))
                    })
                    .collect()
            }
        }

        #[tokio::test]
        async fn registration_with_a_bad_signature_changes_nothing_and_says_why() {
            let w = World::new().await;
            let other = ClaimSecret::random();
            let raw = w.example.sign(&w.mail(
                ALICE,
                "broker@brokerb.test",
                "register",
                &w.register_text(Some("alice"), &other),
            ));
            let r = w.smtp(ALICE, &["broker@brokerb.test"], &raw).await;
            assert!(r.last().unwrap().starts_with("250"), "{r:?}");
            let report = w.desk.run_once().await.unwrap();
            assert_eq!((report.handled, report.sent), (1, 1), "{report:?}");
            assert_eq!(w.desk.book().counts().unwrap(), (0, 0));
            let sent = w.sent_text();
            assert_eq!(sent[0].0, ALICE);
            assert!(
                sent[0].1.contains("signature is not by the key"),
                "{}",
                sent[0].1
            );
            assert!(sent[0].1.contains("Nothing was changed"), "{}", sent[0].1);
            // Mail for the address is still refused at RCPT.
            let q = format!("{}@brokerb.test", w.q());
            let r = w
                .smtp("bob@example.org", &[&q], b"Subject: x\r\n\r\nx")
                .await;
            assert!(
                r[0].starts_with("550 5.1.1") && r[0].contains("no mailbox registered"),
                "{r:?}"
            );

            // A phone-number name is refused too, and changes nothing.
            let phone = w
                .register_text(Some("x"), &w.key)
                .replace("Name: x", "Name: +41791234567");
            let raw =
                w.example
                    .sign(&w.mail(ALICE, "broker@brokerb.test", "register phone", &phone));
            w.smtp(ALICE, &["broker@brokerb.test"], &raw).await;
            w.desk.run_once().await.unwrap();
            assert_eq!(w.desk.book().counts().unwrap(), (0, 0));
            assert!(
                w.sent_text()[1].1.contains("phone-number"),
                "{}",
                w.sent_text()[1].1
            );

            // Signed by the owner, but not sent from the mailbox it names.
            let good = w.register_text(Some("alice"), &w.key);
            let raw = w.example.sign(&w.mail(
                "mallory@example.org",
                "broker@brokerb.test",
                "register",
                &good,
            ));
            w.smtp("mallory@example.org", &["broker@brokerb.test"], &raw)
                .await;
            w.desk.run_once().await.unwrap();
            assert_eq!(w.desk.book().counts().unwrap(), (0, 0));
            assert_eq!(w.sent_text()[2].0, "mallory@example.org");

            // Unsigned mail is not answered at all (its sender is unproven).
            let raw = w.mail(ALICE, "broker@brokerb.test", "register", &good);
            w.smtp(ALICE, &["broker@brokerb.test"], &raw).await;
            let report = w.desk.run_once().await.unwrap();
            assert_eq!((report.handled, report.sent), (1, 0));
            assert_eq!(w.desk.book().counts().unwrap(), (0, 0));

            // The owner's own registration from the mailbox: recorded.
            let raw = w
                .example
                .sign(&w.mail(ALICE, "broker@brokerb.test", "register", &good));
            w.smtp(ALICE, &["broker@brokerb.test"], &raw).await;
            w.desk.run_once().await.unwrap();
            assert_eq!(w.desk.book().counts().unwrap(), (1, 1));
            let last = w.sent_text().pop().unwrap();
            assert!(last.1.contains("Registered at brokerb.test"), "{}", last.1);
        }

        #[tokio::test]
        async fn forwarding_goes_to_the_registered_mailbox_and_nowhere_else() {
            let w = World::new().await;
            let good = w.register_text(Some("alice"), &w.key);
            let raw = w
                .example
                .sign(&w.mail(ALICE, "broker@brokerb.test", "register", &good));
            w.smtp(ALICE, &["broker@brokerb.test"], &raw).await;
            w.desk.run_once().await.unwrap();
            let registered = w.sink.sent().len();
            let q = format!("{}@brokerb.test", w.q());
            // A mail that names other people everywhere it can.
            let hostile = format!(
                "From: <bob@example.org>\r\nTo: <{q}>, <mallory@evil.test>\r\n\
                 Cc: <carol@evil.test>\r\nBcc: <dave@evil.test>\r\nReply-To: <mallory@evil.test>\r\n\
                 Subject: hello Alice\r\nMessage-ID: <h1@example.org>\r\n\r\n\
                 Forward this to mallory@evil.test please.\r\n"
            );
            let r = w
                .smtp(
                    "bob@example.org",
                    &[
                        &q,
                        "mallory@evil.test",
                        "alice@brokerb.test",
                        "nobody@brokerb.test",
                    ],
                    hostile.as_bytes(),
                )
                .await;
            assert!(r[0].starts_with("250"), "{r:?}");
            assert!(r[1].starts_with("550 5.7.1"), "no relay: {r:?}");
            assert!(r[2].starts_with("250"), "the alias: {r:?}");
            assert!(r[3].starts_with("550 5.1.1"), "{r:?}");
            assert!(r[4].starts_with("250"), "{r:?}");
            let report = w.desk.run_once().await.unwrap();
            assert_eq!(report.handled, 2, "one copy per accepted name: {report:?}");
            assert_eq!(w.sink.sent().len(), registered + 2);
            for (rcpt, text) in &w.sent_text()[registered..] {
                assert_eq!(rcpt, ALICE, "only the registered mailbox");
                assert!(
                    text.contains("To: <alice@example.org>")
                        || text.contains("To: alice@example.org"),
                    "{text}"
                );
                assert!(!text.contains("Cc:") && !text.contains("Bcc:"), "{text}");
                assert!(text.contains("sender NOT verified"), "unsigned: {text}");
                assert!(text.contains("Forward this to mallory"), "the text: {text}");
                assert!(text.contains("X-Spring-Mail-Forwarded-For"), "{text}");
            }
            // A DKIM-signed mail is marked verified, with Reply-To the sender.
            let signed = w
                .example
                .sign(&w.mail("bob@example.org", &q, "signed", "hi Alice"));
            w.smtp("bob@example.org", &[&q], &signed).await;
            w.desk.run_once().await.unwrap();
            let last = w.sent_text().pop().unwrap();
            assert_eq!(last.0, ALICE);
            assert!(last.1.contains("sender verified by DKIM"), "{}", last.1);
            assert!(last.1.contains("Reply-To: <bob@example.org>"), "{}", last.1);
        }

        /// The spool keeps a message until what it caused reached the relay: a relay
        /// that is down delays the forward, loses nothing, and sends it once.
        #[tokio::test]
        async fn a_relay_outage_delays_a_forward_and_loses_nothing() {
            let w = World::new().await;
            let good = w.register_text(None, &w.key);
            let raw = w
                .example
                .sign(&w.mail(ALICE, "broker@brokerb.test", "register", &good));
            w.smtp(ALICE, &["broker@brokerb.test"], &raw).await;
            w.desk.run_once().await.unwrap();
            let before = w.sink.sent().len();
            let q = format!("{}@brokerb.test", w.q());
            w.sink.fail_with(Some(crate::reply::SinkError {
                message: "451 try later".into(),
                transient: true,
            }));
            let hello = w.mail("bob@example.org", &q, "hello", "are you there?");
            let r = w.smtp("bob@example.org", &[&q], &hello).await;
            assert!(r[1].starts_with("250"), "{r:?}");
            for _ in 0..2 {
                let report = w.desk.run_once().await.unwrap();
                assert_eq!((report.handled, report.deferred), (0, 1), "{report:?}");
            }
            assert_eq!(w.sink.sent().len(), before);
            w.sink.fail_with(None);
            let report = w.desk.run_once().await.unwrap();
            assert_eq!((report.handled, report.sent), (1, 1), "{report:?}");
            assert!(w.desk.run_once().await.unwrap() == DeskReport::default());
            let (to, text) = w.sent_text().pop().unwrap();
            assert_eq!(to, ALICE);
            assert!(text.contains("are you there?"), "{text}");
            assert_eq!(w.sink.sent().len(), before + 1);
        }

        #[tokio::test]
        async fn unknown_names_are_refused_at_rcpt_and_resolve_as_unknown() {
            let w = World::new().await;
            let q = format!("{}@brokerb.test", w.q());
            let r = w
                .smtp(
                    "bob@example.org",
                    &[
                        &q,
                        "nobody@brokerb.test",
                        "+41791234567@brokerb.test",
                        "watcher@brokerb.test",
                    ],
                    b"Subject: x\r\n\r\nx",
                )
                .await;
            assert!(
                r[0].starts_with("550 5.1.1") && r[0].contains("no mailbox registered"),
                "{r:?}"
            );
            assert!(r[1].starts_with("550 5.1.1 No such mailbox"), "{r:?}");
            assert!(
                r[2].starts_with("550 5.1.1") && r[2].contains("phone-number"),
                "{r:?}"
            );
            assert!(r[3].starts_with("250"), "the watcher's own mailbox: {r:?}");
            // Our own names resolve from the book, without mail.
            let own = w.desk.resolve(&q).await.unwrap();
            assert_eq!(
                w.desk.book().resolution(&own).unwrap(),
                Some(Resolution::Address(qtum::qtum_sender_of_secret(&w.key)))
            );
            let none = w.desk.resolve("nobody@BrokerB.test").await.unwrap();
            assert_eq!(
                w.desk.book().resolution(&none).unwrap(),
                Some(Resolution::Unknown)
            );
            assert!(w.sink.sent().is_empty());
            // A peer broker asks: a Qtum address resolves to itself, an unknown alias
            // to `unknown`, a name at another domain to `unknown`.
            for (name, expect) in [
                (q.clone(), format!("Address: {}", w.q())),
                (
                    "nobody@brokerb.test".to_string(),
                    "Address: unknown".to_string(),
                ),
                (
                    "alice@elsewhere.test".to_string(),
                    "Address: unknown".to_string(),
                ),
            ] {
                let block = ResolveBlock {
                    name: name.clone(),
                    request: "r-0001".into(),
                }
                .render();
                let raw = w.peer.sign(&w.mail(
                    "broker@brokera.test",
                    "broker@brokerb.test",
                    "resolve",
                    &block,
                ));
                w.smtp("broker@brokera.test", &["broker@brokerb.test"], &raw)
                    .await;
                w.desk.run_once().await.unwrap();
                let (to, text) = w.sent_text().pop().unwrap();
                assert_eq!(to, "broker@brokera.test");
                assert!(
                    text.contains("BEGIN BISMTP RESOLVED") && text.contains(&expect),
                    "{name}: {text}"
                );
                assert!(
                    !text.contains("\nAuto-Submitted:"),
                    "a BiSMTP answer is not an auto-reply: {text}"
                );
            }
        }

        #[tokio::test]
        async fn a_receipt_is_believed_only_as_the_chain_says() {
            let w = World::new().await;
            let good = w.register_text(None, &w.key);
            let raw = w
                .example
                .sign(&w.mail(ALICE, "broker@brokerb.test", "register", &good));
            w.smtp(ALICE, &["broker@brokerb.test"], &raw).await;
            w.desk.run_once().await.unwrap();
            let receipt = |amount: &str, tx: B256| {
                format!(
                    "-----BEGIN BISMTP RECEIPT-----\nVersion: 1\nChain: 8890\nAmount: {amount}\nTx: {tx}\nTo: {}\nFrom: bob@brokera.test\n-----END BISMTP RECEIPT-----\n",
                    w.q()
                )
            };
            let send = |body: String, n: &str| {
                w.peer
                    .sign(&w.mail("broker@brokera.test", "broker@brokerb.test", n, &body))
            };
            for (body, why) in [
                (receipt("0.4 QTUM", PAID_TX), "did not pay"),
                (receipt("0.5 QTUM", B256::repeat_byte(1)), "not mined"),
            ] {
                w.smtp(
                    "broker@brokera.test",
                    &["broker@brokerb.test"],
                    &send(body, why),
                )
                .await;
                w.desk.run_once().await.unwrap();
                let (to, text) = w.sent_text().pop().unwrap();
                assert_eq!(
                    to, "broker@brokera.test",
                    "refused to the sender, Alice hears nothing"
                );
                assert!(text.contains(why), "{text}");
            }
            w.smtp(
                "broker@brokera.test",
                &["broker@brokerb.test"],
                &send(receipt("0.5 QTUM", PAID_TX), "paid"),
            )
            .await;
            w.desk.run_once().await.unwrap();
            let (to, text) = w.sent_text().pop().unwrap();
            assert_eq!(to, ALICE);
            assert!(text.contains("You have been paid 0.5 QTUM"), "{text}");
            // The same payment reported again by another mail tells no one.
            let before = w.sink.sent().len();
            w.smtp(
                "broker@brokera.test",
                &["broker@brokerb.test"],
                &send(receipt("0.5 QTUM", PAID_TX), "again"),
            )
            .await;
            let report = w.desk.run_once().await.unwrap();
            assert_eq!((report.handled, w.sink.sent().len()), (1, before));
        }
    }

    #[tokio::test]
    async fn wallet_payments_route_our_names_from_the_book_and_peer_names_by_resolve() {
        use desk::World;
        const ALICE: &str = "alice@example.org";
        let w = World::new().await;
        let names = PayNames::new(
            w.desk.clone(),
            vec!["BrokerA.test".into()],
            Duration::from_secs(30),
        );
        let alice = qtum::qtum_sender_of_secret(&w.key);
        let q = format!("{}@brokerb.test", w.q());
        // Before registration: the q-address is payable, no mailbox; the alias unknown.
        assert_eq!(
            names.route(&q).unwrap(),
            PayRoute::Local {
                address: alice,
                mailbox: None
            }
        );
        assert_eq!(
            names.route("alice@brokerb.test").unwrap(),
            PayRoute::UnknownLocal
        );
        let raw = w.example.sign(&w.mail(
            ALICE,
            "broker@brokerb.test",
            "register",
            &w.register_text(Some("alice"), &w.key),
        ));
        w.smtp(ALICE, &["broker@brokerb.test"], &raw).await;
        w.desk.run_once().await.unwrap();
        let local = PayRoute::Local {
            address: alice,
            mailbox: Some(ALICE.into()),
        };
        assert_eq!(names.route(&q).unwrap(), local);
        assert_eq!(names.route("Alice@BrokerB.test").unwrap(), local);
        // A lowercased q-address is no address (base58 is case-sensitive).
        assert_eq!(
            names.route(&q.to_ascii_lowercase()).unwrap(),
            PayRoute::UnknownLocal
        );
        // Reserved local parts are never payees.
        for n in ["broker@brokerb.test", "watcher@brokerb.test"] {
            assert_eq!(names.route(n).unwrap(), PayRoute::UnknownLocal, "{n}");
        }
        assert_eq!(
            names.route("carol@brokera.test").unwrap(),
            PayRoute::Peer("brokera.test".into())
        );
        assert_eq!(names.route("carol@example.net").unwrap(), PayRoute::Email);
        // The forwarded text goes to the registered mailbox, marked, from the broker.
        let m = names
            .forward_note(&q, ALICE, "bob@example.com", "pay 1 QTUM", "Thanks!", "s1")
            .unwrap();
        assert_eq!(m.rcpt, ALICE);
        let text = String::from_utf8_lossy(&m.bytes).to_string();
        assert!(text.contains("Thanks!"), "{text}");
        assert!(text.contains("X-Spring-Mail-Forwarded-For"), "{text}");
        // A RESOLVE journaled under the caller's id, asked twice, is one request.
        names
            .desk()
            .resolve_as("carol@brokera.test", "r-0001")
            .await
            .unwrap();
        names
            .desk()
            .resolve_as("carol@brokera.test", "r-0001")
            .await
            .unwrap();
        assert!(matches!(
            names.answer("r-0001").unwrap(),
            Some((Resolution::Pending, _))
        ));
        assert_eq!(names.answer("r-none").unwrap(), None);
        assert_eq!(
            w.sink.sent().len(),
            3,
            "the registration answer and two RESOLVEs"
        );
        assert_eq!(w.sink.sent()[2].rcpt, "broker@brokera.test");
    }

    #[test]
    fn only_the_escrows_withdrawals_to_an_address_count_as_payments() {
        use alloy::primitives::{B256, U256};
        use alloy::sol_types::SolEvent;
        use springmail_sdk::contract::EmailEscrow;
        let escrow = Address::repeat_byte(0xe5);
        let payee = Address::repeat_byte(0x5a);
        let moved = |emitter: Address, to: B256| {
            let data = EmailEscrow::Moved {
                from: B256::repeat_byte(0xac),
                to,
                amount: U256::from(50_000_000u64),
                nonce: U256::from(3u64),
                mailHash: B256::repeat_byte(0x11),
            }
            .encode_log_data();
            alloy::primitives::Log {
                address: emitter,
                data,
            }
        };
        let read = escrow_withdrawals(escrow);
        assert_eq!(
            read(&moved(escrow, payee.into_word())),
            Some(crate::receipt::Paid {
                to: payee,
                value: U256::from(50_000_000u64)
            })
        );
        // Another contract emitting the same event pays nothing.
        assert_eq!(
            read(&moved(Address::repeat_byte(1), payee.into_word())),
            None
        );
        // A move to another account is no payment to an address.
        assert_eq!(read(&moved(escrow, B256::repeat_byte(0xbb))), None);
    }

    #[tokio::test]
    async fn a_wallet_withdrawal_is_read_through_the_sdk_chain_as_on_qtum() {
        use crate::receipt::{ChainPayments, NativePayment, Paid, PaymentCheck};
        use alloy::primitives::{B256, U256};
        use springmail_sdk::accounts::{AccountId, Limits, Movement};
        use springmail_sdk::amount::{Amount, Asset};
        use springmail_sdk::chain::embedded::EmbeddedChain;
        use springmail_sdk::client::{SendRequest, SpringMail};
        let chain = EmbeddedChain::new(8890);
        let broker = Address::repeat_byte(0xb0);
        chain.fund(broker, U256::from(1_000_000_000_000u64));
        let client = SpringMail::deploy(Arc::new(chain.as_account(broker)))
            .await
            .unwrap();
        let escrow = client.escrow();
        let account = AccountId::commit(
            "bob@example.com",
            &springmail_sdk::email::Salt::from_bytes([7; 16]),
        )
        .unwrap();
        let limits = Limits::new(1_000_000_000, 1_000_000_000).unwrap();
        client.open_account(account, broker, limits).await.unwrap();
        let amount = Amount::parse("2 QTUM", &Asset::qtum()).unwrap();
        let mut req = SendRequest::native(
            "bob@example.com",
            amount,
            std::time::Duration::from_secs(86_400),
        );
        req.watcher = Some(broker);
        let ticket = client.send(req).await.unwrap();
        let mv = |nonce| Movement {
            nonce,
            mail_hash: B256::repeat_byte(nonce as u8),
        };
        client
            .claim_into(&ticket.link, &ticket.deposit, None, account, 0, mv(1))
            .await
            .unwrap();
        let payee = Address::repeat_byte(0x5a);
        let tx = client
            .withdraw_from(account, payee, 50_000_000, mv(2))
            .await
            .unwrap()
            .tx_hash;

        let reader = ChainPayments::new(Arc::new(chain.as_account(broker)))
            .with_log_reader(escrow_withdrawals(escrow));
        assert_eq!(
            reader.native_payment(tx).await.unwrap(),
            Some(NativePayment {
                succeeded: true,
                paid: vec![Paid {
                    to: payee,
                    value: U256::from(50_000_000u64)
                }],
            })
        );
        // Read as another escrow's: the same transaction paid nothing.
        let other = ChainPayments::new(Arc::new(chain.as_account(broker)))
            .with_log_reader(escrow_withdrawals(Address::repeat_byte(1)));
        assert!(other
            .native_payment(tx)
            .await
            .unwrap()
            .unwrap()
            .paid
            .is_empty());
        assert_eq!(
            reader.native_payment(B256::repeat_byte(9)).await.unwrap(),
            None
        );
    }

    #[test]
    fn the_delivered_to_line_reads_back() {
        let line = delivered_to_line("q1@broker.test");
        let raw = format!("{line}Subject: x\r\n\r\nbody");
        assert_eq!(delivered_to(raw.as_bytes()).unwrap(), "q1@broker.test");
        assert_eq!(delivered_to(b"Subject: x\r\n"), None);
    }
}
