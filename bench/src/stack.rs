//! The dev stack (`scripts/dev-stack`: dovecot IMAP, the SMTP relay, anvil) as the
//! latency and load benchmarks use it: read from `.dev-stack/env`, loopback only.
//!
//! A run deploys its own escrow on the stack's anvil, makes its deposits to
//! bob@example.com naming a fresh watcher key, and runs the watcher in this process on
//! a runtime of its own, as `springmail watch` would: IMAP with IDLE on
//! watcher@broker.test, replies over SMTP, the chain over JSON-RPC (wrapped in
//! [`crate::timed::TimedChain`] to see when each claim was accepted). Bob's claims are
//! RSA-2048 DKIM-signed for example.com and sent over SMTP. At the end the replies
//! the run caused are moved out of Bob's INBOX into a `Bench` folder, so other users
//! of the stack do not wade through them.

use std::sync::Arc;
use std::time::{Duration, Instant};

use alloy::consensus::{SignableTransaction, TxEnvelope, TxLegacy};
use alloy::eips::eip2718::Encodable2718;
use alloy::network::TxSignerSync;
use alloy::primitives::{Address, TxKind, U256};
use alloy::sol_types::SolCall;
use anyhow::{anyhow, bail, Context, Result};
use serde_json::json;
use springmail_sdk::chain::evm_rpc::EvmRpcChain;
use springmail_sdk::chain::Chain;
use springmail_sdk::client::{EscrowEvent, SpringMail};
use springmail_sdk::contract::EmailEscrow;
use springmail_sdk::eip712::EscrowId;
use springmail_sdk::keys::ClaimSecret;
use springmail_watcher::authenticate::DkimKeys;
use springmail_watcher::ingest::imap::{ImapSecurity, ImapSettings, ImapSource};
use springmail_watcher::journal::Journal;
use springmail_watcher::metrics::Metrics;
use springmail_watcher::reply::{SmtpSecurity, SmtpSettings, SmtpSink, DEFAULT_SMTP_CONNECTIONS};
use springmail_watcher::service::Watcher;
use springmail_watcher::smtp_ingress::{IngressSettings, Spool};

use crate::anvil::{self, rpc, rpc_batch, CHAIN_ID};
use crate::corpus::{self, DepositSpec, Provider, WATCHER_EMAIL};
use crate::rig;
use crate::timed::{Submissions, TimedChain, TimedSource};

/// The claimant: a local user of the stack, so replies are deliverable.
pub const BOB: &str = "bob@example.com";

/// Where the dev stack listens.
#[derive(Debug, Clone)]
pub struct Stack {
    /// anvil.
    pub anvil_url: String,
    /// IMAP port on 127.0.0.1.
    pub imap_port: u16,
    /// SMTP port on 127.0.0.1.
    pub smtp_port: u16,
    /// Postfix's port on 127.0.0.1, when the dev stack runs it (as root only).
    pub postfix_port: Option<u16>,
    /// Every user's password.
    pub password: String,
}

fn var(name: &str) -> Result<String> {
    std::env::var(name).with_context(|| {
        format!("{name} is not set: start the dev stack (scripts/dev-stack start) and source .dev-stack/env, or use scripts/bench")
    })
}

impl Stack {
    /// From the environment `.dev-stack/env` sets.
    pub fn from_env() -> Result<Self> {
        for host in ["SPRINGMAIL_IMAP_HOST", "SPRINGMAIL_SMTP_HOST"] {
            let h = var(host)?;
            if h != "127.0.0.1" && h != "localhost" {
                bail!("{host}={h}: benchmarks only talk to 127.0.0.1");
            }
        }
        let anvil_url = var("SPRINGMAIL_ANVIL_URL")?;
        crate::anvil::Anvil::external(&anvil_url)?;
        Ok(Stack {
            anvil_url,
            imap_port: var("SPRINGMAIL_IMAP_PORT")?.parse()?,
            smtp_port: var("SPRINGMAIL_SMTP_PORT")?.parse()?,
            postfix_port: match std::env::var("SPRINGMAIL_POSTFIX_PORT") {
                Ok(p) => Some(p.parse()?),
                Err(_) => None,
            },
            password: var("SPRINGMAIL_MAIL_PASSWORD")?,
        })
    }

