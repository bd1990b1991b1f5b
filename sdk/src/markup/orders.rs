//! Mailbox orders: what the owner of a mailbox wallet asks the broker to do.
//!
//! Each order has a block form for programs (armored like CLAIM) and a human form,
//! one line as a person writes it:
//!
//! ```text
//! pay 0.5 QTUM to carol@outlook.test          -----BEGIN BISMTP PAY-----
//! balance                                     Version: 1
//! confirm K7QM-2XHD                           Chain: 8890
//! bind q… 0x…                                 Amount: 0.5 QTUM
//! claim                                       To: carol@outlook.test
//!                                             -----END BISMTP PAY-----
//! ```
//!
//! [`find_order`] reads a mail's subject and `text/plain` body: unquoted blocks, then
//! the body's first line, then a subject that is not a reply's. Quoted text is never
//! an order (a reply quoting a PAY must not pay again), and places that disagree are
//! refused. The rules and vectors are in docs/PROTOCOL-TEXT.md.
//!
//! ```
//! use springmail_sdk::markup::orders::{find_order, Order};
//! let found = find_order(Some("Re: your deposit"), "balance\n\n> older text\n", 8890, &[])
//!     .unwrap()
//!     .unwrap();
//! assert_eq!(found.order, Order::Balance);
//! ```

use alloy::primitives::Address;
use rand::RngCore;

use super::{
    check_version, collect_fields, find_all_armor, index_of, is_hex_continuation, nonzero,
    parse_hex, parse_u64, truncate, unquote, ArmorBlock, FieldError, MarkupError, RawField,
};
use crate::amount::{Amount, Asset};
use crate::email;
use crate::keys::Signature;
use crate::qtum;

/// The block kinds that carry orders.
pub const ORDER_KINDS: [&str; 4] = ["PAY", "BALANCE", "CONFIRM", "BIND"];
/// Fields of a PAY block, in rendering order.
pub const PAY_FIELDS: [&str; 4] = ["Version", "Chain", "Amount", "To"];
/// Fields of a BALANCE block.
pub const BALANCE_FIELDS: [&str; 1] = ["Version"];
/// Fields of a CONFIRM block, in rendering order.
pub const CONFIRM_FIELDS: [&str; 2] = ["Version", "Code"];
/// Fields of a BIND block, in rendering order.
pub const BIND_FIELDS: [&str; 4] = ["Version", "Chain", "Owner", "Signature"];

const CROCKFORD: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
const REPLY_PREFIXES: [&str; 12] = [
    "re", "fw", "fwd", "aw", "wg", "sv", "vs", "tr", "antw", "rif", "enc", "res",
];

/// Where a payment goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recipient {
    /// An email address, normalized as for commitments.
    Email(String),
    /// A chain address (a Qtum P2PKH hash160 or an EVM account).
    Address(Address),
}

impl Recipient {
    /// Parses an email address (anything with `@`) or a chain address of `chain_id`.
    pub fn parse(chain_id: u64, text: &str) -> Result<Self, FieldError> {
        if text.is_empty() {
            return Err(FieldError::Empty);
        }
        if text.contains('@') {
            Ok(Self::Email(email::normalize(text)?))
        } else {
            Ok(Self::Address(nonzero(qtum::parse_address(
                chain_id, text,
            )?)?))
        }
    }

    /// The recipient as written in markup (base58 on Qtum chains).
    pub fn display(&self, chain_id: u64) -> String {
        match self {
            Self::Email(email) => email.clone(),
            Self::Address(address) => qtum::format_address(chain_id, *address),
        }
    }
}

/// Pay `amount` from the sender's wallet to `to`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PayOrder {
    /// The chain the payment is on.
    pub chain_id: u64,
    /// How much, in the chain's native asset or a listed token; never zero.
    pub amount: Amount,
    /// To whom.
    pub to: Recipient,
}

/// Bind the owner's own key to the wallet (the way out without the broker).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindOrder {
    /// The chain the wallet is on.
    pub chain_id: u64,
    /// The owner's address.
    pub owner: Address,
    /// The owner key's signature of the binding message (docs/PROTOCOL.md).
    pub signature: Signature,
}

/// A confirmation code: 40 random bits, written as `XXXX-XXXX` in Crockford base32.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConfirmCode([u8; 5]);

