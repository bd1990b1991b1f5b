//! Protocol constants, each defined here once (docs/PROTOCOL.md): the escrow's field
//! widths, the chain ids, and the headers DKIM signatures in a claim thread cover.

/// Largest `uint96`: the escrow stores amounts and fees in 96 bits.
pub const MAX_UINT96: u128 = (1u128 << 96) - 1;
/// Largest `uint40`: expiries and deadlines are 40-bit unix seconds.
pub const MAX_UINT40: u64 = (1u64 << 40) - 1;

/// Qtum mainnet chain id.
pub const MAINNET_CHAIN_ID: u64 = 81;
/// Qtum testnet chain id.
pub const TESTNET_CHAIN_ID: u64 = 8889;
/// Qtum regtest chain id (anvil runs with it too, for tests).
pub const REGTEST_CHAIN_ID: u64 = 8890;

/// The header a claimant's DKIM signature must cover: the sender it proves.
pub const DKIM_REQUIRED_HEADER: &str = "From";
/// The headers a mail client's DKIM signature over a claim mail covers (and the test
/// signer uses): sender, recipient, subject, date and thread.
pub const DKIM_THREAD_HEADERS: [&str; 7] = [
    DKIM_REQUIRED_HEADER,
    "To",
    "Subject",
    "Date",
    "Message-ID",
    "In-Reply-To",
    "References",
];
/// The headers the broker's replies sign: the thread headers and the two it always
/// writes.
pub const DKIM_REPLY_HEADERS: [&str; 9] = {
    let mut out = [""; 9];
    let mut i = 0;
    while i < DKIM_THREAD_HEADERS.len() {
        out[i] = DKIM_THREAD_HEADERS[i];
        i += 1;
    }
    out[7] = "Auto-Submitted";
    out[8] = "MIME-Version";
    out
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn widths_match_the_contract_types() {
        use alloy::primitives::aliases::{U40, U96};
        assert_eq!(MAX_UINT96, U96::MAX.to::<u128>());
        assert_eq!(MAX_UINT40, U40::MAX.to::<u64>());
    }

    #[test]
    fn replies_sign_every_thread_header_and_from_first() {
        assert_eq!(&DKIM_REPLY_HEADERS[..7], &DKIM_THREAD_HEADERS[..]);
        assert_eq!(DKIM_REPLY_HEADERS[0], "From");
        assert!(DKIM_REPLY_HEADERS.iter().all(|h| !h.is_empty()));
    }
}
