//! The migration plan: the keys in batches, a small test batch first.

use serde::{Deserialize, Serialize};

pub const PLAN_KIND: &str = "vtool-migration-plan";

/// `vtool migrate plan`'s output, the input of `vtool migrate run`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    /// Always [`PLAN_KIND`].
    pub kind: String,
    pub version: u32,
    /// Validator pubkeys (`0x…` lowercase) per batch, in the order they move.
    pub batches: Vec<Vec<String>>,
}

#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("no keys to plan")]
    NoKeys,
    #[error("--batch-size and --first-batch must be at least 1")]
    ZeroBatch,
    #[error("{0} is not a migration plan: {1}")]
    NotAPlan(String, String),
    #[error("{0} appears twice in the plan")]
    Duplicate(String),
}

/// `first` keys in the first batch, then `size` per batch, in the order given.
pub fn plan(pubkeys: &[String], size: usize, first: usize) -> Result<Plan, PlanError> {
    if pubkeys.is_empty() {
        return Err(PlanError::NoKeys);
    }
    if size == 0 || first == 0 {
        return Err(PlanError::ZeroBatch);
    }
    let mut batches = vec![pubkeys[..first.min(pubkeys.len())].to_vec()];
    batches.extend(
        pubkeys[first.min(pubkeys.len())..]
            .chunks(size)
            .map(<[String]>::to_vec),
    );
    Ok(Plan {
        kind: PLAN_KIND.into(),
        version: 1,
        batches,
    })
}

impl Plan {
    /// Read a plan, refusing anything else and any key that appears twice.
    pub fn parse(name: &str, text: &str) -> Result<Plan, PlanError> {
        let plan: Plan = serde_json::from_str(text)
            .map_err(|e| PlanError::NotAPlan(name.into(), e.to_string()))?;
        if plan.kind != PLAN_KIND {
            return Err(PlanError::NotAPlan(
                name.into(),
                format!("kind {:?}", plan.kind),
            ));
        }
        let mut seen = std::collections::BTreeSet::new();
        for k in plan.batches.iter().flatten() {
            if !seen.insert(k) {
                return Err(PlanError::Duplicate(k.clone()));
            }
        }
        if seen.is_empty() {
            return Err(PlanError::NoKeys);
        }
        Ok(plan)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_test_batch_then_even_batches() {
        let keys: Vec<String> = (0..10).map(|i| format!("k{i}")).collect();
        let p = plan(&keys, 4, 2).expect("plan");
        let sizes: Vec<usize> = p.batches.iter().map(Vec::len).collect();
        assert_eq!(sizes, [2, 4, 4]);
        assert_eq!(p.batches.concat(), keys);
        let text = serde_json::to_string(&p).expect("json");
        assert_eq!(Plan::parse("p", &text).expect("parse"), p);
        assert!(matches!(
            Plan::parse("p", &text.replace("k3", "k1")),
            Err(PlanError::Duplicate(_))
        ));
        assert_eq!(plan(&keys, 20, 20).expect("plan").batches.len(), 1);
    }
}
