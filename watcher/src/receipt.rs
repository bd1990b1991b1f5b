//! BiSMTP RECEIPT, the receiving side: a peer broker says it paid one of our
//! registered addresses; before the user hears of it, the payment is checked on
//! chain (docs/PROTOCOL-TEXT.md, "RECEIPT").
//!
//! The chain is read through [`PaymentCheck`], whose one primitive returns what a
//! transaction paid, to which addresses, in the chain's native asset. [`EvmPayments`]
//! reads an EVM node: the transaction's own value, and what its logs say was paid out
//! (a payment made by a contract, such as a mailbox wallet's withdrawal, moves value
//! inside the transaction; [`EvmPayments::with_log_reader`] plugs in the reader of
//! that contract's events). Token receipts are refused for now.

use std::sync::Arc;

use alloy::primitives::{Address, B256, U256};
use async_trait::async_trait;
use springmail_sdk::amount::Asset;
use springmail_sdk::markup::broker::ReceiptBlock;

/// One payment in the native asset, to an address, in base units.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Paid {
    /// Who was paid.
    pub to: Address,
    /// How much.
    pub value: U256,
}

/// What a mined transaction paid in the native asset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NativePayment {
    /// Whether it succeeded (a reverted transaction paid nothing).
    pub succeeded: bool,
    /// Its payments: its own value to its recipient, and those its logs report.
    pub paid: Vec<Paid>,
}

/// Reads a payment out of one log (`None` for any other log): the hook for contracts
/// that pay out value, such as the escrow's mailbox-wallet withdrawals.
pub type LogReader = Arc<dyn Fn(&alloy::primitives::Log) -> Option<Paid> + Send + Sync>;

/// Reads payments from the chain.
#[async_trait]
pub trait PaymentCheck: Send + Sync {
    /// The native payment of a mined transaction; `Ok(None)` when the node knows no
    /// mined transaction of that id. `Err` is transient (the node is unreachable).
    async fn native_payment(&self, tx: B256) -> Result<Option<NativePayment>, String>;

    /// False when this chain backend cannot be read for payments (receipts are then
    /// refused, saying so).
    fn supported(&self) -> bool {
        true
    }
}

/// [`PaymentCheck`] over the SDK's [`Chain`](springmail_sdk::chain::Chain), for
/// backends without an EVM node (qtumd's own RPC): a transaction's receipt and what its
/// logs report (a mailbox wallet's withdrawal). A plain coin transfer on Qtum pays
/// through UTXO outputs, which this does not read: such receipts are not believed.
pub struct ChainPayments {
    chain: tokio::sync::OnceCell<Arc<dyn springmail_sdk::chain::Chain>>,
    settings: Option<springmail_sdk::config::ChainSettings>,
    readers: Vec<LogReader>,
}

impl std::fmt::Debug for ChainPayments {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ChainPayments")
    }
}

impl ChainPayments {
    /// A reader of `chain`.
    pub fn new(chain: Arc<dyn springmail_sdk::chain::Chain>) -> Self {
        ChainPayments {
            chain: tokio::sync::OnceCell::new_with(Some(chain)),
            settings: None,
            readers: Vec::new(),
        }
    }

    /// A reader that connects (read-only) on first use, as `settings` say.
    pub fn connecting(settings: springmail_sdk::config::ChainSettings) -> Self {
        ChainPayments {
            chain: tokio::sync::OnceCell::new(),
            settings: Some(settings),
            readers: Vec::new(),
        }
    }

    /// Counts the payments `reader` finds in the transaction's logs.
    pub fn with_log_reader(mut self, reader: LogReader) -> Self {
        self.readers.push(reader);
        self
    }
}

#[async_trait]
impl PaymentCheck for ChainPayments {
    async fn native_payment(&self, tx: B256) -> Result<Option<NativePayment>, String> {
        let chain = self
            .chain
            .get_or_try_init(|| async {
                match &self.settings {
                    Some(s) => s.connect(None, None).await.map_err(|e| e.to_string()),
                    None => Err("no chain to read".to_string()),
                }
            })
            .await?;
        let Some(receipt) = chain.receipt(tx).await.map_err(|e| e.to_string())? else {
            return Ok(None);
        };
        let paid = receipt
            .logs
            .iter()
            .flat_map(|log| self.readers.iter().filter_map(move |r| r(log)))
            .collect();
        Ok(Some(NativePayment {
            succeeded: receipt.succeeded(),
            paid,
        }))
    }
}

