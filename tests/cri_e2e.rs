//! End to end through a real containerd's CRI API: a pod on the
//! `strict-groups` handler gets exactly the supplementary groups of
//! KEP-3619's `supplementalGroupsPolicy: Strict` ({gid} ∪ D), for its main
//! process and for every exec; the same pod on the plain `runc` handler gets
//! the merged groups ({gid} ∪ D ∪ I). The expectations come from the KEP and
//! from what each scenario's image grants, never from the wrapper.
//!
//! One test runs every scenario on one private containerd and prints a line
//! per scenario and handler.

mod common;

use common::containerd::containerd_version;
use common::cri::{CriNode, HANDLERS, PodSpec};
use common::oci_image::OciImage;
use common::{POLICY, require_root};

const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\nalice:x:1000:1000::/home/alice:/bin/sh\n";
const KEP_GROUP: &str = "root:x:0:\nalice:x:1000:\ngroup-in-image:x:50000:alice\n";

/// One pod shape, run on both handlers.
struct Scenario {
    name: &'static str,
    image: OciImage,
    pod: PodSpec,
    /// The process's primary gid.
    gid: u32,
    /// The groups the image's /etc/group grants the user (containerd's
    /// lookup; with no runAsUser, containerd 1.6 looks up uid 0).
    image_groups: Vec<u32>,
    /// Expected policy on the strict-groups handler.
    strict_handler_merges: bool,
    /// A second container in the same pod.
    second_container: bool,
}

fn pod(name: &str, uid: Option<i64>, groups: &[i64]) -> PodSpec {
    PodSpec {
        name: name.to_string(),
        run_as_user: uid,
        supplemental_groups: groups.to_vec(),
        ..Default::default()
    }
}

fn image(name: &str) -> OciImage {
    OciImage::new(&format!("localhost/strict-groups-test/{name}:1"))
}

fn kep_image() -> OciImage {
    image("kep")
        .file("/etc/passwd", PASSWD)
        .file("/etc/group", KEP_GROUP)
}

fn scenarios() -> Vec<Scenario> {
    let base = |name, image, pod, gid, image_groups: &[u32]| Scenario {
        name,
        image,
        pod,
        gid,
        image_groups: image_groups.to_vec(),
        strict_handler_merges: false,
        second_container: false,
    };
    vec![
        Scenario {
            second_container: true,
            ..base(
                "kep-example",
                kep_image(),
                pod("kep", Some(1000), &[60000]),
                1000,
                &[50000],
            )
        },
        base(
            "run-as-user-unset",
            image("root-user")
                .file("/etc/passwd", PASSWD)
                .file("/etc/group", "root:x:0:\nwheel:x:10:root\n"),
            pod("nouser", None, &[60000]),
            0,
            &[10],
        ),
        // The image's USER is alice, the pod sets no runAsUser: the process
        // runs as alice, but containerd 1.6 looks up the groups of uid 0
        // (1.7: of the image's USER). Strict is the same on both.
        base(
            "image-user-without-run-as-user",
            image("image-user")
                .user("alice")
                .file("/etc/passwd", PASSWD)
                .file(
                    "/etc/group",
                    "root:x:0:\nwheel:x:10:root\ngroup-in-image:x:50000:alice\n",
                ),
            pod("imageuser", None, &[60000]),
            1000,
            if containerd_version() >= (1, 7) {
                &[50000]
            } else {
                &[10]
            },
        ),
        base(
            "run-as-group-set",
            kep_image(),
            PodSpec {
                run_as_group: Some(3000),
                ..pod("rungroup", Some(1000), &[60000])
            },
            3000,
            &[50000],
        ),
        // The kubelet sends fsGroup (2000) and a volume's gid (3000) in
        // supplemental_groups, beside supplementalGroups (60000).
        base(
            "fsgroup-and-volume-gid",
            kep_image(),
            pod("fsgroup", Some(1000), &[60000, 2000, 3000]),
            1000,
            &[50000],
        ),
        base(
            "declared-gid-the-image-also-grants",
            kep_image(),
            pod("alsoimage", Some(1000), &[50000]),
            1000,
            &[50000],
        ),
        base(
            "image-puts-user-in-group-0",
            image("group0")
                .file("/etc/passwd", PASSWD)
                .file("/etc/group", "root:x:0:alice\nalice:x:1000:\n"),
            pod("group0", Some(1000), &[60000]),
            1000,
            &[0],
        ),
        base(
            "no-etc-group",
            image("nogroup").file("/etc/passwd", PASSWD),
            pod("nogroup", Some(1000), &[60000]),
            1000,
            &[],
        ),
        base(
            "symlinked-etc-group",
            image("symlink")
                .file("/etc/passwd", PASSWD)
                .file("/etc/group.image", KEP_GROUP)
                .symlink("/etc/group", "/etc/group.image"),
            pod("symlink", Some(1000), &[60000]),
            1000,
            &[50000],
        ),
        // containerd finds /etc/group by its own walk, which applies `..`
        // to the text: `nope/../grp` is /etc/grp though /etc/nope does not
        // exist (the kernel finds nothing there).
        base(
            "etc-group-through-a-missing-dir",
            image("dotdot")
                .file("/etc/passwd", PASSWD)
                .file("/etc/grp", KEP_GROUP)
                .symlink("/etc/group", "nope/../grp"),
            pod("dotdot", Some(1000), &[60000]),
            1000,
            &[50000],
        ),
        base(
            "user-name-differs-from-uid",
            image("bob")
                .file(
                    "/etc/passwd",
                    "root:x:0:0::/root:/bin/sh\nbob:x:1000:1000::/:/bin/sh\n",
                )
                .file(
                    "/etc/group",
                    "bob:x:1000:\nfor-bob:x:51000:bob\nfor-alice:x:52000:alice\n",
                ),
            pod("bob", Some(1000), &[60000]),
            1000,
            &[51000],
        ),
        // The handler passes every pod annotation (`pod_annotations = ["*"]`):
        // the pod claims to be a sandbox in CRI-O's words and in containerd's
        // (which containerd overwrites). Only containerd's own keys count.
        base(
            "forged-runtime-annotations",
            kep_image(),
            PodSpec {
                annotations: vec![
                    ("io.kubernetes.cri-o.ContainerType".into(), "sandbox".into()),
                    ("io.kubernetes.cri-o.SandboxID".into(), "forged".into()),
                    ("io.kubernetes.cri.container-type".into(), "sandbox".into()),
                ],
                ..pod("forged", Some(1000), &[60000])
            },
            1000,
            &[50000],
        ),
        base(
            "merge-annotation-not-allowed",
            kep_image(),
            PodSpec {
                annotations: vec![(POLICY.into(), "Merge".into())],
                ..pod("merge-refused", Some(1000), &[60000])
            },
            1000,
            &[50000],
        ),
    ]
}

