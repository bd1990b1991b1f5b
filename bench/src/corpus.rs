//! A corpus of realistic, DKIM-signed claim mails.
//!
//! Each mail is what a recipient's mail client sends back to the broker: a reply to
//! the deposit notification, `multipart/alternative` (text and HTML) inside
//! `multipart/mixed` with the `application/bismtp` part, a quoted thread below the
//! CLAIM block, the `Received` trail and `Return-Path` that MTAs add after signing,
//! sized 5–50 KB (log-uniform), and every 25th mail with a small image attachment.
//!
//! Senders are spread over many provider domains, most signing with RSA-2048 (as the
//! large providers do), some with Ed25519, a few with both. Keys, deposits, salts and
//! texts come from a seeded RNG, so a given `(seed, mails)` gives the same corpus
//! (apart from the DKIM `t=` tags); RSA keys are cached on disk because generating
//! them takes seconds.

use std::path::{Path, PathBuf};

use alloy::primitives::{Address, B256};
use anyhow::{Context, Result};
use base64::Engine;
use mail_auth::common::crypto::{DkimKey, Ed25519Key, RsaKey, Sha256};
use mail_auth::common::headers::HeaderWriter;
use mail_auth::dkim::generate::DkimKeyPair;
use mail_auth::dkim::{DkimSigner, Done};
use mail_builder::headers::address::Address as MailAddress;
use mail_builder::headers::message_id::MessageId;
use mail_builder::headers::raw::Raw;
use mail_builder::mime::MimePart;
use mail_builder::MessageBuilder;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use springmail_sdk::amount::{Amount, Asset};
use springmail_sdk::deposit::Deposit;
use springmail_sdk::eip712::{ClaimAuth, EscrowId};
use springmail_sdk::email::{commitment, Salt};
use springmail_sdk::keys::ClaimSecret;
use springmail_sdk::markup::ClaimBlock;
use springmail_watcher::authenticate::PinnedRecords;

/// The broker's mailbox, the `To` of every claim.
pub const WATCHER_EMAIL: &str = "watcher@broker.test";
/// The watcher's fee in satoshi (0.001 QTUM).
pub const FEE: u128 = 100_000;
/// Every deposit's amount (1.5 QTUM).
pub const AMOUNT: u128 = 150_000_000;

/// How a provider signs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// `rsa-sha256`, 2048-bit modulus.
    Rsa2048,
    /// `ed25519-sha256`.
    Ed25519,
    /// Both (two DKIM-Signature headers).
    Dual,
}

/// A mail provider with its DKIM key(s).
pub struct Provider {
    /// The domain.
    pub domain: String,
    /// How it signs.
    pub kind: KeyKind,
    rsa: Option<DkimSigner<DkimKey, Done>>,
    ed: Option<DkimSigner<DkimKey, Done>>,
    records: Vec<(String, String)>,
}

impl std::fmt::Debug for Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Provider")
            .field("domain", &self.domain)
            .field("kind", &self.kind)
            .finish()
    }
}

const SIGNED: [&str; 10] = [
    "From",
    "To",
    "Subject",
    "Date",
    "Message-ID",
    "In-Reply-To",
    "References",
    "MIME-Version",
    "Content-Type",
    "Content-Transfer-Encoding",
];

fn signer(key: DkimKey, domain: &str, selector: &str) -> DkimSigner<DkimKey, Done> {
    DkimSigner::from_key(key)
        .domain(domain.to_string())
        .selector(selector.to_string())
        .headers(SIGNED)
}

fn rsa_key(cache: &Path, domain: &str) -> Result<(Vec<u8>, Vec<u8>)> {
    let dir = cache.join("dkim-rsa2048");
    let priv_path = dir.join(format!("{domain}.key.der"));
    let pub_path = dir.join(format!("{domain}.pub.der"));
    if let (Ok(p), Ok(q)) = (std::fs::read(&priv_path), std::fs::read(&pub_path)) {
        return Ok((p, q));
    }
    let pair = DkimKeyPair::generate_rsa(2048).map_err(|e| anyhow::anyhow!("RSA keygen: {e}"))?;
    let (p, q) = pair.into_inner();
    std::fs::create_dir_all(&dir).with_context(|| dir.display().to_string())?;
    std::fs::write(&priv_path, &p)?;
    std::fs::write(&pub_path, &q)?;
    Ok((p, q))
}

