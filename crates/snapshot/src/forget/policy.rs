//! Retention rules: which snapshots of a group to keep, and by which rule (restic's
//! semantics, calendar buckets in UTC).

use serde::Serialize;
use time::{Duration, OffsetDateTime};

use crate::Id;

/// How many snapshots to keep, by rule; zero (or `None`) turns a rule off.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct KeepPolicy {
    pub last: u32,
    pub hourly: u32,
    pub daily: u32,
    pub weekly: u32,
    pub monthly: u32,
    pub yearly: u32,
    /// Every snapshot within this long of the group's newest one.
    pub within: Option<Duration>,
    /// Every snapshot carrying one of these tags.
    pub tags: Vec<String>,
}

impl KeepPolicy {
    /// No rule at all: forget would remove everything, which is never what was meant.
    pub fn is_empty(&self) -> bool {
        self.last == 0
            && self.hourly == 0
            && self.daily == 0
            && self.weekly == 0
            && self.monthly == 0
            && self.yearly == 0
            && self.within.is_none()
            && self.tags.is_empty()
    }
}

/// Why a snapshot is kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum KeepReason {
    Last,
    Hourly,
    Daily,
    Weekly,
    Monthly,
    Yearly,
    Within,
    Tag(String),
    /// The newest snapshot holding a validator key or slashing-protection database that no
    /// newer snapshot holds.
    HoldsKey,
}

/// A snapshot as the rules see it.
#[derive(Debug, Clone)]
pub struct Candidate {
    pub id: Id,
    pub time: OffsetDateTime,
    pub tags: Vec<String>,
}

/// The rules' verdict on one snapshot of a group.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Verdict {
    pub id: Id,
    #[serde(with = "time::serde::rfc3339")]
    pub time: OffsetDateTime,
    /// Empty: removed.
    pub reasons: Vec<KeepReason>,
}

