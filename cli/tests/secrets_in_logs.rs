//! `springmail demo` with every log at TRACE: nothing it prints (stdout) or logs
//! (stderr) contains a private key, a claim key's secret, a salt, a claim link's secret
//! part or a DKIM private key, whole or in part (any 16 hex digits, any 16 characters of
//! their base64 forms); and the logs never name a recipient's full address (what the
//! demo prints for its user may: it tells the story of who got paid).
//!
//! The demo makes its keys at random; a hidden flag, `--dump-secrets FILE`, writes them
//! out after the run so this test knows what to look for.

mod common;

use base64::Engine;
use common::Sandbox;

/// Every `n`-character window of `s`.
fn windows(s: &str, n: usize) -> Vec<String> {
    let chars: Vec<char> = s.chars().collect();
    if chars.len() < n {
        return vec![s.to_string()];
    }
    chars.windows(n).map(|w| w.iter().collect()).collect()
}

/// The forms a secret could leak in: hex windows and base64 windows.
fn needles(bytes: &[u8]) -> Vec<String> {
    let mut out = windows(&hex::encode(bytes), 16);
    for engine in [
        &base64::engine::general_purpose::STANDARD,
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
    ] {
        out.extend(windows(&engine.encode(bytes), 16));
    }
    out
}

/// Which needles occur in stdout or stderr (hex ones case-insensitively).
fn find_leaks(needles: &[(String, String)], stdout: &str, stderr: &str) -> Vec<String> {
    let mut leaks = Vec::new();
    for (kind, needle) in needles {
        let hexy = needle.chars().all(|c| c.is_ascii_hexdigit());
        for (stream, text) in [("stdout", stdout), ("stderr", stderr)] {
            let found = if hexy {
                text.to_ascii_lowercase()
                    .contains(&needle.to_ascii_lowercase())
            } else {
                text.contains(needle.as_str())
            };
            if found {
                leaks.push(format!("{kind} in {stream}: {needle}"));
            }
        }
    }
    leaks.sort();
    leaks.dedup();
    leaks
}

fn strings(v: &serde_json::Value, key: &str) -> Vec<String> {
    v[key]
        .as_array()
        .unwrap_or_else(|| panic!("{key} in the dump"))
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect()
}

#[test]
fn the_demo_at_trace_level_leaks_no_secret_and_logs_no_recipient_address() {
    let sb = Sandbox::new();
    let dump = sb.file("secrets.json");
    let run = sb.run_env(
        &["-vv", "demo", "--dump-secrets", dump.to_str().unwrap()],
        &[("RUST_LOG", "trace"), ("RUST_BACKTRACE", "0")],
    );
    run.ok();
    // Logging was on at every level, and the watcher's own events are in it.
    assert!(
        run.stderr.contains("DEBUG") && run.stderr.contains("claim paid"),
        "logging at TRACE was not on:\n{}",
        run.stderr
    );
    let secrets: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&dump).unwrap()).unwrap();

    let mut looked_for: Vec<(String, String)> = Vec::new();
    for kind in ["private_keys", "claim_keys", "salts"] {
        for s in strings(&secrets, kind) {
            let bytes = hex::decode(&s).unwrap();
            for n in needles(&bytes) {
                looked_for.push((kind.to_string(), n));
            }
        }
    }
    // A link's payload: chain id (8) ‖ escrow (20) ‖ claim key (32) ‖ salt (16); from
    // the 38th base64 character on, it is all secret.
    for link in strings(&secrets, "links") {
        let payload = link.strip_prefix("sm1.").expect("a bare link");
        for n in windows(&payload[38..], 16) {
            looked_for.push(("link".into(), n));
        }
    }
    for pem in strings(&secrets, "dkim_keys") {
        let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        let der = base64::engine::general_purpose::STANDARD
            .decode(&body)
            .unwrap();
        for n in windows(&body, 16)
            .into_iter()
            .chain(needles(&der[der.len() - 32..]))
        {
            looked_for.push(("dkim key".into(), n));
        }
    }
    assert!(looked_for.len() > 500, "the dump names the secrets");

    let leaks = find_leaks(&looked_for, &run.stdout, &run.stderr);
    assert!(leaks.is_empty(), "secrets leaked:\n{}", leaks.join("\n"));
    // The finder finds: a planted fragment of a secret is reported.
    let planted = format!("tx 0x{} done", looked_for[0].1);
    assert_eq!(find_leaks(&looked_for[..1], "", &planted).len(), 1);

    let stdout = run.stdout.to_ascii_lowercase();
    let stderr = run.stderr.to_ascii_lowercase();
    for r in strings(&secrets, "recipients") {
        let r = r.to_ascii_lowercase();
        assert!(
            !stderr.contains(&r),
            "the logs name the recipient {r}:\n{}",
            run.stderr
        );
        assert!(stdout.contains(&r), "the demo tells its user about {r}");
    }
    eprintln!(
        "checked {} needles against {} bytes of output and {} bytes of TRACE logs",
        looked_for.len(),
        run.stdout.len(),
        run.stderr.len()
    );
}
