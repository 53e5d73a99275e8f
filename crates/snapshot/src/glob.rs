//! vtool's one glob dialect, for backup excludes and restore includes: `*` and `?` stay
//! inside a path component, `**` (a whole component) crosses any number of them. Profiles
//! match the same way (`vtool_validator::profiles::glob`), so the excludes they generate
//! mean what their rules say.

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};

use crate::{Error, Result};

pub fn build_globs(patterns: &[String]) -> Result<GlobSet> {
    let mut b = GlobSetBuilder::new();
    for p in patterns {
        let glob = GlobBuilder::new(p)
            .literal_separator(true)
            .build()
            .map_err(|e| Error::Pattern(format!("{p:?}: {e}")))?;
        b.add(glob);
    }
    b.build().map_err(|e| Error::Pattern(e.to_string()))
}

/// Whether `rel_path` (`/`-separated) is inside what `include` selects: it or one of its
/// parent directories matches, as `restore --include` decides. Everything when empty.
pub fn is_included(include: &GlobSet, rel_path: &str) -> bool {
    include.is_empty()
        || std::iter::successors(Some(rel_path), |p| {
            p.rsplit_once('/').map(|(parent, _)| parent)
        })
        .any(|p| include.is_match(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_star_stays_inside_one_component() {
        let set = build_globs(&["/n/*.log".into(), "/n/db/**".into()]).expect("globs");
        assert!(set.is_match("/n/a.log"));
        assert!(!set.is_match("/n/sub/a.log"));
        assert!(set.is_match("/n/db/x/y"));
        assert!(!set.is_match("/n/db"));
        assert!(build_globs(&["[".into()]).is_err());
    }
}
