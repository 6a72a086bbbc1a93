//! Attempts to get an undeclared group back, over real runc containers, each
//! as the attacker would make it: a pod author's forged annotations, an
//! image's `/etc/group` that runc (before 1.3) reads names from, a pod's
//! mount over it, runc's reordered flags, a restore, a containerd that does
//! not answer. The parent of the wrapper is a stand-in named like
//! containerd's shim or conmon: the caller is read from the process tree.

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};

fn runc() -> NodeConfig {
    NodeConfig::runtime("runc")
}

/// `run` through the wrapper under `parent`: what `id -G` printed.
fn run_under(parent: &str, b: &Bundle) -> std::process::Output {
    output(wrapper_under(parent, &runc(), &run_args(b)))
}

/// The KEP image with a group named like alice (1001), which CRI-O adds and
/// containerd skips.
fn image_with_user_named_group() -> Image {
    let mut image = kep_image();
    image.group = Some("root:x:0:\nalice:x:1001:alice\ngroup-in-image:x:50000:alice\n".into());
    image
}

/// A pod that annotates itself as a sandbox in the other runtime's words
/// keeps no image group: only the caller's own keys, naming this very
/// container, make a sandbox.
#[test]
fn forged_sandbox_annotations_are_not_believed() {
    require_root();
    type Forgery<'a> = (&'a str, Vec<(&'a str, String)>);
    let cases = |id: &str| -> Vec<Forgery<'_>> {
        vec![
            // containerd with pod_annotations = ["*"]: CRI-O's key is the pod's.
            (
                CONTAINERD_SHIM,
                vec![
                    ("io.kubernetes.cri-o.ContainerType", "sandbox".into()),
                    ("io.kubernetes.cri-o.SandboxID", id.into()),
                    ("io.kubernetes.cri-o.ContainerID", id.into()),
                ],
            ),
            // CRI-O copies every pod annotation: containerd's keys are the pod's.
            (
                CONMON,
                vec![
                    ("io.kubernetes.cri.container-type", "sandbox".into()),
                    ("io.kubernetes.cri.sandbox-id", id.into()),
                ],
            ),
            // containerd's own key, but about another container (the pod's sandbox).
            (
                CONTAINERD_SHIM,
                vec![
                    ("io.kubernetes.cri.container-type", "sandbox".into()),
                    ("io.kubernetes.cri.sandbox-id", "the-pods-sandbox".into()),
                ],
            ),
            // Nobody's keys count for a caller that is neither.
            (
                OTHER,
                vec![
                    ("io.kubernetes.cri.container-type", "sandbox".into()),
                    ("io.kubernetes.cri.sandbox-id", id.into()),
                ],
            ),
        ]
    };
    let spec = containerd_spec(&["id", "-G"], 1000, 1000, &[1000, 50000, 60000], &[]);
    for i in 0..cases("x").len() {
        let b = Bundle::new("forged", &kep_image(), &spec);
        let (parent, annotations) = cases(&b.id).swap_remove(i);
        let annotations: Vec<(&str, &str)> =
            annotations.iter().map(|(k, v)| (*k, v.as_str())).collect();
        b.annotate(&annotations);
        let out = run_under(parent, &b);
        assert_eq!(
            stdout(&out),
            "1000 60000",
            "{parent} {annotations:?}: {out:?} {:?}",
            b.log_lines()
        );
        let d = &b.decisions()[0];
        assert_eq!(d["removed"], json!([50000]), "{parent}");
    }
}

/// On CRI-O, a forged containerd key does not switch the image-group rules
/// to containerd's (which skip a group named like the user, which CRI-O adds).
#[test]
fn forged_annotations_do_not_change_the_rules() {
    require_root();
    let spec = containerd_spec(
        &["id", "-G"],
        1000,
        1000,
        &[1000, 1001, 50000, 60000],
        &[("io.kubernetes.cri.container-type", "container")],
    );
    let b = Bundle::new("rules", &image_with_user_named_group(), &spec);
    let out = run_under(CONMON, &b);
    assert_eq!(stdout(&out), "1000 60000", "{:?}", b.log_lines());
}

