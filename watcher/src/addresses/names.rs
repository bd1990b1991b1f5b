//! Names as payees: what a mailbox wallet's PAY to an email becomes, and the
//! escrow's withdrawals read back as payments for RECEIPT checks.

use super::*;

/// What a PAY's email recipient is to the address layer ([`PayNames::route`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PayRoute {
    /// Not a broker's name: an ordinary email (a deposit and a notification).
    Email,
    /// A name at this broker: its address, and the mailbox its owner registered.
    Local {
        /// The address the name stands for.
        address: Address,
        /// Where its mail goes, if registered.
        mailbox: Option<String>,
    },
    /// A local part this broker does not know.
    UnknownLocal,
    /// A name at a peer broker (this domain), resolved by RESOLVE.
    Peer(String),
}

/// How mailbox-wallet payments reach broker names: this broker's own (from its book)
/// and its peers' (`smtp_ingress.peers`, by RESOLVE and RECEIPT).
#[derive(Debug, Clone)]
pub struct PayNames {
    desk: Arc<AddressDesk>,
    peers: Vec<String>,
    timeout: Duration,
}

impl PayNames {
    /// Payments through `desk`; `peers` are the domains run by brokers; a RESOLVE
    /// not answered within `timeout` fails the payment.
    pub fn new(desk: Arc<AddressDesk>, peers: Vec<String>, timeout: Duration) -> Self {
        let peers = peers.into_iter().map(|p| p.to_ascii_lowercase()).collect();
        PayNames {
            desk,
            peers,
            timeout,
        }
    }

    /// The desk.
    pub fn desk(&self) -> &Arc<AddressDesk> {
        &self.desk
    }

    /// How long a RESOLVE may stay unanswered.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Whether `domain` is one of this broker's.
    pub fn is_ours(&self, domain: &str) -> bool {
        self.desk
            .settings
            .domains
            .iter()
            .any(|d| d.eq_ignore_ascii_case(domain))
    }

    /// Whether `domain` is a configured peer broker's.
    pub fn is_peer(&self, domain: &str) -> bool {
        self.peers.iter().any(|p| p.eq_ignore_ascii_case(domain))
    }

    /// Routes `name` (the local part as written: base58 is case-sensitive).
    pub fn route(&self, name: &str) -> Result<PayRoute, AddressError> {
        let Some((local, domain)) = name.rsplit_once('@') else {
            return Ok(PayRoute::Email);
        };
        let domain = domain.to_ascii_lowercase();
        if self.is_ours(&domain) {
            if local.eq_ignore_ascii_case(BROKER_LOCAL)
                || self
                    .desk
                    .settings
                    .reserved
                    .iter()
                    .any(|r| r.eq_ignore_ascii_case(local))
            {
                return Ok(PayRoute::UnknownLocal);
            }
            let book = &self.desk.book;
            return Ok(
                match book.resolve_local(local, self.desk.settings.network)? {
                    Some(address) => PayRoute::Local {
                        address,
                        mailbox: book.mailbox_of(address)?,
                    },
                    None => PayRoute::UnknownLocal,
                },
            );
        }
        if self.peers.contains(&domain) {
            return Ok(PayRoute::Peer(domain));
        }
        Ok(PayRoute::Email)
    }

    /// The answer to `request` and when it was asked; `None` if it was never asked.
    pub fn answer(&self, request: &str) -> Result<Option<(Resolution, u64)>, AddressError> {
        let book = &self.desk.book;
        Ok(match (book.resolution(request)?, book.asked_at(request)?) {
            (Some(r), Some(at)) => Some((r, at)),
            _ => None,
        })
    }

    /// Forwards the text of a PAY to the mailbox registered for the name it paid.
    pub fn forward_note(
        &self,
        name: &str,
        mailbox: &str,
        payer: &str,
        subject: &str,
        text: &str,
        seed: &str,
    ) -> Result<OutgoingMail, AddressError> {
        let domain = name
            .rsplit_once('@')
            .map_or("", |(_, d)| d)
            .to_ascii_lowercase();
        let date = mail_parser::DateTime::from_timestamp(unix_now() as i64).to_rfc822();
        self.desk.forward_text(
            name,
            &domain,
            mailbox,
            (payer, subject, &date),
            text.to_string(),
            true,
            seed,
        )
    }
}

/// The escrow's withdrawals from mailbox wallets as payments, for
/// [`crate::receipt::EvmPayments::with_log_reader`]: a `Moved` log emitted by
/// `escrow` whose `to` is an address (below 2^160) paid it `amount`.
pub fn escrow_withdrawals(escrow: Address) -> crate::receipt::LogReader {
    Arc::new(move |log: &alloy::primitives::Log| {
        if log.address != escrow {
            return None;
        }
        match springmail_sdk::accounts::AccountEvent::decode(log)? {
            springmail_sdk::accounts::AccountEvent::Moved { to, amount, .. }
                if to.0[..12].iter().all(|&b| b == 0) =>
            {
                Some(crate::receipt::Paid {
                    to: Address::from_slice(&to.0[12..]),
                    value: alloy::primitives::U256::from(amount),
                })
            }
            _ => None,
        }
    })
}