    async fn imap(&self, user: &str) -> Result<async_imap::Session<tokio::net::TcpStream>> {
        let tcp = tokio::net::TcpStream::connect(("127.0.0.1", self.imap_port)).await?;
        let mut client = async_imap::Client::new(tcp);
        client
            .read_response()
            .await?
            .ok_or_else(|| anyhow!("no IMAP greeting"))?;
        client
            .login(user, &self.password)
            .await
            .map_err(|(e, _)| anyhow!("IMAP login {user}: {e}"))
    }

    /// Moves everything in `user`'s INBOX to `folder` (mail of earlier runs).
    pub async fn clear_inbox(&self, user: &str, folder: &str) -> Result<usize> {
        let mut s = self.imap(user).await?;
        let mbox = s.select("INBOX").await?;
        let n = mbox.exists as usize;
        if n > 0 {
            let _ = s.create(folder).await;
            s.mv("1:*", folder).await?;
        }
        let _ = s.logout().await;
        Ok(n)
    }

    /// Messages in `user`'s `folder`.
    pub async fn count(&self, user: &str, folder: &str) -> Result<u32> {
        let mut s = self.imap(user).await?;
        let n = s.select(folder).await.map(|m| m.exists).unwrap_or(0);
        let _ = s.logout().await;
        Ok(n)
    }

    /// Moves the messages in `user`'s INBOX whose In-Reply-To contains `tag` to
    /// `folder`; returns how many.
    pub async fn move_replies(&self, user: &str, tag: &str, folder: &str) -> Result<usize> {
        let mut s = self.imap(user).await?;
        s.select("INBOX").await?;
        let uids = s
            .uid_search(format!("HEADER In-Reply-To \"{tag}\""))
            .await?;
        let n = uids.len();
        if n > 0 {
            let _ = s.create(folder).await;
            let mut list: Vec<u32> = uids.into_iter().collect();
            list.sort_unstable();
            for chunk in list.chunks(500) {
                let set = chunk
                    .iter()
                    .map(u32::to_string)
                    .collect::<Vec<_>>()
                    .join(",");
                s.uid_mv(&set, folder).await?;
            }
        }
        let _ = s.logout().await;
        Ok(n)
    }

    /// One SMTP transaction (a new connection, as an independent sender makes it);
    /// returns when the server accepted the message (250 after DATA: the relay
    /// answers only after dovecot stored it).
    pub async fn smtp_send(&self, from: &str, to: &str, bytes: &[u8]) -> Result<()> {
        smtp_send_to(self.smtp_port, from, to, bytes).await
    }
}

/// Sends raw bytes to the SMTP server on 127.0.0.1:`port`; returns after its `250`.
pub async fn smtp_send_to(port: u16, from: &str, to: &str, bytes: &[u8]) -> Result<()> {
    use lettre::AsyncTransport;
    let transport =
        lettre::AsyncSmtpTransport::<lettre::Tokio1Executor>::builder_dangerous("127.0.0.1")
            .port(port)
            .timeout(Some(Duration::from_secs(60)))
            .build();
    let envelope = lettre::address::Envelope::new(Some(from.parse()?), vec![to.parse()?])?;
    transport
        .send_raw(&envelope, bytes)
        .await
        .context("SMTP send")?;
    Ok(())
}

/// A run's escrow, deposits and claim mails.
pub struct Fixture {
    /// The escrow and its first block.
    pub client: SpringMail,
    /// The watcher's key.
    pub watcher_key: Arc<ClaimSecret>,
    /// The watcher's chain account (the key itself), funded.
    pub relayer: Arc<dyn Chain>,
    /// The claims: (claim key, Message-ID, signed bytes).
    pub claims: Vec<(Address, String, Vec<u8>)>,
    /// Bob's provider (DKIM keys to pin).
    pub provider: Provider,
    /// The Message-ID tag of this run (its replies' In-Reply-To contain it).
    pub tag: String,
}

