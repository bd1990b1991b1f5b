//! The journal: every state change of every message, written before its effect.
//!
//! One SQLite file (`journal.sqlite3` in the data directory) in WAL mode with
//! `synchronous = FULL`, so a committed change survives a crash or a power cut.
//!
//! A thread of its own owns the pipeline's writing connection. The pipeline's writes
//! are closures sent to it ([`Journal::commit`], [`Journal::enqueue`]); every write
//! that arrives while a commit is in flight joins the next one (group commit: one
//! fsync per batch, each write in a savepoint of its own, so one failing write rolls
//! back alone). A caller hears back only after the commit, so a state is durable
//! before its effect. Reads use a second connection (WAL readers do not wait for the
//! writer) and see every commit a caller has heard back from; blocking callers
//! (setup, tests, the operator's tools) write there with [`Journal::write`].
//!
//! A message moves through these states, each committed before the effect that
//! follows it:
//!
//! ```text
//! received ──► decided ─────────────────────────────► done
//!    │            ▲                                     (filed in Processed/Rejected)
//!    └► accepted ─┴► submitting ──► submitted ──► decided
//!        (plan)      (intent:        (tx hash
//!                     chain state     known)
//!                     is re-read
//!                     before any
//!                     send)
//! ```
//!
//! * `received`: the message is recorded and the mailbox checkpoint moves past its
//!   UID in the same transaction, so a fetched message is never lost and never
//!   fetched twice. New mail is judged before it is recorded, and its verdict (the
//!   next state) is written in that same transaction; a message stays `received`,
//!   with its raw bytes, only when its judgement was deferred by a transient failure.
//! * `accepted`: verification passed; the claim plan and the reply context are stored
//!   and the raw bytes dropped. The `claims` table holds one row per deposit (claim
//!   key), so two mails can never both submit for one deposit.
//! * `submitting` is written *before* the transaction is broadcast; after a crash
//!   the submitter re-reads the deposit on chain before it sends anything again.
//! * `decided`: the outcome (claimed / refused / dropped / duplicate) and the reply,
//!   if any, are committed together; the reply sits in the `outbox` until sent.
//!   Replies go out at least once: a reply is `sending` while it is handed to the
//!   mail server and `sent` after; one a crash left `sending` is sent again at the
//!   next start (its `resends` count goes up). The stored bytes, and so the
//!   Message-ID, are the same every time, so a second copy folds into the first in
//!   the claimant's mail client. A reply that keeps failing is retried with backoff
//!   until it is `sent`, refused for good (`failed`) or too old (`expired`).
//! * `done`: the message has been filed in its folder.
//!
//! A restart resumes every message that is not `done` and every unsent reply.
//!
//! What a pass reads grows with the work in hand, not with the journal's age: the
//! unfinished messages through a partial index, the unsent replies through theirs,
//! and the counts for metrics from a table that triggers keep (`counts`).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex, MutexGuard};

use rusqlite::{params, Connection, OptionalExtension};

/// Name of the journal file inside the data directory.
pub const JOURNAL_FILE: &str = "journal.sqlite3";

/// The schema version this code writes.
pub const SCHEMA_VERSION: i64 = 1;

/// Errors of the journal itself (disk, corruption, misuse). Always fatal for the
/// step that hit them: nothing is done without its journal entry.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// SQLite failed.
    #[error("journal {path}: {source}")]
    Sqlite {
        /// The journal file.
        path: PathBuf,
        /// The SQLite error.
        source: rusqlite::Error,
    },
    /// The journal belongs to another chain, escrow or watcher.
    #[error("journal {path} was made for {stored}, but this watcher is {current}; use another data directory")]
    IdentityMismatch {
        /// The journal file.
        path: PathBuf,
        /// What the journal says.
        stored: String,
        /// What the configuration says.
        current: String,
    },
    /// The commit of a group of writes failed (nothing of the group is written).
    #[error("journal {path}: commit failed: {reason}")]
    Commit {
        /// The journal file.
        path: PathBuf,
        /// The SQLite error.
        reason: String,
    },
    /// The journal's writer thread has stopped.
    #[error("journal {path}: the writer thread has stopped")]
    Stopped {
        /// The journal file.
        path: PathBuf,
    },
    /// A stored value does not decode.
    #[error("journal {path}: corrupt {what}: {reason}")]
    Corrupt {
        /// The journal file.
        path: PathBuf,
        /// Which value.
        what: &'static str,
        /// Why.
        reason: String,
    },
}

/// Where a message lives in its source: mailbox, UIDVALIDITY and UID.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct MailKey {
    /// The mailbox (folder) name, e.g. `INBOX`.
    pub mailbox: String,
    /// The mailbox's UIDVALIDITY when the message was fetched.
    pub uid_validity: u32,
    /// The message's UID.
    pub uid: u32,
}

impl std::fmt::Display for MailKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}/{}", self.mailbox, self.uid_validity, self.uid)
    }
}

/// The pseudo-mailbox of claims submitted over HTTP by the claim page: their rows go
/// through the same states as mail claims, but have no reply and are never filed.
pub const WEB_MAILBOX: &str = "web";

/// The durable position in a mailbox: every UID up to `last_uid` has a journal entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checkpoint {
    /// The mailbox's UIDVALIDITY.
    pub uid_validity: u32,
    /// The highest UID recorded.
    pub last_uid: u32,
}

/// Where a message is in the pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageState {
    /// Fetched and stored; not yet judged.
    Received,
    /// Verified; waiting for the submitter.
    Accepted,
    /// The claim transaction may have been broadcast (its hash is not recorded yet).
    Submitting,
    /// The claim transaction was broadcast; its hash is recorded.
    Submitted,
    /// The outcome and the reply are committed; waiting to be filed.
    Decided,
    /// Filed; nothing left to do.
    Done,
}

impl MessageState {
    /// The name stored in the journal.
    pub fn as_str(self) -> &'static str {
        match self {
            MessageState::Received => "received",
            MessageState::Accepted => "accepted",
            MessageState::Submitting => "submitting",
            MessageState::Submitted => "submitted",
            MessageState::Decided => "decided",
            MessageState::Done => "done",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "received" => MessageState::Received,
            "accepted" => MessageState::Accepted,
            "submitting" => MessageState::Submitting,
            "submitted" => MessageState::Submitted,
            "decided" => MessageState::Decided,
            "done" => MessageState::Done,
            _ => return None,
        })
    }
}

/// The folder a handled message is moved to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Folder {
    /// Claims that were paid.
    Processed,
    /// Everything else (refused, dropped, duplicates).
    Rejected,
}

impl Folder {
    /// The folder's name on the mail server.
    pub fn as_str(self) -> &'static str {
        match self {
            Folder::Processed => "Processed",
            Folder::Rejected => "Rejected",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        match s {
            "Processed" => Some(Folder::Processed),
            "Rejected" => Some(Folder::Rejected),
            _ => None,
        }
    }
}

/// The kind of a final outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OutcomeKind {
    /// The deposit was released to the claimant.
    Claimed,
    /// An authenticated claim that was refused (the sender got a reply saying why).
    Refused,
    /// Mail that was not authenticated, an auto-reply or a bounce: filed, never answered.
    Dropped,
    /// A second copy of a message already handled: filed, not answered again.
    Duplicate,
    /// A mailbox wallet order: recorded, carried out and answered by [`crate::wallet`].
    Order,
}

impl OutcomeKind {
    /// The name stored in the journal and used as the metrics label.
    pub fn as_str(self) -> &'static str {
        match self {
            OutcomeKind::Claimed => "claimed",
            OutcomeKind::Refused => "refused",
            OutcomeKind::Dropped => "dropped",
            OutcomeKind::Duplicate => "duplicate",
            OutcomeKind::Order => "order",
        }
    }

    /// Every kind, for metrics.
    pub const ALL: [OutcomeKind; 5] = [
        OutcomeKind::Claimed,
        OutcomeKind::Refused,
        OutcomeKind::Dropped,
        OutcomeKind::Duplicate,
        OutcomeKind::Order,
    ];

    fn parse(s: &str) -> Option<Self> {
        OutcomeKind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// A final outcome as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// What happened.
    pub kind: OutcomeKind,
    /// A stable machine code, e.g. `dkim-missing`, `expired`, `claimed`.
    pub code: String,
    /// The sentence a person reads (the same words as in the reply).
    pub text: String,
    /// The claim transaction, for claimed deposits (and reverted submissions).
    pub tx_hash: Option<String>,
}

/// A message's row.
#[derive(Debug, Clone)]
pub struct MessageRecord {
    /// Row id.
    pub id: i64,
    /// Where it is in the source.
    pub key: MailKey,
    /// Its size in bytes as the server reported it.
    pub size: u64,
    /// Where it is in the pipeline.
    pub state: MessageState,
    /// A short hash of the Message-ID (never the Message-ID itself in logs).
    pub msgid_hash: Option<String>,
    /// Always `None` in listings; see [`Journal::raw`] (kept only until the message is judged).
    pub raw: Option<Vec<u8>>,
    /// The claim plan (JSON), for accepted claims.
    pub plan: Option<String>,
    /// The reply context (JSON): who to answer and in which thread.
    pub reply_ctx: Option<String>,
    /// The claim transaction, once known.
    pub tx_hash: Option<String>,
    /// The outcome, once decided.
    pub outcome: Option<Outcome>,
    /// The folder, once decided.
    pub folder: Option<Folder>,
    /// Transient failures so far at the current state.
    pub attempts: u32,
    /// Unix seconds before which the current state is not retried.
    pub next_attempt_at: u64,
}

