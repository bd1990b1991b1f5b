//! Amounts: integer base units with the asset they count, parsed from and printed as
//! decimal text (`1.5 QTUM`). No floating point anywhere.
//!
//! The escrow stores amounts as `uint96`, so an [`Amount`] never exceeds
//! [`MAX_UINT96`] base units. Native QTUM inside Qtum's EVM counts **satoshi**
//! (8 decimals), not wei; [`Asset::for_chain`] picks the native asset of a chain.
//!
//! Text grammar (surrounding whitespace ignored):
//!
//! ```text
//! amount = digits [ "." digits ] [ whitespace* symbol ]
//! digits = 1*( "0"-"9" )
//! ```
//!
//! The symbol is matched ASCII-case-insensitively. A fraction may be longer than the
//! asset's decimals only by zeros (`1.500000000 QTUM` is exact and accepted;
//! `0.000000001 QTUM` is refused, because it cannot be paid). Canonical output has no
//! trailing zeros and no leading zeros: `1.5 QTUM`, `0 QTUM`, `0.00000001 QTUM`.
//!
//! ```
//! use springmail_sdk::amount::{Amount, Asset};
//! let qtum = Asset::qtum();
//! let a = Amount::parse("1.50 qtum", &qtum).unwrap();
//! assert_eq!(a.units(), 150_000_000);
//! assert_eq!(a.to_string(), "1.5 QTUM");
//! assert!(Amount::parse("0.000000001", &qtum).is_err());
//! ```

use alloy::primitives::aliases::U96;

use crate::qtum;

/// The largest amount the contract can hold: `2^96 - 1` base units.
pub use crate::protocol::MAX_UINT96;
/// Decimals of QTUM (satoshi), the native coin of Qtum chains.
pub const QTUM_DECIMALS: u8 = 8;
/// The largest number of decimals an [`Asset`] may have (`10^38` still fits in `u128`).
pub const MAX_DECIMALS: u8 = 38;
/// The longest symbol, in bytes.
pub const MAX_SYMBOL_LEN: usize = 16;
/// Longer amount texts are refused without parsing.
pub const MAX_AMOUNT_TEXT: usize = 128;

/// Why an amount or asset was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AmountError {
    /// Nothing to parse.
    #[error("the amount is empty")]
    Empty,
    /// A leading minus sign.
    #[error("the amount is negative; amounts must be zero or more")]
    Negative,
    /// Not `digits[.digits]`.
    #[error("the amount {text:?} is not a decimal number like 1.5: {reason}")]
    InvalidNumber {
        /// The number part as given (bounded by [`MAX_AMOUNT_TEXT`]).
        text: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// More significant fractional digits than the asset has.
    #[error("{symbol} has {allowed} decimals; the amount has {got} significant decimals")]
    TooManyDecimals {
        /// The asset's symbol.
        symbol: String,
        /// The asset's decimals.
        allowed: u8,
        /// The significant fractional digits given.
        got: usize,
    },
    /// Above `uint96` (the contract's limit).
    #[error("the amount exceeds the contract limit of {max} (2^96 - 1 base units)")]
    Overflow {
        /// The limit, printed in the asset.
        max: String,
    },
    /// A symbol that is not the expected asset.
    #[error("wrong asset: expected {expected}, got {got:?}")]
    WrongSymbol {
        /// The expected symbol (or `one of A, B`).
        expected: String,
        /// The symbol given.
        got: String,
    },
    /// A symbol was required (e.g. in a CLAIM block) but missing.
    #[error("the amount needs an asset symbol, e.g. `1.5 {expected}`")]
    MissingSymbol {
        /// The expected symbol (or `one of A, B`).
        expected: String,
    },
    /// Text longer than [`MAX_AMOUNT_TEXT`].
    #[error("the amount text is {got} bytes; at most {max} are allowed")]
    TooLong {
        /// The limit.
        max: usize,
        /// The input length.
        got: usize,
    },
    /// An asset definition that cannot be used.
    #[error("invalid asset: {reason}")]
    InvalidAsset {
        /// What is wrong.
        reason: String,
    },
}

/// What an amount counts: a symbol and its number of decimals.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Asset {
    symbol: String,
    decimals: u8,
}