/// Deploys an escrow, makes `n` deposits to Bob naming a fresh watcher (sent as
/// JSON-RPC batches, anvil mining each as it comes), and builds Bob's claim mails
/// (5–50 KB, RSA-2048 DKIM for example.com).
pub async fn fixture(stack: &Stack, n: usize, seed: u64) -> Result<Fixture> {
    let http = reqwest::Client::new();
    let url = &stack.anvil_url;
    let sender = ClaimSecret::random();
    let watcher_key = Arc::new(ClaimSecret::random());
    anvil::fund(&http, url, sender.address(), U256::from(10u128.pow(30))).await?;
    anvil::fund(
        &http,
        url,
        watcher_key.address(),
        U256::from(10u128.pow(24)),
    )
    .await?;
    let sender_chain = EvmRpcChain::connect(url, sender.signer(), Some(CHAIN_ID))
        .await
        .map_err(|e| anyhow!("{e}"))?;
    let client = SpringMail::deploy(Arc::new(sender_chain))
        .await
        .map_err(|e| anyhow!("deploying the escrow: {e}"))?;
    let relayer: Arc<dyn Chain> = Arc::new(
        EvmRpcChain::connect(url, watcher_key.signer(), Some(CHAIN_ID))
            .await
            .map_err(|e| anyhow!("{e}"))?,
    );
    let (_, now) = anvil::head(&http, url).await?;
    let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(seed);
    let mut specs: Vec<DepositSpec> = corpus::deposit_specs(
        &mut rng,
        n,
        1,
        sender.address(),
        watcher_key.address(),
        now + 30 * 86_400,
    );
    for s in &mut specs {
        s.email = BOB.into();
        s.deposit.recipient = springmail_sdk::email::commitment(
            BOB,
            &springmail_sdk::email::Salt::from_bytes(s.salt),
        )?;
    }
    deposit_all(&http, url, &sender, client.escrow(), &specs).await?;
    let cache = crate::work_dir().join("cache");
    let provider = Provider::new("example.com", corpus::KeyKind::Rsa2048, &cache)?;
    let id = EscrowId {
        chain_id: CHAIN_ID,
        escrow: client.escrow(),
    };
    let tag = format!("smbench{}x", rand::random::<u32>());
    let mut claims = Vec::with_capacity(n);
    for (i, spec) in specs.iter().enumerate() {
        let to = Address::from(rand::Rng::gen::<[u8; 20]>(&mut rng));
        let block = corpus::claim_block(id, spec, to, now + 7 * 86_400);
        let shape = corpus::shape(&mut rng, i, 5 * 1024, 50 * 1024);
        let (mid, raw) =
            corpus::claim_mail(&mut rng, &provider, BOB, &block, shape, now as i64, &tag)?;
        claims.push((block.claim_key, mid, raw));
    }
    Ok(Fixture {
        client,
        watcher_key,
        relayer,
        claims,
        provider,
        tag,
    })
}

/// Sends every deposit as raw transactions in JSON-RPC batches of 100 and waits for
/// the last one to be mined. Automine stays on (the stack's anvil is shared), but it
/// does not always mine everything a batch brings: what is left pending is mined with
/// `evm_mine` (which a next transaction would have done anyway).
async fn deposit_all(
    http: &reqwest::Client,
    url: &str,
    sender: &ClaimSecret,
    escrow: Address,
    specs: &[DepositSpec],
) -> Result<()> {
    let nonce_v = rpc(
        http,
        url,
        "eth_getTransactionCount",
        json!([sender.address(), "pending"]),
    )
    .await?;
    let mut nonce = u64::from_str_radix(
        nonce_v.as_str().unwrap_or("0x0").trim_start_matches("0x"),
        16,
    )?;
    let signer = sender.signer();
    let mut last = None;
    for chunk in specs.chunks(100) {
        let gas_price = 20_000_000_000u128;
        let mut calls = Vec::new();
        for spec in chunk {
            let data = EmailEscrow::depositCall {
                claimKey: spec.claim_key(),
                d: spec.deposit.to_sol(),
            }
            .abi_encode();
            let mut tx = TxLegacy {
                chain_id: Some(CHAIN_ID),
                nonce,
                gas_price,
                gas_limit: 120_000,
                to: TxKind::Call(escrow),
                value: U256::from(spec.deposit.amount),
                input: data.into(),
            };
            nonce += 1;
            let sig = signer.sign_transaction_sync(&mut tx)?;
            let env: TxEnvelope = tx.into_signed(sig).into();
            calls.push((
                "eth_sendRawTransaction",
                json!([format!("0x{}", hex::encode(env.encoded_2718()))]),
            ));
        }
        let hashes = rpc_batch(http, url, calls).await?;
        last = hashes.last().cloned();
    }
    if let Some(h) = last {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let r = rpc(http, url, "eth_getTransactionReceipt", json!([h])).await?;
            if !r.is_null() {
                if r["status"] != json!("0x1") {
                    bail!("the last deposit reverted: {r}");
                }
                break;
            }
            if Instant::now() > deadline {
                bail!("the deposits were not mined within 120 s");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
            let pool = rpc(http, url, "txpool_status", json!([])).await?;
            if pool["pending"] != json!("0x0") {
                rpc(http, url, "evm_mine", json!([])).await?;
            }
        }
    }
    Ok(())
}

