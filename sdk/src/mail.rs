//! The two mails of a claim: the **notification** a sender's side mails to the recipient,
//! and the recipient's **claim mail** to the watcher (BiSMTP).
//!
//! * [`notification`]: `text/plain` and `text/html` alternatives saying who sent how
//!   much and until when, the `sm1.…` claim link, and the exact `springmail claim`
//!   command that claims it (in email mode with `--email` and `--watcher-email`, and how
//!   to reply with the CLAIM block it prints). The `https://…/claim#sm1.…` form is shown
//!   only when the sender names a claim page ([`Notification::claim_host`]). In email
//!   mode `Reply-To` is the watcher's mailbox.
//! * [`claim_mail`]: from the recipient to the watcher, `In-Reply-To`/`References` the
//!   notification, a `text/plain` body holding the rendered CLAIM block, and the same
//!   bytes again as an `application/bismtp` attachment (base64, so no mail system can
//!   rewrap them).
//!
//! # Threading without a stored Message-ID
//!
//! The notification's Message-ID is derived from the claim link and the recipient's
//! address, so whoever holds the link can thread a claim mail under it without having
//! kept the notification:
//!
//! ```text
//! <sm.{hex(keccak256("springmail/v1/notification" ‖ 0x00 ‖ payload)[..16])}@{domain}>
//! ```
//!
//! `payload` is the link's 76-byte payload (so the id is unguessable without the link
//! and cannot be matched with on-chain data) and `domain` is the recipient's normalized
//! domain (see [`crate::email::normalize`]).
//!
//! # Addresses in headers
//!
//! `From`, `To` and `Reply-To` are written here, not by `mail-builder` (which puts
//! RFC 2047 words inside quotes): an internationalized domain goes out as IDNA ASCII
//! (`bob@xn--bcher-kva.example`, also in the envelope), a display name that is not
//! plain ASCII as RFC 2047 encoded-words. A local part that is not ASCII is kept as
//! UTF-8 (RFC 6531/6532, SMTPUTF8): there is no ASCII form of it, and the SMTP client
//! asks the server for SMTPUTF8 (and fails clearly when it has none).
//! `docs/PROTOCOL-TEXT.md` records these rules.
//!
//! ```
//! use springmail_sdk::amount::{Amount, Asset};
//! use springmail_sdk::email::Salt;
//! use springmail_sdk::keys::ClaimSecret;
//! use springmail_sdk::link::ClaimLink;
//! use springmail_sdk::mail::{notification, Notification};
//! use springmail_sdk::Address;
//!
//! let link = ClaimLink {
//!     chain_id: 8890,
//!     escrow: Address::repeat_byte(0x11),
//!     secret: ClaimSecret::random(),
//!     salt: Salt::random(),
//! };
//! let amount = Amount::parse("1.5 QTUM", &Asset::qtum()).unwrap();
//! let mail = notification(&Notification {
//!     link: &link,
//!     from: "alice@example.org",
//!     sender_name: Some("Alice"),
//!     recipient: "bob@example.com",
//!     amount: &amount,
//!     expiry: 1_900_000_000,
//!     claim_host: None,
//!     watcher_email: None,
//!     note: None,
//!     date: None,
//! })
//! .unwrap();
//! assert!(mail.subject.contains("1.5 QTUM"));
//! assert!(String::from_utf8_lossy(&mail.bytes).contains("multipart/alternative"));
//! ```

use alloy::primitives::keccak256;
use mail_builder::headers::date::Date;
use mail_builder::MessageBuilder;

use crate::amount::Amount;
use crate::email::{self, EmailError};
use crate::link::ClaimLink;
use crate::markup::ClaimBlock;
use crate::qtum;

/// MIME type of the BiSMTP attachment.
pub const BISMTP_CONTENT_TYPE: &str = "application/bismtp";
/// File name of the BiSMTP attachment in a claim mail.
pub const BISMTP_FILE_NAME: &str = "claim.bismtp";
/// Domain-separation tag of the derived notification Message-ID.
const MESSAGE_ID_TAG: &[u8] = b"springmail/v1/notification";
/// Longest personal note carried in a notification, in bytes.
pub const MAX_NOTE_BYTES: usize = 2000;

/// Why a mail could not be built.
#[derive(Debug, thiserror::Error)]
pub enum MailError {
    /// An address is not a valid mailbox.
    #[error("the {role} address is invalid: {source}")]
    Address {
        /// `sender`, `recipient` or `watcher`.
        role: &'static str,
        /// The reason.
        source: EmailError,
    },
    /// A header value would break the message (a line break in a name or subject).
    #[error("the {field} must be one line without control characters")]
    HeaderValue {
        /// The header.
        field: &'static str,
    },
    /// The note is too long.
    #[error("the note is {got} bytes; at most {max} are allowed")]
    NoteTooLong {
        /// The limit.
        max: usize,
        /// The length.
        got: usize,
    },
    /// The claim block and the link are for different deposits.
    #[error("the claim block is for {what} {block}, but the link is for {link}")]
    Mismatch {
        /// `chain`, `escrow` or `claim key`.
        what: &'static str,
        /// The block's value.
        block: String,
        /// The link's value.
        link: String,
    },
    /// Writing the message failed.
    #[error("cannot write the message: {0}")]
    Write(#[from] std::io::Error),
}

/// A built message and its envelope.
#[derive(Clone, PartialEq, Eq)]
pub struct BuiltMail {
    /// The Message-ID, without angle brackets.
    pub message_id: String,
    /// The subject.
    pub subject: String,
    /// Envelope sender (the `From` mailbox).
    pub envelope_from: String,
    /// Envelope recipients.
    pub envelope_to: Vec<String>,
    /// The RFC 5322 message, CRLF line ends.
    pub bytes: Vec<u8>,
}

impl std::fmt::Debug for BuiltMail {
    /// The body holds the claim link (a secret) in a notification: not shown.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BuiltMail")
            .field("message_id", &self.message_id)
            .field("subject", &self.subject)
            .field("bytes", &self.bytes.len())
            .finish_non_exhaustive()
    }
}

