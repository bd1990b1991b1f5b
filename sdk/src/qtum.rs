//! Qtum networks, base58 addresses, WIF keys, and chain-aware address display.
//!
//! A Qtum P2PKH address is `Base58Check(version ‖ hash160(pubkey))`, version 58
//! (`Q…`) on mainnet and 120 (`q…`) on testnet and regtest. Inside Qtum's EVM the
//! same 20 bytes are `msg.sender`, so on a Qtum chain [`encode_address`] and
//! [`decode_address`] are just two spellings of one [`Address`].
//!
//! # Two addresses for one key
//!
//! A secp256k1 key has two 20-byte identities, and Spring Mail uses both:
//!
//! * the **EVM (keccak) address**, `keccak256(uncompressed pubkey)[12..]`
//!   ([`crate::keys::ClaimSecret::address`]): what `ecrecover` returns. Claim keys
//!   and watcher keys sign EIP-712 messages that the contract checks with
//!   `ecrecover`, so this is how the contract knows them.
//! * the **Qtum address**, `hash160(compressed pubkey)` = `ripemd160(sha256(pk))`
//!   ([`qtum_sender_of_secret`], [`qtum_address_of_secret`]): what `msg.sender` is
//!   when the key signs a Qtum *transaction* (a UTXO spend with `OP_SENDER`/`OP_CALL`).
//!   Funds paid to a recipient's `Q…`/`q…` address land on this one.
//!
//! They are different numbers. Never compare an `ecrecover` result with a Qtum
//! `msg.sender` (DESIGN.md, "Chain").
//!
//! # Chain-aware display
//!
//! [`format_address`] prints base58 on Qtum chains (ids 81, 8889, 8890) and EIP-55
//! checksummed hex elsewhere; [`parse_address`] accepts base58 on Qtum chains and
//! `0x`-hex on every chain.

use alloy::primitives::Address;
use ripemd::Ripemd160;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::keys::ClaimSecret;

pub use crate::protocol::{MAINNET_CHAIN_ID, REGTEST_CHAIN_ID, TESTNET_CHAIN_ID};
/// Base58 P2PKH version byte on mainnet (addresses start with `Q`).
pub const MAINNET_ADDRESS_VERSION: u8 = 58;
/// Base58 P2PKH version byte on testnet and regtest (addresses start with `q`).
pub const TEST_ADDRESS_VERSION: u8 = 120;
/// WIF version byte on mainnet.
pub const MAINNET_WIF_VERSION: u8 = 0x80;
/// WIF version byte on testnet and regtest (keys start with `c` when compressed).
pub const TEST_WIF_VERSION: u8 = 0xef;
/// Longest base58 text decoded; anything longer is refused before decoding.
pub const MAX_BASE58_CHARS: usize = 128;

/// A Qtum network, identified by its EVM chain id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum QtumNetwork {
    /// Chain id 81.
    Mainnet,
    /// Chain id 8889.
    Testnet,
    /// Chain id 8890.
    Regtest,
}

impl QtumNetwork {
    /// The network for a chain id, or `None` for a non-Qtum chain.
    pub const fn from_chain_id(chain_id: u64) -> Option<Self> {
        match chain_id {
            MAINNET_CHAIN_ID => Some(Self::Mainnet),
            TESTNET_CHAIN_ID => Some(Self::Testnet),
            REGTEST_CHAIN_ID => Some(Self::Regtest),
            _ => None,
        }
    }

    /// The EVM chain id (81, 8889 or 8890).
    pub const fn chain_id(self) -> u64 {
        match self {
            Self::Mainnet => MAINNET_CHAIN_ID,
            Self::Testnet => TESTNET_CHAIN_ID,
            Self::Regtest => REGTEST_CHAIN_ID,
        }
    }

    /// Which version bytes the network uses.
    pub const fn kind(self) -> NetworkKind {
        match self {
            Self::Mainnet => NetworkKind::Main,
            Self::Testnet | Self::Regtest => NetworkKind::Test,
        }
    }

    /// The base58 P2PKH version byte: 58 or 120.
    pub const fn address_version(self) -> u8 {
        self.kind().address_version()
    }

    /// The WIF version byte: 0x80 or 0xef.
    pub const fn wif_version(self) -> u8 {
        self.kind().wif_version()
    }