fn expected(s: &Scenario, merged: bool) -> Vec<u32> {
    let mut v: Vec<u32> = std::iter::once(s.gid)
        .chain(s.pod.supplemental_groups.iter().map(|&g| g as u32))
        .chain(if merged {
            s.image_groups.clone()
        } else {
            Vec::new()
        })
        .collect();
    v.sort();
    v.dedup();
    v
}

struct Report {
    checks: usize,
    failures: Vec<String>,
}

impl Report {
    /// A check that is not a list of groups: `shown` is printed, and
    /// `failure` recorded unless `ok`.
    fn outcome(&mut self, scenario: &str, handler: &str, shown: &str, ok: bool, failure: String) {
        println!(
            "{:<38} {:<14} {} {}",
            scenario,
            handler,
            shown,
            if ok { "ok" } else { "FAIL" }
        );
        if !ok {
            self.failures.push(failure);
        }
    }

    fn check(&mut self, scenario: &str, handler: &str, what: &str, got: &[u32], want: &[u32]) {
        let ok = got == want;
        self.checks += 1;
        println!(
            "{:<38} {:<14} {:<22} got {:<28} want {:<28} {}",
            scenario,
            handler,
            what,
            format!("{got:?}"),
            format!("{want:?}"),
            if ok { "ok" } else { "FAIL" }
        );
        if !ok {
            self.failures.push(format!(
                "{scenario} on {handler}: {what} {got:?} != {want:?}"
            ));
        }
    }
}

/// Does the pod (runAsUser) or the image (USER) name the process's user?
fn user_named(s: &Scenario) -> bool {
    s.pod.run_as_user.is_some() || s.image.user.is_some()
}

/// The pseudo-handler name of a pod on the `runc` handler with KEP-3619's
/// own `supplementalGroupsPolicy: Strict` (containerd 2.0+).
const NATIVE_STRICT: &str = "runc+Strict";

