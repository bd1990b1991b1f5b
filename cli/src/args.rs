//! Command-line flags. Every subcommand's help ends with an example.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

const ROOT_AFTER: &str = "\
Examples:
  springmail demo                   the whole story on a built-in chain, no setup
  springmail wallet new             make a key (in an encrypted keystore)
  springmail send --to bob@example.com --amount '1.5 QTUM'
  springmail claim sm1.AAAA… --to qUbJ…   claim with the link from the email
  springmail status sm1.AAAA…

Configuration: ./springmail.toml, or --config FILE, or SPRINGMAIL_CONFIG; flags and
SPRINGMAIL_* variables override it. Secrets come only from the environment or prompts:
SPRINGMAIL_PASSWORD (keystore), SPRINGMAIL_PRIVATE_KEY (instead of a keystore),
SPRINGMAIL_SMTP_PASSWORD, SPRINGMAIL_QTUM_RPC_PASSWORD. See docs/CLI.md.

Exit codes: 0 done, 1 the operation failed (refused, reverted, not delivered),
2 bad input or configuration, 3 a service could not be reached (try again).";

/// Send QTUM or QRC20 tokens to an email address, claim them, run a watcher.
#[derive(Debug, Parser)]
#[command(name = "springmail", version, about, long_about = None, after_help = ROOT_AFTER)]
#[command(propagate_version = true, arg_required_else_help = true)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Flags every command takes; each overrides the config file.
#[derive(Debug, Clone, Default, Args)]
#[command(next_help_heading = "Global options")]
pub struct GlobalArgs {
    /// Config file (default: ./springmail.toml, then ~/.config/springmail/springmail.toml)
    #[arg(long, global = true, env = springmail_sdk::env::CONFIG, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Chain backend: evm-rpc (anvil, any EVM node) or qtum (qtumd)
    #[arg(long, global = true, env = springmail_sdk::env::BACKEND, value_name = "NAME")]
    pub backend: Option<String>,
    /// Node URL, e.g. http://127.0.0.1:8545
    #[arg(long, global = true, env = springmail_sdk::env::RPC_URL, value_name = "URL")]
    pub rpc: Option<String>,
    /// Chain id the node must have (8890 regtest/anvil, 8889 testnet, 81 mainnet)
    #[arg(long, global = true, env = springmail_sdk::env::CHAIN_ID, value_name = "ID")]
    pub chain_id: Option<u64>,
    /// Escrow contract address (from `springmail deploy`)
    #[arg(long, global = true, env = springmail_sdk::env::ESCROW, value_name = "ADDR")]
    pub escrow: Option<String>,
    /// Encrypted keystore file of your key
    #[arg(long, global = true, env = springmail_sdk::env::KEYSTORE, value_name = "FILE")]
    pub keystore: Option<PathBuf>,
    /// Print results as JSON on stdout
    #[arg(long, global = true)]
    pub json: bool,
    /// More log output on stderr (-v debug, -vv trace); never shows secrets
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Make, import or show your key (Qtum WIF and base58 address, encrypted keystore)
    #[command(subcommand)]
    Wallet(WalletCommand),
    /// Deploy the EmailEscrow contract from your key
    #[command(
        after_help = "Example:\n  springmail --rpc http://127.0.0.1:8545 deploy\n\n\
        Then put the printed escrow address into springmail.toml ([chain] escrow)."
    )]
    Deploy(DeployArgs),
    /// Deposit to an email address and send the recipient the notification email
    #[command(after_help = SEND_AFTER)]
    Send(SendArgs),
    /// Claim a deposit with its link: directly on chain, or by mail through its watcher
    #[command(after_help = CLAIM_AFTER)]
    Claim(ClaimArgs),
    /// Take a deposit back (after expiry; before it only if it was sent --cancellable)
    #[command(
        after_help = "Example:\n  springmail refund 0x3f5CE5FBFe3E9af3971dD833D26bA9b5C936f0bE\n  \
        springmail refund sm1.AAAA…          (a link works too)"
    )]
    Refund(RefundArgs),
    /// Show where a deposit stands: open, expired, claimed or refunded
    #[command(after_help = "Example:\n  springmail status sm1.AAAA…\n  \
        springmail status 0x3f5CE5FBFe3E9af3971dD833D26bA9b5C936f0bE\n  \
        springmail status --csv payroll.results.csv\n  \
        springmail status                          (every deposit you sent, with its link)")]
    Status(StatusArgs),
    /// Show the relayer fees your account has earned in the escrow; --withdraw takes them
    #[command(
        after_help = "Examples:\n  springmail fees                          (the native coin)\n  \
        springmail fees --token 0x5FbD…0aa3\n  \
        springmail fees --withdraw               (all of them, to your own address)\n  \
        springmail fees --withdraw --to qUbJ2pD6yGBKX6rLBFPgKZ5AkvrNBi3XG8\n\n\
        A watcher (or anyone) that submits claims earns each claim's fee inside the escrow;\n\
        they are paid out in one transfer when withdrawn."
    )]
    Fees(FeesArgs),
    /// Your mailbox wallet's owner side: bind your key, see the account, withdraw without the broker
    #[command(subcommand)]
    Account(AccountCommand),
    /// Run a watcher: read claim mail, verify it, release the funds, reply in thread
    #[command(
        after_help = "Example:\n  SPRINGMAIL_PASSWORD=… springmail watch --config watcher.toml\n\n\
        Here --config names the watcher's own config file (see docs/OPERATIONS.md)."
    )]
    Watch(WatchArgs),
    /// The whole story in one process on a built-in chain: no setup, no network
    #[command(
        after_help = "Example:\n  springmail demo\n  springmail demo --keep /tmp/springmail-demo   (keep the mails and keys to look at)"
    )]
    Demo(DemoArgs),
}

