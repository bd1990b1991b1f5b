//! The broker's own blocks: REGISTER (the owner of a Qtum address names the mailbox
//! that receives its mail, and optionally an alias), and the BiSMTP exchange between
//! brokers: RESOLVE (which address does `alice@brokerB` name?), RESOLVED (the answer)
//! and RECEIPT (the payer's broker tells the payee's broker that it paid).
//!
//! ```text
//! -----BEGIN BISMTP REGISTER-----     -----BEGIN BISMTP RECEIPT-----
//! Version: 1                          Version: 1
//! Chain: 8890                         Chain: 8890
//! Domain: broker.test                 Amount: 0.5 QTUM
//! Address: q…                         Tx: 0x…            (32 bytes)
//! Mailbox: alice@example.org          To: q…
//! Name: alice                         From: bob@brokera.test
//! Time: 1796000000                    -----END BISMTP RECEIPT-----
//! Signature: 0x…
//! -----END BISMTP REGISTER-----
//! ```
//!
//! A registration is signed by the address's key over [`Registration::text`], as an
//! EIP-191 personal message, so that any Ethereum-style wallet can make it. Armor,
//! line rules and limits are those of the CLAIM block; the exact forms and the
//! vectors are in docs/PROTOCOL-TEXT.md ("Broker addresses").
//!
//! ```
//! use springmail_sdk::markup::broker::{find_broker_block, BrokerBlock};
//! let text = "-----BEGIN BISMTP RESOLVE-----\nVersion: 1\nName: Alice@BrokerB.test\nRequest: r-0001\n-----END BISMTP RESOLVE-----\n";
//! let Some(BrokerBlock::Resolve(r)) = find_broker_block(text, &[]).unwrap() else { panic!() };
//! assert_eq!(r.name, "alice@brokerb.test");
//! ```

use alloy::primitives::{Address, B256};

use super::{
    check_version, collect_fields, find_all_armor, index_of, non_empty, nonzero, parse_hex,
    parse_u64, truncate, ArmorBlock, FieldError, MarkupError, RawField,
};
use crate::amount::{Amount, Asset};
use crate::email;
use crate::keys::{personal_digest, KeyError, Signature};
use crate::qtum;

/// The block kinds of this module.
pub const BROKER_KINDS: [&str; 4] = ["REGISTER", "RESOLVE", "RESOLVED", "RECEIPT"];
/// Fields of a REGISTER block, in rendering order (`Name` may be left out).
pub const REGISTER_FIELDS: [&str; 8] = [
    "Version",
    "Chain",
    "Domain",
    "Address",
    "Mailbox",
    "Name",
    "Time",
    "Signature",
];
/// Fields of a RESOLVE block.
pub const RESOLVE_FIELDS: [&str; 3] = ["Version", "Name", "Request"];
/// Fields of a RESOLVED block.
pub const RESOLVED_FIELDS: [&str; 5] = ["Version", "Chain", "Name", "Request", "Address"];
/// Fields of a RECEIPT block.
pub const RECEIPT_FIELDS: [&str; 6] = ["Version", "Chain", "Amount", "Tx", "To", "From"];
/// The first line of the signed registration text.
pub const REGISTER_TAG: &str = "springmail/register/v1";
/// `Address: unknown` in a RESOLVED block: the broker has no such name.
pub const UNKNOWN: &str = "unknown";

/// What the owner of an address signs to register it at a broker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    /// The chain whose address this is.
    pub chain_id: u64,
    /// The broker's domain (lowercase), so that a registration at one broker is not
    /// valid at another.
    pub domain: String,
    /// The registered address (20 bytes: a Qtum P2PKH hash160 or an EVM account).
    pub address: Address,
    /// The mailbox mail for the address is forwarded to (normalized).
    pub mailbox: String,
    /// An alias `name@domain`, lowercase; `None` registers the address alone.
    pub name: Option<String>,
    /// Unix seconds when it was signed: brokers accept it only near their clock, and
    /// a newer registration replaces an older one.
    pub time: u64,
}

