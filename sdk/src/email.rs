//! Email addresses: normalization, salts and the on-chain commitment.
//!
//! A deposit names its recipient by a *commitment*, never by the address itself:
//!
//! ```text
//! recipient = keccak256("springmail/v1" ‖ 0x00 ‖ normalize(email) ‖ 0x00 ‖ salt)
//! ```
//!
//! `salt` is 16 random bytes chosen per deposit, so on-chain data cannot be matched
//! against a list of known addresses. The sender's SDK and the watcher must produce
//! the same bytes for the same mailbox, so [`normalize`] is part of the protocol:
//!
//! 1. trim surrounding whitespace;
//! 2. refuse control characters and whitespace anywhere inside;
//! 3. split at the **last** `@` (a quoted local part may itself contain `@`);
//! 4. local part: a dot-atom (RFC 5322 `atext`, plus any non-ASCII character as RFC 6531
//!    allows, in runs joined by single dots: no dot at either end, none doubled) or a
//!    quoted string (`"…"`, with `\` escaping `"` and `\`); then Unicode lowercase, then NFC;
//! 5. domain: IDNA to ASCII (UTS #46, [`idna::domain_to_ascii`]), ASCII lowercase,
//!    one trailing dot removed; every label must then be 1..=63 bytes of
//!    letters, digits and inner hyphens (RFC 5321 `sub-domain`);
//! 6. local part at most 64 bytes, whole address at most 254 bytes (after steps 4–5).
//!
//! There is no provider-specific folding: `john.doe+tag@gmail.com` and
//! `johndoe@gmail.com` are different recipients.
//!
//! ```
//! use springmail_sdk::email::{commitment, normalize, Salt};
//! assert_eq!(normalize("  Bob@Bücher.Example. ").unwrap(), "bob@xn--bcher-kva.example");
//! let salt = Salt::from_bytes([0x11; 16]);
//! // The commitment normalizes first, so raw and normalized forms agree.
//! assert_eq!(
//!     commitment("Bob@Example.com", &salt).unwrap(),
//!     commitment("bob@example.com", &salt).unwrap()
//! );
//! ```

use alloy::primitives::{keccak256, B256};
use rand::RngCore;
use unicode_normalization::UnicodeNormalization;
use zeroize::Zeroize;

/// The domain-separation tag hashed in front of every commitment.
pub const COMMITMENT_TAG: &[u8] = b"springmail/v1";
/// Longest local part, in UTF-8 bytes after normalization (RFC 5321 §4.5.3.1.1).
pub const MAX_LOCAL_PART_BYTES: usize = 64;
/// Longest address, in bytes after normalization (RFC 5321 path limit less the brackets).
pub const MAX_EMAIL_BYTES: usize = 254;
/// Inputs longer than this are refused before any Unicode processing, so hostile
/// input costs nothing. Normalization can shrink text (NFC, punycode), hence the slack.
pub const MAX_RAW_INPUT_BYTES: usize = 4 * 1024;
/// Length of a salt in bytes.
pub const SALT_LEN: usize = 16;