impl Asset {
    /// An asset; the symbol is 1..=16 ASCII letters, digits, `.`, `-` or `_`, starting
    /// with a letter, and decimals are at most [`MAX_DECIMALS`].
    pub fn new(symbol: impl Into<String>, decimals: u8) -> Result<Self, AmountError> {
        let symbol = symbol.into();
        let valid_chars = symbol
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'));
        let starts_with_letter = symbol
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphabetic());
        if symbol.is_empty() || symbol.len() > MAX_SYMBOL_LEN || !valid_chars || !starts_with_letter
        {
            return Err(AmountError::InvalidAsset {
                reason: format!(
                    "symbol {:?} must be 1 to {MAX_SYMBOL_LEN} ASCII letters, digits, '.', '-' or '_', starting with a letter",
                    symbol.chars().take(MAX_SYMBOL_LEN + 4).collect::<String>()
                ),
            });
        }
        if decimals > MAX_DECIMALS {
            return Err(AmountError::InvalidAsset {
                reason: format!("{decimals} decimals; at most {MAX_DECIMALS} are supported"),
            });
        }
        Ok(Self { symbol, decimals })
    }

    /// QTUM, 8 decimals (satoshi), the native coin of Qtum chains.
    pub fn qtum() -> Self {
        Self {
            symbol: "QTUM".into(),
            decimals: QTUM_DECIMALS,
        }
    }

    /// ETH, 18 decimals (wei), the native coin assumed on non-Qtum EVM chains.
    pub fn eth() -> Self {
        Self {
            symbol: "ETH".into(),
            decimals: 18,
        }
    }

    /// The native coin of a chain: QTUM (8 decimals) on 81/8889/8890, ETH (18) elsewhere.
    pub fn for_chain(chain_id: u64) -> Self {
        if qtum::is_qtum_chain(chain_id) {
            Self::qtum()
        } else {
            Self::eth()
        }
    }

    /// The symbol, as given at construction.
    pub fn symbol(&self) -> &str {
        &self.symbol
    }

    /// The number of decimals.
    pub fn decimals(&self) -> u8 {
        self.decimals
    }

    /// Whether `symbol` names this asset (ASCII case-insensitive).
    pub fn matches_symbol(&self, symbol: &str) -> bool {
        self.symbol.eq_ignore_ascii_case(symbol)
    }
}

impl std::fmt::Display for Asset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.symbol)
    }
}

/// A number of base units of an asset, at most [`MAX_UINT96`].
///
/// `Display` prints the canonical text (`1.5 QTUM`); [`Amount::parse`] reads it back.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Amount {
    units: u128,
    asset: Asset,
}

impl Amount {
    /// An amount of base units; refused above `uint96`.
    pub fn from_units(units: u128, asset: Asset) -> Result<Self, AmountError> {
        if units > MAX_UINT96 {
            return Err(AmountError::Overflow {
                max: max_text(&asset),
            });
        }
        Ok(Self { units, asset })
    }

    /// Zero of an asset.
    pub fn zero(asset: Asset) -> Self {
        Self { units: 0, asset }
    }

    /// The base units (satoshi for QTUM).
    pub fn units(&self) -> u128 {
        self.units
    }

    /// The base units as the contract's `uint96`.
    pub fn to_u96(&self) -> U96 {
        U96::from(self.units)
    }

    /// The asset.
    pub fn asset(&self) -> &Asset {
        &self.asset
    }

    /// The number without the symbol, canonical (`1.5`): what qtumd's RPC takes.
    pub fn to_decimal_string(&self) -> String {
        format_units(self.units, self.asset.decimals)
    }

    /// Parses `1.5`, `1.5 QTUM` or `1.5qtum`. A symbol, if present, must be `asset`'s.
    pub fn parse(text: &str, asset: &Asset) -> Result<Self, AmountError> {
        let (number, symbol) = split(text)?;
        if let Some(symbol) = symbol {
            if !asset.matches_symbol(symbol) {
                return Err(AmountError::WrongSymbol {
                    expected: asset.symbol.clone(),
                    got: symbol.to_string(),
                });
            }
        }
        Self::from_number(number, asset.clone())
    }

    /// Parses an amount whose symbol is required and picks the asset by it
    /// (an exact match wins over a case-insensitive one).
    pub fn parse_among(text: &str, assets: &[Asset]) -> Result<Self, AmountError> {
        let expected = || match assets {
            [one] => one.symbol.clone(),
            many => format!(
                "one of {}",
                many.iter()
                    .map(|a| a.symbol.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        let (number, symbol) = split(text)?;
        let symbol = symbol.ok_or_else(|| AmountError::MissingSymbol {
            expected: expected(),
        })?;
        let asset = assets
            .iter()
            .find(|a| a.symbol == symbol)
            .or_else(|| assets.iter().find(|a| a.matches_symbol(symbol)))
            .ok_or_else(|| AmountError::WrongSymbol {
                expected: expected(),
                got: symbol.to_string(),
            })?;
        Self::from_number(number, asset.clone())
    }

    fn from_number(number: &str, asset: Asset) -> Result<Self, AmountError> {
        let units = parse_units(number, &asset)?;
        Ok(Self { units, asset })
    }
}

impl std::fmt::Display for Amount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}",
            format_units(self.units, self.asset.decimals),
            self.asset.symbol
        )
    }
}

