//! EIP-2335 keystore creation (encryption), for tests, benchmarks and fixtures.

use rand::RngCore;

use crate::kdf::Kdf;
use crate::keystore::{
    apply_aes_128_ctr, checksum, normalize_pubkey, CryptoJson, KeystoreError, KeystoreJson, Module,
};
use crate::password::process_password;

/// KDF choice for a new keystore; the salt is drawn at random.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KdfChoice {
    /// scrypt with `n = 2^log_n`, `r = 8`, `p = 1` (`log_n = 18` is the EIP-2335 reference).
    Scrypt {
        /// Base-2 logarithm of the cost `n`.
        log_n: u8,
    },
    /// PBKDF2-HMAC-SHA256 with `c` rounds (`c = 262144` is the EIP-2335 reference).
    Pbkdf2 {
        /// Iteration count.
        c: u32,
    },
}

impl KdfChoice {
    /// The reference parameters used by deposit tooling: scrypt `n = 2^18, r = 8, p = 1`.
    pub const REFERENCE_SCRYPT: KdfChoice = KdfChoice::Scrypt { log_n: 18 };
}

/// What to put in a new keystore besides the secret and password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewKeystore<'a> {
    /// BLS public key (hex, with or without `0x`); this crate does no BLS arithmetic, so the
    /// caller states it.
    pub pubkey: &'a str,
    /// EIP-2334 derivation path, e.g. `m/12381/3600/0/0/0` (may be empty).
    pub path: &'a str,
    /// Free text.
    pub description: Option<&'a str>,
    /// Key derivation.
    pub kdf: KdfChoice,
}

/// Encrypts `secret` under `password` into an EIP-2335 keystore: random 32-byte salt and 16-byte
/// IV, AES-128-CTR with `dk[0..16]`, checksum `SHA256(dk[16..32] ++ ciphertext)`, random UUID v4.
pub fn create_keystore(
    secret: &[u8],
    password: &str,
    spec: &NewKeystore<'_>,
) -> Result<KeystoreJson, KeystoreError> {
    let mut rng = rand::thread_rng();
    let mut salt = vec![0u8; 32];
    rng.fill_bytes(&mut salt);
    let mut iv = [0u8; 16];
    rng.fill_bytes(&mut iv);

    let kdf = match spec.kdf {
        KdfChoice::Scrypt { log_n } => Kdf::Scrypt {
            n: 1u64.checked_shl(u32::from(log_n)).unwrap_or(0),
            r: 8,
            p: 1,
            salt,
        },
        KdfChoice::Pbkdf2 { c } => Kdf::Pbkdf2 { c, salt },
    };
    // Round-trip through validation so a new keystore obeys the same limits as a read one.
    let kdf = Kdf::from_module(kdf.function_name(), &kdf.params_json())?;

    let dk = kdf.derive(&process_password(password))?;
    let mut ciphertext = secret.to_vec();
    apply_aes_128_ctr(&dk, &iv, &mut ciphertext);
    let sum = checksum(&dk, &ciphertext);
    let pubkey = normalize_pubkey(spec.pubkey)?;

    Ok(KeystoreJson {
        crypto: CryptoJson {
            kdf: Module {
                function: kdf.function_name().into(),
                params: kdf.params_json(),
                message: String::new(),
            },
            checksum: Module {
                function: "sha256".into(),
                params: serde_json::json!({}),
                message: hex::encode(sum),
            },
            cipher: Module {
                function: "aes-128-ctr".into(),
                params: serde_json::json!({ "iv": hex::encode(iv) }),
                message: hex::encode(&ciphertext),
            },
        },
        description: spec.description.map(str::to_string),
        pubkey: Some(pubkey.trim_start_matches("0x").to_string()),
        path: Some(spec.path.to_string()),
        uuid: Some(uuid_v4(&mut rng)),
        name: None,
        pubkeys: None,
        version: 4,
    })
}

fn uuid_v4(rng: &mut impl RngCore) -> String {
    let mut b = [0u8; 16];
    rng.fill_bytes(&mut b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keystore::Keystore;

    #[test]
    fn created_keystore_round_trips() {
        let secret = [7u8; 32];
        let pk = "aa".repeat(48);
        let json = create_keystore(
            &secret,
            "pässword\n",
            &NewKeystore {
                pubkey: &pk,
                path: "m/12381/3600/0/0/0",
                description: Some("test"),
                kdf: KdfChoice::Pbkdf2 { c: 16 },
            },
        )
        .expect("create");
        let text = serde_json::to_string_pretty(&json).expect("serialise");
        let ks = Keystore::from_json_str(&text).expect("parse");
        assert_eq!(ks.pubkey.as_deref(), Some(format!("0x{pk}").as_str()));
        assert!(ks.verify_password("pässword").expect("verify"));
        assert!(ks.verify_password("pa\u{308}ssword").expect("verify nfkd"));
        assert!(!ks.verify_password("password").expect("verify"));
        assert_eq!(ks.decrypt("pässword").expect("decrypt").as_slice(), &secret);
        let uuid = json.uuid.expect("uuid");
        assert_eq!(uuid.len(), 36);
        assert_eq!(&uuid[14..15], "4");
    }

    #[test]
    fn scrypt_keystore_round_trips() {
        let json = create_keystore(
            &[1u8; 32],
            "pw",
            &NewKeystore {
                pubkey: &"bb".repeat(48),
                path: "",
                description: None,
                kdf: KdfChoice::Scrypt { log_n: 10 },
            },
        )
        .expect("create");
        let ks = Keystore::from_json(json).expect("valid");
        assert_eq!(ks.memory_cost(), 128 * 8 * 1024);
        assert!(ks.verify_password("pw").expect("verify"));
    }
}
