//! BiSMTP markup: the machine-readable CLAIM block carried in claim mail, and (in
//! [`orders`]) the orders a mailbox wallet's owner gives: PAY, BALANCE, CONFIRM, BIND.
//!
//! ```text
//! -----BEGIN BISMTP CLAIM-----
//! Version: 1
//! Chain: 8890
//! Escrow: 0x…              (20 bytes, hex)
//! Claim-Key: 0x…           (20-byte address, hex)
//! To: q…                   (base58 on Qtum chains, or 0x-hex on any chain)
//! Max-Fee: 0.001 QTUM      (decimal amount with its symbol)
//! Deadline: 1767225600     (unix seconds, fits uint40)
//! Salt: 0x…                (16 bytes)
//! Signature: 0x…           (65 bytes r ‖ s ‖ v, low s, v ∈ {27, 28})
//! -----END BISMTP CLAIM-----
//! ```
//!
//! [`ClaimBlock::render`] writes exactly this, `\n` line ends, fields in this order,
//! addresses EIP-55 checksummed (`To` base58 on Qtum chains), the amount canonical.
//!
//! [`ClaimBlock::parse`] finds the block anywhere in a text (a whole `text/plain`
//! body) and tolerates what mail does to it:
//!
//! * `\r\n` or `\n` line ends;
//! * a **quote prefix** on every line (any mix of `>`, spaces and tabs, e.g. `> `,
//!   `>>`, `> > `). The number of `>` (the depth) must be the same on every non-blank
//!   line of the block, armor lines included; blank lines inside the block are ignored;
//! * leading and trailing whitespace on every line, any case in keys and armor words;
//! * **unknown `Key: value` lines**, which are ignored (keys are `[A-Za-z0-9-]+`);
//! * **hex continuation lines**: a line with no `:` made only of hex digits
//!   (optionally starting `0x`) continues the value of the line above when that
//!   value is empty or starts with `0x`; it is appended with nothing in between.
//!   This repairs hard wraps of long values (`Signature` is 132 characters);
//! * **undecoded quoted-printable**: a line ending in `=` is joined to the next line
//!   (the `=` removed) unless the next line is a `Key:` line or an armor line, and the
//!   escapes `=20`, `=09` and `=3D` are decoded. No other escape is needed by a valid
//!   block (it is plain ASCII without `=`), so no other is decoded.
//!
//! It is strict about everything else: exactly one CLAIM block per text (two are
//! ambiguous, even if equal), BEGIN needs its END, no nesting, a block is at most
//! [`MAX_BLOCK_BYTES`], each required field exactly once, and every value must parse.
//! Errors name the field and the 1-based line number in the input.
//!
//! ```
//! use springmail_sdk::markup::{ClaimBlock, MarkupError};
//! let err = ClaimBlock::parse("hello\n-----BEGIN BISMTP CLAIM-----\nVersion: 1\n").unwrap_err();
//! assert_eq!(err, MarkupError::Unterminated { kind: "CLAIM".into(), line: 2 });
//! ```

use alloy::primitives::Address;

use crate::amount::{Amount, AmountError, Asset};
use crate::email::{EmailError, Salt, SALT_LEN};
use crate::keys::{KeyError, Signature};
use crate::qtum::{self, AddressError};

pub mod broker;
pub mod orders;

/// The block kind of a claim.
pub const CLAIM_KIND: &str = "CLAIM";
/// The markup version this software writes and reads.
pub const MARKUP_VERSION: u64 = 1;
/// The largest block, in bytes from the BEGIN line to the END line inclusive.
pub const MAX_BLOCK_BYTES: usize = 16 * 1024;
/// The largest `Deadline` (`uint40`).
pub const MAX_DEADLINE: u64 = crate::protocol::MAX_UINT40;

/// The required fields of a CLAIM block, in rendering order.
pub const CLAIM_FIELDS: [&str; 9] = [
    "Version",
    "Chain",
    "Escrow",
    "Claim-Key",
    "To",
    "Max-Fee",
    "Deadline",
    "Salt",
    "Signature",
];