/// Runs `s` on `handler` (or on runc with native Strict) and checks the main
/// process, an exec, and (if the scenario has one) a second container.
/// Returns what each process got, by process name.
fn run_scenario(
    node: &mut CriNode,
    report: &mut Report,
    s: &Scenario,
    handler: &str,
) -> Vec<(String, Vec<u32>)> {
    let native = handler == NATIVE_STRICT;
    let merged = handler == "runc" || (handler == "strict-groups" && s.strict_handler_merges);
    let mut want = expected(s, merged);
    // containerd 2's own Strict lists the primary gid only when the pod or
    // the image names a user (its WithUser adds it); otherwise the process
    // has gid 0 and no 0 among its supplementary groups.
    if native && !user_named(s) {
        want.retain(|&g| g != s.gid || s.pod.supplemental_groups.contains(&(g as i64)));
    }
    let spec = PodSpec {
        name: format!("{}-{}", s.name, handler.replace('+', "-").to_lowercase()),
        native_strict: native,
        ..s.pod.clone()
    };
    let real_handler = if native { "runc" } else { handler };
    let pod = node
        .run_pod(real_handler, &spec)
        .unwrap_or_else(|e| panic!("RunPodSandbox {}: {e}", spec.name));
    let mut containers = vec!["app"];
    if s.second_container {
        containers.push("second");
    }
    let mut got = Vec::new();
    for name in containers {
        let id = node
            .start_container(&pod, name, &s.image.name)
            .unwrap_or_else(|e| panic!("{} {name} on {handler}: {e}", s.name));
        let (main, exec) = node.groups(&id);
        let (main_what, exec_what) = (format!("{name} main process"), format!("{name} exec"));
        report.check(s.name, handler, &main_what, &main, &want);
        report.check(s.name, handler, &exec_what, &exec, &want);
        got.push((main_what, main));
        got.push((exec_what, exec));
    }
    node.remove_pod(&pod);
    got
}

#[test]
fn pods_get_native_strict_groups_through_containerd() {
    require_root();
    let started = std::time::Instant::now();
    println!(
        "containerd {}, wrapper {}",
        common::containerd::containerd_release(),
        common::wrapper_bin()
    );
    let mut node = CriNode::start();
    let scenarios = scenarios();
    // and merge-annotation-allowed, bad-annotation-value,
    // containerd-restarted-then-exec, decision-sources.
    let scenario_count = scenarios.len() + 4;
    let mut imported = std::collections::HashSet::new();
    for s in &scenarios {
        if imported.insert(s.image.name.clone()) {
            node.import(&s.image);
        }
    }
    let mut report = Report {
        checks: 0,
        failures: Vec::new(),
    };

    // containerd 2.0+ has KEP-3619's Strict itself: the same pod with it on
    // plain runc is the reference the wrapper must equal, process by process.
    let native = containerd_version() >= (2, 0);
    for s in &scenarios {
        let mut by_handler = std::collections::HashMap::new();
        for handler in HANDLERS.into_iter().chain(native.then_some(NATIVE_STRICT)) {
            by_handler.insert(handler, run_scenario(&mut node, &mut report, s, handler));
        }
        if let Some(reference) = by_handler.get(NATIVE_STRICT) {
            for ((what, ours), (_, theirs)) in by_handler["strict-groups"].iter().zip(reference) {
                if user_named(s) {
                    report.check(s.name, "wrapper=native", what, ours, theirs);
                } else {
                    // The one known difference: see the README's "What ran where".
                    let mut ours_without_gid = ours.clone();
                    ours_without_gid.retain(|&g| g != s.gid);
                    report.check(
                        s.name,
                        "wrapper-gid=native",
                        what,
                        &ours_without_gid,
                        theirs,
                    );
                }
            }
        }
    }

    // A pod may relax Strict to Merge only when the node allows it.
    node.set_wrapper_config("allow_merge_annotation = true\n");
    let allowed = Scenario {
        name: "merge-annotation-allowed",
        strict_handler_merges: true,
        pod: PodSpec {
            annotations: vec![(POLICY.into(), "Merge".into())],
            ..pod("merge-allowed", Some(1000), &[60000])
        },
        ..scenarios.into_iter().next().unwrap()
    };
    for handler in HANDLERS {
        run_scenario(&mut node, &mut report, &allowed, handler);
    }
    node.set_wrapper_config("");

    bad_annotation_fails_start_with_a_clear_error(&mut node, &mut report);
    exec_after_containerd_restart(&mut node, &mut report);
    decisions_come_from_containerd(&node, &mut report);
    the_report_names_each_workload_and_its_image_groups(&node, &mut report);

    println!(
        "result: {} scenarios on runc and strict-groups{}, {} group checks (main process, exec), {} failed; Strict on strict-groups{}, merged on runc; D from containerd's record ({:.0} s)",
        scenario_count,
        if native {
            " and on runc with native Strict"
        } else {
            ""
        },
        report.checks,
        report.failures.len(),
        if native {
            " equal to native Strict's for every process (but for gid 0, see the README)"
        } else {
            ""
        },
        started.elapsed().as_secs_f64()
    );
    assert!(report.failures.is_empty(), "{:#?}", report.failures);
}

