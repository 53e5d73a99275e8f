//! EIP-3076 slashing-protection interchange format, version 5: serde types and validation.

use std::fmt;
use std::str::FromStr;

use serde::{de, Deserialize, Deserializer, Serialize, Serializer};

/// The only interchange format version supported.
pub const FORMAT_VERSION: &str = "5";

/// Errors reading an interchange document.
#[derive(Debug, thiserror::Error)]
pub enum InterchangeError {
    /// Not JSON, or not shaped like the interchange schema; the message carries line/column.
    #[error("invalid interchange: {0}")]
    Json(#[from] serde_json::Error),
    /// `interchange_format_version` is not `"5"`.
    #[error("unsupported interchange_format_version {0:?} (expected \"5\")")]
    UnsupportedVersion(String),
}

macro_rules! hex_bytes {
    ($(#[$doc:meta])* $name:ident, $len:expr) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub [u8; $len]);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "0x{}", hex::encode(self.0))
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(self, f)
            }
        }

        impl FromStr for $name {
            type Err = String;

            /// Parses `0x`-prefixed hex of exactly the right length.
            fn from_str(text: &str) -> Result<Self, String> {
                let digits = text
                    .strip_prefix("0x")
                    .ok_or_else(|| format!("{text:?} lacks the 0x prefix"))?;
                let bytes = hex::decode(digits).map_err(|e| format!("{text:?}: {e}"))?;
                let len = bytes.len();
                bytes.try_into().map($name).map_err(|_| {
                    format!("{text:?} is {len} bytes, expected {}", $len)
                })
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                text.parse().map_err(de::Error::custom)
            }
        }
    };
}

hex_bytes!(
    /// A 32-byte root (`genesis_validators_root`, `signing_root`), `0x`-hex in JSON.
    Root,
    32
);
hex_bytes!(
    /// A 48-byte BLS public key, `0x`-hex in JSON.
    PublicKey,
    48
);

impl Root {
    /// True for the all-zero root (some clients export it for "unknown").
    pub fn is_zero(&self) -> bool {
        self.0.iter().all(|b| *b == 0)
    }
}

/// Serde for `u64` as a decimal string (slots and epochs).
pub mod decimal {
    use serde::{de, Deserialize, Deserializer, Serializer};

    /// Serialises as a decimal string.
    pub fn serialize<S: Serializer>(value: &u64, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(value)
    }

    /// Parses a decimal string of ASCII digits that fits in `u64`.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
            return Err(de::Error::custom(format!(
                "{text:?} is not a decimal string"
            )));
        }
        text.parse()
            .map_err(|e| de::Error::custom(format!("{text:?}: {e}")))
    }
}

/// The `metadata` object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Metadata {
    /// Must be `"5"`.
    pub interchange_format_version: String,
    /// Identifies the chain.
    pub genesis_validators_root: Root,
}

/// One signed block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedBlock {
    /// Slot of the block.
    #[serde(with = "decimal")]
    pub slot: u64,
    /// Signing root, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signing_root: Option<Root>,
}

/// One signed attestation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedAttestation {
    /// Source epoch.
    #[serde(with = "decimal")]
    pub source_epoch: u64,
    /// Target epoch.
    #[serde(with = "decimal")]
    pub target_epoch: u64,
    /// Signing root, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signing_root: Option<Root>,
}

/// The signing history of one validator (a pubkey may appear in several entries).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ValidatorData {
    /// The validator.
    pub pubkey: PublicKey,
    /// Blocks it signed.
    pub signed_blocks: Vec<SignedBlock>,
    /// Attestations it signed.
    pub signed_attestations: Vec<SignedAttestation>,
}

/// A complete interchange document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Interchange {
    /// Format version and chain.
    pub metadata: Metadata,
    /// Per-validator histories.
    pub data: Vec<ValidatorData>,
}

impl Interchange {
    /// An empty version-5 interchange for a chain.
    pub fn new(genesis_validators_root: Root) -> Interchange {
        Interchange {
            metadata: Metadata {
                interchange_format_version: FORMAT_VERSION.to_string(),
                genesis_validators_root,
            },
            data: Vec::new(),
        }
    }

