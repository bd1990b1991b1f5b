//! The claim page in a real browser: Debian's chromium driven through chromedriver
//! (WebDriver, fantoccini) against the dev stack. A watcher runs over the stack's IMAP
//! and SMTP with its HTTP service (the page and its API); deposits are made on anvil in
//! link mode; the browser opens their links like a recipient.
//!
//! Scenarios (one test, in order: the browser, the chain clock and the mailbox are shared):
//! 1. a scanner: every URL fetched with GET, and the page loaded with scripts running and
//!    no click → nothing changes (no journal row, the deposit still open);
//! 2. a wallet made in the page → claimed → the payout is on chain, and the phrase shown
//!    restores (in Rust: BIP39 + BIP32 at Qtum Electrum's path) the address paid;
//! 3. a pasted address → claimed; and again by keyboard only (Tab, Space, Enter);
//! 4. claimed, refunded, expired, tampered and unknown links each show their state;
//! 5. email mode: the page's CLAIM block, mailed from Bob's provider (DKIM) to the
//!    watcher's mailbox through the stack's SMTP, is paid by the watcher;
//!
//! and at the end, the server's request log holds no link data (no fragment, no `sm1.`,
//! nothing of a secret); all in a 375 × 812 (phone) window with no horizontal scrolling. Screenshots go to
//! the test's output directory (`target/tmp/claim-page/`).
//!
//! Needs the dev stack and `chromium` + `chromium-driver`, so a plain `cargo test` skips
//! it (the attribute's reason says so); scripts/test installs both and runs it with
//! `--include-ignored`.
//! Without chromedriver it fails, naming what to install: a browser test that cannot run
//! must not pass.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use alloy::primitives::{B256, U256};
use fantoccini::{Client, ClientBuilder, Locator};
use springmail_e2e::fresh_address;
use springmail_e2e::page::{PageWorld as World, AMOUNT, FEE};
use springmail_sdk::keys::ClaimSecret;

fn out_dir() -> PathBuf {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("claim-page");
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// chromedriver on a free port, killed on drop.
struct Driver {
    child: Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn start_driver() -> Driver {
    let bin = std::env::var("SPRINGMAIL_CHROMEDRIVER").unwrap_or_else(|_| "chromedriver".into());
    let port = free_port();
    let child = match Command::new(&bin)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => panic!(
            "cannot start {bin} ({e}): install chromium and chromium-driver \
             (scripts/test does), or point SPRINGMAIL_CHROMEDRIVER at chromedriver"
        ),
    };
    let driver = Driver {
        child,
        url: format!("http://127.0.0.1:{port}"),
    };
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return driver;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("chromedriver did not listen on port {port}");
}

async fn browser(driver: &Driver) -> Client {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({
            "binary": std::env::var("SPRINGMAIL_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into()),
            "args": ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                     "--window-size=375,812", "--hide-scrollbars"],
        }),
    );
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    let c = ClientBuilder::new(connector)
        .capabilities(caps)
        .connect(&driver.url)
        .await
        .expect("a chromium session");
    c.set_window_size(375, 812).await.unwrap();
    c
}

/// Opens `url` as a fresh page load (a link that differs only after `#` would otherwise
/// be a same-document navigation).
async fn open(c: &Client, url: &str) {
    c.goto("about:blank").await.unwrap();
    c.goto(url).await.unwrap();
}

/// Types `text` on the keyboard, into whatever has the focus (WebDriver key actions).
async fn keys(c: &Client, text: &str) {
    use fantoccini::actions::{InputSource, KeyAction, KeyActions};
    let mut a = KeyActions::new("keyboard".into());
    for ch in text.chars() {
        a = a
            .then(KeyAction::Down { value: ch })
            .then(KeyAction::Up { value: ch });
    }
    c.perform_actions(a).await.unwrap();
}

/// The id of the focused element.
async fn focused(c: &Client) -> String {
    c.execute(
        "return document.activeElement ? document.activeElement.id : ''",
        vec![],
    )
    .await
    .unwrap()
    .as_str()
    .unwrap_or("")
    .to_string()
}

