//! Signing-safety rules over one validator's history, and detection of slashable history.

use super::interchange::{Root, SignedAttestation, SignedBlock};

/// How a slashing-protection store decides with an imported history.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Strategy {
    /// EIP-3076 minimal strategy: keep low watermarks only. A block must be above the highest
    /// slot ever signed or imported; an attestation needs a source at least the highest source
    /// and a target above the highest target. Nothing at or below a watermark is re-signed, not
    /// even identical data.
    Minimal,
    /// Complete history: refuse double proposals, double votes and surround votes against every
    /// record, allow re-signing identical data (same known signing root), and refuse anything
    /// below the lowest recorded slot / source / target (history before that is unknown).
    Complete,
}

/// Why signing is safe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Safe {
    /// New message; it has been recorded.
    Valid,
    /// Exactly this message (same known signing root) was signed before (complete strategy).
    SameData,
}

/// Why signing is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// A different block (or one without a known signing root) exists at this slot.
    #[error("double block proposal at slot {slot}")]
    DoubleBlockProposal {
        /// The slot.
        slot: u64,
    },
    /// Minimal strategy: the slot is not above the highest signed slot.
    #[error("block slot {slot} is not above the highest signed slot {watermark}")]
    BlockSlotNotAboveWatermark {
        /// Requested slot.
        slot: u64,
        /// Highest signed slot.
        watermark: u64,
    },
    /// Complete strategy: the slot is below the lowest recorded slot.
    #[error("block slot {slot} is below the lowest recorded slot {lower_bound}")]
    BlockSlotBelowLowerBound {
        /// Requested slot.
        slot: u64,
        /// Lowest recorded slot.
        lower_bound: u64,
    },
    /// The source epoch is after the target epoch.
    #[error("attestation source {source_epoch} is after its target {target_epoch}")]
    SourceExceedsTarget {
        /// Source epoch.
        source_epoch: u64,
        /// Target epoch.
        target_epoch: u64,
    },
    /// A different attestation (or one without a known signing root) has this target.
    #[error("double vote for target epoch {target_epoch}")]
    DoubleVote {
        /// Target epoch.
        target_epoch: u64,
    },
    /// The attestation would surround a recorded one.
    #[error("attestation ({source_epoch}, {target_epoch}) surrounds recorded ({prev_source}, {prev_target})")]
    SurroundingVote {
        /// Source epoch.
        source_epoch: u64,
        /// Target epoch.
        target_epoch: u64,
        /// Recorded source.
        prev_source: u64,
        /// Recorded target.
        prev_target: u64,
    },
    /// The attestation would be surrounded by a recorded one.
    #[error("attestation ({source_epoch}, {target_epoch}) is surrounded by recorded ({prev_source}, {prev_target})")]
    SurroundedVote {
        /// Source epoch.
        source_epoch: u64,
        /// Target epoch.
        target_epoch: u64,
        /// Recorded source.
        prev_source: u64,
        /// Recorded target.
        prev_target: u64,
    },
    /// Minimal strategy: the source is below the highest recorded source.
    #[error("source epoch {source_epoch} is below the highest recorded source {watermark}")]
    SourceBelowWatermark {
        /// Source epoch.
        source_epoch: u64,
        /// Highest recorded source.
        watermark: u64,
    },
    /// Minimal strategy: the target is not above the highest recorded target.
    #[error("target epoch {target_epoch} is not above the highest recorded target {watermark}")]
    TargetNotAboveWatermark {
        /// Target epoch.
        target_epoch: u64,
        /// Highest recorded target.
        watermark: u64,
    },
    /// Complete strategy: the source is below the lowest recorded source.
    #[error("source epoch {source_epoch} is below the lowest recorded source {lower_bound}")]
    SourceBelowLowerBound {
        /// Source epoch.
        source_epoch: u64,
        /// Lowest recorded source.
        lower_bound: u64,
    },
    /// Complete strategy: the target is not above the lowest recorded target.
    #[error("target epoch {target_epoch} is not above the lowest recorded target {lower_bound}")]
    TargetNotAboveLowerBound {
        /// Target epoch.
        target_epoch: u64,
        /// Lowest recorded target.
        lower_bound: u64,
    },
}

/// Slashable data found inside a history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finding {
    /// Two blocks at one slot that are not provably the same block.
    DoubleBlock {
        /// The slot.
        slot: u64,
    },
    /// Two attestations with one target that are not provably the same attestation.
    DoubleVote {
        /// The target epoch.
        target_epoch: u64,
    },
    /// `outer` surrounds `inner` (`outer.source < inner.source` and `inner.target < outer.target`).
    SurroundVote {
        /// Surrounding (source, target).
        outer: (u64, u64),
        /// Surrounded (source, target).
        inner: (u64, u64),
    },
    /// An attestation whose source is after its target.
    SourceExceedsTarget {
        /// Source epoch.
        source_epoch: u64,
        /// Target epoch.
        target_epoch: u64,
    },
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Finding::DoubleBlock { slot } => write!(f, "double block proposal at slot {slot}"),
            Finding::DoubleVote { target_epoch } => {
                write!(f, "double vote for target epoch {target_epoch}")
            }
            Finding::SurroundVote { outer, inner } => write!(
                f,
                "attestation ({}, {}) surrounds ({}, {})",
                outer.0, outer.1, inner.0, inner.1
            ),
            Finding::SourceExceedsTarget {
                source_epoch,
                target_epoch,
            } => write!(
                f,
                "attestation source {source_epoch} is after target {target_epoch}"
            ),
        }
    }
}

