//! The decision, as pure data: which of the gids a CRI runtime wrote into
//! `process.user.additionalGids` (A) a process may keep.
//!
//! Nothing here reads a file. Callers say what is allowed ([`Allowed`]), this
//! module partitions A accordingly. Invariants (property-tested below): the kept
//! gids are a subsequence of A, the primary gid is kept whenever A holds it, and
//! deciding again on the kept gids removes nothing.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

/// Annotation through which a pod picks its policy.
pub const POLICY_ANNOTATION: &str = "strict-groups.io/supplemental-groups-policy";

/// The two values of Kubernetes' `supplementalGroupsPolicy`, spelled as there.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize)]
pub enum Policy {
    /// Only the primary gid and the declared groups (KEP-3619).
    Strict,
    /// Whatever the CRI runtime merged: nothing is removed.
    Merge,
}

impl fmt::Display for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Policy::Strict => "Strict",
            Policy::Merge => "Merge",
        })
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid value {0:?} for annotation {POLICY_ANNOTATION}: expected \"Strict\" or \"Merge\"")]
pub struct InvalidPolicy(pub String);

impl FromStr for Policy {
    type Err = InvalidPolicy;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "Strict" => Ok(Policy::Strict),
            "Merge" => Ok(Policy::Merge),
            other => Err(InvalidPolicy(other.to_string())),
        }
    }
}

/// How the policy of one container was chosen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PolicyChoice {
    /// The policy that applies.
    pub effective: Policy,
    /// The pod asked for Merge and the node does not allow it.
    pub merge_refused: bool,
}

/// Picks the policy from the pod's annotation (if any) and the node's settings.
/// A pod may only relax Strict to Merge when the node allows it: the pod author
/// is the party the policy protects against.
pub fn choose_policy(
    annotation: Option<&str>,
    default_policy: Policy,
    allow_merge_annotation: bool,
) -> Result<PolicyChoice, InvalidPolicy> {
    let requested = match annotation {
        Some(value) => value.parse::<Policy>()?,
        None => default_policy,
    };
    let refused = annotation.is_some()
        && requested == Policy::Merge
        && default_policy == Policy::Strict
        && !allow_merge_annotation;
    Ok(PolicyChoice {
        effective: if refused { Policy::Strict } else { requested },
        merge_refused: refused,
    })
}

/// Which supplementary gids a process may keep, besides its primary gid.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Allowed {
    /// Exactly these (the declared groups D, or the gids the container's main
    /// process got, for an exec).
    Only(BTreeSet<u32>),
    /// Any gid but these (the image groups I recomputed from the rootfs, when
    /// D is not known: a declared gid that the image also grants is removed).
    AllBut(BTreeSet<u32>),
}

impl Allowed {
    fn permits(&self, gid: u32) -> bool {
        match self {
            Allowed::Only(set) => set.contains(&gid),
            Allowed::AllBut(set) => !set.contains(&gid),
        }
    }
}

/// The outcome for one process: A split into what stays and what goes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Decision {
    /// Gids kept, in A's order.
    pub kept: Vec<u32>,
    /// Gids removed, in A's order.
    pub removed: Vec<u32>,
}

impl Decision {
    /// True when A must be rewritten.
    pub fn changes(&self) -> bool {
        !self.removed.is_empty()
    }
}

