//! What the metrics say about a repository as a whole, read without any key: the snapshot
//! listing (snapshot objects are plaintext and sealed; counting and dating them needs none).

use time::OffsetDateTime;

use crate::metrics::{timestamp, Sample};
use crate::OpsError;

pub fn repository_samples(url: &str, now: OffsetDateTime) -> Result<Vec<Sample>, OpsError> {
    let backend = vtool_transfer::url::open(url).map_err(|e| OpsError::Repository {
        url: url.to_string(),
        reason: e.to_string(),
    })?;
    let repo = vtool_snapshot::Repository::open(backend).map_err(|e| OpsError::Repository {
        url: url.to_string(),
        reason: e.to_string(),
    })?;
    let listing = repo.snapshots().map_err(|e| OpsError::Repository {
        url: url.to_string(),
        reason: e.to_string(),
    })?;
    let l = [("repository", url)];
    let mut v = vec![Sample::new(
        "vtool_snapshots",
        &l,
        listing.objects.len() as f64,
    )];
    // Sorted by time: the last is the newest.
    if let Some((_, newest)) = listing.objects.last() {
        v.push(Sample::new(
            "vtool_newest_snapshot_timestamp_seconds",
            &l,
            timestamp(newest.time),
        ));
        v.push(Sample::new(
            "vtool_newest_snapshot_age_seconds",
            &l,
            (now - newest.time).as_seconds_f64().max(0.0),
        ));
        v.push(Sample::new(
            "vtool_last_backup_added_bytes",
            &l,
            newest.summary.bytes_added_stored as f64,
        ));
    }
    Ok(v)
}

/// The samples a drill leaves: whether it passed, and when.
pub fn drill_samples(url: &str, started: OffsetDateTime, exit_code: i32) -> Vec<Sample> {
    let l = [("repository", url)];
    vec![
        Sample::new(
            "vtool_last_drill_passed",
            &l,
            if exit_code == 0 { 1.0 } else { 0.0 },
        ),
        Sample::new("vtool_last_drill_timestamp_seconds", &l, timestamp(started)),
    ]
}
