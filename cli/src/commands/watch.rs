//! `springmail watch --config FILE`: the watcher service.

use crate::args::{GlobalArgs, WatchArgs};

/// Runs the watcher.
pub async fn run(_a: &WatchArgs, _g: &GlobalArgs) -> anyhow::Result<()> {
    anyhow::bail!("not yet")
}