/// The decision log names the pod from the caller's own keys only.
#[test]
fn forged_identity_is_not_logged() {
    require_root();
    let spec = containerd_spec(
        &["true"],
        1000,
        1000,
        &[1000, 50000],
        &[
            ("io.kubernetes.pod.namespace", "kube-system"),
            ("io.kubernetes.pod.name", "innocent"),
        ],
    );
    let b = Bundle::new("identity", &kep_image(), &spec);
    assert!(run_under(CONTAINERD_SHIM, &b).status.success());
    let d = &b.decisions()[0];
    assert_eq!(d["pod"], "default/kep-pod");
    assert_eq!(d["caller"], "containerd");
    let b = Bundle::new("identity", &kep_image(), &spec);
    assert!(run_under(CONMON, &b).status.success());
    let d = &b.decisions()[0];
    assert_eq!(d["pod"], "kube-system/innocent");
    assert_eq!(d["caller"], "cri-o");
    let b = Bundle::new("identity", &kep_image(), &spec);
    assert!(run_under(OTHER, &b).status.success());
    assert_eq!(b.decisions()[0]["pod"], "/");
}

/// runc before 1.3 looks each gid up by name in the image's /etc/group.
fn renaming_image() -> Image {
    Image {
        passwd: kep_image().passwd,
        group: Some("1000:x:0:\n60000:x:50000:\n".into()),
    }
}

#[test]
fn runc_would_turn_kept_gids_into_other_groups_so_the_create_is_refused() {
    require_root();
    // Without the wrapper, Debian 12's runc gives the image's groups 0 and
    // 50000 for the declared 1000 and 60000: the exposure is real here.
    let spec = containerd_spec(&["id", "-G"], 1000, 1000, &[1000, 60000], &[]);
    let b = Bundle::new("bare", &renaming_image(), &spec);
    let bare = b.run_bare();
    assert_eq!(stdout(&bare), "1000 0 50000", "{bare:?}");

    let b = Bundle::new("renamed", &renaming_image(), &spec);
    let out = run_under(CONTAINERD_SHIM, &b);
    assert!(!out.status.success(), "{out:?}");
    let errors: Vec<Value> = b
        .log_lines()
        .into_iter()
        .filter(|l| l["level"] == "error")
        .collect();
    let msg = errors[0]["msg"].as_str().unwrap();
    assert!(
        msg.contains("would give the process the groups 0,50000 instead"),
        "{msg}"
    );
    assert!(stdout(&out).is_empty(), "the container ran: {out:?}");

    // A runtime that uses the numbers (crun, youki) is not refused.
    let crun = fake_runtime("crun version 1.8.1");
    let config = NodeConfig::runtime(&crun.display().to_string());
    let b = Bundle::new("renamed-crun", &renaming_image(), &spec);
    let out = output(wrapper(&config, &run_args(&b)));
    assert!(out.status.success(), "{out:?} {:?}", b.log_lines());
}

#[test]
fn a_mount_over_etc_group_is_refused_on_runc() {
    require_root();
    let spec = containerd_spec(&["id", "-G"], 1000, 1000, &[1000, 60000], &[]);
    let b = Bundle::new("mount", &kep_image(), &spec);
    let group = b.path().join("pods-group");
    std::fs::write(&group, "1000:x:0:\n").unwrap();
    b.add_bind_mount("/etc/group", &group);
    let out = run_under(CONTAINERD_SHIM, &b);
    assert!(!out.status.success(), "{out:?}");
    assert!(
        stderr(&out).contains("a mount at \"/etc/group\" replaces /etc/group in the image"),
        "{out:?}"
    );
}

/// The image points /etc/group at a directory the pod mounts a volume on:
/// the wrapper finds no /etc/group in the image, runc finds the volume's.
#[test]
fn an_image_symlink_into_a_pod_volume_is_refused_on_runc() {
    require_root();
    let spec = containerd_spec(&["id", "-G"], 1000, 1000, &[1000, 60000], &[]);
    let volume = tempfile::tempdir().unwrap();
    std::fs::write(volume.path().join("group"), "1000:x:0:\n").unwrap();
    let with_volume = |b: &Bundle| {
        std::fs::remove_file(b.path().join("rootfs/etc/group")).unwrap();
        std::os::unix::fs::symlink("/config/group", b.path().join("rootfs/etc/group")).unwrap();
        std::fs::create_dir_all(b.path().join("rootfs/config")).unwrap();
        b.add_bind_mount("/config", volume.path());
    };
    // Bare runc 1.1: the pod's gid 1000 becomes group 0.
    let b = Bundle::new("volume-bare", &kep_image(), &spec);
    with_volume(&b);
    let bare = b.run_bare();
    assert_eq!(stdout(&bare), "1000 0 60000", "{bare:?}");
    let b = Bundle::new("volume", &kep_image(), &spec);
    with_volume(&b);
    let out = run_under(CONTAINERD_SHIM, &b);
    assert!(!out.status.success(), "{out:?}");
    assert!(
        stderr(&out).contains("a mount at \"/config\" replaces /config in the image"),
        "{out:?}"
    );
}

