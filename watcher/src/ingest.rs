//! Stage 1: get mail in.
//!
//! A [`MailSource`] hands out messages above a durable `(UIDVALIDITY, UID)`
//! checkpoint, oldest first, without marking them read (`BODY.PEEK[]` over IMAP),
//! and files a message in `Processed` or `Rejected` only when the pipeline says its
//! outcome is committed. Sources:
//!
//! * [`imap::ImapSource`]: async-imap over tokio-rustls (plain TCP only to a loopback
//!   address), IDLE with a polling fallback, reconnect with backoff.
//! * [`DirSource`]: a directory of `.eml` files (the demo, local runs).
//! * [`MemorySource`]: in memory, for tests.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::Notify;

use crate::journal::{Checkpoint, Folder, MailKey};

pub mod imap;

/// A failure of the mail source.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// The server could not be reached or dropped the connection; reconnect later.
    #[error("mail server {server}: {reason}")]
    Connection {
        /// Which server.
        server: String,
        /// What happened.
        reason: String,
    },
    /// Login refused: a configuration problem, not retried quickly.
    #[error("mail server {server} refused the login for {user}: {reason}")]
    Login {
        /// Which server.
        server: String,
        /// The user.
        user: String,
        /// What the server said.
        reason: String,
    },
    /// The server answered something unexpected.
    #[error("mail server {server}: {reason}")]
    Protocol {
        /// Which server.
        server: String,
        /// What happened.
        reason: String,
    },
    /// Local file trouble (directory source).
    #[error("{path}: {reason}")]
    Io {
        /// The path.
        path: PathBuf,
        /// What happened.
        reason: String,
    },
}

impl IngestError {
    /// True when retrying (after a backoff) may succeed.
    pub fn is_transient(&self) -> bool {
        !matches!(self, IngestError::Login { .. })
    }
}

/// A fetched message.
#[derive(Clone, PartialEq, Eq)]
pub struct FetchedMail {
    /// Where it is.
    pub key: MailKey,
    /// Its size as the server reports it.
    pub size: u64,
    /// The bytes, or `None` when the message is larger than the fetch limit.
    pub raw: Option<Vec<u8>>,
}

impl std::fmt::Debug for FetchedMail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FetchedMail")
            .field("key", &self.key)
            .field("size", &self.size)
            .finish_non_exhaustive()
    }
}

/// How much one fetch may bring.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FetchLimits {
    /// At most this many messages.
    pub max_messages: usize,
    /// Bodies of larger messages are not fetched.
    pub max_bytes: u64,
}

/// The result of a fetch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchBatch {
    /// The mailbox's UIDVALIDITY now.
    pub uid_validity: u32,
    /// New messages, UID ascending.
    pub mails: Vec<FetchedMail>,
}

/// Where mail comes from. `fetch_new` and `file` are required; `wait` defaults to
/// sleeping until `wake` fires or the time is up (polling).
#[async_trait]
pub trait MailSource: Send + Sync {
    /// The mailbox read (the checkpoint's key).
    fn mailbox(&self) -> &str;

    /// A short description for logs (no passwords).
    fn describe(&self) -> String;

    /// Messages above the checkpoint (all of them when `after` has another
    /// UIDVALIDITY, or is `None`), UID ascending, at most `limits.max_messages`.
    async fn fetch_new(
        &mut self,
        after: Option<Checkpoint>,
        limits: FetchLimits,
    ) -> Result<FetchBatch, IngestError>;

    /// Moves a handled message into `folder` (created if missing). A message that is
    /// no longer there (already moved, or the mailbox was reset) is not an error.
    async fn file(&mut self, key: &MailKey, folder: Folder) -> Result<(), IngestError>;

    /// Waits until new mail may have arrived, `wake` is notified, or `max` passed.
    async fn wait(&mut self, max: Duration, wake: &Notify) -> Result<(), IngestError> {
        tokio::select! {
            _ = tokio::time::sleep(max) => {}
            _ = wake.notified() => {}
        }
        Ok(())
    }
}

