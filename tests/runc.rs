//! The wrapper over real runc (and crun where it can run): real containers
//! from a busybox rootfs, groups read with `id -G` inside the container.
//! Here the wrapper runs under a stand-in named like containerd's shim that
//! names no containerd socket, so the declared groups
//! come from the rootfs fallback; `containerd_source.rs` covers the exact one.

mod common;

use common::*;
use serde_json::Value;
use std::process::Stdio;

/// Runs `id -G` through the wrapper with the KEP image and the given user;
/// returns the groups the container printed and the bundle.
fn id_groups(
    config: &NodeConfig,
    image: &Image,
    uid: u32,
    gid: u32,
    additional: &[u32],
    annotations: &[(&str, &str)],
) -> (String, Bundle) {
    require_root();
    let spec = containerd_spec(&["id", "-G"], uid, gid, additional, annotations);
    let b = Bundle::new("id", image, &spec);
    let out = run_container(config, &b);
    assert!(
        out.status.success(),
        "run failed: {out:?}\nlog: {:?}",
        b.log_lines()
    );
    (stdout(&out), b)
}

/// The node config naming the real runtime under test.
fn real_runtime() -> NodeConfig {
    NodeConfig::runtime(&test_runtime())
}

#[test]
fn kep_example_image_group_is_removed() {
    let (groups, b) = id_groups(
        &real_runtime(),
        &kep_image(),
        1000,
        1000,
        &[1000, 50000, 60000],
        &[],
    );
    assert_eq!(groups, "1000 60000");
    let d = &b.decisions()[0];
    assert_eq!(d["removed"], serde_json::json!([50000]));
    assert_eq!(d["kept"], serde_json::json!([1000, 60000]));
    assert_eq!(d["source"], "rootfs");
    assert_eq!(d["pod"], "default/kep-pod");
    assert_eq!(d["policy"], "Strict");
    assert_eq!(d["container"], b.id.as_str());
    // Everything but the array is byte for byte what was there, and
    // oci-spec reads every other field unchanged.
    let after = String::from_utf8(b.config_bytes()).unwrap();
    assert!(after.contains("\"additionalGids\":[1000,60000]"), "{after}");
    let before = serde_json::to_vec(&containerd_spec(
        &["id", "-G"],
        1000,
        1000,
        &[1000, 50000, 60000],
        &[],
    ))
    .unwrap();
    assert_only_gids_changed(&before, after.as_bytes());
}

#[test]
fn without_the_wrapper_the_image_group_is_there() {
    // The same bundle under bare runc: proves the test can tell the two apart.
    require_root();
    let spec = containerd_spec(&["id", "-G"], 1000, 1000, &[1000, 50000, 60000], &[]);
    let b = Bundle::new("bare", &kep_image(), &spec);
    let out = b.run_bare();
    assert_eq!(stdout(&out), "1000 50000 60000");
}

#[test]
fn declared_gid_the_image_also_grants_is_removed_by_the_rootfs_fallback() {
    // Without containerd's record, 50000 cannot be told from an image-only
    // group: fail closed, and say so.
    let (groups, b) = id_groups(
        &real_runtime(),
        &kep_image(),
        1000,
        1000,
        &[1000, 50000],
        &[],
    );
    assert_eq!(groups, "1000");
    let note = b.decisions()[0]["note"].as_str().unwrap().to_string();
    assert!(
        note.contains("including any the pod also declares"),
        "{note}"
    );
}

#[test]
fn image_group_zero_is_removed() {
    let image = Image {
        group: Some("root:x:0:alice\nalice:x:1000:\n".into()),
        ..kep_image()
    };
    let (groups, _) = id_groups(&real_runtime(), &image, 1000, 1000, &[0, 1000], &[]);
    assert_eq!(groups, "1000");
}

#[test]
fn primary_fsgroup_and_volume_gids_are_kept() {
    // gid 50000 is alice's primary here: kept although the image lists it.
    let (groups, _) = id_groups(
        &real_runtime(),
        &kep_image(),
        1000,
        50000,
        &[2000, 3000, 50000],
        &[],
    );
    assert_eq!(groups, "50000 2000 3000");
}

