//! Operations on interchange files: check (summarise), subset and merge.

use std::collections::HashSet;

use super::db::histories;
use super::interchange::{Interchange, InterchangeError, PublicKey, Root, ValidatorData};
use super::rules::Finding;

/// Summary of one validator in an interchange (all its entries together).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeySummary {
    /// The validator.
    pub pubkey: PublicKey,
    /// Number of signed blocks.
    pub blocks: usize,
    /// Number of signed attestations.
    pub attestations: usize,
    /// Highest signed block slot.
    pub highest_block_slot: Option<u64>,
    /// Highest attestation source epoch.
    pub highest_source_epoch: Option<u64>,
    /// Highest attestation target epoch.
    pub highest_target_epoch: Option<u64>,
    /// Slashable data in this validator's history.
    pub slashable: Vec<Finding>,
}

/// Result of [`check`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckSummary {
    /// The chain.
    pub genesis_validators_root: Root,
    /// One entry per distinct pubkey, in order of first appearance.
    pub keys: Vec<KeySummary>,
}

impl CheckSummary {
    /// True when some validator's history contains slashable data.
    pub fn has_slashable_data(&self) -> bool {
        self.keys.iter().any(|k| !k.slashable.is_empty())
    }
}

/// Parses and validates interchange JSON, then summarises it ([`summarize`]).
pub fn check(json: &str) -> Result<CheckSummary, InterchangeError> {
    Ok(summarize(&Interchange::from_json_str(json)?))
}

/// Summarises an already parsed interchange.
pub fn summarize(interchange: &Interchange) -> CheckSummary {
    CheckSummary {
        genesis_validators_root: interchange.metadata.genesis_validators_root,
        keys: histories(&interchange.data)
            .into_iter()
            .map(|(pubkey, h)| KeySummary {
                pubkey,
                blocks: h.blocks.len(),
                attestations: h.attestations.len(),
                highest_block_slot: h.max_block_slot(),
                highest_source_epoch: h.max_source_epoch(),
                highest_target_epoch: h.max_target_epoch(),
                slashable: h.find_slashable(),
            })
            .collect(),
    }
}

/// Result of [`subset`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subset {
    /// The interchange with only the requested validators' entries (original order).
    pub interchange: Interchange,
    /// Requested pubkeys absent from the input.
    pub missing: Vec<PublicKey>,
}

/// Keeps only the entries of `pubkeys`.
pub fn subset(interchange: &Interchange, pubkeys: &[PublicKey]) -> Subset {
    let wanted: HashSet<PublicKey> = pubkeys.iter().copied().collect();
    let present: HashSet<PublicKey> = interchange.data.iter().map(|v| v.pubkey).collect();
    let mut seen = HashSet::new();
    Subset {
        interchange: Interchange {
            metadata: interchange.metadata.clone(),
            data: interchange
                .data
                .iter()
                .filter(|v| wanted.contains(&v.pubkey))
                .cloned()
                .collect(),
        },
        missing: pubkeys
            .iter()
            .copied()
            .filter(|pk| !present.contains(pk) && seen.insert(*pk))
            .collect(),
    }
}

/// Errors merging interchanges.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MergeError {
    /// Nothing to merge.
    #[error("no interchange to merge")]
    Empty,
    /// Inputs are for different chains.
    #[error(
        "interchange #{index} is for genesis_validators_root {found}, the first is for {expected}"
    )]
    GenesisMismatch {
        /// Index (0-based) of the offending input.
        index: usize,
        /// Root of the first input.
        expected: Root,
        /// Root of the offending input.
        found: Root,
    },
}