impl Provider {
    /// A provider for `domain`, its RSA key cached under `cache`.
    pub fn new(domain: &str, kind: KeyKind, cache: &Path) -> Result<Self> {
        let b64 = base64::engine::general_purpose::STANDARD;
        let mut records = Vec::new();
        let mut rsa = None;
        let mut ed = None;
        if matches!(kind, KeyKind::Rsa2048 | KeyKind::Dual) {
            let (p, q) = rsa_key(cache, domain)?;
            let key = RsaKey::<Sha256>::from_key_der(rustls_pki_types::PrivateKeyDer::Pkcs1(
                rustls_pki_types::PrivatePkcs1KeyDer::from(p),
            ))
            .map_err(|e| anyhow::anyhow!("RSA key: {e}"))?;
            rsa = Some(signer(DkimKey::Rsa(key), domain, "s2048"));
            records.push((
                format!("s2048._domainkey.{domain}"),
                format!("v=DKIM1; k=rsa; p={}", b64.encode(q)),
            ));
        }
        if matches!(kind, KeyKind::Ed25519 | KeyKind::Dual) {
            let der = Ed25519Key::generate_pkcs8().map_err(|e| anyhow::anyhow!("{e}"))?;
            let key = Ed25519Key::from_pkcs8_der(&der).map_err(|e| anyhow::anyhow!("{e}"))?;
            records.push((
                format!("ed._domainkey.{domain}"),
                format!("v=DKIM1; k=ed25519; p={}", b64.encode(key.public_key())),
            ));
            ed = Some(signer(DkimKey::Ed25519(key), domain, "ed"));
        }
        Ok(Provider {
            domain: domain.to_string(),
            kind,
            rsa,
            ed,
            records,
        })
    }

    /// The DNS names and TXT records of its keys.
    pub fn records(&self) -> &[(String, String)] {
        &self.records
    }

    /// Adds this provider's key records to `pins`.
    pub fn pin(&self, pins: &mut PinnedRecords) -> Result<()> {
        for (name, record) in &self.records {
            pins.pin(name, record)?;
        }
        Ok(())
    }

    /// The DKIM-Signature header(s) for `raw`, to prepend.
    pub fn sign(&self, raw: &[u8]) -> Result<String> {
        let mut out = String::new();
        for s in [&self.ed, &self.rsa].into_iter().flatten() {
            let sig = s.sign(raw).map_err(|e| anyhow::anyhow!("DKIM sign: {e}"))?;
            out.push_str(&sig.to_header());
        }
        Ok(out)
    }
}

/// The providers of a corpus: 80% RSA-2048, 15% Ed25519, 5% both.
pub fn providers(count: usize, cache: &Path) -> Result<Vec<Provider>> {
    (0..count)
        .map(|i| {
            let kind = match i % 20 {
                0..=2 => KeyKind::Ed25519,
                3 => KeyKind::Dual,
                _ => KeyKind::Rsa2048,
            };
            Provider::new(&format!("mail{i}.provider.example"), kind, cache)
        })
        .collect()
}

/// Pins every provider's keys.
pub fn pins_of(providers: &[Provider]) -> Result<PinnedRecords> {
    let mut pins = PinnedRecords::new();
    for p in providers {
        p.pin(&mut pins)?;
    }
    Ok(pins)
}

/// One deposit and its secret parts, as a sender's SDK would make it.
#[derive(Debug, Clone)]
pub struct DepositSpec {
    /// The recipient's normalized address.
    pub email: String,
    /// Index of the recipient's provider.
    pub provider: usize,
    /// The claim key.
    pub secret: [u8; 32],
    /// The commitment salt.
    pub salt: [u8; 16],
    /// The deposit as stored.
    pub deposit: Deposit,
}

