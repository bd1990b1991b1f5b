//! Claim links: everything a recipient needs to claim one deposit, in one string.
//!
//! ```text
//! https://<claim host>/claim#sm1.<base64url(payload), no padding>
//! sm1.<base64url(payload), no padding>                     (bare, for the CLI)
//!
//! payload (76 bytes) = chain id (u64 big-endian, 8)
//!                    ‖ escrow contract address (20)
//!                    ‖ claim key secret (32)
//!                    ‖ salt (16)
//! ```
//!
//! The secret sits in the URL *fragment*, which browsers never send to a server.
//! A link is only data: parsing or opening it changes nothing on chain or anywhere
//! else, so a mail scanner that fetches every link cannot claim. Claiming needs the
//! holder to sign a `Claim` with the secret and submit it (or mail it to a watcher).
//!
//! [`ClaimLink::parse`] accepts the bare form, the URL form (any scheme and host,
//! or none: the fragment is what counts), surrounding whitespace and the `<…>` angle
//! brackets mail clients put around links. The base64url text must be canonical (no padding,
//! no stray bits in the last character).
//!
//! ```
//! use springmail_sdk::link::ClaimLink;
//! use springmail_sdk::email::Salt;
//! use springmail_sdk::keys::ClaimSecret;
//! use springmail_sdk::Address;
//! let link = ClaimLink {
//!     chain_id: 8890,
//!     escrow: Address::repeat_byte(0x11),
//!     secret: ClaimSecret::from_bytes([0x22; 32]).unwrap(),
//!     salt: Salt::from_bytes([0x33; 16]),
//! };
//! let url = link.to_url("claim.example");
//! assert!(url.starts_with("https://claim.example/claim#sm1."));
//! assert_eq!(ClaimLink::parse(&format!(" <{url}> ")).unwrap(), link);
//! assert!(!format!("{link:?}").contains("2222"));
//! ```

use alloy::primitives::Address;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use zeroize::Zeroizing;

use crate::email::{Salt, SALT_LEN};
use crate::keys::ClaimSecret;

/// The version prefix of the current link format.
pub const LINK_PREFIX: &str = "sm1.";
/// Payload length in bytes: 8 + 20 + 32 + 16.
pub const PAYLOAD_LEN: usize = 76;
/// Length of the base64url text of a payload (no padding).
pub const ENCODED_LEN: usize = 102;
/// Inputs longer than this are refused before decoding.
pub const MAX_LINK_INPUT: usize = 4096;

/// Why a claim link was refused. Messages never contain the secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    /// Nothing to parse.
    #[error("the claim link is empty")]
    Empty,
    /// Longer than [`MAX_LINK_INPUT`].
    #[error("the claim link is {got} bytes; at most {max} are allowed")]
    TooLong {
        /// The limit.
        max: usize,
        /// The input length.
        got: usize,
    },
    /// Does not start with `sm1.` (nor `sm<N>.`).
    #[error("not a claim link: expected `sm1.` followed by base64url, or https://…/claim#sm1.…")]
    MissingPrefix,
    /// `sm<N>.` for a version this software does not read.
    #[error("claim link version {got:?} is not supported; this software reads `sm1.`")]
    UnknownVersion {
        /// The prefix found, e.g. `sm2.`.
        got: String,
    },
    /// A URL with no `#` fragment (the part that holds the claim data).
    #[error("the URL has no #fragment; the claim data follows '#' (was the link cut off?)")]
    MissingFragment,
    /// A character outside the base64url alphabet, or a non-canonical last character.
    #[error("invalid base64url character {character:?} at position {position} after `sm1.`")]
    InvalidBase64 {
        /// The offending character.
        character: char,
        /// 0-based character index in the text after `sm1.`.
        position: usize,
    },
    /// Base64 text whose length cannot encode whole bytes.
    #[error(
        "the base64url text after `sm1.` has an impossible length {got} (was the link cut off?)"
    )]
    InvalidBase64Length {
        /// Characters after `sm1.`.
        got: usize,
    },
    /// Decoded to the wrong number of bytes.
    #[error("the claim link payload is {got} bytes; expected {expected} (was the link cut off?)")]
    PayloadLength {
        /// [`PAYLOAD_LEN`].
        expected: usize,
        /// Bytes decoded.
        got: usize,
    },
    /// Chain id 0.
    #[error("the claim link's chain id is 0, which is no chain")]
    ZeroChainId,
    /// The secret is zero or not below the curve order.
    #[error("the claim link's claim key secret is not a valid secp256k1 key")]
    InvalidSecret,
}