impl Registration {
    /// The exact text signed, `\n` line ends and a final `\n`:
    ///
    /// ```text
    /// springmail/register/v1
    /// chain: 8890
    /// domain: broker.test
    /// address: q…            (as rendered: base58 on Qtum chains)
    /// mailbox: alice@example.org
    /// name: alice            (empty after the colon and space when there is none)
    /// time: 1796000000
    /// ```
    pub fn text(&self) -> String {
        format!(
            "{REGISTER_TAG}\nchain: {}\ndomain: {}\naddress: {}\nmailbox: {}\nname: {}\ntime: {}\n",
            self.chain_id,
            self.domain,
            qtum::format_address(self.chain_id, self.address),
            self.mailbox,
            self.name.as_deref().unwrap_or(""),
            self.time
        )
    }

    /// The EIP-191 personal-message digest of [`Registration::text`]:
    /// `keccak256("\x19Ethereum Signed Message:\n" ‖ len ‖ text)`.
    pub fn digest(&self) -> B256 {
        personal_digest(self.text().as_bytes())
    }

    /// Signs the registration with the address's key.
    pub fn sign(&self, key: &crate::keys::ClaimSecret) -> Signature {
        key.sign_digest(&self.digest())
    }

    /// Whether `signature` was made by the key of [`Registration::address`]: its
    /// Qtum identity (hash160 of the compressed public key) or its EVM account
    /// (keccak of the public key) must be the address.
    pub fn signed_by_owner(&self, signature: &Signature) -> Result<bool, KeyError> {
        signature.signed_by("Signature", &self.digest(), self.address)
    }
}

/// A REGISTER block: a registration and its owner's signature. The signature's form
/// is checked here; whether the owner made it, by [`Registration::signed_by_owner`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisterBlock {
    /// What was signed.
    pub registration: Registration,
    /// The owner's signature.
    pub signature: Signature,
}

impl RegisterBlock {
    /// The canonical block.
    pub fn render(&self) -> String {
        let r = &self.registration;
        let name = r
            .name
            .as_ref()
            .map(|n| format!("Name: {n}\n"))
            .unwrap_or_default();
        format!(
            "-----BEGIN BISMTP REGISTER-----\nVersion: 1\nChain: {}\nDomain: {}\nAddress: {}\nMailbox: {}\n{name}Time: {}\nSignature: 0x{}\n-----END BISMTP REGISTER-----\n",
            r.chain_id,
            r.domain,
            qtum::format_address(r.chain_id, r.address),
            r.mailbox,
            r.time,
            hex::encode(self.signature.0)
        )
    }
}

/// A RESOLVE block: a broker asks another which address a name at its domain names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolveBlock {
    /// The name asked about, `local@domain`, normalized.
    pub name: String,
    /// The asker's request id, repeated in the answer.
    pub request: String,
}

impl ResolveBlock {
    /// The canonical block.
    pub fn render(&self) -> String {
        format!(
            "-----BEGIN BISMTP RESOLVE-----\nVersion: 1\nName: {}\nRequest: {}\n-----END BISMTP RESOLVE-----\n",
            self.name, self.request
        )
    }
}

/// A RESOLVED block: the answer to a RESOLVE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedBlock {
    /// The chain of the address.
    pub chain_id: u64,
    /// The name asked about, normalized.
    pub name: String,
    /// The request id of the RESOLVE.
    pub request: String,
    /// The address, or `None` for `unknown`.
    pub address: Option<Address>,
}

impl ResolvedBlock {
    /// The canonical block.
    pub fn render(&self) -> String {
        let address = self.address.map_or_else(
            || UNKNOWN.to_string(),
            |a| qtum::format_address(self.chain_id, a),
        );
        format!(
            "-----BEGIN BISMTP RESOLVED-----\nVersion: 1\nChain: {}\nName: {}\nRequest: {}\nAddress: {address}\n-----END BISMTP RESOLVED-----\n",
            self.chain_id, self.name, self.request
        )
    }
}

/// A RECEIPT block: the payer's broker paid `amount` to `to` in transaction `tx`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceiptBlock {
    /// The chain.
    pub chain_id: u64,
    /// What was paid: integer base units and the asset (its symbol names it).
    pub amount: Amount,
    /// The transaction id.
    pub tx: B256,
    /// The address paid.
    pub to: Address,
    /// Who paid: the payer's mailbox, normalized.
    pub from: String,
}

impl ReceiptBlock {
    /// The canonical block.
    pub fn render(&self) -> String {
        format!(
            "-----BEGIN BISMTP RECEIPT-----\nVersion: 1\nChain: {}\nAmount: {}\nTx: {}\nTo: {}\nFrom: {}\n-----END BISMTP RECEIPT-----\n",
            self.chain_id,
            self.amount,
            self.tx,
            qtum::format_address(self.chain_id, self.to),
            self.from
        )
    }
}

