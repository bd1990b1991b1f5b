//! Stage 3: verify an authenticated claim against the chain.
//!
//! Everything protocol-shaped comes from the sdk: the CLAIM block parser
//! ([`ClaimBlock`]), the deposit as rebuilt from its `Deposited` log — from the
//! watcher's [`crate::deposits`] index when it holds the key, else from the chain,
//! checked against the stored hash ([`SpringMail::status`]) — the commitment
//! ([`springmail_sdk::email::commitment`]) and the EIP-712 claim digest
//! ([`ClaimAuth::claim_signature_valid`]). This module only decides.
//!
//! The checks, in order: one well-formed CLAIM block; this chain and escrow; the
//! deposit exists and is open; `commitment(From, Salt)` is the deposit's recipient;
//! the deposit names this watcher; time left before expiry and the signed deadline
//! (judged by the chain's clock, passed in as `now`); the claim key's signature over
//! this deposit, payee, fee cap and deadline; the fee cap covers this watcher's fee
//! in the deposit's asset. The result is a value: [`Verdict::Accepted`] with a
//! [`ClaimPlan`], or [`Verdict::Refused`] with a [`RefusalReason`] whose
//! [`RefusalReason::explain`] is the sentence the claimant reads.

use std::sync::Arc;

use alloy::primitives::{Address, B256};
use springmail_sdk::amount::{format_units, Amount, Asset};
use springmail_sdk::client::{ClientError, DepositStatus, SignedClaim, SpringMail};
use springmail_sdk::deposit::Deposit;
use springmail_sdk::eip712::{ClaimAuth, EscrowId};
use springmail_sdk::keys::Signature;
use springmail_sdk::markup::{ClaimBlock, MarkupError};

use crate::authenticate::Authenticated;
use crate::deposits::{DepositIndex, Indexed};

/// A token this watcher handles, and its fee.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenFee {
    /// The token contract.
    pub address: Address,
    /// Its symbol and decimals (as written in `Max-Fee`).
    pub asset: Asset,
    /// The fee in the token's base units.
    pub fee: u128,
}

/// What this watcher charges and requires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyPolicy {
    /// The watcher's attestation address (`Deposit.watcher` must be this).
    pub watcher: Address,
    /// The fee for native-coin deposits, in base units.
    pub native_fee: u128,
    /// Tokens handled, with their fees; deposits of other tokens are refused.
    pub tokens: Vec<TokenFee>,
    /// Seconds that must remain before the deposit's expiry and the claim's deadline,
    /// so the transaction lands in time.
    pub min_time_left: u64,
}

/// Why an authenticated claim was refused. Every variant has a sentence for the claimant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefusalReason {
    /// No CLAIM block in the message.
    NoClaimBlock,
    /// The block does not parse.
    Malformed(String),
    /// For another chain.
    WrongChain {
        /// This watcher's chain.
        expected: u64,
        /// The block's chain.
        got: u64,
    },
    /// For another escrow contract.
    WrongEscrow {
        /// This watcher's escrow.
        expected: Address,
        /// The block's escrow.
        got: Address,
    },
    /// No deposit under this claim key.
    UnknownDeposit,
    /// Already paid out.
    AlreadyClaimed {
        /// The claim transaction, when known.
        tx_hash: Option<B256>,
    },
    /// Returned to the sender.
    Refunded,
    /// Past expiry, or too close to it to land a transaction.
    Expired {
        /// The deposit's expiry.
        expiry: u64,
        /// True when it has not quite expired yet but too little time is left.
        too_soon: bool,
    },
    /// The signed claim's deadline has passed (or is too close).
    DeadlinePassed {
        /// The deadline.
        deadline: u64,
    },
    /// The `From` address is not the deposit's recipient.
    NotRecipient {
        /// The normalized `From` address (it is the reader's own address).
        from: String,
    },
    /// The deposit needs no watcher (link mode).
    LinkMode,
    /// The deposit names another watcher.
    OtherWatcher {
        /// The deposit's watcher.
        watcher: Address,
    },
    /// The claim signature is not the claim key's signature of this claim.
    BadSignature,
    /// A token deposit of a token this watcher does not handle.
    UnsupportedToken {
        /// The token.
        token: Address,
    },
    /// `Max-Fee` is in another asset than the deposit.
    FeeAsset {
        /// The deposit's asset.
        expected: String,
        /// The block's.
        got: String,
    },
    /// `Max-Fee` is below this watcher's fee.
    FeeTooLow {
        /// The block's cap.
        max_fee: String,
        /// This watcher's fee.
        fee: String,
    },
    /// The deposit is not larger than the fee.
    AmountBelowFee {
        /// The deposit.
        amount: String,
        /// This watcher's fee.
        fee: String,
    },
    /// Another message is already claiming this deposit.
    ClaimInProgress,
    /// The escrow contract reverted the claim.
    Reverted {
        /// The decoded reason.
        reason: String,
    },
    /// The chain could not be read for too long.
    Unavailable,
}

