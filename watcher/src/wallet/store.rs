//! The wallet's tables in the journal: which mailbox has which account (with its
//! secret salt), every order as received and each step taken on it, and the
//! movements a BALANCE reply lists. Written in the journal's transactions, each step
//! before its effect.

use rusqlite::{params, Connection, OptionalExtension};

use super::Request;
use crate::reply::ReplyContext;

pub(crate) const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS wallet_accounts (
    email      TEXT PRIMARY KEY,
    account    TEXT NOT NULL UNIQUE,
    salt       TEXT NOT NULL,
    opened_tx  TEXT,
    created_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS wallet_orders (
    id          INTEGER PRIMARY KEY,
    message_id  INTEGER NOT NULL,
    email       TEXT NOT NULL,
    mail_hash   TEXT NOT NULL UNIQUE,
    request     TEXT NOT NULL,
    ctx         TEXT NOT NULL,
    state       TEXT NOT NULL,
    code        TEXT,
    reply_msgid TEXT,
    step        TEXT,
    tx_hash     TEXT,
    outcome     TEXT,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS wallet_orders_open ON wallet_orders (state) WHERE state IN ('new', 'acting');
CREATE TABLE IF NOT EXISTS wallet_movements (
    id        INTEGER PRIMARY KEY,
    email     TEXT NOT NULL,
    order_id  INTEGER,
    direction TEXT NOT NULL,
    what      TEXT NOT NULL,
    amount    TEXT NOT NULL,
    party     TEXT NOT NULL,
    tx_hash   TEXT,
    at        INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS wallet_movements_email ON wallet_movements (email, id);
"#;

/// An order's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum State {
    /// Received, not yet acted on.
    New,
    /// A confirmation code was sent; waits for CONFIRM.
    AwaitingConfirm,
    /// Its CONFIRM came; the confirming order carries it out.
    Confirmed,
    /// A chain step is recorded in `step` and may have been sent.
    Acting,
    /// Finished, answered.
    Done,
}

impl State {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            State::New => "new",
            State::AwaitingConfirm => "awaiting-confirm",
            State::Confirmed => "confirmed",
            State::Acting => "acting",
            State::Done => "done",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        [
            State::New,
            State::AwaitingConfirm,
            State::Confirmed,
            State::Acting,
            State::Done,
        ]
        .into_iter()
        .find(|x| x.as_str() == s)
    }
}

/// A mailbox's account as registered.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct AccountRow {
    pub(crate) email: String,
    pub(crate) account: String,
    /// Secret: never logged or replied.
    pub(crate) salt: String,
    pub(crate) opened_tx: Option<String>,
}

impl std::fmt::Debug for AccountRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccountRow")
            .field("account", &self.account)
            .field("salt", &"<redacted>")
            .finish_non_exhaustive()
    }
}

/// An order as stored.
#[derive(Debug, Clone)]
pub(crate) struct OrderRow {
    pub(crate) id: i64,
    pub(crate) message_id: i64,
    pub(crate) email: String,
    pub(crate) mail_hash: String,
    pub(crate) request: Request,
    pub(crate) ctx: ReplyContext,
    pub(crate) state: State,
    pub(crate) code: Option<String>,
    pub(crate) step: Option<String>,
    pub(crate) created_at: u64,
}

/// A movement as listed in a BALANCE reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Movement {
    pub(crate) direction: String,
    pub(crate) what: String,
    pub(crate) amount: u128,
    pub(crate) party: String,
    pub(crate) tx_hash: Option<String>,
    pub(crate) at: u64,
}

pub(crate) fn create(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute_batch(SCHEMA)
}

