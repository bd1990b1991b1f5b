//! DKIM keys for mail domains that exist only here (the demo's providers, tests):
//! a generated Ed25519 key, its `TXT` record for pinning, and signing of raw mail.

use mail_auth::common::crypto::{DkimKey, Ed25519Key};
use mail_auth::common::headers::HeaderWriter;
use mail_auth::dkim::DkimSigner;

use crate::authenticate::PinnedRecords;
use crate::reply::generate_ed25519_dkim_key;

/// A domain with an Ed25519 DKIM key, as a mail provider has: the demo signs its
/// senders' mail with it, and tests sign hostile mail. The key record is pinned in a
/// [`PinnedRecords`] instead of published in DNS.
pub struct DkimDomain {
    /// The domain.
    pub domain: String,
    /// The selector.
    pub selector: String,
    /// The private key, PKCS#8 PEM.
    pub key_pem: String,
    /// The TXT record (`v=DKIM1; k=ed25519; p=…`).
    pub record: String,
}

impl std::fmt::Debug for DkimDomain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DkimDomain")
            .field("domain", &self.domain)
            .finish()
    }
}

impl DkimDomain {
    /// A fresh Ed25519 key for `domain` under selector `sm`.
    pub fn new(domain: &str) -> Self {
        let (key_pem, record) = generate_ed25519_dkim_key();
        DkimDomain {
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
            .headers(springmail_sdk::protocol::DKIM_THREAD_HEADERS)
            .body_length(body_length);
        let sig = signer.sign(raw).expect("signing works");
        let mut out = sig.to_header().into_bytes();
        out.extend_from_slice(raw);
        out
    }
}