impl DepositSpec {
    /// The claim key address.
    pub fn claim_key(&self) -> Address {
        ClaimSecret::from_bytes(self.secret)
            .expect("valid")
            .address()
    }
}

/// Makes deposits for recipients spread over `providers` providers.
pub fn deposit_specs(
    rng: &mut StdRng,
    n: usize,
    providers: usize,
    sender: Address,
    watcher: Address,
    expiry: u64,
) -> Vec<DepositSpec> {
    (0..n)
        .map(|i| {
            let provider = rng.gen_range(0..providers);
            let email = format!("{}.{i}@mail{provider}.provider.example", first_name(rng));
            let secret = loop {
                let b: [u8; 32] = rng.gen();
                if ClaimSecret::from_bytes(b).is_ok() {
                    break b;
                }
            };
            let salt: [u8; 16] = rng.gen();
            let recipient = commitment(&email, &Salt::from_bytes(salt)).expect("valid email");
            DepositSpec {
                email,
                provider,
                secret,
                salt,
                deposit: Deposit {
                    sender,
                    token: Address::ZERO,
                    amount: AMOUNT,
                    expiry,
                    flags: 0,
                    watcher,
                    recipient,
                },
            }
        })
        .collect()
}

/// The CLAIM block the recipient's wallet signs for a deposit.
pub fn claim_block(id: EscrowId, spec: &DepositSpec, to: Address, deadline: u64) -> ClaimBlock {
    let secret = ClaimSecret::from_bytes(spec.secret).expect("valid");
    let max_fee = 2 * FEE;
    let auth = ClaimAuth {
        claim_key: secret.address(),
        deposit_hash: spec.deposit.hash(),
        to,
        max_fee,
        deadline,
    };
    ClaimBlock {
        chain_id: id.chain_id,
        escrow: id.escrow,
        claim_key: auth.claim_key,
        to,
        max_fee: Amount::from_units(max_fee, Asset::for_chain(id.chain_id)).expect("fits"),
        deadline,
        salt: Salt::from_bytes(spec.salt),
        signature: auth.sign_claim(id, &secret),
    }
}

const WORDS: &[&str] = &[
    "the",
    "money",
    "thanks",
    "for",
    "sending",
    "this",
    "I",
    "will",
    "claim",
    "it",
    "today",
    "and",
    "let",
    "you",
    "know",
    "when",
    "arrives",
    "wallet",
    "address",
    "below",
    "please",
    "our",
    "meeting",
    "next",
    "week",
    "about",
    "project",
    "budget",
    "invoice",
    "attached",
    "see",
    "notes",
    "from",
    "call",
    "we",
    "should",
    "also",
    "discuss",
    "timeline",
    "with",
    "team",
    "before",
    "Friday",
    "regards",
    "best",
    "cheers",
    "hope",
    "all",
    "is",
    "well",
    "family",
    "trip",
    "photos",
    "later",
    "dinner",
    "on",
    "Saturday",
    "sounds",
    "great",
    "reminder",
    "that",
    "rent",
    "due",
    "first",
    "month",
    "could",
    "forward",
    "receipt",
    "account",
    "statement",
    "quarter",
    "numbers",
    "look",
    "good",
    "update",
    "schedule",
    "moved",
    "Tuesday",
    "morning",
    "coffee",
    "office",
    "new",
    "policy",
    "starts",
    "soon",
];

const NAMES: &[&str] = &[
    "bob", "alice", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy", "mallory",
    "niaj", "olivia", "peggy", "rupert", "sybil", "trent", "victor", "walter", "yolanda",
];

fn first_name(rng: &mut StdRng) -> &'static str {
    NAMES[rng.gen_range(0..NAMES.len())]
}

