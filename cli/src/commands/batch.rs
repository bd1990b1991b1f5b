//! `springmail send --csv FILE`: many recipients, a per-row result file, safe re-runs.
//!
//! Input columns: `email,amount[,watcher]` (a first line starting with `email` is a
//! header). Results go to `<FILE stem>.results.csv` beside it, one line per row:
//! `row,email,amount,watcher,claim_key,link,tx,expiry,notified,error,pending_tx`. The file holds
//! claim links, so it is written owner-only, atomically, after every change.
//!
//! No row is paid twice:
//! * a row with a transaction id is done and skipped (only a missing notification is retried);
//! * before a deposit is submitted, its claim key and link are written down. A row with a
//!   claim key but no transaction (the run stopped while it was in flight) is looked up on
//!   chain: a deposit under that key is recorded as done; no deposit means it never landed,
//!   and it is submitted again **with the same claim key**, which the contract accepts at
//!   most once (a second deposit under one key reverts with `ClaimKeyInUse`);
//! * the deposit's transaction id is written down (`pending_tx`) as soon as the node took
//!   it, before waiting for it to be mined. A re-run looks for it first: mined, it is
//!   recorded; still in the node's mempool, the row waits (nothing is sent again).

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Duration;

use alloy::primitives::B256;
use anyhow::Context;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use springmail_sdk::amount::{Amount, Asset};
use springmail_sdk::chain::Chain;
use springmail_sdk::client::{
    ClientError, DepositStatus, EscrowEvent, SendRequest, SpringMail, DEFAULT_WAIT,
};
use springmail_sdk::email::{self, Salt};
use springmail_sdk::keys::ClaimSecret;
use springmail_sdk::link::ClaimLink;
use springmail_sdk::Address;

use super::send::{check_delivery, connect_sender, notification_for, Plan};
use crate::args::SendArgs;
use crate::chain::{client, escrow};
use crate::csv;
use crate::notify::{self, Delivery};
use crate::output::Summary;
use crate::report::{failure, input_error};
use crate::Ctx;

/// Result file columns.
pub const RESULT_COLUMNS: [&str; 11] = [
    "row",
    "email",
    "amount",
    "watcher",
    "claim_key",
    "link",
    "tx",
    "expiry",
    "notified",
    "error",
    "pending_tx",
];

/// One input row.
#[derive(Debug, Clone)]
struct InRow {
    row: usize,
    line: usize,
    email: String,
    amount: String,
    watcher: String,
}

/// One result row (all text, as stored).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResultRow {
    /// 1-based data row.
    pub row: usize,
    /// As in the input.
    pub email: String,
    /// As in the input.
    pub amount: String,
    /// As in the input.
    pub watcher: String,
    /// Written before the deposit is submitted.
    pub claim_key: String,
    /// The claim link (secret).
    pub link: String,
    /// The deposit transaction, once known.
    pub tx: String,
    /// Expiry, unix seconds.
    pub expiry: String,
    /// Where the notification went (empty: not yet).
    pub notified: String,
    /// The last error for this row.
    pub error: String,
    /// The deposit transaction as broadcast, before it was seen mined.
    pub pending_tx: String,
}

impl ResultRow {
    fn fields(&self) -> [String; 11] {
        [
            self.row.to_string(),
            self.email.clone(),
            self.amount.clone(),
            self.watcher.clone(),
            self.claim_key.clone(),
            self.link.clone(),
            self.tx.clone(),
            self.expiry.clone(),
            self.notified.clone(),
            self.error.clone(),
            self.pending_tx.clone(),
        ]
    }
}

/// The result file path for an input file: `payroll.csv` → `payroll.results.csv`.
pub fn results_path(input: &Path) -> PathBuf {
    let stem = input
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("springmail");
    input.with_file_name(format!("{stem}.results.csv"))
}