/// A date for people, as everywhere in Spring Mail: `2026-01-01 00:00:00 UTC`.
pub fn format_time(unix: u64) -> String {
    springmail_sdk::date::utc_date(unix)
}

impl RefusalReason {
    /// A stable code for the journal and metrics.
    pub fn code(&self) -> &'static str {
        match self {
            RefusalReason::NoClaimBlock => "no-claim-block",
            RefusalReason::Malformed(_) => "malformed-block",
            RefusalReason::WrongChain { .. } => "wrong-chain",
            RefusalReason::WrongEscrow { .. } => "wrong-escrow",
            RefusalReason::UnknownDeposit => "unknown-deposit",
            RefusalReason::AlreadyClaimed { .. } => "already-claimed",
            RefusalReason::Refunded => "refunded",
            RefusalReason::Expired { .. } => "expired",
            RefusalReason::DeadlinePassed { .. } => "deadline-passed",
            RefusalReason::NotRecipient { .. } => "not-recipient",
            RefusalReason::LinkMode => "link-mode",
            RefusalReason::OtherWatcher { .. } => "other-watcher",
            RefusalReason::BadSignature => "bad-signature",
            RefusalReason::UnsupportedToken { .. } => "unsupported-token",
            RefusalReason::FeeAsset { .. } => "fee-asset",
            RefusalReason::FeeTooLow { .. } => "fee-too-low",
            RefusalReason::AmountBelowFee { .. } => "amount-below-fee",
            RefusalReason::ClaimInProgress => "claim-in-progress",
            RefusalReason::Reverted { .. } => "reverted",
            RefusalReason::Unavailable => "chain-unavailable",
        }
    }

    /// The sentence the claimant reads.
    pub fn explain(&self) -> String {
        match self {
            RefusalReason::NoClaimBlock => "Your message has no BISMTP CLAIM block, so there was nothing to claim. \
                 Reply with the block your wallet or claim page produced."
                .into(),
            RefusalReason::Malformed(why) => format!(
                "The claim block in your message could not be read ({why}). \
                 Please reply again with the block exactly as your wallet or claim page produced it."
            ),
            RefusalReason::WrongChain { expected, got } => format!(
                "The claim is for chain {got}, but this watcher releases deposits on chain {expected}."
            ),
            RefusalReason::WrongEscrow { expected, got } => format!(
                "The claim names escrow contract {got}, but this watcher serves {expected}."
            ),
            RefusalReason::UnknownDeposit => {
                "No deposit exists for the claim key in your message, so there is nothing to release.".into()
            }
            RefusalReason::AlreadyClaimed { tx_hash: Some(tx) } => {
                format!("This deposit has already been claimed (transaction {tx}); nothing more can be paid out.")
            }
            RefusalReason::AlreadyClaimed { tx_hash: None } => {
                "This deposit has already been claimed; nothing more can be paid out.".into()
            }
            RefusalReason::Refunded => "This deposit was already returned to its sender.".into(),
            RefusalReason::Expired { expiry, too_soon: false } => format!(
                "This deposit expired on {}, so it can no longer be claimed; it can now only be returned to its sender.",
                format_time(*expiry)
            ),
            RefusalReason::Expired { expiry, too_soon: true } => format!(
                "This deposit expires on {}, too soon for a claim to be confirmed in time; \
                 after that it can only be returned to its sender.",
                format_time(*expiry)
            ),
            RefusalReason::DeadlinePassed { deadline } => format!(
                "The claim you signed was valid only until {}. Please sign a new claim with a later deadline.",
                format_time(*deadline)
            ),
            RefusalReason::NotRecipient { from } => format!(
                "This deposit was not sent to the address you wrote from ({from}). \
                 Reply from the address the payment was sent to."
            ),
            RefusalReason::LinkMode => "This deposit needs no watcher: claim it directly with your claim link.".into(),
            RefusalReason::OtherWatcher { watcher } => {
                format!("This deposit is handled by another watcher ({watcher}), not by this one.")
            }
            RefusalReason::BadSignature => "The signature in the claim block does not match this deposit, payee, \
                 fee limit and deadline, so the claim was not signed with this deposit's claim key."
                .into(),
            RefusalReason::UnsupportedToken { token } => {
                format!("This watcher does not release deposits of token {token}.")
            }
            RefusalReason::FeeAsset { expected, got } => format!(
                "The claim's Max-Fee is in {got}, but the deposit is in {expected}."
            ),
            RefusalReason::FeeTooLow { max_fee, fee } => format!(
                "This watcher charges {fee} to release a deposit, but your claim allows at most {max_fee}. \
                 Sign a new claim with a Max-Fee of at least {fee}."
            ),
            RefusalReason::AmountBelowFee { amount, fee } => format!(
                "The deposit ({amount}) is not larger than this watcher's fee ({fee}), so releasing it would pay you nothing."
            ),
            RefusalReason::ClaimInProgress => {
                "Another message is already claiming this deposit; you will get a reply about that one.".into()
            }
            RefusalReason::Reverted { reason } => {
                format!("The escrow contract refused the claim: {reason}. Nothing was paid.")
            }
            RefusalReason::Unavailable => {
                "The watcher could not read the chain to check your claim. Please try again later.".into()
            }
        }
    }
}