#[test]
fn no_etc_group_removes_nothing_and_leaves_the_file_untouched() {
    require_root();
    let image = Image {
        group: None,
        ..kep_image()
    };
    let spec = containerd_spec(&["id", "-G"], 1000, 1000, &[1000, 50000, 60000], &[]);
    let b = Bundle::new("nogroup", &image, &spec);
    let before = b.config_bytes();
    let ino = std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(b.config_path()).unwrap());
    let out = run_container(&real_runtime(), &b);
    assert_eq!(stdout(&out), "1000 50000 60000");
    assert_eq!(b.config_bytes(), before);
    let ino_after =
        std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(b.config_path()).unwrap());
    assert_eq!(ino, ino_after, "config.json was replaced");
    assert_eq!(b.decisions()[0]["removed"], serde_json::json!([]));
}

#[test]
fn merge_annotation_needs_the_node_to_allow_it() {
    let merge = [(POLICY, "Merge")];
    let (groups, b) = id_groups(
        &real_runtime(),
        &kep_image(),
        1000,
        1000,
        &[1000, 50000, 60000],
        &merge,
    );
    assert_eq!(groups, "1000 60000");
    assert_eq!(b.decisions()[0]["merge_refused"], true);
    let allow = NodeConfig::new("runtime = \"runc\"\nallow_merge_annotation = true\n");
    let (groups, _) = id_groups(
        &allow,
        &kep_image(),
        1000,
        1000,
        &[1000, 50000, 60000],
        &merge,
    );
    assert_eq!(groups, "1000 50000 60000");
}

#[test]
fn sandbox_containers_are_passed_through() {
    require_root();
    let spec = containerd_spec(&["id", "-G"], 1000, 1000, &[1000, 50000], &[]);
    let b = Bundle::new("sandbox", &kep_image(), &spec);
    // containerd names the sandbox's own id in sandbox-id.
    b.annotate(&[
        ("io.kubernetes.cri.container-type", "sandbox"),
        ("io.kubernetes.cri.sandbox-id", &b.id),
    ]);
    let before = b.config_bytes();
    let out = run_container(&real_runtime(), &b);
    assert_eq!(stdout(&out), "1000 50000");
    assert_eq!(b.config_bytes(), before);
    assert!(b.decisions().is_empty());
}

/// A refused create: no container, one error line naming strict-groups in the
/// log, the message on stderr, config.json untouched.
fn assert_refused(b: &Bundle, out: &std::process::Output, expect: &str) {
    assert!(!out.status.success());
    let errors: Vec<Value> = b
        .log_lines()
        .into_iter()
        .filter(|l| l["level"] == "error")
        .collect();
    assert_eq!(errors.len(), 1, "{errors:?}");
    let msg = errors[0]["msg"].as_str().unwrap();
    assert!(msg.starts_with("strict-groups: "), "{msg}");
    assert!(msg.contains(expect), "{msg} lacks {expect:?}");
    assert!(stderr(out).contains(expect), "stderr: {}", stderr(out));
    let state = std::process::Command::new(test_runtime())
        .arg("--root")
        .arg(&b.root)
        .args(["state", &b.id])
        .output()
        .unwrap();
    assert!(!state.status.success(), "the container exists");
}

#[test]
fn bad_annotation_value_is_refused() {
    require_root();
    let spec = containerd_spec(&["id"], 1000, 1000, &[1000, 50000], &[(POLICY, "strict")]);
    let b = Bundle::new("badann", &kep_image(), &spec);
    let before = b.config_bytes();
    let out = run_container(&real_runtime(), &b);
    assert_refused(
        &b,
        &out,
        "invalid value \"strict\" for annotation strict-groups.io/supplemental-groups-policy",
    );
    assert_eq!(b.config_bytes(), before);
}

#[test]
fn malformed_config_is_refused() {
    require_root();
    let spec = containerd_spec(&["id"], 1000, 1000, &[1000], &[]);
    for (name, body) in [
        ("truncated", b"{\"process\":{\"user\"".to_vec()),
        ("not-object", b"[1,2]".to_vec()),
        (
            "wrong-type",
            br#"{"process":{"user":{"uid":1,"gid":1,"additionalGids":"50000"}}}"#.to_vec(),
        ),
        (
            "out-of-range",
            br#"{"process":{"user":{"uid":1,"gid":1,"additionalGids":[4294967296]}}}"#.to_vec(),
        ),
        (
            "duplicate",
            br#"{"process":{"user":{"additionalGids":[1],"additionalGids":[2]}}}"#.to_vec(),
        ),
    ] {
        let b = Bundle::new(name, &kep_image(), &spec);
        std::fs::write(b.config_path(), &body).unwrap();
        let out = run_container(&real_runtime(), &b);
        assert_refused(&b, &out, "config.json");
        assert_eq!(b.config_bytes(), body, "{name}");
    }
}