/// Everything known to have been signed by one validator.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct History {
    /// Signed blocks.
    pub blocks: Vec<SignedBlock>,
    /// Signed attestations.
    pub attestations: Vec<SignedAttestation>,
}

/// Both roots known and equal: provably the same message. A missing root (as in many imported
/// records) never matches, not even the all-zero root; this is what the EIP-3076 interchange
/// test suite expects.
fn same_root(a: Option<Root>, b: Option<Root>) -> bool {
    matches!((a, b), (Some(a), Some(b)) if a == b)
}

impl History {
    /// Highest block slot.
    pub fn max_block_slot(&self) -> Option<u64> {
        self.blocks.iter().map(|b| b.slot).max()
    }

    /// Highest attestation source epoch.
    pub fn max_source_epoch(&self) -> Option<u64> {
        self.attestations.iter().map(|a| a.source_epoch).max()
    }

    /// Highest attestation target epoch.
    pub fn max_target_epoch(&self) -> Option<u64> {
        self.attestations.iter().map(|a| a.target_epoch).max()
    }

    /// The minimal-strategy summary: one block at the highest slot and one attestation with the
    /// highest source and the highest target, without signing roots.
    pub fn minify(&self) -> History {
        History {
            blocks: self
                .max_block_slot()
                .map(|slot| SignedBlock {
                    slot,
                    signing_root: None,
                })
                .into_iter()
                .collect(),
            attestations: self
                .max_source_epoch()
                .zip(self.max_target_epoch())
                .map(|(source_epoch, target_epoch)| SignedAttestation {
                    source_epoch,
                    target_epoch,
                    signing_root: None,
                })
                .into_iter()
                .collect(),
        }
    }

    /// Decides whether signing a block is safe, without recording it.
    pub fn block_safety(
        &self,
        strategy: Strategy,
        slot: u64,
        signing_root: Option<Root>,
    ) -> Result<Safe, Refusal> {
        let mut repeat = false;
        for b in self.blocks.iter().filter(|b| b.slot == slot) {
            if same_root(b.signing_root, signing_root) {
                repeat = true;
            } else {
                return Err(Refusal::DoubleBlockProposal { slot });
            }
        }
        match strategy {
            Strategy::Complete => {
                if repeat {
                    return Ok(Safe::SameData);
                }
                match self.blocks.iter().map(|b| b.slot).min() {
                    Some(lower_bound) if slot < lower_bound => {
                        Err(Refusal::BlockSlotBelowLowerBound { slot, lower_bound })
                    }
                    _ => Ok(Safe::Valid),
                }
            }
            Strategy::Minimal => match self.max_block_slot() {
                Some(watermark) if slot <= watermark => {
                    Err(Refusal::BlockSlotNotAboveWatermark { slot, watermark })
                }
                _ => Ok(Safe::Valid),
            },
        }
    }

    /// Decides whether signing an attestation is safe, without recording it.
    pub fn attestation_safety(
        &self,
        strategy: Strategy,
        source_epoch: u64,
        target_epoch: u64,
        signing_root: Option<Root>,
    ) -> Result<Safe, Refusal> {
        if source_epoch > target_epoch {
            return Err(Refusal::SourceExceedsTarget {
                source_epoch,
                target_epoch,
            });
        }
        let mut repeat = false;
        for a in self
            .attestations
            .iter()
            .filter(|a| a.target_epoch == target_epoch)
        {
            if a.source_epoch == source_epoch && same_root(a.signing_root, signing_root) {
                repeat = true;
            } else {
                return Err(Refusal::DoubleVote { target_epoch });
            }
        }
        if repeat && strategy == Strategy::Complete {
            return Ok(Safe::SameData);
        }
        for a in &self.attestations {
            let (prev_source, prev_target) = (a.source_epoch, a.target_epoch);
            if prev_source < source_epoch && target_epoch < prev_target {
                return Err(Refusal::SurroundedVote {
                    source_epoch,
                    target_epoch,
                    prev_source,
                    prev_target,
                });
            }
            if source_epoch < prev_source && prev_target < target_epoch {
                return Err(Refusal::SurroundingVote {
                    source_epoch,
                    target_epoch,
                    prev_source,
                    prev_target,
                });
            }
        }
        match strategy {
            Strategy::Minimal => {
                if let Some(watermark) = self.max_source_epoch() {
                    if source_epoch < watermark {
                        return Err(Refusal::SourceBelowWatermark {
                            source_epoch,
                            watermark,
                        });
                    }
                }
                if let Some(watermark) = self.max_target_epoch() {
                    if target_epoch <= watermark {
                        return Err(Refusal::TargetNotAboveWatermark {
                            target_epoch,
                            watermark,
                        });
                    }
                }
            }
            Strategy::Complete => {
                if let Some(lower_bound) = self.attestations.iter().map(|a| a.source_epoch).min() {
                    if source_epoch < lower_bound {
                        return Err(Refusal::SourceBelowLowerBound {
                            source_epoch,
                            lower_bound,
                        });
                    }
                }
                if let Some(lower_bound) = self.attestations.iter().map(|a| a.target_epoch).min() {
                    if target_epoch <= lower_bound {
                        return Err(Refusal::TargetNotAboveLowerBound {
                            target_epoch,
                            lower_bound,
                        });
                    }
                }
            }
        }
        Ok(Safe::Valid)
    }