/// Why a value of a field was refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum FieldError {
    /// Nothing after the `:`.
    #[error("the value is empty")]
    Empty,
    /// `Version` is not `1`.
    #[error("version {got:?} is not supported; this software reads version 1")]
    UnsupportedVersion {
        /// The version given (truncated to 40 characters).
        got: String,
    },
    /// Not a decimal integer.
    #[error("{got:?} is not a decimal integer")]
    NotAnInteger {
        /// The value given (truncated to 40 characters).
        got: String,
    },
    /// An integer above the field's limit.
    #[error("the value is above the limit {max}")]
    OutOfRange {
        /// The largest allowed value.
        max: u64,
    },
    /// `Chain: 0`.
    #[error("chain id 0 is no chain")]
    ZeroChainId,
    /// A zero address.
    #[error("the zero address is never valid here")]
    ZeroAddress,
    /// Hex without its `0x`.
    #[error("hex values start with 0x")]
    MissingHexPrefix,
    /// A non-hex character.
    #[error("{character:?} at position {position} is not a hex digit")]
    InvalidHexDigit {
        /// The character.
        character: char,
        /// 0-based index in the value (after joining continuation lines).
        position: usize,
    },
    /// Hex of the wrong length.
    #[error("expected {expected_bytes} bytes ({} hex digits), got {got_digits} hex digits", expected_bytes * 2)]
    HexLength {
        /// Bytes expected.
        expected_bytes: usize,
        /// Hex digits given.
        got_digits: usize,
    },
    /// An address that does not parse.
    #[error(transparent)]
    Address(#[from] AddressError),
    /// An amount that does not parse.
    #[error(transparent)]
    Amount(#[from] AmountError),
    /// A signature that is not canonical.
    #[error(transparent)]
    Signature(#[from] KeyError),
    /// An email address that does not normalize.
    #[error(transparent)]
    Email(#[from] EmailError),
    /// An amount of zero where something must move.
    #[error("the amount is zero")]
    ZeroAmount,
    /// Not a confirmation code (8 characters of Crockford base32).
    #[error("{got:?} is not a confirmation code (8 letters and digits, such as K7QM-2XHD)")]
    Code {
        /// The value given (truncated to 40 characters).
        got: String,
    },
    /// A name or token outside its form (broker blocks: `Name`, `Domain`, `Request`).
    #[error("{got:?}: {reason}")]
    Token {
        /// The value given (truncated to 40 characters).
        got: String,
        /// What the form is.
        reason: &'static str,
    },
}

/// Why a text's markup was refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum MarkupError {
    /// No `-----BEGIN BISMTP CLAIM-----` line.
    #[error("no BISMTP CLAIM block found")]
    NoBlock,
    /// More than one CLAIM block.
    #[error("{count} BISMTP CLAIM blocks found (lines {first_line} and {second_line}, …); exactly one is allowed")]
    MultipleBlocks {
        /// How many.
        count: usize,
        /// BEGIN line of the first.
        first_line: usize,
        /// BEGIN line of the second.
        second_line: usize,
    },
    /// BEGIN without END.
    #[error("the BISMTP {kind} block that begins on line {line} has no END line")]
    Unterminated {
        /// The block kind.
        kind: String,
        /// Its BEGIN line.
        line: usize,
    },
    /// A BEGIN line inside a block.
    #[error("line {line}: a BEGIN line inside the BISMTP {kind} block (blocks do not nest)")]
    NestedBegin {
        /// The enclosing block's kind.
        kind: String,
        /// The nested BEGIN line.
        line: usize,
    },
    /// END of another kind.
    #[error("line {line}: END BISMTP {got} closes a BISMTP {expected} block")]
    MismatchedEnd {
        /// The open block's kind.
        expected: String,
        /// The END line's kind.
        got: String,
        /// The END line.
        line: usize,
    },
    /// Quote depth differs from the BEGIN line's.
    #[error("line {line}: quoted {got} levels deep, but the block's BEGIN line is quoted {expected} levels deep")]
    InconsistentQuoting {
        /// The line.
        line: usize,
        /// The BEGIN line's depth.
        expected: usize,
        /// This line's depth.
        got: usize,
    },
    /// The block is larger than [`MAX_BLOCK_BYTES`].
    #[error("the block beginning on line {line} is larger than {max} bytes")]
    TooLarge {
        /// The limit.
        max: usize,
        /// The BEGIN line.
        line: usize,
    },
    /// A line that is neither `Key: value`, nor a hex continuation, nor blank.
    #[error("line {line}: not a `Key: value` line nor a hex continuation of the line above")]
    MalformedLine {
        /// The line.
        line: usize,
    },
    /// A required field is absent.
    #[error("the CLAIM block has no {field} line")]
    MissingField {
        /// The field, as spelled in [`CLAIM_FIELDS`].
        field: &'static str,
    },
    /// A required field appears twice.
    #[error("line {line}: {field} appears more than once")]
    DuplicateField {
        /// The field.
        field: &'static str,
        /// The second occurrence.
        line: usize,
    },
    /// A value that does not parse.
    #[error("line {line}: invalid {field}: {reason}")]
    InvalidField {
        /// The field.
        field: &'static str,
        /// Its line (the first, if continued).
        line: usize,
        /// Why.
        reason: FieldError,
    },
}

impl MarkupError {
    /// The field an error is about, for `MissingField`, `DuplicateField` and `InvalidField`.
    pub fn field(&self) -> Option<&'static str> {
        match self {
            Self::MissingField { field }
            | Self::DuplicateField { field, .. }
            | Self::InvalidField { field, .. } => Some(field),
            _ => None,
        }
    }

    /// The 1-based input line an error points at, when it points at one.
    pub fn line(&self) -> Option<usize> {
        match self {
            Self::Unterminated { line, .. }
            | Self::NestedBegin { line, .. }
            | Self::MismatchedEnd { line, .. }
            | Self::InconsistentQuoting { line, .. }
            | Self::TooLarge { line, .. }
            | Self::MalformedLine { line }
            | Self::DuplicateField { line, .. }
            | Self::InvalidField { line, .. } => Some(*line),
            Self::NoBlock | Self::MultipleBlocks { .. } | Self::MissingField { .. } => None,
        }
    }
}

/// One line inside an armored block, quote prefix and surrounding whitespace removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArmorLine {
    /// 1-based line number in the input.
    pub number: usize,
    /// The content.
    pub text: String,
}

