//! The hostile-mail corpus: one generator per class of attack or malformation, each
//! with the reason it exists and the outcome the watcher must reach. Nothing in it may
//! be paid, nothing may panic, memory stays bounded.
//!
//! Many classes need valid DKIM signatures and a CLAIM block for a real deposit, so they
//! are generated at test time from the fixed world in `world.rs` (fixed keys, fixed
//! escrow and deposit); `tests/tests/reliability_corpus.rs` runs them through the
//! watcher's pipeline and, with `SPRINGMAIL_WRITE_CORPUS=1`, writes them to
//! `tests/corpus/generated/` (all but the 20 MB one) and the small ones to the fuzz seeds.
//! See `tests/corpus/README.md` for the table.

#![allow(dead_code)]

use springmail_sdk::markup::ClaimBlock;
use springmail_watcher::testkit::TestDomain;

use crate::world::{self, World};

/// What the watcher must do with a class.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// Filed in Rejected with one of these codes, never answered.
    Dropped(&'static [&'static str]),
    /// Filed in Rejected with one of these codes, answered with the reason.
    Refused(&'static [&'static str]),
}

impl Expect {
    /// The outcome kind (`dropped` / `refused`).
    pub fn kind(&self) -> &'static str {
        match self {
            Expect::Dropped(_) => "dropped",
            Expect::Refused(_) => "refused",
        }
    }

    /// The codes allowed.
    pub fn codes(&self) -> &'static [&'static str] {
        match self {
            Expect::Dropped(c) | Expect::Refused(c) => c,
        }
    }
}

/// One class of hostile mail.
pub struct Class {
    /// Short name (the file name).
    pub name: &'static str,
    /// Why it is in the corpus: the attack or the malformation.
    pub reason: &'static str,
    /// The outcome.
    pub expect: Expect,
    /// The raw message.
    pub bytes: Vec<u8>,
}

const CRLF: &str = "\r\n";

/// Header lines (CRLF) for a mail to the watcher.
fn head(from: &str, subject: &str, id: &str) -> String {
    format!(
        "From: {from}\r\nTo: {to}\r\nSubject: {subject}\r\nDate: Thu, 01 Jan 2026 00:00:00 +0000\r\n\
         Message-ID: <{id}@corpus.example>\r\nIn-Reply-To: <sm.notification@sender.example.org>\r\n\
         References: <sm.notification@sender.example.org>\r\nMIME-Version: 1.0\r\n",
        to = world::WATCHER_EMAIL
    )
}

fn crlf(text: &str) -> String {
    text.replace("\r\n", "\n").replace('\n', CRLF)
}

/// A plain-text claim reply from `from` carrying `block_text`.
fn plain(from: &str, id: &str, block_text: &str) -> String {
    format!(
        "{}Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n\
         Yes please, send it to my wallet.\r\n\r\n{}",
        head(from, "Re: You have been sent 1.5 QTUM", id),
        crlf(block_text)
    )
}

/// The block with one hex digit in the middle of its signature changed (a tampered
/// claim: still 65 well-formed bytes, but not the claim key's signature).
fn tampered(block: &ClaimBlock) -> String {
    let text = block.render();
    let line = text
        .lines()
        .find(|l| l.starts_with("Signature:"))
        .expect("a signature line");
    let mid = line.len() - 40;
    let c = line.as_bytes()[mid];
    let swapped = if c == b'0' { '1' } else { '0' };
    let new_line = format!("{}{swapped}{}", &line[..mid], &line[mid + 1..]);
    text.replace(line, &new_line)
}