/// Why an email address or a salt was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EmailError {
    /// The input was empty or only whitespace.
    #[error("the email address is empty")]
    Empty,
    /// There is no `@`.
    #[error("the email address has no '@'")]
    MissingAt,
    /// Nothing before the last `@`.
    #[error("the email address has an empty local part (nothing before the '@')")]
    EmptyLocalPart,
    /// The local part is neither a dot-atom nor a quoted string (RFC 5322 §3.4.1).
    #[error("the local part of the email address is invalid: {reason}")]
    InvalidLocalPart {
        /// What is wrong, e.g. `'@' must be quoted` or `two dots in a row`.
        reason: String,
    },
    /// Nothing after the last `@` (or only a dot).
    #[error("the email address has an empty domain (nothing after the '@')")]
    EmptyDomain,
    /// The domain failed IDNA conversion or is not a valid mail domain.
    #[error("the domain of the email address is invalid: {reason}")]
    InvalidDomain {
        /// What is wrong, e.g. `empty label` or `'_' is not allowed`.
        reason: String,
    },
    /// A control character or whitespace inside the address (after trimming).
    #[error("the {part} of the email address contains {what} U+{code_point:04X} at character {position}")]
    ForbiddenCharacter {
        /// `"local part"` or `"domain"`.
        part: &'static str,
        /// `"a control character"` or `"whitespace"`.
        what: &'static str,
        /// The Unicode scalar value.
        code_point: u32,
        /// 0-based character index in the trimmed address.
        position: usize,
    },
    /// Local part longer than 64 bytes after normalization.
    #[error("the local part of the email address is {got} bytes; at most {max} are allowed")]
    LocalPartTooLong {
        /// The limit, [`MAX_LOCAL_PART_BYTES`].
        max: usize,
        /// The normalized length.
        got: usize,
    },
    /// Whole address longer than 254 bytes after normalization (or a huge raw input).
    #[error("the email address is {got} bytes; at most {max} are allowed")]
    TooLong {
        /// The limit, [`MAX_EMAIL_BYTES`] (or [`MAX_RAW_INPUT_BYTES`] for raw input).
        max: usize,
        /// The measured length.
        got: usize,
    },
    /// A salt was not 16 bytes of hex.
    #[error("the salt must be 0x followed by 32 hex digits (16 bytes): {reason}")]
    InvalidSalt {
        /// What is wrong.
        reason: &'static str,
    },
}

fn forbidden(part: &'static str, position: usize, c: char) -> Option<EmailError> {
    let what = if c.is_control() {
        "a control character"
    } else if c.is_whitespace() {
        "whitespace"
    } else {
        return None;
    };
    Some(EmailError::ForbiddenCharacter {
        part,
        what,
        code_point: u32::from(c),
        position,
    })
}

/// Normalizes an email address for the commitment (see the module docs for the rules).
///
/// Idempotent: `normalize(&normalize(x)?)? == normalize(x)?`.
pub fn normalize(input: &str) -> Result<String, EmailError> {
    if input.len() > MAX_RAW_INPUT_BYTES {
        return Err(EmailError::TooLong {
            max: MAX_RAW_INPUT_BYTES,
            got: input.len(),
        });
    }
    let trimmed = input.trim();
    if trimmed.is_empty() {
        return Err(EmailError::Empty);
    }
    let at = trimmed.rfind('@').ok_or(EmailError::MissingAt)?;
    let (local, domain) = (&trimmed[..at], &trimmed[at + 1..]);
    let local_chars = local.chars().count();
    for (i, c) in local.chars().enumerate() {
        if let Some(err) = forbidden("local part", i, c) {
            return Err(err);
        }
    }
    for (i, c) in domain.chars().enumerate() {
        if let Some(err) = forbidden("domain", local_chars + 1 + i, c) {
            return Err(err);
        }
    }
    if local.is_empty() {
        return Err(EmailError::EmptyLocalPart);
    }
    check_local_part(local)?;
    let local: String = local.to_lowercase().nfc().collect();
    if local.len() > MAX_LOCAL_PART_BYTES {
        return Err(EmailError::LocalPartTooLong {
            max: MAX_LOCAL_PART_BYTES,
            got: local.len(),
        });
    }
    let domain = normalize_domain(domain)?;
    let total = local.len() + 1 + domain.len();
    if total > MAX_EMAIL_BYTES {
        return Err(EmailError::TooLong {
            max: MAX_EMAIL_BYTES,
            got: total,
        });
    }
    Ok(format!("{local}@{domain}"))
}

/// RFC 5322 `atext`, widened by RFC 6531 to every non-ASCII character.
fn is_atext(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~".contains(c) || !c.is_ascii()
}