#[derive(Debug, Default)]
struct MemoryState {
    uid_validity: u32,
    next_uid: u32,
    inbox: BTreeMap<u32, Vec<u8>>,
    folders: BTreeMap<String, Vec<Vec<u8>>>,
}

/// An in-memory mailbox; clones share it, so a test keeps one to deliver and inspect.
#[derive(Debug, Clone)]
pub struct MemorySource {
    state: Arc<Mutex<MemoryState>>,
    arrived: Arc<Notify>,
}

impl Default for MemorySource {
    fn default() -> Self {
        Self::new()
    }
}

impl MemorySource {
    /// An empty INBOX with UIDVALIDITY 1.
    pub fn new() -> Self {
        MemorySource {
            state: Arc::new(Mutex::new(MemoryState {
                uid_validity: 1,
                next_uid: 1,
                ..Default::default()
            })),
            arrived: Arc::new(Notify::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, MemoryState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Delivers a message; returns its UID.
    pub fn deliver(&self, raw: impl Into<Vec<u8>>) -> u32 {
        let uid = {
            let mut st = self.lock();
            let uid = st.next_uid;
            st.next_uid += 1;
            st.inbox.insert(uid, raw.into());
            uid
        };
        self.arrived.notify_one();
        uid
    }

    /// Messages still in the INBOX.
    pub fn inbox_len(&self) -> usize {
        self.lock().inbox.len()
    }

    /// Messages filed in `folder`.
    pub fn folder(&self, folder: Folder) -> Vec<Vec<u8>> {
        self.lock()
            .folders
            .get(folder.as_str())
            .cloned()
            .unwrap_or_default()
    }

    /// Simulates a mailbox rebuild: a new UIDVALIDITY and new UIDs for what is left.
    pub fn reset_uid_validity(&self) {
        let mut st = self.lock();
        st.uid_validity += 1;
        let old = std::mem::take(&mut st.inbox);
        st.next_uid = 1;
        for (_, raw) in old {
            let uid = st.next_uid;
            st.next_uid += 1;
            st.inbox.insert(uid, raw);
        }
    }
}

#[async_trait]
impl MailSource for MemorySource {
    fn mailbox(&self) -> &str {
        "INBOX"
    }

    fn describe(&self) -> String {
        "memory mailbox".into()
    }

    async fn fetch_new(
        &mut self,
        after: Option<Checkpoint>,
        limits: FetchLimits,
    ) -> Result<FetchBatch, IngestError> {
        let st = self.lock();
        let from = match after {
            Some(cp) if cp.uid_validity == st.uid_validity => cp.last_uid,
            _ => 0,
        };
        let mails = st
            .inbox
            .range(from + 1..)
            .take(limits.max_messages)
            .map(|(uid, raw)| FetchedMail {
                key: MailKey {
                    mailbox: "INBOX".into(),
                    uid_validity: st.uid_validity,
                    uid: *uid,
                },
                size: raw.len() as u64,
                raw: (raw.len() as u64 <= limits.max_bytes).then(|| raw.clone()),
            })
            .collect();
        Ok(FetchBatch {
            uid_validity: st.uid_validity,
            mails,
        })
    }

    async fn file(&mut self, key: &MailKey, folder: Folder) -> Result<(), IngestError> {
        let mut st = self.lock();
        if key.uid_validity != st.uid_validity {
            return Ok(());
        }
        if let Some(raw) = st.inbox.remove(&key.uid) {
            st.folders
                .entry(folder.as_str().to_string())
                .or_default()
                .push(raw);
        }
        Ok(())
    }

    async fn wait(&mut self, max: Duration, wake: &Notify) -> Result<(), IngestError> {
        let arrived = self.arrived.clone();
        tokio::select! {
            _ = tokio::time::sleep(max) => {}
            _ = wake.notified() => {}
            _ = arrived.notified() => {}
        }
        Ok(())
    }
}

/// A directory of `.eml` files: new mail in `<root>/INBOX/`, handled mail moved to
/// `<root>/Processed/` and `<root>/Rejected/`. UIDs are assigned in file-name order
/// the first time a file is seen and kept in `<root>/.uids`, so they are stable
/// across restarts.
#[derive(Debug)]
pub struct DirSource {
    root: PathBuf,
    uid_validity: u32,
    names: BTreeMap<u32, String>,
    next_uid: u32,
}

impl DirSource {
    /// Opens (creating) the directory layout under `root`.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self, IngestError> {
        let root = root.into();
        let io = |path: &Path, e: std::io::Error| IngestError::Io {
            path: path.to_path_buf(),
            reason: e.to_string(),
        };
        for sub in ["INBOX", "Processed", "Rejected"] {
            std::fs::create_dir_all(root.join(sub)).map_err(|e| io(&root.join(sub), e))?;
        }
        let validity_path = root.join(".uidvalidity");
        let uid_validity = match std::fs::read_to_string(&validity_path) {
            Ok(s) => s.trim().parse().unwrap_or(1),
            Err(_) => {
                let v = (std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or(1)
                    & 0x7fff_ffff) as u32;
                std::fs::write(&validity_path, format!("{v}\n"))
                    .map_err(|e| io(&validity_path, e))?;
                v
            }
        };
        let mut names = BTreeMap::new();
        if let Ok(text) = std::fs::read_to_string(root.join(".uids")) {
            for line in text.lines() {
                if let Some((uid, name)) = line.split_once(' ') {
                    if let Ok(uid) = uid.parse::<u32>() {
                        names.insert(uid, name.to_string());
                    }
                }
            }
        }
        let next_uid = names.keys().next_back().map_or(1, |u| u + 1);
        Ok(DirSource {
            root,
            uid_validity,
            names,
            next_uid,
        })
    }

    /// The directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn assign_new_uids(&mut self) -> Result<(), IngestError> {
        let inbox = self.root.join("INBOX");
        let io = |e: std::io::Error| IngestError::Io {
            path: inbox.clone(),
            reason: e.to_string(),
        };
        let mut files: Vec<String> = std::fs::read_dir(&inbox)
            .map_err(io)?
            .filter_map(|e| e.ok())
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| n.ends_with(".eml") && !n.starts_with('.'))
            .collect();
        files.sort();
        let known: std::collections::HashSet<&String> = self.names.values().collect();
        let fresh: Vec<String> = files.into_iter().filter(|n| !known.contains(n)).collect();
        if fresh.is_empty() {
            return Ok(());
        }
        let mut lines = String::new();
        for name in fresh {
            lines.push_str(&format!("{} {}\n", self.next_uid, name));
            self.names.insert(self.next_uid, name);
            self.next_uid += 1;
        }
        use std::io::Write;
        let path = self.root.join(".uids");
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| IngestError::Io {
                path: path.clone(),
                reason: e.to_string(),
            })?;
        f.write_all(lines.as_bytes())
            .and_then(|_| f.sync_all())
            .map_err(|e| IngestError::Io {
                path,
                reason: e.to_string(),
            })
    }
}

