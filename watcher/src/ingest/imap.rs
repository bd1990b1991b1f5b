//! IMAP source: async-imap over tokio-rustls.
//!
//! * TLS from the first byte (IMAPS, port 993) with the webpki root certificates;
//!   plain TCP only when the host is a loopback address (checked here and in the
//!   configuration).
//! * New mail is found with `UID SEARCH UID n:*` above the checkpoint, sized with
//!   `RFC822.SIZE` first so oversized mail is never downloaded, and read with
//!   `BODY.PEEK[]` (the `\Seen` flag is not set: a message the watcher failed on
//!   stays new for a person looking at the mailbox).
//! * Handled mail is moved with `UID MOVE` (RFC 6851) or copy + `\Deleted` +
//!   expunge where MOVE is missing, into folders created on first use.
//! * Waiting uses IDLE where the server offers it, else polling; any error drops the
//!   connection and the next call reconnects (the pipeline backs off between tries).
//!   A server announces new mail once, in the untagged `EXISTS` that may come with
//!   the answer to any command (a `UID MOVE`, a `FETCH`); such an announcement made
//!   after the last search ends the next wait at once instead of being dropped, or
//!   the message would wait for the next poll.

use std::collections::HashSet;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use async_trait::async_trait;
use futures::TryStreamExt;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tracing::{debug, info};

use super::{FetchBatch, FetchLimits, FetchedMail, IngestError, MailSource};
use crate::journal::{Checkpoint, Folder, MailKey};

/// Transport security of the IMAP connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImapSecurity {
    /// Implicit TLS (IMAPS).
    Tls,
    /// Plain TCP: only to a loopback address.
    Plain,
}

/// How to reach the mailbox.
#[derive(Clone, PartialEq, Eq)]
pub struct ImapSettings {
    /// Server host name (the TLS server name) or address.
    pub host: String,
    /// Port (993 for IMAPS).
    pub port: u16,
    /// TLS or plain.
    pub security: ImapSecurity,
    /// Login.
    pub user: String,
    /// Password (never logged).
    pub password: String,
    /// The mailbox to read, usually `INBOX`.
    pub mailbox: String,
    /// Use IDLE when the server offers it.
    pub idle: bool,
    /// Connect and command timeout.
    pub timeout: Duration,
}

impl std::fmt::Debug for ImapSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImapSettings")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("security", &self.security)
            .field("user", &self.user)
            .field("password", &"<redacted>")
            .field("mailbox", &self.mailbox)
            .finish()
    }
}

/// True when `host` is a loopback address or `localhost`.
pub fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// A TCP or TLS stream.
#[derive(Debug)]
pub enum ImapStream {
    /// Plain TCP (loopback only).
    Plain(TcpStream),
    /// TLS.
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl AsyncRead for ImapStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            ImapStream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            ImapStream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for ImapStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            ImapStream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            ImapStream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            ImapStream::Plain(s) => Pin::new(s).poll_flush(cx),
            ImapStream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            ImapStream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            ImapStream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

type Session = async_imap::Session<ImapStream>;

/// Reads one mailbox over IMAP.
pub struct ImapSource {
    settings: ImapSettings,
    session: Option<Session>,
    uid_validity: u32,
    can_idle: bool,
    can_move: bool,
    folders: HashSet<String>,
    /// The server announced new mail (`EXISTS`) after the last search began.
    new_mail: bool,
}

impl std::fmt::Debug for ImapSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImapSource")
            .field("settings", &self.settings)
            .finish()
    }
}

impl ImapSource {
    /// A source for these settings; connects on first use. Refuses plain TCP to a
    /// non-loopback host.
    pub fn new(settings: ImapSettings) -> Result<Self, IngestError> {
        if settings.security == ImapSecurity::Plain && !is_loopback(&settings.host) {
            return Err(IngestError::Protocol {
                server: settings.host.clone(),
                reason: "plain (unencrypted) IMAP is only allowed to a loopback address; use tls"
                    .into(),
            });
        }
        Ok(ImapSource {
            settings,
            session: None,
            uid_validity: 0,
            can_idle: false,
            can_move: false,
            folders: HashSet::new(),
            new_mail: false,
        })
    }

    fn server(&self) -> String {
        format!("{}:{}", self.settings.host, self.settings.port)
    }

