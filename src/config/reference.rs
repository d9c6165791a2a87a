//! The configuration reference and the manual pages, generated from the key table and the
//! `--help` texts, so neither can disagree with what the code accepts. `tests/reference.rs`
//! fails when the checked-in copies are stale and rewrites them with `LB_FEEDBACK_BLESS=1`.

use super::keys::{SETTINGS, Setting};

/// The line after which docs/configuration.md holds the generated key table.
pub const TABLE_START: &str = "<!-- keys: generated from src/config/keys.rs by `LB_FEEDBACK_BLESS=1 cargo test --test reference`; do not edit below -->";
/// The line that ends it.
pub const TABLE_END: &str = "<!-- keys: end of the generated table -->";

/// Markdown for one cell: a pipe would end it.
fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

fn code_or_blank(text: Option<&str>, prefix: &str) -> String {
    text.map(|t| format!("`{prefix}{t}`"))
        .unwrap_or_else(|| "(file only)".to_string())
}

/// The key table as Markdown, between [`TABLE_START`] and [`TABLE_END`].
pub fn markdown_table() -> String {
    let mut out = format!(
        "{TABLE_START}\n\n| key | default | allowed | environment | flag | meaning |\n|---|---|---|---|---|---|\n"
    );
    for s in SETTINGS {
        out.push_str(&format!(
            "| `{}` | {} | {} | {} | {} | {} |\n",
            s.name,
            cell(s.default),
            cell(s.allowed),
            code_or_blank(s.env, ""),
            code_or_blank(s.flag, "--"),
            cell(&s.help.replace('\n', " ")),
        ));
    }
    out.push('\n');
    out.push_str(TABLE_END);
    out
}

/// `text` with `start`..`end` (both lines kept) replaced by `table`; `None` without markers.
pub fn replace_table(text: &str, table: &str) -> Option<String> {
    let start = text.find(TABLE_START)?;
    let end = text[start..].find(TABLE_END)? + start + TABLE_END.len();
    Some(format!("{}{table}{}", &text[..start], &text[end..]))
}

/// roff for literal text: backslashes, leading dots and quotes, and minus signs escaped.
fn roff(text: &str) -> String {
    let text = text.replace('\\', "\\e").replace('-', "\\-");
    match text.chars().next() {
        Some('.' | '\'') => format!("\\&{text}"),
        _ => text,
    }
}

const DATE: &str = "2026-12";

fn header(name: &str, section: u8, title: &str) -> String {
    format!(
        ".\\\" Generated from the key table and --help by tests/reference.rs; do not edit.\n.TH {} {section} {DATE} \"lb-feedback {}\" \"{title}\"\n",
        name.to_uppercase().replace('-', "\\-"),
        env!("CARGO_PKG_VERSION"),
    )
}

/// A program's manual page from its `--help`: the first line is NAME, every unindented
/// capitalised line a section, and each section's text kept as written (it is laid out for
/// an 80-column terminal already).
pub fn man_from_help(name: &str, help: &str) -> String {
    let mut out = header(name, 8, "System Administration");
    let mut lines = help.lines();
    let first = lines.next().unwrap_or_default();
    let summary = first.split_once(" - ").map_or(first, |(_, s)| s);
    out.push_str(&format!(".SH NAME\n{} \\- {}\n", roff(name), roff(summary)));
    let mut open = false;
    for line in lines {
        let heading = !line.is_empty()
            && !line.starts_with(' ')
            && line.chars().all(|c| c.is_ascii_uppercase() || c == ' ');
        if heading {
            if open {
                out.push_str(".fi\n");
            }
            out.push_str(&format!(".SH {line}\n.nf\n"));
            open = true;
        } else if line.is_empty() {
            out.push_str(if open { "\n" } else { "" });
        } else if open {
            out.push_str(&roff(line.strip_prefix("    ").unwrap_or(line)));
            out.push('\n');
        }
    }
    if open {
        out.push_str(".fi\n");
    }
    out.push_str(&format!(".SH SEE ALSO\n{}\n", see_also(name).join(",\n")));
    out
}

fn see_also(name: &str) -> Vec<String> {
    [
        "lb-feedback (8)",
        "lb-feedback-service (8)",
        "lb-feedback.json (5)",
        "haproxy (1)",
    ]
    .iter()
    .filter(|page| !page.starts_with(&format!("{name} ")))
    .map(|page| {
        let (page, section) = page.split_once(' ').unwrap_or((page, ""));
        format!(".BR {} {section}", roff(page))
    })
    .collect()
}

/// Markdown's inline code marks, which roff has no use for.
fn plain(text: &str) -> String {
    roff(&text.replace('`', "").replace('\n', " "))
}

/// lb-feedback.json(5): every key of the config file, from the key table.
pub fn man_json() -> String {
    let mut out = header("lb-feedback.json", 5, "File Formats");
    out.push_str(
        ".SH NAME\nlb-feedback.json \\- settings of lb-feedback and lb-feedback-service\n\
         .SH DESCRIPTION\nOne JSON object, by default\n.IR /etc/lb-feedback/config.json\n\
         (Windows: %ProgramData%\\elb-feedback\\econfig.json), or the file named by\n\
         .B \\-\\-config\nor\n.BR LB_FEEDBACK_CONFIG .\n\
         It must be a regular file (a symlink to one is followed) of at most 1 MiB.\n\
         Every key is optional; unknown keys, a key given twice and values out of range are\n\
         errors naming the file, line and column. A key written\n.I a.b\n\
         below is the key\n.I b\nof the object\n.IR a .\n\
         Most keys can also be set by an environment variable and a flag; precedence:\n\
         built-in defaults < config file < environment < flags.\n.SH KEYS\n",
    );
    for s in SETTINGS {
        out.push_str(&format!(".TP\n.B {}\n{}\n", roff(s.name), plain(s.help)));
        out.push_str(&format!(
            ".br\nDefault: {}. Allowed: {}.\n",
            plain(s.default),
            plain(s.allowed)
        ));
        if let (Some(env), Some(flag)) = (s.env, s.flag) {
            out.push_str(&format!(
                ".br\nEnvironment:\n.BR {} ;\nflag:\n.BR \\-\\-{} .\n",
                roff(env),
                roff(flag)
            ));
        }
    }
    out.push_str(
        ".SH EXAMPLE\n.nf\n{\n  \"cpu\": {\"importance\": 1, \"threshold\": 90},\n  \"tcp\": [{\"port\": 3389, \"max_connections\": 50}],\n  \"recovery_seconds\": 10\n}\n.fi\n",
    );
    out.push_str(&format!(
        ".SH SEE ALSO\n{}\n",
        see_also("lb-feedback.json").join(",\n")
    ));
    out
}

/// Every setting the file accepts, as the reference lists them (for tests).
pub fn names() -> impl Iterator<Item = &'static str> {
    SETTINGS.iter().map(|s: &Setting| s.name)
}