    /// `"mainnet"`, `"testnet"` or `"regtest"`.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Mainnet => "mainnet",
            Self::Testnet => "testnet",
            Self::Regtest => "regtest",
        }
    }
}

impl std::fmt::Display for QtumNetwork {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// What a base58 string can tell about its network: testnet and regtest share
/// version bytes, so a decoded address or WIF says only "main" or "test".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NetworkKind {
    /// Mainnet version bytes (address 58, WIF 0x80).
    Main,
    /// Testnet/regtest version bytes (address 120, WIF 0xef).
    Test,
}

impl NetworkKind {
    /// The base58 P2PKH version byte.
    pub const fn address_version(self) -> u8 {
        match self {
            Self::Main => MAINNET_ADDRESS_VERSION,
            Self::Test => TEST_ADDRESS_VERSION,
        }
    }

    /// The WIF version byte.
    pub const fn wif_version(self) -> u8 {
        match self {
            Self::Main => MAINNET_WIF_VERSION,
            Self::Test => TEST_WIF_VERSION,
        }
    }

    /// Whether `network` uses these version bytes.
    pub const fn includes(self, network: QtumNetwork) -> bool {
        matches!(
            (self, network.kind()),
            (Self::Main, NetworkKind::Main) | (Self::Test, NetworkKind::Test)
        )
    }
}

/// Why an address was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    /// Nothing to parse.
    #[error("the address is empty")]
    Empty,
    /// A character outside the base58 alphabet (which has no `0`, `O`, `I`, `l`).
    #[error("invalid base58 character {character:?} at position {position}")]
    InvalidBase58Character {
        /// The offending character.
        character: char,
        /// 0-based character index.
        position: usize,
    },
    /// Longer than [`MAX_BASE58_CHARS`]; not decoded.
    #[error("the base58 address is {got} characters; at most {max} are allowed")]
    TooLong {
        /// The limit.
        max: usize,
        /// The input length.
        got: usize,
    },
    /// The 4-byte double-SHA256 checksum does not match (a typo, or a truncated copy).
    #[error("bad base58 checksum (a typo or an incomplete copy)")]
    BadChecksum,
    /// The decoded payload is not version ‖ 20 bytes.
    #[error(
        "the base58 address holds {got} bytes; a P2PKH address holds {expected} (version + 20)"
    )]
    WrongLength {
        /// 21.
        expected: usize,
        /// Bytes before the checksum.
        got: usize,
    },
    /// The version byte is not a Qtum P2PKH version (58 or 120); e.g. a P2SH address.
    #[error("version byte {got} is not a Qtum P2PKH address (58 for Q… mainnet, 120 for q… testnet/regtest)")]
    UnknownVersion {
        /// The version byte found.
        got: u8,
    },
    /// A valid Qtum address of the other network.
    #[error("the address is for {got_network} (version {got}) but chain {chain_id} expects version {expected}")]
    WrongNetwork {
        /// The chain the caller is on.
        chain_id: u64,
        /// The version byte that chain uses.
        expected: u8,
        /// The version byte found.
        got: u8,
        /// `"mainnet"` or `"testnet/regtest"`.
        got_network: &'static str,
    },
    /// A bech32 (segwit) address: it cannot be an EVM sender or recipient.
    #[error(
        "bech32 (segwit) addresses are not supported; use a P2PKH address (Q… or q…) or 0x-hex"
    )]
    Bech32NotSupported,
    /// Not `0x` followed by 40 hex digits.
    #[error("expected 0x followed by 40 hex digits: {reason}")]
    InvalidHex {
        /// What is wrong.
        reason: String,
    },
    /// Mixed-case hex whose EIP-55 checksum does not match (a typo).
    #[error("the mixed-case hex address fails its EIP-55 checksum (a typo?); expected {expected}")]
    BadHexChecksum {
        /// The correctly checksummed spelling of the same bytes.
        expected: String,
    },
    /// Base58 given on a chain that takes only hex.
    #[error(
        "chain {chain_id} is not a Qtum chain: give the address as 0x followed by 40 hex digits"
    )]
    HexRequired {
        /// The caller's chain.
        chain_id: u64,
    },
}

