//! Operations: audit mode and the decision log over real runc containers,
//! `explain` against what enforce mode then does, `doctor` on scratch roots,
//! and the wrapper's own commands never shadowing a runtime's.

mod common;

use std::path::Path;
use std::process::Command;

use common::containerd::{PrivateContainerd, cri_metadata};
use common::*;
use serde_json::{Value, json};

fn own(args: &[&str]) -> std::process::Output {
    Command::new(wrapper_bin()).args(args).output().unwrap()
}

#[test]
fn audit_mode_changes_nothing_and_records_the_would_be_removal() {
    require_root();
    let log_dir = tempfile::tempdir().unwrap();
    let decisions = log_dir.path().join("decisions.log");
    let config = NodeConfig::new(&format!(
        "mode = \"audit\"\ndecision_log = {:?}\n",
        decisions.display().to_string()
    ));
    let spec = containerd_spec(&["id", "-G"], 1000, 1000, &[1000, 50000, 60000], &[]);
    let b = Bundle::new("audit", &kep_image(), &spec);
    let before = b.config_bytes();
    let out = run_container(&config, &b);
    assert!(out.status.success(), "{out:?}");
    // The container got the merged groups: nothing was enforced.
    assert_eq!(stdout(&out), "1000 50000 60000");
    assert_eq!(
        b.config_bytes(),
        before,
        "config.json must stay byte-identical"
    );
    let d = &b.decisions()[0];
    assert_eq!(d["mode"], "audit");
    assert_eq!(d["removed"], json!([50000]));
    assert_eq!(
        d["summary"],
        "would remove 50000 from pod default/kep-pod container app"
    );
    // The same line, as JSON, in the decision log file.
    let text = std::fs::read_to_string(&decisions).unwrap();
    let line: Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert_eq!(line["summary"], d["summary"]);
    assert_eq!(line["container"], b.id.as_str());
    for key in [
        "time",
        "node",
        "pod_namespace",
        "pod_name",
        "pod_uid",
        "container_name",
        "image",
        "policy",
        "source",
        "mode",
    ] {
        assert!(line.get(key).is_some(), "{key} missing in {line}");
    }
}

#[test]
fn audit_mode_lets_an_exec_keep_its_groups() {
    require_root();
    let config = NodeConfig::new("mode = \"audit\"\n");
    let spec = containerd_spec(&["sleep", "60"], 1000, 1000, &[1000, 50000], &[]);
    let b = Bundle::new("auditexec", &kep_image(), &spec);
    assert!(status_detached(wrapper(&config, &create_args(&b))).success());
    let process = id_process(
        &b,
        json!({"uid": 1000, "gid": 1000, "additionalGids": [1000, 50000]}),
    );
    let body = std::fs::read_to_string(&process).unwrap();
    let out = output(wrapper(&config, &exec_process_args(&b, &process)));
    assert_eq!(stdout(&out), "1000 50000", "{out:?}");
    assert_eq!(std::fs::read_to_string(&process).unwrap(), body);
    let exec = b
        .decisions()
        .into_iter()
        .find(|d| d["action"] == "exec")
        .unwrap();
    assert_eq!(exec["removed"], json!([50000]));
    assert_eq!(exec["mode"], "audit");
}

fn explain(config: &NodeConfig, b: &Bundle, extra: &[&str]) -> Value {
    let mut cmd = Command::new(wrapper_bin());
    cmd.args(["explain", "--json", "--id", &b.id])
        .args(extra)
        .arg(b.path())
        .env("STRICT_GROUPS_CONFIG", config.path());
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{out:?}");
    serde_json::from_slice(&out.stdout).unwrap()
}