#[test]
fn missing_bundle_is_refused() {
    require_root();
    let spec = containerd_spec(&["id"], 1000, 1000, &[1000], &[]);
    let b = Bundle::new("nobundle", &kep_image(), &spec);
    std::fs::remove_file(b.config_path()).unwrap();
    let out = run_container(&real_runtime(), &b);
    assert_refused(&b, &out, "config.json");
}

#[test]
fn missing_runtime_and_runtime_that_is_the_wrapper_are_refused() {
    require_root();
    let spec = containerd_spec(&["id"], 1000, 1000, &[1000], &[]);
    for (runtime, expect) in [
        ("/nonexistent/runc", "does not exist"),
        ("no-such-runtime", "not found on PATH"),
        (WRAPPER, "strict-groups itself"),
    ] {
        let b = Bundle::new("noruntime", &kep_image(), &spec);
        let out = run_container(&NodeConfig::runtime(runtime), &b);
        assert_refused(&b, &out, expect);
    }
}

#[test]
fn malformed_node_config_is_refused() {
    require_root();
    let spec = containerd_spec(&["id"], 1000, 1000, &[1000], &[]);
    let b = Bundle::new("badnode", &kep_image(), &spec);
    let out = run_container(&NodeConfig::new("default_policy = \"Sometimes\"\n"), &b);
    assert_refused(&b, &out, "config.toml");
}

/// A node config with a typo, a bad value or a key from a newer release
/// never keeps a container from being inspected, stopped or deleted: every
/// command the wrapper does not act on reaches runc, with a warning. create
/// still refuses an invalid config; an unknown key is only a warning.
#[test]
fn a_broken_node_config_never_blocks_stop_and_delete() {
    require_root();
    let spec = containerd_spec(&["sleep", "300"], 1000, 1000, &[1000, 50000], &[]);
    let b = Bundle::new("brokennode", &kep_image(), &spec);
    assert!(status_detached(wrapper(&real_runtime(), &create_args(&b))).success());
    // The wrapper then runs the runtime its `runtime` line names, else the
    // default (runc).
    let rt = test_runtime();
    let mut broken = vec![
        (
            "a bad value",
            format!("runtime = {rt:?}\nmode = \"enforcing\"\n"),
        ),
        ("not TOML", format!("runtime = {rt:?}\n[[[\n")),
    ];
    if rt == "runc" {
        broken.push((
            "a runtime that does not exist",
            "runtime = \"/opt/none/runc\"\n".into(),
        ));
        broken.push(("not TOML at all", "runtime = runc\n[[[\n".into()));
    }
    let version = std::process::Command::new(&rt)
        .arg("--version")
        .output()
        .unwrap()
        .stdout;
    for (what, text) in broken {
        let node = NodeConfig::new(&text);
        let run = |args: &[&str]| {
            let mut all = b.globals();
            all.extend(args.iter().map(|s| s.to_string()));
            output(wrapper(&node, &all))
        };
        let out = run(&["state", &b.id]);
        assert!(out.status.success(), "{what}: state {out:?}");
        assert!(
            stderr(&out).contains("strict-groups: warning:"),
            "{what}: {out:?}"
        );
        let state: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(state["id"], b.id.as_str(), "{what}");
        let out = output(wrapper(&node, &["--version".to_string()]));
        assert_eq!(out.stdout, version, "{what}: {out:?}");
        // create and exec fail closed.
        let other = Bundle::new("brokennode-create", &kep_image(), &spec);
        let out = run_container(&node, &other);
        assert!(!out.status.success(), "{what}: create ran");
    }
    // Then stop and delete the container through the worst of them.
    let node = NodeConfig::new(&format!("runtime = {rt:?}\n[[[\n"));
    let run = |args: &[&str]| {
        let mut all = b.globals();
        all.extend(args.iter().map(|s| s.to_string()));
        output(wrapper(&node, &all))
    };
    assert!(run(&["kill", &b.id, "9"]).status.success());
    let out = run(&["delete", "--force", &b.id]);
    assert!(out.status.success(), "{out:?}");
    assert!(!run(&["state", &b.id]).status.success());

    // A key from a newer release: create works, and says so.
    let node = NodeConfig::new(&format!("runtime = {rt:?}\nfuture_setting = true\n"));
    let b = Bundle::new(
        "newerkey",
        &kep_image(),
        &containerd_spec(&["id", "-G"], 1000, 1000, &[1000, 50000], &[]),
    );
    let out = run_container(&node, &b);
    assert_eq!(stdout(&out), "1000", "{out:?}");
    let warnings: Vec<Value> = b
        .log_lines()
        .into_iter()
        .filter(|l| l["level"] == "warning")
        .collect();
    assert!(
        warnings[0]["msg"]
            .as_str()
            .unwrap()
            .contains("unknown key \"future_setting\" ignored"),
        "{warnings:?}"
    );
}

