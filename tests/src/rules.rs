//! Checks on the alert rules and dashboards in `deploy/`: promtool accepts
//! a rules file, and every metric an expression reads is served.

use std::path::{Path, PathBuf};

/// `deploy/NAME` in the repository.
pub fn deploy(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../deploy")
        .join(name)
}

/// promtool accepts the rules file (when promtool is installed).
pub fn promtool_accepts(rules: &Path) {
    if let Ok(out) = std::process::Command::new("promtool")
        .args(["check", "rules"])
        .arg(rules)
        .output()
    {
        assert!(
            out.status.success(),
            "promtool on {}: {}",
            rules.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// The `expr: ...` lines of a rules file.
pub fn rule_exprs(rules: &Path) -> Vec<String> {
    std::fs::read_to_string(rules)
        .unwrap()
        .lines()
        .filter_map(|l| l.trim().strip_prefix("expr: ").map(str::to_string))
        .collect()
}

/// Every metric named `prefix*` in `exprs` is a series in the exposition
/// `body` whose line contains `label` (e.g. `upstream="jp-centre"`, or ""
/// for any); returns how many metric names were checked.
pub fn served(exprs: &[String], prefix: &str, body: &str, label: &str) -> usize {
    let mut names = 0;
    for expr in exprs {
        for word in expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
            if !word.starts_with(prefix) {
                continue;
            }
            let series = |l: &&str| {
                (l.starts_with(&format!("{word}{{")) || l.starts_with(&format!("{word} ")))
                    && l.contains(label)
            };
            assert!(
                body.lines().any(|l| series(&l)),
                "`{word}` (in `{expr}`) is not served"
            );
            names += 1;
        }
    }
    names
}