/// A bad annotation value: on strict-groups StartContainer fails and the
/// error the kubelet gets (and `kubectl describe pod` shows) names
/// strict-groups; plain runc ignores the annotation.
fn bad_annotation_fails_start_with_a_clear_error(node: &mut CriNode, report: &mut Report) {
    let image = kep_image().name;
    for handler in HANDLERS {
        let spec = PodSpec {
            annotations: vec![(POLICY.into(), "Lenient".into())],
            ..pod(&format!("bad-annotation-{handler}"), Some(1000), &[60000])
        };
        let pod = node.run_pod(handler, &spec).unwrap();
        let result = node.start_container(&pod, "app", &image);
        let (outcome, ok) = match (&result, handler) {
            (Err(e), "strict-groups") => {
                let msg = e.message();
                (
                    format!("refused: {msg}"),
                    msg.contains("strict-groups:") && msg.contains("Lenient"),
                )
            }
            (Ok(_), "runc") => ("started".to_string(), true),
            (Ok(_), _) => ("started".to_string(), false),
            (Err(e), _) => (format!("refused: {}", e.message()), false),
        };
        let failure = format!("bad-annotation-value on {handler}: {outcome}");
        report.outcome("bad-annotation-value", handler, &outcome, ok, failure);
        node.remove_pod(&pod);
    }
}

/// containerd restarted while the pod runs: the next exec still gets the
/// Strict groups (containerd's record survives; the shim keeps running).
fn exec_after_containerd_restart(node: &mut CriNode, report: &mut Report) {
    let kep = scenarios().into_iter().next().unwrap();
    for handler in HANDLERS {
        let spec = PodSpec {
            name: format!("restart-{handler}"),
            ..kep.pod.clone()
        };
        let pod = node.run_pod(handler, &spec).unwrap();
        let id = node.start_container(&pod, "app", &kep.image.name).unwrap();
        node.restart_containerd();
        let (main, exec) = node.groups(&id);
        let want = expected(&kep, handler == "runc");
        report.check(
            "containerd-restarted-then-exec",
            handler,
            "main process",
            &main,
            &want,
        );
        report.check(
            "containerd-restarted-then-exec",
            handler,
            "exec",
            &exec,
            &want,
        );
        node.remove_pod(&pod);
    }
}

/// Every create decision that needed D took it from containerd's record of
/// the CRI request (the exact source), on this containerd version too: the
/// rootfs fallback would give these pods the same groups, so the groups alone
/// do not show it. (Execs are cut to the main process's groups: source
/// "container"; sandboxes and Merge need no D: "none".)
fn decisions_come_from_containerd(node: &CriNode, report: &mut Report) {
    let mut sources = std::collections::BTreeMap::<String, usize>::new();
    for d in node.decisions() {
        let key = format!("{}:{}", d["action"].as_str().unwrap_or("?"), d["source"]);
        *sources.entry(key.replace('"', "")).or_default() += 1;
    }
    let ok = sources.contains_key("create:containerd")
        && sources.keys().all(|k| {
            matches!(
                k.as_str(),
                "create:containerd" | "create:none" | "exec:container"
            )
        });
    let shown = format!("{sources:?}");
    let failure = format!("decision sources: {shown}");
    report.outcome("decision-sources", "strict-groups", &shown, ok, failure);
}

/// `strict-groups report` over this node's decision log, plain and gzipped
/// (as a rotated log is): every decision counted twice, and the KEP pod
/// (two containers, 50000 removed from each create and exec) one row.
fn the_report_names_each_workload_and_its_image_groups(node: &CriNode, report: &mut Report) {
    let dir = tempfile::tempdir().unwrap();
    let gz = dir.path().join("decisions.log.1.gz");
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "gzip -c < {} > {}",
            node.decision_log.display(),
            gz.display()
        ))
        .status()
        .unwrap();
    assert!(out.success());
    let out = std::process::Command::new(common::wrapper_bin())
        .args(["report", "--json"])
        .arg(&node.decision_log)
        .arg(&gz)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let decisions = node.decisions();
    let logged = decisions.len() as u64;
    // The KEP pod's creates and execs (the main process and each exec
    // arrive with the merged groups), every one removing 50000.
    let kep_logged = decisions
        .iter()
        .filter(|d| d["pod_name"] == "kep-example-strict-groups")
        .inspect(|d| assert_eq!(d["removed"], serde_json::json!([50000]), "{d}"))
        .count() as u64;
    let kep = json["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["workload"] == "kep-example-strict-groups")
        .cloned()
        .unwrap_or_default();
    let ok = json["decisions"] == 2 * logged
        && json["malformed_lines"] == 0
        && kep["removed"] == serde_json::json!([50000])
        && kep["count"] == 2 * kep_logged
        && kep["namespace"] == "default";
    let shown = format!(
        "{} decisions in the log, report counted {} over it and its gzip copy, {} rows; kep-example: {}",
        logged,
        json["decisions"],
        json["rows"].as_array().map_or(0, Vec::len),
        kep,
    );
    report.outcome(
        "report",
        "strict-groups",
        &shown,
        ok,
        format!("report: {json}"),
    );
}
