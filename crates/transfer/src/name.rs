use crate::BackendError;

/// Check that `name` is a safe relative object name: `/`-separated components of
/// `[A-Za-z0-9._-]`, none empty, `.` or `..`, not starting with a dot (temporary files do).
/// A malicious repository or caller can therefore never reach outside the repository root.
pub fn validate_name(name: &str) -> Result<(), BackendError> {
    let refuse = |reason| {
        Err(BackendError::InvalidName {
            name: name.to_string(),
            reason,
        })
    };
    if name.is_empty() || name.len() > 512 {
        return refuse("empty or longer than 512 bytes");
    }
    for part in name.split('/') {
        if part.is_empty() {
            return refuse("empty path component (leading, trailing or double slash)");
        }
        if part.starts_with('.') {
            return refuse("component starts with a dot");
        }
        if !part
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        {
            return refuse("only ASCII letters, digits, '.', '_' and '-' are allowed");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::validate_name;

    #[test]
    fn refuses_escapes() {
        for bad in [
            "",
            "../x",
            "a/../b",
            "/etc/passwd",
            "a//b",
            "a/",
            ".tmp",
            "a b",
            "a\\b",
        ] {
            assert!(validate_name(bad).is_err(), "{bad:?} accepted");
        }
        for good in ["config", "packs/ab/ab12", "snapshots/x-y_z.1"] {
            assert!(validate_name(good).is_ok(), "{good:?} refused");
        }
    }
}