/// What a notification says.
#[derive(Debug, Clone, Copy)]
pub struct Notification<'a> {
    /// The deposit's claim link (its secret goes into the mail: the recipient needs it).
    pub link: &'a ClaimLink,
    /// The sender's mailbox (`From`).
    pub from: &'a str,
    /// The sender's display name, if any.
    pub sender_name: Option<&'a str>,
    /// The recipient's address as the sender typed it (`To`).
    pub recipient: &'a str,
    /// What waits in escrow.
    pub amount: &'a Amount,
    /// The deposit's expiry, unix seconds.
    pub expiry: u64,
    /// Host (and optional path prefix) of a claim page serving `https://HOST/claim#sm1.…`.
    /// `None` while there is none: the mail then offers the `springmail claim` command
    /// only, never a link to a page that does not exist.
    pub claim_host: Option<&'a str>,
    /// Email mode: the watcher's mailbox, set as `Reply-To`. `None` in link mode.
    pub watcher_email: Option<&'a str>,
    /// A personal note from the sender, shown as plain text.
    pub note: Option<&'a str>,
    /// The `Date` header, unix seconds; `None` for now.
    pub date: Option<i64>,
}

/// What a claim mail carries.
#[derive(Debug, Clone, Copy)]
pub struct ClaimMail<'a> {
    /// The recipient's mailbox (`From`): the address the deposit was committed to.
    pub from: &'a str,
    /// The watcher's mailbox (`To`).
    pub watcher_email: &'a str,
    /// The signed CLAIM block.
    pub block: &'a ClaimBlock,
    /// The notification's Message-ID (no brackets), for `In-Reply-To` and `References`.
    pub in_reply_to: Option<&'a str>,
    /// The subject; `None` for `Spring Mail claim: pay <To>`.
    pub subject: Option<&'a str>,
    /// The `Date` header, unix seconds; `None` for now.
    pub date: Option<i64>,
}

fn one_line(field: &'static str, value: &str) -> Result<(), MailError> {
    if value.chars().any(|c| c.is_control()) {
        return Err(MailError::HeaderValue { field });
    }
    Ok(())
}

/// A checked mailbox in the form it takes in headers and the SMTP envelope: the local
/// part as given, the domain in IDNA ASCII when it is not ASCII already.
fn mailbox(role: &'static str, text: &str) -> Result<String, MailError> {
    let trimmed = text.trim();
    let normalized =
        email::normalize(trimmed).map_err(|source| MailError::Address { role, source })?;
    let (local, domain) = trimmed
        .rsplit_once('@')
        .expect("normalize refuses an address without '@'");
    if domain.is_ascii() {
        return Ok(trimmed.to_string());
    }
    let ascii_domain = normalized
        .rsplit_once('@')
        .map(|(_, d)| d)
        .expect("a normalized address has an '@'");
    Ok(format!("{local}@{ascii_domain}"))
}

/// The longest header line we write (RFC 5322 2.1.1 asks for at most 78 characters).
const HEADER_LINE: usize = 78;

/// A display name as an RFC 5322 `phrase`: bare atoms when it is plain ASCII words, a
/// quoted string for other ASCII, RFC 2047 `B` encoded-words (each at most 75
/// characters, split between characters) for anything else. Returned as words; the
/// caller folds between them.
fn phrase_words(name: &str) -> Vec<String> {
    const SPECIALS: &str = "()<>[]:;@\\,.\"";
    let plain = |w: &str| {
        !w.is_empty()
            && w.chars()
                .all(|c| c.is_ascii_graphic() && !SPECIALS.contains(c))
    };
    if name.is_ascii() {
        if name.split(' ').all(plain) {
            return name.split(' ').map(str::to_string).collect();
        }
        let escaped = name.replace('\\', "\\\\").replace('"', "\\\"");
        return vec![format!("\"{escaped}\"")];
    }
    use base64::Engine;
    // 75 - len("=?utf-8?B?" "?=") = 63 base64 characters: 45 bytes of UTF-8 at most.
    const CHUNK: usize = 45;
    let mut words = Vec::new();
    let mut start = 0;
    while start < name.len() {
        let mut end = (start + CHUNK).min(name.len());
        while !name.is_char_boundary(end) {
            end -= 1;
        }
        let b64 = base64::engine::general_purpose::STANDARD.encode(&name.as_bytes()[start..end]);
        words.push(format!("=?utf-8?B?{b64}?="));
        start = end;
    }
    words
}

/// One address header, `Name: [phrase] <addr>`, folded at word boundaries, CRLF ended.
fn address_header(header: &str, name: Option<&str>, addr: &str) -> String {
    let mut words = name.map(phrase_words).unwrap_or_default();
    words.push(format!("<{addr}>"));
    let mut out = format!("{header}:");
    let mut line = out.len();
    for word in words {
        if line + 1 + word.len() > HEADER_LINE && line > header.len() + 1 {
            out.push_str("\r\n");
            line = 0;
        }
        out.push(' ');
        out.push_str(&word);
        line += 1 + word.len();
    }
    out.push_str("\r\n");
    out
}

/// The message with the address headers in front (mail-builder writes the rest).
fn with_address_headers(headers: &[String], rest: Vec<u8>) -> Vec<u8> {
    let mut bytes: Vec<u8> = headers.concat().into_bytes();
    bytes.extend(rest);
    bytes
}