    /// Finds slashable data inside this history (`O(n log n)`): double proposals, double
    /// votes, surround votes (each surrounded attestation once, with the widest earlier-source
    /// attestation that surrounds it) and attestations whose source is after the target.
    pub fn find_slashable(&self) -> Vec<Finding> {
        let mut findings = Vec::new();

        let mut blocks = self.blocks.clone();
        blocks.sort_by_key(|b| b.slot);
        for group in blocks.chunk_by(|a, b| a.slot == b.slot) {
            let first = group[0];
            if group.len() > 1
                && !group
                    .iter()
                    .all(|b| same_root(b.signing_root, first.signing_root))
            {
                findings.push(Finding::DoubleBlock { slot: first.slot });
            }
        }

        let mut atts = self.attestations.clone();
        atts.sort_by_key(|a| (a.target_epoch, a.source_epoch));
        for group in atts.chunk_by(|a, b| a.target_epoch == b.target_epoch) {
            let first = group[0];
            if group.len() > 1
                && !group.iter().all(|a| {
                    a.source_epoch == first.source_epoch
                        && same_root(a.signing_root, first.signing_root)
                })
            {
                findings.push(Finding::DoubleVote {
                    target_epoch: first.target_epoch,
                });
            }
        }
        for a in &atts {
            if a.source_epoch > a.target_epoch {
                findings.push(Finding::SourceExceedsTarget {
                    source_epoch: a.source_epoch,
                    target_epoch: a.target_epoch,
                });
            }
        }

        atts.sort_by_key(|a| (a.source_epoch, a.target_epoch));
        atts.dedup_by_key(|a| (a.source_epoch, a.target_epoch));
        // Widest (max target) attestation among strictly smaller sources seen so far.
        let mut widest: Option<(u64, u64)> = None;
        for group in atts.chunk_by(|a, b| a.source_epoch == b.source_epoch) {
            if let Some(outer) = widest {
                for a in group.iter().filter(|a| a.target_epoch < outer.1) {
                    findings.push(Finding::SurroundVote {
                        outer,
                        inner: (a.source_epoch, a.target_epoch),
                    });
                }
            }
            if let Some(last) = group.last() {
                if !matches!(widest, Some(w) if last.target_epoch <= w.1) {
                    widest = Some((last.source_epoch, last.target_epoch));
                }
            }
        }
        findings
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn att(s: u64, t: u64) -> SignedAttestation {
        SignedAttestation {
            source_epoch: s,
            target_epoch: t,
            signing_root: None,
        }
    }

    #[test]
    fn finds_surrounds_efficiently() {
        let h = History {
            blocks: vec![],
            attestations: vec![att(0, 1), att(1, 2), att(0, 10), att(3, 4), att(3, 4)],
        };
        let f = h.find_slashable();
        assert!(f.contains(&Finding::SurroundVote {
            outer: (0, 10),
            inner: (1, 2)
        }));
        assert!(f.contains(&Finding::SurroundVote {
            outer: (0, 10),
            inner: (3, 4)
        }));
        // Same (source, target) without roots is a double vote, not a surround.
        assert!(f.contains(&Finding::DoubleVote { target_epoch: 4 }));
        assert_eq!(f.len(), 3, "{f:?}");
    }

    #[test]
    fn minimal_refuses_everything_at_or_below_watermarks() {
        let h = History {
            blocks: vec![SignedBlock {
                slot: 10,
                signing_root: Some(Root([1; 32])),
            }],
            attestations: vec![att(5, 6)],
        };
        let root = Some(Root([1; 32]));
        assert_eq!(
            h.block_safety(Strategy::Minimal, 10, root),
            Err(Refusal::BlockSlotNotAboveWatermark {
                slot: 10,
                watermark: 10
            })
        );
        assert_eq!(
            h.block_safety(Strategy::Complete, 10, root),
            Ok(Safe::SameData)
        );
        assert_eq!(h.block_safety(Strategy::Minimal, 11, None), Ok(Safe::Valid));
        assert!(h.attestation_safety(Strategy::Minimal, 4, 7, None).is_err());
        assert_eq!(
            h.attestation_safety(Strategy::Minimal, 5, 7, None),
            Ok(Safe::Valid)
        );
        assert_eq!(
            h.attestation_safety(Strategy::Minimal, 8, 7, None),
            Err(Refusal::SourceExceedsTarget {
                source_epoch: 8,
                target_epoch: 7
            })
        );
    }
}
