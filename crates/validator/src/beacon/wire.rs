//! The Beacon API's JSON as the spec (ethereum/beacon-APIs) writes it, checked strictly:
//! answers wrapped in `data`, integers as quoted decimal strings, roots and keys as `0x` hex
//! of a fixed length. A node that answers otherwise is not trusted for a proof.

use std::collections::BTreeMap;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize};

/// `GET /eth/v1/beacon/genesis`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Genesis {
    #[serde(deserialize_with = "quoted_u64")]
    pub genesis_time: u64,
    /// `0x`-prefixed lowercase hex of 32 bytes.
    #[serde(deserialize_with = "hex32")]
    pub genesis_validators_root: String,
    /// `0x`-prefixed lowercase hex of 4 bytes.
    #[serde(deserialize_with = "hex4")]
    pub genesis_fork_version: String,
}

/// The two values of `GET /eth/v1/config/spec` that timing needs, read from the node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ChainSpec {
    pub seconds_per_slot: u64,
    pub slots_per_epoch: u64,
}

/// `GET /eth/v1/node/syncing`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncStatus {
    #[serde(deserialize_with = "quoted_u64")]
    pub head_slot: u64,
    #[serde(deserialize_with = "quoted_u64")]
    pub sync_distance: u64,
    pub is_syncing: bool,
    /// Absent from older nodes.
    #[serde(default)]
    pub is_optimistic: Option<bool>,
    /// Absent from older nodes.
    #[serde(default)]
    pub el_offline: Option<bool>,
}

/// One checkpoint of `finality_checkpoints`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    #[serde(deserialize_with = "quoted_u64")]
    pub epoch: u64,
    #[serde(deserialize_with = "hex32")]
    pub root: String,
}

/// `GET /eth/v1/beacon/states/head/finality_checkpoints`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finality {
    pub previous_justified: Checkpoint,
    pub current_justified: Checkpoint,
    pub finalized: Checkpoint,
}

/// A validator's index and status (`pending_queued`, `active_ongoing`, `exited_slashed`, …).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ValidatorState {
    pub index: u64,
    pub status: String,
}

/// What a node knows of the pubkeys asked about. Nodes leave unknown validators out of their
/// answer, so `missing` is what was asked and not answered.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ValidatorLookup {
    /// By `0x`-prefixed lowercase pubkey.
    pub found: BTreeMap<String, ValidatorState>,
    pub missing: Vec<String>,
}

/// Validator statuses the spec defines.
const STATUSES: &[&str] = &[
    "pending_initialized",
    "pending_queued",
    "active_ongoing",
    "active_exiting",
    "active_slashed",
    "exited_unslashed",
    "exited_slashed",
    "withdrawal_possible",
    "withdrawal_done",
];

/// `{"data": …}`, the envelope of every answer.
#[derive(Deserialize)]
pub(crate) struct Data<T> {
    pub data: T,
}

/// One entry of the `states/{state_id}/validators` answer.
#[derive(Deserialize)]
pub(crate) struct ValidatorEntry {
    #[serde(deserialize_with = "quoted_u64")]
    pub index: u64,
    #[serde(deserialize_with = "status")]
    pub status: String,
    pub validator: ValidatorFields,
}

#[derive(Deserialize)]
pub(crate) struct ValidatorFields {
    #[serde(deserialize_with = "hex48")]
    pub pubkey: String,
}

/// One entry of the `validator/liveness/{epoch}` answer.
#[derive(Deserialize)]
pub(crate) struct LivenessEntry {
    #[serde(deserialize_with = "quoted_u64")]
    pub index: u64,
    pub is_live: bool,
}

/// An error body (`{"code": 400, "message": "…"}`).
#[derive(Deserialize)]
pub(crate) struct ErrorBody {
    pub message: String,
}

/// The spec's values are all strings; timing needs these two, and never assumes them.
pub(crate) fn chain_spec(data: &BTreeMap<String, serde_json::Value>) -> Result<ChainSpec, String> {
    let field = |name: &str| -> Result<u64, String> {
        match data.get(name) {
            None => Err(format!("{name} is missing")),
            Some(serde_json::Value::String(s)) => {
                parse_decimal(s).map_err(|e| format!("{name}: {e}"))
            }
            Some(other) => Err(format!(
                "{name}: {other} is not a quoted decimal integer (the Beacon API quotes integers)"
            )),
        }
    };
    let spec = ChainSpec {
        seconds_per_slot: field("SECONDS_PER_SLOT")?,
        slots_per_epoch: field("SLOTS_PER_EPOCH")?,
    };
    if spec.seconds_per_slot == 0 || spec.slots_per_epoch == 0 {
        return Err(format!("{spec:?} has a zero"));
    }
    Ok(spec)
}

/// A decimal integer as the spec writes it: digits only, no sign, no spaces.
pub(crate) fn parse_decimal(s: &str) -> Result<u64, String> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("{s:?} is not a decimal integer"));
    }
    s.parse()
        .map_err(|_| format!("{s:?} does not fit in 64 bits"))
}

fn quoted_u64<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    struct Quoted;
    impl Visitor<'_> for Quoted {
        type Value = u64;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a quoted decimal integer (the Beacon API quotes integers)")
        }
        fn visit_str<E: de::Error>(self, s: &str) -> Result<u64, E> {
            parse_decimal(s).map_err(E::custom)
        }
    }
    d.deserialize_any(Quoted)
}

