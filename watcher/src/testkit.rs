//! Test support shared by the watcher's tests and the end-to-end tests: signed claim
//! mail and CLAIM blocks. Behind the `testkit` feature: not in the shipped binary and
//! not part of the stable API.

use alloy::primitives::Address;
use mail_builder::headers::message_id::MessageId;
use mail_builder::MessageBuilder;
use springmail_sdk::amount::{Amount, Asset};
use springmail_sdk::client::{SpringMail, Ticket};
use springmail_sdk::markup::ClaimBlock;

use crate::authenticate::PinnedRecords;

pub use crate::dkim_domain::DkimDomain as TestDomain;

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