/// Lets user 1000 read and write `path` through a POSIX ACL, as an image
/// layer can carry one (containerd sets its `SCHILY.xattr.` records, then
/// the header's mode, 0664 here: the group bits are the ACL's mask).
fn acl_lets_user_1000_write(path: &std::path::Path) {
    use std::os::unix::ffi::OsStrExt;
    // Version 2, then (tag, permissions, id): user::rw-, user:1000:rw-,
    // group::r--, mask::rw-, other::r--.
    let mut xattr = 2u32.to_le_bytes().to_vec();
    for (tag, perm, id) in [
        (0x01u16, 6u16, u32::MAX),
        (0x02, 6, 1000),
        (0x04, 4, u32::MAX),
        (0x10, 6, u32::MAX),
        (0x20, 4, u32::MAX),
    ] {
        xattr.extend(tag.to_le_bytes());
        xattr.extend(perm.to_le_bytes());
        xattr.extend(id.to_le_bytes());
    }
    let p = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
    // SAFETY: NUL-terminated names, a buffer of the given length.
    let rc = unsafe {
        libc::setxattr(
            p.as_ptr(),
            c"system.posix_acl_access".as_ptr(),
            xattr.as_ptr().cast(),
            xattr.len(),
            0,
        )
    };
    assert_eq!(rc, 0, "{}", std::io::Error::last_os_error());
}

/// An image's `/etc/group` that an ACL lets the container's user write
/// (its mode alone does not): the container's process names a group after
/// the pod's gid, and runc's next look-up gives group 0. The wrapper refuses
/// the image on runc before 1.3, as it does a file whose mode lets the user
/// write.
#[test]
fn a_group_file_an_acl_lets_the_user_write_is_refused_on_runc() {
    require_root();
    let rewrite = ["sh", "-c", "echo 1000:x:0: > /etc/group"];
    let spec = containerd_spec(&rewrite, 1000, 1000, &[1000], &[]);
    // Bare runc 1.1: the user cannot write the file without the ACL; with
    // it, it can, and the next process of the image gets group 0.
    let b = Bundle::new("acl-bare", &kep_image(), &spec);
    let group = b.path().join("rootfs/etc/group");
    assert!(!b.run_bare().status.success(), "mode 0644: not writable");
    acl_lets_user_1000_write(&group);
    let bare = b.run_bare();
    assert!(bare.status.success(), "{bare:?}");
    let mut id = containerd_spec(&["id", "-G"], 1000, 1000, &[1000], &[]);
    id["annotations"] =
        serde_json::from_slice::<Value>(&b.config_bytes()).unwrap()["annotations"].clone();
    std::fs::write(b.config_path(), id.to_string()).unwrap();
    assert_eq!(stdout(&b.run_bare()), "1000 0");
    // Through the wrapper: refused before the container starts.
    let b = Bundle::new("acl", &kep_image(), &spec);
    acl_lets_user_1000_write(&b.path().join("rootfs/etc/group"));
    let out = run_under(CONTAINERD_SHIM, &b);
    assert!(!out.status.success(), "{out:?}");
    assert!(
        stderr(&out).contains("/etc/group in the image is writable by the container's user"),
        "{out:?}"
    );
}

#[test]
fn an_exec_whose_gids_runc_would_rename_is_refused() {
    require_root();
    let spec = containerd_spec(&["sleep", "300"], 1000, 1000, &[1000], &[]);
    let b = Bundle::new("exec-rename", &kep_image(), &spec);
    assert!(status_detached(wrapper(&runc(), &create_args(&b))).success());
    // The image changes its /etc/group after the create (its rootfs is
    // writable); runc's exec reads it again.
    std::fs::write(b.path().join("rootfs/etc/group"), "1000:x:0:\n").unwrap();
    let process = id_process(
        &b,
        json!({"uid": 1000, "gid": 1000, "additionalGids": [1000]}),
    );
    let out = output(wrapper(&runc(), &exec_process_args(&b, &process)));
    assert!(!out.status.success(), "{out:?}");
    assert!(stderr(&out).contains("groups 0 instead"), "{out:?}");
}