/// One broker block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BrokerBlock {
    /// REGISTER.
    Register(RegisterBlock),
    /// RESOLVE.
    Resolve(ResolveBlock),
    /// RESOLVED.
    Resolved(ResolvedBlock),
    /// RECEIPT.
    Receipt(ReceiptBlock),
}

impl BrokerBlock {
    /// The block kind.
    pub fn kind(&self) -> &'static str {
        match self {
            BrokerBlock::Register(_) => "REGISTER",
            BrokerBlock::Resolve(_) => "RESOLVE",
            BrokerBlock::Resolved(_) => "RESOLVED",
            BrokerBlock::Receipt(_) => "RECEIPT",
        }
    }

    /// The canonical block.
    pub fn render(&self) -> String {
        match self {
            BrokerBlock::Register(b) => b.render(),
            BrokerBlock::Resolve(b) => b.render(),
            BrokerBlock::Resolved(b) => b.render(),
            BrokerBlock::Receipt(b) => b.render(),
        }
    }
}

/// Why a text's broker block was refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum BrokerError {
    /// The block (or the armor around it) is malformed.
    #[error(transparent)]
    Markup(#[from] MarkupError),
    /// More than one unquoted broker block: one mail, one request.
    #[error("two BiSMTP {first} and {second} blocks (lines {first_line} and {second_line}); send one per mail")]
    MultipleBlocks {
        /// The first kind.
        first: String,
        /// The second kind.
        second: String,
        /// BEGIN line of the first.
        first_line: usize,
        /// BEGIN line of the second.
        second_line: usize,
    },
}

/// Finds the one unquoted REGISTER, RESOLVE, RESOLVED or RECEIPT block of `text`.
///
/// Quoted blocks (earlier mail being answered) and blocks of other kinds are
/// ignored; none is `Ok(None)`; two are [`BrokerError::MultipleBlocks`]. `tokens`
/// are the token assets a RECEIPT's `Amount` may name besides the chain's own.
pub fn find_broker_block(text: &str, tokens: &[Asset]) -> Result<Option<BrokerBlock>, BrokerError> {
    let blocks: Vec<ArmorBlock> = find_all_armor(text)?
        .into_iter()
        .filter(|b| b.quote_depth == 0 && BROKER_KINDS.contains(&b.kind.as_str()))
        .collect();
    match blocks.as_slice() {
        [] => Ok(None),
        [one] => Ok(Some(from_armor(one, tokens)?)),
        [first, second, ..] => Err(BrokerError::MultipleBlocks {
            first: first.kind.clone(),
            second: second.kind.clone(),
            first_line: first.begin_line,
            second_line: second.begin_line,
        }),
    }
}

struct Fields<'a> {
    names: &'static [&'static str],
    raw: Vec<Option<RawField>>,
    _block: &'a ArmorBlock,
}

impl Fields<'_> {
    fn get(&self, name: &'static str) -> Result<&RawField, MarkupError> {
        self.raw[index_of(self.names, name)]
            .as_ref()
            .ok_or(MarkupError::MissingField { field: name })
    }

    fn value<T>(
        &self,
        name: &'static str,
        parse: impl FnOnce(&str) -> Result<T, FieldError>,
    ) -> Result<T, MarkupError> {
        let raw = self.get(name)?;
        non_empty(&raw.value)
            .and_then(parse)
            .map_err(|reason| MarkupError::InvalidField {
                field: name,
                line: raw.line,
                reason,
            })
    }
}

fn fields<'a>(
    block: &'a ArmorBlock,
    names: &'static [&'static str],
    optional: &[&str],
) -> Result<Fields<'a>, MarkupError> {
    let raw = collect_fields(block, names)?;
    let f = Fields {
        names,
        raw,
        _block: block,
    };
    check_version(f.get("Version")?)?;
    for name in names {
        if !optional.contains(name) {
            f.get(name)?;
        }
    }
    Ok(f)
}

fn chain(value: &str) -> Result<u64, FieldError> {
    match parse_u64(value, u64::MAX)? {
        0 => Err(FieldError::ZeroChainId),
        id => Ok(id),
    }
}

