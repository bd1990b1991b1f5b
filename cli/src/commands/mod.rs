//! One module per subcommand.

pub mod account;
pub mod batch;
pub mod claim;
pub mod demo;
pub mod deploy;
pub mod fees;
pub mod refund;
pub mod send;
pub mod sent;
pub mod status;
pub mod wallet;
pub mod watch;
