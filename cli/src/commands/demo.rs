//! `springmail demo`.

use crate::args::DemoArgs;

/// Runs the demo.
pub async fn run(_a: &DemoArgs, _json: bool) -> anyhow::Result<()> {
    anyhow::bail!("not yet")
}