/// Reads a result file (missing file: no rows).
pub fn load_results(path: &Path) -> anyhow::Result<BTreeMap<usize, ResultRow>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
        Err(e) => {
            return Err(e)
                .with_context(|| format!("cannot read the result file {}", path.display()))
        }
    };
    let mut out = BTreeMap::new();
    for rec in csv::parse(&text).with_context(|| format!("the result file {}", path.display()))? {
        if rec.fields.first().map(String::as_str) == Some("row") {
            continue;
        }
        let f = |i: usize| rec.fields.get(i).cloned().unwrap_or_default();
        let row: usize = f(0).parse().map_err(|_| {
            input_error(
                format!("the result file {} has a bad row number on line {}", path.display(), rec.line),
                "restore the file, or move it away only if you are sure none of its deposits were made",
            )
        })?;
        out.insert(
            row,
            ResultRow {
                row,
                email: f(1),
                amount: f(2),
                watcher: f(3),
                claim_key: f(4),
                link: f(5),
                tx: f(6),
                expiry: f(7),
                notified: f(8),
                error: f(9),
                pending_tx: f(10),
            },
        );
    }
    Ok(out)
}

fn save_results(path: &Path, rows: &BTreeMap<usize, ResultRow>) -> anyhow::Result<()> {
    let mut text = csv::line(&RESULT_COLUMNS);
    for r in rows.values() {
        text.push_str(&csv::line(&r.fields()));
    }
    notify::write_private(path, text.as_bytes())
        .with_context(|| format!("cannot write the result file {}", path.display()))
}

fn read_input(path: &Path) -> anyhow::Result<Vec<InRow>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut records = csv::parse(&text).with_context(|| format!("{}", path.display()))?;
    if records
        .first()
        .and_then(|r| r.fields.first())
        .is_some_and(|f| f.eq_ignore_ascii_case("email"))
    {
        records.remove(0);
    }
    let rows: Vec<InRow> = records
        .into_iter()
        .enumerate()
        .map(|(i, r)| InRow {
            row: i + 1,
            line: r.line,
            email: r.fields.first().cloned().unwrap_or_default(),
            amount: r.fields.get(1).cloned().unwrap_or_default(),
            watcher: r.fields.get(2).cloned().unwrap_or_default(),
        })
        .collect();
    if rows.is_empty() {
        return Err(input_error(
            format!("{} has no rows", path.display()),
            "write one line per recipient: email,amount[,watcher]",
        ));
    }
    Ok(rows)
}

/// A checked row, ready to pay.
struct Checked {
    input: InRow,
    email: String,
    amount: Amount,
    watcher: Option<Address>,
}

fn check_rows(rows: &[InRow], plan: &Plan, asset: &Asset) -> anyhow::Result<Vec<Checked>> {
    let mut bad = Vec::new();
    let mut out = Vec::new();
    for r in rows {
        let email = email::normalize(&r.email).map_err(|e| format!("email: {e}"));
        let amount = Amount::parse(&r.amount, asset)
            .map_err(|e| format!("amount: {e}"))
            .and_then(|a| {
                if a.units() == 0 {
                    Err("amount: zero".to_string())
                } else {
                    Ok(a)
                }
            });
        let watcher = if plan.link_only || r.watcher.is_empty() {
            Ok(plan.watcher.filter(|_| r.watcher.is_empty()))
        } else {
            crate::config::parse_watcher(&r.watcher)
                .map(Some)
                .map_err(|e| format!("watcher: {e}"))
        };
        let watcher = watcher.and_then(|w| {
            if w.is_some() && plan.watcher_email.is_none() {
                Err("watcher: email mode needs [watcher] email or --watcher-email".to_string())
            } else {
                Ok(w)
            }
        });
        match (email, amount, watcher) {
            (Ok(email), Ok(amount), Ok(watcher)) => out.push(Checked {
                input: r.clone(),
                email,
                amount,
                watcher,
            }),
            (e, a, w) => {
                let reasons: Vec<String> =
                    [e.err(), a.err(), w.err()].into_iter().flatten().collect();
                bad.push(format!(
                    "row {} (line {}): {}",
                    r.row,
                    r.line,
                    reasons.join(", ")
                ));
            }
        }
    }
    if !bad.is_empty() {
        let shown: Vec<String> = bad.iter().take(5).cloned().collect();
        let more = if bad.len() > 5 {
            format!(" (and {} more)", bad.len() - 5)
        } else {
            String::new()
        };
        return Err(input_error(
            format!(
                "{} bad row(s), nothing was paid: {}{more}",
                bad.len(),
                shown.join("; ")
            ),
            "fix the rows and run the same command again",
        ));
    }
    Ok(out)
}

