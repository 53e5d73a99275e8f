//! Lighthouse `validator_definitions.yml`: the keystore and password paths it refers to.
//!
//! Lighthouse writes absolute paths into this file. After a restore onto another machine or
//! into another directory those paths may not exist, and the validator client would start
//! without its keys. [`missing_paths`] finds them: the values of `voting_keystore_path` and
//! `voting_keystore_password_path` of every definition, parsed as YAML (escapes, flow style,
//! comments and block scalars included).

use std::path::Path;

use yaml_rust2::{Yaml, YamlLoader};

/// The keys whose values are file paths.
pub const PATH_KEYS: &[&str] = &["voting_keystore_path", "voting_keystore_password_path"];

/// `(key, value)` of every path entry of a definitions file (a YAML list of mappings), in
/// file order; an error says why the text is not YAML.
pub fn referenced_paths(text: &str) -> Result<Vec<(String, String)>, String> {
    let docs = YamlLoader::load_from_str(text).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    for definition in docs.iter().filter_map(Yaml::as_vec).flatten() {
        for key in PATH_KEYS {
            if let Some(value) = definition[*key].as_str().filter(|v| !v.is_empty()) {
                out.push((key.to_string(), value.to_string()));
            }
        }
    }
    Ok(out)
}

/// Absolute keystore and password paths named in the definitions `file` that do not exist on
/// this machine (each once, in file order). Relative paths are not checked. An unreadable file
/// yields nothing.
pub fn missing_paths(file: &Path) -> Vec<String> {
    let Some(paths) = std::fs::read_to_string(file)
        .ok()
        .and_then(|text| referenced_paths(&text).ok())
    else {
        return Vec::new();
    };
    let mut out: Vec<String> = Vec::new();
    for (_, p) in paths {
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
        let refs = referenced_paths("- voting_keystore_path: /a/b # c\n").expect("yaml");
        assert_eq!(refs, vec![("voting_keystore_path".into(), "/a/b".into())]);
    }

    #[test]
    fn reads_escapes_and_flow_style() {
        // What a line-based reader got wrong: an escaped quote, a flow mapping, a key on the
        // line after its dash, a plain scalar with `#` inside.
        let text = r#"---
- {enabled: true, voting_keystore_path: "/k/a \"quoted\".json", voting_keystore_password_path: /s/a}
-
  voting_keystore_path: /k/b#1.json
  voting_keystore_password_path: "/s/\u00e9"
"#;
        assert_eq!(
            referenced_paths(text).expect("yaml"),
            vec![
                ("voting_keystore_path".into(), "/k/a \"quoted\".json".into()),
                ("voting_keystore_password_path".into(), "/s/a".into()),
                ("voting_keystore_path".into(), "/k/b#1.json".into()),
                ("voting_keystore_password_path".into(), "/s/\u{e9}".into()),
            ]
        );
        assert!(referenced_paths("- [unclosed").is_err());
    }
}
