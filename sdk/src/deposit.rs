//! The escrowed deposit and its on-chain hash.

use alloy::primitives::{keccak256, Address, B256, U256};

use crate::contract::EmailEscrow;

/// Largest `uint96`: the contract stores amounts in 96 bits.
pub const MAX_AMOUNT: u128 = crate::protocol::MAX_UINT96;
/// Largest `uint40`: expiries and deadlines are 40-bit unix seconds.
pub const MAX_TIMESTAMP: u64 = crate::protocol::MAX_UINT40;

/// Errors in deposit fields.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DepositError {
    /// The amount is zero.
    #[error("the amount must be greater than zero")]
    ZeroAmount,
    /// The amount does not fit the contract's uint96.
    #[error("the amount {got} is above the largest the contract holds ({max})")]
    AmountTooLarge { got: u128, max: u128 },
    /// A timestamp does not fit uint40.
    #[error("the {field} {got} is not a valid 40-bit unix time")]
    TimestampTooLarge { field: &'static str, got: u64 },
}

/// One escrowed payment, exactly the contract's `Deposit` struct.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Deposit {
    /// Who paid; refunds go here.
    pub sender: Address,
    /// `Address::ZERO` for the native coin, else the token contract.
    pub token: Address,
    /// Base units (satoshi for QTUM).
    pub amount: u128,
    /// Unix seconds; from then on only a refund is possible.
    pub expiry: u64,
    /// Bit 0: [`Deposit::CANCELLABLE`].
    pub flags: u8,
    /// `Address::ZERO` for link mode, else the watcher that must attest a claim.
    pub watcher: Address,
    /// The salted email commitment (see [`crate::email::commitment`]).
    pub recipient: B256,
}

impl Deposit {
    /// The sender may refund before expiry.
    pub const CANCELLABLE: u8 = 1;

    /// Checks the fields fit the contract's types.
    pub fn validate(&self) -> Result<(), DepositError> {
        if self.amount == 0 {
            return Err(DepositError::ZeroAmount);
        }
        if self.amount > MAX_AMOUNT {
            return Err(DepositError::AmountTooLarge {
                got: self.amount,
                max: MAX_AMOUNT,
            });
        }
        if self.expiry > MAX_TIMESTAMP {
            return Err(DepositError::TimestampTooLarge {
                field: "expiry",
                got: self.expiry,
            });
        }
        Ok(())
    }

    /// True when the claim key alone may claim (no watcher attestation).
    pub fn is_link_mode(&self) -> bool {
        self.watcher == Address::ZERO
    }

    /// True when the sender may take the deposit back before expiry.
    pub fn is_cancellable(&self) -> bool {
        self.flags & Self::CANCELLABLE != 0
    }

    /// True for a native-coin deposit.
    pub fn is_native(&self) -> bool {
        self.token == Address::ZERO
    }

    /// The 224 bytes the contract hashes: `abi.encode(d)`, seven 32-byte words.
    pub fn encode(&self) -> [u8; 224] {
        let mut out = [0u8; 224];
        out[12..32].copy_from_slice(self.sender.as_slice());
        out[44..64].copy_from_slice(self.token.as_slice());
        out[64..96].copy_from_slice(&U256::from(self.amount).to_be_bytes::<32>());
        out[96..128].copy_from_slice(&U256::from(self.expiry).to_be_bytes::<32>());
        out[159] = self.flags;
        out[172..192].copy_from_slice(self.watcher.as_slice());
        out[192..224].copy_from_slice(self.recipient.as_slice());
        out
    }

    /// The value stored on chain for this deposit: `keccak256(abi.encode(d))`.
    pub fn hash(&self) -> B256 {
        keccak256(self.encode())
    }

    /// The contract binding's struct. Values above the contract's widths are truncated,
    /// so call [`Deposit::validate`] first.
    pub fn to_sol(&self) -> EmailEscrow::Deposit {
        EmailEscrow::Deposit {
            sender: self.sender,
            token: self.token,
            amount: alloy::primitives::Uint::<96, 2>::from(self.amount & MAX_AMOUNT),
            expiry: alloy::primitives::Uint::<40, 1>::from(self.expiry & MAX_TIMESTAMP),
            flags: self.flags,
            watcher: self.watcher,
            recipient: self.recipient,
        }
    }

    /// From the contract binding's struct (e.g. a decoded `Deposited` event).
    pub fn from_sol(d: &EmailEscrow::Deposit) -> Self {
        Deposit {
            sender: d.sender,
            token: d.token,
            amount: d.amount.to::<u128>(),
            expiry: d.expiry.to::<u64>(),
            flags: d.flags,
            watcher: d.watcher,
            recipient: d.recipient,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy::sol_types::SolValue;

    fn sample() -> Deposit {
        Deposit {
            sender: Address::repeat_byte(0x11),
            token: Address::ZERO,
            amount: 150_000_000,
            expiry: 1_767_225_600,
            flags: Deposit::CANCELLABLE,
            watcher: Address::repeat_byte(0x22),
            recipient: B256::repeat_byte(0x33),
        }
    }

    #[test]
    fn encoding_equals_abi_encode_of_the_binding() {
        let d = sample();
        assert_eq!(d.encode().to_vec(), d.to_sol().abi_encode());
        assert_eq!(Deposit::from_sol(&d.to_sol()), d);
    }

    #[test]
    fn every_field_changes_the_hash() {
        let base = sample();
        let variants = [
            Deposit {
                sender: Address::repeat_byte(0x12),
                ..base
            },
            Deposit {
                token: Address::repeat_byte(0x01),
                ..base
            },
            Deposit {
                amount: base.amount + 1,
                ..base
            },
            Deposit {
                expiry: base.expiry + 1,
                ..base
            },
            Deposit { flags: 0, ..base },
            Deposit {
                watcher: Address::ZERO,
                ..base
            },
            Deposit {
                recipient: B256::repeat_byte(0x34),
                ..base
            },
        ];
        for v in variants {
            assert_ne!(v.hash(), base.hash(), "{v:?}");
        }
    }

    #[test]
    fn validation_names_the_bad_field() {
        assert_eq!(
            Deposit {
                amount: 0,
                ..sample()
            }
            .validate(),
            Err(DepositError::ZeroAmount)
        );
        assert!(matches!(
            Deposit {
                amount: MAX_AMOUNT + 1,
                ..sample()
            }
            .validate(),
            Err(DepositError::AmountTooLarge { .. })
        ));
        assert!(matches!(
            Deposit {
                expiry: MAX_TIMESTAMP + 1,
                ..sample()
            }
            .validate(),
            Err(DepositError::TimestampTooLarge {
                field: "expiry",
                ..
            })
        ));
        assert_eq!(sample().validate(), Ok(()));
    }
}