/// `explain` first, then a real create in enforce mode: the same decision.
#[test]
fn explain_matches_what_enforce_mode_does() {
    require_root();
    let ctd = PrivateContainerd::start("disabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n");
    let socket = ctd.socket().display().to_string();
    let config = NodeConfig::runtime("runc");
    let merge_ok = NodeConfig::new("allow_merge_annotation = true\n");
    type Case<'a> = (
        &'a str,
        &'a NodeConfig,
        Vec<u32>,
        Vec<(&'a str, &'a str)>,
        Option<Vec<u32>>,
    );
    let cases: Vec<Case> = vec![
        ("rootfs", &config, vec![1000, 50000, 60000], vec![], None),
        (
            "containerd",
            &config,
            vec![1000, 50000, 60000],
            vec![],
            Some(vec![60000]),
        ),
        (
            "declared-and-image",
            &config,
            vec![1000, 50000],
            vec![],
            Some(vec![50000]),
        ),
        (
            "merge-refused",
            &config,
            vec![1000, 50000],
            vec![(POLICY, "Merge")],
            None,
        ),
        (
            "merge-allowed",
            &merge_ok,
            vec![1000, 50000],
            vec![(POLICY, "Merge")],
            None,
        ),
        ("only-primary", &config, vec![1000], vec![], None),
    ];
    for (name, node, a, ann, declared) in cases {
        let spec = containerd_spec(&["true"], 1000, 1000, &a, &ann);
        let b = Bundle::new("explain", &kep_image(), &spec);
        let mut extra = vec!["--no-containerd", "--caller", "containerd"];
        if let Some(d) = &declared {
            ctd.create_record("k8s.io", &b.id, Some(&cri_metadata(&b.id, d)));
            extra = vec![
                "--address",
                &socket,
                "--namespace",
                "k8s.io",
                "--caller",
                "containerd",
            ];
        }
        let before = b.config_bytes();
        let explained = explain(node, &b, &extra);
        assert_eq!(
            b.config_bytes(),
            before,
            "{name}: explain changed config.json"
        );

        let mut cmd = wrapper(node, &create_args(&b));
        if declared.is_some() {
            cmd.env("TTRPC_ADDRESS", format!("{socket}.ttrpc"));
        }
        assert!(
            status_detached(cmd).success(),
            "{name}: {:?}",
            b.log_lines()
        );
        let done = &b.decisions()[0];
        for key in ["kept", "removed", "source", "policy"] {
            assert_eq!(
                explained[key], done[key],
                "{name}: {key}\nexplain {explained}\ncreate {done}"
            );
        }
        let after: Value = serde_json::from_slice(&b.config_bytes()).unwrap();
        assert_eq!(
            after["process"]["user"]["additionalGids"], explained["kept"],
            "{name}: explain's kept is what config.json holds after create"
        );
        assert_eq!(
            explained["would_rewrite"],
            json!(before != b.config_bytes()),
            "{name}"
        );
    }
}

#[test]
fn explain_reports_a_refusal() {
    require_root();
    let config = NodeConfig::runtime("runc");
    let spec = containerd_spec(
        &["true"],
        1000,
        1000,
        &[1000, 50000],
        &[(POLICY, "Lenient")],
    );
    let b = Bundle::new("explainbad", &kep_image(), &spec);
    let out = Command::new(wrapper_bin())
        .args(["explain", "--no-containerd"])
        .arg(b.path())
        .env("STRICT_GROUPS_CONFIG", config.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).starts_with("strict-groups: explain: "),
        "{out:?}"
    );
    assert!(stderr(&out).contains("Lenient"), "{out:?}");
}

/// A node's files under a scratch root.
struct Scratch(tempfile::TempDir);