impl std::fmt::Debug for ConfirmCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ConfirmCode({self})")
    }
}

impl ConfirmCode {
    /// A fresh random code.
    pub fn random() -> Self {
        let mut bytes = [0u8; 5];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        Self(bytes)
    }

    /// Wraps 5 bytes.
    pub fn from_bytes(bytes: [u8; 5]) -> Self {
        Self(bytes)
    }

    /// The 5 bytes.
    pub fn to_bytes(self) -> [u8; 5] {
        self.0
    }

    /// Parses a code: case, spaces and `-` ignored; `I`/`L` read as `1`, `O` as `0`.
    pub fn parse(text: &str) -> Result<Self, FieldError> {
        if text.trim().is_empty() {
            return Err(FieldError::Empty);
        }
        let bad = || FieldError::Code {
            got: truncate(text),
        };
        let mut bits: u64 = 0;
        let mut count = 0;
        for c in text.chars().filter(|c| !matches!(c, ' ' | '\t' | '-')) {
            let c = match c.to_ascii_uppercase() {
                'I' | 'L' => '1',
                'O' => '0',
                other => other,
            };
            let value = CROCKFORD
                .iter()
                .position(|b| char::from(*b) == c)
                .ok_or_else(bad)?;
            count += 1;
            if count > 8 {
                return Err(bad());
            }
            bits = (bits << 5) | value as u64;
        }
        if count != 8 {
            return Err(bad());
        }
        let bytes = bits.to_be_bytes();
        Ok(Self(bytes[3..].try_into().expect("5 bytes")))
    }
}

impl std::fmt::Display for ConfirmCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut wide = [0u8; 8];
        wide[3..].copy_from_slice(&self.0);
        let bits = u64::from_be_bytes(wide);
        for i in 0..8 {
            if i == 4 {
                f.write_str("-")?;
            }
            let value = (bits >> (35 - 5 * i)) & 31;
            write!(f, "{}", char::from(CROCKFORD[value as usize]))?;
        }
        Ok(())
    }
}

/// One order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Order {
    /// Pay from the wallet.
    Pay(PayOrder),
    /// Report the balance and recent movements.
    Balance,
    /// Carry out a pending order; without a code, the one of the mail being answered.
    Confirm(Option<ConfirmCode>),
    /// Bind the owner's key.
    Bind(BindOrder),
    /// Take the deposit of the notification being answered into the wallet.
    Claim,
}

impl Order {
    /// The block form, for the orders that have one (`claim` and a bare `confirm`
    /// act on the mail being answered and exist only as words).
    pub fn render_block(&self) -> Option<String> {
        let body = match self {
            Self::Pay(pay) => format!(
                "Chain: {}\nAmount: {}\nTo: {}\n",
                pay.chain_id,
                pay.amount,
                pay.to.display(pay.chain_id)
            ),
            Self::Balance => String::new(),
            Self::Confirm(Some(code)) => format!("Code: {code}\n"),
            Self::Bind(bind) => format!(
                "Chain: {}\nOwner: {}\nSignature: 0x{}\n",
                bind.chain_id,
                qtum::format_address(bind.chain_id, bind.owner),
                hex::encode(bind.signature.0)
            ),
            Self::Confirm(None) | Self::Claim => return None,
        };
        let kind = self.kind();
        Some(format!(
            "-----BEGIN BISMTP {kind}-----\nVersion: 1\n{body}-----END BISMTP {kind}-----\n"
        ))
    }

    /// The human form, one line.
    pub fn human(&self) -> String {
        match self {
            Self::Pay(pay) => format!("pay {} to {}", pay.amount, pay.to.display(pay.chain_id)),
            Self::Balance => "balance".into(),
            Self::Confirm(Some(code)) => format!("confirm {code}"),
            Self::Confirm(None) => "confirm".into(),
            Self::Bind(bind) => format!(
                "bind {} 0x{}",
                qtum::format_address(bind.chain_id, bind.owner),
                hex::encode(bind.signature.0)
            ),
            Self::Claim => "claim".into(),
        }
    }

    /// The kind's name as in block armor (`PAY`), or `CLAIM`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Pay(_) => "PAY",
            Self::Balance => "BALANCE",
            Self::Confirm(_) => "CONFIRM",
            Self::Bind(_) => "BIND",
            Self::Claim => "CLAIM",
        }
    }
}