impl MessageRecord {
    /// A message just fetched and not recorded yet (row id 0 until
    /// [`JournalTx::insert_received`] gives it one).
    pub fn fetched(key: MailKey, size: u64) -> Self {
        MessageRecord {
            id: 0,
            key,
            size,
            state: MessageState::Received,
            msgid_hash: None,
            raw: None,
            plan: None,
            reply_ctx: None,
            tx_hash: None,
            outcome: None,
            folder: None,
            attempts: 0,
            next_attempt_at: 0,
        }
    }
}

/// A reply waiting in the outbox.
#[derive(Debug, Clone)]
pub struct OutboxItem {
    /// Row id.
    pub id: i64,
    /// The message it answers.
    pub message_row: i64,
    /// Envelope sender.
    pub mail_from: String,
    /// Envelope recipient.
    pub rcpt: String,
    /// The signed RFC 5322 bytes.
    pub bytes: Vec<u8>,
    /// Failed attempts so far.
    pub attempts: u32,
    /// Unix seconds when it was queued (its age decides when it expires).
    pub created_at: u64,
}

/// Counts for the metrics endpoint, read from the journal at start.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JournalStats {
    /// Decided messages by outcome kind.
    pub outcomes: Vec<(OutcomeKind, u64)>,
    /// Messages not yet done.
    pub unfinished: u64,
    /// Replies not yet sent (waiting, or being retried).
    pub outbox_pending: u64,
    /// Unix seconds when the oldest reply not yet sent was queued (`None`: none waits).
    pub outbox_oldest_pending_at: Option<u64>,
    /// Times a reply was sent again because a crash interrupted its hand-over (a reply
    /// two crashes interrupted counts twice): an upper bound on the second copies
    /// claimants hold (same Message-ID).
    pub outbox_resent: u64,
    /// Replies given up: refused for good by the mail server, or expired.
    pub outbox_given_up: u64,
    /// Replies an older watcher left `unconfirmed` (it did not resend interrupted
    /// replies); `springmail watch --resend-replies` sends them.
    pub outbox_unconfirmed: u64,
}

impl JournalStats {
    /// Messages decided, whatever the outcome.
    pub fn decided(&self) -> u64 {
        self.outcomes.iter().map(|(_, n)| n).sum()
    }
}

/// The journal. Cheap to share behind an `Arc`; writes go to its writer thread.
pub struct Journal {
    /// Reads, and the deposit index's own tables.
    conn: Mutex<Connection>,
    writer: Option<mpsc::Sender<Job>>,
    thread: Option<std::thread::JoinHandle<()>>,
    path: PathBuf,
    shared: Arc<WriterShared>,
}

/// A write sent to the journal's writer thread, not yet known to be committed.
#[must_use = "a write is durable only once `durable` returns"]
pub struct Pending<T> {
    rx: tokio::sync::oneshot::Receiver<Result<T, JournalError>>,
    path: PathBuf,
}

impl<T> Pending<T> {
    /// Waits until the write is committed (or failed), and returns its value.
    pub async fn durable(self) -> Result<T, JournalError> {
        match self.rx.await {
            Ok(r) => r,
            Err(_) => Err(JournalError::Stopped { path: self.path }),
        }
    }
}

/// What the writer thread and the callers share.
#[derive(Default)]
struct WriterShared {
    /// Crash tests: the process dies before the commit of this many-th write from now (0: never).
    abort_countdown: AtomicU32,
    /// Commits (fsyncs) and the writes they carried.
    commits: AtomicU64,
    writes: AtomicU64,
}

/// Hands a write's result to its caller once the group it ran in is committed (or not).
type Finish = Box<dyn FnOnce(Option<&str>) + Send>;
/// One write: runs in a savepoint; `true` keeps its changes.
type Job = Box<dyn FnOnce(&mut JournalTx<'_>) -> (bool, Finish) + Send>;

/// Writes joined into one commit at most (bounds the latency of the first).
const MAX_GROUP: usize = 1024;

impl Drop for Journal {
    fn drop(&mut self) {
        // Closing the channel ends the writer thread after the writes already sent.
        self.writer.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Runs one write. `None` when it panicked: it loses only itself, and its caller hears
/// that the writer stopped.
fn run_job(tx: &Connection, path: &Path, now: u64, job: Job) -> Option<(bool, Finish)> {
    let mut jtx = JournalTx { tx, path, now };
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(&mut jtx))).ok()
}

fn writer_loop(
    mut conn: Connection,
    path: PathBuf,
    rx: mpsc::Receiver<Job>,
    shared: Arc<WriterShared>,
) {
    while let Ok(first) = rx.recv() {
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(job) => group.push(job),
                Err(_) => break,
            }
        }
        let now = unix_now();
        let mut finishes: Vec<Finish> = Vec::with_capacity(group.len());
        // IMMEDIATE: the write lock is taken at the start, waiting (busy timeout) for
        // a blocking writer on the other connection, never failing half-way.
        let mut tx = match conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        {
            Ok(tx) => tx,
            Err(e) => {
                // The jobs are dropped unrun: their callers hear that the write failed.
                tracing::error!(error = %e, "the journal cannot begin a transaction");
                continue;
            }
        };
        let mut kept = 0u64;
        // A write alone in its group needs no savepoint: if it fails, the whole
        // transaction is rolled back, and it held nothing else (most groups are one).
        if group.len() == 1 {
            let job = group.pop().expect("one write");
            match run_job(&tx, &path, now, job) {
                Some((true, finish)) => {
                    kept = 1;
                    finishes.push(finish);
                }
                Some((false, finish)) => {
                    let _ = tx.rollback();
                    finish(None);
                    continue;
                }
                None => {
                    let _ = tx.rollback();
                    continue;
                }
            }
        }
        for job in group {
            let mut sp = match tx.savepoint() {
                Ok(sp) => sp,
                Err(e) => {
                    tracing::error!(error = %e, "the journal cannot open a savepoint");
                    continue;
                }
            };
            match run_job(&sp, &path, now, job) {
                Some((true, finish)) => {
                    if sp.commit().is_ok() {
                        kept += 1;
                        finishes.push(finish);
                    } else {
                        finish(Some("cannot release the savepoint"));
                    }
                }
                Some((false, finish)) => {
                    let _ = sp.rollback();
                    drop(sp);
                    finish(None);
                }
                None => {
                    let _ = sp.rollback();
                }
            }
        }
        if crate::crash::ENABLED && kept > 0 {
            let c = &shared.abort_countdown;
            let left = c.load(Ordering::SeqCst);
            if left > 0 && left as u64 <= kept {
                crate::crash::die(crate::crash::CrashPoint::JournalCommit);
            }
            if left > 0 {
                c.store(left - kept as u32, Ordering::SeqCst);
            }
        }
        let result = tx.commit().map_err(|e| e.to_string());
        shared.commits.fetch_add(1, Ordering::Relaxed);
        shared.writes.fetch_add(kept, Ordering::Relaxed);
        let failed = result.as_ref().err().map(String::as_str);
        for finish in finishes {
            finish(failed);
        }
    }
}