/// Runs `send --csv FILE`.
pub async fn run(ctx: &Ctx, a: &SendArgs) -> anyhow::Result<()> {
    let settings = &ctx.settings;
    let input = a.csv.as_deref().expect("called with --csv");
    let rows = read_input(input)?;
    let plan = Plan::from_args(settings, a)?;
    let delivery = match (&a.out, a.no_mail) {
        (_, true) => Delivery::None,
        (Some(dir), _) => Delivery::File(dir.clone()),
        (None, _) => Delivery::choose(settings, None, false),
    };
    check_delivery(settings, &delivery)?;
    // With the chain known from the configuration, bad rows are refused before any key
    // is unlocked or node contacted.
    if let (None, Some(id)) = (plan.token, settings.chain.chain_id) {
        check_rows(&rows, &plan, &Asset::for_chain(id))?;
    }
    let results_file = results_path(input);
    let mut results = load_results(&results_file)?;
    let escrow = escrow(settings)?;
    let (chain, asset) = connect_sender(ctx, &plan).await?;
    let checked = check_rows(&rows, &plan, &asset)?;
    // A recorded row must still describe the same payment.
    for c in &checked {
        if let Some(r) = results.get(&c.input.row) {
            if !r.claim_key.is_empty()
                && (r.email != c.input.email
                    || r.amount != c.input.amount
                    || r.watcher != c.input.watcher)
            {
                return Err(input_error(
                    format!(
                        "row {} changed since the last run: {} records a deposit for {} {} but the input now says {} {}",
                        c.input.row,
                        results_file.display(),
                        r.email,
                        r.amount,
                        c.input.email,
                        c.input.amount
                    ),
                    "put new payments in new rows at the end (or in a new file); never edit rows that were sent",
                ));
            }
        }
    }
    let client = client(settings, chain.clone(), escrow);
    let bar = progress(checked.len() as u64);
    let (mut sent, mut skipped, mut recovered, mut failed) = (0usize, 0usize, 0usize, 0usize);
    for c in &checked {
        bar.set_message(c.email.clone());
        let entry = results.entry(c.input.row).or_insert_with(|| ResultRow {
            row: c.input.row,
            email: c.input.email.clone(),
            amount: c.input.amount.clone(),
            watcher: c.input.watcher.clone(),
            ..Default::default()
        });
        let outcome = pay_row(&client, chain.as_ref(), &plan, c, entry, &results_file).await;
        // pay_row saved intermediate states through a copy; record the final one here.
        match outcome {
            Ok(RowOutcome { kind, row }) => {
                *entry = row;
                entry.error.clear();
                match kind {
                    Paid::Sent => sent += 1,
                    Paid::AlreadyDone => skipped += 1,
                    Paid::Recovered => recovered += 1,
                }
                if entry.notified.is_empty() && delivery != Delivery::None {
                    let notified = notify_row(ctx, &plan, &delivery, c, entry).await;
                    match notified {
                        Ok(where_) => entry.notified = where_,
                        Err(e) => {
                            entry.error =
                                format!("notification: {}", crate::report::report(&e).line);
                            failed += 1;
                        }
                    }
                }
            }
            Err((row, e)) => {
                *entry = row;
                entry.error = crate::report::report(&e).line;
                failed += 1;
            }
        }
        save_results(&results_file, &results)?;
        bar.inc(1);
    }
    bar.finish_and_clear();
    let mut s = Summary::new(format!("{} row(s) from {}", checked.len(), input.display()));
    s.row("sent", "sent now", sent.to_string());
    s.row("skipped", "already done", skipped.to_string());
    if recovered > 0 {
        s.row("recovered", "found on chain", recovered.to_string());
    }
    s.row("failed", "failed", failed.to_string());
    s.row("results", "results", results_file.display().to_string());
    s.note("\nThe result file holds the claim links: keep it private. Run the same command again to retry failed rows.");
    s.print(ctx.json);
    if failed > 0 {
        return Err(failure(
            format!(
                "{failed} row(s) failed; their reasons are in {}",
                results_file.display()
            ),
            "fix the cause and run the same command again: rows already paid are skipped",
        ));
    }
    Ok(())
}