/// runc's exec enters the namespaces that its container's init process is
/// in at that moment: an init that has made a user and a mount namespace of
/// its own (no capability needed) mounts its own `/etc/group` there, and
/// runc before 1.3 names the exec's gids from it. The wrapper refuses the
/// exec.
#[test]
fn an_exec_into_an_init_with_a_user_namespace_of_its_own_is_refused() {
    require_root();
    let script = "echo 1000:x:0: > /dev/shm/group && exec busybox unshare -Urm busybox sh -c \
                  'busybox mount --bind /dev/shm/group /etc/group && exec sleep 300'";
    let spec = containerd_spec(&["sh", "-c", script], 1000, 1000, &[1000], &[]);
    let b = Bundle::new("own-userns", &kep_image(), &spec);
    assert!(status_detached(wrapper(&runc(), &create_args(&b))).success());
    let runc_alone = |args: &[&str]| {
        let mut cmd = std::process::Command::new(test_runtime());
        cmd.args(b.globals()).args(args);
        cmd
    };
    assert!(status_detached(runc_alone(&["start", &b.id])).success());
    // The init's own mount of /etc/group, once it is there.
    let state: Value =
        serde_json::from_slice(&output(runc_alone(&["state", &b.id])).stdout).unwrap();
    let mountinfo = format!("/proc/{}/mountinfo", state["pid"]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !std::fs::read_to_string(&mountinfo)
        .unwrap_or_default()
        .contains(" /etc/group ")
    {
        assert!(
            Instant::now() < deadline,
            "the init mounted nothing over /etc/group"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let process = id_process(
        &b,
        json!({"uid": 1000, "gid": 1000, "additionalGids": [1000]}),
    );
    let path = process.display().to_string();
    let bare = output(runc_alone(&["exec", "--process", &path, &b.id]));
    assert_eq!(stdout(&bare), "1000 0", "runc alone: {bare:?}");
    let out = output(wrapper(&runc(), &exec_process_args(&b, &process)));
    assert!(!out.status.success(), "{out:?}");
    assert!(
        stderr(&out).contains("has entered a user namespace of its own"),
        "{out:?}"
    );
}

/// runc moves `create`'s flags ahead of the id: `run ID --bundle B` runs B.
#[test]
fn flags_after_the_container_id_name_the_bundle_runc_uses() {
    require_root();
    let spec = containerd_spec(&["id", "-G"], 1000, 1000, &[1000, 50000, 60000], &[]);
    let b = Bundle::new("reorder", &kep_image(), &spec);
    // The current directory holds another bundle, as the sandbox's under
    // containerd's shim.
    let decoy = Bundle::new("decoy", &kep_image(), &spec);
    let mut args = b.globals();
    args.extend([
        "run".into(),
        b.id.clone(),
        "--bundle".into(),
        b.path().display().to_string(),
    ]);
    let mut cmd = wrapper(&runc(), &args);
    cmd.current_dir(decoy.path());
    let out = output(cmd);
    assert_eq!(stdout(&out), "1000 60000", "{out:?} {:?}", b.log_lines());
    assert!(
        decoy.log_lines().is_empty() && b.decisions().len() == 1,
        "the decision was made on the wrong bundle"
    );
}

#[test]
fn restore_under_strict_is_refused() {
    require_root();
    let spec = containerd_spec(&["sleep", "300"], 1000, 1000, &[1000, 60000], &[]);
    let b = Bundle::new("restore", &kep_image(), &spec);
    let mut args = b.globals();
    args.extend([
        "restore".into(),
        "--image-path".into(),
        b.path().join("checkpoint").display().to_string(),
        "--bundle".into(),
        b.path().display().to_string(),
        b.id.clone(),
    ]);
    let out = output(wrapper(&runc(), &args));
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("restore under policy Strict"),
        "{out:?}"
    );
}

/// A containerd that accepts the connection and never answers: the wrapper
/// falls back to the rootfs well within a second and says so as a warning.
#[test]
fn a_silent_containerd_costs_little_and_is_a_warning() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("containerd.sock");
    let listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
    let spec = containerd_spec(&["true"], 1000, 1000, &[1000, 50000, 60000], &[]);
    let b = Bundle::new("silent", &kep_image(), &spec);
    // The wait is under test, not runc's start: a runtime that does nothing.
    let crun = fake_runtime("crun version 1.8.1");
    let config = NodeConfig::runtime(&crun.display().to_string());
    let mut cmd = wrapper(&config, &run_args(&b));
    cmd.env("TTRPC_ADDRESS", format!("{}.ttrpc", socket.display()));
    let started = Instant::now();
    let out = output(cmd);
    let took = started.elapsed();
    drop(listener);
    assert!(out.status.success(), "{out:?}");
    assert!(took < Duration::from_millis(900), "took {took:?}");
    let warnings: Vec<Value> = b
        .log_lines()
        .into_iter()
        .filter(|l| l["level"] == "warning")
        .collect();
    let msg = warnings[0]["msg"].as_str().unwrap();
    assert!(
        msg.contains("containerd's record of the pod's groups could not be read"),
        "{msg}"
    );
    assert_eq!(b.decisions()[0]["source"], "rootfs");
    println!("silent containerd: create decided from the rootfs in {took:?}");
}

/// An exec may not pick a primary group the main process lacks: not with
/// `--user uid:gid`, not in its process file.
#[test]
fn an_exec_with_another_primary_group_is_refused() {
    require_root();
    let spec = containerd_spec(&["sleep", "300"], 1000, 1000, &[1000, 60000], &[]);
    let b = Bundle::new("exec-primary", &kep_image(), &spec);
    assert!(status_detached(wrapper(&runc(), &create_args(&b))).success());
    let exec = |extra: &[&str]| {
        let mut args = b.globals();
        args.push("exec".into());
        args.extend(extra.iter().map(|s| s.to_string()));
        output(wrapper(&runc(), &args))
    };
    let out = exec(&["--user", "1000:0", &b.id, "id", "-G"]);
    assert!(!out.status.success(), "{out:?}");
    assert!(
        stderr(&out).contains("exec with primary group 0"),
        "{out:?}"
    );
    let out = exec(&["--user", "1000:60000", &b.id, "id", "-g"]);
    assert_eq!(stdout(&out), "60000", "{out:?}");
    let process = b.path().join("exec.json");
    std::fs::write(
        &process,
        json!({"user": {"uid": 1000, "gid": 50000, "additionalGids": [50000]},
               "args": ["id", "-G"], "cwd": "/", "env": ["PATH=/bin"]})
        .to_string(),
    )
    .unwrap();
    let out = exec(&["--process", &process.display().to_string(), &b.id]);
    assert!(
        stderr(&out).contains("exec with primary group 50000"),
        "{out:?}"
    );
}

/// A pod annotation named `bundle` (runc keeps annotations as `key=value`
/// labels before its own `bundle=` label) does not make an exec read
/// another `config.json`: here one that still grants the image's group.
#[test]
fn an_annotation_named_bundle_does_not_redirect_an_exec() {
    require_root();
    let decoy = tempfile::tempdir().unwrap();
    let granting = containerd_spec(&["sleep", "300"], 1000, 1000, &[1000, 50000, 60000], &[]);
    std::fs::write(decoy.path().join("config.json"), granting.to_string()).unwrap();
    // The same image files: only the bundle named differs.
    let image = kep_image();
    std::fs::create_dir_all(decoy.path().join("rootfs/etc")).unwrap();
    for (file, text) in [("passwd", image.passwd), ("group", image.group)] {
        std::fs::write(decoy.path().join("rootfs/etc").join(file), text.unwrap()).unwrap();
    }
    let decoy_path = decoy.path().display().to_string();
    let spec = containerd_spec(
        &["sleep", "300"],
        1000,
        1000,
        &[1000, 50000, 60000],
        &[("bundle", decoy_path.as_str())],
    );
    let b = Bundle::new("exec-bundle-label", &kep_image(), &spec);
    assert!(status_detached(wrapper(&runc(), &create_args(&b))).success());
    let labels: Value =
        serde_json::from_slice(&std::fs::read(b.root.join(&b.id).join("state.json")).unwrap())
            .unwrap();
    assert!(
        labels["config"]["labels"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l == &json!(format!("bundle={decoy_path}"))),
        "runc keeps the annotation as a label: {labels}"
    );
    let user = json!({"uid": 1000, "gid": 1000, "additionalGids": [1000, 50000, 60000]});
    let process = id_process(&b, user);
    let out = output(wrapper(&runc(), &exec_process_args(&b, &process)));
    assert_eq!(stdout(&out), "1000 60000", "{out:?}");
}

/// A create line that runc and a simpler reading would take for different
/// bundles is refused, not guessed.
#[test]
fn an_ambiguous_create_line_is_refused() {
    require_root();
    let spec = containerd_spec(&["id", "-G"], 1000, 1000, &[1000, 50000, 60000], &[]);
    let b = Bundle::new("ambiguous", &kep_image(), &spec);
    let before = b.config_bytes();
    let mut args = b.globals();
    args.extend([
        "create".into(),
        "--pid-file".into(),
        "-g".into(),
        b.id.clone(),
        "--bundle".into(),
        b.path().display().to_string(),
    ]);
    let out = output(wrapper(&runc(), &args));
    assert!(!out.status.success(), "{out:?}");
    assert!(
        stderr(&out).contains("can be read more than one way"),
        "{out:?}"
    );
    assert_eq!(b.config_bytes(), before);
}