fn check_local_part(local: &str) -> Result<(), EmailError> {
    let invalid = |reason: String| Err(EmailError::InvalidLocalPart { reason });
    if let Some(inner) = local.strip_prefix('"') {
        let Some(inner) = inner.strip_suffix('"') else {
            return invalid("a quoted local part must end with '\"' just before the '@'".into());
        };
        if inner.is_empty() {
            return invalid("the quoted local part is empty".into());
        }
        let mut chars = inner.chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' if chars.next().is_none() => {
                    return invalid(
                        "a '\\' at the end of the quoted local part escapes nothing".into(),
                    );
                }
                '"' => {
                    return invalid(
                        "a '\"' inside the quoted local part must be escaped as '\\\"'".into(),
                    )
                }
                _ => {}
            }
        }
        return Ok(());
    }
    if local.starts_with('.') || local.ends_with('.') {
        return invalid("it starts or ends with a dot".into());
    }
    if local.contains("..") {
        return invalid("it has two dots in a row".into());
    }
    if let Some(c) = local.chars().find(|&c| c != '.' && !is_atext(c)) {
        let what = if c == '@' {
            "there is more than one '@'".to_string()
        } else {
            format!("{c:?} is not allowed outside quotes")
        };
        return invalid(what);
    }
    Ok(())
}

fn normalize_domain(domain: &str) -> Result<String, EmailError> {
    if domain.is_empty() || domain == "." {
        return Err(EmailError::EmptyDomain);
    }
    let ascii = idna::domain_to_ascii(domain).map_err(|e| EmailError::InvalidDomain {
        reason: format!("IDNA conversion failed ({e})"),
    })?;
    let mut ascii = ascii.to_ascii_lowercase();
    if ascii.ends_with('.') {
        ascii.pop();
    }
    if ascii.is_empty() {
        return Err(EmailError::EmptyDomain);
    }
    for label in ascii.split('.') {
        check_label(label)?;
    }
    Ok(ascii)
}

fn check_label(label: &str) -> Result<(), EmailError> {
    let invalid = |reason: String| Err(EmailError::InvalidDomain { reason });
    if label.is_empty() {
        return invalid("empty label (two dots in a row, or a leading dot)".into());
    }
    if label.len() > 63 {
        return invalid(format!(
            "label of {} bytes; at most 63 are allowed",
            label.len()
        ));
    }
    if let Some(c) = label
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '-'))
    {
        return invalid(format!(
            "{c:?} is not allowed (letters, digits and '-' only)"
        ));
    }
    if label.starts_with('-') || label.ends_with('-') {
        return invalid(format!("label {label:?} starts or ends with '-'"));
    }
    Ok(())
}

/// 16 random bytes that blind an email commitment.
///
/// Salts are secret-ish: together with a guess of the address they confirm who a
/// deposit is for. `Debug` is redacted and there is no `Display`; use
/// [`Salt::expose_bytes`] or [`Salt::expose_hex`] where the bytes must travel
/// (claim link, CLAIM block).
#[derive(Clone, PartialEq, Eq)]
pub struct Salt([u8; SALT_LEN]);

impl Drop for Salt {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl std::fmt::Debug for Salt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Salt(<redacted>)")
    }
}

impl Salt {
    /// A fresh salt from the operating system's generator.
    pub fn random() -> Self {
        let mut bytes = [0u8; SALT_LEN];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        Self(bytes)
    }

    /// Wraps 16 bytes.
    pub fn from_bytes(bytes: [u8; SALT_LEN]) -> Self {
        Self(bytes)
    }

    /// Parses `0x` followed by exactly 32 hex digits (either case; the `0x` is optional).
    pub fn from_hex(text: &str) -> Result<Self, EmailError> {
        let digits = text
            .strip_prefix("0x")
            .or_else(|| text.strip_prefix("0X"))
            .unwrap_or(text);
        if digits.len() != 2 * SALT_LEN {
            return Err(EmailError::InvalidSalt {
                reason: "wrong length",
            });
        }
        let mut bytes = [0u8; SALT_LEN];
        hex::decode_to_slice(digits, &mut bytes)
            .map_err(|_| EmailError::InvalidSalt { reason: "not hex" })?;
        Ok(Self(bytes))
    }

    /// The raw bytes; callers must not log them.
    pub fn expose_bytes(&self) -> &[u8; SALT_LEN] {
        &self.0
    }

    /// `0x` and 32 lowercase hex digits; callers must not log it.
    pub fn expose_hex(&self) -> String {
        format!("0x{}", hex::encode(self.0))
    }
}

