//! EIP-712 typed data: the claim key's `Claim` and the watcher's `Attest`.
//!
//! Domain: name `SpringMail`, version `1`, the chain id, the escrow contract. Both types
//! bind the *deposit hash* (not just the claim key), so a signature can never be
//! replayed on another deposit that reuses a key, on another chain or another contract.

use alloy::primitives::{Address, B256};
use alloy::sol_types::{Eip712Domain, SolStruct};

use crate::keys::{ClaimSecret, KeyError, Signature};

/// The domain's `name`.
pub const DOMAIN_NAME: &str = "SpringMail";
/// The domain's `version`.
pub const DOMAIN_VERSION: &str = "1";
/// `EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)`
pub const DOMAIN_TYPE: &str =
    "EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)";
/// The type string of what a claim key signs.
pub const CLAIM_TYPE: &str =
    "Claim(address claimKey,bytes32 deposit,address to,uint96 maxFee,uint40 deadline)";
/// The type string of what a watcher signs.
pub const ATTEST_TYPE: &str = "Attest(address claimKey,bytes32 deposit,address to,uint40 deadline)";
/// keccak256(CLAIM_TYPE), as the contract's `CLAIM_TYPEHASH`.
pub const CLAIM_TYPEHASH: B256 =
    alloy::primitives::b256!("04df976db1b98bed7140d8bfa7a5e961b82bb8c39b8ee9544cd161f808d1056c");
/// keccak256(ATTEST_TYPE), as the contract's `ATTEST_TYPEHASH`.
pub const ATTEST_TYPEHASH: B256 =
    alloy::primitives::b256!("73919d39c59538377af8bb4b90ad58c4af79eb232a2b7db96f1c4d70b9083f2a");

mod typed {
    alloy::sol! {
        struct Claim {
            address claimKey;
            bytes32 deposit;
            address to;
            uint96 maxFee;
            uint40 deadline;
        }
        struct Attest {
            address claimKey;
            bytes32 deposit;
            address to;
            uint40 deadline;
        }
    }
}

/// The EIP-712 domain of an escrow contract on a chain.
pub fn domain(chain_id: u64, escrow: Address) -> Eip712Domain {
    Eip712Domain::new(
        Some(DOMAIN_NAME.into()),
        Some(DOMAIN_VERSION.into()),
        Some(alloy::primitives::U256::from(chain_id)),
        Some(escrow),
        None,
    )
}

/// The escrow a signature is for: chain id and contract address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EscrowId {
    /// EIP-155 chain id (8890 on Qtum regtest).
    pub chain_id: u64,
    /// The `EmailEscrow` contract.
    pub escrow: Address,
}

/// What the claim key authorizes: pay deposit `deposit_hash` to `to`, with at most
/// `max_fee` to the relayer, until `deadline`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClaimAuth {
    /// The deposit's claim key address.
    pub claim_key: Address,
    /// [`crate::deposit::Deposit::hash`] of the deposit.
    pub deposit_hash: B256,
    /// The payee.
    pub to: Address,
    /// The largest relayer fee, in the deposit's base units (uint96).
    pub max_fee: u128,
    /// Unix seconds (uint40) after which the signature is void.
    pub deadline: u64,
}

impl ClaimAuth {
    /// The digest the claim key signs.
    pub fn claim_digest(&self, id: EscrowId) -> B256 {
        typed::Claim {
            claimKey: self.claim_key,
            deposit: self.deposit_hash,
            to: self.to,
            maxFee: alloy::primitives::Uint::<96, 2>::from(
                self.max_fee & crate::deposit::MAX_AMOUNT,
            ),
            deadline: alloy::primitives::Uint::<40, 1>::from(
                self.deadline & crate::deposit::MAX_TIMESTAMP,
            ),
        }
        .eip712_signing_hash(&domain(id.chain_id, id.escrow))
    }

    /// The digest a watcher signs to attest this claim (the fee cap is the claim key's
    /// business; the watcher attests who is paid, for which deposit, until when).
    pub fn attest_digest(&self, id: EscrowId) -> B256 {
        typed::Attest {
            claimKey: self.claim_key,
            deposit: self.deposit_hash,
            to: self.to,
            deadline: alloy::primitives::Uint::<40, 1>::from(
                self.deadline & crate::deposit::MAX_TIMESTAMP,
            ),
        }
        .eip712_signing_hash(&domain(id.chain_id, id.escrow))
    }

    /// Signs as the claim key (done locally by the recipient; the secret never travels).
    pub fn sign_claim(&self, id: EscrowId, key: &ClaimSecret) -> Signature {
        key.sign_digest(&self.claim_digest(id))
    }

    /// Signs the attestation with a watcher key.
    pub fn sign_attest(&self, id: EscrowId, watcher_key: &ClaimSecret) -> Signature {
        watcher_key.sign_digest(&self.attest_digest(id))
    }

    /// The address that signed `sig` as a `Claim`.
    pub fn recover_claim_signer(&self, id: EscrowId, sig: &Signature) -> Result<Address, KeyError> {
        sig.recover("claim signature", &self.claim_digest(id))
    }

    /// True when `sig` is the claim key's canonical signature of this claim.
    pub fn claim_signature_valid(&self, id: EscrowId, sig: &Signature) -> bool {
        self.recover_claim_signer(id, sig)
            .is_ok_and(|a| a == self.claim_key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy::primitives::keccak256;

    #[test]
    fn type_hashes_are_the_hashes_of_the_type_strings() {
        assert_eq!(keccak256(CLAIM_TYPE), CLAIM_TYPEHASH);
        assert_eq!(keccak256(ATTEST_TYPE), ATTEST_TYPEHASH);
        assert_eq!(typed::Claim::eip712_encode_type(), CLAIM_TYPE);
        assert_eq!(typed::Attest::eip712_encode_type(), ATTEST_TYPE);
    }

    #[test]
    fn digests_bind_chain_contract_and_deposit() {
        let key = ClaimSecret::random();
        let auth = ClaimAuth {
            claim_key: key.address(),
            deposit_hash: B256::repeat_byte(1),
            to: Address::repeat_byte(2),
            max_fee: 100_000,
            deadline: 1_767_225_600,
        };
        let id = EscrowId {
            chain_id: 8890,
            escrow: Address::repeat_byte(3),
        };
        let sig = auth.sign_claim(id, &key);
        assert!(auth.claim_signature_valid(id, &sig));
        assert!(!auth.claim_signature_valid(EscrowId { chain_id: 81, ..id }, &sig));
        assert!(!auth.claim_signature_valid(
            EscrowId {
                escrow: Address::repeat_byte(4),
                ..id
            },
            &sig
        ));
        let other = ClaimAuth {
            deposit_hash: B256::repeat_byte(9),
            ..auth
        };
        assert!(!other.claim_signature_valid(id, &sig));
        assert_ne!(auth.claim_digest(id), auth.attest_digest(id));
    }
}