/// Where in a mail an order was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    /// An unquoted block whose BEGIN is on this 1-based body line.
    Block {
        /// The BEGIN line.
        line: usize,
    },
    /// The body's first line (1-based).
    Body {
        /// The line.
        line: usize,
    },
    /// The subject.
    Subject,
}

impl std::fmt::Display for Place {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Block { line } => write!(f, "the block on line {line}"),
            Self::Body { line } => write!(f, "line {line} of the body"),
            Self::Subject => f.write_str("the subject"),
        }
    }
}

/// An order and where it was read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundOrder {
    /// The order.
    pub order: Order,
    /// Its first place (block, then body line, then subject).
    pub place: Place,
}

/// Why a mail's order was refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum OrderError {
    /// The block structure or a field of a block.
    #[error(transparent)]
    Markup(#[from] MarkupError),
    /// A block lacks a required field.
    #[error("the BISMTP {kind} block has no {field} line")]
    MissingField {
        /// The block kind.
        kind: &'static str,
        /// The field.
        field: &'static str,
    },
    /// More than one unquoted order block.
    #[error("{count} order blocks (lines {first_line} and {second_line}, …); one mail carries one order")]
    MultipleOrders {
        /// How many.
        count: usize,
        /// BEGIN line of the first.
        first_line: usize,
        /// BEGIN line of the second.
        second_line: usize,
    },
    /// A block for another chain.
    #[error("line {line}: the order is for chain {got}, and this broker is on chain {expected}")]
    WrongChain {
        /// The `Chain` line.
        line: usize,
        /// The chain given.
        got: u64,
        /// The broker's chain.
        expected: u64,
    },
    /// A line that starts with an order word but is not that order's form.
    #[error("{place}: write it as `{expected}`{}", reason.as_ref().map(|r| format!(" ({r})")).unwrap_or_default())]
    Human {
        /// Where.
        place: Place,
        /// The form it should have.
        expected: &'static str,
        /// The value that failed, when the shape was right.
        reason: Option<FieldError>,
    },
    /// Two places hold different orders.
    #[error("{first} and {second} ask for different things; send one order per mail")]
    Conflicting {
        /// The first place.
        first: Place,
        /// The second place.
        second: Place,
    },
}

/// Reads the one order of a mail: unquoted blocks of the `text/plain` body, its first
/// line, and a subject that is not a reply's. `Ok(None)` when there is none.
/// `chain_id` is the broker's chain; `tokens` the assets it accepts beside the native one.
pub fn find_order(
    subject: Option<&str>,
    body: &str,
    chain_id: u64,
    tokens: &[Asset],
) -> Result<Option<FoundOrder>, OrderError> {
    let mut assets = vec![Asset::for_chain(chain_id)];
    assets.extend(tokens.iter().cloned());
    let mut found: Vec<FoundOrder> = Vec::new();

    let blocks: Vec<ArmorBlock> = find_all_armor(body)?
        .into_iter()
        .filter(|b| b.quote_depth == 0 && ORDER_KINDS.contains(&b.kind.as_str()))
        .collect();
    if let [first, second, ..] = blocks.as_slice() {
        return Err(OrderError::MultipleOrders {
            count: blocks.len(),
            first_line: first.begin_line,
            second_line: second.begin_line,
        });
    }
    if let Some(block) = blocks.first() {
        found.push(FoundOrder {
            order: from_block(block, chain_id, &assets)?,
            place: Place::Block {
                line: block.begin_line,
            },
        });
    }
    if let Some((line, text)) = first_body_line(body) {
        let place = Place::Body { line };
        if let Some(order) = from_words(&text, place, chain_id, &assets)? {
            found.push(FoundOrder { order, place });
        }
    }
    if let Some(subject) = subject.filter(|s| !is_reply_subject(s)) {
        let place = Place::Subject;
        if let Some(order) = from_words(subject.trim(), place, chain_id, &assets)? {
            found.push(FoundOrder { order, place });
        }
    }
    if let Some(other) = found.iter().skip(1).find(|f| f.order != found[0].order) {
        return Err(OrderError::Conflicting {
            first: found[0].place,
            second: other.place,
        });
    }
    Ok(found.into_iter().next())
}

