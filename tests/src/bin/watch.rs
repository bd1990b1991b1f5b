//! `springmail-e2e-watch CONFIG`: runs a watcher from its config file until killed
//! (what `springmail watch` does), for tests that need a process to SIGKILL.

#[tokio::main]
async fn main() {
    let Some(path) = std::env::args().nth(1) else {
        eprintln!("usage: springmail-e2e-watch CONFIG");
        std::process::exit(2);
    };
    if let Err(e) = springmail_watcher::config::run_from_file(
        std::path::Path::new(&path),
        std::future::pending::<()>(),
    )
    .await
    {
        eprintln!("springmail-e2e-watch: {e}");
        std::process::exit(1);
    }
}