impl LinkError {
    /// The payload field an error is about, when it is about one:
    /// `"chain id"`, `"claim key secret"`, `"payload"`, `"fragment"` or `"prefix"`.
    pub fn field(&self) -> Option<&'static str> {
        match self {
            Self::ZeroChainId => Some("chain id"),
            Self::InvalidSecret => Some("claim key secret"),
            Self::PayloadLength { .. }
            | Self::InvalidBase64 { .. }
            | Self::InvalidBase64Length { .. } => Some("payload"),
            Self::MissingFragment => Some("fragment"),
            Self::MissingPrefix | Self::UnknownVersion { .. } => Some("prefix"),
            Self::Empty | Self::TooLong { .. } => None,
        }
    }
}

/// A parsed claim link. `Debug` shows the chain, escrow and claim key address only.
#[derive(Clone, PartialEq, Eq)]
pub struct ClaimLink {
    /// The EVM chain id of the escrow.
    pub chain_id: u64,
    /// The escrow contract.
    pub escrow: Address,
    /// The claim key's secret; its address keys the deposit.
    pub secret: ClaimSecret,
    /// The salt of the recipient commitment.
    pub salt: Salt,
}

impl std::fmt::Debug for ClaimLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClaimLink")
            .field("chain_id", &self.chain_id)
            .field("escrow", &self.escrow)
            .field("claim_key", &self.secret.address())
            .field("secret", &"<redacted>")
            .field("salt", &"<redacted>")
            .finish()
    }
}

impl ClaimLink {
    /// The claim key's EVM address (the deposit's key on chain).
    pub fn claim_key(&self) -> Address {
        self.secret.address()
    }

    /// The 76-byte payload (secret: zeroed when dropped).
    pub fn to_payload(&self) -> Zeroizing<[u8; PAYLOAD_LEN]> {
        let mut out = Zeroizing::new([0u8; PAYLOAD_LEN]);
        out[..8].copy_from_slice(&self.chain_id.to_be_bytes());
        out[8..28].copy_from_slice(self.escrow.as_slice());
        out[28..60].copy_from_slice(self.secret.expose_bytes());
        out[60..].copy_from_slice(self.salt.expose_bytes());
        out
    }

    /// Reads a 76-byte payload.
    pub fn from_payload(payload: &[u8]) -> Result<Self, LinkError> {
        if payload.len() != PAYLOAD_LEN {
            return Err(LinkError::PayloadLength {
                expected: PAYLOAD_LEN,
                got: payload.len(),
            });
        }
        let mut chain = [0u8; 8];
        chain.copy_from_slice(&payload[..8]);
        let chain_id = u64::from_be_bytes(chain);
        if chain_id == 0 {
            return Err(LinkError::ZeroChainId);
        }
        let escrow = Address::from_slice(&payload[8..28]);
        let mut secret = Zeroizing::new([0u8; 32]);
        secret.copy_from_slice(&payload[28..60]);
        let secret = ClaimSecret::from_bytes(*secret).map_err(|_| LinkError::InvalidSecret)?;
        let mut salt = [0u8; SALT_LEN];
        salt.copy_from_slice(&payload[60..]);
        Ok(Self {
            chain_id,
            escrow,
            secret,
            salt: Salt::from_bytes(salt),
        })
    }