/// The first non-blank unquoted line that is not an attribution (`… wrote:` before a
/// quote), up to the signature separator; a BIND line's hex continuation lines joined.
fn first_body_line(body: &str) -> Option<(usize, String)> {
    let lines: Vec<(usize, &str)> = body
        .split('\n')
        .map(|raw| unquote(raw.strip_suffix('\r').unwrap_or(raw)))
        .collect();
    let next_non_blank_depth = |from: usize| {
        lines[from..]
            .iter()
            .find(|(_, text)| !text.is_empty())
            .map(|(depth, _)| *depth)
    };
    for (i, (depth, text)) in lines.iter().enumerate() {
        if *depth > 0 || text.is_empty() {
            continue;
        }
        if *text == "--" {
            return None;
        }
        if text.ends_with(':') && next_non_blank_depth(i + 1).is_some_and(|d| d > 0) {
            continue;
        }
        let mut joined = text.to_string();
        if first_word(text).eq_ignore_ascii_case("bind") {
            for (depth, more) in &lines[i + 1..] {
                if *depth > 0 || !is_hex_continuation(more) {
                    break;
                }
                joined.push_str(more);
            }
        }
        return Some((i + 1, joined));
    }
    None
}

fn first_word(text: &str) -> &str {
    text.split_whitespace().next().unwrap_or("")
}

fn is_reply_subject(subject: &str) -> bool {
    let Some((prefix, _)) = subject.trim_start().split_once(':') else {
        return false;
    };
    // `Re[2]:` and `Re(2):` count too.
    let word = prefix
        .trim_end()
        .trim_end_matches(|c: char| c.is_ascii_digit() || matches!(c, '[' | ']' | '(' | ')'));
    REPLY_PREFIXES.iter().any(|p| p.eq_ignore_ascii_case(word))
}

const PAY_FORM: &str = "pay <amount> <SYMBOL> to <recipient>";
const BIND_FORM: &str = "bind <address> <0x signature>";

/// Reads one human line; `Ok(None)` when its first word is no order word.
fn from_words(
    line: &str,
    place: Place,
    chain_id: u64,
    assets: &[Asset],
) -> Result<Option<Order>, OrderError> {
    let line = line.trim();
    let line = line
        .strip_suffix(['.', '!', '?'])
        .unwrap_or(line)
        .trim_end();
    let words: Vec<&str> = line.split_whitespace().collect();
    let Some(first) = words.first() else {
        return Ok(None);
    };
    let word = first.to_ascii_lowercase();
    let human = |expected: &'static str, reason: Option<FieldError>| OrderError::Human {
        place,
        expected,
        reason,
    };
    let order = match (word.as_str(), &words[1..]) {
        ("pay" | "send", [number, symbol, to, recipient]) if to.eq_ignore_ascii_case("to") => {
            let amount = Amount::parse_among(&format!("{number} {symbol}"), assets)
                .map_err(|e| human(PAY_FORM, Some(e.into())))?;
            if amount.units() == 0 {
                return Err(human(PAY_FORM, Some(FieldError::ZeroAmount)));
            }
            let to = Recipient::parse(chain_id, recipient).map_err(|e| human(PAY_FORM, Some(e)))?;
            Order::Pay(PayOrder {
                chain_id,
                amount,
                to,
            })
        }
        ("pay" | "send", _) => return Err(human(PAY_FORM, None)),
        ("balance", []) => Order::Balance,
        ("balance", _) => return Err(human("balance", None)),
        ("claim", []) => Order::Claim,
        ("claim", _) => return Err(human("claim", None)),
        ("confirm", []) => Order::Confirm(None),
        ("confirm", code) => {
            let code = ConfirmCode::parse(&code.join(" "))
                .map_err(|e| human("confirm <code>", Some(e)))?;
            Order::Confirm(Some(code))
        }
        ("bind", [owner, signature]) => {
            let owner = qtum::parse_address(chain_id, owner)
                .map_err(FieldError::from)
                .and_then(nonzero)
                .map_err(|e| human(BIND_FORM, Some(e)))?;
            let signature = parse_hex(signature, 65)
                .and_then(|bytes| Ok(Signature::from_slice("Signature", &bytes)?))
                .map_err(|e| human(BIND_FORM, Some(e)))?;
            Order::Bind(BindOrder {
                chain_id,
                owner,
                signature,
            })
        }
        ("bind", _) => return Err(human(BIND_FORM, None)),
        _ => return Ok(None),
    };
    Ok(Some(order))
}