impl std::fmt::Debug for Journal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Journal").field("path", &self.path).finish()
    }
}

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS checkpoint (
    mailbox      TEXT PRIMARY KEY,
    uid_validity INTEGER NOT NULL,
    last_uid     INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS messages (
    id              INTEGER PRIMARY KEY,
    mailbox         TEXT NOT NULL,
    uid_validity    INTEGER NOT NULL,
    uid             INTEGER NOT NULL,
    size            INTEGER NOT NULL,
    state           TEXT NOT NULL,
    msgid_hash      TEXT,
    raw             BLOB,
    plan            TEXT,
    reply_ctx       TEXT,
    claim_key       TEXT,
    tx_hash         TEXT,
    outcome         TEXT,
    outcome_code    TEXT,
    outcome_text    TEXT,
    folder          TEXT,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL DEFAULT 0,
    last_error      TEXT,
    received_at     INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    UNIQUE (mailbox, uid_validity, uid)
);
CREATE INDEX IF NOT EXISTS messages_unfinished ON messages (state) WHERE state <> 'done';
CREATE TABLE IF NOT EXISTS seen (
    msgid_hash TEXT PRIMARY KEY,
    message_id INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS claims (
    claim_key  TEXT PRIMARY KEY,
    message_id INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS outbox (
    id              INTEGER PRIMARY KEY,
    message_id      INTEGER NOT NULL,
    mail_from       TEXT NOT NULL,
    rcpt            TEXT NOT NULL,
    bytes           BLOB NOT NULL,
    state           TEXT NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL DEFAULT 0,
    last_error      TEXT,
    created_at      INTEGER NOT NULL,
    sent_at         INTEGER,
    resends         INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS outbox_pending ON outbox (state) WHERE state = 'pending';
CREATE INDEX IF NOT EXISTS outbox_sending ON outbox (state) WHERE state = 'sending';
"#;

/// The counts [`Journal::stats`] reports, kept by triggers as rows change, so that
/// reading them costs the same with ten messages or ten million. Only outcomes and
/// the outbox's rare states are counted (the live queue is read through its indexes).
const COUNTS: &str = r#"
CREATE TABLE counts (
    name TEXT PRIMARY KEY,
    n    INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TRIGGER counts_outcome_update AFTER UPDATE OF outcome ON messages
WHEN OLD.outcome IS NOT NEW.outcome
BEGIN
    UPDATE counts SET n = n - 1 WHERE name = 'outcome:' || OLD.outcome;
    INSERT INTO counts (name, n) SELECT 'outcome:' || NEW.outcome, 1 WHERE NEW.outcome IS NOT NULL
        ON CONFLICT (name) DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER counts_outcome_insert AFTER INSERT ON messages WHEN NEW.outcome IS NOT NULL
BEGIN
    INSERT INTO counts (name, n) VALUES ('outcome:' || NEW.outcome, 1)
        ON CONFLICT (name) DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER counts_outcome_delete AFTER DELETE ON messages WHEN OLD.outcome IS NOT NULL
BEGIN
    UPDATE counts SET n = n - 1 WHERE name = 'outcome:' || OLD.outcome;
END;
CREATE TRIGGER counts_outbox_update AFTER UPDATE OF state, resends ON outbox
WHEN OLD.resends IS NOT NEW.resends OR (OLD.state IS NOT NEW.state
    AND (OLD.state IN ('failed', 'expired', 'unconfirmed') OR NEW.state IN ('failed', 'expired', 'unconfirmed')))
BEGIN
    UPDATE counts SET n = n - 1
        WHERE OLD.state IS NOT NEW.state AND name = 'outbox:' || OLD.state
          AND OLD.state IN ('failed', 'expired', 'unconfirmed');
    INSERT INTO counts (name, n) SELECT 'outbox:' || NEW.state, 1
        WHERE OLD.state IS NOT NEW.state AND NEW.state IN ('failed', 'expired', 'unconfirmed')
        ON CONFLICT (name) DO UPDATE SET n = n + 1;
    INSERT INTO counts (name, n) SELECT 'outbox:resends', NEW.resends - OLD.resends
        WHERE OLD.resends IS NOT NEW.resends
        ON CONFLICT (name) DO UPDATE SET n = n + excluded.n;
END;
CREATE TRIGGER counts_outbox_insert AFTER INSERT ON outbox
WHEN NEW.resends <> 0 OR NEW.state IN ('failed', 'expired', 'unconfirmed')
BEGIN
    INSERT INTO counts (name, n) SELECT 'outbox:' || NEW.state, 1
        WHERE NEW.state IN ('failed', 'expired', 'unconfirmed')
        ON CONFLICT (name) DO UPDATE SET n = n + 1;
    INSERT INTO counts (name, n) VALUES ('outbox:resends', NEW.resends)
        ON CONFLICT (name) DO UPDATE SET n = n + excluded.n;
END;
CREATE TRIGGER counts_outbox_delete AFTER DELETE ON outbox
WHEN OLD.resends <> 0 OR OLD.state IN ('failed', 'expired', 'unconfirmed')
BEGIN
    UPDATE counts SET n = n - 1
        WHERE name = 'outbox:' || OLD.state AND OLD.state IN ('failed', 'expired', 'unconfirmed');
    UPDATE counts SET n = n - OLD.resends WHERE name = 'outbox:resends';
END;
INSERT INTO counts (name, n)
    SELECT 'outcome:' || outcome, COUNT(*) FROM messages WHERE outcome IS NOT NULL GROUP BY outcome;
INSERT INTO counts (name, n)
    SELECT 'outbox:' || state, COUNT(*) FROM outbox
    WHERE state IN ('failed', 'expired', 'unconfirmed') GROUP BY state;
INSERT INTO counts (name, n) SELECT 'outbox:resends', COALESCE(SUM(resends), 0) FROM outbox;
"#;

/// Adds the trigger-kept counts to a journal that lacks them (a new one, or one
/// written before they existed), counted once from the rows, in one transaction.
fn ensure_counts(conn: &mut Connection) -> rusqlite::Result<()> {
    let present = |c: &Connection| {
        c.query_row(
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'counts'",
            [],
            |r| r.get::<_, i64>(0),
        )
        .map(|n| n > 0)
    };
    // The write lock only for the upgrade; asked again under it (another process may
    // have opened the journal meanwhile).
    if present(conn)? {
        return Ok(());
    }
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    if !present(&tx)? {
        tx.execute_batch(COUNTS)?;
    }
    tx.commit()
}

/// One of the journal's two connections (the read one, the writer thread's), set up
/// alike.
fn connect(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    // Savepoints' journals and sorts stay in memory (on disk each write to them was a
    // system call).
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    Ok(conn)
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl Journal {
    /// Opens (creating if needed) the journal in `data_dir`.
    pub fn open_in(data_dir: &Path) -> Result<Self, JournalError> {
        Self::open(&data_dir.join(JOURNAL_FILE))
    }

    /// Opens (creating if needed) the journal file at `path`.
    pub fn open(path: &Path) -> Result<Self, JournalError> {
        let path = path.to_path_buf();
        let err = |source| JournalError::Sqlite {
            path: path.clone(),
            source,
        };
        let mut conn = connect(&path).map_err(err)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(err)?;
        conn.execute_batch(SCHEMA).map_err(err)?;
        // Journals written before replies were resent lack the outbox's `resends`.
        let has_resends: bool = conn
            .query_row(
                "SELECT COUNT(*) FROM pragma_table_info('outbox') WHERE name = 'resends'",
                [],
                |r| r.get::<_, i64>(0),
            )
            .map_err(err)?
            > 0;
        if !has_resends {
            conn.execute_batch("ALTER TABLE outbox ADD COLUMN resends INTEGER NOT NULL DEFAULT 0")
                .map_err(err)?;
        }
        ensure_counts(&mut conn).map_err(err)?;
        conn.execute(
            "INSERT OR IGNORE INTO meta (key, value) VALUES ('schema_version', ?1)",
            params![SCHEMA_VERSION.to_string()],
        )
        .map_err(err)?;
        let writer_conn = connect(&path).map_err(err)?;
        // Every statement the pipeline writes with stays prepared (rusqlite keeps 16).
        writer_conn.set_prepared_statement_cache_capacity(64);
        let shared = Arc::new(WriterShared::default());
        let (tx, rx) = mpsc::channel();
        let thread = {
            let (thread_path, shared) = (path.clone(), shared.clone());
            std::thread::Builder::new()
                .name("journal".into())
                .spawn(move || writer_loop(writer_conn, thread_path, rx, shared))
                .map_err(|e| JournalError::Commit {
                    path: path.clone(),
                    reason: format!("cannot start the writer thread: {e}"),
                })?
        };
        Ok(Journal {
            conn: Mutex::new(conn),
            writer: Some(tx),
            thread: Some(thread),
            path,
            shared,
        })
    }

    /// Commits (fsyncs) so far, and the writes they carried (the group-commit ratio).
    pub fn commit_counts(&self) -> (u64, u64) {
        (
            self.shared.commits.load(Ordering::Relaxed),
            self.shared.writes.load(Ordering::Relaxed),
        )
    }

    fn send<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut JournalTx<'_>) -> Result<T, JournalError> + Send + 'static,
        reply: impl FnOnce(Result<T, JournalError>) + Send + 'static,
    ) -> Result<(), JournalError> {
        let path = self.path.clone();
        let job: Job = Box::new(move |tx: &mut JournalTx<'_>| match f(tx) {
            Ok(v) => (
                true,
                Box::new(move |failed: Option<&str>| {
                    reply(match failed {
                        None => Ok(v),
                        Some(reason) => Err(JournalError::Commit {
                            path,
                            reason: reason.to_string(),
                        }),
                    })
                }),
            ),
            Err(e) => (false, Box::new(move |_| reply(Err(e)))),
        });
        self.writer
            .as_ref()
            .and_then(|w| w.send(job).ok())
            .ok_or_else(|| self.stopped())
    }

    fn stopped(&self) -> JournalError {
        JournalError::Stopped {
            path: self.path.clone(),
        }
    }

    /// Runs `f` in the writer thread, inside the next group commit, and returns its
    /// value once that commit is durable. On `Err` nothing of `f` is written.
    pub async fn commit<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut JournalTx<'_>) -> Result<T, JournalError> + Send + 'static,
    ) -> Result<T, JournalError> {
        self.enqueue(f)?.durable().await
    }

    /// Sends `f` to the writer thread now and returns what waits for its commit, so
    /// the caller can prepare the next write meanwhile (writes commit in the order
    /// they are sent). Nothing may act on `f`'s changes before [`Pending::durable`].
    pub fn enqueue<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut JournalTx<'_>) -> Result<T, JournalError> + Send + 'static,
    ) -> Result<Pending<T>, JournalError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.send(f, move |r| {
            let _ = tx.send(r);
        })?;
        Ok(Pending {
            rx,
            path: self.path.clone(),
        })
    }

    /// The journal file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        // Every write runs in a transaction that rolls back on drop, so a panic in
        // another holder leaves the connection consistent.
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn err(&self) -> impl Fn(rusqlite::Error) -> JournalError + '_ {
        move |source| JournalError::Sqlite {
            path: self.path.clone(),
            source,
        }
    }

    /// Records which chain, escrow and watcher this journal serves, or checks that it
    /// is the same as recorded (a journal is never shared between two of them).
    pub fn bind_identity(&self, identity: &str) -> Result<(), JournalError> {
        let conn = self.lock();
        let e = self.err();
        let stored: Option<String> = conn
            .query_row("SELECT value FROM meta WHERE key = 'identity'", [], |r| {
                r.get(0)
            })
            .optional()
            .map_err(&e)?;
        match stored {
            Some(stored) if stored != identity => Err(JournalError::IdentityMismatch {
                path: self.path.clone(),
                stored,
                current: identity.to_string(),
            }),
            Some(_) => Ok(()),
            None => {
                conn.execute(
                    "INSERT INTO meta (key, value) VALUES ('identity', ?1)",
                    params![identity],
                )
                .map_err(&e)?;
                Ok(())
            }
        }
    }

    /// A write for blocking callers (setup, tests, the operator's tools), run on the
    /// calling thread in a transaction of its own on the read connection (`BEGIN
    /// IMMEDIATE`: SQLite serializes it with the writer thread's commits). The
    /// pipeline writes with [`Journal::commit`] instead. On `Err` nothing is written.
    pub fn write<T>(
        &self,
        f: impl FnOnce(&mut JournalTx<'_>) -> Result<T, JournalError>,
    ) -> Result<T, JournalError> {
        let mut conn = self.lock();
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(self.err())?;
        let mut jtx = JournalTx {
            tx: &tx,
            path: &self.path,
            now: unix_now(),
        };
        let out = f(&mut jtx)?;
        let c = &self.shared.abort_countdown;
        if crate::crash::ENABLED
            && c.load(Ordering::SeqCst) > 0
            && c.fetch_sub(1, Ordering::SeqCst) == 1
        {
            crate::crash::die(crate::crash::CrashPoint::JournalCommit);
        }
        tx.commit().map_err(self.err())?;
        Ok(out)
    }

    /// Crash tests: kills the process (as SIGKILL) inside the `nth` write from now,
    /// after its statements ran and before its commit.
    pub fn abort_before_commit(&self, nth: u32) {
        self.shared.abort_countdown.store(nth, Ordering::SeqCst);
    }

    /// A value from the meta table.
    pub fn meta(&self, key: &str) -> Result<Option<String>, JournalError> {
        self.lock()
            .query_row("SELECT value FROM meta WHERE key = ?1", params![key], |r| {
                r.get(0)
            })
            .optional()
            .map_err(self.err())
    }

    /// Runs `f` on the connection, for tables kept beside the journal's own (the
    /// deposit index, [`crate::deposits`]). `f` opens its own transaction if it writes.
    pub(crate) fn with_conn<T>(
        &self,
        f: impl FnOnce(&mut Connection) -> rusqlite::Result<T>,
    ) -> Result<T, JournalError> {
        f(&mut self.lock()).map_err(self.err())
    }

    /// The checkpoint of a mailbox, if any message was ever recorded from it.
    pub fn checkpoint(&self, mailbox: &str) -> Result<Option<Checkpoint>, JournalError> {
        self.lock()
            .query_row(
                "SELECT uid_validity, last_uid FROM checkpoint WHERE mailbox = ?1",
                params![mailbox],
                |r| {
                    Ok(Checkpoint {
                        uid_validity: r.get(0)?,
                        last_uid: r.get(1)?,
                    })
                },
            )
            .optional()
            .map_err(self.err())
    }

    /// One message by row id.
    pub fn message(&self, id: i64) -> Result<Option<MessageRecord>, JournalError> {
        let conn = self.lock();
        let mut stmt = conn
            .prepare_cached(&format!("{SELECT_MESSAGE} WHERE id = ?1"))
            .map_err(self.err())?;
        let row = stmt
            .query_row(params![id], read_message)
            .optional()
            .map_err(self.err())?;
        row.transpose()
            .map_err(|reason| self.corrupt("message", reason))
    }

    /// The raw bytes of a message not yet judged (`None` once judged, or when it was too large to fetch).
    pub fn raw(&self, id: i64) -> Result<Option<Vec<u8>>, JournalError> {
        let conn = self.lock();
        let raw: Option<Option<Vec<u8>>> = conn
            .query_row("SELECT raw FROM messages WHERE id = ?1", params![id], |r| {
                r.get(0)
            })
            .optional()
            .map_err(self.err())?;
        Ok(raw.flatten())
    }

    /// The claim holding `claim_key`'s slot (in flight or finished), if any.
    pub fn claim_holder(&self, claim_key: &str) -> Result<Option<MessageRecord>, JournalError> {
        let id: Option<i64> = self
            .lock()
            .query_row(
                "SELECT message_id FROM claims WHERE claim_key = ?1",
                params![claim_key],
                |r| r.get(0),
            )
            .optional()
            .map_err(self.err())?;
        match id {
            Some(id) => self.message(id),
            None => Ok(None),
        }
    }

    /// Every message that is not done, oldest first.
    pub fn unfinished(&self) -> Result<Vec<MessageRecord>, JournalError> {
        // Through the partial index: without INDEXED BY, SQLite reads the whole table
        // in id order to spare a sort, so every pass read every message ever handled.
        self.select_messages(&format!(
            "{SELECT_MESSAGE} INDEXED BY messages_unfinished WHERE state <> 'done' ORDER BY id"
        ))
    }

    /// Every message, oldest first (tests and the operations tooling).
    pub fn all_messages(&self) -> Result<Vec<MessageRecord>, JournalError> {
        self.select_messages(&format!("{SELECT_MESSAGE} ORDER BY id"))
    }

    fn select_messages(&self, sql: &str) -> Result<Vec<MessageRecord>, JournalError> {
        let conn = self.lock();
        let mut stmt = conn.prepare_cached(sql).map_err(self.err())?;
        let rows = stmt.query_map([], read_message).map_err(self.err())?;
        let mut out = Vec::new();
        for row in rows {
            out.push(
                row.map_err(self.err())?
                    .map_err(|reason| self.corrupt("message", reason))?,
            );
        }
        Ok(out)
    }

    /// Replies not yet sent whose retry time has come.
    pub fn outbox_due(&self, now: u64) -> Result<Vec<OutboxItem>, JournalError> {
        self.outbox_due_page(now, 0, usize::MAX)
    }

    /// At most `limit` of the replies due at `now` whose id is above `after`, in id
    /// order: a pass reads the outbox a group at a time, not all of it each pass.
    pub fn outbox_due_page(
        &self,
        now: u64,
        after: i64,
        limit: usize,
    ) -> Result<Vec<OutboxItem>, JournalError> {
        let conn = self.lock();
        let mut stmt = conn
            .prepare_cached(
                "SELECT id, message_id, mail_from, rcpt, bytes, attempts, created_at FROM outbox
                 WHERE state = 'pending' AND next_attempt_at <= ?1 AND id > ?2 ORDER BY id LIMIT ?3",
            )
            .map_err(self.err())?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = stmt
            .query_map(
                params![now.min(i64::MAX as u64) as i64, after, limit],
                |r| {
                    Ok(OutboxItem {
                        id: r.get(0)?,
                        message_row: r.get(1)?,
                        mail_from: r.get(2)?,
                        rcpt: r.get(3)?,
                        bytes: r.get(4)?,
                        attempts: r.get(5)?,
                        created_at: r.get::<_, i64>(6)?.max(0) as u64,
                    })
                },
            )
            .map_err(self.err())?;
        rows.collect::<Result<Vec<_>, _>>().map_err(self.err())
    }

    /// The message first recorded with this Message-ID hash, if any.
    pub fn seen_owner(&self, msgid_hash: &str) -> Result<Option<i64>, JournalError> {
        self.lock()
            .query_row(
                "SELECT message_id FROM seen WHERE msgid_hash = ?1",
                params![msgid_hash],
                |r| r.get(0),
            )
            .optional()
            .map_err(self.err())
    }

    /// The first message recorded with each of these Message-ID hashes, for those
    /// met before (one read for a batch).
    pub fn seen_owners(
        &self,
        hashes: &[&str],
    ) -> Result<std::collections::HashMap<String, i64>, JournalError> {
        let mut owners = std::collections::HashMap::new();
        if hashes.is_empty() {
            return Ok(owners);
        }
        let conn = self.lock();
        let tx = conn.unchecked_transaction().map_err(self.err())?;
        let mut stmt = tx
            .prepare_cached("SELECT message_id FROM seen WHERE msgid_hash = ?1")
            .map_err(self.err())?;
        for h in hashes {
            if let Some(id) = stmt
                .query_row(params![h], |r| r.get::<_, i64>(0))
                .optional()
                .map_err(self.err())?
            {
                owners.insert(h.to_string(), id);
            }
        }
        Ok(owners)
    }

    /// When the next reply waiting for a retry is due (unix seconds), if one waits.
    pub fn outbox_next_attempt(&self) -> Result<Option<u64>, JournalError> {
        self.lock()
            .query_row(
                "SELECT MIN(next_attempt_at) FROM outbox WHERE state = 'pending'",
                [],
                |r| r.get::<_, Option<i64>>(0),
            )
            .map(|t| t.map(|t| t.max(0) as u64))
            .map_err(self.err())
    }

    /// Every reply ever queued for a message (tests).
    pub fn outbox_for(&self, message_row: i64) -> Result<Vec<(String, Vec<u8>)>, JournalError> {
        let conn = self.lock();
        let mut stmt = conn
            .prepare_cached("SELECT state, bytes FROM outbox WHERE message_id = ?1 ORDER BY id")
            .map_err(self.err())?;
        let rows = stmt
            .query_map(params![message_row], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(self.err())?;
        rows.collect::<Result<Vec<_>, _>>().map_err(self.err())
    }

    /// Counts for metrics: kept counts, and the live queue through its indexes (no
    /// statement here reads every message or every reply), so cheap enough to sample
    /// often.
    pub fn stats(&self) -> Result<JournalStats, JournalError> {
        let conn = self.lock();
        let e = self.err();
        let mut stats = JournalStats::default();
        let mut stmt = conn
            .prepare_cached("SELECT name, n FROM counts ORDER BY name")
            .map_err(&e)?;
        let rows = stmt
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))
            .map_err(&e)?;
        for row in rows {
            let (name, n) = row.map_err(&e)?;
            let n = n.max(0) as u64;
            match name.split_once(':') {
                Some(("outcome", kind)) => {
                    if let Some(kind) = OutcomeKind::parse(kind) {
                        if n > 0 {
                            stats.outcomes.push((kind, n));
                        }
                    }
                }
                Some(("outbox", "failed" | "expired")) => stats.outbox_given_up += n,
                Some(("outbox", "unconfirmed")) => stats.outbox_unconfirmed += n,
                Some(("outbox", "resends")) => stats.outbox_resent += n,
                _ => {}
            }
        }
        let count = |sql: &str| {
            conn.query_row(sql, [], |r| r.get::<_, i64>(0))
                .map(|n| n.max(0) as u64)
                .map_err(&e)
        };
        stats.unfinished = count("SELECT COUNT(*) FROM messages WHERE state <> 'done'")?;
        stats.outbox_pending = count("SELECT COUNT(*) FROM outbox WHERE state = 'pending'")?;
        stats.outbox_oldest_pending_at = conn
            .query_row(
                "SELECT MIN(t) FROM (SELECT MIN(created_at) AS t FROM outbox WHERE state = 'pending'
                 UNION ALL SELECT MIN(created_at) FROM outbox WHERE state = 'sending')",
                [],
                |r| r.get::<_, Option<i64>>(0),
            )
            .map_err(&e)?
            .map(|t| t.max(0) as u64);
        Ok(stats)
    }

    fn corrupt(&self, what: &'static str, reason: String) -> JournalError {
        JournalError::Corrupt {
            path: self.path.clone(),
            what,
            reason,
        }
    }
}