#[async_trait]
impl MailSource for DirSource {
    fn mailbox(&self) -> &str {
        "INBOX"
    }

    fn describe(&self) -> String {
        format!("directory {}", self.root.display())
    }

    async fn fetch_new(
        &mut self,
        after: Option<Checkpoint>,
        limits: FetchLimits,
    ) -> Result<FetchBatch, IngestError> {
        self.assign_new_uids()?;
        let from = match after {
            Some(cp) if cp.uid_validity == self.uid_validity => cp.last_uid,
            _ => 0,
        };
        let mut mails = Vec::new();
        for (uid, name) in self.names.range(from + 1..) {
            if mails.len() >= limits.max_messages {
                break;
            }
            let path = self.root.join("INBOX").join(name);
            let Ok(meta) = std::fs::metadata(&path) else {
                continue;
            };
            let size = meta.len();
            let raw = if size <= limits.max_bytes {
                Some(std::fs::read(&path).map_err(|e| IngestError::Io {
                    path: path.clone(),
                    reason: e.to_string(),
                })?)
            } else {
                None
            };
            mails.push(FetchedMail {
                key: MailKey {
                    mailbox: "INBOX".into(),
                    uid_validity: self.uid_validity,
                    uid: *uid,
                },
                size,
                raw,
            });
        }
        Ok(FetchBatch {
            uid_validity: self.uid_validity,
            mails,
        })
    }

