//! The decision for one container create, with no side effect: what
//! `create` then applies (or, in audit mode, only records) and what
//! `strict-groups explain` prints. One function, so that the two can never
//! disagree.

use anyhow::Result;

use crate::caller::Caller;
use crate::config::NodeConfig;
use crate::containerd::Answer;
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
/// `caller`, with D from containerd's answer that `containerd` gets (None:
/// no containerd to ask), or else from the rootfs. Sandbox (pause)
/// containers, which run no workload, are passed through only when the
/// caller says so about this very container. `containerd` is called only
/// when D is needed: sandboxes, Merge and specs with nothing to remove ask
/// nothing.
pub fn for_create(
    id: &str,
    rootfs: &Rootfs,
    config: &Config,
    node: &NodeConfig,
    caller: Caller,
    containerd: impl FnOnce() -> Option<Answer>,
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
    let declared = declared::for_create(containerd(), rootfs, config, caller)?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Policy;
    use serde_json::json;

    /// The KEP example: uid 1000 in `group-in-image` 50000 in the image,
    /// the pod declares 60000, the CRI runtime merged both.
    fn kep_image() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("etc")).unwrap();
        std::fs::write(
            dir.path().join("etc/passwd"),
            "root:x:0:0::/root:/bin/sh\nalice:x:1000:1000::/home/alice:/bin/sh\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("etc/group"),
            "root:x:0:\nalice:x:1000:\ngroup-in-image:x:50000:alice\n",
        )
        .unwrap();
        dir
    }

    fn config(annotations: serde_json::Value) -> Config {
        let doc = json!({
            "process": {"user": {"uid": 1000, "gid": 1000, "additionalGids": [1000, 50000, 60000]}},
            "annotations": annotations,
        });
        crate::spec::parse_config(doc.to_string().as_bytes()).unwrap()
    }

    /// The plan for `config` over the KEP image, with `answer` as
    /// containerd's; also says whether containerd was asked at all.
    fn plan(config: &Config, node: &NodeConfig, answer: Option<Answer>) -> (Plan, bool) {
        let image = kep_image();
        let rootfs = Rootfs::new(Some(image.path().to_path_buf()));
        let mut asked = false;
        let plan = for_create("c1", &rootfs, config, node, Caller::Containerd, || {
            asked = true;
            answer
        })
        .unwrap();
        (plan, asked)
    }

    #[test]
    fn d_from_containerds_answer_keeps_what_the_pod_declared() {
        let (p, asked) = plan(
            &config(json!({})),
            &NodeConfig::default(),
            Some(Ok(Some(vec![60000]))),
        );
        assert!(asked);
        assert_eq!(p.source, "containerd");
        assert_eq!((p.note, p.warning), (None, None));
        assert_eq!(p.decision.kept, [1000, 60000]);
        assert_eq!(p.decision.removed, [50000]);
    }

    #[test]
    fn without_containerds_record_d_comes_from_the_image_with_a_warning() {
        for (answer, why) in [
            (Ok(None), "containerd holds no CRI record"),
            (
                Err(anyhow::anyhow!("connection refused")),
                "connection refused",
            ),
        ] {
            let (p, _) = plan(&config(json!({})), &NodeConfig::default(), Some(answer));
            assert_eq!(p.source, "rootfs");
            assert!(p.note.as_deref().unwrap().contains(why), "{:?}", p.note);
            assert!(
                p.warning.as_deref().unwrap().contains(why),
                "{:?}",
                p.warning
            );
            // The image's 50000 goes; the declared 60000, which the image
            // does not grant, stays.
            assert_eq!(p.decision.kept, [1000, 60000]);
            assert_eq!(p.decision.removed, [50000]);
        }
        let (p, _) = plan(&config(json!({})), &NodeConfig::default(), None);
        assert_eq!(p.source, "rootfs");
        assert!(p.note.unwrap().contains("no containerd socket known"));
    }

    #[test]
    fn containerd_is_not_asked_when_nothing_can_be_removed() {
        let sandbox = config(json!({
            "io.kubernetes.cri.container-type": "sandbox",
            "io.kubernetes.cri.sandbox-id": "c1",
        }));
        let (p, asked) = plan(&sandbox, &NodeConfig::default(), Some(Ok(Some(vec![]))));
        assert!(!asked);
        assert_eq!((p.skip, p.choice), (Some(Skip::Sandbox), None));
        assert_eq!(p.decision.kept, [1000, 50000, 60000]);

        let merge = NodeConfig {
            default_policy: Policy::Merge,
            ..NodeConfig::default()
        };
        let (p, asked) = plan(&config(json!({})), &merge, Some(Ok(Some(vec![]))));
        assert!(!asked);
        assert_eq!(p.skip, Some(Skip::Merge));
        assert!(!p.decision.changes());

        let doc =
            json!({"process": {"user": {"uid": 1000, "gid": 1000, "additionalGids": [1000]}}});
        let only_primary = crate::spec::parse_config(doc.to_string().as_bytes()).unwrap();
        let (p, asked) = plan(
            &only_primary,
            &NodeConfig::default(),
            Some(Ok(Some(vec![]))),
        );
        assert!(!asked);
        assert_eq!(p.skip, Some(Skip::OnlyPrimary));
    }

    #[test]
    fn a_pod_cannot_relax_the_policy_unless_the_node_allows_it() {
        let relax = config(json!({POLICY_ANNOTATION: "Merge"}));
        let (p, asked) = plan(&relax, &NodeConfig::default(), Some(Ok(Some(vec![]))));
        assert!(asked);
        assert_eq!(p.decision.kept, [1000]);
        let allowing = NodeConfig {
            allow_merge_annotation: true,
            ..NodeConfig::default()
        };
        let (p, asked) = plan(&relax, &allowing, Some(Ok(Some(vec![]))));
        assert!(!asked);
        assert_eq!(p.skip, Some(Skip::Merge));
    }
}