/// An armored BiSMTP block of any kind (`CLAIM`, later `PAY`, `RECEIPT`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArmorBlock {
    /// The kind, uppercased (`CLAIM`).
    pub kind: String,
    /// 1-based line number of the BEGIN line.
    pub begin_line: usize,
    /// 1-based line number of the END line.
    pub end_line: usize,
    /// Number of `>` quote markers on the block's lines.
    pub quote_depth: usize,
    /// The non-blank lines between BEGIN and END.
    pub lines: Vec<ArmorLine>,
}

enum Armor {
    Begin(String),
    End(String),
}

/// Splits off the quote prefix (`>`, spaces, tabs) and returns (depth, trimmed rest).
fn unquote(line: &str) -> (usize, &str) {
    let mut depth = 0;
    let mut rest = line;
    loop {
        let trimmed = rest.trim_start_matches([' ', '\t']);
        match trimmed.strip_prefix('>') {
            Some(r) => {
                depth += 1;
                rest = r;
            }
            None => return (depth, trimmed.trim()),
        }
    }
}

fn armor(content: &str) -> Option<Armor> {
    let inner = content.strip_prefix("-----")?.strip_suffix("-----")?.trim();
    let (word, rest) = inner.split_once(' ')?;
    let (tag, kind) = rest.trim_start().split_once(' ')?;
    let kind = kind.trim();
    if !tag.eq_ignore_ascii_case("BISMTP")
        || kind.is_empty()
        || kind.len() > 32
        || !kind.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    {
        return None;
    }
    let kind = kind.to_ascii_uppercase();
    if word.eq_ignore_ascii_case("BEGIN") {
        Some(Armor::Begin(kind))
    } else if word.eq_ignore_ascii_case("END") {
        Some(Armor::End(kind))
    } else {
        None
    }
}

/// Finds every armored BiSMTP block in `text`, of any kind, in order.
///
/// END lines outside a block are ignored. Errors: a BEGIN without END, a BEGIN
/// inside a block, an END of another kind, inconsistent quoting, an oversized block.
pub fn find_all_armor(text: &str) -> Result<Vec<ArmorBlock>, MarkupError> {
    let mut reader = ArmorReader::default();
    // `pos` is the start of the next line and `number` the lines before it.
    let (mut pos, mut number) = (0, 0);
    while pos <= text.len() {
        if reader.open.is_none() {
            // Outside a block only a line holding "-----" can open one: skip to the
            // next such line (a claim mail is mostly prose, read here once per part).
            let Some(at) = text[pos..].find("-----") else {
                break;
            };
            let start = text[..pos + at].rfind('\n').map_or(0, |i| i + 1);
            number += text.as_bytes()[pos..start]
                .iter()
                .filter(|&&b| b == b'\n')
                .count();
            pos = start;
        }
        let end = text[pos..].find('\n').map_or(text.len(), |i| pos + i);
        number += 1;
        reader.line(number, &text[pos..end])?;
        pos = end + 1;
    }
    reader.finish()
}

/// The blocks read so far and the one open, a line at a time.
#[derive(Default)]
struct ArmorReader {
    blocks: Vec<ArmorBlock>,
    /// The open block and its size so far in bytes.
    open: Option<(ArmorBlock, usize)>,
}

impl ArmorReader {
    /// Reads line `number` (1-based; `raw` without its `\n`).
    fn line(&mut self, number: usize, raw: &str) -> Result<(), MarkupError> {
        let raw = raw.strip_suffix('\r').unwrap_or(raw);
        let (depth, content) = unquote(raw);
        let Some((block, bytes)) = self.open.as_mut() else {
            if let Some(Armor::Begin(kind)) = armor(content) {
                let block = ArmorBlock {
                    kind,
                    begin_line: number,
                    end_line: 0,
                    quote_depth: depth,
                    lines: Vec::new(),
                };
                self.open = Some((block, raw.len() + 1));
            }
            return Ok(());
        };
        *bytes += raw.len() + 1;
        if *bytes > MAX_BLOCK_BYTES {
            return Err(MarkupError::TooLarge {
                max: MAX_BLOCK_BYTES,
                line: block.begin_line,
            });
        }
        if content.is_empty() {
            return Ok(());
        }
        if depth != block.quote_depth {
            return Err(MarkupError::InconsistentQuoting {
                line: number,
                expected: block.quote_depth,
                got: depth,
            });
        }
        match armor(content) {
            Some(Armor::Begin(_)) => {
                return Err(MarkupError::NestedBegin {
                    kind: block.kind.clone(),
                    line: number,
                })
            }
            Some(Armor::End(kind)) if kind != block.kind => {
                return Err(MarkupError::MismatchedEnd {
                    expected: block.kind.clone(),
                    got: kind,
                    line: number,
                })
            }
            Some(Armor::End(_)) => {
                let (mut block, _) = self.open.take().expect("a block is open");
                block.end_line = number;
                self.blocks.push(block);
            }
            None => block.lines.push(ArmorLine {
                number,
                text: content.to_string(),
            }),
        }
        Ok(())
    }