/// The commitment to a recipient: `keccak256("springmail/v1" ‖ 0x00 ‖ normalize(email) ‖ 0x00 ‖ salt)`.
///
/// `email` may be raw or already normalized; it is normalized here either way.
pub fn commitment(email: &str, salt: &Salt) -> Result<B256, EmailError> {
    let normalized = normalize(email)?;
    let mut preimage =
        Vec::with_capacity(COMMITMENT_TAG.len() + 1 + normalized.len() + 1 + SALT_LEN);
    preimage.extend_from_slice(COMMITMENT_TAG);
    preimage.push(0);
    preimage.extend_from_slice(normalized.as_bytes());
    preimage.push(0);
    preimage.extend_from_slice(&salt.0);
    let hash = keccak256(&preimage);
    preimage.zeroize();
    Ok(hash)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn normalizes_case_idna_nfc_and_dots() {
        assert_eq!(normalize("alice@example.com").unwrap(), "alice@example.com");
        assert_eq!(
            normalize("  Alice@EXAMPLE.Com \n").unwrap(),
            "alice@example.com"
        );
        assert_eq!(
            normalize("alice@example.com.").unwrap(),
            "alice@example.com"
        );
        assert_eq!(
            normalize("bob@Bücher.example").unwrap(),
            "bob@xn--bcher-kva.example"
        );
        // "JOSE\u{301}" (E + combining acute) lowercases and composes to "josé".
        assert_eq!(
            normalize("JOSE\u{301}@example.com").unwrap(),
            "jos\u{e9}@example.com"
        );
        assert_eq!(
            normalize("\"a@b\"@example.com").unwrap(),
            "\"a@b\"@example.com"
        );
        // No provider folding.
        assert_eq!(
            normalize("John.Doe+tag@Gmail.com").unwrap(),
            "john.doe+tag@gmail.com"
        );
        // Fullwidth dot is an IDNA label separator.
        assert_eq!(normalize("a@example\u{3002}com").unwrap(), "a@example.com");
    }

    #[test]
    fn refuses_malformed_addresses() {
        assert_eq!(normalize("  "), Err(EmailError::Empty));
        assert_eq!(normalize("alice.example.com"), Err(EmailError::MissingAt));
        assert_eq!(normalize("@example.com"), Err(EmailError::EmptyLocalPart));
        assert_eq!(normalize("alice@"), Err(EmailError::EmptyDomain));
        assert_eq!(normalize("alice@."), Err(EmailError::EmptyDomain));
        assert!(matches!(
            normalize("alice@a..b"),
            Err(EmailError::InvalidDomain { .. })
        ));
        assert!(matches!(
            normalize("alice@a.com.."),
            Err(EmailError::InvalidDomain { .. })
        ));
        assert!(matches!(
            normalize("alice@-a.com"),
            Err(EmailError::InvalidDomain { .. })
        ));
        assert!(matches!(
            normalize("alice@a_b.com"),
            Err(EmailError::InvalidDomain { .. })
        ));
        assert!(matches!(
            normalize("alice@[127.0.0.1]"),
            Err(EmailError::InvalidDomain { .. })
        ));
        assert_eq!(
            normalize("al ice@example.com"),
            Err(EmailError::ForbiddenCharacter {
                part: "local part",
                what: "whitespace",
                code_point: 0x20,
                position: 2
            })
        );
        assert_eq!(
            normalize("alice@exa\u{7}mple.com"),
            Err(EmailError::ForbiddenCharacter {
                part: "domain",
                what: "a control character",
                code_point: 7,
                position: 9
            })
        );
        let long_local = format!("{}@example.com", "a".repeat(65));
        assert_eq!(
            normalize(&long_local),
            Err(EmailError::LocalPartTooLong { max: 64, got: 65 })
        );
        let long = format!(
            "{}@{}.{}.{}.{}",
            "a".repeat(64),
            "b".repeat(63),
            "c".repeat(63),
            "d".repeat(63),
            "e".repeat(10)
        );
        assert!(matches!(
            normalize(&long),
            Err(EmailError::TooLong { max: 254, .. })
        ));
        let huge = "a".repeat(MAX_RAW_INPUT_BYTES + 1);
        assert!(matches!(normalize(&huge), Err(EmailError::TooLong { .. })));
    }

    #[test]
    fn local_parts_must_be_dot_atoms_or_quoted_strings() {
        let bad = |s: &str| {
            assert!(
                matches!(normalize(s), Err(EmailError::InvalidLocalPart { .. })),
                "{s:?} was {:?}",
                normalize(s)
            )
        };
        bad("bob@@x.com");
        bad("b@ob@x.com");
        bad(".bob@x.com");
        bad("bob.@x.com");
        bad("bo..b@x.com");
        bad("bo(b@x.com");
        bad("bo,b@x.com");
        bad("\"bob@x.com");
        bad("bob\"@x.com");
        bad("\"\"@x.com");
        bad("\"a\"b\"@x.com");
        bad("\"ab\\\"@x.com");
        assert_eq!(normalize("@x.com"), Err(EmailError::EmptyLocalPart));
        // Accepted: atext specials, quoted strings (quotes kept, escapes as written),
        // non-ASCII local parts, IDN domains with one trailing dot.
        assert_eq!(normalize("o'neil+x@x.com").unwrap(), "o'neil+x@x.com");
        assert_eq!(normalize("\"bo..b\"@x.com").unwrap(), "\"bo..b\"@x.com");
        assert_eq!(normalize("\"a\\\"b\"@x.com").unwrap(), "\"a\\\"b\"@x.com");
        assert_eq!(
            normalize("Jörg@Bücher.Example.").unwrap(),
            "jörg@xn--bcher-kva.example"
        );
        assert_eq!(
            normalize(&format!("{}@x.com", "a".repeat(64)))
                .unwrap()
                .len(),
            70
        );
        assert!(matches!(
            normalize("bob@x.com.."),
            Err(EmailError::InvalidDomain { .. })
        ));
    }

    #[test]
    fn commitment_normalizes_and_depends_on_salt() {
        let s1 = Salt::from_bytes([1; 16]);
        let s2 = Salt::from_bytes([2; 16]);
        let a = commitment(" Bob@Example.COM ", &s1).unwrap();
        assert_eq!(a, commitment("bob@example.com", &s1).unwrap());
        assert_ne!(a, commitment("bob@example.com", &s2).unwrap());
        // Recompute the preimage by hand.
        let mut pre = b"springmail/v1\0bob@example.com\0".to_vec();
        pre.extend_from_slice(&[1; 16]);
        assert_eq!(a, keccak256(&pre));
        assert_eq!(commitment("nope", &s1), Err(EmailError::MissingAt));
    }

    #[test]
    fn salt_hex_and_redaction() {
        let salt = Salt::from_hex("0x000102030405060708090a0b0c0d0e0f").unwrap();
        assert_eq!(salt.expose_bytes()[15], 0x0f);
        assert_eq!(salt.expose_hex(), "0x000102030405060708090a0b0c0d0e0f");
        assert_eq!(
            Salt::from_hex("000102030405060708090A0B0C0D0E0F").unwrap(),
            salt
        );
        assert!(Salt::from_hex("0x0001").is_err());
        assert!(Salt::from_hex("0xzz0102030405060708090a0b0c0d0e0f").is_err());
        assert!(Salt::from_hex("0x000102030405060708090a0b0c0d0e0f00").is_err());
        assert_eq!(format!("{salt:?}"), "Salt(<redacted>)");
        assert_ne!(Salt::random(), Salt::random());
    }

    proptest! {
        #[test]
        fn normalize_is_idempotent_and_never_panics(s in "\\PC{0,40}@\\PC{0,30}") {
            if let Ok(n) = normalize(&s) {
                prop_assert_eq!(normalize(&n).unwrap(), n);
            }
        }

        #[test]
        fn normalize_never_panics_on_any_string(s in any::<String>()) {
            let _ = normalize(&s);
        }
    }
}
