//! Spring Mail watcher: reads claim mail, proves who sent it, verifies the claim
//! against the chain, releases the escrowed deposit, and replies in the same thread.
//!
//! One module per stage, each taking the previous stage's typed output:
//!
//! | stage | module | output |
//! |---|---|---|
//! | 1 ingest | [`ingest`] | [`ingest::FetchedMail`] from each door (IMAP, SMTP ingress, a directory, memory) |
//! | 2 authenticate | [`authenticate`] | [`authenticate::AuthOutcome`]: DKIM-proven sender, or dropped |
//! | 3 verify | [`verify`] | [`verify::Verdict`]: a [`verify::ClaimPlan`], or a refusal with a sentence |
//! | 1–3 as run | `judge` | a [`transition::Decision`] per message, recorded with the door's checkpoint |
//! | 4 submit | [`submit`] | [`submit::SubmitOutcome`]: claimed with a transaction id, or refused |
//! | 4 as run | `settle` | a [`transition::Settlement`] per finished claim |
//! | 5 reply, filing | [`reply`], `outbox` | a DKIM-signed, threaded reply through a [`reply::ReplySink`]; the message filed |
//! | beside 3–4 | [`wallet`] | mailbox wallet orders (claim into an account, BALANCE, PAY, CONFIRM, BIND) recorded at judging, carried out one at a time, answered |
//!
//! Every change to the journal is a [`transition::Transition`], written by one
//! function, [`transition::apply`]. The [`journal`] records each before its effect, on
//! a thread of its own with group commit; [`deposits`] keeps the deposits naming this
//! watcher, indexed from the escrow's logs, in the same file; [`service::Watcher`]
//! runs the pipeline; [`config`] reads the TOML file; [`metrics`] counts; [`http`]
//! serves `/healthz`, `/metrics` and the claim page with its API. Beside the pipeline,
//! [`addresses`] runs the broker's own names (`<q-address>@domain`, aliases) for the
//! SMTP ingress: registrations, forwarding, and the BiSMTP exchange with other brokers,
//! with [`receipt`] checking a peer's RECEIPT on chain.
//!
//! Library users (the CLI's `springmail watch` and `springmail demo`) build a
//! [`service::WatcherParts`] — by hand, or from a file with
//! [`config::RawConfig::load`] → [`config::Settings`] → [`config::Settings::resolve`] —
//! and call [`service::Watcher::run_once`] or [`service::Watcher::run`].
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod addresses;
pub mod authenticate;
pub mod config;
pub mod crash;
pub mod deposits;
pub mod dkim_domain;
pub mod http;
pub mod ingest;
pub mod journal;
mod judge;
pub mod metrics;
mod outbox;
mod pinned_file;
pub mod receipt;
pub mod reply;
pub mod service;
mod settle;
pub mod smtp_ingress;
pub mod submit;
pub mod transition;
pub mod verify;
pub mod wallet;

#[cfg(feature = "testkit")]
#[doc(hidden)]
pub mod testkit;

pub use authenticate::{AuthOutcome, DkimKeys, DropReason, MailAuthenticator, PinnedRecords};
pub use dkim_domain::DkimDomain;
pub use ingest::{DirSource, MailSource, MemorySource};
pub use journal::{Folder, Journal, OutcomeKind};
pub use reply::{DirSink, MemorySink, ReplySink, SmtpSink};
pub use service::{RunReport, Watcher, WatcherError, WatcherParts};
pub use verify::{RefusalReason, Verdict};