#[test]
fn text_log_format() {
    require_root();
    let spec = containerd_spec(&["id"], 1000, 1000, &[1000], &[(POLICY, "bogus")]);
    let b = Bundle::new("textlog", &kep_image(), &spec);
    let args = vec![
        "--root".into(),
        b.root.display().to_string(),
        "--log".into(),
        b.log_path().display().to_string(),
        "run".into(),
        "-b".into(),
        b.path().display().to_string(),
        b.id.clone(),
    ];
    let out = output(wrapper(&real_runtime(), &args));
    assert!(!out.status.success());
    let log = std::fs::read_to_string(b.log_path()).unwrap();
    assert!(log.starts_with("time=\""), "{log}");
    assert!(
        log.contains(" level=error msg=\"strict-groups: container "),
        "{log}"
    );
}

/// create, start, exec, and the passthrough commands, with config.json made
/// unreadable after create: a passthrough command never reads it.
#[test]
fn lifecycle_exec_and_passthrough() {
    require_root();
    let config = real_runtime();
    let spec = containerd_spec(&["sleep", "300"], 1000, 1000, &[1000, 50000, 60000], &[]);
    let b = Bundle::new("life", &kep_image(), &spec);
    let globals = b.globals();
    let run = |extra: &[&str]| {
        let mut args = globals.clone();
        args.extend(extra.iter().map(|s| s.to_string()));
        let mut cmd = wrapper(&config, &args);
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        output(cmd)
    };
    let create = wrapper(&config, &create_args(&b));
    assert!(status_detached(create).success(), "{:?}", b.log_lines());
    let out = run(&["start", &b.id]);
    assert!(out.status.success(), "{out:?}");

    // An exec arrives with the merged groups, as containerd builds it from the
    // spec it stored before the wrapper rewrote config.json.
    let process = b.path().join("exec-process.json");
    let process_json = serde_json::json!({
        "terminal": false, "user": {"uid": 1000, "gid": 1000, "additionalGids": [1000, 50000, 60000]},
        "args": ["id", "-G"], "env": ["PATH=/bin"], "cwd": "/",
    });
    std::fs::write(&process, process_json.to_string()).unwrap();
    let out = run(&["exec", "--process", &process.display().to_string(), &b.id]);
    assert_eq!(stdout(&out), "1000 60000", "{out:?}");
    assert_only_process_gids_changed(
        process_json.to_string().as_bytes(),
        &std::fs::read(&process).unwrap(),
    );
    let exec_decision = b
        .decisions()
        .into_iter()
        .find(|d| d["action"] == "exec")
        .unwrap();
    assert_eq!(exec_decision["removed"], serde_json::json!([50000]));

    // runc's own exec flags cannot add a group the main process lacks
    // (crun has no such flag).
    let out = run(&["exec", "--additional-gids", "50000", &b.id, "id", "-G"]);
    assert!(!out.status.success());
    if test_runtime() == "runc" {
        assert!(stderr(&out).contains("does not have this group"), "{out:?}");
        let out = run(&["exec", "-g", "60000", &b.id, "id", "-G"]);
        assert_eq!(stdout(&out), "1000 60000", "{out:?}");
    }

    // Passthrough commands read no file: break config.json, they still work.
    std::fs::write(b.config_path(), "garbage").unwrap();
    let out = run(&["state", &b.id]);
    assert!(out.status.success(), "{out:?}");
    let state: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(state["status"], "running");
    for cmd in [
        vec!["ps", b.id.as_str()],
        vec!["pause", &b.id],
        vec!["resume", &b.id],
    ] {
        assert!(run(&cmd).status.success(), "{cmd:?}");
    }
    assert!(run(&["kill", &b.id, "9"]).status.success());
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert!(run(&["delete", &b.id]).status.success());
    assert!(!run(&["state", &b.id]).status.success());
}