    /// `sm1.<base64url>`: the bare form. Secret: never log it.
    pub fn to_bare(&self) -> String {
        format!(
            "{LINK_PREFIX}{}",
            URL_SAFE_NO_PAD.encode(&self.to_payload()[..])
        )
    }

    /// `https://<host>/claim#sm1.<base64url>`. `host` may include a port or a path
    /// prefix (`example.com/app`); a trailing `/` is dropped. Secret: never log it.
    pub fn to_url(&self, host: &str) -> String {
        self.to_url_from(host, None)
    }

    /// [`ClaimLink::to_url`] with the sender as the notification names them in a
    /// `?from=` query (percent-encoded UTF-8), which the claim page shows. The query is
    /// not part of the link: it is not secret, not authenticated, and parsers ignore it.
    pub fn to_url_from(&self, host: &str, from: Option<&str>) -> String {
        let query = match from.map(str::trim).filter(|f| !f.is_empty()) {
            Some(f) => format!("?from={}", percent_encode(f)),
            None => String::new(),
        };
        format!(
            "https://{}/claim{query}#{}",
            host.trim_end_matches('/'),
            self.to_bare()
        )
    }

    /// The first valid claim link written anywhere in `text` (a reply quoting its
    /// notification, a page of text): each [`LINK_PREFIX`] and the base64url
    /// characters after it are tried in turn.
    pub fn find_in(text: &str) -> Option<Self> {
        let mut rest = text;
        while let Some(at) = rest.find(LINK_PREFIX) {
            let tail = &rest[at..];
            let body = tail[LINK_PREFIX.len()..]
                .bytes()
                .take_while(|b| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_')
                .count();
            if let Ok(link) = Self::parse(&tail[..LINK_PREFIX.len() + body]) {
                return Some(link);
            }
            rest = &tail[LINK_PREFIX.len()..];
        }
        None
    }

    /// Parses the bare or URL form (see the module docs).
    pub fn parse(text: &str) -> Result<Self, LinkError> {
        if text.len() > MAX_LINK_INPUT {
            return Err(LinkError::TooLong {
                max: MAX_LINK_INPUT,
                got: text.len(),
            });
        }
        let mut text = text.trim();
        if let Some(inner) = text.strip_prefix('<').and_then(|t| t.strip_suffix('>')) {
            text = inner.trim();
        }
        if text.is_empty() {
            return Err(LinkError::Empty);
        }
        let token = if text.starts_with("sm") && !text.contains("://") {
            text
        } else if text.contains("://") {
            text.split_once('#')
                .map(|(_, f)| f)
                .ok_or(LinkError::MissingFragment)?
        } else if let Some((_, fragment)) = text.split_once('#') {
            // A URL copied without its scheme: `claim.example/claim#sm1.…`.
            fragment
        } else {
            return Err(LinkError::MissingPrefix);
        };
        let encoded = match token.strip_prefix(LINK_PREFIX) {
            Some(rest) => rest,
            None => return Err(version_error(token)),
        };
        if let Some((position, character)) = encoded
            .chars()
            .enumerate()
            .find(|(_, c)| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_'))
        {
            return Err(LinkError::InvalidBase64 {
                character,
                position,
            });
        }
        if encoded.len() % 4 == 1 {
            return Err(LinkError::InvalidBase64Length { got: encoded.len() });
        }
        let got = encoded.len() * 3 / 4;
        if got != PAYLOAD_LEN {
            return Err(LinkError::PayloadLength {
                expected: PAYLOAD_LEN,
                got,
            });
        }
        let payload = URL_SAFE_NO_PAD
            .decode(encoded)
            .map(Zeroizing::new)
            .map_err(|e| match e {
                base64::DecodeError::InvalidByte(position, byte)
                | base64::DecodeError::InvalidLastSymbol(position, byte) => {
                    LinkError::InvalidBase64 {
                        character: char::from(byte),
                        position,
                    }
                }
                base64::DecodeError::InvalidLength(_) | base64::DecodeError::InvalidPadding => {
                    LinkError::InvalidBase64Length { got: encoded.len() }
                }
            })?;
        Self::from_payload(&payload)
    }
}

/// `sm<digits>.` with another number is an unknown version; anything else has no prefix.
fn version_error(token: &str) -> LinkError {
    let Some(rest) = token.strip_prefix("sm") else {
        return LinkError::MissingPrefix;
    };
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    if digits > 0 && digits <= 8 && rest.as_bytes().get(digits) == Some(&b'.') {
        LinkError::UnknownVersion {
            got: token[..2 + digits + 1].to_string(),
        }
    } else {
        LinkError::MissingPrefix
    }
}

/// RFC 3986 percent-encoding of everything but the unreserved characters (also the
/// qtum backend's wallet path segment).
pub(crate) fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn find_in_skips_a_broken_link_and_stops_at_punctuation() {
        let link = fixed();
        let text = format!("see sm1.notalink here\n> Claim it: {}.\n", link.to_bare());
        assert_eq!(ClaimLink::find_in(&text), Some(link));
        assert_eq!(ClaimLink::find_in("sm1. and sm1.x"), None);
    }

    fn fixed() -> ClaimLink {
        ClaimLink {
            chain_id: 8890,
            escrow: Address::repeat_byte(0xaa),
            secret: ClaimSecret::from_bytes([0x01; 32]).unwrap(),
            salt: Salt::from_bytes([0x5a; 16]),
        }
    }

    #[test]
    fn the_sender_rides_in_a_query_that_parsing_ignores() {
        let link = fixed();
        let url = link.to_url_from("claim.example", Some("Zoë <zoe@example.org>"));
        assert!(
            url.starts_with(
                "https://claim.example/claim?from=Zo%C3%AB%20%3Czoe%40example.org%3E#sm1."
            ),
            "{url}"
        );
        assert_eq!(ClaimLink::parse(&url).unwrap(), link);
        assert_eq!(
            link.to_url_from("claim.example", Some("  ")),
            link.to_url("claim.example")
        );
    }

    #[test]
    fn round_trips_in_every_accepted_form() {
        let link = fixed();
        let bare = link.to_bare();
        assert_eq!(bare.len(), LINK_PREFIX.len() + ENCODED_LEN);
        let url = link.to_url("claim.example/");
        assert_eq!(url, format!("https://claim.example/claim#{bare}"));
        for form in [
            bare.clone(),
            url.clone(),
            format!("  {bare}\r\n"),
            format!("<{url}>"),
            format!("< {bare} >"),
            format!("http://localhost:8080/claim#{bare}"),
            format!("claim.example/claim#{bare}"),
        ] {
            assert_eq!(ClaimLink::parse(&form).unwrap(), link, "{form}");
        }
    }

    #[test]
    fn payload_layout() {
        let payload = fixed().to_payload();
        assert_eq!(&payload[..8], &8890u64.to_be_bytes());
        assert_eq!(&payload[8..28], &[0xaa; 20]);
        assert_eq!(&payload[28..60], &[0x01; 32]);
        assert_eq!(&payload[60..], &[0x5a; 16]);
    }

    #[test]
    fn debug_is_redacted() {
        let shown = format!("{:?}", fixed());
        assert!(!shown.contains("0101"), "{shown}");
        assert!(!shown.to_lowercase().contains("5a5a"), "{shown}");
        assert!(shown.contains("8890") && shown.contains("redacted"));
    }

    #[test]
    fn errors_name_the_problem() {
        let bare = fixed().to_bare();
        let body = &bare[4..];
        assert_eq!(ClaimLink::parse(""), Err(LinkError::Empty));
        assert_eq!(ClaimLink::parse("<>"), Err(LinkError::Empty));
        assert_eq!(ClaimLink::parse(body), Err(LinkError::MissingPrefix));
        assert_eq!(
            ClaimLink::parse(&format!("sm2.{body}")),
            Err(LinkError::UnknownVersion { got: "sm2.".into() })
        );
        assert_eq!(
            ClaimLink::parse(&format!("sm.{body}")),
            Err(LinkError::MissingPrefix)
        );
        assert_eq!(
            ClaimLink::parse("https://claim.example/claim"),
            Err(LinkError::MissingFragment)
        );
        assert_eq!(
            ClaimLink::parse("https://claim.example/claim#"),
            Err(LinkError::MissingPrefix)
        );
        let mut bad = bare.clone();
        bad.replace_range(10..11, "+");
        assert_eq!(
            ClaimLink::parse(&bad),
            Err(LinkError::InvalidBase64 {
                character: '+',
                position: 6
            })
        );
        assert_eq!(
            ClaimLink::parse(&format!("{bare}==")),
            Err(LinkError::InvalidBase64 {
                character: '=',
                position: 102
            })
        );
        assert_eq!(
            ClaimLink::parse(&bare[..bare.len() - 4]),
            Err(LinkError::PayloadLength {
                expected: 76,
                got: 73
            })
        );
        assert_eq!(
            ClaimLink::parse(&bare[..bare.len() - 1]),
            Err(LinkError::InvalidBase64Length { got: 101 })
        );
        // The last character carries 2 stray bits here; 'B' instead of 'A' sets one.
        let last = bare.chars().last().unwrap();
        let mut stray = bare[..bare.len() - 1].to_string();
        stray.push(if last == 'A' { 'B' } else { 'A' });
        assert!(matches!(
            ClaimLink::parse(&stray),
            Err(LinkError::InvalidBase64 { position: 101, .. }) | Ok(_)
        ));
        let mut zero_chain = fixed().to_payload();
        zero_chain[..8].fill(0);
        assert_eq!(
            ClaimLink::from_payload(&zero_chain[..]),
            Err(LinkError::ZeroChainId)
        );
        let mut zero_secret = fixed().to_payload();
        zero_secret[28..60].fill(0);
        let text = format!("sm1.{}", URL_SAFE_NO_PAD.encode(&zero_secret[..]));
        assert_eq!(ClaimLink::parse(&text), Err(LinkError::InvalidSecret));
        assert_eq!(LinkError::InvalidSecret.field(), Some("claim key secret"));
        assert!(matches!(
            ClaimLink::parse(&"a".repeat(MAX_LINK_INPUT + 1)),
            Err(LinkError::TooLong { .. })
        ));
    }

    #[test]
    fn non_canonical_last_character_is_refused() {
        // 76 bytes = 25 full groups + 1 byte → the last char holds 2 data bits + 4 zero bits.
        let bare = fixed().to_bare();
        let last = bare.as_bytes()[bare.len() - 1];
        let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let idx = alphabet.iter().position(|&c| c == last).unwrap();
        let tweaked = alphabet[idx | 1] as char; // sets a bit that must be zero
        let mut stray = bare[..bare.len() - 1].to_string();
        stray.push(tweaked);
        assert_eq!(
            ClaimLink::parse(&stray),
            Err(LinkError::InvalidBase64 {
                character: tweaked,
                position: 101
            })
        );
    }

    proptest! {
        #[test]
        fn random_links_round_trip(chain in 1u64.., escrow in any::<[u8; 20]>(), salt in any::<[u8; 16]>()) {
            let link = ClaimLink {
                chain_id: chain,
                escrow: Address::from(escrow),
                secret: ClaimSecret::random(),
                salt: Salt::from_bytes(salt),
            };
            prop_assert_eq!(ClaimLink::parse(&link.to_bare()).unwrap(), link.clone());
            prop_assert_eq!(ClaimLink::parse(&link.to_url("h.example")).unwrap(), link);
        }

        #[test]
        fn parse_never_panics(s in "\\PC{0,200}") {
            let _ = ClaimLink::parse(&s);
            let _ = ClaimLink::parse(&format!("sm1.{s}"));
        }
    }
}