/// Checks an amount's text without knowing its asset yet (a config value): the number
/// must be a plain decimal and the symbol, if any, well formed. Returns the symbol.
pub fn check_amount_text(text: &str) -> Result<Option<String>, AmountError> {
    let (number, symbol) = split(text)?;
    let symbol = match symbol {
        Some(sym) => Some(Asset::new(sym, 0)?.symbol),
        None => None,
    };
    // As many decimals as written (so only the number's shape and size are judged).
    let written = number.split_once('.').map_or(0, |(_, f)| f.len());
    let decimals = u8::try_from(written).unwrap_or(u8::MAX).min(MAX_DECIMALS);
    parse_units(number, &Asset::new("ANY", decimals)?)?;
    Ok(symbol)
}

/// Splits `text` into the number and the optional symbol.
fn split(text: &str) -> Result<(&str, Option<&str>), AmountError> {
    if text.len() > MAX_AMOUNT_TEXT {
        return Err(AmountError::TooLong {
            max: MAX_AMOUNT_TEXT,
            got: text.len(),
        });
    }
    let text = text.trim();
    if text.is_empty() {
        return Err(AmountError::Empty);
    }
    if text.starts_with('-') || text.starts_with('\u{2212}') {
        return Err(AmountError::Negative);
    }
    if text.starts_with("0x") || text.starts_with("0X") {
        return Err(AmountError::InvalidNumber {
            text: text.to_string(),
            reason: "hex is not accepted; write a decimal like 1.5",
        });
    }
    let end = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, rest) = text.split_at(end);
    let exponent = rest
        .strip_prefix(['e', 'E'])
        .map(|r| r.trim_start_matches(['+', '-']));
    if !number.is_empty()
        && exponent.is_some_and(|r| r.bytes().next().is_some_and(|b| b.is_ascii_digit()))
    {
        return Err(AmountError::InvalidNumber {
            text: text.to_string(),
            reason: "exponents are not accepted; write all the digits",
        });
    }
    let rest = rest.trim_start();
    if number.is_empty() {
        return Err(AmountError::InvalidNumber {
            text: text.to_string(),
            reason: "it must start with a digit",
        });
    }
    if rest.is_empty() {
        return Ok((number, None));
    }
    // The rest must look like a symbol; otherwise the number itself was malformed
    // (e.g. `1,5`, `1e8`, `1 000`).
    let symbol_like = rest.bytes().next().is_some_and(|b| b.is_ascii_alphabetic())
        && rest
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'));
    if !symbol_like {
        return Err(AmountError::InvalidNumber {
            text: text.to_string(),
            reason: "digits, one '.', then an optional asset symbol are expected",
        });
    }
    Ok((number, Some(rest)))
}

/// Parses `digits[.digits]` into base units of `asset` (no symbol).
pub fn parse_units(number: &str, asset: &Asset) -> Result<u128, AmountError> {
    let invalid = |reason| AmountError::InvalidNumber {
        text: number.to_string(),
        reason,
    };
    if number.len() > MAX_AMOUNT_TEXT {
        return Err(AmountError::TooLong {
            max: MAX_AMOUNT_TEXT,
            got: number.len(),
        });
    }
    let (int, frac) = match number.split_once('.') {
        Some((int, frac)) => (int, Some(frac)),
        None => (number, None),
    };
    if int.is_empty() {
        return Err(invalid(
            "a digit is needed before the '.' (write 0.5, not .5)",
        ));
    }
    if !int.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid("only digits and one '.' are allowed"));
    }
    let frac = frac.unwrap_or("");
    if number.contains('.') && frac.is_empty() {
        return Err(invalid(
            "a digit is needed after the '.' (write 5 or 5.0, not 5.)",
        ));
    }
    if !frac.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid("only digits and one '.' are allowed"));
    }
    let significant = frac.trim_end_matches('0');
    if significant.len() > usize::from(asset.decimals) {
        return Err(AmountError::TooManyDecimals {
            symbol: asset.symbol.clone(),
            allowed: asset.decimals,
            got: significant.len(),
        });
    }
    let overflow = || AmountError::Overflow {
        max: max_text(asset),
    };
    let mut units: u128 = 0;
    for b in int.bytes() {
        units = units
            .checked_mul(10)
            .and_then(|u| u.checked_add(u128::from(b - b'0')))
            .ok_or_else(overflow)?;
        if units > MAX_UINT96 {
            return Err(overflow());
        }
    }
    let scale = 10u128.pow(u32::from(asset.decimals));
    units = units.checked_mul(scale).ok_or_else(overflow)?;
    let mut frac_units: u128 = 0;
    for (i, b) in significant.bytes().enumerate() {
        let weight = 10u128.pow(u32::from(asset.decimals) - 1 - i as u32);
        frac_units += u128::from(b - b'0') * weight;
    }
    units = units.checked_add(frac_units).ok_or_else(overflow)?;
    if units > MAX_UINT96 {
        return Err(overflow());
    }
    Ok(units)
}