/// `[smtp] connections` for replies through the dev stack's Postfix.
pub const MTA_CONNECTIONS: u32 = 32;

/// Where a benchmark's watcher sends its replies.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Replies {
    /// The dev relay, which answers each only after dovecot stored it.
    Relay,
    /// The dev stack's Postfix, which queues each (fsync'd) and relays it to the dev
    /// relay on its own: the MTA beside a broker.
    Mta,
    /// A sink that only counts them (to see what the replies cost).
    Count,
}

/// A watcher running on a runtime of its own (two workers, as on a two-core broker).
pub struct RunningWatcher {
    /// Claim submissions as anvil accepted them.
    pub seen: Arc<Submissions>,
    /// When each claim was fetched from the mailbox.
    pub fetched: Arc<std::sync::Mutex<std::collections::HashMap<Address, Instant>>>,
    /// The watcher's counters.
    pub metrics: Arc<Metrics>,
    /// The journal.
    pub journal: Arc<Journal>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<Result<()>>>,
    _dir: tempfile::TempDir,
}

impl RunningWatcher {
    /// Starts the watcher on `fixture`'s escrow: IMAP IDLE on watcher@broker.test
    /// (polling only every `poll`), replies as `replies` says.
    pub fn start(
        stack: &Stack,
        fixture: &Fixture,
        poll: Duration,
        replies: Replies,
    ) -> Result<Self> {
        Ok(Self::start_with(stack, fixture, poll, replies, false)?.0)
    }

    /// As [`RunningWatcher::start`], but mail comes in over the watcher's own SMTP
    /// ingress (a spool woken at each `250`) instead of IMAP; returns its address.
    pub fn start_smtp_ingress(
        stack: &Stack,
        fixture: &Fixture,
        poll: Duration,
        replies: Replies,
    ) -> Result<(Self, std::net::SocketAddr)> {
        let (w, addr) = Self::start_with(stack, fixture, poll, replies, true)?;
        Ok((w, addr.expect("the ingress address")))
    }