fn sentence(rng: &mut StdRng) -> String {
    let n = rng.gen_range(6..18);
    let mut s = String::new();
    for i in 0..n {
        let w = WORDS[rng.gen_range(0..WORDS.len())];
        if i == 0 {
            let mut c = w.chars();
            let first = c.next().unwrap_or('x').to_ascii_uppercase();
            s.push(first);
            s.push_str(c.as_str());
        } else {
            s.push(' ');
            s.push_str(w);
        }
    }
    s.push('.');
    s
}

fn paragraph(rng: &mut StdRng) -> String {
    let n = rng.gen_range(2..6);
    (0..n).map(|_| sentence(rng)).collect::<Vec<_>>().join(" ")
}

/// What one claim mail looks like.
#[derive(Debug, Clone, Copy)]
pub struct MailShape {
    /// Target size in bytes (the result lands within a few percent).
    pub size: usize,
    /// Carry an image attachment.
    pub attachment: bool,
}

/// Draws mail shapes: log-uniform 5–50 KB, every 25th with an attachment.
pub fn shape(rng: &mut StdRng, i: usize, min: usize, max: usize) -> MailShape {
    let (lo, hi) = ((min as f64).ln(), (max as f64).ln());
    let size = rng.gen_range(lo..hi).exp() as usize;
    MailShape {
        size,
        attachment: i % 25 == 7,
    }
}

/// Builds and signs one claim mail; its Message-ID starts with `id_prefix`.
pub fn claim_mail(
    rng: &mut StdRng,
    provider: &Provider,
    from: &str,
    block: &ClaimBlock,
    shape: MailShape,
    date: i64,
    id_prefix: &str,
) -> Result<(String, Vec<u8>)> {
    let id_bytes: [u8; 12] = rng.gen();
    let message_id = format!(
        "{id_prefix}{}@{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(id_bytes),
        provider.domain
    );
    let parent = format!(
        "sm.notification.{}@sender.example.org",
        hex::encode(&id_bytes[..6])
    );
    let block_text = block.render();
    let name = from.split('.').next().unwrap_or("friend");
    let display = {
        let mut c = name.chars();
        let f = c.next().unwrap_or('x').to_ascii_uppercase();
        format!("{f}{} Example", c.as_str())
    };

    // The attachment (random bytes, as an image would be) and the budget for texts.
    let mut attachment = None;
    let mut budget = shape.size.saturating_sub(2_400); // headers, DKIM, boundaries
    if shape.attachment {
        let len = rng.gen_range(3_000..12_000).min(budget * 2 / 5);
        let mut bytes = vec![0u8; len];
        rng.fill(&mut bytes[..]);
        bytes[..8].copy_from_slice(b"\x89PNG\r\n\x1a\n");
        budget = budget.saturating_sub(len * 4 / 3 + 200);
        attachment = Some(bytes);
    }
    let budget = budget.saturating_sub(block_text.len() * 3);
    // Text part ~35%, HTML ~65% of what is left: a quoted thread of earlier mails.
    let mut text = format!(
        "Yes please, send it to my wallet.\n\n{}\n\n{block_text}\nOn Tue, 6 Jan 2026 at 09:12, Alice Sender <alice@sender.example.org> wrote:\n",
        paragraph(rng)
    );
    let mut quoted = String::new();
    while quoted.len() < budget * 35 / 100 {
        for line in textwrap(&paragraph(rng), 72) {
            quoted.push_str("> ");
            quoted.push_str(&line);
            quoted.push('\n');
        }
        quoted.push_str(">\n");
    }
    text.push_str(&quoted);
    let mut html = format!(
        "<div dir=\"ltr\"><div>Yes please, send it to my wallet.</div><div><br></div><div>{}</div>\
         <pre style=\"font-family:monospace\">{}</pre></div><br><div class=\"gmail_quote\">\
         <div dir=\"ltr\" class=\"gmail_attr\">On Tue, 6 Jan 2026 at 09:12, Alice Sender &lt;alice@sender.example.org&gt; wrote:<br></div>\
         <blockquote class=\"gmail_quote\" style=\"margin:0px 0px 0px 0.8ex;border-left:1px solid rgb(204,204,204);padding-left:1ex\">\n",
        paragraph(rng),
        block_text.replace('\n', "<br>\n")
    );
    while html.len() < budget * 65 / 100 {
        html.push_str(&format!(
            "<p style=\"margin:0 0 12px 0;font-family:Arial,Helvetica,sans-serif;font-size:14px;line-height:20px;color:#222222\">{}</p>\n",
            paragraph(rng)
        ));
    }
    html.push_str("</blockquote></div>\n");

    let alternative = MimePart::new(
        "multipart/alternative",
        vec![
            MimePart::new("text/plain", text),
            MimePart::new("text/html", html),
        ],
    );
    let mut parts = vec![
        alternative,
        MimePart::new("application/bismtp", block_text.into_bytes()).attachment("claim.bismtp"),
    ];
    if let Some(bytes) = attachment {
        parts.push(MimePart::new("image/png", bytes).attachment("photo.png"));
    }
    let raw = MessageBuilder::new()
        .message_id(message_id.clone())
        .from(MailAddress::new_address(Some(display), from.to_string()))
        .to(WATCHER_EMAIL)
        .subject("Re: You have been sent 1.5 QTUM with Spring Mail")
        .date(date)
        .in_reply_to(parent.clone())
        .references(MessageId::new(parent))
        .header("User-Agent", Raw::new("Mozilla/5.0 Thunderbird/128.5.0"))
        .body(MimePart::new("multipart/mixed", parts))
        .write_to_vec()
        .context("building a claim mail")?;
    let dkim = provider.sign(&raw)?;
    let mut out = String::new();
    out.push_str(&format!("Return-Path: <{from}>\r\n"));
    for hop in 0..3 {
        out.push_str(&format!(
            "Received: from mx{hop}.{d} (mx{hop}.{d} [192.0.2.{h}])\r\n\tby mx.broker.test (Postfix) with ESMTPS id {id:X}\r\n\tfor <{WATCHER_EMAIL}>; Tue, 6 Jan 2026 09:1{hop}:00 +0000\r\n",
            d = provider.domain,
            h = 10 + hop,
            id = rng.gen::<u64>()
        ));
    }
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(dkim.as_bytes());
    bytes.extend_from_slice(&raw);
    Ok((message_id, bytes))
}