// The raw bytes are not listed (a batch of large messages would sit in memory);
// [`Journal::raw`] reads one message's bytes when it is judged.
const SELECT_MESSAGE: &str =
    "SELECT id, mailbox, uid_validity, uid, size, state, msgid_hash, NULL, plan, reply_ctx,
    tx_hash, outcome, outcome_code, outcome_text, folder, attempts, next_attempt_at FROM messages";

type RowResult = Result<MessageRecord, String>;

fn read_message(r: &rusqlite::Row<'_>) -> rusqlite::Result<RowResult> {
    let state: String = r.get(5)?;
    let outcome: Option<String> = r.get(11)?;
    let folder: Option<String> = r.get(14)?;
    let tx_hash: Option<String> = r.get(10)?;
    let Some(state) = MessageState::parse(&state) else {
        return Ok(Err(format!("unknown state {state:?}")));
    };
    let outcome = match outcome {
        None => None,
        Some(kind) => match OutcomeKind::parse(&kind) {
            Some(kind) => Some(Outcome {
                kind,
                code: r.get::<_, Option<String>>(12)?.unwrap_or_default(),
                text: r.get::<_, Option<String>>(13)?.unwrap_or_default(),
                tx_hash: tx_hash.clone(),
            }),
            None => return Ok(Err(format!("unknown outcome {kind:?}"))),
        },
    };
    let folder = match folder {
        None => None,
        Some(f) => match Folder::parse(&f) {
            Some(f) => Some(f),
            None => return Ok(Err(format!("unknown folder {f:?}"))),
        },
    };
    Ok(Ok(MessageRecord {
        id: r.get(0)?,
        key: MailKey {
            mailbox: r.get(1)?,
            uid_validity: r.get(2)?,
            uid: r.get(3)?,
        },
        size: r.get::<_, i64>(4)? as u64,
        state,
        msgid_hash: r.get(6)?,
        raw: r.get(7)?,
        plan: r.get(8)?,
        reply_ctx: r.get(9)?,
        tx_hash,
        outcome,
        folder,
        attempts: r.get(15)?,
        next_attempt_at: r.get::<_, i64>(16)? as u64,
    }))
}