const SEND_AFTER: &str = "\
Examples:
  springmail send --to bob@example.com --amount '1.5 QTUM'
  springmail send --to bob@example.com --amount '1.5 QTUM' --link-only --out bob.eml
  springmail send --to carol@example.net --amount '250 USDT' --token 0x5FbD…0aa3
  springmail send --csv payroll.csv          (columns: email,amount[,watcher])

Email mode (the default when [watcher] is configured, or with --watcher): claiming needs
the watcher's attestation, so only a mail from the recipient's address can claim.
Link mode (--link-only): the link alone can claim.

With --csv, results go to NAME.results.csv next to it (payroll.csv gives
payroll.results.csv: claim links and transaction ids; keep it private). Running the
same command again skips the rows already paid and finishes interrupted ones without
paying twice.";

const CLAIM_AFTER: &str = "\
Examples:
  springmail claim sm1.AAAA… --to qUbJ2pD6yGBKX6rLBFPgKZ5AkvrNBi3XG8
  springmail claim 'https://claim.example/claim#sm1.AAAA…' --to qUbJ…
  springmail claim sm1.AAAA… --to qUbJ… --email bob@example.com --out claim.eml

A link-mode deposit is claimed directly: your key (wallet new, or SPRINGMAIL_PRIVATE_KEY)
pays the gas. An email-mode deposit is claimed by mail: the claim is signed here (the
link's secret stays here) and the claim mail to the watcher is sent through [mail]
smtp_url, written to --out, or printed as a CLAIM block to paste into your reply.";

/// `springmail account …`: a mailbox wallet seen from its owner's key.
#[derive(Debug, Subcommand)]
pub enum AccountCommand {
    /// Print the BIND line that binds your key to your mailbox wallet (mail it to your broker)
    #[command(
        after_help = "Example:\n  springmail account bind --mailbox bob@example.com\n\n\
        Signs the text of docs/PROTOCOL-TEXT.md (\"BIND's signed text\") with your key\n\
        (keystore or SPRINGMAIL_PRIVATE_KEY) for [chain] chain_id and escrow; nothing is sent.\n\
        Send the printed line from that mailbox to the broker. Once bound, your key can\n\
        withdraw without the broker (`springmail account withdraw`)."
    )]
    Bind {
        /// The mailbox your wallet is kept for
        #[arg(long, value_name = "EMAIL")]
        mailbox: String,
    },
    /// Show an account: balance, the broker's limits, the controller and the owner key
    #[command(after_help = "Example:\n  springmail account show 0x64e4…21fe\n\n\
        The broker's replies (BALANCE, BIND) name your account id.")]
    Show {
        /// The account id (0x and 64 hex digits)
        #[arg(value_name = "ACCOUNT_ID")]
        account: String,
    },
    /// Withdraw from your account with your bound owner key: no broker, no mail, no limits
    #[command(
        after_help = "Examples:\n  springmail account withdraw 0x64e4…21fe --amount '0.5 QTUM'\n  \
        springmail account withdraw 0x64e4…21fe --all --to qUbJ2pD6yGBKX6rLBFPgKZ5AkvrNBi3XG8"
    )]
    Withdraw {
        /// The account id (0x and 64 hex digits)
        #[arg(value_name = "ACCOUNT_ID")]
        account: String,
        /// How much, with its unit
        #[arg(long, conflicts_with = "all")]
        amount: Option<String>,
        /// The whole balance
        #[arg(long)]
        all: bool,
        /// Pay to this address instead of your own
        #[arg(long, value_name = "ADDRESS")]
        to: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum WalletCommand {
    /// Make a new key and save it to an encrypted keystore
    #[command(after_help = "Example:\n  springmail wallet new\n  \
        SPRINGMAIL_PASSWORD=… springmail wallet new --keystore ./alice.json --show-wif")]
    New {
        /// Also print the private key as WIF (secret: for another Qtum wallet; springmail's local signer needs no copy)
        #[arg(long)]
        show_wif: bool,
    },
    /// Save an existing key (hex or WIF, from SPRINGMAIL_PRIVATE_KEY or a prompt) to a keystore
    #[command(
        after_help = "Example:\n  SPRINGMAIL_PRIVATE_KEY=0xac09…ff80 springmail wallet import --keystore ./dev.json"
    )]
    Import,
    /// Show the keystore's addresses (and with --show-wif the key itself)
    #[command(
        after_help = "Example:\n  springmail wallet show\n  springmail wallet show --show-wif"
    )]
    Show {
        /// Unlock the keystore and print the private key as WIF
        #[arg(long)]
        show_wif: bool,
    },
}