/// The block with one field replaced.
fn with_field(block: &ClaimBlock, field: &str, value: &str) -> String {
    block
        .render()
        .lines()
        .map(|l| {
            if l.starts_with(&format!("{field}:")) {
                format!("{field}: {value}")
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

fn sign(d: &TestDomain, raw: &str) -> Vec<u8> {
    d.sign(raw.as_bytes())
}

/// The size of the big attachment class (20 MiB); tests may ask for less.
pub const BIG_ATTACHMENT: usize = 20 << 20;

/// Every class. `big` is the size of the oversized attachment (20 MiB in the test).
pub fn classes(w: &World, big: usize) -> Vec<Class> {
    let example = world::example_com();
    let evil = world::evil_example();
    let unpublished = world::example_com_unpublished();
    let bob = world::BOB;
    let block = w.block.render();
    let mut out = Vec::new();

    out.push(Class {
        name: "forged-from-valid-dkim-of-another-domain",
        reason: "From: bob@example.com, but the only valid DKIM signature is evil.example's: \
                 a real signature proves nothing about another domain (DMARC alignment)",
        expect: Expect::Dropped(&["dkim-not-aligned"]),
        bytes: sign(&evil, &plain(bob, "forged-from", &block)),
    });

    out.push(Class {
        name: "dkim-l-tag-with-appended-block",
        reason: "example.com signed only the first l= bytes of the body; an attacker appended \
                 a second CLAIM block paying himself after the signed part",
        expect: Expect::Dropped(&["dkim-partial-body"]),
        bytes: {
            let mut signed = example.sign_opts(plain(bob, "l-tag", "Hello.\r\n").as_bytes(), true);
            signed.extend_from_slice(crlf(&block).as_bytes());
            signed
        },
    });

    out.push(Class {
        name: "body-changed-after-signing",
        reason: "a valid claim whose payee was rewritten after example.com signed it",
        expect: Expect::Dropped(&["dkim-failed"]),
        bytes: {
            let signed = sign(&example, &plain(bob, "body-changed", &block));
            let text = String::from_utf8(signed).expect("utf-8");
            let payee = format!("{}", w.payee);
            let to_line = block
                .lines()
                .find(|l| l.starts_with("To:"))
                .expect("To line")
                .to_string();
            let evil_to = to_line.replace(
                to_line.split_whitespace().last().unwrap_or(&payee),
                "0x6666666666666666666666666666666666666666",
            );
            text.replace(&to_line, &evil_to).into_bytes()
        },
    });

    out.push(Class {
        name: "duplicate-from-headers",
        reason: "two From headers (Bob and Mallory): which one DKIM covered depends on the \
                 verifier, so the message is refused outright",
        expect: Expect::Dropped(&["bad-from"]),
        bytes: {
            let raw = plain(bob, "dup-from", &block);
            let raw = raw.replacen("From: ", "From: mallory@evil.example\r\nFrom: ", 1);
            sign(&example, &raw)
        },
    });

    out.push(Class {
        name: "two-addresses-in-from",
        reason: "one From header with two mailboxes",
        expect: Expect::Dropped(&["bad-from"]),
        bytes: sign(
            &example,
            &plain(&format!("{bob}, mallory@evil.example"), "two-from", &block),
        ),
    });

    out.push(Class {
        name: "claim-block-in-html-part-only",
        reason: "the block is only in the text/html alternative (where a client may hide or \
                 render it differently); only text/plain and application/bismtp count",
        expect: Expect::Refused(&["no-claim-block"]),
        bytes: {
            let html_block = block.replace('\n', "<br>\r\n");
            let raw = format!(
                "{}Content-Type: multipart/alternative; boundary=\"alt\"\r\n\r\n\
                 --alt\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nYes please.\r\n\
                 --alt\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p>Yes please.</p><pre>{html_block}</pre>\r\n\
                 --alt--\r\n",
                head(bob, "Re: claim (html)", "html-only")
            );
            sign(&example, &raw)
        },
    });

    out.push(Class {
        name: "claim-block-html-only-message",
        reason: "a message with nothing but text/html, the block inside it",
        expect: Expect::Refused(&["no-claim-block"]),
        bytes: {
            let raw = format!(
                "{}Content-Type: text/html; charset=utf-8\r\n\r\n<html><body><pre>\r\n{}</pre></body></html>\r\n",
                head(bob, "Re: claim (html only)", "html-only-message"),
                crlf(&block)
            );
            sign(&example, &raw)
        },
    });

    out.push(Class {
        name: "claim-block-split-across-mime-parts",
        reason: "the armor begins in one text/plain part and ends in the next: a block is \
                 read from one part only, never stitched together",
        expect: Expect::Refused(&["malformed-block"]),
        bytes: {
            let lines: Vec<&str> = block.lines().collect();
            let (a, b) = lines.split_at(lines.len() / 2);
            let raw = format!(
                "{}Content-Type: multipart/mixed; boundary=\"split\"\r\n\r\n\
                 --split\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{}\r\n\
                 --split\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{}\r\n--split--\r\n",
                head(bob, "Re: claim (split)", "split"),
                a.join("\r\n"),
                b.join("\r\n")
            );
            sign(&example, &raw)
        },
    });

    out.push(Class {
        name: "forwarded-real-claim-as-message-rfc822",
        reason: "Mallory (valid DKIM of evil.example) forwards Bob's real, signed claim as an \
                 attached message/rfc822: the claim inside is Bob's, the sender is not",
        expect: Expect::Refused(&["not-recipient", "no-claim-block"]),
        bytes: {
            let inner = String::from_utf8(sign(&example, &plain(bob, "inner-real", &block)))
                .expect("utf-8");
            let raw = format!(
                "{}Content-Type: multipart/mixed; boundary=\"fwd\"\r\n\r\n\
                 --fwd\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nForwarding Bob's claim, pay me.\r\n\
                 --fwd\r\nContent-Type: message/rfc822\r\nContent-Disposition: inline\r\n\r\n{inner}\r\n--fwd--\r\n",
                head("mallory@evil.example", "Fwd: claim", "forward")
            );
            sign(&evil, &raw)
        },
    });

    out.push(Class {
        name: "block-for-another-escrow",
        reason: "Bob's own valid mail, but the block names another escrow contract \
                 (a claim meant for another deployment)",
        expect: Expect::Refused(&["wrong-escrow"]),
        bytes: sign(
            &example,
            &plain(
                bob,
                "other-escrow",
                &with_field(
                    &w.block,
                    "Escrow",
                    "0x7777777777777777777777777777777777777777",
                ),
            ),
        ),
    });

    out.push(Class {
        name: "block-for-another-chain",
        reason: "Bob's own valid mail, but the block is for Qtum testnet (chain 8889, same \
                 address format): a claim signed for one chain replayed on another",
        expect: Expect::Refused(&["wrong-chain"]),
        bytes: sign(
            &example,
            &plain(bob, "other-chain", &with_field(&w.block, "Chain", "8889")),
        ),
    });

    out.push(Class {
        name: "tampered-claim-signature",
        reason: "Bob's valid mail with the claim signature altered by one nibble",
        expect: Expect::Refused(&["bad-signature"]),
        bytes: sign(&example, &plain(bob, "tampered", &tampered(&w.block))),
    });

    out.push(Class {
        name: "oversized-headers",
        reason: "5,000 header lines and a 200 KB Subject under the size limit: parsing and \
                 DKIM canonicalization stay bounded",
        expect: Expect::Refused(&["no-claim-block"]),
        bytes: {
            let mut raw = head(bob, &"S".repeat(200_000), "oversized-headers");
            for i in 0..5_000 {
                raw.push_str(&format!("X-Filler-{i}: {}\r\n", "x".repeat(40)));
            }
            raw.push_str("Content-Type: text/plain\r\n\r\nNo block here.\r\n");
            sign(&example, &raw)
        },
    });

    out.push(Class {
        name: "attachment-20-mib",
        reason: "a 20 MiB attachment: larger than max_message_bytes, so its body is never \
                 fetched or parsed",
        expect: Expect::Dropped(&["too-large"]),
        bytes: {
            let mut raw = format!(
                "{}Content-Type: multipart/mixed; boundary=\"big\"\r\n\r\n--big\r\n\
                 Content-Type: text/plain\r\n\r\n{}\r\n--big\r\nContent-Type: application/octet-stream\r\n\
                 Content-Transfer-Encoding: base64\r\n\r\n",
                head(bob, "Re: claim with a big attachment", "big"),
                crlf(&block)
            );
            let line = "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFB\r\n";
            raw.reserve(big + 64);
            while raw.len() < big {
                raw.push_str(line);
            }
            raw.push_str("--big--\r\n");
            raw.into_bytes()
        },
    });

    out.push(Class {
        name: "invalid-utf8-and-broken-encodings",
        reason: "raw 0xFF bytes in headers and body, an unknown charset, an encoded-word with \
                 a bogus charset, base64 that is not base64, quoted-printable with broken \
                 escapes, the block mangled by it",
        expect: Expect::Refused(&["malformed-block"]),
        bytes: {
            let mut raw = head(bob, "=?x-unknown?B?////?= =?utf-8?Q?=FF=FE?=", "bad-encodings")
                .into_bytes();
            raw.extend_from_slice(b"X-Binary: \xff\xfe\xfd\r\n");
            raw.extend_from_slice(
                b"Content-Type: multipart/mixed; boundary=\"enc\"\r\n\r\n--enc\r\n\
                  Content-Type: text/plain; charset=x-no-such-charset\r\nContent-Transfer-Encoding: base64\r\n\r\n\
                  !!!! not base64 \xff\xff ====\r\n--enc\r\n\
                  Content-Type: text/plain; charset=utf-7\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n",
            );
            let qp = crlf(&block).replace(": ", ":=ZZ=\r\n ").replace("0x", "=3D0x=");
            raw.extend_from_slice(qp.as_bytes());
            raw.extend_from_slice(b"\r\n\xc3\x28 invalid utf-8 \xed\xa0\x80\r\n--enc--\r\n");
            example.sign(&raw)
        },
    });

    out.push(Class {
        name: "thousands-of-recipients",
        reason: "To and Cc with 4,000 addresses each, carrying a tampered claim: address-list \
                 parsing stays bounded and the claim is still judged",
        expect: Expect::Refused(&["bad-signature"]),
        bytes: {
            let many: Vec<String> = (0..4_000).map(|i| format!("r{i}@many.example")).collect();
            let raw = plain(bob, "thousands", &tampered(&w.block)).replacen(
                "MIME-Version: 1.0\r\n",
                &format!(
                    "MIME-Version: 1.0\r\nCc: {}\r\nBcc: {}\r\n",
                    many.join(",\r\n "),
                    many.join(",\r\n ")
                ),
                1,
            );
            sign(&example, &raw)
        },
    });

    out.push(Class {
        name: "deeply-nested-multiparts",
        reason: "3,000 levels of multipart/mixed with a tampered block at the bottom: no \
                 unbounded recursion, no stack overflow",
        expect: Expect::Refused(&["bad-signature"]),
        bytes: {
            let depth = 3_000;
            let mut raw = head(bob, "Re: claim (nested)", "nested");
            raw.push_str("Content-Type: multipart/mixed; boundary=\"b0\"\r\n\r\n");
            for i in 0..depth {
                raw.push_str(&format!(
                    "--b{i}\r\nContent-Type: multipart/mixed; boundary=\"b{}\"\r\n\r\n",
                    i + 1
                ));
            }
            raw.push_str(&format!(
                "--b{depth}\r\nContent-Type: text/plain\r\n\r\n{}\r\n--b{depth}--\r\n",
                crlf(&tampered(&w.block))
            ));
            for i in (0..depth).rev() {
                raw.push_str(&format!("--b{i}--\r\n"));
            }
            sign(&example, &raw)
        },
    });

    out.push(Class {
        name: "no-dkim-signature",
        reason: "a perfect claim that nobody signed: anyone can type From: bob@example.com",
        expect: Expect::Dropped(&["dkim-missing"]),
        bytes: plain(bob, "unsigned", &block).into_bytes(),
    });

    out.push(Class {
        name: "dkim-key-not-published",
        reason: "signed with a key that claims d=example.com but is not example.com's",
        expect: Expect::Dropped(&["dkim-failed"]),
        bytes: sign(&unpublished, &plain(bob, "unpublished-key", &block)),
    });

    out.push(Class {
        name: "many-bogus-dkim-signatures",
        reason: "300 DKIM-Signature headers, none valid, before one valid claim body: the \
                 verifier's work per message is bounded and the message is refused",
        expect: Expect::Dropped(&["dkim-failed"]),
        bytes: {
            let mut raw = String::new();
            for i in 0..300 {
                raw.push_str(&format!(
                    "DKIM-Signature: v=1; a=ed25519-sha256; c=relaxed/relaxed; d=d{i}.example; s=sm; \
                     h=from; bh=AAAA; b=AAAA\r\n"
                ));
            }
            raw.push_str(&plain(bob, "many-sigs", &block));
            raw.into_bytes()
        },
    });

    out.push(Class {
        name: "bounce-dsn",
        reason: "a delivery status notification quoting a claim: never answered (no \
                 backscatter), never paid",
        expect: Expect::Dropped(&["bounce"]),
        bytes: {
            let raw = format!(
                "{}Content-Type: multipart/report; report-type=delivery-status; boundary=\"dsn\"\r\n\r\n\
                 --dsn\r\nContent-Type: text/plain\r\n\r\nDelivery failed.\r\n{}\r\n\
                 --dsn\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example.com\r\n\r\n--dsn--\r\n",
                head(bob, "Undelivered Mail Returned to Sender", "dsn"),
                crlf(&block)
            );
            sign(&example, &raw)
        },
    });

    out.push(Class {
        name: "auto-reply",
        reason: "a vacation responder echoing the block: Auto-Submitted mail is never answered",
        expect: Expect::Dropped(&["auto-reply"]),
        bytes: sign(
            &example,
            &plain(bob, "auto-reply", &block).replacen(
                "MIME-Version",
                "Auto-Submitted: auto-replied\r\nMIME-Version",
                1,
            ),
        ),
    });

    out.push(Class {
        name: "binary-garbage",
        reason: "bytes that are not a message at all",
        expect: Expect::Dropped(&["bad-from"]),
        bytes: (0..4096u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect(),
    });

    out.push(Class {
        name: "empty-message",
        reason: "zero bytes",
        expect: Expect::Dropped(&["unparseable"]),
        bytes: Vec::new(),
    });

    out.push(Class {
        name: "headers-only-nul-bytes",
        reason: "NUL bytes inside header names and values, no body separator",
        expect: Expect::Dropped(&["bad-from"]),
        bytes: b"From: bob@exa\0mple.com\r\nTo: watcher@broker.test\r\nSub\0ject: \0\0\0\r\nX: \0"
            .to_vec(),
    });

    out.push(Class {
        name: "regression-mail-parser-nested-rfc822",
        reason: "found by the verify_pipeline fuzzer: a message/rfc822 part inside a broken \
                 multipart trips a debug assertion in mail-parser 0.11 (a panic in debug \
                 builds, which killed the watcher at every restart); now unparseable",
        expect: Expect::Dropped(&["unparseable", "bad-from"]),
        bytes: include_bytes!("regressions/mail-parser-nested-rfc822-in-broken-multipart.eml")
            .to_vec(),
    });

    out.push(Class {
        name: "one-line-900-kib",
        reason: "a single 900 KiB line without a line break",
        expect: Expect::Dropped(&["bad-from"]),
        bytes: vec![b'A'; 900 << 10],
    });

    out
}

/// Bob's genuine claim for the world's deposit, signed by example.com (the control).
pub fn valid_claim(w: &World, example: &TestDomain, id: &str) -> Vec<u8> {
    sign(example, &plain(world::BOB, id, &w.block.render()))
}