#[test]
fn version_and_help_are_the_runtimes() {
    for flag in ["--version", "--help", "features"] {
        let ours = output(wrapper(&real_runtime(), &[flag.to_string()]));
        let theirs = std::process::Command::new(test_runtime())
            .arg(flag)
            .output()
            .unwrap();
        assert_eq!(
            comparable(&ours.stdout),
            comparable(&theirs.stdout),
            "{flag}"
        );
        assert_eq!(ours.status.code(), theirs.status.code(), "{flag}");
    }
}

/// A runtime's output as compared: youki prints `features` with its lists
/// in a different order each run, so JSON lists are sorted first.
fn comparable(stdout: &[u8]) -> String {
    fn sorted(v: Value) -> Value {
        match v {
            Value::Array(a) => {
                let mut a: Vec<Value> = a.into_iter().map(sorted).collect();
                a.sort_by_key(|v| v.to_string());
                Value::Array(a)
            }
            Value::Object(o) => Value::Object(o.into_iter().map(|(k, v)| (k, sorted(v))).collect()),
            v => v,
        }
    }
    match serde_json::from_slice::<Value>(stdout) {
        Ok(v) => serde_json::to_string_pretty(&sorted(v)).unwrap(),
        Err(_) => String::from_utf8_lossy(stdout).into_owned(),
    }
}

#[test]
fn crun_kep_example() {
    require_root();
    let config = NodeConfig::runtime("crun");
    let spec = containerd_spec(&["id", "-G"], 1000, 1000, &[1000, 50000, 60000], &[]);
    let b = Bundle::new("crun", &kep_image(), &spec);
    let out = run_container(&config, &b);
    // The wrapper has decided and rewritten config.json before crun runs,
    // whether or not crun can then create the container here.
    assert_eq!(b.decisions()[0]["removed"], serde_json::json!([50000]));
    let after = String::from_utf8(b.config_bytes()).unwrap();
    assert!(after.contains("\"additionalGids\":[1000,60000]"), "{after}");
    if crun_cannot_run_here(&out, &b) {
        eprintln!(
            "SKIPPED crun container start: crun cannot create containers on this host's hybrid cgroup layout"
        );
        return;
    }
    assert!(out.status.success(), "{out:?}");
    assert_eq!(stdout(&out), "1000 60000");
}

/// Two wrapped runtimes on one node (runc, and a GPU runtime, say): each
/// handler's `BinaryName` is its own link to the binary, and the node
/// config's `[runtimes]` names the real runtime of each link.
#[test]
fn each_handler_runs_its_own_real_runtime() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("strict-groups-nvidia");
    std::os::unix::fs::symlink(wrapper_bin(), &link).unwrap();
    let calls = dir.path().join("calls");
    let fake = dir.path().join("fake-nvidia-container-runtime");
    std::fs::write(
        &fake,
        format!(
            "#!/bin/sh\n[ \"$1\" = --version ] && {{ echo 'runc version 1.3.0'; exit 0; }}\necho \"$*\" >> {}\n",
            calls.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let node = NodeConfig::new(&format!(
        "runtime = \"runc\"\n[runtimes]\nstrict-groups-nvidia = \"{}\"\n",
        fake.display()
    ));
    let spec = containerd_spec(&["true"], 1000, 1000, &[1000, 50000, 60000], &[]);
    let b = Bundle::new("handlers", &kep_image(), &spec);
    let run = |program: &str, args: &[String]| {
        let mut cmd = under(CONTAINERD_SHIM, program, args);
        cmd.env("STRICT_GROUPS_CONFIG", node.path())
            .env_remove("TTRPC_ADDRESS")
            .stdin(Stdio::null());
        output(cmd)
    };
    let link = link.display().to_string();
    let out = run(&link, &create_args(&b));
    assert!(out.status.success(), "{out:?}");
    let called = std::fs::read_to_string(&calls).unwrap();
    assert!(
        called.contains(&format!("create --bundle {}", b.path().display())),
        "{called}"
    );
    // The decision was made as for any handler.
    assert_eq!(b.decisions()[0]["removed"], serde_json::json!([50000]));
    let mut state = b.globals();
    state.extend(["state".into(), b.id.clone()]);
    assert!(run(&link, &state).status.success());
    assert!(
        std::fs::read_to_string(&calls)
            .unwrap()
            .contains(&format!("state {}", b.id))
    );
    // By its own name the binary runs `runtime` (runc, which has no such container).
    let out = run(&wrapper_bin(), &state);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("does not exist"), "{out:?}");
}
