//! The address book (`addresses.sqlite`) and the routes the ingress asks at `RCPT`.

use super::*;

/// The addresses registered at this broker, and its BiSMTP bookkeeping.
#[derive(Debug)]
pub struct AddressBook {
    pub(super) path: PathBuf,
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