/// The Message-ID of the notification for `link` sent to `recipient` (no brackets).
pub fn notification_message_id(link: &ClaimLink, recipient: &str) -> Result<String, MailError> {
    let normalized = email::normalize(recipient).map_err(|source| MailError::Address {
        role: "recipient",
        source,
    })?;
    let domain = normalized
        .rsplit_once('@')
        .map(|(_, d)| d)
        .unwrap_or(&normalized);
    let mut preimage = Vec::with_capacity(MESSAGE_ID_TAG.len() + 1 + crate::link::PAYLOAD_LEN);
    preimage.extend_from_slice(MESSAGE_ID_TAG);
    preimage.push(0);
    preimage.extend_from_slice(&link.to_payload()[..]);
    let digest = keccak256(&preimage);
    zeroize::Zeroize::zeroize(&mut preimage);
    Ok(format!("sm.{}@{domain}", hex::encode(&digest[..16])))
}

/// The subject of a notification.
pub fn notification_subject(sender: &str, amount: &Amount) -> String {
    format!("{sender} sent you {amount}")
}

fn html_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn chain_name(chain_id: u64) -> String {
    match qtum::QtumNetwork::from_chain_id(chain_id) {
        Some(n) => format!("Qtum {n} (chain {chain_id})"),
        None => format!("chain {chain_id}"),
    }
}

/// A UTC date for people, as everywhere in Spring Mail: `2031-07-01 10:52:37 UTC`.
pub fn human_date(unix: u64) -> String {
    crate::date::utc_date(unix)
}

/// Builds the notification mail.
pub fn notification(n: &Notification<'_>) -> Result<BuiltMail, MailError> {
    build_notification(n, false)
}

/// Builds the notification mail of a deposit whose watcher also keeps mailbox wallets:
/// in email mode it first offers the simplest way, a plain reply ("claim", or an empty
/// reply) that keeps the money in a mailbox wallet at the watcher, and says how the
/// recipient leaves that wallet without the watcher. In link mode it is
/// [`notification`].
pub fn notification_offering_wallet(n: &Notification<'_>) -> Result<BuiltMail, MailError> {
    build_notification(n, true)
}

fn build_notification(n: &Notification<'_>, wallet: bool) -> Result<BuiltMail, MailError> {
    let from = mailbox("sender", n.from)?;
    let to = mailbox("recipient", n.recipient)?;
    let watcher = n.watcher_email.map(|w| mailbox("watcher", w)).transpose()?;
    if let Some(name) = n.sender_name {
        one_line("sender name", name)?;
    }
    if let Some(note) = n.note {
        if note.len() > MAX_NOTE_BYTES {
            return Err(MailError::NoteTooLong {
                max: MAX_NOTE_BYTES,
                got: note.len(),
            });
        }
    }
    if let Some(host) = n.claim_host {
        one_line("claim host", host)?;
    }
    let sender_name = n.sender_name.map(str::trim).filter(|s| !s.is_empty());
    // People read the address as it was typed (a Unicode domain stays readable).
    let typed_from = n.from.trim();
    let who = match sender_name {
        Some(name) => format!("{name} <{typed_from}>"),
        None => typed_from.to_string(),
    };
    let subject = notification_subject(sender_name.unwrap_or(typed_from), n.amount);
    one_line("subject", &subject)?;
    let message_id = notification_message_id(n.link, &to)?;
    let page = Page {
        who: &who,
        recipient: n.recipient.trim(),
        watcher: watcher.as_deref(),
        wallet: wallet && watcher.is_some(),
        url: n.claim_host.map(|h| n.link.to_url_from(h, Some(&who))),
        command: claim_command(n.link, n.recipient.trim(), watcher.as_deref()),
        until: human_date(n.expiry),
        network: chain_name(n.link.chain_id),
        address_hint: address_hint(n.link.chain_id),
    };
    let text = notification_text(n, &page);
    let html = notification_html(n, &page);

    let rest = MessageBuilder::new()
        .message_id(message_id.clone())
        .subject(subject.clone())
        .date(Date::new(n.date.unwrap_or_else(now)))
        .text_body(text)
        .html_body(html)
        .write_to_vec()?;
    let mut headers = vec![
        address_header("From", sender_name, &from),
        address_header("To", None, &to),
    ];
    if let Some(w) = &watcher {
        headers.push(address_header("Reply-To", None, w));
    }
    Ok(BuiltMail {
        message_id,
        subject,
        envelope_from: from,
        envelope_to: vec![to],
        bytes: with_address_headers(&headers, rest),
    })
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// What both alternatives of a notification say.
struct Page<'a> {
    who: &'a str,
    recipient: &'a str,
    watcher: Option<&'a str>,
    /// Email mode, and the watcher keeps mailbox wallets: a plain reply claims.
    wallet: bool,
    /// The claim page's link, when there is a claim page.
    url: Option<String>,
    command: String,
    until: String,
    network: String,
    address_hint: String,
}

/// Placeholder for the recipient's payout address in the claim command.
pub const ADDRESS_PLACEHOLDER: &str = "YOUR_ADDRESS";
/// Placeholder for the node URL in the claim command.
pub const NODE_URL_PLACEHOLDER: &str = "NODE_URL";

/// The `springmail claim` command line a notification tells its recipient to run: the
/// bare link, `--to` [`ADDRESS_PLACEHOLDER`], `--rpc` [`NODE_URL_PLACEHOLDER`], and in
/// email mode `--email RECIPIENT --watcher-email WATCHER` (the claim goes by mail, from
/// the address the money was sent to).
pub fn claim_command(link: &ClaimLink, recipient: &str, watcher_email: Option<&str>) -> String {
    let mut c = format!(
        "springmail claim {} --to {ADDRESS_PLACEHOLDER} --rpc {NODE_URL_PLACEHOLDER}",
        link.to_bare()
    );
    if let Some(w) = watcher_email {
        c.push_str(&format!(
            " --email {} --watcher-email {}",
            shell_word(recipient.trim()),
            shell_word(w)
        ));
    }
    c
}

