//! Errors that teach: serde's messages about the file's shape rewritten to name the key and,
//! for a misspelt one, the nearest key allowed in that place.

use super::error::Problem;

/// The problem of a shape error at `path` (serde_path_to_error's rendering, `.` for the
/// document itself) whose serde text is `message`.
pub fn shape_error(path: &str, message: &str) -> Problem {
    if let Some((key, allowed)) = unknown_field(message) {
        let within = match path.rsplit_once('.') {
            Some((parent, _)) if parent != "." && !parent.is_empty() => Some(parent.to_string()),
            _ => None,
        };
        return Problem::UnknownKey {
            key: key.to_string(),
            within,
            nearest: nearest(key, &allowed).map(str::to_string),
        };
    }
    // Only serde's own wording lacks the key; the config's validators already name theirs.
    let from_serde = SERDE_WORDING.iter().any(|start| message.starts_with(start));
    let key = (from_serde && path != "." && !path.is_empty()).then(|| path.to_string());
    Problem::Json {
        key,
        message: message.to_string(),
    }
}

/// How serde's generic shape messages begin.
const SERDE_WORDING: [&str; 5] = [
    "invalid type: ",
    "invalid value: ",
    "invalid length ",
    "missing field ",
    "unknown variant ",
];

/// The key and the allowed keys of serde's "unknown field `x`, expected one of `a`, `b`" (or
/// "expected `a`", or "there are no fields").
fn unknown_field(message: &str) -> Option<(&str, Vec<&str>)> {
    let rest = message.strip_prefix("unknown field `")?;
    let (key, rest) = rest.split_once('`')?;
    let allowed = rest.split('`').skip(1).step_by(2).collect();
    Some((key, allowed))
}

/// The allowed key nearest to `key` if it is close enough to be a slip: at most a third of
/// its letters (and at least one) edited, a transposition counting as one edit.
fn nearest<'a>(key: &str, allowed: &[&'a str]) -> Option<&'a str> {
    let limit = (key.chars().count() / 3).max(1);
    allowed
        .iter()
        .map(|candidate| (distance(key, candidate), *candidate))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, candidate)| candidate)
}

/// Optimal string alignment distance, by characters, ignoring case.
fn distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.to_lowercase().chars().collect();
    let b: Vec<char> = b.to_lowercase().chars().collect();
    let mut rows = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in rows.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in rows[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (rows[i - 1][j] + 1)
                .min(rows[i][j - 1] + 1)
                .min(rows[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(rows[i - 2][j - 2] + 1);
            }
            rows[i][j] = best;
        }
    }
    rows[a.len()][b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slip_is_told_the_nearest_key() {
        let serde =
            "unknown field `treshold`, expected one of `importance`, `threshold`, `release`";
        assert_eq!(
            shape_error("cpu.treshold", serde).to_string(),
            "unknown key \"treshold\" in cpu: did you mean \"threshold\"?"
        );
        let top = "unknown field `sampel_ms`, expected one of `mode`, `sample_ms`";
        assert_eq!(
            shape_error("sampel_ms", top).to_string(),
            "unknown key \"sampel_ms\": did you mean \"sample_ms\"?"
        );
    }

    #[test]
    fn a_stranger_is_not_given_every_key() {
        let serde = "unknown field `colour`, expected one of `mode`, `sample_ms`, `cpu`";
        let message = shape_error("colour", serde).to_string();
        assert_eq!(
            message,
            "unknown key \"colour\"; the keys allowed here are listed in lb-feedback.json(5) \
             and docs/configuration.md"
        );
        assert!(!message.contains("sample_ms"));
        assert!(
            shape_error("x", "unknown field `x`, there are no fields")
                .to_string()
                .contains("\"x\"")
        );
    }

    #[test]
    fn a_wrong_type_names_the_key() {
        assert_eq!(
            shape_error("tcp", "invalid type: map, expected a sequence").to_string(),
            "tcp: invalid type: map, expected a sequence"
        );
        assert_eq!(
            shape_error(".", "trailing comma").to_string(),
            "trailing comma"
        );
        assert_eq!(
            shape_error("sample_ms", "50 is out of range; allowed: 100 to 10000").to_string(),
            "50 is out of range; allowed: 100 to 10000"
        );
    }

    #[test]
    fn distance_counts_edits_and_swaps() {
        assert_eq!(distance("threshold", "threshold"), 0);
        assert_eq!(distance("treshold", "threshold"), 1);
        assert_eq!(distance("thershold", "threshold"), 1);
        assert_eq!(distance("", "abc"), 3);
        assert_eq!(distance("Mode", "mode"), 0);
    }
}
