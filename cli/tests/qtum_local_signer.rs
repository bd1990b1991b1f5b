//! The `springmail` binary with `[chain] signer = "local"` against its own qtumd started
//! with `-disablewallet`: the keystore key (made by `springmail wallet new`) signs every
//! transaction; the node has no wallet to import anything into. The test starts the node
//! on a free loopback port in a temp datadir, mines 2,100 blocks to the key's address,
//! then deploys, sends 1.5 QTUM and claims it to a fresh P2PKH address, and stops the node
//! by its PID.
//!
//! qtumd and qtum-cli come from `$SPRINGMAIL_QTUMD` (qtum-cli beside it), then PATH, then
//! the tarball `../shared/qtum/bin/qtum-v27.1-linux-x86_64.tar.xz`
//! (`$SPRINGMAIL_QTUM_TARBALL`). Run:
//! `cargo test -p springmail-cli --test qtum_local_signer -- --ignored`.

mod common;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::Sandbox;

const TARBALL: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../shared/qtum/bin/qtum-v27.1-linux-x86_64.tar.xz"
);

/// qtumd and qtum-cli.
fn binaries(scratch: &Path) -> (PathBuf, PathBuf) {
    if let Ok(p) = std::env::var("SPRINGMAIL_QTUMD") {
        let d = PathBuf::from(p);
        let cli = d.with_file_name("qtum-cli");
        return (d, cli);
    }
    if let Ok(path) = std::env::var("PATH") {
        for dir in std::env::split_paths(&path) {
            if dir.join("qtumd").is_file() && dir.join("qtum-cli").is_file() {
                return (dir.join("qtumd"), dir.join("qtum-cli"));
            }
        }
    }
    let tarball = std::env::var("SPRINGMAIL_QTUM_TARBALL").unwrap_or_else(|_| TARBALL.into());
    let bin = scratch.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let st = Command::new("tar")
        .args(["-xJf", &tarball, "-C"])
        .arg(&bin)
        .status()
        .expect("tar runs");
    assert!(
        st.success(),
        "no qtumd: set SPRINGMAIL_QTUMD, put qtumd on PATH, or provide {tarball}"
    );
    (bin.join("qtumd"), bin.join("qtum-cli"))
}