/// `text` as one shell word: as it is when that is safe, else in single quotes (a local
/// part may hold `'`, `$`, `&` and the like).
fn shell_word(text: &str) -> String {
    let safe = |c: char| c.is_ascii_alphanumeric() || "@._+-=/:,".contains(c);
    if text.chars().all(safe) {
        text.to_string()
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}

fn address_hint(chain_id: u64) -> String {
    match qtum::QtumNetwork::from_chain_id(chain_id) {
        Some(qtum::QtumNetwork::Mainnet) => "a Qtum address of yours (Q…)".to_string(),
        Some(n) => format!("a Qtum {n} address of yours (q…)"),
        None => "an address of yours (0x…)".to_string(),
    }
}

fn notification_text(n: &Notification<'_>, p: &Page<'_>) -> String {
    let mut t = String::new();
    t.push_str("Hello,\n\n");
    t.push_str(&format!(
        "{} sent you {} with Spring Mail.\n",
        p.who, n.amount
    ));
    if let Some(note) = n.note.map(str::trim).filter(|s| !s.is_empty()) {
        t.push_str("\nTheir note:\n");
        for line in note.lines() {
            t.push_str(&format!("  | {line}\n"));
        }
    }
    t.push_str(&format!(
        "\nThe money waits for you in an escrow contract on {} until\n{}. \
         After that the sender can take it back.\n",
        p.network, p.until
    ));
    t.push_str(&format!("\nYour claim link:\n\n  {}\n", n.link.to_bare()));
    if let (true, Some(w)) = (p.wallet, p.watcher) {
        t.push_str(&format!(
            "\nThe simplest way: reply\n\n\
             Reply to this email from {r} with the word \"claim\", or with nothing at all.\n\
             The reply goes to {w}, the broker, which keeps the money for you in a\n\
             mailbox wallet and answers with your balance. From then on you can mail it\n\
             \"balance\", or ask it to pay someone by email. You can also bind a key of\n\
             your own to the wallet and withdraw with it without the broker.\n\n\
             Or claim to an address of your own, as below.\n",
            r = p.recipient
        ));
    }
    t.push_str("\nHow to claim\n\n");
    t.push_str(
        "Run the springmail command (Spring Mail's command-line program) on your computer:\n\n",
    );
    t.push_str(&format!("  {}\n\n", p.command));
    t.push_str(&format!(
        "  {ADDRESS_PLACEHOLDER}  where the money goes: {}\n  \
         {NODE_URL_PLACEHOLDER}      the JSON-RPC URL of a node of {}, where springmail\n                \
         reads the deposit (for a qtumd node also give --backend qtum)\n\n",
        p.address_hint, p.network
    ));
    match p.watcher {
        Some(w) => {
            t.push_str(&format!(
                "It signs your claim on your computer (the link never leaves it) and prints a\n\
                 CLAIM block. Reply to this email from {r} with that block in the body: the\n\
                 reply goes to {w}, the watcher. (With [mail] smtp_url in springmail.toml,\n\
                 springmail sends that mail itself.) The watcher checks that the reply really\n\
                 comes from {r} (DKIM), checks the block against the chain, pays the address\n\
                 in it and answers in this thread with the transaction id.\n",
                r = p.recipient
            ));
            if let Some(url) = &p.url {
                t.push_str(&format!(
                    "\nOr open {url} in a browser: the page signs the claim where you read it\n\
                     (the part after '#' never leaves your browser) and gives you the CLAIM block.\n"
                ));
            }
            t.push_str(
                "\nAbout BiSMTP: a CLAIM block is plain text between -----BEGIN BISMTP CLAIM-----\n\
                 and -----END BISMTP CLAIM----- lines. It names the chain, the escrow, the claim\n\
                 key, the address to pay (To), the most the watcher may keep for the gas\n\
                 (Max-Fee), a deadline, and a signature made with your link. Your link's secret\n\
                 is never in it.\n",
            );
        }
        None => {
            t.push_str(
                "It signs the claim with the link and sends it to the chain from your own key,\n\
                 which pays the gas: make one with `springmail wallet new` and put a little coin\n\
                 on it (or set SPRINGMAIL_PRIVATE_KEY).\n",
            );
            if let Some(url) = &p.url {
                t.push_str(&format!(
                    "\nOr open {url} in a browser: the page signs the claim where you read it\n\
                     (the part after '#' never leaves your browser).\n"
                ));
            }
        }
    }
    t.push_str(
        "\nKeep this email to yourself: the link is the key to the money. Opening the link\n\
         changes nothing; only a signed claim moves funds, and only to the address you choose.\n",
    );
    t
}

fn notification_html(n: &Notification<'_>, p: &Page<'_>) -> String {
    let e = html_escape;
    let mut h = String::new();
    h.push_str(
        "<!DOCTYPE html>\n<html><body style=\"font-family: sans-serif; max-width: 40em\">\n",
    );
    h.push_str(&format!(
        "<p>{} sent you <strong>{}</strong> with Spring Mail.</p>\n",
        e(p.who),
        e(&n.amount.to_string())
    ));
    if let Some(note) = n.note.map(str::trim).filter(|s| !s.is_empty()) {
        h.push_str(&format!(
            "<blockquote style=\"white-space: pre-wrap\">{}</blockquote>\n",
            e(note)
        ));
    }
    h.push_str(&format!(
        "<p>The money waits for you in an escrow contract on {} until {}. After that the sender can take it back.</p>\n",
        e(&p.network),
        e(&p.until)
    ));
    h.push_str(&format!(
        "<p>Your claim link: <code>{}</code></p>\n",
        e(&n.link.to_bare())
    ));
    if let (true, Some(w)) = (p.wallet, p.watcher) {
        h.push_str(&format!(
            "<h3>The simplest way: reply</h3>\n<p>Reply to this email from {r} with the word \
             <strong>claim</strong>, or with nothing at all. The reply goes to {w}, the broker, which keeps \
             the money for you in a mailbox wallet and answers with your balance. From then on you can mail \
             it <strong>balance</strong>, or ask it to pay someone by email. You can also bind a key of your \
             own to the wallet and withdraw with it without the broker.</p>\n<p>Or claim to an address of \
             your own, as below.</p>\n",
            r = e(p.recipient),
            w = e(w)
        ));
    }
    h.push_str("<h3>How to claim</h3>\n");
    h.push_str(&format!(
        "<p>Run the springmail command (Spring Mail's command-line program) on your computer:</p>\n\
         <pre>{}</pre>\n<p><code>{ADDRESS_PLACEHOLDER}</code>: where the money goes, {}.<br>\
         <code>{NODE_URL_PLACEHOLDER}</code>: the JSON-RPC URL of a node of {}, where springmail reads the \
         deposit (for a qtumd node also give <code>--backend qtum</code>).</p>\n",
        e(&p.command),
        e(&p.address_hint),
        e(&p.network)
    ));
    match p.watcher {
        Some(w) => {
            h.push_str(&format!(
                "<p>It signs your claim on your computer (the link never leaves it) and prints a CLAIM block. \
                 Reply to this email from {r} with that block in the body: the reply goes to {w}, the watcher. \
                 (With <code>[mail] smtp_url</code> in springmail.toml, springmail sends that mail itself.) \
                 The watcher checks that the reply really comes from {r} (DKIM), checks the block against the \
                 chain, pays the address in it and answers in this thread with the transaction id.</p>\n",
                r = e(p.recipient),
                w = e(w)
            ));
            if let Some(url) = &p.url {
                h.push_str(&format!(
                    "<p>Or <a href=\"{u}\">open the claim page</a>: it signs the claim in your browser and gives \
                     you the CLAIM block.</p>\n",
                    u = e(url)
                ));
            }
            h.push_str(
                "<p><small>A BiSMTP CLAIM block is plain text between <code>-----BEGIN BISMTP CLAIM-----</code> and \
                 <code>-----END BISMTP CLAIM-----</code>: chain, escrow, claim key, the address to pay, the most the \
                 watcher may keep for the gas, a deadline and a signature made with your link. The link's secret is \
                 never in it.</small></p>\n",
            );
        }
        None => {
            h.push_str(
                "<p>It signs the claim with the link and sends it to the chain from your own key, which pays the \
                 gas: make one with <code>springmail wallet new</code> and put a little coin on it (or set \
                 <code>SPRINGMAIL_PRIVATE_KEY</code>).</p>\n",
            );
            if let Some(url) = &p.url {
                h.push_str(&format!(
                    "<p>Or <a href=\"{u}\">open the claim page</a>: it signs the claim in your browser.</p>\n",
                    u = e(url)
                ));
            }
        }
    }
    h.push_str(
        "<p><small>Keep this email to yourself: the link is the key to the money. Opening it changes nothing; \
         only a signed claim moves funds, and only to the address you choose.</small></p>\n</body></html>\n",
    );
    h
}

/// Builds the recipient's claim mail to the watcher.
pub fn claim_mail(c: &ClaimMail<'_>) -> Result<BuiltMail, MailError> {
    let from = mailbox("recipient", c.from)?;
    let to = mailbox("watcher", c.watcher_email)?;
    let block = c.block.render();
    let subject = match c.subject {
        Some(s) => s.to_string(),
        None => format!(
            "Spring Mail claim: pay {}",
            qtum::format_address(c.block.chain_id, c.block.to)
        ),
    };
    one_line("subject", &subject)?;
    let body = format!(
        "Please release the deposit below to the address in its To line.\n\n{block}\n\
         This CLAIM block was signed with the claim link's key on the recipient's computer;\n\
         the link itself is not in this mail.\n"
    );
    let from_domain = email::normalize(&from)
        .ok()
        .and_then(|n| n.rsplit_once('@').map(|(_, d)| d.to_string()))
        .unwrap_or_default();
    // Unique per mail: sending the same claim twice makes two messages (the watcher
    // pays at most once either way).
    let message_id = format!(
        "sm.claim.{}@{from_domain}",
        hex::encode(rand::random::<[u8; 12]>())
    );
    let mut builder = MessageBuilder::new()
        .message_id(message_id.clone())
        .subject(subject.clone())
        .date(Date::new(c.date.unwrap_or_else(now)))
        .text_body(body)
        .attachment(BISMTP_CONTENT_TYPE, BISMTP_FILE_NAME, block.into_bytes());
    if let Some(parent) = c.in_reply_to {
        let parent = parent
            .trim()
            .trim_start_matches('<')
            .trim_end_matches('>')
            .to_string();
        one_line("In-Reply-To", &parent)?;
        builder = builder.in_reply_to(parent.clone()).references(parent);
    }
    let headers = [
        address_header("From", None, &from),
        address_header("To", None, &to),
    ];
    let bytes = with_address_headers(&headers, builder.write_to_vec()?);
    Ok(BuiltMail {
        message_id,
        subject,
        envelope_from: from,
        envelope_to: vec![to],
        bytes,
    })
}

/// Checks that a claim block is for the link's deposit (chain, escrow, claim key, salt).
pub fn check_block_matches_link(block: &ClaimBlock, link: &ClaimLink) -> Result<(), MailError> {
    if block.chain_id != link.chain_id {
        return Err(MailError::Mismatch {
            what: "chain",
            block: block.chain_id.to_string(),
            link: link.chain_id.to_string(),
        });
    }
    if block.escrow != link.escrow {
        return Err(MailError::Mismatch {
            what: "escrow",
            block: block.escrow.to_string(),
            link: link.escrow.to_string(),
        });
    }
    if block.claim_key != link.claim_key() {
        return Err(MailError::Mismatch {
            what: "claim key",
            block: block.claim_key.to_string(),
            link: link.claim_key().to_string(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::amount::Asset;
    use crate::email::Salt;
    use crate::keys::{ClaimSecret, Signature};
    use alloy::primitives::Address;
    use base64::Engine;

    fn link() -> ClaimLink {
        ClaimLink {
            chain_id: 8890,
            escrow: Address::repeat_byte(0xee),
            secret: ClaimSecret::from_bytes([0x42; 32]).unwrap(),
            salt: Salt::from_bytes([0x17; 16]),
        }
    }

    fn amount() -> Amount {
        Amount::parse("1.5 QTUM", &Asset::qtum()).unwrap()
    }

    fn notify(watcher: Option<&str>) -> BuiltMail {
        let link = link();
        let amount = amount();
        notification(&Notification {
            link: &link,
            from: "alice@example.org",
            sender_name: Some("Alice"),
            recipient: "Bob@Example.com",
            amount: &amount,
            expiry: 1_900_000_000,
            claim_host: Some("claim.example.org"),
            watcher_email: watcher,
            note: Some("for the <pizza> & drinks"),
            date: Some(1_800_000_000),
        })
        .unwrap()
    }

    fn header<'a>(raw: &'a str, name: &str) -> Option<&'a str> {
        let head = raw.split("\r\n\r\n").next().unwrap();
        head.split("\r\n")
            .find(|l| {
                l.len() > name.len()
                    && l[..name.len()].eq_ignore_ascii_case(name)
                    && l[name.len()..].starts_with(':')
            })
            .map(|l| l[name.len() + 1..].trim())
    }

    #[test]
    fn notification_has_links_instructions_and_threading_id() {
        let mail = notify(Some("claims@broker.test"));
        let raw = String::from_utf8(mail.bytes.clone()).unwrap();
        assert_eq!(header(&raw, "Reply-To"), Some("<claims@broker.test>"));
        assert_eq!(
            header(&raw, "Message-ID").unwrap(),
            format!("<{}>", mail.message_id)
        );
        assert!(
            mail.message_id.ends_with("@example.com"),
            "{}",
            mail.message_id
        );
        assert_eq!(mail.subject, "Alice sent you 1.5 QTUM");
        assert_eq!(mail.envelope_to, vec!["Bob@Example.com".to_string()]);
        assert!(raw.contains("multipart/alternative") && raw.contains("text/html"));
        // The bare link is 106 characters: it survives in the body (maybe QP-wrapped).
        let unwrapped = raw.replace("=\r\n", "");
        let bare = link().to_bare();
        assert!(unwrapped.contains(&bare));
        // The claim page's URL names the sender (`?from=`) before the link's fragment.
        let parsed = mail_parser::MessageParser::default()
            .parse(raw.as_bytes())
            .unwrap();
        let text = parsed.body_text(0).unwrap();
        assert!(
            text.contains("https://claim.example.org/claim?from=Alice%20%3C"),
            "{text}"
        );
        let url = text
            .split_whitespace()
            .find(|w| w.starts_with("https://claim.example.org/claim?from="))
            .unwrap();
        assert_eq!(ClaimLink::parse(url).unwrap(), link());
        assert!(unwrapped.contains("springmail claim"));
        assert!(unwrapped.contains("BEGIN BISMTP CLAIM"));
        assert!(
            unwrapped.contains("&lt;pizza&gt; &amp; drinks"),
            "the note is escaped in HTML"
        );
        // Derived id: same link and recipient, same id, whatever the case of the address.
        assert_eq!(
            notification_message_id(&link(), "bob@example.com").unwrap(),
            mail.message_id
        );
    }

    #[test]
    fn link_mode_notification_has_no_reply_to() {
        let mail = notify(None);
        let raw = String::from_utf8(mail.bytes).unwrap();
        assert_eq!(header(&raw, "Reply-To"), None);
        assert!(!raw.replace("=\r\n", "").contains("Reply to this email"));
    }

    #[test]
    fn header_injection_is_refused() {
        let link = link();
        let amount = amount();
        let n = Notification {
            link: &link,
            from: "alice@example.org",
            sender_name: Some("Alice\r\nBcc: eve@example.net"),
            recipient: "bob@example.com",
            amount: &amount,
            expiry: 1,
            claim_host: None,
            watcher_email: None,
            note: None,
            date: None,
        };
        assert!(matches!(
            notification(&n),
            Err(MailError::HeaderValue { .. })
        ));
        let bad = Notification {
            sender_name: None,
            recipient: "bob@",
            ..n
        };
        assert!(matches!(
            notification(&bad),
            Err(MailError::Address {
                role: "recipient",
                ..
            })
        ));
    }

    fn block() -> ClaimBlock {
        let mut sig = [0x11u8; 65];
        sig[64] = 27;
        ClaimBlock {
            chain_id: 8890,
            escrow: Address::repeat_byte(0xee),
            claim_key: link().claim_key(),
            to: Address::repeat_byte(0xb0),
            max_fee: Amount::parse("0.001 QTUM", &Asset::qtum()).unwrap(),
            deadline: 1_900_000_000,
            salt: Salt::from_bytes([0x17; 16]),
            signature: Signature(sig),
        }
    }

    #[test]
    fn claim_mail_carries_the_block_twice_and_threads() {
        let block = block();
        let parent = notification_message_id(&link(), "bob@example.com").unwrap();
        let mail = claim_mail(&ClaimMail {
            from: "bob@example.com",
            watcher_email: "claims@broker.test",
            block: &block,
            in_reply_to: Some(&parent),
            subject: None,
            date: Some(1_800_000_000),
        })
        .unwrap();
        let raw = String::from_utf8(mail.bytes.clone()).unwrap();
        assert_eq!(header(&raw, "In-Reply-To").unwrap(), format!("<{parent}>"));
        assert_eq!(header(&raw, "References").unwrap(), format!("<{parent}>"));
        assert_eq!(header(&raw, "To"), Some("<claims@broker.test>"));
        // The text body (undecoded: the parser tolerates quoted-printable) holds the block.
        let text_part = raw.split("application/bismtp").next().unwrap();
        assert_eq!(ClaimBlock::parse(text_part).unwrap(), block);
        // The attachment is the same bytes, base64.
        let att = raw.split("application/bismtp").nth(1).unwrap();
        let b64: String = att
            .split("\r\n\r\n")
            .nth(1)
            .unwrap()
            .split("\r\n--")
            .next()
            .unwrap()
            .split_whitespace()
            .collect();
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap();
        assert_eq!(decoded, block.render().into_bytes());
        check_block_matches_link(&block, &link()).unwrap();
        let mut other = block.clone();
        other.chain_id = 81;
        assert!(matches!(
            check_block_matches_link(&other, &link()),
            Err(MailError::Mismatch { what: "chain", .. })
        ));
    }

    fn parsed(mail: &BuiltMail) -> mail_parser::Message<'_> {
        mail_parser::MessageParser::default()
            .parse(&mail.bytes)
            .expect("the mail parses")
    }

    fn text_body(mail: &BuiltMail) -> String {
        parsed(mail).body_text(0).unwrap().into_owned()
    }

    fn head(mail: &BuiltMail) -> &[u8] {
        let end = mail
            .bytes
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("a header block");
        &mail.bytes[..end]
    }

    fn notify_to(
        recipient: &str,
        sender_name: Option<&str>,
        watcher: Option<&str>,
        claim_host: Option<&str>,
    ) -> BuiltMail {
        let link = link();
        let amount = amount();
        notification(&Notification {
            link: &link,
            from: "alice@example.org",
            sender_name,
            recipient,
            amount: &amount,
            expiry: 1_900_000_000,
            claim_host,
            watcher_email: watcher,
            note: None,
            date: Some(1_800_000_000),
        })
        .unwrap()
    }

    #[test]
    fn email_mode_notification_gives_the_full_claim_command() {
        let mail = notify_to("Bob@Example.com", None, Some("claims@broker.test"), None);
        let text = text_body(&mail);
        let line = text
            .lines()
            .map(str::trim)
            .find(|l| l.starts_with("springmail claim "))
            .unwrap_or_else(|| panic!("no command in:\n{text}"));
        assert_eq!(
            line,
            format!(
                "springmail claim {} --to YOUR_ADDRESS --rpc NODE_URL --email Bob@Example.com --watcher-email claims@broker.test",
                link().to_bare()
            )
        );
        assert!(
            text.contains("Reply to this email from Bob@Example.com"),
            "{text}"
        );
        assert!(
            text.contains("NODE_URL      the JSON-RPC URL of a node of Qtum regtest (chain 8890)"),
            "{text}"
        );
        assert!(text.contains("BEGIN BISMTP CLAIM"), "{text}");
        let html = parsed(&mail).body_html(0).unwrap().into_owned();
        assert!(
            html.contains("--email Bob@Example.com --watcher-email claims@broker.test"),
            "{html}"
        );
    }

    fn notify_wallet(watcher: Option<&str>) -> BuiltMail {
        let link = link();
        let amount = amount();
        notification_offering_wallet(&Notification {
            link: &link,
            from: "alice@example.org",
            sender_name: Some("Alice"),
            recipient: "Bob@Example.com",
            amount: &amount,
            expiry: 1_900_000_000,
            claim_host: None,
            watcher_email: watcher,
            note: None,
            date: Some(1_800_000_000),
        })
        .unwrap()
    }

    #[test]
    fn a_broker_with_wallets_is_offered_as_a_plain_reply_in_both_parts() {
        let mail = notify_wallet(Some("claims@broker.test"));
        let text = text_body(&mail);
        let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
        for said in [
            "Reply to this email from Bob@Example.com with the word \"claim\", or with nothing at all.",
            "The reply goes to claims@broker.test, the broker, which keeps the money for you in a mailbox wallet and answers with your balance.",
            "withdraw with it without the broker",
        ] {
            assert!(flat.contains(said), "{said:?} not in:\n{text}");
        }
        // The reply is offered first; the command stays as the other way.
        let reply_at = text.find("The simplest way: reply").unwrap();
        let command_at = text.find("springmail claim sm1.").unwrap();
        assert!(reply_at < command_at, "{text}");
        let html = parsed(&mail).body_html(0).unwrap().into_owned();
        let html_flat = html.split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(
            html_flat.contains("Reply to this email from Bob@Example.com with the word <strong>claim</strong>, or with nothing at all."),
            "{html}"
        );
        assert!(html_flat.contains("mailbox wallet"), "{html}");
        assert!(html_flat.contains("without the broker"), "{html}");

        // Without the offer, and in link mode even when asked, nothing is said of it.
        for plain in [
            notify_to("Bob@Example.com", None, Some("claims@broker.test"), None),
            notify_wallet(None),
        ] {
            let text = text_body(&plain);
            assert!(!text.contains("mailbox wallet"), "{text}");
            let html = parsed(&plain).body_html(0).unwrap().into_owned();
            assert!(!html.contains("mailbox wallet"), "{html}");
        }
    }

    #[test]
    fn a_plain_reply_to_the_offer_reads_as_a_claim_and_the_quote_orders_nothing() {
        use crate::markup::orders::{find_order, Order};
        let mail = notify_wallet(Some("claims@broker.test"));
        let quoted: String = text_body(&mail)
            .lines()
            .map(|l| format!("> {l}\n"))
            .collect();
        let subject = format!("Re: {}", mail.subject);
        let claim = format!("claim\n\nOn Monday, Alice wrote:\n{quoted}");
        let found = find_order(Some(&subject), &claim, 8890, &[]).unwrap();
        assert_eq!(found.map(|f| f.order), Some(Order::Claim));
        // An empty reply carries no order of its own: the broker reads it as a claim
        // of the quoted notification.
        let empty = format!("\nOn Monday, Alice wrote:\n{quoted}");
        assert!(find_order(Some(&subject), &empty, 8890, &[])
            .unwrap()
            .is_none());
    }

    #[test]
    fn claim_command_quotes_addresses_for_the_shell() {
        let c = claim_command(
            &link(),
            "o'brien&co@example.com",
            Some("claims@broker.test"),
        );
        assert!(
            c.ends_with(r"--email 'o'\''brien&co@example.com' --watcher-email claims@broker.test"),
            "{c}"
        );
    }

    #[test]
    fn link_mode_notification_never_mentions_claim_blocks() {
        let mail = notify_to("bob@example.com", None, None, Some("claim.example.org"));
        let message = parsed(&mail);
        for body in [
            message.body_text(0).unwrap().into_owned(),
            message.body_html(0).unwrap().into_owned(),
        ] {
            for word in [
                "CLAIM block",
                "BISMTP",
                "BiSMTP",
                "Reply to this email",
                "--email",
            ] {
                assert!(
                    !body.contains(word),
                    "{word:?} in a link-mode mail:\n{body}"
                );
            }
            assert!(body.contains(&format!(
                "springmail claim {} --to YOUR_ADDRESS --rpc NODE_URL",
                link().to_bare()
            )));
        }
    }

    #[test]
    fn without_a_claim_page_no_web_link_is_offered() {
        for watcher in [None, Some("claims@broker.test")] {
            let mail = notify_to("bob@example.com", Some("Alice"), watcher, None);
            let message = parsed(&mail);
            for body in [
                message.body_text(0).unwrap().into_owned(),
                message.body_html(0).unwrap().into_owned(),
            ] {
                assert!(!body.contains("https://"), "{body}");
                assert!(!body.contains("browser"), "{body}");
                assert!(body.contains(&link().to_bare()));
            }
        }
    }

    #[test]
    fn international_recipient_and_sender_name_are_ascii_in_headers() {
        let mail = notify_to(
            "Bob@Bücher.Example",
            Some("Ålice Ünïcode, the \"first\" one with a name long enough to need two words"),
            Some("claims@bröker.test"),
            None,
        );
        let head = head(&mail);
        assert!(head.is_ascii(), "{}", String::from_utf8_lossy(head));
        for line in head.split(|&b| b == b'\n') {
            assert!(
                line.len() <= HEADER_LINE + 1,
                "{}",
                String::from_utf8_lossy(line)
            );
        }
        let message = parsed(&mail);
        let to = message.to().unwrap().first().unwrap();
        assert_eq!(to.address(), Some("Bob@xn--bcher-kva.example"));
        let from = message.from().unwrap().first().unwrap();
        assert_eq!(
            from.name(),
            Some("Ålice Ünïcode, the \"first\" one with a name long enough to need two words")
        );
        assert_eq!(from.address(), Some("alice@example.org"));
        assert_eq!(
            message.reply_to().unwrap().first().unwrap().address(),
            Some("claims@xn--brker-kua.test")
        );
        assert_eq!(
            message.subject(),
            Some("Ålice Ünïcode, the \"first\" one with a name long enough to need two words sent you 1.5 QTUM")
        );
        assert_eq!(
            mail.envelope_to,
            vec!["Bob@xn--bcher-kva.example".to_string()]
        );
        // People still read the address as typed.
        assert!(text_body(&mail).contains("Reply to this email from Bob@Bücher.Example"));
        // The same deposit: the commitment does not depend on the form.
        assert_eq!(
            email::normalize(to.address().unwrap()).unwrap(),
            email::normalize("Bob@Bücher.Example").unwrap()
        );
    }

    #[test]
    fn ascii_display_names_are_atoms_or_quoted() {
        assert_eq!(
            address_header("From", Some("Alice Smith"), "a@example.org"),
            "From: Alice Smith <a@example.org>\r\n"
        );
        assert_eq!(
            address_header("From", Some("Smith, \"Al\""), "a@example.org"),
            "From: \"Smith, \\\"Al\\\"\" <a@example.org>\r\n"
        );
        let mail = notify_to("bob@example.com", Some("Smith, \"Al\" \\ Co."), None, None);
        assert_eq!(
            parsed(&mail).from().unwrap().first().unwrap().name(),
            Some("Smith, \"Al\" \\ Co.")
        );
    }

    #[test]
    fn non_ascii_local_part_is_kept_as_utf8_for_smtputf8() {
        let mail = notify_to("Jörg@Bücher.Example", None, None, None);
        let message = parsed(&mail);
        let to = message.to().unwrap().first().unwrap().address().unwrap();
        assert_eq!(to, "Jörg@xn--bcher-kva.example");
        assert_eq!(mail.envelope_to, vec![to.to_string()]);
        assert_eq!(
            email::normalize(to).unwrap(),
            email::normalize("jörg@bücher.example").unwrap()
        );
        // Only the local part is not ASCII: every other header byte is.
        let head = String::from_utf8(head(&mail).to_vec()).unwrap();
        let non_ascii: String = head.chars().filter(|c| !c.is_ascii()).collect();
        assert_eq!(non_ascii, "ö");
    }

    #[test]
    fn claim_mail_from_an_international_domain_is_ascii() {
        let block = block();
        let mail = claim_mail(&ClaimMail {
            from: "bob@Bücher.example",
            watcher_email: "claims@broker.test",
            block: &block,
            in_reply_to: None,
            subject: None,
            date: Some(1_800_000_000),
        })
        .unwrap();
        assert!(
            head(&mail).is_ascii(),
            "{}",
            String::from_utf8_lossy(head(&mail))
        );
        assert!(
            mail.message_id.ends_with("@xn--bcher-kva.example"),
            "{}",
            mail.message_id
        );
        let message = parsed(&mail);
        assert_eq!(
            message.from().unwrap().first().unwrap().address(),
            Some("bob@xn--bcher-kva.example")
        );
        assert_eq!(mail.envelope_from, "bob@xn--bcher-kva.example");
    }

    #[test]
    fn debug_hides_the_body() {
        let mail = notify(None);
        assert!(!format!("{mail:?}").contains("sm1."));
    }
}