/// Everything the submitter needs to release a deposit, and the reply needs to say so.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimPlan {
    /// The deposit as stored on chain.
    pub deposit: Deposit,
    /// The claim key's authorization and signature.
    pub signed: SignedClaim,
    /// This watcher's fee, in the deposit's base units.
    pub fee: u128,
    /// The deposit's asset, for the reply.
    pub asset: Asset,
}

impl ClaimPlan {
    /// The deposit's claim key.
    pub fn claim_key(&self) -> Address {
        self.signed.auth.claim_key
    }

    /// What the payee receives.
    pub fn payout(&self) -> u128 {
        self.deposit.amount.saturating_sub(self.fee)
    }

    /// An amount in the deposit's asset, for people.
    pub fn format(&self, units: u128) -> String {
        format!(
            "{} {}",
            format_units(units, self.asset.decimals()),
            self.asset.symbol()
        )
    }

    /// JSON for the journal (no secrets: the claim signature goes on chain anyway).
    pub fn to_json(&self) -> String {
        let d = &self.deposit;
        let a = &self.signed.auth;
        serde_json::json!({
            "deposit": {
                "sender": d.sender.to_string(), "token": d.token.to_string(), "amount": d.amount.to_string(),
                "expiry": d.expiry, "flags": d.flags, "watcher": d.watcher.to_string(), "recipient": d.recipient.to_string(),
            },
            "claim_key": a.claim_key.to_string(), "deposit_hash": a.deposit_hash.to_string(), "to": a.to.to_string(),
            "max_fee": a.max_fee.to_string(), "deadline": a.deadline,
            "signature": format!("0x{}", hex::encode(self.signed.signature.0)),
            "fee": self.fee.to_string(),
            "asset": { "symbol": self.asset.symbol(), "decimals": self.asset.decimals() },
        })
        .to_string()
    }

