//! `sdk/README.md` shows the example programs (`sdk/examples/*.rs`) in full. Cargo
//! builds the examples (`--all-targets`), the README's copies are the crate's doc-tests,
//! and this test keeps the two the same, with no hidden doc-test lines.

const README: &str = include_str!("../README.md");

const EXAMPLES: &[(&str, &str)] = &[
    (
        "send_and_claim.rs",
        include_str!("../examples/send_and_claim.rs"),
    ),
    (
        "send_and_claim_anvil.rs",
        include_str!("../examples/send_and_claim_anvil.rs"),
    ),
    ("status.rs", include_str!("../examples/status.rs")),
];

/// The ```rust blocks of a Markdown text: (info string, body).
fn rust_blocks(text: &str) -> Vec<(String, String)> {
    let mut blocks = Vec::new();
    let mut open: Option<(String, String)> = None;
    for line in text.lines() {
        match &mut open {
            None => {
                if let Some(info) = line.strip_prefix("```rust") {
                    open = Some((format!("rust{info}"), String::new()));
                }
            }
            Some(_) if line == "```" => blocks.push(open.take().unwrap()),
            Some((_, body)) => {
                body.push_str(line);
                body.push('\n');
            }
        }
    }
    assert!(open.is_none(), "an unclosed ```rust block in sdk/README.md");
    blocks
}

#[test]
fn readme_shows_every_example_in_full() {
    let blocks = rust_blocks(README);
    assert!(!blocks.is_empty(), "no ```rust block in sdk/README.md");
    for (name, source) in EXAMPLES {
        assert!(
            blocks.iter().any(|(_, body)| body == source),
            "sdk/README.md does not show examples/{name} as it is: copy the file into its ```rust block"
        );
    }
    for (info, body) in &blocks {
        assert!(
            EXAMPLES.iter().any(|(_, source)| source == body),
            "a ```{info} block in sdk/README.md is not one of sdk/examples/*.rs:\n{body}"
        );
        assert!(
            !body.lines().any(|l| l == "#" || l.starts_with("# ")),
            "a hidden doc-test line in sdk/README.md:\n{body}"
        );
    }
}

#[test]
fn every_example_file_is_in_the_readme_check() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    for entry in std::fs::read_dir(&dir).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        // gas_report is a measuring tool, not an example of using the SDK.
        if name.ends_with(".rs") && name != "gas_report.rs" {
            assert!(
                EXAMPLES.iter().any(|(n, _)| *n == name),
                "examples/{name} is not in this test's EXAMPLES (and so not checked against sdk/README.md)"
            );
        }
    }
}