impl Scratch {
    /// A good setup: runc, the binary, the node config and containerd's entry.
    fn good() -> Scratch {
        let s = Scratch(tempfile::tempdir().unwrap());
        s.write("usr/bin/runc", "#!/bin/sh\n", 0o755);
        std::fs::create_dir_all(s.path("usr/local/bin")).unwrap();
        std::fs::copy(wrapper_bin(), s.path("usr/local/bin/strict-groups")).unwrap();
        s.write(
            "etc/strict-groups/config.toml",
            "runtime = \"/usr/bin/runc\"\n",
            0o644,
        );
        let entry = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("config/containerd-runtime.toml"),
        )
        .unwrap();
        s.write(
            "etc/containerd/config.toml",
            &format!("version = 2\n\n[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.runc]\n  runtime_type = \"io.containerd.runc.v2\"\n\n{entry}"),
            0o644,
        );
        s
    }

    fn path(&self, rel: &str) -> std::path::PathBuf {
        self.0.path().join(rel)
    }

    fn write(&self, rel: &str, text: &str, mode: u32) {
        let p = self.path(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, text).unwrap();
        std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(mode)).unwrap();
    }

    fn edit(&self, rel: &str, from: &str, to: &str) {
        let text = std::fs::read_to_string(self.path(rel)).unwrap();
        assert!(text.contains(from), "{rel} has no {from:?}");
        std::fs::write(self.path(rel), text.replace(from, to)).unwrap();
    }

    /// Runs doctor; versions are given (defaults: containerd 1.6, no
    /// CRI-O, Kubernetes 1.29) so that the result does not depend on the host.
    fn doctor(&self, extra: &[&str]) -> (i32, Vec<Value>) {
        let mut cmd = Command::new(wrapper_bin());
        cmd.args(["doctor", "--json", "--root"])
            .arg(self.0.path())
            .args(["--config", "/etc/strict-groups/config.toml"])
            .args(extra);
        for (flag, default) in [
            ("--containerd-version", "1.6.20"),
            ("--crio-version", ""),
            ("--kubernetes-version", "1.29.3"),
        ] {
            if !extra.contains(&flag) {
                cmd.args([flag, default]);
            }
        }
        let out = cmd.output().unwrap();
        let checks = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        (out.status.code().unwrap(), checks)
    }
}

fn failed(checks: &[Value]) -> Vec<String> {
    checks
        .iter()
        .filter(|c| c["status"] == "fail")
        .map(|c| {
            format!(
                "{}: {}",
                c["check"].as_str().unwrap(),
                c["detail"].as_str().unwrap()
            )
        })
        .collect()
}

#[test]
fn doctor_passes_a_good_node() {
    let s = Scratch::good();
    let (code, checks) = s.doctor(&[]);
    assert_eq!(code, 0, "{checks:#?}");
    assert!(failed(&checks).is_empty());
    let native = checks
        .iter()
        .find(|c| c["check"] == "native Strict")
        .unwrap();
    assert!(
        native["detail"]
            .as_str()
            .unwrap()
            .contains("strict-groups is needed")
    );
}

#[test]
fn doctor_names_each_problem() {
    type Breakage = (&'static str, fn(&Scratch), &'static str);
    let cases: &[Breakage] = &[
        (
            "bad node config",
            |s| {
                s.write(
                    "etc/strict-groups/config.toml",
                    "default_policy = \"strict\"\n",
                    0o644,
                )
            },
            "node config",
        ),
        (
            "missing runtime",
            |s| std::fs::remove_file(s.path("usr/bin/runc")).unwrap(),
            "real runtime",
        ),
        (
            "runtime is the wrapper",
            |s| {
                s.write(
                    "etc/strict-groups/config.toml",
                    "runtime = \"/usr/local/bin/strict-groups\"\n",
                    0o644,
                )
            },
            "strict-groups itself",
        ),
        (
            "no runtime entry",
            |s| {
                s.edit(
                    "etc/containerd/config.toml",
                    "runtimes.strict-groups",
                    "runtimes.other",
                )
            },
            "no runtimes.strict-groups entry",
        ),
        (
            "annotations not passed",
            |s| {
                s.edit(
                    "etc/containerd/config.toml",
                    "pod_annotations = [\"strict-groups.io/*\"]",
                    "pod_annotations = []",
                )
            },
            "pod_annotations",
        ),
        (
            "BinaryName missing",
            |s| {
                s.edit(
                    "etc/containerd/config.toml",
                    "BinaryName = \"/usr/local/bin/strict-groups\"",
                    "SystemdCgroup = false",
                )
            },
            "BinaryName is not set",
        ),
        (
            "BinaryName wrong",
            |s| {
                s.edit(
                    "etc/containerd/config.toml",
                    "/usr/local/bin/strict-groups\"",
                    "/usr/bin/runc\"",
                )
            },
            "is not strict-groups",
        ),
        (
            "invalid TOML",
            |s| {
                s.write(
                    "etc/containerd/config.toml",
                    "version = 2\n[plugins\n",
                    0o644,
                )
            },
            "does not parse",
        ),
        (
            "no CRI config",
            |s| std::fs::remove_file(s.path("etc/containerd/config.toml")).unwrap(),
            "no containerd config and no CRI-O config",
        ),
    ];
    for (name, breakage, expected) in cases {
        let s = Scratch::good();
        breakage(&s);
        let (code, checks) = s.doctor(&[]);
        let fails = failed(&checks);
        assert_eq!(code, 1, "{name}: {checks:#?}");
        assert!(
            fails.iter().any(|f| f.contains(expected)),
            "{name}: expected a failure naming {expected:?}, got {fails:#?}"
        );
        assert!(
            checks
                .iter()
                .filter(|c| c["status"] == "fail")
                .all(|c| c["fix"].is_string()),
            "{name}: every failure has a fix"
        );
    }
}