    /// Reads [`ClaimPlan::to_json`] back.
    pub fn from_json(text: &str) -> Result<Self, String> {
        let v: serde_json::Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
        let s = |v: &serde_json::Value, k: &str| -> Result<String, String> {
            v.get(k)
                .and_then(|x| x.as_str())
                .map(str::to_string)
                .ok_or_else(|| format!("missing {k}"))
        };
        let n = |v: &serde_json::Value, k: &str| -> Result<u64, String> {
            v.get(k)
                .and_then(|x| x.as_u64())
                .ok_or_else(|| format!("missing {k}"))
        };
        let addr = |t: String| t.parse::<Address>().map_err(|e| e.to_string());
        let b256 = |t: String| t.parse::<B256>().map_err(|e| e.to_string());
        let u128_ = |t: String| t.parse::<u128>().map_err(|e| e.to_string());
        let d = v.get("deposit").ok_or("missing deposit")?;
        let deposit = Deposit {
            sender: addr(s(d, "sender")?)?,
            token: addr(s(d, "token")?)?,
            amount: u128_(s(d, "amount")?)?,
            expiry: n(d, "expiry")?,
            flags: n(d, "flags")? as u8,
            watcher: addr(s(d, "watcher")?)?,
            recipient: b256(s(d, "recipient")?)?,
        };
        let auth = ClaimAuth {
            claim_key: addr(s(&v, "claim_key")?)?,
            deposit_hash: b256(s(&v, "deposit_hash")?)?,
            to: addr(s(&v, "to")?)?,
            max_fee: u128_(s(&v, "max_fee")?)?,
            deadline: n(&v, "deadline")?,
        };
        let sig_hex = s(&v, "signature")?;
        let sig_bytes = hex::decode(sig_hex.trim_start_matches("0x")).map_err(|e| e.to_string())?;
        let signature =
            Signature::from_slice("signature", &sig_bytes).map_err(|e| e.to_string())?;
        let a = v.get("asset").ok_or("missing asset")?;
        let asset =
            Asset::new(s(a, "symbol")?, n(a, "decimals")? as u8).map_err(|e| e.to_string())?;
        Ok(ClaimPlan {
            deposit,
            signed: SignedClaim { auth, signature },
            fee: u128_(s(&v, "fee")?)?,
            asset,
        })
    }
}

/// The verdict on an authenticated claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Release the deposit.
    Accepted(Box<ClaimPlan>),
    /// Do not; tell the claimant why.
    Refused(RefusalReason),
}