fn textwrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    for w in text.split(' ') {
        if !line.is_empty() && line.len() + 1 + w.len() > width {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(w);
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
}

/// One generated claim.
#[derive(Debug, Clone)]
pub struct ClaimCase {
    /// Its deposit.
    pub spec: DepositSpec,
    /// The deposit's claim key address.
    pub claim_key: Address,
    /// The Message-ID (no brackets).
    pub message_id: String,
    /// The signed message as delivered.
    pub raw: Vec<u8>,
}

/// A whole corpus.
#[derive(Debug)]
pub struct Corpus {
    /// Chain id and escrow the claims are for.
    pub id: EscrowId,
    /// The claims.
    pub cases: Vec<ClaimCase>,
    /// DKIM keys of every provider.
    pub pins: PinnedRecords,
    /// How long generation took.
    pub generated_in: std::time::Duration,
}

/// Parameters of [`generate`].
#[derive(Debug, Clone)]
pub struct CorpusSpec {
    /// How many mails.
    pub mails: usize,
    /// RNG seed.
    pub seed: u64,
    /// How many provider domains.
    pub providers: usize,
    /// Smallest and largest size, bytes.
    pub min_size: usize,
    /// Largest size, bytes.
    pub max_size: usize,
    /// Where RSA keys are cached.
    pub cache: PathBuf,
    /// Chain time the claims are made at (deadline and expiry are after it).
    pub now: u64,
}

/// Builds claim mails for `specs` (already deposited), in parallel on all cores.
pub fn mails_for(
    id: EscrowId,
    specs: &[DepositSpec],
    providers: &[Provider],
    seed: u64,
    now: u64,
    min_size: usize,
    max_size: usize,
) -> Result<Vec<ClaimCase>> {
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .min(specs.len().max(1));
    let chunk = specs.len().div_ceil(threads.max(1)).max(1);
    std::thread::scope(|s| {
        let handles: Vec<_> = specs
            .chunks(chunk)
            .enumerate()
            .map(|(t, part)| {
                s.spawn(move || -> Result<Vec<ClaimCase>> {
                    let mut rng = StdRng::seed_from_u64(seed ^ (0x9e37_79b9 * (t as u64 + 1)));
                    let mut out = Vec::with_capacity(part.len());
                    for (k, spec) in part.iter().enumerate() {
                        let i = t * chunk + k;
                        let to = Address::from(rng.gen::<[u8; 20]>());
                        let block = claim_block(id, spec, to, now + 7 * 86_400);
                        let mut sh = shape(&mut rng, i, min_size, max_size);
                        // Headers and encodings make the result a little larger or
                        // smaller than asked: adjust until it is within bounds.
                        let (message_id, raw) = loop {
                            let (id, raw) = claim_mail(
                                &mut rng,
                                &providers[spec.provider],
                                &spec.email,
                                &block,
                                sh,
                                now as i64,
                                "CA+",
                            )?;
                            if raw.len() > max_size {
                                sh.size -= raw.len() - max_size + 256;
                            } else if raw.len() < min_size {
                                sh.size += min_size - raw.len() + 256;
                            } else {
                                break (id, raw);
                            }
                        };
                        out.push(ClaimCase {
                            claim_key: block.claim_key,
                            spec: spec.clone(),
                            message_id,
                            raw,
                        });
                    }
                    Ok(out)
                })
            })
            .collect();
        let mut all = Vec::with_capacity(specs.len());
        for h in handles {
            all.extend(h.join().expect("corpus thread")?);
        }
        Ok(all)
    })
}

/// Generates a corpus of claims for deposits that are not on any chain yet (the
/// caller puts them there, e.g. as logs of an [`crate::instant::InstantChain`]).
pub fn generate(
    spec: &CorpusSpec,
    id: EscrowId,
    sender: Address,
    watcher: Address,
) -> Result<Corpus> {
    let t0 = std::time::Instant::now();
    let providers = providers(spec.providers, &spec.cache)?;
    let pins = pins_of(&providers)?;
    let mut rng = StdRng::seed_from_u64(spec.seed);
    let specs = deposit_specs(
        &mut rng,
        spec.mails,
        spec.providers,
        sender,
        watcher,
        spec.now + 30 * 86_400,
    );
    let cases = mails_for(
        id,
        &specs,
        &providers,
        spec.seed,
        spec.now,
        spec.min_size,
        spec.max_size,
    )?;
    Ok(Corpus {
        id,
        cases,
        pins,
        generated_in: t0.elapsed(),
    })
}

/// Size statistics of a corpus: (min, median, max, mean) bytes, and how many carry
/// an attachment.
pub fn size_stats(cases: &[ClaimCase]) -> (usize, usize, usize, usize, usize) {
    let mut sizes: Vec<usize> = cases.iter().map(|c| c.raw.len()).collect();
    sizes.sort_unstable();
    let n = sizes.len().max(1);
    let with_attachment = cases
        .iter()
        .filter(|c| c.raw.windows(b"image/png".len()).any(|w| w == b"image/png"))
        .count();
    (
        *sizes.first().unwrap_or(&0),
        sizes[sizes.len() / 2],
        *sizes.last().unwrap_or(&0),
        sizes.iter().sum::<usize>() / n,
        with_attachment,
    )
}

/// A fixed key for the watcher (so journals made by one run fit the next).
pub fn watcher_key() -> ClaimSecret {
    ClaimSecret::from_bytes(B256::repeat_byte(0x57).0).expect("valid")
}
