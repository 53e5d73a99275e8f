//! Lighthouse `validator_definitions.yml`: the keystore and password paths it refers to.
//!
//! Lighthouse writes absolute paths into this file. After a restore onto another machine or
//! into another directory those paths may not exist, and the validator client would start
//! without its keys. [`missing_paths`] finds them with a line-based parse (no YAML library):
//! values of `voting_keystore_path:` and `voting_keystore_password_path:`, plain or quoted.

use std::path::Path;

/// The keys whose values are file paths.
pub const PATH_KEYS: &[&str] = &["voting_keystore_path", "voting_keystore_password_path"];

/// `(key, value)` of every path entry in the text of a definitions file, in file order.
pub fn referenced_paths(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for line in text.lines() {
        // `- voting_keystore_path: …` when the key starts a list item.
        let line = line.trim_start();
        let line = line.strip_prefix("- ").unwrap_or(line).trim_start();
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let key = key.trim();
        if !PATH_KEYS.contains(&key) {
            continue;
        }
        if let Some(v) = scalar(value) {
            out.push((key.to_string(), v));
        }
    }
    out
}

/// A YAML plain or quoted scalar on one line, without a trailing comment.
fn scalar(raw: &str) -> Option<String> {
    let v = raw.trim();
    let v = if let Some(rest) = v.strip_prefix('"') {
        let end = rest.find('"')?;
        rest[..end].replace("\\\\", "\\")
    } else if let Some(rest) = v.strip_prefix('\'') {
        let end = rest.find('\'')?;
        rest[..end].to_string()
    } else {
        // A plain scalar ends at ` #` (comment).
        match v.find(" #") {
            Some(i) => v[..i].trim_end().to_string(),
            None => v.to_string(),
        }
    };
    (!v.is_empty() && v != "~" && v != "null").then_some(v)
}

/// Absolute keystore and password paths named in the definitions `file` that do not exist on
/// this machine (each once, in file order). Relative paths are not checked. An unreadable file
/// yields nothing.
pub fn missing_paths(file: &Path) -> Vec<String> {
    let Ok(text) = std::fs::read_to_string(file) else {
        return Vec::new();
    };
    let mut out: Vec<String> = Vec::new();
    for (_, p) in referenced_paths(&text) {
        if p.starts_with('/') && std::fs::symlink_metadata(&p).is_err() && !out.contains(&p) {
            out.push(p);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_missing_absolute_paths() {
        let t = tempfile::tempdir().expect("tempdir");
        let present = t.path().join("voting-keystore.json");
        std::fs::write(&present, "{}").expect("write");
        let defs = t.path().join("validator_definitions.yml");
        let text = format!(
            "---\n\
             - enabled: true\n  \
               voting_public_key: \"0xab\"\n  \
               type: local_keystore\n  \
               voting_keystore_path: {}\n  \
               voting_keystore_password_path: \"/nonexistent/secrets/0xab\"\n\
             - enabled: true\n  \
               voting_keystore_path: '/nonexistent/validators/0xcd/voting-keystore.json' # moved\n  \
               voting_keystore_password: secret\n\
             - voting_keystore_path: relative/keystore.json\n",
            present.display()
        );
        std::fs::write(&defs, text).expect("write");
        assert_eq!(
            missing_paths(&defs),
            vec![
                "/nonexistent/secrets/0xab".to_string(),
                "/nonexistent/validators/0xcd/voting-keystore.json".to_string(),
            ]
        );
        assert!(missing_paths(&t.path().join("absent.yml")).is_empty());
        let refs = referenced_paths("- voting_keystore_path: /a/b # c\n");
        assert_eq!(refs, vec![("voting_keystore_path".into(), "/a/b".into())]);
    }
}
