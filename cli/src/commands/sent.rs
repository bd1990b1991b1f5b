//! The sender's own record of single `send`s: one owner-only JSON file per deposit in
//! `sent/` beside the keystore. It is written before anything is broadcast (link and claim
//! key) and again once the transaction id is known, so no failure after that point can
//! lose the link; `springmail status` lists the records beside the chain's deposits.

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::config::Settings;
use crate::notify;

/// One deposit as the sender recorded it (holds the claim link: a secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SentRecord {
    /// `0x…` claim key.
    pub claim_key: String,
    /// The bare claim link (`sm1…`).
    pub link: String,
    /// The full link with the claim host, as printed.
    pub url: String,
    /// The normalized recipient.
    pub email: String,
    /// The amount as printed (`1.5 QTUM`).
    pub amount: String,
    /// Chain and escrow of the deposit.
    pub chain_id: u64,
    /// `0x…`.
    pub escrow: String,
    /// Unix seconds.
    pub expiry: u64,
    /// The deposit transaction, empty until it was broadcast.
    #[serde(default)]
    pub tx: String,
}

/// The folder of records: `sent/` beside the keystore.
fn dir(settings: &Settings) -> PathBuf {
    settings
        .keystore
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .join("sent")
}

fn path_for(settings: &Settings, claim_key: &str) -> PathBuf {
    dir(settings).join(format!("{}.json", claim_key.to_ascii_lowercase()))
}

/// Writes (or rewrites) a record, owner-only and atomically; returns its path.
pub fn save(settings: &Settings, rec: &SentRecord) -> anyhow::Result<PathBuf> {
    let path = path_for(settings, &rec.claim_key);
    let text = serde_json::to_vec_pretty(rec)?;
    notify::write_private(&path, &text)
        .with_context(|| format!("cannot write the send record {}", path.display()))?;
    Ok(path)
}

/// Every record (unreadable files are skipped with a warning).
pub fn load_all(settings: &Settings) -> Vec<SentRecord> {
    let Ok(entries) = std::fs::read_dir(dir(settings)) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for e in entries.flatten() {
        let p = e.path();
        if p.extension().and_then(|x| x.to_str()) != Some("json") {
            continue;
        }
        match std::fs::read(&p)
            .ok()
            .and_then(|t| serde_json::from_slice::<SentRecord>(&t).ok())
        {
            Some(r) => out.push(r),
            None => tracing::warn!(file = %p.display(), "unreadable send record skipped"),
        }
    }
    out
}