async fn body_state(c: &Client) -> String {
    c.execute("return document.body.dataset.state || ''", vec![])
        .await
        .unwrap()
        .as_str()
        .unwrap_or("")
        .to_string()
}

async fn wait_state(c: &Client, want: &str, secs: u64) {
    for _ in 0..secs * 5 {
        if body_state(c).await == want {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let status = text(c, "status").await;
    panic!(
        "the page did not reach state {want:?} in {secs}s; it shows {:?}: {status}",
        body_state(c).await
    );
}

async fn text(c: &Client, id: &str) -> String {
    c.find(Locator::Id(id)).await.unwrap().text().await.unwrap()
}

async fn click(c: &Client, id: &str) {
    c.find(Locator::Id(id))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

async fn shot(c: &Client, name: &str) {
    let png = c.screenshot().await.unwrap();
    std::fs::write(out_dir().join(format!("{name}.png")), png).unwrap();
}

async fn fits_the_phone(c: &Client) {
    let fits = c
        .execute(
            "return document.documentElement.scrollWidth <= window.innerWidth",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(
        fits,
        serde_json::Value::Bool(true),
        "the page scrolls sideways at 375 px"
    );
}

/// BIP39 seed → BIP32 at `path` → secret; the Qtum Electrum restore, done in Rust.
fn restore(phrase: &str, path: &str) -> ClaimSecret {
    use hmac::{Hmac, Mac};
    type H = Hmac<sha2::Sha512>;
    let mut seed = [0u8; 64];
    pbkdf2::pbkdf2::<H>(phrase.as_bytes(), b"mnemonic", 2048, &mut seed).unwrap();
    let mut mac = H::new_from_slice(b"Bitcoin seed").unwrap();
    mac.update(&seed);
    let i = mac.finalize().into_bytes();
    let mut key = secp256k1::SecretKey::from_byte_array(i[..32].try_into().unwrap()).unwrap();
    let mut chain = i[32..].to_vec();
    for step in path.trim_start_matches("m/").split('/') {
        let hardened = step.ends_with('\'');
        let n: u32 = step.trim_end_matches('\'').parse().unwrap();
        let index = if hardened { n | 0x8000_0000 } else { n };
        let mut mac = H::new_from_slice(&chain).unwrap();
        if hardened {
            mac.update(&[0]);
            mac.update(&key.secret_bytes());
        } else {
            let pk = secp256k1::PublicKey::from_secret_key_global(&key);
            mac.update(&pk.serialize());
        }
        mac.update(&index.to_be_bytes());
        let i = mac.finalize().into_bytes();
        let tweak = secp256k1::Scalar::from_be_bytes(i[..32].try_into().unwrap()).unwrap();
        key = key.add_tweak(&tweak).unwrap();
        chain = i[32..].to_vec();
    }
    ClaimSecret::from_bytes(key.secret_bytes()).unwrap()
}

async fn http_get(addr: SocketAddr, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    out
}

#[tokio::test]
#[ignore = "needs the dev stack (dovecot, SMTP, anvil) and chromium + chromium-driver: run scripts/test"]
async fn a_recipient_claims_in_chromium_and_scanners_change_nothing() {
    let driver = start_driver().await;
    let w = World::new().await;
    let c = browser(&driver).await;
    let chain_id = w.stack.chain_id;

    // 1. A scanner: GET every URL, then run the page's scripts without a click.
    let t = w.deposit(86_400, false).await;
    let key = t.link.claim_key();
    let before = w.stored(key).await;
    let url = w.url(&t);
    for path in [
        "/claim".to_string(),
        "/claim/claim.js".into(),
        "/claim/claim.css".into(),
        format!("/api/deposits/{key}"),
    ] {
        let res = http_get(w.http, &path).await;
        assert!(res.starts_with("HTTP/1.1 200"), "{path}: {res:.200}");
        assert!(
            !res.to_ascii_lowercase().contains("set-cookie"),
            "{path} sets a cookie"
        );
    }
    open(&c, &url).await;
    wait_state(&c, "open", 20).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        w.stored(key).await,
        before,
        "loading the page changed the deposit"
    );
    assert_eq!(w.journal_rows(), 0, "loading the page recorded a claim");
    assert!(
        text(&c, "amount").await.contains("1.5 QTUM"),
        "{}",
        text(&c, "amount").await
    );
    assert_eq!(
        text(&c, "from").await,
        format!(
            "{} (as named in the mail)",
            springmail_e2e::page::SENDER_NAME
        ),
        "the page names the sender as the notification's link does"
    );
    fits_the_phone(&c).await;
    shot(&c, "1-open").await;

    // 2. A wallet made in the page; the claim needs the "written down" confirmation.
    click(&c, "dest-wallet").await;
    click(&c, "make-wallet").await;
    let words: Vec<String> = {
        let mut v = Vec::new();
        for li in c.find_all(Locator::Css("#phrase li")).await.unwrap() {
            v.push(li.text().await.unwrap());
        }
        v
    };
    assert_eq!(words.len(), 12, "{words:?}");
    let shown = text(&c, "wallet-address").await;
    let path = text(&c, "path").await;
    assert_eq!(path, "m/44'/1'/0'/0/0");
    let claim_button = c.find(Locator::Id("claim")).await.unwrap();
    assert!(
        claim_button.attr("disabled").await.unwrap().is_some(),
        "claim enabled before the phrase was confirmed"
    );
    fits_the_phone(&c).await;
    shot(&c, "2-wallet").await;
    click(&c, "saved").await;
    click(&c, "claim").await;
    wait_state(&c, "claimed", 90).await;
    shot(&c, "3-claimed").await;
    let restored = restore(&words.join(" "), &path);
    let payee = springmail_sdk::qtum::qtum_sender_of_secret(&restored);
    assert_eq!(springmail_sdk::qtum::format_address(chain_id, payee), shown);
    assert_eq!(w.balance(payee).await, U256::from(AMOUNT - FEE));
    assert_eq!(w.stored(key).await, B256::ZERO);
    assert!(text(&c, "tx").await.starts_with("0x"));

    // 4a. Reloading a claimed link shows it as claimed.
    open(&c, &url).await;
    wait_state(&c, "claimed", 20).await;

    // 3. A pasted address; a wrong one is refused in the page first.
    let t2 = w.deposit(86_400, false).await;
    let to = fresh_address();
    open(&c, &w.url(&t2)).await;
    wait_state(&c, "open", 20).await;
    click(&c, "dest-address").await;
    let input = c.find(Locator::Id("address")).await.unwrap();
    input
        .send_keys("QVJx8rmfNRjDWZuECdJ7Wo7SR4FGFYKZWr")
        .await
        .unwrap();
    assert!(
        !text(&c, "address-error").await.is_empty(),
        "a mainnet address is refused on regtest"
    );
    input.clear().await.unwrap();
    input
        .send_keys(&springmail_sdk::qtum::format_address(chain_id, to))
        .await
        .unwrap();
    assert_eq!(text(&c, "address-error").await, "");
    shot(&c, "4-address").await;
    click(&c, "claim").await;
    wait_state(&c, "claimed", 90).await;
    assert_eq!(w.balance(to).await, U256::from(AMOUNT - FEE));

    // 3b. By keyboard only: Tab to the choice, Space, Tab to the address, type, Tab to
    // Claim, Enter.
    let t2k = w.deposit(86_400, false).await;
    let to_k = fresh_address();
    open(&c, &w.url(&t2k)).await;
    wait_state(&c, "open", 20).await;
    keys(&c, "\u{e004}").await;
    assert_eq!(focused(&c).await, "dest-address");
    keys(&c, "\u{e00d}\u{e004}").await;
    assert_eq!(focused(&c).await, "address");
    keys(&c, &springmail_sdk::qtum::format_address(chain_id, to_k)).await;
    keys(&c, "\u{e004}").await;
    assert_eq!(focused(&c).await, "claim");
    keys(&c, "\u{e007}").await;
    wait_state(&c, "claimed", 90).await;
    assert_eq!(w.balance(to_k).await, U256::from(AMOUNT - FEE));

    // 4b. Tampered and unknown links.
    let mut bad = url.clone();
    bad.pop();
    bad.push('#');
    open(&c, &bad).await;
    wait_state(&c, "tampered", 10).await;
    shot(&c, "5-tampered").await;
    let unknown = w.sender.new_link();
    open(
        &c,
        &unknown
            .to_url(&w.http.to_string())
            .replacen("https://", "http://", 1),
    )
    .await;
    wait_state(&c, "unknown", 20).await;

    // 4c. Refunded.
    let t3 = w.deposit(86_400, true).await;
    w.sender.refund(t3.link.claim_key()).await.unwrap();
    open(&c, &w.url(&t3)).await;
    wait_state(&c, "refunded", 20).await;
    shot(&c, "6-refunded").await;

    // 4d. Expired (the chain's clock moved past the expiry, by seconds: anvil is shared).
    let t4 = w.deposit(5, false).await;
    w.mine_after(10).await;
    open(&c, &w.url(&t4)).await;
    wait_state(&c, "expired", 20).await;
    fits_the_phone(&c).await;
    shot(&c, "7-expired").await;
    assert_ne!(
        w.stored(t4.link.claim_key()).await,
        B256::ZERO,
        "an expired deposit stays until refunded"
    );

    // 5. Email mode: the page makes the CLAIM block and the mailto reply; Bob's provider
    // (example.com, DKIM) sends it to the watcher's mailbox, and the watcher pays.
    let t5 = w.deposit_to(86_400, false, Some(w.watcher)).await;
    let bob_wallet = fresh_address();
    open(&c, &w.url(&t5)).await;
    wait_state(&c, "open", 20).await;
    let input = c.find(Locator::Id("email-address")).await.unwrap();
    input
        .send_keys(&springmail_sdk::qtum::format_address(chain_id, bob_wallet))
        .await
        .unwrap();
    click(&c, "email-make").await;
    let block_text = text(&c, "claim-block").await;
    let mailto = c
        .find(Locator::Id("mailto"))
        .await
        .unwrap()
        .attr("href")
        .await
        .unwrap()
        .unwrap();
    assert!(
        mailto.starts_with("mailto:watcher%40broker.test?"),
        "{mailto}"
    );
    fits_the_phone(&c).await;
    shot(&c, "8-email").await;
    let block = springmail_sdk::markup::ClaimBlock::parse(&block_text)
        .expect("the page's CLAIM block parses");
    assert_eq!(block.to, bob_wallet);
    assert_eq!(block.claim_key, t5.link.claim_key());
    let built = springmail_sdk::mail::claim_mail(&springmail_sdk::mail::ClaimMail {
        from: "bob@example.com",
        watcher_email: springmail_e2e::watcher::WATCHER_MAILBOX,
        block: &block,
        in_reply_to: None,
        subject: None,
        date: None,
    })
    .unwrap();
    w.stack
        .smtp_send(
            "bob@example.com",
            springmail_e2e::watcher::WATCHER_MAILBOX,
            &w.example.sign(&built.bytes),
        )
        .await
        .unwrap();
    let mut paid = false;
    for _ in 0..300 {
        if w.stored(t5.link.claim_key()).await == B256::ZERO {
            paid = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(paid, "the watcher did not pay the page's email claim");
    assert_eq!(w.balance(bob_wallet).await, U256::from(AMOUNT - FEE));
    // The page that made the block follows the claim until it is paid.
    wait_state(&c, "claimed", 30).await;
    shot(&c, "9-email-claimed").await;

    // No link data ever reached the server: its request log has no fragment, no `sm1.`
    // and nothing of any link's secret.
    let log = w.request_log.lock().unwrap().clone();
    assert!(log.iter().any(|l| l == "GET /claim"), "{log:?}");
    for t in [&t, &t2, &t2k, &t3, &t4, &t5] {
        let bare = t.link.to_bare();
        let secret_hex = hex::encode(t.link.secret.expose_bytes());
        for line in &log {
            assert!(
                !line.contains('#') && !line.contains("sm1.") && !line.contains(&bare[4..20]),
                "the server saw link data: {line}"
            );
            assert!(!line.to_lowercase().contains(&secret_hex[..16]), "{line}");
        }
    }

    c.close().await.unwrap();
    eprintln!("screenshots in {}", out_dir().display());
}