    fn conn_err(&self, reason: impl std::fmt::Display) -> IngestError {
        IngestError::Connection {
            server: self.server(),
            reason: reason.to_string(),
        }
    }

    async fn connect(&mut self) -> Result<(), IngestError> {
        let s = &self.settings;
        let tcp = tokio::time::timeout(s.timeout, TcpStream::connect((s.host.as_str(), s.port)))
            .await
            .map_err(|_| self.conn_err("connect timed out"))?
            .map_err(|e| self.conn_err(format!("connect: {e}")))?;
        let _ = tcp.set_nodelay(true);
        let stream = match s.security {
            ImapSecurity::Plain => ImapStream::Plain(tcp),
            ImapSecurity::Tls => {
                let roots = tokio_rustls::rustls::RootCertStore {
                    roots: webpki_roots::TLS_SERVER_ROOTS.into(),
                };
                let config = tokio_rustls::rustls::ClientConfig::builder_with_provider(Arc::new(
                    tokio_rustls::rustls::crypto::ring::default_provider(),
                ))
                .with_safe_default_protocol_versions()
                .map_err(|e| self.conn_err(format!("TLS setup: {e}")))?
                .with_root_certificates(roots)
                .with_no_client_auth();
                let name = rustls_pki_types::ServerName::try_from(s.host.clone())
                    .map_err(|e| self.conn_err(format!("invalid TLS server name: {e}")))?;
                let tls = tokio::time::timeout(
                    s.timeout,
                    tokio_rustls::TlsConnector::from(Arc::new(config)).connect(name, tcp),
                )
                .await
                .map_err(|_| self.conn_err("TLS handshake timed out"))?
                .map_err(|e| self.conn_err(format!("TLS: {e}")))?;
                ImapStream::Tls(Box::new(tls))
            }
        };
        let mut client = async_imap::Client::new(stream);
        let greeting = tokio::time::timeout(s.timeout, client.read_response())
            .await
            .map_err(|_| self.conn_err("no greeting"))?
            .map_err(|e| self.conn_err(format!("greeting: {e}")))?;
        if greeting.is_none() {
            return Err(self.conn_err("closed before the greeting"));
        }
        let mut session =
            match tokio::time::timeout(s.timeout, client.login(&s.user, &s.password)).await {
                Err(_) => return Err(self.conn_err("login timed out")),
                Ok(Err((e, _))) => {
                    return Err(IngestError::Login {
                        server: self.server(),
                        user: s.user.clone(),
                        reason: e.to_string(),
                    })
                }
                Ok(Ok(session)) => session,
            };
        let caps = session
            .capabilities()
            .await
            .map_err(|e| self.conn_err(format!("CAPABILITY: {e}")))?;
        self.can_idle = caps.has_str("IDLE");
        self.can_move = caps.has_str("MOVE");
        let mbox = session
            .select(&s.mailbox)
            .await
            .map_err(|e| self.conn_err(format!("SELECT {}: {e}", s.mailbox)))?;
        self.uid_validity = mbox.uid_validity.unwrap_or(0);
        info!(server = %self.server(), idle = self.can_idle, r#move = self.can_move, "connected to the mailbox");
        self.session = Some(session);
        Ok(())
    }

    async fn session(&mut self) -> Result<&mut Session, IngestError> {
        if self.session.is_none() {
            self.connect().await?;
        }
        Ok(self.session.as_mut().expect("connected above"))
    }

    /// Drops the responses no command asked for; true when one announced new mail.
    fn drain_unsolicited(session: &mut Session) -> bool {
        let mut new_mail = false;
        while let Ok(r) = session.unsolicited_responses.try_recv() {
            new_mail |= matches!(r, async_imap::types::UnsolicitedResponse::Exists(_));
        }
        new_mail
    }

    async fn fetch_inner(
        &mut self,
        after: Option<Checkpoint>,
        limits: FetchLimits,
    ) -> Result<FetchBatch, IngestError> {
        let server = self.server();
        let err = move |what: &str, e: async_imap::error::Error| IngestError::Connection {
            server: server.clone(),
            reason: format!("{what}: {e}"),
        };
        let mailbox = self.settings.mailbox.clone();
        let timeout = self.settings.timeout;
        // This search sees everything announced so far.
        self.new_mail = false;
        let session = self.session().await?;
        // Re-select: picks up new mail and a changed UIDVALIDITY.
        let mbox = session
            .select(&mailbox)
            .await
            .map_err(|e| err("SELECT", e))?;
        let uid_validity = mbox.uid_validity.unwrap_or(0);
        let from = match after {
            Some(cp) if cp.uid_validity == uid_validity => cp.last_uid,
            _ => 0,
        };
        let mut uids: Vec<u32> =
            tokio::time::timeout(timeout, session.uid_search(format!("UID {}:*", from + 1)))
                .await
                .map_err(|_| err("UID SEARCH", async_imap::error::Error::ConnectionLost))?
                .map_err(|e| err("UID SEARCH", e))?
                .into_iter()
                .filter(|u| *u > from)
                .collect();
        uids.sort_unstable();
        uids.truncate(limits.max_messages);
        let announced = Self::drain_unsolicited(session);
        if uids.is_empty() {
            self.new_mail |= announced;
            self.uid_validity = uid_validity;
            return Ok(FetchBatch {
                uid_validity,
                mails: Vec::new(),
            });
        }
        let set = uid_set(&uids);
        let sizes: Vec<(u32, u64)> = {
            let stream = session
                .uid_fetch(&set, "(UID RFC822.SIZE)")
                .await
                .map_err(|e| err("UID FETCH size", e))?;
            let fetches: Vec<_> = stream
                .try_collect()
                .await
                .map_err(|e| err("UID FETCH size", e))?;
            fetches
                .iter()
                .filter_map(|f| Some((f.uid?, u64::from(f.size.unwrap_or(0)))))
                .collect()
        };
        let small: Vec<u32> = sizes
            .iter()
            .filter(|(_, s)| *s <= limits.max_bytes)
            .map(|(u, _)| *u)
            .collect();
        let mut bodies = std::collections::HashMap::new();
        if !small.is_empty() {
            let stream = session
                .uid_fetch(uid_set(&small), "(UID BODY.PEEK[])")
                .await
                .map_err(|e| err("UID FETCH", e))?;
            let fetches: Vec<_> = stream
                .try_collect()
                .await
                .map_err(|e| err("UID FETCH", e))?;
            for f in &fetches {
                if let (Some(uid), Some(body)) = (f.uid, f.body()) {
                    bodies.insert(uid, body.to_vec());
                }
            }
        }
        let announced = announced | Self::drain_unsolicited(session);
        self.new_mail |= announced;
        let mut mails = Vec::with_capacity(sizes.len());
        for (uid, size) in sizes {
            let raw = bodies.remove(&uid);
            if raw.is_none() && size <= limits.max_bytes {
                // Expunged between the two fetches; it will not come back.
                continue;
            }
            mails.push(FetchedMail {
                key: MailKey {
                    mailbox: mailbox.clone(),
                    uid_validity,
                    uid,
                },
                size,
                raw,
            });
        }
        mails.sort_by_key(|m| m.key.uid);
        self.uid_validity = uid_validity;
        debug!(count = mails.len(), "fetched new mail");
        Ok(FetchBatch {
            uid_validity,
            mails,
        })
    }

    async fn file_inner(&mut self, key: &MailKey, folder: Folder) -> Result<(), IngestError> {
        let server = self.server();
        let err = move |what: &str, e: async_imap::error::Error| IngestError::Connection {
            server: server.clone(),
            reason: format!("{what}: {e}"),
        };
        let name = folder.as_str().to_string();
        let need_create = !self.folders.contains(&name);
        let can_move = self.can_move;
        let current_validity = self.uid_validity;
        let session = self.session().await?;
        if key.uid_validity != current_validity {
            // The mailbox was rebuilt; this UID means nothing now.
            return Ok(());
        }
        if need_create {
            // Fails harmlessly when the folder exists.
            let _ = session.create(&name).await;
        }
        let uid = key.uid.to_string();
        if can_move {
            session
                .uid_mv(&uid, &name)
                .await
                .map_err(|e| err("UID MOVE", e))?;
        } else {
            session
                .uid_copy(&uid, &name)
                .await
                .map_err(|e| err("UID COPY", e))?;
            let stream = session
                .uid_store(&uid, "+FLAGS.SILENT (\\Deleted)")
                .await
                .map_err(|e| err("UID STORE", e))?;
            let _: Vec<_> = stream
                .try_collect()
                .await
                .map_err(|e| err("UID STORE", e))?;
            let stream = session.expunge().await.map_err(|e| err("EXPUNGE", e))?;
            let _: Vec<_> = stream.try_collect().await.map_err(|e| err("EXPUNGE", e))?;
        }
        let announced = Self::drain_unsolicited(session);
        self.new_mail |= announced;
        self.folders.insert(name);
        Ok(())
    }

    async fn idle(&mut self, max: Duration, wake: &Notify) -> Result<(), IngestError> {
        let session = self.session.take().expect("connected");
        let mut handle = session.idle();
        handle
            .init()
            .await
            .map_err(|e| self.conn_err(format!("IDLE: {e}")))?;
        let outcome = {
            let (fut, stop) = handle.wait_with_timeout(max);
            tokio::pin!(fut);
            tokio::select! {
                r = &mut fut => r,
                _ = wake.notified() => {
                    drop(stop);
                    fut.await
                }
            }
        };
        let outcome = outcome.map_err(|e| self.conn_err(format!("IDLE: {e}")))?;
        debug!(?outcome, "IDLE ended");
        let mut session = handle
            .done()
            .await
            .map_err(|e| self.conn_err(format!("DONE: {e}")))?;
        self.new_mail |= Self::drain_unsolicited(&mut session);
        self.session = Some(session);
        Ok(())
    }
}

/// `1,3,5:9` from sorted UIDs.
fn uid_set(uids: &[u32]) -> String {
    let mut out = String::new();
    let mut i = 0;
    while i < uids.len() {
        let start = uids[i];
        let mut end = start;
        while i + 1 < uids.len() && uids[i + 1] == end + 1 {
            i += 1;
            end = uids[i];
        }
        if !out.is_empty() {
            out.push(',');
        }
        if start == end {
            out.push_str(&start.to_string());
        } else {
            out.push_str(&format!("{start}:{end}"));
        }
        i += 1;
    }
    out
}

#[async_trait]
impl MailSource for ImapSource {
    fn mailbox(&self) -> &str {
        &self.settings.mailbox
    }