    /// Parses and validates interchange JSON (schema, hex lengths, decimal strings, version 5).
    pub fn from_json_str(text: &str) -> Result<Interchange, InterchangeError> {
        let interchange: Interchange = serde_json::from_str(text)?;
        interchange.validate()?;
        Ok(interchange)
    }

    /// Reads from any reader (e.g. a file), then validates.
    pub fn from_reader(reader: impl std::io::Read) -> Result<Interchange, InterchangeError> {
        let interchange: Interchange = serde_json::from_reader(reader)?;
        interchange.validate()?;
        Ok(interchange)
    }

    /// Checks what serde cannot: the format version.
    pub fn validate(&self) -> Result<(), InterchangeError> {
        if self.metadata.interchange_format_version != FORMAT_VERSION {
            return Err(InterchangeError::UnsupportedVersion(
                self.metadata.interchange_format_version.clone(),
            ));
        }
        Ok(())
    }

    /// Pretty JSON text.
    pub fn to_json_string(&self) -> Result<String, serde_json::Error> {
        serde_json::to_string_pretty(self)
    }

    /// Distinct pubkeys in order of first appearance.
    pub fn pubkeys(&self) -> Vec<PublicKey> {
        let mut seen = std::collections::HashSet::new();
        self.data
            .iter()
            .map(|v| v.pubkey)
            .filter(|pk| seen.insert(*pk))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GVR: &str = "0x04700007fabc8282644aed6d1c7c9e21d38a03a0c4ba193f3afe428824b3a673";

    fn doc(body: &str) -> String {
        format!(
            r#"{{"metadata":{{"interchange_format_version":"5","genesis_validators_root":"{GVR}"}},"data":[{body}]}}"#
        )
    }

    #[test]
    fn round_trips() {
        let pk = format!("0x{}", "b8".repeat(48));
        let text = doc(&format!(
            r#"{{"pubkey":"{pk}","signed_blocks":[{{"slot":"81952","signing_root":"0x{}"}},{{"slot":"81951"}}],"signed_attestations":[{{"source_epoch":"2290","target_epoch":"3007"}}]}}"#,
            "4f".repeat(32)
        ));
        let ic = Interchange::from_json_str(&text).expect("valid");
        assert_eq!(ic.data[0].signed_blocks[0].slot, 81952);
        assert_eq!(ic.data[0].signed_blocks[1].signing_root, None);
        let again = Interchange::from_json_str(&ic.to_json_string().expect("json")).expect("again");
        assert_eq!(ic, again);
        assert!(!again.to_json_string().expect("json").contains("null"));
    }

    #[test]
    fn rejects_schema_violations() {
        let pk = format!("0x{}", "b8".repeat(48));
        let bad = [
            doc(&format!(
                r#"{{"pubkey":"{pk}","signed_blocks":[{{"slot":1}}],"signed_attestations":[]}}"#
            )),
            doc(&format!(
                r#"{{"pubkey":"{pk}","signed_blocks":[{{"slot":"-1"}}],"signed_attestations":[]}}"#
            )),
            doc(&format!(
                r#"{{"pubkey":"{pk}","signed_blocks":[{{"slot":"18446744073709551616"}}],"signed_attestations":[]}}"#
            )),
            doc(&format!(
                r#"{{"pubkey":"{pk}","signed_blocks":[{{"slot":"1","signing_root":"0x12"}}],"signed_attestations":[]}}"#
            )),
            doc(&format!(
                r#"{{"pubkey":"{}","signed_blocks":[],"signed_attestations":[]}}"#,
                "b8".repeat(48)
            )),
            doc(r#"{"pubkey":"0xb8","signed_blocks":[],"signed_attestations":[]}"#),
            doc(&format!(r#"{{"pubkey":"{pk}","signed_attestations":[]}}"#)),
            doc(&format!(
                r#"{{"pubkey":"{pk}","signed_blocks":[],"signed_attestations":[{{"source_epoch":"1"}}]}}"#
            )),
        ];
        for text in bad {
            assert!(Interchange::from_json_str(&text).is_err(), "{text}");
        }
        let v4 = doc("").replace("\"5\"", "\"4\"");
        assert!(matches!(
            Interchange::from_json_str(&v4),
            Err(InterchangeError::UnsupportedVersion(v)) if v == "4"
        ));
        let short_root = doc("").replace(GVR, "0x1234");
        assert!(Interchange::from_json_str(&short_root).is_err());
    }
}