/// Merges interchanges of one chain with the minimal strategy: per validator, one block at the
/// highest slot and one attestation with the highest source and highest target epochs seen in any
/// input (without signing roots). Importing the result protects every validator at least as well
/// as importing every input. Validators appear in order of first appearance.
pub fn merge(interchanges: &[Interchange]) -> Result<Interchange, MergeError> {
    let first = interchanges.first().ok_or(MergeError::Empty)?;
    let expected = first.metadata.genesis_validators_root;
    for (index, ic) in interchanges.iter().enumerate() {
        let found = ic.metadata.genesis_validators_root;
        if found != expected {
            return Err(MergeError::GenesisMismatch {
                index,
                expected,
                found,
            });
        }
    }
    let all: Vec<ValidatorData> = interchanges
        .iter()
        .flat_map(|ic| ic.data.iter().cloned())
        .collect();
    let mut merged = Interchange::new(expected);
    merged.data = histories(&all)
        .into_iter()
        .map(|(pubkey, h)| {
            let min = h.minify();
            ValidatorData {
                pubkey,
                signed_blocks: min.blocks,
                signed_attestations: min.attestations,
            }
        })
        .collect();
    Ok(merged)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::slashing::interchange::{SignedAttestation, SignedBlock};

    fn entry(pk: u8, slots: &[u64], atts: &[(u64, u64)]) -> ValidatorData {
        ValidatorData {
            pubkey: PublicKey([pk; 48]),
            signed_blocks: slots
                .iter()
                .map(|&slot| SignedBlock {
                    slot,
                    signing_root: Some(Root([9; 32])),
                })
                .collect(),
            signed_attestations: atts
                .iter()
                .map(|&(s, t)| SignedAttestation {
                    source_epoch: s,
                    target_epoch: t,
                    signing_root: None,
                })
                .collect(),
        }
    }

    #[test]
    fn merge_keeps_maxima_and_refuses_other_chain() {
        let mut a = Interchange::new(Root([0; 32]));
        a.data = vec![
            entry(1, &[3, 9], &[(1, 5), (2, 3)]),
            entry(2, &[], &[(0, 1)]),
        ];
        let mut b = Interchange::new(Root([0; 32]));
        b.data = vec![entry(1, &[7], &[(4, 4)]), entry(3, &[1], &[])];
        let m = merge(&[a.clone(), b.clone()]).expect("merge");
        assert_eq!(m.data.len(), 3);
        assert_eq!(m.data[0].pubkey, PublicKey([1; 48]));
        assert_eq!(
            m.data[0].signed_blocks,
            vec![SignedBlock {
                slot: 9,
                signing_root: None
            }]
        );
        assert_eq!(
            m.data[0].signed_attestations,
            vec![SignedAttestation {
                source_epoch: 4,
                target_epoch: 5,
                signing_root: None
            }]
        );
        assert!(m.data[1].signed_blocks.is_empty());
        assert!(m.data[2].signed_attestations.is_empty());

        let mut c = b.clone();
        c.metadata.genesis_validators_root = Root([1; 32]);
        assert!(matches!(
            merge(&[a, c]),
            Err(MergeError::GenesisMismatch { index: 1, .. })
        ));
        assert_eq!(merge(&[]), Err(MergeError::Empty));
    }

    #[test]
    fn subset_and_summary() {
        let mut a = Interchange::new(Root([0; 32]));
        a.data = vec![
            entry(1, &[3, 9], &[(1, 5), (2, 3)]),
            entry(2, &[], &[]),
            entry(1, &[10], &[]),
        ];
        let s = subset(
            &a,
            &[PublicKey([1; 48]), PublicKey([7; 48]), PublicKey([7; 48])],
        );
        assert_eq!(s.interchange.data.len(), 2);
        assert_eq!(s.missing, vec![PublicKey([7; 48])]);

        let summary = summarize(&a);
        assert_eq!(summary.keys.len(), 2);
        let k = &summary.keys[0];
        assert_eq!((k.blocks, k.attestations), (3, 2));
        assert_eq!(k.highest_block_slot, Some(10));
        assert_eq!(k.highest_source_epoch, Some(2));
        assert_eq!(k.highest_target_epoch, Some(5));
        assert_eq!(
            k.slashable,
            vec![Finding::SurroundVote {
                outer: (1, 5),
                inner: (2, 3)
            }]
        );
        assert_eq!(summary.keys[1].highest_block_slot, None);
    }
}