/// Records a received order. `false` when an order with the same mail hash exists
/// (the same bytes again under another UID: a replay).
pub(crate) fn insert_order(
    conn: &Connection,
    message_id: i64,
    email: &str,
    mail_hash: &str,
    request: &Request,
    ctx: &ReplyContext,
    now: u64,
) -> rusqlite::Result<bool> {
    let n = conn.execute(
        "INSERT OR IGNORE INTO wallet_orders (message_id, email, mail_hash, request, ctx, state, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, 'new', ?6, ?6)",
        params![
            message_id,
            email,
            mail_hash,
            serde_json::to_string(request).expect("serializable"),
            serde_json::to_string(ctx).expect("serializable"),
            now as i64
        ],
    )?;
    Ok(n == 1)
}

fn order_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<OrderRow> {
    let bad = |i: usize, what: String| {
        rusqlite::Error::FromSqlConversionFailure(
            i,
            rusqlite::types::Type::Text,
            Box::<dyn std::error::Error + Send + Sync>::from(what),
        )
    };
    let request: String = r.get(4)?;
    let ctx: String = r.get(5)?;
    let state: String = r.get(6)?;
    Ok(OrderRow {
        id: r.get(0)?,
        message_id: r.get(1)?,
        email: r.get(2)?,
        mail_hash: r.get(3)?,
        request: serde_json::from_str(&request).map_err(|e| bad(4, e.to_string()))?,
        ctx: serde_json::from_str(&ctx).map_err(|e| bad(5, e.to_string()))?,
        state: State::parse(&state).ok_or_else(|| bad(6, format!("unknown state {state}")))?,
        code: r.get(7)?,
        step: r.get(8)?,
        created_at: r.get::<_, i64>(9)?.max(0) as u64,
    })
}

const ORDER_COLUMNS: &str =
    "id, message_id, email, mail_hash, request, ctx, state, code, step, created_at";

/// Orders to work on, oldest first.
pub(crate) fn open_orders(conn: &Connection) -> rusqlite::Result<Vec<OrderRow>> {
    let mut s = conn.prepare_cached(&format!(
        "SELECT {ORDER_COLUMNS} FROM wallet_orders WHERE state IN ('new', 'acting') ORDER BY id"
    ))?;
    let rows = s.query_map([], order_from_row)?;
    rows.collect()
}

/// The order waiting for confirmation that `code` or a reply's thread names.
pub(crate) fn awaiting(
    conn: &Connection,
    email: &str,
    code: Option<&str>,
    thread: &[String],
) -> rusqlite::Result<Option<OrderRow>> {
    let mut s = conn.prepare_cached(&format!(
        "SELECT {ORDER_COLUMNS}, reply_msgid FROM wallet_orders
         WHERE email = ?1 AND state = 'awaiting-confirm' ORDER BY id DESC"
    ))?;
    let rows = s.query_map(params![email], |r| {
        Ok((order_from_row(r)?, r.get::<_, Option<String>>(10)?))
    })?;
    for row in rows {
        let (order, reply_msgid) = row?;
        let named = match code {
            Some(code) => order.code.as_deref() == Some(code),
            None => reply_msgid.is_some_and(|m| thread.contains(&m)),
        };
        if named {
            return Ok(Some(order));
        }
    }
    Ok(None)
}

/// Moves an order on.
pub(crate) fn set_state(
    conn: &Connection,
    id: i64,
    state: State,
    step: Option<&str>,
    tx_hash: Option<&str>,
    outcome: Option<&str>,
    now: u64,
) -> rusqlite::Result<()> {
    conn.execute(
        "UPDATE wallet_orders SET state = ?2, step = COALESCE(?3, step), tx_hash = COALESCE(?4, tx_hash),
           outcome = COALESCE(?5, outcome), updated_at = ?6 WHERE id = ?1",
        params![id, state.as_str(), step, tx_hash, outcome, now as i64],
    )?;
    Ok(())
}