/// Why a WIF private key was refused. Messages never contain the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WifError {
    /// Nothing to parse.
    #[error("the WIF key is empty")]
    Empty,
    /// A character outside the base58 alphabet.
    #[error("invalid base58 character at position {position} of the WIF key")]
    InvalidBase58Character {
        /// 0-based character index (the character itself is not echoed).
        position: usize,
    },
    /// Longer than [`MAX_BASE58_CHARS`].
    #[error("the WIF key is {got} characters; at most {max} are allowed")]
    TooLong {
        /// The limit.
        max: usize,
        /// The input length.
        got: usize,
    },
    /// The checksum does not match.
    #[error("bad base58 checksum in the WIF key")]
    BadChecksum,
    /// Not version ‖ 32 bytes (‖ 0x01).
    #[error("the WIF key holds {got} bytes; expected 33 (uncompressed) or 34 (compressed)")]
    WrongLength {
        /// Bytes before the checksum.
        got: usize,
    },
    /// Not 0x80 or 0xef.
    #[error("WIF version byte {got:#04x} is not a Qtum key (0x80 mainnet, 0xef testnet/regtest)")]
    UnknownVersion {
        /// The version byte found.
        got: u8,
    },
    /// 34 bytes but the last is not 0x01.
    #[error("the WIF key's compression flag is {got:#04x}; expected 0x01")]
    BadCompressionFlag {
        /// The flag byte found.
        got: u8,
    },
    /// Zero or not below the curve order.
    #[error("the WIF key is not a valid secp256k1 secret")]
    InvalidSecret,
}

enum Base58Failure {
    Empty,
    TooLong(usize),
    Char(char, usize),
    Checksum,
    Short(usize),
}

/// Decodes base58 and checks and strips the 4-byte double-SHA256 checksum.
fn base58check_decode(text: &str) -> Result<Zeroizing<Vec<u8>>, Base58Failure> {
    if text.is_empty() {
        return Err(Base58Failure::Empty);
    }
    let chars = text.chars().count();
    if chars > MAX_BASE58_CHARS {
        return Err(Base58Failure::TooLong(chars));
    }
    const ALPHABET: &str = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";
    if let Some((i, c)) = text
        .chars()
        .enumerate()
        .find(|(_, c)| !ALPHABET.contains(*c))
    {
        return Err(Base58Failure::Char(c, i));
    }
    let bytes = Zeroizing::new(
        bs58::decode(text)
            .into_vec()
            .map_err(|_| Base58Failure::Checksum)?,
    );
    if bytes.len() < 4 {
        return Err(Base58Failure::Short(bytes.len()));
    }
    let (payload, check) = bytes.split_at(bytes.len() - 4);
    let digest = sha256d(payload);
    if digest[..4] != *check {
        return Err(Base58Failure::Checksum);
    }
    Ok(Zeroizing::new(payload.to_vec()))
}

/// SHA-256 of SHA-256: base58check's checksum and Qtum's transaction hashes.
pub(crate) fn sha256d(data: &[u8]) -> [u8; 32] {
    Sha256::digest(Sha256::digest(data)).into()
}

fn base58check_encode(payload: &[u8]) -> String {
    let digest = sha256d(payload);
    let mut full = Zeroizing::new(Vec::with_capacity(payload.len() + 4));
    full.extend_from_slice(payload);
    full.extend_from_slice(&digest[..4]);
    bs58::encode(&full[..]).into_string()
}

/// The base58 P2PKH address of 20 bytes on a network (`Q…` or `q…`).
pub fn encode_address(address: Address, network: QtumNetwork) -> String {
    let mut payload = [0u8; 21];
    payload[0] = network.address_version();
    payload[1..].copy_from_slice(address.as_slice());
    base58check_encode(&payload)
}

fn looks_bech32(text: &str) -> bool {
    let lower = text.to_ascii_lowercase();
    ["qc1", "tq1", "qcrt1"]
        .iter()
        .any(|hrp| lower.starts_with(hrp))
        && text.len() >= 14
}

