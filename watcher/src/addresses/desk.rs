//! The desk: reads the address spool, forwards mail for names, and answers the
//! BiSMTP blocks sent to `broker@` (REGISTER, RESOLVE, RESOLVED, RECEIPT).

use super::*;
pub(super) use crate::service::unix_now;

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
    pub(super) settings: DeskSettings,
    pub(super) book: Arc<AddressBook>,
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
    pub(super) fn forward_text(
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
