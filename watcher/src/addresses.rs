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

mod book;
mod desk;
mod names;
#[cfg(test)]
mod tests;

pub use book::*;
pub use desk::*;
pub use names::*;

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