/// `0x` and exactly `N` bytes of hex, returned lowercase.
fn hex_fixed<'de, D: Deserializer<'de>, const N: usize>(d: D) -> Result<String, D::Error> {
    let s = String::deserialize(d)?;
    let digits = s
        .strip_prefix("0x")
        .ok_or_else(|| de::Error::custom(format!("{s:?} does not start with 0x")))?;
    if digits.len() != 2 * N || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(de::Error::custom(format!(
            "{s:?} is not 0x and {N} bytes of hex"
        )));
    }
    Ok(s.to_ascii_lowercase())
}

fn hex4<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    hex_fixed::<D, 4>(d)
}

fn hex32<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    hex_fixed::<D, 32>(d)
}

fn hex48<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    hex_fixed::<D, 48>(d)
}

fn status<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let s = String::deserialize(d)?;
    if STATUSES.contains(&s.as_str()) {
        Ok(s)
    } else {
        Err(de::Error::custom(format!(
            "{s:?} is not a validator status of the spec"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROOT: &str = "0x4b363db94e286120d76eb905340fdd4e54bfe9f06bf33ff6cf5ad27f511bfe95";

    fn genesis(json: &str) -> Result<Genesis, String> {
        serde_json::from_str::<Data<Genesis>>(json)
            .map(|d| d.data)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn genesis_with_quoted_time_and_uppercase_root() {
        let g = genesis(&format!(
            r#"{{"data":{{"genesis_time":"1606824023","genesis_validators_root":"{}","genesis_fork_version":"0x00000000"}}}}"#,
            ROOT.to_uppercase().replace("0X", "0x")
        ))
        .expect("valid");
        assert_eq!(g.genesis_time, 1606824023);
        assert_eq!(g.genesis_validators_root, ROOT);
    }

    #[test]
    fn bare_numbers_and_junk_are_rejected() {
        let bare = genesis(&format!(
            r#"{{"data":{{"genesis_time":1606824023,"genesis_validators_root":"{ROOT}","genesis_fork_version":"0x00000000"}}}}"#
        ))
        .expect_err("bare number");
        assert!(bare.contains("quoted decimal integer"), "{bare}");
        for junk in [
            "\"-1\"",
            "\"+1\"",
            "\"1.5\"",
            "\"\"",
            "\" 1\"",
            "\"18446744073709551616\"",
        ] {
            let e = genesis(&format!(
                r#"{{"data":{{"genesis_time":{junk},"genesis_validators_root":"{ROOT}","genesis_fork_version":"0x00000000"}}}}"#
            ))
            .expect_err(junk);
            assert!(
                e.contains("decimal integer") || e.contains("64 bits"),
                "{junk}: {e}"
            );
        }
    }

    #[test]
    fn bad_hex_is_rejected() {
        for root in [
            &ROOT[2..],
            &ROOT[..64],
            "0xzz63db94e286120d76eb905340fdd4e54bfe9f06bf33ff6cf5ad27f511bfe95",
        ] {
            let e = genesis(&format!(
                r#"{{"data":{{"genesis_time":"1","genesis_validators_root":"{root}","genesis_fork_version":"0x00000000"}}}}"#
            ))
            .expect_err(root);
            assert!(e.contains("0x"), "{root}: {e}");
        }
    }

    #[test]
    fn missing_fields_and_envelope_are_rejected() {
        let e = genesis(r#"{"data":{"genesis_time":"1","genesis_fork_version":"0x00000000"}}"#)
            .expect_err("no root");
        assert!(e.contains("genesis_validators_root"), "{e}");
        let e = genesis(&format!(
            r#"{{"genesis_time":"1","genesis_validators_root":"{ROOT}","genesis_fork_version":"0x00000000"}}"#
        ))
        .expect_err("no data");
        assert!(e.contains("data"), "{e}");
    }

    #[test]
    fn spec_needs_both_timing_values_quoted() {
        let spec = |json: &str| {
            let data: BTreeMap<String, serde_json::Value> =
                serde_json::from_str(json).expect("object");
            chain_spec(&data)
        };
        assert_eq!(
            spec(r#"{"SECONDS_PER_SLOT":"12","SLOTS_PER_EPOCH":"32","BLOB_SCHEDULE":[]}"#),
            Ok(ChainSpec {
                seconds_per_slot: 12,
                slots_per_epoch: 32
            })
        );
        let e = spec(r#"{"SECONDS_PER_SLOT":"12"}"#).expect_err("missing");
        assert!(e.contains("SLOTS_PER_EPOCH is missing"), "{e}");
        let e = spec(r#"{"SECONDS_PER_SLOT":12,"SLOTS_PER_EPOCH":"32"}"#).expect_err("bare");
        assert!(e.contains("quoted"), "{e}");
        assert!(spec(r#"{"SECONDS_PER_SLOT":"0","SLOTS_PER_EPOCH":"32"}"#).is_err());
    }

    #[test]
    fn syncing_optional_flags_and_statuses() {
        let s: Data<SyncStatus> = serde_json::from_str(
            r#"{"data":{"head_slot":"10","sync_distance":"0","is_syncing":false}}"#,
        )
        .expect("older node");
        assert_eq!(s.data.is_optimistic, None);
        let e = serde_json::from_str::<Data<Vec<ValidatorEntry>>>(&format!(
            r#"{{"data":[{{"index":"1","status":"active","validator":{{"pubkey":"0x{}"}}}}]}}"#,
            "ab".repeat(48)
        ))
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
        assert!(e.contains("not a validator status"), "{e}");
    }
}
