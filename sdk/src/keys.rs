//! Claim keys and signatures.
//!
//! A claim key is a fresh secp256k1 key made for one deposit. Its *address* (the
//! Ethereum-style keccak address, which is what `ecrecover` returns) keys the deposit
//! on chain; its *secret* travels only inside the claim link and signs the EIP-712
//! `Claim` locally. Secrets never print: their `Debug` is redacted and they have no
//! `Display`.

use alloy::primitives::{keccak256, Address, B256, U256};
use alloy::signers::local::PrivateKeySigner;
use rand::RngCore;
use zeroize::Zeroize;

/// Half the secp256k1 group order: a signature's `s` must not exceed it (low-s).
pub const SECP256K1_HALF_N: U256 = U256::from_be_slice(&[
    0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0x5d, 0x57, 0x6e, 0x73, 0x57, 0xa4, 0x50, 0x1d, 0xdf, 0xe9, 0x2f, 0x46, 0x68, 0x1b, 0x20, 0xa0,
]);

/// Errors about keys and signatures.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    /// The 32 bytes are zero or not below the curve order.
    #[error("the {field} is not a valid secp256k1 secret key")]
    InvalidSecret { field: &'static str },
    /// A signature was not 65 bytes.
    #[error("the {field} must be 65 bytes (r ‖ s ‖ v), got {got}")]
    SignatureLength { field: &'static str, got: usize },
    /// `v` was not 27 or 28.
    #[error("the {field} has recovery byte v = {got}; expected 27 or 28")]
    SignatureV { field: &'static str, got: u8 },
    /// `s` is in the upper half of the curve order (a malleable form).
    #[error("the {field} is malleable (s is above n/2); only low-s signatures are accepted")]
    HighS { field: &'static str },
    /// Recovery failed for these bytes.
    #[error("the {field} does not recover to any key")]
    Unrecoverable { field: &'static str },
    /// Signing failed inside the signer.
    #[error("signing failed: {0}")]
    Signing(String),
}

/// The 32-byte secret of a claim key (or any EVM-level key made by this software).
#[derive(Clone, PartialEq, Eq)]
pub struct ClaimSecret([u8; 32]);

impl Drop for ClaimSecret {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl std::fmt::Debug for ClaimSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClaimSecret(<redacted>)")
    }
}

impl ClaimSecret {
    /// A fresh random key from the operating system's generator.
    pub fn random() -> Self {
        loop {
            let mut bytes = [0u8; 32];
            rand::rngs::OsRng.fill_bytes(&mut bytes);
            if let Ok(secret) = Self::from_bytes(bytes) {
                return secret;
            }
        }
    }

    /// Checks that the bytes are a valid secp256k1 secret (non-zero, below n).
    pub fn from_bytes(bytes: [u8; 32]) -> Result<Self, KeyError> {
        secp256k1::SecretKey::from_byte_array(bytes).map_err(|_| KeyError::InvalidSecret {
            field: "claim key secret",
        })?;
        Ok(Self(bytes))
    }

    /// The raw bytes; callers must not log them.
    pub fn expose_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// An alloy signer for this key.
    pub fn signer(&self) -> PrivateKeySigner {
        PrivateKeySigner::from_bytes(&B256::from(self.0)).expect("validated at construction")
    }

    /// The key's EVM address: `keccak256(uncompressed pubkey)[12..]`, what `ecrecover` returns.
    pub fn address(&self) -> Address {
        let sk = secp256k1::SecretKey::from_byte_array(self.0).expect("validated at construction");
        let pk = secp256k1::PublicKey::from_secret_key_global(&sk);
        address_of_pubkey(&pk)
    }

    /// Signs a 32-byte digest, returning a 65-byte low-s signature with v in {27, 28}.
    pub fn sign_digest(&self, digest: &B256) -> Signature {
        let sk = secp256k1::SecretKey::from_byte_array(self.0).expect("validated at construction");
        let msg = secp256k1::Message::from_digest(digest.0);
        let sig = secp256k1::SECP256K1.sign_ecdsa_recoverable(msg, &sk);
        let (rec_id, rs) = sig.serialize_compact();
        let mut out = [0u8; 65];
        out[..64].copy_from_slice(&rs);
        out[64] = 27 + i32::from(rec_id) as u8;
        // libsecp256k1 always produces low-s signatures.
        Signature(out)
    }
}

/// The keccak-derived address of an uncompressed public key.
pub fn address_of_pubkey(pk: &secp256k1::PublicKey) -> Address {
    let uncompressed = pk.serialize_uncompressed();
    let hash = keccak256(&uncompressed[1..]);
    Address::from_slice(&hash[12..])
}

/// A 65-byte ECDSA signature `r ‖ s ‖ v`, `v` in {27, 28}, `s` low.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Signature(pub [u8; 65]);

impl std::fmt::Debug for Signature {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Signature(0x{})", hex::encode(self.0))
    }
}

impl Signature {
    /// Parses and checks the canonical form: 65 bytes, v in {27, 28}, low s.
    /// `field` names the input in errors (e.g. "Signature" of a CLAIM block).
    pub fn from_slice(field: &'static str, bytes: &[u8]) -> Result<Self, KeyError> {
        let arr: [u8; 65] = bytes.try_into().map_err(|_| KeyError::SignatureLength {
            field,
            got: bytes.len(),
        })?;
        let sig = Signature(arr);
        sig.check_canonical(field)?;
        Ok(sig)
    }

    fn check_canonical(&self, field: &'static str) -> Result<(), KeyError> {
        let v = self.0[64];
        if v != 27 && v != 28 {
            return Err(KeyError::SignatureV { field, got: v });
        }
        let s = U256::from_be_slice(&self.0[32..64]);
        if s > SECP256K1_HALF_N {
            return Err(KeyError::HighS { field });
        }
        Ok(())
    }

    /// The signature as bytes for calldata.
    pub fn to_bytes(&self) -> alloy::primitives::Bytes {
        alloy::primitives::Bytes::copy_from_slice(&self.0)
    }

    /// Recovers the signer's EVM address with libsecp256k1 (the fast path the watcher uses).
    pub fn recover(&self, field: &'static str, digest: &B256) -> Result<Address, KeyError> {
        Ok(address_of_pubkey(&self.recover_pubkey(field, digest)?))
    }

    /// Recovers the signer's public key (canonical signatures only).
    pub fn recover_pubkey(
        &self,
        field: &'static str,
        digest: &B256,
    ) -> Result<secp256k1::PublicKey, KeyError> {
        self.check_canonical(field)?;
        let rec_id =
            secp256k1::ecdsa::RecoveryId::try_from(i32::from(self.0[64] - 27)).map_err(|_| {
                KeyError::SignatureV {
                    field,
                    got: self.0[64],
                }
            })?;
        let sig = secp256k1::ecdsa::RecoverableSignature::from_compact(&self.0[..64], rec_id)
            .map_err(|_| KeyError::Unrecoverable { field })?;
        let msg = secp256k1::Message::from_digest(digest.0);
        secp256k1::SECP256K1
            .recover_ecdsa(msg, &sig)
            .map_err(|_| KeyError::Unrecoverable { field })
    }

    /// Whether the key of `who` made this signature: `who` is either the key's EVM
    /// account (keccak of the public key) or its Qtum identity (hash160 of the
    /// compressed public key, what `msg.sender` is on Qtum).
    pub fn signed_by(
        &self,
        field: &'static str,
        digest: &B256,
        who: Address,
    ) -> Result<bool, KeyError> {
        let pk = self.recover_pubkey(field, digest)?;
        Ok(address_of_pubkey(&pk) == who || crate::qtum::hash160_of_pubkey(&pk.serialize()) == who)
    }
}

/// EIP-191 `personal_sign` digest:
/// `keccak256("\x19Ethereum Signed Message:\n" ‖ decimal length ‖ message)`.
pub fn personal_digest(message: &[u8]) -> B256 {
    let mut data = format!("\x19Ethereum Signed Message:\n{}", message.len()).into_bytes();
    data.extend_from_slice(message);
    keccak256(&data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_matches_alloy_signer() {
        let secret = ClaimSecret::random();
        assert_eq!(secret.address(), secret.signer().address());
    }

    #[test]
    fn sign_then_recover_round_trips_and_is_low_s() {
        let secret = ClaimSecret::random();
        let digest = keccak256(b"springmail test digest");
        let sig = secret.sign_digest(&digest);
        assert!(U256::from_be_slice(&sig.0[32..64]) <= SECP256K1_HALF_N);
        assert_eq!(sig.recover("sig", &digest).unwrap(), secret.address());
        let other = keccak256(b"another digest");
        assert_ne!(sig.recover("sig", &other).unwrap(), secret.address());
    }

    #[test]
    fn malleable_and_malformed_signatures_are_refused() {
        let secret = ClaimSecret::random();
        let digest = keccak256(b"x");
        let sig = secret.sign_digest(&digest);
        // The high-s twin: s' = n - s, v flipped. It recovers to the same key, so it must be refused.
        let n = SECP256K1_HALF_N * U256::from(2) + U256::from(1);
        let s = U256::from_be_slice(&sig.0[32..64]);
        let mut twin = sig.0;
        twin[32..64].copy_from_slice(&(n - s).to_be_bytes::<32>());
        twin[64] = if sig.0[64] == 27 { 28 } else { 27 };
        assert_eq!(
            Signature::from_slice("Signature", &twin),
            Err(KeyError::HighS { field: "Signature" })
        );
        let mut bad_v = sig.0;
        bad_v[64] = 1;
        assert_eq!(
            Signature::from_slice("Signature", &bad_v),
            Err(KeyError::SignatureV {
                field: "Signature",
                got: 1
            })
        );
        assert_eq!(
            Signature::from_slice("Signature", &sig.0[..64]),
            Err(KeyError::SignatureLength {
                field: "Signature",
                got: 64
            })
        );
    }

    #[test]
    fn secret_debug_is_redacted() {
        let secret = ClaimSecret::from_bytes([7u8; 32]).unwrap();
        let shown = format!("{secret:?}");
        assert!(!shown.contains("0707"));
        assert!(shown.contains("redacted"));
    }

    #[test]
    fn invalid_secrets_are_refused() {
        assert!(ClaimSecret::from_bytes([0u8; 32]).is_err());
        assert!(ClaimSecret::from_bytes([0xffu8; 32]).is_err());
    }
}