/// Splits `additional_gids` (A) under `policy`: under Merge everything is
/// kept; under Strict a gid is kept if it is the primary `gid` or `allowed`.
pub fn decide(additional_gids: &[u32], gid: u32, policy: Policy, allowed: &Allowed) -> Decision {
    let mut decision = Decision::default();
    for &g in additional_gids {
        let keep = policy == Policy::Merge || g == gid || allowed.permits(g);
        if keep {
            decision.kept.push(g);
        } else {
            decision.removed.push(g);
        }
    }
    decision
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn only(gids: &[u32]) -> Allowed {
        Allowed::Only(gids.iter().copied().collect())
    }

    #[test]
    fn kep_example_removes_the_image_group() {
        // alice (1000) is in group-in-image (50000); the pod declares 60000.
        let d = decide(&[1000, 50000, 60000], 1000, Policy::Strict, &only(&[60000]));
        assert_eq!(d.kept, vec![1000, 60000]);
        assert_eq!(d.removed, vec![50000]);
    }

    #[test]
    fn declared_gid_that_the_image_also_grants_is_kept() {
        let d = decide(&[1000, 50000], 1000, Policy::Strict, &only(&[50000]));
        assert_eq!(d.removed, Vec::<u32>::new());
    }

    #[test]
    fn group_zero_from_the_image_is_removed_unless_primary() {
        let d = decide(&[1000, 0], 1000, Policy::Strict, &only(&[]));
        assert_eq!(d.removed, vec![0]);
        let d = decide(&[0], 0, Policy::Strict, &only(&[]));
        assert!(!d.changes());
    }

    #[test]
    fn fallback_removes_image_groups_even_when_declared() {
        let d = decide(
            &[1000, 50000, 60000],
            1000,
            Policy::Strict,
            &Allowed::AllBut([50000, 1000].into()),
        );
        assert_eq!(d.kept, vec![1000, 60000]);
        assert_eq!(d.removed, vec![50000]);
    }

    #[test]
    fn merge_keeps_everything() {
        let d = decide(&[1000, 50000], 1000, Policy::Merge, &only(&[]));
        assert!(!d.changes());
        assert_eq!(d.kept, vec![1000, 50000]);
    }

    #[test]
    fn policy_choice() {
        use Policy::*;
        let c = |a, d, m| choose_policy(a, d, m).unwrap();
        assert_eq!(c(None, Strict, false).effective, Strict);
        assert_eq!(c(None, Merge, false).effective, Merge);
        assert_eq!(c(Some("Merge"), Strict, true).effective, Merge);
        let refused = c(Some("Merge"), Strict, false);
        assert_eq!((refused.effective, refused.merge_refused), (Strict, true));
        assert_eq!(c(Some("Strict"), Merge, false).effective, Strict);
        for bad in ["strict", "merge", "", " Strict", "Strict\n", "None"] {
            assert_eq!(
                choose_policy(Some(bad), Strict, true),
                Err(InvalidPolicy(bad.to_string()))
            );
        }
    }

    fn allowed_strategy() -> impl Strategy<Value = Allowed> {
        prop_oneof![
            prop::collection::btree_set(0u32..64, 0..8).prop_map(Allowed::Only),
            prop::collection::btree_set(0u32..64, 0..8).prop_map(Allowed::AllBut),
        ]
    }

    fn policy_strategy() -> impl Strategy<Value = Policy> {
        prop_oneof![Just(Policy::Strict), Just(Policy::Merge)]
    }

    proptest! {
        #[test]
        fn result_is_an_ordered_subset_of_a_and_keeps_the_primary_gid(
            a in prop::collection::vec(0u32..64, 0..16),
            gid in 0u32..64,
            policy in policy_strategy(),
            allowed in allowed_strategy(),
        ) {
            let d = decide(&a, gid, policy, &allowed);
            // kept and removed partition A, each in A's order.
            let mut it = a.iter();
            for k in &d.kept {
                prop_assert!(it.any(|x| x == k));
            }
            prop_assert_eq!(d.kept.len() + d.removed.len(), a.len());
            if a.contains(&gid) {
                prop_assert!(d.kept.contains(&gid));
            }
            for r in &d.removed {
                prop_assert!(a.contains(r));
                prop_assert_ne!(*r, gid);
                prop_assert_eq!(policy, Policy::Strict);
            }
        }

        #[test]
        fn deciding_twice_is_deciding_once(
            a in prop::collection::vec(0u32..64, 0..16),
            gid in 0u32..64,
            policy in policy_strategy(),
            allowed in allowed_strategy(),
        ) {
            let once = decide(&a, gid, policy, &allowed);
            let twice = decide(&once.kept, gid, policy, &allowed);
            prop_assert_eq!(&twice.kept, &once.kept);
            prop_assert!(!twice.changes());
        }

        #[test]
        fn exact_source_gives_native_strict(
            gid in 0u32..64,
            declared in prop::collection::btree_set(0u32..64, 0..8),
            image in prop::collection::btree_set(0u32..64, 0..8),
        ) {
            // A as containerd merges it: {gid} ∪ I ∪ D, sorted and deduplicated.
            let a: BTreeSet<u32> = std::iter::once(gid).chain(image).chain(declared.iter().copied()).collect();
            let a: Vec<u32> = a.into_iter().collect();
            let d = decide(&a, gid, Policy::Strict, &Allowed::Only(declared.clone()));
            let native: Vec<u32> = std::iter::once(gid).chain(declared).collect::<BTreeSet<_>>().into_iter().collect();
            prop_assert_eq!(d.kept, native);
        }
    }
}