/// A reply to queue with a decision.
#[derive(Debug, Clone)]
pub struct QueuedReply<'a> {
    /// Envelope sender.
    pub mail_from: &'a str,
    /// Envelope recipient.
    pub rcpt: &'a str,
    /// The signed message.
    pub bytes: &'a [u8],
}

/// What becomes of a reply whose send failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyRetry {
    /// Try again at this unix second.
    At(u64),
    /// The mail server refused it for good.
    Failed,
    /// It kept failing until it was too old to send.
    Expired,
}

/// One open journal transaction; see [`Journal::write`].
pub struct JournalTx<'c> {
    tx: &'c Connection,
    path: &'c Path,
    now: u64,
}

impl JournalTx<'_> {
    fn err(&self) -> impl Fn(rusqlite::Error) -> JournalError + '_ {
        move |source| JournalError::Sqlite {
            path: self.path.to_path_buf(),
            source,
        }
    }

    /// Runs statements on the transaction, for tables kept beside the journal's own
    /// (the mailbox wallet's, [`crate::wallet`]).
    pub(crate) fn sql<T>(
        &mut self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> Result<T, JournalError> {
        f(self.tx).map_err(self.err())
    }

    /// Records a fetched message with its bytes (`None` when it was too large to
    /// fetch). Returns the row id, or `None` when this UID was already recorded.
    pub fn insert_received(
        &mut self,
        key: &MailKey,
        size: u64,
        raw: Option<&[u8]>,
    ) -> Result<Option<i64>, JournalError> {
        let n = self
            .tx
            .prepare_cached(
                "INSERT OR IGNORE INTO messages (mailbox, uid_validity, uid, size, state, raw, received_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, 'received', ?5, ?6, ?6)",
            )
            .and_then(|mut s| {
                s.execute(params![key.mailbox, key.uid_validity, key.uid, size as i64, raw, self.now as i64])
            })
            .map_err(self.err())?;
        Ok((n == 1).then(|| self.tx.last_insert_rowid()))
    }

    /// Moves a mailbox's checkpoint (never backwards within one UIDVALIDITY).
    pub fn set_checkpoint(&mut self, mailbox: &str, cp: Checkpoint) -> Result<(), JournalError> {
        self.tx
            .prepare_cached(
                "INSERT INTO checkpoint (mailbox, uid_validity, last_uid, updated_at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (mailbox) DO UPDATE SET
                   last_uid = CASE WHEN uid_validity = excluded.uid_validity
                                   THEN MAX(last_uid, excluded.last_uid) ELSE excluded.last_uid END,
                   uid_validity = excluded.uid_validity,
                   updated_at = excluded.updated_at",
            )
            .and_then(|mut s| s.execute(params![mailbox, cp.uid_validity, cp.last_uid, self.now as i64]))
            .map_err(self.err())?;
        Ok(())
    }

    /// Remembers an authenticated message by its Message-ID hash. Returns the row of an
    /// earlier message with the same hash (a replay), or `None` when it is new.
    pub fn mark_seen(&mut self, id: i64, msgid_hash: &str) -> Result<Option<i64>, JournalError> {
        self.tx
            .prepare_cached("UPDATE messages SET msgid_hash = ?2 WHERE id = ?1")
            .and_then(|mut s| s.execute(params![id, msgid_hash]))
            .map_err(self.err())?;
        let inserted = self
            .tx
            .prepare_cached("INSERT OR IGNORE INTO seen (msgid_hash, message_id) VALUES (?1, ?2)")
            .and_then(|mut s| s.execute(params![msgid_hash, id]))
            .map_err(self.err())?;
        if inserted == 1 {
            return Ok(None);
        }
        let owner: i64 = self
            .tx
            .prepare_cached("SELECT message_id FROM seen WHERE msgid_hash = ?1")
            .and_then(|mut s| s.query_row(params![msgid_hash], |r| r.get(0)))
            .map_err(self.err())?;
        Ok((owner != id).then_some(owner))
    }

    /// Stores a verified claim and takes the deposit's claim slot. Returns the row of
    /// another message that holds the slot (in flight or paid), in which case nothing
    /// was changed and the caller refuses this one.
    pub fn accept(
        &mut self,
        id: i64,
        claim_key: &str,
        plan: &str,
        reply_ctx: &str,
    ) -> Result<Option<i64>, JournalError> {
        if let Some(holder) = self.slot_holder(claim_key)? {
            if holder != id {
                return Ok(Some(holder));
            }
        }
        self.tx
            .prepare_cached(
                "INSERT INTO claims (claim_key, message_id, updated_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT (claim_key) DO UPDATE SET message_id = excluded.message_id, updated_at = excluded.updated_at",
            )
            .and_then(|mut s| s.execute(params![claim_key, id, self.now as i64]))
            .map_err(self.err())?;
        self.tx
            .prepare_cached(
                "UPDATE messages SET state = 'accepted', plan = ?2, reply_ctx = ?3, claim_key = ?4, raw = NULL,
                   attempts = 0, next_attempt_at = 0, updated_at = ?5 WHERE id = ?1",
            )
            .and_then(|mut s| s.execute(params![id, plan, reply_ctx, claim_key, self.now as i64]))
            .map_err(self.err())?;
        Ok(None)
    }

    /// The row holding a deposit's claim slot, if any. A holder that ended refused,
    /// dropped or as a duplicate gave the slot up.
    fn slot_holder(&self, claim_key: &str) -> Result<Option<i64>, JournalError> {
        let holder: Option<(i64, Option<String>)> = self
            .tx
            .prepare_cached(
                "SELECT c.message_id, m.outcome FROM claims c LEFT JOIN messages m ON m.id = c.message_id
                 WHERE c.claim_key = ?1",
            )
            .and_then(|mut s| {
                s.query_row(params![claim_key], |r| Ok((r.get(0)?, r.get(1)?)))
                    .optional()
            })
            .map_err(self.err())?;
        Ok(holder.and_then(|(holder, outcome)| {
            let released = matches!(
                outcome.as_deref(),
                Some("refused") | Some("dropped") | Some("duplicate")
            );
            (!released).then_some(holder)
        }))
    }

    /// Records a claim that came over HTTP (the claim page) as an accepted row in the
    /// [`WEB_MAILBOX`] pseudo-mailbox, taking the deposit's claim slot, in one step; the
    /// pipeline submits it like a mail claim. Returns the new row, or `Err(holder)` with
    /// the row that already holds the slot (nothing is written then).
    pub fn accept_web(
        &mut self,
        claim_key: &str,
        plan: &str,
    ) -> Result<Result<i64, i64>, JournalError> {
        if let Some(holder) = self.slot_holder(claim_key)? {
            return Ok(Err(holder));
        }
        let uid: i64 = self
            .tx
            .query_row(
                "SELECT COALESCE(MAX(uid), 0) + 1 FROM messages WHERE mailbox = ?1",
                params![WEB_MAILBOX],
                |r| r.get(0),
            )
            .map_err(self.err())?;
        let key = MailKey {
            mailbox: WEB_MAILBOX.into(),
            uid_validity: 0,
            uid: u32::try_from(uid).map_err(|_| JournalError::Corrupt {
                path: self.path.to_path_buf(),
                what: "web claims",
                reason: "more than 2^32 claims over HTTP".into(),
            })?,
        };
        let id = self
            .insert_received(&key, 0, None)?
            .ok_or_else(|| JournalError::Corrupt {
                path: self.path.to_path_buf(),
                what: "web claims",
                reason: format!("row {key} exists already"),
            })?;
        match self.accept(id, claim_key, plan, "null")? {
            None => Ok(Ok(id)),
            Some(holder) => Ok(Err(holder)),
        }
    }

    /// Records that the claim transaction is about to be broadcast.
    pub fn mark_submitting(&mut self, id: i64) -> Result<(), JournalError> {
        self.set_state(id, MessageState::Submitting, None)
    }

    /// Records the broadcast claim transaction.
    pub fn mark_submitted(&mut self, id: i64, tx_hash: &str) -> Result<(), JournalError> {
        self.set_state(id, MessageState::Submitted, Some(tx_hash))
    }

    fn set_state(
        &mut self,
        id: i64,
        state: MessageState,
        tx_hash: Option<&str>,
    ) -> Result<(), JournalError> {
        self.tx
            .prepare_cached(
                "UPDATE messages SET state = ?2, tx_hash = COALESCE(?3, tx_hash), attempts = 0, next_attempt_at = 0,
                   updated_at = ?4 WHERE id = ?1",
            )
            .and_then(|mut s| s.execute(params![id, state.as_str(), tx_hash, self.now as i64]))
            .map_err(self.err())?;
        Ok(())
    }

    /// Commits a final outcome, the folder to file the message in, and the reply (if
    /// any) into the outbox, together. The raw bytes are dropped.
    pub fn decide(
        &mut self,
        id: i64,
        outcome: &Outcome,
        folder: Folder,
        reply_ctx: Option<&str>,
        reply: Option<QueuedReply<'_>>,
    ) -> Result<(), JournalError> {
        self.tx
            .prepare_cached(
                "UPDATE messages SET state = 'decided', outcome = ?2, outcome_code = ?3, outcome_text = ?4,
                   tx_hash = COALESCE(?5, tx_hash), folder = ?6, reply_ctx = COALESCE(?7, reply_ctx), raw = NULL,
                   attempts = 0, next_attempt_at = 0, last_error = NULL, updated_at = ?8 WHERE id = ?1",
            )
            .and_then(|mut s| {
                s.execute(params![
                    id,
                    outcome.kind.as_str(),
                    outcome.code,
                    outcome.text,
                    outcome.tx_hash,
                    folder.as_str(),
                    reply_ctx,
                    self.now as i64
                ])
            })
            .map_err(self.err())?;
        if let Some(reply) = reply {
            self.tx
                .prepare_cached(
                    "INSERT INTO outbox (message_id, mail_from, rcpt, bytes, state, created_at)
                     VALUES (?1, ?2, ?3, ?4, 'pending', ?5)",
                )
                .and_then(|mut s| {
                    s.execute(params![
                        id,
                        reply.mail_from,
                        reply.rcpt,
                        reply.bytes,
                        self.now as i64
                    ])
                })
                .map_err(self.err())?;
        }
        Ok(())
    }

    /// Records that the message was filed.
    pub fn mark_done(&mut self, id: i64) -> Result<(), JournalError> {
        self.set_state(id, MessageState::Done, None)
    }

    /// Records a transient failure at the current state; retried at `next_attempt_at`.
    pub fn defer(
        &mut self,
        id: i64,
        next_attempt_at: u64,
        error: &str,
    ) -> Result<(), JournalError> {
        self.tx
            .prepare_cached(
                "UPDATE messages SET attempts = attempts + 1, next_attempt_at = ?2, last_error = ?3, updated_at = ?4
                 WHERE id = ?1",
            )
            .and_then(|mut s| s.execute(params![id, next_attempt_at as i64, error, self.now as i64]))
            .map_err(self.err())?;
        Ok(())
    }

    /// Records that a reply is being handed to the mail server. A crash in this state
    /// sends it again at the next start ([`JournalTx::outbox_resume_interrupted`]).
    pub fn outbox_sending(&mut self, outbox_id: i64) -> Result<(), JournalError> {
        self.tx
            .prepare_cached("UPDATE outbox SET state = 'sending' WHERE id = ?1")
            .and_then(|mut s| s.execute(params![outbox_id]))
            .map_err(self.err())?;
        Ok(())
    }

    /// At start: replies whose hand-over a crash interrupted are due again at once
    /// (at least once: the same bytes and Message-ID, so a second copy folds into the
    /// first). Returns how many.
    pub fn outbox_resume_interrupted(&mut self) -> Result<usize, JournalError> {
        self.tx
            .prepare_cached(
                "UPDATE outbox SET state = 'pending', next_attempt_at = 0, resends = resends + 1,
                   last_error = 'interrupted while being sent' WHERE state = 'sending'",
            )
            .and_then(|mut s| s.execute([]))
            .map_err(self.err())
    }

    /// The operator's resend: replies that were given up (`failed`, `expired`) or left
    /// `unconfirmed` by an older watcher are due again, with a fresh retry budget.
    /// Returns how many.
    pub fn outbox_resend_given_up(&mut self) -> Result<usize, JournalError> {
        self.tx
            .prepare_cached(
                "UPDATE outbox SET state = 'pending', attempts = 0, next_attempt_at = 0, created_at = ?1,
                   last_error = 'resent by the operator'
                 WHERE state IN ('failed', 'expired', 'unconfirmed')",
            )
            .and_then(|mut s| s.execute(params![self.now as i64]))
            .map_err(self.err())
    }

    /// Records that a reply was handed to the mail server.
    pub fn outbox_sent(&mut self, outbox_id: i64) -> Result<(), JournalError> {
        self.tx
            .prepare_cached(
                "UPDATE outbox SET state = 'sent', sent_at = ?2, last_error = NULL WHERE id = ?1",
            )
            .and_then(|mut s| s.execute(params![outbox_id, self.now as i64]))
            .map_err(self.err())?;
        Ok(())
    }

    /// Records a failed send: retried at `Retry(t)`, or given up.
    pub fn outbox_failed(
        &mut self,
        outbox_id: i64,
        error: &str,
        next: ReplyRetry,
    ) -> Result<(), JournalError> {
        let (state, next) = match next {
            ReplyRetry::At(t) => ("pending", t),
            ReplyRetry::Failed => ("failed", 0),
            ReplyRetry::Expired => ("expired", 0),
        };
        self.tx
            .prepare_cached(
                "UPDATE outbox SET state = ?2, attempts = attempts + 1, next_attempt_at = ?3, last_error = ?4 WHERE id = ?1",
            )
            .and_then(|mut s| s.execute(params![outbox_id, state, next as i64, error]))
            .map_err(self.err())?;
        Ok(())
    }

    /// Sets a value in the meta table (e.g. the submitter's last nonce).
    pub fn set_meta(&mut self, key: &str, value: &str) -> Result<(), JournalError> {
        self.tx
            .prepare_cached("INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO UPDATE SET value = excluded.value")
            .and_then(|mut s| s.execute(params![key, value]))
            .map_err(self.err())?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(uid: u32) -> MailKey {
        MailKey {
            mailbox: "INBOX".into(),
            uid_validity: 7,
            uid,
        }
    }

    #[test]
    fn a_web_claim_takes_the_slot_once_survives_reopen_and_frees_it_when_refused() {
        let dir = tempfile::tempdir().unwrap();
        let ck = "0x17c5185167401eD00cF5F5b2fc97D9BBfDb7D025";
        let row = {
            let j = Journal::open_in(dir.path()).unwrap();
            let row = j.write(|tx| tx.accept_web(ck, "{}")).unwrap().unwrap();
            // A second request for the same key is answered with the first row.
            assert_eq!(j.write(|tx| tx.accept_web(ck, "{}")).unwrap(), Err(row));
            row
        };
        // After a restart the claim is still there, accepted, for the submitter.
        let j = Journal::open_in(dir.path()).unwrap();
        let m = j.claim_holder(ck).unwrap().unwrap();
        assert_eq!(
            (m.id, m.state, m.key.mailbox.as_str()),
            (row, MessageState::Accepted, WEB_MAILBOX)
        );
        assert_eq!(j.unfinished().unwrap().len(), 1);
        // A mail claim for the same deposit is refused the slot.
        let mail_row = j
            .write(|tx| tx.insert_received(&key(1), 10, Some(b"raw")))
            .unwrap()
            .unwrap();
        assert_eq!(
            j.write(|tx| tx.accept(mail_row, ck, "{}", "{}")).unwrap(),
            Some(row)
        );
        // Refused: the slot is free for a new claim, in a new row.
        j.write(|tx| {
            tx.decide(
                row,
                &Outcome {
                    kind: OutcomeKind::Refused,
                    code: "reverted".into(),
                    text: "no".into(),
                    tx_hash: None,
                },
                Folder::Rejected,
                None,
                None,
            )
        })
        .unwrap();
        let again = j.write(|tx| tx.accept_web(ck, "{}")).unwrap().unwrap();
        assert_ne!(again, row);
        assert_eq!(j.claim_holder(ck).unwrap().unwrap().id, again);
    }

    #[test]
    fn received_messages_and_the_checkpoint_commit_together_and_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let j = Journal::open_in(dir.path()).unwrap();
            j.write(|tx| {
                for uid in [3, 5] {
                    assert!(tx
                        .insert_received(&key(uid), 10, Some(b"raw"))
                        .unwrap()
                        .is_some());
                }
                tx.set_checkpoint(
                    "INBOX",
                    Checkpoint {
                        uid_validity: 7,
                        last_uid: 5,
                    },
                )
            })
            .unwrap();
            // A failed transaction writes nothing.
            let r: Result<(), _> = j.write(|tx| {
                tx.insert_received(&key(9), 1, None)?;
                Err(JournalError::Corrupt {
                    path: "x".into(),
                    what: "test",
                    reason: "abort".into(),
                })
            });
            assert!(r.is_err());
        }
        let j = Journal::open_in(dir.path()).unwrap();
        assert_eq!(
            j.checkpoint("INBOX").unwrap(),
            Some(Checkpoint {
                uid_validity: 7,
                last_uid: 5
            })
        );
        let unfinished = j.unfinished().unwrap();
        assert_eq!(
            unfinished.iter().map(|m| m.key.uid).collect::<Vec<_>>(),
            vec![3, 5]
        );
        assert_eq!(
            j.raw(unfinished[0].id).unwrap().as_deref(),
            Some(&b"raw"[..])
        );
        // The same UID is not recorded twice.
        assert_eq!(
            j.write(|tx| tx.insert_received(&key(3), 10, None)).unwrap(),
            None
        );
        // The checkpoint never moves backwards within one UIDVALIDITY, and resets on a new one.
        j.write(|tx| {
            tx.set_checkpoint(
                "INBOX",
                Checkpoint {
                    uid_validity: 7,
                    last_uid: 2,
                },
            )
        })
        .unwrap();
        assert_eq!(j.checkpoint("INBOX").unwrap().unwrap().last_uid, 5);
        j.write(|tx| {
            tx.set_checkpoint(
                "INBOX",
                Checkpoint {
                    uid_validity: 8,
                    last_uid: 1,
                },
            )
        })
        .unwrap();
        assert_eq!(
            j.checkpoint("INBOX").unwrap(),
            Some(Checkpoint {
                uid_validity: 8,
                last_uid: 1
            })
        );
    }

    #[test]
    fn one_claim_slot_per_deposit_until_the_holder_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::open_in(dir.path()).unwrap();
        let (a, b) = j
            .write(|tx| {
                Ok((
                    tx.insert_received(&key(1), 1, None)?.unwrap(),
                    tx.insert_received(&key(2), 1, None)?.unwrap(),
                ))
            })
            .unwrap();
        assert_eq!(j.write(|tx| tx.accept(a, "0xk", "{}", "{}")).unwrap(), None);
        assert_eq!(
            j.write(|tx| tx.accept(b, "0xk", "{}", "{}")).unwrap(),
            Some(a)
        );
        let refused = Outcome {
            kind: OutcomeKind::Refused,
            code: "reverted".into(),
            text: "no".into(),
            tx_hash: None,
        };
        j.write(|tx| tx.decide(a, &refused, Folder::Rejected, None, None))
            .unwrap();
        assert_eq!(j.write(|tx| tx.accept(b, "0xk", "{}", "{}")).unwrap(), None);
        assert_eq!(j.message(b).unwrap().unwrap().state, MessageState::Accepted);
    }

    #[test]
    fn replays_are_detected_by_message_id_hash() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::open_in(dir.path()).unwrap();
        let (a, b) = j
            .write(|tx| {
                Ok((
                    tx.insert_received(&key(1), 1, None)?.unwrap(),
                    tx.insert_received(&key(2), 1, None)?.unwrap(),
                ))
            })
            .unwrap();
        assert_eq!(j.write(|tx| tx.mark_seen(a, "h1")).unwrap(), None);
        assert_eq!(
            j.write(|tx| tx.mark_seen(a, "h1")).unwrap(),
            None,
            "idempotent for the same message"
        );
        assert_eq!(j.write(|tx| tx.mark_seen(b, "h1")).unwrap(), Some(a));
    }

    #[test]
    fn decisions_queue_replies_and_the_outbox_drains() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::open_in(dir.path()).unwrap();
        let id = j
            .write(|tx| Ok(tx.insert_received(&key(1), 1, Some(b"x"))?.unwrap()))
            .unwrap();
        let out = Outcome {
            kind: OutcomeKind::Claimed,
            code: "claimed".into(),
            text: "paid".into(),
            tx_hash: Some("0xab".into()),
        };
        j.write(|tx| {
            tx.decide(
                id,
                &out,
                Folder::Processed,
                None,
                Some(QueuedReply {
                    mail_from: "w@b",
                    rcpt: "bob@e",
                    bytes: b"mail",
                }),
            )
        })
        .unwrap();
        let m = j.message(id).unwrap().unwrap();
        assert_eq!(m.state, MessageState::Decided);
        assert_eq!(m.outcome, Some(out));
        assert_eq!(m.folder, Some(Folder::Processed));
        assert!(j.raw(id).unwrap().is_none());
        let due = j.outbox_due(u64::MAX).unwrap();
        assert_eq!(due.len(), 1);
        j.write(|tx| tx.outbox_failed(due[0].id, "busy", ReplyRetry::At(100)))
            .unwrap();
        assert!(j.outbox_due(99).unwrap().is_empty());
        assert_eq!(j.outbox_due(100).unwrap()[0].attempts, 1);
        j.write(|tx| tx.outbox_sent(due[0].id)).unwrap();
        assert!(j.outbox_due(u64::MAX).unwrap().is_empty());
        j.write(|tx| tx.mark_done(id)).unwrap();
        assert!(j.unfinished().unwrap().is_empty());
        let stats = j.stats().unwrap();
        assert_eq!(stats.outcomes, vec![(OutcomeKind::Claimed, 1)]);
        assert_eq!((stats.outbox_pending, stats.outbox_resent), (0, 0));
        assert_eq!(stats.outbox_oldest_pending_at, None);
    }

    /// A journal in a fresh directory with `n` refusals decided, their replies due.
    fn with_queued_refusals(n: u32) -> (tempfile::TempDir, Journal, Vec<OutboxItem>) {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::open_in(dir.path()).unwrap();
        for n in 1..=n {
            let id = j
                .write(|tx| Ok(tx.insert_received(&key(n), n.into(), Some(b"x"))?.unwrap()))
                .unwrap();
            let out = Outcome {
                kind: OutcomeKind::Refused,
                code: "expired".into(),
                text: "expired".into(),
                tx_hash: None,
            };
            j.write(|tx| {
                tx.decide(
                    id,
                    &out,
                    Folder::Rejected,
                    None,
                    Some(QueuedReply {
                        mail_from: "w@b",
                        rcpt: "bob@e",
                        bytes: format!("mail {n}").as_bytes(),
                    }),
                )
            })
            .unwrap();
        }
        let due = j.outbox_due(u64::MAX).unwrap();
        (dir, j, due)
    }

    #[test]
    fn a_reply_interrupted_while_sending_is_due_again_with_the_same_bytes_and_counted_resent() {
        let (_dir, j, due) = with_queued_refusals(3);
        // A group is marked sending, the first reply is handed over, then the crash.
        j.write(|tx| {
            tx.outbox_sending(due[0].id)?;
            tx.outbox_sending(due[1].id)
        })
        .unwrap();
        j.write(|tx| tx.outbox_sent(due[0].id)).unwrap();
        assert_eq!(
            j.outbox_due(u64::MAX).unwrap().len(),
            1,
            "sending is not due"
        );
        // At the next start:
        assert_eq!(j.write(|tx| tx.outbox_resume_interrupted()).unwrap(), 1);
        let due_now = j.outbox_due(u64::MAX).unwrap();
        assert_eq!(
            due_now
                .iter()
                .map(|d| (d.id, d.bytes.clone()))
                .collect::<Vec<_>>(),
            vec![
                (due[1].id, due[1].bytes.clone()),
                (due[2].id, due[2].bytes.clone())
            ]
        );
        let stats = j.stats().unwrap();
        assert_eq!((stats.outbox_pending, stats.outbox_resent), (2, 1));
        assert_eq!(stats.outbox_unconfirmed, 0);
    }

    #[test]
    fn replies_given_up_are_counted_and_the_operator_can_resend_them() {
        let (_dir, j, due) = with_queued_refusals(3);
        j.write(|tx| {
            tx.outbox_failed(due[0].id, "550 no such user", ReplyRetry::Failed)?;
            tx.outbox_failed(due[1].id, "connection refused", ReplyRetry::Expired)
        })
        .unwrap();
        let stats = j.stats().unwrap();
        assert_eq!((stats.outbox_pending, stats.outbox_given_up), (1, 2));
        assert!(stats.outbox_oldest_pending_at.is_some());
        assert_eq!(j.write(|tx| tx.outbox_resend_given_up()).unwrap(), 2);
        let due_now = j.outbox_due(u64::MAX).unwrap();
        assert_eq!(due_now.len(), 3);
        assert!(due_now.iter().all(|d| d.attempts == 0));
        assert_eq!(j.stats().unwrap().outbox_given_up, 0);
    }

    /// The stats as a full count of the rows gives them (how they were read before
    /// the counts were kept).
    fn counted_from_rows(j: &Journal) -> (Vec<(String, i64)>, i64, i64, i64) {
        j.with_conn(|c| {
            let outcomes = c
                .prepare("SELECT outcome, COUNT(*) FROM messages WHERE outcome IS NOT NULL GROUP BY outcome")?
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            let n = |sql: &str| c.query_row(sql, [], |r| r.get::<_, i64>(0));
            Ok((
                outcomes,
                n("SELECT COUNT(*) FROM outbox WHERE state IN ('failed', 'expired')")?,
                n("SELECT COUNT(*) FROM outbox WHERE state = 'unconfirmed'")?,
                n("SELECT COALESCE(SUM(resends), 0) FROM outbox")?,
            ))
        })
        .unwrap()
    }

    fn kept_counts(j: &Journal) -> (Vec<(String, i64)>, i64, i64, i64) {
        let s = j.stats().unwrap();
        (
            s.outcomes
                .iter()
                .map(|(k, n)| (k.as_str().to_string(), *n as i64))
                .collect(),
            s.outbox_given_up as i64,
            s.outbox_unconfirmed as i64,
            s.outbox_resent as i64,
        )
    }

    #[test]
    fn the_kept_counts_match_the_rows_through_every_change_and_are_counted_on_upgrade() {
        let (dir, j, due) = with_queued_refusals(6);
        j.write(|tx| {
            tx.outbox_failed(due[0].id, "550", ReplyRetry::Failed)?;
            tx.outbox_failed(due[1].id, "timeout", ReplyRetry::Expired)?;
            tx.outbox_sending(due[2].id)?;
            tx.outbox_sending(due[3].id)?;
            tx.outbox_sent(due[3].id)?;
            // A message decided again under another outcome moves between the counts.
            tx.decide(
                due[4].message_row,
                &Outcome::duplicate(),
                Folder::Rejected,
                None,
                None,
            )?;
            tx.sql(|c| {
                c.execute(
                    "UPDATE outbox SET state = 'unconfirmed' WHERE id = ?1",
                    [due[5].id],
                )
            })
        })
        .unwrap();
        assert_eq!(j.write(|tx| tx.outbox_resume_interrupted()).unwrap(), 1);
        assert_eq!(kept_counts(&j), counted_from_rows(&j));
        assert_eq!(j.stats().unwrap().outbox_given_up, 2);
        assert_eq!(j.write(|tx| tx.outbox_resend_given_up()).unwrap(), 3);
        j.with_conn(|c| c.execute("DELETE FROM outbox WHERE id = ?1", [due[2].id]))
            .unwrap();
        let now = counted_from_rows(&j);
        assert_eq!(kept_counts(&j), now);
        assert_eq!(now.0.len(), 2, "refused and duplicate: {now:?}");
        // A journal written before the counts were kept gets them, counted once.
        j.with_conn(|c| {
            c.execute_batch(
                "DROP TABLE counts; DROP TRIGGER counts_outcome_update; DROP TRIGGER counts_outcome_insert;
                 DROP TRIGGER counts_outcome_delete; DROP TRIGGER counts_outbox_update;
                 DROP TRIGGER counts_outbox_insert; DROP TRIGGER counts_outbox_delete;",
            )
        })
        .unwrap();
        drop(j);
        let j = Journal::open_in(dir.path()).unwrap();
        assert_eq!(kept_counts(&j), now);
    }

    #[test]
    fn a_journal_without_the_resends_column_is_upgraded_on_open() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(JOURNAL_FILE);
        {
            let c = Connection::open(&path).unwrap();
            c.execute_batch(
                "CREATE TABLE outbox (id INTEGER PRIMARY KEY, message_id INTEGER NOT NULL,
                   mail_from TEXT NOT NULL, rcpt TEXT NOT NULL, bytes BLOB NOT NULL, state TEXT NOT NULL,
                   attempts INTEGER NOT NULL DEFAULT 0, next_attempt_at INTEGER NOT NULL DEFAULT 0,
                   last_error TEXT, created_at INTEGER NOT NULL, sent_at INTEGER);
                 INSERT INTO outbox (message_id, mail_from, rcpt, bytes, state, created_at)
                   VALUES (1, 'w@b', 'bob@e', x'00', 'unconfirmed', 5);",
            )
            .unwrap();
        }
        let j = Journal::open(&path).unwrap();
        assert_eq!(j.stats().unwrap().outbox_unconfirmed, 1);
        assert_eq!(j.write(|tx| tx.outbox_resend_given_up()).unwrap(), 1);
        let stats = j.stats().unwrap();
        assert_eq!((stats.outbox_unconfirmed, stats.outbox_pending), (0, 1));
    }

    #[test]
    fn a_journal_serves_one_identity() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::open_in(dir.path()).unwrap();
        j.bind_identity("chain 8890 escrow 0x1 watcher 0x2")
            .unwrap();
        j.bind_identity("chain 8890 escrow 0x1 watcher 0x2")
            .unwrap();
        assert!(matches!(
            j.bind_identity("chain 1 escrow 0x1 watcher 0x2"),
            Err(JournalError::IdentityMismatch { .. })
        ));
    }
}