/// Decodes a base58 P2PKH address (surrounding whitespace ignored), returning which
/// version bytes it uses and its 20 bytes.
pub fn decode_address(text: &str) -> Result<(NetworkKind, Address), AddressError> {
    let text = text.trim();
    let payload = base58check_decode(text).map_err(|e| match e {
        Base58Failure::Empty => AddressError::Empty,
        Base58Failure::TooLong(got) => AddressError::TooLong {
            max: MAX_BASE58_CHARS,
            got,
        },
        Base58Failure::Char(..) if looks_bech32(text) => AddressError::Bech32NotSupported,
        Base58Failure::Char(character, position) => AddressError::InvalidBase58Character {
            character,
            position,
        },
        Base58Failure::Checksum if looks_bech32(text) => AddressError::Bech32NotSupported,
        Base58Failure::Checksum => AddressError::BadChecksum,
        Base58Failure::Short(got) => AddressError::WrongLength { expected: 21, got },
    })?;
    if payload.len() != 21 {
        return Err(AddressError::WrongLength {
            expected: 21,
            got: payload.len(),
        });
    }
    let kind = match payload[0] {
        MAINNET_ADDRESS_VERSION => NetworkKind::Main,
        TEST_ADDRESS_VERSION => NetworkKind::Test,
        got => return Err(AddressError::UnknownVersion { got }),
    };
    Ok((kind, Address::from_slice(&payload[1..])))
}

/// Decodes a base58 P2PKH address and checks it belongs to `network`.
pub fn decode_address_for(text: &str, network: QtumNetwork) -> Result<Address, AddressError> {
    let (kind, address) = decode_address(text)?;
    if !kind.includes(network) {
        return Err(AddressError::WrongNetwork {
            chain_id: network.chain_id(),
            expected: network.address_version(),
            got: kind.address_version(),
            got_network: match kind {
                NetworkKind::Main => "mainnet",
                NetworkKind::Test => "testnet/regtest",
            },
        });
    }
    Ok(address)
}

/// A decoded WIF private key. `Debug` shows no secret (the secret's own `Debug` is redacted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wif {
    /// The key.
    pub secret: ClaimSecret,
    /// Main or test version byte.
    pub kind: NetworkKind,
    /// Whether the key is marked for the compressed public key (all keys this software makes are).
    pub compressed: bool,
}

/// Encodes a secret as WIF: `Base58Check(version ‖ secret ‖ [0x01 if compressed])`.
/// The result is secret: do not log it.
pub fn encode_wif(secret: &ClaimSecret, network: QtumNetwork, compressed: bool) -> String {
    let mut payload = Zeroizing::new(Vec::with_capacity(34));
    payload.push(network.wif_version());
    payload.extend_from_slice(secret.expose_bytes());
    if compressed {
        payload.push(0x01);
    }
    base58check_encode(&payload)
}

/// Decodes a WIF private key (surrounding whitespace ignored).
pub fn decode_wif(text: &str) -> Result<Wif, WifError> {
    let payload = base58check_decode(text.trim()).map_err(|e| match e {
        Base58Failure::Empty => WifError::Empty,
        Base58Failure::TooLong(got) => WifError::TooLong {
            max: MAX_BASE58_CHARS,
            got,
        },
        Base58Failure::Char(_, position) => WifError::InvalidBase58Character { position },
        Base58Failure::Checksum => WifError::BadChecksum,
        Base58Failure::Short(got) => WifError::WrongLength { got },
    })?;
    let compressed = match payload.len() {
        33 => false,
        34 => match payload[33] {
            0x01 => true,
            got => return Err(WifError::BadCompressionFlag { got }),
        },
        got => return Err(WifError::WrongLength { got }),
    };
    let kind = match payload[0] {
        MAINNET_WIF_VERSION => NetworkKind::Main,
        TEST_WIF_VERSION => NetworkKind::Test,
        got => return Err(WifError::UnknownVersion { got }),
    };
    let mut bytes = Zeroizing::new([0u8; 32]);
    bytes.copy_from_slice(&payload[1..33]);
    let secret = ClaimSecret::from_bytes(*bytes).map_err(|_| WifError::InvalidSecret)?;
    Ok(Wif {
        secret,
        kind,
        compressed,
    })
}

/// `ripemd160(sha256(pubkey))` of a serialized public key (33 or 65 bytes).
pub fn hash160_of_pubkey(pubkey: &[u8]) -> Address {
    Address::from_slice(&Ripemd160::digest(Sha256::digest(pubkey)))
}

