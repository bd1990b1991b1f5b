//! Test support shared by the watcher's tests, the end-to-end tests and the demo:
//! DKIM keys for made-up domains (pinned, no DNS), signed claim mail, and CLAIM blocks.
//! Not part of the stable API.

use alloy::primitives::Address;
use mail_auth::common::crypto::{DkimKey, Ed25519Key};
use mail_auth::common::headers::HeaderWriter;
use mail_auth::dkim::DkimSigner;
use mail_builder::headers::message_id::MessageId;
use mail_builder::MessageBuilder;
use springmail_sdk::amount::{Amount, Asset};
use springmail_sdk::client::{SpringMail, Ticket};
use springmail_sdk::markup::ClaimBlock;

use crate::authenticate::PinnedRecords;
use crate::reply::generate_ed25519_dkim_key;

/// A domain with a DKIM key, as a mail provider would have.
pub struct TestDomain {
    /// The domain.
    pub domain: String,
    /// The selector.
    pub selector: String,
    /// The private key, PKCS#8 PEM.
    pub key_pem: String,
    /// The TXT record (`v=DKIM1; k=ed25519; p=…`).
    pub record: String,
}

impl std::fmt::Debug for TestDomain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestDomain")
            .field("domain", &self.domain)
            .finish()
    }
}

impl TestDomain {
    /// A fresh Ed25519 key for `domain` under selector `sm`.
    pub fn new(domain: &str) -> Self {
        let (key_pem, record) = generate_ed25519_dkim_key();
        TestDomain {
            domain: domain.into(),
            selector: "sm".into(),
            key_pem,
            record,
        }
    }

    /// The DNS name of the key record.
    pub fn record_name(&self) -> String {
        format!("{}._domainkey.{}", self.selector, self.domain)
    }

    /// Adds this domain's key to `pins`.
    pub fn pin(&self, pins: &mut PinnedRecords) {
        pins.pin(&self.record_name(), &self.record)
            .expect("a generated record parses");
    }

    fn key(&self) -> DkimKey {
        use rustls_pki_types::pem::PemObject;
        let der = rustls_pki_types::PrivatePkcs8KeyDer::from_pem_slice(self.key_pem.as_bytes())
            .expect("pem");
        DkimKey::Ed25519(
            Ed25519Key::from_pkcs8_maybe_unchecked_der(der.secret_pkcs8_der()).expect("ed25519"),
        )
    }

    /// Prepends a DKIM-Signature over the whole message.
    pub fn sign(&self, raw: &[u8]) -> Vec<u8> {
        self.sign_opts(raw, false)
    }

    /// Prepends a DKIM-Signature; with `body_length` it carries an `l=` tag.
    pub fn sign_opts(&self, raw: &[u8], body_length: bool) -> Vec<u8> {
        let signer = DkimSigner::from_key(self.key())
            .domain(self.domain.clone())
            .selector(self.selector.clone())
            .headers([
                "From",
                "To",
                "Subject",
                "Date",
                "Message-ID",
                "In-Reply-To",
                "References",
            ])
            .body_length(body_length);
        let sig = signer.sign(raw).expect("signing works");
        let mut out = sig.to_header().into_bytes();
        out.extend_from_slice(raw);
        out
    }
}

/// A plain-text mail.
pub fn mail(
    from: &str,
    to: &str,
    subject: &str,
    message_id: &str,
    in_reply_to: Option<&str>,
    body: &str,
) -> Vec<u8> {
    let mut b = MessageBuilder::new()
        .from(from)
        .to(to)
        .subject(subject)
        .date(1_767_225_600i64)
        .message_id(message_id)
        .text_body(body.to_string());
    if let Some(parent) = in_reply_to {
        b = b
            .in_reply_to(parent)
            .references(MessageId::new(parent.to_string()));
    }
    b.write_to_vec().expect("building a mail works")
}

/// The CLAIM block a recipient's wallet would produce for `ticket`: paid to `to`,
/// with at most `max_fee` (base units of the chain's native asset) for the relayer,
/// valid until `deadline`.
pub fn claim_block(
    client: &SpringMail,
    ticket: &Ticket,
    to: Address,
    max_fee: u128,
    deadline: u64,
) -> ClaimBlock {
    let signed = client
        .sign_claim(&ticket.link, &ticket.deposit, to, max_fee, deadline)
        .expect("link matches client");
    let id = client.escrow_id();
    ClaimBlock {
        chain_id: id.chain_id,
        escrow: id.escrow,
        claim_key: ticket.link.claim_key(),
        to,
        max_fee: Amount::from_units(max_fee, Asset::for_chain(id.chain_id)).expect("fits"),
        deadline,
        salt: ticket.link.salt.clone(),
        signature: signed.signature,
    }
}

/// A claim reply's body: a line of text, the block, and the quoted notification.
pub fn claim_body(block: &ClaimBlock) -> String {
    format!(
        "Yes please, send it to my wallet.\n\n{}\n> You have been sent money with Spring Mail.\n",
        block.render()
    )
}

/// True when `raw` carries a DKIM signature of `domain` that verifies (`Pass`) with
/// the pinned keys (a test's check of the watcher's own replies).
pub async fn dkim_passes(raw: &[u8], pins: &PinnedRecords, domain: &str) -> bool {
    use mail_auth::hickory_resolver::config::{ResolverConfig, ResolverOpts};
    use mail_auth::{AuthenticatedMessage, DkimResult, MessageAuthenticator, Parameters};
    let Some(msg) = AuthenticatedMessage::parse(raw) else {
        return false;
    };
    let resolver = MessageAuthenticator::new(
        ResolverConfig::from_parts(None, vec![], vec![]),
        ResolverOpts::default(),
    )
    .expect("empty resolver");
    let out = resolver
        .verify_dkim(Parameters::new(&msg).with_txt_cache(pins))
        .await;
    out.iter().any(|o| {
        *o.result() == DkimResult::Pass
            && o.signature()
                .is_some_and(|s| s.d.eq_ignore_ascii_case(domain))
    })
}