/// The chain backends without a payment reader (the embedded chain lives in one process).
#[derive(Debug, Clone, Copy)]
pub struct NoPayments;

#[async_trait]
impl PaymentCheck for NoPayments {
    async fn native_payment(&self, _tx: B256) -> Result<Option<NativePayment>, String> {
        Ok(None)
    }

    fn supported(&self) -> bool {
        false
    }
}

/// [`PaymentCheck`] over an EVM JSON-RPC node.
#[derive(Clone)]
pub struct EvmPayments {
    provider: alloy::providers::DynProvider,
    readers: Vec<LogReader>,
}

impl std::fmt::Debug for EvmPayments {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EvmPayments")
    }
}

impl EvmPayments {
    /// A reader of the node at `url`.
    pub fn new(url: &str) -> Result<Self, String> {
        use alloy::providers::{Provider, ProviderBuilder};
        let url = url
            .parse()
            .map_err(|e| format!("bad node URL {url:?}: {e}"))?;
        let provider = ProviderBuilder::new()
            .disable_recommended_fillers()
            .connect_http(url)
            .erased();
        Ok(EvmPayments {
            provider,
            readers: Vec::new(),
        })
    }

    /// Also counts the payments `reader` finds in the transaction's logs (it must
    /// check the log's emitter itself: anyone can emit any event).
    pub fn with_log_reader(mut self, reader: LogReader) -> Self {
        self.readers.push(reader);
        self
    }
}

#[async_trait]
impl PaymentCheck for EvmPayments {
    async fn native_payment(&self, tx: B256) -> Result<Option<NativePayment>, String> {
        use alloy::consensus::Transaction as _;
        use alloy::providers::Provider;
        let Some(receipt) = self
            .provider
            .get_transaction_receipt(tx)
            .await
            .map_err(|e| format!("eth_getTransactionReceipt: {e}"))?
        else {
            return Ok(None);
        };
        let Some(t) = self
            .provider
            .get_transaction_by_hash(tx)
            .await
            .map_err(|e| format!("eth_getTransactionByHash: {e}"))?
        else {
            return Ok(None);
        };
        let mut paid = Vec::new();
        if let Some(to) = t.inner.to() {
            if !t.inner.value().is_zero() {
                paid.push(Paid {
                    to,
                    value: t.inner.value(),
                });
            }
        }
        for log in receipt.logs() {
            paid.extend(self.readers.iter().filter_map(|r| r(&log.inner)));
        }
        Ok(Some(NativePayment {
            succeeded: receipt.status(),
            paid,
        }))
    }
}

/// Why a RECEIPT is not believed; each is a sentence for its sender.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReceiptRefusal {
    /// Another chain.
    #[error("the receipt is for chain {got}; this broker is on chain {ours}")]
    WrongChain {
        /// Ours.
        ours: u64,
        /// The receipt's.
        got: u64,
    },
    /// The address paid has no mailbox here.
    #[error("{0} is not registered at this broker")]
    NotRegistered(String),
    /// A token receipt.
    #[error("receipts for {0} are not checked by this broker yet (only the chain's native asset)")]
    Token(String),
    /// The chain backend cannot be read for payments.
    #[error("this broker cannot check payments on its chain backend yet")]
    Unsupported,
    /// No such mined transaction.
    #[error("transaction {0} is not mined on this chain")]
    NotMined(B256),
    /// It reverted.
    #[error("transaction {0} failed on chain")]
    Failed(B256),
    /// It paid someone else, or another amount.
    #[error("transaction {tx} did not pay {amount} to {to}")]
    Mismatch {
        /// The transaction.
        tx: B256,
        /// The amount the receipt claims.
        amount: String,
        /// The address it claims was paid.
        to: String,
    },
}

