//! `springmail deploy`: the EmailEscrow contract, from your key.

use springmail_sdk::client::SpringMail;

use crate::chain::{connect_signing, show};
use crate::output::Summary;
use crate::Ctx;

/// Deploys the escrow and prints its address and block.
pub async fn run(ctx: &Ctx) -> anyhow::Result<()> {
    let chain = connect_signing(&ctx.settings, None).await?;
    let chain_id = chain.chain_id();
    let client = SpringMail::deploy(chain.clone()).await?;
    let mut s = Summary::new("Deployed the EmailEscrow contract");
    s.row("escrow", "escrow", client.escrow().to_checksum(None));
    s.row("block", "block", client.start_block().to_string());
    s.row("chain_id", "chain", chain_id.to_string());
    s.row(
        "deployer",
        "from",
        show(&ctx.settings, chain_id, chain.account()),
    );
    s.note(format!(
        "\nAdd to springmail.toml:\n\n[chain]\nchain_id = {chain_id}\nescrow = \"{}\"\nstart_block = {}",
        client.escrow().to_checksum(None),
        client.start_block()
    ));
    s.print(ctx.json);
    Ok(())
}