    async fn file(&mut self, key: &MailKey, folder: Folder) -> Result<(), IngestError> {
        if key.uid_validity != self.uid_validity {
            return Ok(());
        }
        let Some(name) = self.names.get(&key.uid) else {
            return Ok(());
        };
        let from = self.root.join("INBOX").join(name);
        let to = self.root.join(folder.as_str()).join(name);
        match std::fs::rename(&from, &to) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(IngestError::Io {
                path: from,
                reason: e.to_string(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: FetchLimits = FetchLimits {
        max_messages: 100,
        max_bytes: 10,
    };

    #[tokio::test]
    async fn memory_source_fetches_above_the_checkpoint_and_files() {
        let mut src = MemorySource::new();
        src.deliver(b"one".to_vec());
        src.deliver(b"two".to_vec());
        src.deliver(vec![b'x'; 11]);
        let batch = src.fetch_new(None, LIMITS).await.unwrap();
        assert_eq!(batch.mails.len(), 3);
        assert!(batch.mails[2].raw.is_none(), "too large to fetch");
        let cp = Checkpoint {
            uid_validity: batch.uid_validity,
            last_uid: 2,
        };
        let batch = src.fetch_new(Some(cp), LIMITS).await.unwrap();
        assert_eq!(
            batch.mails.iter().map(|m| m.key.uid).collect::<Vec<_>>(),
            vec![3]
        );
        src.file(&batch.mails[0].key, Folder::Rejected)
            .await
            .unwrap();
        assert_eq!(src.inbox_len(), 2);
        assert_eq!(src.folder(Folder::Rejected).len(), 1);
        // Filing twice is harmless.
        src.file(&batch.mails[0].key, Folder::Rejected)
            .await
            .unwrap();
        // A new UIDVALIDITY starts over.
        src.reset_uid_validity();
        let batch = src.fetch_new(Some(cp), LIMITS).await.unwrap();
        assert_eq!(batch.mails.len(), 2);
    }

    #[tokio::test]
    async fn dir_source_keeps_uids_across_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let mut src = DirSource::open(dir.path()).unwrap();
        std::fs::write(dir.path().join("INBOX/b.eml"), b"b").unwrap();
        std::fs::write(dir.path().join("INBOX/a.eml"), b"a").unwrap();
        let batch = src.fetch_new(None, LIMITS).await.unwrap();
        assert_eq!(
            batch
                .mails
                .iter()
                .map(|m| m.raw.clone().unwrap())
                .collect::<Vec<_>>(),
            vec![b"a".to_vec(), b"b".to_vec()]
        );
        src.file(&batch.mails[0].key, Folder::Processed)
            .await
            .unwrap();
        assert!(dir.path().join("Processed/a.eml").exists());
        std::fs::write(dir.path().join("INBOX/0.eml"), b"0").unwrap();
        let mut src = DirSource::open(dir.path()).unwrap();
        let cp = Checkpoint {
            uid_validity: batch.uid_validity,
            last_uid: 2,
        };
        let batch = src.fetch_new(Some(cp), LIMITS).await.unwrap();
        assert_eq!(batch.mails.len(), 1);
        assert_eq!(batch.mails[0].key.uid, 3);
        assert_eq!(batch.mails[0].raw.as_deref(), Some(&b"0"[..]));
    }
}