/// The key's Qtum identity: `hash160(compressed pubkey)`. This is `msg.sender` in
/// Qtum's EVM for a transaction the key signs, and differs from
/// [`ClaimSecret::address`] (the keccak address `ecrecover` returns).
pub fn qtum_sender_of_secret(secret: &ClaimSecret) -> Address {
    let sk = secp256k1::SecretKey::from_byte_array(*secret.expose_bytes())
        .expect("ClaimSecret is validated at construction");
    let pk = secp256k1::PublicKey::from_secret_key_global(&sk);
    hash160_of_pubkey(&pk.serialize())
}

/// The base58 P2PKH address of the key's compressed public key on `network`.
pub fn qtum_address_of_secret(secret: &ClaimSecret, network: QtumNetwork) -> String {
    encode_address(qtum_sender_of_secret(secret), network)
}

/// Whether `chain_id` is a Qtum chain (81, 8889, 8890).
pub const fn is_qtum_chain(chain_id: u64) -> bool {
    QtumNetwork::from_chain_id(chain_id).is_some()
}

/// Prints an address the way users of `chain_id` expect: base58 on Qtum chains,
/// EIP-55 checksummed `0x`-hex elsewhere.
pub fn format_address(chain_id: u64, address: Address) -> String {
    match QtumNetwork::from_chain_id(chain_id) {
        Some(network) => encode_address(address, network),
        None => address.to_checksum(None),
    }
}

/// Parses an address typed for `chain_id` (surrounding whitespace ignored):
/// `0x`-hex on every chain, base58 P2PKH of the right network on Qtum chains.
pub fn parse_address(chain_id: u64, text: &str) -> Result<Address, AddressError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(AddressError::Empty);
    }
    if text.starts_with("0x") || text.starts_with("0X") {
        return parse_hex_address(text);
    }
    match QtumNetwork::from_chain_id(chain_id) {
        Some(network) => decode_address_for(text, network),
        None => Err(AddressError::HexRequired { chain_id }),
    }
}