    /// The blocks, or the error of one left open.
    fn finish(self) -> Result<Vec<ArmorBlock>, MarkupError> {
        match self.open {
            Some((block, _)) => Err(MarkupError::Unterminated {
                kind: block.kind,
                line: block.begin_line,
            }),
            None => Ok(self.blocks),
        }
    }
}

/// Whether a line starts with `Key:` (a key of `[A-Za-z0-9-]`, optional blanks, a colon).
fn key_of(line: &str) -> Option<(&str, &str)> {
    let (key, value) = line.split_once(':')?;
    let key = key.trim_end();
    if key.is_empty() || !key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        return None;
    }
    Some((key, value.trim()))
}

/// Joins quoted-printable soft breaks and decodes `=20`, `=09`, `=3D`.
fn undo_quoted_printable(lines: &[ArmorLine]) -> Vec<ArmorLine> {
    let mut out: Vec<ArmorLine> = Vec::with_capacity(lines.len());
    let mut joining = false;
    for (i, line) in lines.iter().enumerate() {
        match out.last_mut() {
            Some(last) if joining => last.text.push_str(&line.text),
            _ => out.push(line.clone()),
        }
        let last = out.last_mut().expect("a line was just added or extended");
        // A soft break joins the next line, unless that is a `Key:` line (or there is
        // none): then the `=` belonged to the value.
        joining = last.text.ends_with('=')
            && lines
                .get(i + 1)
                .is_some_and(|next| key_of(&next.text).is_none());
        if joining {
            last.text.pop();
        }
    }
    for line in &mut out {
        if line.text.contains('=') {
            line.text = line
                .text
                .replace("=20", " ")
                .replace("=09", "\t")
                .replace("=3D", "=");
            line.text = line.text.trim().to_string();
        }
    }
    out
}

fn is_hex_continuation(line: &str) -> bool {
    let digits = line
        .strip_prefix("0x")
        .or_else(|| line.strip_prefix("0X"))
        .unwrap_or(line);
    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_hexdigit())
}

struct RawField {
    line: usize,
    value: String,
}

/// A parsed CLAIM block: what a recipient mails to a watcher to claim a deposit.
///
/// The claim key's *secret* is not here: the recipient signs locally and sends only
/// [`ClaimBlock::signature`]. `Debug` redacts the salt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimBlock {
    /// The EVM chain id (`Chain`).
    pub chain_id: u64,
    /// The escrow contract (`Escrow`).
    pub escrow: Address,
    /// The deposit's claim key address (`Claim-Key`).
    pub claim_key: Address,
    /// Where the funds go (`To`).
    pub to: Address,
    /// The most the relayer may take (`Max-Fee`), in the deposit's asset.
    pub max_fee: Amount,
    /// The signed claim's deadline, unix seconds (`Deadline`, uint40).
    pub deadline: u64,
    /// The commitment salt (`Salt`).
    pub salt: Salt,
    /// The claim key's EIP-712 `Claim` signature (`Signature`).
    pub signature: Signature,
}

impl ClaimBlock {
    /// The block as text: armor, the nine fields in [`CLAIM_FIELDS`] order, `\n` line
    /// ends, a final `\n`.
    pub fn render(&self) -> String {
        format!(
            "-----BEGIN BISMTP CLAIM-----\n\
             Version: {MARKUP_VERSION}\n\
             Chain: {}\n\
             Escrow: {}\n\
             Claim-Key: {}\n\
             To: {}\n\
             Max-Fee: {}\n\
             Deadline: {}\n\
             Salt: {}\n\
             Signature: 0x{}\n\
             -----END BISMTP CLAIM-----\n",
            self.chain_id,
            self.escrow.to_checksum(None),
            self.claim_key.to_checksum(None),
            qtum::format_address(self.chain_id, self.to),
            self.max_fee,
            self.deadline,
            self.salt.expose_hex(),
            hex::encode(self.signature.0),
        )
    }

    /// Finds and parses the one CLAIM block in `text`. `Max-Fee` must be in the
    /// chain's native asset ([`Asset::for_chain`]); see [`ClaimBlock::parse_with_assets`]
    /// for token deposits.
    pub fn parse(text: &str) -> Result<Self, MarkupError> {
        Self::parse_with_assets(text, &[])
    }

    /// Like [`ClaimBlock::parse`], also accepting `Max-Fee` in any of `tokens`
    /// (matched by symbol; the native asset is always accepted).
    pub fn parse_with_assets(text: &str, tokens: &[Asset]) -> Result<Self, MarkupError> {
        let blocks: Vec<ArmorBlock> = find_all_armor(text)?
            .into_iter()
            .filter(|b| b.kind == CLAIM_KIND)
            .collect();
        match blocks.as_slice() {
            [] => Err(MarkupError::NoBlock),
            [block] => Self::from_armor(block, tokens),
            [first, second, ..] => Err(MarkupError::MultipleBlocks {
                count: blocks.len(),
                first_line: first.begin_line,
                second_line: second.begin_line,
            }),
        }
    }

