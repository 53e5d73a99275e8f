//! Object Lock: every prune extends the retention of what the remaining snapshots need, so
//! that it never lapses while they are kept (retention counts from an object's write or
//! its last extension, and a pack can outlive many retention periods).
//!
//! It runs before anything is condemned, and skips what pending trash records name. So the
//! retention of an object in a trash record ends at most the retention period after the
//! record's time, which is when [`due_after`] lets a purge delete it.

use std::collections::HashSet;

use time::{Duration, OffsetDateTime};

use super::state::State;
use super::{PruneOptions, PruneReport};
use crate::{trash, FileType, Id, Progress, Repository, Result};

/// Clocks of the hosts that extended retention and of this one may differ; deletes wait
/// this much longer than the retention period.
const CLOCK_MARGIN: Duration = Duration::hours(1);

/// When a trash record made at `time` may be carried out on a location that retains
/// objects `days` days: not before their retention has ended, whatever the grace.
pub(super) fn due_after(time: OffsetDateTime, days: Option<u32>) -> Option<OffsetDateTime> {
    days.map(|d| time + Duration::days(i64::from(d)) + CLOCK_MARGIN)
}

pub(super) fn extend(
    repo: &Repository,
    state: &State,
    opts: &PruneOptions,
    report: &mut PruneReport,
    progress: &dyn Progress,
) -> Result<()> {
    let backend = repo.backend();
    let Some(days) = backend.retention_days() else {
        return Ok(());
    };
    let pending = &state.trash.pending;
    let leaving = trash::union(pending, |t| &t.snapshots);
    let condemned_packs = trash::union(pending, |t| &t.packs);
    let condemned_indexes = trash::union(pending, |t| &t.indexes);
    let name_all = |ft: FileType, ids: &mut dyn Iterator<Item = Id>| -> Vec<String> {
        ids.map(|id| ft.name(&id)).collect()
    };
    let mut names = vec![FileType::Config.dir().to_string()];
    names.extend(
        backend
            .list(FileType::Key.dir())?
            .into_iter()
            .map(|o| o.name),
    );
    let kept: Vec<_> = state
        .snapshots
        .iter()
        .filter(|(id, _)| !leaving.contains(id))
        .collect();
    names.extend(name_all(
        FileType::Snapshot,
        &mut kept.iter().map(|(id, _)| *id),
    ));
    let refs: HashSet<Id> = kept.iter().filter_map(|(_, s)| s.refs).collect();
    names.extend(name_all(FileType::Refs, &mut refs.into_iter()));
    names.extend(name_all(
        FileType::Index,
        &mut state
            .index_files
            .iter()
            .map(|(id, _)| *id)
            .filter(|id| !condemned_indexes.contains(id)),
    ));
    names.extend(name_all(
        FileType::Pack,
        &mut state
            .present
            .keys()
            .copied()
            .filter(|id| !condemned_packs.contains(id)),
    ));
    report.retained = names.len();
    report.retained_until = Some(crate::format_time(
        OffsetDateTime::now_utc() + Duration::days(i64::from(days)),
    ));
    if !opts.dry_run {
        progress.stage("extending Object Lock retention", names.len() as u64, 0);
        backend.retain(&names)?;
    }
    Ok(())
}