fn address(chain_id: u64) -> impl Fn(&str) -> Result<Address, FieldError> {
    move |v| nonzero(qtum::parse_address(chain_id, v)?)
}

fn mailbox(value: &str) -> Result<String, FieldError> {
    if !value.contains('@') {
        return Err(FieldError::Token {
            got: truncate(value),
            reason: "not an email address",
        });
    }
    Ok(email::normalize(value)?)
}

/// A name at a broker: `<q-address>@domain` keeps its local part as written (base58
/// is case-sensitive) and lowercases the domain; any other address is normalized.
pub fn parse_broker_name(value: &str) -> Result<String, FieldError> {
    let normalized = mailbox(value)?;
    match value.trim().rsplit_once('@') {
        Some((local, _)) if qtum::decode_address(local).is_ok() => {
            let domain = normalized.rsplit_once('@').map_or("", |(_, d)| d);
            Ok(format!("{local}@{domain}"))
        }
        _ => Ok(normalized),
    }
}

/// A DNS name in lowercase ASCII: labels of letters, digits and `-`, dot-separated.
fn domain(value: &str) -> Result<String, FieldError> {
    let lower = value.to_ascii_lowercase();
    let ok = lower.len() <= 253
        && lower.contains('.')
        && lower.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    if !ok {
        return Err(FieldError::Token {
            got: truncate(value),
            reason: "not a domain name (ASCII labels separated by dots)",
        });
    }
    Ok(lower)
}

/// Whether a local part reads as a phone number: seven or more digits and only phone
/// punctuation (`+41 79 123 45 67`, `0791234567`, `+1-555-0100`).
pub fn looks_like_phone_number(local: &str) -> bool {
    let digits = local.chars().filter(char::is_ascii_digit).count();
    digits >= 7
        && local
            .chars()
            .all(|c| c.is_ascii_digit() || "+-.() ".contains(c))
}

/// An alias: 1–64 characters of `a–z 0–9 . _ -` starting with a letter (ASCII case
/// is folded). Phone numbers are refused by name: aliases by number need a check
/// that the number's owner holds it, which brokers do not make.
pub fn parse_alias(value: &str) -> Result<String, FieldError> {
    if looks_like_phone_number(value) {
        return Err(FieldError::Token {
            got: truncate(value),
            reason: "phone-number aliases are not offered (they need a check that the number's owner holds it)",
        });
    }
    let lower = value.to_ascii_lowercase();
    let ok = (1..=64).contains(&lower.len())
        && lower.as_bytes()[0].is_ascii_lowercase()
        && lower
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b));
    if !ok {
        return Err(FieldError::Token {
            got: truncate(value),
            reason: "an alias is 1-64 letters, digits, '.', '_' or '-', starting with a letter",
        });
    }
    Ok(lower)
}

fn request_id(value: &str) -> Result<String, FieldError> {
    if (4..=64).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
    {
        Ok(value.to_string())
    } else {
        Err(FieldError::Token {
            got: truncate(value),
            reason: "a request id is 4-64 letters, digits or '-'",
        })
    }
}

fn signature(value: &str) -> Result<Signature, FieldError> {
    let bytes = parse_hex(value, 65)?;
    Ok(Signature::from_slice("Signature", &bytes)?)
}