/// Checks a receipt against what the chain says the transaction did (`payment`,
/// from [`PaymentCheck::native_payment`]). `registered` is whether `To` has a
/// mailbox here.
pub fn check(
    receipt: &ReceiptBlock,
    chain_id: u64,
    registered: bool,
    payment: Result<Option<&NativePayment>, ReceiptRefusal>,
) -> Result<(), ReceiptRefusal> {
    let to = springmail_sdk::qtum::format_address(receipt.chain_id, receipt.to);
    if receipt.chain_id != chain_id {
        return Err(ReceiptRefusal::WrongChain {
            ours: chain_id,
            got: receipt.chain_id,
        });
    }
    if !registered {
        return Err(ReceiptRefusal::NotRegistered(to));
    }
    if receipt.amount.asset() != &Asset::for_chain(chain_id) {
        return Err(ReceiptRefusal::Token(
            receipt.amount.asset().symbol().to_string(),
        ));
    }
    let Some(p) = payment? else {
        return Err(ReceiptRefusal::NotMined(receipt.tx));
    };
    if !p.succeeded {
        return Err(ReceiptRefusal::Failed(receipt.tx));
    }
    let expected = Paid {
        to: receipt.to,
        value: U256::from(receipt.amount.units()),
    };
    if !p.paid.contains(&expected) {
        return Err(ReceiptRefusal::Mismatch {
            tx: receipt.tx,
            amount: receipt.amount.to_string(),
            to,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use springmail_sdk::amount::Amount;

    fn receipt() -> ReceiptBlock {
        ReceiptBlock {
            chain_id: 8890,
            amount: Amount::from_units(50_000_000, Asset::qtum()).unwrap(),
            tx: B256::repeat_byte(0xab),
            to: Address::repeat_byte(0x5a),
            from: "bob@brokera.test".into(),
        }
    }

    fn paid(to: Address, value: u128) -> NativePayment {
        NativePayment {
            succeeded: true,
            paid: vec![Paid {
                to,
                value: U256::from(value),
            }],
        }
    }

    #[test]
    fn only_a_mined_payment_of_that_amount_to_that_address_passes() {
        let r = receipt();
        assert_eq!(
            check(&r, 8890, true, Ok(Some(&paid(r.to, 50_000_000)))),
            Ok(())
        );
        assert!(matches!(
            check(&r, 8890, true, Ok(Some(&paid(r.to, 49_999_999)))),
            Err(ReceiptRefusal::Mismatch { .. })
        ));
        assert!(matches!(
            check(
                &r,
                8890,
                true,
                Ok(Some(&paid(Address::repeat_byte(1), 50_000_000)))
            ),
            Err(ReceiptRefusal::Mismatch { .. })
        ));
        // Among several payments of one transaction (a contract paying out), the one.
        let mut several = paid(Address::repeat_byte(1), 7);
        several.paid.push(paid(r.to, 50_000_000).paid[0]);
        assert_eq!(check(&r, 8890, true, Ok(Some(&several))), Ok(()));
        let mut failed = paid(r.to, 50_000_000);
        failed.succeeded = false;
        assert!(matches!(
            check(&r, 8890, true, Ok(Some(&failed))),
            Err(ReceiptRefusal::Failed(_))
        ));
        assert!(matches!(
            check(&r, 8890, true, Ok(None)),
            Err(ReceiptRefusal::NotMined(_))
        ));
        assert!(matches!(
            check(&r, 8890, false, Ok(Some(&paid(r.to, 50_000_000)))),
            Err(ReceiptRefusal::NotRegistered(_))
        ));
        assert!(matches!(
            check(&r, 81, true, Ok(Some(&paid(r.to, 50_000_000)))),
            Err(ReceiptRefusal::WrongChain { .. })
        ));
        let token = ReceiptBlock {
            amount: Amount::from_units(5, Asset::new("TOKEN", 2).unwrap()).unwrap(),
            ..r.clone()
        };
        assert!(matches!(
            check(&token, 8890, true, Ok(Some(&paid(token.to, 5)))),
            Err(ReceiptRefusal::Token(_))
        ));
        assert_eq!(
            check(&r, 8890, true, Err(ReceiptRefusal::Unsupported)),
            Err(ReceiptRefusal::Unsupported)
        );
    }
}