#[test]
fn doctor_shows_the_way_to_native_strict() {
    let s = Scratch::good();
    let (_, checks) = s.doctor(&[
        "--containerd-version",
        "containerd v2.0.2",
        "--kubernetes-version",
        "Kubernetes v1.31.1",
    ]);
    let native = checks
        .iter()
        .find(|c| c["check"] == "native Strict")
        .unwrap();
    assert!(
        native["detail"].as_str().unwrap().contains("natively"),
        "{native}"
    );
    assert!(
        native["fix"]
            .as_str()
            .unwrap()
            .contains("supplementalGroupsPolicy: Strict")
    );
}

#[test]
fn doctor_checks_a_crio_dropin() {
    let s = Scratch::good();
    std::fs::remove_file(s.path("etc/containerd/config.toml")).unwrap();
    s.write(
        "etc/crio/crio.conf.d/50-strict-groups.conf",
        "[crio.runtime.runtimes.strict-groups]\nruntime_path = \"/usr/local/bin/strict-groups\"\nruntime_type = \"oci\"\n",
        0o644,
    );
    let (code, checks) = s.doctor(&[]);
    assert_eq!(code, 0, "{checks:#?}");
    s.edit(
        "etc/crio/crio.conf.d/50-strict-groups.conf",
        "/usr/local/bin/strict-groups",
        "/usr/bin/runc",
    );
    let (code, checks) = s.doctor(&[]);
    assert_eq!(code, 1);
    assert!(
        failed(&checks).iter().any(|f| f.contains("CRI-O")),
        "{checks:#?}"
    );
}

/// The commands a runtime lists in its `--help`.
fn runtime_commands(runtime: &str) -> Vec<String> {
    let Ok(out) = Command::new(runtime).arg("--help").output() else {
        return Vec::new();
    };
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    let mut in_commands = false;
    let mut names = Vec::new();
    for line in text.lines() {
        let t = line.trim();
        if t.to_ascii_uppercase().starts_with("COMMANDS") {
            in_commands = true;
            continue;
        }
        if in_commands {
            if t.is_empty() || t.ends_with(':') && !line.starts_with(' ') {
                if !names.is_empty() {
                    break;
                }
                continue;
            }
            if let Some(word) = t.split([' ', ',', '\t']).next() {
                names.push(word.to_string());
            }
        }
    }
    names
}

#[test]
fn own_commands_never_shadow_a_runtime_command() {
    let runc = runtime_commands("runc");
    assert!(
        runc.contains(&"create".to_string()) && runc.contains(&"exec".to_string()),
        "{runc:?}"
    );
    let crun = runtime_commands("crun");
    assert!(crun.contains(&"create".to_string()), "{crun:?}");
    for own in strict_groups::commands::OWN_COMMANDS {
        assert!(
            !runc.contains(&own.to_string()) && !crun.contains(&own.to_string()),
            "{own} is a runtime command"
        );
    }
    // --version is the runtime's; the wrapper's own version has its own command.
    let out = own(&["version"]);
    assert_eq!(
        stdout(&out),
        format!("strict-groups {}", env!("CARGO_PKG_VERSION"))
    );
    for cmd in strict_groups::commands::OWN_COMMANDS {
        let out = own(&[cmd, "--help"]);
        assert!(out.status.success(), "{cmd} --help: {out:?}");
    }
}
