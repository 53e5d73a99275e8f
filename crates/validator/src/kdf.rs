//! EIP-2335 key derivation: scrypt and PBKDF2-HMAC-SHA256, with their memory cost.

use sha2::Sha256;
use zeroize::Zeroizing;

/// Length of the derived key used by EIP-2335 (`dklen`).
pub const DK_LEN: usize = 32;

/// Largest scrypt working set accepted from a keystore file (4 GiB).
///
/// The reference parameters (`n = 2^18`, `r = 8`) need 256 MiB; a file asking for more than this
/// is refused as malformed instead of letting a hostile file exhaust memory.
pub const MAX_SCRYPT_MEMORY: u64 = 4 << 30;

/// Largest PBKDF2 iteration count accepted from a keystore file (the reference value is 2^18).
pub const MAX_PBKDF2_ROUNDS: u32 = 1 << 26;

/// Nominal memory charged for one PBKDF2 derivation (PBKDF2 is not memory-hard).
pub const PBKDF2_MEMORY: u64 = 64 << 10;

/// Errors of key derivation parameters.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KdfError {
    /// The `function` field names an algorithm EIP-2335 does not allow.
    #[error("unsupported kdf function {0:?} (expected \"scrypt\" or \"pbkdf2\")")]
    UnsupportedFunction(String),
    /// PBKDF2 with a pseudo-random function other than HMAC-SHA256.
    #[error("unsupported pbkdf2 prf {0:?} (expected \"hmac-sha256\")")]
    UnsupportedPrf(String),
    /// A parameter is missing, has the wrong type, or is out of range.
    #[error("invalid kdf parameter: {0}")]
    InvalidParam(String),
}

/// A validated key derivation function with its parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kdf {
    /// scrypt with cost `n` (a power of two), block size `r` and parallelism `p`.
    Scrypt {
        /// CPU/memory cost (power of two).
        n: u64,
        /// Block size.
        r: u32,
        /// Parallelisation.
        p: u32,
        /// Salt bytes.
        salt: Vec<u8>,
    },
    /// PBKDF2 with HMAC-SHA256 and `c` rounds.
    Pbkdf2 {
        /// Iteration count.
        c: u32,
        /// Salt bytes.
        salt: Vec<u8>,
    },
}

impl Kdf {
    /// Validates the `function` and `params` of a keystore's `crypto.kdf` module.
    pub fn from_module(function: &str, params: &serde_json::Value) -> Result<Kdf, KdfError> {
        let salt = hex_param(params, "salt")?;
        let dklen = u64_param(params, "dklen")?;
        if dklen != DK_LEN as u64 {
            return Err(KdfError::InvalidParam(format!(
                "dklen is {dklen}, EIP-2335 requires 32"
            )));
        }
        match function {
            "scrypt" => {
                let n = u64_param(params, "n")?;
                let r = u32_param(params, "r")?;
                let p = u32_param(params, "p")?;
                if n < 2 || !n.is_power_of_two() {
                    return Err(KdfError::InvalidParam(format!(
                        "scrypt n = {n} is not a power of two >= 2"
                    )));
                }
                if r == 0 || p == 0 {
                    return Err(KdfError::InvalidParam("scrypt r and p must be > 0".into()));
                }
                let kdf = Kdf::Scrypt { n, r, p, salt };
                if kdf.memory_cost() > MAX_SCRYPT_MEMORY {
                    return Err(KdfError::InvalidParam(format!(
                        "scrypt needs {} bytes, above the {MAX_SCRYPT_MEMORY}-byte limit",
                        kdf.memory_cost()
                    )));
                }
                // Let the scrypt crate apply its own consistency rules now, not at derivation.
                kdf.scrypt_params()?;
                Ok(kdf)
            }
            "pbkdf2" => {
                let prf = params.get("prf").and_then(|v| v.as_str()).unwrap_or("");
                if prf != "hmac-sha256" {
                    return Err(KdfError::UnsupportedPrf(prf.to_string()));
                }
                let c = u32_param(params, "c")?;
                if c == 0 || c > MAX_PBKDF2_ROUNDS {
                    return Err(KdfError::InvalidParam(format!(
                        "pbkdf2 c = {c} outside 1..={MAX_PBKDF2_ROUNDS}"
                    )));
                }
                Ok(Kdf::Pbkdf2 { c, salt })
            }
            other => Err(KdfError::UnsupportedFunction(other.to_string())),
        }
    }