/// A PAY waits for its confirmation code; the request is replaced by what was planned
/// (the sealed payment), so a CONFIRM carries out exactly what the reply said.
pub(crate) fn await_confirm(
    conn: &Connection,
    id: i64,
    request: &Request,
    code: &str,
    reply_msgid: &str,
    now: u64,
) -> rusqlite::Result<()> {
    conn.execute(
        "UPDATE wallet_orders SET state = 'awaiting-confirm', request = ?2, code = ?3, reply_msgid = ?4, updated_at = ?5
         WHERE id = ?1",
        params![
            id,
            serde_json::to_string(request).expect("serializable"),
            code,
            reply_msgid,
            now as i64
        ],
    )?;
    Ok(())
}

/// Replaces an order's request (a CONFIRM takes over the confirmed PAY; a carried-out
/// claim forgets its link).
pub(crate) fn set_request(conn: &Connection, id: i64, request: &Request) -> rusqlite::Result<()> {
    conn.execute(
        "UPDATE wallet_orders SET request = ?2 WHERE id = ?1",
        params![id, serde_json::to_string(request).expect("serializable")],
    )?;
    Ok(())
}

pub(crate) fn account_of(conn: &Connection, email: &str) -> rusqlite::Result<Option<AccountRow>> {
    conn.prepare_cached(
        "SELECT email, account, salt, opened_tx FROM wallet_accounts WHERE email = ?1",
    )?
    .query_row(params![email], |r| {
        Ok(AccountRow {
            email: r.get(0)?,
            account: r.get(1)?,
            salt: r.get(2)?,
            opened_tx: r.get(3)?,
        })
    })
    .optional()
}

/// Registers a mailbox's account before it is opened on chain (so a crash keeps the
/// same salt, and so the same account id). An existing row wins.
pub(crate) fn register(
    conn: &Connection,
    email: &str,
    account: &str,
    salt: &str,
    now: u64,
) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT OR IGNORE INTO wallet_accounts (email, account, salt, created_at) VALUES (?1, ?2, ?3, ?4)",
        params![email, account, salt, now as i64],
    )?;
    Ok(())
}

pub(crate) fn opened(conn: &Connection, email: &str, tx_hash: &str) -> rusqlite::Result<()> {
    conn.execute(
        "UPDATE wallet_accounts SET opened_tx = ?2 WHERE email = ?1",
        params![email, tx_hash],
    )?;
    Ok(())
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn movement(
    conn: &Connection,
    email: &str,
    order_id: Option<i64>,
    direction: &str,
    what: &str,
    amount: u128,
    party: &str,
    tx_hash: Option<&str>,
    now: u64,
) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT INTO wallet_movements (email, order_id, direction, what, amount, party, tx_hash, at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            email,
            order_id,
            direction,
            what,
            amount.to_string(),
            party,
            tx_hash,
            now as i64
        ],
    )?;
    Ok(())
}

pub(crate) fn recent_movements(
    conn: &Connection,
    email: &str,
    limit: usize,
) -> rusqlite::Result<Vec<Movement>> {
    let mut s = conn.prepare_cached(
        "SELECT direction, what, amount, party, tx_hash, at FROM wallet_movements
         WHERE email = ?1 ORDER BY id DESC LIMIT ?2",
    )?;
    let rows = s.query_map(params![email, limit as i64], |r| {
        Ok(Movement {
            direction: r.get(0)?,
            what: r.get(1)?,
            amount: r.get::<_, String>(2)?.parse().unwrap_or(0),
            party: r.get(3)?,
            tx_hash: r.get(4)?,
            at: r.get::<_, i64>(5)?.max(0) as u64,
        })
    })?;
    rows.collect()
}

/// Queues a mail in the journal's outbox, under the order's message row.
pub(crate) fn queue_mail(
    conn: &Connection,
    message_id: i64,
    mail: &crate::reply::OutgoingMail,
    now: u64,
) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT INTO outbox (message_id, mail_from, rcpt, bytes, state, created_at)
         VALUES (?1, ?2, ?3, ?4, 'pending', ?5)",
        params![
            message_id,
            mail.mail_from,
            mail.rcpt,
            mail.bytes,
            now as i64
        ],
    )?;
    Ok(())
}
