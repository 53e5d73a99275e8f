//! Validator knowledge for vtool: proofs that EIP-2335 keystores open with their passwords, and
//! EIP-3076 slashing-protection interchange handling.
//!
//! # Keystores
//!
//! ```no_run
//! use std::path::{Path, PathBuf};
//! use vtool_validator::{check_keystores, CheckOptions, KeyStatus, PasswordSource};
//!
//! let options = CheckOptions {
//!     passwords: PasswordSource::Dir(PathBuf::from("/var/lib/lighthouse/validators/secrets")),
//!     memory_budget: 1 << 30, // at most four 256 MiB scrypt derivations at once
//! };
//! let report = check_keystores(Path::new("/var/lib/lighthouse/validators"), &options)?;
//! for key in &report.keys {
//!     if key.status != KeyStatus::Ok {
//!         println!("{:?} {}: {:?}", key.pubkey, key.path.display(), key.status);
//!     }
//! }
//! println!("{} of {} keys open", report.ok_count(), report.keys.len());
//! # Ok::<(), vtool_validator::DiscoverError>(())
//! ```
//!
//! A single keystore can be checked with [`Keystore::verify_password`]; test keystores are made
//! with [`create_keystore`].
//!
//! # Slashing protection
//!
//! ```
//! use vtool_validator::slashing::{self, SlashingDb, Strategy};
//!
//! let json = r#"{
//!   "metadata": {
//!     "interchange_format_version": "5",
//!     "genesis_validators_root": "0x04700007fabc8282644aed6d1c7c9e21d38a03a0c4ba193f3afe428824b3a673"
//!   },
//!   "data": [{
//!     "pubkey": "0xb845089a1457f811bfc000588fbb4e713669be8ce060ea6be3c6ece09afc3794106c91ca73acda5e5457122d58723bed",
//!     "signed_blocks": [{ "slot": "81952" }],
//!     "signed_attestations": [{ "source_epoch": "2290", "target_epoch": "3007" }]
//!   }]
//! }"#;
//! let summary = slashing::check(json)?;
//! assert_eq!(summary.keys[0].highest_block_slot, Some(81952));
//!
//! let interchange = slashing::Interchange::from_json_str(json)?;
//! let pubkey = interchange.data[0].pubkey;
//! let mut db = SlashingDb::new(interchange.metadata.genesis_validators_root, Strategy::Minimal);
//! db.import(&interchange)?;
//! assert!(db.check_block(&pubkey, 81952, None).is_err());
//! assert!(db.check_block(&pubkey, 81953, None).is_ok());
//! assert!(db.check_attestation(&pubkey, 2290, 3007, None).is_err());
//! assert!(db.check_attestation(&pubkey, 2290, 3008, None).is_ok());
//!
//! let merged = slashing::merge(&[interchange.clone(), db.export()])?;
//! let only = slashing::subset(&merged, &[pubkey]);
//! assert!(only.missing.is_empty());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod beacon;
pub mod budget;
pub mod custody;
pub mod definitions;
pub mod discover;
pub mod holdings;
mod http;
pub mod kdf;
pub mod keymanager;
pub mod keys_check;
pub mod keystore;
pub mod keystore_create;
pub mod liveness;
pub mod password;
pub mod profiles;
pub mod pubkeys;
pub mod slashing;
pub mod tower;

pub use budget::{BudgetStats, MemoryBudget, DEFAULT_MEMORY_BUDGET};
pub use discover::{find_keystores, DiscoverError, FoundKeystore, Layout};
pub use kdf::{Kdf, KdfError};
pub use keys_check::{
    check_found_keystores, check_keystores, CheckOptions, CheckReport, KeyReport, KeyStatus,
};
pub use keystore::{Keystore, KeystoreError, KeystoreJson};
pub use keystore_create::{create_keystore, KdfChoice, NewKeystore};
pub use password::{process_password, PasswordLookup, PasswordSource};
pub use pubkeys::{keystore_pubkeys, PubkeysError};