#[derive(Debug, Args)]
pub struct DeployArgs {}

#[derive(Debug, Args)]
pub struct SendArgs {
    /// Recipient email address
    #[arg(
        long,
        value_name = "EMAIL",
        conflicts_with = "csv",
        required_unless_present = "csv"
    )]
    pub to: Option<String>,
    /// Amount with its unit, e.g. "1.5 QTUM" (or the token's symbol with --token)
    #[arg(
        long,
        value_name = "AMOUNT",
        conflicts_with = "csv",
        required_unless_present = "csv",
        allow_hyphen_values = true
    )]
    pub amount: Option<String>,
    /// Many recipients from a CSV file: email,amount[,watcher]
    #[arg(long, value_name = "FILE")]
    pub csv: Option<PathBuf>,
    /// Send a QRC20/ERC20 token at this address instead of the native coin
    #[arg(long, value_name = "ADDR")]
    pub token: Option<String>,
    /// How long the recipient has to claim: 30d, 12h, 90m, 2w (default 30d)
    #[arg(long, value_name = "DURATION")]
    pub expires: Option<String>,
    /// Email mode: this watcher must attest claims (base58 or 0x address)
    #[arg(long, value_name = "ADDR", conflicts_with = "link_only")]
    pub watcher: Option<String>,
    /// The watcher's mailbox, where claims are mailed (Reply-To of the notification)
    #[arg(long, value_name = "EMAIL")]
    pub watcher_email: Option<String>,
    /// The watcher keeps mailbox wallets: the notification says a plain reply ("claim")
    /// keeps the money in one (default: [watcher] wallet, else off)
    #[arg(long, conflicts_with = "link_only")]
    pub watcher_wallet: bool,
    /// Link mode: the claim link alone can claim, no watcher involved
    #[arg(long)]
    pub link_only: bool,
    /// Let yourself take the deposit back before it expires
    #[arg(long)]
    pub cancellable: bool,
    /// A personal note for the notification email
    #[arg(long, value_name = "TEXT")]
    pub note: Option<String>,
    /// Write the notification to this file (with --csv: this directory) instead of sending it
    #[arg(long, value_name = "PATH")]
    pub out: Option<PathBuf>,
    /// Do not send or write a notification; just print the claim link
    #[arg(long, conflicts_with = "out")]
    pub no_mail: bool,
}