fn progress(len: u64) -> ProgressBar {
    let target = if std::io::stderr().is_terminal() {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    };
    let bar = ProgressBar::with_draw_target(Some(len), target);
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{bar:30}] {pos}/{len} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar
}

enum Paid {
    Sent,
    AlreadyDone,
    Recovered,
}

struct RowOutcome {
    kind: Paid,
    row: ResultRow,
}

type RowResult = Result<RowOutcome, (ResultRow, anyhow::Error)>;

/// Makes sure the row's deposit exists exactly once.
async fn pay_row(
    client: &SpringMail,
    chain: &dyn Chain,
    plan: &Plan,
    c: &Checked,
    entry: &ResultRow,
    results_file: &Path,
) -> RowResult {
    let mut row = entry.clone();
    if !row.tx.is_empty() {
        return Ok(RowOutcome {
            kind: Paid::AlreadyDone,
            row,
        });
    }
    let link = if row.link.is_empty() {
        // Write the key down before anything is submitted.
        let link = ClaimLink {
            chain_id: chain.chain_id(),
            escrow: client.escrow(),
            secret: ClaimSecret::random(),
            salt: Salt::random(),
        };
        row.claim_key = link.claim_key().to_checksum(None);
        row.link = link.to_bare();
        if let Err(e) = save_one(results_file, &row) {
            return Err((row, e));
        }
        link
    } else {
        match ClaimLink::parse(&row.link) {
            Ok(l) => l,
            Err(e) => {
                return Err((
                    row,
                    anyhow::Error::new(e).context("the recorded link is damaged"),
                ))
            }
        }
    };
    // A broadcast transaction the last run did not see mined: still in the mempool, the
    // row waits; sending again would pay twice (the second would revert and cost gas).
    if !row.pending_tx.is_empty() {
        if let Ok(tx) = row.pending_tx.parse::<B256>() {
            match pending_state(chain, tx).await {
                Ok(true) => {
                    return Err((
                        row,
                        failure(
                            format!("its deposit {tx} is still waiting to be mined"),
                            "run the same command again once it is mined; nothing was sent again",
                        ),
                    ))
                }
                Ok(false) => {}
                Err(e) => return Err((row, e)),
            }
        }
    }
    // A recorded key: is its deposit already on chain?
    match find_deposit_tx(client, link.claim_key()).await {
        Ok(Some((tx, expiry))) => {
            row.tx = tx.to_string();
            row.expiry = expiry.to_string();
            return Ok(RowOutcome {
                kind: Paid::Recovered,
                row,
            });
        }
        Ok(None) => {}
        Err(e) => return Err((row, e)),
    }
    match deposit_with_link(client, plan, c, &link, &mut row, results_file).await {
        Ok((tx, expiry)) => {
            row.tx = tx.to_string();
            row.expiry = expiry.to_string();
            Ok(RowOutcome {
                kind: Paid::Sent,
                row,
            })
        }
        Err(e) => {
            // A revert may mean an earlier submission under this key landed meanwhile.
            if let Ok(Some((tx, expiry))) = find_deposit_tx(client, link.claim_key()).await {
                row.tx = tx.to_string();
                row.expiry = expiry.to_string();
                return Ok(RowOutcome {
                    kind: Paid::Recovered,
                    row,
                });
            }
            Err((row, e))
        }
    }
}

/// True while the node holds `tx` unmined.
async fn pending_state(chain: &dyn Chain, tx: B256) -> anyhow::Result<bool> {
    if chain.receipt(tx).await?.is_some() {
        return Ok(false);
    }
    Ok(chain.is_pending(tx).await?)
}

/// Rewrites one row of the result file on disk (the others as they are there).
fn save_one(path: &Path, row: &ResultRow) -> anyhow::Result<()> {
    let mut rows = load_results(path)?;
    rows.insert(row.row, row.clone());
    save_results(path, &rows)
}