/// A regtest qtumd without a wallet, stopped (by PID) when dropped.
struct Node {
    child: Child,
    cli: PathBuf,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Node {
    fn start() -> Node {
        let dir = tempfile::tempdir().unwrap();
        let (qtumd, cli) = binaries(dir.path());
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data).unwrap();
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(&qtumd)
            .args([
                "-regtest",
                "-disablewallet",
                "-server",
                // The flags README's "Against a Qtum node" gives, and loopback isolation.
                "-logevents",
                "-addrindex",
                "-rpcuser=u",
                "-rpcpassword=p",
                "-rpcbind=127.0.0.1",
                "-rpcallowip=127.0.0.1",
                "-listen=0",
                "-dnsseed=0",
                "-connect=0",
                "-discover=0",
            ])
            .arg(format!("-rpcport={port}"))
            .arg(format!("-datadir={}", data.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", qtumd.display()));
        let node = Node {
            child,
            cli,
            port,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while node.try_cli(&["getblockcount"]).is_none() {
            assert!(Instant::now() < deadline, "qtumd did not answer in 60 s");
            std::thread::sleep(Duration::from_millis(200));
        }
        node
    }

    fn try_cli(&self, args: &[&str]) -> Option<String> {
        let out = Command::new(&self.cli)
            .args([
                "-regtest",
                "-rpcuser=u",
                "-rpcpassword=p",
                "-rpcconnect=127.0.0.1",
            ])
            .arg(format!("-rpcport={}", self.port))
            .args(args)
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8(out.stdout).unwrap().trim().to_string())
    }

    fn cli(&self, args: &[&str]) -> String {
        self.try_cli(args)
            .unwrap_or_else(|| panic!("qtum-cli {args:?} failed"))
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn balance(&self, addr: &str) -> u64 {
        let out = self.cli(&[
            "getaddressbalance",
            &format!(r#"{{"addresses":["{addr}"]}}"#),
        ]);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        v["balance"].as_u64().expect("balance in satoshi")
    }

    /// Mines a block every 250 ms to `to` until the guard is dropped.
    fn miner(self: &Arc<Self>, to: &str) -> Miner {
        let stop = Arc::new(AtomicBool::new(false));
        let (flag, node, to) = (stop.clone(), self.clone(), to.to_string());
        let thread = std::thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                node.try_cli(&["generatetoaddress", "1", &to]);
                std::thread::sleep(Duration::from_millis(250));
            }
        });
        Miner {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        // This test's own child, by its PID.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Miner {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Miner {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[test]
#[ignore = "starts its own qtumd (-disablewallet): run with -- --ignored"]
fn keystore_key_signs_deploy_send_and_claim_on_a_walletless_qtumd() {
    let node = Arc::new(Node::start());
    let mut sb = Sandbox::new();
    sb.env("SPRINGMAIL_PASSWORD", "correct horse battery staple");
    sb.env("SPRINGMAIL_QTUM_RPC_PASSWORD", "p");
    let base = format!(
        "[chain]\nbackend = \"qtum\"\nurl = \"{}\"\nchain_id = 8890\nrpc_user = \"u\"\n\
         signer = \"local\"\n",
        node.url()
    );
    let wallet = "[wallet]\nkeystore = \"k.json\"\n";
    sb.write("springmail.toml", &format!("{base}{wallet}"));

    let made = sb.run(&["--json", "wallet", "new"]).json();
    let me = made["qtum_address"]
        .as_str()
        .unwrap_or_else(|| panic!("wallet new prints the Qtum address: {made}"))
        .to_string();
    let text = sb.run(&["wallet", "show"]).ok().to_string();
    assert!(!text.contains("importdescriptors"), "{text}");

    // Coins for the key; the node itself holds nothing.
    for _ in 0..21 {
        node.cli(&["generatetoaddress", "100", &me]);
    }
    assert!(node.try_cli(&["getwalletinfo"]).is_none(), "no wallet");

    let d = {
        let _m = node.miner(&me);
        sb.run(&["--json", "deploy"]).json()
    };
    let escrow = d["escrow"].as_str().expect("deploy prints the escrow");
    let block = d["block"].as_str().expect("deploy prints its block");
    sb.write(
        "springmail.toml",
        &format!(
            "{base}escrow = \"{escrow}\"\nstart_block = {block}\n{wallet}\
             [mail]\naddress = \"alice@example.org\"\nname = \"Alice\"\n"
        ),
    );

    let sent = {
        let _m = node.miner(&me);
        sb.run(&[
            "--json",
            "send",
            "--to",
            "bob@example.com",
            "--amount",
            "1.5 QTUM",
            "--link-only",
            "--out",
            "bob.eml",
        ])
        .json()
    };
    assert_eq!(sent["units"], "150000000", "{sent}");
    let link = sent["bare_link"].as_str().unwrap().to_string();

    // A fresh P2PKH address nobody holds a wallet for.
    let bob = springmail_sdk::qtum::qtum_address_of_secret(
        &springmail_sdk::keys::ClaimSecret::random(),
        springmail_sdk::qtum::QtumNetwork::Regtest,
    );
    assert_eq!(node.balance(&bob), 0);
    let claimed = {
        let _m = node.miner(&me);
        sb.run(&["--json", "claim", &link, "--to", &bob]).json()
    };
    assert_eq!(claimed["to"], bob.as_str(), "{claimed}");
    assert_eq!(node.balance(&bob), 150_000_000);
    let done = sb.run(&["--json", "status", &link]).json();
    assert_eq!(done["state"], "claimed", "{done}");
}
