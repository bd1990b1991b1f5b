//! The two mails of a claim: the **notification** a sender's side mails to the recipient,
//! and the recipient's **claim mail** to the watcher (BiSMTP).
//!
//! * [`notification`]: `text/plain` and `text/html` alternatives saying who sent how
//!   much and until when, the `https://…/claim#sm1.…` link and the bare `sm1.…` form,
//!   and how to claim (the `springmail claim` command, the claim page, or a reply with a
//!   CLAIM block). In email mode `Reply-To` is the watcher's mailbox.
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
//!     claim_host: "claim.springmail.example",
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
    /// Host (and optional path prefix) of the claim page, for the https link.
    pub claim_host: &'a str,
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

fn mailbox(role: &'static str, text: &str) -> Result<String, MailError> {
    let trimmed = text.trim();
    email::normalize(trimmed).map_err(|source| MailError::Address { role, source })?;
    Ok(trimmed.to_string())
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

/// A UTC date for people: `Tue, 1 Jul 2031 10:52:37 +0000`.
pub fn human_date(unix: u64) -> String {
    Date::new(i64::try_from(unix).unwrap_or(i64::MAX)).to_rfc822()
}

/// Builds the notification mail.
pub fn notification(n: &Notification<'_>) -> Result<BuiltMail, MailError> {
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
    let who = match n.sender_name {
        Some(name) if !name.trim().is_empty() => format!("{} <{from}>", name.trim()),
        _ => from.clone(),
    };
    let short_who = n
        .sender_name
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .unwrap_or(&from)
        .to_string();
    let subject = notification_subject(&short_who, n.amount);
    one_line("subject", &subject)?;
    let message_id = notification_message_id(n.link, &to)?;
    let url = n.link.to_url(n.claim_host);
    let bare = n.link.to_bare();
    let until = human_date(n.expiry);
    let network = chain_name(n.link.chain_id);
    let text = notification_text(
        &who,
        &to,
        n,
        &url,
        &bare,
        &until,
        &network,
        watcher.as_deref(),
    );
    let html = notification_html(
        &who,
        &to,
        n,
        &url,
        &bare,
        &until,
        &network,
        watcher.as_deref(),
    );

    let mut builder = MessageBuilder::new()
        .message_id(message_id.clone())
        .to(to.clone())
        .subject(subject.clone())
        .date(Date::new(n.date.unwrap_or_else(now)))
        .text_body(text)
        .html_body(html);
    builder = match n.sender_name.map(str::trim).filter(|s| !s.is_empty()) {
        Some(name) => builder.from((name.to_string(), from.clone())),
        None => builder.from(from.clone()),
    };
    if let Some(w) = &watcher {
        builder = builder.reply_to(w.clone());
    }
    let bytes = builder.write_to_vec()?;
    Ok(BuiltMail {
        message_id,
        subject,
        envelope_from: from,
        envelope_to: vec![to],
        bytes,
    })
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

#[allow(clippy::too_many_arguments)]
fn notification_text(
    who: &str,
    to: &str,
    n: &Notification<'_>,
    url: &str,
    bare: &str,
    until: &str,
    network: &str,
    watcher: Option<&str>,
) -> String {
    let mut t = String::new();
    t.push_str("Hello,\n\n");
    t.push_str(&format!("{who} sent you {} with Spring Mail.\n", n.amount));
    if let Some(note) = n.note.map(str::trim).filter(|s| !s.is_empty()) {
        t.push_str("\nTheir note:\n");
        for line in note.lines() {
            t.push_str(&format!("  | {line}\n"));
        }
    }
    t.push_str(&format!(
        "\nThe money waits for you in an escrow contract on {network} until\n{until}. \
         After that the sender can take it back.\n"
    ));
    t.push_str(&format!(
        "\nYour claim link:\n\n  {url}\n\nThe same link for the springmail command:\n\n  {bare}\n"
    ));
    t.push_str("\nHow to claim\n\n");
    t.push_str(&format!(
        "1. With the springmail command, on any computer:\n\n     springmail claim {bare} --to YOUR_QTUM_ADDRESS\n\n"
    ));
    match watcher {
        Some(w) => {
            t.push_str(&format!(
                "   It signs your claim on your computer and writes the reply to {w} for you.\n\n"
            ));
            t.push_str(
                "2. Open the claim link in a browser. The page signs the claim where you read it\n   \
                 (the part after '#' never leaves your browser) and gives you a CLAIM block.\n\n",
            );
            t.push_str(&format!(
                "3. Reply to this email (it goes to {w}) from {to}, with the CLAIM block\n   \
                 in the body. The watcher checks that the reply really comes from {to}\n   \
                 (DKIM), checks the block against the chain, pays the address in the block\n   \
                 and answers in this thread with the transaction id.\n"
            ));
        }
        None => {
            t.push_str("   It signs your claim on your computer and sends it to the chain.\n\n");
            t.push_str(
                "2. Open the claim link in a browser. The page signs the claim where you read it\n   \
                 (the part after '#' never leaves your browser).\n",
            );
        }
    }
    t.push_str(
        "\nAbout BiSMTP: a CLAIM block is plain text between -----BEGIN BISMTP CLAIM-----\n\
         and -----END BISMTP CLAIM----- lines. It names the chain, the escrow, the claim\n\
         key, the address to pay (To), the most a relayer may keep as a fee (Max-Fee), a\n\
         deadline, and a signature made with your link. Your link's secret is never in it.\n",
    );
    t.push_str(
        "\nKeep this email to yourself: the link is the key to the money. Opening the link\n\
         changes nothing; only a signed claim moves funds, and only to the address you choose.\n",
    );
    t
}

#[allow(clippy::too_many_arguments)]
fn notification_html(
    who: &str,
    to: &str,
    n: &Notification<'_>,
    url: &str,
    bare: &str,
    until: &str,
    network: &str,
    watcher: Option<&str>,
) -> String {
    let e = html_escape;
    let mut h = String::new();
    h.push_str(
        "<!DOCTYPE html>\n<html><body style=\"font-family: sans-serif; max-width: 40em\">\n",
    );
    h.push_str(&format!(
        "<p>{} sent you <strong>{}</strong> with Spring Mail.</p>\n",
        e(who),
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
        e(network),
        e(until)
    ));
    h.push_str(&format!(
        "<p><a href=\"{}\"><strong>Claim {}</strong></a></p>\n",
        e(url),
        e(&n.amount.to_string())
    ));
    h.push_str("<h3>How to claim</h3>\n<ol>\n");
    h.push_str(&format!(
        "<li>With the springmail command:<br><code>springmail claim {} --to YOUR_QTUM_ADDRESS</code></li>\n",
        e(bare)
    ));
    h.push_str("<li>Open the claim link above; the page signs the claim in your browser.</li>\n");
    if let Some(w) = watcher {
        h.push_str(&format!(
            "<li>Reply to this email (it goes to {}) from {}, with the CLAIM block in the body. The watcher checks \
             the reply's DKIM signature and the block, pays the address in it, and answers in this thread.</li>\n",
            e(w),
            e(to)
        ));
    }
    h.push_str("</ol>\n");
    h.push_str(
        "<p><small>A BiSMTP CLAIM block is plain text between <code>-----BEGIN BISMTP CLAIM-----</code> and \
         <code>-----END BISMTP CLAIM-----</code>: chain, escrow, claim key, the address to pay, the most a relayer \
         may keep, a deadline and a signature made with your link. The link's secret is never in it.</small></p>\n",
    );
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
    let from_domain = from
        .rsplit_once('@')
        .map(|(_, d)| d.to_ascii_lowercase())
        .unwrap_or_default();
    // Unique per mail: sending the same claim twice makes two messages (the watcher
    // pays at most once either way).
    let message_id = format!(
        "sm.claim.{}@{from_domain}",
        hex::encode(rand::random::<[u8; 12]>())
    );
    let mut builder = MessageBuilder::new()
        .message_id(message_id.clone())
        .from(from.clone())
        .to(to.clone())
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
    let bytes = builder.write_to_vec()?;
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
            claim_host: "claim.springmail.example",
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
        assert!(unwrapped.contains("https://claim.springmail.example/claim#sm1."));
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
            claim_host: "h",
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

    #[test]
    fn debug_hides_the_body() {
        let mail = notify(None);
        assert!(!format!("{mail:?}").contains("sm1."));
    }
}