    /// Parses the fields of one CLAIM armor block found by [`find_all_armor`].
    pub fn from_armor(block: &ArmorBlock, tokens: &[Asset]) -> Result<Self, MarkupError> {
        let fields = collect_fields(block, &CLAIM_FIELDS)?;
        let get = |name: &'static str| -> Result<&RawField, MarkupError> {
            fields[index_of(&CLAIM_FIELDS, name)]
                .as_ref()
                .ok_or(MarkupError::MissingField { field: name })
        };
        let invalid = |field: &'static str, line: usize| {
            move |reason: FieldError| MarkupError::InvalidField {
                field,
                line,
                reason,
            }
        };
        check_version(get("Version")?)?;
        for name in CLAIM_FIELDS {
            get(name)?;
        }
        let field = |name: &'static str| {
            let raw = get(name).expect("checked above");
            (raw.value.as_str(), invalid(name, raw.line))
        };

        let (value, err) = field("Chain");
        let chain_id = parse_u64(value, u64::MAX).map_err(err)?;
        if chain_id == 0 {
            return Err(err(FieldError::ZeroChainId));
        }
        let (value, err) = field("Escrow");
        let escrow = parse_nonzero_hex_address(value).map_err(err)?;
        let (value, err) = field("Claim-Key");
        let claim_key = parse_nonzero_hex_address(value).map_err(err)?;
        let (value, err) = field("To");
        let to = non_empty(value)
            .and_then(|v| Ok(qtum::parse_address(chain_id, v)?))
            .and_then(nonzero)
            .map_err(err)?;
        let (value, err) = field("Max-Fee");
        let mut assets = vec![Asset::for_chain(chain_id)];
        assets.extend(tokens.iter().cloned());
        let max_fee = non_empty(value)
            .and_then(|v| Ok(Amount::parse_among(v, &assets)?))
            .map_err(err)?;
        let (value, err) = field("Deadline");
        let deadline = parse_u64(value, MAX_DEADLINE).map_err(err)?;
        let (value, err) = field("Salt");
        let salt_bytes: [u8; SALT_LEN] = parse_hex(value, SALT_LEN)
            .map_err(err)?
            .try_into()
            .expect("length checked");
        let (value, err) = field("Signature");
        let signature = parse_hex(value, 65)
            .and_then(|bytes| Ok(Signature::from_slice("Signature", &bytes)?))
            .map_err(err)?;
        Ok(Self {
            chain_id,
            escrow,
            claim_key,
            to,
            max_fee,
            deadline,
            salt: Salt::from_bytes(salt_bytes),
            signature,
        })
    }
}

/// `Version` must be exactly `1`; it is checked before any other field, so a future
/// version fails clearly.
fn check_version(version: &RawField) -> Result<(), MarkupError> {
    if version.value == "1" {
        return Ok(());
    }
    let reason = if version.value.is_empty() {
        FieldError::Empty
    } else {
        FieldError::UnsupportedVersion {
            got: truncate(&version.value),
        }
    };
    Err(MarkupError::InvalidField {
        field: "Version",
        line: version.line,
        reason,
    })
}

