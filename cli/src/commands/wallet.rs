//! `springmail wallet new|import|show`.

use springmail_sdk::keys::ClaimSecret;
use springmail_sdk::keystore::{KdfParams, KeystoreFile};
use springmail_sdk::qtum::{self, QtumNetwork};

use crate::args::WalletCommand;
use crate::output::Summary;
use crate::report::input_error;
use crate::secrets;
use crate::Ctx;

/// Runs a wallet subcommand.
pub async fn run(ctx: &Ctx, cmd: WalletCommand) -> anyhow::Result<()> {
    let path = ctx.settings.keystore.clone();
    match cmd {
        WalletCommand::New { show_wif } => {
            refuse_existing(&path)?;
            let secret = ClaimSecret::random();
            let password = secrets::new_password()?;
            secrets::save_new(&secret, &path, &password, KdfParams::default())?;
            let file = KeystoreFile::load(&path)?;
            print(
                ctx,
                "Created a new key",
                &path,
                &file,
                show_wif.then_some(&secret),
            );
            Ok(())
        }
        WalletCommand::Import => {
            refuse_existing(&path)?;
            let secret = match springmail_sdk::env::var(secrets::PRIVATE_KEY_ENV)
                .filter(|v| !v.trim().is_empty())
            {
                Some(text) => secrets::parse_private_key(&text)?,
                None => secrets::prompt_key()?,
            };
            let password = secrets::new_password()?;
            secrets::save_new(&secret, &path, &password, KdfParams::default())?;
            let file = KeystoreFile::load(&path)?;
            print(ctx, "Imported the key", &path, &file, None);
            Ok(())
        }
        WalletCommand::Show { show_wif } => {
            let file = KeystoreFile::load(&path)?;
            let secret = if show_wif {
                Some(secrets::unlock(&path)?)
            } else {
                None
            };
            print(ctx, "Your key", &path, &file, secret.as_ref());
            Ok(())
        }
    }
}

fn refuse_existing(path: &std::path::Path) -> anyhow::Result<()> {
    if path.exists() {
        return Err(input_error(
            format!(
                "a keystore already exists at {}; refusing to overwrite it",
                path.display()
            ),
            "choose another file with --keystore, or move the old one away first",
        ));
    }
    Ok(())
}

fn print(
    ctx: &Ctx,
    title: &str,
    path: &std::path::Path,
    file: &KeystoreFile,
    secret: Option<&ClaimSecret>,
) {
    let network = ctx
        .settings
        .chain
        .chain_id
        .and_then(QtumNetwork::from_chain_id)
        .unwrap_or(QtumNetwork::Regtest);
    let mut s = Summary::new(title);
    s.row("keystore", "keystore", path.display().to_string());
    // Each chain gets the one form its key controls there: a base58 form of the EVM
    // account looked like a second Qtum address, and paying the wrong one loses money.
    s.row(
        "qtum_address",
        "on a Qtum node",
        qtum::encode_address(file.qtum_hash160(), network),
    );
    s.row(
        "evm_account",
        "on anvil / EVM",
        file.address().to_checksum(None),
    );
    if let Some(secret) = secret {
        s.row(
            "wif",
            "private key (WIF)",
            qtum::encode_wif(secret, network, true),
        );
    }
    s.data("network", network.name());
    let cli = match network {
        QtumNetwork::Mainnet => "qtum-cli",
        QtumNetwork::Testnet => "qtum-cli -testnet",
        QtumNetwork::Regtest => "qtum-cli -regtest",
    };
    let local = ctx.settings.chain.backend == crate::config::Backend::Qtum
        && ctx.settings.chain.signer == crate::config::QtumSignerKind::Local;
    if local {
        // springmail signs Qtum transactions with this key: nothing goes into a node.
        s.note(format!(
            "\nOn a Qtum node ({network}), receive and send with the Qtum address. springmail signs\n\
             Qtum transactions with this key itself ([chain] signer = \"local\"): fund the Qtum address;\n\
             the node needs -addrindex and no wallet, and never sees the key.\n\
             The keystore is encrypted with your password; keep a backup of the file and the password."
        ));
    } else {
        // qtumd v27 wallets are descriptor wallets: importprivkey fails there ("Only legacy
        // wallets are supported"); importdescriptors takes the WIF inside pkh(…).
        s.note(format!(
            "\nOn a Qtum node ({network}), receive and send with the Qtum address. springmail can sign\n\
             with this key itself: set [chain] signer = \"local\" (qtumd with -addrindex, no wallet).\n\
             Or let the node's wallet sign for it: import the key (WIF: `springmail wallet show --show-wif`;\n\
             a node without a wallet needs `{cli} createwallet NAME` first):\n\
             \x20 {cli} getdescriptorinfo \"pkh(WIF)\"      # prints its \"checksum\"\n\
             \x20 {cli} importdescriptors '[{{\"desc\":\"pkh(WIF)#CHECKSUM\",\"timestamp\":\"now\"}}]'\n\
             On anvil or another EVM chain (backend evm-rpc), use only the 0x account: the q… address\n\
             is not spendable there, and `springmail claim --to` refuses it.\n\
             The keystore is encrypted with your password; keep a backup of the file and the password."
        ));
    }
    s.print(ctx.json);
}