    /// The `function` name as written in a keystore.
    pub fn function_name(&self) -> &'static str {
        match self {
            Kdf::Scrypt { .. } => "scrypt",
            Kdf::Pbkdf2 { .. } => "pbkdf2",
        }
    }

    /// The `params` object as written in a keystore.
    pub fn params_json(&self) -> serde_json::Value {
        match self {
            Kdf::Scrypt { n, r, p, salt } => serde_json::json!({
                "dklen": DK_LEN,
                "n": n,
                "p": p,
                "r": r,
                "salt": hex::encode(salt),
            }),
            Kdf::Pbkdf2 { c, salt } => serde_json::json!({
                "dklen": DK_LEN,
                "c": c,
                "prf": "hmac-sha256",
                "salt": hex::encode(salt),
            }),
        }
    }

    /// Bytes of memory one derivation needs: `128 * r * n` for scrypt (the `V` array, which
    /// dominates; 256 MiB for `n = 2^18, r = 8`), [`PBKDF2_MEMORY`] for PBKDF2.
    pub fn memory_cost(&self) -> u64 {
        match self {
            Kdf::Scrypt { n, r, .. } => 128u64.saturating_mul(u64::from(*r)).saturating_mul(*n),
            Kdf::Pbkdf2 { .. } => PBKDF2_MEMORY,
        }
    }

    fn scrypt_params(&self) -> Result<scrypt::Params, KdfError> {
        match self {
            Kdf::Scrypt { n, r, p, .. } => {
                let log_n = u8::try_from(n.trailing_zeros())
                    .map_err(|_| KdfError::InvalidParam("scrypt n too large".into()))?;
                scrypt::Params::new(log_n, *r, *p, DK_LEN)
                    .map_err(|e| KdfError::InvalidParam(format!("scrypt n={n} r={r} p={p}: {e}")))
            }
            Kdf::Pbkdf2 { .. } => Err(KdfError::InvalidParam("not scrypt".into())),
        }
    }

    /// Derives the 32-byte decryption key from an already processed password
    /// (see [`crate::password::process_password`]).
    pub fn derive(&self, password: &[u8]) -> Result<Zeroizing<[u8; DK_LEN]>, KdfError> {
        let mut dk = Zeroizing::new([0u8; DK_LEN]);
        match self {
            Kdf::Scrypt { salt, .. } => {
                let params = self.scrypt_params()?;
                scrypt::scrypt(password, salt, &params, dk.as_mut_slice())
                    .map_err(|e| KdfError::InvalidParam(format!("scrypt output: {e}")))?;
            }
            Kdf::Pbkdf2 { c, salt } => {
                pbkdf2::pbkdf2_hmac::<Sha256>(password, salt, *c, dk.as_mut_slice());
            }
        }
        Ok(dk)
    }
}

fn param<'a>(params: &'a serde_json::Value, name: &str) -> Result<&'a serde_json::Value, KdfError> {
    params
        .get(name)
        .ok_or_else(|| KdfError::InvalidParam(format!("missing {name:?}")))
}

fn u64_param(params: &serde_json::Value, name: &str) -> Result<u64, KdfError> {
    param(params, name)?
        .as_u64()
        .ok_or_else(|| KdfError::InvalidParam(format!("{name:?} is not a non-negative integer")))
}

fn u32_param(params: &serde_json::Value, name: &str) -> Result<u32, KdfError> {
    u32::try_from(u64_param(params, name)?)
        .map_err(|_| KdfError::InvalidParam(format!("{name:?} does not fit in 32 bits")))
}

fn hex_param(params: &serde_json::Value, name: &str) -> Result<Vec<u8>, KdfError> {
    let text = param(params, name)?
        .as_str()
        .ok_or_else(|| KdfError::InvalidParam(format!("{name:?} is not a string")))?;
    hex::decode(text).map_err(|e| KdfError::InvalidParam(format!("{name:?} is not hex: {e}")))
}
