//! The decision for one container create, with no side effect: what
//! `create` then applies (or, in audit mode, only records) and what
//! `strict-groups explain` prints. One function, so that the two can never
//! disagree.

use anyhow::Result;

use crate::caller::Caller;
use crate::config::NodeConfig;
use crate::containerd::Endpoint;
use crate::declared;
use crate::policy::{self, Allowed, Decision, POLICY_ANNOTATION, Policy, PolicyChoice};
use crate::rootfs::Rootfs;
use crate::spec::{Config, User};

/// Why the wrapper leaves a spec alone without asking for D.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Skip {
    /// A sandbox (pause) container runs no workload.
    Sandbox,
    /// The policy is Merge.
    Merge,
    /// A holds only the primary gid: nothing can be removed.
    OnlyPrimary,
}

impl Skip {
    pub fn reason(self) -> &'static str {
        match self {
            Skip::Sandbox => "sandbox (pause) container: passed through",
            Skip::Merge => "policy Merge: the groups are kept as the CRI runtime wrote them",
            Skip::OnlyPrimary => "additionalGids holds only the primary gid: nothing to remove",
        }
    }
}

/// What the wrapper decides for one create.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    /// None for a sandbox, whose annotations are not read.
    pub choice: Option<PolicyChoice>,
    pub skip: Option<Skip>,
    /// Where D came from: `containerd`, `rootfs`, or `none` when skipped.
    pub source: String,
    /// Why a less exact source of D was used.
    pub note: Option<String>,
    /// Set when containerd ran the container but its record of D could not
    /// be read: the fallback is then worth an operator's attention.
    pub warning: Option<String>,
    pub decision: Decision,
}

/// The effective policy of a container, from its annotation and the node.
pub fn choose(config: &Config, node: &NodeConfig) -> Result<PolicyChoice> {
    Ok(policy::choose_policy(
        config.annotation(POLICY_ANNOTATION),
        node.default_policy,
        node.allow_merge_annotation,
    )?)
}

/// Nothing can be removed from A when it holds only the primary gid.
pub fn only_primary(user: &User) -> bool {
    user.additional_gids.iter().all(|&g| g == user.gid)
}

/// Decides for container `id` of `bundle` whose spec is `config`, run by
/// `caller`, with D from the containerd that `endpoint` finds or else from
/// the rootfs. Sandbox (pause) containers, which run no workload, are passed
/// through only when the caller says so about this very container.
/// `endpoint` is called only when D is needed: sandboxes, Merge and specs
/// with nothing to remove cost no look-up.
pub fn for_create(
    id: &str,
    rootfs: &Rootfs,
    config: &Config,
    node: &NodeConfig,
    caller: Caller,
    endpoint: impl FnOnce() -> Option<Endpoint>,
) -> Result<Plan> {
    let user = &config.user;
    let keep_all = |choice, skip: Skip| Plan {
        choice,
        skip: Some(skip),
        source: "none".into(),
        note: None,
        warning: None,
        decision: policy::decide(
            &user.additional_gids,
            user.gid,
            Policy::Merge,
            &Allowed::AllBut(Default::default()),
        ),
    };
    if caller.is_sandbox(config, id) {
        return Ok(keep_all(None, Skip::Sandbox));
    }
    let choice = choose(config, node)?;
    if choice.effective == Policy::Merge {
        return Ok(keep_all(Some(choice), Skip::Merge));
    }
    if only_primary(user) {
        return Ok(keep_all(Some(choice), Skip::OnlyPrimary));
    }
    let declared = declared::for_create(id, endpoint().as_ref(), rootfs, config, caller)?;
    let warning = (caller == Caller::Containerd && declared.source == declared::Source::Rootfs)
        .then(|| {
            format!(
                "containerd's record of the pod's groups could not be read, so D comes from \
                 the rootfs: {}",
                declared.note.as_deref().unwrap_or("")
            )
        });
    Ok(Plan {
        choice: Some(choice),
        skip: None,
        source: declared.source.to_string(),
        note: declared.note,
        warning,
        decision: policy::decide(
            &user.additional_gids,
            user.gid,
            choice.effective,
            &declared.allowed,
        ),
    })
}