#[derive(Debug, Args)]
pub struct ClaimArgs {
    /// The claim link: sm1.… or https://…/claim#sm1.…
    #[arg(value_name = "LINK")]
    pub link: String,
    /// Where the money goes: your address (q…/Q… on Qtum chains, or 0x…)
    #[arg(long, value_name = "ADDR")]
    pub to: String,
    /// Your email address: the one the money was sent to (From of the claim mail)
    #[arg(long, value_name = "EMAIL")]
    pub email: Option<String>,
    /// The watcher's mailbox (the Reply-To of the notification email)
    #[arg(long, value_name = "EMAIL")]
    pub watcher_email: Option<String>,
    /// The most the watcher may keep for paying the gas, e.g. "0.01 QTUM"
    #[arg(long, value_name = "AMOUNT")]
    pub max_fee: Option<String>,
    /// Message-ID of the notification to reply to (default: derived from the link)
    #[arg(long, value_name = "ID")]
    pub in_reply_to: Option<String>,
    /// Write the claim mail to this file instead of sending it
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct FeesArgs {
    /// The token the fees are in (its address); without it, the native coin
    #[arg(long, value_name = "ADDRESS")]
    pub token: Option<String>,
    /// Withdraw all of them, in one transfer
    #[arg(long)]
    pub withdraw: bool,
    /// With --withdraw: pay them to this address instead of your own
    #[arg(long, value_name = "ADDRESS", requires = "withdraw")]
    pub to: Option<String>,
}

#[derive(Debug, Args)]
pub struct RefundArgs {
    /// The deposit: its claim key (0x…) or its link
    #[arg(value_name = "CLAIM_KEY|LINK")]
    pub deposit: String,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The deposit: its claim key (0x…) or its link. Without it (and without --csv):
    /// every deposit you sent from this account, with the links this machine recorded
    #[arg(value_name = "CLAIM_KEY|LINK", conflicts_with = "csv")]
    pub deposit: Option<String>,
    /// Every deposit of a `send --csv` result file
    #[arg(long, value_name = "FILE")]
    pub csv: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct WatchArgs {
    /// Handle the mail that is there now, then exit (instead of waiting for more)
    #[arg(long)]
    pub once: bool,
    /// Queue again the replies that were given up (refused for good, expired) or left
    /// unconfirmed, then run as usual
    #[arg(long)]
    pub resend_replies: bool,
    /// Print the watcher's address (the value senders pass as --watcher) and exit
    #[arg(long, conflicts_with = "once")]
    pub print_address: bool,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Keep the demo's files (mail directories, keys) in this directory
    #[arg(long, value_name = "DIR")]
    pub keep: Option<PathBuf>,
    /// Tests only: write every secret the demo makes (private keys, claim keys, salts,
    /// DKIM keys) to FILE as JSON, so a test can check that none is printed or logged
    #[arg(long, value_name = "FILE", hide = true)]
    pub dump_secrets: Option<PathBuf>,
}