/// Parses one armor block of a kind in [`BROKER_KINDS`].
pub fn from_armor(block: &ArmorBlock, tokens: &[Asset]) -> Result<BrokerBlock, MarkupError> {
    match block.kind.as_str() {
        "REGISTER" => {
            let f = fields(block, &REGISTER_FIELDS, &["Name"])?;
            let chain_id = f.value("Chain", chain)?;
            let registration = Registration {
                chain_id,
                domain: f.value("Domain", domain)?,
                address: f.value("Address", address(chain_id))?,
                mailbox: f.value("Mailbox", mailbox)?,
                name: match f.get("Name") {
                    Ok(_) => Some(f.value("Name", parse_alias)?),
                    Err(_) => None,
                },
                time: f.value("Time", |v| parse_u64(v, crate::protocol::MAX_UINT40))?,
            };
            Ok(BrokerBlock::Register(RegisterBlock {
                registration,
                signature: f.value("Signature", signature)?,
            }))
        }
        "RESOLVE" => {
            let f = fields(block, &RESOLVE_FIELDS, &[])?;
            Ok(BrokerBlock::Resolve(ResolveBlock {
                name: f.value("Name", parse_broker_name)?,
                request: f.value("Request", request_id)?,
            }))
        }
        "RESOLVED" => {
            let f = fields(block, &RESOLVED_FIELDS, &[])?;
            let chain_id = f.value("Chain", chain)?;
            Ok(BrokerBlock::Resolved(ResolvedBlock {
                chain_id,
                name: f.value("Name", parse_broker_name)?,
                request: f.value("Request", request_id)?,
                address: f.value("Address", |v| {
                    if v.eq_ignore_ascii_case(UNKNOWN) {
                        Ok(None)
                    } else {
                        address(chain_id)(v).map(Some)
                    }
                })?,
            }))
        }
        "RECEIPT" => {
            let f = fields(block, &RECEIPT_FIELDS, &[])?;
            let chain_id = f.value("Chain", chain)?;
            let mut assets = vec![Asset::for_chain(chain_id)];
            assets.extend(tokens.iter().cloned());
            Ok(BrokerBlock::Receipt(ReceiptBlock {
                chain_id,
                amount: f.value("Amount", |v| {
                    let a = Amount::parse_among(v, &assets)?;
                    if a.units() == 0 {
                        return Err(FieldError::ZeroAmount);
                    }
                    Ok(a)
                })?,
                tx: f.value("Tx", |v| Ok(B256::from_slice(&parse_hex(v, 32)?)))?,
                to: f.value("To", address(chain_id))?,
                from: f.value("From", mailbox)?,
            }))
        }
        // Only the kinds of BROKER_KINDS are handed here.
        _ => Err(MarkupError::MalformedLine {
            line: block.begin_line,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::ClaimSecret;

    fn key() -> ClaimSecret {
        ClaimSecret::from_bytes([0x11; 32]).unwrap()
    }

    fn registration(name: Option<&str>) -> Registration {
        let k = key();
        Registration {
            chain_id: 8890,
            domain: "brokerb.test".into(),
            address: qtum::qtum_sender_of_secret(&k),
            mailbox: "alice@example.org".into(),
            name: name.map(str::to_string),
            time: 1_796_000_000,
        }
    }

    #[test]
    fn a_registration_round_trips_and_its_owner_is_proven() {
        let r = registration(Some("alice"));
        let block = RegisterBlock {
            signature: r.sign(&key()),
            registration: r.clone(),
        };
        let text = block.render();
        let Some(BrokerBlock::Register(back)) = find_broker_block(&text, &[]).unwrap() else {
            panic!("{text}")
        };
        assert_eq!(back, block);
        assert!(r.signed_by_owner(&block.signature).unwrap());
        // The EVM account of the same key proves it too.
        let evm = Registration {
            address: key().address(),
            ..r.clone()
        };
        assert!(evm.signed_by_owner(&evm.sign(&key())).unwrap());
        // Any change to what was signed breaks it.
        let other = Registration {
            mailbox: "mallory@example.org".into(),
            ..r
        };
        assert!(!other.signed_by_owner(&block.signature).unwrap());
    }

    #[test]
    fn the_personal_digest_is_eip191() {
        let text = registration(None).text();
        assert_eq!(
            personal_digest(text.as_bytes()),
            alloy::primitives::eip191_hash_message(text.as_bytes())
        );
    }

    #[test]
    fn phone_aliases_and_bad_names_are_refused_by_field() {
        for (name, why) in [
            ("+41791234567", "phone-number"),
            ("0791234567", "phone-number"),
            ("9lives", "starting with a letter"),
            ("al ice", "starting with a letter"),
        ] {
            assert!(
                matches!(parse_alias(name), Err(FieldError::Token { reason, .. }) if reason.contains(why)),
                "{name}"
            );
        }
        assert_eq!(parse_alias("Alice.B").unwrap(), "alice.b");
    }

    #[test]
    fn two_blocks_are_refused_and_quoted_ones_ignored() {
        let resolve = ResolveBlock {
            name: "alice@brokerb.test".into(),
            request: "r-0001".into(),
        }
        .render();
        let quoted: String = resolve.lines().map(|l| format!("> {l}\n")).collect();
        assert!(find_broker_block(&quoted, &[]).unwrap().is_none());
        let two = format!("{resolve}\n{resolve}");
        assert!(matches!(
            find_broker_block(&two, &[]),
            Err(BrokerError::MultipleBlocks { first_line: 1, .. })
        ));
    }
}
