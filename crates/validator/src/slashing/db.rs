//! A small in-memory slashing-protection database: EIP-3076 import and signing checks.

use std::collections::BTreeMap;

use super::interchange::{
    Interchange, PublicKey, Root, SignedAttestation, SignedBlock, ValidatorData,
};
use super::rules::{Finding, History, Refusal, Safe, Strategy};

/// Errors importing an interchange.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SlashingError {
    /// The interchange is for another chain.
    #[error("genesis_validators_root {found} does not match this database's {expected}")]
    GenesisMismatch {
        /// The database's chain.
        expected: Root,
        /// The interchange's chain.
        found: Root,
    },
    /// The interchange format version is not 5.
    #[error("unsupported interchange_format_version {0:?} (expected \"5\")")]
    UnsupportedVersion(String),
}

/// What an import did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportSummary {
    /// Distinct validators in the interchange.
    pub validators: usize,
    /// Blocks read.
    pub blocks: usize,
    /// Attestations read.
    pub attestations: usize,
    /// Slashable data inside the interchange (imported anyway: the watermarks stay safe).
    pub slashable: Vec<(PublicKey, Finding)>,
}

/// Slashing protection for the validators of one chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlashingDb {
    genesis_validators_root: Root,
    strategy: Strategy,
    validators: BTreeMap<PublicKey, History>,
}

/// Groups an interchange's entries by pubkey (a pubkey may appear several times).
pub(crate) fn histories(data: &[ValidatorData]) -> Vec<(PublicKey, History)> {
    let mut order = Vec::new();
    let mut by_key: BTreeMap<PublicKey, History> = BTreeMap::new();
    for v in data {
        let h = by_key.entry(v.pubkey).or_insert_with(|| {
            order.push(v.pubkey);
            History::default()
        });
        h.blocks.extend_from_slice(&v.signed_blocks);
        h.attestations.extend_from_slice(&v.signed_attestations);
    }
    order
        .into_iter()
        .filter_map(|pk| by_key.remove(&pk).map(|h| (pk, h)))
        .collect()
}

impl SlashingDb {
    /// An empty database for the chain identified by `genesis_validators_root`.
    pub fn new(genesis_validators_root: Root, strategy: Strategy) -> SlashingDb {
        SlashingDb {
            genesis_validators_root,
            strategy,
            validators: BTreeMap::new(),
        }
    }

    /// The chain this database protects.
    pub fn genesis_validators_root(&self) -> Root {
        self.genesis_validators_root
    }

    /// The strategy in use.
    pub fn strategy(&self) -> Strategy {
        self.strategy
    }

    /// The recorded history of a validator.
    pub fn history(&self, pubkey: &PublicKey) -> Option<&History> {
        self.validators.get(pubkey)
    }

    /// Imports an interchange, all or nothing. The minimal strategy keeps, per validator, only
    /// the watermarks of the imported data (highest slot, highest source, highest target); the
    /// complete strategy keeps every record. Slashable data is imported (the watermarks it
    /// yields are safe) and reported in the summary.
    pub fn import(&mut self, interchange: &Interchange) -> Result<ImportSummary, SlashingError> {
        let version = &interchange.metadata.interchange_format_version;
        if version != super::interchange::FORMAT_VERSION {
            return Err(SlashingError::UnsupportedVersion(version.clone()));
        }
        let found = interchange.metadata.genesis_validators_root;
        if found != self.genesis_validators_root {
            return Err(SlashingError::GenesisMismatch {
                expected: self.genesis_validators_root,
                found,
            });
        }
        let mut summary = ImportSummary::default();
        for (pubkey, imported) in histories(&interchange.data) {
            summary.validators += 1;
            summary.blocks += imported.blocks.len();
            summary.attestations += imported.attestations.len();
            summary.slashable.extend(
                imported
                    .find_slashable()
                    .into_iter()
                    .map(|finding| (pubkey, finding)),
            );
            let kept = match self.strategy {
                Strategy::Minimal => imported.minify(),
                Strategy::Complete => imported,
            };
            let history = self.validators.entry(pubkey).or_default();
            history.blocks.extend(kept.blocks);
            history.attestations.extend(kept.attestations);
        }
        Ok(summary)
    }

    /// Checks whether `pubkey` may sign a block at `slot`; records it when it may.
    /// A validator never seen before has an empty history.
    pub fn check_block(
        &mut self,
        pubkey: &PublicKey,
        slot: u64,
        signing_root: Option<Root>,
    ) -> Result<Safe, Refusal> {
        let history = self.validators.entry(*pubkey).or_default();
        let safe = history.block_safety(self.strategy, slot, signing_root)?;
        if safe == Safe::Valid {
            history.blocks.push(SignedBlock { slot, signing_root });
        }
        Ok(safe)
    }

    /// Checks whether `pubkey` may sign an attestation; records it when it may.
    pub fn check_attestation(
        &mut self,
        pubkey: &PublicKey,
        source_epoch: u64,
        target_epoch: u64,
        signing_root: Option<Root>,
    ) -> Result<Safe, Refusal> {
        let history = self.validators.entry(*pubkey).or_default();
        let safe =
            history.attestation_safety(self.strategy, source_epoch, target_epoch, signing_root)?;
        if safe == Safe::Valid {
            history.attestations.push(SignedAttestation {
                source_epoch,
                target_epoch,
                signing_root,
            });
        }
        Ok(safe)
    }

    /// Exports everything recorded as an interchange (pubkeys in ascending order).
    pub fn export(&self) -> Interchange {
        let mut interchange = Interchange::new(self.genesis_validators_root);
        interchange.data = self
            .validators
            .iter()
            .map(|(pubkey, h)| ValidatorData {
                pubkey: *pubkey,
                signed_blocks: h.blocks.clone(),
                signed_attestations: h.attestations.clone(),
            })
            .collect();
        interchange
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn import_rejects_other_chain_and_keeps_state() {
        let mut db = SlashingDb::new(Root([0; 32]), Strategy::Minimal);
        let mut ic = Interchange::new(Root([1; 32]));
        ic.data.push(ValidatorData {
            pubkey: PublicKey([2; 48]),
            signed_blocks: vec![SignedBlock {
                slot: 5,
                signing_root: None,
            }],
            signed_attestations: vec![],
        });
        assert!(matches!(
            db.import(&ic),
            Err(SlashingError::GenesisMismatch { .. })
        ));
        assert!(db.history(&PublicKey([2; 48])).is_none());
        ic.metadata.genesis_validators_root = Root([0; 32]);
        let summary = db.import(&ic).expect("import");
        assert_eq!(summary.validators, 1);
        let pk = PublicKey([2; 48]);
        assert!(db.check_block(&pk, 5, None).is_err());
        assert_eq!(db.check_block(&pk, 6, None), Ok(Safe::Valid));
        assert!(db.check_block(&pk, 6, None).is_err());
        assert_eq!(db.export().data[0].signed_blocks.len(), 2);
    }
}