/// A failure to read the chain (retry later when transient).
#[derive(Debug, thiserror::Error)]
#[error("cannot read the deposit from the chain: {0}")]
pub struct VerifyError(#[from] pub ClientError);

impl VerifyError {
    /// True when a retry may succeed.
    pub fn is_transient(&self) -> bool {
        self.0.is_transient()
    }
}

/// Verifies claims for one escrow.
#[derive(Debug, Clone)]
pub struct Verifier {
    client: SpringMail,
    policy: VerifyPolicy,
    index: Option<Arc<DepositIndex>>,
}

/// Finds the one CLAIM block in the message's texts (the same block in several parts counts once).
pub fn find_claim_block(texts: &[String], tokens: &[Asset]) -> Result<ClaimBlock, RefusalReason> {
    let mut found: Option<ClaimBlock> = None;
    let mut first_error: Option<MarkupError> = None;
    for text in texts {
        match ClaimBlock::parse_with_assets(text, tokens) {
            Ok(block) => match &found {
                Some(prev) if *prev != block => {
                    return Err(RefusalReason::Malformed(
                        "the message holds two different claim blocks".into(),
                    ))
                }
                _ => found = Some(block),
            },
            Err(MarkupError::NoBlock) => {}
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    match (found, first_error) {
        (Some(block), _) => Ok(block),
        (None, Some(e)) => Err(RefusalReason::Malformed(e.to_string())),
        (None, None) => Err(RefusalReason::NoClaimBlock),
    }
}

impl Verifier {
    /// A verifier for the client's escrow.
    pub fn new(client: SpringMail, policy: VerifyPolicy) -> Self {
        Verifier {
            client,
            policy,
            index: None,
        }
    }

    /// Looks deposits up in `index` first; keys it does not hold are read from the chain.
    pub fn with_index(mut self, index: Arc<DepositIndex>) -> Self {
        self.index = Some(index);
        self
    }

    /// The policy.
    pub fn policy(&self) -> &VerifyPolicy {
        &self.policy
    }

    /// The client.
    pub fn client(&self) -> &SpringMail {
        &self.client
    }

    fn token_assets(&self) -> Vec<Asset> {
        self.policy.tokens.iter().map(|t| t.asset.clone()).collect()
    }

    /// Judges one authenticated message at chain time `now` (unix seconds).
    pub async fn verify(&self, mail: &Authenticated, now: u64) -> Result<Verdict, VerifyError> {
        let refuse = |r| Ok(Verdict::Refused(r));
        let block = match find_claim_block(&mail.texts, &self.token_assets()) {
            Ok(b) => b,
            Err(r) => return refuse(r),
        };
        let id: EscrowId = self.client.escrow_id();
        if block.chain_id != id.chain_id {
            return refuse(RefusalReason::WrongChain {
                expected: id.chain_id,
                got: block.chain_id,
            });
        }
        if block.escrow != id.escrow {
            return refuse(RefusalReason::WrongEscrow {
                expected: id.escrow,
                got: block.escrow,
            });
        }
        let indexed = match &self.index {
            Some(index) => index.get(block.claim_key).unwrap_or_else(|e| {
                tracing::warn!(error = %e, "deposit index unreadable; reading the chain");
                None
            }),
            None => None,
        };
        match indexed {
            Some(Indexed::Open { deposit, .. }) => {
                return Ok(self.judge(mail, &block, &deposit, now))
            }
            Some(Indexed::Claimed { tx_hash, .. }) => {
                return refuse(RefusalReason::AlreadyClaimed {
                    tx_hash: Some(tx_hash),
                })
            }
            Some(Indexed::Refunded { .. }) => return refuse(RefusalReason::Refunded),
            // Not a deposit of this watcher as far as the index knows: the chain says what it is.
            None => {}
        }
        let deposit = match self.client.status(block.claim_key).await? {
            DepositStatus::Open { deposit, .. } | DepositStatus::Expired { deposit, .. } => deposit,
            DepositStatus::Claimed { tx_hash, .. } => {
                return refuse(RefusalReason::AlreadyClaimed {
                    tx_hash: Some(tx_hash),
                })
            }
            DepositStatus::Refunded { .. } => return refuse(RefusalReason::Refunded),
            DepositStatus::Unknown => return refuse(RefusalReason::UnknownDeposit),
        };
        Ok(self.judge(mail, &block, &deposit, now))
    }

    /// The checks that need no chain access, on a deposit already read.
    pub fn judge(
        &self,
        mail: &Authenticated,
        block: &ClaimBlock,
        deposit: &Deposit,
        now: u64,
    ) -> Verdict {
        let refuse = Verdict::Refused;
        // Whom it is for, before anything else about it is revealed.
        match springmail_sdk::email::commitment(&mail.from, &block.salt) {
            Ok(c) if c == deposit.recipient => {}
            _ => {
                return refuse(RefusalReason::NotRecipient {
                    from: mail.from.clone(),
                })
            }
        }
        if deposit.is_link_mode() {
            return refuse(RefusalReason::LinkMode);
        }
        // The deposit names this watcher by its key's address (attested claims) or by
        // the chain account it sends from (self-submitted claims: docs/PROTOCOL.md).
        if deposit.watcher != self.policy.watcher
            && deposit.watcher != self.client.chain().account()
        {
            return refuse(RefusalReason::OtherWatcher {
                watcher: deposit.watcher,
            });
        }
        let margin = self.policy.min_time_left;
        if now.saturating_add(margin) >= deposit.expiry {
            return refuse(RefusalReason::Expired {
                expiry: deposit.expiry,
                too_soon: now < deposit.expiry,
            });
        }
        if now.saturating_add(margin) > block.deadline {
            return refuse(RefusalReason::DeadlinePassed {
                deadline: block.deadline,
            });
        }
        let id = self.client.escrow_id();
        let auth = ClaimAuth {
            claim_key: block.claim_key,
            deposit_hash: deposit.hash(),
            to: block.to,
            max_fee: block.max_fee.units(),
            deadline: block.deadline,
        };
        if !auth.claim_signature_valid(id, &block.signature) {
            return refuse(RefusalReason::BadSignature);
        }
        let (asset, fee) = if deposit.is_native() {
            (Asset::for_chain(id.chain_id), self.policy.native_fee)
        } else {
            match self
                .policy
                .tokens
                .iter()
                .find(|t| t.address == deposit.token)
            {
                Some(t) => (t.asset.clone(), t.fee),
                None => {
                    return refuse(RefusalReason::UnsupportedToken {
                        token: deposit.token,
                    })
                }
            }
        };
        if block.max_fee.asset() != &asset {
            return refuse(RefusalReason::FeeAsset {
                expected: asset.symbol().to_string(),
                got: block.max_fee.asset().symbol().to_string(),
            });
        }
        let show = |units: u128| {
            Amount::from_units(units, asset.clone())
                .map(|a| a.to_string())
                .unwrap_or_else(|_| format!("{units} base units"))
        };
        if block.max_fee.units() < fee {
            return refuse(RefusalReason::FeeTooLow {
                max_fee: show(block.max_fee.units()),
                fee: show(fee),
            });
        }
        if deposit.amount <= fee {
            return refuse(RefusalReason::AmountBelowFee {
                amount: show(deposit.amount),
                fee: show(fee),
            });
        }
        Verdict::Accepted(Box::new(ClaimPlan {
            deposit: *deposit,
            signed: SignedClaim {
                auth,
                signature: block.signature,
            },
            fee,
            asset,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_readable() {
        assert_eq!(format_time(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(format_time(1_767_225_600), "2026-01-01 00:00:00 UTC");
        assert_eq!(format_time(951_782_400 + 3_661), "2000-02-29 01:01:01 UTC");
    }

    #[test]
    fn every_refusal_has_a_sentence_and_a_code() {
        let all = [
            RefusalReason::NoClaimBlock,
            RefusalReason::Malformed("x".into()),
            RefusalReason::WrongChain {
                expected: 1,
                got: 2,
            },
            RefusalReason::UnknownDeposit,
            RefusalReason::AlreadyClaimed { tx_hash: None },
            RefusalReason::Expired {
                expiry: 0,
                too_soon: false,
            },
            RefusalReason::NotRecipient {
                from: "a@b.c".into(),
            },
            RefusalReason::FeeTooLow {
                max_fee: "0 QTUM".into(),
                fee: "0.001 QTUM".into(),
            },
        ];
        for r in all {
            assert!(r.explain().ends_with('.'), "{r:?}");
            assert!(!r.code().is_empty());
        }
    }
}