    fn start_with(
        stack: &Stack,
        fixture: &Fixture,
        poll: Duration,
        replies: Replies,
        smtp_ingress: bool,
    ) -> Result<(Self, Option<std::net::SocketAddr>)> {
        let seen = Arc::new(Submissions::default());
        let tmp = crate::work_dir().join("tmp");
        std::fs::create_dir_all(&tmp)?;
        let dir = tempfile::tempdir_in(tmp)?;
        let journal = Arc::new(Journal::open_in(dir.path())?);
        let chain: Arc<dyn Chain> =
            Arc::new(TimedChain::new(fixture.relayer.clone(), seen.clone()));
        let client = SpringMail::new(chain, fixture.client.escrow())
            .with_start_block(fixture.client.start_block());
        let source = ImapSource::new(ImapSettings {
            host: "127.0.0.1".into(),
            port: stack.imap_port,
            security: ImapSecurity::Plain,
            user: WATCHER_EMAIL.into(),
            password: stack.password.clone(),
            mailbox: "INBOX".into(),
            idle: true,
            timeout: Duration::from_secs(30),
        })?;
        // The broker's own MTA on loopback takes more connections than the default,
        // which suits a provider's submission server.
        let smtp = match replies {
            Replies::Relay => Some((stack.smtp_port, DEFAULT_SMTP_CONNECTIONS)),
            Replies::Mta => Some((stack.postfix_port.ok_or_else(|| {
                anyhow!("replies through the MTA need the dev stack's Postfix (SPRINGMAIL_POSTFIX_PORT is not set: it runs only when the stack was started as root)")
            })?, MTA_CONNECTIONS)),
            Replies::Count => None,
        };
        let sink: Arc<dyn springmail_watcher::reply::ReplySink> = match smtp {
            None => Arc::new(rig::CountingSink::default()),
            Some((port, connections)) => Arc::new(
                SmtpSink::new(&SmtpSettings {
                    host: "127.0.0.1".into(),
                    port,
                    security: SmtpSecurity::Plain,
                    credentials: None,
                    connections,
                })
                .map_err(|e| anyhow!("{e}"))?,
            ),
        };
        let mut pins = springmail_watcher::authenticate::PinnedRecords::new();
        fixture.provider.pin(&mut pins)?;
        let spool = if smtp_ingress {
            Some(Spool::open(dir.path().join("spool"))?)
        } else {
            None
        };
        let source: Box<dyn springmail_watcher::ingest::MailSource> = match &spool {
            Some(spool) => Box::new(spool.source()?),
            None => Box::new(source),
        };
        let source = TimedSource::new(source);
        let fetched = source.fetched.clone();
        let ingress_keys = DkimKeys::pinned(pins.clone());
        let parts = rig::parts(
            client,
            fixture.watcher_key.clone(),
            journal.clone(),
            Box::new(source),
            sink,
            pins,
            poll,
        );
        let metrics = parts.metrics.clone();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || -> Result<()> {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()?;
            rt.block_on(async move {
                let _ingress = match spool {
                    Some(spool) => {
                        let mut settings = IngressSettings::new(
                            "127.0.0.1:0".parse().expect("an address"),
                            vec!["broker.test".into()],
                            vec![WATCHER_EMAIL.into()],
                        );
                        // Every benchmark sender comes from 127.0.0.1, where an MX
                        // sees many clients: the default 10 per client turned away
                        // senders whose previous session was still closing.
                        settings.max_connections_per_client = 64;
                        let (addr, task) =
                            springmail_watcher::smtp_ingress::serve(settings, spool, ingress_keys)
                                .await?;
                        let _ = addr_tx.send(addr);
                        Some(task)
                    }
                    None => None,
                };
                let watcher = Watcher::new(parts)?;
                watcher
                    .run(async move {
                        let _ = stop_rx.await;
                    })
                    .await?;
                anyhow::Ok(())
            })
        });
        let addr = if smtp_ingress {
            Some(
                addr_rx
                    .recv_timeout(Duration::from_secs(10))
                    .map_err(|_| anyhow!("the SMTP ingress did not start"))?,
            )
        } else {
            None
        };
        Ok((
            RunningWatcher {
                seen,
                fetched,
                metrics,
                journal,
                stop: Some(stop_tx),
                thread: Some(thread),
                _dir: dir,
            },
            addr,
        ))
    }

    /// Asks the watcher to stop and waits for it.
    pub fn stop(mut self) -> Result<()> {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        match self.thread.take().map(|t| t.join()) {
            Some(Ok(r)) => r,
            Some(Err(_)) => bail!("the watcher thread panicked"),
            None => Ok(()),
        }
    }
}

impl Drop for RunningWatcher {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

/// The escrow's `Claimed` events per claim key: (count, relayer of the first).
pub async fn claimed_on_chain(
    client: &SpringMail,
) -> Result<std::collections::HashMap<Address, (usize, Address)>> {
    let head = client.chain().head().await.map_err(|e| anyhow!("{e}"))?;
    let events = client
        .scan(client.start_block(), head.number)
        .await
        .map_err(|e| anyhow!("{e}"))?;
    let mut out: std::collections::HashMap<Address, (usize, Address)> = Default::default();
    for (_, ev) in events {
        if let EscrowEvent::Claimed {
            claim_key, relayer, ..
        } = ev
        {
            let e = out.entry(claim_key).or_insert((0, relayer));
            e.0 += 1;
        }
    }
    Ok(out)
}
