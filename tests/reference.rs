//! The generated documentation is what the code says: docs/configuration.md's key table and the
//! three manual pages in contrib/man/ are regenerated from the key table and both `--help`
//! texts and compared with the checked-in copies. `LB_FEEDBACK_BLESS=1 cargo test --test
//! reference` rewrites them.

use std::path::Path;

use lb_feedback::config::reference;

fn check(path: &str, expected: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    if std::env::var_os("LB_FEEDBACK_BLESS").is_some() {
        std::fs::write(&path, expected).unwrap();
        return;
    }
    let actual = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        actual == expected,
        "{} is stale: run `LB_FEEDBACK_BLESS=1 cargo test --test reference`",
        path.display()
    );
}

#[test]
fn the_configuration_reference_lists_the_key_table() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/configuration.md");
    let text = std::fs::read_to_string(&path).unwrap();
    let updated = reference::replace_table(&text, &reference::markdown_table())
        .expect("docs/configuration.md has the generated table's markers");
    check("docs/configuration.md", &updated);
}

#[test]
fn the_manual_pages_are_generated_from_the_help_and_the_key_table() {
    check(
        "contrib/man/lb-feedback.8",
        &reference::man_from_help("lb-feedback", &lb_feedback::cli::help()),
    );
    check(
        "contrib/man/lb-feedback-service.8",
        &reference::man_from_help("lb-feedback-service", &lb_feedback::service::args::help()),
    );
    check("contrib/man/lb-feedback.json.5", &reference::man_json());
}

/// Every key in the reference is one the file accepts: each is laid over the defaults (as
/// `null`, which every key either takes or rejects for its type, never as unknown), and a
/// name not in the table is refused as unknown. That the file accepts nothing else is
/// checked against serde's own list beside the JSON layer (config::file's tests).
#[test]
fn the_reference_lists_exactly_the_keys_the_file_accepts() {
    use lb_feedback::config::Config;
    let dir = std::env::temp_dir();
    for name in reference::names() {
        let json = match name.split_once('.') {
            Some((object, key)) => format!("{{\"{object}\": {{\"{key}\": null}}}}"),
            None => format!("{{\"{name}\": null}}"),
        };
        let mut config = Config::default();
        if let Err(err) = config.apply_json(&json, &dir.join("c.json")) {
            assert!(!err.to_string().contains("unknown key"), "{name}: {err}");
        }
    }
    let mut config = Config::default();
    let err = config
        .apply_json("{\"not_a_key\": 1}", &dir.join("c.json"))
        .unwrap_err();
    assert!(
        err.to_string().contains("unknown key \"not_a_key\""),
        "{err}"
    );
}
