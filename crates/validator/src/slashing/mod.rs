//! EIP-3076 slashing protection: the interchange format (v5), a small in-memory database with
//! the signing-safety rules, and check / subset / merge operations on interchange files.

pub mod db;
pub mod interchange;
pub mod ops;
pub mod rules;

pub use db::{ImportSummary, SlashingDb, SlashingError};
pub use interchange::{
    Interchange, InterchangeError, Metadata, PublicKey, Root, SignedAttestation, SignedBlock,
    ValidatorData,
};
pub use ops::{check, merge, subset, summarize, CheckSummary, KeySummary, MergeError, Subset};
pub use rules::{Finding, History, Refusal, Safe, Strategy};