fn index_of(names: &[&'static str], name: &str) -> usize {
    names
        .iter()
        .position(|f| *f == name)
        .expect("a known field")
}

/// Gathers `Key: value` lines (joining continuations), one slot per field of `names`.
fn collect_fields(
    block: &ArmorBlock,
    names: &[&'static str],
) -> Result<Vec<Option<RawField>>, MarkupError> {
    let mut fields: Vec<Option<RawField>> = names.iter().map(|_| None).collect();
    // The value being built: the slot of a known field, or an ignored unknown one.
    let mut current: Option<(Option<usize>, String)> = None;
    fn flush(current: &mut Option<(Option<usize>, String)>, fields: &mut [Option<RawField>]) {
        if let Some((Some(slot), value)) = current.take() {
            if let Some(f) = fields[slot].as_mut() {
                f.value = value;
            }
        }
    }
    for line in undo_quoted_printable(&block.lines) {
        if let Some((key, value)) = key_of(&line.text) {
            flush(&mut current, &mut fields);
            let slot = names.iter().position(|f| f.eq_ignore_ascii_case(key));
            if let Some(slot) = slot {
                if fields[slot].is_some() {
                    return Err(MarkupError::DuplicateField {
                        field: names[slot],
                        line: line.number,
                    });
                }
                fields[slot] = Some(RawField {
                    line: line.number,
                    value: String::new(),
                });
            }
            current = Some((slot, value.to_string()));
            continue;
        }
        let continues = match &current {
            Some((_, value)) if is_hex_continuation(&line.text) => {
                let prefixed = line.text.starts_with("0x") || line.text.starts_with("0X");
                if value.is_empty() {
                    true
                } else {
                    (value.starts_with("0x") || value.starts_with("0X")) && !prefixed
                }
            }
            _ => false,
        };
        if !continues {
            return Err(MarkupError::MalformedLine { line: line.number });
        }
        if let Some((_, value)) = current.as_mut() {
            value.push_str(&line.text);
        }
    }
    flush(&mut current, &mut fields);
    Ok(fields)
}

fn truncate(value: &str) -> String {
    value.chars().take(40).collect()
}

fn non_empty(value: &str) -> Result<&str, FieldError> {
    if value.is_empty() {
        Err(FieldError::Empty)
    } else {
        Ok(value)
    }
}

fn nonzero(address: Address) -> Result<Address, FieldError> {
    if address == Address::ZERO {
        Err(FieldError::ZeroAddress)
    } else {
        Ok(address)
    }
}

fn parse_u64(value: &str, max: u64) -> Result<u64, FieldError> {
    let value = non_empty(value)?;
    if !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(FieldError::NotAnInteger {
            got: truncate(value),
        });
    }
    let mut n: u64 = 0;
    for b in value.bytes() {
        n = n
            .checked_mul(10)
            .and_then(|n| n.checked_add(u64::from(b - b'0')))
            .filter(|n| *n <= max)
            .ok_or(FieldError::OutOfRange { max })?;
    }
    Ok(n)
}

fn parse_nonzero_hex_address(value: &str) -> Result<Address, FieldError> {
    let value = non_empty(value)?;
    if !(value.starts_with("0x") || value.starts_with("0X")) {
        return Err(FieldError::MissingHexPrefix);
    }
    nonzero(qtum::parse_hex_address(value)?)
}

fn parse_hex(value: &str, expected_bytes: usize) -> Result<Vec<u8>, FieldError> {
    let value = non_empty(value)?;
    let digits = value
        .strip_prefix("0x")
        .or_else(|| value.strip_prefix("0X"))
        .ok_or(FieldError::MissingHexPrefix)?;
    if let Some((i, c)) = digits
        .chars()
        .enumerate()
        .find(|(_, c)| !c.is_ascii_hexdigit())
    {
        return Err(FieldError::InvalidHexDigit {
            character: c,
            position: i + 2,
        });
    }
    if digits.len() != expected_bytes * 2 {
        return Err(FieldError::HexLength {
            expected_bytes,
            got_digits: digits.len(),
        });
    }
    Ok(hex::decode(digits).expect("validated hex of even length"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::ClaimSecret;
    use alloy::primitives::keccak256;
    use proptest::prelude::*;

    /// `find_all_armor` reading every line: the model the skipping scanner must match.
    fn armor_line_by_line(text: &str) -> Result<Vec<ArmorBlock>, MarkupError> {
        let mut reader = ArmorReader::default();
        for (index, raw) in text.split('\n').enumerate() {
            reader.line(index + 1, raw)?;
        }
        reader.finish()
    }

    proptest! {
        #[test]
        fn the_armor_scanner_reads_as_every_line_does(
            lines in proptest::collection::vec(
                prop_oneof![
                    Just("Hello Bob, here is the claim."),
                    Just(""),
                    Just("-----BEGIN BISMTP CLAIM-----"),
                    Just("-----END BISMTP CLAIM-----"),
                    Just("> -----BEGIN BISMTP CLAIM-----"),
                    Just("> -----END BISMTP CLAIM-----"),
                    Just("-----BEGIN BISMTP PAY-----"),
                    Just("-----END BISMTP PAY-----"),
                    Just("Version: 1"),
                    Just("> Chain: 8890"),
                    Just("a ----- dash line"),
                    Just("-----"),
                    Just("-----BEGIN PGP SIGNATURE-----"),
                ],
                0..40,
            ),
            crlf in any::<bool>(),
            trailing in any::<bool>(),
        ) {
            let eol = if crlf { "\r\n" } else { "\n" };
            let mut text = lines.join(eol);
            if trailing {
                text.push_str(eol);
            }
            prop_assert_eq!(find_all_armor(&text), armor_line_by_line(&text));
        }
    }

    fn sample() -> ClaimBlock {
        let key = ClaimSecret::from_bytes([0x42; 32]).unwrap();
        ClaimBlock {
            chain_id: 8890,
            escrow: Address::repeat_byte(0xe5),
            claim_key: key.address(),
            to: "0x5f8069e453bd0d05e0221718658ad13f191a883a"
                .parse()
                .unwrap(),
            max_fee: Amount::parse("0.001 QTUM", &Asset::qtum()).unwrap(),
            deadline: 1_767_225_600,
            salt: Salt::from_bytes([0x5a; 16]),
            signature: key.sign_digest(&keccak256(b"springmail markup test")),
        }
    }

    #[test]
    fn render_is_exact_and_round_trips() {
        let block = sample();
        let text = block.render();
        assert!(text.starts_with("-----BEGIN BISMTP CLAIM-----\nVersion: 1\nChain: 8890\n"));
        assert!(text.contains("\nTo: qSGMBbFXPcTYDSYbidwsaZzDSLDkQESm2e\n"));
        assert!(text.contains("\nMax-Fee: 0.001 QTUM\n"));
        assert!(text.ends_with("-----END BISMTP CLAIM-----\n"));
        assert!(!text.contains('\r'));
        assert_eq!(text.lines().count(), 11);
        assert_eq!(ClaimBlock::parse(&text).unwrap(), block);
        let keys: Vec<&str> = text
            .lines()
            .skip(1)
            .take(9)
            .map(|l| l.split(':').next().unwrap())
            .collect();
        assert_eq!(keys, CLAIM_FIELDS);
    }

    #[test]
    fn finds_block_in_mail_and_tolerates_mangling() {
        let block = sample();
        let text = block.render();
        let body = format!("Hi,\n\nplease pay me.\n\n{text}\n-- \nBob\n");
        assert_eq!(ClaimBlock::parse(&body).unwrap(), block);
        let crlf = body.replace('\n', "\r\n");
        assert_eq!(ClaimBlock::parse(&crlf).unwrap(), block);
        for prefix in ["> ", ">", ">> ", "> > ", "  >\t"] {
            let quoted: String = text.lines().map(|l| format!("{prefix}{l}\n")).collect();
            assert_eq!(ClaimBlock::parse(&quoted).unwrap(), block, "{prefix:?}");
        }
        let lower_keys = text
            .replace("Version:", "version:")
            .replace("Claim-Key:", "CLAIM-KEY :")
            .replace("BEGIN BISMTP", "begin bismtp");
        assert_eq!(ClaimBlock::parse(&lower_keys).unwrap(), block);
        let spaced: String = text.lines().map(|l| format!("   {l}  \n")).collect();
        assert_eq!(ClaimBlock::parse(&spaced).unwrap(), block);
        let unknown = text.replace("Version: 1\n", "Version: 1\nX-Note: hello: world\n\n");
        assert_eq!(ClaimBlock::parse(&unknown).unwrap(), block);
    }

    #[test]
    fn repairs_wrapped_hex_and_quoted_printable() {
        let block = sample();
        let text = block.render();
        let sig_line = text
            .lines()
            .find(|l| l.starts_with("Signature:"))
            .unwrap()
            .to_string();
        let (head, tail) = sig_line.split_at(60);
        let wrapped = text.replace(&sig_line, &format!("{head}\n{tail}"));
        assert_eq!(ClaimBlock::parse(&wrapped).unwrap(), block);
        let flowed = text.replace(&sig_line, &format!("Signature:\n{}", &sig_line[11..]));
        assert_eq!(ClaimBlock::parse(&flowed).unwrap(), block);
        let qp = text.replace(&sig_line, &format!("{head}=\n{tail}"));
        assert_eq!(ClaimBlock::parse(&qp).unwrap(), block);
        let qp_escapes = text
            .replace("Chain: 8890", "Chain:=208890=20")
            .replace("Version: 1", "Version: 1\nX-Eq: a=3Db");
        assert_eq!(ClaimBlock::parse(&qp_escapes).unwrap(), block);
        // A value ending in '=' before a Key line is not a soft break.
        let eq_value = text.replace("Version: 1\n", "Version: 1\nX-B64: AAA=\n");
        assert_eq!(ClaimBlock::parse(&eq_value).unwrap(), block);
    }

    #[test]
    fn strict_errors() {
        let text = sample().render();
        assert_eq!(
            ClaimBlock::parse("no markup here"),
            Err(MarkupError::NoBlock)
        );
        assert_eq!(
            ClaimBlock::parse(&format!("{text}\n> {}", text.replace('\n', "\n> "))),
            Err(MarkupError::MultipleBlocks {
                count: 2,
                first_line: 1,
                second_line: 13
            })
        );
        let no_end = text.replace("-----END BISMTP CLAIM-----\n", "");
        assert_eq!(
            ClaimBlock::parse(&no_end),
            Err(MarkupError::Unterminated {
                kind: "CLAIM".into(),
                line: 1
            })
        );
        let missing = text.replace(
            &text
                .lines()
                .find(|l| l.starts_with("Salt:"))
                .unwrap()
                .to_string(),
            "",
        );
        assert_eq!(
            ClaimBlock::parse(&missing),
            Err(MarkupError::MissingField { field: "Salt" })
        );
        let dup = text.replace("Chain: 8890\n", "Chain: 8890\nchain: 8890\n");
        assert_eq!(
            ClaimBlock::parse(&dup),
            Err(MarkupError::DuplicateField {
                field: "Chain",
                line: 4
            })
        );
        let v2 = text.replace("Version: 1", "Version: 2");
        assert!(matches!(
            ClaimBlock::parse(&v2),
            Err(MarkupError::InvalidField {
                field: "Version",
                reason: FieldError::UnsupportedVersion { .. },
                ..
            })
        ));
        let late = text.replace("Deadline: 1767225600", "Deadline: 1099511627776");
        assert_eq!(
            ClaimBlock::parse(&late),
            Err(MarkupError::InvalidField {
                field: "Deadline",
                line: 8,
                reason: FieldError::OutOfRange { max: MAX_DEADLINE }
            })
        );
        let junk = text.replace("Version: 1\n", "Version: 1\nthis is prose\n");
        assert_eq!(
            ClaimBlock::parse(&junk),
            Err(MarkupError::MalformedLine { line: 3 })
        );
        let mixed: String = text
            .lines()
            .enumerate()
            .map(|(i, l)| {
                if i == 3 {
                    format!(">> {l}\n")
                } else {
                    format!("> {l}\n")
                }
            })
            .collect();
        assert_eq!(
            ClaimBlock::parse(&mixed),
            Err(MarkupError::InconsistentQuoting {
                line: 4,
                expected: 1,
                got: 2
            })
        );
        let nested = text.replace("Version: 1\n", "Version: 1\n-----BEGIN BISMTP PAY-----\n");
        assert!(matches!(
            ClaimBlock::parse(&nested),
            Err(MarkupError::NestedBegin { line: 3, .. })
        ));
        let mismatched = text.replace("END BISMTP CLAIM", "END BISMTP PAY");
        assert!(matches!(
            ClaimBlock::parse(&mismatched),
            Err(MarkupError::MismatchedEnd { .. })
        ));
        let huge = text.replace(
            "Version: 1\n",
            &format!("Version: 1\nX-Pad: {}\n", "a".repeat(MAX_BLOCK_BYTES)),
        );
        assert_eq!(
            ClaimBlock::parse(&huge),
            Err(MarkupError::TooLarge {
                max: MAX_BLOCK_BYTES,
                line: 1
            })
        );
        let wrong_net = text.replace(
            "To: qSGMBbFXPcTYDSYbidwsaZzDSLDkQESm2e",
            "To: QYPLiHGvwvk6Ks5zNDKqn4G4xDQRmpM6aM",
        );
        let err = ClaimBlock::parse(&wrong_net).unwrap_err();
        assert_eq!(err.field(), Some("To"), "{err:?}");
        let malleable = {
            let sig = sample().signature;
            let n = crate::keys::SECP256K1_HALF_N * crate::U256::from(2) + crate::U256::from(1);
            let s = crate::U256::from_be_slice(&sig.0[32..64]);
            let mut twin = sig.0;
            twin[32..64].copy_from_slice(&(n - s).to_be_bytes::<32>());
            twin[64] ^= 27 ^ 28;
            text.replace(&hex::encode(sig.0), &hex::encode(twin))
        };
        assert!(matches!(
            ClaimBlock::parse(&malleable),
            Err(MarkupError::InvalidField {
                field: "Signature",
                reason: FieldError::Signature(KeyError::HighS { .. }),
                ..
            })
        ));
        let token_fee = text.replace("0.001 QTUM", "2.5 USDC");
        assert!(matches!(
            ClaimBlock::parse(&token_fee),
            Err(MarkupError::InvalidField {
                field: "Max-Fee",
                reason: FieldError::Amount(AmountError::WrongSymbol { .. }),
                ..
            })
        ));
        let usdc = Asset::new("USDC", 6).unwrap();
        let parsed =
            ClaimBlock::parse_with_assets(&token_fee, std::slice::from_ref(&usdc)).unwrap();
        assert_eq!(parsed.max_fee, Amount::from_units(2_500_000, usdc).unwrap());
        let zero_to = text.replace(
            "To: qSGMBbFXPcTYDSYbidwsaZzDSLDkQESm2e",
            "To: 0x0000000000000000000000000000000000000000",
        );
        assert!(matches!(
            ClaimBlock::parse(&zero_to),
            Err(MarkupError::InvalidField {
                field: "To",
                reason: FieldError::ZeroAddress,
                ..
            })
        ));
    }

    #[test]
    fn stray_end_lines_and_other_kinds_are_ignored() {
        let text = sample().render();
        let body = format!(
            "-----END BISMTP CLAIM-----\n-----BEGIN BISMTP RECEIPT-----\nTx: 0x00\n-----END BISMTP RECEIPT-----\n{text}"
        );
        assert_eq!(ClaimBlock::parse(&body).unwrap(), sample());
        let all = find_all_armor(&body).unwrap();
        assert_eq!(
            all.iter().map(|b| b.kind.as_str()).collect::<Vec<_>>(),
            ["RECEIPT", "CLAIM"]
        );
        assert_eq!(
            (all[1].begin_line, all[1].end_line, all[1].quote_depth),
            (5, 15, 0)
        );
    }

    #[test]
    fn debug_redacts_salt() {
        let shown = format!("{:?}", sample());
        assert!(shown.contains("Salt(<redacted>)"));
        assert!(!shown.contains("5a5a5a"));
    }

    proptest! {
        #[test]
        fn parse_never_panics(s in "\\PC{0,300}") {
            let _ = ClaimBlock::parse(&s);
            let _ = ClaimBlock::parse(&format!("-----BEGIN BISMTP CLAIM-----\n{s}\n-----END BISMTP CLAIM-----"));
        }

        #[test]
        fn rendered_blocks_round_trip(chain in prop_oneof![Just(81u64), Just(8889), Just(8890), 1u64..], deadline in 0..=MAX_DEADLINE, fee in 0u128..=crate::amount::MAX_UINT96, to in any::<[u8; 20]>()) {
            let mut block = sample();
            block.chain_id = chain;
            block.deadline = deadline;
            block.max_fee = Amount::from_units(fee, Asset::for_chain(chain)).unwrap();
            block.to = Address::from(to);
            prop_assume!(block.to != Address::ZERO);
            prop_assert_eq!(ClaimBlock::parse(&block.render()).unwrap(), block);
        }
    }
}