fn from_block(block: &ArmorBlock, chain_id: u64, assets: &[Asset]) -> Result<Order, OrderError> {
    let kind = ORDER_KINDS
        .iter()
        .copied()
        .find(|k| *k == block.kind)
        .expect("filtered to order kinds");
    let names: &[&'static str] = match kind {
        "PAY" => &PAY_FIELDS,
        "BALANCE" => &BALANCE_FIELDS,
        "CONFIRM" => &CONFIRM_FIELDS,
        _ => &BIND_FIELDS,
    };
    let fields = collect_fields(block, names)?;
    let get = |name: &'static str| -> Result<&RawField, OrderError> {
        fields[index_of(names, name)]
            .as_ref()
            .ok_or(OrderError::MissingField { kind, field: name })
    };
    let invalid = |field: &'static str, line: usize| {
        move |reason: FieldError| {
            OrderError::Markup(MarkupError::InvalidField {
                field,
                line,
                reason,
            })
        }
    };
    check_version(get("Version")?)?;
    for name in names {
        get(name)?;
    }
    let field = |name: &'static str| {
        let raw = get(name).expect("checked above");
        (raw.value.as_str(), raw.line, invalid(name, raw.line))
    };
    let chain = || -> Result<u64, OrderError> {
        let (value, line, err) = field("Chain");
        let got = parse_u64(value, u64::MAX).map_err(err)?;
        if got == 0 {
            return Err(err(FieldError::ZeroChainId));
        }
        if got != chain_id {
            return Err(OrderError::WrongChain {
                line,
                got,
                expected: chain_id,
            });
        }
        Ok(got)
    };
    Ok(match kind {
        "PAY" => {
            let chain_id = chain()?;
            let (value, _, err) = field("Amount");
            let amount = if value.is_empty() {
                Err(FieldError::Empty)
            } else {
                Amount::parse_among(value, assets).map_err(FieldError::from)
            }
            .and_then(|a| {
                if a.units() == 0 {
                    Err(FieldError::ZeroAmount)
                } else {
                    Ok(a)
                }
            })
            .map_err(err)?;
            let (value, _, err) = field("To");
            let to = Recipient::parse(chain_id, value).map_err(err)?;
            Order::Pay(PayOrder {
                chain_id,
                amount,
                to,
            })
        }
        "BALANCE" => Order::Balance,
        "CONFIRM" => {
            let (value, _, err) = field("Code");
            Order::Confirm(Some(ConfirmCode::parse(value).map_err(err)?))
        }
        _ => {
            let chain_id = chain()?;
            let (value, _, err) = field("Owner");
            let owner = if value.is_empty() {
                Err(FieldError::Empty)
            } else {
                qtum::parse_address(chain_id, value).map_err(FieldError::from)
            }
            .and_then(nonzero)
            .map_err(err)?;
            let (value, _, err) = field("Signature");
            let signature = parse_hex(value, 65)
                .and_then(|bytes| Ok(Signature::from_slice("Signature", &bytes)?))
                .map_err(err)?;
            Order::Bind(BindOrder {
                chain_id,
                owner,
                signature,
            })
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const CAROL: &str = "carol@outlook.test";

    fn pay(units: u128, to: Recipient) -> Order {
        Order::Pay(PayOrder {
            chain_id: 8890,
            amount: Amount::from_units(units, Asset::qtum()).unwrap(),
            to,
        })
    }

    fn find(subject: Option<&str>, body: &str) -> Result<Option<Order>, OrderError> {
        find_order(subject, body, 8890, &[]).map(|f| f.map(|f| f.order))
    }

    #[test]
    fn human_pay_in_body_subject_and_block_agree() {
        let order = pay(50_000_000, Recipient::Email(CAROL.into()));
        let block = order.render_block().unwrap();
        let body = format!("pay 0.5 QTUM to Carol@Outlook.TEST\n\n{block}");
        assert_eq!(
            find(Some("pay 0.5 qtum to carol@outlook.test"), &body).unwrap(),
            Some(order)
        );
    }

    #[test]
    fn quoted_orders_are_never_read() {
        let block = pay(1, Recipient::Email(CAROL.into()))
            .render_block()
            .unwrap();
        let quoted: String = block.lines().map(|l| format!("> {l}\n")).collect();
        let body = format!("On Mon, Bob wrote:\n> pay 1 QTUM to {CAROL}\n{quoted}");
        assert_eq!(
            find(Some("Re: pay 1 QTUM to carol@outlook.test"), &body),
            Ok(None)
        );
    }

    #[test]
    fn bottom_posted_reply_reads_the_line_after_the_quote() {
        let body = "On Mon, 1 Dec 2026, Spring Mail wrote:\n> Reply confirm to pay.\n\nconfirm\n";
        assert_eq!(
            find(Some("Re: confirm"), body),
            Ok(Some(Order::Confirm(None)))
        );
    }

    #[test]
    fn disagreeing_places_are_refused() {
        let err = find(Some("balance"), "pay 1 QTUM to carol@outlook.test\n").unwrap_err();
        assert_eq!(
            err,
            OrderError::Conflicting {
                first: Place::Body { line: 1 },
                second: Place::Subject
            }
        );
    }

    #[test]
    fn mistyped_order_words_get_the_form() {
        let err = find(None, "pay carol 1 QTUM\n").unwrap_err();
        assert!(err.to_string().contains(PAY_FORM), "{err}");
        let err = find(None, "pay 0 QTUM to carol@outlook.test").unwrap_err();
        assert!(matches!(
            err,
            OrderError::Human {
                reason: Some(FieldError::ZeroAmount),
                ..
            }
        ));
        assert_eq!(find(Some("Payment for dinner"), "Hi Bob\n"), Ok(None));
    }

    #[test]
    fn two_unquoted_blocks_are_refused() {
        let block = Order::Balance.render_block().unwrap();
        let err = find(None, &format!("{block}\n{block}")).unwrap_err();
        assert!(matches!(err, OrderError::MultipleOrders { count: 2, .. }));
    }

    #[test]
    fn block_for_another_chain_is_refused() {
        let body = "-----BEGIN BISMTP PAY-----\nVersion: 1\nChain: 81\nAmount: 1 QTUM\nTo: a@b.test\n-----END BISMTP PAY-----\n";
        assert_eq!(
            find(None, body),
            Err(OrderError::WrongChain {
                line: 3,
                got: 81,
                expected: 8890
            })
        );
    }

    #[test]
    fn signature_separator_ends_the_search() {
        assert_eq!(find(None, "\n-- \nbalance\n"), Ok(None));
    }

    #[test]
    fn confirm_codes_read_loosely_and_print_canonically() {
        let code = ConfirmCode::parse("k7qm 2xhd").unwrap();
        assert_eq!(code.to_string(), "K7QM-2XHD");
        assert_eq!(ConfirmCode::parse("K7QM-2XHD").unwrap(), code);
        assert_eq!(
            ConfirmCode::parse("OIL0-0000").unwrap(),
            ConfirmCode::parse("0110-0000").unwrap()
        );
        assert!(matches!(
            ConfirmCode::parse("K7QM-2XH"),
            Err(FieldError::Code { .. })
        ));
        assert!(matches!(
            ConfirmCode::parse("K7QM-2XHU"),
            Err(FieldError::Code { .. })
        ));
    }

    proptest! {
        #[test]
        fn codes_round_trip(bytes in any::<[u8; 5]>()) {
            let code = ConfirmCode::from_bytes(bytes);
            prop_assert_eq!(ConfirmCode::parse(&code.to_string()).unwrap(), code);
        }

        #[test]
        fn pay_renders_and_parses_back(units in 1u128..(1u128 << 96), addr in any::<[u8; 20]>(), email in any::<bool>()) {
            let to = if email || addr == [0; 20] {
                Recipient::Email(CAROL.into())
            } else {
                Recipient::Address(Address::from(addr))
            };
            let order = pay(units, to);
            let block = order.render_block().unwrap();
            prop_assert_eq!(find(None, &block).unwrap(), Some(order.clone()));
            prop_assert_eq!(find(None, &order.human()).unwrap(), Some(order.clone()));
            prop_assert_eq!(find(Some(&order.human()), "").unwrap(), Some(order));
        }

        #[test]
        fn any_text_is_refused_or_read_without_panic(subject in ".{0,80}", body in "(?s).{0,400}") {
            let _ = find_order(Some(&subject), &body, 8890, &[]);
        }
    }
}
