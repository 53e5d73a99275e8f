//! What custody is held over: an Ethereum validator pubkey or a Solana identity, and where
//! its record lives in etcd.

use std::fmt;

use serde::{Serialize, Serializer};

use super::CustodyError;

/// Every record lives under this prefix; the version lets a later schema sit beside it.
pub(crate) const PREFIX: &str = "/vtool/custody/v1/";

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Chain {
    Eth,
    Sol,
}

impl Chain {
    fn word(self) -> &'static str {
        match self {
            Chain::Eth => "eth",
            Chain::Sol => "sol",
        }
    }
}

/// A key under custody, shown (and serialized) as `eth/0x…` or `sol/<identity>`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CustodyKey {
    pub chain: Chain,
    /// `0x`-prefixed lowercase hex (48 bytes), or a base58 identity.
    pub id: String,
}

const BASE58: &str = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";

impl CustodyKey {
    /// A validator pubkey, normalized to `0x` lowercase.
    pub fn eth(pubkey: &str) -> Result<CustodyKey, CustodyError> {
        let id = crate::keystore::normalize_pubkey(pubkey)
            .map_err(|_| CustodyError::Options(format!("{pubkey}: not a 48-byte hex pubkey")))?;
        Ok(CustodyKey {
            chain: Chain::Eth,
            id,
        })
    }

    /// A Solana identity (base58 of 32 bytes: 32 to 44 characters).
    pub fn sol(identity: &str) -> Result<CustodyKey, CustodyError> {
        let ok =
            (32..=44).contains(&identity.len()) && identity.chars().all(|c| BASE58.contains(c));
        if !ok {
            return Err(CustodyError::Options(format!(
                "{identity}: not a base58 Solana identity"
            )));
        }
        Ok(CustodyKey {
            chain: Chain::Sol,
            id: identity.to_string(),
        })
    }

    /// Its record's etcd key.
    pub fn path(&self) -> String {
        format!("{PREFIX}{self}")
    }

    /// The key a record path names, checked as strictly as keys given by a user.
    pub(crate) fn from_path(path: &str) -> Result<CustodyKey, String> {
        let rest = path
            .strip_prefix(PREFIX)
            .ok_or_else(|| format!("not under {PREFIX}"))?;
        let parsed = match rest.split_once('/') {
            Some(("eth", id)) => CustodyKey::eth(id),
            Some(("sol", id)) => CustodyKey::sol(id),
            _ => return Err("neither eth/ nor sol/".into()),
        };
        match parsed {
            Ok(k) if k.path() == path => Ok(k),
            Ok(_) => Err("not in normal form".into()),
            Err(e) => Err(e.to_string()),
        }
    }
}

impl fmt::Display for CustodyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.chain.word(), self.id)
    }
}

impl Serialize for CustodyKey {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PK: &str = "0xb845089a1457f811bfc000588fbb4e713669be8ce060ea6be3c6ece09afc3794106c91ca73acda5e5457122d58723bed";

    #[test]
    fn paths_round_trip_and_reject_other_forms() {
        let k = CustodyKey::eth(&PK.to_uppercase().replace("0X", "0x")).expect("eth");
        assert_eq!(k.path(), format!("/vtool/custody/v1/eth/{PK}"));
        assert_eq!(CustodyKey::from_path(&k.path()), Ok(k));
        let s = CustodyKey::sol("7Np41oeYqPefeNQEHSv1UDhYrehxin3NStELsSKCT4K2").expect("sol");
        assert_eq!(CustodyKey::from_path(&s.path()), Ok(s));
        assert!(CustodyKey::sol("0OIl0OIl0OIl0OIl0OIl0OIl0OIl0OIl").is_err());
        let upper = format!("/vtool/custody/v1/eth/0x{}", PK[2..].to_uppercase());
        assert!(CustodyKey::from_path(&upper).is_err());
        assert!(CustodyKey::from_path("/vtool/custody/v1/btc/x").is_err());
    }
}
