//! Software: the client versions recorded in the snapshot, against the versions the new host
//! is expected to run.

use vtool_snapshot::repofile::{CheckStatus, GateCheck, Snapshot};

use super::check;

/// `CLIENT=VERSION` pairs; the version recorded for CLIENT must contain VERSION (recorded
/// versions are whatever `lighthouse --version` printed, e.g. `Lighthouse v5.3.0-d6ba8c3`).
pub(super) fn software_check(snap: &Snapshot, expect: &[(String, String)]) -> GateCheck {
    let profile = snap.labels.get("profile").cloned().unwrap_or_default();
    let recorded = snap.labels.get("client_version").cloned();
    let mut evidence = vec![format!(
        "profile {}, client version {}",
        if profile.is_empty() { "none" } else { &profile },
        recorded.as_deref().unwrap_or("not recorded")
    )];
    if expect.is_empty() {
        return check(
            "software",
            CheckStatus::Pass,
            "recorded versions shown; no --expect-version given",
            evidence,
        );
    }
    let Some(recorded) = recorded else {
        return check(
            "software",
            CheckStatus::Unknown,
            "the snapshot recorded no client version to compare with --expect-version",
            evidence,
        );
    };
    let mut failed = false;
    for (client, version) in expect {
        let of_client = version_of(&recorded, client, &profile);
        let ok = of_client.is_some_and(|v| v.contains(version.as_str()));
        failed |= !ok;
        evidence.push(format!(
            "{client}: expected {version}, recorded {}{}",
            of_client.unwrap_or("nothing"),
            if ok { "" } else { " — MISMATCH" }
        ));
    }
    if failed {
        check(
            "software",
            CheckStatus::Fail,
            "the recorded client versions differ from --expect-version",
            evidence,
        )
    } else {
        check(
            "software",
            CheckStatus::Pass,
            "the recorded client versions match --expect-version",
            evidence,
        )
    }
}

/// The version recorded for `client`: the one named `client: …` in a multi-client record,
/// or the single version when the snapshot's profile is that client.
fn version_of<'a>(recorded: &'a str, client: &str, profile: &str) -> Option<&'a str> {
    let named = recorded.split("; ").find_map(|part| {
        let (name, v) = part.split_once(": ")?;
        name.eq_ignore_ascii_case(client).then_some(v)
    });
    named.or_else(|| {
        let single = !recorded.contains("; ");
        let is_client = profile
            .split(['+', ','])
            .any(|p| p.trim().eq_ignore_ascii_case(client));
        (single && is_client).then_some(recorded)
    })
}

#[cfg(test)]
mod tests {
    use super::version_of;

    #[test]
    fn versions_are_found_per_client() {
        let many = "lighthouse: Lighthouse v5.3.0; geth: Geth/v1.14.8";
        assert_eq!(version_of(many, "geth", "x"), Some("Geth/v1.14.8"));
        assert_eq!(version_of(many, "teku", "x"), None);
        assert_eq!(
            version_of("Lighthouse v5.3.0", "lighthouse", "lighthouse"),
            Some("Lighthouse v5.3.0")
        );
        assert_eq!(version_of("Lighthouse v5.3.0", "prysm", "lighthouse"), None);
    }
}