/// The transaction and expiry of the deposit made under `claim_key`, if one was ever made.
async fn find_deposit_tx(
    client: &SpringMail,
    claim_key: Address,
) -> anyhow::Result<Option<(B256, u64)>> {
    let status = client.status(claim_key).await?;
    if status == DepositStatus::Unknown {
        return Ok(None);
    }
    let from = match &status {
        DepositStatus::Open { block_number, .. } | DepositStatus::Expired { block_number, .. } => {
            *block_number
        }
        _ => client.start_block(),
    };
    let head = client.chain().head().await?.number;
    for (log, ev) in client.scan(from, head).await? {
        if let EscrowEvent::Deposited {
            claim_key: k,
            deposit,
        } = ev
        {
            if k == claim_key {
                return Ok(Some((log.tx_hash, deposit.expiry)));
            }
        }
    }
    Err(failure(
        format!(
            "claim key {claim_key} is {} on chain but its Deposited event was not found",
            status.name()
        ),
        "check [chain] start_block: it must not be after the escrow's deployment block",
    ))
}

/// Deposits under the link's (already recorded) key and salt, writing the transaction
/// id down as soon as the node took it.
async fn deposit_with_link(
    client: &SpringMail,
    plan: &Plan,
    c: &Checked,
    link: &ClaimLink,
    row: &mut ResultRow,
    results_file: &Path,
) -> anyhow::Result<(B256, u64)> {
    let req = SendRequest {
        email: c.email.clone(),
        amount: c.amount.clone(),
        token: plan.token,
        expires_in: Duration::from_secs(plan.expires_in),
        watcher: c.watcher,
        cancellable: plan.cancellable,
    };
    let prepared = client.prepare_deposit(req, link.clone()).await?;
    let tx_hash = match client.submit_deposit(&prepared).await {
        Ok(h) => h,
        Err(e @ ClientError::WouldRevert { .. }) => {
            return Err(failure(
                e.to_string(),
                "nothing was sent for this row; fix the cause and run the same command again",
            ))
        }
        Err(e) => return Err(e.into()),
    };
    row.pending_tx = tx_hash.to_string();
    save_one(results_file, row)?;
    match client
        .confirm_deposit(prepared, tx_hash, DEFAULT_WAIT)
        .await
    {
        Ok(ticket) => Ok((ticket.tx_hash, ticket.deposit.expiry)),
        Err(e @ ClientError::Reverted { .. }) => Err(failure(
            e.to_string(),
            "the transaction was mined but reverted: its gas was spent, no deposit was made; \
             fix the cause and run the same command again",
        )),
        Err(e) => Err(e.into()),
    }
}

async fn notify_row(
    ctx: &Ctx,
    plan: &Plan,
    delivery: &Delivery,
    c: &Checked,
    row: &ResultRow,
) -> anyhow::Result<String> {
    let link = ClaimLink::parse(&row.link)?;
    let expiry: u64 = row.expiry.parse().unwrap_or(0);
    let built = notification_for(
        &ctx.settings,
        plan,
        &link,
        &c.input.email,
        &c.amount,
        expiry,
        c.watcher,
    )?;
    match delivery {
        Delivery::File(dir) => {
            let name = format!("row-{:04}-{}.eml", c.input.row, file_safe(&c.email));
            let path = dir.join(name);
            notify::write_eml(&path, &built)?;
            Ok(format!("file:{}", path.display()))
        }
        Delivery::Smtp(url) => {
            notify::send_smtp(&ctx.settings, url, &built).await?;
            Ok("smtp".into())
        }
        Delivery::None => Ok(String::new()),
    }
}

fn file_safe(email: &str) -> String {
    email
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn result_files_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = results_path(&dir.path().join("pay.csv"));
        assert_eq!(path.file_name().unwrap(), "pay.results.csv");
        let mut rows = BTreeMap::new();
        rows.insert(
            1,
            ResultRow {
                row: 1,
                email: "bob@example.com".into(),
                amount: "1,5 QTUM".into(),
                claim_key: "0xab".into(),
                error: "said \"no\"".into(),
                ..Default::default()
            },
        );
        save_results(&path, &rows).unwrap();
        assert_eq!(load_results(&path).unwrap(), rows);
        assert!(load_results(&dir.path().join("none.csv"))
            .unwrap()
            .is_empty());
    }
}