    fn describe(&self) -> String {
        format!(
            "imap{} {}@{}:{}/{}",
            if self.settings.security == ImapSecurity::Tls {
                "s"
            } else {
                " (plain, loopback)"
            },
            self.settings.user,
            self.settings.host,
            self.settings.port,
            self.settings.mailbox
        )
    }

    async fn fetch_new(
        &mut self,
        after: Option<Checkpoint>,
        limits: FetchLimits,
    ) -> Result<FetchBatch, IngestError> {
        let r = self.fetch_inner(after, limits).await;
        if r.is_err() {
            self.session = None;
        }
        r
    }

    async fn file(&mut self, key: &MailKey, folder: Folder) -> Result<(), IngestError> {
        let r = self.file_inner(key, folder).await;
        if r.is_err() {
            self.session = None;
        }
        r
    }

    async fn wait(&mut self, max: Duration, wake: &Notify) -> Result<(), IngestError> {
        if std::mem::take(&mut self.new_mail) {
            // Announced after the last search: fetch it now, not at the next poll.
            debug!("new mail was announced since the last search");
            return Ok(());
        }
        if self.session.is_none() {
            self.connect().await?;
        }
        if self.settings.idle && self.can_idle {
            let r = self.idle(max, wake).await;
            if r.is_err() {
                self.session = None;
            }
            return r;
        }
        tokio::select! {
            _ = tokio::time::sleep(max) => {}
            _ = wake.notified() => {}
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uid_sets_compress_runs() {
        assert_eq!(uid_set(&[1]), "1");
        assert_eq!(uid_set(&[1, 2, 3, 5, 7, 8]), "1:3,5,7:8");
    }

    #[test]
    fn plain_imap_is_loopback_only() {
        assert!(
            is_loopback("127.0.0.1")
                && is_loopback("::1")
                && is_loopback("localhost")
                && is_loopback("[::1]")
        );
        assert!(!is_loopback("imap.example.com") && !is_loopback("10.0.0.1"));
        let s = |host: &str| ImapSettings {
            host: host.into(),
            port: 143,
            security: ImapSecurity::Plain,
            user: "u".into(),
            password: "p".into(),
            mailbox: "INBOX".into(),
            idle: true,
            timeout: Duration::from_secs(5),
        };
        assert!(ImapSource::new(s("imap.example.com")).is_err());
        assert!(ImapSource::new(s("127.0.0.1")).is_ok());
        assert!(!format!("{:?}", s("x")).contains("\"p\""));
    }
}