/// Parses `0x` followed by 40 hex digits. All-lowercase and all-uppercase are
/// accepted as is; mixed case must carry a valid EIP-55 checksum.
pub fn parse_hex_address(text: &str) -> Result<Address, AddressError> {
    let digits = text
        .strip_prefix("0x")
        .or_else(|| text.strip_prefix("0X"))
        .ok_or_else(|| AddressError::InvalidHex {
            reason: "missing 0x prefix".into(),
        })?;
    if let Some((i, c)) = digits
        .chars()
        .enumerate()
        .find(|(_, c)| !c.is_ascii_hexdigit())
    {
        return Err(AddressError::InvalidHex {
            reason: format!("{c:?} at position {} is not a hex digit", i + 2),
        });
    }
    if digits.len() != 40 {
        return Err(AddressError::InvalidHex {
            reason: format!("{} hex digits (20 bytes = 40 digits)", digits.len()),
        });
    }
    let mut bytes = [0u8; 20];
    hex::decode_to_slice(digits, &mut bytes).map_err(|e| AddressError::InvalidHex {
        reason: e.to_string(),
    })?;
    let address = Address::from(bytes);
    let has_upper = digits.bytes().any(|b| b.is_ascii_uppercase());
    let has_lower = digits.bytes().any(|b| b.is_ascii_lowercase());
    if has_upper && has_lower {
        let expected = address.to_checksum(None);
        if expected[2..] != *digits {
            return Err(AddressError::BadHexChecksum { expected });
        }
    }
    Ok(address)
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy::primitives::address;

    // Recorded from qtumd v27.1.0 regtest: /work/shared/qtum/rpc/010, 011, 013.
    const NODE_ADDR: &str = "qSGMBbFXPcTYDSYbidwsaZzDSLDkQESm2e";
    const NODE_HEX: Address = address!("5f8069e453bd0d05e0221718658ad13f191a883a");
    // 015–018: an imported regtest WIF, its pubkey and address.
    const NODE_WIF: &str = "cMuawWpfTibtXdSdUdGG1rjd3U7hTsVKV1NS6Xz8QWFeFk8Su3gd";
    const NODE_WIF_ADDR: &str = "qPSybkGMbqeJDeSa4DnXQGvASoLPBqktrH";

    #[test]
    fn networks_and_versions() {
        for n in [
            QtumNetwork::Mainnet,
            QtumNetwork::Testnet,
            QtumNetwork::Regtest,
        ] {
            assert_eq!(QtumNetwork::from_chain_id(n.chain_id()), Some(n));
        }
        assert_eq!(QtumNetwork::from_chain_id(1), None);
        assert_eq!(QtumNetwork::Mainnet.address_version(), 58);
        assert_eq!(QtumNetwork::Regtest.address_version(), 120);
        assert_eq!(QtumNetwork::Mainnet.wif_version(), 0x80);
        assert_eq!(QtumNetwork::Testnet.wif_version(), 0xef);
        assert!(is_qtum_chain(8890) && !is_qtum_chain(31337));
    }

    #[test]
    fn matches_qtumd_gethexaddress_and_fromhexaddress() {
        assert_eq!(encode_address(NODE_HEX, QtumNetwork::Regtest), NODE_ADDR);
        assert_eq!(
            decode_address(NODE_ADDR).unwrap(),
            (NetworkKind::Test, NODE_HEX)
        );
        assert_eq!(
            decode_address_for(NODE_ADDR, QtumNetwork::Testnet).unwrap(),
            NODE_HEX
        );
        // Mainnet spelling starts with Q and is refused on regtest.
        let main = encode_address(NODE_HEX, QtumNetwork::Mainnet);
        assert!(main.starts_with('Q'));
        assert_eq!(
            decode_address_for(&main, QtumNetwork::Regtest),
            Err(AddressError::WrongNetwork {
                chain_id: 8890,
                expected: 120,
                got: 58,
                got_network: "mainnet"
            })
        );
    }

    #[test]
    fn pubkey_hash_matches_qtumd() {
        // 013: pubkey of qSGMBbF…
        let pk = hex::decode("024d3eed0a275970753978980f83c9171a0a409967a0cb057134bf27ecf1b6b8ae")
            .unwrap();
        assert_eq!(hash160_of_pubkey(&pk), NODE_HEX);
    }

    #[test]
    fn wif_matches_qtumd_import() {
        let wif = decode_wif(NODE_WIF).unwrap();
        assert_eq!(wif.kind, NetworkKind::Test);
        assert!(wif.compressed);
        assert_eq!(
            qtum_address_of_secret(&wif.secret, QtumNetwork::Regtest),
            NODE_WIF_ADDR
        );
        assert_eq!(
            qtum_sender_of_secret(&wif.secret),
            address!("409a9847eaed9eae750ca34fe6f432f376551867")
        );
        assert_ne!(qtum_sender_of_secret(&wif.secret), wif.secret.address());
        assert_eq!(
            encode_wif(&wif.secret, QtumNetwork::Regtest, true),
            NODE_WIF
        );
        let uncompressed = encode_wif(&wif.secret, QtumNetwork::Mainnet, false);
        let back = decode_wif(&uncompressed).unwrap();
        assert_eq!((back.kind, back.compressed), (NetworkKind::Main, false));
        assert_eq!(back.secret, wif.secret);
        assert!(!format!("{back:?}").contains(&hex::encode(wif.secret.expose_bytes())));
    }

    #[test]
    fn address_errors() {
        // 101/104: qtumd refuses this too ("Invalid checksum or length").
        assert_eq!(
            decode_address("qNotAnAddress"),
            Err(AddressError::BadChecksum)
        );
        assert_eq!(
            decode_address("qSGMBbFXPc0YDSYbidwsaZzDSLDkQESm2e"),
            Err(AddressError::InvalidBase58Character {
                character: '0',
                position: 10
            })
        );
        let mut typo = NODE_ADDR.to_string();
        typo.replace_range(5..6, "Y");
        assert_eq!(decode_address(&typo), Err(AddressError::BadChecksum));
        assert_eq!(
            decode_address(NODE_WIF),
            Err(AddressError::WrongLength {
                expected: 21,
                got: 34
            })
        );
        let p2sh = base58check_encode(&[50u8; 21]);
        assert_eq!(
            decode_address(&p2sh),
            Err(AddressError::UnknownVersion { got: 50 })
        );
        assert_eq!(
            decode_address("qcrt1qsevlsh3sq5vfag5zn66usy305wa2h077fzj53a"),
            Err(AddressError::Bech32NotSupported)
        );
        assert_eq!(decode_address(""), Err(AddressError::Empty));
        assert!(matches!(
            decode_address(&"1".repeat(200)),
            Err(AddressError::TooLong { .. })
        ));
    }

    #[test]
    fn wif_errors() {
        assert_eq!(
            decode_wif(NODE_ADDR),
            Err(WifError::WrongLength { got: 21 })
        );
        let mut bad = vec![0xef];
        bad.extend_from_slice(&[0u8; 32]);
        bad.push(1);
        assert_eq!(
            decode_wif(&base58check_encode(&bad)),
            Err(WifError::InvalidSecret)
        );
        bad[33] = 2;
        assert_eq!(
            decode_wif(&base58check_encode(&bad)),
            Err(WifError::BadCompressionFlag { got: 2 })
        );
        bad[0] = 0x80 + 1;
        bad[33] = 1;
        bad[32] = 1;
        assert_eq!(
            decode_wif(&base58check_encode(&bad)),
            Err(WifError::UnknownVersion { got: 0x81 })
        );
        assert_eq!(
            decode_wif("c0"),
            Err(WifError::InvalidBase58Character { position: 1 })
        );
    }

    #[test]
    fn chain_aware_format_and_parse() {
        assert_eq!(format_address(8890, NODE_HEX), NODE_ADDR);
        assert_eq!(format_address(1, NODE_HEX), NODE_HEX.to_checksum(None));
        assert_eq!(parse_address(8890, NODE_ADDR).unwrap(), NODE_HEX);
        assert_eq!(
            parse_address(8890, " 0x5f8069e453bd0d05e0221718658ad13f191a883a ").unwrap(),
            NODE_HEX
        );
        assert_eq!(
            parse_address(1, &NODE_HEX.to_checksum(None)).unwrap(),
            NODE_HEX
        );
        assert_eq!(
            parse_address(1, "0x5F8069E453BD0D05E0221718658AD13F191A883A").unwrap(),
            NODE_HEX
        );
        assert_eq!(
            parse_address(1, NODE_ADDR),
            Err(AddressError::HexRequired { chain_id: 1 })
        );
        assert!(matches!(
            parse_address(81, NODE_ADDR),
            Err(AddressError::WrongNetwork {
                expected: 58,
                got: 120,
                ..
            })
        ));
        let mut bad_case = NODE_HEX.to_checksum(None);
        // Flip the case of the first letter digit to break EIP-55.
        let pos = bad_case[2..]
            .find(|c: char| c.is_ascii_alphabetic())
            .unwrap()
            + 2;
        let flipped: String = bad_case[pos..pos + 1]
            .chars()
            .map(|c| {
                if c.is_ascii_uppercase() {
                    c.to_ascii_lowercase()
                } else {
                    c.to_ascii_uppercase()
                }
            })
            .collect();
        bad_case.replace_range(pos..pos + 1, &flipped);
        assert!(matches!(
            parse_address(1, &bad_case),
            Err(AddressError::BadHexChecksum { .. })
        ));
        assert!(matches!(
            parse_address(1, "0x1234"),
            Err(AddressError::InvalidHex { .. })
        ));
        assert!(matches!(
            parse_address(1, "0xzz"),
            Err(AddressError::InvalidHex { .. })
        ));
        assert_eq!(parse_address(1, "  "), Err(AddressError::Empty));
    }

    #[test]
    fn random_round_trips() {
        for _ in 0..50 {
            let secret = ClaimSecret::random();
            let addr = qtum_sender_of_secret(&secret);
            for n in [
                QtumNetwork::Mainnet,
                QtumNetwork::Testnet,
                QtumNetwork::Regtest,
            ] {
                let text = encode_address(addr, n);
                assert_eq!(decode_address_for(&text, n).unwrap(), addr);
                assert_eq!(
                    parse_address(n.chain_id(), &format_address(n.chain_id(), addr)).unwrap(),
                    addr
                );
                let wif = encode_wif(&secret, n, true);
                assert_eq!(decode_wif(&wif).unwrap().secret, secret);
            }
        }
    }
}