/// Apply `policy` to one group of snapshots (any order); verdicts come newest first.
pub fn apply(policy: &KeepPolicy, group: &[Candidate]) -> Vec<Verdict> {
    let mut sorted: Vec<&Candidate> = group.iter().collect();
    sorted.sort_by(|a, b| b.time.cmp(&a.time).then(b.id.cmp(&a.id)));
    let newest = sorted.first().map(|c| c.time);
    type Bucket = fn(OffsetDateTime) -> (i32, u32, u32, u32);
    let buckets: [(u32, KeepReason, Bucket); 5] = [
        (policy.hourly, KeepReason::Hourly, |t| {
            (t.year(), t.ordinal().into(), t.hour().into(), 0)
        }),
        (policy.daily, KeepReason::Daily, |t| {
            (t.year(), t.ordinal().into(), 0, 0)
        }),
        (policy.weekly, KeepReason::Weekly, |t| {
            let (y, w, _) = t.to_iso_week_date();
            (y, w.into(), 0, 0)
        }),
        (policy.monthly, KeepReason::Monthly, |t| {
            (t.year(), u8::from(t.month()).into(), 0, 0)
        }),
        (policy.yearly, KeepReason::Yearly, |t| (t.year(), 0, 0, 0)),
    ];
    let mut left: Vec<u32> = buckets.iter().map(|b| b.0).collect();
    let mut last_bucket: Vec<Option<(i32, u32, u32, u32)>> = vec![None; buckets.len()];
    let mut out = Vec::with_capacity(sorted.len());
    for (n, c) in sorted.iter().enumerate() {
        let t = c.time.to_offset(time::UtcOffset::UTC);
        let mut reasons = Vec::new();
        if (n as u64) < u64::from(policy.last) {
            reasons.push(KeepReason::Last);
        }
        for (i, (_, reason, bucket)) in buckets.iter().enumerate() {
            let b = bucket(t);
            // The newest snapshot of each bucket, for the newest `count` buckets.
            if left[i] > 0 && last_bucket[i] != Some(b) {
                left[i] -= 1;
                last_bucket[i] = Some(b);
                reasons.push(reason.clone());
            }
        }
        if let (Some(within), Some(newest)) = (policy.within, newest) {
            if c.time >= newest - within {
                reasons.push(KeepReason::Within);
            }
        }
        for tag in &policy.tags {
            if c.tags.contains(tag) {
                reasons.push(KeepReason::Tag(tag.clone()));
            }
        }
        out.push(Verdict {
            id: c.id,
            time: c.time,
            reasons,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn calendar(times: &[OffsetDateTime]) -> Vec<Candidate> {
        times
            .iter()
            .enumerate()
            .map(|(i, t)| Candidate {
                id: Id::hash(&(i as u32).to_le_bytes()),
                time: *t,
                tags: if i % 5 == 0 {
                    vec!["monthly-audit".into()]
                } else {
                    vec![]
                },
            })
            .collect()
    }

    /// Kept times, oldest first, as `YYYY-MM-DD HH`.
    fn kept(policy: &KeepPolicy, group: &[Candidate]) -> Vec<String> {
        let mut v: Vec<String> = apply(policy, group)
            .into_iter()
            .filter(|v| !v.reasons.is_empty())
            .map(|v| {
                format!(
                    "{}-{:02}-{:02} {:02}",
                    v.time.year(),
                    u8::from(v.time.month()),
                    v.time.day(),
                    v.time.hour()
                )
            })
            .collect();
        v.reverse();
        v
    }

    /// Two snapshots a day (03:00 and 15:00) from 2026-01-01 to 2026-03-31.
    fn twice_daily() -> Vec<OffsetDateTime> {
        let start = datetime!(2026-01-01 03:00 UTC);
        (0..180).map(|i| start + Duration::hours(12 * i)).collect()
    }

    #[test]
    fn retention_rules_keep_exactly_what_they_say() {
        let snaps = calendar(&twice_daily());
        let cases: Vec<(KeepPolicy, Vec<&str>)> = vec![
            (
                KeepPolicy {
                    last: 3,
                    ..Default::default()
                },
                vec!["2026-03-30 15", "2026-03-31 03", "2026-03-31 15"],
            ),
            (
                KeepPolicy {
                    daily: 3,
                    ..Default::default()
                },
                vec!["2026-03-29 15", "2026-03-30 15", "2026-03-31 15"],
            ),
            (
                KeepPolicy {
                    hourly: 2,
                    ..Default::default()
                },
                vec!["2026-03-31 03", "2026-03-31 15"],
            ),
            (
                // ISO weeks: 2026-03-29 is a Sunday (week 13), 2026-03-22 too (week 12).
                KeepPolicy {
                    weekly: 3,
                    ..Default::default()
                },
                vec!["2026-03-22 15", "2026-03-29 15", "2026-03-31 15"],
            ),
            (
                KeepPolicy {
                    monthly: 2,
                    ..Default::default()
                },
                vec!["2026-02-28 15", "2026-03-31 15"],
            ),
            (
                KeepPolicy {
                    yearly: 5,
                    ..Default::default()
                },
                vec!["2026-03-31 15"],
            ),
            (
                KeepPolicy {
                    within: Some(Duration::hours(36)),
                    ..Default::default()
                },
                vec![
                    "2026-03-30 03",
                    "2026-03-30 15",
                    "2026-03-31 03",
                    "2026-03-31 15",
                ],
            ),
            (
                // Overlapping rules: the union, each snapshot once.
                KeepPolicy {
                    last: 2,
                    daily: 2,
                    monthly: 2,
                    ..Default::default()
                },
                vec![
                    "2026-02-28 15",
                    "2026-03-30 15",
                    "2026-03-31 03",
                    "2026-03-31 15",
                ],
            ),
        ];
        for (policy, want) in cases {
            assert_eq!(kept(&policy, &snaps), want, "{policy:?}");
        }
    }

    #[test]
    fn tags_keep_every_tagged_snapshot_and_say_so() {
        let snaps = calendar(&twice_daily());
        let policy = KeepPolicy {
            tags: vec!["monthly-audit".into()],
            ..Default::default()
        };
        let verdicts = apply(&policy, &snaps);
        let tagged = snaps.iter().filter(|c| !c.tags.is_empty()).count();
        assert_eq!(tagged, 36);
        let kept: Vec<&Verdict> = verdicts.iter().filter(|v| !v.reasons.is_empty()).collect();
        assert_eq!(kept.len(), tagged);
        assert!(kept
            .iter()
            .all(|v| v.reasons == [KeepReason::Tag("monthly-audit".into())]));
    }

    #[test]
    fn buckets_count_only_periods_that_have_snapshots() {
        // Gaps: daily 3 keeps the newest of the three newest days that have snapshots,
        // however far apart they are.
        let snaps = calendar(&[
            datetime!(2025-12-01 10:00 UTC),
            datetime!(2026-01-15 10:00 UTC),
            datetime!(2026-01-15 11:00 UTC),
            datetime!(2026-03-01 09:00 UTC),
        ]);
        let policy = KeepPolicy {
            daily: 3,
            ..Default::default()
        };
        assert_eq!(
            kept(&policy, &snaps),
            ["2025-12-01 10", "2026-01-15 11", "2026-03-01 09"]
        );
        assert!(KeepPolicy::default().is_empty());
        assert!(!policy.is_empty());
    }
}