/// Prints base units as a canonical decimal without symbol: `150000000, 8` → `1.5`.
pub fn format_units(units: u128, decimals: u8) -> String {
    let digits = units.to_string();
    let d = usize::from(decimals);
    if d == 0 {
        return digits;
    }
    let padded = if digits.len() <= d {
        format!("{}{digits}", "0".repeat(d + 1 - digits.len()))
    } else {
        digits
    };
    let (int, frac) = padded.split_at(padded.len() - d);
    let frac = frac.trim_end_matches('0');
    if frac.is_empty() {
        int.to_string()
    } else {
        format!("{int}.{frac}")
    }
}

/// Prints base units with every decimal place, as nodes write amounts:
/// `40, 8` → `0.00000040`, `150000000, 8` → `1.50000000`.
pub fn format_units_padded(units: u128, decimals: u8) -> String {
    let d = usize::from(decimals);
    let short = format_units(units, decimals);
    if d == 0 {
        return short;
    }
    match short.split_once('.') {
        Some((int, frac)) => format!("{int}.{frac:0<d$}"),
        None => format!("{short}.{}", "0".repeat(d)),
    }
}

fn max_text(asset: &Asset) -> String {
    format!(
        "{} {}",
        format_units(MAX_UINT96, asset.decimals),
        asset.symbol
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn q(text: &str) -> Result<Amount, AmountError> {
        Amount::parse(text, &Asset::qtum())
    }

    #[test]
    fn parses_and_prints_canonically() {
        assert_eq!(q("1.5 QTUM").unwrap().units(), 150_000_000);
        assert_eq!(q("1.5").unwrap().units(), 150_000_000);
        assert_eq!(q(" 1.5qtum ").unwrap().units(), 150_000_000);
        assert_eq!(q("0.00000001 QTUM").unwrap().units(), 1);
        assert_eq!(q("1.500000000 QTUM").unwrap().units(), 150_000_000);
        assert_eq!(q("007").unwrap().to_string(), "7 QTUM");
        assert_eq!(q("1.5").unwrap().to_string(), "1.5 QTUM");
        assert_eq!(q("0").unwrap().to_string(), "0 QTUM");
        assert_eq!(q("0.00000001").unwrap().to_string(), "0.00000001 QTUM");
        assert_eq!(q("10.10").unwrap().to_string(), "10.1 QTUM");
        assert_eq!(q("10.10").unwrap().to_decimal_string(), "10.1");
        let usdc = Asset::new("USDC", 6).unwrap();
        assert_eq!(
            Amount::parse("2.25 USDC", &usdc).unwrap().units(),
            2_250_000
        );
        let zero_dec = Asset::new("NFTISH", 0).unwrap();
        assert_eq!(
            Amount::parse("12", &zero_dec).unwrap().to_string(),
            "12 NFTISH"
        );
        assert_eq!(
            Amount::from_units(MAX_UINT96, Asset::qtum())
                .unwrap()
                .to_u96(),
            U96::MAX
        );
    }

    #[test]
    fn refuses_bad_amounts() {
        assert_eq!(q(""), Err(AmountError::Empty));
        assert_eq!(q("   "), Err(AmountError::Empty));
        assert_eq!(q("-1"), Err(AmountError::Negative));
        assert_eq!(
            q("0.000000001 QTUM"),
            Err(AmountError::TooManyDecimals {
                symbol: "QTUM".into(),
                allowed: 8,
                got: 9
            })
        );
        assert_eq!(
            q("1.5 ETH"),
            Err(AmountError::WrongSymbol {
                expected: "QTUM".into(),
                got: "ETH".into()
            })
        );
        for bad in [
            "1,5",
            "1e8",
            ".5",
            "5.",
            "1.2.3",
            "+1",
            "1 000",
            "QTUM",
            "0x10",
            "1.5 QTUM!",
        ] {
            assert!(
                matches!(q(bad), Err(AmountError::InvalidNumber { .. })),
                "{bad}: {:?}",
                q(bad)
            );
        }
        assert!(matches!(
            q("792281625142643375935.43950336"),
            Err(AmountError::Overflow { .. })
        ));
        assert_eq!(
            q("792281625142643375935.43950335").unwrap().units(),
            MAX_UINT96
        );
        assert!(matches!(
            q("99999999999999999999999999999999999999999"),
            Err(AmountError::Overflow { .. })
        ));
        assert!(matches!(
            q(&"1".repeat(200)),
            Err(AmountError::TooLong { .. })
        ));
        assert!(matches!(
            Amount::from_units(MAX_UINT96 + 1, Asset::eth()),
            Err(AmountError::Overflow { .. })
        ));
    }

    #[test]
    fn overflow_message_names_the_limit() {
        let err = q("1000000000000000000000 QTUM").unwrap_err();
        assert_eq!(
            err.to_string(),
            "the amount exceeds the contract limit of 792281625142643375935.43950335 QTUM (2^96 - 1 base units)"
        );
        let err = q("0.000000001").unwrap_err();
        assert_eq!(
            err.to_string(),
            "QTUM has 8 decimals; the amount has 9 significant decimals"
        );
    }

    #[test]
    fn parse_among_requires_and_picks_symbol() {
        let assets = [Asset::qtum(), Asset::new("USDC", 6).unwrap()];
        assert_eq!(
            Amount::parse_among("1 usdc", &assets).unwrap().units(),
            1_000_000
        );
        assert_eq!(
            Amount::parse_among("1 QTUM", &assets).unwrap().units(),
            100_000_000
        );
        assert_eq!(
            Amount::parse_among("1", &assets),
            Err(AmountError::MissingSymbol {
                expected: "one of QTUM, USDC".into()
            })
        );
        assert_eq!(
            Amount::parse_among("1 DAI", &assets[..1]),
            Err(AmountError::WrongSymbol {
                expected: "QTUM".into(),
                got: "DAI".into()
            })
        );
    }

    #[test]
    fn amount_text_is_checked_without_an_asset() {
        assert_eq!(check_amount_text("0.01 QTUM"), Ok(Some("QTUM".into())));
        assert_eq!(check_amount_text("0.5"), Ok(None));
        for bad in ["lots", "", "-1", "1e3", "0x10", "1.2.3"] {
            assert!(check_amount_text(bad).is_err(), "{bad:?} passed");
        }
    }

    #[test]
    fn assets() {
        assert_eq!(Asset::for_chain(81), Asset::qtum());
        assert_eq!(Asset::for_chain(8890).decimals(), 8);
        assert_eq!(Asset::for_chain(31337), Asset::eth());
        assert_eq!(Asset::for_chain(1).decimals(), 18);
        assert!(Asset::new("", 6).is_err());
        assert!(Asset::new("A B", 6).is_err());
        assert!(Asset::new("1INCH", 18).is_err());
        assert!(Asset::new("USDC.e", 6).is_ok());
        assert!(Asset::new("X", 39).is_err());
        assert_eq!(Asset::new("BIG", 38).unwrap().decimals(), 38);
    }

    #[test]
    fn format_units_edges() {
        assert_eq!(format_units(0, 8), "0");
        assert_eq!(format_units(1, 8), "0.00000001");
        assert_eq!(format_units(100_000_000, 8), "1");
        assert_eq!(format_units(123, 0), "123");
        assert_eq!(format_units(1, 38), format!("0.{}1", "0".repeat(37)));
    }

    proptest! {
        #[test]
        fn print_parse_round_trips(units in 0..=MAX_UINT96, decimals in 0u8..=MAX_DECIMALS) {
            let asset = Asset::new("TOK", decimals).unwrap();
            let amount = Amount::from_units(units, asset.clone()).unwrap();
            let text = amount.to_string();
            prop_assert_eq!(Amount::parse(&text, &asset).unwrap(), amount.clone());
            prop_assert_eq!(Amount::parse_among(&text, std::slice::from_ref(&asset)).unwrap(), amount.clone());
            prop_assert_eq!(parse_units(&amount.to_decimal_string(), &asset).unwrap(), units);
        }

        #[test]
        fn parse_never_panics(s in "\\PC{0,40}") {
            let _ = q(&s);
            let _ = Amount::parse_among(&s, &[Asset::qtum(), Asset::eth()]);
        }
    }
}
